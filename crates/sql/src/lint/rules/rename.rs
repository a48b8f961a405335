//! Renames of columns and tables that running application code still uses.

use super::{violation, Cx, Violation};
use crate::model::{ObjectKind, StmtKind};
use crate::quote_ident;

pub(crate) fn column(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::Rename { kind: ObjectKind::Column, object, column: Some(old), new_name } = &cx.stmt.kind else {
        return;
    };
    if !cx.existing(object) {
        return;
    }
    let t = object.sql();
    let (o, n) = (quote_ident(old), quote_ident(new_name));
    out.push(violation(
        format!(
            "renaming column {o} of {t} to {n} breaks every application instance still running code that uses {o}: \
             its queries fail (\"column does not exist\") from the moment this commits until all instances run new \
             code; there is no moment when old and new code both work"
        ),
        format!(
            "rename in phases (the guide's multi-phase rename):\n  ALTER TABLE {t} ADD COLUMN {n} <type> NULL;\n  \
             -- deploy code that writes both {o} and {n}\n  -- migsafe backfill --table {object} --set \"{n} = {o}\" \
             --where \"{n} IS NULL\"\n  -- deploy code that reads {n}; then, in a later migration:\n  ALTER TABLE {t} \
             DROP COLUMN {o};"
        ),
    ));
}

pub(crate) fn table(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::Rename { kind: ObjectKind::Table, object, new_name, .. } = &cx.stmt.kind else {
        return;
    };
    if !cx.existing(object) {
        return;
    }
    let n = quote_ident(new_name);
    let schema_prefix = object.schema.as_ref().map(|s| format!("{}.", quote_ident(s))).unwrap_or_default();
    out.push(violation(
        format!(
            "renaming table {object} to {n} breaks every application instance still running code that uses the old \
             name: its queries fail (\"relation does not exist\") until all instances run new code"
        ),
        format!(
            "keep the old name working while code moves over, with an updatable view in the same migration:\n  \
             ALTER TABLE {} RENAME TO {n};\n  CREATE VIEW {} AS SELECT * FROM {schema_prefix}{n};\n  -- drop the view \
             in a later migration, once no code uses the old name",
            object.sql(),
            object.sql()
        ),
    ));
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn renames() {
        let f = lint("ALTER TABLE users RENAME COLUMN full_name TO display_name;");
        assert_eq!(ids(&f), vec!["rename-column"]);
        assert!(f[0].help.contains("ADD COLUMN display_name"));
        assert_eq!(ids(&lint("ALTER TABLE users RENAME TO members;")), vec!["rename-table"]);
        assert!(
            lint("CREATE TABLE t (a int); ALTER TABLE t RENAME COLUMN a TO b; ALTER TABLE t RENAME TO u;").is_empty()
        );
    }
}
