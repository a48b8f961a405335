//! The rows of a `COPY … FROM STDIN` written inline after it (psql scripts, pg_dump output),
//! read back as SQL constants the way PostgreSQL's COPY reads them, so the rollback can tell
//! exactly which rows the statement added (as it does for `INSERT … VALUES`).

use pg_query::NodeEnum;

use crate::convert::{has_option, string_of};
use crate::model::{InsertValues, Statement};
use crate::quote::quote_literal;

/// The rows of statement `st` (a `COPY … FROM STDIN` with inline rows) as an
/// [`InsertValues`]: the column list, and per row every field as a constant (`'text'` or
/// `NULL`). None for any other statement, binary format, or rows that do not parse.
pub fn copy_rows(st: &Statement, source: &str) -> Option<InsertValues> {
    st.copy_data?;
    let raw = st.tree()?;
    let NodeEnum::CopyStmt(c) = raw.node.as_ref()? else { return None };
    if !c.is_from || c.query.is_some() {
        return None;
    }
    let data = st.copy_data?.slice(source);
    let columns: Option<Vec<String>> =
        (!c.attlist.is_empty()).then(|| c.attlist.iter().filter_map(string_of).collect());
    let option = |name: &str| {
        c.options.iter().find_map(|o| match o.node.as_ref() {
            Some(NodeEnum::DefElem(d)) if d.defname == name => d.arg.as_deref().and_then(string_of),
            _ => None,
        })
    };
    let format = option("format").unwrap_or_else(|| "text".into()).to_ascii_lowercase();
    let rows = match format.as_str() {
        "text" => {
            let delimiter = option("delimiter").unwrap_or_else(|| "\t".into());
            let null = option("null").unwrap_or_else(|| "\\N".into());
            text_rows(data, single_char(&delimiter)?, &null)?
        }
        "csv" => {
            let delimiter = option("delimiter").unwrap_or_else(|| ",".into());
            let quote = single_char(&option("quote").unwrap_or_else(|| "\"".into()))?;
            let escape = option("escape").map(|e| single_char(&e)).unwrap_or(Some(quote))?;
            let null = option("null").unwrap_or_default();
            let mut rows = csv_rows(data, single_char(&delimiter)?, quote, escape, &null)?;
            if has_option(&c.options, "header") && !rows.is_empty() {
                rows.remove(0);
            }
            rows
        }
        _ => return None,
    };
    let rows = rows
        .into_iter()
        .map(|r| r.into_iter().map(|f| Some(f.map_or_else(|| "NULL".to_string(), |v| quote_literal(&v)))).collect())
        .collect();
    Some(InsertValues { columns, rows, on_conflict: None })
}

fn single_char(s: &str) -> Option<char> {
    let mut it = s.chars();
    let c = it.next()?;
    it.next().is_none().then_some(c)
}

/// Text format: one row per line, fields split at the delimiter, backslash escapes.
fn text_rows(data: &str, delimiter: char, null: &str) -> Option<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::new();
    for line in data.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        // Split at unescaped delimiters, keeping the raw text to compare with the NULL string.
        let mut raw_fields = vec![String::new()];
        let mut chars = line.chars();
        while let Some(ch) = chars.next() {
            if ch == '\\' {
                raw_fields.last_mut()?.push(ch);
                if let Some(n) = chars.next() {
                    raw_fields.last_mut()?.push(n);
                }
            } else if ch == delimiter {
                raw_fields.push(String::new());
            } else {
                raw_fields.last_mut()?.push(ch);
            }
        }
        rows.push(raw_fields.into_iter().map(|f| if f == null { None } else { Some(unescape(&f)) }).collect());
    }
    Some(rows)
}

/// COPY's text-format escapes: `\b \f \n \r \t \v`, octal `\NNN`, hex `\xHH`, and `\c` for
/// any other character.
fn unescape(f: &str) -> String {
    let mut out = String::with_capacity(f.len());
    let chars: Vec<char> = f.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if ch != '\\' || i >= chars.len() {
            out.push(ch);
            continue;
        }
        let n = chars[i];
        i += 1;
        match n {
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '0'..='7' => {
                i -= 1;
                out.push(number(&chars, &mut i, 8, 3));
            }
            'x' if chars.get(i).is_some_and(|c| c.is_ascii_hexdigit()) => out.push(number(&chars, &mut i, 16, 2)),
            other => out.push(other),
        }
    }
    out
}

/// Up to `max` digits in `radix` from `chars[*i]` on (at least one is there), as a character.
fn number(chars: &[char], i: &mut usize, radix: u32, max: usize) -> char {
    let mut v = 0;
    for _ in 0..max {
        match chars.get(*i).and_then(|c| c.to_digit(radix)) {
            Some(d) => {
                v = v * radix + d;
                *i += 1;
            }
            None => break,
        }
    }
    char::from_u32(v).unwrap_or('\u{fffd}')
}

/// CSV format: quoted fields may hold delimiters, quotes (escaped) and newlines; an unquoted
/// field equal to the NULL string is NULL.
fn csv_rows(data: &str, delimiter: char, quote: char, escape: char, null: &str) -> Option<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::new();
    let mut row: Vec<Option<String>> = Vec::new();
    let mut field = String::new();
    let (mut was_quoted, mut in_quotes) = (false, false);
    let mut chars = data.chars().peekable();
    let finish = |field: &mut String, was_quoted: bool, row: &mut Vec<Option<String>>| {
        let f = std::mem::take(field);
        row.push(if !was_quoted && f == null { None } else { Some(f) });
    };
    while let Some(ch) = chars.next() {
        if in_quotes {
            if ch == escape && escape != quote && chars.peek() == Some(&quote) {
                field.push(chars.next()?);
            } else if ch == quote {
                if escape == quote && chars.peek() == Some(&quote) {
                    field.push(chars.next()?);
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(ch);
            }
            continue;
        }
        match ch {
            c if c == quote => {
                in_quotes = true;
                was_quoted = true;
            }
            c if c == delimiter => {
                finish(&mut field, was_quoted, &mut row);
                was_quoted = false;
            }
            '\r' => {}
            '\n' => {
                if !(row.is_empty() && field.is_empty() && !was_quoted) {
                    finish(&mut field, was_quoted, &mut row);
                    rows.push(std::mem::take(&mut row));
                }
                was_quoted = false;
            }
            c => field.push(c),
        }
    }
    if in_quotes {
        return None;
    }
    if !(row.is_empty() && field.is_empty() && !was_quoted) {
        finish(&mut field, was_quoted, &mut row);
        rows.push(row);
    }
    Some(rows)
}

#[cfg(test)]
mod tests {
    use crate::parse_sql;

    fn rows(src: &str) -> (Option<Vec<String>>, Vec<Vec<Option<String>>>) {
        let p = parse_sql(src);
        let v = p.statements.iter().find_map(|s| s.copy_rows(src)).expect("rows");
        (v.columns, v.rows)
    }

    fn c(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn text_rows_follow_copys_escapes_and_null() {
        let (cols, r) = rows("COPY kv (k, v) FROM stdin;\na\\tb\t1\nc\\\\d\t\\N\ne\\101\t\\x41z\n\\.\n");
        assert_eq!(cols, Some(vec!["k".into(), "v".into()]));
        assert_eq!(r, vec![vec![c("'a\tb'"), c("'1'")], vec![c("E'c\\\\d'"), c("NULL")], vec![c("'eA'"), c("'Az'")]]);
        let (cols, r) = rows("COPY defaults FROM stdin WITH DELIMITER '|';\ntimeout|90 minutes\nclosedto|\\N\n\\.\n");
        assert_eq!(cols, None);
        assert_eq!(r, vec![vec![c("'timeout'"), c("'90 minutes'")], vec![c("'closedto'"), c("NULL")]]);
    }

    #[test]
    fn csv_rows_handle_quotes_newlines_and_header() {
        let (_, r) =
            rows("COPY t FROM stdin WITH (FORMAT csv, HEADER true);\nid,name\n1,\"a, \"\"b\"\"\nc\"\n2,\n\\.\n");
        assert_eq!(r, vec![vec![c("'1'"), c("'a, \"b\"\nc'")], vec![c("'2'"), c("NULL")]]);
    }

    #[test]
    fn other_statements_and_binary_have_no_rows() {
        let src = "COPY t FROM stdin WITH (FORMAT binary);\nxx\n\\.\nINSERT INTO t VALUES (1);";
        assert!(parse_sql(src).statements.iter().all(|s| s.copy_rows(src).is_none()));
    }
}
