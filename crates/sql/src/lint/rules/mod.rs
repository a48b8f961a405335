//! The rules. Each lives in its own file as a small `check` function over the statement
//! model, with its tests beside it; this registry is the only other place a rule is named.

use super::{Cx, Severity, Violation};
use crate::model::{AlterAction, ColumnDef, Constraint, QualName, RelKind, StmtKind};

mod add_column_not_null;
mod add_column_rewrite;
mod alter_column_type;
mod concurrently_in_transaction;
mod constraint_validation;
mod destructive;
mod detach_partition;
mod disable_trigger;
mod domain_check;
mod enum_value;
mod exclude_constraint;
mod frozen_time;
mod index_concurrently;
mod index_search_path;
mod lock_table;
mod locks_after_access_exclusive;
mod non_transactional;
mod rename;
mod rewrites;
mod set_not_null;
mod style;
mod transactions;
mod unbatched_dml;
mod unique_using_index;

macro_rules! registry {
    ($( $variant:ident = $id:literal, $severity:ident, $check:path, $summary:literal; )*
     [internal] $( $ivariant:ident = $iid:literal, $iseverity:ident, $isummary:literal; )*) => {
        /// Every lint rule. Ids are stable; they are what suppressions and settings name. The
        /// internal ones are findings about the lint run itself (not in [`Rule::ALL`], never
        /// run over a statement, not switched off by name).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[allow(missing_docs)]
        pub enum Rule { $( $variant, )* $( $ivariant, )* }

        impl Rule {
            /// All rules, in documentation order.
            pub const ALL: &'static [Rule] = &[ $( Rule::$variant, )* ];

            /// The rule's id, e.g. `index-not-concurrent`.
            pub fn id(self) -> &'static str {
                match self { $( Rule::$variant => $id, )* $( Rule::$ivariant => $iid, )* }
            }

            /// Its severity.
            pub fn severity(self) -> Severity {
                match self { $( Rule::$variant => Severity::$severity, )* $( Rule::$ivariant => Severity::$iseverity, )* }
            }

            /// One line saying what it catches.
            pub fn summary(self) -> &'static str {
                match self { $( Rule::$variant => $summary, )* $( Rule::$ivariant => $isummary, )* }
            }

            pub(crate) fn check(self, cx: &Cx, out: &mut Vec<Violation>) {
                match self { $( Rule::$variant => $check(cx, out), )* $( Rule::$ivariant => no_check(cx, out), )* }
            }
        }
    };
}

fn no_check(_: &Cx, _: &mut Vec<Violation>) {}

registry! {
    IndexNotConcurrent = "index-not-concurrent", Error, index_concurrently::create,
        "CREATE INDEX without CONCURRENTLY on an existing table blocks writes for the whole build";
    DropIndexNotConcurrent = "drop-index-not-concurrent", Warning, index_concurrently::drop,
        "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table";
    ReindexNotConcurrent = "reindex-not-concurrent", Error, index_concurrently::reindex,
        "REINDEX without CONCURRENTLY blocks writes (and reads using the index) for the rebuild";
    ConcurrentlyInTransaction = "concurrently-in-transaction", Error, concurrently_in_transaction::check,
        "a statement that cannot run in a transaction block (CONCURRENTLY, VACUUM…) inside one fails";
    ForeignKeyWithoutNotValid = "foreign-key-without-not-valid", Error, constraint_validation::foreign_key,
        "ADD FOREIGN KEY without NOT VALID scans the table while blocking writes on both tables";
    CheckWithoutNotValid = "check-without-not-valid", Error, constraint_validation::check,
        "ADD CHECK without NOT VALID scans the table under ACCESS EXCLUSIVE";
    EnforceConstraint = "enforce-constraint", Error, constraint_validation::enforce,
        "ALTER CONSTRAINT … ENFORCED checks every row under ACCESS EXCLUSIVE (PostgreSQL 18)";
    ValidateInSameTransaction = "validate-in-same-transaction", Warning, constraint_validation::validate_same_tx,
        "VALIDATE CONSTRAINT in the transaction that added it NOT VALID gains nothing";
    SetNotNull = "set-not-null", Error, set_not_null::check,
        "SET NOT NULL on an existing column scans the table under ACCESS EXCLUSIVE";
    AddColumnNotNullWithoutDefault = "add-column-not-null-without-default", Error, add_column_not_null::check,
        "ADD COLUMN … NOT NULL without a default fails on any table that has rows";
    AddColumnVolatileDefault = "add-column-volatile-default", Error, add_column_rewrite::volatile_default,
        "ADD COLUMN with a volatile default rewrites the table under ACCESS EXCLUSIVE";
    AddColumnDefaultMaybeVolatile = "add-column-default-unknown-volatility", Info, add_column_rewrite::unknown_default,
        "ADD COLUMN default calls a function whose volatility is unknown (volatile means a rewrite)";
    AddColumnSerial = "add-column-serial", Error, add_column_rewrite::serial,
        "adding a serial column rewrites the table to fill it";
    AddColumnIdentity = "add-column-identity", Error, add_column_rewrite::identity,
        "adding an identity column rewrites the table to fill it";
    AddColumnGeneratedStored = "add-column-generated-stored", Error, add_column_rewrite::generated_stored,
        "adding a STORED generated column rewrites the table";
    AlterColumnType = "alter-column-type", Error, alter_column_type::check,
        "changing a column's type rewrites the table, unless the change is binary-compatible";
    AlterColumnTypeRebuild = "alter-column-type-rebuild", Warning, alter_column_type::rebuilds,
        "a type change that keeps the rows still rebuilds some indexes and re-checks CHECKs under ACCESS EXCLUSIVE";
    UniqueWithoutUsingIndex = "unique-without-using-index", Error, unique_using_index::check,
        "ADD UNIQUE / PRIMARY KEY builds its index under ACCESS EXCLUSIVE";
    ExcludeConstraint = "exclude-constraint", Error, exclude_constraint::check,
        "ADD EXCLUDE builds its index and checks every row under ACCESS EXCLUSIVE";
    RenameColumn = "rename-column", Warning, rename::column,
        "renaming a column breaks application instances still using the old name";
    RenameTable = "rename-table", Warning, rename::table,
        "renaming a table breaks application instances still using the old name";
    DropColumn = "drop-column", Warning, destructive::drop_column,
        "DROP COLUMN destroys data and breaks code that still uses the column";
    DropTable = "drop-table", Warning, destructive::drop_table,
        "DROP TABLE destroys data and breaks code that still uses the table";
    DropSchema = "drop-schema", Warning, destructive::drop_schema,
        "DROP SCHEMA destroys everything in it";
    Truncate = "truncate", Warning, destructive::truncate,
        "TRUNCATE removes every row under ACCESS EXCLUSIVE";
    DeleteWithoutWhere = "delete-without-where", Warning, unbatched_dml::delete,
        "DELETE without WHERE removes every row in one transaction";
    UpdateWithoutWhere = "update-without-where", Warning, unbatched_dml::update,
        "UPDATE without WHERE is an unbatched backfill of the whole table";
    VacuumFull = "vacuum-full", Error, rewrites::vacuum_full,
        "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE";
    Cluster = "cluster", Error, rewrites::cluster,
        "CLUSTER rewrites the table under ACCESS EXCLUSIVE";
    RefreshMatviewNotConcurrent = "refresh-matview-not-concurrent", Error, rewrites::refresh_matview,
        "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks every read of the view";
    SetLoggedUnlogged = "set-logged-unlogged", Error, rewrites::set_logged,
        "SET LOGGED / SET UNLOGGED rewrites the table under ACCESS EXCLUSIVE";
    TableRewrite = "table-rewrite", Error, rewrites::other_rewrites,
        "SET TABLESPACE, SET ACCESS METHOD, SET EXPRESSION rewrite the table under ACCESS EXCLUSIVE";
    LockTable = "lock-table", Warning, lock_table::check,
        "LOCK TABLE holds a lock until the transaction ends";
    DisableTrigger = "disable-trigger", Warning, disable_trigger::check,
        "DISABLE TRIGGER stops triggers (ALL: foreign key checks) for every session";
    DetachPartitionNotConcurrent = "detach-partition-not-concurrent", Warning, detach_partition::check,
        "DETACH PARTITION without CONCURRENTLY takes ACCESS EXCLUSIVE on the partitioned table";
    DomainCheckWithoutNotValid = "domain-check-without-not-valid", Warning, domain_check::check,
        "ALTER DOMAIN ADD CHECK without NOT VALID scans every column of that domain";
    EnumValueInTransaction = "enum-value-in-transaction", Error, enum_value::check,
        "ALTER TYPE … ADD VALUE inside a transaction fails before PostgreSQL 12";
    NestedTransaction = "nested-transaction", Error, transactions::nested,
        "BEGIN inside an open transaction is ignored; the next COMMIT ends the outer one";
    UnmatchedCommit = "unmatched-commit", Warning, transactions::unmatched,
        "COMMIT or ROLLBACK with no transaction open: what came before was not atomic";
    UnterminatedTransaction = "unterminated-transaction", Error, no_check,
        "BEGIN without COMMIT: the migration ends with its transaction open";
    LocksAfterAccessExclusive = "locks-after-access-exclusive", Warning, locks_after_access_exclusive::check,
        "a statement takes more locks while ACCESS EXCLUSIVE on another table is held";
    NonTransactionalMigration = "non-transactional-migration", Warning, non_transactional::check,
        "a migration run statement by statement can be left half-applied";
    FrozenTime = "frozen-time", Warning, frozen_time::check,
        "'now', 'today'… in a view, default, check or index is frozen to the time the migration ran";
    IndexSearchPath = "index-search-path", Warning, index_search_path::check,
        "an index or materialized view calls a function whose body relies on search_path: PostgreSQL 17+ cannot build it";
    PreferText = "prefer-text", Info, style::prefer_text,
        "varchar(n) has no advantage over text; changing n later can rewrite";
    PreferBigint = "prefer-bigint", Info, style::prefer_bigint,
        "integer keys run out at 2^31; changing them later rewrites the table";
    PreferTimestamptz = "prefer-timestamptz", Info, style::prefer_timestamptz,
        "timestamp without time zone loses the offset";
    PreferIdentity = "prefer-identity", Info, style::prefer_identity,
        "serial is legacy; identity columns are the standard";
[internal]
    UnknownRule = "unknown-rule", Warning,
        "a suppression comment names a rule that does not exist, so it suppresses nothing";
}

impl Rule {
    /// The rule with this id.
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.iter().copied().find(|r| r.id() == id)
    }
}

/// A rule is shown (and serialised) as its id.
impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl serde::Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

/// A rule equals its id (`index-not-concurrent`).
impl PartialEq<&str> for Rule {
    fn eq(&self, id: &&str) -> bool {
        self.id() == *id
    }
}

/// An id that names no rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule `{0}` (run `migsafe rules` for the list)")]
pub struct UnknownRule(pub String);

impl std::str::FromStr for Rule {
    type Err = UnknownRule;
    fn from_str(id: &str) -> Result<Rule, UnknownRule> {
        Rule::from_id(id).ok_or_else(|| UnknownRule(id.to_string()))
    }
}

/// Rules are named by their ids in settings (`[lint] disable = ["prefer-text"]`); an id that
/// names no rule is an error where the settings are read.
impl<'de> serde::Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A violation with this message and help.
pub(super) fn violation(message: impl Into<String>, help: impl Into<String>) -> Violation {
    Violation { message: message.into(), help: help.into() }
}

/// The ALTER TABLE actions of the statement, when it alters a table.
pub(super) fn table_actions<'a>(cx: &'a Cx) -> Option<(&'a QualName, &'a [AlterAction])> {
    match &cx.stmt.kind {
        StmtKind::AlterTable { table, relkind: RelKind::Table | RelKind::ForeignTable, actions, .. } => {
            Some((table, actions.as_slice()))
        }
        _ => None,
    }
}

/// The ALTER TABLE actions of the statement, when it alters a table that existed before this
/// migration (a table created earlier in it is new and empty: nothing to lock or scan).
pub(super) fn existing_table_actions<'a>(cx: &'a Cx) -> Option<(&'a QualName, &'a [AlterAction])> {
    table_actions(cx).filter(|(table, _)| cx.existing(table))
}

/// Constraints written inline in `ADD COLUMN` on an existing table, with their column: they
/// reach every existing row just as `ADD CONSTRAINT` does.
pub(super) fn inline_constraints<'a>(cx: &'a Cx) -> Vec<(&'a QualName, &'a ColumnDef, &'a Constraint)> {
    let Some((table, actions)) = existing_table_actions(cx) else {
        return vec![];
    };
    actions
        .iter()
        .filter_map(|a| match a {
            AlterAction::AddColumn { column, .. } => Some(column),
            _ => None,
        })
        .flat_map(|col| col.constraints.iter().map(move |k| (table, col, k)))
        .collect()
}

/// The name of a constraint written inline on `col`: its own, or the one PostgreSQL gives it
/// (`suffix`: `fkey`, `check`, `pkey`, `key`).
pub(super) fn inline_name(table: &QualName, col: &ColumnDef, k: &Constraint, suffix: &str) -> String {
    k.name.clone().unwrap_or_else(|| default_constraint_name(&table.name, std::slice::from_ref(&col.name), suffix))
}

/// The safe form of an inline constraint: the column alone, then the constraint added the way
/// `add` says, in a later step.
pub(super) fn split_column_recipe(table: &QualName, col: &ColumnDef, add: &str) -> String {
    format!(
        "add the column alone (instant), then the constraint without the blocking scan:\n  ALTER TABLE {t} ADD COLUMN {c} {ty};\n{add}",
        t = table.sql(),
        c = crate::quote_ident(&col.name),
        ty = col.type_name.sql()
    )
}

pub(super) use super::schema::default_constraint_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for r in Rule::ALL {
            assert!(seen.insert(r.id()), "duplicate {}", r.id());
            assert!(r.id().chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{}", r.id());
            assert_eq!(Rule::from_id(r.id()), Some(*r));
            assert!(!r.summary().is_empty());
        }
    }

    #[test]
    fn constraint_names_follow_postgres() {
        assert_eq!(default_constraint_name("messages", &["user_id".into()], "fkey"), "messages_user_id_fkey");
        // PostgreSQL's makeObjectName cuts the longer part first: a 70-byte table name and a short
        // column keep the column whole.
        let table = "t".repeat(70);
        let name = default_constraint_name(&table, &["author_id".into()], "fkey");
        assert_eq!(name, format!("{}_author_id_fkey", "t".repeat(63 - "_author_id_fkey".len())));
        assert_eq!(name.len(), 63);
        let long = "t".repeat(70);
        assert_eq!(default_constraint_name(&long, &[], "check").len(), 63);
    }
}
