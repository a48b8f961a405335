//! `apply` and `rollback` against a real database, with the guide's procedure built in:
//! preflight (lint, risk and approvals, drift, backup, PITR, locks and long transactions,
//! replication lag), one apply at a time (a session advisory lock on its own connection, so
//! its end always releases it), hooks, lock_timeout with retries, data capture, verification,
//! the decision tree with automatic rollback, and the post-migration checklist.

pub mod diagnose;
pub mod history;
pub mod plan;
pub mod probes;
pub mod run;

use postgres::Client;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use migsafe_catalog::integrity;
use migsafe_catalog::Snapshot;
use migsafe_pg::ConnSpec;
use migsafe_sql::lint::{LintOptions, Linter, Severity as LintSeverity, SourceFile};
use migsafe_sql::model::StmtKind;

use crate::backup;
use crate::exec::Prepared;
use crate::lint::RiskView;
use crate::source::{Migration, MigrationSet, Version};
use crate::EngineError;
use history::State;
pub use probes::{Observation, Probes, Severity};
pub use run::{Cancel, RunSettings};

/// The advisory lock key every migsafe apply/rollback takes ("migsafe" in ASCII).
pub const LOCK_KEY: i64 = 0x006d_6967_7361_6665;

/// Backups before applying.
#[derive(Debug, Clone)]
pub enum BackupPolicy {
    /// Take one now (`--backup`).
    Take,
    /// Require a verified one younger than this in the backup folder.
    Require(Duration),
    /// Explicitly skip (`--no-backup`): reported as a warning.
    Skip,
}

/// Options of `apply`.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Stop after preflight and print the plan.
    pub dry_run: bool,
    /// Apply up to and including this version.
    pub to: Option<String>,
    /// lock_timeout, retries, statement_timeout.
    pub run: RunSettings,
    /// Wait this long for another apply's lock (None: do not wait).
    pub wait: Option<Duration>,
    /// `ROLE=NAME` approvals.
    pub approvals: Vec<(String, String)>,
    /// Backup policy.
    pub backup: BackupPolicy,
    /// Backup folder.
    pub backup_dir: PathBuf,
    /// Restore the backup when a rollback fails.
    pub restore_on_failure: bool,
    /// Command before applying (maintenance mode on).
    pub pre_apply: Option<String>,
    /// Command after applying (maintenance mode off).
    pub post_apply: Option<String>,
    /// Wait until no other client sessions are connected, up to this long.
    pub wait_for_sessions: Option<Duration>,
    /// Health, error rate, latency probes.
    pub probes: Probes,
    /// Watch window after applying.
    pub watch: Duration,
    /// How often to look during the window.
    pub watch_interval: Duration,
    /// Assessment window before acting on P1/P2.
    pub assess: Duration,
    /// Act on P1/P2 at once.
    pub act_now: bool,
    /// Apply despite lint errors.
    pub allow_lint_errors: bool,
    /// Apply migrations that have no rollback.
    pub allow_no_rollback: bool,
    /// Tools folder for pg_dump.
    pub tool_dirs: Vec<PathBuf>,
    /// Continue interrupted statement-by-statement migrations where they stopped.
    pub resume: bool,
    /// Ctrl-C.
    pub cancel: Cancel,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            dry_run: false,
            to: None,
            run: RunSettings::default(),
            wait: None,
            approvals: vec![],
            backup: BackupPolicy::Require(Duration::from_secs(24 * 3600)),
            backup_dir: PathBuf::from("backups"),
            restore_on_failure: false,
            pre_apply: None,
            post_apply: None,
            wait_for_sessions: None,
            probes: Probes { error_rate_threshold: 5.0, ..Default::default() },
            watch: Duration::ZERO,
            watch_interval: Duration::from_secs(10),
            assess: Duration::from_secs(300),
            act_now: false,
            allow_lint_errors: false,
            allow_no_rollback: false,
            tool_dirs: vec![],
            resume: false,
            cancel: Cancel::default(),
        }
    }
}

/// pass / warn / fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// Fine.
    Pass,
    /// Worth knowing; does not stop apply.
    Warn,
    /// Stops apply.
    Fail,
}

/// One preflight item.
#[derive(Debug, Clone, Serialize)]
pub struct PreflightItem {
    /// What was checked.
    pub item: String,
    /// Result.
    pub status: Check,
    /// Detail.
    pub detail: String,
}

/// A migration applied (or rolled back) in this run.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// Milliseconds.
    pub ms: f64,
    /// Attempts (lock-timeout retries + 1).
    pub attempts: u32,
    /// Retries, cleanups.
    pub events: Vec<String>,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing pending.
    NothingToDo,
    /// Preflight only.
    DryRun,
    /// Preflight refused.
    Refused,
    /// Another apply holds the lock.
    Locked {
        /// Who holds it.
        holder: String,
    },
    /// Everything applied and healthy.
    Applied,
    /// Something failed and everything this run applied was rolled back.
    RolledBack {
        /// Why.
        reason: String,
    },
    /// Something failed and the rollback failed too: a human is needed.
    NeedsHuman {
        /// Why.
        reason: String,
        /// Where the database is now.
        state: String,
        /// What to run next.
        next: String,
    },
    /// Interrupted (Ctrl-C).
    Interrupted {
        /// Where the database is now.
        state: String,
    },
}

/// One item of the guide's post-migration checklist.
#[derive(Debug, Clone, Serialize)]
pub struct ChecklistItem {
    /// The guide's wording.
    pub item: String,
    /// `checked`, `failed`, or `human` (needs a person).
    pub status: String,
    /// How it was checked.
    pub detail: String,
}

/// What `apply` or `rollback` did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// Database (redacted).
    pub database: String,
    /// Preflight.
    pub preflight: Vec<PreflightItem>,
    /// Pending migrations (the plan).
    pub pending: Vec<String>,
    /// Migrations applied in this run.
    pub applied: Vec<Applied>,
    /// What the decision tree observed.
    pub observations: Vec<Observation>,
    /// The worst severity and what it meant.
    pub decision: Option<String>,
    /// Migrations rolled back.
    pub rolled_back: Vec<Applied>,
    /// The end.
    pub outcome: Outcome,
    /// The guide's post-migration checklist.
    pub checklist: Vec<ChecklistItem>,
    /// The backup taken or found.
    pub backup: Option<String>,
    /// History rows written by this run.
    #[serde(skip)]
    pub history_ids: Vec<i64>,
}

impl ApplyReport {
    fn new(database: String) -> Self {
        ApplyReport {
            database,
            preflight: vec![],
            pending: vec![],
            applied: vec![],
            observations: vec![],
            decision: None,
            rolled_back: vec![],
            outcome: Outcome::NothingToDo,
            checklist: vec![],
            backup: None,
            history_ids: vec![],
        }
    }

    fn pre(&mut self, item: &str, status: Check, detail: impl Into<String>) {
        self.preflight.push(PreflightItem { item: item.into(), status, detail: detail.into() });
    }
}

/// Take the advisory lock on `lock` (its own connection), waiting up to `wait`. Err names
/// the holder.
pub fn take_lock(lock: &mut Client, wait: Option<Duration>) -> Result<Result<(), String>, EngineError> {
    let deadline = Instant::now() + wait.unwrap_or_default();
    loop {
        let got: bool = lock.query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])?.get(0);
        if got {
            return Ok(Ok(()));
        }
        if Instant::now() >= deadline {
            let holder = lock
                .query_opt(
                    "SELECT 'pid ' || a.pid || ' (' || coalesce(a.application_name, '') || ') from ' || coalesce(host(a.client_addr), 'local socket') \
                     || ' as ' || a.usename || ', since ' || a.backend_start::text FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = $1 \
                       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1",
                    &[&LOCK_KEY],
                )?
                .map(|r| r.get::<_, String>(0))
                .unwrap_or_else(|| "another session".into());
            return Ok(Err(holder));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn host() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "unknown".into())
}

fn sh(cmd: &str) -> Result<(), String> {
    let st =
        std::process::Command::new("sh").arg("-c").arg(cmd).status().map_err(|e| format!("cannot run `{cmd}`: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("`{cmd}` exited with {st}"))
    }
}

/// Lint the whole set in order (so later migrations see what earlier ones did) and keep the
/// results of `wanted`.
fn lint_set(
    set: &MigrationSet,
    wanted: &[&Migration],
    rows: &[(migsafe_sql::QualName, i64)],
) -> Vec<(Vec<migsafe_sql::lint::Finding>, RiskView)> {
    let opts = LintOptions { table_rows: rows.iter().cloned().collect(), ..Default::default() };
    let mut linter = Linter::new(opts);
    let mut out = Vec::new();
    for m in &set.migrations {
        let path = m.forward.path.display().to_string();
        let l = linter.lint(SourceFile { path: &path, source: &m.forward.text });
        if wanted.iter().any(|w| w.version == m.version) {
            out.push((l.findings, RiskView::from(&l.risk)));
        }
    }
    out
}

fn table_rows(c: &mut Client) -> Result<Vec<(migsafe_sql::QualName, i64)>, EngineError> {
    let rows = c.query(
        "SELECT n.nspname::text, c.relname::text, greatest(c.reltuples, 0)::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| (migsafe_sql::QualName::qualified(r.get::<_, String>(0), r.get::<_, String>(1)), r.get(2)))
        .collect())
}

/// Tables a migration touches (as written, schema-resolved to public).
fn touched_tables(p: &Prepared) -> Vec<String> {
    let lookup = |_: &migsafe_sql::QualName| None;
    let mut v: Vec<String> = p
        .statements
        .iter()
        .flat_map(|s| migsafe_sql::lock::statement_locks(&s.kind, &lookup))
        .map(|(t, _)| t.resolved().to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The migrations to apply, in order.
fn pending<'a>(set: &'a MigrationSet, rows: &[history::HistoryRow], to: Option<&str>) -> Vec<&'a Migration> {
    let limit = to.and_then(Version::parse);
    let states = history::status(set, rows);
    set.migrations
        .iter()
        .zip(&states)
        .filter(|(m, s)| {
            matches!(s.state, State::Pending | State::Failed | State::RolledBack)
                && limit.as_ref().is_none_or(|v| m.version <= *v)
        })
        .map(|(m, _)| m)
        .collect()
}

/// Statement-by-statement runs that were interrupted, with the statements they completed.
fn resumable_runs(c: &mut Client, opts: &ApplyOptions) -> Result<Vec<(String, Vec<usize>)>, EngineError> {
    if !opts.resume {
        return Ok(vec![]);
    }
    Ok(history::latest(c)?
        .into_iter()
        .filter(|r| r.status == "running" && r.tx_mode != "wrapped")
        .map(|r| (r.version, r.statements_done.iter().map(|i| *i as usize).collect()))
        .collect())
}

/// Run the preflight; returns the migrations to apply.
fn preflight<'a>(
    c: &mut Client,
    set: &'a MigrationSet,
    spec: &ConnSpec,
    opts: &ApplyOptions,
    rep: &mut ApplyReport,
) -> Result<Vec<&'a Migration>, EngineError> {
    let rows = history::latest(c)?;
    let states = history::status(set, &rows);
    // Drift and interrupted runs.
    let drifted: Vec<String> =
        states.iter().filter(|s| s.state == State::Drifted).map(|s| format!("{}_{}", s.version, s.name)).collect();
    if drifted.is_empty() {
        rep.pre("checksums of applied migrations", Check::Pass, "no applied migration changed since it ran");
    } else {
        rep.pre(
            "checksums of applied migrations",
            Check::Fail,
            format!("changed after they were applied: {}", drifted.join(", ")),
        );
    }
    for s in states.iter().filter(|s| s.state == State::Running) {
        let row = rows.iter().find(|r| r.version == s.version);
        if opts.resume && row.is_some_and(|r| r.tx_mode != "wrapped") {
            c.execute("UPDATE migsafe.history SET status = 'failed', finished_at = clock_timestamp(), error = 'interrupted; resumed by a later run' WHERE id = $1", &[&row.map(|r| r.id).unwrap_or(0)])?;
            rep.pre(
                "interrupted runs",
                Check::Warn,
                format!(
                    "{}_{} was interrupted after {} statements: resuming from there",
                    s.version,
                    s.name,
                    row.map(|r| r.statements_done.len()).unwrap_or(0)
                ),
            );
            continue;
        }
        if row.is_some_and(|r| r.tx_mode == "wrapped") {
            // We hold the lock: that run is dead, and its transaction left nothing.
            c.execute(
                "UPDATE migsafe.history SET status = 'failed', finished_at = clock_timestamp(), error = 'interrupted; it ran in one transaction, so nothing of it was applied' \
                 WHERE id = $1",
                &[&row.map(|r| r.id).unwrap_or(0)],
            )?;
            rep.pre(
                "interrupted runs",
                Check::Warn,
                format!(
                    "{}_{} was interrupted inside its transaction: nothing of it is applied; it will run again",
                    s.version, s.name
                ),
            );
        } else {
            rep.pre(
                "interrupted runs",
                Check::Fail,
                format!("{}_{} was interrupted statement by statement and may be half-applied: run `migsafe diagnose` first", s.version, s.name),
            );
        }
    }
    let rows = history::latest(c)?;
    let todo = pending(set, &rows, opts.to.as_deref());
    rep.pending = todo.iter().map(|m| m.id()).collect();
    if todo.is_empty() {
        return Ok(todo);
    }
    // Lint, risk and approvals.
    let sizes = table_rows(c)?;
    let given: Vec<String> = opts.approvals.iter().map(|(r, _)| r.to_ascii_lowercase()).collect();
    let linted = lint_set(set, &todo, &sizes);
    for (m, (findings, risk)) in todo.iter().zip(linted) {
        let errors = findings.iter().filter(|f| f.severity == LintSeverity::Error).count();
        let warnings = findings.iter().filter(|f| f.severity == LintSeverity::Warning).count();
        let rules: Vec<&str> =
            findings.iter().filter(|f| f.severity >= LintSeverity::Warning).map(|f| f.rule).collect();
        let status = if errors > 0 && !opts.allow_lint_errors {
            Check::Fail
        } else if errors + warnings > 0 {
            Check::Warn
        } else {
            Check::Pass
        };
        rep.pre(
            &format!("lint {}", m.id()),
            status,
            format!(
                "risk {}, {errors} errors, {warnings} warnings{}",
                risk.level.as_str(),
                if rules.is_empty() { String::new() } else { format!(" ({})", rules.join(", ")) }
            ),
        );
        let missing: Vec<&String> =
            risk.approvals.iter().filter(|a| !given.contains(&a.to_ascii_lowercase())).collect();
        if missing.is_empty() {
            rep.pre(
                &format!("approvals {}", m.id()),
                Check::Pass,
                if risk.approvals.is_empty() {
                    "none required".to_string()
                } else {
                    format!("given: {}", risk.approvals.join(", "))
                },
            );
        } else {
            rep.pre(
                &format!("approvals {}", m.id()),
                Check::Fail,
                format!(
                    "risk {} needs approval from {} (guide level {}): pass --approved-by \"{}=<name>\"",
                    risk.level.as_str(),
                    risk.approvals.join(" and "),
                    risk.approval_tier,
                    missing[0]
                ),
            );
        }
        if m.rollback.is_none() {
            rep.pre(
                &format!("rollback {}", m.id()),
                if opts.allow_no_rollback { Check::Warn } else { Check::Fail },
                "no rollback: `migsafe rollback generate` writes a proven one",
            );
        }
        if let Err(e) = Prepared::new(&m.forward) {
            rep.pre(&format!("parse {}", m.id()), Check::Fail, e.to_string());
        }
    }
    // Backup.
    match &opts.backup {
        BackupPolicy::Skip => rep.pre("backup", Check::Warn, "skipped (--no-backup)"),
        BackupPolicy::Take if opts.dry_run => rep.pre("backup", Check::Pass, "one will be taken before applying"),
        BackupPolicy::Take => {
            let b = backup::backup(
                spec,
                &backup::BackupOptions {
                    dir: opts.backup_dir.clone(),
                    restore_test: false,
                    tool_dirs: opts.tool_dirs.clone(),
                    pg_bin: None,
                },
            );
            match b {
                Ok(b) => {
                    rep.backup = Some(b.path.display().to_string());
                    rep.pre("backup", Check::Pass, format!("verified backup taken: {}", b.path.display()));
                }
                Err(e) => rep.pre("backup", Check::Fail, format!("could not take a backup: {e}")),
            }
        }
        BackupPolicy::Require(age) => {
            let fresh = backup::list(&opts.backup_dir)?.into_iter().find(|(_, m)| {
                m.verified
                    && m.dbname == spec.dbname()
                    && chrono::DateTime::parse_from_rfc3339(&m.created_utc)
                        .map(|t| {
                            (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).to_std().unwrap_or_default() <= *age
                        })
                        .unwrap_or(false)
            });
            match fresh {
                Some((p, m)) => {
                    rep.backup = Some(p.display().to_string());
                    rep.pre("backup", Check::Pass, format!("verified backup from {}: {}", m.created_utc, p.display()));
                }
                None => rep.pre(
                    "backup",
                    Check::Fail,
                    format!(
                        "no verified backup of {} younger than {:?} in {}: pass --backup to take one now",
                        spec.dbname(),
                        age,
                        opts.backup_dir.display()
                    ),
                ),
            }
        }
    }
    // PITR.
    let pitr = backup::pitr_status(c)?;
    rep.pre(
        "point-in-time recovery",
        if pitr.enabled { Check::Pass } else { Check::Warn },
        pitr.advice
            .clone()
            .unwrap_or_else(|| format!("WAL archived ({})", pitr.last_archived.clone().unwrap_or_default())),
    );
    // Sessions holding locks on the tables, long transactions, replication lag.
    let touched: Vec<String> =
        todo.iter().filter_map(|m| Prepared::new(&m.forward).ok()).flat_map(|p| touched_tables(&p)).collect();
    let blockers: Vec<String> = c
        .query(
            "SELECT DISTINCT a.pid::text || ' ' || l.mode || ' on ' || n.nspname || '.' || cl.relname || ' for ' || \
               coalesce(date_trunc('second', clock_timestamp() - a.xact_start)::text, '?') || ': ' || left(a.query, 80) \
             FROM pg_locks l JOIN pg_class cl ON cl.oid = l.relation JOIN pg_namespace n ON n.oid = cl.relnamespace \
             JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.pid <> pg_backend_pid() AND a.datname = current_database() AND (n.nspname || '.' || cl.relname) = ANY($1)",
            &[&touched],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    rep.pre(
        "locks on the migrated tables",
        if blockers.is_empty() { Check::Pass } else { Check::Warn },
        if blockers.is_empty() {
            "no other session holds locks on them".to_string()
        } else {
            format!("held now (apply will wait at most lock_timeout, then retry): {}", blockers.join("; "))
        },
    );
    let long: Vec<String> = c
        .query(
            "SELECT pid::text || ' running ' || date_trunc('second', clock_timestamp() - xact_start)::text || ': ' || left(query, 80) \
             FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start < clock_timestamp() - interval '1 minute' \
             AND backend_type = 'client backend'",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    rep.pre(
        "long-running transactions",
        if long.is_empty() { Check::Pass } else { Check::Warn },
        if long.is_empty() { "none over 1 minute".to_string() } else { long.join("; ") },
    );
    let lag: Option<f64> =
        c.query_one("SELECT max(extract(epoch FROM replay_lag))::float8 FROM pg_stat_replication", &[])?.get(0);
    rep.pre(
        "replication lag",
        if lag.is_some_and(|l| l > 10.0) { Check::Warn } else { Check::Pass },
        match lag {
            Some(l) => format!("{l:.1} s behind at most"),
            None => "no streaming replicas".into(),
        },
    );
    Ok(todo)
}

fn wait_for_sessions(c: &mut Client, limit: Duration) -> Result<Result<(), String>, EngineError> {
    let deadline = Instant::now() + limit;
    loop {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND backend_type = 'client backend' AND coalesce(application_name, '') NOT LIKE 'migsafe%'",
                &[],
            )?
            .get(0);
        if n == 0 {
            return Ok(Ok(()));
        }
        if Instant::now() >= deadline {
            return Ok(Err(format!("{n} client sessions still connected after {limit:?}")));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Objects the migration says it creates exist, and no index is left invalid.
fn post_verify(c: &mut Client, p: &Prepared) -> Result<Vec<String>, EngineError> {
    let mut problems = Vec::new();
    for s in &p.statements {
        let names: Vec<String> = match &s.kind {
            StmtKind::CreateTable { table, .. } => vec![table.resolved().to_string()],
            StmtKind::CreateIndex { name: Some(n), table, .. } => {
                vec![migsafe_sql::QualName { schema: table.schema.clone(), name: n.clone() }.resolved().to_string()]
            }
            StmtKind::CreateView { view, .. } => vec![view.resolved().to_string()],
            _ => vec![],
        };
        for n in names {
            let ok: bool = c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&n])?.get(0);
            if !ok {
                problems.push(format!("{n} should exist after {} but does not", s.tag));
            }
        }
    }
    let snap = Snapshot::capture(c)?;
    for check in integrity::plan_checks(c, &snap)? {
        if check.check == "invalid_index" {
            let r = check.run(c)?;
            problems.push(r.detail);
        }
    }
    Ok(problems)
}

/// Apply the pending migrations of `set` to `spec`.
pub fn apply(set: &MigrationSet, spec: &ConnSpec, opts: &ApplyOptions) -> Result<ApplyReport, EngineError> {
    let mut rep = ApplyReport::new(spec.redacted());
    opts.cancel.connections_from(spec);
    let mut lock = spec.with_application_name("migsafe apply (lock)").connect()?;
    if let Err(holder) = take_lock(&mut lock, opts.wait)? {
        rep.outcome = Outcome::Locked { holder };
        return Ok(rep);
    }
    let mut c = spec.with_application_name("migsafe apply").connect()?;
    history::ensure(&mut c)?;
    let resumable = resumable_runs(&mut c, opts)?;
    let todo = preflight(&mut c, set, spec, opts, &mut rep)?;
    if rep.preflight.iter().any(|p| p.status == Check::Fail) {
        rep.outcome = Outcome::Refused;
        return Ok(rep);
    }
    if todo.is_empty() {
        rep.outcome = Outcome::NothingToDo;
        return Ok(rep);
    }
    if opts.dry_run {
        rep.outcome = Outcome::DryRun;
        return Ok(rep);
    }
    if let Some(cmd) = &opts.pre_apply {
        if let Err(e) = sh(cmd) {
            rep.pre("pre_apply hook", Check::Fail, e);
            rep.outcome = Outcome::Refused;
            return Ok(rep);
        }
        rep.pre("pre_apply hook", Check::Pass, format!("`{cmd}` ran"));
    }
    if let Some(limit) = opts.wait_for_sessions {
        if let Err(e) = wait_for_sessions(&mut c, limit)? {
            rep.pre("connections drained", Check::Fail, e);
            rep.outcome = Outcome::Refused;
            return Ok(rep);
        }
        rep.pre("connections drained", Check::Pass, "no other client sessions");
    }
    let mut probes = opts.probes.clone();
    probes.tables =
        todo.iter().filter_map(|m| Prepared::new(&m.forward).ok()).flat_map(|p| touched_tables(&p)).collect();
    let baseline = probes.baseline(&mut c);
    let approvals = serde_json::to_string(
        &opts.approvals.iter().map(|(r, n)| (r.clone(), n.clone())).collect::<std::collections::BTreeMap<_, _>>(),
    )
    .unwrap_or_default();
    let mut applied_here: Vec<&Migration> = Vec::new();
    let mut failure: Option<(Severity, String)> = None;
    for m in &todo {
        let p = Prepared::new(&m.forward)?;
        let before = Snapshot::capture(&mut c)?;
        let capture_text = m.capture.as_ref().map(|c| c.text.clone()).or_else(|| {
            m.rollback
                .is_none()
                .then(|| crate::capture::plan(m.version.as_str(), &p.statements, &before).capture_sql(&m.id()))
                .flatten()
        });
        let capture = capture_text.as_deref().map(|t| Prepared::from_text("capture.sql", t)).transpose()?;
        let mode = match p.tx_mode {
            migsafe_sql::lint::TxMode::Wrapped => "wrapped",
            migsafe_sql::lint::TxMode::OwnTransactions => "own_transactions",
            migsafe_sql::lint::TxMode::Autocommit { .. } => "autocommit",
        };
        let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[])?.get(0);
        let id: i64 = c
            .query_one(
                "INSERT INTO migsafe.history (version, name, checksum, rollback_checksum, status, tx_mode, host, backend_pid, approved_by, snapshot_before) \
                 VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8::text::jsonb, $9::text::jsonb) RETURNING id",
                &[
                    &m.version.to_string(),
                    &m.name,
                    &m.checksum,
                    &m.rollback.as_ref().map(|r| r.checksum()),
                    &mode,
                    &host(),
                    &pid,
                    &approvals,
                    &before.to_json(),
                ],
            )?
            .get(0);
        rep.history_ids.push(id);
        let skip: Vec<usize> =
            resumable.iter().find(|(v, _)| *v == m.version.to_string()).map(|(_, d)| d.clone()).unwrap_or_default();
        let target = run::Target { history_id: id, done_status: "applied", skip: &skip };
        let out = run::run_migration(&mut c, &p, capture.as_ref(), &target, &opts.run, &opts.cancel);
        let entry = Applied {
            version: m.version.to_string(),
            name: m.name.clone(),
            ms: out.ms,
            attempts: out.attempts,
            events: out.events.clone(),
        };
        if !out.ok {
            let err = out.error.map(|e| e.to_string()).unwrap_or_default();
            c.execute("UPDATE migsafe.history SET status = 'failed', finished_at = clock_timestamp(), error = $2 WHERE id = $1", &[&id, &err])?;
            rep.applied.push(entry);
            if opts.cancel.requested() {
                let state = if mode == "wrapped" {
                    format!(
                        "{} was rolled back with its transaction; {} migrations of this run are applied",
                        m.id(),
                        applied_here.len()
                    )
                } else {
                    format!(
                        "{} stopped after {} of {} statements: run `migsafe diagnose`",
                        m.id(),
                        out.done.len(),
                        p.statements.len()
                    )
                };
                rep.outcome = Outcome::Interrupted { state };
                return Ok(rep);
            }
            failure = Some((Severity::P0, format!("{} failed: {err}", m.id())));
            if mode != "wrapped" && !out.done.is_empty() {
                applied_here.push(m); // half-applied: its rollback must run too
            }
            break;
        }
        rep.applied.push(entry);
        applied_here.push(m);
        let problems = post_verify(&mut c, &p)?;
        if !problems.is_empty() {
            failure =
                Some((Severity::P0, format!("{} applied but verification failed: {}", m.id(), problems.join("; "))));
            break;
        }
    }
    if failure.is_none() {
        if let Some(cmd) = &opts.post_apply {
            if let Err(e) = sh(cmd) {
                failure = Some((Severity::P0, format!("post_apply hook failed: {e}")));
            }
        }
    }
    if failure.is_none() && probes.any() {
        failure = watch(&mut c, &probes, &baseline, opts, &mut rep);
    }
    match failure {
        None => {
            rep.outcome = Outcome::Applied;
            rep.decision = Some(if rep.observations.is_empty() {
                "no problems observed".into()
            } else {
                "P3 only: no rollback".into()
            });
        }
        Some((sev, reason)) => {
            rep.decision = Some(format!("{sev:?}: {reason} → {}", sev.action()));
            rollback_these(&mut c, spec, &applied_here, opts, &mut rep, &reason)?;
        }
    }
    rep.checklist = checklist(&mut c, &rep)?;
    drop(lock);
    Ok(rep)
}

/// The watch window: observe, classify, decide. Returns the failure to act on.
fn watch(
    c: &mut Client,
    probes: &Probes,
    base: &probes::Baseline,
    opts: &ApplyOptions,
    rep: &mut ApplyReport,
) -> Option<(Severity, String)> {
    let start = Instant::now();
    let mut first_bad: Option<(Instant, Severity, String)> = None;
    loop {
        let obs = probes.observe(c, base);
        let worst = obs.iter().map(|o| o.severity).min();
        for o in &obs {
            if !rep.observations.iter().any(|x| x.what == o.what) {
                rep.observations.push(o.clone());
            }
        }
        match worst {
            Some(Severity::P0) => {
                return Some((
                    Severity::P0,
                    obs.iter().find(|o| o.severity == Severity::P0).map(|o| o.what.clone()).unwrap_or_default(),
                ))
            }
            Some(s @ (Severity::P1 | Severity::P2)) => {
                let what = obs.iter().find(|o| o.severity == s).map(|o| o.what.clone()).unwrap_or_default();
                if opts.act_now {
                    return Some((s, what));
                }
                let since = first_bad.get_or_insert((Instant::now(), s, what.clone())).0;
                if since.elapsed() >= opts.assess {
                    return Some((s, format!("{what} (still after the {:?} assessment window)", opts.assess)));
                }
            }
            _ => first_bad = None,
        }
        let window_over = start.elapsed() >= opts.watch;
        let assessing = first_bad.is_some();
        if window_over && !assessing {
            return None;
        }
        if opts.cancel.requested() {
            return None;
        }
        std::thread::sleep(opts.watch_interval.min(Duration::from_secs(60)));
    }
}

/// Roll back `done` (newest first) with the same safety; restore the backup when that fails
/// and `--restore-on-failure` is set.
fn rollback_these(
    c: &mut Client,
    spec: &ConnSpec,
    done: &[&Migration],
    opts: &ApplyOptions,
    rep: &mut ApplyReport,
    reason: &str,
) -> Result<(), EngineError> {
    for m in done.iter().rev() {
        match rollback_one(c, m, opts) {
            Ok(a) => rep.rolled_back.push(a),
            Err(e) => {
                let state = format!(
                    "{} applied in this run; rolled back: {}; the rollback of {} failed: {e}",
                    done.iter().map(|m| m.id()).collect::<Vec<_>>().join(", "),
                    if rep.rolled_back.is_empty() {
                        "none".to_string()
                    } else {
                        rep.rolled_back
                            .iter()
                            .map(|a| format!("{}_{}", a.version, a.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    m.id()
                );
                if opts.restore_on_failure {
                    if let Some(b) = &rep.backup {
                        match restore_backup(spec, b, &opts.tool_dirs) {
                            Ok(()) => {
                                rep.outcome = Outcome::RolledBack {
                                    reason: format!("{reason}; the rollback failed, so the backup {b} was restored"),
                                };
                                return Ok(());
                            }
                            Err(re) => {
                                rep.outcome = Outcome::NeedsHuman {
                                    reason: reason.into(),
                                    state: format!("{state}; restoring {b} failed too: {re}"),
                                    next: format!("pg_restore --clean --if-exists --dbname <db> {b}"),
                                };
                                return Ok(());
                            }
                        }
                    }
                }
                rep.outcome = Outcome::NeedsHuman {
                    reason: reason.into(),
                    state,
                    next: format!(
                        "migsafe diagnose --db '{}' (or rerun apply with --restore-on-failure to restore {})",
                        spec.redacted(),
                        rep.backup.clone().unwrap_or_else(|| "the backup".into())
                    ),
                };
                return Ok(());
            }
        }
    }
    rep.outcome = Outcome::RolledBack { reason: reason.into() };
    Ok(())
}

fn restore_backup(spec: &ConnSpec, dump: &str, tool_dirs: &[PathBuf]) -> Result<(), EngineError> {
    let mut c = spec.connect()?;
    let major = migsafe_pg::server_version_num(&mut c)? / 10000;
    drop(c);
    let pg_restore = migsafe_pg::binaries::client_program("pg_restore", major, tool_dirs)?;
    let (args, env) = spec.tool_args();
    let out = std::process::Command::new(pg_restore)
        .args(&args)
        .args(["--clean", "--if-exists", "--no-owner", "--dbname", spec.dbname(), dump])
        .envs(env)
        .output()
        .map_err(|e| EngineError::Input(format!("pg_restore: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(EngineError::Input(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

/// Roll back one applied migration with the apply's safety, recording it in the history.
pub fn rollback_one(c: &mut Client, m: &Migration, opts: &ApplyOptions) -> Result<Applied, EngineError> {
    let Some(rb) = &m.rollback else {
        return Err(EngineError::Input(format!("{} has no rollback (migsafe rollback generate writes one)", m.id())));
    };
    let p = Prepared::new(rb)?;
    let row: Option<i64> = c
        .query_opt(
            "SELECT id FROM migsafe.history WHERE version = $1 ORDER BY id DESC LIMIT 1",
            &[&m.version.to_string()],
        )?
        .map(|r| r.get(0));
    let id = row.unwrap_or(0);
    let target = run::Target { history_id: id, done_status: "rolled_back", skip: &[] };
    let out = run::run_migration(c, &p, None, &target, &opts.run, &opts.cancel);
    if !out.ok {
        let err = out.error.map(|e| e.to_string()).unwrap_or_default();
        let _ = c
            .execute("UPDATE migsafe.history SET error = $2 WHERE id = $1", &[&id, &format!("rollback failed: {err}")]);
        return Err(EngineError::Input(err));
    }
    c.execute("UPDATE migsafe.history SET rolled_back_at = clock_timestamp() WHERE id = $1", &[&id])?;
    Ok(Applied {
        version: m.version.to_string(),
        name: m.name.clone(),
        ms: out.ms,
        attempts: out.attempts,
        events: out.events,
    })
}

/// `migsafe rollback --steps N | --to V`: roll back applied migrations, newest first.
pub fn rollback(
    set: &MigrationSet,
    spec: &ConnSpec,
    steps: Option<usize>,
    to: Option<&str>,
    opts: &ApplyOptions,
) -> Result<ApplyReport, EngineError> {
    let mut rep = ApplyReport::new(spec.redacted());
    opts.cancel.connections_from(spec);
    let mut lock = spec.with_application_name("migsafe rollback (lock)").connect()?;
    if let Err(holder) = take_lock(&mut lock, opts.wait)? {
        rep.outcome = Outcome::Locked { holder };
        return Ok(rep);
    }
    let mut c = spec.with_application_name("migsafe rollback").connect()?;
    history::ensure(&mut c)?;
    let rows = history::latest(&mut c)?;
    let states = history::status(set, &rows);
    let applied: Vec<&Migration> = set
        .migrations
        .iter()
        .zip(&states)
        .filter(|(_, s)| matches!(s.state, State::Applied | State::Drifted))
        .map(|(m, _)| m)
        .collect();
    let limit = to.and_then(Version::parse);
    let chosen: Vec<&Migration> = match (steps, &limit) {
        (_, Some(v)) => applied.iter().filter(|m| m.version > *v).copied().collect(),
        (Some(n), None) => applied.iter().rev().take(n).rev().copied().collect(),
        (None, None) => applied.last().copied().into_iter().collect(),
    };
    rep.pending = chosen.iter().rev().map(|m| m.id()).collect();
    if chosen.is_empty() {
        rep.outcome = Outcome::NothingToDo;
        return Ok(rep);
    }
    if opts.dry_run {
        rep.outcome = Outcome::DryRun;
        return Ok(rep);
    }
    for m in chosen.iter().rev() {
        match rollback_one(&mut c, m, opts) {
            Ok(a) => rep.rolled_back.push(a),
            Err(e) => {
                rep.outcome = Outcome::NeedsHuman {
                    reason: format!("rolling back {} failed: {e}", m.id()),
                    state: format!(
                        "rolled back: {}",
                        rep.rolled_back
                            .iter()
                            .map(|a| format!("{}_{}", a.version, a.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    next: format!("migsafe diagnose --db '{}'", spec.redacted()),
                };
                return Ok(rep);
            }
        }
    }
    rep.outcome = Outcome::RolledBack { reason: "requested".into() };
    drop(lock);
    Ok(rep)
}

/// The guide's post-migration checklist, checked where migsafe can.
fn checklist(c: &mut Client, rep: &ApplyReport) -> Result<Vec<ChecklistItem>, EngineError> {
    let auto = |item: &str, ok: bool, detail: String| ChecklistItem {
        item: item.into(),
        status: if ok { "checked".into() } else { "failed".into() },
        detail,
    };
    let human =
        |item: &str, detail: &str| ChecklistItem { item: item.into(), status: "human".into(), detail: detail.into() };
    let health = rep.observations.iter().filter(|o| o.severity == Severity::P0).count();
    let snap = Snapshot::capture(c)?;
    let checks = integrity::run_all(c, &snap)?;
    let bad = checks.iter().filter(|r| !r.ok).count();
    let deadlocks: i64 =
        c.query_one("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()", &[])?.get(0);
    let lock_timeouts = rep.applied.iter().map(|a| a.attempts.saturating_sub(1)).sum::<u32>();
    let size: String = c.query_one("SELECT pg_size_pretty(pg_database_size(current_database()))", &[])?.get(0);
    Ok(vec![
        if rep.observations.is_empty() && health == 0 {
            human("Application health checks passing", "no health probe was configured (--health-url / --health-cmd)")
        } else {
            auto("Application health checks passing", health == 0, format!("{health} failing health observations"))
        },
        human("Error rate within normal range (<1%)", "configure --error-rate-cmd to have it checked"),
        human("Response times within SLA", "configure --latency-cmd, or install pg_stat_statements"),
        human("Database connection pool stable", "see `migsafe monitor`"),
        auto("No deadlocks or lock timeouts", lock_timeouts == 0, format!("{lock_timeouts} lock-timeout retries in this run; {deadlocks} deadlocks in this database since its statistics were reset")),
        human("Critical user flows tested manually", "a person"),
        human("Performance metrics compared to baseline", "compare your dashboards"),
        auto("Database size/growth monitored", true, format!("database size now {size}")),
        human("Query performance analyzed", "pg_stat_statements / EXPLAIN"),
        human("User-reported issues tracked", "a person"),
        auto("Automated tests passing", bad == 0, format!("{} integrity checks, {bad} failed", checks.len())),
        human("Backup schedule resumed", "your scheduler"),
        human("No regression detected in analytics", "a person"),
        human("Resource utilization stable", "see `migsafe monitor`"),
        human("Cost impact assessed", "a person"),
        human("Documentation updated", "a person"),
        human("Lessons learned documented", "a person"),
        {
            let missing: i64 = c
                .query_one("SELECT count(*) FROM migsafe.history WHERE id = ANY($1) AND rollback_checksum IS NULL", &[&rep.history_ids])?
                .get(0);
            auto(
                "Rollback scripts archived",
                missing == 0,
                format!("{} migrations of this run recorded with their rollback's checksum, {missing} without a rollback", rep.history_ids.len() as i64 - missing),
            )
        },
    ])
}
