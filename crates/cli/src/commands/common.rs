//! Arguments and helpers shared by commands.

use clap::Args;
use std::path::{Path, PathBuf};

use migsafe_engine::scratch::ScratchServer;
use migsafe_engine::{EngineError, MigrationSet};
use migsafe_pg::ConnSpec;

use crate::Failure;

/// Where scratch databases are made.
#[derive(Debug, Args, Clone)]
pub struct ScratchArgs {
    /// Use this server for scratch databases (only migsafe_scratch_* databases are created and
    /// dropped) instead of a throwaway cluster.
    #[arg(long)]
    pub db: Option<String>,
    /// PostgreSQL server binaries for the throwaway cluster.
    #[arg(long, env = "PG_BIN")]
    pub pg_bin: Option<PathBuf>,
}

/// Map an engine error to its exit code.
pub fn engine_failure(e: EngineError) -> Failure {
    if e.is_input() {
        Failure::input(e)
    } else {
        Failure::environment(e)
    }
}

/// Load the migration folder (default: the current folder).
pub fn load_set(dir: Option<&Path>) -> Result<MigrationSet, Failure> {
    let dir = dir.unwrap_or(Path::new("."));
    MigrationSet::load(dir).map_err(Failure::input)
}

/// The database named by `--db`, else by DATABASE_URL or the PG* variables.
pub fn database(db: Option<&str>) -> Result<ConnSpec, Failure> {
    match db {
        Some(url) => ConnSpec::parse(url).map_err(Failure::input),
        None if ConnSpec::env_names_database() => ConnSpec::from_env().map_err(Failure::input),
        None => Err(Failure::input(anyhow::anyhow!(
            "name the database with --db URL (or DATABASE_URL / PGHOST and PGDATABASE)"
        ))),
    }
}

/// The scratch server the arguments ask for.
pub fn scratch_server(a: &ScratchArgs) -> Result<ScratchServer, Failure> {
    match &a.db {
        Some(url) => {
            let spec = ConnSpec::parse(url).map_err(Failure::input)?;
            ScratchServer::remote(&spec).map_err(Failure::environment)
        }
        None => ScratchServer::throwaway(a.pg_bin.as_deref()).map_err(Failure::environment),
    }
}
