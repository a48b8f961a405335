//! `migsafe lint --db` reads real table sizes: an index on a small table is low risk, the
//! same index with the size unknown is treated as large.

use std::process::Command;

use migsafe_pg::testing::TestDb;

#[test]
fn lint_uses_real_table_sizes_from_the_database() {
    let db = TestDb::new("lint_sizes");
    db.client().batch_execute("CREATE TABLE messages (id int, created_at timestamptz); INSERT INTO messages SELECT g, now() FROM generate_series(1, 5000) g; ANALYZE messages;").unwrap();
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("002_idx.sql");
    std::fs::write(&f, "CREATE INDEX CONCURRENTLY messages_at ON messages (created_at);").unwrap();
    let risk = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_migsafe"))
            .arg("lint")
            .arg(&f)
            .args(["--format", "json"])
            .args(extra)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["migrations"][0]["risk"]["level"].as_str().unwrap().to_string(),
            v["migrations"][0]["risk"]["reasons"][0].as_str().unwrap().to_string(),
        )
    };
    let (level, reason) = risk(&[]);
    assert_eq!(level, "medium");
    assert!(reason.contains("size unknown"), "{reason}");
    let (level, reason) = risk(&["--db", &db.spec.redacted()]);
    assert_eq!(level, "low", "{reason}");
    assert!(reason.contains("5000 rows"), "{reason}");
}
