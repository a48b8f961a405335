//! The guide's monitoring queries as one view: connections by state and application,
//! long-running queries, lock waits as a tree of who blocks whom (with their statements), and
//! the largest tables. Read-only; a role with pg_monitor sees everything.

use postgres::Client;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::EngineError;

/// Sessions with the same application and state.
#[derive(Debug, Clone, Serialize)]
pub struct Connections {
    /// application_name.
    pub application: String,
    /// state (`active`, `idle`, `idle in transaction`…).
    pub state: String,
    /// How many.
    pub count: i64,
}

/// A query running longer than the threshold.
#[derive(Debug, Clone, Serialize)]
pub struct LongQuery {
    /// Backend pid.
    pub pid: i32,
    /// User.
    pub user: String,
    /// application_name.
    pub application: String,
    /// State.
    pub state: String,
    /// Seconds running.
    pub seconds: f64,
    /// What it waits for, if anything.
    pub waiting_for: Option<String>,
    /// The statement.
    pub query: String,
}

/// A session in the lock-wait tree.
#[derive(Debug, Clone, Serialize)]
pub struct LockNode {
    /// Backend pid.
    pub pid: i32,
    /// User.
    pub user: String,
    /// State.
    pub state: String,
    /// Seconds since its statement (or transaction) started.
    pub seconds: f64,
    /// The statement.
    pub query: String,
    /// The lock it waits for (`AccessExclusiveLock on public.t`).
    pub waiting_for: Option<String>,
    /// Sessions waiting behind it.
    pub blocked: Vec<LockNode>,
}

/// A table and its size.
#[derive(Debug, Clone, Serialize)]
pub struct TableSize {
    /// Table.
    pub table: String,
    /// Bytes with indexes and TOAST.
    pub bytes: i64,
    /// Human size.
    pub size: String,
    /// Estimated rows.
    pub rows: i64,
}

/// One look at the database.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorView {
    /// When (server time).
    pub at: String,
    /// Total sessions on this database.
    pub total_connections: i64,
    /// By application and state.
    pub connections: Vec<Connections>,
    /// Long-running queries.
    pub long_running: Vec<LongQuery>,
    /// Lock waits: roots are sessions blocking others without being blocked.
    pub lock_waits: Vec<LockNode>,
    /// Largest tables.
    pub largest_tables: Vec<TableSize>,
}

/// Read one view. `long` is the threshold for long-running queries.
pub fn look(c: &mut Client, long: Duration) -> Result<MonitorView, EngineError> {
    let at: String = c.query_one("SELECT clock_timestamp()::text", &[])?.get(0);
    let connections: Vec<Connections> = c
        .query(
            "SELECT coalesce(nullif(application_name, ''), '(none)'), coalesce(state, backend_type), count(*) FROM pg_stat_activity \
             WHERE datname = current_database() GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2",
            &[],
        )?
        .iter()
        .map(|r| Connections { application: r.get(0), state: r.get(1), count: r.get(2) })
        .collect();
    let total_connections = connections.iter().map(|x| x.count).sum();
    let long_running = c
        .query(
            "SELECT pid, coalesce(usename::text, ''), coalesce(application_name, ''), coalesce(state, ''), \
               extract(epoch FROM clock_timestamp() - coalesce(query_start, xact_start))::float8, \
               CASE WHEN wait_event IS NOT NULL THEN wait_event_type || ': ' || wait_event END, left(query, 300) \
             FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle' \
               AND clock_timestamp() - coalesce(query_start, xact_start) > make_interval(secs => $1) ORDER BY 5 DESC",
            &[&long.as_secs_f64()],
        )?
        .iter()
        .map(|r| LongQuery {
            pid: r.get(0),
            user: r.get(1),
            application: r.get(2),
            state: r.get(3),
            seconds: r.get(4),
            waiting_for: r.get(5),
            query: r.get(6),
        })
        .collect();
    let lock_waits = lock_tree(c)?;
    let largest_tables = c
        .query(
            "SELECT n.nspname || '.' || c.relname, pg_total_relation_size(c.oid), pg_size_pretty(pg_total_relation_size(c.oid)), \
               greatest(c.reltuples, 0)::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
             ORDER BY 2 DESC LIMIT 10",
            &[],
        )?
        .iter()
        .map(|r| TableSize { table: r.get(0), bytes: r.get(1), size: r.get(2), rows: r.get(3) })
        .collect();
    Ok(MonitorView { at, total_connections, connections, long_running, lock_waits, largest_tables })
}

/// Who blocks whom, from `pg_blocking_pids`, as trees rooted at sessions that block others
/// without waiting themselves.
fn lock_tree(c: &mut Client) -> Result<Vec<LockNode>, EngineError> {
    let rows = c.query(
        "SELECT a.pid, coalesce(a.usename::text, ''), coalesce(a.state, ''), \
           extract(epoch FROM clock_timestamp() - coalesce(a.query_start, a.xact_start))::float8, left(a.query, 300), \
           pg_blocking_pids(a.pid), \
           (SELECT l.mode || ' on ' || coalesce(l.relation::regclass::text, l.locktype) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted LIMIT 1) \
         FROM pg_stat_activity a WHERE a.datname = current_database()",
        &[],
    )?;
    struct S {
        user: String,
        state: String,
        seconds: f64,
        query: String,
        blockers: Vec<i32>,
        waiting: Option<String>,
    }
    let mut all: BTreeMap<i32, S> = BTreeMap::new();
    for r in rows {
        all.insert(
            r.get(0),
            S {
                user: r.get(1),
                state: r.get(2),
                seconds: r.get(3),
                query: r.get(4),
                blockers: r.get(5),
                waiting: r.get(6),
            },
        );
    }
    // A waiter hangs under a blocker that is itself waiting when there is one (so a queue
    // shows as the chain it is), else under its first blocker.
    let waiting: Vec<i32> =
        all.iter().filter(|(_, s)| s.blockers.iter().any(|b| all.contains_key(b))).map(|(p, _)| *p).collect();
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for pid in &waiting {
        let s = &all[pid];
        let present: Vec<i32> = s.blockers.iter().copied().filter(|b| all.contains_key(b)).collect();
        let parent = present.iter().find(|b| waiting.contains(b)).or(present.first()).copied();
        if let Some(b) = parent {
            children.entry(b).or_default().push(*pid);
        }
    }
    fn build(pid: i32, all: &BTreeMap<i32, S>, children: &BTreeMap<i32, Vec<i32>>, depth: usize) -> LockNode {
        let s = &all[&pid];
        LockNode {
            pid,
            user: s.user.clone(),
            state: s.state.clone(),
            seconds: s.seconds,
            query: s.query.clone(),
            waiting_for: s.waiting.clone(),
            blocked: if depth > 32 {
                vec![]
            } else {
                children
                    .get(&pid)
                    .map(|v| v.iter().map(|c| build(*c, all, children, depth + 1)).collect())
                    .unwrap_or_default()
            },
        }
    }
    let roots: Vec<i32> = children.keys().filter(|p| !waiting.contains(p)).copied().collect();
    Ok(roots.into_iter().map(|p| build(p, &all, &children, 0)).collect())
}
