//! The incident report (the guide's "post-incident report with timeline"), written when an
//! apply rolled back or a fleet run rolled back or quarantined targets: the severity (P0–P3),
//! what was rolled back, the timeline of what was observed and decided, and the commands to
//! inspect the state. Markdown, mode 0600 (it names databases and hosts).

use std::fmt::Write as _;
use std::path::Path;

use crate::apply::{ApplyReport, Outcome};
use crate::fleet::{FleetReport, TargetState};

/// The incident report of a single-database apply or rollback that did not end applied.
pub fn for_apply(rep: &ApplyReport) -> Option<String> {
    let (sev, meaning) = match &rep.outcome {
        Outcome::NeedsHuman { .. } => ("P0", "critical: the rollback failed; a person must act now"),
        Outcome::RolledBack { reason } if reason == "requested" => return None,
        Outcome::RolledBack { .. } => match rep.decision.as_deref().and_then(|d| d.get(..2)) {
            Some("P1") => ("P1", "high: major functionality broken; rolled back after the assessment window"),
            Some("P2") => ("P2", "medium: degraded; rolled back after the assessment window"),
            _ => ("P0", "critical: the migration failed or broke the application; rolled back immediately"),
        },
        _ => return None,
    };
    let mut md = String::new();
    let _ = writeln!(md, "# Incident report: migsafe apply on {}\n", rep.database);
    let _ = writeln!(md, "- **Severity**: {sev} ({meaning})");
    let _ = writeln!(md, "- **Outcome**: {}", rep.outcome);
    if let Some(d) = &rep.decision {
        let _ = writeln!(md, "- **Decision**: {d}");
    }
    let _ = writeln!(md, "- **Planned**: {}", rep.pending.join(", "));
    let ids = |v: &[crate::apply::Applied]| {
        v.iter().map(|a| format!("{}_{}", a.version, a.name)).collect::<Vec<_>>().join(", ")
    };
    let _ = writeln!(md, "- **Applied in this run**: {}", ids(&rep.applied));
    let _ = writeln!(md, "- **Rolled back**: {}", ids(&rep.rolled_back));
    if let Some(b) = &rep.backup {
        let _ = writeln!(md, "- **Backup**: {b}");
    }
    let _ = writeln!(md, "\n## Timeline (UTC)\n");
    for e in &rep.timeline {
        let _ = writeln!(md, "- {} {}", e.at, e.what.replace('\n', " "));
    }
    if !rep.observations.is_empty() {
        let _ = writeln!(md, "\n## Observations\n");
        for o in &rep.observations {
            let _ = writeln!(md, "- {:?}: {}", o.severity, o.what);
        }
    }
    let _ = writeln!(md, "\n## Inspect\n\n```sh");
    let _ = writeln!(md, "migsafe status DIR --db '{}'     # applied, failed, rolled back", rep.database);
    let _ = writeln!(md, "migsafe diagnose DIR --db '{}'   # what a failed run left, how to go on", rep.database);
    let _ = writeln!(md, "```");
    Some(md)
}

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

/// The incident report of a fleet run.
pub fn for_fleet(rep: &FleetReport) -> String {
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
    let counts: Vec<String> = rep.counts.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    let _ = writeln!(md, "- **Targets**: {}\n", counts.join(", "));
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
        "migsafe fleet apply DIR --resume --run {} …   # go on with the run (unreachable targets are retried)",
        rep.run
    );
    let _ = writeln!(md, "migsafe fleet rollback {} DIR …             # roll back everything the run applied", rep.run);
    let _ = writeln!(md, "```");
    md
}

/// Write a report, mode 0600.
pub fn write(path: &Path, md: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new();
    f.write(true).create(true).truncate(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut f, 0o600);
    std::io::Write::write_all(&mut f.open(path)?, md.as_bytes())
}
