//! Rows a statement added to a table that existed before (INSERT … VALUES, COPY … FROM stdin
//! with inline rows): deleted by their key, or one for one when the table has none.

use migsafe_catalog::model::Column;
use migsafe_catalog::QName;
use migsafe_sql::model::{ObjectKind, StmtKind};
use migsafe_sql::{quote_ident as qi, Statement};

use super::{Inverse, Inversion};

/// INSERT … VALUES and COPY … FROM stdin into an existing table.
pub(super) fn invert(st: &Statement, cx: &Inversion, inv: &mut Inverse) {
    match &st.kind {
        StmtKind::Insert { table, literal_rows: true, on_conflict: None, .. } => {
            if let Some(v) = st.insert_values() {
                delete_inserted(&cx.q(table), &v, cx, inv);
            }
        }
        StmtKind::Copy { table: Some(table), from: true } => {
            // Rows given inline, as constants: deleted by their key, as INSERT … VALUES.
            if let Some(v) = st.copy_rows(cx.source) {
                delete_inserted(&cx.q(table), &v, cx, inv);
            }
        }
        _ => {}
    }
}

/// The inverse of `INSERT INTO t … VALUES` into a table that existed before the migration:
/// delete exactly those rows, by the table's key, when every row gives its key as constants.
/// (Otherwise the rows stay, and the rollback's notes say so.)
fn delete_inserted(q: &QName, v: &migsafe_sql::model::InsertValues, cx: &Inversion, inv: &mut Inverse) {
    let recreated = cx.before.dropped.iter().any(|(k, x)| *k == ObjectKind::Table && *x == q.to_string());
    let Some(t) = cx.s0.tables.get(q).filter(|_| !recreated) else { return };
    match crate::capture::seeded_keys(t, v) {
        Some((key, rows)) => {
            inv.sql.extend(crate::capture::delete_keys(q, &key, &rows));
            inv.keyed = Some((q.clone(), key, rows));
        }
        None => match delete_whole_rows(q, t, v) {
            Some(sql) => inv.sql.push(sql),
            None => return,
        },
    }
    inv.removes_rows = true;
}

/// For a table without a key: rows given whole (every stored column a constant or NULL) are
/// deleted one for one, each a single row equal to it in every column. Rows equal in every
/// column cannot be told apart, so which of them goes does not matter.
fn delete_whole_rows(
    q: &QName,
    t: &migsafe_catalog::model::Table,
    v: &migsafe_sql::model::InsertValues,
) -> Option<String> {
    let stored: Vec<&Column> = t.columns.iter().filter(|c| c.generated.is_none()).collect();
    let columns: Vec<String> = match &v.columns {
        Some(c) => c.clone(),
        None => stored.iter().map(|c| c.name.clone()).collect(),
    };
    // A column left out would take its default, which the row cannot be matched on.
    if stored.iter().any(|c| !columns.contains(&c.name)) || columns.len() != stored.len() {
        return None;
    }
    if !columns.iter().all(|c| crate::capture::comparable(t, c)) {
        return None;
    }
    let mut deletes = Vec::new();
    for row in &v.rows {
        if row.len() != columns.len() {
            return None;
        }
        let same: Vec<String> = columns
            .iter()
            .zip(row)
            .map(|(c, x)| x.as_ref().map(|x| format!("{} IS NOT DISTINCT FROM {x}", qi(c))))
            .collect::<Option<_>>()?;
        deletes
            .push(format!("DELETE FROM {q} WHERE ctid = (SELECT ctid FROM {q} WHERE {} LIMIT 1)", same.join(" AND ")));
    }
    (!deletes.is_empty()).then(|| deletes.join(";\n"))
}
