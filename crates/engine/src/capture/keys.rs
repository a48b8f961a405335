//! Row keys: how the capture and the rollback find a row again (a primary key, a unique
//! NOT NULL constraint or index, or the constants an INSERT or UPDATE gives).

use migsafe_catalog::model::{ConstraintType, Table};
use migsafe_sql::model::{ColumnConstants, StmtKind};
use migsafe_sql::{quote_ident as qi, Statement};

use super::reshaped_on_update;

/// The row key of a table: its primary key, else a unique constraint on NOT NULL columns, else
/// a valid, non-partial unique index on plain NOT NULL columns (many schemas declare their key
/// as `CREATE UNIQUE INDEX … (id)` and never add a constraint).
pub fn row_key(t: &Table) -> Option<Vec<String>> {
    row_key_without(t, &[])
}

/// [`row_key`], skipping keys that use any of `avoid` (columns the migration drops or changes:
/// a key among them cannot find the rows again once the rollback re-created them).
pub fn row_key_without(t: &Table, avoid: &[String]) -> Option<Vec<String>> {
    let usable = |cols: &[String]| {
        !cols.is_empty()
            && cols.iter().all(|c| t.column(c).is_some_and(|col| col.not_null))
            && !cols.iter().any(|x| avoid.contains(x))
    };
    let mut cands: Vec<(&String, &migsafe_catalog::model::Constraint)> =
        t.constraints.iter().filter(|(_, c)| c.kind.is_key()).collect();
    cands.sort_by_key(|(n, c)| (c.kind != ConstraintType::PrimaryKey, (*n).clone()));
    if let Some((_, c)) = cands.into_iter().find(|(_, c)| usable(&c.columns)) {
        return Some(c.columns.clone());
    }
    // BTreeMap order: the first usable unique index by name, so the choice is deterministic.
    t.indexes.values().filter(|i| i.valid && !i.constraint).find_map(|i| {
        let cols = unique_index_columns(&i.definition)?;
        usable(&cols).then_some(cols)
    })
}

/// The items of a `pg_get_indexdef` text when it is a unique index that is not partial: column
/// names, and the text of expressions (which never names a column of the table, so `usable`
/// rejects it as a key).
fn unique_index_columns(definition: &str) -> Option<Vec<String>> {
    let parsed = migsafe_sql::parse::parse_sql(definition);
    match &parsed.statements.first()?.kind {
        StmtKind::CreateIndex { unique: true, partial: false, columns, .. } => Some(columns.clone()),
        _ => None,
    }
}

/// Whether a column of `t` has a type `=` compares (not json, xml or a geometric type).
pub fn comparable(t: &Table, column: &str) -> bool {
    t.column(column).is_some_and(|col| {
        let ty = col.type_name.trim_end_matches("[]");
        !matches!(ty, "json" | "xml" | "point" | "line" | "lseg" | "box" | "path" | "polygon" | "circle")
    })
}

/// The key of `t` and, per row of an `INSERT … VALUES`, the key's values as constants; None
/// when the table has no key or a row does not give all of it as constants.
///
/// Without the row key among the constants (a serial id left to its default), any unique
/// constraint or index (expressions included: LedgerSMB's `UNIQUE (lower(name))`) whose columns
/// all get constants identifies each row by every column given a constant: that row alone can
/// hold them all.
pub fn seeded_keys(t: &Table, v: &migsafe_sql::model::InsertValues) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let columns: Vec<String> = match &v.columns {
        Some(c) => c.clone(),
        None => t.columns.iter().map(|c| c.name.clone()).collect(),
    };
    let project = |key: &[String]| -> Option<Vec<Vec<String>>> {
        let positions: Vec<usize> = key.iter().map(|k| columns.iter().position(|c| c == k)).collect::<Option<_>>()?;
        let rows: Vec<Vec<String>> = v
            .rows
            .iter()
            .map(|row| positions.iter().map(|&i| row.get(i).cloned().flatten().filter(|x| x != "NULL")).collect())
            .collect::<Option<_>>()?;
        (!rows.is_empty()).then_some(rows)
    };
    if let Some(key) = row_key(t) {
        if let Some(rows) = project(&key) {
            return Some((key, rows));
        }
    }
    // Columns every row gives a non-NULL constant, of types `=` compares.
    let comparable = |c: &String| comparable(t, c);
    let constant: Vec<String> = columns
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            comparable(c) && v.rows.iter().all(|row| row.get(*i).cloned().flatten().is_some_and(|x| x != "NULL"))
        })
        .map(|(_, c)| c.clone())
        .collect();
    let unique_sets = t.constraints.values().filter(|c| c.kind.is_key()).map(|c| c.columns.clone()).chain(
        t.indexes.values().filter(|i| i.valid && !i.constraint).filter_map(|i| unique_index_uses(&i.definition, t)),
    );
    for used in unique_sets {
        if !used.is_empty() && used.iter().all(|u| constant.contains(u)) {
            return project(&constant).map(|rows| (constant.clone(), rows));
        }
    }
    None
}

/// The columns of `t` a valid, non-partial unique index uses, in its key columns or its
/// expressions (`lower(name)` uses `name`); None when it is not such an index.
fn unique_index_uses(definition: &str, t: &Table) -> Option<Vec<String>> {
    let mut used: Vec<String> = Vec::new();
    for item in unique_index_columns(definition)? {
        if t.column(&item).is_some() {
            used.push(item);
            continue;
        }
        // An expression: the column names among its identifiers.
        for word in item.split(|ch: char| !(ch.is_alphanumeric() || ch == '_')) {
            if !word.is_empty() && t.column(word).is_some() && !used.iter().any(|u| u == word) {
                used.push(word.to_string());
            }
        }
    }
    Some(used)
}

/// An UPDATE that changes only key columns, to constants, of the one row its WHERE pins by its
/// whole key with constants (`UPDATE language SET code = 'ms_MY' WHERE code = 'my'`).
pub struct KeyRename {
    /// The table's row key.
    pub key: Vec<String>,
    /// The key's values before the UPDATE, as SQL constants.
    pub old: Vec<String>,
    /// The rename back: its assignments.
    pub back: ColumnConstants,
    /// The rename back: its WHERE, the key as the UPDATE left it.
    pub now: ColumnConstants,
}

/// [`KeyRename`] for statement `st` on `t`, or None.
pub fn key_rename(t: &Table, st: &Statement) -> Option<KeyRename> {
    // A BEFORE UPDATE trigger may change other columns too: then the values are captured.
    if reshaped_on_update(t) {
        return None;
    }
    let (sets, wheres) = st.update_constants()?;
    let key = row_key(t)?;
    let pinned = |c: &String| wheres.iter().find(|(w, _)| w == c).map(|(_, v)| v.clone());
    if sets.is_empty() || !sets.iter().all(|(c, _)| key.contains(c)) {
        return None;
    }
    let back: Vec<(String, String)> =
        sets.iter().map(|(c, _)| pinned(c).map(|v| (c.clone(), v))).collect::<Option<_>>()?;
    let now: Vec<(String, String)> = key
        .iter()
        .map(|k| {
            sets.iter().find(|(c, _)| c == k).map(|(_, v)| v.clone()).or_else(|| pinned(k)).map(|v| (k.clone(), v))
        })
        .collect::<Option<_>>()?;
    let old: Vec<String> = key.iter().map(pinned).collect::<Option<_>>()?;
    Some(KeyRename { key, old, back, now })
}

/// Rows deleted by key, set-based: one `DELETE FROM t WHERE k IN (…)` (or `(k1, k2) IN
/// ((…), …)`) per `DELETE_BATCH` rows, ten keys to a line, so a rollback of a bulk insert is as
/// long as its keys, not one statement per row.
pub fn delete_keys(table: &impl std::fmt::Display, key: &[String], rows: &[Vec<String>]) -> Vec<String> {
    let columns = match key {
        [k] => qi(k),
        _ => format!("({})", key.iter().map(|k| qi(k)).collect::<Vec<_>>().join(", ")),
    };
    rows.chunks(DELETE_BATCH)
        .map(|batch| {
            let values: Vec<String> =
                batch.iter().map(|r| if r.len() == 1 { r[0].clone() } else { format!("({})", r.join(", ")) }).collect();
            let lines: Vec<String> = values.chunks(10).map(|l| l.join(", ")).collect();
            format!("DELETE FROM {table} WHERE {columns} IN (\n    {}\n)", lines.join(",\n    "))
        })
        .collect()
}

/// Keys per `DELETE` of [`delete_keys`].
pub const DELETE_BATCH: usize = 1000;

/// `(k1 = v AND k2 = v) OR …` for the rows' keys, columns prefixed with `alias.`.
pub fn key_match(key: &[String], rows: &[Vec<String>], alias: &str) -> String {
    rows.iter()
        .map(|r| {
            let parts: Vec<String> = key.iter().zip(r).map(|(k, v)| format!("{alias}{} = {v}", qi(k))).collect();
            format!("({})", parts.join(" AND "))
        })
        .collect::<Vec<_>>()
        .join("\n   OR ")
}
