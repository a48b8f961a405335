//! Lock tracing: while a migration runs, a second session polls `pg_locks` for the
//! migration's backend every couple of milliseconds and records each relation lock it holds,
//! in which mode, from when and until when; and after each statement the migration's own
//! session compares relfilenodes to catch table and index rewrites.

use postgres::{Client, Statement};
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

/// The tracer's session on a scratch database, idle between two forward runs. A new session
/// per migration cost a backend start and a prepare each time.
#[derive(Default)]
pub struct TracerSession(Arc<std::sync::Mutex<Option<(Client, Statement)>>>);

impl TracerSession {
    /// Close the idle session, if any.
    pub fn close(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// A running tracer.
pub struct Tracer {
    stop: Arc<AtomicBool>,
    /// Polls of `pg_locks` done so far.
    polls: Arc<AtomicUsize>,
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
    /// Start polling the locks of backend `pid` through the session kept in `session` (a new
    /// one on `spec` when there is none, or it no longer answers), and wait for its first poll.
    pub fn start(spec: &ConnSpec, session: &TracerSession, pid: i32) -> Result<Tracer, migsafe_pg::PgError> {
        let idle = session.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        let (mut client, stmt) = match idle {
            Some(ready) if !ready.0.is_closed() => ready,
            _ => {
                let mut c = spec.with_application_name("migsafe lock tracer").connect()?;
                let s = c.prepare(LOCKS_SQL)?;
                (c, s)
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let current = Arc::new(AtomicUsize::new(0));
        let polls = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let (stop2, current2, polls2, slot) = (stop.clone(), current.clone(), polls.clone(), session.0.clone());
        let handle = std::thread::spawn(move || {
            let mut seen: BTreeMap<(String, String), Seen> = BTreeMap::new();
            while !stop2.load(Ordering::Relaxed) {
                if let Ok(rows) = client.query(&stmt, &[&pid]) {
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
                polls2.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(POLL);
            }
            if !client.is_closed() {
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some((client, stmt));
            }
            seen
        });
        let tracer = Tracer { stop, polls, current, handle: Some(handle), start };
        tracer.wait_for_polls(1);
        Ok(tracer)
    }

    /// Wait until the tracer has finished `n` more polls of `pg_locks` (the one under way, if
    /// any, counts), or its thread ended. Replaces fixed sleeps: at the start, so the first
    /// statement runs under a live tracer; at the end, so a poll that started before the
    /// commit is counted.
    pub fn wait_for_polls(&self, n: usize) {
        let target = self.polls.load(Ordering::SeqCst) + n;
        let t0 = Instant::now();
        while self.polls.load(Ordering::SeqCst) < target
            && self.handle.as_ref().is_some_and(|h| !h.is_finished())
            && t0.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_micros(200));
        }
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

/// The two looks the migration's session takes at itself after its statements, prepared once
/// per forward run (a run of Lemmy's history takes about 9,000 of them; parsing and planning
/// each anew was a few seconds of it).
pub struct SelfLook {
    locks: Statement,
    relations: Statement,
}

impl SelfLook {
    /// Prepare both on `client` (outside a failed transaction).
    pub fn prepare(client: &mut Client) -> Result<SelfLook, postgres::Error> {
        Ok(SelfLook {
            // A relation this transaction dropped has no pg_class row any more: its oid is kept.
            locks: client.prepare(
                "SELECT n.nspname || '.' || c.relname, l.relation, l.mode FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation \
                 LEFT JOIN pg_namespace n ON n.oid = c.relnamespace WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation' \
                 AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND (n.nspname IS NULL OR n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast'))",
            )?,
            relations: client.prepare(
                "SELECT c.oid, n.nspname || '.' || c.relname, c.relfilenode, \
                        CASE WHEN c.relkind IN ('r', 'm') THEN pg_stat_get_xact_numscans(c.oid) ELSE 0 END \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'i', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'migsafe_backup')",
            )?,
        })
    }

    /// The relation locks the session holds now: (relation, oid, mode); the relation is None
    /// when this transaction dropped it.
    pub fn own_locks(&self, client: &mut Client) -> Vec<(Option<String>, u32, String)> {
        client
            .query(&self.locks, &[])
            .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
            .unwrap_or_default()
    }

    /// The user relations that exist now, by oid.
    pub fn relations(&self, client: &mut Client) -> HashMap<u32, RelState> {
        let rows = client.query(&self.relations, &[]).unwrap_or_default();
        rows.iter()
            .map(|r| (r.get::<_, u32>(0), RelState { name: r.get(1), node: r.get(2), seq_scans: r.get(3) }))
            .collect()
    }
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
