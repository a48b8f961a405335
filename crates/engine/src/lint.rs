//! Linting whole migration sets (or loose files) in order, so later migrations see what
//! earlier ones created, and the report every output format renders.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use migsafe_sql::lint::{FileLint, Finding, LintOptions, Linter, LocatedError, Severity, SourceFile, TxMode};
use migsafe_sql::parse::parse_sql;
use migsafe_sql::risk::{Risk, RiskLevel};

use migsafe_sql::QualName;

use crate::source::{read_text, Migration, MigrationSet, SourceError};

/// The lint result of one migration.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationLint {
    /// Version (file-name digits; for loose files, the file's own).
    pub version: String,
    /// Name.
    pub name: String,
    /// Path of the forward file.
    pub file: String,
    /// How migsafe will run it.
    pub transaction: TxMode,
    /// Its risk.
    pub risk: RiskView,
    /// Findings that were not suppressed.
    pub findings: Vec<Finding>,
    /// How many findings suppression comments or settings switched off.
    pub suppressed: usize,
    /// Syntax errors (the migration cannot run).
    pub errors: Vec<LocatedError>,
    /// Number of statements.
    pub statements: usize,
    /// The full risk, for renderers that show more than the summary.
    #[serde(skip)]
    pub risk_detail: Risk,
}

/// Lint options for migrations that run on the server `c` is connected to: its major version
/// and the TimeZone its sessions start with (row counts are left to the caller).
pub fn server_options(c: &mut postgres::Client) -> Result<LintOptions, crate::EngineError> {
    let pg_version = migsafe_pg::server_version_num(c)? / 10000;
    let time_zone: String = c.query_one("SELECT current_setting('TimeZone')", &[])?.get(0);
    Ok(LintOptions { pg_version, time_zone: Some(time_zone), ..Default::default() })
}

/// Each migration's findings and risk, by version: what a fleet computes once for all targets.
pub type Linted = BTreeMap<String, (Vec<Finding>, RiskView)>;

/// Lint every migration of `set` once, with these table sizes (a fleet passes the largest size
/// of each table among its targets, so the risk is the worst target's).
pub fn lint_once(set: &MigrationSet, table_rows: BTreeMap<QualName, i64>) -> Linted {
    let opts = LintOptions { table_rows, ..Default::default() };
    let mut out = Linted::new();
    lint_set(set, &opts, &mut |m, l| {
        out.insert(m.version.to_string(), (l.findings, RiskView::from(&l.risk)));
    });
    out
}

/// The documented JSON shape of a risk.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RiskView {
    /// `low`, `medium` or `high`.
    pub level: RiskLevel,
    /// Why, one line per change.
    pub reasons: Vec<String>,
    /// The guide's downtime estimate.
    pub downtime: String,
    /// Testing required.
    pub testing: Vec<String>,
    /// Who must approve.
    pub approvals: Vec<String>,
    /// Reviews required.
    pub reviews: Vec<String>,
    /// Documentation required.
    pub documentation: String,
    /// Row of the guide's approval matrix (1–5).
    pub approval_tier: u8,
}

impl From<&Risk> for RiskView {
    fn from(r: &Risk) -> Self {
        RiskView {
            level: r.level,
            reasons: r.reasons.iter().map(|x| format!("{}: {}", x.level, x.text)).collect(),
            downtime: r.downtime.clone(),
            testing: r.testing.clone(),
            approvals: r.approval.approvers.clone(),
            reviews: r.approval.reviews.clone(),
            documentation: r.approval.documentation.clone(),
            approval_tier: r.approval.tier,
        }
    }
}

/// The result of a lint run.
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    /// Migrations in the order they were linted.
    pub migrations: Vec<MigrationLint>,
}

impl LintReport {
    /// Every finding.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.migrations.iter().flat_map(|m| m.findings.iter())
    }

    /// Every syntax error.
    pub fn errors(&self) -> impl Iterator<Item = &LocatedError> {
        self.migrations.iter().flat_map(|m| m.errors.iter())
    }

    /// Count of findings at each severity.
    pub fn counts(&self) -> BTreeMap<Severity, usize> {
        let mut m = BTreeMap::new();
        for f in self.findings() {
            *m.entry(f.severity).or_insert(0) += 1;
        }
        m
    }

    /// True when any finding is at or above `threshold`.
    pub fn fails(&self, threshold: Severity) -> bool {
        self.findings().any(|f| f.severity >= threshold)
    }

    /// The highest risk level.
    pub fn max_risk(&self) -> RiskLevel {
        self.migrations.iter().map(|m| m.risk.level).max().unwrap_or(RiskLevel::Low)
    }
}

/// What to lint: folders are migration sets, files are linted as single migrations in the
/// order given (after the sets).
#[derive(Debug, Clone)]
pub enum LintInput {
    /// A migration folder.
    Set(Box<MigrationSet>),
    /// A loose SQL file.
    File(PathBuf),
}

impl LintInput {
    /// A folder becomes a set; a file stays a file.
    pub fn from_path(path: &Path) -> Result<LintInput, SourceError> {
        if path.is_dir() {
            Ok(LintInput::Set(Box::new(MigrationSet::load(path)?)))
        } else if path.exists() {
            Ok(LintInput::File(path.to_path_buf()))
        } else {
            Err(SourceError::Unreadable {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            })
        }
    }
}

/// Lints the migrations of a set one after another, in order, so that each sees what the
/// ones before it created (a table made earlier is an existing table). Every command that
/// judges a set's migrations (lint, apply's preflight, rehearse, plan, the rollback scripts'
/// header) lints through it, so they all judge a migration the same way.
pub struct SetLinter {
    linter: Linter,
}

impl SetLinter {
    /// A linter at the start of a set.
    pub fn new(opts: &LintOptions) -> SetLinter {
        SetLinter { linter: Linter::new(opts.clone()) }
    }

    /// Table sizes for the migrations from here on (a rehearsal's database grows as it goes).
    pub fn set_table_rows(&mut self, rows: BTreeMap<QualName, i64>) {
        self.linter.set_table_rows(rows);
    }

    /// Lint the next migration of the set.
    pub fn lint(&mut self, m: &Migration) -> FileLint {
        let path = m.forward.path.display().to_string();
        self.linter.lint(SourceFile { path: &path, source: &m.forward.text })
    }
}

/// Lint every migration of `set` in order (see [`SetLinter`]), handing each result to `each`.
pub fn lint_set<'a>(set: &'a MigrationSet, opts: &LintOptions, each: &mut dyn FnMut(&'a Migration, FileLint)) {
    let mut linter = SetLinter::new(opts);
    for m in &set.migrations {
        let lint = linter.lint(m);
        each(m, lint);
    }
}

/// The risk of every migration of `set`, in the set's order, judged in order without table
/// sizes (see [`lint_set`]).
pub fn set_risks(set: &MigrationSet) -> Vec<RiskView> {
    let mut out = Vec::with_capacity(set.migrations.len());
    lint_set(set, &LintOptions::default(), &mut |_, l| out.push(RiskView::from(&l.risk)));
    out
}

/// The row count of every table of the connected database, as the planner's statistics
/// estimate it (`pg_class.reltuples`). A table never analysed or vacuumed has no estimate
/// (-1 since PostgreSQL 14) and is left out, so its size counts as unknown, which the risk
/// model treats as large: an empty-looking estimate must never make a migration look safe.
pub fn table_rows(c: &mut postgres::Client) -> Result<BTreeMap<QualName, i64>, postgres::Error> {
    let rows = c.query(
        "SELECT n.nspname::text, c.relname::text, c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.reltuples >= 0",
        &[],
    )?;
    Ok(rows.iter().map(|r| (QualName::qualified(r.get::<_, String>(0), r.get::<_, String>(1)), r.get(2))).collect())
}

/// Lint inputs in order with one linter, so each set's migrations see the ones before.
pub fn lint_inputs(inputs: &[LintInput], opts: &LintOptions) -> Result<LintReport, SourceError> {
    let mut migrations = Vec::new();
    lint_each(inputs, opts, &mut |m| migrations.push(m))?;
    Ok(LintReport { migrations })
}

/// Lint inputs in order, handing each migration's result to `each` as soon as it is ready
/// (so large sets are rendered as they go, in constant memory).
pub fn lint_each(
    inputs: &[LintInput],
    opts: &LintOptions,
    each: &mut dyn FnMut(MigrationLint),
) -> Result<(), SourceError> {
    for input in inputs {
        match input {
            LintInput::Set(set) => {
                lint_set(set, opts, &mut |m, lint| each(view(m.version.to_string(), m.name.clone(), lint)))
            }
            LintInput::File(path) => {
                let mut linter = Linter::new(opts.clone());
                let text = read_text(path)?;
                let shown = path.display().to_string();
                let lint = linter.lint(SourceFile { path: &shown, source: &text });
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let (version, name) = match stem.split_once('_') {
                    Some((v, n)) if v.chars().all(|c| c.is_ascii_digit()) && !v.is_empty() => {
                        (v.to_string(), n.to_string())
                    }
                    _ => (String::new(), stem),
                };
                each(view(version, name, lint));
            }
        }
    }
    Ok(())
}

fn view(version: String, name: String, lint: FileLint) -> MigrationLint {
    MigrationLint {
        version,
        name,
        file: lint.path,
        transaction: lint.tx_mode,
        risk: RiskView::from(&lint.risk),
        findings: lint.findings,
        suppressed: lint.suppressed,
        errors: lint.errors,
        statements: lint.parsed.statements.len(),
        risk_detail: lint.risk,
    }
}

/// Count statements in a text (used by benchmarks and reports).
pub fn statement_count(text: &str) -> usize {
    parse_sql(text).statements.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_context_flows_between_migrations() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("1_t.sql"), "CREATE TABLE t (id bigint PRIMARY KEY, a int);").unwrap();
        std::fs::write(d.path().join("2_i.sql"), "CREATE INDEX i ON t (a);").unwrap();
        let set = MigrationSet::load(d.path()).unwrap();
        let r = lint_inputs(&[LintInput::Set(Box::new(set))], &LintOptions::default()).unwrap();
        assert!(r.migrations[0].findings.is_empty());
        assert_eq!(r.migrations[1].findings[0].rule, "index-not-concurrent");
        assert!(r.fails(Severity::Warning));
        assert!(!r.fails(Severity::Info) || r.findings().count() > 0);
    }

    #[test]
    fn whole_crates_io_corpus_lints_without_syntax_errors() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/crates-io");
        let set = MigrationSet::load(&dir).unwrap();
        let r = lint_inputs(&[LintInput::Set(Box::new(set))], &LintOptions::default()).unwrap();
        assert_eq!(r.migrations.len(), 284);
        assert_eq!(r.errors().count(), 0, "{:?}", r.errors().next());
        // Real hazards exist in that history (e.g. plain CREATE INDEX on existing tables).
        assert!(r.findings().any(|f| f.rule == "index-not-concurrent"));
        // Tables created by earlier migrations are existing, so early CREATE TABLEs are clean.
        assert!(
            r.migrations[1].findings.iter().all(|f| f.severity < Severity::Warning),
            "{:?}",
            r.migrations[1].findings
        );
    }
}
