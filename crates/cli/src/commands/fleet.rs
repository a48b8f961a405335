//! `migsafe fleet apply | status | work | rollback`: the safety procedure across many databases
//! or tenant schemas, with a ledger in a control database.

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use migsafe_engine::fleet::{self, FleetOptions, FleetProgress, FleetReport, Limits, MaxFailures, Target, TargetState};
use migsafe_pg::ConnSpec;

use super::apply::{options, ApplyArgs, Format};
use super::common::{engine_failure, load_set};
use crate::render;
use crate::{CmdResult, Exit, Failure};

/// Where the targets come from and how many run at once.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// File of targets: one connection string per line, or TOML `[[target]]` entries with
    /// `url`, `name` and labels (`host`, `region`, `tier`…).
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,
    /// Query against the control database returning `name` and `url` (other columns are labels).
    #[arg(long, value_name = "SQL")]
    pub targets_sql: Option<String>,
    /// Each schema whose name is LIKE this pattern is a target (in the --targets databases, else
    /// in --db), with its own search_path and history.
    #[arg(long, value_name = "PATTERN")]
    pub schemas: Option<String>,
    /// The control database that holds the fleet's ledger (migsafe_fleet schema).
    #[arg(long, env = "MIGSAFE_CONTROL_DB", value_name = "URL")]
    pub control_db: Option<String>,
    /// Targets migrated at once.
    #[arg(long, default_value = "4")]
    pub jobs: usize,
    /// Targets migrated at once on one server.
    #[arg(long, default_value = "2")]
    pub per_host: usize,
}

/// Arguments of `migsafe fleet apply`.
#[derive(Debug, Args)]
pub struct FleetApplyArgs {
    #[command(flatten)]
    pub apply: ApplyArgs,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Targets in the canary wave (a canary failure stops the run before any other target).
    #[arg(long, default_value = "1")]
    pub canary: usize,
    /// Cumulative shares of the other targets per wave, e.g. 5%,25%,100%.
    #[arg(long, default_value = "100%")]
    pub waves: String,
    /// Stop when failures pass this count or share (e.g. 3 or 2%).
    #[arg(long, default_value = "0")]
    pub max_failures: String,
    /// Apply to targets whose schema drifted from the others too.
    #[arg(long)]
    pub include_drifted: bool,
    /// Do not rehearse the pending migrations on a throwaway cluster first.
    #[arg(long)]
    pub no_rehearse: bool,
    /// With --resume: the run to go on with (default: the latest unfinished one).
    #[arg(long, value_name = "RUN", requires = "resume")]
    pub run: Option<i64>,
}

/// Arguments of `migsafe fleet status`.
#[derive(Debug, Args)]
pub struct FleetStatusArgs {
    /// Migration folder (default: current folder).
    pub dir: Option<PathBuf>,
    /// Database for --schemas without --targets.
    #[arg(long)]
    pub db: Option<String>,
    #[command(flatten)]
    pub targets: TargetArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

/// Arguments of `migsafe fleet work` and `fleet rollback`.
#[derive(Debug, Args)]
pub struct FleetRunArgs {
    /// The fleet run (its id in the ledger).
    pub run: i64,
    #[command(flatten)]
    pub apply: ApplyArgs,
    #[command(flatten)]
    pub targets: TargetArgs,
}

/// `migsafe fleet …`.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Apply the pending migrations to every target: survey, rehearse, canary, waves, ledger.
    Apply(FleetApplyArgs),
    /// Per target: applied and pending migrations, drift, unreachable targets.
    Status(FleetStatusArgs),
    /// Join a run as another runner (targets are claimed from the ledger).
    Work(FleetRunArgs),
    /// Roll back, on every target, what a run applied there.
    Rollback(FleetRunArgs),
}

/// Run `migsafe fleet …`.
pub fn run(c: FleetCommand) -> CmdResult {
    match c {
        FleetCommand::Apply(a) => apply(a),
        FleetCommand::Status(a) => status(a),
        FleetCommand::Work(a) => run_existing(a, false),
        FleetCommand::Rollback(a) => run_existing(a, true),
    }
}

fn control(a: &TargetArgs) -> Result<ConnSpec, Failure> {
    let url = a.control_db.as_deref().ok_or_else(|| {
        Failure::input(anyhow::anyhow!("name the control database that keeps the fleet's ledger with --control-db URL"))
    })?;
    ConnSpec::parse(url).map_err(Failure::input)
}

/// The targets the arguments name.
fn targets(a: &TargetArgs, db: Option<&str>) -> Result<Vec<Target>, Failure> {
    let mut list = match (&a.targets, &a.targets_sql) {
        (Some(_), Some(_)) => return Err(Failure::input(anyhow::anyhow!("give --targets or --targets-sql, not both"))),
        (Some(file), None) => fleet::targets::from_file(file).map_err(engine_failure)?,
        (None, Some(sql)) => fleet::targets::from_query(&control(a)?, sql).map_err(engine_failure)?,
        (None, None) if a.schemas.is_some() => vec![Target::database(None, super::common::database(db)?)],
        (None, None) => {
            return Err(Failure::input(anyhow::anyhow!(
                "name the targets: --targets FILE, --targets-sql QUERY, or --schemas PATTERN (with --db)"
            )))
        }
    };
    if let Some(pattern) = &a.schemas {
        list = fleet::targets::schemas_of(&list, pattern).map_err(engine_failure)?;
    }
    if list.is_empty() {
        return Err(Failure::input(anyhow::anyhow!("no targets: the list is empty")));
    }
    Ok(list)
}

fn fleet_options(a: &ApplyArgs, t: &TargetArgs, set: &migsafe_engine::MigrationSet) -> Result<FleetOptions, Failure> {
    let apply = options(a, set)?;
    let cancel = apply.cancel.clone();
    if t.jobs == 0 || t.per_host == 0 {
        return Err(Failure::input(anyhow::anyhow!("--jobs and --per-host must be at least 1")));
    }
    Ok(FleetOptions {
        apply,
        limits: Limits { jobs: t.jobs, per_host: t.per_host },
        notify: a.notifier(),
        report_dir: a.report_dir(),
        cancel,
        ..FleetOptions::default()
    })
}

fn apply(a: FleetApplyArgs) -> CmdResult {
    let set = load_set(a.apply.dir.as_deref())?;
    let control = control(&a.targets)?;
    let list = targets(&a.targets, a.apply.safety.db.as_deref())?;
    let mut opts = fleet_options(&a.apply, &a.targets, &set)?;
    opts.canary = a.canary;
    opts.waves = fleet::parse_waves(&a.waves).map_err(engine_failure)?;
    opts.max_failures = MaxFailures::parse(&a.max_failures).map_err(engine_failure)?;
    opts.include_drifted = a.include_drifted;
    opts.rehearse = (!a.no_rehearse).then(|| a.apply.pg_bin.clone());
    let bar = Bar::new();
    // --resume goes on with a run, and lets each target go on with a statement-by-statement
    // migration where it was interrupted.
    let rep = if a.apply.resume {
        fleet::resume(&set, &list, &control, a.run, &opts, &bar)
    } else {
        fleet::apply(&set, &list, &control, &opts, &bar)
    }
    .map_err(engine_failure)?;
    bar.0.finish_and_clear();
    emit(&rep, a.apply.safety.format, &a.apply, false)
}

fn run_existing(a: FleetRunArgs, rollback: bool) -> CmdResult {
    let set = load_set(a.apply.dir.as_deref())?;
    let control = control(&a.targets)?;
    let list = targets(&a.targets, a.apply.safety.db.as_deref())?;
    let opts = fleet_options(&a.apply, &a.targets, &set)?;
    let bar = Bar::new();
    let rep = if rollback {
        fleet::rollback(&set, &list, &control, a.run, &opts, &bar)
    } else {
        fleet::work(&set, &list, &control, a.run, &opts, &bar)
    }
    .map_err(engine_failure)?;
    bar.0.finish_and_clear();
    emit(&rep, a.apply.safety.format, &a.apply, rollback)
}

fn status(a: FleetStatusArgs) -> CmdResult {
    let set = load_set(a.dir.as_deref())?;
    let list = targets(&a.targets, a.db.as_deref())?;
    let st = fleet::status(&set, &list, &Limits { jobs: a.targets.jobs.max(1), per_host: a.targets.per_host.max(1) });
    let text = match a.format {
        Format::Json => render::json(&st),
        _ => render::fleet::status_human(&st),
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    let clean = st.targets.iter().all(|t| t.state == "up to date" || t.state == "pending");
    Ok(if clean { Exit::Ok } else { Exit::Findings })
}

/// Print the report (and write `--report`); the exit code says how the targets ended: 5 when one
/// needs a human, 4 when the run stopped or quarantined targets (for a rollback: 0 once
/// everything the run applied is rolled back), 3 when targets were unreachable or left pending.
fn emit(rep: &FleetReport, f: Format, out: &ApplyArgs, rollback: bool) -> CmdResult {
    if let Some(path) = &out.report {
        let text = match path.extension().and_then(|e| e.to_str()) {
            Some("html") | Some("htm") => render::fleet::html(rep),
            Some("xml") => render::fleet::junit(rep),
            Some("md") => render::fleet::markdown(rep),
            _ => render::json(rep),
        };
        render::emit(&text, Some(path))
            .map_err(|e| Failure::environment(anyhow::anyhow!("{}: {e}", path.display())))?;
    }
    let text = match f {
        Format::Json => render::json(rep),
        Format::Markdown => render::fleet::markdown(rep),
        Format::Human => render::fleet::human(rep),
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    let any = |s: TargetState| rep.targets.iter().any(|t| t.state == s);
    if rep.status == "dry_run" {
        return Ok(if any(TargetState::Failed) { Exit::Findings } else { Exit::Ok });
    }
    if rollback {
        let left = rep.targets.iter().any(|t| !t.applied.is_empty());
        return Ok(if any(TargetState::Failed) {
            Exit::NeedsHuman
        } else if left {
            Exit::Environment
        } else {
            Exit::Ok
        });
    }
    Ok(if any(TargetState::Failed) {
        Exit::NeedsHuman
    } else if any(TargetState::Quarantined) || rep.status == "stopped" {
        Exit::RolledBack
    } else if rep.status != "finished" || any(TargetState::Unreachable) || any(TargetState::Pending) {
        Exit::Environment
    } else {
        Exit::Ok
    })
}

/// One bar for the fleet: done of total, failures and quarantines, ETA.
struct Bar(ProgressBar, AtomicU64, AtomicU64);

impl Bar {
    fn new() -> Bar {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{spinner} fleet [{bar:30}] {pos}/{len} {msg} (ETA {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar(bar, AtomicU64::new(0), AtomicU64::new(0))
    }
}

impl FleetProgress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }

    fn target_done(&self, _name: &str, state: TargetState) {
        match state {
            TargetState::Failed => {
                self.1.fetch_add(1, Ordering::SeqCst);
            }
            TargetState::Quarantined => {
                self.2.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        }
        self.0.inc(1);
        self.0.set_message(format!(
            "{} failed, {} quarantined",
            self.1.load(Ordering::SeqCst),
            self.2.load(Ordering::SeqCst)
        ));
    }

    fn say(&self, line: &str) {
        self.0.println(line);
    }
}
