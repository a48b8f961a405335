//! `migsafe fleet`: the single-database procedure of `apply` on every target of a fleet
//! (databases, or tenant schemas of one database), with what only a fleet needs: a survey that
//! finds drifted targets, lint once and a rehearsal per distinct schema, a canary and waves with
//! health checks between them, bounded parallelism per fleet and per server, quarantine and a
//! failure budget, and a ledger in a control database so a run survives anything and several
//! runners can share it.
//!
//! - `targets.rs`: where targets come from (file, query, tenant schemas);
//! - `survey.rs`: history positions, fingerprints, drift;
//! - `ledger.rs`: the control database (runs, targets, leases, timeline);
//! - `rollout.rs`: the runners (claim, apply, record, close waves);
//! - `status.rs`: `fleet status`, from the survey.
//!
//! The incident report is `crate::incident`, shared with `apply`.

pub mod ledger;
mod rollout;
mod status;
pub mod survey;
pub mod targets;

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use migsafe_pg::ConnSpec;

use crate::apply::{ApplyOptions, Cancel};
use crate::notify::{Notice, Notifier};
use crate::source::{Migration, MigrationSet};
use crate::EngineError;
pub use ledger::{Event, Ledger, NewTarget, RunRow, TargetRow, TargetState};
pub use status::{status, FleetStatus, StatusLine};
pub use survey::{Drifted, Group};
pub use targets::Target;

/// How many targets at a time.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// In all (`--jobs`).
    pub jobs: usize,
    /// On one server (`--per-host`).
    pub per_host: usize,
}

/// The failure budget (`--max-failures N` or `P%`): the run stops once failures pass it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxFailures {
    /// This many targets.
    Count(u64),
    /// This share of the targets, in percent.
    Percent(f64),
}

impl MaxFailures {
    /// Parse `5` or `2%`.
    pub fn parse(s: &str) -> Result<MaxFailures, EngineError> {
        let bad = || EngineError::Usage(format!("--max-failures {s:?}: give a count (5) or a share (2%)"));
        match s.trim().strip_suffix('%') {
            Some(p) => p
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| (0.0..=100.0).contains(p))
                .map(MaxFailures::Percent)
                .ok_or_else(bad),
            None => s.trim().parse().map(MaxFailures::Count).map_err(|_| bad()),
        }
    }

    /// Whether `failures` of `total` targets passes the budget.
    pub fn exceeded(self, failures: u64, total: u64) -> bool {
        match self {
            MaxFailures::Count(n) => failures > n,
            MaxFailures::Percent(p) => failures as f64 > total as f64 * p / 100.0,
        }
    }
}

/// Parse `--waves 5%,25%,100%`: cumulative shares of the targets after the canary.
pub fn parse_waves(s: &str) -> Result<Vec<f64>, EngineError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let p: f64 = part
            .trim()
            .trim_end_matches('%')
            .parse()
            .ok()
            .filter(|p| *p > 0.0 && *p <= 100.0)
            .ok_or_else(|| EngineError::Usage(format!("--waves: {part:?} is not a share between 0% and 100%")))?;
        if out.last().is_some_and(|l| p <= *l) {
            return Err(EngineError::Usage(format!("--waves {s}: each wave's share is cumulative and must grow")));
        }
        out.push(p);
    }
    if out.last() != Some(&100.0) {
        out.push(100.0);
    }
    Ok(out)
}

/// Options of `fleet apply` / `work` / `rollback`.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// What each target gets, as `apply` takes it (its `history`, `linted` and `cancel` are set
    /// per target).
    pub apply: ApplyOptions,
    /// Targets in the canary wave.
    pub canary: usize,
    /// Cumulative shares of the rest, one per wave.
    pub waves: Vec<f64>,
    /// Parallelism.
    pub limits: Limits,
    /// The failure budget.
    pub max_failures: MaxFailures,
    /// Apply to drifted targets too.
    pub include_drifted: bool,
    /// Rehearse once per distinct schema on a throwaway cluster (from these binaries).
    pub rehearse: Option<Option<PathBuf>>,
    /// Notifications.
    pub notify: Notifier,
    /// How long a claim lasts without being renewed.
    pub lease: Duration,
    /// Where the incident report goes (the folder of the run's report).
    pub report_dir: PathBuf,
    /// Ctrl-C for the whole fleet.
    pub cancel: Cancel,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            apply: ApplyOptions::default(),
            canary: 1,
            waves: vec![100.0],
            limits: Limits { jobs: 4, per_host: 2 },
            max_failures: MaxFailures::Count(0),
            include_drifted: false,
            rehearse: None,
            notify: Notifier::default(),
            lease: Duration::from_secs(30),
            report_dir: PathBuf::from("."),
            cancel: Cancel::default(),
        }
    }
}

/// Progress of a run, for a progress bar.
pub trait FleetProgress: Sync {
    /// The rollout starts with this many targets to run.
    fn start(&self, total: u64);
    /// One target finished.
    fn target_done(&self, name: &str, state: TargetState);
    /// Something worth a line (a wave closed, the run stopped).
    fn say(&self, line: &str);
}

/// No progress display.
pub struct NoProgress;

impl FleetProgress for NoProgress {
    fn start(&self, _: u64) {}
    fn target_done(&self, _: &str, _: TargetState) {}
    fn say(&self, _: &str) {}
}

/// The rehearsal of one group's pending migrations.
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsal {
    /// The history position it started from (the last applied version, or none).
    pub from: Option<String>,
    /// The schema fingerprint of the targets it stands for.
    pub fingerprint: String,
    /// Targets it stands for.
    pub targets: usize,
    /// Whether it passed.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
}

/// What a fleet command did, with every target's final state.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// The run.
    pub run: i64,
    /// `running`, `stopped` or `finished`.
    pub status: String,
    /// Why it stopped.
    pub stop_reason: Option<String>,
    /// The run's migrations.
    pub migrations: Vec<String>,
    /// The survey's groups (empty for `work` and `rollback`).
    pub groups: Vec<Group>,
    /// Rehearsals, one per distinct schema.
    pub rehearsals: Vec<Rehearsal>,
    /// Counts by state.
    pub counts: BTreeMap<String, i64>,
    /// Every target.
    pub targets: Vec<TargetRow>,
    /// The timeline.
    pub events: Vec<Event>,
    /// Notifications not delivered and the like.
    pub warnings: Vec<String>,
    /// The incident report, when a rollback or quarantine happened.
    pub incident_report: Option<PathBuf>,
    /// Wall time.
    pub ms: f64,
}

impl FleetReport {
    /// Whether every target the run meant to migrate ended applied.
    pub fn ok(&self) -> bool {
        self.status == "finished"
            && self
                .targets
                .iter()
                .all(|t| matches!(t.state, TargetState::Applied | TargetState::SkippedDrift | TargetState::RolledBack))
    }
}

/// The migrations of the set up to `to`.
fn run_migrations<'a>(set: &'a MigrationSet, to: Option<&str>) -> Vec<&'a Migration> {
    let mut out = Vec::new();
    for m in &set.migrations {
        out.push(m);
        if to.is_some_and(|t| m.version.to_string() == t || m.id() == t) {
            break;
        }
    }
    out
}

/// `migsafe fleet apply`: survey, plan the waves, record the run, roll it out.
pub fn apply(
    set: &MigrationSet,
    targets: &[Target],
    control: &ConnSpec,
    opts: &FleetOptions,
    progress: &dyn FleetProgress,
) -> Result<FleetReport, EngineError> {
    let t0 = Instant::now();
    let mut ledger = Ledger::open(control)?;
    let seen = survey::survey(set, targets, &opts.limits);
    let groups = survey::group(targets, &seen);
    let migrations = run_migrations(set, opts.apply.to.as_deref());
    let versions: Vec<String> = migrations.iter().map(|m| m.version.to_string()).collect();
    // Lint once, with each table's largest size among the targets: the worst target's risk.
    let mut rows: BTreeMap<migsafe_sql::QualName, i64> = BTreeMap::new();
    for s in seen.iter().filter_map(|s| s.seen.as_ref().ok()) {
        for (k, v) in &s.table_rows {
            let e = rows.entry(k.clone()).or_insert(*v);
            *e = (*e).max(*v);
        }
    }
    let linted = Arc::new(crate::lint::lint_once(set, rows));
    let drifted: BTreeMap<&str, &Drifted> =
        groups.iter().flat_map(|g| g.drifted.iter().map(|d| (d.target.as_str(), d))).collect();
    let rehearsals = rehearse_groups(set, targets, &seen, &drifted, opts)?;
    let mut plan = Vec::new();
    for (t, s) in targets.iter().zip(&seen) {
        let mut n = NewTarget {
            target: t,
            wave: 0,
            state: TargetState::Pending,
            fingerprint: None,
            pending: vec![],
            error: None,
        };
        match &s.seen {
            Err(e) => {
                n.state = TargetState::Unreachable;
                n.error = Some(e.to_string());
            }
            Ok(v) => {
                n.fingerprint = Some(v.fingerprint.clone());
                n.pending = v.pending.iter().filter(|p| versions.contains(p)).cloned().collect();
                let rehearsal = rehearsals.iter().find(|(fp, _)| *fp == v.fingerprint).map(|(_, r)| r);
                if !v.changed.is_empty() {
                    n.state = TargetState::SkippedDrift;
                    n.error = Some(format!("applied migrations changed since they ran: {}", v.changed.join(", ")));
                } else if let (Some(d), false) = (drifted.get(t.name.as_str()), opts.include_drifted) {
                    n.state = TargetState::SkippedDrift;
                    n.error = Some(format!(
                        "schema differs from the others at the same history position: {}",
                        d.diff.replace('\n', "; ")
                    ));
                } else if n.pending.is_empty() {
                    n.state = TargetState::Applied;
                } else if let Some(r) = rehearsal.filter(|r| !r.ok) {
                    n.state = TargetState::Failed;
                    n.error = Some(format!(
                        "not applied: the rehearsal of its pending migrations failed: {}",
                        r.error.clone().unwrap_or_default()
                    ));
                }
            }
        }
        plan.push(n);
    }
    let waves = assign_waves(&mut plan, opts);
    if opts.apply.dry_run {
        return Ok(dry_run(plan, groups, rehearsals, &versions, t0));
    }
    let settings = serde_json::json!({
        "canary": opts.canary, "waves": opts.waves, "jobs": opts.limits.jobs, "per_host": opts.limits.per_host,
        "max_failures": opts.max_failures, "include_drifted": opts.include_drifted, "to": opts.apply.to,
    });
    let mig_json = serde_json::json!(migrations
        .iter()
        .map(|m| serde_json::json!({"version": m.version.to_string(), "name": m.name, "checksum": m.checksum}))
        .collect::<Vec<_>>());
    let run = ledger.create_run(&set.dir.display().to_string(), &mig_json, &settings, waves, &plan)?;
    let count = |s: TargetState| plan.iter().filter(|n| n.state == s).count();
    let text = format!(
        "migsafe fleet run {run}: {} migrations on {} targets ({} to migrate, {} already up to date, {} drifted and skipped, {} unreachable), {} wave(s) after a canary of {}",
        versions.len(),
        targets.len(),
        count(TargetState::Pending),
        count(TargetState::Applied),
        count(TargetState::SkippedDrift),
        count(TargetState::Unreachable),
        waves - 1,
        opts.canary,
    );
    ledger.event(run, None, "plan", &text)?;
    for n in plan.iter().filter(|n| n.state == TargetState::SkippedDrift) {
        ledger.event(run, Some(&n.target.name), "drift", n.error.as_deref().unwrap_or(""))?;
    }
    let mut warnings = opts.notify.send(&Notice { text, event: "start".into(), run, target: None, counts: None });
    let mut rep = rollout::work(set, targets, &mut ledger, run, Some(linted), opts, progress)?;
    warnings.append(&mut rep.warnings);
    rep.warnings = warnings;
    rep.groups = groups;
    rep.rehearsals = rehearsals.into_iter().map(|(_, r)| r).collect();
    rep.ms = t0.elapsed().as_secs_f64() * 1000.0;
    Ok(rep)
}

/// `--dry-run`: the survey, the rehearsals and the waves each target would be in; no run is
/// recorded and nothing is applied.
fn dry_run(
    plan: Vec<NewTarget>,
    groups: Vec<Group>,
    rehearsals: Vec<(String, Rehearsal)>,
    versions: &[String],
    t0: Instant,
) -> FleetReport {
    let targets: Vec<TargetRow> = plan
        .into_iter()
        .map(|n| TargetRow {
            name: n.target.name.clone(),
            url: n.target.url(),
            host: n.target.host(),
            wave: n.wave,
            state: n.state,
            attempts: 0,
            ms: None,
            pending: n.pending,
            applied: vec![],
            error: n.error,
            fingerprint: n.fingerprint,
        })
        .collect();
    let counts = counts(&targets);
    FleetReport {
        run: 0,
        status: "dry_run".into(),
        stop_reason: None,
        migrations: versions.to_vec(),
        groups,
        rehearsals: rehearsals.into_iter().map(|(_, r)| r).collect(),
        counts,
        targets,
        events: vec![],
        warnings: vec![],
        incident_report: None,
        ms: t0.elapsed().as_secs_f64() * 1000.0,
    }
}

/// Canary first, then the waves, over the targets still pending (in the order given); targets
/// not reachable now go in the last wave, so `--resume` finds them in order.
fn assign_waves(plan: &mut [NewTarget], opts: &FleetOptions) -> i32 {
    let pending: Vec<usize> = (0..plan.len()).filter(|&i| plan[i].state == TargetState::Pending).collect();
    let canary = opts.canary.min(pending.len());
    let rest = pending.len() - canary;
    let mut bounds: Vec<usize> = vec![];
    if canary > 0 {
        bounds.push(canary);
    }
    for share in &opts.waves {
        let upto = canary + ((rest as f64) * share / 100.0).ceil() as usize;
        if bounds.last().is_none_or(|b| upto > *b) {
            bounds.push(upto.min(pending.len()));
        }
    }
    if bounds.is_empty() {
        bounds.push(0);
    }
    for (k, &i) in pending.iter().enumerate() {
        plan[i].wave = bounds.iter().position(|b| k < *b).unwrap_or(bounds.len() - 1) as i32;
    }
    let last = bounds.len() as i32 - 1;
    for n in plan.iter_mut().filter(|n| n.state != TargetState::Pending) {
        n.wave = last;
    }
    bounds.len() as i32
}

/// Rehearse once per distinct schema (history position and fingerprint) among the targets that
/// will be migrated, on one throwaway cluster: each rehearsal starts from that schema, built
/// from its snapshot by the diff's DDL.
fn rehearse_groups(
    set: &MigrationSet,
    targets: &[Target],
    seen: &[survey::Surveyed],
    drifted: &BTreeMap<&str, &Drifted>,
    opts: &FleetOptions,
) -> Result<Vec<(String, Rehearsal)>, EngineError> {
    let Some(pg_bin) = &opts.rehearse else { return Ok(vec![]) };
    // Per distinct schema (history position and fingerprint): how many targets, their pending
    // migrations, the schema, whether it is a tenant schema.
    type Key = (Vec<String>, String);
    let mut positions: BTreeMap<Key, (usize, Vec<String>, Arc<migsafe_catalog::Snapshot>, bool)> = BTreeMap::new();
    for (t, s) in targets.iter().zip(seen) {
        let Ok(v) = &s.seen else { continue };
        if v.pending.is_empty() || (drifted.contains_key(t.name.as_str()) && !opts.include_drifted) {
            continue;
        }
        let key = (v.position.clone(), v.fingerprint.clone());
        let e = positions.entry(key).or_insert((0, v.pending.clone(), v.snapshot.clone(), t.schema.is_some()));
        e.0 += 1;
    }
    if positions.is_empty() {
        return Ok(vec![]);
    }
    let server = crate::scratch::ScratchServer::throwaway(pg_bin.as_deref())?;
    let mut out = Vec::new();
    for ((position, fingerprint), (count, pending, schema, tenant)) in positions {
        // A tenant schema's snapshot names it `$tenant`: rehearsed as `public`, where the
        // migrations' unqualified names land on a scratch database.
        let base = if tenant { survey::as_public(&schema) } else { (*schema).clone() };
        let ropts = crate::rehearse::RehearseOptions {
            from: pending.first().cloned(),
            to: opts.apply.to.clone(),
            budget: Duration::from_secs(30),
            base: Some(base),
            ..Default::default()
        };
        let r = crate::rehearse::rehearse(set, &server, &ropts, &crate::rehearse::Quiet);
        let (ok, error) = match r {
            Ok(rep) if rep.ok => (true, None),
            Ok(rep) => (false, Some(rehearsal_failure(&rep))),
            Err(e) => (false, Some(e.to_string())),
        };
        out.push((
            fingerprint.clone(),
            Rehearsal { from: position.last().cloned(), fingerprint, targets: count, ok, error },
        ));
    }
    Ok(out)
}

/// The first failing step of a rehearsal, in a line.
fn rehearsal_failure(rep: &crate::report::Report) -> String {
    rep.migrations
        .iter()
        .find(|m| !m.ok)
        .map(|m| {
            let step = m.steps.iter().find(|s| !s.ok).map(|s| format!("{}: {}", s.step, s.detail)).unwrap_or_default();
            format!("{}_{} {step}", m.version, m.name)
        })
        .unwrap_or_else(|| "the rehearsal failed".into())
}

/// `migsafe fleet apply --resume [RUN]`: the run goes on where it stopped; unreachable targets
/// are tried again.
pub fn resume(
    set: &MigrationSet,
    targets: &[Target],
    control: &ConnSpec,
    run: Option<i64>,
    opts: &FleetOptions,
    progress: &dyn FleetProgress,
) -> Result<FleetReport, EngineError> {
    let t0 = Instant::now();
    let mut ledger = Ledger::open(control)?;
    let row = ledger.run(run)?;
    ledger.reopen_run(row.id)?;
    ledger.event(row.id, None, "resume", &format!("resumed by {}", ledger.runner))?;
    let mut rep = rollout::work(set, targets, &mut ledger, row.id, None, opts, progress)?;
    rep.ms = t0.elapsed().as_secs_f64() * 1000.0;
    Ok(rep)
}

/// `migsafe fleet work RUN`: another runner on a run (this or another machine).
pub fn work(
    set: &MigrationSet,
    targets: &[Target],
    control: &ConnSpec,
    run: i64,
    opts: &FleetOptions,
    progress: &dyn FleetProgress,
) -> Result<FleetReport, EngineError> {
    let t0 = Instant::now();
    let mut ledger = Ledger::open(control)?;
    ledger.run(Some(run))?;
    let mut rep = rollout::work(set, targets, &mut ledger, run, None, opts, progress)?;
    rep.ms = t0.elapsed().as_secs_f64() * 1000.0;
    Ok(rep)
}

/// `migsafe fleet rollback RUN`: roll back, on every target, what the run applied there, with
/// the single-database procedure (advisory lock, lock_timeout retries, history).
pub fn rollback(
    set: &MigrationSet,
    targets: &[Target],
    control: &ConnSpec,
    run: i64,
    opts: &FleetOptions,
    progress: &dyn FleetProgress,
) -> Result<FleetReport, EngineError> {
    let t0 = Instant::now();
    let mut ledger = Ledger::open(control)?;
    let row = ledger.run(Some(run))?;
    if row.status == "running" {
        ledger.stop(run, "stopped by fleet rollback")?;
    }
    ledger.event(run, None, "rollback", "fleet rollback started")?;
    let mut warnings = rollout::reconcile(targets, &mut ledger, run, opts)?;
    let names: Vec<String> =
        ledger.targets(run)?.into_iter().filter(|t| !t.applied.is_empty()).map(|t| t.name).collect();
    warnings.extend(rollout::roll_back(set, targets, &mut ledger, run, &names, opts, progress)?);
    let mut rep = rollout::report(&mut ledger, run, opts)?;
    rep.warnings = warnings;
    rep.ms = t0.elapsed().as_secs_f64() * 1000.0;
    Ok(rep)
}

/// How many targets are in each state.
pub(crate) fn counts(targets: &[TargetRow]) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for t in targets {
        *counts.entry(t.state.as_str().to_string()).or_insert(0) += 1;
    }
    counts
}

/// Run `f` over `items`, at most `limits.jobs` at a time; results in any order.
pub(crate) fn parallel<T: Sync, R: Send>(items: &[T], limits: &Limits, f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out = std::sync::Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|s| {
        for _ in 0..limits.jobs.max(1).min(items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let r = f(i, item);
                out.lock().unwrap_or_else(|p| p.into_inner()).push(r);
            });
        }
    });
    out.into_inner().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_and_waves_parse() {
        assert_eq!(MaxFailures::parse("3").unwrap(), MaxFailures::Count(3));
        assert_eq!(MaxFailures::parse("2%").unwrap(), MaxFailures::Percent(2.0));
        assert!(MaxFailures::parse("two").is_err());
        assert!(MaxFailures::Count(1).exceeded(2, 10) && !MaxFailures::Count(1).exceeded(1, 10));
        assert!(MaxFailures::Percent(10.0).exceeded(2, 10) && !MaxFailures::Percent(10.0).exceeded(1, 10));
        assert_eq!(parse_waves("5%,25%,100%").unwrap(), vec![5.0, 25.0, 100.0]);
        assert_eq!(parse_waves("50%").unwrap(), vec![50.0, 100.0]);
        assert!(parse_waves("50%,20%").is_err());
        assert!(parse_waves("0%").is_err());
    }

    #[test]
    fn canary_then_cumulative_waves_and_the_rest_last() {
        let targets: Vec<Target> = (0..12)
            .map(|i| {
                Target::database(Some(format!("t{i}")), ConnSpec::parse(&format!("postgresql://u@h/t{i}")).unwrap())
            })
            .collect();
        let mut plan: Vec<NewTarget> = targets
            .iter()
            .map(|t| NewTarget {
                target: t,
                wave: 0,
                state: TargetState::Pending,
                fingerprint: None,
                pending: vec![],
                error: None,
            })
            .collect();
        plan[3].state = TargetState::SkippedDrift;
        plan[7].state = TargetState::Unreachable;
        let opts = FleetOptions { canary: 2, waves: vec![25.0, 100.0], ..FleetOptions::default() };
        let waves = assign_waves(&mut plan, &opts);
        // 10 pending: 2 canaries, then 25 % of the other 8 (2), then the rest (6).
        assert_eq!(waves, 3);
        let of = |w: i32| plan.iter().filter(|n| n.state == TargetState::Pending && n.wave == w).count();
        assert_eq!((of(0), of(1), of(2)), (2, 2, 6));
        assert_eq!(plan[0].wave, 0);
        assert_eq!((plan[3].wave, plan[7].wave), (2, 2), "targets not pending go in the last wave");
        // No canary and one wave: everything in wave 0.
        let opts = FleetOptions { canary: 0, waves: vec![100.0], ..FleetOptions::default() };
        assert_eq!(assign_waves(&mut plan, &opts), 1);
        assert!(plan.iter().all(|n| n.wave == 0));
    }
}
