//! UNIQUE and PRIMARY KEY constraints that build their index under ACCESS EXCLUSIVE.

use super::{
    default_constraint_name, existing_table_actions, inline_constraints, inline_name, split_column_recipe, violation,
    Cx, Violation,
};
use crate::model::{AlterAction, ConstraintKind};
use crate::quote_ident;

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    // `ADD COLUMN c … UNIQUE` / `PRIMARY KEY` on an existing table builds the index in place.
    for (table, col, k) in inline_constraints(cx) {
        let (what, suffix) = match k.kind {
            ConstraintKind::PrimaryKey => ("PRIMARY KEY", "pkey"),
            ConstraintKind::Unique => ("UNIQUE", "key"),
            _ => continue,
        };
        let name = inline_name(table, col, k, suffix);
        let qn = quote_ident(&name);
        let c = quote_ident(&col.name);
        out.push(violation(
            format!(
                "the {what} written inline in ADD COLUMN {} builds its unique index while holding an ACCESS EXCLUSIVE \
                 lock on {}: every query on the table, SELECT included, is blocked for the whole build",
                col.name,
                cx.sized(table)
            ),
            split_column_recipe(
                table,
                col,
                &format!(
                    "  -- next migration (after filling it):\n  CREATE UNIQUE INDEX CONCURRENTLY {qn} ON {t} ({c});\n  ALTER TABLE {t} ADD CONSTRAINT {qn} {what} USING INDEX {qn};",
                    t = table.sql()
                ),
            ),
        ));
    }
    let Some((table, actions)) = existing_table_actions(cx) else {
        return;
    };
    for a in actions {
        let AlterAction::AddConstraint(c) = a else {
            continue;
        };
        let (what, suffix) = match c.kind {
            ConstraintKind::PrimaryKey => ("PRIMARY KEY", "pkey"),
            ConstraintKind::Unique => ("UNIQUE", "key"),
            _ => continue,
        };
        if c.using_index.is_some() {
            continue;
        }
        let name = c.name.clone().unwrap_or_else(|| default_constraint_name(&table.name, &c.columns, suffix));
        let qn = quote_ident(&name);
        let cols = c.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
        let pk_note = if matches!(c.kind, ConstraintKind::PrimaryKey) {
            "\n  -- the columns must already be NOT NULL, or this step scans the table (see set-not-null)"
        } else {
            ""
        };
        out.push(violation(
            format!(
                "adding a {what} constraint builds its unique index while holding an ACCESS EXCLUSIVE lock on {}: \
                 every query on the table, SELECT included, is blocked for the whole build, which grows with the \
                 table's size",
                cx.sized(table)
            ),
            format!(
                "build the index first without blocking, in its own migration, then attach it (instant):\n  CREATE \
                 UNIQUE INDEX CONCURRENTLY {qn} ON {} ({cols});\n  -- next migration:{pk_note}\n  ALTER TABLE {} ADD \
                 CONSTRAINT {qn} {what} USING INDEX {qn};",
                table.sql(),
                table.sql()
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn unique_written_inline_in_add_column() {
        let f = lint("ALTER TABLE users ADD COLUMN handle text UNIQUE;");
        assert_eq!(ids(&f), vec!["unique-without-using-index"]);
        assert!(
            f[0].help.contains("ADD COLUMN handle text;")
                && f[0].help.contains("CREATE UNIQUE INDEX CONCURRENTLY users_handle_key ON users (handle)"),
            "{}",
            f[0].help
        );
    }

    #[test]
    fn unique_without_index() {
        let f = lint("ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email);");
        assert_eq!(ids(&f), vec!["unique-without-using-index"]);
        assert!(
            f[0].help.contains("CREATE UNIQUE INDEX CONCURRENTLY users_email_key ON users (email)"),
            "{}",
            f[0].help
        );
        assert!(f[0].help.contains("UNIQUE USING INDEX users_email_key"));
    }

    #[test]
    fn primary_key_default_name() {
        let f = lint("ALTER TABLE settings ADD PRIMARY KEY (user_id, key);");
        assert!(f[0].help.contains("settings_user_id_key_pkey"), "{}", f[0].help);
    }

    #[test]
    fn using_index_and_new_tables_are_fine() {
        assert!(lint("ALTER TABLE users ADD CONSTRAINT k UNIQUE USING INDEX k;").is_empty());
        assert!(lint("CREATE TABLE t (a int); ALTER TABLE t ADD PRIMARY KEY (a);").is_empty());
    }
}
