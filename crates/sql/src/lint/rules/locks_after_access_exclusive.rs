//! Statements that take further locks while the transaction already holds ACCESS EXCLUSIVE
//! on an existing table: that table stays blocked while they wait and run.

use super::{violation, Cx, Violation};
use crate::lock::statement_locks;

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    // Once per transaction: the first statement that does it.
    if cx.tx.other_locks_after_access_exclusive > 0 {
        return;
    }
    let Some((held, shown, at)) = &cx.tx.access_exclusive else {
        return;
    };
    if cx.stmt.is_control() {
        return;
    }
    let others: Vec<_> = statement_locks(&cx.stmt.kind, cx.schema)
        .into_iter()
        .filter(|(t, _)| cx.existing(t) && &cx.schema.resolve(t) != held)
        .collect();
    let Some((other, mode)) = others.first() else {
        return;
    };
    let line = cx.source[..cx.statements[*at].span.start].matches('\n').count() + 1;
    out.push(violation(
        format!(
            "this statement takes {} {mode} lock on {other} while the transaction still holds the ACCESS EXCLUSIVE \
             lock on {shown} taken at line {line}: every query on {shown} stays blocked while this (and any later) \
             statement waits for its lock and runs, and two such migrations can deadlock",
            crate::lock::article(*mode)
        ),
        format!(
            "split the migration so the ACCESS EXCLUSIVE step on {shown} commits on its own (one table per \
             migration), or do the work on {other} first"
        ),
    ));
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn locks_taken_while_access_exclusive_held() {
        let f = lint("ALTER TABLE users DROP COLUMN legacy;\nALTER TABLE messages ADD COLUMN x int;");
        assert!(ids(&f).contains(&"locks-after-access-exclusive"), "{f:?}");
        let hit = f.iter().find(|f| f.rule == "locks-after-access-exclusive").unwrap();
        assert_eq!(hit.line, 2);
        assert!(hit.message.contains("line 1"));
    }

    #[test]
    fn same_table_or_separate_transactions_are_fine() {
        assert!(!flags(
            "ALTER TABLE users ADD COLUMN a int;\nALTER TABLE users ADD COLUMN b int;",
            "locks-after-access-exclusive"
        ));
        assert!(!flags(
            "BEGIN; ALTER TABLE users ADD COLUMN a int; COMMIT;\nBEGIN; ALTER TABLE messages ADD COLUMN b int; COMMIT;",
            "locks-after-access-exclusive"
        ));
        assert!(!flags(
            "CREATE TABLE t (a int); ALTER TABLE t ADD COLUMN b int; ALTER TABLE messages ADD COLUMN c int;",
            "locks-after-access-exclusive"
        ));
    }
}
