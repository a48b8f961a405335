//! Parsing a migration file with PostgreSQL's own parser (pg_query). Parsing never fails:
//! it returns the statements it could read plus a list of syntax errors with byte offsets.

use pg_query::protobuf::{self, Token};
use serde::Serialize;

use crate::convert::summarise;
use crate::model::Statement;
use crate::span::Span;

/// A syntax error at a byte offset of the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyntaxError {
    /// PostgreSQL's message, e.g. `syntax error at or near "TABLEE"`.
    pub message: String,
    /// Byte offset the parser points at.
    pub offset: usize,
}

/// A comment in the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Comment {
    /// Where it is.
    pub span: Span,
    /// Its text, without `--` or `/* */`, trimmed.
    pub text: String,
}

/// The result of parsing one SQL text.
#[derive(Debug, Clone, Default)]
pub struct ParsedSql {
    /// Statements in source order.
    pub statements: Vec<Statement>,
    /// Syntax errors, in source order.
    pub errors: Vec<SyntaxError>,
    /// Every comment, in source order.
    pub comments: Vec<Comment>,
}

/// Parse `source` into statements. Never panics; errors are collected.
pub fn parse_sql(source: &str) -> ParsedSql {
    let mut out = ParsedSql::default();
    if let Some(nul) = source.find('\0') {
        out.errors.push(SyntaxError { message: "file contains a NUL byte".into(), offset: nul });
        return out;
    }
    // Rows inline after `COPY … FROM STDIN;` are data, not SQL: parse the text with them blanked
    // out (offsets kept), then give each such COPY its rows.
    let (masked, copy_blocks) = mask_copy_data(source);
    let source = masked.as_str();
    let tokens = match pg_query::scan(source) {
        Ok(scan) => scan.tokens,
        Err(_) => {
            let (message, offset) = error_position(source);
            out.errors.push(SyntaxError { message, offset });
            return out;
        }
    };
    out.comments = comments(source, &tokens);
    match pg_query::parse(source, 0) {
        Ok(result) => push_statements(&mut out, source, &tokens, 0, &result.protobuf),
        Err(_) => parse_piecewise(&mut out, source, &tokens),
    }
    for e in &mut out.errors {
        let at_line_start = e.offset == 0 || source.as_bytes().get(e.offset - 1) == Some(&b'\n');
        if at_line_start && source[e.offset..].starts_with('\\') {
            let command: String = source[e.offset..].chars().take_while(|c| !c.is_whitespace()).collect();
            e.message = format!(
                "psql meta-command `{command}` is not SQL: migsafe runs the SQL itself (of psql's syntax it \
                 understands only the rows after `COPY … FROM stdin`); remove the line"
            );
        }
    }
    for (end_of_copy, data) in copy_blocks {
        if let Some(st) = out.statements.iter_mut().rev().find(|st| st.span.start < end_of_copy) {
            st.copy_data = Some(data);
        }
    }
    out
}

/// Find every `COPY … FROM STDIN` statement followed by inline rows (psql's convention: the
/// rows start on the next line and end at a line holding only `\.`, or at the end of the
/// text), and return the text with those rows blanked out (newlines kept, so every offset and
/// line number stays right), plus, per block, the offset just past the COPY statement's `;`
/// and the span of its rows. A candidate counts only when PostgreSQL's scanner, reading
/// everything before it, sees a `;` that ends a statement beginning with COPY and naming
/// FROM STDIN: `stdin` in a string, comment or function body is not one.
fn mask_copy_data(source: &str) -> (String, Vec<(usize, Span)>) {
    let mut bytes = source.as_bytes().to_vec();
    let mut blocks = Vec::new();
    let lower = source.to_ascii_lowercase();
    // Where the statement being read starts: everything before it was a complete statement.
    let mut from = 0;
    let mut search = 0;
    while let Some(rel) = lower[search..].find("stdin") {
        let at = search + rel;
        search = at + 5;
        let Some(semi_rel) = lower[at..].find(';') else { break };
        let semi = at + semi_rel;
        let Ok(prefix) = std::str::from_utf8(&bytes[from..=semi]) else { continue };
        let Ok(scan) = pg_query::scan(prefix) else { continue };
        let tokens: Vec<_> = scan.tokens.iter().filter(|t| !is_comment(t)).collect();
        if tokens.last().map(|t| t.end as usize) != Some(prefix.len())
            || tokens.last().map(|t| t.token) != Some(Token::Ascii59 as i32)
        {
            continue;
        }
        // The statement this `;` ends: from the `;` before it.
        let body: Vec<_> = {
            let n = tokens.len() - 1;
            let start = tokens[..n].iter().rposition(|t| t.token == Token::Ascii59 as i32).map_or(0, |p| p + 1);
            tokens[start..n].to_vec()
        };
        let word = |t: &protobuf::ScanToken| prefix[t.start as usize..t.end as usize].to_ascii_lowercase();
        let is_copy = body.first().is_some_and(|t| word(t) == "copy");
        let from_stdin = body.windows(2).any(|w| word(w[0]) == "from" && word(w[1]) == "stdin");
        if !(is_copy && from_stdin) {
            continue;
        }
        // Rows start on the next line.
        let Some(nl) = source[semi..].find('\n') else { break };
        let data_start = semi + nl + 1;
        let mut line_start = data_start;
        let (data_end, next) = loop {
            let line_end = source[line_start..].find('\n').map_or(source.len(), |p| line_start + p);
            let line = source[line_start..line_end].trim_end_matches('\r');
            if line == "\\." {
                break (line_start, (line_end + 1).min(source.len()));
            }
            if line_end >= source.len() {
                break (source.len(), source.len());
            }
            line_start = line_end + 1;
        };
        for b in &mut bytes[data_start..next] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
        blocks.push((semi + 1, Span::new(data_start, data_end)));
        from = next;
        search = next;
    }
    // Only ASCII bytes were replaced (by spaces, whole UTF-8 sequences at a time: every byte of
    // a multi-byte character is >= 0x80 and is replaced too), so the text is still UTF-8.
    (String::from_utf8(bytes).unwrap_or_else(|_| source.to_string()), blocks)
}

/// A whole-file parse failed: parse statement by statement so the good ones are still
/// linted, and locate each error exactly.
fn parse_piecewise(out: &mut ParsedSql, source: &str, tokens: &[protobuf::ScanToken]) {
    let pieces = split_on_semicolons(source, tokens);
    for (start, end) in pieces {
        let piece = &source[start..end];
        if piece.trim().is_empty() {
            continue;
        }
        match pg_query::parse(piece, 0) {
            Ok(result) => {
                let piece_tokens: Vec<_> = tokens
                    .iter()
                    .filter(|t| t.start as usize >= start && (t.end as usize) <= end)
                    .map(|t| protobuf::ScanToken { start: t.start - start as i32, end: t.end - start as i32, ..*t })
                    .collect();
                push_statements(out, piece, &piece_tokens, start, &result.protobuf);
            }
            Err(_) => {
                let (message, offset) = error_position(piece);
                out.errors.push(SyntaxError { message, offset: start + offset });
            }
        }
    }
    for (i, s) in out.statements.iter_mut().enumerate() {
        s.index = i;
    }
}

/// Split at top-level `;` tokens (the scanner already knows strings, comments, `$$` bodies).
/// Semicolons inside BEGIN ATOMIC bodies are rare enough in migrations to accept a split there.
fn split_on_semicolons(source: &str, tokens: &[protobuf::ScanToken]) -> Vec<(usize, usize)> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut depth = 0i32;
    for t in tokens {
        match t.token {
            x if x == Token::Ascii40 as i32 => depth += 1,
            x if x == Token::Ascii41 as i32 => depth -= 1,
            x if x == Token::Ascii59 as i32 && depth <= 0 => {
                pieces.push((start, t.start as usize));
                start = t.end as usize;
                depth = 0;
            }
            _ => {}
        }
    }
    pieces.push((start, source.len()));
    pieces
}

fn push_statements(
    out: &mut ParsedSql,
    source: &str,
    tokens: &[protobuf::ScanToken],
    base: usize,
    tree: &protobuf::ParseResult,
) {
    for raw in &tree.stmts {
        let Some(node) = raw.stmt.as_deref() else {
            continue;
        };
        let loc = raw.stmt_location.max(0) as usize;
        let end = if raw.stmt_len == 0 { source.len() } else { loc + raw.stmt_len as usize };
        // stmt_location may include leading whitespace and comments: start at the first token.
        // The tokens are in source order, so the search starts where `loc` falls (a scan from the
        // first token for every statement made parsing quadratic in the number of statements).
        let from = tokens.partition_point(|t| (t.start as usize) < loc);
        let start = tokens[from..].iter().find(|t| !is_comment(t)).map(|t| t.start as usize).unwrap_or(loc).min(end);
        let mut real_end = end;
        while real_end > start && source.as_bytes()[real_end - 1].is_ascii_whitespace() {
            real_end -= 1;
        }
        let (kind, tag) = summarise(node);
        out.statements.push(Statement {
            index: out.statements.len(),
            span: Span::new(base + start, base + real_end),
            kind,
            tag,
            raw: node.clone(),
            copy_data: None,
        });
    }
}

fn is_comment(t: &protobuf::ScanToken) -> bool {
    t.token == Token::SqlComment as i32 || t.token == Token::CComment as i32
}

fn comments(source: &str, tokens: &[protobuf::ScanToken]) -> Vec<Comment> {
    tokens
        .iter()
        .filter(|t| is_comment(t))
        .map(|t| {
            let span = Span::new(t.start as usize, t.end as usize);
            let raw = span.slice(source);
            let text = if let Some(rest) = raw.strip_prefix("--") {
                rest
            } else {
                raw.trim_start_matches("/*").trim_end_matches("*/")
            };
            Comment { span, text: text.trim().to_string() }
        })
        .collect()
}

/// Ask libpg_query directly for the error message and cursor position (the Rust wrapper drops
/// the position). Returns a byte offset into `source`.
fn error_position(source: &str) -> (String, usize) {
    ffi::parse_error(source).unwrap_or_else(|| ("syntax error".into(), 0))
}

mod ffi {
    //! The one place we call libpg_query's C API ourselves: to read `cursorpos`.
    use std::ffi::{c_char, c_int, CStr, CString};

    #[repr(C)]
    struct PgQueryError {
        message: *mut c_char,
        funcname: *mut c_char,
        filename: *mut c_char,
        lineno: c_int,
        cursorpos: c_int,
        context: *mut c_char,
    }

    #[repr(C)]
    struct PgQueryParseResult {
        parse_tree: *mut c_char,
        stderr_buffer: *mut c_char,
        error: *mut PgQueryError,
    }

    extern "C" {
        fn pg_query_parse(input: *const c_char) -> PgQueryParseResult;
        fn pg_query_free_parse_result(result: PgQueryParseResult);
    }

    /// Parse `source`; on error return PostgreSQL's message and the byte offset it points at.
    pub(super) fn parse_error(source: &str) -> Option<(String, usize)> {
        let input = CString::new(source).ok()?;
        // SAFETY: libpg_query's documented API: the input is a NUL-terminated string we own
        // for the duration of the call, and the result is freed exactly once below.
        unsafe {
            let result = pg_query_parse(input.as_ptr());
            let out = if result.error.is_null() {
                None
            } else {
                let err = &*result.error;
                let message = CStr::from_ptr(err.message).to_string_lossy().into_owned();
                // cursorpos is 1-based in characters (0 = unknown); PostgreSQL counts
                // characters in the server encoding, which is UTF-8 here.
                let chars = (err.cursorpos.max(1) - 1) as usize;
                let offset = source.char_indices().nth(chars).map(|(i, _)| i).unwrap_or(source.len());
                Some((message, offset))
            };
            pg_query_free_parse_result(result);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_get_spans_without_leading_comments() {
        let src = "-- header\nCREATE TABLE a (id int);\n\n/* c */ ALTER TABLE a ADD COLUMN b int;\n";
        let p = parse_sql(src);
        assert!(p.errors.is_empty());
        assert_eq!(p.statements.len(), 2);
        assert_eq!(p.statements[0].text(src), "CREATE TABLE a (id int)");
        assert_eq!(p.statements[1].text(src), "ALTER TABLE a ADD COLUMN b int");
        assert_eq!(p.comments.len(), 2);
        assert_eq!(p.comments[0].text, "header");
    }

    #[test]
    fn upsert_assignments_are_parsed() {
        let src = "INSERT INTO s (k, v) VALUES ('a', 1) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v + 1;\n\
                   INSERT INTO s SELECT * FROM t ON CONFLICT DO NOTHING;";
        let p = parse_sql(src);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let upserts = |i: usize| match &p.statements[i].kind {
            crate::StmtKind::Insert { upserts, .. } => upserts.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(upserts(0).unwrap()[0].0, "v");
        assert!(upserts(0).unwrap()[0].1.contains("excluded.v"), "{:?}", upserts(0));
        assert_eq!(upserts(1), None);
    }

    #[test]
    fn copy_from_stdin_rows_are_data_not_sql() {
        // pg_dump and psql scripts: rows follow the COPY up to a `\.` line; one holds a quote.
        let src = "CREATE TABLE d (k text, v text);\n\
                   COPY d (k, v) FROM stdin WITH DELIMITER '|';\n\
                   timeout|90 minutes\n\
                   o'brien|\\N\n\
                   \\.\n\
                   -- copy from stdin; in a comment is nothing\n\
                   SELECT 'copy x from stdin;';\n\
                   copy d from STDIN ;\n\
                   a\tb\n";
        let p = parse_sql(src);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.statements.len(), 4, "{:#?}", p.statements);
        let rows = |i: usize| p.statements[i].copy_data.map(|d| d.slice(src));
        assert_eq!(rows(1), Some("timeout|90 minutes\no'brien|\\N\n"));
        assert_eq!(rows(2), None);
        // No `\.`: the rows run to the end, as psql reads them.
        assert_eq!(rows(3), Some("a\tb\n"));
        assert_eq!(p.statements[2].text(src), "SELECT 'copy x from stdin;'");
        // Lines after the rows keep their numbers.
        assert_eq!(crate::span::LineIndex::new(src).line_col(src, p.statements[2].span.start).line, 7);
    }

    #[test]
    fn psql_meta_commands_are_named_as_such() {
        let p = parse_sql("CREATE TABLE a (id int);\n\\set ON_ERROR_STOP on\nDROP TABLE a;");
        assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
        assert!(p.errors[0].message.starts_with("psql meta-command `\\set` is not SQL"), "{:?}", p.errors);
        assert_eq!(p.errors[0].offset, 25);
    }

    #[test]
    fn syntax_error_is_located_and_other_statements_survive() {
        let src = "CREATE TABLE a (id int);\nALTER TABLEE a ADD b int;\nDROP TABLE a;";
        let p = parse_sql(src);
        assert_eq!(p.errors.len(), 1);
        assert!(p.errors[0].message.contains("TABLEE"), "{:?}", p.errors);
        assert_eq!(&src[p.errors[0].offset..p.errors[0].offset + 6], "TABLEE");
        assert_eq!(p.statements.len(), 2);
        assert_eq!(p.statements[1].text(src), "DROP TABLE a");
    }

    #[test]
    fn roles_named_and_created_are_found() {
        let roles = |src: &str| parse_sql(src).statements[0].roles();
        assert_eq!(roles("GRANT SELECT ON t TO readonly, PUBLIC, CURRENT_USER").0, vec!["readonly"]);
        assert_eq!(roles("ALTER TABLE t OWNER TO \"App Owner\"").0, vec!["App Owner"]);
        assert_eq!(roles("CREATE POLICY p ON t TO authenticated USING (true)").0, vec!["authenticated"]);
        assert_eq!(roles("SET ROLE admin").0, vec!["admin"]);
        assert_eq!(
            roles("ALTER DEFAULT PRIVILEGES FOR ROLE owner IN SCHEMA s GRANT SELECT ON TABLES TO reader").0,
            vec!["owner", "reader"]
        );
        assert_eq!(roles("CREATE ROLE app NOLOGIN").1, vec!["app"]);
        assert_eq!(roles("REVOKE ALL ON t FROM anon").0, vec!["anon"]);
    }

    #[test]
    fn insert_values_keep_their_constants() {
        let values = |src: &str| match &parse_sql(src).statements[0].kind {
            crate::StmtKind::Insert { values, .. } => values.clone(),
            k => panic!("{k:?}"),
        };
        let v = values("INSERT INTO t (a, b, c, d) VALUES (1, 'it''s', '{}'::jsonb, now()), (-2.5, NULL, true, 'x')")
            .expect("plain VALUES");
        assert_eq!(v.columns.as_deref(), Some(&["a".to_string(), "b".into(), "c".into(), "d".into()][..]));
        assert_eq!(
            v.rows,
            vec![
                vec![Some("1".into()), Some("'it''s'".into()), Some("'{}'".into()), None],
                vec![Some("-2.5".into()), Some("NULL".into()), Some("true".into()), Some("'x'".into())],
            ]
        );
        assert_eq!(values("INSERT INTO t VALUES (1)").unwrap().columns, None);
        // Rows that may not have been inserted, or not from constants: no literal rows.
        let on = |src: &str| values(src).unwrap().on_conflict;
        assert_eq!(on("INSERT INTO t (a) VALUES (1) ON CONFLICT DO NOTHING"), Some(crate::model::OnConflict::Nothing));
        assert_eq!(
            on("INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = 2"),
            Some(crate::model::OnConflict::Update)
        );
        assert_eq!(on("INSERT INTO t (a) VALUES (1)"), None);
        assert!(values("WITH x AS (SELECT 1) INSERT INTO t (a) VALUES (1)").is_none());
        assert!(values("INSERT INTO t (a) SELECT 1").is_none());
    }

    #[test]
    fn unterminated_string_is_an_error_not_a_panic() {
        let p = parse_sql("SELECT 'abc");
        assert_eq!(p.errors.len(), 1);
        let p = parse_sql("SELECT $$abc");
        assert_eq!(p.errors.len(), 1);
        let p = parse_sql("SELECT 1\0");
        assert_eq!(p.errors.len(), 1);
    }

    #[test]
    fn error_offset_counts_characters_not_bytes() {
        let src = "SELECT 'é'; SELEC 1;";
        let p = parse_sql(src);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(&src[p.errors[0].offset..p.errors[0].offset + 5], "SELEC");
    }
}
