//! migsafe-pg: talking to PostgreSQL. Connection settings as libpq users know them (URLs,
//! key=value, PG* variables, .pgpass) with redaction everywhere, finding the server
//! binaries, and the throwaway cluster every command and test uses when no database is named.
#![warn(missing_docs)]

pub mod binaries;
pub mod cluster;
pub mod conn;
mod error;
pub mod testing;
pub mod tls;

pub use binaries::PgBinaries;
pub use cluster::Cluster;
pub use conn::{redact_text, ConnSpec};
pub use error::PgError;
pub use postgres;

/// Always-quoted identifier (`"name"`), for names migsafe generates itself.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The server's own message of a query error (`relation "x" does not exist`), without the
/// client library's prefix; the client's text when the server sent none (a lost connection).
pub fn db_message(e: &postgres::Error) -> String {
    e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())
}

/// `server_version_num` of a connection, e.g. 150018.
pub fn server_version_num(client: &mut postgres::Client) -> Result<u32, PgError> {
    let row = client.query_one("SELECT current_setting('server_version_num')::int", &[])?;
    Ok(row.get::<_, i32>(0) as u32)
}
