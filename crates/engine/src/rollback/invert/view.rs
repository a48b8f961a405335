//! Views: a new one is dropped, a replaced one gets its old definition back.

use migsafe_sql::model::{ObjectKind, StmtKind};
use migsafe_sql::Statement;

use super::{Inverse, Inversion};

/// CREATE (OR REPLACE) VIEW.
pub(super) fn invert(st: &Statement, cx: &Inversion, inv: &mut Inverse) {
    let (s0, s1) = (cx.s0, cx.s1);
    let StmtKind::CreateView { view, .. } = &st.kind else { return };
    let q = cx.q(view);
    let recreated = cx.before.dropped.iter().any(|(k, x)| matches!(k, ObjectKind::View) && *x == q.to_string());
    let before = if recreated { None } else { s0.views.get(&q) };
    match (before, s1.views.get(&q)) {
        (None, Some(_)) => inv.sql.push(format!("DROP VIEW {q}")),
        (Some(old), Some(new)) if old.definition != new.definition || old.columns != new.columns => {
            let def = old.definition.trim().trim_end_matches(';');
            if old.columns.starts_with(&new.columns) {
                inv.sql.push(format!("CREATE OR REPLACE VIEW {q} AS {def}"));
            } else {
                inv.sql.push(format!("DROP VIEW {q}"));
                inv.sql.push(format!("CREATE VIEW {q} AS {def}"));
            }
        }
        _ => {}
    }
}
