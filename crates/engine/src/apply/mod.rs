//! `apply` and `rollback` against a real database, with the guide's procedure built in:
//! preflight (lint, risk and approvals, drift, backup, PITR, locks and long transactions,
//! replication lag), one apply at a time (a session advisory lock on its own connection, so
//! its end always releases it), hooks, lock_timeout with retries, data capture, verification,
//! the decision tree with automatic rollback, and the post-migration checklist.

mod after;
mod checklist;
pub mod diagnose;
pub mod history;
mod hooks;
mod lock;
pub mod plan;
mod preflight;
pub mod probes;
mod report;
mod revert;
pub mod run;

use std::path::PathBuf;
use std::time::Duration;

use migsafe_pg::ConnSpec;
use postgres::Client;

use crate::exec::Prepared;
use crate::source::{Migration, MigrationSet};
use crate::EngineError;
use history::{RunMode, RunStatus};
pub(crate) use hooks::host as host_name;
pub use hooks::{CommandError, StillConnected};
pub use lock::{take_lock, LockAttempt, LOCK_KEY};
pub use probes::HealthError;
pub use probes::{IncidentSeverity, Observation, Probes};
pub use report::{Applied, ApplyReport, Check, ChecklistItem, ChecklistStatus, Outcome, PreflightItem, TimelineEntry};
pub use revert::{rollback, rollback_one};
pub use run::{Cancel, RunSettings};

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
    /// Where the target keeps its history (`migsafe.history`, or a tenant schema's own).
    pub history: history::HistoryTable,
    /// Lint results computed once for many targets (`crate::lint::lint_once`); `None`: lint
    /// against this database's table sizes.
    pub linted: Option<std::sync::Arc<crate::lint::Linted>>,
    /// What the snapshots of the target read (a tenant schema: that schema only).
    pub snapshot: migsafe_catalog::SnapshotOptions,
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
            history: history::HistoryTable::database(),
            linted: None,
            snapshot: migsafe_catalog::SnapshotOptions::default(),
        }
    }
}

/// Apply the pending migrations of `set` to `spec`.
pub fn apply(set: &MigrationSet, spec: &ConnSpec, opts: &ApplyOptions) -> Result<ApplyReport, EngineError> {
    let mut rep = ApplyReport::new(spec.redacted());
    opts.cancel.connections_from(spec);
    let mut lock = spec.with_application_name("migsafe apply (lock)").connect()?;
    if let LockAttempt::HeldBy(holder) = take_lock(&mut lock, opts.history.lock_key(), opts.wait)? {
        rep.outcome = Outcome::Locked { holder };
        return Ok(rep);
    }
    let lock = lock::HeldLock::new(lock, opts.history.lock_key());
    let mut c = spec.with_application_name("migsafe apply").connect()?;
    history::ensure_in(&mut c, &opts.history)?;
    let resumable = preflight::resumable_runs(&mut c, opts)?;
    let todo = preflight::preflight(&mut c, set, spec, opts, &mut rep)?;
    let refused = rep.preflight.iter().filter(|p| p.status == Check::Fail).count();
    rep.note(format!("preflight: {} checks, {refused} failed; {} migrations pending", rep.preflight.len(), todo.len()));
    if let Some(outcome) = before_applying(&mut c, &todo, opts, &mut rep)? {
        rep.outcome = outcome;
        return Ok(rep);
    }
    let mut probes = opts.probes.clone();
    probes.tables = todo
        .iter()
        .filter_map(|m| Prepared::new(&m.forward).ok())
        .flat_map(|p| preflight::touched_tables(&p))
        .collect();
    let baseline = probes.baseline(&mut c);
    let approvals = serde_json::to_string(
        &opts.approvals.iter().map(|(r, n)| (r.clone(), n.clone())).collect::<std::collections::BTreeMap<_, _>>(),
    )
    .unwrap_or_default();
    let mut applied_here: Vec<&Migration> = Vec::new();
    let mut failure: Option<(IncidentSeverity, String)> = None;
    for m in &todo {
        let run = Run { resumable: &resumable, approvals: &approvals, opts, done_before: applied_here.len() };
        match apply_one(&mut c, m, &run, &mut rep)? {
            Ran::Applied(p) => {
                rep.note(format!("{} applied", m.id()));
                applied_here.push(m);
                let problems = after::post_verify(&mut c, &p, &opts.snapshot)?;
                if !problems.is_empty() {
                    failure = Some((
                        IncidentSeverity::P0,
                        format!("{} applied but verification failed: {}", m.id(), problems.join("; ")),
                    ));
                    break;
                }
            }
            Ran::Failed { error, half_applied } => {
                rep.note(format!("{} failed: {error}", m.id()));
                failure = Some((IncidentSeverity::P0, format!("{} failed: {error}", m.id())));
                if half_applied {
                    applied_here.push(m); // its rollback must run too
                }
                break;
            }
            Ran::Interrupted(state) => {
                rep.outcome = Outcome::Interrupted { state };
                return Ok(rep);
            }
        }
    }
    if failure.is_none() {
        if let Some(cmd) = &opts.post_apply {
            if let Err(e) = hooks::sh(cmd) {
                failure = Some((IncidentSeverity::P0, format!("post_apply hook failed: {e}")));
            }
        }
    }
    if failure.is_none() && probes.any() {
        failure = after::watch(&mut c, &probes, &baseline, opts, &mut rep);
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
            rep.note(format!("decision: {sev:?}: {reason} → {}", sev.action()));
            revert::rollback_these(&mut c, spec, &applied_here, opts, &mut rep, &reason)?;
        }
    }
    rep.note(format!("outcome: {}", rep.outcome));
    rep.applied_now = history::latest_in(&mut c, &opts.history)?
        .into_iter()
        .filter(|r| r.status == RunStatus::Applied)
        .map(|r| r.version)
        .collect();
    rep.checklist = checklist::checklist(&mut c, &rep, opts)?;
    drop(lock);
    Ok(rep)
}

/// After the preflight, before the first migration: refuse, stop at the plan, or run the
/// `pre_apply` hook and wait for the sessions to drain. `Some` is how the run ends here.
fn before_applying(
    c: &mut Client,
    todo: &[&Migration],
    opts: &ApplyOptions,
    rep: &mut ApplyReport,
) -> Result<Option<Outcome>, EngineError> {
    if rep.preflight.iter().any(|p| p.status == Check::Fail) {
        return Ok(Some(Outcome::Refused));
    }
    if todo.is_empty() {
        return Ok(Some(Outcome::NothingToDo));
    }
    if opts.dry_run {
        return Ok(Some(Outcome::DryRun));
    }
    if let Some(cmd) = &opts.pre_apply {
        if let Err(e) = hooks::sh(cmd) {
            rep.pre("pre_apply hook", Check::Fail, e.to_string());
            return Ok(Some(Outcome::Refused));
        }
        rep.pre("pre_apply hook", Check::Pass, format!("`{cmd}` ran"));
    }
    if let Some(limit) = opts.wait_for_sessions {
        if let Err(e) = hooks::wait_for_sessions(c, limit)? {
            rep.pre("connections drained", Check::Fail, e.to_string());
            return Ok(Some(Outcome::Refused));
        }
        rep.pre("connections drained", Check::Pass, "no other client sessions");
    }
    Ok(None)
}

/// What one migration of a run shares with the others.
struct Run<'a> {
    /// Interrupted statement-by-statement runs and the statements they completed.
    resumable: &'a [(String, Vec<usize>)],
    /// The approvals, as the history records them (JSON).
    approvals: &'a str,
    opts: &'a ApplyOptions,
    /// Migrations this run applied before this one.
    done_before: usize,
}

/// How one migration's run ended.
enum Ran {
    /// Applied (its parsed text, for the verification after it).
    Applied(Prepared),
    /// Failed; `half_applied` when it ran statement by statement and some statements stayed.
    Failed { error: String, half_applied: bool },
    /// Ctrl-C: where the database is now.
    Interrupted(String),
}

/// Apply one migration: its capture step (the set's own, or planned when it has no rollback
/// file), a `running` history row committed before it starts, the run with lock_timeout
/// retries, and the row updated when it fails.
fn apply_one(c: &mut Client, m: &Migration, run: &Run, rep: &mut ApplyReport) -> Result<Ran, EngineError> {
    let p = Prepared::new(&m.forward)?;
    let mode = RunMode::of(&p.tx_mode);
    // The schema before, for `diagnose` (a migration that runs statement by statement can stop
    // half-way) and for planning a capture step (no rollback file). A transactional migration
    // with its rollback needs neither: if it fails or is interrupted, its transaction leaves
    // nothing, which PostgreSQL guarantees.
    let needs_before = mode != RunMode::Wrapped || (m.rollback.is_none() && m.capture.is_none());
    let before = if needs_before { Some(migsafe_catalog::read_snapshot(c, &run.opts.snapshot)?) } else { None };
    let capture_text = m.capture.as_ref().map(|c| c.text.clone()).or_else(|| {
        let before = before.as_ref()?;
        m.rollback
            .is_none()
            .then(|| crate::capture::plan(m.version.as_str(), &p.statements, before).capture_sql(&m.id()))
            .flatten()
    });
    let capture = capture_text.as_deref().map(|t| Prepared::from_text("capture.sql", t)).transpose()?;
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[])?.get(0);
    let id: i64 = c
        .query_one(
            &format!("INSERT INTO {} (version, name, checksum, rollback_checksum, status, tx_mode, host, backend_pid, approved_by, snapshot_before) \
             VALUES ($1, $2, $3, $4, 'running', $5, $6, $7, $8::text::jsonb, $9::text::jsonb) RETURNING id", run.opts.history.table()),
            &[
                &m.version.to_string(),
                &m.name,
                &m.checksum,
                &m.rollback.as_ref().map(|r| r.checksum()),
                &mode.as_str(),
                &hooks::host(),
                &pid,
                &run.approvals,
                &before.as_ref().map(|b| b.to_json()),
            ],
        )?
        .get(0);
    rep.history_ids.push(id);
    let skip: Vec<usize> =
        run.resumable.iter().find(|(v, _)| *v == m.version.to_string()).map(|(_, d)| d.clone()).unwrap_or_default();
    let target =
        run::Target { history_id: id, done_status: RunStatus::Applied, skip: &skip, history: &run.opts.history };
    let out = run::run_migration(c, &p, capture.as_ref(), &target, &run.opts.run, &run.opts.cancel);
    rep.applied.push(Applied {
        version: m.version.to_string(),
        name: m.name.clone(),
        ms: out.ms,
        attempts: out.attempts,
        events: out.events.clone(),
    });
    if out.ok {
        return Ok(Ran::Applied(p));
    }
    let error = out.error.map(|e| e.to_string()).unwrap_or_default();
    c.execute(
        &format!(
            "UPDATE {} SET status = 'failed', finished_at = clock_timestamp(), error = $2 WHERE id = $1",
            run.opts.history.table()
        ),
        &[&id, &error],
    )?;
    if run.opts.cancel.requested() {
        let state = if mode == RunMode::Wrapped {
            format!(
                "{} was rolled back with its transaction; {} migrations of this run are applied",
                m.id(),
                run.done_before
            )
        } else {
            format!(
                "{} stopped after {} of {} statements: run `migsafe diagnose`",
                m.id(),
                out.done.len(),
                p.statements.len()
            )
        };
        return Ok(Ran::Interrupted(state));
    }
    Ok(Ran::Failed { error, half_applied: mode != RunMode::Wrapped && !out.done.is_empty() })
}
