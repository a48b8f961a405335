//! Comparing two snapshots: a structured list of added, removed and changed objects with
//! before and after, field by field. Column order is compared and reported on its own.

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::model::*;

/// The kind of a schema object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// Extension.
    Extension,
    /// Schema.
    Schema,
    /// Collation.
    Collation,
    /// Enum, composite, domain or range type.
    Type,
    /// Sequence.
    Sequence,
    /// Function, procedure or aggregate.
    Function,
    /// Table (its own properties).
    Table,
    /// Column.
    Column,
    /// Constraint.
    Constraint,
    /// Index.
    Index,
    /// Trigger.
    Trigger,
    /// Row-level security policy.
    Policy,
    /// View or materialized view.
    View,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        f.write_str(&s)
    }
}

/// Added, removed or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Only in the target.
    Added,
    /// Only in the source.
    Removed,
    /// In both, different.
    Changed,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// Field name (`type_name`, `definition`, `comment`…).
    pub field: String,
    /// Value before (JSON text; plain for strings).
    pub before: String,
    /// Value after.
    pub after: String,
}

/// One object that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// Object kind.
    pub kind: ObjectKind,
    /// Full name, e.g. `public.users.email` for a column.
    pub name: String,
    /// What happened to it.
    pub change: ChangeKind,
    /// Fields that differ (for `changed`).
    pub fields: Vec<FieldChange>,
    /// The object before (absent when added).
    pub before: Option<Value>,
    /// The object after (absent when removed).
    pub after: Option<Value>,
}

/// Columns present in both versions of a table but in a different order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnOrder {
    /// Table.
    pub table: String,
    /// Column names before.
    pub before: Vec<String>,
    /// Column names after.
    pub after: Vec<String>,
}

/// The differences between two snapshots, and both snapshots (for rendering DDL).
#[derive(Debug, Clone, Serialize)]
pub struct SchemaDiff {
    /// Objects that differ, sorted by kind and name.
    pub differences: Vec<Difference>,
    /// Tables whose shared columns are in another order (reported apart from the rest).
    pub column_order: Vec<ColumnOrder>,
    #[serde(skip)]
    pub(crate) from: Snapshot,
    #[serde(skip)]
    pub(crate) to: Snapshot,
}

impl SchemaDiff {
    /// True when nothing differs, column order included.
    pub fn is_empty(&self) -> bool {
        self.differences.is_empty() && self.column_order.is_empty()
    }

    /// True when nothing but column order differs.
    pub fn only_column_order(&self) -> bool {
        self.differences.is_empty() && !self.column_order.is_empty()
    }

    /// The source snapshot.
    pub fn from(&self) -> &Snapshot {
        &self.from
    }

    /// The target snapshot.
    pub fn to(&self) -> &Snapshot {
        &self.to
    }

    /// A human summary, one line per difference: `+` added, `-` removed, `~` changed.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for d in &self.differences {
            let sign = match d.change {
                ChangeKind::Added => '+',
                ChangeKind::Removed => '-',
                ChangeKind::Changed => '~',
            };
            s.push_str(&format!("{sign} {} {}", d.kind, d.name));
            if d.change == ChangeKind::Changed {
                let fields: Vec<String> = d
                    .fields
                    .iter()
                    .map(|f| format!("{}: {} → {}", f.field, short(&f.before), short(&f.after)))
                    .collect();
                s.push_str(&format!(" ({})", fields.join("; ")));
            }
            s.push('\n');
        }
        for o in &self.column_order {
            s.push_str(&format!(
                "  column order of {} differs: ({}) → ({})\n",
                o.table,
                o.before.join(", "),
                o.after.join(", ")
            ));
        }
        s
    }
}

fn short(s: &str) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 120 {
        format!("{}…", one_line.chars().take(117).collect::<String>())
    } else {
        one_line
    }
}

fn to_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).expect("model types serialise")
}

fn field_changes(before: &Value, after: &Value) -> Vec<FieldChange> {
    let text = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "null".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match (before, after) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .filter(|k| a.get(*k) != b.get(*k))
                .map(|k| FieldChange { field: k.clone(), before: text(a.get(k)), after: text(b.get(k)) })
                .collect()
        }
        _ => vec![FieldChange { field: "value".into(), before: text(Some(before)), after: text(Some(after)) }],
    }
}

/// Every object of a snapshot, flattened to (kind, name) → JSON.
fn flatten(s: &Snapshot) -> BTreeMap<(ObjectKind, String), Value> {
    let mut m = BTreeMap::new();
    for (n, x) in &s.extensions {
        m.insert((ObjectKind::Extension, n.clone()), to_value(x));
    }
    for (n, x) in &s.schemas {
        m.insert((ObjectKind::Schema, n.clone()), to_value(x));
    }
    for (n, x) in &s.collations {
        m.insert((ObjectKind::Collation, n.to_string()), to_value(x));
    }
    for (n, x) in &s.types {
        m.insert((ObjectKind::Type, n.to_string()), to_value(x));
    }
    for (n, x) in &s.sequences {
        m.insert((ObjectKind::Sequence, n.to_string()), to_value(x));
    }
    for (n, x) in &s.functions {
        m.insert((ObjectKind::Function, n.clone()), to_value(x));
    }
    for (n, v) in &s.views {
        m.insert((ObjectKind::View, n.to_string()), to_value(v));
    }
    for (tn, t) in &s.tables {
        let mut own = to_value(t);
        if let Value::Object(o) = &mut own {
            for sub in ["columns", "constraints", "indexes", "triggers", "policies"] {
                o.remove(sub);
            }
        }
        m.insert((ObjectKind::Table, tn.to_string()), own);
        for c in &t.columns {
            m.insert((ObjectKind::Column, format!("{tn}.{}", migsafe_sql::quote_ident(&c.name))), to_value(c));
        }
        for (n, c) in &t.constraints {
            m.insert((ObjectKind::Constraint, format!("{tn}.{}", migsafe_sql::quote_ident(n))), to_value(c));
        }
        for (n, i) in &t.indexes {
            m.insert((ObjectKind::Index, QName::new(&tn.schema, n).to_string()), to_value(i));
        }
        for (n, x) in &t.triggers {
            m.insert((ObjectKind::Trigger, format!("{tn}.{}", migsafe_sql::quote_ident(n))), to_value(x));
        }
        for (n, x) in &t.policies {
            m.insert((ObjectKind::Policy, format!("{tn}.{}", migsafe_sql::quote_ident(n))), to_value(x));
        }
    }
    m
}

impl Snapshot {
    /// What differs from `self` to `other`.
    pub fn diff(&self, other: &Snapshot) -> SchemaDiff {
        let a = flatten(self);
        let b = flatten(other);
        let keys: BTreeSet<&(ObjectKind, String)> = a.keys().chain(b.keys()).collect();
        let mut differences = Vec::new();
        for k in keys {
            let (x, y) = (a.get(k), b.get(k));
            let change = match (x, y) {
                (Some(x), Some(y)) if x == y => continue,
                (Some(_), Some(_)) => ChangeKind::Changed,
                (None, Some(_)) => ChangeKind::Added,
                (Some(_), None) => ChangeKind::Removed,
                (None, None) => continue,
            };
            let fields = match (x, y) {
                (Some(x), Some(y)) => field_changes(x, y),
                _ => vec![],
            };
            differences.push(Difference {
                kind: k.0,
                name: k.1.clone(),
                change,
                fields,
                before: x.cloned(),
                after: y.cloned(),
            });
        }
        let mut column_order = Vec::new();
        for (tn, t) in &self.tables {
            let Some(u) = other.tables.get(tn) else { continue };
            let names_u: BTreeSet<&str> = u.columns.iter().map(|c| c.name.as_str()).collect();
            let names_t: BTreeSet<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
            let before: Vec<String> =
                t.columns.iter().filter(|c| names_u.contains(c.name.as_str())).map(|c| c.name.clone()).collect();
            let after: Vec<String> =
                u.columns.iter().filter(|c| names_t.contains(c.name.as_str())).map(|c| c.name.clone()).collect();
            if before != after {
                column_order.push(ColumnOrder { table: tn.to_string(), before, after });
            }
        }
        SchemaDiff { differences, column_order, from: self.clone(), to: other.clone() }
    }
}
