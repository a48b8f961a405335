//! Migration sets: a folder of migration files in one of the supported layouts, loaded into
//! versions in numeric order with checksums and directives. Reads files; touches no database.

mod layout;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};

use migsafe_sql::directives::Directives;

use crate::config::Config;
pub use layout::detect_layout;

/// How migration files are named and paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `054_add_message_bookmarks.sql` + `054_add_message_bookmarks.rollback.sql`.
    Native,
    /// `NNN_name.up.sql` + `NNN_name.down.sql` (also sqlx's reversible layout).
    #[serde(alias = "sqlx", alias = "golang_migrate", alias = "migrate")]
    GolangMigrate,
    /// One file per migration with `-- migrate:up` / `-- migrate:down` sections.
    Dbmate,
    /// `V<version>__name.sql` + `U<version>__name.sql`.
    Flyway,
    /// Diesel: a folder per migration holding `up.sql` and `down.sql`.
    Diesel,
    /// Prisma: a folder per migration holding `migration.sql` (and, by Prisma's own advice for
    /// down migrations, `down.sql`).
    Prisma,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Native => "native",
            Layout::GolangMigrate => "golang-migrate",
            Layout::Dbmate => "dbmate",
            Layout::Flyway => "flyway",
            Layout::Diesel => "diesel",
            Layout::Prisma => "prisma",
        })
    }
}

/// A migration version: compared numerically part by part (`2` < `10`, `1.2` < `1.10`).
#[derive(Debug, Clone, Eq, Serialize)]
#[serde(into = "String")]
pub struct Version {
    raw: String,
    parts: Vec<u128>,
}

impl Version {
    /// Parse the digits of a version (`054`, `20240101120000`, `1.2.3`, `1_2`, `2014-11-07-001234`).
    pub fn parse(raw: &str) -> Option<Version> {
        let parts: Option<Vec<u128>> =
            raw.split(['.', '_', '-']).filter(|p| !p.is_empty()).map(|p| p.parse::<u128>().ok()).collect();
        let parts = parts?;
        if parts.is_empty() {
            return None;
        }
        Some(Version { raw: raw.to_string(), parts })
    }

    /// `raw` as written, ordered as `order` parses (Prisma's folder names sort as text, so
    /// a short `20260108` comes after `20251231235959`: it orders as `20260108000000`).
    pub(crate) fn parse_ordered_as(raw: &str, order: &str) -> Option<Version> {
        Version::parse(order).map(|v| Version { raw: raw.to_string(), parts: v.parts })
    }

    /// As written in the file name.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// True when `s` names this version (numerically: `54` matches `054`).
    pub fn matches(&self, s: &str) -> bool {
        // As written (numerically), or as ordered (see `parse_ordered_as`).
        let written = Version::parse(&self.raw);
        Version::parse(s).is_some_and(|v| v == *self || written.is_some_and(|w| w == v))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        for i in 0..n {
            let a = self.parts.get(i).copied().unwrap_or(0);
            let b = other.parts.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl From<Version> for String {
    fn from(v: Version) -> String {
        v.raw
    }
}

/// SQL read from a file. For dbmate, the other section is blanked to spaces so byte offsets,
/// lines and columns stay those of the real file.
#[derive(Debug, Clone, Serialize)]
pub struct SqlText {
    /// The file it came from.
    pub path: PathBuf,
    /// The SQL.
    pub text: String,
}

impl SqlText {
    /// sha256 of the text, hex.
    pub fn checksum(&self) -> String {
        checksum(&self.text)
    }
}

/// sha256 hex of a text.
pub fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// One migration: its forward SQL and, when present, its rollback.
#[derive(Debug, Clone, Serialize)]
pub struct Migration {
    /// Version.
    pub version: Version,
    /// Name part of the file name (`add_message_bookmarks`).
    pub name: String,
    /// Forward SQL.
    pub forward: SqlText,
    /// Rollback SQL, when the set has one for this migration.
    pub rollback: Option<SqlText>,
    /// Data-capture SQL (`….capture.sql`): copies what the migration destroys into
    /// `migsafe_backup` before it runs, for the rollback to restore.
    pub capture: Option<SqlText>,
    /// sha256 of the forward text.
    pub checksum: String,
    /// Header directives of the forward SQL.
    pub directives: Directives,
}

impl Migration {
    /// `054_add_message_bookmarks`.
    pub fn id(&self) -> String {
        format!("{}_{}", self.version, self.name)
    }
}

/// A loaded migration folder.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    /// The migrations folder.
    pub dir: PathBuf,
    /// Its layout.
    pub layout: Layout,
    /// Migrations in version order.
    pub migrations: Vec<Migration>,
    /// `migsafe.toml`, or defaults.
    pub config: Config,
    /// Where the config was read from.
    pub config_path: Option<PathBuf>,
}

/// Why a migration folder could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)]
pub enum SourceError {
    #[error("{path}: cannot read: {source}")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot write: {source}")]
    Unwritable { path: PathBuf, source: std::io::Error },
    #[error("{path}: not valid UTF-8 (first bad byte at offset {offset}); migrations must be UTF-8 text")]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{dir}: no migration files found (looked for *.sql files in the {layout} layout)")]
    Empty { dir: PathBuf, layout: String },
    #[error("{path}: does not fit the {layout} layout: {hint}")]
    NoLayout { path: PathBuf, layout: Layout, hint: String },
    #[error("{dir}: files of several layouts are mixed ({found}); set `layout` in migsafe.toml")]
    MixedLayouts { dir: PathBuf, found: String },
    #[error("version {version} appears twice: {first} and {second}")]
    DuplicateVersion { version: String, first: PathBuf, second: PathBuf },
    #[error("{path}: rollback or capture file with no forward migration of version {version}")]
    OrphanRollback { path: PathBuf, version: String },
    #[error("{path}: {message}")]
    BadConfig { path: PathBuf, message: String },
    #[error("{path}: not a directory")]
    NotADirectory { path: PathBuf },
}

/// Tables migration frameworks create before running the first migration, which migrations
/// sometimes refer to (Lemmy puts a trigger on Diesel's; Underway reads sqlx's), as each
/// framework creates them. `schema_migrations` (golang-migrate, dbmate) is left out: an
/// application may have its own table of that name.
const FRAMEWORK_TABLES: &[(&str, &str)] = &[
    (
        "__diesel_schema_migrations",
        "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (\n    version VARCHAR(50) PRIMARY KEY NOT NULL,\n    \
         run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\n)",
    ),
    (
        "_sqlx_migrations",
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (\n    version BIGINT PRIMARY KEY,\n    description TEXT NOT NULL,\n    \
         installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),\n    success BOOLEAN NOT NULL,\n    checksum BYTEA NOT NULL,\n    \
         execution_time BIGINT NOT NULL\n)",
    ),
    (
        "flyway_schema_history",
        "CREATE TABLE IF NOT EXISTS flyway_schema_history (\n    installed_rank INT PRIMARY KEY,\n    version VARCHAR(50),\n    \
         description VARCHAR(200) NOT NULL,\n    type VARCHAR(20) NOT NULL,\n    script VARCHAR(1000) NOT NULL,\n    \
         checksum INT,\n    installed_by VARCHAR(100) NOT NULL,\n    installed_on TIMESTAMP NOT NULL DEFAULT now(),\n    \
         execution_time INT NOT NULL,\n    success BOOLEAN NOT NULL\n)",
    ),
];

impl MigrationSet {
    /// SQL creating the migration-framework tables the set's migrations refer to (see
    /// [`FRAMEWORK_TABLES`]): a scratch database gets them before the first migration, as the
    /// real database has them.
    pub fn framework_sql(&self) -> Vec<&'static str> {
        FRAMEWORK_TABLES
            .iter()
            .filter(|(name, _)| {
                let texts = || self.migrations.iter().flat_map(|m| [Some(&m.forward), m.rollback.as_ref()]).flatten();
                let referenced = texts().any(|t| t.text.to_ascii_lowercase().contains(name));
                // A set that creates the table itself gets none from here.
                let created = || {
                    self.migrations.iter().any(|m| {
                        migsafe_sql::parse_sql(&m.forward.text).statements.iter().any(|st| {
                            matches!(&st.kind, migsafe_sql::StmtKind::CreateTable { table, .. }
                                if table.name == *name && table.schema.as_deref().is_none_or(|s| s == "public"))
                        })
                    })
                };
                referenced && !created()
            })
            .map(|(_, sql)| *sql)
            .collect()
    }

    /// Load the migration folder at `path` (or the folder `migsafe.toml` there points at).
    pub fn load(path: &Path) -> Result<MigrationSet, SourceError> {
        if !path.is_dir() {
            return Err(SourceError::NotADirectory { path: path.to_path_buf() });
        }
        let (config, config_path) = match Config::load(path)? {
            Some((c, p)) => (c, Some(p)),
            None => (Config::default(), None),
        };
        let dir = match &config.dir {
            Some(d) => path.join(d),
            None => path.to_path_buf(),
        };
        if !dir.is_dir() {
            return Err(SourceError::NotADirectory { path: dir });
        }
        let layout = match config.layout {
            Some(l) => l,
            None => detect_layout(&dir)?,
        };
        let migrations = layout::load(&dir, layout)?;
        if migrations.is_empty() {
            return Err(SourceError::Empty { dir, layout: layout.to_string() });
        }
        Ok(MigrationSet { dir, layout, migrations, config, config_path })
    }

    /// The migration with version `v` (numeric match).
    pub fn find(&self, v: &str) -> Option<&Migration> {
        self.migrations.iter().find(|m| m.version.matches(v))
    }

    /// Where a rollback for `m` goes in this layout (for dbmate: the migration's own file).
    pub fn rollback_path(&self, m: &Migration) -> PathBuf {
        layout::rollback_path(self.layout, &self.dir, m)
    }

    /// Where the data-capture step of `m` goes: beside the forward file, `.capture.sql`.
    pub fn capture_path(&self, m: &Migration) -> PathBuf {
        layout::capture_path(self.layout, m)
    }

    /// Write a rollback for `m` (and its data-capture step, when there is one) where this
    /// layout keeps them: its own file, or for dbmate the `-- migrate:down` section of the
    /// migration's file (replacing the one there). Returns where the rollback went.
    pub fn write_rollback(&self, m: &Migration, script: &str, capture: Option<&str>) -> Result<PathBuf, SourceError> {
        let path = self.rollback_path(m);
        let write = |p: &Path, text: &str| {
            std::fs::write(p, text).map_err(|e| SourceError::Unwritable { path: p.to_path_buf(), source: e })
        };
        if self.layout == Layout::Dbmate {
            let text = read_text(&path)?;
            let up_end = text.find("\n-- migrate:down").map(|i| i + 1).unwrap_or(text.len());
            let mut new = text[..up_end].to_string();
            if !new.ends_with('\n') {
                new.push('\n');
            }
            new.push_str("-- migrate:down\n");
            new.push_str(script);
            write(&path, &new)?;
        } else {
            write(&path, script)?;
        }
        if let Some(cap) = capture {
            write(&self.capture_path(m), cap)?;
        }
        Ok(path)
    }
}

/// Read a file as UTF-8, with errors that name it.
pub fn read_text(path: &Path) -> Result<String, SourceError> {
    let bytes = std::fs::read(path).map_err(|e| SourceError::Unreadable { path: path.to_path_buf(), source: e })?;
    String::from_utf8(bytes)
        .map_err(|e| SourceError::NotUtf8 { path: path.to_path_buf(), offset: e.utf8_error().valid_up_to() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        let v = |s| Version::parse(s).unwrap();
        assert!(v("2") < v("10"));
        assert!(v("054") == v("54"));
        assert!(v("1.2") < v("1.10"));
        assert!(v("1_1") == v("1.1"));
        assert!(v("2014-11-07-001234") < v("2015-01-01-000000"));
        assert!(Version::parse("abc").is_none());
        assert!(v("20240101120000") > v("999"));
    }
}
