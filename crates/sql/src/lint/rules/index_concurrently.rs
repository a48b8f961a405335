//! Index builds and drops that block traffic: CREATE INDEX, DROP INDEX and REINDEX without
//! CONCURRENTLY on tables that already hold data.

use pg_query::NodeEnum;

use super::{violation, Cx, Violation};
use crate::model::{ObjectKind, StmtKind};

pub(crate) fn create(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::CreateIndex { table, concurrently: false, if_not_exists, name, .. } = &cx.stmt.kind else {
        return;
    };
    if !cx.existing(table) {
        return;
    }
    // IF NOT EXISTS of an index the migrations already made builds nothing.
    let index = |n: &String| crate::QualName { schema: table.schema.clone(), name: n.clone() };
    if *if_not_exists && name.as_ref().is_some_and(|n| cx.schema.index_table(&index(n)).is_some()) {
        return;
    }
    let fixed = cx.rewritten(|n| {
        if let NodeEnum::IndexStmt(i) = n {
            i.concurrent = true;
        }
    });
    out.push(violation(
        format!(
            "CREATE INDEX on existing table {} takes a SHARE lock for the whole build: every INSERT, UPDATE and \
             DELETE on it waits until the index is built, which takes time proportional to the table's size",
            cx.sized(table)
        ),
        format!(
            "build the index without blocking writes, in a migration of its own (migsafe runs it outside a \
             transaction and drops the INVALID index a failed build leaves):\n  {fixed};"
        ),
    ));
}

pub(crate) fn drop(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::Drop { kind: ObjectKind::Index, names, concurrently: false, cascade, .. } = &cx.stmt.kind else {
        return;
    };
    for name in names {
        let table = cx.schema.index_table(name).cloned();
        if table.as_ref().is_some_and(|t| !cx.existing(t)) {
            continue;
        }
        let on = table.map(|t| format!("its table {}", cx.sized(&t))).unwrap_or_else(|| "its table".into());
        let help = if *cascade {
            "DROP INDEX CONCURRENTLY cannot CASCADE: drop the dependent objects first, then, in a migration of its own:"
        } else {
            "drop it without blocking queries, one index per statement, in a migration of its own:"
        };
        out.push(violation(
            format!(
                "DROP INDEX {name} takes an ACCESS EXCLUSIVE lock on {on}: while it waits for running queries to \
                 finish, every new query on the table, SELECT included, queues behind it"
            ),
            format!("{help}\n  DROP INDEX CONCURRENTLY IF EXISTS {};", name.sql()),
        ));
    }
}

pub(crate) fn reindex(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::Reindex { target, name, concurrently: false } = &cx.stmt.kind else {
        return;
    };
    let what = match target {
        ObjectKind::Index => "INDEX",
        ObjectKind::Table => "TABLE",
        ObjectKind::Schema => "SCHEMA",
        _ => "DATABASE",
    };
    if *target == ObjectKind::Table && !cx.existing(name) {
        return;
    }
    out.push(violation(
        format!(
            "REINDEX {what} {name} blocks writes to the table (SHARE lock) and every read that would use the index \
             (ACCESS EXCLUSIVE on it) for the whole rebuild, which grows with the table's size"
        ),
        format!(
            "rebuild without blocking (PostgreSQL 12+), outside a transaction:\n  REINDEX {what} CONCURRENTLY {};",
            name.sql()
        ),
    ));
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn flags_plain_index_on_existing_table() {
        let f = lint("CREATE INDEX idx_messages_created_at ON nchat.messages (created_at DESC);");
        assert_eq!(ids(&f), vec!["index-not-concurrent"]);
        assert!(
            f[0].help.contains("CREATE INDEX CONCURRENTLY idx_messages_created_at ON nchat.messages"),
            "{}",
            f[0].help
        );
        assert!(f[0].message.contains("SHARE lock"));
    }

    #[test]
    fn concurrent_index_and_new_tables_are_fine() {
        assert!(lint("CREATE INDEX CONCURRENTLY i ON messages (created_at);").is_empty());
        assert!(!flags("CREATE TABLE t (id int); CREATE INDEX i ON t (id);", "index-not-concurrent"));
        assert!(!flags("CREATE TABLE s.t (id int); CREATE UNIQUE INDEX i ON s.t (id);", "index-not-concurrent"));
    }

    #[test]
    fn table_from_earlier_migration_is_existing() {
        let f = lint_set(&["CREATE TABLE t (id int);", "CREATE INDEX i ON t (id);"]);
        assert!(f[0].is_empty());
        assert_eq!(ids(&f[1]), vec!["index-not-concurrent"]);
    }

    #[test]
    fn drop_index() {
        assert_eq!(ids(&lint("DROP INDEX idx_old;")), vec!["drop-index-not-concurrent"]);
        assert!(lint("DROP INDEX CONCURRENTLY idx_old;").is_empty());
        assert!(lint("CREATE TABLE t (id int); CREATE INDEX i ON t (id); DROP INDEX i;").is_empty());
    }

    #[test]
    fn reindex() {
        assert_eq!(ids(&lint("REINDEX INDEX idx;")), vec!["reindex-not-concurrent"]);
        assert!(!flags("REINDEX INDEX CONCURRENTLY idx;", "reindex-not-concurrent"));
    }

    #[test]
    fn if_not_exists_of_an_index_that_exists_builds_nothing() {
        let made = "CREATE TABLE t (a int);\nCREATE INDEX t_a ON t (a);";
        let f = lint_set(&[made, "CREATE INDEX IF NOT EXISTS t_a ON t (a);"]);
        assert!(f[1].is_empty(), "{:?}", f[1]);
        // Dropped with its column since, it is built again.
        let f = lint_set(&[
            made,
            "ALTER TABLE t DROP COLUMN a, ADD COLUMN a int;",
            "CREATE INDEX IF NOT EXISTS t_a ON t (a);",
        ]);
        assert_eq!(ids(&f[2]), vec!["index-not-concurrent"]);
    }

    #[test]
    fn a_materialized_view_dropped_by_cascade_and_made_again_is_new() {
        let f = lint_set(&[
            "CREATE TABLE t (a int);\nCREATE VIEW v AS SELECT a FROM t;\nCREATE MATERIALIZED VIEW m AS SELECT a FROM v;",
            "DROP VIEW v CASCADE;\nCREATE MATERIALIZED VIEW m AS SELECT a FROM t;\nCREATE INDEX m_a ON m (a);",
        ]);
        assert!(f[1].is_empty(), "{:?}", f[1]);
    }
}
