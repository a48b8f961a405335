//! Functions and triggers: a created one is dropped (each overload by the statement that
//! created it), a replaced one gets its old definition back.

use migsafe_sql::model::{ObjectKind, StmtKind};
use migsafe_sql::{quote_ident as qi, Statement};

use super::{Inverse, Inversion};

/// CREATE FUNCTION / PROCEDURE and CREATE TRIGGER.
pub(super) fn invert(st: &Statement, cx: &Inversion, inv: &mut Inverse) {
    let (s0, s1) = (cx.s0, cx.s1);
    match &st.kind {
        StmtKind::CreateFunction { name, arg_types, .. } => {
            let q = cx.q(name);
            let mut done = cx.functions_done.borrow_mut();
            let overloads: Vec<(&String, &migsafe_catalog::model::Function)> = s1
                .functions
                .iter()
                .filter(|(sig, f)| f.schema == q.schema && f.name == q.name && !done.contains(*sig))
                .collect();
            // The overload this statement created, by its argument types; when they cannot
            // be matched (a type spelled through %TYPE, say), every overload not yet undone.
            let exact: Vec<_> =
                overloads.iter().copied().filter(|(_, f)| same_arguments(&f.identity_args, arg_types)).collect();
            let mine = if exact.is_empty() { overloads } else { exact };
            for (sig, f) in mine {
                done.insert(sig.clone());
                let recreated = cx
                    .before
                    .dropped
                    .iter()
                    .any(|(k, x)| matches!(k, ObjectKind::Function | ObjectKind::Procedure) && *x == q.to_string());
                match if recreated { None } else { s0.functions.get(sig) } {
                    None => inv.sql.push(format!("DROP {} {}", f.keyword(), f.signature())),
                    Some(old) if old.definition != f.definition && old.result == f.result => {
                        inv.sql.push(old.definition.trim().trim_end_matches(';').to_string())
                    }
                    _ => {}
                }
            }
        }
        StmtKind::CreateTrigger { name, table, .. } => {
            let t = cx.q(table);
            let recreated = cx.before.dropped.iter().any(|(k, n)| *k == ObjectKind::Trigger && n.ends_with(&qi(name)));
            let before = if recreated { None } else { s0.tables.get(&t).and_then(|x| x.triggers.get(name)) };
            let after = s1.tables.get(&t).and_then(|x| x.triggers.get(name));
            match (before, after) {
                (None, Some(_)) => inv.sql.push(format!("DROP TRIGGER {} ON {t}", qi(name))),
                (Some(b), Some(a)) if a.definition != b.definition => {
                    inv.sql.push(format!("DROP TRIGGER {} ON {t}", qi(name)));
                    inv.sql.push(b.definition.clone());
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// Whether a function's identity arguments (`pg_get_function_identity_arguments`: `name type`,
/// modes, no typmods) are the argument types a CREATE FUNCTION wrote (as the parser's
/// canonical spelling, `integer`, `timestamptz`, `"pgmq".msg[]`…), compared by unqualified
/// type name; OUT arguments (part of a procedure's identity) are left out.
fn same_arguments(identity_args: &str, written: &[String]) -> bool {
    let mut args = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in identity_args.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                args.push(identity_args[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !identity_args.trim().is_empty() {
        args.push(identity_args[start..].trim());
    }
    args.retain(|a| !a.starts_with("OUT "));
    let spelled = |t: &str| -> String {
        let dims = t.matches("[]").count();
        let base = t.split('(').next().unwrap_or(t).trim_end_matches("[]");
        let base = base.rsplit('.').next().unwrap_or(base).replace('"', "");
        let base = match base.as_str() {
            "timestamptz" => "timestamp with time zone",
            "timestamp" => "timestamp without time zone",
            "timetz" => "time with time zone",
            "time" => "time without time zone",
            "varchar" => "character varying",
            "char" | "bpchar" => "character",
            "varbit" => "bit varying",
            other => other,
        };
        format!("{base}{}", "[]".repeat(dims))
    };
    args.len() == written.len()
        && args.iter().zip(written).all(|(a, w)| {
            let want = spelled(w);
            let a = a.replace('"', "");
            let unqualified =
                |x: &str| x == want || x.ends_with(&format!(" {want}")) || x.ends_with(&format!(".{want}"));
            unqualified(&a)
        })
}
