//! `migsafe apply`, and the options it shares with `rollback` against a database.

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

use migsafe_engine::apply::{self, ApplyOptions, ApplyReport, BackupPolicy, Cancel, Probes, RunSettings};
use migsafe_engine::config::parse_duration;
use migsafe_engine::notify::{Notice, Notifier};
use migsafe_engine::MigrationSet;

use super::common::{database, engine_failure, load_set};
use crate::render;
use crate::{CmdResult, Failure};

/// Human, JSON or Markdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable.
    Human,
    /// JSON.
    Json,
    /// Markdown (for a change ticket).
    Markdown,
}

/// Safety settings shared by apply and rollback.
#[derive(Debug, Args, Clone)]
pub struct SafetyArgs {
    /// Database URL (default: DATABASE_URL, PG* variables).
    #[arg(long)]
    pub db: Option<String>,
    /// lock_timeout per attempt (default 2s, or [apply] lock_timeout).
    #[arg(long)]
    pub lock_timeout: Option<String>,
    /// Retries after a lock timeout (default 5).
    #[arg(long)]
    pub lock_retries: Option<u32>,
    /// statement_timeout (default: none).
    #[arg(long)]
    pub statement_timeout: Option<String>,
    /// Wait this long for another migsafe apply to finish instead of exiting.
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "1h")]
    pub wait: Option<String>,
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

/// Arguments of `migsafe apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Migration folder (default: current folder).
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub safety: SafetyArgs,
    /// Apply up to and including this version.
    #[arg(long)]
    pub to: Option<String>,
    /// Approval for the risk matrix, e.g. "Technical Lead=Ada" (repeatable).
    #[arg(long = "approved-by", value_name = "ROLE=NAME")]
    pub approved_by: Vec<String>,
    /// Take a verified backup first.
    #[arg(long, conflicts_with = "no_backup")]
    pub backup: bool,
    /// Apply without a recent backup (recorded as a warning).
    #[arg(long)]
    pub no_backup: bool,
    /// Accept an existing verified backup up to this old (default 24h).
    #[arg(long, default_value = "24h")]
    pub backup_max_age: String,
    /// Folder of backups (default: [backup] dir, else ./backups).
    #[arg(long)]
    pub backup_dir: Option<PathBuf>,
    /// When a rollback fails, restore the backup taken or found in preflight.
    #[arg(long)]
    pub restore_on_failure: bool,
    /// URL that must answer 2xx after the migration.
    #[arg(long)]
    pub health_url: Option<String>,
    /// Command that must exit 0 after the migration.
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Command printing the error rate in percent.
    #[arg(long)]
    pub error_rate_cmd: Option<String>,
    /// Error rate above which apply rolls back (default 5).
    #[arg(long)]
    pub error_rate_threshold: Option<f64>,
    /// Command printing a latency figure; more than 50 % worse than before rolls back.
    #[arg(long)]
    pub latency_cmd: Option<String>,
    /// Watch window after applying (e.g. 10m).
    #[arg(long)]
    pub watch: Option<String>,
    /// How often to probe during the window.
    #[arg(long, default_value = "10s")]
    pub watch_interval: String,
    /// Assessment window before rolling back on P1/P2 observations.
    #[arg(long, default_value = "5m")]
    pub assess: String,
    /// Roll back on P1/P2 at once instead of after the assessment window.
    #[arg(long)]
    pub act_now: bool,
    /// Wait (up to this long) until no other client sessions are connected before applying.
    #[arg(long)]
    pub wait_for_sessions: Option<String>,
    /// Apply despite lint errors.
    #[arg(long)]
    pub allow_lint_errors: bool,
    /// Apply migrations that have no rollback.
    #[arg(long)]
    pub allow_no_rollback: bool,
    /// Continue interrupted statement-by-statement migrations where they stopped.
    #[arg(long)]
    pub resume: bool,
    /// PostgreSQL binaries (pg_dump of the server's version).
    #[arg(long, env = "PG_BIN")]
    pub pg_bin: Option<PathBuf>,
    /// JSON webhook told of the start, every failure or rollback, and the end (Slack and Teams
    /// incoming webhooks accept its payload).
    #[arg(long, value_name = "URL")]
    pub notify_url: Option<String>,
    /// Command run on each notification (the JSON on stdin, the event in MIGSAFE_EVENT).
    #[arg(long, value_name = "CMD")]
    pub notify_cmd: Option<String>,
    /// Write the report to this file too (.json, .md; a fleet also .html, .xml for JUnit); an
    /// incident report is written beside it when a rollback happened.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

impl ApplyArgs {
    /// Where notifications go.
    pub fn notifier(&self) -> Notifier {
        Notifier { url: self.notify_url.clone(), cmd: self.notify_cmd.clone() }
    }

    /// The folder of `--report` (the incident report goes there), else the current folder.
    pub fn report_dir(&self) -> PathBuf {
        self.report
            .as_ref()
            .and_then(|p| p.parent())
            .filter(|p| !p.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    }
}

pub(super) fn dur(flag: &str, s: &str) -> Result<Duration, Failure> {
    parse_duration(s).map_err(|e| Failure::input(anyhow::anyhow!("{flag}: {e}")))
}

/// Build the run settings from flags and migsafe.toml.
pub(super) fn run_settings(a: &SafetyArgs, set: &MigrationSet) -> Result<RunSettings, Failure> {
    let cfg = &set.config.apply;
    Ok(RunSettings {
        lock_timeout: dur("--lock-timeout", a.lock_timeout.as_deref().or(cfg.lock_timeout.as_deref()).unwrap_or("2s"))?,
        lock_retries: a.lock_retries.or(cfg.lock_retries).unwrap_or(5),
        statement_timeout: a
            .statement_timeout
            .as_deref()
            .or(cfg.statement_timeout.as_deref())
            .map(|s| dur("--statement-timeout", s))
            .transpose()?,
        session: set.config.session.clone(),
        ..RunSettings::default()
    })
}

/// A Ctrl-C handler that cancels the running statement instead of killing the process.
pub(super) fn ctrl_c() -> Cancel {
    let cancel = Cancel::default();
    let c = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        eprintln!("\nmigsafe: interrupted: cancelling the running statement and recording where it stopped…");
        c.cancel();
    });
    cancel
}

pub(super) fn options(a: &ApplyArgs, set: &MigrationSet) -> Result<ApplyOptions, Failure> {
    let cfg = &set.config.apply;
    let approvals = a
        .approved_by
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(r, n)| (r.trim().to_string(), n.trim().to_string()))
                .ok_or_else(|| Failure::input(anyhow::anyhow!("--approved-by {s:?}: expected ROLE=NAME")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ApplyOptions {
        dry_run: a.safety.dry_run,
        to: a.to.clone(),
        run: run_settings(&a.safety, set)?,
        wait: a.safety.wait.as_deref().map(|w| dur("--wait", w)).transpose()?,
        approvals,
        backup: if a.no_backup {
            BackupPolicy::Skip
        } else if a.backup {
            BackupPolicy::Take
        } else {
            BackupPolicy::Require(dur("--backup-max-age", &a.backup_max_age)?)
        },
        backup_dir: a.backup_dir.clone().or(set.config.backup.dir.clone()).unwrap_or_else(|| PathBuf::from("backups")),
        restore_on_failure: a.restore_on_failure,
        pre_apply: cfg.pre_apply.clone(),
        post_apply: cfg.post_apply.clone(),
        wait_for_sessions: a.wait_for_sessions.as_deref().map(|w| dur("--wait-for-sessions", w)).transpose()?,
        probes: Probes {
            health_url: a.health_url.clone().or(cfg.health_url.clone()),
            health_cmd: a.health_cmd.clone().or(cfg.health_cmd.clone()),
            error_rate_cmd: a.error_rate_cmd.clone().or(cfg.error_rate_cmd.clone()),
            error_rate_threshold: a.error_rate_threshold.or(cfg.error_rate_threshold).unwrap_or(5.0),
            latency_cmd: a.latency_cmd.clone().or(cfg.latency_cmd.clone()),
            tables: vec![],
            env: vec![],
        },
        watch: a
            .watch
            .as_deref()
            .or(cfg.watch.as_deref())
            .map(|w| dur("--watch", w))
            .transpose()?
            .unwrap_or(Duration::ZERO),
        watch_interval: dur("--watch-interval", &a.watch_interval)?,
        assess: dur("--assess", &a.assess)?,
        act_now: a.act_now,
        allow_lint_errors: a.allow_lint_errors,
        allow_no_rollback: a.allow_no_rollback,
        tool_dirs: a.pg_bin.iter().cloned().collect(),
        resume: a.resume,
        cancel: ctrl_c(),
        ..ApplyOptions::default()
    })
}

pub(super) fn emit_report(r: &ApplyReport, f: Format) -> CmdResult {
    let text = match f {
        Format::Json => render::json(r),
        _ => render::apply::human(r),
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    Ok(crate::exit::exit_of(&r.outcome))
}

/// Run `migsafe apply`.
pub fn run(a: ApplyArgs) -> CmdResult {
    let set = load_set(a.dir.as_deref())?;
    let spec = database(a.safety.db.as_deref())?;
    let opts = options(&a, &set)?;
    let notifier = a.notifier();
    let notice = |event: &str, text: String| Notice { text, event: event.into(), run: 0, target: None, counts: None };
    let mut warnings = notifier.send(&notice("start", format!("migsafe apply on {} starts", spec.redacted())));
    let mut r = apply::apply(&set, &spec, &opts).map_err(engine_failure)?;
    let event = match &r.outcome {
        apply::Outcome::RolledBack { .. } => "rollback",
        apply::Outcome::NeedsHuman { .. } | apply::Outcome::Refused | apply::Outcome::Interrupted { .. } => "failure",
        _ => "end",
    };
    warnings.extend(notifier.send(&notice(event, format!("migsafe apply on {}: {}", spec.redacted(), r.outcome))));
    after_report(&mut r, &a, warnings)?;
    emit_report(&r, a.safety.format)
}

/// `--report`, and the incident report when a rollback happened; notifications not delivered
/// are warnings in the report.
pub(super) fn after_report(r: &mut ApplyReport, a: &ApplyArgs, warnings: Vec<String>) -> Result<(), Failure> {
    for w in warnings {
        r.pre("notification", apply::Check::Warn, w);
    }
    if let Some(md) = migsafe_engine::incident::for_apply(r) {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let path = a.report_dir().join(format!("migsafe-apply-{stamp}-incident.md"));
        match migsafe_engine::incident::write(&path, &md) {
            Ok(()) => r.pre("incident report", apply::Check::Warn, format!("written to {}", path.display())),
            Err(e) => r.pre("incident report", apply::Check::Warn, format!("not written: {}: {e}", path.display())),
        }
    }
    if let Some(path) = &a.report {
        let text = match path.extension().and_then(|e| e.to_str()) {
            Some("md") => render::apply::human(r),
            _ => render::json(r),
        };
        render::emit(&text, Some(path))
            .map_err(|e| Failure::environment(anyhow::anyhow!("{}: {e}", path.display())))?;
    }
    Ok(())
}
