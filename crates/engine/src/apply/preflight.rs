//! The preflight of `apply`: what must hold before anything runs (history without drift or
//! half-applied runs, lint and risk with their approvals, a rollback for every migration, a
//! verified backup), and what is worth knowing (PITR, locks held on the migrated tables, long
//! transactions, replication lag). Each check is one item of the report; a `fail` refuses.

use postgres::Client;

use migsafe_pg::ConnSpec;
use migsafe_sql::lint::{LintOptions, Severity as LintSeverity};

use super::history::{self, HistoryRow, RunMode, RunStatus, State};
use super::{ApplyOptions, ApplyReport, BackupPolicy, Check};
use crate::backup;
use crate::exec::Prepared;
use crate::lint::RiskView;
use crate::source::{Migration, MigrationSet, Version};
use crate::EngineError;

/// Run the preflight; returns the migrations to apply.
pub(super) fn preflight<'a>(
    c: &mut Client,
    set: &'a MigrationSet,
    spec: &ConnSpec,
    opts: &ApplyOptions,
    rep: &mut ApplyReport,
) -> Result<Vec<&'a Migration>, EngineError> {
    history_checks(c, set, opts, rep)?;
    let rows = history::latest_in(c, &opts.history)?;
    let todo = pending(set, &rows, opts.to.as_deref());
    rep.pending = todo.iter().map(|m| m.id()).collect();
    if todo.is_empty() {
        return Ok(todo);
    }
    migration_checks(c, set, &todo, opts, rep)?;
    backup_check(spec, opts, rep)?;
    server_checks(c, &todo, rep)?;
    Ok(todo)
}

/// Drift (applied migrations whose file changed) and runs that never finished: a transactional
/// one left nothing and runs again; a statement-by-statement one is resumed with `--resume`,
/// else it refuses (`migsafe diagnose` first).
fn history_checks(
    c: &mut Client,
    set: &MigrationSet,
    opts: &ApplyOptions,
    rep: &mut ApplyReport,
) -> Result<(), EngineError> {
    let rows = history::latest_in(c, &opts.history)?;
    end_orphaned_backends(c, &rows)?;
    let rows = history::latest_in(c, &opts.history)?;
    let states = history::status(set, &rows);
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
        let wrapped = row.is_some_and(|r| r.tx_mode == RunMode::Wrapped);
        if opts.resume && row.is_some() && !wrapped {
            c.execute(&format!("UPDATE {} SET status = 'failed', finished_at = clock_timestamp(), error = 'interrupted; resumed by a later run' WHERE id = $1", opts.history.table()), &[&row.map(|r| r.id).unwrap_or(0)])?;
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
        if wrapped {
            // We hold the lock: that run is dead, and its transaction left nothing.
            c.execute(
                &format!("UPDATE {} SET status = 'failed', finished_at = clock_timestamp(), error = 'interrupted; it ran in one transaction, so nothing of it was applied' \
                 WHERE id = $1", opts.history.table()),
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
    Ok(())
}

/// A `running` row whose backend still exists belongs to a run whose client died (kill -9, a
/// lost machine) while the server was still executing its statement: the advisory lock we hold
/// says no migsafe is running it. That backend could still commit what it was sent, so it is
/// ended (after a grace period for it to finish on its own) before the row is judged.
fn end_orphaned_backends(c: &mut Client, rows: &[HistoryRow]) -> Result<(), EngineError> {
    let running: Vec<&HistoryRow> =
        rows.iter().filter(|r| r.status == RunStatus::Running && r.backend_pid.is_some()).collect();
    if running.is_empty() {
        return Ok(());
    }
    let pids: Vec<i32> = running.iter().filter_map(|r| r.backend_pid).collect();
    let since: Vec<String> = running.iter().map(|r| r.started_at.clone()).collect();
    // The same pid, a migsafe session, started before the row was written: that run's backend,
    // not a later session that got the pid again.
    const THEIRS: &str = "FROM pg_stat_activity a JOIN unnest($1::int[], $2::text[]) r(pid, since) ON r.pid = a.pid \
        WHERE a.pid <> pg_backend_pid() AND a.datname = current_database() AND a.application_name LIKE 'migsafe%' \
        AND a.backend_start <= r.since::timestamptz";
    let alive = |c: &mut Client| -> Result<i64, EngineError> {
        Ok(c.query_one(&format!("SELECT count(*) {THEIRS}"), &[&pids, &since])?.get(0))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while alive(c)? > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if alive(c)? > 0 {
        c.execute(&format!("SELECT pg_terminate_backend(a.pid) {THEIRS}"), &[&pids, &since])?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while alive(c)? > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    Ok(())
}

/// Per pending migration: lint and risk (with the database's real table sizes), the approvals
/// its risk level needs, a rollback, and that it parses.
fn migration_checks(
    c: &mut Client,
    set: &MigrationSet,
    todo: &[&Migration],
    opts: &ApplyOptions,
    rep: &mut ApplyReport,
) -> Result<(), EngineError> {
    let given: Vec<String> = opts.approvals.iter().map(|(r, _)| r.to_ascii_lowercase()).collect();
    let linted = match &opts.linted {
        // A fleet lints once for all its targets (with the largest table sizes among them).
        Some(all) => todo
            .iter()
            .map(|m| {
                all.get(&m.version.to_string())
                    .cloned()
                    .ok_or_else(|| EngineError::Usage(format!("{} is not in the set that was linted", m.id())))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => {
            let lint_opts = LintOptions { table_rows: crate::lint::table_rows(c)?, ..crate::lint::server_options(c)? };
            let mut linted = Vec::new();
            crate::lint::lint_set(set, &lint_opts, &mut |m, l| {
                if todo.iter().any(|w| w.version == m.version) {
                    linted.push((l.findings, RiskView::from(&l.risk)));
                }
            });
            linted
        }
    };
    for (m, (findings, risk)) in todo.iter().zip(linted) {
        let errors = findings.iter().filter(|f| f.severity == LintSeverity::Error).count();
        let warnings = findings.iter().filter(|f| f.severity == LintSeverity::Warning).count();
        let rules: Vec<&str> =
            findings.iter().filter(|f| f.severity >= LintSeverity::Warning).map(|f| f.rule.id()).collect();
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
        approval_check(m, &risk, &given, rep);
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
    Ok(())
}

/// The approvals the guide's matrix asks for at this risk, against those given.
fn approval_check(m: &Migration, risk: &RiskView, given: &[String], rep: &mut ApplyReport) {
    let missing: Vec<&String> = risk.approvals.iter().filter(|a| !given.contains(&a.to_ascii_lowercase())).collect();
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
}

/// The backup policy: take one now, require a verified one young enough, or skip (a warning).
fn backup_check(spec: &ConnSpec, opts: &ApplyOptions, rep: &mut ApplyReport) -> Result<(), EngineError> {
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
    Ok(())
}

/// What the server says now: PITR, sessions holding locks on the tables the migrations touch,
/// long transactions, replication lag. Warnings, never refusals.
fn server_checks(c: &mut Client, todo: &[&Migration], rep: &mut ApplyReport) -> Result<(), EngineError> {
    let pitr = backup::pitr_status(c)?;
    rep.pre(
        "point-in-time recovery",
        if pitr.enabled { Check::Pass } else { Check::Warn },
        pitr.advice
            .clone()
            .unwrap_or_else(|| format!("WAL archived ({})", pitr.last_archived.clone().unwrap_or_default())),
    );
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
    Ok(())
}

/// Tables a migration touches (as written, schema-resolved to public).
pub(super) fn touched_tables(p: &Prepared) -> Vec<String> {
    let mut v: Vec<String> = p
        .statements
        .iter()
        .flat_map(|s| migsafe_sql::lock::statement_locks(&s.kind, &()))
        .map(|(t, _)| t.resolved().to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The migrations to apply, in order.
fn pending<'a>(set: &'a MigrationSet, rows: &[HistoryRow], to: Option<&str>) -> Vec<&'a Migration> {
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
pub(super) fn resumable_runs(c: &mut Client, opts: &ApplyOptions) -> Result<Vec<(String, Vec<usize>)>, EngineError> {
    if !opts.resume {
        return Ok(vec![]);
    }
    Ok(history::latest_in(c, &opts.history)?
        .into_iter()
        .filter(|r| r.status == RunStatus::Running && r.tx_mode != RunMode::Wrapped)
        .map(|r| (r.version, r.statements_done.iter().map(|i| *i as usize).collect()))
        .collect())
}
