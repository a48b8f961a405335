//! Rollback scripts that are proven to work.
//!
//! For each migration, on scratch databases: replay the earlier migrations (S0), apply it (S1),
//! invert it statement by statement using S0, complete the inversion with the snapshot diff
//! back to S0, then prove it: apply the script to a copy of S1 and require the schema to equal
//! S0 exactly. Destructive migrations get a data-capture step, and the rollback restores from
//! it. `check` proves existing, hand-written rollbacks the same way.

mod compose;
mod invert;
mod opaque;
mod prove;
mod script;

use std::path::PathBuf;
use std::time::Instant;

use migsafe_catalog::{Fingerprint, Snapshot};

use crate::capture;
use crate::exec::{reset_session, Prepared};
use crate::replay::Replay;
use crate::report::{MigrationReport, StepReport};
use crate::scratch::ScratchServer;
use crate::source::{Layout, Migration, MigrationSet};
use crate::EngineError;
use compose::file_name;
pub use compose::{compose, Composed, Step};
pub use invert::Inverse;
pub use opaque::Opaque;
pub use prove::prove_rollback;

/// What happened to one migration's rollback.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GeneratedRollback {
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// The rollback text.
    pub script: String,
    /// The capture step, when the migration destroys data.
    pub capture: Option<String>,
    /// Applying the script to the migrated schema gave back exactly the schema before it.
    pub proven: bool,
    /// Column order differences left (reported, not a failure).
    pub column_order: Vec<String>,
    /// What could not be reversed, and why.
    pub manual: Vec<String>,
    /// What still differs when not proven.
    pub remaining: String,
    /// Where it was written (None when not written).
    pub written: Option<PathBuf>,
    /// Proof run time in milliseconds.
    pub proof_ms: f64,
    /// Tables whose data the capture step protects but which did not come back identical
    /// (empty when the data came back, or there was nothing to capture).
    pub data_differences: Vec<String>,
}

impl GeneratedRollback {
    /// Proven and nothing left for a human.
    pub fn ok(&self) -> bool {
        self.proven && self.manual.is_empty() && self.data_differences.is_empty()
    }
}

/// Options of `rollback generate`.
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    /// Only these versions (numeric match); all when empty.
    pub versions: Vec<String>,
    /// Replace rollbacks that exist.
    pub force: bool,
    /// Write files (false: only compute, e.g. for rehearse).
    pub write: bool,
}

fn selected(m: &Migration, versions: &[String]) -> bool {
    versions.is_empty() || versions.iter().any(|v| m.version.matches(v))
}

/// Generate (and prove) rollbacks for the migrations of `set` that lack one.
pub fn generate(
    set: &MigrationSet,
    server: &ScratchServer,
    opts: &GenerateOptions,
) -> Result<Vec<GeneratedRollback>, EngineError> {
    let mut replay = Replay::new(server, set)?;
    let mut out = Vec::new();
    let risks = crate::lint::set_risks(set);
    for (m, risk) in set.migrations.iter().zip(&risks) {
        let want = selected(m, &opts.versions) && (m.rollback.is_none() || opts.force);
        let prepared = Prepared::new(&m.forward)?;
        let plan = capture::plan(m.version.as_str(), &prepared.statements, &replay.s0);
        // The migration runs on the base itself (one connection); the rollback is composed
        // and proven on copies of it.
        let mut c = replay.connect()?;
        let f0 = if want {
            // The data proof covers every table that existed before, as a rehearsal does: a
            // rollback that loses or leaves rows anywhere (a column renamed back by DROP + ADD,
            // rows added by a query or a function) must not pass as proven.
            Fingerprint::capture(&mut c, &replay.s0)?
        } else {
            Fingerprint::default()
        };
        let cap = match plan.capture_sql(&file_name(&m.forward.path)).filter(|_| want) {
            Some(text) => Some(Prepared::from_text("capture.sql", &text)?),
            None => None,
        };
        let mut seen = Opaque::new(&prepared, &replay.s0);
        crate::exec::run_captured(&mut c, cap.as_ref(), &prepared, &mut |c, i, _| seen.observe(c, i))?;
        reset_session(&mut c)?;
        let s1 = Snapshot::capture(&mut c)?;
        drop(c);
        if want {
            let step = Step {
                m,
                prepared: &prepared,
                plan: &plan,
                s0: &replay.s0,
                s1: &s1,
                transaction: set.layout != Layout::Dbmate,
                opaque: &seen,
                risk,
            };
            let mut g = prove::prove_generated(&step, replay.base(), &f0)?;
            if opts.write {
                g.written = Some(set.write_rollback(m, &g.script, g.capture.as_deref())?);
            }
            out.push(g);
        }
        replay.s0 = s1;
    }
    Ok(out)
}

/// Prove existing rollbacks: each migration's rollback must bring its schema back exactly.
/// The reports use the rehearse shape (steps `forward`, `rollback`, `compare`).
pub fn check(
    set: &MigrationSet,
    server: &ScratchServer,
    versions: &[String],
) -> Result<Vec<MigrationReport>, EngineError> {
    let mut replay = Replay::new(server, set)?;
    let mut out = Vec::new();
    for m in &set.migrations {
        let prepared = Prepared::new(&m.forward)?;
        let mut rep = MigrationReport::new(m.version.as_str(), &m.name);
        let t0 = Instant::now();
        let s1 = {
            let mut c = replay.connect()?;
            // In the migration's transaction, as apply runs it (the capture records its id).
            let cap = m.capture.as_ref().map(Prepared::new).transpose()?;
            crate::exec::run_captured(&mut c, cap.as_ref(), &prepared, &mut |_, _, _| {})?;
            reset_session(&mut c)?;
            Snapshot::capture(&mut c)?
        };
        let want = selected(m, versions);
        if want {
            rep.push(StepReport::pass("forward", t0.elapsed().as_secs_f64() * 1000.0, "applied"));
            match &m.rollback {
                None => rep.push(StepReport::fail(
                    "rollback",
                    0.0,
                    "no rollback file (migsafe rollback generate writes one)",
                )),
                Some(rb) => {
                    rep.rollback = Some("hand-written".into());
                    let shared = Prepared::new(&m.forward)
                        .map(|p| StepReport::shared_extensions(&p.statements))
                        .unwrap_or_default();
                    let steps = prove_rollback(replay.base(), rb, &replay.s0, &shared)?;
                    for s in steps {
                        rep.push(s);
                    }
                }
            }
            out.push(rep);
        }
        replay.s0 = s1;
    }
    Ok(out)
}
