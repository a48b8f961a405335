//! Column actions of ALTER TABLE: an added column is dropped, a dropped one added back (with
//! a serial's sequence), a retyped one converted back (through the captured values when the
//! conversion may not go back), defaults, NOT NULL and identity restored from S0.

use migsafe_catalog::model::Column;
use migsafe_catalog::QName;
use migsafe_sql::model::{AlterAction, ObjectKind};
use migsafe_sql::quote_ident as qi;

use super::table::AlterCx;
use super::Inverse;

/// Column actions: ADD / DROP COLUMN, TYPE, defaults, NOT NULL, identity.
pub(super) fn invert(tc: &AlterCx, a: &AlterAction, actions: &[AlterAction], inv: &mut Inverse) {
    let (cx, t) = (tc.cx, tc.t);
    let (s0, s1) = (cx.s0, cx.s1);
    let after = tc.after;
    let col0 = |c: &str| tc.col0(c);
    let at = |c: &str| tc.at(c);
    match a {
        // New, or added again after the migration dropped the old one (the DROP's inverse
        // brings that back).
        AlterAction::AddColumn { column, .. }
            if (col0(&column.name).is_none()
                || cx
                    .before
                    .dropped
                    .iter()
                    .any(|(k, x)| *k == ObjectKind::Column && *x == format!("{t}.{}", qi(&column.name)))
                || actions
                    .iter()
                    .any(|a| matches!(a, AlterAction::DropColumn { column: c, .. } if *c == column.name)))
                && after.is_some_and(|x| x.column(&column.name).is_some()) =>
        {
            inv.sql.push(format!("ALTER TABLE {t} DROP COLUMN {}", qi(&column.name)));
        }
        AlterAction::DropColumn { column, .. } => {
            // Dropped from the parent alone (`ONLY`), the column stayed in children as their
            // own. Added back to the parent, it would merge with theirs and stay declared by
            // them too: the schema's difference gives it back instead, handing the children's
            // values over to the parent's column (see the diff's `inherited`).
            let handed_over = migsafe_catalog::handed_over(s1, s0)
                .iter()
                .any(|(kn, c)| c == column && s1.tables.get(kn).is_some_and(|k| k.inherits.contains(t)));
            if let Some(c) = col0(column).filter(|_| !handed_over) {
                // A serial column's sequence went with it: back first, owned by it again after.
                let original = cx.original(t);
                let owned: Vec<(&QName, &migsafe_catalog::model::Sequence)> = s0
                    .sequences
                    .iter()
                    .filter(|(n, q)| {
                        !s1.sequences.contains_key(*n)
                            && q.owned_by.as_ref().is_some_and(|(ot, oc)| *ot == original && oc == &c.name)
                    })
                    .collect();
                for (n, q) in &owned {
                    inv.sql.push(migsafe_catalog::create_sequence(n, q));
                }
                // Under the name it had when dropped; an earlier rename's inverse renames it back.
                let c = Column { name: column.clone(), ..c.clone() };
                inv.sql.push(format!("ALTER TABLE {t} ADD COLUMN {}", c.definition(false)));
                for (n, _) in owned {
                    inv.sql.push(format!("ALTER SEQUENCE {n} OWNED BY {t}.{}", qi(column)));
                }
            }
        }
        AlterAction::AlterType { column, new_type, .. } => {
            if let Some(c) = col0(column) {
                let cur = after.and_then(|x| x.column(column));
                // Not in S1 under this name: a later statement renamed or dropped it (and its
                // inverse, run before this one, gave it this name again); its type here is the
                // one the statement set.
                let gone = cur.is_none();
                let written = new_type.sql();
                if gone || cur.is_some_and(|x| x.type_name != c.type_name || x.collation != c.collation) {
                    if gone || cur.is_some_and(|x| x.default.is_some()) {
                        inv.sql.push(format!("{} DROP DEFAULT", at(column)));
                    }
                    let user_written = new_type.schema.is_some() || s1.types.keys().any(|q| q.name == new_type.name);
                    let via = if s0.has_user_type(&c.type_name)
                        || cur.is_some_and(|x| s1.has_user_type(&x.type_name))
                        || (gone && user_written)
                    {
                        "::text"
                    } else {
                        ""
                    };
                    let collate = c.collation.as_ref().map(|x| format!(" COLLATE {x}")).unwrap_or_default();
                    let using = migsafe_catalog::retype_using(
                        &qi(column),
                        cur.map_or(written.as_str(), |x| x.type_name.as_str()),
                        &c.type_name,
                        via,
                    );
                    let retype = format!("{} TYPE {}{collate} USING {using}", at(column), c.type_name);
                    let copy = cx.original_column(t, column).and_then(|oc| cx.captured.get(&(cx.original(t), oc)));
                    match copy {
                        // Values the forward conversion mapped (a CASE, a lossy cast) may not
                        // convert back; the capture step recorded them and the restore below
                        // puts them back, so they may go through NULL (NOT NULL comes back
                        // after the data).
                        Some(copy) => inv.sql.push(format!(
                            "DO $migsafe$ BEGIN\n  {retype};\nEXCEPTION WHEN others THEN\n  \
                             IF to_regclass({}) IS NULL THEN RAISE; END IF;\n  \
                             {} DROP NOT NULL;\n  {} TYPE {}{collate} USING NULL;\nEND $migsafe$",
                            migsafe_sql::quote_literal(&copy.to_string()),
                            at(column),
                            at(column),
                            c.type_name
                        )),
                        None => inv.sql.push(retype),
                    }
                    if let Some(d) = &c.default {
                        inv.sql.push(format!("{} SET DEFAULT {d}", at(column)));
                    }
                }
            }
        }
        AlterAction::SetDefault { column, .. } | AlterAction::DropDefault { column }
            if !cx.before.defaults.contains(&format!("{t}.{}", qi(column))) =>
        {
            if let Some(c) = col0(column) {
                match &c.default {
                    Some(d) => inv.sql.push(format!("{} SET DEFAULT {d}", at(column))),
                    None => inv.sql.push(format!("{} DROP DEFAULT", at(column))),
                }
            }
        }
        AlterAction::SetNotNull { column } if col0(column).is_some_and(|c| !c.not_null) => {
            inv.sql.push(format!("{} DROP NOT NULL", at(column)));
        }
        AlterAction::DropNotNull { column } if col0(column).is_some_and(|c| c.not_null) => {
            inv.sql.push(format!("{} SET NOT NULL", at(column)));
        }
        AlterAction::Identity { column, add: true } if col0(column).is_some_and(|c| c.identity.is_none()) => {
            inv.sql.push(format!("{} DROP IDENTITY", at(column)));
        }
        _ => {}
    }
}
