//! The rollback file, in the guide's template: header, the statements that cannot run in a
//! transaction, then BEGIN, the reversal in reverse order, data restore, a verification block
//! that aborts if the rollback is incomplete, COMMIT and the next steps.

use migsafe_catalog::diff::{ChangeKind, DiffKind};
use migsafe_catalog::{QName, Snapshot};
use migsafe_sql::quote_literal as ql;

use super::invert::Inverse;

/// Everything that goes into one rollback file.
pub struct ScriptParts<'a> {
    /// Forward file name (`054_add_message_bookmarks.sql`).
    pub forward_file: &'a str,
    /// `LOW`, `MEDIUM`, `HIGH`.
    pub complexity: &'a str,
    /// Estimated duration text.
    pub duration: String,
    /// Per-statement inverses, already in reverse order.
    pub inverses: &'a [Inverse],
    /// `ALTER TYPE … ADD VALUE IF NOT EXISTS`, run before the transaction.
    pub enum_values: &'a [String],
    /// Line of each forward statement, by index.
    pub lines: &'a [usize],
    /// What the snapshot diff adds.
    pub residual: Vec<String>,
    /// Data restore statements.
    pub restore: Vec<String>,
    /// Constraints and NOT NULL put back after the data.
    pub finalize: Vec<String>,
    /// `-- MANUAL:` notes.
    pub manual: Vec<String>,
    /// Notes (not problems).
    pub notes: Vec<String>,
    /// Verification statements.
    pub verify: Option<String>,
    /// Wrap in BEGIN/COMMIT (false for dbmate, whose runner wraps the section).
    pub transaction: bool,
}

fn needs_function_bodies_off(stmts: &[String]) -> bool {
    stmts.iter().any(|s| {
        let u = s.trim_start().to_ascii_uppercase();
        u.starts_with("CREATE OR REPLACE FUNCTION")
            || u.starts_with("CREATE FUNCTION")
            || u.starts_with("CREATE OR REPLACE PROCEDURE")
    })
}

/// Render the rollback file.
pub fn render(p: &ScriptParts) -> String {
    let mut s = String::new();
    s.push_str(&format!("-- Rollback for {}\n", p.forward_file));
    s.push_str(&format!(
        "-- Generated: {} by migsafe {}\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        env!("CARGO_PKG_VERSION")
    ));
    s.push_str(&format!("-- Complexity: {}\n", p.complexity));
    s.push_str(&format!("-- Estimated Duration: {}\n", p.duration));
    s.push_str("-- WARNING: Test this rollback script thoroughly before use! (`migsafe rollback check` and `migsafe rehearse` re-prove it)\n");
    let concurrent: Vec<&String> = p.inverses.iter().flat_map(|i| i.concurrent.iter()).collect();
    let outside = !concurrent.is_empty() || !p.enum_values.is_empty();
    if outside {
        s.push_str("-- migsafe:no-transaction\n");
    }
    for n in &p.notes {
        s.push_str(&format!("-- NOTE: {n}\n"));
    }
    for m in &p.manual {
        s.push_str(&format!("-- MANUAL: {m}\n"));
    }
    if !concurrent.is_empty() {
        s.push_str("\n-- Outside the transaction (CONCURRENTLY cannot run inside one):\n");
        for c in concurrent {
            s.push_str(&format!("{c};\n"));
        }
    }
    if !p.enum_values.is_empty() {
        s.push_str(
            "\n-- Outside the transaction: enum values the rollback uses must be committed before they can be \
             used (IF NOT EXISTS: safe to run again)\n",
        );
        for c in p.enum_values {
            s.push_str(&format!("{c};\n"));
        }
    }
    s.push('\n');
    if p.transaction {
        s.push_str("BEGIN;\n");
    }
    let mut all: Vec<String> = p.inverses.iter().flat_map(|i| i.sql.iter().cloned()).collect();
    all.extend(p.residual.iter().cloned());
    all.extend(p.finalize.iter().cloned());
    if needs_function_bodies_off(&all) {
        s.push_str("SET LOCAL check_function_bodies = off;\n");
    }
    if p.inverses.iter().any(|i| !i.sql.is_empty()) {
        s.push_str("\n-- Revert changes in reverse order\n");
        for inv in p.inverses.iter().filter(|i| !i.sql.is_empty()) {
            let line = p.lines.get(inv.statement).copied().unwrap_or(0);
            s.push_str(&format!("-- reverts line {line}: {}\n", inv.tag));
            for stmt in &inv.sql {
                s.push_str(&format!("{stmt};\n"));
            }
        }
    }
    if !p.residual.is_empty() {
        s.push_str(
            "\n-- Recreate what the migration dropped or changed, as it was before (from the schema snapshot)\n",
        );
        for stmt in &p.residual {
            s.push_str(&format!("{stmt};\n"));
        }
    }
    if !p.restore.is_empty() {
        s.push_str("\n-- Undo the migration's data changes from what the capture step recorded in migsafe_backup, last statement first (each block is skipped when it did not run): destroyed rows and values are put back, rows it added are removed\n");
        for stmt in &p.restore {
            s.push_str(&format!("{stmt};\n"));
        }
    }
    if !p.finalize.is_empty() {
        s.push_str("\n-- Restore the constraints that need the data back first\n");
        for stmt in &p.finalize {
            s.push_str(&format!("{stmt};\n"));
        }
    }
    if let Some(v) = &p.verify {
        s.push_str("\n-- Verify rollback: abort (and undo everything above) if anything is not back as it was\n");
        s.push_str(v);
        s.push_str(";\n");
    }
    if p.transaction {
        s.push_str("\nCOMMIT;\n");
    }
    s.push_str("\n-- Rollback complete\n-- Next steps:\n-- 1. Verify application functionality\n-- 2. Check data integrity (migsafe verify)\n-- 3. Monitor error rates\n");
    s
}

/// A DO block that raises when objects the migration created still exist or objects it
/// removed are missing.
pub fn verification(s1: &Snapshot, s0: &Snapshot) -> Option<String> {
    let d = s1.diff(s0);
    let whole_tables: Vec<&str> = d
        .differences
        .iter()
        .filter(|x| x.kind == DiffKind::Table && x.change != ChangeKind::Changed)
        .map(|x| x.name.as_str())
        .collect();
    // A relation name that is both removed and added (an index that moved to a renamed table keeps its
    // schema-wide name) exists on both sides: checking existence would contradict itself.
    let both_ways = |kind: DiffKind, name: &str| {
        let has = |c: ChangeKind| d.differences.iter().any(|x| x.kind == kind && x.change == c && x.name == name);
        has(ChangeKind::Removed) && has(ChangeKind::Added)
    };
    let mut checks = Vec::new();
    let rel = |name: &str| format!("to_regclass({})", ql(name));
    for diff in &d.differences {
        let (gone, back) = (diff.change == ChangeKind::Removed, diff.change == ChangeKind::Added);
        match diff.kind {
            DiffKind::Table | DiffKind::View | DiffKind::Sequence | DiffKind::Index => {
                if both_ways(diff.kind, &diff.name) {
                    continue;
                }
                if gone {
                    checks.push((
                        format!("{} IS NOT NULL", rel(&diff.name)),
                        format!("{} {} still exists", diff.kind, diff.name),
                    ));
                } else if back {
                    checks.push((
                        format!("{} IS NULL", rel(&diff.name)),
                        format!("{} {} is missing", diff.kind, diff.name),
                    ));
                }
            }
            DiffKind::Column => {
                let Some((table, col)) = QName::parse_column(&diff.name) else { continue };
                if whole_tables.contains(&table.to_string().as_str()) {
                    continue; // the table check covers its columns
                }
                let exists = format!(
                    "EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = {} AND attname = {} AND NOT attisdropped)",
                    rel(&table.to_string()),
                    ql(&col)
                );
                if gone {
                    checks.push((exists, format!("column {} still exists", diff.name)));
                } else if back {
                    checks.push((format!("NOT {exists}"), format!("column {} is missing", diff.name)));
                }
            }
            _ => {}
        }
    }
    if checks.is_empty() {
        return None;
    }
    let mut s = String::from("DO $migsafe$ BEGIN\n");
    for (cond, msg) in checks.iter().take(50) {
        s.push_str(&format!("  IF {cond} THEN RAISE EXCEPTION 'rollback incomplete: %', {}; END IF;\n", ql(msg)));
    }
    s.push_str("END $migsafe$");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names_split_with_quotes() {
        assert_eq!(QName::parse_column("public.users.email"), Some((QName::new("public", "users"), "email".into())));
        assert_eq!(QName::parse_column("\"a.b\".\"T\".\"x\"\"y\""), Some((QName::new("a.b", "T"), "x\"y".into())));
    }
}
