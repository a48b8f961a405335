//! The snapshot model: a normalised, ordered description of everything a schema says.
//! Definitions come from PostgreSQL's own deparsers (`pg_get_*def`, `format_type`), read with
//! an empty search_path so every name is schema-qualified and the text is canonical.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

pub use crate::kinds::{
    ConstraintType, Firing, FunctionKind, GeneratedKind, IdentityKind, Persistence, ReplicaIdentity,
};

/// A schema-qualified name. Serialised as its SQL spelling (`public.users`,
/// `"My Schema"."T"`), so it can key JSON maps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QName {
    /// Schema.
    pub schema: String,
    /// Name within the schema.
    pub name: String,
}

impl QName {
    /// A name.
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> QName {
        QName { schema: schema.into(), name: name.into() }
    }

    /// `"schema"."name"` with PostgreSQL's quoting rules.
    pub fn sql(&self) -> String {
        format!("{}.{}", migsafe_sql::quote_ident(&self.schema), migsafe_sql::quote_ident(&self.name))
    }
}

impl Serialize for QName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.sql())
    }
}

impl<'de> Deserialize<'de> for QName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        QName::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("not a qualified name: {text}")))
    }
}

impl QName {
    /// Parse `schema.name` with SQL quoting (`"a.b"."c"`).
    pub fn parse(text: &str) -> Option<QName> {
        match name_parts(text).as_slice() {
            [s, n] => Some(QName::new(s.clone(), n.clone())),
            _ => None,
        }
    }

    /// Parse `schema.table.column` with SQL quoting: the table and the column.
    pub fn parse_column(text: &str) -> Option<(QName, String)> {
        match name_parts(text).as_slice() {
            [s, t, c] => Some((QName::new(s.clone(), t.clone()), c.clone())),
            _ => None,
        }
    }
}

/// The dot-separated parts of a name with SQL quoting (`"a.b"."c""d"` → `a.b`, `c"d`).
pub fn name_parts(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

impl fmt::Display for QName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.sql())
    }
}

/// Privileges granted on an object to roles other than its owner, as `role=PRIV[*]` strings
/// (`*` = WITH GRANT OPTION; `PUBLIC` for everyone), sorted.
pub type Grants = Vec<String>;

/// A schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Schema {
    /// COMMENT ON SCHEMA.
    pub comment: Option<String>,
    /// Grants to non-owners.
    pub grants: Grants,
}

/// An installed extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// Schema its objects live in.
    pub schema: String,
    /// Installed version.
    pub version: String,
}

/// What kind of relation a table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// An ordinary table.
    Regular,
    /// A partitioned table (no storage of its own).
    Partitioned,
    /// A foreign table.
    Foreign,
}

impl TableKind {
    /// The kind of a table from its `pg_class.relkind` (`r`, `p` or `f`).
    pub fn from_relkind(relkind: char) -> TableKind {
        match relkind {
            'p' => TableKind::Partitioned,
            'f' => TableKind::Foreign,
            _ => TableKind::Regular,
        }
    }
}

/// A table column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type with modifiers, as `format_type` spells it (`character varying(20)`).
    pub type_name: String,
    /// NOT NULL.
    pub not_null: bool,
    /// DEFAULT expression (`pg_get_expr`).
    pub default: Option<String>,
    /// Identity: `always` or `by default`.
    pub identity: Option<IdentityKind>,
    /// The options of an identity column's sequence (start, increment, bounds, cache, cycle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_options: Option<SequenceOptions>,
    /// The name of an identity column's sequence, qualified (`public.users_id_seq`): it keeps
    /// its name when the table or column is renamed, and later SQL names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_sequence: Option<QName>,
    /// The name of the column's NOT NULL constraint, which PostgreSQL 18 and later keep in
    /// `pg_constraint` (a later `ALTER TABLE … ALTER CONSTRAINT` or `DROP CONSTRAINT` names it);
    /// None before 18, and for an inherited one (a partition's), which cannot be renamed and
    /// is not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_null_name: Option<String>,
    /// Generated expression and kind (`stored` / `virtual`).
    pub generated: Option<Generated>,
    /// Collation when it is not the type's default.
    pub collation: Option<String>,
    /// COMMENT ON COLUMN.
    pub comment: Option<String>,
    /// Column-level grants.
    pub grants: Grants,
    /// Inherited from a parent (partitions, INHERITS), not declared locally.
    pub inherited: bool,
    /// Inherited and declared by the table itself as well (`attislocal` of an inherited
    /// column: created with the child, or the child's own column that a parent's `ADD COLUMN`
    /// merged with). Such a column stays, as the child's own, when its parent drops it; an
    /// inherited-only one goes with it. Always false for partitions, whose columns PostgreSQL
    /// keeps inherited-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_too: bool,
    /// Settings that differ from the defaults, sorted: `compression=lz4`, `statistics=500`,
    /// `storage=external`, and attribute options such as `n_distinct=100`.
    #[serde(default)]
    pub settings: Vec<String>,
}

/// A sequence's options: a [`Sequence`]'s, or an identity column's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequenceOptions {
    /// START WITH.
    pub start: i64,
    /// INCREMENT BY.
    pub increment: i64,
    /// MINVALUE.
    pub min: i64,
    /// MAXVALUE.
    pub max: i64,
    /// CACHE.
    pub cache: i64,
    /// CYCLE.
    pub cycle: bool,
}

impl SequenceOptions {
    /// PostgreSQL's defaults for a sequence of type `type_name`.
    pub fn defaults(type_name: &str, increment: i64) -> SequenceOptions {
        let top = match type_name {
            "smallint" => i16::MAX as i64,
            "integer" => i32::MAX as i64,
            _ => i64::MAX,
        };
        let bottom = match type_name {
            "smallint" => i16::MIN as i64,
            "integer" => i32::MIN as i64,
            _ => i64::MIN,
        };
        let (min, max) = if increment > 0 { (1, top) } else { (bottom, -1) };
        SequenceOptions { start: if increment > 0 { min } else { max }, increment, min, max, cache: 1, cycle: false }
    }

    /// The options that differ from the defaults for a column of `type_name`, as
    /// `ADD GENERATED … AS IDENTITY (…)` writes them (empty when all are the defaults).
    pub fn sql(&self, type_name: &str) -> String {
        let d = SequenceOptions::defaults(type_name, self.increment);
        let mut out = Vec::new();
        if self.increment != 1 {
            out.push(format!("INCREMENT BY {}", self.increment));
        }
        if self.min != d.min {
            out.push(format!("MINVALUE {}", self.min));
        }
        if self.max != d.max {
            out.push(format!("MAXVALUE {}", self.max));
        }
        // START WITH defaults to MINVALUE (ascending) or MAXVALUE (descending), as given.
        if self.start != if self.increment > 0 { self.min } else { self.max } {
            out.push(format!("START WITH {}", self.start));
        }
        if self.cache != 1 {
            out.push(format!("CACHE {}", self.cache));
        }
        if self.cycle {
            out.push("CYCLE".into());
        }
        out.join(" ")
    }

    /// `SET …` clauses of `ALTER COLUMN` that turn `from` into these options.
    pub fn alter_sql(&self, from: &SequenceOptions) -> String {
        let mut out = Vec::new();
        if self.increment != from.increment {
            out.push(format!("SET INCREMENT BY {}", self.increment));
        }
        if self.min != from.min {
            out.push(format!("SET MINVALUE {}", self.min));
        }
        if self.max != from.max {
            out.push(format!("SET MAXVALUE {}", self.max));
        }
        if self.start != from.start {
            out.push(format!("SET START WITH {}", self.start));
        }
        if self.cache != from.cache {
            out.push(format!("SET CACHE {}", self.cache));
        }
        if self.cycle != from.cycle {
            out.push(if self.cycle { "SET CYCLE".into() } else { "SET NO CYCLE".into() });
        }
        // A position outside the new bounds is refused (`RESTART value … cannot be greater than
        // MAXVALUE`): when the old start is outside them, so is a sequence never used, and one
        // used counts on from there; it starts again at the new start.
        if from.start < self.min || from.start > self.max {
            out.push("RESTART".into());
        }
        out.join(" ")
    }
}

impl Column {
    /// True when going from `old` to this column changes its type or collation.
    pub fn retyped_from(&self, old: &Column) -> bool {
        self.type_name != old.type_name || self.collation != old.collation
    }

    /// `GENERATED … AS IDENTITY`, with the sequence options that are not the defaults, for an
    /// identity column.
    pub fn identity_clause(&self) -> Option<String> {
        let kind = self.identity?;
        let options = self.identity_options.as_ref().map(|o| o.sql(&self.type_name)).unwrap_or_default();
        let options = match &self.identity_sequence {
            Some(seq) if options.is_empty() => format!("SEQUENCE NAME {seq}"),
            Some(seq) => format!("SEQUENCE NAME {seq} {options}"),
            None => options,
        };
        Some(match options.as_str() {
            "" => format!("GENERATED {} AS IDENTITY", kind.sql()),
            o => format!("GENERATED {} AS IDENTITY ({o})", kind.sql()),
        })
    }

    /// The definition a child declares for a column it inherits too (the generation
    /// expression, if any, is the parent's).
    pub fn merged_definition(&self) -> String {
        Column { generated: None, ..self.clone() }.definition(true)
    }

    /// The column's definition as `CREATE TABLE` and `ADD COLUMN` write it: name, type,
    /// collation, generated expression, default, identity, and NOT NULL when `with_not_null`
    /// (a rollback that puts data back adds NOT NULL only after the data).
    pub fn definition(&self, with_not_null: bool) -> String {
        use migsafe_sql::quote_ident as qi;
        let mut d = format!("{} {}", qi(&self.name), self.type_name);
        if let Some(col) = &self.collation {
            d.push_str(&format!(" COLLATE {col}"));
        }
        if let Some(g) = &self.generated {
            d.push_str(&format!(" GENERATED ALWAYS AS ({}) {}", g.expr, g.kind.sql()))
        }
        if let Some(def) = &self.default {
            d.push_str(&format!(" DEFAULT {def}"));
        }
        if let Some(id) = self.identity_clause() {
            d.push_str(&format!(" {id}"));
        }
        if with_not_null && self.not_null {
            if let Some(n) = &self.not_null_name {
                d.push_str(&format!(" CONSTRAINT {}", qi(n)));
            }
            d.push_str(" NOT NULL");
        }
        d
    }
}

/// A generated column's expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generated {
    /// `stored` or `virtual`.
    pub kind: GeneratedKind,
    /// Expression.
    pub expr: String,
}

/// A table constraint (not NOT NULL, which is a column property here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    /// Primary key, unique, foreign key, check, exclusion, constraint trigger.
    pub kind: ConstraintType,
    /// `pg_get_constraintdef` (includes `NOT VALID` when not validated).
    pub definition: String,
    /// Validated.
    pub validated: bool,
    /// For foreign keys: the referenced table.
    pub references: Option<QName>,
    /// Key columns.
    pub columns: Vec<String>,
    /// Inherited from a parent (not declared on this table).
    pub inherited: bool,
    /// COMMENT ON CONSTRAINT.
    pub comment: Option<String>,
}

/// An index (constraint-backing indexes included, marked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// `pg_get_indexdef`.
    pub definition: String,
    /// Usable by queries (false after a failed CREATE INDEX CONCURRENTLY).
    pub valid: bool,
    /// Backs a PRIMARY KEY / UNIQUE / EXCLUDE constraint.
    pub constraint: bool,
    /// Attached to an index on the parent partitioned table.
    pub inherited: bool,
    /// COMMENT ON INDEX.
    pub comment: Option<String>,
    /// The index `CLUSTER` uses for its table (`ALTER TABLE … CLUSTER ON`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clustered: bool,
}

/// A trigger (internal ones, such as those enforcing foreign keys, are left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// `pg_get_triggerdef`.
    pub definition: String,
    /// When it fires (enabled, disabled, replica only, always).
    pub enabled: Firing,
    /// Cloned from the parent partitioned table.
    pub inherited: bool,
    /// COMMENT ON TRIGGER.
    pub comment: Option<String>,
}

/// A row-level security policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// PERMISSIVE or RESTRICTIVE.
    pub permissive: bool,
    /// ALL, SELECT, INSERT, UPDATE, DELETE.
    pub command: String,
    /// Roles (`public` when none).
    pub roles: Vec<String>,
    /// USING expression.
    pub using: Option<String>,
    /// WITH CHECK expression.
    pub with_check: Option<String>,
}

/// A table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Regular, partitioned or foreign.
    pub kind: TableKind,
    /// Permanent or unlogged.
    pub persistence: Persistence,
    /// `PARTITION BY …` key of a partitioned table.
    pub partition_key: Option<String>,
    /// Parent and bound of a partition.
    pub partition_of: Option<(QName, String)>,
    /// INHERITS parents (not partitions).
    pub inherits: Vec<QName>,
    /// Row level security enabled / forced.
    pub rls: (bool, bool),
    /// Storage parameters (`fillfactor=70`), sorted.
    pub options: Vec<String>,
    /// Replica identity: default, nothing, full, or an index.
    pub replica_identity: ReplicaIdentity,
    /// Columns in their physical order (order matters to `SELECT *`).
    pub columns: Vec<Column>,
    /// Constraints by name.
    pub constraints: BTreeMap<String, Constraint>,
    /// Indexes by name (same schema as the table).
    pub indexes: BTreeMap<String, Index>,
    /// Triggers by name.
    pub triggers: BTreeMap<String, Trigger>,
    /// Policies by name.
    pub policies: BTreeMap<String, Policy>,
    /// COMMENT ON TABLE.
    pub comment: Option<String>,
    /// Grants to non-owners.
    pub grants: Grants,
    /// For foreign tables: server and options.
    pub foreign: Option<String>,
}

impl Table {
    /// A table with nothing in it (the other side of an added or removed table).
    pub fn empty() -> Table {
        Table {
            kind: TableKind::Regular,
            persistence: Persistence::Permanent,
            partition_key: None,
            partition_of: None,
            inherits: vec![],
            rls: (false, false),
            options: vec![],
            replica_identity: ReplicaIdentity::Default,
            columns: vec![],
            constraints: BTreeMap::new(),
            indexes: BTreeMap::new(),
            triggers: BTreeMap::new(),
            policies: BTreeMap::new(),
            comment: None,
            grants: vec![],
            foreign: None,
        }
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A sequence (identity sequences belong to their column and are not listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// `smallint`, `integer` or `bigint`.
    pub data_type: String,
    /// Start, increment, bounds, cache, cycle (serialised as fields of the sequence).
    #[serde(flatten)]
    pub options: SequenceOptions,
    /// OWNED BY table and column.
    pub owned_by: Option<(QName, String)>,
    /// COMMENT ON SEQUENCE.
    pub comment: Option<String>,
    /// Grants to non-owners.
    pub grants: Grants,
}

/// A view or materialized view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Materialized.
    pub materialized: bool,
    /// `pg_get_viewdef`.
    pub definition: String,
    /// Column names in order.
    pub columns: Vec<String>,
    /// Options such as `security_barrier=true`, `check_option=local`.
    pub options: Vec<String>,
    /// For materialized views: populated (WITH DATA).
    pub populated: bool,
    /// Relations and functions it depends on (for ordering).
    pub depends_on: Vec<QName>,
    /// Indexes (materialized views).
    pub indexes: BTreeMap<String, Index>,
    /// COMMENT ON VIEW.
    pub comment: Option<String>,
    /// Column comments.
    pub column_comments: BTreeMap<String, String>,
    /// Grants to non-owners.
    pub grants: Grants,
    /// Triggers (`INSTEAD OF`, or statement-level).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub triggers: BTreeMap<String, Trigger>,
}

/// A function, procedure or aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    /// Schema.
    pub schema: String,
    /// Name.
    pub name: String,
    /// Function, procedure, aggregate or window function.
    pub kind: FunctionKind,
    /// Identity arguments (`integer, text`): with the name, what identifies it.
    pub identity_args: String,
    /// Result type (`pg_get_function_result`).
    pub result: Option<String>,
    /// Full definition: `pg_get_functiondef` (aggregates: a CREATE AGGREGATE built from
    /// pg_aggregate).
    pub definition: String,
    /// COMMENT ON FUNCTION.
    pub comment: Option<String>,
    /// Grants to non-owners.
    pub grants: Grants,
}

impl Function {
    /// `"schema"."name"(args)`, the form DROP and COMMENT take.
    pub fn signature(&self) -> String {
        format!("{}({})", QName::new(&self.schema, &self.name).sql(), self.identity_args)
    }

    /// `FUNCTION`, `PROCEDURE` or `AGGREGATE` (for DDL).
    pub fn keyword(&self) -> &'static str {
        match self.kind {
            FunctionKind::Procedure => "PROCEDURE",
            FunctionKind::Aggregate => "AGGREGATE",
            FunctionKind::Function | FunctionKind::Window => "FUNCTION",
        }
    }
}

/// The grants a type has when nobody granted or revoked anything: USAGE to PUBLIC.
pub fn default_type_grants() -> Grants {
    vec!["PUBLIC=USAGE".to_string()]
}

/// A user-defined type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TypeDef {
    /// An enum with labels in sort order.
    Enum {
        /// Labels in order.
        labels: Vec<String>,
        /// COMMENT ON TYPE.
        comment: Option<String>,
    },
    /// A composite type.
    Composite {
        /// Attributes: name and type.
        attributes: Vec<(String, String)>,
        /// COMMENT ON TYPE.
        comment: Option<String>,
    },
    /// A domain.
    Domain {
        /// Base type.
        base: String,
        /// NOT NULL.
        not_null: bool,
        /// DEFAULT.
        default: Option<String>,
        /// Collation when not the base type's.
        collation: Option<String>,
        /// Constraints: name → (definition, validated).
        constraints: BTreeMap<String, (String, bool)>,
        /// COMMENT ON DOMAIN.
        comment: Option<String>,
    },
    /// A range type.
    Range {
        /// Subtype.
        subtype: String,
        /// COMMENT ON TYPE.
        comment: Option<String>,
    },
}

/// A collation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collation {
    /// `icu`, `libc` or `default`.
    pub provider: String,
    /// Locale (LC_COLLATE for libc, the ICU locale for ICU).
    pub locale: String,
    /// Deterministic.
    pub deterministic: bool,
}

/// An object of a kind the snapshot does not model field by field: statistics objects,
/// publications and what they publish, event triggers, casts, operators and operator classes,
/// text search and foreign-data objects, procedural languages, default privileges. Enough to
/// see that it appeared, went or changed, and the SQL to drop or create it where that can be
/// written from the catalog (`None` where it cannot: a rollback then says so).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherObject {
    /// What it is (`statistics object`, `publication`, `publication table`, `cast`…).
    pub kind: String,
    /// Its name as SQL spells it.
    pub identity: String,
    /// What it is made of: a change means dropping and creating it again.
    pub definition: String,
    /// What can change in place (an event trigger's firing state, a publication's actions).
    pub state: String,
    /// SQL that creates it (with its state).
    pub create: Option<String>,
    /// SQL that drops it.
    pub drop: Option<String>,
    /// SQL that sets the state of an existing one to this object's.
    pub alter: Option<String>,
    /// A membership (a table in a publication): dropped before and created after objects.
    pub member: bool,
    /// Default privileges: the `grantee=PRIV[*]` entries in force and the ones that hold
    /// without the entry (PostgreSQL's built-in defaults, or none in a schema). The identity
    /// is what follows ALTER DEFAULT PRIVILEGES (`FOR ROLE r IN SCHEMA s ON TABLES`), without
    /// FOR ROLE when the role is the one that read the catalog (the one running migrations).
    pub default_acl: Option<(Vec<String>, Vec<String>)>,
}

/// Everything a database's schema says (outside system and excluded schemas).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    /// `server_version_num` it was read from.
    pub server_version: u32,
    /// Schemas.
    pub schemas: BTreeMap<String, Schema>,
    /// Extensions.
    pub extensions: BTreeMap<String, Extension>,
    /// Collations.
    pub collations: BTreeMap<QName, Collation>,
    /// Types.
    pub types: BTreeMap<QName, TypeDef>,
    /// Sequences.
    pub sequences: BTreeMap<QName, Sequence>,
    /// Tables.
    pub tables: BTreeMap<QName, Table>,
    /// Views and materialized views.
    pub views: BTreeMap<QName, View>,
    /// Functions, procedures and aggregates by `schema.name(args)`.
    pub functions: BTreeMap<String, Function>,
    /// Rewrite rules (`CREATE RULE`) on tables and views, by `"schema"."relation"."rule"`;
    /// a view's own `_RETURN` rule is its definition and is not listed.
    #[serde(default)]
    pub rules: BTreeMap<String, RewriteRule>,
    /// Objects of the kinds [`OtherObject`] covers, by `kind identity`.
    #[serde(default)]
    pub others: BTreeMap<String, OtherObject>,
    /// Grants on user-defined types that are not PostgreSQL's default (USAGE to PUBLIC), by
    /// type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub type_grants: BTreeMap<QName, Grants>,
}

/// A rewrite rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewriteRule {
    /// The table or view it is on.
    pub relation: QName,
    /// Its name (unique per relation).
    pub name: String,
    /// `pg_get_ruledef`, without the final `;`.
    pub definition: String,
    /// When it fires (enabled, disabled, replica only, always).
    pub enabled: Firing,
    /// Relations and functions its actions use (for ordering).
    pub depends_on: Vec<QName>,
    /// COMMENT ON RULE.
    pub comment: Option<String>,
}

impl RewriteRule {
    /// The key it has in [`Snapshot::rules`].
    pub fn key(relation: &QName, name: &str) -> String {
        format!("{relation}.{}", migsafe_sql::quote_ident(name))
    }
}

impl Snapshot {
    /// The views and materialized views built on `roots`, transitively (what a `DROP … CASCADE`
    /// of them takes along), in the order they are reached.
    pub fn views_on(&self, roots: &[QName]) -> Vec<(&QName, &View)> {
        let mut reached: Vec<&QName> = roots.iter().collect();
        let mut out = Vec::new();
        while let Some((name, v)) = self
            .views
            .iter()
            .find(|(name, v)| !reached.contains(name) && v.depends_on.iter().any(|d| reached.contains(&d)))
        {
            reached.push(name);
            out.push((name, v));
        }
        out
    }

    /// Stable pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("snapshots serialise")
    }

    /// Parse snapshot JSON.
    pub fn from_json(text: &str) -> Result<Snapshot, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Whether `type_name` (as `format_type` spells a column's type, arrays included) is one of
    /// the types this snapshot defines (an enum, domain, composite or range of the database's).
    pub fn has_user_type(&self, type_name: &str) -> bool {
        let base = type_name.trim_end_matches("[]");
        self.types.keys().any(|n| n.to_string() == base || n.name == base || format!("{}.{}", n.schema, n.name) == base)
    }

    /// Number of objects of each kind, for summaries.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        m.insert("schemas", self.schemas.len());
        m.insert("extensions", self.extensions.len());
        m.insert("types", self.types.len());
        m.insert("sequences", self.sequences.len());
        m.insert("tables", self.tables.len());
        m.insert("columns", self.tables.values().map(|t| t.columns.len()).sum());
        m.insert("constraints", self.tables.values().map(|t| t.constraints.len()).sum());
        m.insert("indexes", self.tables.values().map(|t| t.indexes.len()).sum::<usize>());
        m.insert("triggers", self.tables.values().map(|t| t.triggers.len()).sum());
        m.insert("policies", self.tables.values().map(|t| t.policies.len()).sum());
        m.insert("views", self.views.len());
        m.insert("functions", self.functions.len());
        m.insert("rules", self.rules.len());
        m
    }
}

/// The snapshot answers the lock model's questions about the schema a statement runs on. A name
/// written without a schema is the one table of that name, `public`'s first.
impl migsafe_sql::lock::LockCatalog for Snapshot {
    fn index_table(&self, index: &migsafe_sql::QualName) -> Option<migsafe_sql::QualName> {
        self.tables.iter().find_map(|(tn, t)| {
            (t.indexes.contains_key(&index.name) && index.schema.as_deref().is_none_or(|s| s == tn.schema))
                .then(|| migsafe_sql::QualName::qualified(tn.schema.clone(), tn.name.clone()))
        })
    }

    fn foreign_keys_of(&self, table: &migsafe_sql::QualName) -> Vec<migsafe_sql::lock::ForeignKeyRef> {
        let Some((tn, t)) = self.lock_table(table) else { return vec![] };
        foreign_keys(tn, t).collect()
    }

    fn foreign_keys_to(&self, table: &migsafe_sql::QualName) -> Vec<migsafe_sql::lock::ForeignKeyRef> {
        let Some((target, _)) = self.lock_table(table) else { return vec![] };
        let to = migsafe_sql::QualName::qualified(target.schema.clone(), target.name.clone());
        self.tables.iter().flat_map(|(tn, t)| foreign_keys(tn, t)).filter(|k| k.references == to).collect()
    }

    fn domain_tables(&self, domain: &migsafe_sql::QualName) -> Vec<migsafe_sql::QualName> {
        let of_domain =
            |type_name: &str| type_name.rsplit('.').next().map(|n| n.trim_matches('"')) == Some(&domain.name);
        self.tables
            .iter()
            .filter(|(_, t)| t.columns.iter().any(|c| of_domain(&c.type_name)))
            .map(|(tn, _)| migsafe_sql::QualName::qualified(tn.schema.clone(), tn.name.clone()))
            .collect()
    }

    fn trigger_statements(&self, table: &migsafe_sql::QualName, event: &str) -> Vec<migsafe_sql::StmtKind> {
        let Some((_, t)) = self.lock_table(table) else { return vec![] };
        t.triggers
            .values()
            .filter(|tr| trigger_events(&tr.definition).contains(&event))
            .filter_map(|tr| trigger_function(&tr.definition))
            .flat_map(|f| self.functions.values().filter(move |g| g.name == f))
            .flat_map(|g| migsafe_sql::plpgsql::function_statements(&g.definition))
            .map(|s| s.kind)
            .collect()
    }

    fn function_statements(
        &self,
        function: &migsafe_sql::QualName,
        args: &[Option<String>],
    ) -> Vec<migsafe_sql::StmtKind> {
        let schema = function.schema.as_deref();
        self.functions
            .values()
            .filter(|g| g.name == function.name && schema.is_none_or(|s| s == g.schema))
            .flat_map(|g| migsafe_sql::plpgsql::function_statements_called(&g.definition, args))
            .map(|s| s.kind)
            .collect()
    }

    fn children(&self, table: &migsafe_sql::QualName) -> Vec<(migsafe_sql::QualName, bool)> {
        let Some((root, _)) = self.lock_table(table) else { return vec![] };
        let mut out: Vec<(QName, bool)> = Vec::new();
        let mut todo = vec![root.clone()];
        while let Some(parent) = todo.pop() {
            for (name, t) in &self.tables {
                let partition = t.partition_of.as_ref().is_some_and(|(p, _)| *p == parent);
                if (partition || t.inherits.contains(&parent)) && !out.iter().any(|(n, _)| n == name) {
                    out.push((name.clone(), partition));
                    todo.push(name.clone());
                }
            }
        }
        out.into_iter().map(|(n, p)| (migsafe_sql::QualName::qualified(n.schema, n.name), p)).collect()
    }

    fn server_version(&self) -> Option<u32> {
        (self.server_version > 0).then_some(self.server_version / 10000)
    }

    fn trigger_tables(&self, function: &migsafe_sql::QualName) -> Vec<migsafe_sql::QualName> {
        let calls = |def: &str| trigger_function(def).is_some_and(|f| f == function.name);
        self.tables
            .iter()
            .filter(|(_, t)| t.triggers.values().any(|tr| !tr.inherited && calls(&tr.definition)))
            .map(|(tn, _)| migsafe_sql::QualName::qualified(tn.schema.clone(), tn.name.clone()))
            .collect()
    }

    fn member_exists(
        &self,
        kind: migsafe_sql::model::ObjectKind,
        table: &migsafe_sql::QualName,
        name: &str,
    ) -> Option<bool> {
        let t = self.lock_table(table).map(|(_, t)| t);
        match kind {
            migsafe_sql::model::ObjectKind::Trigger => Some(t.is_some_and(|t| t.triggers.contains_key(name))),
            migsafe_sql::model::ObjectKind::Policy => Some(t.is_some_and(|t| t.policies.contains_key(name))),
            _ => None,
        }
    }
}

impl Snapshot {
    /// The table a name as written in a statement means (see [`migsafe_sql::lock::LockCatalog`]).
    fn lock_table(&self, q: &migsafe_sql::QualName) -> Option<(&QName, &Table)> {
        let named = |schema: &str| self.tables.get_key_value(&QName::new(schema, &q.name));
        match &q.schema {
            Some(s) => named(s),
            None => named("public").or_else(|| self.tables.iter().find(|(tn, _)| tn.name == q.name)),
        }
    }
}

/// A table's own foreign keys (not those it inherits), as the lock model needs them.
fn foreign_keys<'a>(tn: &'a QName, t: &'a Table) -> impl Iterator<Item = migsafe_sql::lock::ForeignKeyRef> + 'a {
    t.constraints.iter().filter(|(_, c)| !c.inherited).filter_map(move |(name, c)| {
        let r = c.references.as_ref()?;
        Some(migsafe_sql::lock::ForeignKeyRef {
            table: migsafe_sql::QualName::qualified(tn.schema.clone(), tn.name.clone()),
            name: name.clone(),
            columns: c.columns.clone(),
            references: migsafe_sql::QualName::qualified(r.schema.clone(), r.name.clone()),
            ref_columns: referenced_columns(&c.definition),
        })
    })
}

/// The referenced columns of a foreign key's `pg_get_constraintdef` (`FOREIGN KEY (a) REFERENCES
/// t(id) …`), unquoted.
fn referenced_columns(definition: &str) -> Vec<String> {
    let Some((_, rest)) = definition.split_once(" REFERENCES ") else { return vec![] };
    let (Some(open), Some(close)) = (rest.find('('), rest.find(')')) else { return vec![] };
    rest[open + 1..close].split(',').map(|c| c.trim().trim_matches('"').to_string()).collect()
}

/// The function a trigger calls, from its `pg_get_triggerdef` (`… EXECUTE FUNCTION name(args)`,
/// `PROCEDURE` before PostgreSQL 11), unqualified and unquoted.
fn trigger_function(definition: &str) -> Option<&str> {
    let (_, rest) =
        definition.rsplit_once(" EXECUTE FUNCTION ").or_else(|| definition.rsplit_once(" EXECUTE PROCEDURE "))?;
    Some(rest.split('(').next()?.rsplit('.').next()?.trim_matches('"'))
}

/// The events a trigger fires on, from its `pg_get_triggerdef` (`… AFTER INSERT OR UPDATE OF c
/// ON t …`).
fn trigger_events(definition: &str) -> Vec<&'static str> {
    let head = definition.split(" ON ").next().unwrap_or("");
    ["INSERT", "UPDATE", "DELETE", "TRUNCATE"].into_iter().filter(|e| head.contains(&format!(" {e}"))).collect()
}
