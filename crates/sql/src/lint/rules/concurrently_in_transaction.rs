//! Statements PostgreSQL refuses inside a transaction block, placed inside one.

use super::{violation, Cx, Violation};

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    if !cx.stmt.forbids_transaction() || !cx.tx.in_transaction() {
        return;
    }
    out.push(violation(
        format!(
            "{} cannot run inside a transaction block: PostgreSQL rejects it (\"cannot run inside a transaction \
             block\") and the migration fails at this statement",
            cx.stmt.tag
        ),
        "remove the BEGIN/COMMIT around it: migsafe runs a file containing such a statement statement by \
         statement. Keep it in a migration of its own so a failure leaves nothing half-applied.",
    ));
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn concurrently_inside_explicit_transaction() {
        let f = lint("BEGIN;\nCREATE INDEX CONCURRENTLY i ON messages (a);\nCOMMIT;");
        assert!(ids(&f).contains(&"concurrently-in-transaction"));
        let f = lint("BEGIN;\nVACUUM messages;\nCOMMIT;");
        assert!(ids(&f).contains(&"concurrently-in-transaction"));
    }

    #[test]
    fn concurrently_alone_runs_outside_a_transaction() {
        assert!(!flags("CREATE INDEX CONCURRENTLY i ON messages (a);", "concurrently-in-transaction"));
        assert!(!flags("-- migsafe:no-transaction\nDROP INDEX CONCURRENTLY i;", "concurrently-in-transaction"));
    }
}
