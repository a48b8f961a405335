//! ALTER DOMAIN … ADD CHECK without NOT VALID.

use super::{violation, Cx, Violation};
use crate::model::StmtKind;

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::AlterDomain { name, adds_constraint: true, not_valid: false } = &cx.stmt.kind else {
        return;
    };
    // A domain the migrations made, used by no column they made, has nothing to check.
    use crate::lock::LockCatalog;
    if cx.schema.knows_domain(name) && cx.schema.domain_tables(name).iter().all(|t| cx.schema.is_new(t)) {
        return;
    }
    out.push(violation(
        format!(
            "adding a constraint to domain {name} checks every value of every column of that type in every table, \
             while holding locks that block writes to those tables"
        ),
        "add it NOT VALID, then VALIDATE CONSTRAINT in a later migration:\n  ALTER DOMAIN … ADD CONSTRAINT … CHECK (…) NOT VALID;",
    ));
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn domain_check() {
        assert_eq!(
            ids(&lint("ALTER DOMAIN email ADD CONSTRAINT e CHECK (VALUE LIKE '%@%');")),
            vec!["domain-check-without-not-valid"]
        );
        assert!(lint("ALTER DOMAIN email ADD CONSTRAINT e CHECK (VALUE LIKE '%@%') NOT VALID;").is_empty());
    }

    #[test]
    fn a_domain_no_existing_column_uses_has_nothing_to_check() {
        let add = "ALTER DOMAIN email ADD CONSTRAINT e CHECK (VALUE LIKE '%@%');";
        let f = lint_set(&["CREATE DOMAIN email AS text;", add]);
        assert!(f[1].is_empty(), "{:?}", f[1]);
        let f = lint_set(&["CREATE DOMAIN email AS text;\nCREATE TABLE u (e email);", add]);
        assert_eq!(ids(&f[1]), vec!["domain-check-without-not-valid"]);
    }
}
