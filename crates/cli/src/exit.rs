//! Exit codes and the failures that carry them: what happened, for scripts and CI.

use migsafe_engine::apply::Outcome;

/// Exit codes (DESIGN.md): what happened, for scripts and CI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success, nothing at or above the threshold.
    Ok = 0,
    /// Findings or failed checks at or above the threshold.
    Findings = 1,
    /// Usage or input error.
    Input = 2,
    /// Database or environment error.
    Environment = 3,
    /// An apply failed and was rolled back.
    RolledBack = 4,
    /// An apply failed and could not be rolled back: a human is needed.
    NeedsHuman = 5,
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub exit: Exit,
    /// What went wrong, with its causes.
    pub error: anyhow::Error,
}

impl Failure {
    /// A bad-input failure.
    pub fn input(e: impl Into<anyhow::Error>) -> Failure {
        Failure { exit: Exit::Input, error: e.into() }
    }

    /// A database/environment failure.
    pub fn environment(e: impl Into<anyhow::Error>) -> Failure {
        Failure { exit: Exit::Environment, error: e.into() }
    }
}

/// Result of a command: the exit code to use.
pub type CmdResult = Result<Exit, Failure>;

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
