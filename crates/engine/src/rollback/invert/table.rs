//! Tables: a created one is dropped; ALTER TABLE is undone action by action, last first
//! (dropped columns first, in the order S0 had them), through the column and constraint
//! modules.

use migsafe_catalog::model::Table;
use migsafe_catalog::QName;
use migsafe_sql::model::{AlterAction, ObjectKind, StmtKind, TriggerTarget};
use migsafe_sql::{quote_ident as qi, Statement};

use super::{column, constraint, Inverse, Inversion};

/// One ALTER TABLE being undone: the table (as the statement names it) and the table as S0
/// and S1 have it (S0's under the name it had there).
pub(super) struct AlterCx<'a> {
    /// The inversion's context.
    pub cx: &'a Inversion<'a>,
    /// The table, as the statement names it.
    pub t: &'a QName,
    /// The table in S0, under its S0 name.
    pub before: Option<&'a Table>,
    /// The table in S1.
    pub after: Option<&'a Table>,
}

impl AlterCx<'_> {
    /// A column of the table as S0 had it (traced back through earlier renames).
    pub fn col0(&self, c: &str) -> Option<&migsafe_catalog::model::Column> {
        self.before.and_then(|x| self.cx.original_column(self.t, c).and_then(|n| x.column(&n)))
    }

    /// `ALTER TABLE t ALTER COLUMN c`.
    pub fn at(&self, c: &str) -> String {
        format!("ALTER TABLE {} ALTER COLUMN {}", self.t, qi(c))
    }
}

/// CREATE TABLE, CREATE TABLE AS / MATERIALIZED VIEW, and ALTER TABLE (action by action).
pub(super) fn invert(st: &Statement, cx: &Inversion, inv: &mut Inverse) {
    let (s0, s1) = (cx.s0, cx.s1);
    match &st.kind {
        StmtKind::CreateTable { table, .. } => {
            let q = cx.q(table);
            let recreated = cx.before.dropped.iter().any(|(k, x)| *k == ObjectKind::Table && *x == q.to_string());
            if (recreated || !s0.tables.contains_key(&q)) && s1.tables.contains_key(&q) {
                inv.sql.push(format!("DROP TABLE {q}"));
            }
        }
        StmtKind::CreateTableAs { table, materialized, .. } => {
            let q = cx.q(table);
            // Dropped earlier in the migration and built again: the new one goes (the DROP's
            // inverse brings the old one back).
            let recreated = |kind: ObjectKind| cx.before.dropped.iter().any(|(k, x)| *k == kind && *x == q.to_string());
            if *materialized
                && s1.views.contains_key(&q)
                && (recreated(ObjectKind::MatView) || !s0.views.contains_key(&q))
            {
                inv.sql.push(format!("DROP MATERIALIZED VIEW {q}"));
            } else if !*materialized
                && s1.tables.contains_key(&q)
                && (recreated(ObjectKind::Table) || !s0.tables.contains_key(&q))
            {
                inv.sql.push(format!("DROP TABLE {q}"));
            }
        }
        StmtKind::AlterTable { table, actions, .. } => {
            let t = cx.q(table);
            if cx.before.names.created(&t) {
                return;
            }
            // Dropped columns come back first, in the order the table had them (undoing the
            // actions last-first would add them reversed), unless the statement adds a column
            // of the same name again.
            let added: Vec<&str> = actions
                .iter()
                .filter_map(|a| match a {
                    AlterAction::AddColumn { column, .. } => Some(column.name.as_str()),
                    _ => None,
                })
                .collect();
            let hoisted = |a: &AlterAction| matches!(a, AlterAction::DropColumn { column, .. } if !added.contains(&column.as_str()));
            let position = |a: &&AlterAction| match a {
                AlterAction::DropColumn { column, .. } => cx
                    .s0
                    .tables
                    .get(&t)
                    .and_then(|x| x.columns.iter().position(|c| c.name == *column))
                    .unwrap_or(usize::MAX),
                _ => usize::MAX,
            };
            let mut drops: Vec<&AlterAction> = actions.iter().filter(|a| hoisted(a)).collect();
            drops.sort_by_key(position);
            if drops.len() == actions.len() {
                inv.readds = drops.first().map(|a| (cx.original(&t), position(a)));
            }
            for a in drops {
                alter_action(cx, &t, a, actions, inv);
            }
            for a in actions.iter().rev().filter(|a| !hoisted(a)) {
                alter_action(cx, &t, a, actions, inv);
            }
        }
        _ => {}
    }
}

/// One action of an ALTER TABLE (`actions` are the statement's: a DROP CONSTRAINT among them
/// runs before its ADDs).
fn alter_action(cx: &Inversion, t: &QName, a: &AlterAction, actions: &[AlterAction], inv: &mut Inverse) {
    let tc = AlterCx { cx, t, before: cx.s0.tables.get(&cx.original(t)), after: cx.s1.tables.get(t) };
    column::invert(&tc, a, actions, inv);
    constraint::invert(&tc, a, actions, inv);
    table_action(&tc, a, inv);
}

/// The table-level actions of ALTER TABLE: persistence, triggers, partitions; the column and constraint actions are in their own modules.
fn table_action(tc: &AlterCx, a: &AlterAction, inv: &mut Inverse) {
    let (cx, t) = (tc.cx, tc.t);
    let s0 = cx.s0;
    match a {
        AlterAction::SetPersistence { logged } => {
            inv.sql.push(format!("ALTER TABLE {t} SET {}", if *logged { "UNLOGGED" } else { "LOGGED" }));
        }
        AlterAction::Trigger { enable, target } => {
            let what = match target {
                TriggerTarget::All => "ALL".to_string(),
                TriggerTarget::User => "USER".to_string(),
                TriggerTarget::Named(n) => qi(n),
            };
            inv.sql.push(format!("ALTER TABLE {t} {} TRIGGER {what}", if *enable { "DISABLE" } else { "ENABLE" }));
        }
        AlterAction::AttachPartition { partition } => {
            let p = cx.q(partition);
            inv.sql.push(format!("ALTER TABLE {t} DETACH PARTITION {p}"));
        }
        AlterAction::DetachPartition { partition, .. } => {
            let p = cx.q(partition);
            if let Some((_, bound)) = s0.tables.get(&p).and_then(|x| x.partition_of.clone()) {
                inv.sql.push(format!("ALTER TABLE {t} ATTACH PARTITION {p} {bound}"));
            }
        }
        _ => {}
    }
}
