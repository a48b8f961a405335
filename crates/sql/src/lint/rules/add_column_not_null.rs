//! ADD COLUMN … NOT NULL with nothing to fill existing rows.

use super::{existing_table_actions, violation, Cx, Violation};
use crate::model::{AlterAction, ConstraintKind};
use crate::quote_ident;

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    let Some((table, actions)) = existing_table_actions(cx) else {
        return;
    };
    for a in actions {
        let AlterAction::AddColumn { column: c, .. } = a else {
            continue;
        };
        let filled = c.default.as_ref().is_some_and(|d| !d.is_null)
            || c.identity
            || c.generated.is_some()
            || c.type_name.is_serial();
        if !c.not_null || filled {
            continue;
        }
        let pk = c.constraints.iter().any(|k| matches!(k.kind, ConstraintKind::PrimaryKey));
        let t = table.sql();
        let n = quote_ident(&c.name);
        let ty = c.type_name.sql();
        out.push(violation(
            format!(
                "adding {} column {} without a default fails on any table that has rows (\"column {} contains null \
                 values\"): {} is an existing table",
                if pk { "PRIMARY KEY" } else { "NOT NULL" },
                n,
                c.name,
                cx.sized(table)
            ),
            format!(
                "either give it a constant default (instant since PostgreSQL 11, no rewrite):\n  ALTER TABLE {t} ADD \
                 COLUMN {n} {ty} NOT NULL DEFAULT <value>;\nor add it nullable, backfill in batches (migsafe \
                 backfill), then make it NOT NULL with a validated CHECK:\n  ALTER TABLE {t} ADD COLUMN {n} {ty};"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn not_null_without_default() {
        let f = lint("ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL;");
        assert_eq!(ids(&f), vec!["add-column-not-null-without-default"]);
    }

    #[test]
    fn with_default_or_nullable_is_fine() {
        assert!(lint("ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true;").is_empty());
        assert!(lint("ALTER TABLE users ADD COLUMN bio text;").is_empty());
        assert!(lint("CREATE TABLE t (a int); ALTER TABLE t ADD COLUMN b int NOT NULL;").is_empty());
    }

    #[test]
    fn null_default_does_not_count() {
        assert!(flags(
            "ALTER TABLE users ADD COLUMN a int NOT NULL DEFAULT NULL;",
            "add-column-not-null-without-default"
        ));
    }
}
