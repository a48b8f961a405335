//! The incident report of a fleet run that rolled back or quarantined targets (the guide's
//! "post-incident report with timeline"): the severity, what was rolled back, the timeline of
//! what was observed and decided, and the commands to inspect the state.

use std::fmt::Write as _;
use std::path::Path;

use super::ledger::TargetState;
use super::FleetReport;

/// The guide's severity of the run: P0 when a target needs a human (its rollback failed) or a
/// wave made the application unhealthy, P1 when targets were quarantined (their migration
/// failed and was rolled back), P2 otherwise.
fn severity(rep: &FleetReport) -> (&'static str, &'static str) {
    let kinds = |k: &str| rep.events.iter().any(|e| e.kind == k);
    if kinds("needs_human") || kinds("unhealthy") {
        ("P0", "critical: roll back immediately; a person must look at the targets listed below")
    } else if kinds("quarantine") {
        ("P1", "high: the migration fails on some targets; they were rolled back and quarantined")
    } else {
        ("P2", "medium: the run was rolled back")
    }
}

/// Write the report as Markdown, mode 0600 (it names databases and hosts).
pub(super) fn write(path: &Path, rep: &FleetReport) -> std::io::Result<()> {
    let (sev, meaning) = severity(rep);
    let mut md = String::new();
    let _ = writeln!(md, "# Incident report: migsafe fleet run {}\n", rep.run);
    let _ = writeln!(md, "- **Severity**: {sev} ({meaning})");
    let _ = writeln!(
        md,
        "- **Run status**: {}{}",
        rep.status,
        rep.stop_reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
    );
    let _ = writeln!(md, "- **Migrations**: {}", rep.migrations.join(", "));
    let _ = writeln!(md, "- **Targets**: {}\n", super::rollout::counts_text(&rep.counts));
    let _ = writeln!(md, "## Targets that need attention\n");
    let _ = writeln!(md, "| target | state | applied | error |\n|---|---|---|---|");
    for t in rep.targets.iter().filter(|t| {
        matches!(
            t.state,
            TargetState::Failed | TargetState::Quarantined | TargetState::RolledBack | TargetState::Unreachable
        )
    }) {
        let err = t.error.as_deref().unwrap_or("").replace('|', "\\|").replace('\n', " ");
        let _ = writeln!(md, "| {} | {} | {} | {} |", t.name, t.state, t.applied.join(", "), err);
    }
    let _ = writeln!(md, "\n## Timeline (UTC)\n");
    for e in &rep.events {
        let detail = e.detail.replace('\n', " ");
        match &e.target {
            Some(t) => {
                let _ = writeln!(md, "- {} **{}** {t}: {detail}", e.at, e.kind);
            }
            None => {
                let _ = writeln!(md, "- {} **{}** {detail}", e.at, e.kind);
            }
        }
    }
    let _ = writeln!(md, "\n## Inspect\n");
    let _ = writeln!(md, "```sh");
    let _ = writeln!(
        md,
        "migsafe fleet status DIR --targets …            # every target's applied and pending migrations, drift"
    );
    let _ = writeln!(
        md,
        "migsafe diagnose DIR --db URL                   # one target: what a failed or interrupted run left"
    );
    let _ = writeln!(
        md,
        "migsafe fleet apply DIR --resume {} …      # go on with the run (unreachable targets are retried)",
        rep.run
    );
    let _ = writeln!(md, "migsafe fleet rollback DIR {} …            # roll back everything the run applied", rep.run);
    let _ = writeln!(md, "```");
    let mut f = std::fs::OpenOptions::new();
    f.write(true).create(true).truncate(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
    std::io::Write::write_all(&mut f.open(path)?, md.as_bytes())
}
