//! migsafe-engine: migration sets and everything that runs them.
#![warn(missing_docs)]

pub mod apply;
pub mod backfill;
pub mod backup;
pub mod capture;
pub mod config;
pub mod desired;
pub mod exec;
pub mod fleet;
pub mod hazards;
pub mod incident;
pub mod lint;
pub mod monitor;
mod names;
pub mod notify;
pub mod rehearse;
pub mod replay;
pub mod report;
pub mod rollback;
pub mod scratch;
pub mod snapshot_source;
pub mod source;
pub mod synth;
pub mod verify;

pub use config::Config;
pub use source::{Layout, Migration, MigrationSet, SourceError, Version};

/// Errors of the engine, grouped by what the user can do about them.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A file or folder migsafe reads or writes could not be (exit 2).
    #[error("{}: {source}", path.display())]
    File {
        /// The file or folder.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file that is not what it should be: a snapshot, a baseline (exit 2).
    #[error("{}: {problem}", path.display())]
    BadFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Arguments that do not make sense together or do not parse (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The database does not allow it as it is: a table that does not exist, a table with no
    /// key, another tool's history left half-way, a run already going on, a migration with no
    /// rollback (exit 2).
    #[error("{0}")]
    Refused(String),
    /// A backup could not be taken, does not match its manifest, or did not restore (exit 2).
    #[error("{0}")]
    Backup(String),
    /// A PostgreSQL program or a user's command could not run or failed (exit 2).
    #[error("{0}")]
    Tool(String),
    /// A rollback failed while it ran (exit 2; `apply` turns it into "needs a human").
    #[error("{0}")]
    RollbackFailed(String),
    /// Loading a migration folder failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Running SQL failed.
    #[error(transparent)]
    Exec(#[from] exec::ExecError),
    /// The database or the PostgreSQL programs failed.
    #[error(transparent)]
    Pg(#[from] migsafe_pg::PgError),
    /// Reading the catalog failed.
    #[error(transparent)]
    Catalog(#[from] migsafe_catalog::CatalogError),
    /// A query failed.
    #[error("database error: {0}")]
    Db(#[from] postgres::Error),
}

impl EngineError {
    /// A file that could not be read or written.
    pub fn file(path: &std::path::Path, source: std::io::Error) -> EngineError {
        EngineError::File { path: path.to_path_buf(), source }
    }

    /// True when the cause is the input (exit 2) rather than the environment (exit 3).
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            EngineError::File { .. }
                | EngineError::BadFile { .. }
                | EngineError::Usage(_)
                | EngineError::Refused(_)
                | EngineError::Backup(_)
                | EngineError::Tool(_)
                | EngineError::RollbackFailed(_)
                | EngineError::Source(_)
                | EngineError::Exec(exec::ExecError::Syntax { .. })
        )
    }
}
