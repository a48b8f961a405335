//! What the linter knows about the schema so far: tables, columns and checks created or
//! changed by earlier statements and migrations of the set, and which of them are new.

use std::collections::BTreeMap;

use crate::lock::{ForeignKeyRef, LockCatalog};
use crate::model::*;

/// Where a table came from, relative to the migration being linted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Created earlier in the migration being linted: new and empty, no lock hazard.
    ThisMigration,
    /// Created by an earlier migration of the set: an existing table.
    EarlierMigration,
}

/// A column the model knows.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    /// Name.
    pub name: String,
    /// Declared type.
    pub type_name: TypeName,
    /// NOT NULL.
    pub not_null: bool,
    /// Generated (STORED or VIRTUAL), if it is.
    pub generated: Option<Generated>,
}

/// A `CHECK (col IS NOT NULL)` constraint, or a PostgreSQL 18 `NOT NULL col` constraint
/// (added NOT VALID, then validated).
#[derive(Debug, Clone)]
pub struct NotNullCheck {
    /// Constraint name, when known.
    pub name: Option<String>,
    /// Column tested.
    pub column: String,
    /// Validated (not NOT VALID, or VALIDATE CONSTRAINT ran).
    pub validated: bool,
}

/// A table the model knows.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Where it came from.
    pub origin: Origin,
    /// Columns, in order.
    pub columns: Vec<ColumnInfo>,
    /// `CHECK (col IS NOT NULL)` constraints.
    pub not_null_checks: Vec<NotNullCheck>,
    /// Foreign keys declared on it (the referenced tables schema-resolved).
    pub foreign_keys: Vec<ForeignKeyRef>,
    /// Its indexes, constraint indexes included.
    pub indexes: Vec<IndexInfo>,
    /// Its CHECK constraints.
    pub checks: Vec<CheckInfo>,
    /// Its triggers: (name, the function they call, lower-case and unqualified, the events).
    pub triggers: Vec<(String, String, Vec<String>)>,
    /// Its table access method, when known.
    pub access_method: Option<String>,
    /// The tables it inherits from or is a partition of (schema-resolved), true for a partition.
    pub parents: Vec<(QualName, bool)>,
}

/// An index the model knows.
#[derive(Debug, Clone)]
pub struct IndexInfo {
    /// Name, when known.
    pub name: Option<String>,
    /// Key columns named plainly.
    pub columns: Vec<String>,
    /// Columns named in its expressions or WHERE clause.
    pub expr_columns: Vec<String>,
}

/// A CHECK constraint the model knows.
#[derive(Debug, Clone)]
pub struct CheckInfo {
    /// Name (PostgreSQL's default when none was written).
    pub name: String,
    /// The columns it names.
    pub columns: Vec<String>,
}

impl TableInfo {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// The schema as the migrations so far have made it (only what the rules need).
#[derive(Debug, Clone)]
pub struct SchemaModel {
    tables: BTreeMap<QualName, TableInfo>,
    indexes: BTreeMap<QualName, QualName>,
    functions: BTreeMap<String, bool>,
    /// SQL functions created without `SET search_path` whose bodies name things only
    /// search_path finds, by lowercase name: those names.
    path_reliant: BTreeMap<String, Vec<String>>,
    /// Views and materialized views: the relations their queries read (schema-resolved).
    view_sources: BTreeMap<QualName, Vec<QualName>>,
    /// The PostgreSQL major version the migrations run on, when set.
    pg_version: Option<u32>,
    /// Domains the migrations created (by unqualified name).
    domains: std::collections::BTreeSet<String>,
    /// The statements each PL/pgSQL function the migrations created runs, by lower-case name.
    function_body: BTreeMap<String, Vec<StmtKind>>,
    /// The `CREATE FUNCTION` text of each function the migrations created, by lower-case name
    /// (read again with a call's constant arguments bound).
    function_text: BTreeMap<String, std::sync::Arc<str>>,
    search_schema: String,
}

impl Default for SchemaModel {
    fn default() -> Self {
        SchemaModel {
            tables: BTreeMap::new(),
            indexes: BTreeMap::new(),
            functions: BTreeMap::new(),
            path_reliant: BTreeMap::new(),
            view_sources: BTreeMap::new(),
            domains: Default::default(),
            pg_version: None,
            function_body: BTreeMap::new(),
            function_text: BTreeMap::new(),
            search_schema: "public".into(),
        }
    }
}

impl SchemaModel {
    /// Resolve an unqualified name against the current search_path's first schema.
    pub fn resolve(&self, q: &QualName) -> QualName {
        QualName { schema: Some(q.schema.clone().unwrap_or_else(|| self.search_schema.clone())), name: q.name.clone() }
    }

    /// The table, if the model knows it.
    pub fn table(&self, q: &QualName) -> Option<&TableInfo> {
        self.tables.get(&self.resolve(q))
    }

    /// True when the table was created earlier in the migration being linted.
    pub fn is_new(&self, q: &QualName) -> bool {
        self.table(q).is_some_and(|t| t.origin == Origin::ThisMigration)
    }

    /// The table an index belongs to, if known.
    pub fn index_table(&self, index: &QualName) -> Option<&QualName> {
        self.indexes.get(&self.resolve(index))
    }

    /// Declared volatility of a function created by the migrations (true = volatile).
    pub fn function_volatile(&self, name: &str) -> Option<bool> {
        self.functions.get(name).copied()
    }

    /// The first schema of the current search_path (where unqualified names are created).
    pub fn search_schema(&self) -> &str {
        &self.search_schema
    }

    /// For a SQL function the migrations created without `SET search_path`: the names its body
    /// leaves to search_path (see [`Statement::search_path_reliance`]).
    pub fn search_path_reliant(&self, name: &str) -> Option<&[String]> {
        self.path_reliant.get(&name.to_lowercase()).map(Vec::as_slice)
    }

    /// True when the column is known to be a VIRTUAL generated column (computed when read).
    pub fn is_virtual_column(&self, table: &QualName, column: &str) -> bool {
        self.table(table).and_then(|t| t.column(column)).is_some_and(|c| c.generated == Some(Generated::Virtual))
    }

    /// True when a validated `CHECK (column IS NOT NULL)` exists on the table.
    pub fn has_validated_not_null_check(&self, table: &QualName, column: &str) -> bool {
        self.table(table).is_some_and(|t| t.not_null_checks.iter().any(|c| c.column == column && c.validated))
    }

    /// A table renamed or moved from `old` to `new`: its keys, and the keys that reference it.
    fn move_table(&mut self, old: &QualName, new: QualName) {
        let Some(info) = self.tables.remove(old) else { return };
        self.tables.insert(new.clone(), info);
        for (name, t) in self.tables.iter_mut() {
            for k in t.foreign_keys.iter_mut() {
                if *name == new {
                    k.table = new.clone();
                }
                if &k.references == old {
                    k.references = new.clone();
                }
            }
            // Its children and partitions name it as their parent.
            for (parent, _) in t.parents.iter_mut().filter(|(p, _)| p == old) {
                *parent = new.clone();
            }
        }
    }

    /// The model for migrations that run on PostgreSQL `version`.
    pub fn for_version(version: u32) -> SchemaModel {
        SchemaModel { pg_version: Some(version), ..Default::default() }
    }

    /// True when the migrations created the domain `name` (so every column of it is known).
    pub fn knows_domain(&self, name: &QualName) -> bool {
        self.domains.contains(&name.name)
    }

    /// The current migration is finished: what it created now counts as existing.
    pub fn finish_migration(&mut self) {
        for t in self.tables.values_mut() {
            t.origin = Origin::EarlierMigration;
        }
    }

    /// Record the effect of one statement.
    pub fn apply(&mut self, stmt: &Statement) {
        match &stmt.kind {
            StmtKind::Set { name, value: Some(v), .. } if name == "search_path" => {
                let first = v.split(',').next().unwrap_or("public").trim().trim_matches('\'').trim_matches('"');
                self.search_schema = first.to_string();
            }
            StmtKind::CreateTable { table, columns, constraints, access_method, partition_of, inherits, .. } => {
                let key = self.resolve(table);
                if self.tables.contains_key(&key) {
                    return; // IF NOT EXISTS on an existing table changes nothing
                }
                let mut info = TableInfo {
                    origin: Origin::ThisMigration,
                    columns: columns
                        .iter()
                        .map(|c| ColumnInfo {
                            name: c.name.clone(),
                            type_name: c.type_name.clone(),
                            not_null: c.not_null,
                            generated: c.generated,
                        })
                        .collect(),
                    not_null_checks: Vec::new(),
                    foreign_keys: Vec::new(),
                    indexes: Vec::new(),
                    checks: Vec::new(),
                    triggers: Vec::new(),
                    // Without USING: the default, heap (unless the server's default was changed).
                    access_method: access_method.clone().or_else(|| partition_of.is_none().then(|| "heap".into())),
                    parents: inherits
                        .iter()
                        .map(|p| (self.resolve(p), false))
                        .chain(partition_of.iter().map(|p| (self.resolve(p), true)))
                        .collect(),
                };
                for c in constraints {
                    add_constraint(&mut info, &key, None, c, &self.search_schema);
                }
                for col in columns {
                    for c in &col.constraints {
                        add_constraint(&mut info, &key, Some(&col.name), c, &self.search_schema);
                    }
                }
                self.tables.insert(key, info);
            }
            StmtKind::CreateTableAs { table, sources, .. } => {
                let key = self.resolve(table);
                let read = sources.iter().map(|q| self.resolve(q)).collect();
                self.view_sources.insert(key.clone(), read);
                self.tables.entry(key).or_insert(TableInfo {
                    origin: Origin::ThisMigration,
                    columns: vec![],
                    not_null_checks: vec![],
                    foreign_keys: vec![],
                    indexes: vec![],
                    checks: vec![],
                    triggers: vec![],
                    access_method: None,
                    parents: vec![],
                });
            }
            StmtKind::AlterTable { table, actions, .. } => {
                let key = self.resolve(table);
                // A table no migration created is an existing table we learn about as we go.
                let info = self.tables.entry(key.clone()).or_insert_with(|| TableInfo {
                    origin: Origin::EarlierMigration,
                    columns: vec![],
                    not_null_checks: vec![],
                    foreign_keys: vec![],
                    indexes: vec![],
                    checks: vec![],
                    triggers: vec![],
                    access_method: None,
                    parents: vec![],
                });
                let names =
                    |info: &TableInfo| -> Vec<String> { info.indexes.iter().filter_map(|i| i.name.clone()).collect() };
                let before = names(info);
                for a in actions {
                    apply_action(info, &key, a, &self.search_schema);
                }
                // Indexes that went with a dropped column or constraint.
                let after = names(info);
                for gone in before.into_iter().filter(|n| !after.contains(n)) {
                    self.indexes.remove(&QualName { schema: key.schema.clone(), name: gone });
                }
            }
            StmtKind::CreateIndex { name, table, columns, expr_columns, .. } => {
                let table = self.resolve(table);
                if let Some(name) = name {
                    let index = QualName { schema: table.schema.clone(), name: name.clone() };
                    self.indexes.insert(index, table.clone());
                }
                if let Some(info) = self.tables.get_mut(&table) {
                    let plain = columns.iter().filter(|c| info.column(c).is_some()).cloned().collect();
                    info.indexes.push(IndexInfo {
                        name: name.clone(),
                        columns: plain,
                        expr_columns: expr_columns.clone(),
                    });
                }
            }
            StmtKind::CreateDomain { name } => {
                self.domains.insert(name.name.clone());
            }
            StmtKind::CreateView { view, sources, .. } => {
                let read = sources.iter().map(|q| self.resolve(q)).collect();
                self.view_sources.insert(self.resolve(view), read);
            }
            StmtKind::Drop {
                kind: ObjectKind::Table | ObjectKind::View | ObjectKind::MatView, names, cascade, ..
            } => {
                let mut gone: Vec<QualName> = names.iter().map(|n| self.resolve(n)).collect();
                // CASCADE takes the views built on them, transitively.
                if *cascade {
                    while let Some(v) = self.view_sources.iter().find_map(|(v, read)| {
                        (!gone.contains(v) && read.iter().any(|r| gone.contains(r))).then(|| v.clone())
                    }) {
                        gone.push(v);
                    }
                }
                for key in gone {
                    self.view_sources.remove(&key);
                    self.tables.remove(&key);
                    for t in self.tables.values_mut() {
                        t.foreign_keys.retain(|k| k.references != key);
                    }
                }
            }
            StmtKind::Drop { kind: ObjectKind::Index, names, .. } => {
                for n in names {
                    let key = self.resolve(n);
                    if let Some(table) = self.indexes.remove(&key) {
                        if let Some(info) = self.tables.get_mut(&table) {
                            info.indexes.retain(|i| i.name.as_ref() != Some(&key.name));
                        }
                    }
                }
            }
            StmtKind::Rename { kind: ObjectKind::Table, object, new_name, .. } => {
                let key = self.resolve(object);
                let new = QualName { schema: key.schema.clone(), name: new_name.clone() };
                self.move_table(&key, new);
            }
            StmtKind::Rename { kind: ObjectKind::Column, object, column: Some(col), new_name } => {
                let key = self.resolve(object);
                if let Some(info) = self.tables.get_mut(&key) {
                    for c in info.columns.iter_mut().filter(|c| &c.name == col) {
                        c.name = new_name.clone();
                    }
                    for c in info.not_null_checks.iter_mut().filter(|c| &c.column == col) {
                        c.column = new_name.clone();
                    }
                    let named = info.foreign_keys.iter_mut().flat_map(|k| k.columns.iter_mut());
                    let indexed =
                        info.indexes.iter_mut().flat_map(|i| i.columns.iter_mut().chain(i.expr_columns.iter_mut()));
                    let checked = info.checks.iter_mut().flat_map(|c| c.columns.iter_mut());
                    for c in named.chain(indexed).chain(checked).filter(|c| *c == col) {
                        *c = new_name.clone();
                    }
                }
            }
            StmtKind::Rename { kind: ObjectKind::Constraint, object, column: Some(old), new_name } => {
                let key = self.resolve(object);
                if let Some(info) = self.tables.get_mut(&key) {
                    for k in info.foreign_keys.iter_mut().filter(|k| &k.name == old) {
                        k.name = new_name.clone();
                    }
                    for c in info.checks.iter_mut().filter(|c| &c.name == old) {
                        c.name = new_name.clone();
                    }
                }
            }
            StmtKind::AlterSchema { kind: ObjectKind::Table, object, new_schema } => {
                let key = self.resolve(object);
                let new = QualName::qualified(new_schema.clone(), key.name.clone());
                self.move_table(&key, new);
            }
            StmtKind::CreateTrigger { name, table, function, events, .. } => {
                if let Some(info) = self.tables.get_mut(&self.resolve(table)) {
                    info.triggers.retain(|(n, ..)| n != name);
                    info.triggers.push((name.clone(), function.name.to_lowercase(), events.clone()));
                }
            }
            StmtKind::Drop { kind: ObjectKind::Trigger, names, on: Some(table), .. } => {
                if let Some(info) = self.tables.get_mut(&self.resolve(table)) {
                    info.triggers.retain(|(n, ..)| !names.iter().any(|d| &d.name == n));
                }
            }
            StmtKind::CreateFunction { name, volatile, .. } => {
                let key = name.name.to_lowercase();
                let text = &stmt.parsed_text[stmt.span.start..stmt.span.end];
                let body = crate::plpgsql::function_statements(text).into_iter().map(|s| s.kind).collect();
                self.function_body.insert(key.clone(), body);
                self.function_text.insert(key.clone(), std::sync::Arc::from(text));
                self.functions.insert(key.clone(), *volatile);
                match stmt.search_path_reliance() {
                    Some((false, names)) if !names.is_empty() => {
                        self.path_reliant.insert(key, names);
                    }
                    _ => {
                        self.path_reliant.remove(&key);
                    }
                }
            }
            _ => {}
        }
    }
}

impl LockCatalog for SchemaModel {
    fn index_table(&self, index: &QualName) -> Option<QualName> {
        SchemaModel::index_table(self, index).cloned()
    }
    fn foreign_keys_of(&self, table: &QualName) -> Vec<ForeignKeyRef> {
        self.table(table).map(|t| t.foreign_keys.clone()).unwrap_or_default()
    }
    fn domain_tables(&self, domain: &QualName) -> Vec<QualName> {
        let of = |t: &TableInfo| t.columns.iter().any(|c| c.type_name.name == domain.name);
        self.tables.iter().filter(|(_, t)| of(t)).map(|(n, _)| n.clone()).collect()
    }
    fn trigger_statements(&self, table: &QualName, event: &str) -> Vec<StmtKind> {
        let Some(t) = self.table(table) else { return vec![] };
        t.triggers
            .iter()
            .filter(|(_, _, events)| events.iter().any(|e| e == event))
            .filter_map(|(_, f, _)| self.function_body.get(f))
            .flat_map(|body| body.iter().cloned())
            .collect()
    }
    fn function_statements(&self, function: &QualName, args: &[Option<String>]) -> Vec<StmtKind> {
        let Some(text) = self.function_text.get(&function.name.to_lowercase()) else { return vec![] };
        crate::plpgsql::function_statements_called(text, args).into_iter().map(|s| s.kind).collect()
    }
    fn children(&self, table: &QualName) -> Vec<(QualName, bool)> {
        let mut out: Vec<(QualName, bool)> = Vec::new();
        let mut todo = vec![self.resolve(table)];
        while let Some(parent) = todo.pop() {
            for (name, t) in &self.tables {
                for (p, partition) in &t.parents {
                    if *p == parent && !out.iter().any(|(n, _)| n == name) {
                        out.push((name.clone(), *partition));
                        todo.push(name.clone());
                    }
                }
            }
        }
        out
    }
    fn server_version(&self) -> Option<u32> {
        self.pg_version
    }
    fn trigger_tables(&self, function: &QualName) -> Vec<QualName> {
        let f = function.name.to_lowercase();
        self.tables.iter().filter(|(_, t)| t.triggers.iter().any(|(_, g, _)| *g == f)).map(|(n, _)| n.clone()).collect()
    }
    fn member_exists(&self, kind: ObjectKind, table: &QualName, name: &str) -> Option<bool> {
        // Only what the migrations made is known to exist; anything else may or may not.
        let made = self.table(table).is_some_and(|t| t.triggers.iter().any(|(n, ..)| n == name));
        (kind == ObjectKind::Trigger && made).then_some(true)
    }
    fn foreign_keys_to(&self, table: &QualName) -> Vec<ForeignKeyRef> {
        let key = self.resolve(table);
        self.tables.values().flat_map(|t| t.foreign_keys.iter()).filter(|k| k.references == key).cloned().collect()
    }
}

/// PostgreSQL's default name for a constraint or index (`makeObjectName`): `table_cols_suffix`,
/// the column names joined by `_`, the longer of the two parts cut until it fits in 63 bytes.
pub(crate) fn default_constraint_name(table: &str, columns: &[String], suffix: &str) -> String {
    let cols = columns.join("_");
    let overhead = suffix.len() + 1 + usize::from(!cols.is_empty());
    let avail = 63usize.saturating_sub(overhead);
    let (mut a, mut b) = (table.len(), cols.len());
    while a + b > avail {
        if a > b {
            a -= 1;
        } else {
            b -= 1;
        }
    }
    let clip = |s: &str, mut n: usize| {
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        s[..n].to_string()
    };
    let mut name = clip(table, a);
    if !cols.is_empty() {
        name.push('_');
        name.push_str(&clip(&cols, b));
    }
    format!("{name}_{suffix}")
}

/// Record a constraint of `table`: written inline on `column`, or at table level.
fn add_constraint(info: &mut TableInfo, table: &QualName, column: Option<&String>, c: &Constraint, search: &str) {
    let own: Vec<String> = if c.columns.is_empty() { column.into_iter().cloned().collect() } else { c.columns.clone() };
    match &c.kind {
        ConstraintKind::PrimaryKey | ConstraintKind::Unique => {
            info.indexes.push(IndexInfo { name: c.name.clone(), columns: own.clone(), expr_columns: vec![] })
        }
        ConstraintKind::Check(e) => {
            let columns = if e.columns.is_empty() { own.clone() } else { e.columns.clone() };
            let first = columns.first().cloned().into_iter().collect::<Vec<_>>();
            let name = c.name.clone().unwrap_or_else(|| default_constraint_name(&table.name, &first, "check"));
            info.checks.push(CheckInfo { name, columns });
        }
        _ => {}
    }
    if let ConstraintKind::ForeignKey { references, columns, ref_columns, .. } = &c.kind {
        let columns = if columns.is_empty() { column.into_iter().cloned().collect() } else { columns.clone() };
        info.foreign_keys.push(ForeignKeyRef {
            table: table.clone(),
            name: c.name.clone().unwrap_or_else(|| default_constraint_name(&table.name, &columns, "fkey")),
            columns,
            references: QualName {
                schema: Some(references.schema.clone().unwrap_or_else(|| search.to_string())),
                name: references.name.clone(),
            },
            ref_columns: ref_columns.clone(),
        });
    }
    let proves = match &c.kind {
        ConstraintKind::Check(e) if !c.not_enforced => e.not_null_column.iter().cloned().collect(),
        ConstraintKind::NotNull => c.columns.clone(),
        _ => vec![],
    };
    for col in proves {
        info.not_null_checks.push(NotNullCheck { name: c.name.clone(), column: col, validated: !c.not_valid });
    }
    if matches!(c.kind, ConstraintKind::PrimaryKey) {
        for k in &c.columns {
            if let Some(col) = info.columns.iter_mut().find(|x| &x.name == k) {
                col.not_null = true;
            }
        }
    }
}

fn apply_action(info: &mut TableInfo, table: &QualName, a: &AlterAction, search: &str) {
    match a {
        AlterAction::AddColumn { column, .. } if info.column(&column.name).is_none() => {
            info.columns.push(ColumnInfo {
                name: column.name.clone(),
                type_name: column.type_name.clone(),
                not_null: column.not_null,
                generated: column.generated,
            });
            for c in &column.constraints {
                add_constraint(info, table, Some(&column.name), c, search);
            }
        }
        AlterAction::DropColumn { column, .. } => {
            info.columns.retain(|c| &c.name != column);
            info.not_null_checks.retain(|c| &c.column != column);
            info.foreign_keys.retain(|k| !k.columns.contains(column));
            info.indexes.retain(|i| !i.columns.contains(column) && !i.expr_columns.contains(column));
            info.checks.retain(|c| !c.columns.contains(column));
        }
        AlterAction::AlterType { column, new_type, .. } => {
            if let Some(c) = info.columns.iter_mut().find(|c| &c.name == column) {
                c.type_name = new_type.clone();
            }
        }
        AlterAction::SetNotNull { column } => {
            if let Some(c) = info.columns.iter_mut().find(|c| &c.name == column) {
                c.not_null = true;
            }
        }
        AlterAction::DropNotNull { column } => {
            if let Some(c) = info.columns.iter_mut().find(|c| &c.name == column) {
                c.not_null = false;
            }
        }
        AlterAction::DropExpression { column } => {
            if let Some(c) = info.columns.iter_mut().find(|c| &c.name == column) {
                c.generated = None;
            }
        }
        AlterAction::AddConstraint(c) => add_constraint(info, table, None, c, search),
        AlterAction::SetAccessMethod { method } => info.access_method = method.clone(),
        AlterAction::ValidateConstraint { name } => {
            for c in info.not_null_checks.iter_mut().filter(|c| c.name.as_deref() == Some(name)) {
                c.validated = true;
            }
        }
        AlterAction::DropConstraint { name, .. } => {
            info.not_null_checks.retain(|c| c.name.as_deref() != Some(name));
            info.foreign_keys.retain(|k| &k.name != name);
            info.checks.retain(|c| &c.name != name);
            info.indexes.retain(|i| i.name.as_ref() != Some(name));
        }
        _ => {}
    }
}
