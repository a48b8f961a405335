//! ALTER COLUMN … TYPE: a rewrite under ACCESS EXCLUSIVE unless PostgreSQL can skip it
//! (binary-compatible changes such as widening varchar, varchar to text, widening numeric).

use super::{existing_table_actions, violation, Cx, Violation};
use crate::model::{AlterAction, TypeName};
use crate::quote_ident;

/// Whether the session's TimeZone is one with no offset at this statement: as the file last
/// set it, else as the database consulted has it.
fn session_time_zone_is_utc(cx: &Cx) -> bool {
    let zone = cx.statements[..cx.stmt.index.min(cx.statements.len())].iter().rev().find_map(|s| match &s.kind {
        crate::model::StmtKind::Set { name, value, .. } if name.eq_ignore_ascii_case("timezone") => {
            Some(value.clone().unwrap_or_default())
        }
        _ => None,
    });
    let zone = zone.or_else(|| cx.opts.time_zone.clone());
    zone.is_some_and(|z| {
        let z = z.trim().trim_matches('\'').to_ascii_lowercase();
        matches!(
            z.as_str(),
            "utc" | "etc/utc" | "gmt" | "etc/gmt" | "uct" | "universal" | "zulu" | "z" | "etc/universal"
        )
    })
}

/// True when PostgreSQL changes the column from `old` to `new` without rewriting the table.
fn keeps_rows(cx: &Cx, old: &TypeName, new: &TypeName) -> bool {
    // timestamp ↔ timestamptz keeps the stored values when the session's zone is UTC:
    // PostgreSQL 12 and later skip the rewrite then (crates.io's migrations set it first).
    let zoned = |t: &TypeName| t.name == "timestamp" || t.name == "timestamptz";
    old.binary_compatible_to(new)
        || (zoned(old) && zoned(new) && old.name != new.name && old.mods == new.mods && session_time_zone_is_utc(cx))
}

/// True when an index on a column keeps its operator class across the change: the same type,
/// or between varchar and text (both use text's). timestamp and timestamptz do not.
fn same_opclass(old: &TypeName, new: &TypeName) -> bool {
    let text = |t: &TypeName| t.name == "varchar" || t.name == "text";
    old.name == new.name || (text(old) && text(new))
}

/// A type change that keeps the rows still reads the whole table under its ACCESS EXCLUSIVE
/// lock when PostgreSQL must rebuild an index on the column (an expression or partial index
/// naming it, or one whose operator class changes) or check a CHECK constraint naming it again.
pub(crate) fn rebuilds(cx: &Cx, out: &mut Vec<Violation>) {
    let Some((table, actions)) = existing_table_actions(cx) else {
        return;
    };
    let Some(info) = cx.schema.table(table) else { return };
    for a in actions {
        let AlterAction::AlterType { column, new_type, using: None, .. } = a else {
            continue;
        };
        let Some(old) = info.column(column).map(|c| &c.type_name) else { continue };
        if !keeps_rows(cx, old, new_type) {
            continue;
        }
        let mut work: Vec<String> = info
            .indexes
            .iter()
            .filter(|i| i.expr_columns.contains(column) || (i.columns.contains(column) && !same_opclass(old, new_type)))
            .map(|i| format!("rebuilds index {}", i.name.as_deref().map_or("(unnamed)".into(), quote_ident)))
            .collect();
        work.extend(
            info.checks
                .iter()
                .filter(|c| c.columns.contains(column))
                .map(|c| format!("checks constraint {} again", quote_ident(&c.name))),
        );
        if work.is_empty() {
            continue;
        }
        out.push(violation(
            format!(
                "changing {}.{} from {} to {} keeps the rows, but PostgreSQL {}, reading every row while it holds \
                 the ACCESS EXCLUSIVE lock: all queries on the table wait for time proportional to its size",
                cx.sized(table),
                quote_ident(column),
                old.sql(),
                new_type.sql(),
                work.join(" and ")
            ),
            "drop those indexes first and build them again CONCURRENTLY after the change (a CHECK: drop it, then \
             add it back NOT VALID and VALIDATE CONSTRAINT in a later migration)"
                .to_string(),
        ));
    }
}

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    let Some((table, actions)) = existing_table_actions(cx) else {
        return;
    };
    for a in actions {
        let AlterAction::AlterType { column, new_type, using, .. } = a else {
            continue;
        };
        let old = cx.schema.table(table).and_then(|t| t.column(column)).map(|c| c.type_name.clone());
        if using.is_none() && old.as_ref().is_some_and(|o| keeps_rows(cx, o, new_type)) {
            continue;
        }
        let from = match &old {
            Some(o) => format!("from {} to {}", o.sql(), new_type.sql()),
            None => format!(
                "to {} (its current type is not known from the migrations: the rewrite is skipped \
                             only for binary-compatible changes such as widening varchar or varchar to text)",
                new_type.sql()
            ),
        };
        let t = table.sql();
        let c = quote_ident(column);
        let tmp = quote_ident(&format!("{column}_new"));
        out.push(violation(
            format!(
                "changing {}.{} {} rewrites every row and rebuilds every index of the table while holding an ACCESS \
                 EXCLUSIVE lock: all queries on it are blocked for time proportional to its size, and application \
                 code written for the old type may break",
                cx.sized(table),
                c,
                from
            ),
            format!(
                "change it in phases: add a new column, keep both written, backfill, switch reads, drop the old:\n  \
                 ALTER TABLE {t} ADD COLUMN {tmp} {ty};\n  -- deploy code that writes both columns (or a trigger)\n  \
                 -- migsafe backfill --table {table} --set \"{tmp} = {c}::{ty}\" --where \"{tmp} IS NULL\"\n  \
                 -- deploy code that reads {tmp}; then, in a later migration:\n  ALTER TABLE {t} DROP COLUMN {c};\n  \
                 ALTER TABLE {t} RENAME COLUMN {tmp} TO {c};",
                ty = new_type.sql()
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn type_change_on_unknown_column_is_flagged() {
        let f = lint("ALTER TABLE users ALTER COLUMN id TYPE bigint;");
        assert_eq!(ids(&f), vec!["alter-column-type"]);
        assert!(f[0].message.contains("ACCESS EXCLUSIVE"));
    }

    #[test]
    fn binary_compatible_changes_are_known_safe() {
        let safe = [
            ("varchar(50)", "varchar(100)"),
            ("varchar(50)", "text"),
            ("varchar(50)", "varchar"),
            ("text", "varchar"),
            ("numeric(10,2)", "numeric(12,2)"),
            ("numeric(10,2)", "numeric"),
            ("cidr", "inet"),
        ];
        for (old, new) in safe {
            let f = lint_set(&[
                &format!("CREATE TABLE t (c {old});"),
                &format!("ALTER TABLE t ALTER COLUMN c TYPE {new};"),
            ]);
            assert!(f[1].is_empty(), "{old} -> {new}: {:?}", f[1]);
            // USING the column itself cast to the new type is the same change.
            let f = lint_set(&[
                &format!("CREATE TABLE t (c {old});"),
                &format!("ALTER TABLE t ALTER COLUMN c TYPE {new} USING c::{new};"),
            ]);
            assert!(f[1].is_empty(), "{old} -> {new} USING c::{new}: {:?}", f[1]);
        }
        // Any other USING is a conversion PostgreSQL runs on every row.
        let f =
            lint_set(&["CREATE TABLE t (c varchar(50));", "ALTER TABLE t ALTER COLUMN c TYPE text USING lower(c);"]);
        assert_eq!(ids(&f[1]), vec!["alter-column-type"]);
        let f = lint_set(&[
            "CREATE TABLE t (c varchar(50), d text);",
            "ALTER TABLE t ALTER COLUMN c TYPE text USING d::text;",
        ]);
        assert_eq!(ids(&f[1]), vec!["alter-column-type"]);
    }

    #[test]
    fn timestamp_to_timestamptz_in_a_utc_session_is_no_rewrite() {
        for set in ["SET timezone = 'UTC';", "SET TIME ZONE 'UTC';", "SET LOCAL TimeZone TO 'Etc/UTC';"] {
            let f = lint_set(&[
                "CREATE TABLE t (c timestamp);",
                &format!("{set}\nALTER TABLE t ALTER COLUMN c TYPE timestamptz;"),
            ]);
            assert!(f[1].is_empty(), "{set}: {:?}", f[1]);
        }
        let f = lint_set(&[
            "CREATE TABLE t (c timestamp);",
            "SET timezone = 'Europe/Paris';\nALTER TABLE t ALTER COLUMN c TYPE timestamptz;",
        ]);
        assert_eq!(ids(&f[1]), vec!["alter-column-type"]);
    }

    #[test]
    fn rewriting_changes_are_flagged() {
        let bad = [
            ("varchar(100)", "varchar(50)"),
            ("int", "bigint"),
            ("numeric(10,2)", "numeric(12,4)"),
            ("text", "varchar(20)"),
            ("timestamp", "timestamptz"),
            ("char(5)", "char(10)"),
        ];
        for (old, new) in bad {
            let f = lint_set(&[
                &format!("CREATE TABLE t (c {old});"),
                &format!("ALTER TABLE t ALTER COLUMN c TYPE {new};"),
            ]);
            assert!(ids(&f[1]).contains(&"alter-column-type"), "{old} -> {new}: {:?}", f[1]);
        }
    }

    #[test]
    fn using_clause_always_rewrites() {
        let f = lint_set(&[
            "CREATE TABLE t (c varchar(5));",
            "ALTER TABLE t ALTER COLUMN c TYPE varchar(9) USING c || '';",
        ]);
        assert_eq!(ids(&f[1]), vec!["alter-column-type"]);
    }

    #[test]
    fn a_type_change_that_keeps_the_rows_still_rebuilds_what_postgres_rebuilds() {
        let base = "CREATE TABLE t (a varchar(10), b timestamp, c varchar(10), d varchar(10), e varchar(10));\n\
                    CREATE INDEX t_a ON t (a);\nCREATE INDEX t_b ON t (b);\nCREATE INDEX t_c ON t (lower(c));\n\
                    CREATE INDEX t_d ON t (a) WHERE d <> '';\nALTER TABLE t ADD CONSTRAINT e_set CHECK (e <> '');";
        let rebuild = |alter: &str| {
            let f = lint_set(&[base, &format!("SET timezone = 'UTC';\n{alter}")]);
            f[1].iter().filter(|f| f.rule == "alter-column-type-rebuild").map(|f| f.message.clone()).collect::<Vec<_>>()
        };
        // Measured on PostgreSQL 15 and 18: varchar to text keeps a plain index.
        assert!(rebuild("ALTER TABLE t ALTER COLUMN a TYPE text;").is_empty());
        // timestamp to timestamptz changes the operator class: the index is built again.
        let b = rebuild("ALTER TABLE t ALTER COLUMN b TYPE timestamptz;");
        assert!(b.len() == 1 && b[0].contains("rebuilds index t_b"), "{b:?}");
        // An expression or a partial index naming the column, and a CHECK naming it.
        assert!(rebuild("ALTER TABLE t ALTER COLUMN c TYPE varchar(20);")[0].contains("rebuilds index t_c"));
        assert!(rebuild("ALTER TABLE t ALTER COLUMN d TYPE varchar(20);")[0].contains("rebuilds index t_d"));
        assert!(rebuild("ALTER TABLE t ALTER COLUMN e TYPE text;")[0].contains("checks constraint e_set again"));
        // A change that rewrites is alter-column-type's, not this rule's.
        assert!(rebuild("ALTER TABLE t ALTER COLUMN c TYPE int USING 0;").is_empty());
    }
}
