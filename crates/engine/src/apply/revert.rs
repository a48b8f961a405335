//! Rolling back: `migsafe rollback --steps N | --to V`, and the automatic rollback of what a
//! failed apply did (newest first, with the apply's safety; the backup restored when that
//! fails and `--restore-on-failure` is set).

use postgres::Client;
use std::path::PathBuf;

use migsafe_pg::ConnSpec;

use super::history::{self, RunStatus, State};
use super::lock::{self, take_lock, LockAttempt};
use super::{run, Applied, ApplyOptions, ApplyReport, Outcome};
use crate::exec::Prepared;
use crate::source::{Migration, MigrationSet, Version};
use crate::EngineError;

/// Roll back `done` (newest first) with the same safety; restore the backup when that fails
/// and `--restore-on-failure` is set.
pub(super) fn rollback_these(
    c: &mut Client,
    spec: &ConnSpec,
    done: &[&Migration],
    opts: &ApplyOptions,
    rep: &mut ApplyReport,
    reason: &str,
) -> Result<(), EngineError> {
    for m in done.iter().rev() {
        match rollback_one(c, m, opts) {
            Ok(a) => {
                rep.note(format!("{} rolled back", m.id()));
                rep.rolled_back.push(a)
            }
            Err(e) => {
                rep.note(format!("the rollback of {} failed: {e}", m.id()));
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
        .map_err(|e| EngineError::Tool(format!("pg_restore: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(EngineError::Tool(String::from_utf8_lossy(&out.stderr).trim().to_string()))
    }
}

/// Roll back one applied migration with the apply's safety, recording it in the history.
pub fn rollback_one(c: &mut Client, m: &Migration, opts: &ApplyOptions) -> Result<Applied, EngineError> {
    let Some(rb) = &m.rollback else {
        return Err(EngineError::Refused(format!("{} has no rollback (migsafe rollback generate writes one)", m.id())));
    };
    let p = Prepared::new(rb)?;
    let row: Option<i64> = c
        .query_opt(
            &format!("SELECT id FROM {} WHERE version = $1 ORDER BY id DESC LIMIT 1", opts.history.table()),
            &[&m.version.to_string()],
        )?
        .map(|r| r.get(0));
    let id = row.unwrap_or(0);
    let target = run::Target { history_id: id, done_status: RunStatus::RolledBack, skip: &[], history: &opts.history };
    let out = run::run_migration(c, &p, None, &target, &opts.run, &opts.cancel);
    if !out.ok {
        let err = out.error.map(|e| e.to_string()).unwrap_or_default();
        let _ = c.execute(
            &format!("UPDATE {} SET error = $2 WHERE id = $1", opts.history.table()),
            &[&id, &format!("rollback failed: {err}")],
        );
        return Err(EngineError::RollbackFailed(err));
    }
    c.execute(
        &format!("UPDATE {} SET rolled_back_at = clock_timestamp() WHERE id = $1", opts.history.table()),
        &[&id],
    )?;
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
    if let LockAttempt::HeldBy(holder) = take_lock(&mut lock, opts.history.lock_key(), opts.wait)? {
        rep.outcome = Outcome::Locked { holder };
        return Ok(rep);
    }
    let lock = lock::HeldLock::new(lock, opts.history.lock_key());
    let mut c = spec.with_application_name("migsafe rollback").connect()?;
    history::ensure_in(&mut c, &opts.history)?;
    let rows = history::latest_in(&mut c, &opts.history)?;
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
