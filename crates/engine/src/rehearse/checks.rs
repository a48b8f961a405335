//! The checks after a migration ran and after its rollback: integrity (`verify`), and the
//! team's own SQL checks and command.

use std::collections::BTreeSet;
use std::time::Instant;

use migsafe_catalog::integrity;
use migsafe_catalog::Snapshot;

use super::{ms, RehearseOptions};
use crate::lint::SetLinter;
use crate::report::StepReport;
use crate::scratch::ScratchDb;
use crate::EngineError;

/// What one migration's rehearsal hands to the next: the integrity faults already reported
/// (each is reported once, by the migration that caused it), and the linter's model of the
/// schema so far.
pub(crate) struct Carried {
    pub(super) known: KnownFaults,
    pub(super) linter: SetLinter,
}

/// Integrity faults found by earlier migrations' verify steps: (check, object) → the
/// migration that first showed it. A fault a migration inherits is not its failure.
pub(crate) type KnownFaults = std::collections::BTreeMap<(String, String), String>;

/// The integrity checks after the migration; a fault an earlier migration already showed is a
/// warning, not this migration's failure. With `written` (the relations the migration wrote
/// to or altered, when known for sure), only the checks that read one of them run: the others
/// read nothing that changed since the last migration's checks, whose faults `known` holds.
/// The first migration rehearsed checks everything, which is the baseline.
pub(super) fn verify_step(
    c: &mut super::Kept,
    s1: &Snapshot,
    known: &mut KnownFaults,
    version: &str,
    written: Option<&BTreeSet<String>>,
) -> Result<StepReport, EngineError> {
    let t = Instant::now();
    let mut planned = integrity::plan_checks(c, &s1.into())?;
    let all = planned.len();
    if let Some(w) = written {
        planned.retain(|p| p.relations().iter().any(|r| w.contains(&format!("{}.{}", r.schema, r.name))));
    }
    // Half of the checks on each session, at the same time.
    let results = c.share(&planned, |c, part| Ok(part.iter().map(|p| p.run(c)).collect::<Result<Vec<_>, _>>()?))?;
    let unchanged = all - results.len();
    let text = |r: &integrity::CheckResult| {
        format!(
            "{} {}: {}{}",
            r.check,
            r.object,
            r.detail,
            if r.sample.is_empty() { String::new() } else { format!(" (e.g. {})", r.sample.join("; ")) }
        )
    };
    let mut failed: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    for r in &results {
        let k = (r.check.clone(), r.object.clone());
        if r.ok {
            known.remove(&k);
            if r.warning {
                warnings.push(format!("{}: {}", r.object, r.detail));
            }
        } else if let Some(first) = known.get(&k) {
            warnings.push(format!("{} (already so since {first}: not this migration's doing)", text(r)));
        } else {
            known.insert(k, version.to_string());
            failed.push(text(r));
        }
    }
    let mut step = if failed.is_empty() {
        StepReport::pass(
            "verify",
            ms(t),
            if unchanged == 0 {
                format!("{} integrity checks passed", results.len())
            } else {
                format!(
                    "{} integrity checks passed (of the tables the migration wrote to or altered; {unchanged} others read \
                     nothing it changed)",
                    results.len()
                )
            },
        )
    } else {
        StepReport::fail("verify", ms(t), failed.join("\n"))
    };
    step.warnings = warnings;
    Ok(step)
}

/// Run the team's checks on `db`: SQL files that must return no rows, and a command.
pub(super) fn user_checks(
    db: &ScratchDb,
    opts: &RehearseOptions,
    step: &str,
) -> Result<Option<StepReport>, EngineError> {
    if opts.checks.is_none() && opts.check_cmd.is_none() {
        return Ok(None);
    }
    let t = Instant::now();
    let mut failures = Vec::new();
    let mut ran = 0;
    if let Some(dir) = &opts.checks {
        let files = crate::verify::sql_files(dir)?;
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
            .map_err(|e| EngineError::Tool(format!("--check-cmd: cannot run `{cmd}`: {e}")))?;
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
