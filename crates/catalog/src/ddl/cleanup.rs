//! Phase 3 of the DDL: what nothing uses any more goes, and comments and grants are set.

use super::*;

/// What nothing uses any more: functions, sequences, types, collations, extensions, schemas.
pub(super) fn drop_unused(c: &Change, s: &mut Script) {
    let Change { a, b, renewed, gone_rows, .. } = c;
    let gone: Vec<(&String, &Function)> = by_kind(&a.functions, true)
        .into_iter()
        .filter(|(sig, f)| !b.functions.contains_key(*sig) && !uses_type(f, gone_rows) && !uses_type(f, renewed))
        .collect();
    for (_, f) in callers_first(gone) {
        s.push(format!("DROP {} {}", f.keyword(), f.signature()));
    }
    for n in a.sequences.keys() {
        if !b.sequences.contains_key(n) {
            s.push(format!("DROP SEQUENCE IF EXISTS {n}"));
        }
    }
    for (n, t) in &a.types {
        if !b.types.contains_key(n) {
            s.push(format!("DROP {} {n}", type_keyword(t)));
        }
    }
    for n in a.collations.keys() {
        if !b.collations.contains_key(n) {
            s.push(format!("DROP COLLATION {n}"));
        }
    }
    // An extension's objects live in a schema: the extension goes first.
    for n in a.extensions.keys() {
        if !b.extensions.contains_key(n) {
            s.push(format!("DROP EXTENSION {}", qi(n)));
        }
    }
    for n in a.schemas.keys() {
        if !b.schemas.contains_key(n) {
            s.push(format!("DROP SCHEMA {}", qi(n)));
        }
    }
}

/// The index CLUSTER uses, per table: set when it changes (an index made again has lost it).
pub(super) fn cluster_indexes(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
    for (tn, t) in &b.tables {
        let want = t.indexes.iter().find(|(_, i)| i.clustered).map(|(n, _)| n);
        let had = a.tables.get(tn).and_then(|u| u.indexes.iter().find(|(_, i)| i.clustered));
        // Still in force only when the index stays as it was.
        let kept = had.filter(|(n, i)| t.indexes.get(*n).is_some_and(|j| j.definition == i.definition)).map(|(n, _)| n);
        match (want, kept) {
            (Some(w), k) if k != Some(w) => s.push(format!("ALTER TABLE {tn} CLUSTER ON {}", qi(w))),
            (None, Some(_)) => s.push(format!("ALTER TABLE {tn} SET WITHOUT CLUSTER")),
            _ => {}
        }
    }
}

/// Comments and grants on functions and sequences.
pub(super) fn comments_and_grants(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
    for (sig, f) in &b.functions {
        let old = a.functions.get(sig).filter(|g| g.result == f.result && g.kind == f.kind);
        if old.map(|g| &g.comment) != Some(&f.comment) && (f.comment.is_some() || old.is_some()) {
            s.push(comment_sql(&format!("{} {}", f.keyword(), f.signature()), &f.comment));
        }
        let routine = if f.kind == FunctionKind::Procedure { "PROCEDURE" } else { "FUNCTION" };
        if f.kind != FunctionKind::Aggregate {
            grant_sql(
                &format!("{routine} {}", f.signature()),
                old.map(|g| g.grants.as_slice()).unwrap_or(&default_function_grants()),
                &f.grants,
                None,
                s,
            );
        }
    }
    for (n, q) in &b.sequences {
        let old = a.sequences.get(n);
        if old.map(|p| &p.comment) != Some(&q.comment) && (q.comment.is_some() || old.is_some()) {
            s.push(comment_sql(&format!("SEQUENCE {n}"), &q.comment));
        }
        grant_sql(&format!("SEQUENCE {n}"), old.map(|p| p.grants.as_slice()).unwrap_or(&[]), &q.grants, None, s);
    }
    // Types (a type made anew has the default grants).
    let default = default_type_grants();
    for n in b.types.keys() {
        let kept = a.types.contains_key(n) && !c.rebuilt.contains(n);
        let before = kept.then(|| a.type_grants.get(n)).flatten().unwrap_or(&default);
        let after = b.type_grants.get(n).unwrap_or(&default);
        grant_sql(&format!("TYPE {n}"), before, after, None, s);
    }
}
