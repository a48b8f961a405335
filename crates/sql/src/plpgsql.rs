//! SQL inside PL/pgSQL: the statements a `DO` block runs, found with PostgreSQL's own PL/pgSQL
//! parser (through pg_query), so lint reads them like top-level SQL. Two kinds: static SQL
//! (`ALTER TABLE …;` in the block, in any branch or loop) and `EXECUTE` of a constant string
//! (`EXECUTE 'ALTER TABLE …'`). Each is located in the file (the parser gives the line in the
//! block; the text is found from there), so a finding points at the statement inside the block.
//! `EXECUTE` of a string computed from constants is read too: `format()` with constant
//! arguments, `||`, `quote_ident` and the like, and a function's parameters bound to the
//! constant arguments of a call (`SELECT diesel_manage_updated_at('users')`). Such a statement
//! is not text of the file: it is linted as the text it evaluates to, and its findings point at
//! the `EXECUTE` expression. Dynamic SQL built from anything else at run time cannot be read
//! before it runs, and is left alone.

use std::collections::HashMap;

use pg_query::NodeEnum;
use serde_json::Value;

use crate::model::{Statement, StmtKind};
use crate::span::Span;

/// A piece of SQL a block runs: its text as the parser gives it, the line in the block, and
/// what it is: static SQL, the contents of a string literal (`EXECUTE '…'`), or the text an
/// `EXECUTE` expression evaluates to (the expression being `query`).
struct Inner {
    query: String,
    line: usize,
    literal: bool,
    computed: Option<String>,
}

/// A value as SQL computes it: its text, or NULL.
pub type Datum = Option<String>;

/// What the names in an expression stand for: a function's parameters (by lower-case name and
/// as `$n`) bound to the constants a call passes.
#[derive(Default)]
pub struct Bindings(HashMap<String, Datum>);

fn collect(v: &Value, bound: &Bindings, out: &mut Vec<Inner>) {
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
                    "PLpgSQL_stmt_execsql" | "PLpgSQL_stmt_perform" => {
                        let field = if k == "PLpgSQL_stmt_perform" { "expr" } else { "sqlstmt" };
                        if let Some(q) = query(field) {
                            out.push(Inner { query: q.to_string(), line, literal: false, computed: None });
                        }
                    }
                    "PLpgSQL_stmt_dynexecute" => {
                        let q = query("query");
                        if let Some(text) = q.and_then(constant_string) {
                            out.push(Inner { query: text, line, literal: true, computed: None });
                        } else if let Some((q, Some(text))) = q.and_then(|q| Some((q, evaluate(q, bound)?))) {
                            out.push(Inner { query: q.to_string(), line, literal: false, computed: Some(text) });
                        }
                    }
                    _ => {}
                }
                collect(child, bound, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect(i, bound, out)),
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

/// What the PL/pgSQL expression `expr` evaluates to before anything runs: None when it is not
/// made of constants and `bound` names only (a column, a variable, a function other than the
/// string functions below). `Some(None)` is NULL.
pub fn evaluate(expr: &str, bound: &Bindings) -> Option<Datum> {
    let parsed = pg_query::parse(&format!("SELECT {expr}"), 0).ok()?;
    let stmt = parsed.protobuf.stmts.first()?.stmt.as_ref()?.node.as_ref()?;
    let NodeEnum::SelectStmt(select) = stmt else { return None };
    let [target] = select.target_list.as_slice() else { return None };
    let Some(NodeEnum::ResTarget(t)) = target.node.as_ref() else { return None };
    eval_node(t.val.as_deref()?.node.as_ref()?, bound)
}

pub(crate) fn eval_node(n: &NodeEnum, bound: &Bindings) -> Option<Datum> {
    use pg_query::protobuf::a_const::Val;
    let arg = |node: &pg_query::protobuf::Node| eval_node(node.node.as_ref()?, bound);
    match n {
        NodeEnum::AConst(c) if c.isnull => Some(None),
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            Val::Sval(s) => Some(Some(s.sval.clone())),
            Val::Ival(i) => Some(Some(i.ival.to_string())),
            Val::Fval(f) => Some(Some(f.fval.clone())),
            Val::Boolval(b) => Some(Some(if b.boolval { "true" } else { "false" }.into())),
            Val::Bsval(_) => None,
        },
        // Casts whose text is the value's own: to a string type, or a name of a relation.
        NodeEnum::TypeCast(c) => {
            let ty = c.type_name.as_ref()?;
            let name = ty.names.last().and_then(|n| match n.node.as_ref()? {
                NodeEnum::String(s) => Some(s.sval.as_str()),
                _ => None,
            })?;
            let keeps_text = matches!(name, "text" | "varchar" | "name" | "regclass") && ty.typmods.is_empty();
            if !keeps_text || !ty.array_bounds.is_empty() {
                return None;
            }
            arg(c.arg.as_deref()?)
        }
        NodeEnum::AExpr(e) if e.kind() == pg_query::protobuf::AExprKind::AexprOp => {
            let [op] = e.name.as_slice() else { return None };
            match op.node.as_ref()? {
                NodeEnum::String(s) if s.sval == "||" => {}
                _ => return None,
            }
            let (l, r) = (arg(e.lexpr.as_deref()?)?, arg(e.rexpr.as_deref()?)?);
            Some(l.zip(r).map(|(l, r)| l + &r))
        }
        NodeEnum::ColumnRef(c) => {
            let [field] = c.fields.as_slice() else { return None };
            match field.node.as_ref()? {
                NodeEnum::String(s) => bound.0.get(&s.sval.to_lowercase()).cloned(),
                _ => None,
            }
        }
        NodeEnum::ParamRef(p) => bound.0.get(&format!("${}", p.number)).cloned(),
        NodeEnum::FuncCall(f) => {
            if f.agg_star || f.func_variadic || f.over.is_some() || !f.agg_order.is_empty() || f.agg_filter.is_some() {
                return None;
            }
            let name = match f.funcname.as_slice() {
                [n] => n,
                [schema, n] if matches!(schema.node.as_ref(), Some(NodeEnum::String(s)) if s.sval == "pg_catalog") => n,
                _ => return None,
            };
            let NodeEnum::String(name) = name.node.as_ref()? else { return None };
            let args: Vec<Datum> = f.args.iter().map(arg).collect::<Option<_>>()?;
            let one = || match args.as_slice() {
                [a] => Some(a.clone()),
                _ => None,
            };
            match name.sval.as_str() {
                "format" => match args.split_first()? {
                    (None, _) => Some(None),
                    (Some(fmt), rest) => format(fmt, rest).map(Some),
                },
                "quote_ident" => Some(one()?.map(|v| crate::quote::quote_ident(&v))),
                "quote_literal" => Some(one()?.map(|v| crate::quote::quote_literal(&v))),
                "quote_nullable" => {
                    Some(Some(one()?.map_or_else(|| "NULL".to_string(), |v| crate::quote::quote_literal(&v))))
                }
                "concat" => Some(Some(args.iter().flatten().cloned().collect())),
                "lower" => Some(one()?.map(|v| v.to_lowercase())),
                "upper" => Some(one()?.map(|v| v.to_uppercase())),
                _ => None,
            }
        }
        _ => None,
    }
}

/// PostgreSQL's `format(fmt, args…)`: `%s`, `%I`, `%L` and `%%`, with positions (`%2$s`),
/// the `-` flag and a width. None where PostgreSQL would raise an error (too few arguments,
/// `%I` of NULL, an unknown conversion) or the width comes from an argument (`*`).
pub fn format(fmt: &str, args: &[Datum]) -> Option<String> {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    let mut next = 0usize;
    let digits = |chars: &mut std::iter::Peekable<std::str::Chars>| {
        let mut d = String::new();
        while let Some(c) = chars.peek().filter(|c| c.is_ascii_digit()) {
            d.push(*c);
            chars.next();
        }
        d
    };
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let mut width = digits(&mut chars);
        if !width.is_empty() && chars.peek() == Some(&'$') {
            chars.next();
            let position: usize = width.parse().ok()?;
            next = position.checked_sub(1)?;
            width = String::new();
        }
        let left = chars.peek() == Some(&'-');
        if left {
            chars.next();
        }
        if chars.peek() == Some(&'*') {
            return None;
        }
        if width.is_empty() {
            width = digits(&mut chars);
        }
        let value = args.get(next)?;
        next += 1;
        let text = match chars.next()? {
            's' => value.clone().unwrap_or_default(),
            'I' => crate::quote::quote_ident(value.as_deref()?),
            'L' => value.as_deref().map_or_else(|| "NULL".to_string(), crate::quote::quote_literal),
            _ => return None,
        };
        let width: usize = if width.is_empty() { 0 } else { width.parse().ok()? };
        let pad = " ".repeat(width.saturating_sub(text.chars().count()));
        if left {
            out.push_str(&text);
            out.push_str(&pad);
        } else {
            out.push_str(&pad);
            out.push_str(&text);
        }
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
/// the file (spans in the file), in the order they appear. One an `EXECUTE` computes has its
/// own text, and its `origin` is the expression in the file.
pub fn nested(stmt: &Statement) -> Vec<Statement> {
    if !matches!(stmt.kind, StmtKind::Do) {
        return vec![];
    }
    let text = &stmt.parsed_text[stmt.span.start..stmt.span.end];
    let Ok(tree) = pg_query::parse_plpgsql(&format!("{text};")) else { return vec![] };
    let Some(body) = body_start(text) else { return vec![] };
    let mut inner = Vec::new();
    collect(&tree, &Bindings::default(), &mut inner);
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
        // In a literal the file has the text with its quotes doubled (and so has an expression
        // in a body quoted with '…').
        let doubled = i.query.replace('\'', "''");
        let found = |w: &str| text[from..].find(w).map(|p| (from + p, w.len()));
        let Some((at, len)) = (match (&i.computed, i.literal) {
            (None, false) => found(&i.query),
            (None, true) => found(&doubled),
            (Some(_), _) => found(&i.query).or_else(|| found(&doubled)),
        }) else {
            continue;
        };
        search_from = at + len;
        let start = stmt.span.start + at;
        match &i.computed {
            Some(sql) => out.extend(computed_statements(sql, Span::new(start, start + len))),
            // The file's text is not the SQL itself: it cannot be a statement of the file.
            None if i.literal && doubled != i.query => {
                out.extend(computed_statements(&i.query, Span::new(start, start + len)))
            }
            None => out.extend(crate::parse::region_statements(&stmt.parsed_text, start, start + len)),
        }
    }
    out
}

/// The statements of `sql`, a text that is not in the file, coming from `origin` in it.
fn computed_statements(sql: &str, origin: Span) -> Vec<Statement> {
    let mut parsed = crate::parse::parse_sql(sql).statements;
    for s in &mut parsed {
        s.origin = Some(origin);
    }
    parsed
}

/// The statements a PL/pgSQL function runs that can be read before it runs (static SQL and
/// `EXECUTE` of a constant string, every branch), from its `CREATE FUNCTION` text. Empty for a
/// function in another language, or one whose body does not parse.
pub fn function_statements(create_function: &str) -> Vec<Statement> {
    function_statements_called(create_function, &[])
}

/// [`function_statements`] for a call with the constant arguments `args`: what `EXECUTE`
/// computes from the parameters is read too (`EXECUTE format('… ON %I', tbl)`).
pub fn function_statements_called(create_function: &str, args: &[Datum]) -> Vec<Statement> {
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
    let bound = if args.is_empty() { Bindings::default() } else { bind(text, args).unwrap_or_default() };
    let mut inner = Vec::new();
    collect(&tree, &bound, &mut inner);
    inner.iter().flat_map(|i| crate::parse::parse_sql(i.computed.as_deref().unwrap_or(&i.query)).statements).collect()
}

/// The parameters of the function `create_function` bound to a call's arguments `args` (by
/// position; a parameter the call leaves out takes its constant default).
fn bind(create_function: &str, args: &[Datum]) -> Option<Bindings> {
    use pg_query::protobuf::FunctionParameterMode as Mode;
    let parsed = pg_query::parse(create_function, 0).ok()?;
    let stmt = parsed.protobuf.stmts.first()?.stmt.as_ref()?.node.as_ref()?;
    let NodeEnum::CreateFunctionStmt(f) = stmt else { return None };
    let mut bound = Bindings::default();
    let inputs = f.parameters.iter().filter_map(|p| match p.node.as_ref()? {
        NodeEnum::FunctionParameter(p) if !matches!(p.mode(), Mode::FuncParamOut | Mode::FuncParamTable) => Some(p),
        _ => None,
    });
    for (n, p) in inputs.enumerate() {
        let value = match args.get(n) {
            Some(v) => Some(v.clone()),
            None => p.defexpr.as_deref().and_then(|d| eval_node(d.node.as_ref()?, &Bindings::default())),
        };
        let Some(value) = value else { continue };
        if !p.name.is_empty() {
            bound.0.insert(p.name.to_lowercase(), value.clone());
        }
        bound.0.insert(format!("${}", n + 1), value);
    }
    Some(bound)
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
        // Where each is in the file, and the SQL it is.
        let at: Vec<&str> = found.iter().map(|s| s.file_span().slice(sql)).collect();
        let texts: Vec<&str> = found.iter().map(|s| s.text(s.own_text())).collect();
        assert_eq!(
            at,
            [
                "ALTER TABLE users ADD COLUMN email text NOT NULL",
                "CREATE INDEX users_email ON users (email)",
                "ALTER TABLE users ALTER COLUMN id TYPE bigint",
                "format('DROP TABLE %I', 'old')",
                "SELECT ''it''''s''",
            ]
        );
        assert_eq!(texts[3..], ["DROP TABLE old", "SELECT 'it''s'"]);
        assert!(found[..3].iter().all(|s| s.origin.is_none()) && found[3..].iter().all(|s| s.origin.is_some()));
        assert!(matches!(found[0].kind, StmtKind::AlterTable { .. }), "{:?}", found[0].kind);
    }

    #[test]
    fn format_does_what_postgresql_s_format_does() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            format("ALTER TABLE %I ADD %s", &[s("Users"), s("x int")]).as_deref(),
            Some("ALTER TABLE \"Users\" ADD x int")
        );
        assert_eq!(format("%L, %L, %s|", &[s("it's"), None, None]).as_deref(), Some("'it''s', NULL, |"));
        // After a position, the next argument is the one after it.
        assert_eq!(format("%2$s %1$s %s", &[s("a"), s("b")]).as_deref(), Some("b a b"));
        assert_eq!(format("%3$s", &[s("a"), s("b")]), None, "too few arguments");
        assert_eq!(format("[%5s|%-5s] 100%%", &[s("ab"), s("cd")]).as_deref(), Some("[   ab|cd   ] 100%"));
        assert_eq!(format("%I", &[None]), None, "%I of NULL is an error");
        assert_eq!(format("%x", &[s("a")]), None);
        assert_eq!(format("%*s", &[s("3"), s("a")]), None);
    }

    #[test]
    fn expressions_of_constants_and_bound_parameters_are_evaluated() {
        let mut bound = Bindings::default();
        bound.0.insert("_tbl".into(), Some("splits".into()));
        bound.0.insert("$1".into(), Some("splits".into()));
        let e = |x: &str| evaluate(x, &bound);
        assert_eq!(e("format('CREATE TRIGGER t ON %s', _tbl)"), Some(Some("CREATE TRIGGER t ON splits".into())));
        assert_eq!(e("'DROP TABLE ' || quote_ident($1 || '_old')"), Some(Some("DROP TABLE splits_old".into())));
        assert_eq!(e("'x' || NULL"), Some(None));
        assert_eq!(e("concat('a', NULL, 2, 'b'::text)"), Some(Some("a2b".into())));
        assert_eq!(e("pg_catalog.format('%L', 'v')"), Some(Some("'v'".into())));
        assert_eq!(e("format('%s', other_var)"), None, "an unbound variable is not known before it runs");
        assert_eq!(e("format('%s', now())"), None);
        assert_eq!(e("'01'::int"), None, "a cast that changes the text is not evaluated");
    }

    #[test]
    fn a_function_called_with_constants_runs_what_its_parameters_compute() {
        // Diesel's helper, as every Diesel project's first migration writes it.
        let def = "CREATE OR REPLACE FUNCTION diesel_manage_updated_at(_tbl regclass) RETURNS VOID AS $$\n\
                   BEGIN\n\
                   \x20   EXECUTE format('CREATE TRIGGER set_updated_at BEFORE UPDATE ON %s\n\
                   \x20                   FOR EACH ROW EXECUTE PROCEDURE diesel_set_updated_at()', _tbl);\n\
                   END;\n\
                   $$ LANGUAGE plpgsql;";
        let kinds: Vec<StmtKind> =
            function_statements_called(def, &[Some("users".into())]).into_iter().map(|s| s.kind).collect();
        assert!(matches!(&kinds[..], [StmtKind::CreateTrigger { table, .. }] if table.name == "users"), "{kinds:?}");
        assert!(function_statements(def).is_empty(), "without the argument the trigger's table is not known");
        // Positional references, a default for a parameter the call leaves out, OUT skipped.
        let def = "CREATE FUNCTION f(OUT done bool, a text, b text DEFAULT 'x') LANGUAGE plpgsql AS $$\n\
                   BEGIN EXECUTE 'ALTER TABLE ' || $1 || ' ADD COLUMN ' || b || ' int'; PERFORM g(); done := true; END $$;";
        let kinds: Vec<StmtKind> =
            function_statements_called(def, &[Some("t".into())]).into_iter().map(|s| s.kind).collect();
        assert!(matches!(&kinds[0], StmtKind::AlterTable { table, .. } if table.name == "t"), "{kinds:?}");
        assert!(
            matches!(&kinds[1], StmtKind::Select { constant_calls, .. } if constant_calls[0].function.name == "g"),
            "{kinds:?}"
        );
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
    fn ddl_a_do_block_computes_is_linted_at_the_expression() {
        let sql = "DO $$\nBEGIN\n  EXECUTE format('ALTER TABLE %I ALTER COLUMN id TYPE bigint', 'users');\nEND $$;";
        let f = lint(sql);
        let at: Vec<(&str, usize, usize)> = f.iter().map(|f| (f.rule.id(), f.line, f.column)).collect();
        assert!(at.contains(&("alter-column-type", 3, 11)), "{at:?}");
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
