//! The desired-state workflow: the schema as it should be, kept as plain SQL beside the code (a
//! `schema.sql`, or a folder of `.sql` files run in name order), loaded into a throwaway
//! database; and `migsafe new NAME --schema …`, which writes the next migration of a set: the
//! DDL that takes the set's schema to the desired one, in the set's layout, with its hazards
//! marked. The caller lints it and generates and proves its rollback like any other.

use std::path::{Path, PathBuf};

use migsafe_catalog::Snapshot;

use crate::exec::{run_plain, Prepared};
use crate::hazards;
use crate::scratch::ScratchServer;
use crate::source::{read_text, Layout, MigrationSet, SqlText, Version};
use crate::EngineError;

/// The SQL files of a desired schema: the file itself, or every `.sql` file of the folder and
/// its subfolders, in path order.
pub fn schema_files(path: &Path) -> Result<Vec<PathBuf>, EngineError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| EngineError::file(&d, e))?;
        for e in entries {
            let p = e.map_err(|e| EngineError::file(&d, e))?.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "sql") {
                out.push(p);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(EngineError::Usage(format!("{}: no .sql file to read the schema from", path.display())));
    }
    Ok(out)
}

/// Load the desired schema from `files` into a new database on `server` and read it. A
/// statement PostgreSQL rejects is the file's fault (exit 2), named by file, line and column.
pub fn load_schema(server: &ScratchServer, files: &[PathBuf]) -> Result<Snapshot, EngineError> {
    let db = server.create_db("schema", None)?;
    let mut c = db.connect()?;
    for f in files {
        let text = SqlText { path: f.clone(), text: read_text(f)? };
        run_plain(&mut c, &Prepared::new(&text)?).map_err(|e| match e {
            crate::exec::ExecError::Statement { .. } => EngineError::Usage(e.to_string()),
            other => other.into(),
        })?;
    }
    Ok(Snapshot::capture(&mut c)?)
}

/// The schema the migrations of `set` build (an empty database's for a set with none).
pub fn set_schema(server: &ScratchServer, set: Option<&MigrationSet>) -> Result<Snapshot, EngineError> {
    match set {
        Some(set) => {
            let db = server.create_set_db("current", set)?;
            let mut c = db.connect()?;
            for m in &set.migrations {
                run_plain(&mut c, &Prepared::new(&m.forward)?)?;
            }
            Ok(Snapshot::capture(&mut c)?)
        }
        None => Ok(Snapshot::capture(&mut server.create_db("current", None)?.connect()?)?),
    }
}

/// The version after the set's last one, in the same scheme: the next number at the same
/// width (`054` → `055`), the time now for timestamps (`20240101120000`, Diesel's
/// `2024-01-01-120000`, Unix seconds), the last part increased for dotted versions (`1.2` →
/// `1.3`); `001` (or the time now, for layouts that use timestamps) for a set with none.
pub fn next_version(layout: Layout, last: Option<&Version>, now: chrono::DateTime<chrono::Utc>) -> String {
    let stamp = now.format("%Y%m%d%H%M%S").to_string();
    let Some(last) = last else {
        return match layout {
            Layout::Diesel => now.format("%Y-%m-%d-%H%M%S").to_string(),
            Layout::Dbmate | Layout::Prisma => stamp,
            Layout::Flyway => "1".into(),
            Layout::Native | Layout::GolangMigrate => "001".into(),
        };
    };
    let raw = last.as_str();
    let later =
        |candidate: String| -> Option<String> { Version::parse(&candidate).filter(|v| v > last).map(|_| candidate) };
    let bump = |raw: &str| -> String {
        // Increase the last run of digits, keeping its width.
        let end = raw.rfind(|c: char| c.is_ascii_digit()).map_or(raw.len(), |i| i + 1);
        let start = raw[..end].rfind(|c: char| !c.is_ascii_digit()).map_or(0, |i| i + 1);
        let n: u128 = raw[start..end].parse().unwrap_or(0) + 1;
        format!("{}{:0width$}{}", &raw[..start], n, &raw[end..], width = end - start)
    };
    let diesel = raw.len() == 17 && raw.as_bytes().get(4) == Some(&b'-') && raw.as_bytes().get(10) == Some(&b'-');
    let digits = raw.bytes().all(|b| b.is_ascii_digit());
    let timed = if diesel {
        later(now.format("%Y-%m-%d-%H%M%S").to_string())
    } else if digits && raw.len() == 14 && (raw.starts_with("19") || raw.starts_with("20")) {
        later(stamp)
    } else if digits && raw.len() == 10 && raw.starts_with('1') {
        later(now.timestamp().to_string())
    } else {
        None
    };
    timed.unwrap_or_else(|| bump(raw))
}

/// Where the migration `version`_`name` goes in `layout` under `dir`, and the text to write
/// there for the forward SQL `sql`.
pub fn migration_file(layout: Layout, dir: &Path, version: &str, name: &str, sql: &str) -> (PathBuf, String) {
    match layout {
        Layout::Native => (dir.join(format!("{version}_{name}.sql")), sql.to_string()),
        Layout::GolangMigrate => (dir.join(format!("{version}_{name}.up.sql")), sql.to_string()),
        Layout::Dbmate => (dir.join(format!("{version}_{name}.sql")), format!("-- migrate:up\n{sql}")),
        Layout::Flyway => (dir.join(format!("V{version}__{name}.sql")), sql.to_string()),
        Layout::Diesel => (dir.join(format!("{version}_{name}")).join("up.sql"), sql.to_string()),
        Layout::Prisma => (dir.join(format!("{version}_{name}")).join("migration.sql"), sql.to_string()),
    }
}

/// What `new` wrote.
#[derive(Debug, Clone)]
pub struct NewMigration {
    /// The file.
    pub path: PathBuf,
    /// Its version.
    pub version: String,
    /// The hazards marked in it.
    pub hazards: Vec<hazards::HazardNote>,
    /// Its statements (besides the session setting the DDL starts with).
    pub statements: usize,
}

/// A migration name as a file name: lower case, `_` between words.
pub fn file_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

/// Write the migration that takes `current` (the schema of the set in `dir`, `layout`, whose
/// last version is `last`) to `desired`. None when they are already the same.
pub fn write_new(
    dir: &Path,
    layout: Layout,
    last: Option<&Version>,
    name: &str,
    current: &Snapshot,
    desired: &Snapshot,
    source: &str,
) -> Result<Option<NewMigration>, EngineError> {
    let d = current.diff(desired);
    if d.is_empty() {
        return Ok(None);
    }
    let sql = d.to_sql();
    let found = hazards::find(&sql, current, Default::default());
    let body = hazards::annotate(&sql, &found);
    let version = next_version(layout, last, chrono::Utc::now());
    let slug = file_name(name);
    if slug.is_empty() {
        return Err(EngineError::Usage(format!("`{name}` has no letter or digit to name the migration by")));
    }
    let text = format!(
        "-- {slug}: written by `migsafe new` to take the schema of this set to the one in {source}.\n\
         -- Review it: statements marked `-- hazard:` destroy data, may fail, rewrite or lock tables.\n{body}"
    );
    let (path, text) = migration_file(layout, dir, &version, &slug, &text);
    if path.exists() {
        return Err(EngineError::Usage(format!("{} already exists", path.display())));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| EngineError::file(parent, e))?;
    }
    std::fs::write(&path, &text).map_err(|e| EngineError::file(&path, e))?;
    let statements = migsafe_sql::parse::parse_sql(&sql).statements.len().saturating_sub(1);
    Ok(Some(NewMigration { path, version, hazards: found, statements }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn the_next_version_follows_the_set_s_scheme() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 7, 5, 30, 0).unwrap();
        let next = |layout, last: &str| next_version(layout, Some(&v(last)), now);
        assert_eq!(next(Layout::Native, "054"), "055");
        assert_eq!(next(Layout::Native, "099"), "100");
        assert_eq!(next(Layout::GolangMigrate, "000009"), "000010");
        assert_eq!(next(Layout::Dbmate, "20240101120000"), "20261207053000");
        assert_eq!(next(Layout::Diesel, "2019-02-26-002946"), "2026-12-07-053000");
        assert_eq!(next(Layout::GolangMigrate, "1500360784"), now.timestamp().to_string());
        assert_eq!(next(Layout::Flyway, "1.2"), "1.3");
        assert_eq!(next(Layout::Flyway, "7"), "8");
        // A timestamp from the future (a clock ahead): the next one still comes after it.
        assert_eq!(next(Layout::Dbmate, "20301231235959"), "20301231235960");
        assert_eq!(next_version(Layout::Native, None, now), "001");
        assert_eq!(next_version(Layout::Diesel, None, now), "2026-12-07-053000");
    }

    #[test]
    fn names_become_file_names() {
        assert_eq!(file_name("Add user emails!"), "add_user_emails");
        assert_eq!(file_name("  x--y  "), "x_y");
        assert_eq!(file_name("!!"), "");
    }
}
