//! The guide's migration testing framework, on scratch databases: for each migration, on the
//! database holding every earlier one, run it forward (timed, lock-traced, rewrites
//! detected), verify integrity and the team's checks, roll it back (hand-written or
//! generated) and require the schema and the pre-existing data to be exactly as before, then
//! apply it again and require the same schema as the first time.
//!
//! All of it runs on one base database through one kept session (new backends start with
//! cold catalog caches, and copying a database costs more than most migrations). When a
//! migration's rollback or re-apply does not give back exactly what it should, the base is
//! restored from the last checkpoint (a copy taken every few migrations) and the migrations
//! since are applied again forward only, so a sloppy rollback never spoils the rehearsal of
//! the migrations after it.

mod checks;
mod forward;
mod model_check;
pub mod trace;

use checks::{user_checks, verify_step, Carried, KnownFaults};
use forward::forward_traced;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use migsafe_catalog::{Fingerprint, QName, Snapshot};

use crate::capture;
use crate::exec::{reset_session, run_captured, run_plain, Prepared};
use crate::lint::{RiskView, SetLinter};
use crate::replay::Replay;
use crate::report::{MigrationReport, Report, StepReport};
use crate::rollback::{self, Step};
use crate::scratch::{ScratchDb, ScratchServer};
use crate::source::{Layout, Migration, MigrationSet, SqlText};
use crate::synth;
use crate::EngineError;

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
    /// Start from this schema (a fleet group's snapshot, created by the diff's DDL) instead of
    /// replaying the migrations before `from`, which it already holds.
    pub base: Option<Snapshot>,
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
    let mut replay = Replay::new(server, set)?;
    if let Some(schema) = &opts.base {
        let ddl = replay.s0.diff(schema).to_sql();
        let mut c = replay.connect()?;
        c.batch_execute(&ddl).map_err(|e| {
            EngineError::Refused(format!(
                "the schema to rehearse on could not be created: {}",
                migsafe_pg::db_message(&e)
            ))
        })?;
        replay.s0 = Snapshot::capture(&mut c)?;
    }
    if let Some(dump) = &opts.data {
        restore_dump(server, &replay, dump)?;
        replay.s0 = Snapshot::capture(&mut replay.connect()?)?;
    }
    let total = set.migrations.iter().filter(|m| in_range(m, opts) == (true, true)).count();
    let mut reports = Vec::new();
    let mut index = 0;
    let mut broken: Option<String> = None;
    // The same sessions on the base for the whole rehearsal (closed only when the base is
    // copied): new backends start with cold catalog caches.
    let mut conn: Option<Kept> = None;
    let mut checkpoint: Option<Checkpoint> = None;
    // Set when migrations were replayed forward only since `replay.s0` was read: it is read
    // again once, when next needed, not after each of them.
    let mut stale = false;
    // Lint as for this server: its version, and the TimeZone the migrations' sessions start in.
    let lint_opts = crate::lint::server_options(session(&mut conn, &replay)?)?;
    let mut carried = Carried { known: KnownFaults::new(), linter: SetLinter::new(&lint_opts) };
    for (pos, m) in set.migrations.iter().enumerate() {
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
            // Only replayed (and linted, so the migrations rehearsed see what it created); a
            // base built from a schema already holds it.
            carried.linter.lint(m);
            if opts.base.is_none() {
                replay_forward(session(&mut conn, &replay)?, m)?;
                stale = true;
            }
            continue;
        }
        index += 1;
        let id = m.id();
        refresh(&mut stale, &mut conn, &mut replay)?;
        if checkpoint.as_ref().is_none_or(|k| pos - k.next >= CHECKPOINT_EVERY) {
            conn = None;
            checkpoint = Some(Checkpoint { db: replay.work("checkpoint")?, s0: replay.s0.clone(), next: pos });
        }
        progress.step(&id, index, total, "data");
        fill(&mut conn, &replay, opts)?;
        let (mut report, outcome) =
            rehearse_one(set, m, &mut replay, &mut conn, opts, &At { id: &id, index, total, progress }, &mut carried)?;
        match outcome {
            Outcome::Clean(s1) => replay.s0 = *s1,
            Outcome::Broken => broken = Some(format!("{id} failed to apply, so later migrations cannot run")),
            Outcome::Dirty => {
                // The rollback left the base in a state nobody vouches for: start again from
                // the checkpoint and apply the migrations since, forward only.
                conn = None;
                let k = checkpoint.as_ref().expect("a checkpoint precedes every rehearsed migration");
                replay.set_base(k.db.clone_db("base")?, k.s0.clone());
                for m2 in &set.migrations[k.next..=pos] {
                    if opts.rows.is_some() {
                        refresh(&mut stale, &mut conn, &mut replay)?;
                    }
                    fill(&mut conn, &replay, opts)?;
                    match replay_forward(session(&mut conn, &replay)?, m2) {
                        Ok(()) => stale = true,
                        Err(e) => {
                            broken = Some(format!(
                                "{} did not apply again while restoring the database after {id}'s rollback: {e}",
                                m2.id()
                            ));
                            break;
                        }
                    }
                }
                if broken.is_none() {
                    let first = set.migrations[k.next].id();
                    let note = format!(
                        "the rehearsal database was rebuilt from its checkpoint before {first} and the migrations since \
                         applied again (forward only), so the migrations after {id} start from exactly its migrated schema"
                    );
                    // On the failed step; when none failed (columns came back in another
                    // order), on the reapply step that saw it.
                    let failed = report.steps.iter().rposition(|s| !s.ok);
                    let at = failed.or_else(|| report.steps.iter().position(|s| s.step == "reapply"));
                    if let Some(i) = at {
                        report.steps[i].warnings.push(note);
                    }
                }
            }
        }
        reports.push(report);
    }
    drop(conn);
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
        .map_err(|e| EngineError::Tool(format!("{}: cannot run pg_restore: {e}", dump.display())))?;
    if !out.status.success() {
        return Err(EngineError::Tool(format!(
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

/// Rehearsed migrations between two checkpoints: a copy of the database costs as much as
/// rehearsing several migrations, and a rollback that does not give back exactly the schema
/// before (7 of Lemmy's 346) costs re-applying at most this many forward only.
const CHECKPOINT_EVERY: usize = 16;

/// A copy of the base taken before migration `next` (an index into the set), to recover
/// from when a rollback leaves the base in a state that is not exactly the migrated one.
struct Checkpoint<'s> {
    db: ScratchDb<'s>,
    s0: Snapshot,
    next: usize,
}

/// What one rehearsal left in the base.
enum Outcome {
    /// The migrated schema (rolled back and applied again, every step passed).
    Clean(Box<Snapshot>),
    /// Something else: the rollback or the re-apply failed or did not give back the same.
    Dirty,
    /// The migration itself failed: later ones cannot run.
    Broken,
}

/// The sessions kept on the base: the one migrations and checks run on, and a second that
/// reads half of each snapshot at the same time (a snapshot is CPU work in the server, and
/// the rehearsal otherwise keeps one core busy).
struct Kept {
    main: postgres::Client,
    helper: postgres::Client,
}

impl Kept {
    /// The base's schema, read by both sessions in one MVCC snapshot.
    fn snapshot(&mut self) -> Result<Snapshot, EngineError> {
        Ok(Snapshot::capture_split(&mut self.main, &mut self.helper)?)
    }

    /// `work` over `items`: the first half on the main session and the rest on the helper, at
    /// the same time; the results in the items' order. For reads of the base between the steps
    /// of a rehearsal, when nothing else writes to it.
    fn share<I: Sync, T: Send>(
        &mut self,
        items: &[I],
        work: impl Fn(&mut postgres::Client, &[I]) -> Result<Vec<T>, EngineError> + Sync,
    ) -> Result<Vec<T>, EngineError> {
        let (first, rest) = items.split_at(items.len().div_ceil(2));
        let Kept { main, helper } = self;
        let work = &work;
        let (a, b) = std::thread::scope(|s| {
            let b = s.spawn(move || work(helper, rest));
            (work(main, first), b.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        });
        let mut all = a?;
        all.extend(b?);
        Ok(all)
    }

    /// The rows of `tables` (which exist), half of them read by each session.
    fn fingerprint(&mut self, tables: &[&QName]) -> Result<Fingerprint, EngineError> {
        let read = self.share(tables, |c, part| Ok(Fingerprint::of(c, part)?.tables.into_iter().collect()))?;
        Ok(Fingerprint { tables: read.into_iter().collect() })
    }
}

impl std::ops::Deref for Kept {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        &self.main
    }
}

impl std::ops::DerefMut for Kept {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        &mut self.main
    }
}

/// The kept sessions on the base, opened when there are none.
fn session<'c>(conn: &'c mut Option<Kept>, replay: &Replay) -> Result<&'c mut Kept, EngineError> {
    if conn.as_ref().is_none_or(|k| k.main.is_closed() || k.helper.is_closed()) {
        *conn = Some(Kept { main: replay.connect()?, helper: replay.connect()? });
    }
    Ok(conn.as_mut().expect("just opened"))
}

/// Apply a migration forward only (replaying it).
fn replay_forward(c: &mut Kept, m: &Migration) -> Result<(), EngineError> {
    run_plain(c, &Prepared::new(&m.forward)?)?;
    reset_session(c)?;
    Ok(())
}

/// Read the base's schema again if migrations were replayed since it was.
fn refresh(stale: &mut bool, conn: &mut Option<Kept>, replay: &mut Replay) -> Result<(), EngineError> {
    if std::mem::take(stale) {
        replay.s0 = session(conn, replay)?.snapshot()?;
    }
    Ok(())
}

/// `--rows`: fill every table of the base before a migration.
fn fill(conn: &mut Option<Kept>, replay: &Replay, opts: &RehearseOptions) -> Result<(), EngineError> {
    if let Some(rows) = opts.rows {
        let s = replay.s0.clone();
        synth::fill(session(conn, replay)?, &s, rows)?;
    }
    Ok(())
}

/// Where the rehearsal is, for the progress display.
struct At<'a> {
    id: &'a str,
    index: usize,
    total: usize,
    progress: &'a dyn Progress,
}

impl At<'_> {
    fn step(&self, step: &str) {
        self.progress.step(self.id, self.index, self.total, step);
    }
}

fn rehearse_one<'s>(
    set: &MigrationSet,
    m: &Migration,
    replay: &mut Replay<'s>,
    conn: &mut Option<Kept>,
    opts: &RehearseOptions,
    at: &At,
    carried: &mut Carried,
) -> Result<(MigrationReport, Outcome), EngineError> {
    let mut rep = MigrationReport::new(m.version.as_str(), &m.name);
    let prepared = match Prepared::new(&m.forward) {
        Ok(p) => p,
        Err(e) => {
            rep.push(StepReport::fail("forward", 0.0, e.to_string()));
            return Ok((rep, Outcome::Broken));
        }
    };
    let s0 = replay.s0.clone();
    // Everything runs on the base through the kept session: forward, rollback, forward
    // again. When all of it passes the base is at the migrated schema for the next migration;
    // when not, the caller restores it from a checkpoint.
    let c = session(conn, replay)?;
    let f0 = c.fingerprint(&Fingerprint::tables_of(&s0))?;
    // Real sizes only when the rehearsal has data at scale; empty tables say nothing about
    // production.
    if opts.rows.is_some() || opts.data.is_some() {
        carried.linter.set_table_rows(crate::lint::table_rows(c)?);
    }
    let linted = carried.linter.lint(m);
    let risk = RiskView::from(&linted.risk);
    rep.risk = Some(risk.clone());
    // The rollback to use decides the capture step: the set's own, or the generated one.
    let plan = capture::plan(m.version.as_str(), &prepared.statements, &s0);
    let capture_sql = match (&m.rollback, &m.capture) {
        (Some(_), Some(c)) => Some(c.text.clone()),
        (Some(_), None) => None,
        (None, _) => plan.capture_sql(&m.id()),
    };
    at.step("forward");
    // A generated rollback inverts opaque statements by what they were seen to do.
    let mut seen = rollback::Opaque::new(&prepared, &s0);
    let watch = m.rollback.is_none().then_some(&mut seen);
    let forward =
        forward_traced(replay.base(), c, &prepared, capture_sql.as_deref(), opts.rows.is_some(), watch, &mut rep)?;
    let Some(forward::Forward { ms: forward_ms, written, held, rewritten, scanned }) = forward else {
        *conn = None;
        return Ok((rep, Outcome::Broken));
    };
    // Lint's model against what the server did (known for sure in one transaction).
    if written.is_some() {
        let seen = model_check::Seen { held: &held, rewritten: &rewritten, scanned: &scanned };
        let found = model_check::mismatches(&prepared, &s0, &linted.findings, &seen);
        if let Some(step) = rep.steps.iter_mut().rev().find(|s| s.step == "forward") {
            step.warnings.extend(found.iter().map(|m| m.text()));
        }
        rep.lint_model = found;
    }
    // The first migration rehearsed checks everything: the baseline the others build on.
    let written = written.filter(|_| at.index > 1);
    reset_session(c)?;
    let s1 = c.snapshot()?;

    at.step("verify");
    rep.push(verify_step(c, &s1, &mut carried.known, m.version.as_str(), written.as_ref())?);
    if let Some(s) = user_checks(replay.base(), opts, "checks")? {
        rep.push(s);
    }

    at.step("rollback");
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
                opaque: &seen,
                risk: &risk,
            };
            // Composing tries the inversion on a copy of the base, which needs it without
            // sessions.
            *conn = None;
            (generated_rollback(&step, replay)?, "generated")
        }
    };
    rep.rollback = Some(source.to_string());
    let t = Instant::now();
    let c = session(conn, replay)?;
    // The schema the base holds when everything passed: the one after applying it again.
    let mut clean: Option<Snapshot> = None;
    let rolled_back = match Prepared::new(&rollback_sql).and_then(|p| run_plain(c, &p)) {
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
        let done = Done { prepared: &prepared, capture_sql: capture_sql.as_deref(), s0: &s0, s1: &s1, f0: &f0 };
        clean = after_rollback(&done, replay, conn, opts, at, &mut rep)?;
    }
    rep.push(performance(&rep, forward_ms, opts));
    Ok((rep, clean.map_or(Outcome::Dirty, |s| Outcome::Clean(Box::new(s)))))
}

/// A generated rollback for the migration of `step`, composed on a copy of the base.
fn generated_rollback(step: &Step, replay: &Replay) -> Result<SqlText, EngineError> {
    let composed = rollback::compose(step, replay.base())?;
    Ok(SqlText {
        path: PathBuf::from(format!("{} (generated rollback)", step.m.id())),
        text: composed.render("rehearsal"),
    })
}

/// What the forward run left for the steps after the rollback.
struct Done<'a> {
    prepared: &'a Prepared,
    capture_sql: Option<&'a str>,
    /// The schema before the migration and after it.
    s0: &'a Snapshot,
    s1: &'a Snapshot,
    /// The rows of every table before it.
    f0: &'a Fingerprint,
}

/// After the rollback ran: the schema and the data must be as before the migration, the
/// team's checks must pass, and the migration must apply again to the same schema. Returns
/// that schema when every step passed (the base can go on from it).
fn after_rollback(
    d: &Done,
    replay: &Replay,
    conn: &mut Option<Kept>,
    opts: &RehearseOptions,
    at: &At,
    rep: &mut MigrationReport,
) -> Result<Option<Snapshot>, EngineError> {
    let mut clean: Option<Snapshot> = None;
    let c = session(conn, replay)?;
    let t = Instant::now();
    reset_session(c)?;
    let sr = c.snapshot()?;
    let step =
        StepReport::rollback_compare(ms(t), sr.diff(d.s0), &StepReport::shared_extensions(&d.prepared.statements));
    let compared = step.ok;
    rep.push(step);
    let t = Instant::now();
    let present = Fingerprint::existing(c, d.f0.tables.keys())?;
    let fr = c.fingerprint(&present)?;
    let data = d.f0.compare(&fr);
    let data_ok = data.is_empty();
    rep.push(if data_ok {
        StepReport::pass("data", ms(t), format!("pre-existing rows of {} tables are identical", d.f0.tables.len()))
    } else {
        let lines: Vec<String> = data
            .iter()
            .map(|d| match (d.rows_before, d.rows_after) {
                (Some(a), Some(b)) if a != b => format!("{}: {a} rows before, {b} after the rollback", d.table),
                (_, None) => format!("{}: gone after the rollback", d.table),
                _ => format!("{}: same number of rows, different contents", d.table),
            })
            .collect();
        StepReport::fail("data", ms(t), format!("pre-existing data differs after the rollback:\n{}", lines.join("\n")))
    });
    if let Some(s) = user_checks(replay.base(), opts, "checks_after_rollback")? {
        rep.push(s);
    }
    at.step("reapply");
    // The step's time is the migration's own (capture and forward SQL), not the snapshot.
    let mut sql_ms = 0.0;
    let t = Instant::now();
    let c = session(conn, replay)?;
    let again = (|| -> Result<Snapshot, EngineError> {
        let cap = d.capture_sql.map(|t| Prepared::from_text("capture.sql", t)).transpose()?;
        run_captured(c, cap.as_ref(), d.prepared, &mut |_, _, _| {})?;
        sql_ms = ms(t);
        reset_session(c)?;
        c.snapshot()
    })();
    rep.push(match again {
        Ok(s) => {
            let d = s.diff(d.s1);
            // Columns in another order change what later migrations see (INSERT without a
            // column list, SELECT *): the base is rebuilt rather than carried on.
            let same_order = d.column_order.is_empty();
            let step = StepReport::schema_compare(
                "reapply",
                sql_ms,
                d,
                "applied again after the rollback: same schema as the first time",
                "applied again, but the schema differs from the first time (- extra now, + missing now, ~ changed)",
            );
            if compared && data_ok && step.ok && same_order {
                clean = Some(s);
            }
            step
        }
        Err(e) => StepReport::fail("reapply", ms(t), format!("does not apply again after the rollback: {e}")),
    });
    Ok(clean)
}

/// The guide's performance check: the migration's own time (its statements', without the
/// tracing around them) against the budget, naming the
/// slowest statements when it is over.
fn performance(rep: &MigrationReport, forward_ms: f64, opts: &RehearseOptions) -> StepReport {
    let budget_ms = opts.budget.as_secs_f64() * 1000.0;
    let own_ms: f64 = rep.statements.iter().map(|s| s.2).sum();
    let forward_ms = if rep.statements.is_empty() { forward_ms } else { own_ms };
    let mut slowest: Vec<(usize, String, f64)> = rep.statements.clone();
    slowest.sort_by(|a, b| b.2.total_cmp(&a.2));
    let top: Vec<String> = slowest.iter().take(3).map(|(l, t, ms)| format!("line {l} {t}: {ms:.0} ms")).collect();
    if forward_ms <= budget_ms {
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
    }
}
