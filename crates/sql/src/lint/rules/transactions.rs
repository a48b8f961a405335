//! Explicit transaction control that does not do what it looks like.

use super::{violation, Cx, Violation};

pub(crate) fn nested(cx: &Cx, out: &mut Vec<Violation>) {
    if !cx.tx.nested_begin {
        return;
    }
    out.push(violation(
        "BEGIN while a transaction is already open is ignored (PostgreSQL only warns \"there is already a \
         transaction in progress\"); the next COMMIT then ends the outer transaction, so the statements after it \
         are no longer atomic with the ones before",
        "remove the inner BEGIN/COMMIT pair (use SAVEPOINT if you need a partial rollback point)",
    ));
}

pub(crate) fn unmatched(cx: &Cx, out: &mut Vec<Violation>) {
    if !cx.tx.unmatched_end {
        return;
    }
    out.push(violation(
        format!(
            "{} with no transaction open does nothing (PostgreSQL warns \"there is no transaction in progress\"): \
             the statements before it already committed one by one, not as one unit",
            cx.stmt.tag
        ),
        "add the matching BEGIN at the start, or remove both and let migsafe run the file in one transaction",
    ));
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn nested_and_unterminated() {
        assert!(flags("BEGIN; BEGIN; SELECT 1; COMMIT; COMMIT;", "nested-transaction"));
        let f = lint("BEGIN;\nCREATE TABLE t (a int);\n");
        assert_eq!(ids(&f), vec!["unterminated-transaction"]);
        assert_eq!(f[0].line, 1);
        assert!(flags("CREATE TABLE t (a int);\nCOMMIT;", "unmatched-commit"));
    }

    #[test]
    fn balanced_transactions_are_fine() {
        assert!(lint("BEGIN; CREATE TABLE t (a int); COMMIT; BEGIN; CREATE TABLE u (a int); COMMIT;").is_empty());
        assert!(lint("CREATE TABLE t (a int);").is_empty());
    }
}
