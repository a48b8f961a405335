//! `migsafe rehearse` as a user runs it, and its HTML report rendered in a real headless
//! browser (Debian's chromium, installed by `make test`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn pg_bin() -> String {
    migsafe_pg::testing::cluster().binaries().bin.display().to_string()
}

#[test]
fn rehearse_writes_an_html_report_that_a_browser_renders() {
    let out = tempfile::tempdir().unwrap();
    let html = out.path().join("report.html");
    let run = Command::new(env!("CARGO_BIN_EXE_migsafe"))
        .args(["rehearse", "examples/nchat/migrations", "--rows", "500", "--report"])
        .arg(&html)
        .args(["--pg-bin", &pg_bin()])
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("24 migrations, 24 passed, 0 failed"), "{stdout}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("054_add_message_bookmarks") && page.contains("class=\"timeline\""));

    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is needed for this test; `make test` installs it (scripts/setup.sh test)");
    let profile = out.path().join("profile");
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    let url = format!("file://{}", html.display());
    let dom = Command::new(chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("<svg class=\"timeline\""), "the browser did not render the timeline");
    assert_eq!(dom.matches("<section class=\"mig ok\">").count(), 24);
    let png = out.path().join("report.png");
    let shot = Command::new(chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--window-size=1200,1600", &format!("--screenshot={}", png.display()), &url])
        .output()
        .unwrap();
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    assert!(bytes.len() > 20_000, "screenshot suspiciously small: {} bytes", bytes.len());
    // Keep it where a human can look at it.
    let keep = root().join("target/demo");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::copy(&png, keep.join("rehearsal-report.png")).unwrap();
}

#[test]
fn rehearse_json_and_exit_code_on_a_broken_rollback() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("001_t.sql"), "CREATE TABLE t (id int PRIMARY KEY);").unwrap();
    std::fs::write(d.path().join("002_c.sql"), "ALTER TABLE t ADD COLUMN c int;").unwrap();
    std::fs::write(d.path().join("002_c.rollback.sql"), "SELECT 1;").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_migsafe"))
        .args(["rehearse", "--format", "json", "--pg-bin", &pg_bin()])
        .arg(d.path())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let m = &v["migrations"][1];
    for key in ["version", "name", "ok", "steps", "locks", "rewrites", "risk"] {
        assert!(m.get(key).is_some(), "missing {key}");
    }
    let step = &m["steps"][0];
    for key in ["step", "ok", "ms", "detail"] {
        assert!(step.get(key).is_some(), "missing steps[].{key}");
    }
    let lock = &m["locks"][0];
    for key in ["relation", "mode", "held_ms", "statement"] {
        assert!(lock.get(key).is_some(), "missing locks[].{key}: {m}");
    }
}
