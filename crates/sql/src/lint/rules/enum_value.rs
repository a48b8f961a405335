//! ALTER TYPE … ADD VALUE in a transaction block: an error before PostgreSQL 12.

use super::{violation, Cx, Violation};
use crate::model::StmtKind;

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::AlterEnum { name, add_value: Some(v), .. } = &cx.stmt.kind else {
        return;
    };
    if cx.opts.pg_version >= 12 || !cx.tx.in_transaction() {
        return;
    }
    out.push(violation(
        format!("ALTER TYPE {name} ADD VALUE '{v}' cannot run inside a transaction block before PostgreSQL 12: the migration fails here"),
        "put it in a migration of its own marked `-- migsafe:no-transaction`",
    ));
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;
    use crate::lint::LintOptions;

    #[test]
    fn enum_add_value_before_12() {
        let sql = "ALTER TYPE mood ADD VALUE 'meh';";
        assert!(lint(sql).is_empty());
        let f = lint_with(sql, LintOptions { pg_version: 11, ..Default::default() });
        assert_eq!(ids(&f), vec!["enum-value-in-transaction"]);
    }
}
