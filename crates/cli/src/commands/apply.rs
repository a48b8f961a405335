//! `migsafe apply`, `status`, `diagnose`, `plan`, `adopt`, and `rollback` against a database.

use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

use migsafe_engine::apply::{
    self, history, ApplyOptions, ApplyReport, BackupPolicy, Cancel, Check, ChecklistStatus, Outcome, Probes,
    RunSettings,
};
use migsafe_engine::config::parse_duration;
use migsafe_engine::MigrationSet;

use super::common::{database, engine_failure, load_set};
use crate::render::{self, paint, style};
use crate::{CmdResult, Exit, Failure};

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
}

fn dur(flag: &str, s: &str) -> Result<Duration, Failure> {
    parse_duration(s).map_err(|e| Failure::input(anyhow::anyhow!("{flag}: {e}")))
}

/// Build the run settings from flags and migsafe.toml.
fn run_settings(a: &SafetyArgs, set: &MigrationSet) -> Result<RunSettings, Failure> {
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
fn ctrl_c() -> Cancel {
    let cancel = Cancel::default();
    let c = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        eprintln!("\nmigsafe: interrupted: cancelling the running statement and recording where it stopped…");
        c.cancel();
    });
    cancel
}

fn options(a: &ApplyArgs, set: &MigrationSet) -> Result<ApplyOptions, Failure> {
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
    })
}

/// Exit code of an apply/rollback outcome.
pub fn exit_of(o: &Outcome) -> Exit {
    match o {
        Outcome::NothingToDo | Outcome::DryRun | Outcome::Applied => Exit::Ok,
        Outcome::Refused => Exit::Findings,
        Outcome::Locked { .. } => Exit::Environment,
        Outcome::RolledBack { reason } if reason == "requested" => Exit::Ok,
        Outcome::RolledBack { .. } => Exit::RolledBack,
        Outcome::NeedsHuman { .. } => Exit::NeedsHuman,
        Outcome::Interrupted { state } if state.contains("diagnose") => Exit::NeedsHuman,
        Outcome::Interrupted { .. } => Exit::RolledBack,
    }
}

/// Human rendering of an apply/rollback report.
pub fn human(r: &ApplyReport) -> String {
    let mut s = format!("{} {}\n", paint(style::BOLD, "database"), r.database);
    if !r.preflight.is_empty() {
        s.push_str(&format!("{}\n", paint(style::BOLD, "preflight")));
        for p in &r.preflight {
            let mark = match p.status {
                Check::Pass => paint(style::OK, "pass"),
                Check::Warn => paint(style::WARNING, "warn"),
                Check::Fail => paint(style::ERROR, "FAIL"),
            };
            s.push_str(&format!("  {mark} {:<34} {}\n", p.item, p.detail));
        }
    }
    if !r.pending.is_empty() {
        s.push_str(&format!("{} {}\n", paint(style::BOLD, "plan:"), r.pending.join(" → ")));
    }
    for a in &r.applied {
        s.push_str(&format!(
            "  applied {}_{} in {:.0} ms{}\n",
            a.version,
            a.name,
            a.ms,
            if a.attempts > 1 { format!(" ({} attempts)", a.attempts) } else { String::new() }
        ));
        for e in &a.events {
            s.push_str(&format!("    {e}\n"));
        }
    }
    for o in &r.observations {
        s.push_str(&format!("  observed {:?}: {}\n", o.severity, o.what));
    }
    if let Some(d) = &r.decision {
        s.push_str(&format!("{} {d}\n", paint(style::BOLD, "decision:")));
    }
    for a in &r.rolled_back {
        s.push_str(&format!("  rolled back {}_{} in {:.0} ms\n", a.version, a.name, a.ms));
    }
    let outcome = match &r.outcome {
        Outcome::NothingToDo => paint(style::OK, "nothing to do: the database is up to date"),
        Outcome::DryRun => paint(style::OK, "dry run: nothing changed"),
        Outcome::Refused => paint(style::ERROR, "refused: fix the FAIL items above (nothing changed)"),
        Outcome::Locked { holder } => {
            paint(style::ERROR, format!("another migsafe apply is running ({holder}); use --wait to queue behind it"))
        }
        Outcome::Applied => paint(style::OK, format!("applied {} migrations", r.applied.len())),
        Outcome::RolledBack { reason } => paint(style::WARNING, format!("rolled back: {reason}")),
        Outcome::NeedsHuman { reason, state, next } => {
            paint(style::ERROR, format!("NEEDS A HUMAN: {reason}\n  state: {state}\n  next: {next}"))
        }
        Outcome::Interrupted { state } => paint(style::WARNING, format!("interrupted: {state}")),
    };
    s.push_str(&format!("{} {outcome}\n", paint(style::BOLD, "outcome:")));
    if !r.checklist.is_empty() {
        s.push_str(&format!("{}\n", paint(style::BOLD, "post-migration checklist")));
        for c in &r.checklist {
            let mark = match c.status {
                ChecklistStatus::Checked => paint(style::OK, "[x]"),
                ChecklistStatus::Failed => paint(style::ERROR, "[!]"),
                ChecklistStatus::Human => "[ ]".to_string(),
            };
            s.push_str(&format!("  {mark} {} — {}\n", c.item, c.detail));
        }
    }
    s
}

fn emit_report(r: &ApplyReport, f: Format) -> CmdResult {
    let text = match f {
        Format::Json => render::json(r),
        _ => human(r),
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    Ok(exit_of(&r.outcome))
}

/// Run `migsafe apply`.
pub fn run(a: ApplyArgs) -> CmdResult {
    let set = load_set(a.dir.as_deref())?;
    let spec = database(a.safety.db.as_deref())?;
    let opts = options(&a, &set)?;
    let r = apply::apply(&set, &spec, &opts).map_err(engine_failure)?;
    emit_report(&r, a.safety.format)
}

/// Arguments of `migsafe rollback` against a database.
#[derive(Debug, Args, Clone)]
pub struct DbRollbackArgs {
    #[command(flatten)]
    pub safety: SafetyArgs,
    /// Roll back this many applied migrations (default 1).
    #[arg(long, conflicts_with = "to")]
    pub steps: Option<usize>,
    /// Roll back every migration newer than this version.
    #[arg(long)]
    pub to: Option<String>,
}

/// Run `migsafe rollback --db …`.
pub fn rollback(dir: Option<&std::path::Path>, a: DbRollbackArgs) -> CmdResult {
    let set = load_set(dir)?;
    let spec = database(a.safety.db.as_deref())?;
    let opts = ApplyOptions {
        dry_run: a.safety.dry_run,
        run: run_settings(&a.safety, &set)?,
        wait: a.safety.wait.as_deref().map(|w| dur("--wait", w)).transpose()?,
        cancel: ctrl_c(),
        ..ApplyOptions::default()
    };
    let r = apply::rollback(&set, &spec, a.steps, a.to.as_deref(), &opts).map_err(engine_failure)?;
    emit_report(&r, a.safety.format)
}

/// Arguments of `migsafe status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Migration folder (default: current folder).
    pub dir: Option<PathBuf>,
    /// Database URL (default: DATABASE_URL, PG* variables).
    #[arg(long)]
    pub db: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

/// Run `migsafe status`.
pub fn status(a: StatusArgs) -> CmdResult {
    let set = load_set(a.dir.as_deref())?;
    let spec = database(a.db.as_deref())?;
    let mut c = spec.connect().map_err(Failure::environment)?;
    let rows = history::latest(&mut c).map_err(engine_failure)?;
    let lines = history::status(&set, &rows);
    let text = match a.format {
        Format::Json => render::json(&serde_json::json!({ "migrations": lines })),
        _ => {
            let mut s = String::new();
            for l in &lines {
                let st =
                    serde_json::to_value(l.state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                let styled = match l.state {
                    history::State::Applied => paint(style::OK, &st),
                    history::State::Pending => paint(style::DIM, &st),
                    _ => paint(style::ERROR, &st),
                };
                s.push_str(&format!("{:<12} {}_{}  {}\n", styled, l.version, l.name, l.detail));
            }
            s
        }
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    let bad = lines.iter().any(|l| {
        matches!(
            l.state,
            history::State::Drifted | history::State::Failed | history::State::Running | history::State::Missing
        )
    });
    Ok(if bad { Exit::Findings } else { Exit::Ok })
}

/// Arguments of `migsafe diagnose`.
#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Migration folder (default: current folder).
    pub dir: Option<PathBuf>,
    /// Database URL (default: DATABASE_URL, PG* variables).
    #[arg(long)]
    pub db: Option<String>,
    /// Write the custom rollback for the current state to this file.
    #[arg(long)]
    pub write: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// PostgreSQL server binaries (to build the expected schema on a throwaway cluster).
    #[arg(long, env = "PG_BIN")]
    pub pg_bin: Option<PathBuf>,
}

/// Run `migsafe diagnose`.
pub fn diagnose(a: DiagnoseArgs) -> CmdResult {
    let set = load_set(a.dir.as_deref())?;
    let spec = database(a.db.as_deref())?;
    let ds = apply::diagnose::diagnose(&set, &spec, a.pg_bin.as_deref()).map_err(engine_failure)?;
    if let Some(path) = &a.write {
        let sql: String = ds
            .iter()
            .map(|d| {
                format!("-- custom rollback for {}_{} (state at diagnosis)\n{}", d.version, d.name, d.custom_rollback)
            })
            .collect();
        std::fs::write(path, sql).map_err(Failure::environment)?;
    }
    let text = match a.format {
        Format::Json => render::json(&ds),
        _ => {
            let mut s = String::new();
            if ds.is_empty() {
                s.push_str("no failed or interrupted migrations\n");
            }
            for d in &ds {
                s.push_str(&format!(
                    "{} {}_{} ({}, {})\n",
                    paint(style::BOLD, "migration"),
                    d.version,
                    d.name,
                    d.status,
                    d.tx_mode
                ));
                if let Some(e) = &d.error {
                    s.push_str(&format!("  error: {e}\n"));
                }
                s.push_str(&format!("  applied ({}): {}\n", d.applied.len(), d.applied.join(", ")));
                s.push_str(&format!("  not applied ({}): {}\n", d.not_applied.len(), d.not_applied.join(", ")));
                s.push_str(&format!(
                    "  changed since before it:\n    {}\n",
                    d.changed_since_before.trim_end().replace('\n', "\n    ")
                ));
                if let Some(m) = &d.missing_vs_expected {
                    s.push_str(&format!(
                        "  still missing compared with the finished migration:\n    {}\n",
                        m.trim_end().replace('\n', "\n    ")
                    ));
                }
                s.push_str(&format!(
                    "  custom rollback for this exact state:\n    {}\n",
                    d.custom_rollback.trim_end().replace('\n', "\n    ")
                ));
                for n in &d.next {
                    s.push_str(&format!("  next: {n}\n"));
                }
            }
            s
        }
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    Ok(if ds.is_empty() { Exit::Ok } else { Exit::Findings })
}

/// Arguments of `migsafe plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Migration folder (default: current folder).
    pub dir: Option<PathBuf>,
    /// Database URL (default: DATABASE_URL, PG* variables).
    #[arg(long)]
    pub db: Option<String>,
    /// A rehearsal report (`migsafe rehearse --report r.json`) to take evidence from.
    #[arg(long)]
    pub rehearsal: Option<PathBuf>,
    /// Folder of backups (default: [backup] dir, else ./backups).
    #[arg(long)]
    pub backup_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

/// Run `migsafe plan`.
pub fn plan(a: PlanArgs) -> CmdResult {
    let set = load_set(a.dir.as_deref())?;
    let spec = database(a.db.as_deref())?;
    let rehearsal = a
        .rehearsal
        .as_ref()
        .map(|p| -> Result<migsafe_engine::report::Report, Failure> {
            let text = std::fs::read_to_string(p).map_err(Failure::input)?;
            serde_json::from_str(&text)
                .map_err(|e| Failure::input(anyhow::anyhow!("{}: not a rehearsal JSON report: {e}", p.display())))
        })
        .transpose()?;
    let dir = a.backup_dir.clone().or(set.config.backup.dir.clone()).unwrap_or_else(|| PathBuf::from("backups"));
    let p = apply::plan::plan(&set, &spec, rehearsal.as_ref(), &dir).map_err(engine_failure)?;
    let text = match a.format {
        Format::Json => render::json(&p),
        Format::Markdown => {
            let mut s = format!(
                "## Pre-migration checklist\n\nPending: {}\n\n",
                if p.pending.is_empty() { "none".into() } else { p.pending.join(", ") }
            );
            for i in &p.items {
                let mark = match i.status.as_str() {
                    "met" => "- [x]",
                    "unmet" => "- [ ] ❌",
                    _ => "- [ ] 👤",
                };
                s.push_str(&format!("{mark} **{}** — {}\n", i.item, i.detail));
            }
            s
        }
        Format::Human => {
            let mut s = String::new();
            for i in &p.items {
                let mark = match i.status.as_str() {
                    "met" => paint(style::OK, "[x]"),
                    "unmet" => paint(style::ERROR, "[!]"),
                    _ => "[ ]".into(),
                };
                s.push_str(&format!("{mark} {} — {}\n", i.item, i.detail));
            }
            s.push_str(&format!("{} items unmet\n", p.unmet().len()));
            s
        }
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    Ok(if p.unmet().is_empty() { Exit::Ok } else { Exit::Findings })
}

/// Arguments of `migsafe adopt`.
#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// Migration folder (default: current folder).
    pub dir: Option<PathBuf>,
    /// Database URL (default: DATABASE_URL, PG* variables).
    #[arg(long)]
    pub db: Option<String>,
}

/// Run `migsafe adopt`: import another tool's history.
pub fn adopt(a: AdoptArgs) -> CmdResult {
    let set = load_set(a.dir.as_deref())?;
    let spec = database(a.db.as_deref())?;
    let mut c = spec.connect().map_err(Failure::environment)?;
    let (n, tool) = history::import(&mut c, &set).map_err(engine_failure)?;
    render::emit(&format!("imported {n} applied migrations from {tool} into migsafe.history\n"), None)
        .map_err(Failure::environment)?;
    Ok(Exit::Ok)
}
