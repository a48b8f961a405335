//! Proving a rollback: run it as migsafe would, on a fresh copy of the migrated database, and
//! require the schema, and the rows of every table that existed before, to come back exactly.

use std::time::Instant;

use migsafe_catalog::{Fingerprint, Snapshot};

use super::compose::{compose, file_name, Step};
use super::GeneratedRollback;
use crate::exec::{run_plain, Prepared};
use crate::report::StepReport;
use crate::scratch::ScratchDb;
use crate::EngineError;

/// Compose and prove the rollback of a migration, given the copy of the database it ran on.
pub(super) fn prove_generated(
    step: &Step,
    work: &ScratchDb,
    f0: &Fingerprint,
) -> Result<GeneratedRollback, EngineError> {
    let mut composed = compose(step, work)?;
    let text = composed.render("under 1 second on the proof database");
    // Prove it: run the file as migsafe would, on a fresh copy of the migrated database.
    let proof = work.clone_db("proof")?;
    let t0 = Instant::now();
    let outcome = Prepared::from_text("rollback.sql", &text).map_err(EngineError::from).and_then(|p| {
        let mut c = proof.connect()?;
        run_plain(&mut c, &p)?;
        let snap = Snapshot::capture(&mut c)?;
        let data = Fingerprint::capture_tables(&mut c, f0.tables.keys())?;
        Ok((snap, data))
    });
    let proof_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let mut data_differences = Vec::new();
    let (proven, remaining, column_order) = match outcome {
        Ok((sr, data)) => {
            data_differences = f0
                .compare(&data)
                .into_iter()
                .map(|d| match (d.rows_before, d.rows_after) {
                    (Some(a), Some(b)) if a != b => {
                        format!("{}: {a} rows before the migration, {b} after the rollback", d.table)
                    }
                    (_, None) => format!("{}: missing after the rollback", d.table),
                    _ => format!("{}: same row count, different contents after the rollback", d.table),
                })
                .collect();
            let d = sr.diff(step.s0);
            let order = d
                .column_order
                .iter()
                .map(|o| format!("{}: ({}) instead of ({})", o.table, o.before.join(", "), o.after.join(", ")))
                .collect();
            (d.differences.is_empty(), if d.differences.is_empty() { String::new() } else { d.summary() }, order)
        }
        Err(e) => (false, format!("the rollback failed on the migrated schema: {e}"), vec![]),
    };
    if !proven {
        composed.manual.push(format!(
            "this rollback does not restore the schema exactly; what still differs:\n--   {}",
            remaining.trim_end().replace('\n', "\n--   ")
        ));
    }
    let duration = if proof_ms < 1000.0 {
        format!("under 1 second (took {proof_ms:.0} ms on the proof database; grows with table sizes)")
    } else {
        format!("about {:.0} seconds on the proof database (grows with table sizes)", proof_ms / 1000.0)
    };
    let script = composed.render(&duration);
    let file_label = file_name(&step.m.forward.path);
    Ok(GeneratedRollback {
        version: step.m.version.to_string(),
        name: step.m.name.clone(),
        script,
        capture: step.plan.capture_sql(&file_label),
        proven,
        column_order,
        manual: composed.manual,
        remaining,
        written: None,
        proof_ms,
        data_differences,
    })
}

/// Apply `rollback` to a copy of `work` and compare with `s0`: the `rollback` and `compare`
/// steps.
pub fn prove_rollback(
    work: &ScratchDb,
    rollback: &crate::source::SqlText,
    s0: &Snapshot,
    shared_extensions: &[String],
) -> Result<Vec<StepReport>, EngineError> {
    let mut steps = Vec::new();
    let proof = work.clone_db("proof")?;
    let t0 = Instant::now();
    let prepared = match Prepared::new(rollback) {
        Ok(p) => p,
        Err(e) => {
            steps.push(StepReport::fail("rollback", 0.0, e.to_string()));
            return Ok(steps);
        }
    };
    let mut c = proof.connect()?;
    if let Err(e) = run_plain(&mut c, &prepared) {
        steps.push(StepReport::fail("rollback", t0.elapsed().as_secs_f64() * 1000.0, e.to_string()));
        return Ok(steps);
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    steps.push(StepReport::pass("rollback", ms, format!("{} statements ran", prepared.statements.len())));
    let sr = Snapshot::capture(&mut c)?;
    let step = StepReport::rollback_compare(0.0, sr.diff(s0), shared_extensions);
    steps.push(step);
    Ok(steps)
}
