//! The one error type of this crate.

/// What went wrong talking to PostgreSQL or running its programs.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A connection string that does not parse (shown redacted).
    #[error("invalid connection string `{0}`: {1}")]
    BadConnString(String, String),
    /// The server could not be reached or refused us (target shown redacted).
    #[error("cannot connect to {0}")]
    Connect(String, #[source] postgres::Error),
    /// TLS settings that cannot be used (missing or unreadable certificates).
    #[error("TLS: {0}")]
    Tls(crate::tls::TlsError),
    /// No PostgreSQL server binaries on this machine.
    #[error("PostgreSQL server binaries not found: {0}")]
    NoBinaries(String),
    /// A PostgreSQL program failed.
    #[error("{what} failed: {detail}")]
    Command {
        /// What was run.
        what: String,
        /// Its error output.
        detail: String,
    },
    /// The throwaway server did not start.
    #[error("the throwaway PostgreSQL server did not start: {0}")]
    Start(String),
    /// A file system operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A query failed.
    #[error(transparent)]
    Db(#[from] postgres::Error),
}

impl PgError {
    /// Wrap an I/O error with what we were doing.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> PgError {
        let what = what.into();
        move |source| PgError::Io { what, source }
    }
}
