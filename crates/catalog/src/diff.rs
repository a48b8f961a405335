//! Comparing two snapshots: a structured list of added, removed and changed objects with
//! before and after, field by field. Column order is compared and reported on its own.

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::model::*;
use crate::model::{
    Collation, Column, Constraint, Extension, Function, Index, Policy, RewriteRule, Schema, Sequence, Table, Trigger,
    TypeDef, View,
};

/// Which kind of schema object a [`Difference`] is about (the sections of a [`Snapshot`]); not
/// `migsafe_sql::model::ObjectKind`, which is what a statement names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
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
    /// Rewrite rule.
    Rule,
    /// Statistics objects, publications, event triggers, casts… ([`OtherObject`]); the name
    /// starts with the precise kind.
    Other,
}

impl fmt::Display for DiffKind {
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
    pub kind: DiffKind,
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
pub struct SchemaDiff<'a> {
    /// Objects that differ, sorted by kind and name.
    pub differences: Vec<Difference>,
    /// Tables whose shared columns are in another order (reported apart from the rest).
    pub column_order: Vec<ColumnOrder>,
    #[serde(skip)]
    pub(crate) from: &'a Snapshot,
    #[serde(skip)]
    pub(crate) to: &'a Snapshot,
}

impl SchemaDiff<'_> {
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
        self.from
    }

    /// The target snapshot.
    pub fn to(&self) -> &Snapshot {
        self.to
    }

    /// Takes out the differences that are only the clock: definitions or defaults that froze
    /// the time they were created (`'now'::timestamp` in a view becomes a literal), so two runs
    /// of the same migration differ only in timestamp literals a day apart or less. Returned
    /// apart so callers can warn about them instead of failing; the rest stay in `differences`.
    pub fn split_clock(&mut self) -> Vec<Difference> {
        let (clock, rest): (Vec<Difference>, Vec<Difference>) =
            std::mem::take(&mut self.differences).into_iter().partition(|d| {
                d.change == ChangeKind::Changed
                    && !d.fields.is_empty()
                    && d.fields.iter().all(|f| clock_only(&f.before, &f.after))
            });
        self.differences = rest;
        clock
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
                s.push_str(&format!(" ({})", changed_fields(d)));
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

/// Describes what froze the time, for a warning about a difference [`SchemaDiff::split_clock`]
/// set apart.
pub fn clock_warning(d: &Difference) -> String {
    format!(
        "{} {} holds the time it was created, so every run creates it differently ({}): a 'now', \
         'today', 'tomorrow' or 'yesterday' literal is turned into a fixed time when the statement \
         runs, not when the object is used; write now(), CURRENT_TIMESTAMP or CURRENT_DATE instead",
        d.kind,
        d.name,
        changed_fields(d)
    )
}

/// `field: before → after; …`, each value cut around where the two differ.
fn changed_fields(d: &Difference) -> String {
    d.fields
        .iter()
        .map(|f| {
            let (before, after) = short_pair(&f.before, &f.after);
            format!("{}: {before} → {after}", f.field)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Day number of a `YYYY-MM-DD` date (days since 1970-01-01, proleptic Gregorian).
fn day_number(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The text with every quoted date or timestamp literal (`'2026-11-24 22:42:48.12'`) replaced
/// by a marker, and the day number of each.
fn mask_times(s: &str) -> (String, Vec<i64>) {
    let b = s.as_bytes();
    let (mut out, mut days, mut i, mut copied) = (String::new(), Vec::new(), 0, 0);
    while i < b.len() {
        if b[i] == b'\'' && i + 11 < b.len() {
            let d = &b[i + 1..i + 11];
            let digits = |r: std::ops::Range<usize>| r.clone().all(|k| d[k].is_ascii_digit());
            if digits(0..4) && d[4] == b'-' && digits(5..7) && d[7] == b'-' && digits(8..10) {
                let mut j = i + 11;
                while j < b.len() && (b[j].is_ascii_digit() || b" :.+-T".contains(&b[j])) {
                    j += 1;
                }
                if j < b.len() && b[j] == b'\'' {
                    let num = |r: std::ops::Range<usize>| s[i + 1 + r.start..i + 1 + r.end].parse::<i64>().unwrap_or(0);
                    days.push(day_number(num(0..4), num(5..7), num(8..10)));
                    out.push_str(&s[copied..i]);
                    out.push_str("'\u{0}'");
                    i = j + 1;
                    copied = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&s[copied..]);
    (out, days)
}

/// True when two values differ only in date/timestamp literals at most a day apart.
fn clock_only(before: &str, after: &str) -> bool {
    let ((a, da), (b, db)) = (mask_times(before), mask_times(after));
    before != after && a == b && !da.is_empty() && da.iter().zip(&db).all(|(x, y)| (x - y).abs() <= 1)
}

/// Longest shown value; longer ones are cut around the first difference.
const SHORT: usize = 120;
/// Unchanged text kept before the first difference.
const LEAD: usize = 40;

/// Both values on one line each, cut to [`SHORT`] characters around where they first differ, so
/// two long definitions that share a prefix still show what changed.
fn short_pair(before: &str, after: &str) -> (String, String) {
    let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").chars().collect::<Vec<char>>();
    let (a, b) = (one_line(before), one_line(after));
    if a.len() <= SHORT && b.len() <= SHORT {
        return (a.into_iter().collect(), b.into_iter().collect());
    }
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let start = prefix.saturating_sub(LEAD);
    let cut = |v: &[char]| {
        let end = (start + SHORT).min(v.len());
        let mut out = String::new();
        if start > 0 {
            out.push('…');
        }
        out.extend(&v[start.min(end)..end]);
        if end < v.len() {
            out.push('…');
        }
        out
    };
    (cut(&a), cut(&b))
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

/// A reference to one object of a snapshot; tables stand for their own properties only.
#[derive(Clone, Copy)]
enum Obj<'a> {
    Extension(&'a Extension),
    Schema(&'a Schema),
    Collation(&'a Collation),
    Type(&'a TypeDef),
    Sequence(&'a Sequence),
    Function(&'a Function),
    View(&'a View),
    Table(&'a Table),
    Column(&'a Column),
    Constraint(&'a Constraint),
    Index(&'a Index),
    Trigger(&'a Trigger),
    Policy(&'a Policy),
    Rule(&'a RewriteRule),
    Other(&'a OtherObject),
    Grants(&'a Grants),
}

fn table_props_eq(a: &Table, b: &Table) -> bool {
    a.kind == b.kind
        && a.persistence == b.persistence
        && a.partition_key == b.partition_key
        && a.partition_of == b.partition_of
        && a.inherits == b.inherits
        && a.rls == b.rls
        && a.options == b.options
        && a.replica_identity == b.replica_identity
        && a.comment == b.comment
        && a.grants == b.grants
        && a.foreign == b.foreign
}

impl Obj<'_> {
    /// JSON, only for objects that differ.
    fn value(&self) -> Value {
        match self {
            Obj::Extension(x) => to_value(x),
            Obj::Schema(x) => to_value(x),
            Obj::Collation(x) => to_value(x),
            Obj::Type(x) => to_value(x),
            Obj::Sequence(x) => to_value(x),
            Obj::Function(x) => to_value(x),
            Obj::View(x) => to_value(x),
            Obj::Table(t) => {
                let mut own = to_value(t);
                if let Value::Object(o) = &mut own {
                    for sub in ["columns", "constraints", "indexes", "triggers", "policies"] {
                        o.remove(sub);
                    }
                }
                own
            }
            Obj::Column(x) => to_value(x),
            Obj::Constraint(x) => to_value(x),
            Obj::Index(x) => to_value(x),
            Obj::Trigger(x) => to_value(x),
            Obj::Policy(x) => to_value(x),
            Obj::Rule(x) => to_value(x),
            // What is compared, not the SQL written from it.
            Obj::Grants(x) => serde_json::json!({ "grants": x }),
            Obj::Other(x) => serde_json::json!({
                "definition": x.definition,
                "state": x.state,
            }),
        }
    }
}

/// Walk two maps of the same kind in key order, calling `f` for every key whose objects differ
/// (or exist on one side only).
fn merge<'a, K: Ord, V>(
    a: &'a BTreeMap<K, V>,
    b: &'a BTreeMap<K, V>,
    mut f: impl FnMut(&'a K, Option<&'a V>, Option<&'a V>),
    same: impl Fn(&V, &V) -> bool,
) {
    let (mut x, mut y) = (a.iter().peekable(), b.iter().peekable());
    loop {
        match (x.peek(), y.peek()) {
            (Some((ka, va)), Some((kb, vb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => {
                    f(ka, Some(va), None);
                    x.next();
                }
                std::cmp::Ordering::Greater => {
                    f(kb, None, Some(vb));
                    y.next();
                }
                std::cmp::Ordering::Equal => {
                    if !same(va, vb) {
                        f(ka, Some(va), Some(vb));
                    }
                    x.next();
                    y.next();
                }
            },
            (Some((ka, va)), None) => {
                f(ka, Some(va), None);
                x.next();
            }
            (None, Some((kb, vb))) => {
                f(kb, None, Some(vb));
                y.next();
            }
            (None, None) => break,
        }
    }
}

impl Snapshot {
    /// What differs from `self` to `other`.
    pub fn diff<'a>(&'a self, other: &'a Snapshot) -> SchemaDiff<'a> {
        let mut differences = Vec::new();
        let mut push = |kind: DiffKind, name: String, x: Option<Obj>, y: Option<Obj>| {
            let change = match (&x, &y) {
                (Some(_), Some(_)) => ChangeKind::Changed,
                (None, _) => ChangeKind::Added,
                (_, None) => ChangeKind::Removed,
            };
            let (before, after) = (x.map(|o| o.value()), y.map(|o| o.value()));
            let fields = match (&before, &after) {
                (Some(x), Some(y)) => field_changes(x, y),
                _ => vec![],
            };
            differences.push(Difference { kind, name, change, fields, before, after });
        };
        merge(
            &self.extensions,
            &other.extensions,
            |k, x, y| push(DiffKind::Extension, k.clone(), x.map(Obj::Extension), y.map(Obj::Extension)),
            |a, b| a == b,
        );
        merge(
            &self.schemas,
            &other.schemas,
            |k, x, y| push(DiffKind::Schema, k.clone(), x.map(Obj::Schema), y.map(Obj::Schema)),
            |a, b| a == b,
        );
        merge(
            &self.collations,
            &other.collations,
            |k, x, y| push(DiffKind::Collation, k.to_string(), x.map(Obj::Collation), y.map(Obj::Collation)),
            |a, b| a == b,
        );
        merge(
            &self.types,
            &other.types,
            |k, x, y| push(DiffKind::Type, k.to_string(), x.map(Obj::Type), y.map(Obj::Type)),
            |a, b| a == b,
        );
        merge(
            &self.sequences,
            &other.sequences,
            |k, x, y| push(DiffKind::Sequence, k.to_string(), x.map(Obj::Sequence), y.map(Obj::Sequence)),
            |a, b| a == b,
        );
        merge(
            &self.functions,
            &other.functions,
            |k, x, y| push(DiffKind::Function, k.clone(), x.map(Obj::Function), y.map(Obj::Function)),
            |a, b| a == b,
        );
        merge(
            &self.views,
            &other.views,
            |k, x, y| push(DiffKind::View, k.to_string(), x.map(Obj::View), y.map(Obj::View)),
            |a, b| a == b,
        );
        merge(
            &self.type_grants,
            &other.type_grants,
            |k, x, y| push(DiffKind::Type, format!("{k} (grants)"), x.map(Obj::Grants), y.map(Obj::Grants)),
            |a, b| a == b,
        );
        merge(
            &self.rules,
            &other.rules,
            |k, x, y| push(DiffKind::Rule, k.clone(), x.map(Obj::Rule), y.map(Obj::Rule)),
            |a, b| a == b,
        );
        merge(
            &self.others,
            &other.others,
            |k, x, y| push(DiffKind::Other, k.clone(), x.map(Obj::Other), y.map(Obj::Other)),
            |a, b| a.definition == b.definition && a.state == b.state && a.default_acl == b.default_acl,
        );
        // Tables: their own properties, then each kind of sub-object by name. Equal tables
        // (the common case) cost one comparison and no allocation.
        merge(
            &self.tables,
            &other.tables,
            |tn, x, y| {
                let table = tn.to_string();
                let (ta, tb) = (x, y);
                if !ta.zip(tb).is_some_and(|(a, b)| table_props_eq(a, b)) {
                    push(DiffKind::Table, table.clone(), ta.map(Obj::Table), tb.map(Obj::Table));
                }
                let empty = Table::empty();
                let (a, b) = (ta.unwrap_or(&empty), tb.unwrap_or(&empty));
                let named = |n: &str| format!("{table}.{}", migsafe_sql::quote_ident(n));
                for c in &a.columns {
                    match b.column(&c.name) {
                        Some(d) if d == c => {}
                        d => push(DiffKind::Column, named(&c.name), Some(Obj::Column(c)), d.map(Obj::Column)),
                    }
                }
                for c in b.columns.iter().filter(|c| a.column(&c.name).is_none()) {
                    push(DiffKind::Column, named(&c.name), None, Some(Obj::Column(c)));
                }
                merge(
                    &a.constraints,
                    &b.constraints,
                    |k, x, y| push(DiffKind::Constraint, named(k), x.map(Obj::Constraint), y.map(Obj::Constraint)),
                    |p, q| p == q,
                );
                merge(
                    &a.triggers,
                    &b.triggers,
                    |k, x, y| push(DiffKind::Trigger, named(k), x.map(Obj::Trigger), y.map(Obj::Trigger)),
                    |p, q| p == q,
                );
                merge(
                    &a.policies,
                    &b.policies,
                    |k, x, y| push(DiffKind::Policy, named(k), x.map(Obj::Policy), y.map(Obj::Policy)),
                    |p, q| p == q,
                );
            },
            |a, b| a == b,
        );
        // Index names are unique per schema, not per table: compare them schema-wide, so an
        // index that moves with its renamed table is one change, not a removal and an addition.
        let indexes = |s: &'a Snapshot| -> BTreeMap<QName, &'a Index> {
            s.tables
                .iter()
                .flat_map(|(tn, t)| t.indexes.iter().map(move |(n, i)| (QName::new(&tn.schema, n), i)))
                .collect()
        };
        let (ia, ib) = (indexes(self), indexes(other));
        merge(
            &ia,
            &ib,
            |k, x, y| push(DiffKind::Index, k.to_string(), x.map(|i| Obj::Index(i)), y.map(|i| Obj::Index(i))),
            |p, q| p == q,
        );
        differences.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
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
        SchemaDiff { differences, column_order, from: self, to: other }
    }
}

#[cfg(test)]
mod tests {
    use super::{clock_only, day_number, short_pair};

    #[test]
    fn frozen_times_a_day_apart_are_clock_only() {
        let v = |t: &str| {
            format!(
                "SELECT p.id FROM post p WHERE p.published < ('{t}'::timestamp without time zone - '1 mon'::interval)"
            )
        };
        assert!(clock_only(&v("2026-11-24 22:42:48.120037"), &v("2026-11-24 22:42:47.909")));
        assert!(clock_only(&v("2026-11-30 23:59:59"), &v("2026-12-01 00:00:01")));
        assert!(clock_only("('2026-12-31'::date + 1)", "('2027-01-01'::date + 1)"));
        // A different constant, a different skeleton, or no literal at all is a real change.
        assert!(!clock_only(&v("2020-01-01 00:00:00"), &v("2021-01-01 00:00:00")));
        assert!(!clock_only(&v("2026-11-24 22:42:48"), &format!("{} AND true", v("2026-11-24 22:42:47"))));
        assert!(!clock_only("SELECT 1", "SELECT 2"));
        assert!(!clock_only(&v("2026-11-24 22:42:48"), &v("2026-11-24 22:42:48")));
        assert_eq!(day_number(1970, 1, 1), 0);
        assert_eq!(day_number(2000, 3, 1) - day_number(2000, 2, 28), 2);
    }

    #[test]
    fn long_values_are_cut_around_the_first_difference() {
        let shared = "SELECT p.id, p.name, p.url, p.body, p.creator_id, p.community_id, p.removed, p.locked, p.published, p.updated, p.deleted";
        let before = format!("{shared}, p.nsfw, p.embed_title FROM post p");
        let after = format!("{shared}, p.embed_title, p.nsfw FROM post p");
        let (b, a) = short_pair(&before, &after);
        assert!(b.starts_with('…') && a.starts_with('…'), "{b} / {a}");
        assert!(b.contains("p.nsfw, p.embed_title"), "{b}");
        assert!(a.contains("p.embed_title, p.nsfw"), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn short_values_are_shown_whole_on_one_line() {
        assert_eq!(short_pair("integer\n  NOT NULL", "bigint"), ("integer NOT NULL".into(), "bigint".into()));
    }
}
