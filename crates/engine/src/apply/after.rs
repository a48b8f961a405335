//! After each migration and after the run: the objects it says it creates exist and no index
//! is left invalid; then the watch window of the decision tree (observe, classify, decide).

use postgres::Client;
use std::time::{Duration, Instant};

use migsafe_sql::model::StmtKind;

use super::probes::{self, IncidentSeverity, Probes};
use super::{ApplyOptions, ApplyReport};
use crate::exec::Prepared;
use crate::EngineError;

/// Objects the migration says it creates exist, and no index is left invalid.
pub(super) fn post_verify(
    c: &mut Client,
    p: &Prepared,
    snapshot: &migsafe_catalog::SnapshotOptions,
) -> Result<Vec<String>, EngineError> {
    let mut problems = Vec::new();
    for s in &p.statements {
        let names: Vec<String> = match &s.kind {
            // Unqualified names are looked up the way the migration's own statements found
            // them: through the session's search_path (a tenant schema's, in a fleet).
            StmtKind::CreateTable { table, .. } => vec![table.sql()],
            StmtKind::CreateIndex { name: Some(n), table, .. } => {
                vec![migsafe_sql::QualName { schema: table.schema.clone(), name: n.clone() }.sql()]
            }
            StmtKind::CreateView { view, .. } => vec![view.sql()],
            _ => vec![],
        };
        for n in names {
            let ok: bool = c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&n])?.get(0);
            if !ok {
                problems.push(format!("{n} should exist after {} but does not", s.tag));
            }
        }
    }
    // An index left invalid (a failed concurrent build): one catalog query, not a snapshot.
    let rows = c.query(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT (i.indisvalid AND i.indisready) AND n.nspname NOT IN ('pg_catalog', 'pg_toast') \
           AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1)) ORDER BY 1",
        &[&snapshot.only_schemas],
    )?;
    for r in rows {
        let index: String = r.get(0);
        problems.push(format!("index {index} is invalid (a failed concurrent build): drop it and build it again"));
    }
    Ok(problems)
}

/// The watch window: observe, classify, decide. Returns the failure to act on.
pub(super) fn watch(
    c: &mut Client,
    probes: &Probes,
    base: &probes::Baseline,
    opts: &ApplyOptions,
    rep: &mut ApplyReport,
) -> Option<(IncidentSeverity, String)> {
    let start = Instant::now();
    let mut first_bad: Option<(Instant, IncidentSeverity, String)> = None;
    loop {
        let obs = probes.observe(c, base);
        let worst = obs.iter().map(|o| o.severity).min();
        for o in &obs {
            if !rep.observations.iter().any(|x| x.what == o.what) {
                rep.note(format!("observed ({:?}): {}", o.severity, o.what));
                rep.observations.push(o.clone());
            }
        }
        match worst {
            Some(IncidentSeverity::P0) => {
                return Some((
                    IncidentSeverity::P0,
                    obs.iter().find(|o| o.severity == IncidentSeverity::P0).map(|o| o.what.clone()).unwrap_or_default(),
                ))
            }
            Some(s @ (IncidentSeverity::P1 | IncidentSeverity::P2)) => {
                let what = obs.iter().find(|o| o.severity == s).map(|o| o.what.clone()).unwrap_or_default();
                if opts.act_now {
                    return Some((s, what));
                }
                let since = first_bad.get_or_insert((Instant::now(), s, what.clone())).0;
                if since.elapsed() >= opts.assess {
                    return Some((s, format!("{what} (still after the {:?} assessment window)", opts.assess)));
                }
            }
            _ => first_bad = None,
        }
        let window_over = start.elapsed() >= opts.watch;
        let assessing = first_bad.is_some();
        if window_over && !assessing {
            return None;
        }
        if opts.cancel.requested() {
            return None;
        }
        std::thread::sleep(opts.watch_interval.min(Duration::from_secs(60)));
    }
}
