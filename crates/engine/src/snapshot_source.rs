//! Where a schema to snapshot comes from: a database URL, a snapshot JSON file, or a
//! migration folder (replayed on a scratch database).

use std::path::{Path, PathBuf};

use migsafe_catalog::Snapshot;
use migsafe_pg::ConnSpec;

use crate::exec::{run_plain, Prepared};
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
}

impl SchemaSource {
    /// Folder → migrations; existing file → snapshot JSON; anything else → connection string.
    pub fn parse(arg: &str) -> Result<SchemaSource, EngineError> {
        let p = Path::new(arg);
        if p.is_dir() {
            Ok(SchemaSource::Migrations(p.to_path_buf()))
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
            SchemaSource::Migrations(dir) => {
                let set = MigrationSet::load(dir)?;
                let server = ScratchServer::throwaway(pg_bin)?;
                let db = server.create_set_db("snapshot", &set)?;
                let mut c = db.connect()?;
                for m in &set.migrations {
                    run_plain(&mut c, &Prepared::new(&m.forward)?)?;
                }
                Ok(Snapshot::capture(&mut c)?)
            }
        }
    }
}
