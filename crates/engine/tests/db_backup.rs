//! Backups on a real server: round trip (dump, verify, restore-test), 0600 files, corruption
//! and truncation detected, retention that keeps the newest verified backup. Where the
//! machine has no pg_dump of the server's version, the error must say so.

use std::os::unix::fs::PermissionsExt;

use migsafe_engine::backup::{self, BackupOptions};
use migsafe_pg::binaries::client_program;
use migsafe_pg::testing::{cluster, TestDb};

fn source(label: &str) -> TestDb {
    let d = TestDb::new(label);
    d.client()
        .batch_execute(
            "CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL);
             INSERT INTO users (name) SELECT 'u' || g FROM generate_series(1, 1000) g;
             CREATE VIEW names AS SELECT name FROM users;
             CREATE INDEX users_name ON users (name);",
        )
        .unwrap();
    d
}

fn opts(dir: &std::path::Path) -> BackupOptions {
    BackupOptions {
        dir: dir.to_path_buf(),
        restore_test: true,
        tool_dirs: vec![],
        pg_bin: Some(cluster().binaries().bin.clone()),
    }
}

#[test]
fn backup_round_trip_and_tamper_detection() {
    let major = cluster().binaries().major;
    let d = source("backup_src");
    let dir = tempfile::tempdir().unwrap();
    let result = backup::backup(&d.spec, &opts(dir.path()));
    if client_program("pg_dump", major, &[]).is_err() {
        let e = result.unwrap_err().to_string();
        assert!(e.contains(&format!("no pg_dump for PostgreSQL {major}")), "{e}");
        return;
    }
    let r = result.unwrap();
    let m = &r.manifest;
    assert!(m.verified && m.restore_tested, "{m:#?}");
    assert!(m.restore_differences.is_empty(), "{:?}", m.restore_differences);
    assert_eq!(m.tables, vec!["public.users".to_string()]);
    assert!(r.path.file_name().unwrap().to_str().unwrap().starts_with(&d.name));
    let mode = std::fs::metadata(&r.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!r.pitr.enabled && r.pitr.advice.is_some(), "the throwaway cluster has no WAL archiving");
    assert!(backup::verify_file(&r.path, &[]).is_ok());

    // Truncated.
    let bytes = std::fs::read(&r.path).unwrap();
    std::fs::write(&r.path, &bytes[..bytes.len() / 2]).unwrap();
    let e = backup::verify_file(&r.path, &[]).unwrap_err().to_string();
    assert!(e.contains("truncated or altered"), "{e}");
    // One byte changed.
    let mut altered = bytes.clone();
    let mid = altered.len() / 2;
    altered[mid] ^= 0xff;
    std::fs::write(&r.path, &altered).unwrap();
    let e = backup::verify_file(&r.path, &[]).unwrap_err().to_string();
    assert!(e.contains("checksum differs"), "{e}");
    std::fs::write(&r.path, &bytes).unwrap();
    assert!(backup::verify_file(&r.path, &[]).is_ok());
}

#[test]
fn retention_keeps_the_newest_verified_backup() {
    let major = cluster().binaries().major;
    if client_program("pg_dump", major, &[]).is_err() {
        // Covered by the round-trip test's assertion on the error message.
        let d = source("backup_keep_nodump");
        let dir = tempfile::tempdir().unwrap();
        assert!(backup::backup(&d.spec, &opts(dir.path())).is_err());
        return;
    }
    let d = source("backup_keep");
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(dir.path());
    o.restore_test = false;
    let mut paths = Vec::new();
    for _ in 0..3 {
        paths.push(backup::backup(&d.spec, &o).unwrap().path);
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    assert_eq!(backup::list(dir.path()).unwrap().len(), 3);
    let gone = backup::prune(dir.path(), Some(1), None).unwrap();
    assert_eq!(gone.len(), 2);
    let left = backup::list(dir.path()).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0, paths[2]);
    // Even keep 0 never deletes the newest verified backup.
    assert!(backup::prune(dir.path(), Some(0), Some(std::time::Duration::from_secs(0))).unwrap().is_empty());
}
