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

/// A new function's default privileges: EXECUTE for PUBLIC.
pub(super) fn default_function_grants() -> Vec<String> {
    vec!["PUBLIC=EXECUTE".to_string()]
}

/// Compare dotted versions numerically (`1.10` > `1.9`).
pub(super) fn version_lt(a: &str, b: &str) -> bool {
    let parts = |v: &str| v.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
    parts(a) < parts(b)
}
