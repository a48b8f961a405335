//! `plan`: the guide's pre-migration checklist, filled in from lint, risk, the rollbacks, a
//! rehearsal report, the backups and the database; what is not met is listed.

use serde::Serialize;
use std::path::Path;

use migsafe_pg::ConnSpec;
use migsafe_sql::lint::Severity as LintSeverity;

use super::history;
use crate::backup;
use crate::report::Report;
use crate::source::MigrationSet;
use crate::EngineError;

/// One checklist item.
#[derive(Debug, Clone, Serialize)]
pub struct PlanItem {
    /// The guide's wording.
    pub item: String,
    /// `met`, `unmet`, or `human`.
    pub status: String,
    /// Evidence.
    pub detail: String,
}

/// The filled-in checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Migrations pending on the database.
    pub pending: Vec<String>,
    /// Checklist.
    pub items: Vec<PlanItem>,
}

impl Plan {
    /// Items not met.
    pub fn unmet(&self) -> Vec<&PlanItem> {
        self.items.iter().filter(|i| i.status == "unmet").collect()
    }
}

/// Build the checklist.
pub fn plan(
    set: &MigrationSet,
    spec: &ConnSpec,
    rehearsal: Option<&Report>,
    backup_dir: &Path,
) -> Result<Plan, EngineError> {
    let mut c = spec.connect()?;
    let rows = history::latest(&mut c)?;
    let states = history::status(set, &rows);
    let pending: Vec<&crate::source::Migration> = set
        .migrations
        .iter()
        .zip(&states)
        .filter(|(_, s)| {
            matches!(s.state, history::State::Pending | history::State::Failed | history::State::RolledBack)
        })
        .map(|(m, _)| m)
        .collect();
    let mut items = Vec::new();
    let mut add = |item: &str, status: &str, detail: String| {
        items.push(PlanItem { item: item.into(), status: status.into(), detail })
    };
    let met = |ok: bool| if ok { "met" } else { "unmet" };
    let ids: Vec<String> = pending.iter().map(|m| m.id()).collect();
    let reh: Vec<&crate::report::MigrationReport> =
        rehearsal.map(|r| r.migrations.iter().filter(|m| ids.contains(&m.id())).collect()).unwrap_or_default();
    let rehearsed = !pending.is_empty() && reh.len() == pending.len();
    let step_ok = |name: &str| rehearsed && reh.iter().all(|m| m.steps.iter().filter(|s| s.step == name).all(|s| s.ok));
    add(
        "Migration tested in local development environment",
        met(rehearsed && reh.iter().all(|m| m.ok)),
        if rehearsed {
            format!("rehearsal: {} of {} passed", reh.iter().filter(|m| m.ok).count(), reh.len())
        } else {
            "no rehearsal report covers the pending migrations: run `migsafe rehearse --report rehearsal.json` and pass --rehearsal".into()
        },
    );
    add("Unit tests pass for affected database interactions", "human", "your test suite".into());
    add(
        "Integration tests pass",
        "human",
        "your test suite (rehearse --check-cmd runs it against the new schema)".into(),
    );
    let no_rollback: Vec<String> = pending.iter().filter(|m| m.rollback.is_none()).map(|m| m.id()).collect();
    add(
        "Rollback script generated and tested",
        met(no_rollback.is_empty() && step_ok("compare")),
        if no_rollback.is_empty() {
            format!(
                "every pending migration has a rollback{}",
                if step_ok("compare") { "; the rehearsal proved them" } else { "; not yet proven by a rehearsal" }
            )
        } else {
            format!("missing: {}", no_rollback.join(", "))
        },
    );
    add(
        "Performance impact assessed",
        met(step_ok("performance")),
        if rehearsed { "rehearsal timings and lock traces".into() } else { "rehearse with --rows N".into() },
    );
    add("Migration applied to staging environment", "human", "apply to staging with `migsafe apply`".into());
    add(
        "Application functions correctly after migration",
        met(step_ok("checks")),
        "rehearse --check-cmd / --checks".into(),
    );
    add("Rollback tested successfully in staging", "human", "a rollback on staging (`migsafe rollback`)".into());
    add(
        "Data integrity verified post-migration",
        met(step_ok("verify") && step_ok("data")),
        "rehearsal verify and data steps".into(),
    );
    add(
        "Performance metrics collected",
        met(rehearsed),
        "statement timings and lock holds in the rehearsal report".into(),
    );
    let mut risks = Vec::new();
    let mut breaking = Vec::new();
    let mut tables = std::collections::BTreeSet::new();
    let mut worst = migsafe_sql::risk::RiskLevel::Low;
    let mut linted = Vec::new();
    crate::lint::lint_set(set, &Default::default(), &mut |m, l| {
        if pending.iter().any(|p| p.version == m.version) {
            linted.push((m, l));
        }
    });
    for (m, r) in linted {
        risks.push(format!("{}: {}", m.id(), r.risk.level.as_str()));
        worst = worst.max(r.risk.level);
        for f in r.findings.iter().filter(|f| f.severity >= LintSeverity::Warning) {
            if matches!(
                f.rule,
                "rename-column" | "rename-table" | "drop-column" | "drop-table" | "alter-column-type" | "drop-schema"
            ) {
                breaking.push(format!("{} line {}: {}", m.id(), f.line, f.rule));
            }
        }
        for reason in &r.risk.reasons {
            if let Some(t) = &reason.table {
                tables.insert(t.to_string());
            }
        }
    }
    add("Migration complexity assessed (Low/Medium/High)", "met", risks.join(", "));
    add(
        "Breaking changes identified",
        "met",
        if breaking.is_empty() { "none found by lint".into() } else { breaking.join("; ") },
    );
    add(
        "Affected tables and relationships documented",
        "met",
        if tables.is_empty() { "none".into() } else { tables.into_iter().collect::<Vec<_>>().join(", ") },
    );
    add("Downtime requirement estimated", "met", format!("{} (highest risk: {})", worst.downtime(), worst.as_str()));
    add(
        "Rollback plan documented",
        met(no_rollback.is_empty()),
        "rollback files beside the migrations; apply's decision tree rolls back automatically".into(),
    );
    for h in [
        "Stakeholders notified of planned migration",
        "Maintenance window scheduled (if needed)",
        "Support team briefed",
    ] {
        add(h, "human", "a person".into());
    }
    let probes = set.config.apply.health_url.is_some()
        || set.config.apply.health_cmd.is_some()
        || set.config.apply.error_rate_cmd.is_some();
    add(
        "Rollback decision tree prepared",
        met(probes),
        if probes {
            "probes configured in migsafe.toml [apply]".into()
        } else {
            "configure health_url/health_cmd and error_rate_cmd in migsafe.toml [apply]".into()
        },
    );
    let backups = backup::list(backup_dir)?;
    let newest = backups.iter().find(|(_, m)| m.dbname == spec.dbname());
    add(
        "Full database backup completed",
        met(newest.is_some()),
        newest
            .map(|(p, m)| format!("{} ({})", p.display(), m.created_utc))
            .unwrap_or_else(|| format!("none in {}: `migsafe backup`", backup_dir.display())),
    );
    add(
        "Backup integrity verified",
        met(newest.is_some_and(|(_, m)| m.verified)),
        "pg_restore --list against the catalog, checksum in the manifest".into(),
    );
    add(
        "Backup restoration tested",
        met(newest.is_some_and(|(_, m)| m.restore_tested && m.restore_differences.is_empty())),
        "`migsafe backup --restore-test`".into(),
    );
    add(
        "Backup retention policy confirmed",
        met(set.config.backup.keep.is_some() || set.config.backup.max_age.is_some()),
        "[backup] keep / max_age in migsafe.toml".into(),
    );
    let pitr = backup::pitr_status(&mut c)?;
    add(
        "Point-in-time recovery (PITR) enabled",
        met(pitr.enabled),
        pitr.advice.unwrap_or_else(|| "WAL is archived".into()),
    );
    for h in [
        "Application code compatible with old schema (if zero-downtime)",
        "Application code compatible with new schema",
        "Feature flags configured (if needed)",
        "Deployment order documented",
    ] {
        add(h, "human", "a person".into());
    }
    Ok(Plan { pending: ids, items })
}
