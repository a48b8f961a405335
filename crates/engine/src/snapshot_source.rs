//! Where a schema to snapshot comes from: a database URL, a snapshot JSON file, a migration
//! folder (replayed on a scratch database), or the schema as plain SQL (a `.sql` file or a folder
//! of them, loaded into a scratch database).

use std::path::{Path, PathBuf};

use migsafe_catalog::Snapshot;
use migsafe_pg::ConnSpec;

use crate::scratch::ScratchServer;
use crate::source::MigrationSet;
use crate::EngineError;

/// A schema source named on the command line.
#[derive(Debug, Clone)]
pub enum SchemaSource {
    /// A live database.
    Database(Box<ConnSpec>),
    /// A snapshot saved as JSON.
    File(PathBuf),
    /// A migration folder: the schema its migrations build.
    Migrations(PathBuf),
    /// The schema as it should be, as plain SQL: a `.sql` file, or a folder of them that is not
    /// a migration set (files run in path order).
    Schema(PathBuf),
}

impl SchemaSource {
    /// Folder → migrations; existing file → snapshot JSON; anything else → connection string.
    pub fn parse(arg: &str) -> Result<SchemaSource, EngineError> {
        let p = Path::new(arg);
        if p.is_dir() {
            Ok(SchemaSource::Migrations(p.to_path_buf()))
        } else if p.is_file() && p.extension().is_some_and(|x| x == "sql") {
            Ok(SchemaSource::Schema(p.to_path_buf()))
        } else if p.is_file() {
            Ok(SchemaSource::File(p.to_path_buf()))
        } else if arg.contains("://") || arg.contains('=') {
            Ok(SchemaSource::Database(Box::new(ConnSpec::parse(arg)?)))
        } else {
            Err(EngineError::Usage(format!(
                "`{arg}` is not a folder, a snapshot file or a connection string (postgresql://… or key=value)"
            )))
        }
    }

    /// Read the snapshot, starting a throwaway cluster for migration folders.
    pub fn snapshot(&self, pg_bin: Option<&Path>) -> Result<Snapshot, EngineError> {
        match self {
            SchemaSource::Database(spec) => Ok(Snapshot::capture(&mut spec.connect()?)?),
            SchemaSource::File(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| EngineError::file(p, e))?;
                Snapshot::from_json(&text).map_err(|e| EngineError::BadFile {
                    path: p.to_path_buf(),
                    problem: format!("not a migsafe snapshot: {e}"),
                })
            }
            SchemaSource::Schema(path) => {
                let server = ScratchServer::throwaway(pg_bin)?;
                crate::desired::load_schema(&server, &crate::desired::schema_files(path)?)
            }
            SchemaSource::Migrations(dir) => {
                let set = match MigrationSet::load(dir) {
                    Ok(set) => set,
                    // Files not named as migrations: a schema kept as plain SQL.
                    Err(crate::source::SourceError::NoLayout { .. }) => {
                        return SchemaSource::Schema(dir.clone()).snapshot(pg_bin)
                    }
                    Err(e) => return Err(e.into()),
                };
                crate::desired::set_schema(&ScratchServer::throwaway(pg_bin)?, Some(&set))
            }
        }
    }
}
