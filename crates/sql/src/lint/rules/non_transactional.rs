//! Migrations run statement by statement that can be left half-applied.

use super::{violation, Cx, Violation};
use crate::lint::TxMode;

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    let TxMode::Autocommit { reason } = cx.tx_mode else {
        return;
    };
    let work: Vec<_> = cx.statements.iter().filter(|s| !s.is_control()).collect();
    if work.len() < 2 || work[0].index != cx.stmt.index {
        return;
    }
    out.push(violation(
        format!(
            "this migration's {} statements run one by one, outside a transaction ({reason}): if a later one \
             fails, the ones before it stay applied and the database is left half-migrated",
            work.len()
        ),
        "put each CONCURRENTLY (or other non-transactional) statement in a migration of its own and keep the rest \
         in ordinary transactional migrations; if one is ever left half-applied, `migsafe diagnose` shows what ran",
    ));
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn mixed_non_transactional_file() {
        let f = lint("CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY i ON messages (a);");
        assert!(ids(&f).contains(&"non-transactional-migration"));
        assert_eq!(f.iter().filter(|f| f.rule == "non-transactional-migration").count(), 1);
    }

    #[test]
    fn single_concurrent_statement_is_fine() {
        assert!(lint("-- migsafe:no-transaction\nCREATE INDEX CONCURRENTLY i ON messages (a);").is_empty());
        assert!(lint("SET lock_timeout = '1s';\nCREATE INDEX CONCURRENTLY i ON messages (a);").is_empty());
    }
}
