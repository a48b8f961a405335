//! Synthetic data at scale, generated inside PostgreSQL (`INSERT … SELECT … FROM
//! generate_series`), so rehearsals see realistic lock durations and rewrites. Values follow
//! each column's type; NOT NULL columns are always filled; foreign keys point at existing
//! parent rows (parents are filled first); UNIQUE holds because values derive from the row
//! number. A table whose CHECK constraints the generated values cannot satisfy is reported
//! and left as it is.

use postgres::Client;
use std::collections::{BTreeMap, BTreeSet};

use migsafe_catalog::model::{Column, Snapshot, Table, TableKind, TypeDef};
use migsafe_catalog::QName;
use migsafe_sql::quote_ident as qi;

use crate::EngineError;
use migsafe_pg::db_message;

/// What the generator did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SynthReport {
    /// Rows added per table.
    pub filled: Vec<(String, i64)>,
    /// Tables it could not fill, and why.
    pub warnings: Vec<String>,
}

/// Tables parents-first by foreign keys (cycles broken arbitrarily).
fn fill_order(snap: &Snapshot) -> Vec<QName> {
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    fn visit(
        n: &QName,
        snap: &Snapshot,
        done: &mut BTreeSet<QName>,
        stack: &mut BTreeSet<QName>,
        out: &mut Vec<QName>,
    ) {
        if done.contains(n) || !stack.insert(n.clone()) {
            return;
        }
        if let Some(t) = snap.tables.get(n) {
            for c in t.constraints.values() {
                if let Some(p) = &c.references {
                    if p != n {
                        visit(p, snap, done, stack, out);
                    }
                }
            }
        }
        stack.remove(n);
        done.insert(n.clone());
        out.push(n.clone());
    }
    let mut stack = BTreeSet::new();
    for n in snap.tables.keys() {
        visit(n, snap, &mut done, &mut stack, &mut out);
    }
    out
}

/// Value expression for a column of `type_name` at row `g` (a bigint), offset by `base`.
fn value_expr(type_name: &str, snap: &Snapshot, g: &str) -> Option<String> {
    if let Some(elem) = type_name.strip_suffix("[]") {
        return value_expr(elem, snap, g).map(|e| format!("ARRAY[{e}]::{type_name}"));
    }
    let base = type_name.split('(').next().unwrap_or(type_name).trim();
    let len = type_name
        .split('(')
        .nth(1)
        .and_then(|r| r.trim_end_matches(')').split(',').next()?.trim().parse::<usize>().ok());
    let e = match base {
        "smallint" => format!("({g} % 32000)::smallint"),
        "integer" => format!("({g} % 2000000000)::integer"),
        "bigint" => g.to_string(),
        "numeric" => match len {
            Some(p) if p < 18 => format!("({g} % {})::{type_name}", 10i64.pow((p as u32).saturating_sub(4).max(1))),
            _ => format!("{g}::numeric"),
        },
        "real" | "double precision" => format!("{g}::{base}"),
        "text" | "citext" | "name" => format!("('v' || {g})::{base}"),
        "character varying" | "character" => match len {
            Some(n) => format!("left('v' || {g}, {n})::{type_name}"),
            None => format!("('v' || {g})::{base}"),
        },
        "boolean" => format!("({g} % 2 = 0)"),
        "timestamp with time zone" | "timestamp without time zone" => {
            format!("(now() - {g} * interval '1 minute')::{base}")
        }
        "date" => format!("(current_date - ({g} % 3650)::int)"),
        "time without time zone" => format!("(time '00:00' + ({g} % 86400) * interval '1 second')"),
        "interval" => format!("(({g} % 100000) * interval '1 second')"),
        "uuid" => format!("md5({g}::text)::uuid"),
        "jsonb" | "json" => format!("jsonb_build_object('n', {g})::{base}"),
        "bytea" => format!("decode(md5({g}::text), 'hex')"),
        "inet" | "cidr" => {
            format!("('10.' || ({g} >> 16) % 256 || '.' || ({g} >> 8) % 256 || '.' || {g} % 256)::{base}")
        }
        "tsvector" => format!("to_tsvector('simple', 'w' || {g})"),
        "ltree" => format!("('n' || {g})::ltree"),
        _ => {
            let q = QName::parse(type_name).or_else(|| snap.types.keys().find(|k| k.name == type_name).cloned())?;
            match snap.types.get(&q)? {
                TypeDef::Enum { labels, .. } if !labels.is_empty() => {
                    format!("(enum_range(NULL::{type_name}))[1 + ({g} % {})]", labels.len())
                }
                TypeDef::Domain { base, .. } => format!("({})::{type_name}", value_expr(base, snap, g)?),
                _ => return None,
            }
        }
    };
    Some(e)
}

fn needs_value(c: &Column) -> bool {
    c.generated.is_none() && c.identity.is_none() && c.default.is_none()
}

/// Fill every table of the database up to `rows` rows.
pub fn fill(client: &mut Client, snap: &Snapshot, rows: u64) -> Result<SynthReport, EngineError> {
    let mut report = SynthReport::default();
    let mut counts: BTreeMap<QName, i64> = BTreeMap::new();
    for name in fill_order(snap) {
        let t = &snap.tables[&name];
        if t.kind == TableKind::Foreign || t.partition_of.is_some() {
            continue;
        }
        let have: i64 = client.query_one(&format!("SELECT count(*) FROM {name}"), &[])?.get(0);
        counts.insert(name.clone(), have);
        let want = rows as i64 - have;
        if want <= 0 {
            continue;
        }
        match fill_table(client, snap, &name, t, have, want, &counts) {
            Ok(n) => {
                report.filled.push((name.to_string(), n));
                counts.insert(name.clone(), have + n);
            }
            Err(why) => report.warnings.push(format!("{name}: not filled: {why}")),
        }
    }
    if !report.filled.is_empty() {
        client.batch_execute("ANALYZE")?;
    }
    Ok(report)
}

/// Why a table could not be filled with synthetic rows (it is left as it is, with a warning).
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    /// A NOT NULL foreign key whose parent has no rows to point at.
    #[error("foreign key {constraint} needs rows in {parent}, which has none")]
    NoParentRows {
        /// The foreign key.
        constraint: String,
        /// The table it references.
        parent: QName,
    },
    /// A NOT NULL column of a type migsafe cannot make values of.
    #[error("no generator for NOT NULL column {column} of type {type_name}")]
    NoGenerator {
        /// The column.
        column: String,
        /// Its type.
        type_name: String,
    },
    /// The INSERT failed (the server's message).
    #[error("{0}")]
    Insert(String),
}

fn fill_table(
    client: &mut Client,
    snap: &Snapshot,
    name: &QName,
    t: &Table,
    have: i64,
    want: i64,
    counts: &BTreeMap<QName, i64>,
) -> Result<i64, FillError> {
    let g = format!("({have} + s.g)");
    let mut cols: Vec<String> = Vec::new();
    let mut exprs: Vec<String> = Vec::new();
    let mut joins: Vec<String> = Vec::new();
    let mut covered: BTreeSet<String> = BTreeSet::new();
    // Foreign keys first: whole parent rows, so composite keys stay consistent.
    for (i, (cn, c)) in
        t.constraints.iter().filter(|(_, c)| c.kind == migsafe_catalog::model::ConstraintType::ForeignKey).enumerate()
    {
        let Some(parent) = &c.references else { continue };
        let ref_cols = fk_ref_columns(&c.definition);
        if ref_cols.len() != c.columns.len() || c.columns.iter().any(|x| covered.contains(x)) {
            continue;
        }
        let parent_rows = counts.get(parent).copied().unwrap_or(0);
        let nullable = c.columns.iter().all(|x| t.column(x).is_some_and(|col| !col.not_null));
        if parent == name || parent_rows == 0 {
            if nullable {
                covered.extend(c.columns.iter().cloned());
                continue;
            }
            return Err(FillError::NoParentRows { constraint: cn.clone(), parent: parent.clone() });
        }
        let alias = format!("p{i}");
        let sel = ref_cols.iter().map(|r| qi(r)).collect::<Vec<_>>().join(", ");
        joins.push(format!(
            "JOIN (SELECT {sel}, row_number() OVER () AS rn FROM {parent}) {alias} ON {alias}.rn = 1 + (s.g - 1) % {parent_rows}"
        ));
        for (col, r) in c.columns.iter().zip(&ref_cols) {
            cols.push(qi(col));
            exprs.push(format!("{alias}.{}", qi(r)));
            covered.insert(col.clone());
        }
    }
    for c in &t.columns {
        if covered.contains(&c.name) || c.inherited && t.partition_of.is_some() || !needs_value(c) {
            continue;
        }
        match value_expr(&c.type_name, snap, &g) {
            Some(e) => {
                cols.push(qi(&c.name));
                exprs.push(e);
            }
            None if !c.not_null => {}
            None => return Err(FillError::NoGenerator { column: c.name.clone(), type_name: c.type_name.clone() }),
        }
    }
    let sql = if cols.is_empty() {
        format!("INSERT INTO {name} SELECT FROM generate_series(1, {want}) s(g)")
    } else {
        format!(
            "INSERT INTO {name} ({}) SELECT {} FROM generate_series(1, {want}) s(g) {}",
            cols.join(", "),
            exprs.join(", "),
            joins.join(" ")
        )
    };
    client.execute(&sql, &[]).map(|n| n as i64).map_err(|e| FillError::Insert(db_message(&e)))
}

/// The referenced columns of a foreign key from its definition
/// (`FOREIGN KEY (a) REFERENCES s.t(x, y) …`).
fn fk_ref_columns(def: &str) -> Vec<String> {
    let Some(after) = def.split(" REFERENCES ").nth(1) else { return vec![] };
    let Some(open) = after.find('(') else { return vec![] };
    let Some(close) = after[open..].find(')') else { return vec![] };
    after[open + 1..open + close]
        .split(',')
        .map(|s| {
            let s = s.trim();
            s.strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .map(|x| x.replace("\"\"", "\""))
                .unwrap_or_else(|| s.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referenced_columns() {
        assert_eq!(
            fk_ref_columns("FOREIGN KEY (a, b) REFERENCES public.t(x, \"Y\") ON DELETE CASCADE"),
            vec!["x", "Y"]
        );
    }
}
