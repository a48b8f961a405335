//! The statement model: each parsed statement summarised once into a small type that rules,
//! risk, lock prediction and inversion read. Nothing downstream walks pg_query's protobuf.

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
        other => quote_ident(other),
    }
}

/// A SQL expression: its text (deparsed), the functions it calls and its shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expr {
    /// Deparsed text.
    pub text: String,
    /// Lower-case names of the functions called anywhere in it (unqualified).
    pub calls: Vec<String>,
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
    /// SET ACCESS METHOD (rewrites).
    SetAccessMethod,
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
    },
    CreateTableAs {
        table: QualName,
        materialized: bool,
        with_data: bool,
        if_not_exists: bool,
    },
    AlterTable {
        table: QualName,
        relkind: RelKind,
        if_exists: bool,
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
        method: String,
    },
    Drop {
        kind: ObjectKind,
        names: Vec<QualName>,
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
    pub(crate) facts: Option<Box<TreeFacts>>,
    /// The (parsed) text of the whole file, shared by its statements, from which
    /// [`Statement::tree`] parses the statement again when a rarer question needs its tree.
    #[serde(skip)]
    pub(crate) parsed_text: std::sync::Arc<str>,
    /// For `COPY … FROM STDIN` followed by its rows inline, as psql scripts and pg_dump
    /// output write them: the bytes of the rows (every line up to the `\.` line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy_data: Option<Span>,
}

/// What rules ask of every statement's parse tree, read while it is at hand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TreeFacts {
    roles_named: Vec<String>,
    roles_created: Vec<String>,
    frozen_times: Vec<String>,
    maintenance_calls: Vec<QualName>,
}

impl TreeFacts {
    /// The facts of a statement's tree, or None when there are none.
    pub(crate) fn of(raw: &pg_query::protobuf::Node) -> Option<Box<TreeFacts>> {
        let (roles_named, roles_created) = Statement::roles_in(raw);
        let f = TreeFacts {
            roles_named,
            roles_created,
            frozen_times: Statement::frozen_times_in(raw),
            maintenance_calls: Statement::maintenance_calls_in(raw),
        };
        (f != TreeFacts::default()).then(|| Box::new(f))
    }
}

impl Statement {
    /// The statement's parse tree, parsed again from its text (statements do not keep their
    /// trees; see `facts`). None only if the text no longer parses alone, which PostgreSQL's
    /// grammar does not allow for a statement it parsed in its file.
    pub fn tree(&self) -> Option<pg_query::protobuf::Node> {
        let text = self.span.slice(&self.parsed_text);
        let mut parsed = pg_query::parse(text, 0).ok()?.protobuf;
        if parsed.stmts.len() != 1 {
            return None;
        }
        parsed.stmts.pop()?.stmt.map(|b| *b)
    }

    /// Roles the statement names (`GRANT … TO r`, `OWNER TO r`, `CREATE POLICY … TO r`,
    /// `SET ROLE r`, …), and roles it creates. `PUBLIC`, `CURRENT_USER` and the like are not
    /// names.
    pub fn roles(&self) -> (Vec<String>, Vec<String>) {
        self.facts.as_ref().map(|f| (f.roles_named.clone(), f.roles_created.clone())).unwrap_or_default()
    }

    /// Date/time special values that this statement stores frozen (see `frozen_times_in`).
    pub fn frozen_times(&self) -> Vec<String> {
        self.facts.as_ref().map(|f| f.frozen_times.clone()).unwrap_or_default()
    }

    /// Functions called where PostgreSQL 17 and later evaluate with `search_path =
    /// pg_catalog, pg_temp` (see `maintenance_calls_in`).
    pub fn maintenance_calls(&self) -> Vec<QualName> {
        self.facts.as_ref().map(|f| f.maintenance_calls.clone()).unwrap_or_default()
    }

    /// Roles the statement names (`GRANT … TO r`, `OWNER TO r`, `CREATE POLICY … TO r`,
    /// `SET ROLE r`, …), and roles it creates. `PUBLIC`, `CURRENT_USER` and the like are not
    /// names.
    fn roles_in(raw: &pg_query::protobuf::Node) -> (Vec<String>, Vec<String>) {
        use pg_query::protobuf::{a_const, RoleSpecType};
        use pg_query::NodeEnum as N;
        let (mut named, mut created) = (Vec::new(), Vec::new());
        fn spec(n: Option<&pg_query::protobuf::RoleSpec>, out: &mut Vec<String>) {
            if let Some(r) = n.filter(|r| r.roletype() == RoleSpecType::RolespecCstring) {
                out.push(r.rolename.clone());
            }
        }
        fn specs(list: &[pg_query::protobuf::Node], out: &mut Vec<String>) {
            for n in list {
                if let Some(N::RoleSpec(r)) = n.node.as_ref() {
                    spec(Some(r), out);
                }
            }
        }
        match raw.node.as_ref() {
            Some(N::GrantStmt(g)) => specs(&g.grantees, &mut named),
            Some(N::GrantRoleStmt(g)) => {
                specs(&g.grantee_roles, &mut named);
                for n in &g.granted_roles {
                    if let Some(N::AccessPriv(p)) = n.node.as_ref() {
                        named.push(p.priv_name.clone());
                    }
                }
            }
            Some(N::AlterOwnerStmt(a)) => spec(a.newowner.as_ref(), &mut named),
            Some(N::AlterTableStmt(a)) => {
                for c in &a.cmds {
                    if let Some(N::AlterTableCmd(c)) = c.node.as_ref() {
                        spec(c.newowner.as_ref(), &mut named);
                    }
                }
            }
            Some(N::CreatePolicyStmt(p)) => specs(&p.roles, &mut named),
            Some(N::AlterPolicyStmt(p)) => specs(&p.roles, &mut named),
            Some(N::CreateSchemaStmt(c)) => spec(c.authrole.as_ref(), &mut named),
            Some(N::AlterDefaultPrivilegesStmt(a)) => {
                for o in &a.options {
                    if let Some(N::DefElem(d)) = o.node.as_ref() {
                        if let Some(N::List(l)) = d.arg.as_deref().and_then(|x| x.node.as_ref()) {
                            specs(&l.items, &mut named);
                        }
                    }
                }
                if let Some(g) = &a.action {
                    specs(&g.grantees, &mut named);
                }
            }
            Some(N::CreateRoleStmt(c)) => created.push(c.role.clone()),
            Some(N::VariableSetStmt(v)) if v.name == "role" => {
                for a in &v.args {
                    if let Some(N::AConst(c)) = a.node.as_ref() {
                        if let Some(a_const::Val::Sval(s)) = &c.val {
                            if s.sval != "none" {
                                named.push(s.sval.clone());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        (named, created)
    }

    /// Date/time special values that this statement stores frozen: `'now'::timestamp`,
    /// `date 'today'`, or `DEFAULT 'now'` on a date/time column, inside what PostgreSQL keeps
    /// and evaluates later (a view, a materialized view, a default, a check, an index, a policy,
    /// a trigger's WHEN). Such a literal becomes the time the statement ran, for good. Returns
    /// the literals as written with their type, e.g. `'now'::timestamp`.
    fn frozen_times_in(raw: &pg_query::protobuf::Node) -> Vec<String> {
        use pg_query::protobuf::{a_const, node::Node as N, ConstrType, Node, ObjectType, TypeName};
        use pg_query::NodeRef as R;
        const SPECIAL: [&str; 4] = ["now", "today", "tomorrow", "yesterday"];
        const TIME_TYPES: [&str; 5] = ["timestamp", "timestamptz", "date", "time", "timetz"];
        let special = |n: Option<&Node>| match n.and_then(|n| n.node.as_ref()) {
            Some(N::AConst(c)) => match &c.val {
                Some(a_const::Val::Sval(s)) => {
                    let v = s.sval.trim().to_ascii_lowercase();
                    SPECIAL.contains(&v.as_str()).then_some(v)
                }
                _ => None,
            },
            _ => None,
        };
        let time_type = |t: Option<&TypeName>| {
            t.and_then(|t| t.names.last()).and_then(|n| match n.node.as_ref() {
                Some(N::String(s)) if TIME_TYPES.contains(&s.sval.as_str()) => Some(s.sval.clone()),
                _ => None,
            })
        };
        // The expressions PostgreSQL stores: pg_query's walker only follows queries and
        // expressions, so the roots inside DDL are found here.
        let mut roots: Vec<&Node> = Vec::new();
        let mut columns: Vec<&pg_query::protobuf::ColumnDef> = Vec::new();
        fn element<'a>(n: &'a Node, roots: &mut Vec<&'a Node>, columns: &mut Vec<&'a pg_query::protobuf::ColumnDef>) {
            match n.node.as_ref() {
                Some(N::ColumnDef(c)) => {
                    columns.push(c);
                    roots.extend(c.raw_default.as_deref());
                    for k in &c.constraints {
                        element(k, roots, columns);
                    }
                }
                Some(N::Constraint(k)) => roots.extend(k.raw_expr.as_deref()),
                Some(_) => roots.push(n),
                None => {}
            }
        }
        match raw.node.as_ref() {
            Some(N::ViewStmt(_) | N::RuleStmt(_)) => roots.push(raw),
            Some(N::CreateTableAsStmt(c)) if c.objtype == ObjectType::ObjectMatview as i32 => roots.push(raw),
            Some(N::CreateStmt(c)) => c.table_elts.iter().for_each(|e| element(e, &mut roots, &mut columns)),
            Some(N::AlterTableStmt(a)) => {
                for cmd in &a.cmds {
                    if let Some(N::AlterTableCmd(cmd)) = cmd.node.as_ref() {
                        if let Some(d) = cmd.def.as_deref() {
                            element(d, &mut roots, &mut columns);
                        }
                    }
                }
            }
            Some(N::IndexStmt(i)) => {
                roots.extend(i.where_clause.as_deref());
                for p in &i.index_params {
                    if let Some(N::IndexElem(e)) = p.node.as_ref() {
                        roots.extend(e.expr.as_deref());
                    }
                }
            }
            Some(N::CreatePolicyStmt(p)) => roots.extend(p.qual.as_deref().into_iter().chain(p.with_check.as_deref())),
            Some(N::AlterPolicyStmt(p)) => roots.extend(p.qual.as_deref().into_iter().chain(p.with_check.as_deref())),
            Some(N::CreateTrigStmt(t)) => roots.extend(t.when_clause.as_deref()),
            Some(N::CreateDomainStmt(d)) => d.constraints.iter().for_each(|e| element(e, &mut roots, &mut columns)),
            Some(N::AlterDomainStmt(d)) => {
                if let Some(e) = d.def.as_deref() {
                    element(e, &mut roots, &mut columns);
                }
            }
            _ => {}
        }
        let mut out = Vec::new();
        for root in roots {
            let Some(n) = root.node.as_ref() else { continue };
            let mut nodes = vec![n.to_ref()];
            nodes.extend(n.nodes().into_iter().skip(1).map(|(r, ..)| r));
            for node in nodes {
                if let R::TypeCast(c) = node {
                    if let (Some(v), Some(t)) = (special(c.arg.as_deref()), time_type(c.type_name.as_ref())) {
                        out.push(format!("'{v}'::{t}"));
                    }
                }
            }
        }
        for col in columns {
            let Some(t) = time_type(col.type_name.as_ref()) else { continue };
            let defaults =
                col.raw_default.as_deref().into_iter().chain(col.constraints.iter().filter_map(
                    |k| match k.node.as_ref() {
                        Some(N::Constraint(k)) if k.contype == ConstrType::ConstrDefault as i32 => {
                            k.raw_expr.as_deref()
                        }
                        _ => None,
                    },
                ));
            for d in defaults {
                if let Some(v) = special(Some(d)) {
                    out.push(format!("DEFAULT '{v}' on a {t} column"));
                }
            }
        }
        out.dedup();
        out
    }

    /// Functions called where PostgreSQL 17 and later evaluate with `search_path =
    /// pg_catalog, pg_temp`: index expressions and predicates, and materialized view queries.
    fn maintenance_calls_in(raw: &pg_query::protobuf::Node) -> Vec<QualName> {
        use pg_query::protobuf::{node::Node as N, ObjectType};
        let roots: Vec<&pg_query::protobuf::Node> = match raw.node.as_ref() {
            Some(N::IndexStmt(i)) => i
                .where_clause
                .as_deref()
                .into_iter()
                .chain(i.index_params.iter().filter_map(|p| match p.node.as_ref() {
                    Some(N::IndexElem(e)) => e.expr.as_deref(),
                    _ => None,
                }))
                .collect(),
            Some(N::CreateTableAsStmt(c)) if c.objtype == ObjectType::ObjectMatview as i32 => vec![raw],
            _ => vec![],
        };
        let mut out: Vec<QualName> = Vec::new();
        for root in roots {
            for name in function_calls(root) {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        out
    }

    /// For `CREATE FUNCTION … LANGUAGE sql` with a body in a string (not `BEGIN ATOMIC`, whose
    /// names are bound when it is created): whether it pins `search_path` (`SET search_path`),
    /// and the names its body leaves to `search_path`: relations without a schema, and
    /// functions without one that are not in `pg_catalog`. None for other statements.
    pub fn search_path_reliance(&self) -> Option<(bool, Vec<String>)> {
        use pg_query::protobuf::node::Node as N;
        if !matches!(self.kind, StmtKind::CreateFunction { .. }) {
            return None;
        }
        let raw = self.tree()?;
        let Some(N::CreateFunctionStmt(f)) = raw.node.as_ref() else { return None };
        if f.sql_body.is_some() {
            return None;
        }
        let mut language = String::new();
        let mut body = String::new();
        let mut pinned = false;
        for o in &f.options {
            let Some(N::DefElem(d)) = o.node.as_ref() else { continue };
            match d.defname.as_str() {
                "language" => language = d.arg.as_deref().and_then(crate::convert::string_of).unwrap_or_default(),
                "as" => {
                    if let Some(N::List(l)) = d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                        body = l.items.first().and_then(crate::convert::string_of).unwrap_or_default();
                    }
                }
                "set" => {
                    if let Some(N::VariableSetStmt(v)) = d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                        pinned |= v.name.eq_ignore_ascii_case("search_path");
                    }
                }
                _ => {}
            }
        }
        if !language.eq_ignore_ascii_case("sql") {
            return None;
        }
        let parsed = pg_query::parse(&body, 0).ok()?;
        let nodes = parsed.protobuf.nodes();
        // WITH names are read in FROM like tables but are not looked up in search_path.
        let ctes: Vec<&str> = nodes
            .iter()
            .filter_map(|(n, ..)| match n {
                pg_query::NodeRef::CommonTableExpr(c) => Some(c.ctename.as_str()),
                _ => None,
            })
            .collect();
        let mut names: Vec<String> = Vec::new();
        for (node, ..) in nodes.iter().cloned() {
            let name = match node {
                pg_query::NodeRef::RangeVar(r)
                    if r.schemaname.is_empty()
                        && !r.relname.starts_with("pg_")
                        && !ctes.contains(&r.relname.as_str()) =>
                {
                    Some(r.relname.clone())
                }
                pg_query::NodeRef::FuncCall(c) if c.funcname.len() == 1 => c
                    .funcname
                    .first()
                    .and_then(crate::convert::string_of)
                    .filter(|n| !crate::volatility::in_pg_catalog(n))
                    .map(|n| format!("{n}()")),
                _ => None,
            };
            if let Some(n) = name.filter(|n| !names.contains(n)) {
                names.push(n);
            }
        }
        Some((pinned, names))
    }

    /// For `UPDATE t SET a = const, … WHERE k = const AND …` (no FROM, WHERE only equalities of
    /// columns with constants): the assignments and the equalities, as (column, SQL constant).
    /// An UPDATE that renames a key (`SET code = 'ms_MY' WHERE code = 'my'`) can be undone by
    /// the same UPDATE the other way round.
    pub fn update_constants(&self) -> Option<(ColumnConstants, ColumnConstants)> {
        use pg_query::protobuf::{node::Node as N, AExprKind, BoolExprType};
        if !matches!(self.kind, StmtKind::Update { .. }) {
            return None;
        }
        let raw = self.tree()?;
        let Some(N::UpdateStmt(u)) = raw.node.as_ref() else { return None };
        if !u.from_clause.is_empty() || u.with_clause.is_some() {
            return None;
        }
        let mut sets = Vec::new();
        for t in &u.target_list {
            let Some(N::ResTarget(r)) = t.node.as_ref() else { return None };
            if !r.indirection.is_empty() {
                return None;
            }
            sets.push((r.name.clone(), crate::convert::constant_sql(r.val.as_deref()?)?));
        }
        let mut conjuncts: Vec<&pg_query::protobuf::Node> = Vec::new();
        match u.where_clause.as_deref()?.node.as_ref()? {
            N::BoolExpr(b) if b.boolop == BoolExprType::AndExpr as i32 => conjuncts.extend(b.args.iter()),
            _ => conjuncts.push(u.where_clause.as_deref()?),
        }
        let mut wheres = Vec::new();
        for c in conjuncts {
            let Some(N::AExpr(e)) = c.node.as_ref() else { return None };
            let op: Vec<String> = e.name.iter().filter_map(crate::convert::string_of).collect();
            if e.kind != AExprKind::AexprOp as i32 || op != ["="] {
                return None;
            }
            let Some(N::ColumnRef(col)) = e.lexpr.as_deref()?.node.as_ref() else { return None };
            let [field] = col.fields.as_slice() else { return None };
            wheres.push((crate::convert::string_of(field)?, crate::convert::constant_sql(e.rexpr.as_deref()?)?));
        }
        Some((sets, wheres))
    }

    /// For `INSERT … VALUES` with literal rows (see `StmtKind::Insert`): the columns and the
    /// rows as constants. None for any other statement.
    pub fn insert_values(&self) -> Option<InsertValues> {
        if !matches!(self.kind, StmtKind::Insert { literal_rows: true, .. }) {
            return None;
        }
        match self.tree()?.node? {
            pg_query::NodeEnum::InsertStmt(s) => crate::convert::insert_values(&s),
            _ => None,
        }
    }

    /// For `COPY … FROM STDIN` with inline rows: the rows as constants (see [`crate::copy`]).
    pub fn copy_rows(&self, source: &str) -> Option<InsertValues> {
        crate::copy::copy_rows(self, source)
    }

    /// The statement's text in `source`.
    pub fn text<'a>(&self, source: &'a str) -> &'a str {
        self.span.slice(source)
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

/// The functions called anywhere under `root`.
fn function_calls(root: &pg_query::protobuf::Node) -> Vec<QualName> {
    let Some(n) = root.node.as_ref() else { return vec![] };
    let mut nodes = vec![n.to_ref()];
    nodes.extend(n.nodes().into_iter().skip(1).map(|(r, ..)| r));
    nodes
        .into_iter()
        .filter_map(|node| match node {
            pg_query::NodeRef::FuncCall(c) => {
                let parts: Vec<String> = c.funcname.iter().filter_map(crate::convert::string_of).collect();
                match parts.as_slice() {
                    [name] => Some(QualName::bare(name.clone())),
                    [schema, name] => Some(QualName::qualified(schema.clone(), name.clone())),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}
