//! `migsafe rehearse`: the migration testing framework on scratch databases.

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

use migsafe_engine::config::parse_duration;
use migsafe_engine::rehearse::{self, Progress, RehearseOptions};
use migsafe_engine::report::Report;

use super::common::{engine_failure, load_set, scratch_server, ScratchArgs};
use crate::render;
use crate::{CmdResult, Exit, Failure};

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Steps per migration on the terminal.
    Human,
    /// The documented JSON report.
    Json,
    /// Markdown for a pull-request comment.
    Markdown,
    /// JUnit XML.
    Junit,
    /// One self-contained HTML page with lock timelines.
    Html,
}

/// Arguments of `migsafe rehearse`.
#[derive(Debug, Args)]
pub struct RehearseArgs {
    /// Migration folder (default: current folder).
    pub dir: Option<PathBuf>,
    /// First version to rehearse (earlier ones are replayed only).
    #[arg(long)]
    pub from: Option<String>,
    /// Last version to rehearse.
    #[arg(long)]
    pub to: Option<String>,
    /// Fill every table with N synthetic rows before each migration.
    #[arg(long, conflicts_with = "data")]
    pub rows: Option<u64>,
    /// Restore this pg_dump -Fc into the scratch database first.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Command that must exit 0 with the new schema and after the rollback ("the application works");
    /// DATABASE_URL points at the scratch database.
    #[arg(long)]
    pub check_cmd: Option<String>,
    /// Folder of SQL files that must return no rows.
    #[arg(long)]
    pub checks: Option<PathBuf>,
    /// Time budget of one migration (default 30s, or [rehearse] budget).
    #[arg(long)]
    pub budget: Option<String>,
    /// Write the report to this file (format from --format, else from the extension).
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
    #[command(flatten)]
    pub scratch: ScratchArgs,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn step(&self, migration: &str, index: usize, total: usize, step: &str) {
        self.0.set_length(total as u64);
        self.0.set_position(index.saturating_sub(1) as u64);
        self.0.set_message(format!("{migration}: {step}"));
    }
}

fn format_for(path: &std::path::Path) -> ReportFormat {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") | Some("htm") => ReportFormat::Html,
        Some("json") => ReportFormat::Json,
        Some("md") => ReportFormat::Markdown,
        Some("xml") => ReportFormat::Junit,
        _ => ReportFormat::Human,
    }
}

/// Render a rehearsal report.
pub fn render_report(r: &Report, f: ReportFormat) -> String {
    match f {
        ReportFormat::Human => render::report_human(r),
        ReportFormat::Json => render::json(r),
        ReportFormat::Markdown => render::report_markdown(r),
        ReportFormat::Junit => render::report_junit(r),
        ReportFormat::Html => render::report_html(r),
    }
}

/// Run `migsafe rehearse`.
pub fn run(a: RehearseArgs) -> CmdResult {
    let set = load_set(a.dir.as_deref())?;
    let cfg = set.config.rehearse.clone();
    let budget_text = a.budget.clone().or(cfg.budget.clone()).unwrap_or_else(|| "30s".into());
    let budget = parse_duration(&budget_text).map_err(|e| Failure::input(anyhow::anyhow!("--budget: {e}")))?;
    let opts = RehearseOptions {
        from: a.from.clone(),
        to: a.to.clone(),
        rows: a.rows.or(cfg.rows),
        data: a.data.clone(),
        check_cmd: a.check_cmd.clone().or(cfg.check_cmd.clone()),
        checks: a.checks.clone().or(cfg.checks.clone().map(|c| set.dir.join(c))),
        budget,
        base: None,
    };
    let server = scratch_server(&a.scratch)?;
    let bar = ProgressBar::new(0);
    if std::io::stderr().is_terminal() {
        bar.set_style(
            ProgressStyle::with_template("{spinner} rehearsing [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let report = rehearse::rehearse(&set, &server, &opts, &Bar(bar.clone())).map_err(engine_failure)?;
    bar.finish_and_clear();
    let stdout_format = a.format.filter(|_| a.report.is_none()).unwrap_or(ReportFormat::Human);
    if let Some(path) = &a.report {
        let f = a.format.unwrap_or_else(|| format_for(path));
        render::emit(&render_report(&report, f), Some(path)).map_err(Failure::environment)?;
    }
    let mut text = render_report(&report, stdout_format);
    if let Some(path) = &a.report {
        if stdout_format == ReportFormat::Human {
            text.push_str(&format!("report written to {}\n", path.display()));
        }
    }
    render::emit(&text, None).map_err(Failure::environment)?;
    Ok(if report.ok { Exit::Ok } else { Exit::Findings })
}
