//! A migration's risk is never below what its findings imply: an `error` finding, or one that
//! reads a whole table under a lock that blocks writes, on an existing table never comes with
//! risk LOW, and on a table over the guide's 1M rows (or of unknown size)
//! it is HIGH. Property-tested over statements drawn from every kind of change the rules know,
//! on tables of unknown, small and large size, and checked on every real migration we keep.

use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

use migsafe_sql::lint::{LintOptions, Linter, Severity, SourceFile};
use migsafe_sql::risk::RiskLevel;
use migsafe_sql::QualName;

const SETUP: &str = "CREATE TABLE accounts (id bigint PRIMARY KEY, email text, plan text, n int, owner_id bigint);\n\
                     CREATE TABLE owners (id bigint PRIMARY KEY);\n\
                     CREATE INDEX accounts_email ON accounts (email);\n\
                     CREATE INDEX accounts_plan_lower ON accounts (lower(plan));\n\
                     CREATE DOMAIN label AS text;\nALTER TABLE owners ADD COLUMN tag label;\n";

/// Changes to the existing `accounts` table, safe and unsafe, covering every rule's trigger.
const CHANGES: &[&str] = &[
    "ALTER TABLE accounts ADD COLUMN a text",
    "ALTER TABLE accounts ADD COLUMN b float8 DEFAULT random()",
    "ALTER TABLE accounts ADD COLUMN c bigserial",
    "ALTER TABLE accounts ADD COLUMN d int NOT NULL DEFAULT 0",
    "ALTER TABLE accounts ADD COLUMN e int NOT NULL",
    "ALTER TABLE accounts ADD COLUMN f bigint REFERENCES owners (id)",
    "ALTER TABLE accounts ADD COLUMN f2 bigint DEFAULT NULL REFERENCES owners (id)",
    "ALTER TABLE accounts ALTER COLUMN plan TYPE varchar",
    "ALTER DOMAIN label ADD CONSTRAINT label_short CHECK (length(VALUE) < 20)",
    "ALTER TABLE accounts ADD COLUMN g int CHECK (g > 0)",
    "ALTER TABLE accounts ADD COLUMN h int UNIQUE",
    "ALTER TABLE accounts ADD COLUMN i int GENERATED ALWAYS AS (n * 2) STORED",
    "ALTER TABLE accounts ALTER COLUMN n TYPE bigint",
    "ALTER TABLE accounts ALTER COLUMN email TYPE varchar(100)",
    "ALTER TABLE accounts ALTER COLUMN plan SET NOT NULL",
    "ALTER TABLE accounts ADD CONSTRAINT k1 CHECK (n > 0)",
    "ALTER TABLE accounts ADD CONSTRAINT k2 CHECK (n > 0) NOT VALID",
    "ALTER TABLE accounts ADD CONSTRAINT fk1 FOREIGN KEY (owner_id) REFERENCES owners (id)",
    "ALTER TABLE accounts ADD CONSTRAINT fk2 FOREIGN KEY (owner_id) REFERENCES owners (id) NOT VALID",
    "ALTER TABLE accounts ADD CONSTRAINT u1 UNIQUE (email)",
    "ALTER TABLE accounts DROP COLUMN plan",
    "ALTER TABLE accounts RENAME COLUMN plan TO tier",
    "ALTER TABLE accounts RENAME TO users",
    "ALTER TABLE accounts SET LOGGED",
    "ALTER TABLE accounts DISABLE TRIGGER ALL",
    "CREATE INDEX accounts_plan ON accounts (plan)",
    "CREATE INDEX CONCURRENTLY accounts_n ON accounts (n)",
    "DROP INDEX accounts_email",
    "UPDATE accounts SET plan = 'free'",
    "UPDATE accounts SET plan = 'free' WHERE id < 100",
    "DELETE FROM accounts",
    "TRUNCATE accounts",
    "LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE",
    "DROP TABLE accounts",
    "VACUUM FULL accounts",
];

fn lint(changes: &[&str], rows: Option<i64>, version: u32) -> (Vec<Severity>, RiskLevel, String) {
    let mut table_rows = BTreeMap::new();
    if let Some(n) = rows {
        table_rows.insert(QualName::qualified("public", "accounts"), n);
        table_rows.insert(QualName::qualified("public", "owners"), n);
    }
    let mut linter = Linter::new(LintOptions { pg_version: version, table_rows, ..Default::default() });
    linter.lint(SourceFile { path: "001_setup.sql", source: SETUP });
    let text: String = changes.iter().map(|c| format!("{c};\n")).collect();
    let out = linter.lint(SourceFile { path: "002_change.sql", source: &text });
    // A finding that reads a whole table under a lock blocking writes counts as an error here.
    let severities = out.findings.iter().map(|f| if f.rule.scans() { Severity::Error } else { f.severity }).collect();
    (severities, out.risk.level, text)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn an_error_finding_on_an_existing_table_is_never_low(
        picks in proptest::collection::vec(0..CHANGES.len(), 1..4),
        size in 0..3usize,
        version in prop::sample::select(vec![11u32, 15, 18]),
    ) {
        let changes: Vec<&str> = picks.iter().map(|&i| CHANGES[i]).collect();
        let rows = [None, Some(1_000), Some(5_000_000)][size];
        let (severities, level, text) = lint(&changes, rows, version);
        if severities.contains(&Severity::Error) {
            prop_assert!(level >= RiskLevel::Medium, "error finding with risk {level:?}:\n{text}");
            if rows != Some(1_000) {
                prop_assert_eq!(level, RiskLevel::High, "error finding on a large or unknown table:\n{}", text);
            }
        }
    }
}

#[test]
fn every_change_alone() {
    // Deterministic coverage of the pool: each change on a table of unknown size.
    for c in CHANGES {
        let (severities, level, text) = lint(&[c], None, 15);
        if severities.contains(&Severity::Error) {
            assert_eq!(level, RiskLevel::High, "{text}");
        }
    }
}

#[test]
fn real_migrations_keep_the_invariant() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut checked = 0;
    for dir in ["corpus/crates-io", "examples/nchat/migrations", "examples/unsafe/migrations"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql") && !p.to_string_lossy().contains("rollback"))
            .filter(|p| !p.to_string_lossy().ends_with("down.sql"))
            .collect();
        files.sort();
        let mut linter = Linter::new(LintOptions::default());
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let path = f.display().to_string();
            let out = linter.lint(SourceFile { path: &path, source: &text });
            if out.findings.iter().any(|f| f.severity == Severity::Error || f.rule.scans()) {
                checked += 1;
                assert!(
                    out.risk.level >= RiskLevel::Medium,
                    "{path}: error or scan findings with risk {:?}",
                    out.risk.level
                );
            }
        }
    }
    assert!(checked > 10, "only {checked} migrations with error findings: corpus not found?");
}
