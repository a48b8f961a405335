//! `migsafe adopt`: import another tool's history so nothing runs twice.

use clap::Args;
use std::path::PathBuf;

use migsafe_engine::apply::history;

use super::common::{database, engine_failure, load_set};
use crate::render;
use crate::{CmdResult, Exit, Failure};

/// Arguments of `migsafe adopt`.
#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// Migration folder (default: current folder).
    pub dir: Option<PathBuf>,
    /// Database URL (default: DATABASE_URL, PG* variables).
    #[arg(long)]
    pub db: Option<String>,
}

/// Run `migsafe adopt`: import another tool's history.
pub fn run(a: AdoptArgs) -> CmdResult {
    let set = load_set(a.dir.as_deref())?;
    let spec = database(a.db.as_deref())?;
    let mut c = spec.connect().map_err(Failure::environment)?;
    let (n, tool) = history::import(&mut c, &set).map_err(engine_failure)?;
    render::emit(&format!("imported {n} applied migrations from {tool} into migsafe.history\n"), None)
        .map_err(Failure::environment)?;
    Ok(Exit::Ok)
}
