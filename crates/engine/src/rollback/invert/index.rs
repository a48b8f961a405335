//! Indexes: a created one is dropped (the name PostgreSQL chose when unnamed), a dropped one
//! is created again from its definition in S0, CONCURRENTLY when it went that way.

use migsafe_catalog::QName;
use migsafe_sql::model::{ObjectKind, StmtKind};
use migsafe_sql::Statement;

use super::{Inverse, Inversion};

/// CREATE INDEX and DROP INDEX.
pub(super) fn invert(st: &Statement, cx: &Inversion, inv: &mut Inverse) {
    let (s0, s1) = (cx.s0, cx.s1);
    match &st.kind {
        StmtKind::CreateIndex { name, table, concurrently, .. } => {
            let t = cx.q(table);
            let unnamed = name.is_none();
            let names: Vec<String> = match name {
                Some(n) => vec![n.clone()],
                None => {
                    // The name PostgreSQL chose: a plain (not constraint-backing) index new on
                    // the table (IF EXISTS below, as several unnamed ones may be new).
                    let before =
                        s0.tables.get(&t).map(|x| x.indexes.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
                    s1.tables
                        .get(&t)
                        .map(|x| {
                            x.indexes
                                .iter()
                                .filter(|(k, i)| !before.contains(k) && !i.constraint)
                                .map(|(k, _)| k.clone())
                                .collect()
                        })
                        .unwrap_or_default()
                }
            };
            let if_exists = if unnamed { "IF EXISTS " } else { "" };
            for n in names {
                let qn = QName::new(&t.schema, &n);
                let recreated = cx.before.dropped.iter().any(|(k, x)| *k == ObjectKind::Index && *x == qn.to_string());
                let existed = !recreated
                    && (s0.tables.get(&t).is_some_and(|x| x.indexes.contains_key(&n))
                        || s0.views.get(&t).is_some_and(|x| x.indexes.contains_key(&n)));
                if existed {
                    continue;
                }
                if *concurrently {
                    inv.concurrent.push(format!("DROP INDEX CONCURRENTLY IF EXISTS {qn}"));
                } else {
                    inv.sql.push(format!("DROP INDEX {if_exists}{qn}"));
                }
            }
        }
        StmtKind::Drop { kind: ObjectKind::Index, names, concurrently, .. } => {
            for n in names {
                let q = cx.q(n);
                let def = s0
                    .tables
                    .iter()
                    .filter(|(t, _)| t.schema == q.schema)
                    .find_map(|(_, t)| t.indexes.get(&q.name))
                    .or_else(|| {
                        s0.views.iter().filter(|(v, _)| v.schema == q.schema).find_map(|(_, v)| v.indexes.get(&q.name))
                    });
                if let Some(i) = def {
                    if i.constraint {
                        continue;
                    }
                    if *concurrently {
                        inv.concurrent.push(i.definition.replacen("INDEX ", "INDEX CONCURRENTLY ", 1));
                    } else {
                        inv.sql.push(i.definition.clone());
                    }
                }
            }
        }
        _ => {}
    }
}
