//! ALTER DOMAIN … ADD CHECK without NOT VALID.

use super::{violation, Cx, Violation};
use crate::model::StmtKind;

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::AlterDomain { name, adds_constraint: true, not_valid: false } = &cx.stmt.kind else {
        return;
    };
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
}
