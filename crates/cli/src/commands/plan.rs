//! `migsafe plan`: the guide's pre-migration checklist, filled in.

use clap::Args;
use std::path::PathBuf;

use migsafe_engine::apply;
use migsafe_engine::apply::plan::PlanStatus;

use super::apply::Format;
use super::common::{database, engine_failure, load_set};
use crate::render::{self, paint, style};
use crate::{CmdResult, Exit, Failure};

/// Arguments of `migsafe plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Migration folder (default: current folder).
    pub dir: Option<PathBuf>,
    /// Database URL (default: DATABASE_URL, PG* variables).
    #[arg(long)]
    pub db: Option<String>,
    /// A rehearsal report (`migsafe rehearse --report r.json`) to take evidence from.
    #[arg(long)]
    pub rehearsal: Option<PathBuf>,
    /// Folder of backups (default: [backup] dir, else ./backups).
    #[arg(long)]
    pub backup_dir: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
}

/// Run `migsafe plan`.
pub fn run(a: PlanArgs) -> CmdResult {
    let set = load_set(a.dir.as_deref())?;
    let spec = database(a.db.as_deref())?;
    let rehearsal = a
        .rehearsal
        .as_ref()
        .map(|p| -> Result<migsafe_engine::report::Report, Failure> {
            let text = std::fs::read_to_string(p).map_err(Failure::input)?;
            serde_json::from_str(&text)
                .map_err(|e| Failure::input(anyhow::anyhow!("{}: not a rehearsal JSON report: {e}", p.display())))
        })
        .transpose()?;
    let dir = a.backup_dir.clone().or(set.config.backup.dir.clone()).unwrap_or_else(|| PathBuf::from("backups"));
    let p = apply::plan::plan(&set, &spec, rehearsal.as_ref(), &dir).map_err(engine_failure)?;
    let text = match a.format {
        Format::Json => render::json(&p),
        Format::Markdown => {
            let mut s = format!(
                "## Pre-migration checklist\n\nPending: {}\n\n",
                if p.pending.is_empty() { "none".into() } else { p.pending.join(", ") }
            );
            for i in &p.items {
                let mark = match i.status {
                    PlanStatus::Met => "- [x]",
                    PlanStatus::Unmet => "- [ ] ❌",
                    PlanStatus::Human => "- [ ] 👤",
                };
                s.push_str(&format!("{mark} **{}** — {}\n", i.item, i.detail));
            }
            s
        }
        Format::Human => {
            let mut s = String::new();
            for i in &p.items {
                let mark = match i.status {
                    PlanStatus::Met => paint(style::OK, "[x]"),
                    PlanStatus::Unmet => paint(style::ERROR, "[!]"),
                    PlanStatus::Human => "[ ]".into(),
                };
                s.push_str(&format!("{mark} {} — {}\n", i.item, i.detail));
            }
            s.push_str(&format!("{} items unmet\n", p.unmet().len()));
            s
        }
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    Ok(if p.unmet().is_empty() { Exit::Ok } else { Exit::Findings })
}
