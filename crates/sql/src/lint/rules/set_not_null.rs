//! SET NOT NULL on an existing column, unless a validated CHECK (col IS NOT NULL) already
//! proves it (PostgreSQL 12+ then skips the scan) or the column is NOT NULL already.

use super::{default_constraint_name, existing_table_actions, violation, Cx, Violation};
use crate::model::{AlterAction, ConstraintKind};
use crate::quote_ident;

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    let Some((table, actions)) = existing_table_actions(cx) else {
        return;
    };
    // SET NOT NULL, and PostgreSQL 18's `ADD CONSTRAINT name NOT NULL col` (without NOT VALID),
    // check every row the same way.
    let columns = actions.iter().flat_map(|a| match a {
        AlterAction::SetNotNull { column } => vec![(column, "SET NOT NULL")],
        AlterAction::AddConstraint(c) if c.kind == ConstraintKind::NotNull && !c.not_valid => {
            c.columns.iter().map(|col| (col, "ADD CONSTRAINT … NOT NULL")).collect()
        }
        _ => vec![],
    });
    for (column, what) in columns {
        if cx.opts.pg_version >= 12 && cx.schema.has_validated_not_null_check(table, column) {
            continue;
        }
        // Already NOT NULL: PostgreSQL has nothing to check.
        if cx.schema.table(table).and_then(|t| t.column(column)).is_some_and(|c| c.not_null) {
            continue;
        }
        let t = table.sql();
        let c = quote_ident(column);
        let name = default_constraint_name(&table.name, std::slice::from_ref(column), "not_null");
        let qn = quote_ident(&name);
        let help = if cx.opts.pg_version >= 18 {
            format!(
                "PostgreSQL 18: add the NOT NULL constraint without checking, then validate it in a later \
                 migration (SHARE UPDATE EXCLUSIVE only):\n  ALTER TABLE {t} ADD CONSTRAINT {qn} NOT NULL {c} NOT VALID;\n  \
                 -- next migration:\n  ALTER TABLE {t} VALIDATE CONSTRAINT {qn};"
            )
        } else if cx.opts.pg_version >= 12 {
            format!(
                "prove it with a CHECK first; once that is validated, SET NOT NULL skips the scan:\n  \
                 ALTER TABLE {t} ADD CONSTRAINT {qn} CHECK ({c} IS NOT NULL) NOT VALID;\n  -- next migration \
                 (SHARE UPDATE EXCLUSIVE: reads and writes continue):\n  ALTER TABLE {t} VALIDATE CONSTRAINT {qn};\n  \
                 -- next migration (instant):\n  ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL;\n  ALTER TABLE {t} DROP CONSTRAINT {qn};"
            )
        } else {
            format!(
                "before PostgreSQL 12 there is no online way: keep a validated CHECK ({c} IS NOT NULL) constraint \
                 instead of NOT NULL:\n  ALTER TABLE {t} ADD CONSTRAINT {qn} CHECK ({c} IS NOT NULL) NOT VALID;\n  \
                 ALTER TABLE {t} VALIDATE CONSTRAINT {qn};"
            )
        };
        out.push(violation(
            format!(
                "{what} on {}.{} scans every row to check for NULLs while holding an ACCESS EXCLUSIVE lock: \
                 every query on the table, SELECT included, waits for the scan, which grows with the table's size \
                 (and the statement fails if any row is NULL)",
                cx.sized(table),
                c
            ),
            help,
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;
    use crate::lint::LintOptions;

    #[test]
    fn flags_set_not_null_on_existing_table() {
        let f = lint("ALTER TABLE users ALTER COLUMN email_verified SET NOT NULL;");
        assert_eq!(ids(&f), vec!["set-not-null"]);
        assert!(f[0].help.contains("CHECK (email_verified IS NOT NULL) NOT VALID"), "{}", f[0].help);
    }

    #[test]
    fn safe_after_validated_check_from_earlier_migration() {
        let f = lint_set(&[
            "ALTER TABLE users ADD CONSTRAINT users_ev_nn CHECK (email_verified IS NOT NULL) NOT VALID;",
            "ALTER TABLE users VALIDATE CONSTRAINT users_ev_nn;",
            "ALTER TABLE users ALTER COLUMN email_verified SET NOT NULL;",
        ]);
        assert!(f.iter().all(|x| x.is_empty()), "{f:?}");
    }

    #[test]
    fn safe_when_table_created_in_set_with_validated_check() {
        let f = lint_set(&[
            "CREATE TABLE t (a int, CONSTRAINT a_nn CHECK (a IS NOT NULL));",
            "ALTER TABLE t ALTER COLUMN a SET NOT NULL;",
        ]);
        assert!(f[1].is_empty(), "{:?}", f[1]);
    }

    #[test]
    fn unvalidated_check_does_not_count() {
        let f = lint_set(&[
            "ALTER TABLE users ADD CONSTRAINT c CHECK (email IS NOT NULL) NOT VALID;",
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
        ]);
        assert_eq!(ids(&f[1]), vec!["set-not-null"]);
    }

    #[test]
    fn version_specific_help() {
        let f = lint_with(
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
            LintOptions { pg_version: 18, ..Default::default() },
        );
        assert!(f[0].help.contains("NOT NULL email NOT VALID"), "{}", f[0].help);
        let f = lint_with(
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
            LintOptions { pg_version: 11, ..Default::default() },
        );
        assert!(f[0].help.contains("before PostgreSQL 12"));
    }

    #[test]
    fn new_table_is_fine() {
        assert!(lint("CREATE TABLE t (a int); ALTER TABLE t ALTER COLUMN a SET NOT NULL;").is_empty());
    }

    #[test]
    fn pg18_not_null_constraint_without_not_valid_scans() {
        let f = lint("ALTER TABLE users ADD CONSTRAINT users_email_nn NOT NULL email;");
        assert_eq!(ids(&f), vec!["set-not-null"]);
        assert!(f[0].message.starts_with("ADD CONSTRAINT … NOT NULL on users.email"), "{}", f[0].message);
        assert!(lint("ALTER TABLE users ADD CONSTRAINT users_email_nn NOT NULL email NOT VALID;").is_empty());
    }

    #[test]
    fn pg18_validated_not_null_constraint_proves_set_not_null() {
        let f = lint_set(&[
            "ALTER TABLE users ADD CONSTRAINT users_name_nn NOT NULL name NOT VALID;",
            "ALTER TABLE users VALIDATE CONSTRAINT users_name_nn;",
            "ALTER TABLE users ALTER COLUMN name SET NOT NULL;",
        ]);
        assert!(f.iter().all(|x| x.is_empty()), "{f:?}");
        // Not validated yet: SET NOT NULL still scans.
        let f = lint_set(&[
            "ALTER TABLE users ADD CONSTRAINT users_name_nn NOT NULL name NOT VALID;",
            "ALTER TABLE users ALTER COLUMN name SET NOT NULL;",
        ]);
        assert_eq!(ids(&f[1]), vec!["set-not-null"]);
    }

    #[test]
    fn not_enforced_check_proves_nothing() {
        let f = lint_set(&[
            "ALTER TABLE users ADD CONSTRAINT c CHECK (email IS NOT NULL) NOT ENFORCED;",
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL;",
        ]);
        assert_eq!(ids(&f[1]), vec!["set-not-null"]);
    }

    #[test]
    fn a_column_already_not_null_has_nothing_to_check() {
        let f = lint_set(&["CREATE TABLE t (a int NOT NULL, b int);", "ALTER TABLE t ALTER COLUMN a SET NOT NULL;"]);
        assert!(f[1].is_empty(), "{:?}", f[1]);
        let f = lint_set(&["CREATE TABLE t (a int NOT NULL, b int);", "ALTER TABLE t ALTER COLUMN b SET NOT NULL;"]);
        assert_eq!(ids(&f[1]), vec!["set-not-null"]);
    }
}
