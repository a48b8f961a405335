//! `migsafe rollback generate` and `migsafe rollback check`.

use clap::{Args, Subcommand};
use std::path::PathBuf;

use migsafe_engine::rollback::{self, GenerateOptions};
use migsafe_engine::MigrationSet;

use super::common::{engine_failure, load_set, scratch_server, ScratchArgs};
use super::schema::Format;
use crate::render;
use crate::{CmdResult, Exit, Failure};

/// `migsafe rollback …`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RollbackArgs {
    #[command(subcommand)]
    pub action: Option<RollbackAction>,
    /// Migration folder (default: current folder), when rolling back a database.
    pub dir: Option<PathBuf>,
    #[command(flatten)]
    pub db: DbRollbackArgs,
}

/// Rollback actions.
#[derive(Debug, Subcommand)]
pub enum RollbackAction {
    /// Write a rollback for each migration that has none, and prove it on a scratch database.
    Generate(GenerateArgs),
    /// Prove the existing (hand-written) rollbacks restore the schema exactly.
    Check(CheckArgs),
}

/// Arguments of `rollback generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Migration folder (default: current folder).
    pub dir: Option<PathBuf>,
    /// Only these versions (repeatable).
    #[arg(long = "version", value_name = "V")]
    pub versions: Vec<String>,
    /// Replace rollbacks that already exist.
    #[arg(long)]
    pub force: bool,
    /// Print the rollbacks instead of writing them.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub scratch: ScratchArgs,
}

/// Arguments of `rollback check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Migration folder (default: current folder).
    pub dir: Option<PathBuf>,
    /// Only these versions (repeatable).
    #[arg(long = "version", value_name = "V")]
    pub versions: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    #[command(flatten)]
    pub scratch: ScratchArgs,
}

/// Run `migsafe rollback …`.
pub fn run(args: RollbackArgs) -> CmdResult {
    match args.action {
        Some(RollbackAction::Generate(a)) => generate(a),
        Some(RollbackAction::Check(a)) => check(a),
        None => rollback_db(args.dir.as_deref(), args.db),
    }
}

fn generate(a: GenerateArgs) -> CmdResult {
    let set: MigrationSet = load_set(a.dir.as_deref())?;
    let server = scratch_server(&a.scratch)?;
    let opts = GenerateOptions { versions: a.versions.clone(), force: a.force, write: !a.dry_run };
    let results = rollback::generate(&set, &server, &opts).map_err(engine_failure)?;
    let mut out = String::new();
    if results.is_empty() {
        out.push_str("every migration already has a rollback (use --force to regenerate)\n");
    }
    for g in &results {
        let id = format!("{}_{}", g.version, g.name);
        if a.dry_run {
            out.push_str(&format!("==> rollback for {id}\n{}\n", g.script));
            if let Some(c) = &g.capture {
                out.push_str(&format!("==> capture step for {id}\n{c}\n"));
            }
        }
        let mark =
            if g.ok() { render::paint(render::style::OK, "✓") } else { render::paint(render::style::ERROR, "✗") };
        let place = g.written.as_ref().map(|p| format!(" → {}", p.display())).unwrap_or_default();
        let verdict =
            if g.proven { "proven: the schema after it equals the schema before the migration" } else { "NOT proven" };
        out.push_str(&format!("{mark} {id}{place}\n   {verdict} ({:.0} ms)\n", g.proof_ms));
        if g.capture.is_some() {
            out.push_str("   changes data: a capture step records it first (run it before the migration), and the rollback undoes the change from it\n");
        }
        for o in &g.column_order {
            out.push_str(&format!("   note: column order after rollback: {o}\n"));
        }
        for d in &g.data_differences {
            out.push_str(&format!("   {} {d}\n", render::paint(render::style::ERROR, "data not restored:")));
        }
        for m in &g.manual {
            out.push_str(&format!(
                "   {} {}\n",
                render::paint(render::style::ERROR, "MANUAL:"),
                m.replace("\n--   ", "\n     ")
            ));
        }
    }
    let bad = results.iter().filter(|g| !g.ok()).count();
    if !results.is_empty() {
        out.push_str(&format!(
            "{} rollbacks generated, {} proven, {} need a human\n",
            results.len(),
            results.len() - bad,
            bad
        ));
    }
    render::emit(&out, None).map_err(Failure::environment)?;
    Ok(if bad > 0 { Exit::Findings } else { Exit::Ok })
}

fn check(a: CheckArgs) -> CmdResult {
    let set = load_set(a.dir.as_deref())?;
    let server = scratch_server(&a.scratch)?;
    let reports = rollback::check(&set, &server, &a.versions).map_err(engine_failure)?;
    let report = migsafe_engine::report::Report::new("rollback check", server_version(&server), reports, 0.0);
    let text = match a.format {
        Format::Json => render::json(&report),
        Format::Human => render::report_human(&report),
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    Ok(if report.ok { Exit::Ok } else { Exit::Findings })
}

/// `PostgreSQL 15` for reports.
pub fn server_version(server: &migsafe_engine::scratch::ScratchServer) -> String {
    format!("PostgreSQL {}", server.major())
}

/// Arguments of `migsafe rollback` against a database.
#[derive(Debug, Args, Clone)]
pub struct DbRollbackArgs {
    #[command(flatten)]
    pub safety: super::apply::SafetyArgs,
    /// Roll back this many applied migrations (default 1).
    #[arg(long, conflicts_with = "to")]
    pub steps: Option<usize>,
    /// Roll back every migration newer than this version.
    #[arg(long)]
    pub to: Option<String>,
}

/// Run `migsafe rollback --db …`.
fn rollback_db(dir: Option<&std::path::Path>, a: DbRollbackArgs) -> CmdResult {
    let set = load_set(dir)?;
    let spec = super::common::database(a.safety.db.as_deref())?;
    let opts = migsafe_engine::apply::ApplyOptions {
        dry_run: a.safety.dry_run,
        run: super::apply::run_settings(&a.safety, &set)?,
        wait: a.safety.wait.as_deref().map(|w| super::apply::dur("--wait", w)).transpose()?,
        cancel: super::apply::ctrl_c(),
        ..migsafe_engine::apply::ApplyOptions::default()
    };
    let r = migsafe_engine::apply::rollback(&set, &spec, a.steps, a.to.as_deref(), &opts).map_err(engine_failure)?;
    super::apply::emit_report(&r, a.safety.format)
}
