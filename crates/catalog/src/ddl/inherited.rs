//! A child's own column that must become inherited only (`attislocal` false) when its parent
//! gains the column. PostgreSQL merges a parent's `ADD COLUMN` with a child's column of the same
//! name and keeps it declared by the child too, and no statement clears that afterwards. The
//! only way there that keeps the child's values: save them in a spare column, drop the child's
//! column (and what uses it) before the parent adds its own, which the child then inherits
//! only, copy the values back and drop the spare.

use std::collections::BTreeSet;

use migsafe_sql::quote_ident as qi;

use crate::model::*;

/// A child's column handed to its parent: `table.column` is the child's own in the source and
/// inherited only in the target.
pub(super) struct Handover {
    pub table: QName,
    pub column: String,
    /// The spare column holding the values meanwhile.
    pub spare: String,
}

/// The columns that must go from the child's own to inherited only: the table is an
/// inheritance child on both sides (partitions are always inherited only), the column is the
/// child's alone in `a`, and in `b` it is inherited only from a parent the child already had.
pub(super) fn handovers(a: &Snapshot, b: &Snapshot) -> Vec<Handover> {
    let mut out = Vec::new();
    for (tn, t) in &a.tables {
        let Some(u) = b.tables.get(tn) else { continue };
        if t.partition_of.is_some() || u.partition_of.is_some() {
            continue;
        }
        for c in t.columns.iter().filter(|c| !c.inherited) {
            let Some(d) = u.column(&c.name) else { continue };
            let from_old_parent = u
                .inherits
                .iter()
                .filter(|p| t.inherits.contains(p))
                .any(|p| b.tables.get(p).is_some_and(|p| p.column(&c.name).is_some()));
            if d.inherited && !d.local_too && from_old_parent {
                let taken: BTreeSet<&str> = t.columns.iter().chain(&u.columns).map(|c| c.name.as_str()).collect();
                let spare = (0..)
                    .map(|i| {
                        if i == 0 {
                            format!("migsafe_keep_{}", c.name)
                        } else {
                            format!("migsafe_keep{i}_{}", c.name)
                        }
                    })
                    .find(|n| !taken.contains(n.as_str()))
                    .unwrap_or_default();
                out.push(Handover { table: tn.clone(), column: c.name.clone(), spare });
            }
        }
    }
    out
}

/// The columns (`table`, `column`) that go from the child's own in `a` to inherited only in `b`
/// by a handover: rollback generation leaves them to the diff rather than adding the parent's
/// column back itself, which would merge with the child's.
pub fn handed_over(a: &Snapshot, b: &Snapshot) -> Vec<(QName, String)> {
    handovers(a, b).into_iter().map(|h| (h.table, h.column)).collect()
}

/// Save the values before anything else runs.
pub(super) fn save(h: &[Handover], a: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for h in h {
        let Some(c) = a.tables.get(&h.table).and_then(|t| t.column(&h.column)) else { continue };
        out.push(format!(
            "-- note: column {}.{} becomes inherited only from its parent: its values wait in {} meanwhile",
            h.table,
            qi(&h.column),
            qi(&h.spare)
        ));
        out.push(format!("ALTER TABLE {} ADD COLUMN {} {}", h.table, qi(&h.spare), c.type_name));
        // Not ONLY: the child's own children lose the column with it, and keep the spare.
        out.push(format!("UPDATE {} SET {} = {}", h.table, qi(&h.spare), qi(&h.column)));
    }
    out
}

/// Copy the values back into the inherited column and drop the spare, last.
pub(super) fn restore(h: &[Handover]) -> Vec<String> {
    let mut out = Vec::new();
    for h in h {
        out.push(format!("UPDATE {} SET {} = {}", h.table, qi(&h.column), qi(&h.spare)));
        out.push(format!("ALTER TABLE {} DROP COLUMN {}", h.table, qi(&h.spare)));
    }
    out
}

/// The tables that lose the column when the child of `h` drops it: the child, and its own
/// descendants that inherit the column only.
fn losing(a: &Snapshot, h: &Handover) -> Vec<QName> {
    let mut out = vec![h.table.clone()];
    loop {
        let before = out.len();
        for (n, t) in &a.tables {
            if !out.contains(n)
                && t.inherits.iter().any(|p| out.contains(p))
                && t.column(&h.column).is_some_and(|c| c.inherited && !c.local_too)
            {
                out.push(n.clone());
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

/// `a` without the handed-over columns and without what may use them (constraints, indexes,
/// triggers, policies and rules of the tables that lose it that name the column, foreign keys
/// pointing at it, views over those tables): the DDL drops them on the way there and makes the
/// target's again.
pub(super) fn without(a: &Snapshot, h: &[Handover]) -> Snapshot {
    let mut mid = a.clone();
    let mut dead: BTreeSet<QName> = BTreeSet::new();
    for (h, table) in h.iter().flat_map(|h| losing(a, h).into_iter().map(move |t| (h, t))) {
        let names = |text: &str| mentions(text, &h.column);
        if let Some(t) = mid.tables.get_mut(&table) {
            t.columns.retain(|c| c.name != h.column);
            t.constraints.retain(|_, c| !c.columns.contains(&h.column) && !names(&c.definition));
            t.indexes.retain(|_, i| !names(&i.definition));
            t.triggers.retain(|_, tr| !names(&tr.definition));
            t.policies.retain(|_, p| ![&p.using, &p.with_check].into_iter().flatten().any(|e| names(e)));
        }
        for t in mid.tables.values_mut() {
            t.constraints.retain(|_, c| c.references.as_ref() != Some(&table) || !names(&c.definition));
        }
        mid.rules.retain(|_, r| r.relation != table && !r.depends_on.contains(&table));
        dead.insert(table);
    }
    super::drop_views_over(&mut mid, dead);
    mid
}

/// Whether SQL text names the column `name` (as PostgreSQL's deparse functions spell an
/// identifier); a false positive only rebuilds one object more.
fn mentions(text: &str, name: &str) -> bool {
    let spelled = qi(name);
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '$' || c == '"';
    text.match_indices(spelled.as_str()).any(|(i, m)| {
        let before = text[..i].chars().next_back();
        let after = text[i + m.len()..].chars().next();
        (spelled.starts_with('"') || !before.is_some_and(word)) && (spelled.ends_with('"') || !after.is_some_and(word))
    })
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn a_column_is_mentioned_as_a_whole_identifier() {
        assert!(mentions("CREATE INDEX i ON public.a USING btree (e)", "e"));
        assert!(mentions("CHECK ((e > 0))", "e"));
        assert!(!mentions("CREATE INDEX i ON public.a USING btree (created_at)", "e"));
        assert!(mentions("CHECK ((\"Odd Name\" > 0))", "Odd Name"));
        assert!(!mentions("CHECK ((ee > 0))", "e"));
    }
}
