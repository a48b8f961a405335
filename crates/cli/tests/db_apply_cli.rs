//! `migsafe apply` killed with SIGKILL at many points: afterwards `status` is right, no
//! transactional migration is half-visible, `diagnose` explains what a statement-by-statement
//! one left, and a re-run (`--resume`) completes. Also Ctrl-C and exit codes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use migsafe_pg::testing::TestDb;

const FILES: &[(&str, &str)] = &[
    ("001_ab.sql", "CREATE TABLE a (id int);\nSELECT pg_sleep(0.25);\nCREATE TABLE b (id int);\n"),
    ("001_ab.rollback.sql", "DROP TABLE b; DROP TABLE a;"),
    (
        "002_cd.sql",
        "-- migsafe:no-transaction\nCREATE TABLE c (id int);\nSELECT pg_sleep(0.25);\nCREATE INDEX CONCURRENTLY c_id ON c (id);\nSELECT pg_sleep(0.25);\nCREATE TABLE d (id int);\n",
    ),
    ("002_cd.rollback.sql", "DROP TABLE IF EXISTS d; DROP TABLE IF EXISTS c;"),
    ("003_e.sql", "CREATE TABLE e (id int);\nSELECT pg_sleep(0.2);\n"),
    ("003_e.rollback.sql", "DROP TABLE e;"),
];

fn migsafe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_migsafe"));
    c.env_remove("DATABASE_URL");
    c
}

fn apply_cmd(dir: &Path, url: &str, extra: &[&str]) -> Command {
    let mut c = migsafe();
    c.arg("apply").arg(dir).args(["--db", url, "--no-backup", "--lock-timeout", "500ms", "--lock-retries", "20"]);
    c.args(extra);
    c
}

fn exists(db: &TestDb, rel: &str) -> bool {
    db.client().query_one("SELECT to_regclass($1) IS NOT NULL", &[&rel]).unwrap().get(0)
}

fn states(dir: &Path, url: &str) -> Vec<(String, String)> {
    let out = migsafe().arg("status").arg(dir).args(["--db", url, "--format", "json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["version"].as_str().unwrap().to_string(), m["state"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn kill_9_at_many_points_leaves_a_diagnosable_state_and_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    for (n, t) in FILES {
        std::fs::write(dir.path().join(n), t).unwrap();
    }
    // Spread over the whole run (about 1.2 s): before, inside each migration, between them.
    let delays_ms = [30u64, 120, 260, 400, 520, 650, 780, 900, 1050, 1300];
    let mut half_done = 0;
    for (round, delay) in delays_ms.iter().enumerate() {
        let db = TestDb::new(&format!("kill9_{round}"));
        let url = db.spec.redacted();
        let mut child = apply_cmd(dir.path(), &url, &[]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(*delay));
        let _ = child.kill();
        let _ = child.wait();
        // The server may still be finishing the dead client's statement; give it a moment.
        std::thread::sleep(Duration::from_millis(400));
        let st = states(dir.path(), &url);
        // Transactional migrations are all or nothing.
        assert_eq!(exists(&db, "a"), exists(&db, "b"), "round {round}: 001 half-visible");
        if exists(&db, "a") {
            assert_eq!(st[0].1, "applied", "round {round}: {st:?}");
        }
        let e_state = &st[2].1;
        assert!(["applied", "pending", "running", "failed"].contains(&e_state.as_str()), "{st:?}");
        assert_eq!(
            exists(&db, "e"),
            e_state == "applied",
            "round {round}: 003 state {e_state} disagrees with the schema"
        );
        // A half-done statement-by-statement migration is explained by diagnose.
        if st[1].1 == "running" {
            half_done += 1;
            let out = migsafe().arg("diagnose").arg(dir.path()).args(["--db", &url]).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("002_cd") && text.contains("applied (") && text.contains("--resume"),
                "round {round}: {text}"
            );
            if exists(&db, "c") {
                assert!(text.contains("line 2: CREATE TABLE"), "{text}");
            }
        }
        // A re-run completes.
        let out = apply_cmd(dir.path(), &url, &["--resume"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "round {round}: {}", String::from_utf8_lossy(&out.stdout));
        for t in ["a", "b", "c", "d", "e"] {
            assert!(exists(&db, t), "round {round}: {t} missing after the re-run");
        }
        let st = states(dir.path(), &url);
        assert!(st.iter().all(|(_, s)| s == "applied"), "round {round}: {st:?}");
    }
    assert!(half_done > 0, "no round stopped inside the statement-by-statement migration");
}

#[test]
fn ctrl_c_cancels_the_running_statement_and_says_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("001_slow.sql"), "CREATE TABLE s (id int);\nSELECT pg_sleep(30);\n").unwrap();
    std::fs::write(dir.path().join("001_slow.rollback.sql"), "DROP TABLE s;").unwrap();
    let db = TestDb::new("ctrl_c");
    let url = db.spec.redacted();
    let child = apply_cmd(dir.path(), &url, &[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(text.contains("interrupted") && text.contains("rolled back with its transaction"), "{text}");
    assert!(!exists(&db, "s"));
    assert_eq!(states(dir.path(), &url)[0].1, "failed");
}

#[test]
fn passwords_never_appear_in_output() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("001_a.sql"), "CREATE TABLE a (id int);").unwrap();
    let out = migsafe()
        .arg("status")
        .arg(dir.path())
        .args(["--db", "postgresql://app:SuperSecret123@127.0.0.1:1/nope?connect_timeout=1"])
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(!all.contains("SuperSecret123"), "{all}");
    assert!(all.contains("app:***@127.0.0.1"), "{all}");
}

#[test]
fn a_rolled_back_apply_notifies_and_writes_an_incident_report_with_its_timeline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("001_a.sql"), "CREATE TABLE a (id int);").unwrap();
    std::fs::write(dir.path().join("001_a.rollback.sql"), "DROP TABLE a;").unwrap();
    std::fs::write(dir.path().join("002_bad.sql"), "CREATE TABLE b (id int);\nSELECT 1 / 0;\n").unwrap();
    std::fs::write(dir.path().join("002_bad.rollback.sql"), "DROP TABLE b;").unwrap();
    let db = TestDb::new("incident");
    let url = db.spec.redacted();
    let work = tempfile::tempdir().unwrap();
    let events = work.path().join("events.jsonl");
    let report = work.path().join("out/apply.json");
    std::fs::create_dir_all(report.parent().unwrap()).unwrap();
    let notify = format!("cat >> '{}'; echo >> '{}'", events.display(), events.display());
    let out =
        apply_cmd(dir.path(), &url, &["--notify-cmd", &notify, "--report", report.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{text}");
    assert!(!exists(&db, "a") && !exists(&db, "b"));
    // The command got the start and the rollback, as JSON with a `text` Slack would show.
    let got: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = got.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["start", "rollback"], "{got:?}");
    assert!(got[1]["text"].as_str().unwrap().contains("division by zero"), "{got:?}");
    // The report file, and the incident report beside it: P0, the timeline in order, mode 0600.
    let rep: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(rep["outcome"]["outcome"], "rolled_back", "{rep}");
    assert!(rep["outcome"]["reason"].as_str().unwrap().contains("002_bad"), "{rep}");
    let incident = std::fs::read_dir(report.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-incident.md"))
        .expect("an incident report beside the report");
    let md = std::fs::read_to_string(&incident).unwrap();
    assert!(md.contains("**Severity**: P0"), "{md}");
    let timeline = &md[md.find("## Timeline").expect("a timeline")..];
    let at = |s: &str| timeline.find(s).unwrap_or_else(|| panic!("{s:?} not in {md}"));
    assert!(at("001_a applied") < at("002_bad failed") && at("002_bad failed") < at("001_a rolled back"), "{md}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&incident).unwrap().permissions().mode() & 0o777, 0o600);
}
