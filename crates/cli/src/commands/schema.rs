//! `migsafe snapshot`, `migsafe diff` and `migsafe new`.

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
                    t.push_str(&format!("  {}\n", h.summary()));
                }
            }
            t
        }
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    Ok(if d.is_empty() { Exit::Ok } else { Exit::Findings })
}

/// Arguments of `migsafe new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// What the migration does, as its name (`add user emails` → `…_add_user_emails`).
    pub name: String,
    /// The migration folder (created when missing).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The schema as it should be: a `.sql` file, or a folder of them run in name order.
    #[arg(long)]
    pub schema: PathBuf,
    /// Write the migration only: no rollback generated and proven.
    #[arg(long)]
    pub no_rollback: bool,
    #[command(flatten)]
    pub scratch: super::common::ScratchArgs,
}

/// Run `migsafe new`: write the next migration, which takes the set's schema to the desired
/// one, lint it, and generate and prove its rollback.
pub fn new(args: NewArgs) -> CmdResult {
    use migsafe_engine::desired;
    use migsafe_engine::source::{Layout, MigrationSet, SourceError};
    let files = desired::schema_files(&args.schema).map_err(engine_failure)?;
    // A folder that does not exist yet, or holds no migration: the set starts here.
    let set = match MigrationSet::load(&args.dir) {
        _ if !args.dir.exists() => None,
        Ok(set) => Some(set),
        Err(SourceError::Empty { .. }) => None,
        Err(e) => return Err(Failure::input(e)),
    };
    let server = super::common::scratch_server(&args.scratch)?;
    let current = desired::set_schema(&server, set.as_ref()).map_err(engine_failure)?;
    let wanted = desired::load_schema(&server, &files).map_err(engine_failure)?;
    let layout = set.as_ref().map_or(Layout::Native, |s| s.layout);
    let last = set.as_ref().and_then(|s| s.migrations.last()).map(|m| &m.version);
    let source = args.schema.display().to_string();
    let Some(written) =
        desired::write_new(&args.dir, layout, last, &args.name, &current, &wanted, &source).map_err(engine_failure)?
    else {
        render::emit(
            &format!(
                "the migrations in {} already build the schema in {source}: nothing to write\n",
                args.dir.display()
            ),
            None,
        )
        .map_err(Failure::environment)?;
        return Ok(Exit::Ok);
    };
    let mut out = format!(
        "wrote {} ({} statements, {} hazards marked)\n",
        written.path.display(),
        written.statements,
        written.hazards.len()
    );
    for h in &written.hazards {
        out.push_str(&format!("  hazard: {}\n", h.summary()));
    }
    // Lint and rollback as for any migration of the set, now that it is one.
    let set = MigrationSet::load(&args.dir).map_err(Failure::input)?;
    let mut risk = None;
    migsafe_engine::lint::lint_set(&set, &Default::default(), &mut |m, l| {
        if m.version.as_str() == written.version {
            risk = Some((l.risk.level, l.findings.len()));
        }
    });
    if let Some((level, findings)) = risk {
        out.push_str(&format!("  lint: {findings} findings, risk {level} (`migsafe lint` for each)\n"));
    }
    let mut exit = Exit::Ok;
    if !args.no_rollback {
        let opts = migsafe_engine::rollback::GenerateOptions {
            versions: vec![written.version.clone()],
            force: false,
            write: true,
        };
        let results = migsafe_engine::rollback::generate(&set, &server, &opts).map_err(engine_failure)?;
        for g in &results {
            let place = g.written.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
            if g.ok() {
                out.push_str(&format!(
                    "  rollback {place}: proven (the schema after it equals the set's schema before)\n"
                ));
            } else {
                exit = Exit::Findings;
                out.push_str(&format!(
                    "  rollback {place}: NOT proven{}\n",
                    if g.remaining.is_empty() { String::new() } else { format!(":\n{}", g.remaining) }
                ));
                for m in &g.manual {
                    out.push_str(&format!("  MANUAL: {m}\n"));
                }
            }
        }
    }
    render::emit(&out, None).map_err(Failure::environment)?;
    Ok(exit)
}
