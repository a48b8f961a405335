//! `plan`: the guide's pre-migration checklist, filled in from lint, risk, the rollbacks, a
//! rehearsal report, the backups and the database; what is not met is listed.

use serde::Serialize;
use std::path::Path;

use migsafe_pg::ConnSpec;
use migsafe_sql::lint::{Rule, Severity as LintSeverity};

use super::history;
use crate::backup;
use crate::report::Report;
use crate::source::{Migration, MigrationSet};
use crate::EngineError;

/// Whether a checklist item holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanStatus {
    /// migsafe checked it: it holds.
    Met,
    /// migsafe checked it: it does not hold yet.
    Unmet,
    /// A person has to see to it.
    Human,
}

impl PlanStatus {
    fn of(ok: bool) -> PlanStatus {
        if ok {
            PlanStatus::Met
        } else {
            PlanStatus::Unmet
        }
    }
}

/// One checklist item.
#[derive(Debug, Clone, Serialize)]
pub struct PlanItem {
    /// The guide's wording.
    pub item: String,
    /// Met, unmet, or for a person.
    pub status: PlanStatus,
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
        self.items.iter().filter(|i| i.status == PlanStatus::Unmet).collect()
    }

    fn add(&mut self, item: &str, status: PlanStatus, detail: impl Into<String>) {
        self.items.push(PlanItem { item: item.into(), status, detail: detail.into() });
    }

    fn check(&mut self, item: &str, ok: bool, detail: impl Into<String>) {
        self.add(item, PlanStatus::of(ok), detail);
    }

    fn human(&mut self, item: &str, detail: &str) {
        self.add(item, PlanStatus::Human, detail);
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
    let pending: Vec<&Migration> = set
        .migrations
        .iter()
        .zip(&states)
        .filter(|(_, s)| {
            matches!(s.state, history::State::Pending | history::State::Failed | history::State::RolledBack)
        })
        .map(|(m, _)| m)
        .collect();
    let mut plan = Plan { pending: pending.iter().map(|m| m.id()).collect(), items: Vec::new() };
    let all_have_rollbacks = testing_items(&mut plan, &pending, rehearsal);
    lint_items(&mut plan, set, &pending);
    plan.check(
        "Rollback plan documented",
        all_have_rollbacks,
        "rollback files beside the migrations; apply's decision tree rolls back automatically",
    );
    for h in [
        "Stakeholders notified of planned migration",
        "Maintenance window scheduled (if needed)",
        "Support team briefed",
    ] {
        plan.human(h, "a person");
    }
    let probes = set.config.apply.health_url.is_some()
        || set.config.apply.health_cmd.is_some()
        || set.config.apply.error_rate_cmd.is_some();
    plan.check(
        "Rollback decision tree prepared",
        probes,
        if probes {
            "probes configured in migsafe.toml [apply]"
        } else {
            "configure health_url/health_cmd and error_rate_cmd in migsafe.toml [apply]"
        },
    );
    backup_items(&mut plan, &mut c, set, spec, backup_dir)?;
    for h in [
        "Application code compatible with old schema (if zero-downtime)",
        "Application code compatible with new schema",
        "Feature flags configured (if needed)",
        "Deployment order documented",
    ] {
        plan.human(h, "a person");
    }
    Ok(plan)
}

/// What the rehearsal report (and the rollback files) say: tested, rollbacks proven,
/// performance, checks, integrity. Returns whether every pending migration has a rollback.
fn testing_items(plan: &mut Plan, pending: &[&Migration], rehearsal: Option<&Report>) -> bool {
    let ids: Vec<String> = pending.iter().map(|m| m.id()).collect();
    let reh: Vec<&crate::report::MigrationReport> =
        rehearsal.map(|r| r.migrations.iter().filter(|m| ids.contains(&m.id())).collect()).unwrap_or_default();
    let rehearsed = !pending.is_empty() && reh.len() == pending.len();
    let step_ok = |name: &str| rehearsed && reh.iter().all(|m| m.steps.iter().filter(|s| s.step == name).all(|s| s.ok));
    plan.check(
        "Migration tested in local development environment",
        rehearsed && reh.iter().all(|m| m.ok),
        if rehearsed {
            format!("rehearsal: {} of {} passed", reh.iter().filter(|m| m.ok).count(), reh.len())
        } else {
            "no rehearsal report covers the pending migrations: run `migsafe rehearse --report rehearsal.json` and pass --rehearsal".into()
        },
    );
    plan.human("Unit tests pass for affected database interactions", "your test suite");
    plan.human("Integration tests pass", "your test suite (rehearse --check-cmd runs it against the new schema)");
    let no_rollback: Vec<String> = pending.iter().filter(|m| m.rollback.is_none()).map(|m| m.id()).collect();
    plan.check(
        "Rollback script generated and tested",
        no_rollback.is_empty() && step_ok("compare"),
        if no_rollback.is_empty() {
            format!(
                "every pending migration has a rollback{}",
                if step_ok("compare") { "; the rehearsal proved them" } else { "; not yet proven by a rehearsal" }
            )
        } else {
            format!("missing: {}", no_rollback.join(", "))
        },
    );
    plan.check(
        "Performance impact assessed",
        step_ok("performance"),
        if rehearsed { "rehearsal timings and lock traces" } else { "rehearse with --rows N" },
    );
    plan.human("Migration applied to staging environment", "apply to staging with `migsafe apply`");
    plan.check("Application functions correctly after migration", step_ok("checks"), "rehearse --check-cmd / --checks");
    plan.human("Rollback tested successfully in staging", "a rollback on staging (`migsafe rollback`)");
    plan.check(
        "Data integrity verified post-migration",
        step_ok("verify") && step_ok("data"),
        "rehearsal verify and data steps",
    );
    plan.check("Performance metrics collected", rehearsed, "statement timings and lock holds in the rehearsal report");
    no_rollback.is_empty()
}

/// What lint says of the pending migrations (linted in the set's order): complexity, breaking
/// changes, affected tables, downtime.
fn lint_items(plan: &mut Plan, set: &MigrationSet, pending: &[&Migration]) {
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
                Rule::RenameColumn
                    | Rule::RenameTable
                    | Rule::DropColumn
                    | Rule::DropTable
                    | Rule::AlterColumnType
                    | Rule::DropSchema
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
    plan.add("Migration complexity assessed (Low/Medium/High)", PlanStatus::Met, risks.join(", "));
    plan.add(
        "Breaking changes identified",
        PlanStatus::Met,
        if breaking.is_empty() { "none found by lint".into() } else { breaking.join("; ") },
    );
    plan.add(
        "Affected tables and relationships documented",
        PlanStatus::Met,
        if tables.is_empty() { "none".into() } else { tables.into_iter().collect::<Vec<_>>().join(", ") },
    );
    plan.add(
        "Downtime requirement estimated",
        PlanStatus::Met,
        format!("{} (highest risk: {})", worst.downtime(), worst.as_str()),
    );
}

/// The backups in the folder and the server's WAL archiving.
fn backup_items(
    plan: &mut Plan,
    c: &mut postgres::Client,
    set: &MigrationSet,
    spec: &ConnSpec,
    backup_dir: &Path,
) -> Result<(), EngineError> {
    let backups = backup::list(backup_dir)?;
    let newest = backups.iter().find(|(_, m)| m.dbname == spec.dbname());
    plan.check(
        "Full database backup completed",
        newest.is_some(),
        newest
            .map(|(p, m)| format!("{} ({})", p.display(), m.created_utc))
            .unwrap_or_else(|| format!("none in {}: `migsafe backup`", backup_dir.display())),
    );
    plan.check(
        "Backup integrity verified",
        newest.is_some_and(|(_, m)| m.verified),
        "pg_restore --list against the catalog, checksum in the manifest",
    );
    plan.check(
        "Backup restoration tested",
        newest.is_some_and(|(_, m)| m.restore_tested && m.restore_differences.is_empty()),
        "`migsafe backup --restore-test`",
    );
    plan.check(
        "Backup retention policy confirmed",
        set.config.backup.keep.is_some() || set.config.backup.max_age.is_some(),
        "[backup] keep / max_age in migsafe.toml",
    );
    let pitr = backup::pitr_status(c)?;
    plan.check(
        "Point-in-time recovery (PITR) enabled",
        pitr.enabled,
        pitr.advice.unwrap_or_else(|| "WAL is archived".into()),
    );
    Ok(())
}
