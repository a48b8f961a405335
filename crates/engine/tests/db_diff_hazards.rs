//! The hazards `migsafe diff` marks in its DDL, one kind at a time, on real databases: the
//! statement marked is the one that does it, a statement on a table the DDL creates is not
//! marked, and the marked SQL still turns one schema into the other.

use migsafe_catalog::Snapshot;
use migsafe_engine::hazards::{self, HazardNote};
use migsafe_pg::testing::TestDb;

fn db(label: &str, sql: &str) -> TestDb {
    let d = TestDb::new(label);
    d.client().batch_execute(sql).unwrap();
    d
}

/// Diff `from` → `to`, check the marked SQL reproduces `to` when `applies`, and return the
/// hazards with the SQL.
fn hazards_of(label: &str, from: &str, to: &str, applies: bool) -> (Vec<HazardNote>, String) {
    let a = db(&format!("{label}_a"), from);
    let b = db(&format!("{label}_b"), to);
    let (sa, sb) = (Snapshot::capture(&mut a.client()).unwrap(), Snapshot::capture(&mut b.client()).unwrap());
    let sql = sa.diff(&sb).to_sql();
    let rows = migsafe_engine::lint::table_rows(&mut a.client()).unwrap();
    let found = hazards::find(&sql, &sa, rows);
    let marked = hazards::annotate(&sql, &found);
    if applies {
        a.client().batch_execute(&marked).unwrap_or_else(|e| panic!("{label}: {e}\n{marked}"));
        let after = Snapshot::capture(&mut a.client()).unwrap();
        assert!(after.diff(&sb).is_empty(), "{label}: {}\n{marked}", after.diff(&sb).summary());
    }
    (found, marked)
}

/// The hazards of kind `kind` and rule `rule`, by the statement's first line.
fn on<'a>(found: &'a [HazardNote], kind: &str, rule: &str) -> Vec<&'a str> {
    found.iter().filter(|h| h.hazard.id() == kind && h.rule == rule).map(|h| h.sql.as_str()).collect()
}

/// The comment block right before the line that starts with `statement`.
fn marks_before(marked: &str, statement: &str) -> Vec<String> {
    let lines: Vec<&str> = marked.lines().collect();
    let at = lines.iter().position(|l| l.starts_with(statement)).unwrap_or_else(|| panic!("{statement}\n{marked}"));
    lines[..at].iter().rev().take_while(|l| l.starts_with("--")).map(|l| l.to_string()).collect()
}

const ACCOUNTS: &str = "CREATE TABLE accounts (id bigint PRIMARY KEY, email text, name varchar(100), \
                        balance numeric(12,4), legacy text, created timestamp, small bigint); \
                        INSERT INTO accounts SELECT g, 'a' || g, 'n' || g, g, 'x', now(), g FROM generate_series(1, 50) g;";

#[test]
fn data_loss_is_marked_on_the_drop_and_on_conversions_that_cut_values() {
    let to = "CREATE TABLE accounts (id bigint PRIMARY KEY, email text, name varchar(20), \
              balance numeric(12,2), created timestamp, small bigint);";
    let (found, marked) = hazards_of("hz_loss", &format!("{ACCOUNTS} CREATE TABLE audit (id int);"), to, true);
    assert_eq!(on(&found, "data-loss", "drop-table"), ["DROP TABLE public.audit"], "{marked}");
    assert_eq!(on(&found, "data-loss", "drop-column"), ["ALTER TABLE public.accounts DROP COLUMN legacy"], "{marked}");
    let cut = on(&found, "data-loss", "type-conversion");
    assert!(cut.iter().any(|s| s.contains("ALTER COLUMN name TYPE")), "{marked}");
    assert!(cut.iter().any(|s| s.contains("ALTER COLUMN balance TYPE")), "{marked}");
    let before = marks_before(&marked, "DROP TABLE public.audit");
    assert!(before.iter().any(|l| l.starts_with("-- hazard: data-loss (drop-table)")), "{before:?}");
    assert!(before.iter().any(|l| l.starts_with("--   safer: ")), "{before:?}");
}

#[test]
fn a_conversion_that_can_fail_and_a_not_null_column_without_default_may_fail() {
    let to = "CREATE TABLE accounts (id bigint PRIMARY KEY, email text, name varchar(100), \
              balance numeric(12,4), legacy text, created timestamp, small integer, code int NOT NULL);";
    // The NOT NULL column fails on the rows there: the SQL is not applied.
    let (found, marked) = hazards_of("hz_fail", ACCOUNTS, to, false);
    assert!(on(&found, "may-fail", "type-conversion").iter().any(|s| s.contains("ALTER COLUMN small TYPE integer")));
    assert!(on(&found, "may-fail", "add-column-not-null-without-default")
        .iter()
        .any(|s| s.contains("ADD COLUMN code")));
    let at = marks_before(&marked, "ALTER TABLE public.accounts ALTER COLUMN small");
    assert!(at.iter().any(|l| l.contains("pg_input_is_valid")), "{at:?}");
}

#[test]
fn rewrites_and_blocking_locks_are_marked_only_on_tables_that_exist() {
    let to = "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL, name text, \
              balance numeric(12,4), legacy text, created timestamp, small bigint, score int DEFAULT (random() * 10)::int); \
              CREATE INDEX accounts_email ON accounts (email); \
              CREATE TABLE fresh (id int PRIMARY KEY, note text); CREATE INDEX fresh_note ON fresh (note);";
    let (found, marked) = hazards_of("hz_lock", ACCOUNTS, to, true);
    assert_eq!(
        on(&found, "blocking-lock", "index-not-concurrent"),
        ["CREATE INDEX accounts_email ON public.accounts USING btree (email)"],
        "{marked}"
    );
    assert!(on(&found, "blocking-lock", "set-not-null").iter().any(|s| s.contains("email")), "{marked}");
    assert!(on(&found, "rewrite", "add-column-volatile-default").iter().any(|s| s.contains("score")), "{marked}");
    // varchar to text is binary-compatible: no rewrite, nothing lost.
    assert!(!found.iter().any(|h| h.sql.contains("ALTER COLUMN name TYPE")), "{marked}");
    // Nothing about the table the DDL itself creates.
    assert!(!found.iter().any(|h| h.sql.contains("fresh")), "{marked}");
}

#[test]
fn equal_schemas_and_additive_changes_have_no_hazards() {
    let to = format!("{ACCOUNTS} ALTER TABLE accounts ADD COLUMN note text; CREATE TABLE extra (id int);");
    let (found, marked) = hazards_of("hz_none", ACCOUNTS, &to, true);
    assert!(found.is_empty(), "{found:#?}");
    assert!(!marked.contains("-- hazard"), "{marked}");
}

#[test]
fn a_rename_keeps_the_data_and_is_marked_as_breaking_running_code() {
    let to = "CREATE TABLE accounts (id bigint PRIMARY KEY, email_address text, name varchar(100), \
              balance numeric(12,4), legacy text, created timestamp, small bigint);";
    let (found, marked) = hazards_of("hz_rename", ACCOUNTS, to, true);
    assert_eq!(
        on(&found, "breaks-clients", "rename-column"),
        ["ALTER TABLE public.accounts RENAME COLUMN email TO email_address"],
        "{marked}"
    );
    assert!(!found.iter().any(|h| h.hazard.id() == "data-loss"), "{marked}");
}
