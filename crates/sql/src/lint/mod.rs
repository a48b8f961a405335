//! The linter: rules over the statement model, with the context that makes them exact
//! (what earlier statements and migrations created, whether a statement runs in a
//! transaction, which PostgreSQL version, how big each table is).

pub mod hazard;
mod rules;
pub mod schema;
mod tx;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::directives::{suppressions, Directives};
use crate::model::{QualName, Statement};
use crate::parse::{parse_sql, ParsedSql};
use crate::risk::{self, Risk};
use crate::span::{LineIndex, Span};
pub use rules::{Rule, UnknownRule};
use schema::SchemaModel;
pub use tx::TxMode;
use tx::TxTracker;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never a hazard by itself.
    Info,
    /// A real hazard that may be acceptable with care (data loss, brief locks, breaking renames).
    Warning,
    /// Will fail, or will block production traffic for time that grows with the table.
    Error,
}

impl Severity {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no severity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown severity {0:?} (expected info, warning or error)")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;
    fn from_str(s: &str) -> Result<Self, UnknownSeverity> {
        match s.to_ascii_lowercase().as_str() {
            "info" => Ok(Severity::Info),
            "warning" | "warn" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            other => Err(UnknownSeverity(other.to_string())),
        }
    }
}

/// One hazard found in a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule (serialised as its id, e.g. `index-not-concurrent`).
    pub rule: Rule,
    /// Severity.
    pub severity: Severity,
    /// File the statement is in.
    pub file: String,
    /// 1-based line of the statement.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// 1-based line where the statement ends.
    pub end_line: usize,
    /// 1-based column where the statement ends.
    pub end_column: usize,
    /// Byte span in the file.
    pub span: Span,
    /// What happens in production.
    pub message: String,
    /// The safe alternative, as concrete SQL where there is one.
    pub help: String,
    /// Index of the statement in the file.
    pub statement: usize,
}

/// A syntax error located in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocatedError {
    /// File.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Byte offset.
    pub offset: usize,
    /// PostgreSQL's message.
    pub message: String,
    /// The source line.
    pub source_line: String,
}

/// Settings for a lint run.
#[derive(Debug, Clone)]
pub struct LintOptions {
    /// PostgreSQL major version the migrations will run on.
    pub pg_version: u32,
    /// Rules switched off for the project.
    pub disabled: BTreeSet<Rule>,
    /// Row counts of existing tables (schema-qualified), when a database was consulted.
    pub table_rows: BTreeMap<QualName, i64>,
    /// The session's TimeZone when the migrations start, when a database was consulted (a
    /// file's own `SET timezone` overrides it): in UTC, timestamp ↔ timestamptz keeps the rows.
    pub time_zone: Option<String>,
}

impl Default for LintOptions {
    fn default() -> Self {
        LintOptions {
            pg_version: DEFAULT_PG_VERSION,
            disabled: BTreeSet::new(),
            table_rows: BTreeMap::new(),
            time_zone: None,
        }
    }
}

/// The PostgreSQL major version assumed when none is given.
pub const DEFAULT_PG_VERSION: u32 = 15;

/// One migration file to lint.
#[derive(Debug, Clone, Copy)]
pub struct SourceFile<'a> {
    /// Path as shown to the user.
    pub path: &'a str,
    /// The SQL.
    pub source: &'a str,
}

/// The result of linting one file.
#[derive(Debug, Clone)]
pub struct FileLint {
    /// Path as given.
    pub path: String,
    /// Parsed statements and comments.
    pub parsed: ParsedSql,
    /// Header directives.
    pub directives: Directives,
    /// How migsafe runs the file.
    pub tx_mode: TxMode,
    /// Findings, in source order.
    pub findings: Vec<Finding>,
    /// Findings switched off by a suppression comment or the project settings.
    pub suppressed: usize,
    /// Syntax errors.
    pub errors: Vec<LocatedError>,
    /// Risk of the migration.
    pub risk: Risk,
}

/// What a rule reports before it is located and given its id.
#[derive(Debug, Clone)]
pub(crate) struct Violation {
    pub message: String,
    pub help: String,
}

/// What running every rule over a file's statements gathers.
#[derive(Default)]
struct Gathered {
    /// (rule, statement index, what, where: the statement's span, or for one a DO block runs,
    /// its own span inside the block).
    raw: Vec<(Rule, usize, Violation, Span)>,
    reasons: Vec<risk::RiskReason>,
    /// Risk reasons implied by error findings, kept when the finding is (not suppressed).
    floors: Vec<(Rule, risk::RiskReason)>,
}

impl Gathered {
    /// Run every rule and the risk assessment over the statement of `cx`.
    fn check(&mut self, cx: &Cx) {
        for rule in Rule::ALL {
            let mut out = Vec::new();
            rule.check(cx, &mut out);
            // An error, or a finding that reads a whole table under a lock that blocks writes,
            // puts a floor under the risk.
            if !out.is_empty() && (rule.severity() == Severity::Error || rule.scans()) {
                self.floors.extend(risk::error_floor(cx, *rule).map(|r| (*rule, r)));
            }
            self.raw.extend(out.into_iter().map(|v| (*rule, cx.stmt.index, v, cx.stmt.file_span())));
        }
        self.reasons.extend(risk::assess(cx));
    }
}

/// Everything a rule may read about one statement.
pub(crate) struct Cx<'a> {
    pub stmt: &'a Statement,
    pub source: &'a str,
    pub schema: &'a SchemaModel,
    pub opts: &'a LintOptions,
    pub tx: &'a TxTracker,
    pub tx_mode: &'a TxMode,
    pub statements: &'a [Statement],
}

impl Cx<'_> {
    /// True when `table` existed before this migration (not created earlier in it).
    pub fn existing(&self, table: &QualName) -> bool {
        !self.schema.is_new(table)
    }

    /// Known row count of an existing table.
    pub fn rows(&self, table: &QualName) -> Option<i64> {
        let key = self.schema.resolve(table);
        self.opts.table_rows.get(&key).copied()
    }

    /// "messages (~1.2M rows)" or "messages (size unknown)".
    pub fn sized(&self, table: &QualName) -> String {
        match self.rows(table) {
            Some(n) => format!("{} ({})", table, risk::rows_text(n)),
            None => table.to_string(),
        }
    }

    /// Deparse the statement after changing its tree (for "do this instead" SQL).
    pub fn rewritten(&self, change: impl FnOnce(&mut pg_query::NodeEnum)) -> String {
        let mut node = self.stmt.tree().and_then(|t| t.node);
        match node.as_mut() {
            Some(n) => {
                change(n);
                n.deparse(Default::default()).unwrap_or_else(|_| self.stmt.text(self.source).to_string())
            }
            None => self.stmt.text(self.source).to_string(),
        }
    }
}

/// Lints migration files in order, carrying what earlier files created.
#[derive(Debug, Clone)]
pub struct Linter {
    opts: LintOptions,
    schema: SchemaModel,
}

impl Linter {
    /// A linter with these options and an empty schema model.
    pub fn new(opts: LintOptions) -> Self {
        let schema = SchemaModel::for_version(opts.pg_version);
        Linter { opts, schema }
    }

    /// The options.
    pub fn options(&self) -> &LintOptions {
        &self.opts
    }

    /// Table sizes for the migrations linted from now on (a rehearsal's database grows as it
    /// goes); the schema model of the migrations before stays.
    pub fn set_table_rows(&mut self, rows: std::collections::BTreeMap<QualName, i64>) {
        self.opts.table_rows = rows;
    }

    /// Lint one migration (the next in order); what it creates is existing for the next.
    pub fn lint(&mut self, file: SourceFile<'_>) -> FileLint {
        let parsed = parse_sql(file.source);
        let directives = Directives::parse(file.source);
        self.lint_parsed(file, parsed, directives)
    }

    /// Lint an already parsed migration.
    pub fn lint_parsed(&mut self, file: SourceFile<'_>, parsed: ParsedSql, directives: Directives) -> FileLint {
        let index = LineIndex::new(file.source);
        let tx_mode = TxMode::of(&directives, &parsed.statements);
        let mut tracker = TxTracker::new(&tx_mode);
        let mut gathered = Gathered::default();
        for stmt in &parsed.statements {
            tracker.before(stmt);
            let cx = Cx {
                stmt,
                source: file.source,
                schema: &self.schema,
                opts: &self.opts,
                tx: &tracker,
                tx_mode: &tx_mode,
                statements: &parsed.statements,
            };
            gathered.check(&cx);
            tracker.after(stmt, &self.schema);
            self.schema.apply(stmt);
            // What a DO block runs is read like the statements around it, in its transaction
            // (under the block's index, at its own place in the file; one an EXECUTE computes
            // is read in its own text, at the place of the expression).
            for mut inner in crate::plpgsql::nested(stmt) {
                inner.index = stmt.index;
                gathered.check(&Cx {
                    stmt: &inner,
                    source: if inner.origin.is_some() { inner.own_text() } else { file.source },
                    schema: &self.schema,
                    opts: &self.opts,
                    tx: &tracker,
                    tx_mode: &tx_mode,
                    statements: &parsed.statements,
                });
                self.schema.apply(&inner);
            }
        }
        let Gathered { mut raw, mut reasons, mut floors } = gathered;
        let mut end_violations = Vec::new();
        tracker.finish(&parsed.statements, &mut end_violations);
        for (rule, idx, _) in end_violations.iter().filter(|(r, _, _)| r.severity() == Severity::Error) {
            floors.push((*rule, risk::error_without_table(*idx, *rule)));
        }
        raw.extend(end_violations.into_iter().map(|(r, i, v)| {
            let span = parsed.statements.get(i).map_or(Span::new(0, 0), |s| s.span);
            (r, i, v, span)
        }));
        self.schema.finish_migration();

        let sups = suppressions(&parsed.comments);
        let mut findings = Vec::new();
        let mut suppressed = 0;
        for (rule, idx, v, span) in raw {
            let stmt = &parsed.statements[idx];
            let id = rule.id();
            let by_comment = sups.iter().any(|s| {
                s.rules.iter().any(|r| r == id || r == "all")
                    && (s.whole_file || applies_to(s.span, stmt.span, &parsed.statements, file.source))
            });
            if by_comment || self.opts.disabled.contains(&rule) {
                suppressed += 1;
                continue;
            }
            let start = index.line_col(file.source, span.start);
            let end = index.line_col(file.source, span.end);
            findings.push(Finding {
                rule,
                severity: rule.severity(),
                file: file.path.to_string(),
                line: start.line,
                column: start.column,
                end_line: end.line,
                end_column: end.column,
                span,
                message: v.message,
                help: v.help,
                statement: idx,
            });
        }
        for s in &sups {
            for r in &s.rules {
                if r != "all" && Rule::from_id(r).is_none() {
                    let at = index.line_col(file.source, s.span.start);
                    findings.push(Finding {
                        rule: Rule::UnknownRule,
                        severity: Severity::Warning,
                        file: file.path.to_string(),
                        line: at.line,
                        column: at.column,
                        end_line: at.line,
                        end_column: at.column,
                        span: s.span,
                        message: format!(
                            "the suppression names rule `{r}`, which does not exist, so it suppresses nothing"
                        ),
                        help: "run `migsafe rules` for the list of rule ids".into(),
                        statement: 0,
                    });
                }
            }
        }
        findings.sort_by(|a, b| (a.span.start, a.rule.id()).cmp(&(b.span.start, b.rule.id())));
        let errors = parsed
            .errors
            .iter()
            .map(|e| {
                let at = index.line_col(file.source, e.offset);
                LocatedError {
                    file: file.path.to_string(),
                    line: at.line,
                    column: at.column,
                    offset: e.offset,
                    message: e.message.clone(),
                    source_line: index.line_text(file.source, at.line).to_string(),
                }
            })
            .collect();
        reasons.extend(
            floors
                .into_iter()
                .filter(|(id, r)| findings.iter().any(|f| f.rule == *id && f.statement == r.statement))
                .map(|(_, r)| r),
        );
        let risk = Risk::from_reasons(reasons, &directives);
        FileLint { path: file.path.to_string(), parsed, directives, tx_mode, findings, suppressed, errors, risk }
    }
}

/// A statement-level suppression applies to the statement on the same line before it, else
/// to the first statement after it (or the one containing it).
fn applies_to(comment: Span, stmt: Span, all: &[Statement], source: &str) -> bool {
    if comment.start >= stmt.start && comment.start <= stmt.end {
        return true;
    }
    let line_of = |off: usize| source[..off.min(source.len())].matches('\n').count();
    let trailing = all
        .iter()
        .rev()
        .find(|s| s.span.end <= comment.start)
        .filter(|s| line_of(s.span.end) == line_of(comment.start));
    match trailing {
        Some(s) => s.span == stmt,
        None => all.iter().find(|s| s.span.start >= comment.end).is_some_and(|s| s.span == stmt),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Lint one file in which every table it does not create already exists.
    pub fn lint(sql: &str) -> Vec<Finding> {
        lint_with(sql, LintOptions::default())
    }

    /// Lint one file with options.
    pub fn lint_with(sql: &str, opts: LintOptions) -> Vec<Finding> {
        let mut l = Linter::new(opts);
        let out = l.lint(SourceFile { path: "m.sql", source: sql });
        assert!(out.errors.is_empty(), "syntax errors: {:?}", out.errors);
        out.findings
    }

    /// Lint a set of files in order.
    pub fn lint_set(files: &[&str]) -> Vec<Vec<Finding>> {
        let mut l = Linter::new(LintOptions::default());
        files.iter().map(|f| l.lint(SourceFile { path: "m.sql", source: f }).findings).collect()
    }

    /// Rule ids found.
    pub fn ids(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.rule.id()).collect()
    }

    /// Does `sql` trigger `rule`?
    pub fn flags(sql: &str, rule: &str) -> bool {
        ids(&lint(sql)).contains(&rule)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn suppression_by_comment_before_and_on_same_line() {
        let sql = "-- migsafe:ignore drop-column the app stopped reading it in v41\nALTER TABLE users DROP COLUMN legacy;\nALTER TABLE users DROP COLUMN other; -- migsafe:ignore drop-column unused\nALTER TABLE users DROP COLUMN third;\n";
        let f = lint(sql);
        let drops: Vec<_> = f.iter().filter(|f| f.rule == "drop-column").collect();
        assert_eq!(drops.len(), 1, "{f:#?}");
        assert_eq!(drops[0].line, 4);
    }

    #[test]
    fn unknown_rule_in_suppression_is_reported() {
        let f = lint("-- migsafe:ignore drop-colum typo\nALTER TABLE users DROP COLUMN legacy;");
        assert!(ids(&f).contains(&"unknown-rule"));
        assert!(ids(&f).contains(&"drop-column"));
    }

    #[test]
    fn project_disabled_rules() {
        let mut opts = LintOptions::default();
        opts.disabled.insert(Rule::DropColumn);
        let f = lint_with("ALTER TABLE users DROP COLUMN legacy;", opts);
        assert!(!ids(&f).contains(&"drop-column"));
    }

    #[test]
    fn findings_are_located() {
        let f = lint("SELECT 1;\n\n  CREATE INDEX i ON messages (created_at);");
        let f = f.iter().find(|f| f.rule == "index-not-concurrent").unwrap();
        assert_eq!((f.line, f.column), (3, 3));
    }
}
