//! Rendering the DDL that turns one snapshot into another, ordered by dependencies: drops
//! first (dependent objects before what they depend on), then creates and alters (what is
//! depended on first). Views that depend on changed columns are dropped and recreated around
//! the change. Every identifier is quoted; every literal escaped.

use std::collections::{BTreeMap, BTreeSet};

use migsafe_sql::{quote_ident as qi, quote_literal as ql};

use crate::diff::SchemaDiff;
use crate::model::*;

mod cleanup;
mod creates;
mod drops;
mod functions;
mod inherited;
mod others;
mod privileges;
mod renames;
mod sequences;
mod tables;
mod types;
mod views;

pub use self::inherited::handed_over;
pub use self::sequences::create_sequence;
pub use self::tables::retype_using;
use self::{
    cleanup::*, creates::*, drops::*, functions::*, others::*, privileges::*, sequences::*, tables::*, types::*,
    views::*,
};

/// Statements with the phase they belong to, rendered in order.
#[derive(Default)]
struct Script {
    stmts: Vec<String>,
}

impl Script {
    fn push(&mut self, s: impl Into<String>) {
        self.stmts.push(s.into());
    }
}

impl SchemaDiff<'_> {
    /// The DDL that turns the source schema into the target, as one script (`;`-terminated
    /// statements). Empty when the schemas are equal.
    pub fn to_sql(&self) -> String {
        let renames = renames::detect(self.from, self.to);
        let stmts = self.render_from(renames.as_ref());
        if stmts.is_empty() {
            return String::new();
        }
        let mut out = String::from("SET check_function_bodies = off;\n");
        for n in renames.iter().flat_map(|r| &r.notes) {
            out.push_str(&format!("-- note: {n}\n"));
        }
        for s in stmts {
            out.push_str(&s);
            out.push_str(";\n");
        }
        out
    }

    /// The same DDL as separate statements (no trailing `;`).
    pub fn statements(&self) -> Vec<String> {
        self.render_from(renames::detect(self.from, self.to).as_ref())
    }

    /// The DDL, `renames` (those found between the two schemas) first; the rest goes from the
    /// schema as it is after them.
    fn render_from(&self, renames: Option<&renames::Renames>) -> Vec<String> {
        let mut s = Script::default();
        let from = match renames {
            Some(r) => {
                s.stmts.extend(r.statements.iter().cloned());
                &r.renamed
            }
            None => self.from,
        };
        // Tables that change kind (regular ↔ partitioned) cannot be altered, and a child's own
        // column cannot be made inherited only: drop them (with what depends on them) first,
        // then build the target from there.
        let mut mid = without_rebuilt_tables(from, self.to);
        let handovers = inherited::handovers(mid.as_ref().unwrap_or(from), self.to);
        if !handovers.is_empty() {
            s.stmts.extend(inherited::save(&handovers, from));
            mid = Some(inherited::without(mid.as_ref().unwrap_or(from), &handovers));
        }
        match mid {
            Some(mid) => {
                render(from, &mid, &mut s);
                render(&mid, self.to, &mut s);
            }
            None => render(from, self.to, &mut s),
        }
        s.stmts.extend(inherited::restore(&handovers));
        s.stmts
    }
}

/// `a` without the tables that cannot be altered into their `b` form (and without what
/// depends on them), or None when there are none.
fn without_rebuilt_tables(a: &Snapshot, b: &Snapshot) -> Option<Snapshot> {
    let mut gone: BTreeSet<QName> = a
        .tables
        .iter()
        .filter(|(n, t)| b.tables.get(*n).is_some_and(|u| u.kind != t.kind || u.partition_key != t.partition_key))
        .map(|(n, _)| n.clone())
        .collect();
    if gone.is_empty() {
        return None;
    }
    // Partitions and inheritance children go with their parent.
    loop {
        let before = gone.len();
        for (n, t) in &a.tables {
            let parent = t.partition_of.as_ref().map(|(p, _)| p);
            if parent.is_some_and(|p| gone.contains(p)) {
                gone.insert(n.clone());
            }
        }
        if gone.len() == before {
            break;
        }
    }
    let mut mid = a.clone();
    mid.tables.retain(|n, _| !gone.contains(n));
    for t in mid.tables.values_mut() {
        t.constraints.retain(|_, c| c.references.as_ref().is_none_or(|r| !gone.contains(r)));
    }
    drop_views_over(&mut mid, gone.clone());
    mid.sequences.retain(|_, q| q.owned_by.as_ref().is_none_or(|(t, _)| !gone.contains(t)));
    Some(mid)
}

/// Takes out of `snap` the views over any of `dead` (relations), directly or through other views.
fn drop_views_over(snap: &mut Snapshot, mut dead: BTreeSet<QName>) {
    loop {
        let before = dead.len();
        for (n, v) in &snap.views {
            if v.depends_on.iter().any(|d| dead.contains(d)) {
                dead.insert(n.clone());
            }
        }
        if dead.len() == before {
            break;
        }
    }
    snap.views.retain(|n, _| !dead.contains(n));
}

fn trim_semicolon(s: &str) -> &str {
    s.trim().trim_end_matches(';').trim_end()
}

/// What every phase of one rendering needs: the two schemas and what follows from them.
pub(super) struct Change<'a> {
    /// The schema the DDL starts from.
    pub a: &'a Snapshot,
    /// The schema it reaches.
    pub b: &'a Snapshot,
    /// Views dropped and created again (they depend on something that changes).
    pub rebuild_views: BTreeSet<QName>,
    /// Tables and views whose columns change.
    pub touched: BTreeSet<QName>,
    /// Tables with a column whose type changes.
    pub retyped: BTreeSet<QName>,
    /// Every type built anew (enums losing values included): functions taking or returning it
    /// would keep the old one.
    pub renewed: Vec<QName>,
    /// Tables that go: their row types go with them.
    pub gone_rows: Vec<QName>,
    /// Tables whose key changes: the foreign keys referencing them go first and come back.
    pub rekeyed: BTreeSet<QName>,
    /// Types dropped and created again.
    pub rebuilt: Vec<QName>,
}

impl Change<'_> {
    /// Whether a rule must be dropped and created again: its relation or something it uses
    /// changes columns or types.
    fn redo_rule(&self, r: &RewriteRule) -> bool {
        self.touched.contains(&r.relation)
            || self.retyped.contains(&r.relation)
            || r.depends_on.iter().any(|d| self.touched.contains(d) || self.retyped.contains(d))
    }
}

/// The DDL from `a` to `b`, in three phases: drops (dependents first), creates and alters
/// (dependencies first), then what nothing uses any more, comments and grants.
fn render(a: &Snapshot, b: &Snapshot, s: &mut Script) {
    let (rebuild_views, touched) = views_and_touched(a, b);
    let retyped = retyped_tables(a, b);
    let c = Change {
        a,
        b,
        rebuild_views,
        touched,
        rekeyed: rekeyed_tables(a, b, &retyped),
        retyped,
        renewed: renewed_types(a, b),
        gone_rows: a.tables.keys().filter(|n| !b.tables.contains_key(*n)).cloned().collect(),
        rebuilt: rebuilt_types(a, b),
    };
    // Phase 1: drops, dependents first.
    drop_others(a, b, s);
    drop_policies_and_triggers(&c, s);
    drop_rules(&c, s);
    drop_views(&c, s);
    drop_constraints(&c, s);
    drop_table_indexes(&c, s);
    drop_view_indexes(&c, s);
    drop_functions_of_gone_rows(&c, s);
    detach_owned_sequences(&c, s);
    drop_tables(&c, s);
    detach_moved_partitions(&c, s);
    drop_what_detached_partitions_keep(&c, s);
    drop_columns(&c, s);
    drop_changed_defaults(&c, s);
    drop_replaced_functions_and_types(&c, s);
    // Phase 2: creates and alters, dependencies first.
    create_schemas(&c, s);
    create_extensions(&c, s);
    create_collations(&c, s);
    render_types(a, b, s);
    create_sequences(&c, s);
    create_functions_and_tables(&c, s);
    set_sequence_owners(&c, s);
    create_views(&c, s);
    create_triggers_and_policies(&c, s);
    create_view_triggers(&c, s);
    create_rules(&c, s);
    // Phase 3: what nothing uses any more; comments and grants.
    drop_unused(&c, s);
    comments_and_grants(&c, s);
    cluster_indexes(&c, s);
    create_others(a, b, s);
}
