//! `migsafe backup`: verified, restore-tested backups; verify, list and prune them.

use clap::{Args, Subcommand};
use std::path::PathBuf;

use migsafe_engine::backup::{self, BackupOptions};
use migsafe_engine::config::parse_duration;

use super::common::{database, engine_failure};
use crate::render::{self, paint, style};
use crate::{CmdResult, Exit, Failure};

/// Arguments of `migsafe backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub action: Option<BackupAction>,
    /// Database URL (default: DATABASE_URL, PG* variables).
    #[arg(long)]
    pub db: Option<String>,
    /// Folder for dumps (default: [backup] dir, else ./backups).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Restore the dump into a scratch database and compare it with the source.
    #[arg(long)]
    pub restore_test: bool,
    /// After the backup, keep at most N backups (never deleting the newest verified one).
    #[arg(long)]
    pub keep: Option<usize>,
    /// After the backup, delete backups older than this (e.g. 30d).
    #[arg(long)]
    pub max_age: Option<String>,
    /// PostgreSQL binaries (pg_dump/pg_restore of the server's version, and the throwaway cluster).
    #[arg(long, env = "PG_BIN")]
    pub pg_bin: Option<PathBuf>,
}

/// Backup actions besides taking one.
#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Re-check a dump against its manifest (size, checksum, table of contents).
    Verify {
        /// The dump file.
        file: PathBuf,
    },
    /// List backups.
    List,
    /// Delete old backups (never the newest verified one).
    Prune,
    /// Drop the data migsafe apply captured in migsafe_backup before destructive migrations.
    PruneCaptures {
        /// Only captures older than this.
        #[arg(long, default_value = "7d")]
        older_than: String,
    },
}

fn dir(a: &BackupArgs) -> PathBuf {
    a.dir.clone().unwrap_or_else(|| PathBuf::from("backups"))
}

fn age(a: &BackupArgs) -> Result<Option<std::time::Duration>, Failure> {
    a.max_age.as_deref().map(parse_duration).transpose().map_err(|e| Failure::input(anyhow::anyhow!("--max-age: {e}")))
}

/// Run `migsafe backup …`.
pub fn run(a: BackupArgs) -> CmdResult {
    let tool_dirs: Vec<PathBuf> = a.pg_bin.iter().cloned().collect();
    match &a.action {
        Some(BackupAction::Verify { file }) => {
            let m =
                backup::verify_file(file, &tool_dirs).map_err(|e| Failure { exit: Exit::Findings, error: e.into() })?;
            render::emit(
                &format!(
                    "{} {}: {} bytes, sha256 matches, {} table-of-contents entries as recorded ({} from {})\n",
                    paint(style::OK, "✓"),
                    file.display(),
                    m.size,
                    m.toc_entries,
                    m.dbname,
                    m.created_utc
                ),
                None,
            )
            .map_err(Failure::environment)?;
            Ok(Exit::Ok)
        }
        Some(BackupAction::List) => {
            let mut s = String::new();
            for (p, m) in backup::list(&dir(&a)).map_err(engine_failure)? {
                s.push_str(&format!(
                    "{}  {}  {:>12} bytes  verified={} restore_tested={}\n",
                    m.created_utc,
                    p.display(),
                    m.size,
                    m.verified,
                    m.restore_tested
                ));
            }
            if s.is_empty() {
                s = format!("no backups in {}\n", dir(&a).display());
            }
            render::emit(&s, None).map_err(Failure::environment)?;
            Ok(Exit::Ok)
        }
        Some(BackupAction::Prune) => {
            let gone = backup::prune(&dir(&a), a.keep, age(&a)?).map_err(engine_failure)?;
            render::emit(&format!("deleted {} backups\n", gone.len()), None).map_err(Failure::environment)?;
            Ok(Exit::Ok)
        }
        Some(BackupAction::PruneCaptures { older_than }) => {
            let spec = database(a.db.as_deref())?;
            let age = parse_duration(older_than).map_err(|e| Failure::input(anyhow::anyhow!(e)))?;
            let gone = backup::prune_captures(&spec, age).map_err(engine_failure)?;
            render::emit(&format!("dropped {} capture tables: {}\n", gone.len(), gone.join(", ")), None)
                .map_err(Failure::environment)?;
            Ok(Exit::Ok)
        }
        None => {
            let spec = database(a.db.as_deref())?;
            let opts =
                BackupOptions { dir: dir(&a), restore_test: a.restore_test, tool_dirs, pg_bin: a.pg_bin.clone() };
            let r = backup::backup(&spec, &opts).map_err(engine_failure)?;
            let m = &r.manifest;
            let mut s = format!(
                "{} {} ({} bytes, sha256 {}…, {} TOC entries, {} tables)\n",
                paint(style::OK, "✓ backup"),
                r.path.display(),
                m.size,
                &m.sha256[..12],
                m.toc_entries,
                m.tables.len()
            );
            if m.restore_tested {
                if m.restore_differences.is_empty() {
                    s.push_str(
                        "  restore test: restored into a scratch database; schema and row counts match the source\n",
                    );
                } else {
                    s.push_str(&format!(
                        "  {} {}\n",
                        paint(style::ERROR, "restore test found differences:"),
                        m.restore_differences.join("\n  ")
                    ));
                }
            }
            s.push_str(&format!(
                "  PITR: wal_level={} archive_mode={} archive_command={}{}\n",
                r.pitr.wal_level,
                r.pitr.archive_mode,
                if r.pitr.archive_command.is_empty() { "(none)" } else { &r.pitr.archive_command },
                r.pitr.last_archived.as_deref().map(|l| format!(", last archived {l}")).unwrap_or_default()
            ));
            if let Some(adv) = &r.pitr.advice {
                s.push_str(&format!("  {} {adv}\n", paint(style::WARNING, "warning:")));
            }
            if a.keep.is_some() || a.max_age.is_some() {
                let gone = backup::prune(&dir(&a), a.keep, age(&a)?).map_err(engine_failure)?;
                s.push_str(&format!("  retention: deleted {} old backups\n", gone.len()));
            }
            render::emit(&s, None).map_err(Failure::environment)?;
            Ok(if m.restore_differences.is_empty() { Exit::Ok } else { Exit::Findings })
        }
    }
}
