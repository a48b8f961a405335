//! The history table migsafe keeps in the target database (`migsafe.history`): one row per
//! run of a migration, written before it starts and updated when it ends, so a crash at any
//! point leaves a record of exactly what was happening.

use postgres::Client;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::source::MigrationSet;
use crate::EngineError;

/// Where a target keeps its history: `migsafe.history` for a database; for one tenant schema
/// of a database that holds many (`migsafe fleet --schemas`), a history schema of its own
/// (`migsafe_<tenant>`), so each tenant's history, advisory lock and drift are its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryTable {
    schema: String,
}

impl Default for HistoryTable {
    fn default() -> Self {
        HistoryTable::database()
    }
}

impl HistoryTable {
    /// `migsafe.history`: the history of the whole database.
    pub fn database() -> HistoryTable {
        HistoryTable { schema: "migsafe".into() }
    }

    /// The history of the tenant schema `tenant`: schema `migsafe_<tenant>` (a name over
    /// PostgreSQL's 63 bytes keeps its first 40 characters and a hash of the whole).
    pub fn tenant(tenant: &str) -> HistoryTable {
        let full = format!("migsafe_{tenant}");
        if full.len() <= 63 {
            return HistoryTable { schema: full };
        }
        let head: String = full.chars().take(40).collect();
        let hash = hex::encode(&Sha256::digest(tenant.as_bytes())[..6]);
        HistoryTable { schema: format!("{head}_{hash}") }
    }

    /// The schema holding the history table.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The history table, quoted for SQL.
    pub fn table(&self) -> String {
        format!("{}.history", migsafe_sql::quote_ident(&self.schema))
    }

    /// The advisory lock key of this history: one apply at a time per history.
    pub fn lock_key(&self) -> i64 {
        if self.schema == "migsafe" {
            return super::lock::LOCK_KEY;
        }
        let h = Sha256::digest(self.schema.as_bytes());
        super::lock::LOCK_KEY ^ i64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
    }

    /// The DDL of this history (idempotent).
    pub fn schema_sql(&self) -> String {
        SCHEMA_SQL.replace("migsafe.history", &self.table()).replace(
            "SCHEMA IF NOT EXISTS migsafe;",
            &format!("SCHEMA IF NOT EXISTS {};", migsafe_sql::quote_ident(&self.schema)),
        )
    }
}

/// The DDL of migsafe's own schema (idempotent).
pub const SCHEMA_SQL: &str = "
CREATE SCHEMA IF NOT EXISTS migsafe;
CREATE TABLE IF NOT EXISTS migsafe.history (
    id bigserial PRIMARY KEY,
    version text NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    rollback_checksum text,
    status text NOT NULL CHECK (status IN ('running', 'applied', 'failed', 'rolled_back')),
    tx_mode text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    duration_ms double precision,
    run_by text NOT NULL DEFAULT current_user,
    host text,
    backend_pid int,
    approved_by jsonb,
    snapshot_before jsonb,
    statement_log jsonb NOT NULL DEFAULT '[]'::jsonb,
    error text,
    rolled_back_at timestamptz,
    note text
);
CREATE INDEX IF NOT EXISTS history_version ON migsafe.history (version, id);
";

/// What a history row says of its run (`migsafe.history.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started and not finished: still going, or interrupted.
    Running,
    /// Finished.
    Applied,
    /// Failed (a transactional run left nothing behind).
    Failed,
    /// Applied, then rolled back.
    RolledBack,
}

impl RunStatus {
    /// The text the history table keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Applied => "applied",
            RunStatus::Failed => "failed",
            RunStatus::RolledBack => "rolled_back",
        }
    }

    /// Read the history table's text; anything else (the table's CHECK allows nothing else)
    /// counts as a run that never finished.
    fn read(s: &str) -> RunStatus {
        match s {
            "applied" => RunStatus::Applied,
            "failed" => RunStatus::Failed,
            "rolled_back" => RunStatus::RolledBack,
            _ => RunStatus::Running,
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a recorded run executed (`migsafe.history.tx_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// In one transaction: interrupted, it left nothing.
    Wrapped,
    /// The file's own BEGIN/COMMIT.
    OwnTransactions,
    /// Statement by statement: interrupted, it may be half-applied.
    Autocommit,
    /// Recorded from another tool's history (`migsafe adopt`), never run by migsafe.
    Imported,
}

impl RunMode {
    /// The mode a prepared migration runs in.
    pub fn of(tx: &migsafe_sql::lint::TxMode) -> RunMode {
        match tx {
            migsafe_sql::lint::TxMode::Wrapped => RunMode::Wrapped,
            migsafe_sql::lint::TxMode::OwnTransactions => RunMode::OwnTransactions,
            migsafe_sql::lint::TxMode::Autocommit { .. } => RunMode::Autocommit,
        }
    }

    /// The text the history table keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Wrapped => "wrapped",
            RunMode::OwnTransactions => "own_transactions",
            RunMode::Autocommit => "autocommit",
            RunMode::Imported => "imported",
        }
    }

    /// Read the history table's text; an unknown mode is taken as not transactional (the
    /// cautious reading: it may be half-applied).
    fn read(s: &str) -> RunMode {
        match s {
            "wrapped" => RunMode::Wrapped,
            "own_transactions" => RunMode::OwnTransactions,
            "imported" => RunMode::Imported,
            _ => RunMode::Autocommit,
        }
    }
}

impl std::fmt::Display for RunMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The latest run of one version.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    /// Row id.
    pub id: i64,
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// Forward checksum when it ran.
    pub checksum: String,
    /// How the run ended (or that it did not).
    pub status: RunStatus,
    /// How it ran.
    pub tx_mode: RunMode,
    /// When it started (text).
    pub started_at: String,
    /// Backend that ran it.
    pub backend_pid: Option<i32>,
    /// Statements completed (indexes), for statement-by-statement migrations.
    pub statements_done: Vec<i64>,
    /// The error, when it failed.
    pub error: Option<String>,
}

/// Whether the history table exists.
pub fn exists(c: &mut Client) -> Result<bool, EngineError> {
    exists_in(c, &HistoryTable::database())
}

/// Whether this history table exists.
pub fn exists_in(c: &mut Client, h: &HistoryTable) -> Result<bool, EngineError> {
    Ok(c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&h.table()])?.get(0))
}

/// Create migsafe's schema and history table if needed.
pub fn ensure(c: &mut Client) -> Result<(), EngineError> {
    ensure_in(c, &HistoryTable::database())
}

/// Create this history's schema and table if needed.
pub fn ensure_in(c: &mut Client, h: &HistoryTable) -> Result<(), EngineError> {
    // One lookup when they are there (every run but the first): the DDL, idempotent as it is,
    // costs a new session several times that.
    let index = format!("{}.history_version", migsafe_sql::quote_ident(&h.schema));
    let there: bool = c
        .query_one("SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL", &[&h.table(), &index])?
        .get(0);
    if !there {
        c.batch_execute(&h.schema_sql())?;
    }
    Ok(())
}

/// The latest row of every version.
pub fn latest(c: &mut Client) -> Result<Vec<HistoryRow>, EngineError> {
    latest_in(c, &HistoryTable::database())
}

/// The latest row of every version of this history.
pub fn latest_in(c: &mut Client, h: &HistoryTable) -> Result<Vec<HistoryRow>, EngineError> {
    if !exists_in(c, h)? {
        return Ok(vec![]);
    }
    let rows = c.query(
        &format!(
            "SELECT DISTINCT ON (version) id, version, name, checksum, status, tx_mode, started_at::text, backend_pid, \
               ARRAY(SELECT (e ->> 'index')::bigint FROM jsonb_array_elements(statement_log) e), error \
             FROM {} ORDER BY version, id DESC",
            h.table()
        ),
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| HistoryRow {
            id: r.get(0),
            version: r.get(1),
            name: r.get(2),
            checksum: r.get(3),
            status: RunStatus::read(r.get(4)),
            tx_mode: RunMode::read(r.get(5)),
            started_at: r.get(6),
            backend_pid: r.get(7),
            statements_done: r.get(8),
            error: r.get(9),
        })
        .collect())
}

/// The state of a migration as `status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Applied and unchanged since.
    Applied,
    /// Not applied.
    Pending,
    /// Its last run failed (and, when transactional, left nothing behind).
    Failed,
    /// Applied, then rolled back.
    RolledBack,
    /// Applied, but its file changed since.
    Drifted,
    /// In the history, but its file is gone.
    Missing,
    /// A run that never finished (interrupted, or still going).
    Running,
}

/// One line of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusLine {
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// State.
    pub state: State,
    /// Detail: when, by whom, the error.
    pub detail: String,
}

/// Combine the migration files and the history into states.
pub fn status(set: &MigrationSet, rows: &[HistoryRow]) -> Vec<StatusLine> {
    let mut out = Vec::new();
    for m in &set.migrations {
        let row = rows.iter().find(|r| m.version.matches(&r.version));
        let (state, detail) = match row {
            None => (State::Pending, String::new()),
            Some(r) => match r.status {
                RunStatus::Applied if r.checksum != m.checksum => (
                    State::Drifted,
                    format!(
                        "applied {} but the file changed since (checksum {}… now {}…)",
                        r.started_at,
                        &r.checksum[..8.min(r.checksum.len())],
                        &m.checksum[..8]
                    ),
                ),
                RunStatus::Applied => (State::Applied, format!("applied {}", r.started_at)),
                RunStatus::Failed => (State::Failed, r.error.clone().unwrap_or_default()),
                RunStatus::RolledBack => (State::RolledBack, format!("rolled back (applied {})", r.started_at)),
                RunStatus::Running => (
                    State::Running,
                    format!("started {} by backend {} and never finished", r.started_at, r.backend_pid.unwrap_or(0)),
                ),
            },
        };
        out.push(StatusLine { version: m.version.to_string(), name: m.name.clone(), state, detail });
    }
    for r in rows {
        if !set.migrations.iter().any(|m| m.version.matches(&r.version)) && r.status != RunStatus::RolledBack {
            out.push(StatusLine {
                version: r.version.clone(),
                name: r.name.clone(),
                state: State::Missing,
                detail: format!("{} in the database, but no file", r.status),
            });
        }
    }
    out
}

/// Import the history of another migration tool, so nothing is re-run. Returns how many
/// versions were recorded and from which tool.
pub fn import(c: &mut Client, set: &MigrationSet) -> Result<(usize, String), EngineError> {
    ensure(c)?;
    let has = |c: &mut Client, t: &str| -> Result<bool, EngineError> {
        Ok(c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&t])?.get(0))
    };
    // The set's migrations whose folder name (Prisma) or dash-less version (Diesel) is listed.
    let by = |listed: Vec<String>, key: &dyn Fn(&crate::source::Migration) -> String| -> Vec<String> {
        set.migrations.iter().filter(|m| listed.contains(&key(m))).map(|m| m.version.to_string()).collect()
    };
    let folder = |m: &crate::source::Migration| -> String {
        m.forward
            .path
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let (tool, versions): (&str, Vec<String>) = if has(c, "public._prisma_migrations")? {
        let unfinished: Vec<String> = c
            .query(
                "SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NULL AND rolled_back_at IS NULL",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !unfinished.is_empty() {
            return Err(EngineError::Refused(format!(
                "Prisma records {} as started and not finished: it failed half-way; fix it (migsafe diagnose, then \
                 `prisma migrate resolve`) before importing",
                unfinished.join(", ")
            )));
        }
        let rows = c.query(
            "SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL",
            &[],
        )?;
        ("prisma", by(rows.iter().map(|r| r.get(0)).collect(), &folder))
    } else if has(c, "public.__diesel_schema_migrations")? {
        let rows = c.query("SELECT version::text FROM __diesel_schema_migrations", &[])?;
        ("diesel", by(rows.iter().map(|r| r.get(0)).collect(), &|m| m.version.as_str().replace('-', "")))
    } else if has(c, "public.flyway_schema_history")? {
        let rows = c.query("SELECT version FROM flyway_schema_history WHERE success AND version IS NOT NULL", &[])?;
        ("flyway", rows.iter().map(|r| r.get(0)).collect())
    } else if has(c, "public._sqlx_migrations")? {
        let rows = c.query("SELECT version::text FROM _sqlx_migrations WHERE success", &[])?;
        ("sqlx", rows.iter().map(|r| r.get(0)).collect())
    } else if has(c, "public.schema_migrations")? {
        let cols: Vec<String> = c
            .query(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = 'public.schema_migrations'::regclass AND attnum > 0 AND NOT attisdropped",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if cols.iter().any(|c| c == "dirty") {
            // golang-migrate keeps one row: the current version (refuse when dirty).
            let r = c.query_one("SELECT version::text, dirty FROM schema_migrations LIMIT 1", &[])?;
            let (current, dirty): (String, bool) = (r.get(0), r.get(1));
            if dirty {
                return Err(EngineError::Refused(format!(
                    "golang-migrate marks version {current} dirty: it failed half-way; fix it (migsafe diagnose) before importing"
                )));
            }
            let cur = crate::source::Version::parse(&current);
            let vs = set
                .migrations
                .iter()
                .filter(|m| cur.as_ref().is_some_and(|v| m.version <= *v))
                .map(|m| m.version.to_string())
                .collect();
            ("golang-migrate", vs)
        } else {
            let rows = c.query("SELECT version::text FROM schema_migrations", &[])?;
            ("dbmate", rows.iter().map(|r| r.get(0)).collect())
        }
    } else {
        return Err(EngineError::Refused(
            "no history of golang-migrate (schema_migrations), dbmate, Flyway (flyway_schema_history), sqlx (_sqlx_migrations), \
             Diesel (__diesel_schema_migrations) or Prisma (_prisma_migrations) found"
                .into(),
        ));
    };
    let mut n = 0;
    let existing = latest(c)?;
    for v in versions {
        let Some(m) = set.migrations.iter().find(|m| m.version.matches(&v)) else { continue };
        if existing.iter().any(|r| m.version.matches(&r.version)) {
            continue;
        }
        c.execute(
            "INSERT INTO migsafe.history (version, name, checksum, status, tx_mode, finished_at, note) \
             VALUES ($1, $2, $3, 'applied', 'imported', clock_timestamp(), $4)",
            &[&m.version.to_string(), &m.name, &m.checksum, &format!("imported from {tool}")],
        )?;
        n += 1;
    }
    Ok((n, tool.to_string()))
}
