//! Whole-table DELETE and UPDATE: unbatched data migrations inside a schema migration.

use super::{violation, Cx, Violation};
use crate::model::StmtKind;

pub(crate) fn delete(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::Delete { table, has_where: false } = &cx.stmt.kind else {
        return;
    };
    if !cx.existing(table) {
        return;
    }
    out.push(violation(
        format!(
            "DELETE without WHERE removes every row of {} in one transaction: each row stays locked until commit \
             (concurrent updates of them wait), the whole table's worth of WAL is written at once, and the rows \
             cannot be recovered from the table",
            cx.sized(table)
        ),
        format!(
            "delete in batches, each its own short transaction, e.g.:\n  DELETE FROM {t} WHERE ctid IN (SELECT ctid \
             FROM {t} LIMIT 5000); -- repeat until 0 rows",
            t = table.sql()
        ),
    ));
}

pub(crate) fn update(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::Update { table, has_where: false, assignments } = &cx.stmt.kind else {
        return;
    };
    if !cx.existing(table) {
        return;
    }
    let set =
        assignments.iter().map(|(c, v)| format!("{} = {v}", crate::quote_ident(c))).collect::<Vec<_>>().join(", ");
    out.push(violation(
        format!(
            "UPDATE without WHERE rewrites every row of {} in one transaction (an unbatched backfill): every row \
             stays locked until commit so concurrent writes to them wait, the table grows by its full size in dead \
             rows, and replicas lag behind the WAL burst",
            cx.sized(table)
        ),
        format!(
            "backfill in batches outside the schema migration (the guide's phase 2), resumable and throttled:\n  \
             migsafe backfill --table {table} --set \"{}\" --where \"<rows not yet migrated>\"",
            set.replace('"', "\\\"")
        ),
    ));
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn whole_table_dml() {
        let f = lint("UPDATE users SET display_name = full_name;");
        assert_eq!(ids(&f), vec!["update-without-where"]);
        assert!(
            f[0].help.contains("migsafe backfill --table users --set \"display_name = full_name\""),
            "{}",
            f[0].help
        );
        assert_eq!(ids(&lint("DELETE FROM sessions;")), vec!["delete-without-where"]);
    }

    #[test]
    fn filtered_and_new_tables_are_fine() {
        assert!(lint("UPDATE users SET a = 1 WHERE id < 100;").is_empty());
        assert!(lint("DELETE FROM sessions WHERE expires_at < now();").is_empty());
        assert!(lint("CREATE TABLE t (a int); INSERT INTO t VALUES (1); UPDATE t SET a = 2;").is_empty());
    }
}
