//! The statement model: each parsed statement summarised once into a small type that rules,
//! risk, lock prediction and inversion read. Nothing downstream walks pg_query's protobuf;
//! what is read from the tree itself is in [`crate::tree`].

use serde::Serialize;
use std::fmt;

use crate::lock::LockMode;
use crate::quote::quote_ident;
use crate::span::Span;

/// A possibly schema-qualified object name, as written (already case-folded by the parser).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct QualName {
    /// Schema, when the statement names one.
    pub schema: Option<String>,
    /// Object name.
    pub name: String,
}

impl QualName {
    /// An unqualified name.
    pub fn bare(name: impl Into<String>) -> Self {
        QualName { schema: None, name: name.into() }
    }

    /// A name with an explicit schema.
    pub fn qualified(schema: impl Into<String>, name: impl Into<String>) -> Self {
        QualName { schema: Some(schema.into()), name: name.into() }
    }

    /// The name with `public` as the schema when none is given (the default search_path).
    pub fn resolved(&self) -> QualName {
        QualName { schema: Some(self.schema.clone().unwrap_or_else(|| "public".into())), name: self.name.clone() }
    }

    /// The SQL spelling, identifiers quoted where PostgreSQL needs it.
    pub fn sql(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }
}

impl fmt::Display for QualName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql())
    }
}

/// A column type as written: canonical base name (`int4`, `varchar`, `timestamptz`…), its
/// modifiers and array dimensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeName {
    /// Schema when written qualified and not a built-in type.
    pub schema: Option<String>,
    /// Canonical internal name of the base type (aliases resolved: `integer` → `int4`).
    pub name: String,
    /// Type modifiers, e.g. `[10]` for `varchar(10)`, `[12, 2]` for `numeric(12,2)`.
    pub mods: Vec<i64>,
    /// Array dimensions (`text[]` → 1).
    pub array_dims: usize,
}

impl TypeName {
    /// True for `serial`, `bigserial`, `smallserial` and their aliases.
    pub fn is_serial(&self) -> bool {
        matches!(self.name.as_str(), "serial" | "serial4" | "bigserial" | "serial8" | "smallserial" | "serial2")
    }

    /// Whether changing `old` to `new` needs neither a rewrite nor a scan.
    pub fn binary_compatible_to(&self, new: &TypeName) -> bool {
        let old = self;
        if old.array_dims != new.array_dims || old.schema != new.schema {
            return false;
        }
        if old.name == new.name && old.mods == new.mods {
            return true;
        }
        let widens = |o: &[i64], n: &[i64]| match (o.first(), n.first()) {
            (_, None) => true,
            (Some(a), Some(b)) => b >= a,
            (None, Some(_)) => false,
        };
        match (old.name.as_str(), new.name.as_str()) {
            ("varchar", "varchar") => widens(&old.mods, &new.mods),
            ("varchar", "text") => true,
            ("text", "varchar") => new.mods.is_empty(),
            ("varbit", "varbit") => widens(&old.mods, &new.mods),
            ("cidr", "inet") => true,
            ("numeric", "numeric") => match (old.mods.as_slice(), new.mods.as_slice()) {
                (_, []) => true,
                ([p1], [p2]) | ([p1, 0], [p2]) | ([p1], [p2, 0]) => p2 >= p1,
                ([p1, s1], [p2, s2]) => s1 == s2 && p2 >= p1,
                _ => false,
            },
            _ => false,
        }
    }

    /// The SQL spelling of the type.
    pub fn sql(&self) -> String {
        let mut s = match &self.schema {
            Some(sc) => format!("{}.{}", quote_ident(sc), quote_ident(&self.name)),
            None => display_builtin(&self.name),
        };
        if !self.mods.is_empty() {
            let m: Vec<String> = self.mods.iter().map(|m| m.to_string()).collect();
            s.push_str(&format!("({})", m.join(",")));
        }
        for _ in 0..self.array_dims {
            s.push_str("[]");
        }
        s
    }
}

fn display_builtin(name: &str) -> String {
    match name {
        "int2" => "smallint".into(),
        "int4" => "integer".into(),
        "int8" => "bigint".into(),
        "float4" => "real".into(),
        "float8" => "double precision".into(),
        "bool" => "boolean".into(),
        "bpchar" => "char".into(),
        "timestamptz" => "timestamptz".into(),
        // Keywords that name types: unquoted, as everyone writes them.
        "varchar" | "numeric" | "timestamp" | "time" | "timetz" | "interval" | "bit" | "varbit" => name.into(),
        other => quote_ident(other),
    }
}

/// A function call whose arguments are all constants: `SELECT diesel_manage_updated_at('users')`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConstantCall {
    /// The function, as written.
    pub function: QualName,
    /// Each argument's text, None for NULL.
    pub args: Vec<Option<String>>,
}

/// A SQL expression: its text (deparsed), the functions it calls and its shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expr {
    /// Deparsed text.
    pub text: String,
    /// Lower-case names of the functions called anywhere in it (unqualified).
    pub calls: Vec<String>,
    /// The columns it names (the last part of each reference), sorted.
    pub columns: Vec<String>,
    /// True when it is a literal constant (possibly cast), so it never needs evaluation per row.
    pub is_constant: bool,
    /// True when it is the literal `NULL`.
    pub is_null: bool,
    /// True when it contains a sub-select.
    pub has_subquery: bool,
    /// For `CHECK (col IS NOT NULL)`: the column it tests.
    pub not_null_column: Option<String>,
}

/// Referential action of a foreign key (`ON DELETE …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RefAction {
    /// NO ACTION (default).
    NoAction,
    /// RESTRICT.
    Restrict,
    /// CASCADE.
    Cascade,
    /// SET NULL.
    SetNull,
    /// SET DEFAULT.
    SetDefault,
}

/// What kind of constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ConstraintKind {
    /// PRIMARY KEY.
    PrimaryKey,
    /// UNIQUE.
    Unique,
    /// FOREIGN KEY to a table.
    ForeignKey {
        /// Referenced table.
        references: QualName,
        /// Referencing columns (empty for an inline column constraint: the column itself).
        columns: Vec<String>,
        /// Referenced columns (empty: the referenced table's primary key).
        ref_columns: Vec<String>,
        /// ON DELETE action.
        on_delete: RefAction,
    },
    /// CHECK (expr).
    Check(Expr),
    /// EXCLUDE USING …
    Exclude,
    /// NOT NULL (column constraint, or PG18's named NOT NULL table constraint).
    NotNull,
}

/// A constraint, as a table or column constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Constraint {
    /// Explicit name, when given.
    pub name: Option<String>,
    /// Kind and kind-specific data.
    pub kind: ConstraintKind,
    /// Key columns (PK/UNIQUE), when listed.
    pub columns: Vec<String>,
    /// `NOT VALID` was given (PostgreSQL also sets it for NOT ENFORCED).
    pub not_valid: bool,
    /// `NOT ENFORCED` was given (PostgreSQL 18): PostgreSQL never checks it.
    pub not_enforced: bool,
    /// `USING INDEX name` was given (PK/UNIQUE from an existing index).
    pub using_index: Option<String>,
}

/// How a column is generated, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Generated {
    /// `GENERATED ALWAYS AS (…) STORED`.
    Stored,
    /// `GENERATED ALWAYS AS (…) VIRTUAL` (PostgreSQL 18).
    Virtual,
}

/// A column definition (CREATE TABLE or ADD COLUMN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnDef {
    /// Column name.
    pub name: String,
    /// Declared type.
    pub type_name: TypeName,
    /// Declared NOT NULL (or PRIMARY KEY).
    pub not_null: bool,
    /// DEFAULT expression.
    pub default: Option<Expr>,
    /// GENERATED … AS IDENTITY.
    pub identity: bool,
    /// GENERATED ALWAYS AS (expr) STORED / VIRTUAL.
    pub generated: Option<Generated>,
    /// Inline constraints other than NOT NULL / DEFAULT / identity / generated.
    pub constraints: Vec<Constraint>,
}

/// One action of an ALTER TABLE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub enum AlterAction {
    /// ADD COLUMN.
    AddColumn { column: ColumnDef, if_not_exists: bool },
    /// DROP COLUMN.
    DropColumn { column: String, if_exists: bool, cascade: bool },
    /// ALTER COLUMN … TYPE.
    AlterType { column: String, new_type: TypeName, using: Option<Expr>, collation: Option<String> },
    /// ALTER COLUMN … SET DEFAULT.
    SetDefault { column: String, default: Expr },
    /// ALTER COLUMN … DROP DEFAULT.
    DropDefault { column: String },
    /// ALTER COLUMN … SET NOT NULL.
    SetNotNull { column: String },
    /// ALTER COLUMN … DROP NOT NULL.
    DropNotNull { column: String },
    /// ADD CONSTRAINT (or ADD table_constraint).
    AddConstraint(Constraint),
    /// VALIDATE CONSTRAINT.
    ValidateConstraint { name: String },
    /// ALTER CONSTRAINT: `enforce` is `Some(true)` for ENFORCED (PostgreSQL 18 then checks
    /// every existing row), `Some(false)` for NOT ENFORCED, `None` for deferrability only.
    AlterConstraint { name: String, enforce: Option<bool> },
    /// DROP CONSTRAINT.
    DropConstraint { name: String, if_exists: bool, cascade: bool },
    /// SET LOGGED / SET UNLOGGED.
    SetPersistence { logged: bool },
    /// ENABLE / DISABLE TRIGGER.
    Trigger { enable: bool, target: TriggerTarget },
    /// ATTACH PARTITION.
    AttachPartition { partition: QualName },
    /// DETACH PARTITION [CONCURRENTLY].
    DetachPartition { partition: QualName, concurrently: bool },
    /// ADD/SET/DROP IDENTITY on a column.
    Identity { column: String, add: bool },
    /// ALTER COLUMN … SET EXPRESSION (rewrites stored generated columns).
    SetExpression { column: String },
    /// ALTER COLUMN … DROP EXPRESSION.
    DropExpression { column: String },
    /// SET TABLESPACE (rewrites, ACCESS EXCLUSIVE).
    SetTablespace,
    /// SET ACCESS METHOD (rewrites, unless it is the table's own); None for DEFAULT.
    SetAccessMethod { method: Option<String> },
    /// ENABLE/DISABLE/FORCE/NO FORCE ROW LEVEL SECURITY.
    RowSecurity,
    /// Any other action, named by its PostgreSQL subtype.
    Other { tag: String },
}

/// Which triggers an ENABLE/DISABLE TRIGGER names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum TriggerTarget {
    /// ALL (includes the internal triggers that enforce foreign keys).
    All,
    /// USER.
    User,
    /// One named trigger.
    Named(String),
}

/// The kind of relation an ALTER names (`ALTER TABLE`, `ALTER INDEX`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RelKind {
    /// A table (also partitioned).
    Table,
    /// An index.
    Index,
    /// A view.
    View,
    /// A materialized view.
    MatView,
    /// A sequence.
    Sequence,
    /// A foreign table.
    ForeignTable,
    /// A composite type (ALTER TYPE … ADD ATTRIBUTE).
    Type,
}

/// The kind of object a DROP, RENAME or COMMENT names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum ObjectKind {
    Table,
    Column,
    Index,
    View,
    MatView,
    Sequence,
    Schema,
    Function,
    Procedure,
    Aggregate,
    Trigger,
    Type,
    Domain,
    Extension,
    Constraint,
    Policy,
    Rule,
    Database,
    ForeignTable,
    Collation,
    Other,
}

/// Transaction control.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TxControl {
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT / END.
    Commit,
    /// ROLLBACK / ABORT.
    Rollback,
    /// SAVEPOINT, RELEASE, ROLLBACK TO.
    Savepoint,
    /// Two-phase commit commands.
    Prepared,
}

/// The rows of an `INSERT … VALUES`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InsertValues {
    /// Target columns as written (None: every column, in table order).
    pub columns: Option<Vec<String>>,
    /// Per row, per column: SQL text of a constant (`'abc'`, `42`, `true`, `NULL`), or None
    /// for any other expression.
    pub rows: Vec<Vec<Option<String>>>,
    /// `ON CONFLICT … DO NOTHING` / `DO UPDATE`: rows may have existed (or been changed).
    pub on_conflict: Option<OnConflict>,
}

/// Columns paired with SQL constants (`code`, `'ms_MY'`).
pub type ColumnConstants = Vec<(String, String)>;

/// The action of an `ON CONFLICT` clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OnConflict {
    /// `DO NOTHING`.
    Nothing,
    /// `DO UPDATE`.
    Update,
}

/// What a statement is, summarised for the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[allow(missing_docs)]
pub enum StmtKind {
    CreateTable {
        table: QualName,
        columns: Vec<ColumnDef>,
        constraints: Vec<Constraint>,
        if_not_exists: bool,
        partition_of: Option<QualName>,
        unlogged: bool,
        temporary: bool,
        /// `USING am`, when written.
        access_method: Option<String>,
        /// `INHERITS (…)` parents.
        inherits: Vec<QualName>,
    },
    CreateTableAs {
        table: QualName,
        materialized: bool,
        with_data: bool,
        if_not_exists: bool,
        /// The relations its query reads (as written).
        sources: Vec<QualName>,
    },
    AlterTable {
        table: QualName,
        relkind: RelKind,
        if_exists: bool,
        /// `ALTER TABLE ONLY`: the table alone, not its inheritance children or partitions.
        only: bool,
        actions: Vec<AlterAction>,
    },
    CreateIndex {
        name: Option<String>,
        table: QualName,
        unique: bool,
        concurrently: bool,
        if_not_exists: bool,
        columns: Vec<String>,
        partial: bool,
        /// The columns named in its expressions and its WHERE clause (an ALTER TYPE of one
        /// rebuilds the index even when the table is not rewritten).
        expr_columns: Vec<String>,
        method: String,
    },
    Drop {
        kind: ObjectKind,
        /// The objects, as written. For a trigger, policy or rule (`DROP TRIGGER t ON tab`), the
        /// table in the schema part and the object in the name part (`tab.t`).
        names: Vec<QualName>,
        /// For a trigger, policy or rule: the table it is dropped from.
        on: Option<QualName>,
        concurrently: bool,
        if_exists: bool,
        cascade: bool,
    },
    Reindex {
        target: ObjectKind,
        name: QualName,
        concurrently: bool,
    },
    Rename {
        kind: ObjectKind,
        object: QualName,
        column: Option<String>,
        new_name: String,
    },
    AlterSchema {
        kind: ObjectKind,
        object: QualName,
        new_schema: String,
    },
    Truncate {
        tables: Vec<QualName>,
        cascade: bool,
    },
    Delete {
        table: QualName,
        has_where: bool,
    },
    Update {
        table: QualName,
        has_where: bool,
        assignments: Vec<(String, String)>,
    },
    /// MERGE: what its WHEN clauses may do to the target table.
    Merge {
        table: QualName,
        /// Columns set by its UPDATE actions (`None` when it has none).
        updates: Option<Vec<(String, String)>>,
        /// A WHEN clause DELETEs.
        deletes: bool,
        /// A WHEN clause INSERTs.
        inserts: bool,
    },
    Insert {
        table: QualName,
        from_select: bool,
        /// An `INSERT … VALUES` (no `WITH`, plain column targets), whose rows
        /// [`Statement::insert_values`] reads (kept out of the summary: a file of a million
        /// rows would hold every constant twice).
        literal_rows: bool,
        /// `ON CONFLICT DO NOTHING` / `DO UPDATE`: rows may have existed (or been changed).
        on_conflict: Option<OnConflict>,
        /// `ON CONFLICT … DO UPDATE SET` assignments: existing rows it changes.
        upserts: Option<Vec<(String, String)>>,
    },
    Copy {
        table: Option<QualName>,
        from: bool,
    },
    Select {
        calls: Vec<String>,
        /// The calls whose arguments are all constants, with them (what such a function runs
        /// can be read with its parameters bound).
        constant_calls: Vec<ConstantCall>,
        has_into: bool,
    },
    Vacuum {
        full: bool,
        analyze_only: bool,
        tables: Vec<QualName>,
    },
    Cluster {
        table: Option<QualName>,
    },
    RefreshMatView {
        view: QualName,
        concurrently: bool,
        with_data: bool,
    },
    Lock {
        tables: Vec<QualName>,
        mode: LockMode,
    },
    Transaction(TxControl),
    CreateView {
        view: QualName,
        replace: bool,
        /// The relations its query reads (as written).
        sources: Vec<QualName>,
    },
    CreateFunction {
        name: QualName,
        arg_types: Vec<String>,
        replace: bool,
        procedure: bool,
        volatile: bool,
    },
    CreateTrigger {
        name: String,
        table: QualName,
        replace: bool,
        function: QualName,
        /// The events it fires on: `INSERT`, `UPDATE`, `DELETE`, `TRUNCATE`.
        events: Vec<String>,
    },
    CreateSchema {
        name: String,
        if_not_exists: bool,
    },
    CreateSequence {
        name: QualName,
        if_not_exists: bool,
    },
    AlterSequence {
        name: QualName,
    },
    CreateType {
        name: QualName,
        enum_labels: Option<Vec<String>>,
    },
    AlterEnum {
        name: QualName,
        add_value: Option<String>,
        rename_value: Option<(String, String)>,
        if_not_exists: bool,
    },
    CreateDomain {
        name: QualName,
    },
    AlterDomain {
        name: QualName,
        adds_constraint: bool,
        not_valid: bool,
    },
    CreateExtension {
        name: String,
        if_not_exists: bool,
    },
    AlterExtension {
        name: String,
    },
    Comment {
        kind: ObjectKind,
        object: String,
        /// The table, view, materialized view or sequence the comment is on (or whose column,
        /// constraint, trigger, policy or rule it is on): COMMENT locks it.
        relation: Option<QualName>,
        text: Option<String>,
    },
    Grant {
        grant: bool,
    },
    CreatePolicy {
        name: String,
        table: QualName,
    },
    AlterPolicy {
        name: String,
        table: QualName,
    },
    Set {
        name: String,
        value: Option<String>,
        local: bool,
    },
    Do,
    CreateDatabase,
    AlterSystem,
    Other {
        tag: String,
    },
}

/// One parsed statement of a migration file.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    /// 0-based position in the file.
    pub index: usize,
    /// Bytes of the statement in the file, from its first token to its end (no `;`).
    pub span: Span,
    /// The summary the rules read.
    pub kind: StmtKind,
    /// PostgreSQL's command tag, e.g. `ALTER TABLE`.
    pub tag: String,
    /// What every statement is asked about its parse tree, read once while parsing (None when
    /// all of it is empty, as for most statements). The tree itself is not kept: it is many
    /// times the size of the text, so a file of 200,000 statements would need gigabytes.
    #[serde(skip)]
    pub(crate) facts: Option<Box<crate::tree::TreeFacts>>,
    /// The (parsed) text of the whole file, shared by its statements, from which
    /// [`Statement::tree`] parses the statement again when a rarer question needs its tree.
    #[serde(skip)]
    pub(crate) parsed_text: std::sync::Arc<str>,
    /// For `COPY … FROM STDIN` followed by its rows inline, as psql scripts and pg_dump
    /// output write them: the bytes of the rows (every line up to the `\.` line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_data: Option<Span>,
    /// For a statement whose text is not in the file (what an `EXECUTE format(…)` evaluates to,
    /// see [`crate::plpgsql`]): where in the file it comes from. Its `span` is then in its own
    /// text ([`Statement::own_text`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Span>,
}

impl Statement {
    /// For `COPY … FROM STDIN` with inline rows: the rows as constants (see [`crate::copy`]).
    pub fn copy_rows(&self, source: &str) -> Option<InsertValues> {
        crate::copy::copy_rows(self, source)
    }

    /// The statement's text in `source`.
    pub fn text<'a>(&self, source: &'a str) -> &'a str {
        self.span.slice(source)
    }

    /// The text the statement's `span` is in: the file's, or for a statement with an `origin`
    /// its own.
    pub fn own_text(&self) -> &str {
        &self.parsed_text
    }

    /// Where the statement is in the file: its span, or for one whose text is not in the file,
    /// the place it comes from.
    pub fn file_span(&self) -> Span {
        self.origin.unwrap_or(self.span)
    }

    /// True when PostgreSQL refuses to run the statement inside a transaction block.
    pub fn forbids_transaction(&self) -> bool {
        match &self.kind {
            StmtKind::CreateIndex { concurrently, .. } => *concurrently,
            StmtKind::Drop { concurrently, .. } => *concurrently,
            StmtKind::Reindex { concurrently, target, .. } => {
                *concurrently || matches!(target, ObjectKind::Schema | ObjectKind::Database)
            }
            StmtKind::Vacuum { analyze_only, .. } => !analyze_only,
            StmtKind::AlterTable { actions, .. } => {
                actions.iter().any(|a| matches!(a, AlterAction::DetachPartition { concurrently: true, .. }))
            }
            StmtKind::CreateDatabase | StmtKind::AlterSystem => true,
            StmtKind::Other { tag } => {
                matches!(tag.as_str(), "DROP DATABASE" | "CREATE TABLESPACE" | "DROP TABLESPACE")
            }
            _ => false,
        }
    }

    /// True for statements that take no lock on a schema object and change nothing
    /// (SET, transaction control, SELECT without side effects).
    pub fn is_control(&self) -> bool {
        matches!(self.kind, StmtKind::Set { .. } | StmtKind::Transaction(_))
    }
}
