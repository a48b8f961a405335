//! Hazards in the SQL `migsafe diff` writes: every statement that destroys data, may fail on
//! the rows already there, rewrites a table, holds a lock that blocks writes while it scans or
//! builds, or breaks running code. Found by lint's own rules over the DDL, linted after the
//! schema it runs on (so a table that exists is known as existing, with its columns and their
//! types), and by comparing a retyped column's type before with the one after: the conversion
//! `USING col::type` may reject values, or cut and round them without an error.

use std::collections::BTreeMap;

use serde::Serialize;

use migsafe_catalog::{QName, Snapshot};
use migsafe_sql::conversion::Conversion;
use migsafe_sql::lint::hazard::Hazard;
use migsafe_sql::lint::{LintOptions, Linter, SourceFile};
use migsafe_sql::model::{AlterAction, StmtKind, TypeName};
use migsafe_sql::parse::parse_sql;
use migsafe_sql::QualName;

/// One hazard of one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HazardNote {
    /// Its kind.
    pub hazard: Hazard,
    /// The lint rule that found it, or `type-conversion`.
    pub rule: String,
    /// 0-based index of the statement in the SQL.
    pub statement: usize,
    /// 1-based line where the statement starts.
    pub line: usize,
    /// The statement's first line.
    pub sql: String,
    /// What happens.
    pub message: String,
    /// The safer way, where there is one.
    pub safer: String,
}

impl HazardNote {
    /// One line: `KIND (RULE): first line of the statement`.
    pub fn summary(&self) -> String {
        format!("{} ({}): {}", self.hazard.id(), self.rule, self.sql)
    }
}

/// The hazards of `sql`, which runs on the schema `from` (`table_rows`: row counts when known,
/// so what lint says about a table's size is said here too).
pub fn find(sql: &str, from: &Snapshot, table_rows: BTreeMap<QualName, i64>) -> Vec<HazardNote> {
    let mut linter = Linter::new(LintOptions { table_rows, ..Default::default() });
    // The schema it runs on, as the migration before it: its tables are existing ones.
    let before = Snapshot::default().diff(from).to_sql();
    linter.lint(SourceFile { path: "schema before", source: &before });
    let lint = linter.lint(SourceFile { path: "diff", source: sql });
    let line_of = |offset: usize| sql[..offset.min(sql.len())].matches('\n').count() + 1;
    let head = |i: usize| {
        lint.parsed
            .statements
            .get(i)
            .map_or(String::new(), |st| sql[st.span.start..st.span.end].lines().next().unwrap_or("").trim().to_string())
    };
    let mut out: Vec<HazardNote> = lint
        .findings
        .iter()
        .filter_map(|f| {
            Some(HazardNote {
                hazard: f.rule.hazard()?,
                rule: f.rule.id().to_string(),
                statement: f.statement,
                line: f.line,
                sql: head(f.statement),
                message: f.message.clone(),
                safer: f.help.clone(),
            })
        })
        .collect();
    for st in &lint.parsed.statements {
        let StmtKind::AlterTable { table, actions, .. } = &st.kind else { continue };
        let Some(t) = from.tables.get(&QName::new(table.schema.as_deref().unwrap_or("public"), &table.name)) else {
            continue;
        };
        for a in actions {
            let AlterAction::AlterType { column, new_type, .. } = a else { continue };
            let Some(old) = t.columns.iter().find(|c| c.name == *column).and_then(|c| TypeName::parse(&c.type_name))
            else {
                continue;
            };
            let conversion = old.conversion_to(new_type);
            let hazard = match conversion {
                Conversion::Exact => continue,
                Conversion::MayFail => Hazard::MayFail,
                Conversion::LosesData | Conversion::Reinterprets => Hazard::DataLoss,
            };
            out.push(HazardNote {
                hazard,
                rule: "type-conversion".into(),
                statement: st.index,
                line: line_of(st.span.start),
                sql: head(st.index),
                message: format!("column {column}: {}", conversion.describe(&old.sql(), &new_type.sql())),
                safer: match conversion {
                    Conversion::MayFail => format!(
                        "find the values that do not convert first, e.g. SELECT {column} FROM {} WHERE NOT \
                         pg_input_is_valid({column}::text, '{}') (PostgreSQL 16+)",
                        table.sql(),
                        new_type.sql().replace('\'', "''")
                    ),
                    _ => "add a new column of the new type, backfill it with the conversion you choose, and switch \
                          over; keep the old column until the values are checked"
                        .into(),
                },
            });
        }
    }
    out.sort_by_key(|h| (h.statement, h.hazard, h.rule.clone()));
    out
}

/// `sql` with each statement that has hazards preceded by `-- hazard:` comment lines (and
/// `--   safer:` lines with the safer way).
pub fn annotate(sql: &str, notes: &[HazardNote]) -> String {
    let parsed = parse_sql(sql);
    let mut by_start: BTreeMap<usize, Vec<&HazardNote>> = BTreeMap::new();
    for n in notes {
        if let Some(st) = parsed.statements.get(n.statement) {
            let line_start = sql[..st.span.start].rfind('\n').map_or(0, |i| i + 1);
            by_start.entry(line_start).or_default().push(n);
        }
    }
    let mut out = String::with_capacity(sql.len() + notes.len() * 120);
    let mut at = 0;
    for (start, ns) in by_start {
        out.push_str(&sql[at..start]);
        for n in ns {
            out.push_str(&format!("-- hazard: {} ({}): {}\n", n.hazard.id(), n.rule, one_line(&n.message)));
            for (i, l) in n.safer.lines().filter(|l| !l.trim().is_empty()).enumerate() {
                out.push_str(if i == 0 { "--   safer: " } else { "--          " });
                out.push_str(l.trim_end());
                out.push('\n');
            }
        }
        at = start;
    }
    out.push_str(&sql[at..]);
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
