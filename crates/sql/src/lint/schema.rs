//! What the linter knows about the schema so far: tables, columns and checks created or
//! changed by earlier statements and migrations of the set, and which of them are new.

use std::collections::BTreeMap;

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
    search_schema: String,
}

impl Default for SchemaModel {
    fn default() -> Self {
        SchemaModel {
            tables: BTreeMap::new(),
            indexes: BTreeMap::new(),
            functions: BTreeMap::new(),
            path_reliant: BTreeMap::new(),
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
            StmtKind::CreateTable { table, columns, constraints, .. } => {
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
                };
                for c in constraints.iter().chain(columns.iter().flat_map(|c| c.constraints.iter())) {
                    add_constraint(&mut info, c);
                }
                self.tables.insert(key, info);
            }
            StmtKind::CreateTableAs { table, .. } => {
                let key = self.resolve(table);
                self.tables.entry(key).or_insert(TableInfo {
                    origin: Origin::ThisMigration,
                    columns: vec![],
                    not_null_checks: vec![],
                });
            }
            StmtKind::AlterTable { table, actions, .. } => {
                let key = self.resolve(table);
                // A table no migration created is an existing table we learn about as we go.
                let info = self.tables.entry(key).or_insert_with(|| TableInfo {
                    origin: Origin::EarlierMigration,
                    columns: vec![],
                    not_null_checks: vec![],
                });
                for a in actions {
                    apply_action(info, a);
                }
            }
            StmtKind::CreateIndex { name: Some(name), table, .. } => {
                let table = self.resolve(table);
                let index = QualName { schema: table.schema.clone(), name: name.clone() };
                self.indexes.insert(index, table);
            }
            StmtKind::Drop { kind: ObjectKind::Table | ObjectKind::View | ObjectKind::MatView, names, .. } => {
                for n in names {
                    let key = self.resolve(n);
                    self.tables.remove(&key);
                }
            }
            StmtKind::Drop { kind: ObjectKind::Index, names, .. } => {
                for n in names {
                    let key = self.resolve(n);
                    self.indexes.remove(&key);
                }
            }
            StmtKind::Rename { kind: ObjectKind::Table, object, new_name, .. } => {
                let key = self.resolve(object);
                if let Some(info) = self.tables.remove(&key) {
                    self.tables.insert(QualName { schema: key.schema, name: new_name.clone() }, info);
                }
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
                }
            }
            StmtKind::AlterSchema { kind: ObjectKind::Table, object, new_schema } => {
                let key = self.resolve(object);
                if let Some(info) = self.tables.remove(&key) {
                    self.tables.insert(QualName::qualified(new_schema.clone(), key.name), info);
                }
            }
            StmtKind::CreateFunction { name, volatile, .. } => {
                let key = name.name.to_lowercase();
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

fn add_constraint(info: &mut TableInfo, c: &Constraint) {
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

fn apply_action(info: &mut TableInfo, a: &AlterAction) {
    match a {
        AlterAction::AddColumn { column, .. } if info.column(&column.name).is_none() => {
            info.columns.push(ColumnInfo {
                name: column.name.clone(),
                type_name: column.type_name.clone(),
                not_null: column.not_null,
                generated: column.generated,
            });
            for c in &column.constraints {
                add_constraint(info, c);
            }
        }
        AlterAction::DropColumn { column, .. } => {
            info.columns.retain(|c| &c.name != column);
            info.not_null_checks.retain(|c| &c.column != column);
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
        AlterAction::AddConstraint(c) => add_constraint(info, c),
        AlterAction::ValidateConstraint { name } => {
            for c in info.not_null_checks.iter_mut().filter(|c| c.name.as_deref() == Some(name)) {
                c.validated = true;
            }
        }
        AlterAction::DropConstraint { name, .. } => {
            info.not_null_checks.retain(|c| c.name.as_deref() != Some(name));
        }
        _ => {}
    }
}
