//! The report every rehearsal-like command produces (rehearse, rollback check, rollback
//! generate): what ran, step by step, serialisable, rendered by the CLI. The JSON shape is
//! stable and documented in the README.

use serde::Serialize;

use crate::lint::RiskView;

/// One step of one migration.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StepReport {
    /// `forward`, `verify`, `checks`, `rollback`, `compare`, `data`, `reapply`, `performance`…
    pub step: String,
    /// Passed.
    pub ok: bool,
    /// Duration in milliseconds.
    pub ms: f64,
    /// What happened, or the exact difference when it failed.
    pub detail: String,
    /// Things worth knowing that do not fail the step.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub warnings: Vec<String>,
}

impl StepReport {
    /// A passed step.
    pub fn pass(step: &str, ms: f64, detail: impl Into<String>) -> StepReport {
        StepReport { step: step.into(), ok: true, ms, detail: detail.into(), warnings: vec![] }
    }

    /// A failed step.
    pub fn fail(step: &str, ms: f64, detail: impl Into<String>) -> StepReport {
        StepReport { step: step.into(), ok: false, ms, detail: detail.into(), warnings: vec![] }
    }

    /// The `compare` step after a rollback: the schema must be back to the one before the
    /// migration (rehearse and `rollback check` both judge it this way).
    ///
    /// An extension the migration creates `IF NOT EXISTS` (`shared`) and the rollback leaves
    /// installed is a warning: the migration treats it as possibly there already (other schemas
    /// or applications may use it), so a rollback that keeps it is a choice, not a fault.
    pub fn rollback_compare(ms: f64, mut d: migsafe_catalog::SchemaDiff<'_>, shared: &[String]) -> StepReport {
        let (kept, others): (Vec<_>, Vec<_>) = std::mem::take(&mut d.differences).into_iter().partition(|x| {
            x.kind == migsafe_catalog::diff::DiffKind::Extension
                && x.change == migsafe_catalog::diff::ChangeKind::Removed
                && shared.contains(&x.name)
        });
        d.differences = others;
        let mut step = StepReport::schema_compare(
            "compare",
            ms,
            d,
            "schema after rollback equals the schema before the migration",
            "schema after rollback differs from before the migration (- left behind by the rollback, + missing after it, ~ changed)",
        );
        step.warnings.extend(kept.iter().map(|x| {
            format!(
                "extension {} stays installed after the rollback: the migration creates it IF NOT EXISTS, as shared; \
                 DROP EXTENSION it by hand if nothing else uses it",
                x.name
            )
        }));
        step
    }

    /// Extensions a migration creates with `IF NOT EXISTS` (see [`StepReport::rollback_compare`]).
    pub fn shared_extensions(statements: &[migsafe_sql::Statement]) -> Vec<String> {
        statements
            .iter()
            .filter_map(|st| match &st.kind {
                migsafe_sql::StmtKind::CreateExtension { name, if_not_exists: true } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// A step that requires two schemas to be equal: passes with `same` when they are, fails
    /// with `differs` and the differences otherwise. Objects that differ only in the time they
    /// froze when created (a view on `'now'::timestamp`) and column order are warnings.
    pub fn schema_compare(
        step: &str,
        ms: f64,
        mut d: migsafe_catalog::SchemaDiff<'_>,
        same: &str,
        differs: &str,
    ) -> StepReport {
        let clock = d.split_clock();
        let mut report = if d.differences.is_empty() {
            StepReport::pass(step, ms, same)
        } else {
            StepReport::fail(step, ms, format!("{differs}:\n{}", d.summary().trim_end()))
        };
        report.warnings.extend(clock.iter().map(migsafe_catalog::diff::clock_warning));
        if d.differences.is_empty() && !d.column_order.is_empty() {
            report.warnings.push(d.summary().trim_end().to_string());
        }
        report
    }
}

/// A table lock the migration held: on which relation, in which mode, for how long.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LockHold {
    /// Relation.
    pub relation: String,
    /// Lock mode (serialised as `pg_locks` names it: `AccessExclusiveLock`…).
    pub mode: migsafe_sql::lock::LockMode,
    /// Milliseconds from when it was first seen until it was released (commit).
    pub held_ms: f64,
    /// Milliseconds from the start of the migration when it was taken.
    pub start_ms: f64,
    /// The statement that took it (tag and line).
    pub statement: String,
    /// What it blocks for ordinary traffic (`reads_and_writes`, `writes`, `nothing`).
    pub blocks: migsafe_sql::lock::Blocks,
}

/// A table or index whose storage was rewritten (its relfilenode changed).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Rewrite {
    /// Relation.
    pub relation: String,
    /// The statement that rewrote it.
    pub statement: String,
}

/// One difference between lint's prediction and what PostgreSQL did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ModelMismatch {
    /// 1-based line of the statement.
    pub line: usize,
    /// Its command tag.
    pub statement: String,
    /// The table.
    pub relation: String,
    /// `lock`, `rewrite` or `scan`.
    pub about: String,
    /// What lint predicted (`ACCESS EXCLUSIVE`, `no lock`, `rewrite`, `no rewrite`).
    pub predicted: String,
    /// What the server did.
    pub observed: String,
}

impl ModelMismatch {
    /// As a warning line.
    pub fn text(&self) -> String {
        format!(
            "lint-model: line {} {}: on {}, lint predicted {} and PostgreSQL {}",
            self.line, self.statement, self.relation, self.predicted, self.observed
        )
    }
}

/// Everything about one migration.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct MigrationReport {
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// Every step passed.
    pub ok: bool,
    /// Steps in order.
    pub steps: Vec<StepReport>,
    /// Locks the forward migration held.
    pub locks: Vec<LockHold>,
    /// Relations it rewrote.
    pub rewrites: Vec<Rewrite>,
    /// Where lint's model of locks and rewrites differs from what the server did (rehearse).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lint_model: Vec<ModelMismatch>,
    /// Its risk (from lint and, with --rows, real sizes).
    pub risk: Option<RiskView>,
    /// Statement timings of the forward run: (line, tag, ms).
    pub statements: Vec<(usize, String, f64)>,
    /// Where the rollback used came from: `hand-written`, `generated`, or none.
    pub rollback: Option<String>,
}

impl MigrationReport {
    /// A report with no steps yet.
    pub fn new(version: &str, name: &str) -> MigrationReport {
        MigrationReport {
            version: version.into(),
            name: name.into(),
            ok: true,
            steps: vec![],
            locks: vec![],
            rewrites: vec![],
            lint_model: vec![],
            risk: None,
            statements: vec![],
            rollback: None,
        }
    }

    /// Add a step (a failed step fails the migration).
    pub fn push(&mut self, step: StepReport) {
        if !step.ok {
            self.ok = false;
        }
        self.steps.push(step);
    }

    /// The id `054_add_message_bookmarks`.
    pub fn id(&self) -> String {
        format!("{}_{}", self.version, self.name)
    }
}

/// A whole run.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Report {
    /// Every migration passed.
    pub ok: bool,
    /// Command that produced it.
    pub command: String,
    /// PostgreSQL version it ran on.
    pub server_version: String,
    /// Migrations in order.
    pub migrations: Vec<MigrationReport>,
    /// Total wall time in milliseconds.
    pub ms: f64,
}

impl Report {
    /// Assemble, computing `ok`.
    pub fn new(command: &str, server_version: String, migrations: Vec<MigrationReport>, ms: f64) -> Report {
        let ok = migrations.iter().all(|m| m.ok);
        Report { ok, command: command.into(), server_version, migrations, ms }
    }
}
