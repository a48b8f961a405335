//! What `apply` and `rollback` report: the preflight, what ran, what was observed and
//! decided, how it ended, and the guide's post-migration checklist.

use serde::Serialize;

use super::probes::Observation;

/// pass / warn / fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// Fine.
    Pass,
    /// Worth knowing; does not stop apply.
    Warn,
    /// Stops apply.
    Fail,
}

/// One preflight item.
#[derive(Debug, Clone, Serialize)]
pub struct PreflightItem {
    /// What was checked.
    pub item: String,
    /// Result.
    pub status: Check,
    /// Detail.
    pub detail: String,
}

/// A migration applied (or rolled back) in this run.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// Milliseconds.
    pub ms: f64,
    /// Attempts (lock-timeout retries + 1).
    pub attempts: u32,
    /// Retries, cleanups.
    pub events: Vec<String>,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing pending.
    NothingToDo,
    /// Preflight only.
    DryRun,
    /// Preflight refused.
    Refused,
    /// Another apply holds the lock.
    Locked {
        /// Who holds it.
        holder: String,
    },
    /// Everything applied and healthy.
    Applied,
    /// Something failed and everything this run applied was rolled back.
    RolledBack {
        /// Why.
        reason: String,
    },
    /// Something failed and the rollback failed too: a human is needed.
    NeedsHuman {
        /// Why.
        reason: String,
        /// Where the database is now.
        state: String,
        /// What to run next.
        next: String,
    },
    /// Interrupted (Ctrl-C).
    Interrupted {
        /// Where the database is now.
        state: String,
    },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::NothingToDo => f.write_str("nothing to do"),
            Outcome::DryRun => f.write_str("dry run"),
            Outcome::Refused => f.write_str("refused by the preflight"),
            Outcome::Locked { holder } => write!(f, "another apply holds the lock: {holder}"),
            Outcome::Applied => f.write_str("applied"),
            Outcome::RolledBack { reason } => write!(f, "rolled back: {reason}"),
            Outcome::NeedsHuman { reason, state, next } => write!(f, "needs a human: {reason}; {state}; next: {next}"),
            Outcome::Interrupted { state } => write!(f, "interrupted: {state}"),
        }
    }
}

/// Who checked a checklist item, and how it came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecklistStatus {
    /// Checked by migsafe: fine.
    Checked,
    /// Checked by migsafe: not fine.
    Failed,
    /// Needs a person.
    Human,
}

/// One item of the guide's post-migration checklist.
#[derive(Debug, Clone, Serialize)]
pub struct ChecklistItem {
    /// The guide's wording.
    pub item: String,
    /// Checked by migsafe and fine, checked and failed, or left to a person.
    pub status: ChecklistStatus,
    /// How it was checked.
    pub detail: String,
}

/// What `apply` or `rollback` did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// Database (redacted).
    pub database: String,
    /// Preflight.
    pub preflight: Vec<PreflightItem>,
    /// Pending migrations (the plan).
    pub pending: Vec<String>,
    /// Migrations applied in this run.
    pub applied: Vec<Applied>,
    /// What the decision tree observed.
    pub observations: Vec<Observation>,
    /// The worst severity and what it meant.
    pub decision: Option<String>,
    /// Migrations rolled back.
    pub rolled_back: Vec<Applied>,
    /// The end.
    pub outcome: Outcome,
    /// The guide's post-migration checklist.
    pub checklist: Vec<ChecklistItem>,
    /// The backup taken or found.
    pub backup: Option<String>,
    /// What was observed and decided, when (for the incident report).
    pub timeline: Vec<TimelineEntry>,
    /// History rows written by this run.
    #[serde(skip)]
    pub history_ids: Vec<i64>,
    /// The versions the history shows applied when the run ended (read on its own session,
    /// so a fleet needs no connection of its own to reconcile).
    #[serde(skip)]
    pub applied_now: Vec<String>,
}

/// One line of a run's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    /// When (UTC, ISO 8601 with milliseconds).
    pub at: String,
    /// What happened.
    pub what: String,
}

impl ApplyReport {
    pub(super) fn new(database: String) -> Self {
        ApplyReport {
            database,
            preflight: vec![],
            pending: vec![],
            applied: vec![],
            observations: vec![],
            decision: None,
            rolled_back: vec![],
            outcome: Outcome::NothingToDo,
            checklist: vec![],
            backup: None,
            timeline: vec![],
            history_ids: vec![],
            applied_now: vec![],
        }
    }

    /// Add a line to the timeline, stamped now.
    pub(super) fn note(&mut self, what: impl Into<String>) {
        let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        self.timeline.push(TimelineEntry { at, what: what.into() });
    }

    /// Add an item to the preflight list (also: notifications not delivered, where the incident
    /// report went).
    pub fn pre(&mut self, item: &str, status: Check, detail: impl Into<String>) {
        self.preflight.push(PreflightItem { item: item.into(), status, detail: detail.into() });
    }
}
