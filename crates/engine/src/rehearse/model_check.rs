//! Lint's model checked by PostgreSQL. For each statement of a rehearsed migration, the table
//! locks lint predicts (`migsafe_sql::lock::statement_locks`, the model its rules and the risk
//! use), the rewrites its rules predict and the whole-table scans under a lock that blocks writes
//! its rules predict (`Rule::scans`), against what the forward run saw: the locks the migration's
//! own backend held after the statement (`pg_locks`), the tables whose relfilenode changed, and
//! the tables the transaction scanned sequentially during it (`pg_stat_get_xact_numscans`). A
//! difference on a table that existed before the statement is a `lint-model` mismatch: reported
//! as a warning of the forward step and in the JSON (`lint_model`), so real migrations keep
//! showing where the model is not exact.
//!
//! Only locks that block something that matters are compared (SHARE UPDATE EXCLUSIVE and
//! stronger); row-level statements' ROW EXCLUSIVE and reads' ACCESS SHARE are not predicted
//! and not compared. Only a migration run in one transaction is checked: outside one, a lock
//! taken and released between two looks is not seen, and scan counts start again.

use std::collections::{BTreeMap, BTreeSet};

use migsafe_catalog::Snapshot;
use migsafe_sql::lint::hazard::Hazard;
use migsafe_sql::lint::schema::SchemaModel;
use migsafe_sql::lint::Finding;
use migsafe_sql::lock::{statement_locks_deep, Blocks, ForeignKeyRef, LockCatalog, LockMode};
use migsafe_sql::model::ObjectKind;
use migsafe_sql::{QualName, StmtKind};

use crate::exec::Prepared;
use crate::report::ModelMismatch as Mismatch;

/// What the forward run saw: locks held after each statement, `(relation, pg_locks mode)` →
/// the statement that first held it; the tables rewritten, and the tables scanned, with the
/// statement.
pub(super) struct Seen<'a> {
    pub held: &'a BTreeMap<(String, String), (f64, usize)>,
    pub rewritten: &'a [(String, usize)],
    pub scanned: &'a [(String, usize)],
}

fn strong(m: LockMode) -> bool {
    m >= LockMode::ShareUpdateExclusive
}

/// What the lock model is told about the schema a statement runs on: the catalog before the
/// migration, and what the migration's earlier statements made since (a column of a domain, a
/// foreign key, a trigger), as lint's own schema model learns it from them.
struct Layered<'a> {
    before: &'a Snapshot,
    since: &'a SchemaModel,
    /// The snapshot's trigger statements, read once per table and event.
    fired: &'a std::cell::RefCell<BTreeMap<(QualName, String), Vec<StmtKind>>>,
}

impl LockCatalog for Layered<'_> {
    fn index_table(&self, index: &QualName) -> Option<QualName> {
        self.before.index_table(index).or_else(|| LockCatalog::index_table(self.since, index))
    }
    fn foreign_keys_of(&self, table: &QualName) -> Vec<ForeignKeyRef> {
        union(self.before.foreign_keys_of(table), self.since.foreign_keys_of(table))
    }
    fn foreign_keys_to(&self, table: &QualName) -> Vec<ForeignKeyRef> {
        union(self.before.foreign_keys_to(table), self.since.foreign_keys_to(table))
    }
    fn trigger_tables(&self, function: &QualName) -> Vec<QualName> {
        union(self.before.trigger_tables(function), self.since.trigger_tables(function))
    }
    fn domain_tables(&self, domain: &QualName) -> Vec<QualName> {
        union(self.before.domain_tables(domain), self.since.domain_tables(domain))
    }
    fn children(&self, table: &QualName) -> Vec<(QualName, bool)> {
        union(self.before.children(table), self.since.children(table))
    }
    fn server_version(&self) -> Option<u32> {
        self.before.server_version()
    }
    fn trigger_statements(&self, table: &QualName, event: &str) -> Vec<StmtKind> {
        let key = (table.clone(), event.to_string());
        let before =
            self.fired.borrow_mut().entry(key).or_insert_with(|| self.before.trigger_statements(table, event)).clone();
        union(before, self.since.trigger_statements(table, event))
    }
    fn function_statements(&self, function: &QualName, args: &[Option<String>]) -> Vec<StmtKind> {
        // The migration's own definition when it made one, else the database's.
        let since = self.since.function_statements(function, args);
        if since.is_empty() {
            self.before.function_statements(function, args)
        } else {
            since
        }
    }
    fn member_exists(&self, kind: ObjectKind, table: &QualName, name: &str) -> Option<bool> {
        match self.since.member_exists(kind, table, name) {
            Some(true) => Some(true),
            _ => self.before.member_exists(kind, table, name),
        }
    }
}

fn union<T: PartialEq>(mut a: Vec<T>, b: Vec<T>) -> Vec<T> {
    for x in b {
        if !a.contains(&x) {
            a.push(x);
        }
    }
    a
}

/// A predicted name to the `schema.name` it is: qualified as written, else the one table of
/// that name that exists (public first).
fn resolve(existing: &BTreeSet<String>, q: &QualName) -> Option<String> {
    if let Some(s) = &q.schema {
        return Some(format!("{s}.{}", q.name));
    }
    let public = format!("public.{}", q.name);
    if existing.contains(&public) {
        return Some(public);
    }
    existing.iter().find(|e| e.rsplit_once('.').is_some_and(|(_, n)| n == q.name)).cloned()
}

/// The mismatches of the migration `prepared`, which ran on the schema `s0` in one
/// transaction, given lint's `findings` for it.
pub(super) fn mismatches<'a>(
    prepared: &Prepared,
    s0: &Snapshot,
    findings: &[Finding],
    seen: &Seen<'a>,
) -> Vec<Mismatch> {
    // Tables (and materialized views) that exist before each statement, by `schema.name`: those
    // that existed before the migration, less those an earlier statement dropped or renamed away
    // (one created again under the name is new).
    let mut existing: BTreeSet<String> = s0
        .tables
        .keys()
        .chain(s0.views.iter().filter(|(_, v)| v.materialized).map(|(n, _)| n))
        .map(|q| format!("{}.{}", q.schema, q.name))
        .collect();
    // The strongest mode the session held on `rel`, first taken by a statement `by` accepts.
    let strongest = |rel: &str, by: &dyn Fn(usize) -> bool| {
        seen.held
            .iter()
            .filter(|((r, _), (_, s))| r == rel && by(*s))
            .filter_map(|((_, m), _)| m.parse::<LockMode>().ok())
            .max()
    };
    let matviews: BTreeSet<String> =
        s0.views.iter().filter(|(_, v)| v.materialized).map(|(n, _)| format!("{}.{}", n.schema, n.name)).collect();
    let mut out = Vec::new();
    let mut since = SchemaModel::default();
    let fired = std::cell::RefCell::new(BTreeMap::new());
    for (i, st) in prepared.statements.iter().enumerate() {
        let line = prepared.line(i);
        let catalog = Layered { before: s0, since: &since, fired: &fired };
        let locks = statement_locks_deep(st, &catalog);
        // One table written two ways (`crates`, `public.crates`) is one: its strongest mode.
        let mut predicted: BTreeMap<String, LockMode> = BTreeMap::new();
        for (q, m) in &locks {
            if let Some(r) = resolve(&existing, q).filter(|r| existing.contains(r)) {
                let e = predicted.entry(r).or_insert(*m);
                *e = (*e).max(*m);
            }
        }
        let mut push = |relation: &str, about: &str, predicted: String, observed: String| {
            out.push(Mismatch {
                line,
                statement: st.tag.clone(),
                relation: relation.to_string(),
                about: about.into(),
                predicted,
                observed,
            })
        };
        // Stronger than predicted, or not predicted at all.
        let locked: BTreeSet<&String> = seen.held.keys().map(|(r, _)| r).filter(|r| existing.contains(*r)).collect();
        for rel in locked {
            let Some(mode) = strongest(rel, &|s| s == i).filter(|m| strong(*m)) else { continue };
            match predicted.get(rel) {
                Some(p) if *p >= mode => {}
                Some(p) => push(rel, "lock", p.sql_name().into(), format!("took {}", mode.sql_name())),
                None => push(rel, "lock", "no lock".into(), format!("took {}", mode.sql_name())),
            }
        }
        // Weaker than predicted. A relation the statement drops or renames is not in the look
        // after it under its old name (pg_locks is read by name): not compared.
        // (What a DO block runs included.)
        // Each as (its old name, its new one when it was renamed or moved).
        let nested = migsafe_sql::plpgsql::nested(st);
        let moved: Vec<(String, Option<String>)> = std::iter::once(&st.kind)
            .chain(nested.iter().map(|n| &n.kind))
            .flat_map(|kind| match kind {
                StmtKind::Drop { names, .. } => {
                    names.iter().filter_map(|q| resolve(&existing, q)).map(|r| (r, None)).collect()
                }
                StmtKind::Rename { object, column: None, new_name, .. } => resolve(&existing, object)
                    .map(|r| {
                        let schema = r.rsplit_once('.').map_or("public", |(s, _)| s).to_string();
                        (r, Some(format!("{schema}.{new_name}")))
                    })
                    .into_iter()
                    .collect(),
                StmtKind::AlterSchema { object, new_schema, .. } => resolve(&existing, object)
                    .map(|r| (r, Some(format!("{new_schema}.{}", object.name))))
                    .into_iter()
                    .collect(),
                _ => vec![],
            })
            .collect();
        let gone: Vec<&String> = moved.iter().map(|(old, _)| old).collect();
        for (rel, p) in predicted.iter().filter(|(r, p)| strong(**p) && !gone.contains(r)) {
            let got = strongest(rel, &|s| s <= i);
            if got.is_none_or(|g| g < *p) {
                let observed = got.map_or("took no lock on it".to_string(), |g| format!("took only {}", g.sql_name()));
                push(rel, "lock", p.sql_name().into(), observed);
            }
        }
        let rules: Vec<_> = findings.iter().filter(|f| f.statement == i).map(|f| f.rule).collect();
        // TRUNCATE gives a table new, empty storage (a new relfilenode, its indexes built over
        // nothing): neither a rewrite nor a scan of its rows.
        let truncated: Vec<String> = match &st.kind {
            StmtKind::Truncate { tables, .. } => tables.iter().filter_map(|q| resolve(&existing, q)).collect(),
            _ => vec![],
        };
        // What a rewrite or scan lint predicted is on: the first table it locks that existed,
        // else the first it names (lint took a new table for an existing one).
        let target = || {
            predicted
                .keys()
                .next()
                .cloned()
                .or_else(|| locks.first().map(|(q, _)| resolve(&existing, q).unwrap_or_else(|| q.sql())))
        };
        // Rewrites.
        let predicted_rewrite = rules.iter().any(|r| r.hazard() == Some(Hazard::Rewrite));
        // The relations of `seen` this statement changed that existed (not truncated ones).
        let of_this = |list: &'a [(String, usize)]| -> Vec<&'a String> {
            list.iter()
                .filter(|(r, s)| *s == i && existing.contains(r) && !truncated.contains(r))
                .map(|(r, _)| r)
                .collect()
        };
        let rewritten = of_this(seen.rewritten);
        if !predicted_rewrite {
            for r in &rewritten {
                push(r, "rewrite", "no rewrite".into(), "rewrote it (new relfilenode)".into());
            }
        } else if rewritten.is_empty() {
            push(
                &target().unwrap_or_default(),
                "rewrite",
                "a rewrite".into(),
                "did not rewrite it (same relfilenode)".into(),
            );
        }
        // Scans of a whole table under a lock the statement took that blocks writes.
        let predicted_scan = rules.iter().any(|r| r.scans());
        let scanned = of_this(seen.scanned);
        if !predicted_scan {
            for r in &scanned {
                // Nobody writes to a materialized view: only a lock that blocks its reads counts.
                let blocking = |m: &LockMode| match matviews.contains(*r) {
                    true => m.blocks() == Blocks::ReadsAndWrites,
                    false => m.blocks() != Blocks::Nothing,
                };
                let Some(mode) = strongest(r, &|s| s == i).filter(blocking) else { continue };
                push(r, "scan", "no scan".into(), format!("scanned it holding {}", mode.sql_name()));
            }
        } else if scanned.is_empty() {
            push(&target().unwrap_or_default(), "scan", "a scan".into(), "did not scan it".into());
        }
        // What a DROP … CASCADE takes with it: the views built on it, transitively.
        if let StmtKind::Drop { names, cascade: true, .. } = &st.kind {
            let roots: Vec<migsafe_catalog::QName> = names
                .iter()
                .map(|q| migsafe_catalog::QName::new(q.schema.as_deref().unwrap_or("public"), &q.name))
                .collect();
            for (name, _) in s0.views_on(&roots) {
                existing.remove(&format!("{}.{}", name.schema, name.name));
            }
        }
        // A relation renamed or moved is still the one that existed, under its new name.
        for (old, new) in moved {
            existing.remove(&old);
            existing.extend(new);
        }
        since.apply(st);
        for inner in &nested {
            since.apply(inner);
        }
    }
    out
}
