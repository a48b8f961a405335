//! migsafe-catalog: what a database's schema and data are, and how two of them differ.
//!
//! [`Snapshot`] is a normalised, ordered model of every schema object read from `pg_catalog`;
//! [`Snapshot::diff`] compares two; [`SchemaDiff::to_sql`] renders the DDL from one to the
//! other; [`Fingerprint`] hashes table data inside PostgreSQL.
#![warn(missing_docs)]

mod ddl;
pub mod diff;
pub mod fingerprint;
pub mod integrity;
pub mod kinds;
pub mod model;
mod others;
pub mod read;
pub mod statements;

pub use ddl::{create_sequence, handed_over, retype_using};
pub use diff::SchemaDiff;
pub use fingerprint::Fingerprint;
pub use model::{QName, Snapshot};
pub use read::{read_snapshot, SnapshotOptions};

/// Errors reading the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A catalog query failed.
    #[error("reading the catalog: {0}")]
    Db(#[from] postgres::Error),
    /// Connecting failed.
    #[error(transparent)]
    Pg(#[from] migsafe_pg::PgError),
    /// The server answered something we cannot read.
    #[error("reading the catalog: {0}")]
    Unexpected(String),
}

impl Snapshot {
    /// Read the snapshot of the connected database (migsafe's own schemas excluded).
    pub fn capture(client: &mut postgres::Client) -> Result<Snapshot, CatalogError> {
        read_snapshot(client, &SnapshotOptions::default())
    }

    /// [`Snapshot::capture`] read by `client` and `helper`, two sessions on the same database, at
    /// once (see [`read::read_snapshot_split`]).
    pub fn capture_split(
        client: &mut postgres::Client,
        helper: &mut postgres::Client,
    ) -> Result<Snapshot, CatalogError> {
        read::read_snapshot_split(client, helper, &SnapshotOptions::default())
    }

    /// [`Snapshot::capture`] inside the transaction block the session has open (see
    /// [`read::read_snapshot_nested`]), or, when it has none, on its own.
    pub fn capture_within(client: &mut postgres::Client) -> Result<Snapshot, CatalogError> {
        match read::read_snapshot_nested(client, &SnapshotOptions::default()) {
            Err(CatalogError::Db(e)) if e.code() == Some(&postgres::error::SqlState::NO_ACTIVE_SQL_TRANSACTION) => {
                read_snapshot(client, &SnapshotOptions::default())
            }
            other => other,
        }
    }
}
