//! Running one migration (or rollback) on a production database: lock_timeout so DDL never
//! waits in the lock queue in front of live traffic, retries with exponential backoff and
//! jitter after a lock timeout, the history row updated inside the migration's own transaction
//! (or after every statement when it cannot have one), failed CONCURRENTLY builds cleaned up,
//! and cancellation between and during statements.

use postgres::{CancelToken, Client, NoTls};
use rand::Rng;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use migsafe_sql::lint::TxMode;
use migsafe_sql::model::StmtKind;
use migsafe_sql::quote_literal;

use crate::exec::{ExecError, Prepared};
use migsafe_pg::ConnSpec;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// lock_timeout per attempt.
    pub lock_timeout: Duration,
    /// statement_timeout (None: the server's).
    pub statement_timeout: Option<Duration>,
    /// Retries after a lock timeout.
    pub lock_retries: u32,
    /// First backoff; doubles each retry, with up to 50 % jitter.
    pub backoff: Duration,
    /// `[session]` settings of `migsafe.toml`, set in the migration's session.
    pub session: crate::config::SessionConfig,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            lock_timeout: Duration::from_secs(2),
            statement_timeout: None,
            lock_retries: 5,
            backoff: Duration::from_millis(250),
            session: Default::default(),
        }
    }
}

/// Cancellation shared with a Ctrl-C handler.
#[derive(Clone, Default)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    token: Arc<Mutex<Option<CancelToken>>>,
    /// The settings the watched connection was made with (TLS for the cancel request).
    spec: Arc<Mutex<Option<ConnSpec>>>,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cancel({})", self.requested())
    }
}

impl Cancel {
    /// Ask to stop: the running statement is cancelled on the server.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Some(t) = self.token.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            match self.spec.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
                Some(spec) => {
                    let _ = spec.cancel(t);
                }
                None => {
                    let _ = t.cancel_query(NoTls);
                }
            }
        }
    }

    /// The connection settings of the connections this will cancel (so the cancel request
    /// uses the same TLS settings).
    pub fn connections_from(&self, spec: &ConnSpec) {
        *self.spec.lock().unwrap_or_else(|p| p.into_inner()) = Some(spec.clone());
    }

    /// Was it asked?
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    fn watch(&self, c: &Client) {
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some(c.cancel_token());
    }
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    /// Finished.
    pub ok: bool,
    /// Wall time.
    pub ms: f64,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
    /// The error that stopped it.
    pub error: Option<ExecError>,
    /// Indexes of statements that completed and committed.
    pub done: Vec<usize>,
    /// What happened along the way (retries, cleanups).
    pub events: Vec<String>,
}

fn retryable(e: &ExecError) -> bool {
    // lock_not_available (lock_timeout), deadlock_detected.
    matches!(e.sqlstate(), Some("55P03") | Some("40P01"))
}

fn sleep_backoff(s: &RunSettings, attempt: u32) -> Duration {
    let base = s.backoff.as_secs_f64() * 2f64.powi(attempt.saturating_sub(1) as i32);
    let jitter = rand::thread_rng().gen_range(0.0..0.5);
    let d = Duration::from_secs_f64((base * (1.0 + jitter)).min(30.0));
    std::thread::sleep(d);
    d
}

fn settings_sql(s: &RunSettings, local: bool) -> String {
    let scope = if local { "LOCAL " } else { "" };
    let mut sql = format!("SET {scope}lock_timeout = {}", s.lock_timeout.as_millis());
    match s.statement_timeout {
        Some(t) => sql.push_str(&format!("; SET {scope}statement_timeout = {}", t.as_millis())),
        None => sql.push_str(&format!("; SET {scope}statement_timeout = 0")),
    }
    let session = s.session.set_sql(local);
    if !session.is_empty() {
        sql.push_str("; ");
        sql.push_str(&session);
    }
    sql
}

fn log_entry(p: &Prepared, i: usize, ms: f64) -> String {
    serde_json::json!({"index": i, "tag": p.statements[i].tag, "line": p.line(i), "ms": ms}).to_string()
}

/// Where a run is recorded.
pub struct Target<'a> {
    /// The history row.
    pub history_id: i64,
    /// Status it gets when the run finishes (applied, or rolled back).
    pub done_status: super::history::RunStatus,
    /// Statements an earlier, interrupted run already did.
    pub skip: &'a [usize],
    /// The history table the row is in.
    pub history: &'a super::history::HistoryTable,
}

/// Marks the history row finished, inside the migration's transaction when it has one.
type Finish<'a> = dyn Fn(&mut postgres::Transaction, f64, &[String]) -> Result<(), postgres::Error> + 'a;

/// Run `p` on `c`, recording progress in the target history row (marked finished in the same
/// transaction as the last statement when there is one).
pub fn run_migration(
    c: &mut Client,
    p: &Prepared,
    capture: Option<&Prepared>,
    target: &Target,
    s: &RunSettings,
    cancel: &Cancel,
) -> RunOutcome {
    let (history_id, done_status, skip) = (target.history_id, target.done_status, target.skip);
    cancel.watch(c);
    let t0 = Instant::now();
    let mut out = RunOutcome { ok: false, ms: 0.0, attempts: 0, error: None, done: skip.to_vec(), events: vec![] };
    let finish = |c: &mut postgres::Transaction, ms: f64, log: &[String]| -> Result<(), postgres::Error> {
        c.execute(
            &format!(
                "UPDATE {} SET status = {}, finished_at = clock_timestamp(), duration_ms = $2, \
                 statement_log = statement_log || $3::text::jsonb WHERE id = $1",
                target.history.table(),
                quote_literal(done_status.as_str())
            ),
            &[&history_id, &ms, &format!("[{}]", log.join(","))],
        )
        .map(|_| ())
    };
    if p.tx_mode == TxMode::Wrapped {
        run_wrapped(c, p, capture, s, cancel, &finish, t0, &mut out);
        return out;
    }
    if !run_statements(c, p, capture, target, s, cancel, &mut out) {
        return out;
    }
    out.ms = t0.elapsed().as_secs_f64() * 1000.0;
    if out.error.is_none() {
        let done = c.transaction().and_then(|mut tx| {
            finish(&mut tx, out.ms, &[])?;
            tx.commit()
        });
        match done {
            Ok(()) => out.ok = true,
            Err(e) => out.error = Some(ExecError::Connection(e.to_string())),
        }
    }
    out
}

/// A migration in one transaction: the whole of it again after a lock_timeout, up to the
/// retries allowed (nothing of a failed attempt stays).
#[allow(clippy::too_many_arguments)]
fn run_wrapped(
    c: &mut Client,
    p: &Prepared,
    capture: Option<&Prepared>,
    s: &RunSettings,
    cancel: &Cancel,
    finish: &Finish,
    t0: Instant,
    out: &mut RunOutcome,
) {
    loop {
        out.attempts += 1;
        match wrapped_attempt(c, p, capture, s, cancel, &finish, t0) {
            Ok(()) => {
                out.ok = true;
                out.done = (0..p.statements.len()).collect();
                break;
            }
            Err(e) => {
                if retryable(&e) && out.attempts <= s.lock_retries && !cancel.requested() {
                    let waited = sleep_backoff(s, out.attempts);
                    out.events.push(format!(
                        "attempt {} hit the {} ms lock_timeout ({}); rolled back, retrying after {} ms",
                        out.attempts,
                        s.lock_timeout.as_millis(),
                        e,
                        waited.as_millis()
                    ));
                    continue;
                }
                out.error = Some(e);
                break;
            }
        }
    }
    out.ms = t0.elapsed().as_secs_f64() * 1000.0;
}

/// A migration statement by statement (no-transaction files, and files with their own
/// BEGIN/COMMIT): each statement logged as it commits, so an interruption leaves an exact log
/// and `--resume` goes on from the first statement not done. False when it could not start
/// (the session settings or the capture step failed): nothing ran.
fn run_statements(
    c: &mut Client,
    p: &Prepared,
    capture: Option<&Prepared>,
    target: &Target,
    s: &RunSettings,
    cancel: &Cancel,
    out: &mut RunOutcome,
) -> bool {
    let (history_id, skip) = (target.history_id, target.skip);
    // Statement by statement (no-transaction files, and files with their own BEGIN/COMMIT).
    if let Err(e) = c.batch_execute(&settings_sql(s, false)) {
        out.error = Some(ExecError::Connection(e.to_string()));
        return false;
    }
    // A file that opens with BEGIN takes the capture inside that transaction (see below).
    let after_begin = p.opens_with_begin();
    if let Some(cap) = capture.filter(|_| !after_begin) {
        if !skip.is_empty() {
            out.events.push("capture step skipped: the interrupted run already took it".into());
        } else if let Err(e) = crate::exec::run_plain(c, cap) {
            out.error = Some(e);
            return false;
        }
    }
    let mut i = 0;
    // Where an interrupted run is resumed (the first statement it did not finish).
    let resume_at = if skip.is_empty() { None } else { (0..p.statements.len()).find(|j| !skip.contains(j)) };
    let mut block_start: Option<usize> = None;
    out.attempts = 1;
    let mut retries = 0;
    while i < p.statements.len() {
        if skip.contains(&i) {
            i += 1;
            continue;
        }
        if cancel.requested() {
            let _ = c.batch_execute("ROLLBACK");
            out.error = Some(ExecError::Connection("cancelled".into()));
            break;
        }
        let stmt = &p.statements[i];
        if matches!(stmt.kind, StmtKind::Transaction(migsafe_sql::model::TxControl::Begin)) {
            block_start = Some(i);
        }
        // A statement outside any transaction block that may run in one commits together with
        // its log entry, so an interruption between the two (kill -9) cannot leave it done but
        // unlogged, to be run again by --resume.
        let own_tx = block_start.is_none() && !stmt.forbids_transaction() && !stmt.is_control();
        let log = |c: &mut postgres::Client, ms: f64| {
            c.execute(
                &format!(
                    "UPDATE {} SET statement_log = statement_log || $2::text::jsonb WHERE id = $1",
                    target.history.table()
                ),
                &[&history_id, &format!("[{}]", log_entry(p, i, ms))],
            )
        };
        // A concurrent index build cannot commit with its log entry: an interrupted run may
        // have finished it unlogged. Resuming there, a valid index of that name is that build
        // (recorded as done); an invalid one is its failed remains (dropped, built again).
        if resume_at == Some(i) {
            if let Some(q) = concurrent_index(stmt) {
                match index_valid(c, &q) {
                    Some(true) => {
                        let _ = log(c, 0.0);
                        out.done.push(i);
                        out.events.push(format!(
                            "statement {} (CREATE INDEX CONCURRENTLY {}) had finished in the interrupted run: recorded as done",
                            i + 1,
                            q.sql()
                        ));
                        i += 1;
                        continue;
                    }
                    Some(false) => {
                        let _ = c.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {}", q.sql()));
                        out.events.push(format!("dropped the INVALID index {} the interrupted run left", q.sql()));
                    }
                    None => {}
                }
            }
        }
        let ts = Instant::now();
        let ran = if own_tx {
            c.batch_execute("BEGIN")
                .map_err(|e| ExecError::Connection(e.to_string()))
                .and_then(|()| p.execute(c, i))
                .and_then(|()| {
                    log(c, ts.elapsed().as_secs_f64() * 1000.0).map_err(|e| ExecError::Connection(e.to_string()))?;
                    c.batch_execute("COMMIT").map_err(|e| p.locate(i, &e))
                })
        } else {
            p.execute(c, i).and_then(|()| match capture {
                Some(cap) if i == 0 && after_begin => (0..cap.statements.len()).try_for_each(|j| cap.execute(c, j)),
                _ => Ok(()),
            })
        };
        match ran {
            Ok(()) => {
                let ms = ts.elapsed().as_secs_f64() * 1000.0;
                if matches!(
                    stmt.kind,
                    StmtKind::Transaction(
                        migsafe_sql::model::TxControl::Commit | migsafe_sql::model::TxControl::Rollback
                    )
                ) {
                    block_start = None;
                }
                if block_start.is_none() {
                    // Committed: record it now (done already with the statement in its own
                    // transaction), so an interruption leaves an exact log.
                    if !own_tx {
                        let _ = log(c, ms);
                    }
                    out.done.push(i);
                }
                i += 1;
                retries = 0;
            }
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK");
                if let Some(q) = concurrent_index(stmt) {
                    // A failed concurrent build leaves an INVALID index behind: drop it first.
                    if index_valid(c, &q) == Some(false) {
                        let _ = c.batch_execute(&format!("DROP INDEX CONCURRENTLY IF EXISTS {}", q.sql()));
                        out.events
                            .push(format!("dropped the INVALID index {} left by the failed concurrent build", q.sql()));
                    }
                }
                if retryable(&e) && retries < s.lock_retries && !cancel.requested() {
                    retries += 1;
                    out.attempts += 1;
                    let waited = sleep_backoff(s, retries);
                    out.events.push(format!(
                        "statement {} hit the lock_timeout ({e}); retrying after {} ms",
                        i + 1,
                        waited.as_millis()
                    ));
                    if let Some(b) = block_start.take() {
                        // The whole explicit transaction block was rolled back: run it again.
                        i = b;
                    }
                    continue;
                }
                out.error = Some(e);
                break;
            }
        }
    }
    true
}

fn wrapped_attempt(
    c: &mut Client,
    p: &Prepared,
    capture: Option<&Prepared>,
    s: &RunSettings,
    cancel: &Cancel,
    finish: &Finish<'_>,
    t0: Instant,
) -> Result<(), ExecError> {
    let conn = |e: postgres::Error| ExecError::Connection(e.to_string());
    let mut tx = c.transaction().map_err(conn)?;
    tx.batch_execute(&settings_sql(s, true)).map_err(conn)?;
    if let Some(cap) = capture {
        for i in 0..cap.statements.len() {
            cap.execute(&mut tx, i)?;
        }
    }
    let mut log = Vec::with_capacity(p.statements.len());
    for i in 0..p.statements.len() {
        if cancel.requested() {
            return Err(ExecError::Connection("cancelled".into()));
        }
        let ts = Instant::now();
        p.execute(&mut tx, i)?;
        log.push(log_entry(p, i, ts.elapsed().as_secs_f64() * 1000.0));
    }
    finish(&mut tx, t0.elapsed().as_secs_f64() * 1000.0, &log).map_err(conn)?;
    tx.commit().map_err(conn)
}

/// The index a `CREATE INDEX CONCURRENTLY name` builds, when the statement is one.
fn concurrent_index(stmt: &migsafe_sql::Statement) -> Option<migsafe_sql::QualName> {
    match &stmt.kind {
        StmtKind::CreateIndex { name: Some(name), concurrently: true, table, .. } => {
            Some(migsafe_sql::QualName { schema: table.schema.clone(), name: name.clone() })
        }
        _ => None,
    }
}

/// Whether an index is valid (`pg_index.indisvalid`); None when there is no such index.
fn index_valid(c: &mut Client, q: &migsafe_sql::QualName) -> Option<bool> {
    c.query_one("SELECT (SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1))", &[&q.sql()])
        .ok()
        .and_then(|r| r.get(0))
}
