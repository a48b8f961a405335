//! PostgreSQL's table lock modes as a type that knows what each mode conflicts with and what
//! it blocks, and the locks each statement takes (predicted from the grammar).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use crate::model::{AlterAction, ConstraintKind, ObjectKind, QualName, StmtKind};

/// A table-level lock mode, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    /// Taken by SELECT.
    AccessShare,
    /// Taken by SELECT … FOR UPDATE / FOR SHARE.
    RowShare,
    /// Taken by INSERT, UPDATE, DELETE.
    RowExclusive,
    /// Taken by VACUUM, ANALYZE, CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT.
    ShareUpdateExclusive,
    /// Taken by CREATE INDEX.
    Share,
    /// Taken by CREATE TRIGGER and ADD FOREIGN KEY.
    ShareRowExclusive,
    /// Taken by REFRESH MATERIALIZED VIEW CONCURRENTLY.
    Exclusive,
    /// Taken by most ALTER TABLE forms, DROP, TRUNCATE, VACUUM FULL, CLUSTER.
    AccessExclusive,
}

/// Every mode, weakest first.
pub const ALL_MODES: [LockMode; 8] = [
    LockMode::AccessShare,
    LockMode::RowShare,
    LockMode::RowExclusive,
    LockMode::ShareUpdateExclusive,
    LockMode::Share,
    LockMode::ShareRowExclusive,
    LockMode::Exclusive,
    LockMode::AccessExclusive,
];

/// What a held lock stops other sessions from doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocks {
    /// Nothing ordinary queries do (only other DDL/maintenance).
    Nothing,
    /// INSERT, UPDATE, DELETE (and SELECT … FOR UPDATE for the strongest of these).
    Writes,
    /// Every query, SELECT included.
    ReadsAndWrites,
}

impl Blocks {
    /// Its name in reports: `nothing`, `writes`, `reads_and_writes`.
    pub fn as_str(self) -> &'static str {
        match self {
            Blocks::Nothing => "nothing",
            Blocks::Writes => "writes",
            Blocks::ReadsAndWrites => "reads_and_writes",
        }
    }

    /// Human description.
    pub fn describe(self) -> &'static str {
        match self {
            Blocks::Nothing => "blocks only other schema changes and maintenance",
            Blocks::Writes => "blocks INSERT, UPDATE and DELETE (reads continue)",
            Blocks::ReadsAndWrites => "blocks every query on the table, SELECT included",
        }
    }
}

impl LockMode {
    /// The name PostgreSQL uses in `pg_locks.mode`.
    pub fn pg_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// The SQL spelling (`ACCESS EXCLUSIVE`).
    pub fn sql_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// True when a session holding `self` makes a session asking for `other` wait
    /// (PostgreSQL's conflict table, which is symmetric).
    pub fn conflicts_with(self, other: LockMode) -> bool {
        use LockMode::*;
        let (a, b) = if self <= other { (self, other) } else { (other, self) };
        match a {
            AccessShare => b == AccessExclusive,
            RowShare => b >= Exclusive,
            RowExclusive => b >= Share,
            ShareUpdateExclusive => b >= ShareUpdateExclusive,
            Share => b > Share,
            ShareRowExclusive => b >= RowExclusive,
            Exclusive => b >= RowShare,
            AccessExclusive => true,
        }
    }

    /// What ordinary application traffic this lock stops.
    pub fn blocks(self) -> Blocks {
        if self.conflicts_with(LockMode::AccessShare) {
            Blocks::ReadsAndWrites
        } else if self.conflicts_with(LockMode::RowExclusive) {
            Blocks::Writes
        } else {
            Blocks::Nothing
        }
    }
}

/// "a" or "an" before the mode's SQL name.
pub fn article(mode: LockMode) -> &'static str {
    if matches!(mode, LockMode::AccessShare | LockMode::AccessExclusive | LockMode::Exclusive) {
        "an"
    } else {
        "a"
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql_name())
    }
}

impl Serialize for LockMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.pg_name())
    }
}

/// What a mode blocks equals its name in reports (`writes`).
impl PartialEq<&str> for Blocks {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

/// A mode equals the name `pg_locks` gives it (`AccessExclusiveLock`).
impl PartialEq<&str> for LockMode {
    fn eq(&self, name: &&str) -> bool {
        self.pg_name() == *name
    }
}

impl<'de> Deserialize<'de> for LockMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A name that is no lock mode (neither `pg_locks`' `AccessExclusiveLock` nor SQL's
/// `ACCESS EXCLUSIVE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown lock mode {0:?}")]
pub struct UnknownLockMode(pub String);

impl FromStr for LockMode {
    type Err = UnknownLockMode;
    fn from_str(s: &str) -> Result<Self, UnknownLockMode> {
        ALL_MODES
            .iter()
            .copied()
            .find(|m| m.pg_name().eq_ignore_ascii_case(s) || m.sql_name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownLockMode(s.to_string()))
    }
}

/// A foreign key, as the lock model needs it: dropping it locks the table it references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKeyRef {
    /// The table the key is declared on.
    pub table: QualName,
    /// The constraint's name.
    pub name: String,
    /// Its referencing columns.
    pub columns: Vec<String>,
    /// The table it references.
    pub references: QualName,
    /// The columns it references (empty: not known, or the primary key).
    pub ref_columns: Vec<String>,
}

/// What the lock model needs to know about the schema a statement runs on: which table an index
/// is on (DROP INDEX locks the table), and the foreign keys (dropping one, or the table or column
/// it is on, takes ACCESS EXCLUSIVE on the table it references, whose triggers go with it).
/// `()` knows nothing.
pub trait LockCatalog {
    /// The table the index belongs to.
    fn index_table(&self, _index: &QualName) -> Option<QualName> {
        None
    }
    /// The foreign keys declared on `table`.
    fn foreign_keys_of(&self, _table: &QualName) -> Vec<ForeignKeyRef> {
        Vec::new()
    }
    /// The foreign keys of other tables that reference `table`.
    fn foreign_keys_to(&self, _table: &QualName) -> Vec<ForeignKeyRef> {
        Vec::new()
    }
    /// The tables with a trigger that calls the function `function` (dropping the function with
    /// CASCADE drops those triggers, under ACCESS EXCLUSIVE on each table).
    fn trigger_tables(&self, _function: &QualName) -> Vec<QualName> {
        Vec::new()
    }
    /// The tables with a column of the domain `domain` (a constraint added to it is checked
    /// on each of them under SHARE).
    fn domain_tables(&self, _domain: &QualName) -> Vec<QualName> {
        Vec::new()
    }
    /// The statements the triggers on `table` that fire on `event` (`INSERT`, `UPDATE`,
    /// `DELETE`, `TRUNCATE`) run, as far as they can be read (PL/pgSQL functions).
    fn trigger_statements(&self, _table: &QualName, _event: &str) -> Vec<StmtKind> {
        Vec::new()
    }
    /// The statements the function `function` runs when called with the constant arguments
    /// `args`, as far as they can be read (PL/pgSQL: static SQL, and `EXECUTE` of what the
    /// arguments compute).
    fn function_statements(&self, _function: &QualName, _args: &[Option<String>]) -> Vec<StmtKind> {
        Vec::new()
    }
    /// The inheritance children and partitions of `table`, transitively, each with true when
    /// it is a partition.
    fn children(&self, _table: &QualName) -> Vec<(QualName, bool)> {
        Vec::new()
    }
    /// The server's major version, when known (what a statement locks changes with it).
    fn server_version(&self) -> Option<u32> {
        None
    }
    /// Whether the trigger, policy or rule `name` exists on `table`; None when not known.
    /// (`DROP TRIGGER IF EXISTS` of one that does not exist takes no lock.)
    fn member_exists(&self, _kind: ObjectKind, _table: &QualName, _name: &str) -> Option<bool> {
        None
    }
}

impl LockCatalog for () {}

/// The table-level locks a statement takes, predicted from its kind: `(relation, mode)`.
/// `catalog` answers what the statement alone does not say (an index's table, foreign keys).
pub fn statement_locks(kind: &StmtKind, catalog: &dyn LockCatalog) -> Vec<(QualName, LockMode)> {
    locks(kind, catalog, 2)
}

/// [`statement_locks`], following triggers `depth` levels deep (a trigger's statement can fire
/// another trigger; a cycle stops there).
/// Add `(q, m)` to `out`, keeping one entry per relation with its strongest mode.
fn keep_strongest(out: &mut Vec<(QualName, LockMode)>, q: &QualName, m: LockMode) {
    match out.iter_mut().find(|(t, _)| t == q) {
        Some(e) => e.1 = e.1.max(m),
        None => out.push((q.clone(), m)),
    }
}

fn locks(kind: &StmtKind, catalog: &dyn LockCatalog, depth: usize) -> Vec<(QualName, LockMode)> {
    use LockMode::*;
    let mut out: Vec<(QualName, LockMode)> = Vec::new();
    // Row-level statements run the triggers on their table: what those run takes locks too.
    let fired: Vec<(&QualName, &[&str])> = match kind {
        StmtKind::Insert { table, .. } | StmtKind::Copy { table: Some(table), from: true } => {
            vec![(table, &["INSERT"])]
        }
        StmtKind::Update { table, .. } => vec![(table, &["UPDATE"])],
        StmtKind::Delete { table, .. } => vec![(table, &["DELETE"])],
        StmtKind::Merge { table, .. } => vec![(table, &["INSERT", "UPDATE", "DELETE"])],
        StmtKind::Truncate { tables, .. } => tables.iter().map(|t| (t, &["TRUNCATE"][..])).collect(),
        _ => vec![],
    };
    if depth > 0 {
        // A function called with constants runs its statements too.
        if let StmtKind::Select { constant_calls, .. } = kind {
            for call in constant_calls {
                for inner in catalog.function_statements(&call.function, &call.args) {
                    for (q, m) in locks(&inner, catalog, depth - 1) {
                        keep_strongest(&mut out, &q, m);
                    }
                }
            }
        }
        for (table, events) in fired {
            for event in events {
                for inner in catalog.trigger_statements(table, event) {
                    for (q, m) in locks(&inner, catalog, depth - 1) {
                        keep_strongest(&mut out, &q, m);
                    }
                }
            }
        }
    }
    let mut take = |q: &QualName, m: LockMode| keep_strongest(&mut out, q, m);
    // Dropping foreign keys drops their triggers on the referenced tables (ACCESS EXCLUSIVE).
    let drop_keys = |keys: Vec<ForeignKeyRef>, take: &mut dyn FnMut(&QualName, LockMode)| {
        for k in keys {
            take(&k.references, AccessExclusive);
        }
    };
    match kind {
        StmtKind::CreateTable { columns, constraints, partition_of, .. } => {
            for c in constraints.iter().chain(columns.iter().flat_map(|c| c.constraints.iter())) {
                if let ConstraintKind::ForeignKey { references, .. } = &c.kind {
                    take(references, ShareRowExclusive);
                }
            }
            if let Some(p) = partition_of {
                take(p, AccessExclusive);
            }
        }
        StmtKind::AlterTable { table, actions, only, .. } => {
            // Without ONLY, most subcommands run on the children too, under the same lock; a
            // foreign key on a partitioned table too, and on an inheritance parent from
            // PostgreSQL 18 (which locks the children SHARE ROW EXCLUSIVE).
            let children = if *only { vec![] } else { catalog.children(table) };
            let v18 = catalog.server_version().is_some_and(|v| v >= 18);
            for a in actions {
                let recurses = |partition: bool| match a {
                    AlterAction::AddColumn { .. }
                    | AlterAction::DropColumn { .. }
                    | AlterAction::AlterType { .. }
                    | AlterAction::SetDefault { .. }
                    | AlterAction::DropDefault { .. }
                    | AlterAction::SetNotNull { .. }
                    | AlterAction::DropNotNull { .. }
                    | AlterAction::ValidateConstraint { .. } => true,
                    // A foreign key is not inherited: only partitions have it too.
                    AlterAction::DropConstraint { name, .. } => {
                        partition || !catalog.foreign_keys_of(table).iter().any(|k| &k.name == name)
                    }
                    AlterAction::AddConstraint(c) => match &c.kind {
                        ConstraintKind::ForeignKey { .. } => partition || v18,
                        ConstraintKind::PrimaryKey | ConstraintKind::Unique => partition,
                        _ => true,
                    },
                    _ => false,
                };
                let child_mode = match a {
                    AlterAction::AddConstraint(c) if matches!(c.kind, ConstraintKind::ForeignKey { .. }) => {
                        ShareRowExclusive
                    }
                    AlterAction::ValidateConstraint { .. } => ShareUpdateExclusive,
                    _ => AccessExclusive,
                };
                for (child, partition) in &children {
                    if recurses(*partition) {
                        take(child, child_mode);
                    }
                }
                let mode = match a {
                    AlterAction::AddConstraint(c) => match &c.kind {
                        ConstraintKind::ForeignKey { references, .. } => {
                            take(references, ShareRowExclusive);
                            ShareRowExclusive
                        }
                        _ => AccessExclusive,
                    },
                    AlterAction::DropConstraint { name, cascade, .. } => {
                        let keys = catalog.foreign_keys_of(table);
                        drop_keys(keys.into_iter().filter(|k| &k.name == name).collect(), &mut take);
                        if *cascade {
                            // Keys of other tables that use the dropped key's index go with it.
                            for k in catalog.foreign_keys_to(table) {
                                take(&k.table, AccessExclusive);
                            }
                        }
                        AccessExclusive
                    }
                    // A retyped column's foreign keys, and those referencing it, are dropped and
                    // made again: their triggers on the other table go with them.
                    AlterAction::AlterType { column, .. } => {
                        let keys = catalog.foreign_keys_of(table);
                        drop_keys(keys.into_iter().filter(|k| k.columns.contains(column)).collect(), &mut take);
                        for k in catalog.foreign_keys_to(table) {
                            if k.ref_columns.is_empty() || k.ref_columns.contains(column) {
                                take(&k.table, AccessExclusive);
                            }
                        }
                        AccessExclusive
                    }
                    AlterAction::DropColumn { column, .. } => {
                        let keys = catalog.foreign_keys_of(table);
                        drop_keys(keys.into_iter().filter(|k| k.columns.contains(column)).collect(), &mut take);
                        AccessExclusive
                    }
                    AlterAction::AddColumn { column, .. } => {
                        for c in &column.constraints {
                            if let ConstraintKind::ForeignKey { references, .. } = &c.kind {
                                take(references, ShareRowExclusive);
                            }
                        }
                        AccessExclusive
                    }
                    AlterAction::ValidateConstraint { .. } => ShareUpdateExclusive,
                    AlterAction::Trigger { .. } => ShareRowExclusive,
                    AlterAction::AttachPartition { partition } => {
                        take(partition, AccessExclusive);
                        ShareUpdateExclusive
                    }
                    AlterAction::DetachPartition { partition, concurrently } => {
                        if *concurrently {
                            ShareUpdateExclusive
                        } else {
                            take(partition, AccessExclusive);
                            AccessExclusive
                        }
                    }
                    AlterAction::Other { tag }
                        if matches!(
                            tag.as_str(),
                            "AtSetStatistics" | "AtClusterOn" | "AtDropCluster" | "AtSetOptions" | "AtResetOptions"
                        ) =>
                    {
                        ShareUpdateExclusive
                    }
                    _ => AccessExclusive,
                };
                take(table, mode);
            }
        }
        StmtKind::CreateIndex { table, concurrently, .. } => {
            take(table, if *concurrently { ShareUpdateExclusive } else { Share })
        }
        StmtKind::Drop { kind: ObjectKind::Index, names, concurrently, .. } => {
            for n in names {
                let t = catalog.index_table(n).unwrap_or_else(|| n.clone());
                take(&t, if *concurrently { ShareUpdateExclusive } else { AccessExclusive });
            }
        }
        StmtKind::Drop { kind: ObjectKind::Table, names, cascade, .. } => {
            for n in names {
                take(n, AccessExclusive);
                let dropped = |q: &QualName| names.iter().any(|n| n.name == q.name);
                let keys = catalog.foreign_keys_of(n).into_iter().filter(|k| !dropped(&k.references)).collect();
                drop_keys(keys, &mut take);
                if *cascade {
                    for k in catalog.foreign_keys_to(n).into_iter().filter(|k| !dropped(&k.table)) {
                        take(&k.table, AccessExclusive);
                    }
                }
            }
        }
        StmtKind::Drop { kind: ObjectKind::View | ObjectKind::MatView | ObjectKind::Sequence, names, .. } => {
            for n in names {
                take(n, AccessExclusive);
            }
        }
        StmtKind::Drop {
            kind: k @ (ObjectKind::Trigger | ObjectKind::Policy | ObjectKind::Rule),
            names,
            on: Some(t),
            if_exists,
            ..
        } => {
            let missing = |n: &QualName| catalog.member_exists(*k, t, &n.name) == Some(false);
            if !(*if_exists && names.iter().all(missing)) {
                take(t, AccessExclusive)
            }
        }
        StmtKind::Comment { relation: Some(r), .. } => take(r, ShareUpdateExclusive),
        StmtKind::AlterDomain { name, adds_constraint: true, not_valid: false } => {
            for t in catalog.domain_tables(name) {
                take(&t, Share);
            }
        }
        StmtKind::Drop { kind: ObjectKind::Function | ObjectKind::Procedure, names, cascade: true, .. } => {
            for t in names.iter().flat_map(|f| catalog.trigger_tables(f)) {
                take(&t, AccessExclusive);
            }
        }
        StmtKind::Reindex { target: ObjectKind::Table, name, concurrently } => {
            take(name, if *concurrently { ShareUpdateExclusive } else { Share })
        }
        StmtKind::Reindex { target: ObjectKind::Index, name, concurrently } => {
            let t = catalog.index_table(name).unwrap_or_else(|| name.clone());
            take(&t, if *concurrently { ShareUpdateExclusive } else { Share })
        }
        StmtKind::Rename { kind: ObjectKind::Table | ObjectKind::Column | ObjectKind::View, object, .. } => {
            take(object, AccessExclusive)
        }
        StmtKind::Truncate { tables, .. } => tables.iter().for_each(|t| take(t, AccessExclusive)),
        StmtKind::Delete { table, .. }
        | StmtKind::Update { table, .. }
        | StmtKind::Insert { table, .. }
        | StmtKind::Merge { table, .. } => take(table, RowExclusive),
        StmtKind::Copy { table: Some(t), from: true } => take(t, RowExclusive),
        StmtKind::Vacuum { full, tables, .. } => {
            let mode = if *full { AccessExclusive } else { ShareUpdateExclusive };
            tables.iter().for_each(|t| take(t, mode));
        }
        StmtKind::Cluster { table: Some(t) } => take(t, AccessExclusive),
        StmtKind::RefreshMatView { view, concurrently, .. } => {
            take(view, if *concurrently { Exclusive } else { AccessExclusive })
        }
        StmtKind::Lock { tables, mode } => tables.iter().for_each(|t| take(t, *mode)),
        StmtKind::CreateTrigger { table, .. } => take(table, ShareRowExclusive),
        StmtKind::CreatePolicy { table, .. } | StmtKind::AlterPolicy { table, .. } => take(table, AccessExclusive),
        _ => {}
    }
    out
}

/// The locks `stmt` takes, with those of the statements a `DO` block runs (every branch: what
/// the block may take).
pub fn statement_locks_deep(stmt: &crate::Statement, catalog: &dyn LockCatalog) -> Vec<(QualName, LockMode)> {
    let mut out = statement_locks(&stmt.kind, catalog);
    for inner in crate::plpgsql::nested(stmt) {
        for (q, m) in statement_locks(&inner.kind, catalog) {
            keep_strongest(&mut out, &q, m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use LockMode::*;

    /// PostgreSQL's documented conflict table (Table 13.2), row by row.
    const TABLE: [(LockMode, &[LockMode]); 8] = [
        (AccessShare, &[AccessExclusive]),
        (RowShare, &[Exclusive, AccessExclusive]),
        (RowExclusive, &[Share, ShareRowExclusive, Exclusive, AccessExclusive]),
        (ShareUpdateExclusive, &[ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive]),
        (Share, &[RowExclusive, ShareUpdateExclusive, ShareRowExclusive, Exclusive, AccessExclusive]),
        (
            ShareRowExclusive,
            &[RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive],
        ),
        (
            Exclusive,
            &[RowShare, RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive],
        ),
        (AccessExclusive, &ALL_MODES),
    ];

    #[test]
    fn conflict_table_matches_postgres_docs() {
        for (mode, conflicts) in TABLE {
            for other in ALL_MODES {
                assert_eq!(mode.conflicts_with(other), conflicts.contains(&other), "{mode:?} vs {other:?}");
            }
        }
    }

    /// The locks of the last statement of `sql`, the statements before it building the model.
    fn locks_after(sql: &str) -> Vec<(String, LockMode)> {
        let parsed = crate::parse::parse_sql(sql);
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let (last, before) = parsed.statements.split_last().unwrap();
        let mut model = crate::lint::schema::SchemaModel::default();
        for st in before {
            model.apply(st);
        }
        model.finish_migration();
        statement_locks(&last.kind, &model).into_iter().map(|(q, m)| (q.name, m)).collect()
    }

    #[test]
    fn a_function_called_with_constants_takes_the_locks_of_what_it_runs() {
        let define = "CREATE TABLE users (id int);\n\
                      CREATE FUNCTION manage(_tbl regclass) RETURNS void AS $$\n\
                      BEGIN EXECUTE format('CREATE TRIGGER t BEFORE UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION f()', _tbl); END\n\
                      $$ LANGUAGE plpgsql;\n";
        assert_eq!(locks_after(&format!("{define}SELECT manage('users');")), vec![("users".into(), ShareRowExclusive)]);
        // Called with what is only known when it runs: nothing can be read.
        assert!(locks_after(&format!("{define}SELECT manage(relname::regclass) FROM pg_class;")).is_empty());
    }

    #[test]
    fn comment_on_locks_the_relation_it_is_on() {
        for sql in [
            "COMMENT ON TABLE users IS 'x';",
            "COMMENT ON COLUMN public.users.email IS 'x';",
            "COMMENT ON CONSTRAINT users_pkey ON users IS 'x';",
            "COMMENT ON TRIGGER t ON users IS 'x';",
        ] {
            assert_eq!(locks_after(sql), vec![("users".to_string(), ShareUpdateExclusive)], "{sql}");
        }
        // An index's comment locks the index alone; a function's nothing.
        assert!(locks_after("COMMENT ON INDEX users_email IS 'x';").is_empty());
        assert!(locks_after("COMMENT ON FUNCTION f() IS 'x';").is_empty());
    }

    #[test]
    fn drop_trigger_locks_its_table_unless_it_is_known_not_to_exist() {
        assert_eq!(locks_after("DROP TRIGGER t ON app.users;"), vec![("users".to_string(), AccessExclusive)]);
        struct NoTriggers;
        impl LockCatalog for NoTriggers {
            fn member_exists(&self, _: ObjectKind, _: &QualName, _: &str) -> Option<bool> {
                Some(false)
            }
        }
        let parsed = crate::parse::parse_sql("DROP TRIGGER IF EXISTS t ON users; DROP TRIGGER t ON users;");
        assert!(statement_locks(&parsed.statements[0].kind, &NoTriggers).is_empty());
        assert_eq!(statement_locks(&parsed.statements[1].kind, &NoTriggers).len(), 1);
    }

    #[test]
    fn dropping_a_foreign_key_locks_the_table_it_references() {
        let base = "CREATE TABLE users (id int PRIMARY KEY);\n\
                    CREATE TABLE posts (id int, user_id int REFERENCES users, author int);\n\
                    ALTER TABLE posts ADD CONSTRAINT posts_author_fk FOREIGN KEY (author) REFERENCES users;\n";
        let has = |sql: &str, table: &str, mode: LockMode| {
            let locks = locks_after(&format!("{base}{sql}"));
            assert!(locks.contains(&(table.to_string(), mode)), "{sql}: {locks:?}");
        };
        // The inline key got PostgreSQL's default name.
        has("ALTER TABLE posts DROP CONSTRAINT posts_user_id_fkey;", "users", AccessExclusive);
        has("ALTER TABLE posts DROP CONSTRAINT posts_author_fk;", "users", AccessExclusive);
        has("ALTER TABLE posts DROP COLUMN author;", "users", AccessExclusive);
        has("DROP TABLE posts;", "users", AccessExclusive);
        has("DROP TABLE users CASCADE;", "posts", AccessExclusive);
        // Dropping another constraint, or both tables, does not.
        let other = locks_after(&format!("{base}ALTER TABLE posts DROP CONSTRAINT posts_pkey;"));
        assert_eq!(other, vec![("posts".to_string(), AccessExclusive)]);
        let both = locks_after(&format!("{base}DROP TABLE posts, users;"));
        assert_eq!(both.len(), 2, "{both:?}");
        // A renamed key is found under its new name, and a renamed table under its new name.
        has(
            "ALTER TABLE posts RENAME CONSTRAINT posts_author_fk TO by_author;\nALTER TABLE users RENAME TO people;\n\
             ALTER TABLE posts DROP CONSTRAINT by_author;",
            "people",
            AccessExclusive,
        );
        // A column added with a key locks the referenced table too.
        has("ALTER TABLE posts ADD COLUMN editor int REFERENCES users;", "users", ShareRowExclusive);
    }

    #[test]
    fn dropping_a_function_with_cascade_locks_the_tables_of_its_triggers() {
        let sql = "CREATE TABLE users (id int);\n\
                   CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;\n\
                   CREATE TRIGGER users_touch BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION touch();\n";
        assert_eq!(
            locks_after(&format!("{sql}DROP FUNCTION touch() CASCADE;")),
            vec![("users".into(), AccessExclusive)]
        );
        assert!(
            locks_after(&format!("{sql}DROP TRIGGER users_touch ON users;\nDROP FUNCTION touch() CASCADE;")).is_empty()
        );
    }

    #[test]
    fn a_row_level_statement_takes_what_its_triggers_run_take() {
        let sql = "CREATE TABLE users (id int);\nCREATE MATERIALIZED VIEW user_stats AS SELECT count(*) FROM users;\n\
                   CREATE FUNCTION refresh_stats() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                   REFRESH MATERIALIZED VIEW CONCURRENTLY user_stats; RETURN NULL; END $$;\n\
                   CREATE TRIGGER users_refresh AFTER INSERT OR DELETE ON users FOR EACH STATEMENT \
                   EXECUTE FUNCTION refresh_stats();\n";
        let delete = locks_after(&format!("{sql}DELETE FROM users;"));
        assert!(delete.contains(&("user_stats".to_string(), Exclusive)), "{delete:?}");
        // Not on an event it does not fire on.
        let update = locks_after(&format!("{sql}UPDATE users SET id = 1;"));
        assert!(!update.iter().any(|(t, _)| t == "user_stats"), "{update:?}");
    }

    #[test]
    fn alter_table_without_only_locks_the_children() {
        let base = "CREATE TABLE ent (id int PRIMARY KEY);\nCREATE TABLE fb (id int, by int);\n\
                    CREATE TABLE fc (x int) INHERITS (fb);\nCREATE TABLE fp (id int) PARTITION BY RANGE (id);\n\
                    CREATE TABLE fp1 PARTITION OF fp FOR VALUES FROM (0) TO (10);\n";
        let on = |sql: &str| locks_after(&format!("{base}{sql}"));
        assert!(on("ALTER TABLE fb ADD COLUMN z int;").contains(&("fc".into(), AccessExclusive)));
        assert!(!on("ALTER TABLE ONLY fb ALTER COLUMN id SET DEFAULT 1;").iter().any(|(t, _)| t == "fc"));
        assert!(on("ALTER TABLE fp ADD COLUMN z int;").contains(&("fp1".into(), AccessExclusive)));
        assert!(on("ALTER TABLE fp ADD FOREIGN KEY (id) REFERENCES ent;").contains(&("fp1".into(), ShareRowExclusive)));
        // Renamed or moved, a parent keeps its children.
        assert!(on("ALTER TABLE fp RENAME TO fq;\nALTER TABLE fq ADD COLUMN z int;")
            .contains(&("fp1".into(), AccessExclusive)));
        assert!(on("ALTER TABLE fb SET SCHEMA app;\nALTER TABLE app.fb ADD COLUMN z int;")
            .contains(&("fc".into(), AccessExclusive)));
        // A foreign key on an inheritance parent: the children only from PostgreSQL 18 (the model
        // here is for the default version, 15).
        assert!(!on("ALTER TABLE fb ADD FOREIGN KEY (by) REFERENCES ent;").iter().any(|(t, _)| t == "fc"));
        assert!(!on(
            "ALTER TABLE fb ADD CONSTRAINT k FOREIGN KEY (by) REFERENCES ent;\nALTER TABLE fb DROP CONSTRAINT k;"
        )
        .iter()
        .any(|(t, _)| t == "fc"));
    }

    #[test]
    fn what_modes_block() {
        assert_eq!(AccessExclusive.blocks(), Blocks::ReadsAndWrites);
        assert_eq!(Share.blocks(), Blocks::Writes);
        assert_eq!(ShareRowExclusive.blocks(), Blocks::Writes);
        assert_eq!(ShareUpdateExclusive.blocks(), Blocks::Nothing);
        assert_eq!("ShareLock".parse::<LockMode>().unwrap(), Share);
        assert_eq!("access exclusive".parse::<LockMode>().unwrap(), AccessExclusive);
    }
}
