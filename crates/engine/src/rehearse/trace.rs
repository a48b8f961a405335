//! Lock tracing: while a migration runs, a second session polls `pg_locks` for the
//! migration's backend every couple of milliseconds and records each relation lock it holds,
//! in which mode, from when and until when; and after each statement the migration's own
//! session compares relfilenodes to catch table and index rewrites.

use postgres::Client;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use migsafe_pg::ConnSpec;
use migsafe_sql::LockMode;

use crate::report::{LockHold, Rewrite};

/// How often the tracer looks.
pub const POLL: Duration = Duration::from_millis(2);

#[derive(Debug, Clone)]
struct Seen {
    first: f64,
    last: f64,
    statement: usize,
}

/// A running tracer.
pub struct Tracer {
    stop: Arc<AtomicBool>,
    /// Index of the statement running now (set by the runner).
    pub current: Arc<AtomicUsize>,
    handle: Option<JoinHandle<BTreeMap<(String, String), Seen>>>,
    start: Instant,
}

const LOCKS_SQL: &str = "SELECT n.nspname || '.' || c.relname, l.mode \
     FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE l.pid = $1 AND l.locktype = 'relation' AND l.granted \
       AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relkind IN ('r', 'p', 'i', 'I', 'm', 'S', 'v')";

impl Tracer {
    /// Start polling the locks of backend `pid` through a new session on `spec`.
    pub fn start(spec: &ConnSpec, pid: i32) -> Result<Tracer, migsafe_pg::PgError> {
        let mut client = spec.with_application_name("migsafe lock tracer").connect()?;
        let stop = Arc::new(AtomicBool::new(false));
        let current = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let (stop2, current2) = (stop.clone(), current.clone());
        let handle = std::thread::spawn(move || {
            let mut seen: BTreeMap<(String, String), Seen> = BTreeMap::new();
            let stmt = client.prepare(LOCKS_SQL).ok();
            while !stop2.load(Ordering::Relaxed) {
                if let Some(stmt) = &stmt {
                    if let Ok(rows) = client.query(stmt, &[&pid]) {
                        let now = start.elapsed().as_secs_f64() * 1000.0;
                        let at = current2.load(Ordering::Relaxed);
                        for r in rows {
                            let key: (String, String) = (r.get(0), r.get(1));
                            seen.entry(key).and_modify(|s| s.last = now).or_insert(Seen {
                                first: now,
                                last: now,
                                statement: at,
                            });
                        }
                    }
                }
                std::thread::sleep(POLL);
            }
            seen
        });
        Ok(Tracer { stop, current, handle: Some(handle), start })
    }

    /// Milliseconds since the tracer started.
    pub fn elapsed_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    /// Stop and return the locks held, with the label of the statement that took each.
    /// `held_to_commit` are locks the migration's own session saw itself holding after a
    /// statement (inside its transaction): (relation, mode) → (ms taken, statement); they are
    /// held until `commit_ms`. `existing` limits the result to relations that existed before.
    pub fn finish(
        mut self,
        label: &dyn Fn(usize) -> String,
        held_to_commit: &BTreeMap<(String, String), (f64, usize)>,
        commit_ms: f64,
        existing: &dyn Fn(&str) -> bool,
    ) -> Vec<LockHold> {
        self.stop.store(true, Ordering::Relaxed);
        let mut seen = self.handle.take().and_then(|h| h.join().ok()).unwrap_or_default();
        for (key, (first, stmt)) in held_to_commit {
            let e = seen.entry(key.clone()).or_insert(Seen { first: *first, last: commit_ms, statement: *stmt });
            if *first < e.first {
                e.first = *first;
                e.statement = *stmt;
            }
            e.last = e.last.max(commit_ms);
        }
        seen.retain(|(rel, _), _| existing(rel));
        // Relation locks only come in the eight table-lock modes; anything else pg_locks shows
        // on a relation (SIReadLock, a serializable transaction's predicate lock) blocks no one.
        let mut out: Vec<LockHold> = seen
            .into_iter()
            .filter_map(|((relation, mode), s)| {
                let mode = mode.parse::<LockMode>().ok()?;
                Some(LockHold {
                    relation,
                    held_ms: (s.last - s.first) + POLL.as_secs_f64() * 1000.0,
                    start_ms: s.first,
                    statement: label(s.statement),
                    blocks: mode.blocks(),
                    mode,
                })
            })
            .collect();
        out.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms).then(a.relation.cmp(&b.relation)));
        out
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The relation locks this session holds now: (relation, mode).
pub fn own_locks(client: &mut Client) -> Vec<(String, String)> {
    client
        .query(
            "SELECT n.nspname || '.' || c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' \
             AND l.granted AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')",
            &[],
        )
        .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        .unwrap_or_default()
}

/// A user relation (table, index or materialized view) as the migration's session sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelState {
    /// `schema.name`.
    pub name: String,
    /// Its relfilenode: another one after a statement means it was rewritten.
    pub node: u32,
    /// Sequential scans of it in the session's transaction so far (`pg_stat_xact_user_tables`;
    /// 0 for an index). Only meaningful inside one transaction: the count starts at 0 in each.
    pub seq_scans: i64,
}

/// The user relations that exist now, by oid.
pub fn relations(client: &mut Client) -> HashMap<u32, RelState> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname || '.' || c.relname, c.relfilenode, \
                    CASE WHEN c.relkind IN ('r', 'm') THEN pg_stat_get_xact_numscans(c.oid) ELSE 0 END \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'i', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'migsafe_backup')",
            &[],
        )
        .unwrap_or_default();
    rows.iter()
        .map(|r| (r.get::<_, u32>(0), RelState { name: r.get(1), node: r.get(2), seq_scans: r.get(3) }))
        .collect()
}

/// Relations that existed in `before` and have another relfilenode in `after`.
pub fn rewrites(before: &HashMap<u32, RelState>, after: &HashMap<u32, RelState>, statement: &str) -> Vec<Rewrite> {
    let mut out: Vec<Rewrite> = before
        .iter()
        .filter_map(|(oid, b)| match after.get(oid) {
            Some(a) if a.node != b.node => Some(Rewrite { relation: b.name.clone(), statement: statement.to_string() }),
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| a.relation.cmp(&b.relation));
    out
}

/// Tables that existed in `before` and were scanned sequentially between the two looks (in
/// the same transaction), by their name in `before`.
pub fn scanned(before: &HashMap<u32, RelState>, after: &HashMap<u32, RelState>) -> Vec<String> {
    let mut out: Vec<String> = before
        .iter()
        .filter(|(oid, b)| after.get(oid).is_some_and(|a| a.seq_scans > b.seq_scans))
        .map(|(_, b)| b.name.clone())
        .collect();
    out.sort();
    out
}
