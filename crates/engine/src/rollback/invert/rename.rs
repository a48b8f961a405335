//! Renames and schema moves, undone by the rename or move back.

use migsafe_catalog::QName;
use migsafe_sql::model::{ObjectKind, StmtKind};
use migsafe_sql::{quote_ident as qi, Statement};

use super::{Inverse, Inversion};

/// RENAME and SET SCHEMA.
pub(super) fn invert(st: &Statement, cx: &Inversion, inv: &mut Inverse) {
    match &st.kind {
        StmtKind::Rename { kind, object, column, new_name } => {
            rename(cx, *kind, object, column.as_deref(), new_name, inv)
        }
        StmtKind::AlterSchema { kind, object, new_schema } => {
            let old = cx.q(object);
            let moved = QName::new(new_schema, &old.name);
            let kw = match kind {
                ObjectKind::Table => "TABLE",
                ObjectKind::View => "VIEW",
                ObjectKind::MatView => "MATERIALIZED VIEW",
                ObjectKind::Sequence => "SEQUENCE",
                ObjectKind::Type => "TYPE",
                ObjectKind::Domain => "DOMAIN",
                _ => return,
            };
            inv.sql.push(format!("ALTER {kw} {moved} SET SCHEMA {}", qi(&old.schema)));
        }
        _ => {}
    }
}

fn rename(
    cx: &Inversion,
    kind: ObjectKind,
    object: &migsafe_sql::QualName,
    column: Option<&str>,
    new_name: &str,
    inv: &mut Inverse,
) {
    let old = cx.q(object);
    match (kind, column) {
        (ObjectKind::Column, Some(c)) => {
            inv.sql.push(format!("ALTER TABLE {old} RENAME COLUMN {} TO {}", qi(new_name), qi(c)));
        }
        (ObjectKind::Constraint, Some(c)) => {
            inv.sql.push(format!("ALTER TABLE {old} RENAME CONSTRAINT {} TO {}", qi(new_name), qi(c)));
        }
        (ObjectKind::Trigger, Some(c)) => {
            inv.sql.push(format!("ALTER TRIGGER {} ON {old} RENAME TO {}", qi(new_name), qi(c)));
        }
        (ObjectKind::Policy, Some(c)) => {
            inv.sql.push(format!("ALTER POLICY {} ON {old} RENAME TO {}", qi(new_name), qi(c)));
        }
        (ObjectKind::Schema, _) => {
            inv.sql.push(format!("ALTER SCHEMA {} RENAME TO {}", qi(new_name), qi(&object.name)))
        }
        (k, _) => {
            let kw = match k {
                ObjectKind::Table => "TABLE",
                ObjectKind::View => "VIEW",
                ObjectKind::MatView => "MATERIALIZED VIEW",
                ObjectKind::Index => "INDEX",
                ObjectKind::Sequence => "SEQUENCE",
                ObjectKind::Type => "TYPE",
                ObjectKind::Domain => "DOMAIN",
                _ => return,
            };
            let renamed = QName::new(&old.schema, new_name);
            inv.sql.push(format!("ALTER {kw} {renamed} RENAME TO {}", qi(&old.name)));
        }
    }
}
