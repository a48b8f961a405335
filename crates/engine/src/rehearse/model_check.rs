//! Lint's model checked by PostgreSQL. For each statement of a rehearsed migration, the table
//! locks lint predicts (`migsafe_sql::lock::statement_locks`, the model its rules and the risk
//! use) and the rewrites its rules predict, against what the forward run saw: the locks the
//! migration's own backend held after the statement (`pg_locks`) and the tables whose
//! relfilenode changed. A difference on a table that existed before the migration is a
//! `lint-model` mismatch: reported as a warning of the forward step and in the JSON
//! (`lint_model`), so real migrations keep showing where the model is not exact.
//!
//! Only locks that block something that matters are compared (SHARE UPDATE EXCLUSIVE and
//! stronger); row-level statements' ROW EXCLUSIVE and reads' ACCESS SHARE are not predicted
//! and not compared. Only a migration run in one transaction is checked: outside one, a lock
//! taken and released between two looks is not seen.

use std::collections::BTreeMap;

use migsafe_catalog::Snapshot;
use migsafe_sql::lint::hazard::Hazard;
use migsafe_sql::lint::Finding;
use migsafe_sql::lock::{statement_locks, LockMode};
use migsafe_sql::{QualName, StmtKind};

use crate::exec::Prepared;
use crate::report::ModelMismatch as Mismatch;

/// What the forward run saw: locks held after each statement, `(relation, pg_locks mode)` →
/// the statement that first held it; and the tables rewritten, with the statement.
pub(super) struct Seen<'a> {
    pub held: &'a BTreeMap<(String, String), (f64, usize)>,
    pub rewritten: &'a [(String, usize)],
}

fn strong(m: LockMode) -> bool {
    m >= LockMode::ShareUpdateExclusive
}

/// The mismatches of the migration `prepared`, which ran on the schema `s0` in one
/// transaction, given lint's `findings` for it.
pub(super) fn mismatches(prepared: &Prepared, s0: &Snapshot, findings: &[Finding], seen: &Seen) -> Vec<Mismatch> {
    // Tables (and materialized views) that existed before, by `schema.name`.
    let existing: std::collections::BTreeSet<String> = s0
        .tables
        .keys()
        .chain(s0.views.iter().filter(|(_, v)| v.materialized).map(|(n, _)| n))
        .map(|q| format!("{}.{}", q.schema, q.name))
        .collect();
    let index_table = |q: &QualName| -> Option<QualName> {
        s0.tables.iter().find_map(|(tn, t)| {
            (t.indexes.contains_key(&q.name) && q.schema.as_deref().is_none_or(|s| s == tn.schema))
                .then(|| QualName { schema: Some(tn.schema.clone()), name: tn.name.clone() })
        })
    };
    // A predicted name to the `schema.name` it is: qualified as written, else the one table of
    // that name that existed (public first).
    let resolve = |q: &QualName| -> Option<String> {
        if let Some(s) = &q.schema {
            return Some(format!("{s}.{}", q.name));
        }
        let public = format!("public.{}", q.name);
        if existing.contains(&public) {
            return Some(public);
        }
        existing.iter().find(|e| e.rsplit_once('.').is_some_and(|(_, n)| n == q.name)).cloned()
    };
    let mut out = Vec::new();
    for (i, st) in prepared.statements.iter().enumerate() {
        let line = prepared.line(i);
        let predicted: BTreeMap<String, LockMode> = statement_locks(&st.kind, &index_table)
            .into_iter()
            .filter_map(|(q, m)| Some((resolve(&q)?, m)))
            .filter(|(r, _)| existing.contains(r))
            .collect();
        // The strongest mode the session held on `rel`, first taken by a statement `by` accepts.
        let strongest = |rel: &str, by: &dyn Fn(usize) -> bool| {
            seen.held
                .iter()
                .filter(|((r, _), (_, s))| r == rel && by(*s))
                .filter_map(|((_, m), _)| m.parse::<LockMode>().ok())
                .max()
        };
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
        let locked: std::collections::BTreeSet<&String> =
            seen.held.keys().map(|(r, _)| r).filter(|r| existing.contains(*r)).collect();
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
        let gone: Vec<String> = match &st.kind {
            StmtKind::Drop { names, .. } => names.iter().filter_map(resolve).collect(),
            StmtKind::Rename { object, column: None, .. } | StmtKind::AlterSchema { object, .. } => {
                resolve(object).into_iter().collect()
            }
            _ => vec![],
        };
        for (rel, p) in predicted.iter().filter(|(r, p)| strong(**p) && !gone.contains(r)) {
            let got = strongest(rel, &|s| s <= i);
            if got.is_none_or(|g| g < *p) {
                let observed = got.map_or("took no lock on it".to_string(), |g| format!("took only {}", g.sql_name()));
                push(rel, "lock", p.sql_name().into(), observed);
            }
        }
        // Rewrites.
        let predicted_rewrite = findings.iter().any(|f| f.statement == i && f.rule.hazard() == Some(Hazard::Rewrite));
        let rewritten: Vec<&String> =
            seen.rewritten.iter().filter(|(r, s)| *s == i && existing.contains(r)).map(|(r, _)| r).collect();
        if !predicted_rewrite {
            for r in &rewritten {
                push(r, "rewrite", "no rewrite".into(), "rewrote it (new relfilenode)".into());
            }
        } else if rewritten.is_empty() {
            let on = predicted.keys().next().cloned().unwrap_or_default();
            push(&on, "rewrite", "a rewrite".into(), "did not rewrite it (same relfilenode)".into());
        }
    }
    out
}
