//! `migsafe snapshot` and `migsafe diff`.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

use migsafe_engine::hazards;
use migsafe_engine::snapshot_source::SchemaSource;
use migsafe_pg::ConnSpec;

use super::common::engine_failure;
use crate::render;
use crate::{CmdResult, Exit, Failure};

/// Human or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Readable summary.
    Human,
    /// JSON.
    Json,
}

/// Arguments of `migsafe snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// A migration folder, a snapshot file or a connection string (default: --db, DATABASE_URL, PG*).
    pub source: Option<String>,
    /// Database to snapshot.
    #[arg(long)]
    pub db: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// PostgreSQL server binaries for the throwaway cluster.
    #[arg(long, env = "PG_BIN")]
    pub pg_bin: Option<PathBuf>,
}

/// Arguments of `migsafe diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The schema to start from: connection string, snapshot JSON file or migration folder.
    pub from: String,
    /// The schema to reach.
    pub to: String,
    /// Print the DDL that turns FROM into TO instead of the summary.
    #[arg(long)]
    pub sql: bool,
    /// Output format of the summary.
    #[arg(long, value_enum, default_value = "human")]
    pub format: Format,
    /// PostgreSQL server binaries for the throwaway cluster.
    #[arg(long, env = "PG_BIN")]
    pub pg_bin: Option<PathBuf>,
}

/// Run `migsafe snapshot`.
pub fn snapshot(args: SnapshotArgs) -> CmdResult {
    let source = match (&args.source, &args.db) {
        (Some(s), _) => SchemaSource::parse(s).map_err(engine_failure)?,
        (None, Some(db)) => SchemaSource::Database(Box::new(ConnSpec::parse(db).map_err(Failure::input)?)),
        (None, None) if ConnSpec::env_names_database() => {
            SchemaSource::Database(Box::new(ConnSpec::from_env().map_err(Failure::input)?))
        }
        (None, None) => {
            return Err(Failure::input(anyhow::anyhow!(
                "name what to snapshot: a migration folder, a snapshot file, --db URL, or DATABASE_URL"
            )))
        }
    };
    let snap = source.snapshot(args.pg_bin.as_deref()).map_err(engine_failure)?;
    let text = match args.format {
        Format::Json => {
            let mut t = snap.to_json();
            t.push('\n');
            t
        }
        Format::Human => {
            let mut t = String::new();
            for (k, n) in snap.counts() {
                t.push_str(&format!("{k:>12}: {n}\n"));
            }
            for (name, table) in &snap.tables {
                t.push_str(&format!("table {name} ({} columns)\n", table.columns.len()));
            }
            t
        }
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    Ok(Exit::Ok)
}

/// Run `migsafe diff`.
pub fn diff(args: DiffArgs) -> CmdResult {
    let from = SchemaSource::parse(&args.from).map_err(engine_failure)?;
    let to = SchemaSource::parse(&args.to).map_err(engine_failure)?;
    let a = from.snapshot(args.pg_bin.as_deref()).map_err(engine_failure)?;
    let b = to.snapshot(args.pg_bin.as_deref()).map_err(engine_failure)?;
    let d = a.diff(&b);
    let sql = d.to_sql();
    // Sizes only from a live database: a folder or a snapshot file says nothing about rows.
    let rows = match &from {
        SchemaSource::Database(spec) => {
            let mut c = spec.connect().map_err(|e| engine_failure(e.into()))?;
            migsafe_engine::lint::table_rows(&mut c).map_err(|e| engine_failure(e.into()))?
        }
        _ => Default::default(),
    };
    let hazards = hazards::find(&sql, &a, rows);
    let text = match (args.sql, args.format) {
        (_, Format::Json) => {
            let mut v = serde_json::to_value(&d).map_err(Failure::environment)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("sql".into(), serde_json::Value::String(sql));
                o.insert("hazards".into(), serde_json::to_value(&hazards).map_err(Failure::environment)?);
            }
            let mut t = serde_json::to_string_pretty(&v).map_err(Failure::environment)?;
            t.push('\n');
            t
        }
        (true, Format::Human) => hazards::annotate(&sql, &hazards),
        (false, Format::Human) if d.is_empty() => "the schemas are the same\n".to_string(),
        (false, Format::Human) => {
            let mut t = d.summary();
            if !hazards.is_empty() {
                t.push_str(&format!("\n{} hazards in the DDL (`--sql` marks each statement):\n", hazards.len()));
                for h in &hazards {
                    t.push_str(&format!("  {} ({}): {}\n", h.hazard.id(), h.rule, h.sql));
                }
            }
            t
        }
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    Ok(if d.is_empty() { Exit::Ok } else { Exit::Findings })
}
