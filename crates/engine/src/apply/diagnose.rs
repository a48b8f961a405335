//! `diagnose`: after a failed or interrupted migration, what is there, what is missing, and the
//! custom rollback for exactly this state.

use serde::Serialize;

use migsafe_catalog::Snapshot;
use migsafe_pg::ConnSpec;

use super::history;
use crate::exec::{run_plain, Prepared};
use crate::scratch::ScratchServer;
use crate::source::MigrationSet;
use crate::EngineError;

/// The diagnosis of one unfinished migration.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// History status (`running` = interrupted, `failed`).
    pub status: history::RunStatus,
    /// How it ran.
    pub tx_mode: history::RunMode,
    /// The error recorded.
    pub error: Option<String>,
    /// Statements that completed, as `line N: TAG`.
    pub applied: Vec<String>,
    /// Statements that did not.
    pub not_applied: Vec<String>,
    /// What the database has that it did not have before the migration.
    pub changed_since_before: String,
    /// What the finished migration would have that the database lacks (when a throwaway
    /// cluster could build the expected schema).
    pub missing_vs_expected: Option<String>,
    /// SQL that takes the database back to the schema before the migration.
    pub custom_rollback: String,
    /// Commands to go forward or back.
    pub next: Vec<String>,
}

/// The diagnosis of a transactional run that did not finish: nothing of it is applied.
fn nothing_applied(r: &history::HistoryRow, m: Option<&crate::source::Migration>, spec: &ConnSpec) -> Diagnosis {
    let not_applied = m
        .and_then(|m| Prepared::new(&m.forward).ok())
        .map(|p| p.statements.iter().enumerate().map(|(i, s)| format!("line {}: {}", p.line(i), s.tag)).collect())
        .unwrap_or_default();
    Diagnosis {
        version: r.version.clone(),
        name: r.name.clone(),
        status: r.status,
        tx_mode: r.tx_mode,
        error: r.error.clone(),
        applied: vec![],
        not_applied,
        changed_since_before: "nothing: it ran in one transaction, which did not commit".into(),
        missing_vs_expected: None,
        custom_rollback: String::new(),
        next: vec![format!(
            "migsafe apply --db '{}'   # it ran in one transaction: nothing of it is applied, run it again",
            spec.redacted()
        )],
    }
}

/// Diagnose every failed or interrupted migration.
pub fn diagnose(
    set: &MigrationSet,
    spec: &ConnSpec,
    pg_bin: Option<&std::path::Path>,
) -> Result<Vec<Diagnosis>, EngineError> {
    let mut c = spec.connect()?;
    let rows = history::latest(&mut c)?;
    let live = Snapshot::capture(&mut c)?;
    let mut out = Vec::new();
    for r in rows.iter().filter(|r| matches!(r.status, history::RunStatus::Running | history::RunStatus::Failed)) {
        let before_json: Option<String> =
            c.query_one("SELECT snapshot_before::text FROM migsafe.history WHERE id = $1", &[&r.id])?.get(0);
        let m = set.migrations.iter().find(|m| m.version.matches(&r.version));
        let Some(before) = before_json.and_then(|j| Snapshot::from_json(&j).ok()) else {
            // A transactional run records no schema before it: whatever stopped it, its
            // transaction left nothing.
            if r.tx_mode == history::RunMode::Wrapped {
                out.push(nothing_applied(r, m, spec));
            }
            continue;
        };
        let (mut applied, mut not_applied) = (vec![], vec![]);
        let mut expected_missing = None;
        if let Some(m) = m {
            let p = Prepared::new(&m.forward)?;
            for (i, s) in p.statements.iter().enumerate() {
                let label = format!("line {}: {}", p.line(i), s.tag);
                if r.statements_done.contains(&(i as i64)) {
                    applied.push(label);
                } else {
                    not_applied.push(label);
                }
            }
            if let Ok(server) = ScratchServer::throwaway(pg_bin) {
                let db = server.create_set_db("expected", set)?;
                let mut e = db.connect()?;
                let empty = Snapshot::capture(&mut e)?;
                let built = e
                    .batch_execute(&empty.diff(&before).to_sql())
                    .map_err(EngineError::Db)
                    .and_then(|_| run_plain(&mut e, &p).map_err(EngineError::from));
                if built.is_ok() {
                    let expected = Snapshot::capture(&mut e)?;
                    let mut d = live.diff(&expected);
                    // Times frozen when the objects were created differ between the two runs.
                    d.split_clock();
                    expected_missing = Some(if d.differences.is_empty() {
                        "nothing: the migration's changes are all there".into()
                    } else {
                        d.summary()
                    });
                }
            }
        }
        let d = live.diff(&before);
        let changed = if d.differences.is_empty() {
            "nothing: the schema is as it was before the migration".to_string()
        } else {
            d.summary()
        };
        let db = spec.redacted();
        let mut next = vec![];
        if r.tx_mode == history::RunMode::Wrapped {
            next.push(format!(
                "migsafe apply --db '{db}'   # it ran in one transaction: nothing of it is applied, run it again"
            ));
        } else {
            next.push(format!(
                "migsafe apply --db '{db}' --resume   # finish it: run the {} remaining statements",
                not_applied.len()
            ));
            next.push(format!(
                "migsafe diagnose --db '{db}' --write rollback.sql && psql '{db}' -f rollback.sql   # or undo what ran"
            ));
        }
        out.push(Diagnosis {
            version: r.version.clone(),
            name: r.name.clone(),
            status: r.status,
            tx_mode: r.tx_mode,
            error: r.error.clone(),
            applied,
            not_applied,
            changed_since_before: changed,
            missing_vs_expected: expected_missing,
            custom_rollback: d.to_sql(),
            next,
        });
    }
    Ok(out)
}
