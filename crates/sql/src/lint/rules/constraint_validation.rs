//! Constraints that validate every existing row while holding a blocking lock, and the
//! NOT VALID + VALIDATE pattern done wrong.

use pg_query::protobuf::ConstrType;
use pg_query::NodeEnum;

use super::{
    default_constraint_name, existing_table_actions, inline_constraints, inline_name, split_column_recipe,
    table_actions, violation, Cx, Violation,
};
use crate::model::{AlterAction, ConstraintKind};

/// Rewrite every FOREIGN KEY / CHECK constraint added by the statement as NOT VALID, naming
/// the unnamed ones, and return the SQL plus the names to validate.
fn not_valid_rewrite(cx: &Cx, kind: ConstrType) -> (String, Vec<String>) {
    let table = match table_actions(cx) {
        Some((t, _)) => t.name.clone(),
        None => return (String::new(), vec![]),
    };
    let mut names = Vec::new();
    let sql = cx.rewritten(|n| {
        let NodeEnum::AlterTableStmt(s) = n else {
            return;
        };
        for cmd in &mut s.cmds {
            let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_mut() else {
                continue;
            };
            let Some(NodeEnum::Constraint(c)) = cmd.def.as_deref_mut().and_then(|d| d.node.as_mut()) else {
                continue;
            };
            if c.contype != kind as i32 || c.skip_validation {
                continue;
            }
            c.skip_validation = true;
            c.initially_valid = false;
            if c.conname.is_empty() {
                let cols: Vec<String> = c
                    .fk_attrs
                    .iter()
                    .filter_map(|a| match a.node.as_ref() {
                        Some(NodeEnum::String(s)) => Some(s.sval.clone()),
                        _ => None,
                    })
                    .collect();
                let suffix = if kind == ConstrType::ConstrForeign { "fkey" } else { "check" };
                c.conname = default_constraint_name(&table, &cols, suffix);
            }
            names.push(c.conname.clone());
        }
    });
    (sql, names)
}

fn recipe(cx: &Cx, kind: ConstrType) -> String {
    let Some((table, _)) = table_actions(cx) else {
        return String::new();
    };
    let (sql, names) = not_valid_rewrite(cx, kind);
    let validates: Vec<String> = names
        .iter()
        .map(|n| format!("  ALTER TABLE {} VALIDATE CONSTRAINT {};", table.sql(), crate::quote_ident(n)))
        .collect();
    format!(
        "add it without checking existing rows (brief lock), then validate in a later migration, which takes \
         only SHARE UPDATE EXCLUSIVE so reads and writes continue:\n  {sql};\n  -- next migration:\n{}",
        validates.join("\n")
    )
}

/// `ADD COLUMN c … REFERENCES t` / `CHECK (…)` on an existing table: validated by a scan.
fn inline(cx: &Cx, fk: bool, out: &mut Vec<Violation>) {
    for (table, col, k) in inline_constraints(cx) {
        if k.not_valid || k.not_enforced {
            continue;
        }
        let t = table.sql();
        let (message, add) = match &k.kind {
            // A new column with no DEFAULT holds only NULLs: PostgreSQL marks its key valid without
            // checking (a DEFAULT, even NULL, makes it check).
            ConstraintKind::ForeignKey { .. } if fk && col.default.is_none() => continue,
            ConstraintKind::ForeignKey { references, ref_columns, .. } if fk => {
                let name = inline_name(table, col, k, "fkey");
                let refs =
                    if ref_columns.is_empty() { String::new() } else { format!(" ({})", ref_columns.join(", ")) };
                (
                    format!(
                        "the FOREIGN KEY written inline in ADD COLUMN {} is validated by scanning every row of {} while \
                         holding SHARE ROW EXCLUSIVE on {} and ACCESS EXCLUSIVE on the table",
                        col.name,
                        cx.sized(table),
                        references
                    ),
                    format!(
                        "  ALTER TABLE {t} ADD CONSTRAINT {n} FOREIGN KEY ({c}) REFERENCES {}{refs} NOT VALID;\n  -- next migration:\n  ALTER TABLE {t} VALIDATE CONSTRAINT {n};",
                        references.sql(),
                        n = crate::quote_ident(&name),
                        c = crate::quote_ident(&col.name),
                    ),
                )
            }
            ConstraintKind::Check(e) if !fk => {
                let name = inline_name(table, col, k, "check");
                (
                    format!(
                        "the CHECK written inline in ADD COLUMN {} is validated by scanning every row of {} under the \
                         ACCESS EXCLUSIVE lock: every query on the table, SELECT included, waits for the scan",
                        col.name,
                        cx.sized(table)
                    ),
                    format!(
                        "  ALTER TABLE {t} ADD CONSTRAINT {n} CHECK ({}) NOT VALID;\n  -- next migration:\n  ALTER TABLE {t} VALIDATE CONSTRAINT {n};",
                        e.text,
                        n = crate::quote_ident(&name),
                    ),
                )
            }
            _ => continue,
        };
        out.push(violation(message, split_column_recipe(table, col, &add)));
        return;
    }
}

pub(crate) fn foreign_key(cx: &Cx, out: &mut Vec<Violation>) {
    inline(cx, true, out);
    if !out.is_empty() {
        return;
    }
    let Some((table, actions)) = existing_table_actions(cx) else {
        return;
    };
    for a in actions {
        let AlterAction::AddConstraint(c) = a else {
            continue;
        };
        let ConstraintKind::ForeignKey { references, .. } = &c.kind else {
            continue;
        };
        if c.not_valid {
            continue;
        }
        out.push(violation(
            format!(
                "adding a FOREIGN KEY checks every existing row of {} while holding SHARE ROW EXCLUSIVE locks on it \
                 and on {}: INSERT, UPDATE and DELETE on both tables wait for the whole scan, which grows with the \
                 table's size",
                cx.sized(table),
                references
            ),
            recipe(cx, ConstrType::ConstrForeign),
        ));
        return;
    }
}

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    inline(cx, false, out);
    if !out.is_empty() {
        return;
    }
    let Some((table, actions)) = existing_table_actions(cx) else {
        return;
    };
    let adds_check = actions.iter().any(
        |a| matches!(a, AlterAction::AddConstraint(c) if matches!(c.kind, ConstraintKind::Check(_)) && !c.not_valid),
    );
    if adds_check {
        out.push(violation(
            format!(
                "adding a CHECK constraint scans every row of {} under an ACCESS EXCLUSIVE lock: every query on the \
                 table, SELECT included, waits for the scan, which grows with the table's size",
                cx.sized(table)
            ),
            recipe(cx, ConstrType::ConstrCheck),
        ));
    }
}

/// PostgreSQL 18's `ALTER CONSTRAINT … ENFORCED` on a NOT ENFORCED foreign key (or CHECK,
/// where a later release allows it) validates every existing row in the same statement.
pub(crate) fn enforce(cx: &Cx, out: &mut Vec<Violation>) {
    let Some((table, actions)) = existing_table_actions(cx) else {
        return;
    };
    for a in actions {
        let AlterAction::AlterConstraint { name, enforce: Some(true) } = a else {
            continue;
        };
        let t = table.sql();
        let n = crate::quote_ident(name);
        out.push(violation(
            format!(
                "ALTER CONSTRAINT {n} ENFORCED checks every existing row of {} while holding an ACCESS EXCLUSIVE \
                 lock on it: every query on the table, SELECT included, waits for the scan, which grows with the \
                 table's size (and the statement fails if any row violates the constraint)",
                cx.sized(table)
            ),
            format!(
                "replace the NOT ENFORCED constraint with a NOT VALID one (a brief lock, no scan), then validate it \
                 in a later migration under SHARE UPDATE EXCLUSIVE, so reads and writes continue:\n  \
                 ALTER TABLE {t} DROP CONSTRAINT {n}, ADD CONSTRAINT {n} <the same definition> NOT VALID;\n  \
                 -- next migration:\n  ALTER TABLE {t} VALIDATE CONSTRAINT {n};"
            ),
        ));
    }
}

pub(crate) fn validate_same_tx(cx: &Cx, out: &mut Vec<Violation>) {
    let Some((table, actions)) = table_actions(cx) else {
        return;
    };
    let key = cx.schema.resolve(table);
    for a in actions {
        let AlterAction::ValidateConstraint { name } = a else {
            continue;
        };
        if cx.tx.not_valid_added.iter().any(|(t, n)| t == &key && n == name) {
            out.push(violation(
                format!(
                    "VALIDATE CONSTRAINT {name} runs in the same transaction that added it NOT VALID: the lock the \
                     ADD took (ACCESS EXCLUSIVE for CHECK, SHARE ROW EXCLUSIVE for FOREIGN KEY) is still held \
                     during the validation scan, so splitting the two steps gains nothing"
                ),
                format!(
                    "move this statement to the next migration, so the scan runs under SHARE UPDATE EXCLUSIVE \
                     only:\n  ALTER TABLE {} VALIDATE CONSTRAINT {};",
                    table.sql(),
                    crate::quote_ident(name)
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn constraints_written_inline_in_add_column() {
        // Without a DEFAULT the new column is all NULL: PostgreSQL marks the key valid unchecked.
        assert!(lint("ALTER TABLE messages ADD COLUMN owner_id bigint REFERENCES users (id);").is_empty());
        // With one, even DEFAULT NULL, it checks every row.
        let f = lint("ALTER TABLE messages ADD COLUMN owner_id bigint DEFAULT NULL REFERENCES users (id);");
        assert_eq!(ids(&f), vec!["foreign-key-without-not-valid"]);
        assert!(f[0].message.contains("inline in ADD COLUMN owner_id"), "{}", f[0].message);
        assert!(
            f[0].help.contains("ADD COLUMN owner_id bigint;")
                && f[0].help.contains(
                    "ADD CONSTRAINT messages_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users (id) NOT VALID"
                )
                && f[0].help.contains("VALIDATE CONSTRAINT messages_owner_id_fkey"),
            "{}",
            f[0].help
        );
        let f = lint("ALTER TABLE messages ADD COLUMN n int CONSTRAINT n_positive CHECK (n > 0);");
        assert_eq!(ids(&f), vec!["check-without-not-valid"]);
        assert!(f[0].help.contains("ADD CONSTRAINT n_positive CHECK (n > 0) NOT VALID"), "{}", f[0].help);
        // A new table is empty: nothing to scan.
        assert!(lint("CREATE TABLE t (id int); ALTER TABLE t ADD COLUMN n int CHECK (n > 0);").is_empty());
    }

    #[test]
    fn foreign_key_without_not_valid() {
        let f =
            lint("ALTER TABLE messages ADD CONSTRAINT fk_messages_user_id FOREIGN KEY (user_id) REFERENCES users(id);");
        assert_eq!(ids(&f), vec!["foreign-key-without-not-valid"]);
        assert!(f[0].help.contains("NOT VALID"), "{}", f[0].help);
        assert!(f[0].help.contains("VALIDATE CONSTRAINT fk_messages_user_id"), "{}", f[0].help);
    }

    #[test]
    fn unnamed_foreign_key_gets_postgres_default_name() {
        let f = lint("ALTER TABLE messages ADD FOREIGN KEY (user_id) REFERENCES users(id);");
        assert!(f[0].help.contains("VALIDATE CONSTRAINT messages_user_id_fkey"), "{}", f[0].help);
    }

    #[test]
    fn not_valid_then_validate_later_is_clean() {
        let f = lint_set(&[
            "ALTER TABLE messages ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users(id) NOT VALID;",
            "ALTER TABLE messages VALIDATE CONSTRAINT fk;",
        ]);
        assert!(f[0].is_empty(), "{:?}", f[0]);
        assert!(f[1].is_empty(), "{:?}", f[1]);
    }

    #[test]
    fn validate_in_same_transaction() {
        let f = lint(
            "ALTER TABLE messages ADD CONSTRAINT fk FOREIGN KEY (user_id) REFERENCES users(id) NOT VALID;\n\
             ALTER TABLE messages VALIDATE CONSTRAINT fk;",
        );
        assert_eq!(ids(&f), vec!["validate-in-same-transaction"]);
    }

    #[test]
    fn validate_after_commit_in_autocommit_file_is_fine() {
        let f = lint(
            "BEGIN;\nALTER TABLE messages ADD CONSTRAINT c CHECK (length(body) < 5000) NOT VALID;\nCOMMIT;\n\
             BEGIN;\nALTER TABLE messages VALIDATE CONSTRAINT c;\nCOMMIT;",
        );
        assert!(!ids(&f).contains(&"validate-in-same-transaction"), "{f:?}");
    }

    #[test]
    fn check_constraint() {
        let f = lint("ALTER TABLE users ADD CONSTRAINT age_ok CHECK (age >= 0);");
        assert_eq!(ids(&f), vec!["check-without-not-valid"]);
        assert!(f[0].help.contains("CHECK (age >= 0) NOT VALID"), "{}", f[0].help);
        assert!(lint("ALTER TABLE users ADD CONSTRAINT age_ok CHECK (age >= 0) NOT VALID;").is_empty());
        assert!(lint("CREATE TABLE t (a int); ALTER TABLE t ADD CHECK (a > 0);").is_empty());
    }

    #[test]
    fn fk_on_new_table_is_fine() {
        assert!(lint("CREATE TABLE b (id int, user_id int REFERENCES users(id));").is_empty());
        assert!(lint(
            "CREATE TABLE b (id int, user_id int); ALTER TABLE b ADD FOREIGN KEY (user_id) REFERENCES users(id);"
        )
        .is_empty());
    }

    #[test]
    fn enforcing_a_not_enforced_constraint_scans_under_access_exclusive() {
        let f = lint("ALTER TABLE orders ALTER CONSTRAINT orders_user_fk ENFORCED;");
        assert_eq!(ids(&f), vec!["enforce-constraint"]);
        assert!(f[0].message.contains("ACCESS EXCLUSIVE") && !f[0].message.contains("  "), "{}", f[0].message);
        assert!(f[0].help.contains("VALIDATE CONSTRAINT orders_user_fk"), "{}", f[0].help);
        assert!(lint("ALTER TABLE orders ALTER CONSTRAINT orders_user_fk NOT ENFORCED;").is_empty());
        assert!(lint("ALTER TABLE orders ALTER CONSTRAINT orders_user_fk DEFERRABLE;").is_empty());
        assert!(lint("CREATE TABLE o (a int); ALTER TABLE o ALTER CONSTRAINT f ENFORCED;").is_empty());
    }

    #[test]
    fn not_enforced_constraints_check_nothing() {
        assert!(
            lint("ALTER TABLE orders ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES users (id) NOT ENFORCED;").is_empty()
        );
        assert!(lint("ALTER TABLE orders ADD CONSTRAINT c CHECK (total > 0) NOT ENFORCED;").is_empty());
    }
}
