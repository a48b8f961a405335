//! `migsafe backfill` killed with SIGKILL at several points and run again: every row is
//! updated exactly once (no batch redone, none skipped).

use std::process::{Command, Stdio};
use std::time::Duration;

use migsafe_pg::testing::TestDb;

#[test]
fn killed_and_resumed_backfill_updates_every_row_exactly_once() {
    let db = TestDb::new("backfill_kill");
    db.client()
        .batch_execute(
            "CREATE TABLE users (id bigint PRIMARY KEY, full_name text NOT NULL, display_name text, touched int NOT NULL DEFAULT 0);
             INSERT INTO users (id, full_name) SELECT g, 'User ' || g FROM generate_series(1, 300000) g;",
        )
        .unwrap();
    let url = db.spec.redacted();
    let run = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_migsafe"));
        c.args([
            "backfill",
            "--db",
            &url,
            "--table",
            "users",
            "--set",
            "display_name = full_name, touched = touched + 1",
        ])
        .args(["--where", "display_name IS NULL", "--batch", "2000", "--sleep", "20ms"]);
        c
    };
    for delay in [200u64, 500, 800, 500] {
        let mut child = run().stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = run().output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("resumed from its checkpoint") && text.contains("no row matches --where"), "{text}");
    let r = db
        .client()
        .query_one("SELECT count(*) FILTER (WHERE display_name IS DISTINCT FROM full_name), min(touched), max(touched) FROM users", &[])
        .unwrap();
    let (wrong, min, max): (i64, i32, i32) = (r.get(0), r.get(1), r.get(2));
    assert_eq!((wrong, min, max), (0, 1, 1), "rows redone or skipped");
    let dry = Command::new(env!("CARGO_BIN_EXE_migsafe"))
        .args([
            "backfill",
            "--db",
            &url,
            "--table",
            "users",
            "--set",
            "display_name = full_name",
            "--where",
            "display_name IS NULL",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&dry.stdout).contains("dry run: 0 rows"));
    let bad = Command::new(env!("CARGO_BIN_EXE_migsafe"))
        .args(["backfill", "--db", &url, "--table", "users", "--set", "display_name = = 1"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
