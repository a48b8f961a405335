//! The guide's post-migration checklist, checked where migsafe can and left to a person where
//! it cannot.

use postgres::Client;

use migsafe_catalog::integrity;

use super::probes::IncidentSeverity;
use super::{ApplyReport, ChecklistItem, ChecklistStatus};
use crate::EngineError;

/// The guide's post-migration checklist, checked where migsafe can.
pub(super) fn checklist(
    c: &mut Client,
    rep: &ApplyReport,
    opts: &super::ApplyOptions,
) -> Result<Vec<ChecklistItem>, EngineError> {
    let auto = |item: &str, ok: bool, detail: String| ChecklistItem {
        item: item.into(),
        status: if ok { ChecklistStatus::Checked } else { ChecklistStatus::Failed },
        detail,
    };
    let human = |item: &str, detail: &str| ChecklistItem {
        item: item.into(),
        status: ChecklistStatus::Human,
        detail: detail.into(),
    };
    let health = rep.observations.iter().filter(|o| o.severity == IncidentSeverity::P0).count();
    // The checks need the tables in scope, not the whole snapshot.
    let scope = integrity::Scope::read(c, &opts.snapshot)?;
    let checks = integrity::run_all(c, &scope)?;
    let bad = checks.iter().filter(|r| !r.ok).count();
    let deadlocks: i64 =
        c.query_one("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()", &[])?.get(0);
    let lock_timeouts = rep.applied.iter().map(|a| a.attempts.saturating_sub(1)).sum::<u32>();
    let size: String = c.query_one("SELECT pg_size_pretty(pg_database_size(current_database()))", &[])?.get(0);
    Ok(vec![
        if rep.observations.is_empty() && health == 0 {
            human("Application health checks passing", "no health probe was configured (--health-url / --health-cmd)")
        } else {
            auto("Application health checks passing", health == 0, format!("{health} failing health observations"))
        },
        human("Error rate within normal range (<1%)", "configure --error-rate-cmd to have it checked"),
        human("Response times within SLA", "configure --latency-cmd, or install pg_stat_statements"),
        human("Database connection pool stable", "see `migsafe monitor`"),
        auto("No deadlocks or lock timeouts", lock_timeouts == 0, format!("{lock_timeouts} lock-timeout retries in this run; {deadlocks} deadlocks in this database since its statistics were reset")),
        human("Critical user flows tested manually", "a person"),
        human("Performance metrics compared to baseline", "compare your dashboards"),
        auto("Database size/growth monitored", true, format!("database size now {size}")),
        human("Query performance analyzed", "pg_stat_statements / EXPLAIN"),
        human("User-reported issues tracked", "a person"),
        auto("Automated tests passing", bad == 0, format!("{} integrity checks, {bad} failed", checks.len())),
        human("Backup schedule resumed", "your scheduler"),
        human("No regression detected in analytics", "a person"),
        human("Resource utilization stable", "see `migsafe monitor`"),
        human("Cost impact assessed", "a person"),
        human("Documentation updated", "a person"),
        human("Lessons learned documented", "a person"),
        {
            let missing: i64 = c
                .query_one(&format!("SELECT count(*) FROM {} WHERE id = ANY($1) AND rollback_checksum IS NULL", opts.history.table()), &[&rep.history_ids])?
                .get(0);
            auto(
                "Rollback scripts archived",
                missing == 0,
                format!("{} migrations of this run recorded with their rollback's checksum, {missing} without a rollback", rep.history_ids.len() as i64 - missing),
            )
        },
    ])
}
