//! Explicit LOCK TABLE.

use super::{violation, Cx, Violation};
use crate::model::StmtKind;

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    let StmtKind::Lock { tables, mode } = &cx.stmt.kind else {
        return;
    };
    let tables: Vec<_> = tables.iter().filter(|t| cx.existing(t)).collect();
    if tables.is_empty() {
        return;
    }
    let names = tables.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
    out.push(violation(
        format!(
            "LOCK TABLE {names} IN {mode} MODE {} until the transaction ends, so everything after this statement in \
             the migration runs while the application waits",
            mode.blocks().describe()
        ),
        "drop the explicit lock: each statement takes the lock it needs, and migsafe apply sets lock_timeout and \
         retries so no lock waits in the queue for long; if you need the lock for correctness, keep the migration to \
         this one short step",
    ));
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn lock_table() {
        let f = lint("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE; COMMIT;");
        assert_eq!(ids(&f), vec!["lock-table"]);
        assert!(f[0].message.contains("SELECT included"));
        let f = lint("LOCK TABLE users IN SHARE MODE;");
        assert!(f[0].message.contains("blocks INSERT"));
    }
}
