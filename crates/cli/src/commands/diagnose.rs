//! `migsafe diagnose`: after a failed or interrupted migration, what is there and how to go on.

use clap::Args;
use std::path::PathBuf;

use migsafe_engine::apply;

use super::apply::Format;
use super::common::{database, engine_failure, load_set};
use crate::render::{self, paint, style};
use crate::{CmdResult, Exit, Failure};

/// Arguments of `migsafe diagnose`.
#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Migration folder (default: current folder).
    pub dir: Option<PathBuf>,
    /// Database URL (default: DATABASE_URL, PG* variables).
    #[arg(long)]
    pub db: Option<String>,
    /// Write the custom rollback for the current state to this file.
    #[arg(long)]
    pub write: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// PostgreSQL server binaries (to build the expected schema on a throwaway cluster).
    #[arg(long, env = "PG_BIN")]
    pub pg_bin: Option<PathBuf>,
}

/// Run `migsafe diagnose`.
pub fn run(a: DiagnoseArgs) -> CmdResult {
    let set = load_set(a.dir.as_deref())?;
    let spec = database(a.db.as_deref())?;
    let ds = apply::diagnose::diagnose(&set, &spec, a.pg_bin.as_deref()).map_err(engine_failure)?;
    if let Some(path) = &a.write {
        let sql: String = ds
            .iter()
            .map(|d| {
                format!("-- custom rollback for {}_{} (state at diagnosis)\n{}", d.version, d.name, d.custom_rollback)
            })
            .collect();
        std::fs::write(path, sql).map_err(Failure::environment)?;
    }
    let text = match a.format {
        Format::Json => render::json(&ds),
        _ => {
            let mut s = String::new();
            if ds.is_empty() {
                s.push_str("no failed or interrupted migrations\n");
            }
            for d in &ds {
                s.push_str(&format!(
                    "{} {}_{} ({}, {})\n",
                    paint(style::BOLD, "migration"),
                    d.version,
                    d.name,
                    d.status,
                    d.tx_mode
                ));
                if let Some(e) = &d.error {
                    s.push_str(&format!("  error: {e}\n"));
                }
                s.push_str(&format!("  applied ({}): {}\n", d.applied.len(), d.applied.join(", ")));
                s.push_str(&format!("  not applied ({}): {}\n", d.not_applied.len(), d.not_applied.join(", ")));
                s.push_str(&format!(
                    "  changed since before it:\n    {}\n",
                    d.changed_since_before.trim_end().replace('\n', "\n    ")
                ));
                if let Some(m) = &d.missing_vs_expected {
                    s.push_str(&format!(
                        "  still missing compared with the finished migration:\n    {}\n",
                        m.trim_end().replace('\n', "\n    ")
                    ));
                }
                s.push_str(&format!(
                    "  custom rollback for this exact state:\n    {}\n",
                    d.custom_rollback.trim_end().replace('\n', "\n    ")
                ));
                for n in &d.next {
                    s.push_str(&format!("  next: {n}\n"));
                }
            }
            s
        }
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    Ok(if ds.is_empty() { Exit::Ok } else { Exit::Findings })
}
