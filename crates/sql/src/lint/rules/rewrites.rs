//! Maintenance and ALTER forms that rewrite a table under ACCESS EXCLUSIVE.

use super::{existing_table_actions, violation, Cx, Violation};
use crate::model::{AlterAction, StmtKind};

pub(crate) fn vacuum_full(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::Vacuum { full: true, tables, .. } = &cx.stmt.kind else {
        return;
    };
    let what = if tables.is_empty() {
        "every table in the database".to_string()
    } else {
        tables.iter().map(|t| cx.sized(t)).collect::<Vec<_>>().join(", ")
    };
    out.push(violation(
        format!(
            "VACUUM FULL rewrites {what} under an ACCESS EXCLUSIVE lock: every query on it is blocked until the copy \
             is complete, and it needs free disk space for a full second copy"
        ),
        "reclaim space online with pg_repack (or pg_squeeze); a plain VACUUM (no FULL) does not block reads or writes",
    ));
}

pub(crate) fn cluster(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::Cluster { table } = &cx.stmt.kind else {
        return;
    };
    let what = table.as_ref().map(|t| cx.sized(t)).unwrap_or_else(|| "every previously clustered table".into());
    out.push(violation(
        format!("CLUSTER rewrites {what} in index order under an ACCESS EXCLUSIVE lock: every query on it is blocked until the rewrite ends"),
        "use pg_repack --order-by to reorder online, or schedule it in a maintenance window",
    ));
}

pub(crate) fn refresh_matview(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::RefreshMatView { view, concurrently: false, .. } = &cx.stmt.kind else {
        return;
    };
    if !cx.existing(view) {
        return;
    }
    out.push(violation(
        format!(
            "REFRESH MATERIALIZED VIEW {view} holds an ACCESS EXCLUSIVE lock on it for the whole refresh: every \
             SELECT from the view waits until the query behind it has run again"
        ),
        format!(
            "refresh without blocking readers (needs a UNIQUE index on the view):\n  REFRESH MATERIALIZED VIEW \
             CONCURRENTLY {};",
            view.sql()
        ),
    ));
}

pub(crate) fn set_logged(cx: &Cx, out: &mut Vec<Violation>) {
    let Some((table, actions)) = existing_table_actions(cx) else {
        return;
    };
    for a in actions {
        let AlterAction::SetPersistence { logged } = a else {
            continue;
        };
        let extra = if *logged {
            "and writes the whole table to WAL"
        } else {
            "and afterwards the table is emptied after a crash and is not replicated to standbys"
        };
        out.push(violation(
            format!(
                "SET {} rewrites {} under an ACCESS EXCLUSIVE lock, blocking every query on it for time proportional \
                 to its size, {extra}",
                if *logged { "LOGGED" } else { "UNLOGGED" },
                cx.sized(table)
            ),
            "create a new table with the wanted persistence and move rows in batches, or run it in a maintenance window",
        ));
    }
}

pub(crate) fn other_rewrites(cx: &Cx, out: &mut Vec<Violation>) {
    let Some((table, actions)) = existing_table_actions(cx) else {
        return;
    };
    for a in actions {
        let what = match a {
            AlterAction::SetTablespace => "SET TABLESPACE copies the whole table",
            // To the method the table already has: nothing to do (a table the migrations made
            // without USING has the default, heap).
            AlterAction::SetAccessMethod { method: Some(m) }
                if cx.schema.table(table).and_then(|t| t.access_method.as_deref()) == Some(m.as_str()) =>
            {
                continue
            }
            AlterAction::SetAccessMethod { .. } => "SET ACCESS METHOD rewrites the whole table",
            AlterAction::SetExpression { column } => {
                // A VIRTUAL generated column (PostgreSQL 18) is computed when read: nothing to rewrite.
                if cx.schema.is_virtual_column(table, column) {
                    continue;
                }
                "SET EXPRESSION recomputes the stored generated column for every row"
            }
            _ => continue,
        };
        out.push(violation(
            format!(
                "{what} of {} under an ACCESS EXCLUSIVE lock: every query on it is blocked for time proportional to its size",
                cx.sized(table)
            ),
            "run it in a maintenance window sized by a rehearsal (migsafe rehearse --rows N), or move the data to a \
             new table in batches",
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn rewriting_maintenance() {
        assert!(flags("VACUUM FULL messages;", "vacuum-full"));
        assert!(!flags("VACUUM messages;", "vacuum-full"));
        assert_eq!(ids(&lint("CLUSTER messages USING messages_pkey;")), vec!["cluster"]);
        assert_eq!(ids(&lint("REFRESH MATERIALIZED VIEW stats;")), vec!["refresh-matview-not-concurrent"]);
        assert!(lint("REFRESH MATERIALIZED VIEW CONCURRENTLY stats;").is_empty());
        assert_eq!(ids(&lint("ALTER TABLE events SET UNLOGGED;")), vec!["set-logged-unlogged"]);
        assert_eq!(ids(&lint("ALTER TABLE events SET LOGGED;")), vec!["set-logged-unlogged"]);
        assert_eq!(ids(&lint("ALTER TABLE events SET TABLESPACE fast;")), vec!["table-rewrite"]);
    }

    #[test]
    fn new_matview_refresh_is_fine() {
        assert!(
            lint("CREATE MATERIALIZED VIEW s AS SELECT 1 AS x WITH NO DATA; REFRESH MATERIALIZED VIEW s;").is_empty()
        );
    }

    #[test]
    fn set_expression_rewrites_stored_columns_only() {
        assert!(flags("ALTER TABLE t ALTER COLUMN g SET EXPRESSION AS (a * 2);", "table-rewrite"));
        let f = lint_set(&[
            "CREATE TABLE t (a int, v int GENERATED ALWAYS AS (a * 2) VIRTUAL, s int GENERATED ALWAYS AS (a * 3) STORED);",
            "ALTER TABLE t ALTER COLUMN v SET EXPRESSION AS (a * 4);",
            "ALTER TABLE t ALTER COLUMN s SET EXPRESSION AS (a * 5);",
        ]);
        assert!(f[1].is_empty(), "{:?}", f[1]);
        assert_eq!(ids(&f[2]), vec!["table-rewrite"]);
    }
}
