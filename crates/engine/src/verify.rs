//! `verify`: the guide's data-integrity verification on any database, with checks run in
//! parallel over a small pool of read-only connections with a statement timeout, row-count
//! baselines, and the team's own SQL assertions.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use migsafe_catalog::integrity::{self, CheckResult, PlannedCheck};
use migsafe_catalog::model::TableKind;
use migsafe_catalog::{Fingerprint, Snapshot};
use migsafe_pg::ConnSpec;

use crate::EngineError;

/// Options of a verify run.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Folder of SQL files that must return no rows.
    pub checks: Option<PathBuf>,
    /// Compare row counts with this baseline.
    pub baseline: Option<PathBuf>,
    /// Save row counts (and fingerprints when asked) here.
    pub save_baseline: Option<PathBuf>,
    /// Also fingerprint every table (slower: reads every row).
    pub fingerprints: bool,
    /// Allowed change: `5%` or an absolute row count.
    pub tolerance: Tolerance,
    /// Parallel connections.
    pub jobs: usize,
    /// statement_timeout per check.
    pub statement_timeout: Duration,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            checks: None,
            baseline: None,
            save_baseline: None,
            fingerprints: false,
            tolerance: Tolerance::Rows(0),
            jobs: 4,
            statement_timeout: Duration::from_secs(300),
        }
    }
}

/// How much a row count may change against the baseline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// Absolute rows.
    Rows(i64),
    /// Percent of the baseline count.
    Percent(f64),
}

/// A tolerance that is neither a percentage nor a row count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadTolerance {
    /// `N%` whose N is no number.
    #[error("bad tolerance {0:?}")]
    Percent(String),
    /// Neither `N%` nor a whole number.
    #[error("bad tolerance {0:?} (use 5% or 100)")]
    Rows(String),
}

impl std::str::FromStr for Tolerance {
    type Err = BadTolerance;
    fn from_str(s: &str) -> Result<Self, BadTolerance> {
        match s.trim().strip_suffix('%') {
            Some(p) => p.trim().parse().map(Tolerance::Percent).map_err(|_| BadTolerance::Percent(s.to_string())),
            None => s.trim().parse().map(Tolerance::Rows).map_err(|_| BadTolerance::Rows(s.to_string())),
        }
    }
}

/// Row counts (and fingerprints) of a database at one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    /// When it was taken (UTC, RFC 3339).
    pub taken_at: String,
    /// Database (redacted).
    pub database: String,
    /// Rows per table.
    pub rows: BTreeMap<String, i64>,
    /// Fingerprints, when asked for.
    pub fingerprints: Option<Fingerprint>,
}

/// The verify report.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Every check passed.
    pub ok: bool,
    /// Database (redacted).
    pub database: String,
    /// Check results.
    pub checks: Vec<CheckResult>,
}

fn info(check: &str, object: &str, count: i64, detail: String) -> CheckResult {
    CheckResult { check: check.into(), object: object.into(), ok: true, count, sample: vec![], detail, warning: false }
}

/// Run every check on `spec`.
pub fn verify(spec: &ConnSpec, opts: &VerifyOptions) -> Result<VerifyReport, EngineError> {
    let mut main = spec.with_application_name("migsafe verify").connect()?;
    main.batch_execute(&format!(
        "SET default_transaction_read_only = on; SET statement_timeout = {}",
        opts.statement_timeout.as_millis()
    ))?;
    let snap = Snapshot::capture(&mut main)?;
    let planned = integrity::plan_checks(&mut main, &(&snap).into())?;
    let mut results = run_parallel(spec, &planned, opts)?;

    // The guide's inventory: unique constraints and NOT NULL columns per table.
    for (name, t) in &snap.tables {
        let uniques: Vec<&String> = t.constraints.iter().filter(|(_, c)| c.kind.is_key()).map(|(n, _)| n).collect();
        let not_null: Vec<&String> = t.columns.iter().filter(|c| c.not_null).map(|c| &c.name).collect();
        results.push(info(
            "unique_constraints",
            &name.to_string(),
            uniques.len() as i64,
            if uniques.is_empty() {
                "none".into()
            } else {
                uniques.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            },
        ));
        results.push(info(
            "not_null_columns",
            &name.to_string(),
            not_null.len() as i64,
            if not_null.is_empty() {
                "none".into()
            } else {
                not_null.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            },
        ));
    }

    if let Some(dir) = &opts.checks {
        for f in sql_files(dir)? {
            let sql = crate::source::read_text(&f)?;
            results.push(integrity::run_custom(&mut main, &f.display().to_string(), &sql));
        }
    }

    if opts.baseline.is_some() || opts.save_baseline.is_some() {
        let counts = row_counts(&mut main, &snap)?;
        if let Some(path) = &opts.baseline {
            results.extend(compare_baseline(path, &counts, opts.tolerance)?);
        }
        if let Some(path) = &opts.save_baseline {
            let fingerprints = if opts.fingerprints { Some(Fingerprint::capture(&mut main, &snap)?) } else { None };
            let b = Baseline {
                taken_at: chrono::Utc::now().to_rfc3339(),
                database: spec.redacted(),
                rows: counts.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                fingerprints,
            };
            let text = serde_json::to_string_pretty(&b).expect("baselines serialise");
            std::fs::write(path, text).map_err(|e| EngineError::file(path, e))?;
        }
    }
    let ok = results.iter().all(|r| r.ok);
    Ok(VerifyReport { ok, database: spec.redacted(), checks: results })
}

/// The `*.sql` files of a folder of checks, in name order.
pub(crate) fn sql_files(dir: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| EngineError::file(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    Ok(files)
}

/// Run planned checks over `jobs` connections.
fn run_parallel(
    spec: &ConnSpec,
    planned: &[PlannedCheck],
    opts: &VerifyOptions,
) -> Result<Vec<CheckResult>, EngineError> {
    let next = Mutex::new(0usize);
    let out: Mutex<Vec<(usize, CheckResult)>> = Mutex::new(Vec::new());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let jobs = opts.jobs.clamp(1, 16).min(planned.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| {
                let mut c = match spec.with_application_name("migsafe verify").connect() {
                    Ok(c) => c,
                    Err(e) => {
                        errors.lock().unwrap_or_else(|p| p.into_inner()).push(e.to_string());
                        return;
                    }
                };
                let setup = format!(
                    "SET default_transaction_read_only = on; SET statement_timeout = {}; SET lock_timeout = '5s'; SET jit = off",
                    opts.statement_timeout.as_millis()
                );
                if let Err(e) = c.batch_execute(&setup) {
                    errors.lock().unwrap_or_else(|p| p.into_inner()).push(e.to_string());
                    return;
                }
                loop {
                    let i = {
                        let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(p) = planned.get(i) else { break };
                    let r = p.run(&mut c).unwrap_or_else(|e| CheckResult {
                        check: p.check.clone(),
                        object: p.object.clone(),
                        ok: false,
                        count: 0,
                        sample: vec![],
                        detail: format!("could not run: {e}"),
                        warning: false,
                    });
                    out.lock().unwrap_or_else(|p| p.into_inner()).push((i, r));
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_default();
    if let Some(e) = errors.first() {
        return Err(EngineError::Tool(format!("verify could not open its connections: {e}")));
    }
    let mut v = out.into_inner().unwrap_or_default();
    v.sort_by_key(|(i, _)| *i);
    Ok(v.into_iter().map(|(_, r)| r).collect())
}

/// Exact row counts of every regular table.
pub fn row_counts(c: &mut postgres::Client, snap: &Snapshot) -> Result<BTreeMap<String, i64>, EngineError> {
    let mut m = BTreeMap::new();
    for (n, t) in &snap.tables {
        if t.kind == TableKind::Foreign {
            continue;
        }
        let rows: i64 = c.query_one(&format!("SELECT count(*) FROM ONLY {n}"), &[])?.get(0);
        m.insert(n.to_string(), rows);
    }
    Ok(m)
}

fn compare_baseline(
    path: &Path,
    counts: &BTreeMap<String, i64>,
    tol: Tolerance,
) -> Result<Vec<CheckResult>, EngineError> {
    let text = std::fs::read_to_string(path).map_err(|e| EngineError::file(path, e))?;
    let base: Baseline = serde_json::from_str(&text).map_err(|e| EngineError::BadFile {
        path: path.to_path_buf(),
        problem: format!("not a migsafe baseline: {e}"),
    })?;
    let mut out = Vec::new();
    for (table, before) in &base.rows {
        let after = counts.get(table).copied();
        let mut r = info("row_count", table, after.unwrap_or(0), String::new());
        match after {
            None => {
                r.ok = false;
                r.detail = format!("table is gone (had {before} rows at {})", base.taken_at);
            }
            Some(a) => {
                let diff = (a - before).abs();
                let allowed = match tol {
                    Tolerance::Rows(n) => diff <= n,
                    Tolerance::Percent(p) => (diff as f64) <= (*before as f64) * p / 100.0,
                };
                r.ok = allowed;
                r.detail = if a == *before {
                    format!("{a} rows, as in the baseline")
                } else {
                    format!(
                        "{before} → {a} rows ({:+}) since {}{}",
                        a - before,
                        base.taken_at,
                        if allowed { ", within tolerance" } else { "" }
                    )
                };
            }
        }
        out.push(r);
    }
    Ok(out)
}
