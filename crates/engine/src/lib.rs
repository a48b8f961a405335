//! migsafe-engine: migration sets and everything that runs them.
#![warn(missing_docs)]

pub mod apply;
pub mod backfill;
pub mod backup;
pub mod capture;
pub mod config;
pub mod exec;
pub mod lint;
pub mod monitor;
mod names;
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
    /// Bad input: files, arguments, SQL that does not parse.
    #[error("{0}")]
    Input(String),
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
    /// True when the cause is the input (exit 2) rather than the environment (exit 3).
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            EngineError::Input(_) | EngineError::Source(_) | EngineError::Exec(exec::ExecError::Syntax { .. })
        )
    }
}
