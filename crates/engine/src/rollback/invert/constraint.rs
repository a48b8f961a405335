//! Constraint actions of ALTER TABLE: an added constraint is dropped (the name PostgreSQL
//! chose when unnamed), a dropped one added back, a validated one made NOT VALID again.

use migsafe_catalog::model::ConstraintType;
use migsafe_sql::model::{AlterAction, ConstraintKind, ObjectKind};
use migsafe_sql::quote_ident as qi;

use super::table::AlterCx;
use super::Inverse;

/// Constraint actions: ADD, VALIDATE and DROP CONSTRAINT.
pub(super) fn invert(tc: &AlterCx, a: &AlterAction, actions: &[AlterAction], inv: &mut Inverse) {
    let (cx, t) = (tc.cx, tc.t);
    let before = tc.before;
    let after = tc.after;
    match a {
        AlterAction::AddConstraint(c) => {
            // One S0 had that the migration dropped first (DROP CONSTRAINT IF EXISTS c; ADD
            // CONSTRAINT c …, or an unnamed ADD that PostgreSQL gives the freed name) is new:
            // it goes, and the DROP's inverse brings the old one back.
            let dropped = |n: &str| {
                cx.before.dropped.iter().any(|(k, x)| *k == ObjectKind::Constraint && *x == format!("{t}.{}", qi(n)))
                    || actions.iter().any(|a| matches!(a, AlterAction::DropConstraint { name, .. } if name == n))
            };
            let names: Vec<String> = match &c.name {
                Some(n) => vec![n.clone()],
                None => {
                    // The constraint PostgreSQL named: new since S0, of the same kind, on the
                    // same columns when the statement lists them.
                    let kind = match &c.kind {
                        ConstraintKind::PrimaryKey => ConstraintType::PrimaryKey,
                        ConstraintKind::Unique => ConstraintType::Unique,
                        ConstraintKind::ForeignKey { .. } => ConstraintType::ForeignKey,
                        ConstraintKind::Check(_) => ConstraintType::Check,
                        ConstraintKind::Exclude => ConstraintType::Exclusion,
                        ConstraintKind::NotNull => ConstraintType::NotNull,
                    };
                    let columns: &[String] = match &c.kind {
                        ConstraintKind::ForeignKey { columns, .. } => columns,
                        _ => &c.columns,
                    };
                    // A name a DROP freed counts as new when it is one PostgreSQL would choose
                    // (`<table>_…_<check|key|fkey|pkey|excl>`).
                    let suffix = kind.default_name_suffix();
                    let chosen = |k: &str| k.starts_with(&format!("{}_", t.name)) && k.ends_with(suffix);
                    let old: Vec<&String> = before
                        .map(|x| x.constraints.keys().filter(|k| !(dropped(k) && chosen(k))).collect())
                        .unwrap_or_default();
                    after
                        .map(|x| {
                            x.constraints
                                .iter()
                                .filter(|(k, d)| {
                                    !old.contains(k) && d.kind == kind && (columns.is_empty() || d.columns == columns)
                                })
                                .map(|(k, _)| k.clone())
                                .collect()
                        })
                        .unwrap_or_default()
                }
            };
            for n in names {
                if before.is_some_and(|x| x.constraints.contains_key(&n)) && !dropped(&n) {
                    continue;
                }
                if matches!(c.kind, ConstraintKind::NotNull) {
                    continue;
                }
                // Two unnamed constraints of a kind in one statement both match each.
                let drop = format!("ALTER TABLE {t} DROP CONSTRAINT {}", qi(&n));
                if !inv.sql.contains(&drop) {
                    inv.sql.push(drop);
                }
            }
        }
        AlterAction::ValidateConstraint { name } => {
            if let Some(c) = before.and_then(|x| x.constraints.get(name)) {
                if !c.validated {
                    inv.sql.push(format!("ALTER TABLE {t} DROP CONSTRAINT {}", qi(name)));
                    inv.sql.push(format!("ALTER TABLE {t} ADD CONSTRAINT {} {}", qi(name), c.definition));
                }
            }
        }
        AlterAction::DropConstraint { name, .. } => {
            if let Some(c) = before.and_then(|x| x.constraints.get(name)) {
                inv.sql.push(format!("ALTER TABLE {t} ADD CONSTRAINT {} {}", qi(name), c.definition));
            }
        }
        _ => {}
    }
}
