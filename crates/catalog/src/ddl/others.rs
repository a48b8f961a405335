//! Other objects (statistics, publications, casts, operators, text search, foreign data…):
//! dropped and created in the order their kinds depend on each other.

use super::*;

/// Kinds of [`OtherObject`] in the order they are dropped (dependents first); created in the
/// reverse order.
pub(super) const OTHER_DROP_ORDER: &[&str] = &[
    "publication table",
    "publication schema",
    "user mapping",
    "event trigger",
    "statistics object",
    "cast",
    "operator class",
    "operator family",
    "operator",
    "text search configuration",
    "text search dictionary",
    "server",
    "foreign-data wrapper",
    "publication",
    "language",
    "access method",
];

pub(super) fn other_rank(o: &OtherObject) -> usize {
    OTHER_DROP_ORDER.iter().position(|k| *k == o.kind).unwrap_or(OTHER_DROP_ORDER.len())
}

/// Publications that are dropped and created again: their tables must be added back.
pub(super) fn rebuilt_publications(a: &Snapshot, b: &Snapshot) -> BTreeSet<String> {
    b.others
        .iter()
        .filter(|(k, o)| o.kind == "publication" && a.others.get(*k).is_none_or(|p| p.definition != o.definition))
        .map(|(_, o)| o.identity.clone())
        .collect()
}

pub(super) fn member_of(o: &OtherObject, publications: &BTreeSet<String>) -> bool {
    o.member && publications.iter().any(|p| o.identity.starts_with(&format!("{p} ")))
}

/// Drop the other objects that go or change (the ones without a DROP form stay and show in
/// the proof as differences a human resolves).
pub(super) fn drop_others(a: &Snapshot, b: &Snapshot, s: &mut Script) {
    let mut gone: Vec<&OtherObject> = a
        .others
        .iter()
        .filter(|(k, o)| o.default_acl.is_none() && b.others.get(*k).is_none_or(|p| p.definition != o.definition))
        .map(|(_, o)| o)
        .collect();
    gone.sort_by_key(|o| other_rank(o));
    for o in gone {
        if let Some(d) = &o.drop {
            s.push(d.clone());
        }
    }
    for revoke in default_privilege_changes(a, b).0 {
        s.push(revoke);
    }
}

/// Create the other objects that are new or changed, set the state of the ones that only
/// changed state, and put default privileges back entry by entry.
pub(super) fn create_others(a: &Snapshot, b: &Snapshot, s: &mut Script) {
    let rebuilt = rebuilt_publications(a, b);
    let mut new: Vec<&OtherObject> = Vec::new();
    for (k, o) in &b.others {
        if o.default_acl.is_some() {
            continue;
        }
        match a.others.get(k) {
            Some(p) if p.definition == o.definition && !member_of(o, &rebuilt) => {
                if p.state != o.state {
                    if let Some(alter) = &o.alter {
                        s.push(alter.clone());
                    }
                }
            }
            _ => new.push(o),
        }
    }
    new.sort_by_key(|o| std::cmp::Reverse(other_rank(o)));
    for o in new {
        if let Some(c) = &o.create {
            s.push(c.clone());
        }
    }
    for grant in default_privilege_changes(a, b).1 {
        s.push(grant);
    }
}
