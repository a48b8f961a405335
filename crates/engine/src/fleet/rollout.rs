//! The runners of a fleet run: `jobs` workers each claim a target from the ledger, run the
//! whole single-database `apply` on it, read back what its history shows, and record the
//! outcome; a heartbeat renews their leases; whoever finds the current wave finished closes it
//! (the canary's verdict, the health checks between waves with the wave's targets named,
//! the failure budget) and opens the next.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ledger::{Ledger, TargetState};
use super::targets::Target;
use super::{FleetOptions, FleetProgress, FleetReport};
use crate::apply::history;
use crate::apply::{self, ApplyOptions, Cancel, IncidentSeverity, Outcome};
use crate::lint::Linted;
use crate::notify::Notice;
use crate::source::MigrationSet;
use crate::EngineError;

/// What the runners of one process share.
struct Shared<'a> {
    set: &'a MigrationSet,
    targets: BTreeMap<&'a str, &'a Target>,
    run: i64,
    opts: &'a FleetOptions,
    linted: Option<Arc<Linted>>,
    progress: &'a dyn FleetProgress,
    /// The per-target cancels now running, for Ctrl-C.
    active: Mutex<Vec<Cancel>>,
    warnings: Mutex<Vec<String>>,
    done: AtomicBool,
    total: u64,
}

impl Shared<'_> {
    fn notify(&self, event: &str, target: Option<&str>, text: String, counts: Option<BTreeMap<String, i64>>) {
        if !self.opts.notify.any() {
            return;
        }
        let w = self.opts.notify.send(&Notice {
            text,
            event: event.into(),
            run: self.run,
            target: target.map(str::to_string),
            counts,
        });
        self.warnings.lock().unwrap_or_else(|p| p.into_inner()).extend(w);
    }
}

/// Work the run until it is finished or stopped (or Ctrl-C), then report it.
pub(super) fn work(
    set: &MigrationSet,
    targets: &[Target],
    ledger: &mut Ledger,
    run: i64,
    linted: Option<Arc<Linted>>,
    opts: &FleetOptions,
    progress: &dyn FleetProgress,
) -> Result<FleetReport, EngineError> {
    let linted = match linted {
        Some(l) => Some(l),
        // A resumed run or another runner: lint once with unknown table sizes (the worst case).
        None => Some(Arc::new(crate::lint::lint_once(set, Default::default()))),
    };
    let counts = ledger.counts(run)?;
    let open: i64 =
        counts.iter().filter(|(s, _)| matches!(s, TargetState::Pending | TargetState::Running)).map(|(_, n)| n).sum();
    let shared = Shared {
        set,
        targets: targets.iter().map(|t| (t.name.as_str(), t)).collect(),
        run,
        opts,
        linted,
        progress,
        active: Mutex::new(vec![]),
        warnings: Mutex::new(vec![]),
        done: AtomicBool::new(false),
        total: counts.iter().map(|(_, n)| *n as u64).sum(),
    };
    progress.start(open as u64);
    let mut errors: Vec<EngineError> = Vec::new();
    std::thread::scope(|s| {
        let beat = ledger.reopen();
        let shared = &shared;
        let heartbeat = s.spawn(move || heartbeat(shared, beat));
        let workers: Vec<_> = (0..opts.limits.jobs.max(1))
            .map(|_| {
                let l = ledger.reopen();
                s.spawn(move || worker(shared, l?))
            })
            .collect();
        for w in workers {
            match w.join() {
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push(EngineError::Usage("a fleet worker panicked".into())),
                Ok(Ok(())) => {}
            }
        }
        shared.done.store(true, Ordering::SeqCst);
        let _ = heartbeat.join();
    });
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }
    let mut rep = report(ledger, run, opts)?;
    rep.warnings.extend(shared.warnings.into_inner().unwrap_or_else(|p| p.into_inner()));
    let counts = rep.counts.clone();
    let text = match rep.status.as_str() {
        "finished" => format!("migsafe fleet run {run} finished: {}", counts_text(&counts)),
        "stopped" => format!(
            "migsafe fleet run {run} stopped ({}): {}",
            rep.stop_reason.clone().unwrap_or_default(),
            counts_text(&counts)
        ),
        _ => format!(
            "migsafe fleet run {run} interrupted: {}; `migsafe fleet apply --resume {run}` goes on",
            counts_text(&counts)
        ),
    };
    ledger.event(run, None, "end", &text)?;
    if opts.notify.any() {
        let w = opts.notify.send(&Notice { text, event: "end".into(), run, target: None, counts: Some(counts) });
        rep.warnings.extend(w);
    }
    rep.events = ledger.events(run)?;
    Ok(rep)
}

/// `applied: 3, quarantined: 1`.
pub(super) fn counts_text(counts: &BTreeMap<String, i64>) -> String {
    counts.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
}

/// The run as the ledger has it now, with the incident report written when one is due.
pub(super) fn report(ledger: &mut Ledger, run: i64, opts: &FleetOptions) -> Result<FleetReport, EngineError> {
    let row = ledger.run(Some(run))?;
    let targets = ledger.targets(run)?;
    let counts = super::counts(&targets);
    let events = ledger.events(run)?;
    let migrations = row
        .migrations
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["version"].as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let mut rep = FleetReport {
        run,
        status: row.status.clone(),
        stop_reason: row.stop_reason.clone(),
        migrations,
        groups: vec![],
        rehearsals: vec![],
        counts,
        targets,
        events,
        warnings: vec![],
        incident_report: None,
        ms: 0.0,
    };
    if rep.events.iter().any(|e| matches!(e.kind.as_str(), "quarantine" | "rollback" | "needs_human" | "unhealthy")) {
        let path = opts.report_dir.join(format!("migsafe-fleet-run-{run}-incident.md"));
        match crate::incident::write(&path, &crate::incident::for_fleet(&rep)) {
            Ok(()) => rep.incident_report = Some(path),
            Err(e) => rep.warnings.push(format!("incident report not written: {}: {e}", path.display())),
        }
    }
    Ok(rep)
}

/// Renew this runner's leases until the workers are done; forward Ctrl-C to every running target.
fn heartbeat(shared: &Shared, ledger: Result<Ledger, EngineError>) {
    let Ok(mut ledger) = ledger else { return };
    let every = (shared.opts.lease / 3).max(Duration::from_millis(200));
    let mut last = Instant::now();
    let mut forwarded = false;
    while !shared.done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
        if shared.opts.cancel.requested() && !forwarded {
            for c in shared.active.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                c.cancel();
            }
            forwarded = true;
        }
        if last.elapsed() >= every {
            let _ = ledger.renew(shared.run, shared.opts.lease);
            last = Instant::now();
        }
    }
}

/// One worker: claim, run, record, until nothing is left to claim.
fn worker(shared: &Shared, mut ledger: Ledger) -> Result<(), EngineError> {
    let run = shared.run;
    loop {
        if shared.opts.cancel.requested() {
            return Ok(());
        }
        let dead = ledger.dead_runners(run)?;
        let claimed = ledger.claim(run, shared.opts.limits.per_host as i64, shared.opts.lease, &dead)?;
        let Some(name) = claimed else {
            let row = ledger.run(Some(run))?;
            if row.status != "running" {
                return Ok(());
            }
            if ledger.open_in_wave(run, row.current_wave)? == 0 {
                close_wave(shared, &mut ledger, row.current_wave)?;
                continue;
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        let Some(target) = shared.targets.get(name.as_str()).copied() else {
            let why = "this runner was not given this target (pass the same --targets)";
            ledger.finish(run, &name, TargetState::Unreachable, 0.0, None, Some(why))?;
            continue;
        };
        let pending = ledger.pending_of(run, &name)?;
        let t0 = Instant::now();
        let (state, error, event, now) = run_target(shared, target);
        // What the target's history shows applied: from the apply's own session, else asked.
        let applied = match now {
            Some(now) => Some(pending.iter().filter(|v| now.contains(v)).cloned().collect::<Vec<_>>()),
            None => read_applied(target, &pending),
        };
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        // A target that answered but did not end with its migrations all applied is not "applied".
        let state = match (&applied, state) {
            (Some(a), TargetState::Applied) if a.len() < pending.len() => TargetState::Failed,
            (None, TargetState::Applied) => TargetState::Unreachable,
            (_, s) => s,
        };
        ledger.finish(run, &name, state, ms, applied.as_deref(), error.as_deref())?;
        shared.progress.target_done(&name, state);
        if let Some(kind) = event {
            let detail = error.clone().unwrap_or_default();
            ledger.event(run, Some(&name), kind, &detail)?;
            shared.notify(kind, Some(&name), format!("migsafe fleet run {run}: {name}: {kind}: {detail}"), None);
        }
        if state.is_failure() {
            check_budget(shared, &mut ledger)?;
        }
    }
}

/// Stop the run when failures pass the budget, or the canary failed.
fn check_budget(shared: &Shared, ledger: &mut Ledger) -> Result<(), EngineError> {
    let run = shared.run;
    let failures: i64 = ledger.counts(run)?.iter().filter(|(s, _)| s.is_failure()).map(|(_, n)| n).sum();
    let row = ledger.run(Some(run))?;
    let reason = if row.current_wave == 0 && shared.opts.canary > 0 {
        Some(format!("the canary failed ({failures} failure): no other target is touched"))
    } else if shared.opts.max_failures.exceeded(failures as u64, shared.total) {
        Some(format!("{failures} failures passed --max-failures"))
    } else {
        None
    };
    if let Some(reason) = reason {
        stop(shared, ledger, &reason)?;
    }
    Ok(())
}

fn stop(shared: &Shared, ledger: &mut Ledger, reason: &str) -> Result<(), EngineError> {
    ledger.stop(shared.run, reason)?;
    ledger.event(shared.run, None, "stop", reason)?;
    shared.progress.say(&format!("stopping: {reason}"));
    shared.notify("stop", None, format!("migsafe fleet run {}: stopping: {reason}", shared.run), None);
    Ok(())
}

/// The wave is over: the canary's verdict, the failure budget, the health checks with the wave's
/// targets named (an unhealthy wave is rolled back and the run stops), then the next wave.
fn close_wave(shared: &Shared, ledger: &mut Ledger, wave: i32) -> Result<(), EngineError> {
    let run = shared.run;
    if !ledger.try_close_wave(run, wave)? {
        std::thread::sleep(Duration::from_millis(100));
        return Ok(());
    }
    let result = close_wave_held(shared, ledger, wave);
    ledger.release_wave(run)?;
    result
}

fn close_wave_held(shared: &Shared, ledger: &mut Ledger, wave: i32) -> Result<(), EngineError> {
    let run = shared.run;
    let members = ledger.wave(run, wave)?;
    let failed: Vec<&str> = members.iter().filter(|(_, s)| s.is_failure()).map(|(n, _)| n.as_str()).collect();
    if wave == 0 && shared.opts.canary > 0 && !failed.is_empty() {
        return stop(
            shared,
            ledger,
            &format!("the canary failed on {}: no other target is touched", failed.join(", ")),
        );
    }
    let applied: Vec<String> =
        members.iter().filter(|(_, s)| *s == TargetState::Applied).map(|(n, _)| n.clone()).collect();
    let probes = &shared.opts.apply.probes;
    if probes.any() && !applied.is_empty() {
        let mut p = probes.clone();
        p.env = vec![
            ("MIGSAFE_FLEET_RUN".into(), run.to_string()),
            ("MIGSAFE_WAVE".into(), wave.to_string()),
            ("MIGSAFE_WAVE_TARGETS".into(), applied.join("\n")),
        ];
        let bad: Vec<_> = p.observe_app().into_iter().filter(|o| o.severity <= IncidentSeverity::P2).collect();
        if !bad.is_empty() {
            let what = bad.iter().map(|o| format!("{:?}: {}", o.severity, o.what)).collect::<Vec<_>>().join("; ");
            ledger.event(run, None, "unhealthy", &format!("after wave {wave}: {what}"))?;
            stop(shared, ledger, &format!("wave {wave} unhealthy ({what}): its targets are rolled back"))?;
            let w = roll_back(
                shared.set,
                &shared.targets.values().map(|t| (*t).clone()).collect::<Vec<_>>(),
                ledger,
                run,
                &applied,
                shared.opts,
                shared.progress,
            )?;
            shared.warnings.lock().unwrap_or_else(|p| p.into_inner()).extend(w);
            return Ok(());
        }
    }
    let finished = ledger.advance(run, wave)?;
    let counts: BTreeMap<String, i64> =
        ledger.counts(run)?.into_iter().map(|(s, n)| (s.as_str().to_string(), n)).collect();
    let text = if finished {
        format!("migsafe fleet run {run}: wave {wave} done, the last one")
    } else {
        format!("migsafe fleet run {run}: wave {wave} done and healthy; wave {} starts", wave + 1)
    };
    ledger.event(run, None, "wave", &text)?;
    shared.progress.say(&text);
    shared.notify("wave", None, text, Some(counts));
    Ok(())
}

/// What one attempt on a target came to: its state, the error, the event worth a line in the
/// timeline, and the versions its history showed applied at the end (when the apply finished).
type Attempt = (TargetState, Option<String>, Option<&'static str>, Option<Vec<String>>);

/// Run the single-database procedure on one target.
fn run_target(shared: &Shared, t: &Target) -> Attempt {
    let mut o: ApplyOptions = shared.opts.apply.clone();
    o.history = t.history();
    o.snapshot = t.snapshot_options();
    o.linted = shared.linted.clone();
    o.cancel = Cancel::default();
    shared.active.lock().unwrap_or_else(|p| p.into_inner()).push(o.cancel.clone());
    match apply::apply(shared.set, &t.spec, &o) {
        Ok(mut rep) => {
            // A run that got to its end read the history on its own session.
            let now = matches!(rep.outcome, Outcome::Applied | Outcome::RolledBack { .. } | Outcome::NeedsHuman { .. })
                .then(|| std::mem::take(&mut rep.applied_now));
            let (state, error, event) = outcome_state(rep);
            (state, error, event, now)
        }
        Err(e) => {
            // Whether it is the target that is gone or the migration that failed: ask the target.
            let reachable = t.spec.connect().is_ok();
            let error = migsafe_pg::redact_text(&e.to_string());
            if reachable {
                (TargetState::Failed, Some(error), Some("failure"), None)
            } else {
                // Each migration commits on its own: the target holds the first few of the
                // run's, which its history says when it answers (`fleet status`, `--resume`).
                let error = format!(
                    "{error} (the migrations it committed before are in its history; `migsafe fleet apply --resume` continues it)"
                );
                (TargetState::Unreachable, Some(error), Some("unreachable"), None)
            }
        }
    }
}

/// The ledger state of an apply's outcome, with its error and the event worth a line.
fn outcome_state(rep: apply::ApplyReport) -> (TargetState, Option<String>, Option<&'static str>) {
    let redact = |s: String| Some(migsafe_pg::redact_text(&s));
    match rep.outcome {
        Outcome::Applied | Outcome::NothingToDo => (TargetState::Applied, None, None),
        // `fleet apply --dry-run` stops before any target runs; a runner never sees one.
        Outcome::DryRun => (TargetState::Unreachable, Some("a dry run applies nothing".into()), None),
        Outcome::RolledBack { reason } => {
            (TargetState::Quarantined, redact(format!("rolled back and quarantined: {reason}")), Some("quarantine"))
        }
        Outcome::Refused => {
            let why = rep
                .preflight
                .iter()
                .filter(|p| p.status == apply::Check::Fail)
                .map(|p| format!("{}: {}", p.item, p.detail))
                .collect::<Vec<_>>()
                .join("; ");
            (TargetState::Failed, redact(format!("refused by its preflight: {why}")), Some("failure"))
        }
        Outcome::Locked { holder } => {
            (TargetState::Unreachable, Some(format!("another migsafe holds its lock: {holder}")), Some("unreachable"))
        }
        Outcome::NeedsHuman { reason, state, next } => (
            TargetState::Failed,
            redact(format!("{reason}; the rollback failed too: {state}; next: {next}")),
            Some("needs_human"),
        ),
        Outcome::Interrupted { state } => {
            (TargetState::Unreachable, redact(format!("interrupted: {state}")), Some("interrupted"))
        }
    }
}

/// Of `pending`, the versions the target's history shows applied now (`None`: not reachable).
fn read_applied(t: &Target, pending: &[String]) -> Option<Vec<String>> {
    let mut c = t.spec.with_application_name("migsafe fleet (reconcile)").connect().ok()?;
    let rows = history::latest_in(&mut c, &t.history()).ok()?;
    Some(
        rows.iter()
            .filter(|r| r.status == history::RunStatus::Applied && pending.contains(&r.version))
            .map(|r| r.version.clone())
            .collect(),
    )
}

/// Bring the ledger's `applied` lists in line with the targets' histories where the ledger
/// cannot know them: a target that went unreachable mid-apply (its migrations are each atomic,
/// so it holds the first few of the run's, which only its history can say) or whose runner
/// died. A target still unreachable keeps what the ledger knew, with a warning.
pub(super) fn reconcile(
    targets: &[Target],
    ledger: &mut Ledger,
    run: i64,
    opts: &FleetOptions,
) -> Result<Vec<String>, EngineError> {
    let uncertain = [TargetState::Unreachable, TargetState::Running, TargetState::Pending];
    let by_name = by_name(targets);
    let todo: Vec<(&Target, Vec<String>)> = ledger
        .targets(run)?
        .into_iter()
        .filter(|r| uncertain.contains(&r.state))
        .filter_map(|r| Some((*by_name.get(r.name.as_str())?, r.pending)))
        .collect();
    let read = super::parallel(&todo, &opts.limits, |_, (t, pending)| (t.name.clone(), read_applied(t, pending)));
    let mut warnings = Vec::new();
    for (name, applied) in read {
        match applied {
            Some(a) => ledger.set_applied(run, &name, &a)?,
            None => warnings.push(format!(
                "{name}: unreachable, so what the run applied there is not known and not rolled back; run `migsafe fleet rollback {run}` again when it answers"
            )),
        }
    }
    Ok(warnings)
}

/// The targets by name (a fleet can hold thousands: no search through the list per target).
fn by_name(targets: &[Target]) -> BTreeMap<&str, &Target> {
    targets.iter().map(|t| (t.name.as_str(), t)).collect()
}

/// Roll back, on each named target, what the run applied there (newest first), with
/// `migsafe rollback`'s procedure; the ledger follows each target's history.
pub(super) fn roll_back(
    set: &MigrationSet,
    targets: &[Target],
    ledger: &mut Ledger,
    run: i64,
    names: &[String],
    opts: &FleetOptions,
    progress: &dyn FleetProgress,
) -> Result<Vec<String>, EngineError> {
    let rows = ledger.targets(run)?;
    let applied: BTreeMap<&str, &Vec<String>> = rows.iter().map(|r| (r.name.as_str(), &r.applied)).collect();
    let by_name = by_name(targets);
    let todo: Vec<(&Target, Vec<String>)> =
        names.iter().filter_map(|n| Some((*by_name.get(n.as_str())?, applied.get(n.as_str())?.to_vec()))).collect();
    let warnings = Mutex::new(Vec::new());
    let results = super::parallel(&todo, &opts.limits, |_, (t, applied)| {
        let mut o = opts.apply.clone();
        o.history = t.history();
        o.snapshot = t.snapshot_options();
        o.cancel = Cancel::default();
        let r = apply::rollback(set, &t.spec, Some(applied.len()), None, &o);
        let still = read_applied(t, applied);
        (t.name.clone(), r.map(|r| r.outcome).map_err(|e| migsafe_pg::redact_text(&e.to_string())), still)
    });
    for (name, outcome, still) in results {
        let (state, error) = match (&outcome, &still) {
            (_, Some(s)) if s.is_empty() => (TargetState::RolledBack, None),
            (Err(e), _) => (TargetState::Failed, Some(format!("rollback failed: {e}"))),
            (Ok(o), Some(s)) => (TargetState::Failed, Some(format!("rollback left {} applied: {o:?}", s.join(", ")))),
            (Ok(_), None) => (TargetState::Unreachable, Some("unreachable after its rollback".to_string())),
        };
        ledger.set_state(run, &name, state, still.as_deref().unwrap_or(&[]), error.as_deref())?;
        ledger.event(run, Some(&name), "rollback", error.as_deref().unwrap_or("rolled back"))?;
        progress.target_done(&name, state);
        if let Some(e) = error {
            warnings.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{name}: {e}"));
        }
    }
    Ok(warnings.into_inner().unwrap_or_else(|p| p.into_inner()))
}
