//! Schemas, sequences, extensions and policies the migration created: dropped.

use migsafe_sql::model::StmtKind;
use migsafe_sql::{quote_ident as qi, Statement};

use super::{Inverse, Inversion};

/// CREATE SCHEMA, SEQUENCE, EXTENSION and POLICY.
pub(super) fn invert(st: &Statement, cx: &Inversion, inv: &mut Inverse) {
    let (s0, s1) = (cx.s0, cx.s1);
    match &st.kind {
        StmtKind::CreateSchema { name, .. } if !s0.schemas.contains_key(name) && s1.schemas.contains_key(name) => {
            inv.sql.push(format!("DROP SCHEMA {}", qi(name)))
        }
        StmtKind::CreateSequence { name, .. } => {
            let q = cx.q(name);
            // Owned (OWNED BY, later) by a column the migration created: it goes with that
            // column's table or the column itself, whose inverse runs first.
            let goes_with_owner = s1
                .sequences
                .get(&q)
                .and_then(|x| x.owned_by.as_ref())
                .is_some_and(|(t, c)| s0.tables.get(t).is_none_or(|x| x.column(c).is_none()));
            if !s0.sequences.contains_key(&q) && s1.sequences.contains_key(&q) && !goes_with_owner {
                inv.sql.push(format!("DROP SEQUENCE {q}"));
            }
        }
        StmtKind::CreateExtension { name, .. }
            if !s0.extensions.contains_key(name) && s1.extensions.contains_key(name) =>
        {
            inv.sql.push(format!("DROP EXTENSION {}", qi(name)))
        }
        StmtKind::CreatePolicy { name, table } => {
            let t = cx.q(table);
            if s0.tables.get(&t).is_some_and(|x| !x.policies.contains_key(name)) {
                inv.sql.push(format!("DROP POLICY {} ON {t}", qi(name)));
            }
        }
        _ => {}
    }
}
