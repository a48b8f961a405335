//! The `migsafe` command line: argument parsing, dispatch and exit codes. Every command's
//! logic lives in the library crates; this binary only parses and prints.

mod commands;
mod exit;
mod render;

pub use exit::{CmdResult, Exit, Failure};

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "migsafe",
    version,
    about = "Make PostgreSQL schema migrations safe to run in production",
    long_about = "migsafe lints migration SQL with PostgreSQL's own grammar, generates and proves rollbacks, \
                  rehearses migrations on a throwaway database, verifies data integrity, backs up, and applies \
                  migrations with lock timeouts, advisory locks and automatic rollback."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lint migration SQL: what is unsafe on a live database, why, and the safe way to do it.
    Lint(commands::lint::LintArgs),
    /// List every lint rule with its id, severity and what it catches.
    Rules,
    /// Print the catalog snapshot of a database, a migration folder or a snapshot file.
    Snapshot(commands::schema::SnapshotArgs),
    /// Rehearse migrations on a throwaway database: forward, verify, roll back, compare, apply again.
    Rehearse(commands::rehearse::RehearseArgs),
    /// Data-integrity checks: orphans, NOT VALID constraints, invalid indexes, sequences, baselines.
    Verify(commands::verify::VerifyArgs),
    /// Take a verified (and optionally restore-tested) backup; verify, list and prune backups.
    Backup(commands::backup::BackupArgs),
    /// Apply pending migrations with the safety procedure: preflight, lock, timeouts, verify, decision tree.
    Apply(Box<commands::apply::ApplyArgs>),
    /// Roll back applied migrations (`--db`), or generate / check rollback files.
    Rollback(commands::rollback::RollbackArgs),
    /// Applied, pending, failed, rolled back, drifted and missing migrations.
    Status(commands::status::StatusArgs),
    /// After a failed or interrupted migration: what is there, what is missing, how to go on.
    Diagnose(commands::diagnose::DiagnoseArgs),
    /// The guide's pre-migration checklist, filled in.
    Plan(commands::plan::PlanArgs),
    /// Import the history of golang-migrate, dbmate, Flyway, sqlx, Diesel or Prisma, so nothing runs twice.
    Adopt(commands::adopt::AdoptArgs),
    /// Batched, resumable, throttled background data migration (UPDATE in key order).
    Backfill(commands::ops::BackfillArgs),
    /// Connections, long-running queries, who blocks whom, largest tables; --watch refreshes.
    Monitor(commands::ops::MonitorArgs),
    /// The safety procedure across many databases or tenant schemas: survey, canary, waves, ledger.
    #[command(subcommand)]
    Fleet(Box<commands::fleet::FleetCommand>),
    /// Compare two schemas (databases, snapshot files, migration folders or schema SQL); `--sql` prints the DDL.
    Diff(commands::schema::DiffArgs),
    /// Write the next migration of a set from the schema as it should be (`--schema schema.sql`), with its rollback proven.
    New(commands::schema::NewArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Lint(args) => commands::lint::run(args),
        Command::Rules => commands::lint::rules(),
        Command::Snapshot(args) => commands::schema::snapshot(args),
        Command::Diff(args) => commands::schema::diff(args),
        Command::New(args) => commands::schema::new(args),
        Command::Rollback(args) => commands::rollback::run(args),
        Command::Apply(args) => commands::apply::run(*args),
        Command::Fleet(c) => commands::fleet::run(*c),
        Command::Status(args) => commands::status::run(args),
        Command::Diagnose(args) => commands::diagnose::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Adopt(args) => commands::adopt::run(args),
        Command::Backfill(args) => commands::ops::backfill(args),
        Command::Monitor(args) => commands::ops::monitor(args),
        Command::Rehearse(args) => commands::rehearse::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Backup(args) => commands::backup::run(args),
    };
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(f) => {
            render::print_error(&f.error);
            ExitCode::from(f.exit as u8)
        }
    }
}
