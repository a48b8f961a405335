//! The forward run of a rehearsal: timed statement by statement, with the lock tracer on a
//! second connection and rewrites seen by relfilenode.

use std::time::Instant;

use super::ms;
use super::trace::{self, Tracer};
use crate::exec::{run_observed, Prepared};
use crate::report::{MigrationReport, StepReport};
use crate::rollback;
use crate::scratch::ScratchDb;
use crate::EngineError;

/// Statement label `line N: TAG`.
fn label(p: &Prepared) -> impl Fn(usize) -> String + '_ {
    move |i| match p.statements.get(i) {
        Some(s) => format!("line {}: {}", p.line(i), s.tag),
        None => "commit".into(),
    }
}

/// Statements that lock rows (and their tables in ROW EXCLUSIVE at most) and cannot rewrite a
/// table themselves: INSERT, UPDATE, DELETE, MERGE, COPY FROM, SET and transaction control. A
/// trigger they fire can do more; its locks and rewrites are still seen, at the end of the run,
/// and the tracer's own polling sees locks at any time.
fn only_row_locks(st: &migsafe_sql::Statement) -> bool {
    use migsafe_sql::StmtKind as K;
    matches!(
        st.kind,
        K::Insert { .. } | K::Update { .. } | K::Delete { .. } | K::Merge { .. } | K::Copy { from: true, .. }
    ) || st.is_control()
}

/// What a forward run that succeeded leaves for the steps after it.
pub(super) struct Forward {
    /// Its duration.
    pub ms: f64,
    /// The relations (`schema.name`) it locked in a mode that can come with writing rows or
    /// changing a definition (anything above ROW SHARE), new ones included; None when that is
    /// not known for sure (statements ran outside one transaction, so a lock taken and released
    /// between two looks was missed).
    pub written: Option<std::collections::BTreeSet<String>>,
    /// Locks the session held after its statements: `(relation, mode)` → (ms, the statement
    /// that first held it).
    pub held: std::collections::BTreeMap<(String, String), (f64, usize)>,
    /// Relations whose relfilenode changed, with the statement (the first of a row-level run).
    pub rewritten: Vec<(String, usize)>,
    /// Tables scanned sequentially, with the statement (the first of a row-level run); only
    /// known in one transaction.
    pub scanned: Vec<(String, usize)>,
}

/// Lock modes that only read: a relation locked in nothing stronger kept its rows and definition.
fn reads_only(mode: &str) -> bool {
    mode == "AccessShareLock" || mode == "RowShareLock"
}

/// Forward run with lock trace and rewrite detection. Returns its duration and what it wrote,
/// or None when it failed (the failure is recorded in the report).
pub(super) fn forward_traced(
    db: &ScratchDb,
    c: &mut postgres::Client,
    prepared: &Prepared,
    capture_sql: Option<&str>,
    synthetic: bool,
    mut opaque: Option<&mut rollback::Opaque>,
    rep: &mut MigrationReport,
) -> Result<Option<Forward>, EngineError> {
    let capture = match capture_sql.map(|t| Prepared::from_text("capture.sql", t)).transpose() {
        Ok(c) => c,
        Err(e) => {
            rep.push(StepReport::fail("forward", 0.0, format!("the data capture step does not parse: {e}")));
            return Ok(None);
        }
    };
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[])?.get(0);
    let look = trace::SelfLook::prepare(c)?;
    let nodes = std::cell::RefCell::new(look.relations(c));
    let tracer = Tracer::start(&db.spec, &db.tracer, pid)?;
    let labels = label(prepared);
    let existing: std::collections::HashSet<String> = nodes.borrow().values().map(|r| r.name.clone()).collect();
    let mut rewrites = Vec::new();
    let mut rewritten: Vec<(String, usize)> = Vec::new();
    let mut scanned: Vec<(String, usize)> = Vec::new();
    let mut held: std::collections::BTreeMap<(String, String), (f64, usize)> = Default::default();
    // Locks on relations a statement dropped: the own look cannot name them, and the tracer
    // names them from its first poll after the statement, which can fall in a later one's time.
    let mut dropped: std::collections::BTreeMap<(String, String), (f64, usize)> = Default::default();
    let current = tracer.current.clone();
    // Row-level statements in a row are traced as one run: the locks and rewrites are read once
    // after its last statement and put on its first, so a seed of 10,000 INSERTs costs its own
    // time, not three round trips per row. Every other statement is traced alone.
    let row_level: Vec<bool> = prepared.statements.iter().map(only_row_locks).collect();
    let mut run: Option<(usize, f64)> = None;
    let t = Instant::now();
    // The scans counted from here on are the migration's, not the data capture's before it.
    let mut ready = |client: &mut postgres::Client| *nodes.borrow_mut() = look.relations(client);
    let result = run_observed(c, capture.as_ref(), prepared, &mut ready, &mut |client, i, took| {
        let started = tracer.elapsed_ms() - took.as_secs_f64() * 1000.0;
        let (first, since) = *run.get_or_insert((i, started));
        let run_goes_on = row_level[i] && row_level.get(i + 1).copied().unwrap_or(false);
        if !run_goes_on {
            for (name, oid, mode) in look.own_locks(client) {
                match name {
                    Some(name) => {
                        held.entry((name, mode)).or_insert((since, first));
                    }
                    // Dropped by this run: named as it was before it (tables, indexes and
                    // materialized views), for the report only.
                    None => {
                        if let Some(r) = nodes.borrow().get(&oid) {
                            dropped.entry((r.name.clone(), mode)).or_insert((since, first));
                        }
                    }
                }
            }
            let after = look.relations(client);
            let mut nodes = nodes.borrow_mut();
            let found = trace::rewrites(&nodes, &after, &labels(first));
            rewritten.extend(found.iter().map(|r| (r.relation.clone(), first)));
            scanned.extend(trace::scanned(&nodes, &after).into_iter().map(|r| (r, first)));
            rewrites.extend(found);
            *nodes = after;
            run = None;
        }
        if let Some(o) = opaque.as_deref_mut() {
            o.observe(client, i);
        }
        current.store(i + 1, std::sync::atomic::Ordering::Relaxed);
    });
    let took = ms(t);
    let commit_ms = tracer.elapsed_ms();
    tracer.wait_for_polls(1);
    // Relations created by the migration are invisible to everyone else: only pre-existing ones matter.
    // A name dropped and made again in the run is in both: the first taking counts.
    let mut to_commit = dropped;
    for (k, v) in &held {
        let e = to_commit.entry(k.clone()).or_insert(*v);
        if v.0 < e.0 {
            *e = *v;
        }
    }
    rep.locks = tracer.finish(&labels, &to_commit, commit_ms, &|rel| existing.contains(rel));
    // In one transaction every lock is held to its end, so the session's own look after each
    // statement saw them all (and the tracer the ones a deferred trigger took at commit).
    let written = (prepared.tx_mode == migsafe_sql::lint::TxMode::Wrapped).then(|| {
        let own = held.keys().filter(|(_, mode)| !reads_only(mode)).map(|(rel, _)| rel.clone());
        let traced = rep.locks.iter().filter(|l| !reads_only(l.mode.pg_name())).map(|l| l.relation.clone());
        own.chain(traced).collect()
    });
    rep.rewrites = rewrites;
    match result {
        Ok(runs) => {
            rep.statements = runs.iter().map(|r| (r.line, r.tag.clone(), r.ms)).collect();
            rep.push(StepReport::pass("forward", took, format!("{} statements", runs.len())));
            Ok(Some(Forward { ms: took, written, held, rewritten, scanned }))
        }
        Err(e) => {
            let mut detail = e.to_string();
            // RAISE, a value a function or cast rejects, or a constraint the data breaks: with
            // made-up rows that may be the rows.
            // Not for NOT NULL on ALTER TABLE (adding a NOT NULL column without a default, SET
            // NOT NULL over NULLs): that fails on any rows, made up or not.
            let any_rows = matches!(&e, crate::exec::ExecError::Statement { sqlstate, tag, .. }
                if sqlstate == "23502" && tag == "ALTER TABLE");
            if any_rows && detail.contains("contains null values") {
                detail.push_str(
                    " (rows already in the table hold NULL there: a new NOT NULL column needs a DEFAULT; an existing \
                     column needs a backfill first, e.g. `migsafe backfill --set \"col = …\" --where \"col IS NULL\"`, \
                     then CHECK (col IS NOT NULL) NOT VALID, VALIDATE CONSTRAINT and SET NOT NULL)",
                );
            }
            if synthetic
                && !any_rows
                && e.sqlstate().is_some_and(|s| s == "P0001" || s.starts_with("22") || s.starts_with("23"))
            {
                detail.push_str(
                    " (the rows were made up by --rows: a migration that checks or relies on what real data looks \
                     like may reject them; rehearse on a copy of real data with --data DUMP)",
                );
            }
            rep.push(StepReport::fail("forward", took, detail));
            Ok(None)
        }
    }
}
