//! Parsing a migration file with PostgreSQL's own parser (pg_query). Parsing never fails:
//! it returns the statements it could read plus a list of syntax errors with byte offsets.

use pg_query::protobuf::{self, Token};
use serde::Serialize;
use std::sync::Arc;

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
    parse_in_chunks(source, CHUNK)
}

/// [`parse_sql`], reading at least `chunk` bytes at a time.
fn parse_in_chunks(source: &str, chunk: usize) -> ParsedSql {
    let mut out = ParsedSql::default();
    if let Some(nul) = source.find('\0') {
        out.errors.push(SyntaxError { message: "file contains a NUL byte".into(), offset: nul });
        return out;
    }
    // Rows inline after `COPY … FROM STDIN;` are data, not SQL: parse the text with them blanked
    // out (offsets kept), then give each such COPY its rows.
    let (masked, copy_blocks) = mask_copy_data(source);
    let text: Arc<str> = Arc::from(masked);
    let source = &*text;
    // The file is read in chunks that end at a top-level `;`, each scanned and parsed on its
    // own: time and memory stay proportional to the text (a whole-file parse tree of a
    // 200,000-statement file takes gigabytes), and only one chunk's tree exists at a time.
    // Room for a statement per `;` (some are in strings or bodies), but never more than one
    // per 20 bytes: growing the list by doubling would hold it up to three times over.
    out.statements.reserve((source.bytes().filter(|&b| b == b';').count() + 1).min(source.len() / 20 + 1));
    let mut at = 0;
    while at < source.len() {
        let Some((end, tokens)) = next_chunk(source, at, chunk) else {
            let (message, offset) = error_position(&source[at..]);
            out.errors.push(SyntaxError { message, offset: at + offset });
            break;
        };
        let chunk = &source[at..end];
        out.comments.extend(comments(chunk, &tokens, at));
        match pg_query::parse(chunk, 0) {
            Ok(result) => push_statements(&mut out, &text, &tokens, (at, end), &result.protobuf),
            Err(_) => parse_piecewise(&mut out, &text, &tokens, at, end),
        }
        at = end;
    }
    for (i, s) in out.statements.iter_mut().enumerate() {
        s.index = i;
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

/// A chunk did not parse: parse it statement by statement so the good ones are still
/// linted, and locate each error exactly. `tokens` are the chunk's, relative to `base`.
fn parse_piecewise(out: &mut ParsedSql, text: &Arc<str>, tokens: &[protobuf::ScanToken], base: usize, end: usize) {
    let chunk = &text[base..end];
    for (start, stop) in split_on_semicolons(chunk, tokens) {
        let piece = &chunk[start..stop];
        if piece.trim().is_empty() {
            continue;
        }
        match pg_query::parse(piece, 0) {
            Ok(result) => {
                let lo = tokens.partition_point(|t| (t.start as usize) < start);
                let hi = tokens.partition_point(|t| (t.end as usize) <= stop);
                let piece_tokens: Vec<_> = tokens[lo..hi.max(lo)]
                    .iter()
                    .map(|t| protobuf::ScanToken { start: t.start - start as i32, end: t.end - start as i32, ..*t })
                    .collect();
                push_statements(out, text, &piece_tokens, (base + start, base + stop), &result.protobuf);
            }
            Err(_) => {
                let (message, offset) = error_position(piece);
                out.errors.push(SyntaxError { message, offset: base + start + offset });
            }
        }
    }
}

/// Smallest chunk read at once, in bytes (a chunk grows to hold a longer statement). Small
/// enough that one chunk's parse tree stays a few megabytes; large enough that the calls into
/// the parser cost nothing next to the parsing.
const CHUNK: usize = 32 * 1024;

/// The end of the chunk that starts at `from` (just after a top-level `;`, or the end of the
/// text) and its tokens, relative to `from`. None when the rest of the text does not scan (an
/// unterminated string or comment).
///
/// A window of the text is scanned and cut after its last top-level `;`. A window that ends
/// inside a string, quoted identifier, dollar-quoted body or comment does not scan and is
/// doubled; a window that ends inside another token only cuts tokens after that `;`. Since
/// every chunk starts where a statement starts, its tokens are the whole text's.
fn next_chunk(source: &str, from: usize, chunk: usize) -> Option<(usize, Vec<protobuf::ScanToken>)> {
    let mut window = chunk;
    loop {
        let mut end = (from + window).min(source.len());
        while !source.is_char_boundary(end) {
            end -= 1;
        }
        let scanned = pg_query::scan(&source[from..end]);
        if end == source.len() {
            return scanned.ok().map(|s| (end, s.tokens));
        }
        if let Ok(scan) = scanned {
            let mut tokens = scan.tokens;
            if let Some(i) = statement_ends(&tokens).last() {
                let stop = tokens[i].end as usize;
                tokens.truncate(i + 1);
                return Some((from + stop, tokens));
            }
        }
        window *= 2;
    }
}

/// Split at the `;` tokens that end statements (the scanner already knows strings, comments,
/// `$$` bodies).
fn split_on_semicolons(source: &str, tokens: &[protobuf::ScanToken]) -> Vec<(usize, usize)> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for i in statement_ends(tokens) {
        pieces.push((start, tokens[i].start as usize));
        start = tokens[i].end as usize;
    }
    pieces.push((start, source.len()));
    pieces
}

/// The indexes of the `;` tokens that end a statement: not inside parentheses (a rule's
/// `DO (…; …)`) nor inside a `BEGIN ATOMIC … END` body (where `CASE … END` nests).
fn statement_ends(tokens: &[protobuf::ScanToken]) -> impl Iterator<Item = usize> + '_ {
    let (mut parens, mut atomic, mut cases, mut after_begin) = (0i32, false, 0u32, false);
    tokens.iter().enumerate().filter_map(move |(i, t)| {
        if is_comment(t) {
            return None;
        }
        let is = |k: Token| t.token == k as i32;
        let was_begin = std::mem::replace(&mut after_begin, is(Token::BeginP));
        if is(Token::Ascii40) {
            parens += 1;
        } else if is(Token::Ascii41) {
            parens -= 1;
        } else if is(Token::Atomic) && was_begin {
            atomic = true;
        } else if atomic && is(Token::Case) {
            cases += 1;
        } else if atomic && is(Token::EndP) {
            if cases > 0 {
                cases -= 1;
            } else {
                atomic = false;
            }
        } else if is(Token::Ascii59) && parens <= 0 && !atomic {
            parens = 0;
            return Some(i);
        }
        None
    })
}

/// The statements of one parsed piece of the text, the bytes `base..end`; `tokens` are the
/// piece's, relative to `base`.
/// The statements of the region `at..end` of `text` (a piece of SQL inside a statement, such
/// as one a `DO` block runs), as statements of the file: spans in the file's offsets.
pub(crate) fn region_statements(text: &Arc<str>, at: usize, end: usize) -> Vec<Statement> {
    let region = &text[at..end];
    let (Ok(scan), Ok(tree)) = (pg_query::scan(region), pg_query::parse(region, 0)) else {
        return vec![];
    };
    let mut out = ParsedSql::default();
    push_statements(&mut out, text, &scan.tokens, (at, end), &tree.protobuf);
    out.statements
}

fn push_statements(
    out: &mut ParsedSql,
    text: &Arc<str>,
    tokens: &[protobuf::ScanToken],
    (base, stop): (usize, usize),
    tree: &protobuf::ParseResult,
) {
    let source = &text[base..stop];
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
            facts: crate::tree::TreeFacts::of(node),
            parsed_text: Arc::clone(text),
            copy_data: None,
            origin: None,
        });
    }
}

fn is_comment(t: &protobuf::ScanToken) -> bool {
    t.token == Token::SqlComment as i32 || t.token == Token::CComment as i32
}

/// The comments of a piece of text that starts at byte `base` (`tokens` relative to it).
fn comments<'a>(source: &'a str, tokens: &'a [protobuf::ScanToken], base: usize) -> impl Iterator<Item = Comment> + 'a {
    tokens.iter().filter(|t| is_comment(t)).map(move |t| {
        let local = Span::new(t.start as usize, t.end as usize);
        let raw = local.slice(source);
        let span = Span::new(base + local.start, base + local.end);
        let text = if let Some(rest) = raw.strip_prefix("--") {
            rest
        } else {
            raw.trim_start_matches("/*").trim_end_matches("*/")
        };
        Comment { span, text: text.trim().to_string() }
    })
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

    /// A file of many chunks, with statements whose `;`s are not statement ends (in strings,
    /// dollar-quoted bodies, BEGIN ATOMIC bodies, a rule's parentheses, comments) at every
    /// position, is cut into the statements PostgreSQL's own splitter finds in the whole file.
    #[test]
    fn chunked_parse_finds_the_statements_of_the_whole_file() {
        let shapes = [
            "INSERT INTO t (a, b) VALUES (1, 'x; y')",
            "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$ BEGIN PERFORM 1; RETURN 2; END $fn$",
            "CREATE FUNCTION g(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN x > 0 THEN 1 ELSE 2 END; SELECT 3; END",
            "CREATE RULE r AS ON INSERT TO t DO ALSO (UPDATE u SET n = n + 1; DELETE FROM v)",
            "/* a comment; with a semicolon */ SELECT 1 -- and another; here\n",
            "COMMENT ON TABLE t IS 'it''s; fine'",
        ];
        let mut src = String::new();
        let mut i = 0;
        while src.len() < 5 * CHUNK {
            src.push_str(shapes[i % shapes.len()]);
            src.push_str(if i % 7 == 0 { ";\n\n" } else { "; " });
            i += 1;
        }
        let p = parse_sql(&src);
        assert!(p.errors.is_empty(), "{:?}", p.errors.first());
        let expected: Vec<String> = pg_query::split_with_parser(&src)
            .unwrap()
            .into_iter()
            .map(|s| s.trim().trim_start_matches("/* a comment; with a semicolon */").trim().to_string())
            .collect();
        let got: Vec<&str> = p.statements.iter().map(|s| s.text(&src)).collect();
        assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(
                g.trim_end_matches(" -- and another; here"),
                e.trim_end_matches("-- and another; here").trim_end()
            );
        }
        assert_eq!(p.comments.len(), 2 * (i / shapes.len()) + usize::from(i % shapes.len() > 4));
        assert!(p.statements.iter().enumerate().all(|(k, s)| s.index == k));
    }

    /// The first window ends at every position inside statements whose `;`s do not end them.
    #[test]
    fn a_window_ending_inside_a_statement_never_splits_it() {
        let tricky = [
            "CREATE FUNCTION g(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN x > 0 THEN 1 ELSE 2 END; SELECT 3; END",
            "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$ BEGIN PERFORM 1; RETURN 2; END $fn$",
            "CREATE RULE r AS ON INSERT TO t DO ALSO (UPDATE u SET n = n + 1; DELETE FROM v)",
            "COMMENT ON TABLE t IS 'it''s; fine; really'",
            "SELECT 1 /* a; b; c */ + 2",
        ];
        const WINDOW: usize = 300;
        for stmt in tricky {
            for shift in 1..stmt.len() {
                let mut src = "SELECT 1;\n".repeat((WINDOW - shift) / 10);
                src.push_str(&" ".repeat(WINDOW - shift - src.len()));
                src.push_str(stmt);
                src.push_str(";\nSELECT 2;\n");
                let p = parse_in_chunks(&src, WINDOW);
                assert!(p.errors.is_empty(), "{stmt} at {shift}: {:?}", p.errors);
                assert_eq!(p.statements.len(), (WINDOW - shift) / 10 + 2, "{stmt} at {shift}");
                assert_eq!(p.statements[(WINDOW - shift) / 10].text(&src), stmt);
            }
        }
    }

    #[test]
    fn a_syntax_error_late_in_a_big_file_keeps_what_came_before() {
        let mut src = "SELECT 1;\n".repeat(20_000);
        let at = src.len();
        src.push_str("SELEC 2;\nSELECT 3;\n");
        let p = parse_sql(&src);
        assert_eq!(p.statements.len(), 20_001);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].offset, at);
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
        let values = |src: &str| {
            let st = &parse_sql(src).statements[0];
            match &st.kind {
                crate::StmtKind::Insert { literal_rows, .. } => {
                    let v = st.insert_values();
                    assert_eq!(*literal_rows, v.is_some());
                    v
                }
                k => panic!("{k:?}"),
            }
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
