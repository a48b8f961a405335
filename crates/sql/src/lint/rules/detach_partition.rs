//! DETACH PARTITION without CONCURRENTLY (PostgreSQL 14+ has the online form).

use super::{table_actions, violation, Cx, Violation};
use crate::model::AlterAction;

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    let Some((table, actions)) = table_actions(cx) else {
        return;
    };
    if !cx.existing(table) || cx.opts.pg_version < 14 {
        return;
    }
    for a in actions {
        let AlterAction::DetachPartition { partition, concurrently: false } = a else {
            continue;
        };
        out.push(violation(
            format!(
                "DETACH PARTITION takes an ACCESS EXCLUSIVE lock on the partitioned table {table}: every query on any \
                 of its partitions waits behind it"
            ),
            format!(
                "detach without blocking (PostgreSQL 14+), outside a transaction:\n  ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY;",
                table.sql(),
                partition.sql()
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn detach() {
        assert_eq!(
            ids(&lint("ALTER TABLE events DETACH PARTITION events_2023;")),
            vec!["detach-partition-not-concurrent"]
        );
        assert!(!flags(
            "ALTER TABLE events DETACH PARTITION events_2023 CONCURRENTLY;",
            "detach-partition-not-concurrent"
        ));
    }
}
