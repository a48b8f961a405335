//! `migsafe status`: applied, pending, failed, rolled back, drifted and missing migrations.

use clap::Args;
use std::path::PathBuf;

use migsafe_engine::apply::history;

use super::apply::Format;
use super::common::{database, engine_failure, load_set};
use crate::render::{self, paint, style};
use crate::{CmdResult, Exit, Failure};

/// Arguments of `migsafe status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Migration folder (default: current folder).
    pub dir: Option<PathBuf>,
    /// Database URL (default: DATABASE_URL, PG* variables).
    #[arg(long)]
    pub db: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

/// Run `migsafe status`.
pub fn run(a: StatusArgs) -> CmdResult {
    let set = load_set(a.dir.as_deref())?;
    let spec = database(a.db.as_deref())?;
    let mut c = spec.connect().map_err(Failure::environment)?;
    let rows = history::latest(&mut c).map_err(engine_failure)?;
    let lines = history::status(&set, &rows);
    let text = match a.format {
        Format::Json => render::json(&serde_json::json!({ "migrations": lines })),
        _ => {
            let mut s = String::new();
            for l in &lines {
                let st =
                    serde_json::to_value(l.state).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
                let styled = match l.state {
                    history::State::Applied => paint(style::OK, &st),
                    history::State::Pending => paint(style::DIM, &st),
                    _ => paint(style::ERROR, &st),
                };
                s.push_str(&format!("{:<12} {}_{}  {}\n", styled, l.version, l.name, l.detail));
            }
            s
        }
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    let bad = lines.iter().any(|l| {
        matches!(
            l.state,
            history::State::Drifted | history::State::Failed | history::State::Running | history::State::Missing
        )
    });
    Ok(if bad { Exit::Findings } else { Exit::Ok })
}
