//! Quoting identifiers and literals exactly as PostgreSQL's `quote_ident` / `quote_literal` do.

use std::collections::HashSet;
use std::sync::OnceLock;

/// Keywords that are not "unreserved" in PostgreSQL 18 (`pg_get_keywords()` with catcode
/// other than U): as identifiers they must be quoted. A test checks this list against the
/// parser's own keyword table.
static KEYWORDS: &str = include_str!("data/keywords.txt");

fn keywords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&str>> = OnceLock::new();
    SET.get_or_init(|| KEYWORDS.lines().collect())
}

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
    let Some(first) = chars.next() else { return false };
    (first.is_ascii_lowercase() || first == '_')
        && ident.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !keywords().contains(ident)
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
    use pg_query::protobuf::KeywordKind;

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
    fn keyword_list_matches_the_parsers_own_table() {
        let kw = keywords();
        for word in kw.iter() {
            let t = &pg_query::scan(word).unwrap().tokens[0];
            assert!(
                t.keyword_kind != KeywordKind::NoKeyword as i32
                    && t.keyword_kind != KeywordKind::UnreservedKeyword as i32,
                "{word} is listed but the parser does not reserve it"
            );
        }
        // Every reserved-ish keyword the scanner knows among common words is in the list.
        for word in [
            "all", "and", "as", "between", "case", "check", "default", "from", "group", "order", "table", "user",
            "where", "window", "overlaps", "json",
        ] {
            let t = &pg_query::scan(word).unwrap().tokens[0];
            let reserved = t.keyword_kind != KeywordKind::NoKeyword as i32
                && t.keyword_kind != KeywordKind::UnreservedKeyword as i32;
            assert_eq!(reserved, kw.contains(word), "{word}");
        }
    }

    #[test]
    fn literals_escaped() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
    }
}
