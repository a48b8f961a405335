//! Quoting identifiers and literals exactly as PostgreSQL's `quote_ident` / `quote_literal` do.

use pg_query::protobuf::KeywordKind;

/// Quote `ident` when PostgreSQL needs it: anything but lower-case letters, digits and `_`
/// (not starting with a digit), or any keyword that is not unreserved.
pub fn quote_ident(ident: &str) -> String {
    if is_plain_identifier(ident) {
        ident.to_string()
    } else {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
}

fn is_plain_identifier(ident: &str) -> bool {
    let mut chars = ident.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !(first.is_ascii_lowercase() || first == '_') {
        return false;
    }
    if !ident.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return false;
    }
    // PostgreSQL's own keyword table, through its scanner.
    match pg_query::scan(ident) {
        Ok(scan) => scan.tokens.first().is_some_and(|t| {
            t.keyword_kind == KeywordKind::NoKeyword as i32 || t.keyword_kind == KeywordKind::UnreservedKeyword as i32
        }),
        Err(_) => false,
    }
}

/// Quote a string literal; uses the `E'…'` form when it contains backslashes, as
/// PostgreSQL's `quote_literal` does, so it is right whatever `standard_conforming_strings` is.
pub fn quote_literal(value: &str) -> String {
    let body = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_quoted_like_postgres() {
        assert_eq!(quote_ident("users"), "users");
        assert_eq!(quote_ident("user_id2"), "user_id2");
        assert_eq!(quote_ident("Users"), "\"Users\"");
        assert_eq!(quote_ident("select"), "\"select\"");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("name"), "name"); // unreserved keyword
        assert_eq!(quote_ident("2fa"), "\"2fa\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident(""), "\"\"");
        assert_eq!(quote_ident("has space"), "\"has space\"");
    }

    #[test]
    fn literals_escaped() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
    }
}
