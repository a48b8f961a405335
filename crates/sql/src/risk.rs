//! The guide's risk classification (Low / Medium / High), downtime estimate, testing required
//! and approval matrix, computed per migration from its statements and table sizes.

use serde::Serialize;
use std::fmt;

use crate::directives::Directives;
use crate::lint::Cx;
use crate::model::*;

/// Tables at or above this many rows are "large" in the guide's sense.
pub const LARGE_TABLE_ROWS: i64 = 1_000_000;

/// A risk level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    /// No downtime; development + staging testing.
    Low,
    /// 0–5 minutes; adds performance testing.
    Medium,
    /// 5–60 minutes; adds load testing and a rehearsal.
    High,
}

impl RiskLevel {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
        }
    }

    /// The guide's downtime estimate for the level.
    pub fn downtime(self) -> &'static str {
        match self {
            RiskLevel::Low => "none",
            RiskLevel::Medium => "0-5 minutes",
            RiskLevel::High => "5-60 minutes",
        }
    }

    /// The guide's testing requirement for the level.
    pub fn testing(self) -> Vec<String> {
        let mut t = vec!["development".to_string(), "staging".to_string()];
        if self >= RiskLevel::Medium {
            t.push("performance testing".into());
        }
        if self == RiskLevel::High {
            t.push("load testing".into());
            t.push("rehearsal".into());
        }
        t
    }

    fn parse(s: &str) -> Option<RiskLevel> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Some(RiskLevel::Low),
            "medium" => Some(RiskLevel::Medium),
            "high" => Some(RiskLevel::High),
            _ => None,
        }
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason a migration has the level it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskReason {
    /// Level this change alone implies.
    pub level: RiskLevel,
    /// Index of the statement.
    pub statement: usize,
    /// What and why, e.g. "drops column users.full_name (data)".
    pub text: String,
    /// The change destroys data.
    pub destroys_data: bool,
    /// The table it concerns.
    pub table: Option<QualName>,
}

/// The approval, review and documentation the guide's matrix asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// Row of the guide's matrix, 1 (lowest) to 5.
    pub tier: u8,
    /// Why this row.
    pub basis: String,
    /// Who must approve.
    pub approvers: Vec<String>,
    /// Reviews required.
    pub reviews: Vec<String>,
    /// Documentation required.
    pub documentation: String,
}

/// A migration's risk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Risk {
    /// Level.
    pub level: RiskLevel,
    /// Each change that set it, highest first.
    pub reasons: Vec<RiskReason>,
    /// The guide's downtime estimate.
    pub downtime: String,
    /// Testing required.
    pub testing: Vec<String>,
    /// Approvals required.
    pub approval: Approval,
    /// The `-- Complexity:` header, when the file has one.
    pub declared: Option<String>,
}

impl Risk {
    /// Combine statement reasons into the migration's risk.
    pub fn from_reasons(mut reasons: Vec<RiskReason>, directives: &Directives) -> Risk {
        reasons.sort_by(|a, b| b.level.cmp(&a.level).then(a.statement.cmp(&b.statement)));
        let mut level = reasons.iter().map(|r| r.level).max().unwrap_or(RiskLevel::Low);
        let declared = directives.complexity.clone();
        if let Some(d) = declared.as_deref().and_then(RiskLevel::parse) {
            // A human may raise the level, never lower what the statements imply.
            level = level.max(d);
        }
        let approval = approval(level, &reasons);
        Risk { level, downtime: level.downtime().into(), testing: level.testing(), approval, reasons, declared }
    }

    /// The level with no reasons (an empty migration).
    pub fn low() -> Risk {
        Risk::from_reasons(vec![], &Directives::default())
    }
}

fn approval(level: RiskLevel, reasons: &[RiskReason]) -> Approval {
    let high: Vec<&RiskReason> = reasons.iter().filter(|r| r.level == RiskLevel::High).collect();
    let mut tables: Vec<&QualName> = high.iter().filter_map(|r| r.table.as_ref()).collect();
    tables.sort();
    tables.dedup();
    let destroys = reasons.iter().any(|r| r.destroys_data);
    let (tier, basis) = match level {
        RiskLevel::Low => (1, "low risk".to_string()),
        RiskLevel::Medium => (2, "medium risk".to_string()),
        RiskLevel::High if high.len() >= 3 && tables.len() >= 2 => {
            (5, format!("major restructuring: {} high-risk changes across {} tables", high.len(), tables.len()))
        }
        RiskLevel::High if destroys => (4, "high risk and destroys data".to_string()),
        RiskLevel::High => (3, "high risk".to_string()),
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let (approvers, reviews, documentation) = match tier {
        1 => (vec![], vec![], "optional"),
        2 => (s(&["Technical Lead"]), s(&["peer review"]), "migration plan"),
        3 => (s(&["Technical Lead"]), s(&["peer review", "QA"]), "migration plan + rollback script"),
        4 => (
            s(&["Technical Lead", "Product Owner"]),
            s(&["peer review", "QA", "load testing"]),
            "full migration playbook",
        ),
        _ => (
            s(&["Technical Lead", "Product Owner", "CTO"]),
            s(&["architecture review", "security review"]),
            "full migration playbook + rehearsal report + stakeholder communication",
        ),
    };
    Approval { tier, basis, approvers, reviews, documentation: documentation.into() }
}

/// "~1.2M rows", "~3,400 rows".
pub fn rows_text(n: i64) -> String {
    if n >= 1_000_000 {
        format!("~{:.1}M rows", n as f64 / 1e6)
    } else if n >= 10_000 {
        format!("~{}k rows", n / 1000)
    } else {
        format!("{n} rows")
    }
}

/// The floor an `error` finding puts under a migration's risk: an error on an existing table is
/// never LOW; on a large table, or one of unknown size, it is HIGH (the guide's 1M rows).
pub(crate) fn error_floor(cx: &Cx, rule: crate::lint::Rule) -> Option<RiskReason> {
    let table = match &cx.stmt.kind {
        StmtKind::AlterTable { table, .. }
        | StmtKind::CreateIndex { table, .. }
        | StmtKind::Update { table, .. }
        | StmtKind::Delete { table, .. }
        | StmtKind::Insert { table, .. }
        | StmtKind::Merge { table, .. } => table,
        StmtKind::Truncate { tables, .. } | StmtKind::Lock { tables, .. } => tables.first()?,
        // A domain's constraint is checked on the tables with a column of it.
        StmtKind::AlterDomain { name, .. } => {
            use crate::lock::LockCatalog;
            let on = cx.schema.domain_tables(name).into_iter().find(|t| cx.existing(t));
            return Some(match on {
                Some(t) => floor_on(cx, rule, &t),
                None => error_without_table(cx.stmt.index, rule),
            });
        }
        // A statement on no one table (REINDEX, VACUUM, a trigger…): an error finding there is
        // never LOW either.
        _ => return Some(error_without_table(cx.stmt.index, rule)),
    };
    if !cx.existing(table) {
        return None;
    }
    Some(floor_on(cx, rule, table))
}

/// The floor of a finding on the existing table `table`.
fn floor_on(cx: &Cx, rule: crate::lint::Rule, table: &QualName) -> RiskReason {
    let (is_large, sized) = large(cx, table);
    let level = if is_large { RiskLevel::High } else { RiskLevel::Medium };
    RiskReason {
        level,
        statement: cx.stmt.index,
        text: format!("{} finding {rule} on existing table {sized}", rule.severity().as_str()),
        destroys_data: false,
        table: Some(table.clone()),
    }
}

/// The floor of an `error` finding about no one table (a statement on none, or the end of the
/// file with its transaction open): MEDIUM.
pub(crate) fn error_without_table(statement: usize, rule: crate::lint::Rule) -> RiskReason {
    RiskReason {
        level: RiskLevel::Medium,
        statement,
        text: format!("{} finding {rule}", rule.severity().as_str()),
        destroys_data: false,
        table: None,
    }
}

/// Whether `t` counts as large (over the guide's 1M rows, or of unknown size), and its name
/// with its size for a reason's text.
fn large(cx: &Cx, t: &QualName) -> (bool, String) {
    match cx.rows(t) {
        Some(n) => (n >= LARGE_TABLE_ROWS, format!("{t} ({})", rows_text(n))),
        None => (true, format!("{t} (size unknown: treated as over 1M rows)")),
    }
}

/// What each statement contributes to the migration's risk.
pub(crate) fn assess(cx: &Cx) -> Vec<RiskReason> {
    let mut out = Vec::new();
    let idx = cx.stmt.index;
    let mut push = |level: RiskLevel, text: String, destroys: bool, table: Option<&QualName>| {
        out.push(RiskReason { level, statement: idx, text, destroys_data: destroys, table: table.cloned() })
    };
    let large = |t: &QualName| large(cx, t);
    match &cx.stmt.kind {
        StmtKind::CreateTable { table, .. } => {
            push(RiskLevel::Low, format!("creates table {table}"), false, Some(table))
        }
        StmtKind::CreateTableAs { table, materialized, .. } => push(
            RiskLevel::Low,
            format!("creates {} {table}", if *materialized { "materialized view" } else { "table" }),
            false,
            Some(table),
        ),
        StmtKind::CreateView { view, replace, .. } => push(
            RiskLevel::Low,
            format!("{} view {view}", if *replace { "creates or replaces" } else { "creates" }),
            false,
            None,
        ),
        StmtKind::Comment { .. } => push(RiskLevel::Low, "adds a comment".into(), false, None),
        StmtKind::CreateIndex { table, .. } => {
            if !cx.existing(table) {
                push(RiskLevel::Low, format!("creates an index on new table {table}"), false, Some(table));
            } else {
                let (is_large, t) = large(table);
                if is_large {
                    push(RiskLevel::Medium, format!("creates an index on large table {t}"), false, Some(table));
                } else {
                    push(RiskLevel::Low, format!("creates an index on small table {t}"), false, Some(table));
                }
            }
        }
        StmtKind::AlterTable { table, actions, .. } if cx.existing(table) => {
            for a in actions {
                alter_reason(cx, table, a, &mut push);
            }
        }
        StmtKind::AlterTable { table, .. } => {
            push(RiskLevel::Low, format!("alters new table {table}"), false, Some(table))
        }
        StmtKind::Drop { kind: ObjectKind::Table, names, .. } => {
            for t in names {
                if cx.existing(t) {
                    push(RiskLevel::High, format!("drops table {t} with its data"), true, Some(t));
                }
            }
        }
        StmtKind::Drop { kind: ObjectKind::Schema, names, .. } => {
            for s in names {
                push(RiskLevel::High, format!("drops schema {s} and everything in it"), true, Some(s));
            }
        }
        StmtKind::Drop { kind: ObjectKind::Index, names, concurrently, .. } => {
            let level = if *concurrently { RiskLevel::Low } else { RiskLevel::Medium };
            for n in names {
                push(level, format!("drops index {n}"), false, None);
            }
        }
        StmtKind::Drop { kind, names, .. } => {
            for n in names {
                push(RiskLevel::Medium, format!("drops {} {n}", format!("{kind:?}").to_lowercase()), false, None);
            }
        }
        StmtKind::Rename { kind: ObjectKind::Column, object, column: Some(c), new_name } if cx.existing(object) => {
            push(RiskLevel::High, format!("renames column {object}.{c} to {new_name}"), false, Some(object))
        }
        StmtKind::Rename { kind: ObjectKind::Table, object, new_name, .. } if cx.existing(object) => {
            push(RiskLevel::High, format!("renames table {object} to {new_name}"), false, Some(object))
        }
        StmtKind::Truncate { tables, .. } => {
            for t in tables.iter().filter(|t| cx.existing(t)) {
                push(RiskLevel::High, format!("truncates {t}"), true, Some(t));
            }
        }
        StmtKind::Update { table, has_where, .. } | StmtKind::Delete { table, has_where, .. } if cx.existing(table) => {
            let verb = if matches!(cx.stmt.kind, StmtKind::Update { .. }) { "updates" } else { "deletes" };
            let destroys = verb == "deletes";
            let (is_large, t) = large(table);
            if !has_where && is_large {
                push(RiskLevel::High, format!("large data migration: {verb} every row of {t}"), destroys, Some(table));
            } else {
                push(RiskLevel::Medium, format!("batch data update: {verb} rows of {t}"), destroys, Some(table));
            }
        }
        StmtKind::Merge { table, updates, deletes, inserts } if cx.existing(table) => {
            let what: Vec<&str> = [(updates.is_some(), "updates"), (*deletes, "deletes"), (*inserts, "inserts")]
                .into_iter()
                .filter_map(|(on, w)| on.then_some(w))
                .collect();
            let (_, t) = large(table);
            push(
                RiskLevel::Medium,
                format!("batch data update: MERGE {} rows of {t}", what.join("/")),
                *deletes,
                Some(table),
            )
        }
        StmtKind::Insert { table, from_select: true, .. } if cx.existing(table) => push(
            RiskLevel::Medium,
            format!("batch data update: inserts rows into {table} from a query"),
            false,
            Some(table),
        ),
        StmtKind::CreateFunction { name, replace: true, .. }
            if cx.schema.function_volatile(&name.name.to_lowercase()).is_some() =>
        {
            push(RiskLevel::Medium, format!("modifies function {name} (CREATE OR REPLACE)"), false, None)
        }
        StmtKind::CreateFunction { name, .. } => push(RiskLevel::Low, format!("creates function {name}"), false, None),
        StmtKind::Vacuum { full: true, .. } | StmtKind::Cluster { .. } => {
            push(RiskLevel::High, format!("{} rewrites tables under ACCESS EXCLUSIVE", cx.stmt.tag), false, None)
        }
        StmtKind::RefreshMatView { view, concurrently: false, .. } if cx.existing(view) => {
            push(RiskLevel::Medium, format!("refreshes {view}, blocking its readers"), false, None)
        }
        StmtKind::Lock { tables, .. } => {
            for t in tables.iter().filter(|t| cx.existing(t)) {
                push(RiskLevel::Medium, format!("locks {t} explicitly"), false, Some(t));
            }
        }
        _ => {}
    }
    out
}

fn alter_reason(
    cx: &Cx,
    table: &QualName,
    a: &AlterAction,
    push: &mut impl FnMut(RiskLevel, String, bool, Option<&QualName>),
) {
    use RiskLevel::*;
    let t = Some(table);
    match a {
        AlterAction::AddColumn { column, .. } => {
            let c = &column.name;
            let rewrite =
                column.type_name.is_serial() || column.identity || column.generated == Some(Generated::Stored);
            // Constraints written inline reach every existing row like ADD CONSTRAINT does: a
            // CHECK or FOREIGN KEY is validated by a scan, PRIMARY KEY / UNIQUE build an index,
            // all under the ACCESS EXCLUSIVE lock ADD COLUMN holds.
            // (NOT VALID and NOT ENFORCED only exist for CHECK and FOREIGN KEY.)
            let checked = |k: &&Constraint| {
                !matches!(k.kind, ConstraintKind::Check(_) | ConstraintKind::ForeignKey { .. })
                    || !(k.not_valid || k.not_enforced)
            };
            for k in column.constraints.iter().filter(checked) {
                let (is_large, sized) = large(cx, table);
                let what = match &k.kind {
                    ConstraintKind::ForeignKey { references, .. } => {
                        format!("a FOREIGN KEY to {references}, validated by scanning")
                    }
                    ConstraintKind::Check(_) => "a CHECK, validated by scanning".to_string(),
                    ConstraintKind::PrimaryKey | ConstraintKind::Unique | ConstraintKind::Exclude => {
                        "a unique/exclusion index, built by scanning".to_string()
                    }
                    ConstraintKind::NotNull => continue,
                };
                let level = if is_large { High } else { Medium };
                push(level, format!("adds column {table}.{c} with {what} {sized} under ACCESS EXCLUSIVE"), false, t);
            }
            if rewrite {
                push(High, format!("adds column {table}.{c} that rewrites the table"), false, t)
            } else if column.not_null {
                push(Medium, format!("adds NOT NULL column {table}.{c} with a default"), false, t)
            } else {
                push(Low, format!("adds nullable column {table}.{c}"), false, t)
            }
        }
        AlterAction::DropColumn { column, .. } => {
            push(High, format!("drops column {table}.{column} with its data"), true, t)
        }
        AlterAction::AlterType { column, new_type, using, .. } => {
            let old = cx.schema.table(table).and_then(|i| i.column(column)).map(|c| c.type_name.clone());
            let safe = using.is_none() && old.as_ref().is_some_and(|o| o.binary_compatible_to(new_type));
            if safe {
                push(Low, format!("widens the type of {table}.{column} (no rewrite)"), false, t)
            } else {
                push(High, format!("changes the type of {table}.{column} to {}", new_type.sql()), false, t)
            }
        }
        AlterAction::SetNotNull { column } => {
            if cx.opts.pg_version >= 12 && cx.schema.has_validated_not_null_check(table, column) {
                push(Low, format!("sets NOT NULL on {table}.{column}, proven by a validated CHECK"), false, t)
            } else {
                push(High, format!("adds NOT NULL to existing column {table}.{column}"), false, t)
            }
        }
        AlterAction::AddConstraint(c) => match &c.kind {
            ConstraintKind::ForeignKey { references, .. } => {
                push(Medium, format!("adds a foreign key from {table} to {references}"), false, t)
            }
            ConstraintKind::Check(_) if c.not_enforced => {
                push(Low, format!("adds a NOT ENFORCED CHECK constraint to {table} (not checked)"), false, t)
            }
            ConstraintKind::Check(_) if c.not_valid => {
                push(Low, format!("adds a CHECK constraint to {table} (NOT VALID)"), false, t)
            }
            ConstraintKind::Check(_) => push(Medium, format!("adds a CHECK constraint to {table}"), false, t),
            ConstraintKind::PrimaryKey | ConstraintKind::Unique | ConstraintKind::Exclude => {
                push(Medium, format!("adds a unique/exclusion constraint to {table}"), false, t)
            }
            ConstraintKind::NotNull if c.not_valid => {
                push(Low, format!("adds a NOT NULL constraint to {table} (NOT VALID)"), false, t)
            }
            ConstraintKind::NotNull
                if c.columns.iter().all(|col| cx.schema.has_validated_not_null_check(table, col)) =>
            {
                push(Low, format!("adds a NOT NULL constraint to {table}, proven by a validated constraint"), false, t)
            }
            ConstraintKind::NotNull => {
                push(High, format!("adds a NOT NULL constraint to existing table {table}"), false, t)
            }
        },
        AlterAction::AlterConstraint { name, enforce: Some(true) } => {
            push(High, format!("enforces constraint {name} on {table} (full scan under ACCESS EXCLUSIVE)"), false, t)
        }
        AlterAction::ValidateConstraint { name } => {
            push(Medium, format!("validates constraint {name} on {table} (full scan, no blocking lock)"), false, t)
        }
        AlterAction::SetExpression { column } if !cx.schema.is_virtual_column(table, column) => {
            push(High, format!("recomputes generated column {table}.{column} (rewrites the table)"), false, t)
        }
        AlterAction::SetPersistence { .. } | AlterAction::SetTablespace | AlterAction::SetAccessMethod { .. } => {
            push(High, format!("rewrites {table}"), false, t)
        }
        AlterAction::Trigger { enable: false, .. } => push(Medium, format!("disables triggers on {table}"), false, t),
        AlterAction::DropConstraint { name, .. } => push(Low, format!("drops constraint {name} on {table}"), false, t),
        _ => push(Low, format!("alters {table}"), false, t),
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::{LintOptions, Linter, SourceFile};
    use crate::model::QualName;

    use super::*;

    fn risk(sql: &str) -> Risk {
        risk_with(sql, LintOptions::default())
    }

    fn risk_with(sql: &str, opts: LintOptions) -> Risk {
        Linter::new(opts).lint(SourceFile { path: "m.sql", source: sql }).risk
    }

    #[test]
    fn merge_is_a_data_migration() {
        let r = risk("MERGE INTO prices p USING staging s ON p.sku = s.sku WHEN MATCHED THEN DELETE;");
        assert_eq!(r.level, RiskLevel::Medium);
        assert!(r.reasons.iter().any(|x| x.text.contains("MERGE deletes rows of prices")), "{:?}", r.reasons);
        assert!(
            risk("CREATE TABLE p (a int); MERGE INTO p USING s ON true WHEN MATCHED THEN DELETE;").level
                == RiskLevel::Low
        );
    }

    #[test]
    fn guide_examples() {
        assert_eq!(risk("ALTER TABLE users ADD COLUMN new_field TEXT NULL;").level, RiskLevel::Low);
        assert_eq!(risk("CREATE TABLE new_feature (id bigint);").level, RiskLevel::Low);
        assert_eq!(risk("COMMENT ON TABLE users IS 'x';").level, RiskLevel::Low);
        assert_eq!(risk("ALTER TABLE users ADD COLUMN a boolean NOT NULL DEFAULT false;").level, RiskLevel::Medium);
        assert_eq!(
            risk("ALTER TABLE m ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES users(id) NOT VALID;").level,
            RiskLevel::Medium
        );
        assert_eq!(risk("UPDATE users SET a = 1 WHERE id < 10;").level, RiskLevel::Medium);
        assert_eq!(risk("ALTER TABLE users DROP COLUMN full_name;").level, RiskLevel::High);
        assert_eq!(risk("ALTER TABLE users RENAME COLUMN a TO b;").level, RiskLevel::High);
        assert_eq!(risk("ALTER TABLE users ALTER COLUMN id TYPE bigint;").level, RiskLevel::High);
        assert_eq!(risk("DROP TABLE users;").level, RiskLevel::High);
    }

    #[test]
    fn index_risk_depends_on_size() {
        let sql = "CREATE INDEX CONCURRENTLY i ON public.messages (a);";
        assert_eq!(risk(sql).level, RiskLevel::Medium, "unknown size is large");
        let mut opts = LintOptions::default();
        opts.table_rows.insert(QualName::qualified("public", "messages"), 5_000);
        assert_eq!(risk_with(sql, opts.clone()).level, RiskLevel::Low);
        opts.table_rows.insert(QualName::qualified("public", "messages"), 2_000_000);
        let r = risk_with(sql, opts);
        assert_eq!(r.level, RiskLevel::Medium);
        assert!(r.reasons[0].text.contains("~2.0M rows"), "{:?}", r.reasons);
    }

    #[test]
    fn downtime_testing_and_approvals() {
        let r = risk("ALTER TABLE users DROP COLUMN full_name;");
        assert_eq!(r.downtime, "5-60 minutes");
        assert!(r.testing.contains(&"rehearsal".to_string()));
        assert_eq!(r.approval.tier, 4);
        assert_eq!(r.approval.approvers, vec!["Technical Lead", "Product Owner"]);
        let r = risk("ALTER TABLE a DROP COLUMN x; ALTER TABLE b DROP COLUMN y; ALTER TABLE b RENAME COLUMN z TO w;");
        assert_eq!(r.approval.tier, 5);
        assert!(r.approval.approvers.contains(&"CTO".to_string()));
        let r = risk("CREATE TABLE t (id bigint);");
        assert_eq!(r.approval.tier, 1);
        assert!(r.approval.approvers.is_empty());
    }

    #[test]
    fn declared_complexity_can_only_raise() {
        let r = risk("-- Complexity: HIGH\nCREATE TABLE t (id bigint);");
        assert_eq!(r.level, RiskLevel::High);
        let r = risk("-- Complexity: LOW\nDROP TABLE users;");
        assert_eq!(r.level, RiskLevel::High);
    }
}
