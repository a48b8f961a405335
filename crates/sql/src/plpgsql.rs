//! SQL inside PL/pgSQL: the statements a `DO` block runs, found with PostgreSQL's own PL/pgSQL
//! parser (through pg_query), so lint reads them like top-level SQL. Two kinds: static SQL
//! (`ALTER TABLE …;` in the block, in any branch or loop) and `EXECUTE` of a constant string
//! (`EXECUTE 'ALTER TABLE …'`). Each is located in the file (the parser gives the line in the
//! block; the text is found from there), so a finding points at the statement inside the block.
//! Dynamic SQL built at run time cannot be read before it runs, and is left alone.

use serde_json::Value;

use crate::model::{Statement, StmtKind};

/// A piece of SQL a block runs: its text as the parser gives it, the line in the block, and
/// whether it is the contents of a string literal (`EXECUTE '…'`).
struct Inner {
    query: String,
    line: usize,
    literal: bool,
}

fn collect(v: &Value, out: &mut Vec<Inner>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let line = child.get("lineno").and_then(Value::as_u64).unwrap_or(0) as usize;
                let query = |field: &str| {
                    child
                        .get(field)
                        .and_then(|e| e.get("PLpgSQL_expr"))
                        .and_then(|e| e.get("query"))
                        .and_then(Value::as_str)
                };
                match k.as_str() {
                    "PLpgSQL_stmt_execsql" => {
                        if let Some(q) = query("sqlstmt") {
                            out.push(Inner { query: q.to_string(), line, literal: false });
                        }
                    }
                    "PLpgSQL_stmt_dynexecute" => {
                        if let Some(q) = query("query").and_then(constant_string) {
                            out.push(Inner { query: q, line, literal: true });
                        }
                    }
                    _ => {}
                }
                collect(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
        _ => {}
    }
}

/// The contents of `'…'` when the expression is one string literal and nothing else.
fn constant_string(expr: &str) -> Option<String> {
    let e = expr.trim();
    let inner = e.strip_prefix('\'')?.strip_suffix('\'')?;
    // A quote inside must be doubled; a lone one means the expression is more than a literal.
    let mut chars = inner.chars().peekable();
    let mut out = String::new();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return None;
        }
        out.push(c);
    }
    Some(out)
}

/// Where the body of the `DO` statement `text` starts (just past its opening quote).
fn body_start(text: &str) -> Option<usize> {
    let tokens = pg_query::scan(text).ok()?.tokens;
    let literal = tokens.iter().find(|t| t.token == pg_query::protobuf::Token::Sconst as i32)?;
    let lit = &text[literal.start as usize..literal.end as usize];
    if let Some(rest) = lit.strip_prefix('$') {
        let close = rest.find('$')? + 2;
        Some(literal.start as usize + close)
    } else {
        Some(literal.start as usize + lit.find('\'')? + 1)
    }
}

/// The statements the `DO` block `stmt` runs that can be read before it runs, as statements of
/// the file (spans in the file), in the order they appear.
pub fn nested(stmt: &Statement) -> Vec<Statement> {
    if !matches!(stmt.kind, StmtKind::Do) {
        return vec![];
    }
    let text = &stmt.parsed_text[stmt.span.start..stmt.span.end];
    let Ok(tree) = pg_query::parse_plpgsql(&format!("{text};")) else { return vec![] };
    let Some(body) = body_start(text) else { return vec![] };
    let mut inner = Vec::new();
    collect(&tree, &mut inner);
    // In the order they are written (the tree's branches are not).
    inner.sort_by_key(|i| i.line);
    let mut out = Vec::new();
    let mut search_from = body;
    for i in inner {
        // Line `i.line` of the block: the body's first line is line 1.
        let line_start = match i.line {
            0 | 1 => body,
            n => text[body..].match_indices('\n').nth(n - 2).map_or(body, |(at, _)| body + at + 1),
        };
        // Past the previous one when it was on the same line.
        let from = if search_from > line_start && !text[line_start..search_from].contains('\n') {
            search_from
        } else {
            line_start
        };
        // In a literal the file has the text with its quotes doubled.
        let written = if i.literal { i.query.replace('\'', "''") } else { i.query.clone() };
        let Some(at) = text[from..].find(&written).map(|p| from + p) else { continue };
        search_from = at + written.len();
        if i.literal && written != i.query {
            // The file's text is not the SQL itself: it cannot be a statement of the file.
            continue;
        }
        let start = stmt.span.start + at;
        out.extend(crate::parse::region_statements(&stmt.parsed_text, start, start + written.len()));
    }
    out
}

/// The statements a PL/pgSQL function runs that can be read before it runs (static SQL and
/// `EXECUTE` of a constant string, every branch), from its `CREATE FUNCTION` text. Empty for a
/// function in another language, or one whose body does not parse.
pub fn function_statements(create_function: &str) -> Vec<Statement> {
    let text = create_function.trim_end().trim_end_matches(';');
    let tree = pg_query::parse_plpgsql(&format!("{text};")).ok().or_else(|| {
        // pg_query cannot print the tree of a trigger function: read its body again as the body
        // of a block inside a function returning record, with NEW and OLD declared.
        let body = function_body(text)?;
        let wrapped = format!(
            "CREATE FUNCTION migsafe_body() RETURNS record LANGUAGE plpgsql AS $migsafe_body$\n\
             DECLARE new record; old record;\nBEGIN\n{};\nEND\n$migsafe_body$;",
            body.trim().trim_end_matches(';')
        );
        pg_query::parse_plpgsql(&wrapped).ok()
    });
    let Some(tree) = tree else { return vec![] };
    let mut inner = Vec::new();
    collect(&tree, &mut inner);
    inner.iter().flat_map(|i| crate::parse::parse_sql(&i.query).statements).collect()
}

/// The body (`AS '…'`) of a `CREATE FUNCTION`.
fn function_body(create_function: &str) -> Option<String> {
    use pg_query::NodeEnum;
    let parsed = pg_query::parse(create_function, 0).ok()?;
    let stmt = parsed.protobuf.stmts.first()?.stmt.as_ref()?.node.as_ref()?;
    let NodeEnum::CreateFunctionStmt(f) = stmt else { return None };
    f.options.iter().find_map(|o| match o.node.as_ref()? {
        NodeEnum::DefElem(d) if d.defname == "as" => match d.arg.as_deref()?.node.as_ref()? {
            NodeEnum::List(l) => match l.items.first()?.node.as_ref()? {
                NodeEnum::String(s) => Some(s.sval.clone()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_inside_a_do_block_are_found_where_they_are_written() {
        let sql = "CREATE TABLE users (id int);\n\
                   DO $$\n\
                   DECLARE n int;\n\
                   BEGIN\n\
                   \x20 IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'x') THEN\n\
                   \x20   ALTER TABLE users ADD COLUMN email text NOT NULL;\n\
                   \x20 END IF;\n\
                   \x20 CREATE INDEX users_email ON users (email);\n\
                   \x20 EXECUTE 'ALTER TABLE users ALTER COLUMN id TYPE bigint';\n\
                   \x20 EXECUTE format('DROP TABLE %I', 'old');\n\
                   \x20 EXECUTE 'SELECT ''it''''s''';\n\
                   END $$;";
        let parsed = crate::parse::parse_sql(sql);
        let found = nested(&parsed.statements[1]);
        let texts: Vec<&str> = found.iter().map(|s| &sql[s.span.start..s.span.end]).collect();
        assert_eq!(
            texts,
            [
                "ALTER TABLE users ADD COLUMN email text NOT NULL",
                "CREATE INDEX users_email ON users (email)",
                "ALTER TABLE users ALTER COLUMN id TYPE bigint",
            ]
        );
        assert!(matches!(found[0].kind, StmtKind::AlterTable { .. }), "{:?}", found[0].kind);
    }

    #[test]
    fn a_block_quoted_another_way_or_starting_on_the_next_line_is_read_too() {
        let sql = "DO\n$body$\nBEGIN\n  DROP TABLE old_things;\nEND\n$body$;\nDO 'BEGIN CREATE INDEX i ON t (a); END';";
        let parsed = crate::parse::parse_sql(sql);
        let a = nested(&parsed.statements[0]);
        let b = nested(&parsed.statements[1]);
        assert_eq!(a.iter().map(|s| &sql[s.span.start..s.span.end]).collect::<Vec<_>>(), ["DROP TABLE old_things"]);
        assert_eq!(b.iter().map(|s| &sql[s.span.start..s.span.end]).collect::<Vec<_>>(), ["CREATE INDEX i ON t (a)"]);
    }
}

#[cfg(test)]
mod lint_tests {
    use crate::lint::testing::lint;

    #[test]
    fn ddl_in_a_do_block_is_linted_at_its_own_line() {
        let sql = "DO $$\nBEGIN\n  IF true THEN\n    CREATE INDEX users_email ON users (email);\n  END IF;\n  \
                   EXECUTE 'ALTER TABLE users ALTER COLUMN id TYPE bigint';\nEND $$;";
        let f = lint(sql);
        let at: Vec<(&str, usize, usize)> = f.iter().map(|f| (f.rule.id(), f.line, f.column)).collect();
        assert!(at.contains(&("index-not-concurrent", 4, 5)), "{at:?}");
        assert!(at.contains(&("alter-column-type", 6, 12)), "{at:?}");
    }

    #[test]
    fn a_table_a_do_block_creates_is_new_to_the_statements_after_it() {
        let f = lint("DO $$ BEGIN CREATE TABLE fresh (id int); END $$;\nCREATE INDEX fresh_id ON fresh (id);");
        assert!(f.is_empty(), "{f:?}");
    }
}

#[cfg(test)]
mod function_tests {
    use super::*;

    #[test]
    fn a_functions_statements_are_read_from_its_definition() {
        // As a migration writes it, and as pg_get_functiondef gives it back.
        for def in [
            "CREATE OR REPLACE FUNCTION refresh_user ()\n    RETURNS TRIGGER\n    LANGUAGE plpgsql\n    AS $$\nBEGIN\n    \
             REFRESH MATERIALIZED VIEW CONCURRENTLY user_mview;\n    RETURN NULL;\nEND\n$$;",
            "CREATE OR REPLACE FUNCTION public.refresh_user()\n RETURNS trigger\n LANGUAGE plpgsql\nAS $function$\nBEGIN\n    \
             REFRESH MATERIALIZED VIEW CONCURRENTLY user_mview;\n    RETURN NULL;\nEND\n$function$\n",
        ] {
            let kinds: Vec<StmtKind> = function_statements(def).into_iter().map(|s| s.kind).collect();
            assert!(
                matches!(kinds.as_slice(), [StmtKind::RefreshMatView { concurrently: true, .. }]),
                "{def}: {kinds:?}"
            );
        }
        assert!(function_statements("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'").is_empty());
        // A trigger function that assigns to NEW, with a DECLARE section of its own.
        let set = "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ DECLARE n int; BEGIN \
                   NEW.updated := now(); IF TG_OP = 'DELETE' THEN DELETE FROM audit WHERE id = OLD.id; END IF; \
                   RETURN NEW; END $$;";
        let kinds: Vec<StmtKind> = function_statements(set).into_iter().map(|s| s.kind).collect();
        assert!(matches!(kinds.as_slice(), [StmtKind::Delete { .. }]), "{kinds:?}");
    }
}
