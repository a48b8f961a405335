//! Types and domains: a new one is dropped; an enum value renamed is renamed back (an added
//! one cannot be removed in place: the schema diff rebuilds the type).

use migsafe_sql::model::{ObjectKind, StmtKind};
use migsafe_sql::Statement;

use super::{Inverse, Inversion};

/// CREATE TYPE, CREATE DOMAIN and ALTER TYPE … RENAME VALUE.
pub(super) fn invert(st: &Statement, cx: &Inversion, inv: &mut Inverse) {
    let (s0, s1) = (cx.s0, cx.s1);
    match &st.kind {
        StmtKind::CreateType { name, .. } | StmtKind::CreateDomain { name } => {
            let q = cx.q(name);
            let recreated = cx
                .before
                .dropped
                .iter()
                .any(|(k, x)| matches!(k, ObjectKind::Type | ObjectKind::Domain) && *x == q.to_string());
            let before = if recreated { None } else { s0.types.get(&q) };
            if let (None, Some(t)) = (before, s1.types.get(&q)) {
                let kw = if matches!(t, migsafe_catalog::model::TypeDef::Domain { .. }) { "DOMAIN" } else { "TYPE" };
                inv.sql.push(format!("DROP {kw} {q}"));
            }
        }
        StmtKind::AlterEnum { name, rename_value: Some((old, new)), .. } => {
            inv.sql.push(format!(
                "ALTER TYPE {} RENAME VALUE {} TO {}",
                cx.q(name),
                migsafe_sql::quote_literal(new),
                migsafe_sql::quote_literal(old)
            ));
        }
        _ => {}
    }
}
