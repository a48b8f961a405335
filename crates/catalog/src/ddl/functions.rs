//! Functions: their drop and create order, and which use a type that changes.

use super::*;

/// The function's arguments or result name one of `types` (a table's name is its row type).
pub(super) fn uses_type(f: &Function, rebuilt: &[QName]) -> bool {
    let text = format!("{} {}", f.identity_args, f.result.as_deref().unwrap_or(""));
    rebuilt.iter().any(|n| {
        text.contains(&n.to_string()) || text.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == n.name)
    })
}

/// Functions in the order to drop them (`aggregates_first`: an aggregate depends on its state
/// and final functions) or to create them (aggregates last).
pub(super) fn by_kind(m: &BTreeMap<String, Function>, aggregates_first: bool) -> Vec<(&String, &Function)> {
    let mut v: Vec<(&String, &Function)> = m.iter().collect();
    v.sort_by_key(|(_, f)| (f.kind == FunctionKind::Aggregate) != aggregates_first);
    v
}

/// `fs` ordered so that a function goes before those it calls by name in its definition (a
/// SQL-standard body, `RETURN …` or `BEGIN ATOMIC`, depends on them, and PostgreSQL refuses to
/// drop one that another uses). Names are as the snapshot prints them, schema-qualified; a cycle
/// keeps the order it has.
pub(super) fn callers_first<'f>(fs: Vec<(&'f String, &'f Function)>) -> Vec<(&'f String, &'f Function)> {
    // Only a SQL-standard body (no `AS '…'` line) depends on what it calls; the others go after.
    let standard = |f: &Function| !f.definition.lines().any(|l| l.starts_with("AS "));
    let (left, rest): (Vec<_>, Vec<_>) = fs.into_iter().partition(|(_, f)| standard(f));
    // Each with how it is called (`schema.name(`) and its body (past its own header, which
    // names it), read once.
    let mut left: Vec<_> = left
        .into_iter()
        .map(|(sig, f)| {
            let called = format!("{}(", QName::new(&f.schema, &f.name).sql());
            let body = f.definition.split_once(&called).map_or(f.definition.as_str(), |(_, rest)| rest);
            ((sig, f), called, body)
        })
        .collect();
    let mut out = Vec::with_capacity(left.len() + rest.len());
    while !left.is_empty() {
        // The first one no other remaining function calls.
        let called_by_another =
            |i: usize| left.iter().enumerate().any(|(j, (_, _, body))| j != i && body.contains(left[i].1.as_str()));
        let pick = (0..left.len()).find(|&i| !called_by_another(i)).unwrap_or(0);
        out.push(left.remove(pick).0);
    }
    out.extend(rest);
    out
}

/// A new function's default privileges: EXECUTE for PUBLIC.
pub(super) fn default_function_grants() -> Vec<String> {
    vec!["PUBLIC=EXECUTE".to_string()]
}

/// Compare dotted versions numerically (`1.10` > `1.9`).
pub(super) fn version_lt(a: &str, b: &str) -> bool {
    let parts = |v: &str| v.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
    parts(a) < parts(b)
}
