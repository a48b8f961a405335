//! The guide's migration testing framework, on scratch databases: for each migration, on a
//! copy of the database holding every earlier one, run it forward (timed, lock-traced,
//! rewrites detected), verify integrity and the team's checks, roll it back (hand-written or
//! generated) and require the schema and the pre-existing data to be exactly as before, then
//! apply it again and require the same schema as the first time.

pub mod trace;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use migsafe_catalog::integrity;
use migsafe_catalog::{Fingerprint, Snapshot};
use migsafe_sql::lint::{LintOptions, Linter, SourceFile};
use migsafe_sql::LineIndex;

use crate::exec::{reset_session, run, run_plain, Prepared};
use crate::lint::RiskView;
use crate::report::{MigrationReport, Report, StepReport};
use crate::rollback::{self, capture, Replay, Step};
use crate::scratch::{ScratchDb, ScratchServer};
use crate::source::{Layout, Migration, MigrationSet, SqlText};
use crate::synth;
use crate::EngineError;
use trace::Tracer;

/// Options of a rehearsal.
#[derive(Debug, Clone, Default)]
pub struct RehearseOptions {
    /// First version to rehearse (earlier ones are only replayed).
    pub from: Option<String>,
    /// Last version to rehearse.
    pub to: Option<String>,
    /// Fill every table with this many synthetic rows before each migration.
    pub rows: Option<u64>,
    /// Restore this `pg_dump -Fc` into the base first.
    pub data: Option<PathBuf>,
    /// Command that must exit 0 with the migrated and with the rolled-back schema
    /// (`DATABASE_URL` points at the scratch database).
    pub check_cmd: Option<String>,
    /// Folder of SQL files that must return no rows.
    pub checks: Option<PathBuf>,
    /// Time budget of one forward migration (the guide: 30 s).
    pub budget: Duration,
}

/// Progress events for a progress bar.
pub trait Progress {
    /// `migration` (1-based of `total`) is at `step`.
    fn step(&self, migration: &str, index: usize, total: usize, step: &str);
}

/// No progress display.
pub struct Quiet;

impl Progress for Quiet {
    fn step(&self, _: &str, _: usize, _: usize, _: &str) {}
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn in_range(m: &Migration, opts: &RehearseOptions) -> (bool, bool) {
    let after_from =
        opts.from.as_deref().is_none_or(|f| crate::source::Version::parse(f).is_some_and(|v| m.version >= v));
    let before_to = opts.to.as_deref().is_none_or(|t| crate::source::Version::parse(t).is_some_and(|v| m.version <= v));
    (after_from, before_to)
}

/// Rehearse the migrations of `set` in range.
pub fn rehearse(
    set: &MigrationSet,
    server: &ScratchServer,
    opts: &RehearseOptions,
    progress: &dyn Progress,
) -> Result<Report, EngineError> {
    let t0 = Instant::now();
    let mut replay = Replay::new(server)?;
    if let Some(dump) = &opts.data {
        restore_dump(server, &replay, dump)?;
        replay.s0 = Snapshot::capture(&mut replay.connect()?)?;
    }
    let total = set.migrations.iter().filter(|m| in_range(m, opts) == (true, true)).count();
    let mut reports = Vec::new();
    let mut index = 0;
    let mut broken: Option<String> = None;
    for m in &set.migrations {
        let (after_from, before_to) = in_range(m, opts);
        if !before_to {
            break;
        }
        if let Some(why) = &broken {
            let mut r = MigrationReport::new(m.version.as_str(), &m.name);
            r.push(StepReport::fail("forward", 0.0, format!("not run: {why}")));
            reports.push(r);
            continue;
        }
        if !after_from {
            // Only replayed.
            let mut c = replay.connect()?;
            run_plain(&mut c, &Prepared::new(&m.forward)?)?;
            reset_session(&mut c)?;
            replay.s0 = Snapshot::capture(&mut c)?;
            continue;
        }
        index += 1;
        let id = m.id();
        progress.step(&id, index, total, "data");
        if let Some(rows) = opts.rows {
            let mut c = replay.connect()?;
            let s = replay.s0.clone();
            let rep = synth::fill(&mut c, &s, rows)?;
            let _ = rep;
        }
        let (report, next) = rehearse_one(set, m, &replay, opts, &id, index, total, progress)?;
        if let Some(s1) = next {
            replay.s0 = s1;
        } else {
            broken = Some(format!("{id} failed to apply, so later migrations cannot run"));
        }
        reports.push(report);
    }
    Ok(Report::new("rehearse", format!("PostgreSQL {}", server.major()), reports, ms(t0)))
}

fn restore_dump(server: &ScratchServer, replay: &Replay, dump: &Path) -> Result<(), EngineError> {
    let c = replay.connect()?;
    drop(c);
    let restore = migsafe_pg::binaries::client_program(
        "pg_restore",
        server.major(),
        &server.cluster().map(|c| vec![c.binaries().bin.clone()]).unwrap_or_default(),
    )?;
    let spec = replay_spec(server, replay)?;
    let (args, env) = spec.tool_args();
    let out = std::process::Command::new(restore)
        .args(&args)
        .args(["--no-owner", "--no-privileges", "--dbname", spec.dbname()])
        .arg(dump)
        .envs(env)
        .output()
        .map_err(|e| EngineError::Input(format!("{}: cannot run pg_restore: {e}", dump.display())))?;
    if !out.status.success() {
        return Err(EngineError::Input(format!(
            "{}: pg_restore failed: {}",
            dump.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn replay_spec(server: &ScratchServer, replay: &Replay) -> Result<migsafe_pg::ConnSpec, EngineError> {
    let mut c = replay.connect()?;
    let db: String = c.query_one("SELECT current_database()", &[])?.get(0);
    Ok(server.conn(&db))
}

/// Run the team's checks on `db`: SQL files that must return no rows, and a command.
fn user_checks(db: &ScratchDb, opts: &RehearseOptions, step: &str) -> Result<Option<StepReport>, EngineError> {
    if opts.checks.is_none() && opts.check_cmd.is_none() {
        return Ok(None);
    }
    let t = Instant::now();
    let mut failures = Vec::new();
    let mut ran = 0;
    if let Some(dir) = &opts.checks {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| EngineError::Input(format!("{}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .collect();
        files.sort();
        let mut c = db.connect()?;
        for f in files {
            let sql = crate::source::read_text(&f)?;
            let r = integrity::run_custom(&mut c, &f.display().to_string(), &sql);
            ran += 1;
            if !r.ok {
                failures.push(format!(
                    "{}: {}{}",
                    r.object,
                    r.detail,
                    if r.sample.is_empty() { String::new() } else { format!(" (e.g. {})", r.sample.join("; ")) }
                ));
            }
        }
    }
    if let Some(cmd) = &opts.check_cmd {
        ran += 1;
        let spec = &db.spec;
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("DATABASE_URL", spec.redacted().replace(":***", ""))
            .env("PGDATABASE", spec.dbname())
            .env("PGUSER", spec.user())
            .env("MIGSAFE_STEP", step)
            .output()
            .map_err(|e| EngineError::Input(format!("--check-cmd: cannot run `{cmd}`: {e}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            failures.push(format!("`{cmd}` exited with {}: {}", out.status, err.trim().lines().last().unwrap_or("")));
        }
    }
    Ok(Some(if failures.is_empty() {
        StepReport::pass(step, ms(t), format!("{ran} checks passed"))
    } else {
        StepReport::fail(step, ms(t), failures.join("\n"))
    }))
}

/// Statement label `line N: TAG`.
fn label(p: &Prepared) -> impl Fn(usize) -> String + '_ {
    let idx = LineIndex::new(&p.source);
    move |i| match p.statements.get(i) {
        Some(s) => format!("line {}: {}", idx.line_col(&p.source, s.span.start).line, s.tag),
        None => "commit".into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn rehearse_one<'s>(
    set: &MigrationSet,
    m: &Migration,
    replay: &Replay<'s>,
    opts: &RehearseOptions,
    id: &str,
    index: usize,
    total: usize,
    progress: &dyn Progress,
) -> Result<(MigrationReport, Option<Snapshot>), EngineError> {
    let mut rep = MigrationReport::new(m.version.as_str(), &m.name);
    let prepared = match Prepared::new(&m.forward) {
        Ok(p) => p,
        Err(e) => {
            rep.push(StepReport::fail("forward", 0.0, e.to_string()));
            return Ok((rep, None));
        }
    };
    let s0 = replay.s0.clone();
    // The migration runs forward on the base itself, which so becomes the next migration's
    // starting point; the rollback is tried on a copy of it. One connection per database:
    // fresh backends start with cold catalog caches.
    let base = replay.base();
    let mut c = base.connect()?;
    let f0 = Fingerprint::capture(&mut c, &s0)?;
    let table_rows = table_rows(&mut c)?;
    rep.risk = Some(risk(m, opts, table_rows));
    // The rollback to use decides the capture step: the set's own, or the generated one.
    let plan = capture::plan(m.version.as_str(), &prepared.statements, &s0);
    let capture_sql = match (&m.rollback, &m.capture) {
        (Some(_), Some(c)) => Some(c.text.clone()),
        (Some(_), None) => None,
        (None, _) => plan.capture_sql(&m.id()),
    };
    progress.step(id, index, total, "forward");
    let forward = forward_traced(base, &mut c, &prepared, capture_sql.as_deref(), &mut rep)?;
    let Some(forward_ms) = forward else {
        return Ok((rep, None));
    };
    reset_session(&mut c)?;
    let s1 = Snapshot::capture(&mut c)?;

    progress.step(id, index, total, "verify");
    rep.push(verify_step(&mut c, &s1)?);
    drop(c);
    if let Some(s) = user_checks(base, opts, "checks")? {
        rep.push(s);
    }
    // The base stays at S1 for the next migration, whatever the rollback does to `work`.
    let work = replay.work("rehearse")?;

    progress.step(id, index, total, "rollback");
    let (rollback_sql, source) = match &m.rollback {
        Some(r) => (r.clone(), "hand-written"),
        None => {
            let step = Step {
                m,
                prepared: &prepared,
                plan: &plan,
                s0: &s0,
                s1: &s1,
                transaction: set.layout != Layout::Dbmate,
            };
            let composed = rollback::compose(&step, &work)?;
            (
                SqlText {
                    path: PathBuf::from(format!("{} (generated rollback)", m.id())),
                    text: composed.render("rehearsal"),
                },
                "generated",
            )
        }
    };
    rep.rollback = Some(source.to_string());
    let t = Instant::now();
    let mut c = work.connect()?;
    let rolled_back = match Prepared::new(&rollback_sql).and_then(|p| run_plain(&mut c, &p)) {
        Ok(_) => {
            rep.push(StepReport::pass("rollback", ms(t), format!("{source} rollback ran")));
            true
        }
        Err(e) => {
            rep.push(StepReport::fail("rollback", ms(t), format!("{source} rollback failed: {e}")));
            false
        }
    };
    if rolled_back {
        let t = Instant::now();
        reset_session(&mut c)?;
        let sr = Snapshot::capture(&mut c)?;
        let d = sr.diff(&s0);
        let mut step = if d.differences.is_empty() {
            StepReport::pass("compare", ms(t), "schema after rollback equals the schema before the migration")
        } else {
            StepReport::fail(
                "compare",
                ms(t),
                format!("schema after rollback differs from before the migration:\n{}", d.summary().trim_end()),
            )
        };
        if !d.column_order.is_empty() && d.differences.is_empty() {
            step.warnings.push(d.summary().trim_end().to_string());
        }
        rep.push(step);
        let t = Instant::now();
        let fr = rollback::fingerprint_tables(&mut c, f0.tables.keys())?;
        let data = f0.compare(&fr);
        rep.push(if data.is_empty() {
            StepReport::pass("data", ms(t), format!("pre-existing rows of {} tables are identical", f0.tables.len()))
        } else {
            let lines: Vec<String> = data
                .iter()
                .map(|d| match (d.rows_before, d.rows_after) {
                    (Some(a), Some(b)) if a != b => format!("{}: {a} rows before, {b} after the rollback", d.table),
                    (_, None) => format!("{}: gone after the rollback", d.table),
                    _ => format!("{}: same number of rows, different contents", d.table),
                })
                .collect();
            StepReport::fail(
                "data",
                ms(t),
                format!("pre-existing data differs after the rollback:\n{}", lines.join("\n")),
            )
        });
        if let Some(s) = user_checks(&work, opts, "checks_after_rollback")? {
            rep.push(s);
        }
        progress.step(id, index, total, "reapply");
        // The step's time is the migration's own (capture and forward SQL), not the snapshot.
        let mut sql_ms = 0.0;
        let t = Instant::now();
        let again = (|| -> Result<Snapshot, EngineError> {
            if let Some(cap) = &capture_sql {
                run_plain(&mut c, &Prepared::from_text("capture.sql", cap)?)?;
            }
            run_plain(&mut c, &prepared)?;
            sql_ms = ms(t);
            reset_session(&mut c)?;
            Ok(Snapshot::capture(&mut c)?)
        })();
        rep.push(match again {
            Ok(s) => {
                let d = s.diff(&s1);
                if d.differences.is_empty() {
                    StepReport::pass(
                        "reapply",
                        sql_ms,
                        "applied again after the rollback: same schema as the first time",
                    )
                } else {
                    StepReport::fail(
                        "reapply",
                        sql_ms,
                        format!(
                            "applied again, but the schema differs from the first time:\n{}",
                            d.summary().trim_end()
                        ),
                    )
                }
            }
            Err(e) => StepReport::fail("reapply", ms(t), format!("does not apply again after the rollback: {e}")),
        });
    }
    // Performance.
    let budget_ms = opts.budget.as_secs_f64() * 1000.0;
    let mut slowest: Vec<(usize, String, f64)> = rep.statements.clone();
    slowest.sort_by(|a, b| b.2.total_cmp(&a.2));
    let top: Vec<String> = slowest.iter().take(3).map(|(l, t, ms)| format!("line {l} {t}: {ms:.0} ms")).collect();
    rep.push(if forward_ms <= budget_ms {
        StepReport::pass(
            "performance",
            forward_ms,
            format!("{forward_ms:.0} ms, within the {:.0} s budget", opts.budget.as_secs_f64()),
        )
    } else {
        StepReport::fail(
            "performance",
            forward_ms,
            format!(
                "{forward_ms:.0} ms, over the {:.0} s budget; slowest: {}",
                opts.budget.as_secs_f64(),
                top.join(", ")
            ),
        )
    });
    drop(c);
    drop(work);
    Ok((rep, Some(s1)))
}

/// Forward run with lock trace and rewrite detection. Returns its duration, or None when it
/// failed (the failure is recorded in the report).
fn forward_traced(
    db: &ScratchDb,
    c: &mut postgres::Client,
    prepared: &Prepared,
    capture_sql: Option<&str>,
    rep: &mut MigrationReport,
) -> Result<Option<f64>, EngineError> {
    if let Some(cap) = capture_sql {
        if let Err(e) = Prepared::from_text("capture.sql", cap).and_then(|p| run_plain(c, &p)) {
            rep.push(StepReport::fail("forward", 0.0, format!("the data capture step failed: {e}")));
            return Ok(None);
        }
    }
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[])?.get(0);
    let mut nodes = trace::relfilenodes(c);
    let tracer = Tracer::start(&db.spec, pid)?;
    std::thread::sleep(trace::POLL * 2);
    let labels = label(prepared);
    let existing: std::collections::HashSet<String> = nodes.values().map(|(n, _)| n.clone()).collect();
    let mut rewrites = Vec::new();
    let mut held: std::collections::BTreeMap<(String, String), (f64, usize)> = Default::default();
    let current = tracer.current.clone();
    let t = Instant::now();
    let result = run(c, prepared, &mut |client, i, took| {
        let started = tracer.elapsed_ms() - took.as_secs_f64() * 1000.0;
        for key in trace::own_locks(client) {
            held.entry(key).or_insert((started, i));
        }
        let after = trace::relfilenodes(client);
        rewrites.extend(trace::rewrites(&nodes, &after, &labels(i)));
        nodes = after;
        current.store(i + 1, std::sync::atomic::Ordering::Relaxed);
    });
    let took = ms(t);
    let commit_ms = tracer.elapsed_ms();
    std::thread::sleep(trace::POLL * 2);
    // Relations created by the migration are invisible to everyone else: only pre-existing ones matter.
    rep.locks = tracer.finish(&labels, &held, commit_ms, &|rel| existing.contains(rel));
    rep.rewrites = rewrites;
    match result {
        Ok(runs) => {
            rep.statements = runs.iter().map(|r| (r.line, r.tag.clone(), r.ms)).collect();
            rep.push(StepReport::pass("forward", took, format!("{} statements", runs.len())));
            Ok(Some(took))
        }
        Err(e) => {
            rep.push(StepReport::fail("forward", took, e.to_string()));
            Ok(None)
        }
    }
}

fn verify_step(c: &mut postgres::Client, s1: &Snapshot) -> Result<StepReport, EngineError> {
    let t = Instant::now();
    let results = integrity::run_all(c, s1)?;
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| {
            format!(
                "{} {}: {}{}",
                r.check,
                r.object,
                r.detail,
                if r.sample.is_empty() { String::new() } else { format!(" (e.g. {})", r.sample.join("; ")) }
            )
        })
        .collect();
    let warnings: Vec<String> =
        results.iter().filter(|r| r.ok && r.warning).map(|r| format!("{}: {}", r.object, r.detail)).collect();
    let mut step = if failed.is_empty() {
        StepReport::pass("verify", ms(t), format!("{} integrity checks passed", results.len()))
    } else {
        StepReport::fail("verify", ms(t), failed.join("\n"))
    };
    step.warnings = warnings;
    Ok(step)
}

fn table_rows(c: &mut postgres::Client) -> Result<Vec<(migsafe_sql::QualName, i64)>, EngineError> {
    let rows = c.query(
        "SELECT n.nspname::text, c.relname::text, c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.reltuples >= 0",
        &[],
    )?;
    Ok(rows
        .iter()
        .map(|r| (migsafe_sql::QualName::qualified(r.get::<_, String>(0), r.get::<_, String>(1)), r.get(2)))
        .collect())
}

fn risk(m: &Migration, opts: &RehearseOptions, rows: Vec<(migsafe_sql::QualName, i64)>) -> RiskView {
    let mut lo = LintOptions::default();
    // Real sizes only when the rehearsal has data at scale; empty tables say nothing about
    // production.
    if opts.rows.is_some() || opts.data.is_some() {
        lo.table_rows = rows.into_iter().collect();
    }
    let mut linter = Linter::new(lo);
    RiskView::from(&linter.lint(SourceFile { path: "", source: &m.forward.text }).risk)
}
