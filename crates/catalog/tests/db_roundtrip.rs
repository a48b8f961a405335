//! The round-trip property on real schemas: for schemas A and B, applying
//! `A.diff(B).to_sql()` to a database holding A gives a snapshot equal to B — on the migra
//! fixture pairs (both directions) on whichever server the suite runs against.

use std::path::{Path, PathBuf};

use migsafe_catalog::Snapshot;
use migsafe_pg::testing::TestDb;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/migra-fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    v.sort();
    v
}

fn db_with(label: &str, sql: &str) -> TestDb {
    let db = TestDb::new(label);
    let mut c = db.client();
    // Roles are cluster-wide; the fixtures grant to this one.
    c.batch_execute(
        "DO $$ BEGIN CREATE ROLE schemainspect_test_role; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    )
    .unwrap();
    c.batch_execute(sql).unwrap_or_else(|e| panic!("{label}: {}", e.as_db_error().map(|d| d.message().to_string()).unwrap_or(e.to_string())));
    db
}

/// Apply diff(from → to) to `from_db` and return what still differs (empty = property holds).
fn round_trip(label: &str, from_sql: &str, to_sql: &str) -> Result<(), String> {
    let from = db_with(&format!("{label}_from"), from_sql);
    let to = db_with(&format!("{label}_to"), to_sql);
    let a = Snapshot::capture(&mut from.client()).unwrap();
    let b = Snapshot::capture(&mut to.client()).unwrap();
    let diff = a.diff(&b);
    let ddl = diff.to_sql();
    let mut c = from.client();
    if let Err(e) = c.batch_execute(&ddl) {
        return Err(format!("{label}: the DDL failed: {}\n--- DDL ---\n{ddl}", e.as_db_error().map(|d| d.message().to_string()).unwrap_or(e.to_string())));
    }
    let a2 = Snapshot::capture(&mut c).unwrap();
    let left = a2.diff(&b);
    if !left.differences.is_empty() {
        return Err(format!("{label}: still differs after applying the DDL:\n{}\n--- DDL ---\n{ddl}", left.summary()));
    }
    Ok(())
}

#[test]
fn migra_fixture_pairs_round_trip_both_ways() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for dir in fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let a = std::fs::read_to_string(dir.join("a.sql")).unwrap();
        let b = std::fs::read_to_string(dir.join("b.sql")).unwrap();
        for (label, x, y) in [(format!("{name}_ab"), &a, &b), (format!("{name}_ba"), &b, &a)] {
            ran += 1;
            if let Err(e) = round_trip(&label, x, y) {
                failures.push(e);
            }
        }
    }
    assert!(ran >= 52);
    assert!(failures.is_empty(), "{} of {ran} round trips failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn equal_schemas_have_an_empty_diff_and_no_sql() {
    let sql = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/migra-fixtures/everything/b.sql")).unwrap();
    let x = db_with("equal_x", &sql);
    let y = db_with("equal_y", &sql);
    let a = Snapshot::capture(&mut x.client()).unwrap();
    let b = Snapshot::capture(&mut y.client()).unwrap();
    assert!(a.diff(&b).is_empty(), "{}", a.diff(&b).summary());
    assert_eq!(a.diff(&b).to_sql(), "");
    // JSON round trip is lossless and stable.
    let json = a.to_json();
    assert_eq!(Snapshot::from_json(&json).unwrap(), a);
    assert_eq!(Snapshot::from_json(&json).unwrap().to_json(), json);
}
