//! Statements that destroy data: DROP COLUMN, DROP TABLE, DROP SCHEMA, TRUNCATE.

use super::{existing_table_actions, violation, Cx, Violation};
use crate::model::{AlterAction, ObjectKind, StmtKind};
use crate::quote_ident;

pub(crate) fn drop_column(cx: &Cx, out: &mut Vec<Violation>) {
    let Some((table, actions)) = existing_table_actions(cx) else {
        return;
    };
    for a in actions {
        let AlterAction::DropColumn { column, .. } = a else {
            continue;
        };
        let c = quote_ident(column);
        out.push(violation(
            format!(
                "dropping column {c} of {} destroys its data, and every application instance still selecting or \
                 inserting {c} fails from the moment this commits (the drop itself is quick: ACCESS EXCLUSIVE, no \
                 rewrite)",
                cx.sized(table)
            ),
            format!(
                "drop it last (the guide's cleanup phase): first deploy code that no longer reads or writes {c}, then \
                 drop it in a later migration. `migsafe apply` copies the column into migsafe_backup before dropping \
                 it, so the generated rollback can restore the data.\n  ALTER TABLE {} DROP COLUMN {c};",
                table.sql()
            ),
        ));
    }
}

pub(crate) fn drop_table(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::Drop { kind: ObjectKind::Table, names, .. } = &cx.stmt.kind else {
        return;
    };
    for t in names.iter().filter(|t| cx.existing(t)) {
        out.push(violation(
            format!(
                "dropping table {} destroys all its rows, and every application instance still using it fails from \
                 the moment this commits",
                cx.sized(t)
            ),
            "first deploy code that no longer uses the table, then drop it in a later migration; `migsafe apply` \
             keeps a copy in migsafe_backup so the rollback can restore it (or rename it aside first and drop it \
             after the monitoring window)",
        ));
    }
}

pub(crate) fn drop_schema(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::Drop { kind: ObjectKind::Schema, names, cascade, .. } = &cx.stmt.kind else {
        return;
    };
    for s in names {
        out.push(violation(
            format!(
                "dropping schema {s}{} destroys every table and row in it irreversibly",
                if *cascade { " CASCADE" } else { "" }
            ),
            "drop the tables one by one in migrations you can review (each gets its own data capture), and drop \
             the empty schema last without CASCADE",
        ));
    }
}

pub(crate) fn truncate(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::Truncate { tables, .. } = &cx.stmt.kind else {
        return;
    };
    for t in tables.iter().filter(|t| cx.existing(t)) {
        out.push(violation(
            format!(
                "TRUNCATE removes every row of {} and takes an ACCESS EXCLUSIVE lock: all queries on the table wait, \
                 and the data cannot be recovered from the table afterwards",
                cx.sized(t)
            ),
            "if the rows must go, delete them in batches (migsafe backfill style) so locks stay short; if the table \
             is being retired, drop it in a cleanup migration after the code stops using it",
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn destructive_statements() {
        assert_eq!(ids(&lint("ALTER TABLE users DROP COLUMN full_name;")), vec!["drop-column"]);
        assert_eq!(ids(&lint("DROP TABLE legacy_events;")), vec!["drop-table"]);
        assert_eq!(ids(&lint("DROP SCHEMA old CASCADE;")), vec!["drop-schema"]);
        assert_eq!(ids(&lint("TRUNCATE sessions;")), vec!["truncate"]);
    }

    #[test]
    fn objects_created_in_the_migration_are_not_data() {
        assert!(lint("CREATE TABLE tmp (a int, b int); ALTER TABLE tmp DROP COLUMN b; TRUNCATE tmp; DROP TABLE tmp;")
            .is_empty());
    }
}
