//! Types: which are rebuilt, created or altered, and the columns and functions they reach.

use super::*;

/// Types (not enums) that change shape and no column uses: dropped and created again.
pub(super) fn rebuilt_types(a: &Snapshot, b: &Snapshot) -> Vec<QName> {
    renewed_types(a, b)
        .into_iter()
        .filter(|n| {
            !matches!((&a.types[n], &b.types[n]), (TypeDef::Enum { .. }, TypeDef::Enum { .. }))
                && columns_of_type(b, n).is_empty()
        })
        .collect()
}

pub(super) fn needs_type_rebuild(a: &TypeDef, b: &TypeDef) -> bool {
    match (a, b) {
        (TypeDef::Enum { labels: x, .. }, TypeDef::Enum { labels: y, .. }) => !enum_only_adds(x, y),
        (TypeDef::Composite { attributes: x, .. }, TypeDef::Composite { attributes: y, .. }) => x != y,
        (TypeDef::Domain { base: x, collation: cx, .. }, TypeDef::Domain { base: y, collation: cy, .. }) => {
            x != y || cx != cy
        }
        (TypeDef::Range { subtype: x, .. }, TypeDef::Range { subtype: y, .. }) => x != y,
        _ => true,
    }
}

/// True when `new` is `old` with labels inserted (old labels keep their relative order).
pub(super) fn enum_only_adds(old: &[String], new: &[String]) -> bool {
    let kept: Vec<&String> = new.iter().filter(|l| old.contains(l)).collect();
    kept.len() == old.len() && kept.iter().zip(old).all(|(a, b)| *a == b)
}

pub(super) fn type_comment(t: &TypeDef) -> &Option<String> {
    match t {
        TypeDef::Enum { comment, .. }
        | TypeDef::Composite { comment, .. }
        | TypeDef::Domain { comment, .. }
        | TypeDef::Range { comment, .. } => comment,
    }
}

pub(super) fn create_type(n: &QName, t: &TypeDef, s: &mut Script) {
    match t {
        TypeDef::Enum { labels, .. } => {
            let l: Vec<String> = labels.iter().map(|x| ql(x)).collect();
            s.push(format!("CREATE TYPE {n} AS ENUM ({})", l.join(", ")));
        }
        TypeDef::Composite { attributes, .. } => {
            let a: Vec<String> = attributes.iter().map(|(k, v)| format!("{} {v}", qi(k))).collect();
            s.push(format!("CREATE TYPE {n} AS ({})", a.join(", ")));
        }
        TypeDef::Domain { base, not_null, default, collation, constraints, .. } => {
            let mut d = format!("CREATE DOMAIN {n} AS {base}");
            if let Some(c) = collation {
                d.push_str(&format!(" COLLATE {c}"));
            }
            if let Some(df) = default {
                d.push_str(&format!(" DEFAULT {df}"));
            }
            if *not_null {
                d.push_str(" NOT NULL");
            }
            s.push(d);
            for (cn, (def, _)) in constraints {
                s.push(format!("ALTER DOMAIN {n} ADD CONSTRAINT {} {def}", qi(cn)));
            }
        }
        TypeDef::Range { subtype, .. } => s.push(format!("CREATE TYPE {n} AS RANGE (subtype = {subtype})")),
    }
    if type_comment(t).is_some() {
        s.push(comment_sql(&format!("{} {n}", type_keyword(t)), type_comment(t)));
    }
}

pub(super) fn type_keyword(t: &TypeDef) -> &'static str {
    if matches!(t, TypeDef::Domain { .. }) {
        "DOMAIN"
    } else {
        "TYPE"
    }
}

/// Columns (in `b`) whose type is the type `n` (or an array of it).
pub(super) fn columns_of_type<'a>(b: &'a Snapshot, n: &QName) -> Vec<(&'a QName, &'a Column)> {
    let spellings = [n.to_string(), n.name.clone(), format!("{}.{}", n.schema, n.name)];
    let mut out = Vec::new();
    for (tn, t) in &b.tables {
        for c in &t.columns {
            let base = c.type_name.trim_end_matches("[]");
            if spellings.iter().any(|s| s == base) && !c.inherited {
                out.push((tn, c));
            }
        }
    }
    out
}

/// Every type built anew, enums losing values included (see `needs_type_rebuild`).
pub(super) fn renewed_types(a: &Snapshot, b: &Snapshot) -> Vec<QName> {
    a.types
        .iter()
        .filter(|(n, t)| b.types.get(*n).is_some_and(|u| needs_type_rebuild(t, u)))
        .map(|(n, _)| n.clone())
        .collect()
}

pub(super) fn render_types(a: &Snapshot, b: &Snapshot, s: &mut Script) {
    // Order: enums and ranges, then domains (may be over enums), then composites.
    let rank = |t: &TypeDef| match t {
        TypeDef::Enum { .. } | TypeDef::Range { .. } => 0,
        TypeDef::Domain { .. } => 1,
        TypeDef::Composite { .. } => 2,
    };
    let mut names: Vec<(&QName, &TypeDef)> = b.types.iter().collect();
    names.sort_by_key(|(n, t)| (rank(t), (*n).clone()));
    for (n, t) in names {
        let Some(old) = a.types.get(n) else {
            create_type(n, t, s);
            continue;
        };
        match (old, t) {
            (TypeDef::Enum { labels: x, .. }, TypeDef::Enum { labels: y, .. }) if x != y => {
                if enum_only_adds(x, y) {
                    for (i, l) in y.iter().enumerate() {
                        if x.contains(l) {
                            continue;
                        }
                        let pos = match y[i + 1..].iter().find(|n| x.contains(n)) {
                            Some(next) => format!(" BEFORE {}", ql(next)),
                            None => String::new(),
                        };
                        s.push(format!("ALTER TYPE {n} ADD VALUE IF NOT EXISTS {}{pos}", ql(l)));
                    }
                } else {
                    // Labels removed or reordered: build a new type and convert columns to it.
                    let tmp = QName::new(&n.schema, format!("{}__migsafe_old", n.name));
                    s.push(format!("ALTER TYPE {n} RENAME TO {}", qi(&tmp.name)));
                    create_type(n, t, s);
                    for (tn, c) in columns_of_type(b, n) {
                        let arr = if c.type_name.ends_with("[]") { "[]" } else { "" };
                        if c.default.is_some() {
                            s.push(format!("ALTER TABLE {tn} ALTER COLUMN {} DROP DEFAULT", qi(&c.name)));
                        }
                        s.push(format!(
                            "ALTER TABLE {tn} ALTER COLUMN {c} TYPE {n}{arr} USING {c}::text{arr}::{n}{arr}",
                            c = qi(&c.name)
                        ));
                        if let Some(d) = &c.default {
                            s.push(format!("ALTER TABLE {tn} ALTER COLUMN {} SET DEFAULT {d}", qi(&c.name)));
                        }
                    }
                    s.push(format!("DROP TYPE {tmp}"));
                }
            }
            (
                TypeDef::Domain { not_null: nn0, default: d0, constraints: c0, .. },
                TypeDef::Domain { not_null: nn1, default: d1, constraints: c1, .. },
            ) if !needs_type_rebuild(old, t) => {
                if d0 != d1 {
                    match d1 {
                        Some(d) => s.push(format!("ALTER DOMAIN {n} SET DEFAULT {d}")),
                        None => s.push(format!("ALTER DOMAIN {n} DROP DEFAULT")),
                    }
                }
                if nn0 != nn1 {
                    s.push(format!("ALTER DOMAIN {n} {} NOT NULL", if *nn1 { "SET" } else { "DROP" }));
                }
                for (cn, (def, _)) in c0 {
                    if c1.get(cn).is_none_or(|(d, _)| d != def) {
                        s.push(format!("ALTER DOMAIN {n} DROP CONSTRAINT {}", qi(cn)));
                    }
                }
                for (cn, (def, valid)) in c1 {
                    match c0.get(cn) {
                        Some((d, v)) if d == def => {
                            if !v && *valid {
                                s.push(format!("ALTER DOMAIN {n} VALIDATE CONSTRAINT {}", qi(cn)));
                            }
                        }
                        _ => s.push(format!("ALTER DOMAIN {n} ADD CONSTRAINT {} {def}", qi(cn))),
                    }
                }
            }
            _ if needs_type_rebuild(old, t) => {
                if columns_of_type(b, n).is_empty() {
                    create_type(n, t, s);
                } else {
                    s.push(format!("-- MANUAL: type {n} changed shape while columns use it; convert them by hand"));
                }
                continue;
            }
            _ => {}
        }
        if type_comment(old) != type_comment(t) {
            s.push(comment_sql(&format!("{} {n}", type_keyword(t)), type_comment(t)));
        }
    }
}
