//! The `migsafe lint` binary, run as a user runs it: exit codes, formats, the examples.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn migsafe(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_migsafe")).args(args).current_dir(root()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.extend(["--format", "json"]);
    let (_, out, err) = migsafe(&a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"))
}

#[test]
fn every_unsafe_example_triggers_the_rule_it_is_named_after() {
    let report = json(&["lint", "examples/unsafe/migrations"]);
    let mut covered = std::collections::BTreeSet::new();
    for m in report["migrations"].as_array().unwrap() {
        let file = m["file"].as_str().unwrap();
        let name = Path::new(file).file_stem().unwrap().to_str().unwrap();
        let (_, rule) = name.split_once('_').unwrap();
        if rule == "base" {
            assert!(m["findings"].as_array().unwrap().is_empty(), "{m}");
            continue;
        }
        let rules: Vec<&str> = m["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
        assert!(rules.contains(&rule), "{file}: expected {rule}, got {rules:?}");
        covered.insert(rule.to_string());
    }
    // Every rule has an example, except the one that only applies before PostgreSQL 12.
    let (_, list, _) = migsafe(&["rules"]);
    for line in list.lines() {
        let id = line.split_whitespace().next().unwrap();
        if id != "enum-value-in-transaction" {
            assert!(covered.contains(id), "no example in examples/unsafe for rule {id}");
        }
    }
}

#[test]
fn the_nchat_example_is_clean() {
    let (code, out, err) = migsafe(&["lint", "examples/nchat/migrations"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("24 migrations linted: 0 errors, 0 warnings, 0 info (2 suppressed)"), "{out}");
}

#[test]
fn exit_codes() {
    assert_eq!(migsafe(&["lint", "examples/unsafe/migrations/002_index-not-concurrent.sql"]).0, 1);
    assert_eq!(migsafe(&["lint", "--fail-on", "none", "examples/unsafe/migrations"]).0, 0);
    assert_eq!(migsafe(&["lint", "--fail-on", "error", "examples/unsafe/migrations/021_drop-column.sql"]).0, 0);
    assert_eq!(migsafe(&["lint", "--fail-on", "warning", "examples/unsafe/migrations/021_drop-column.sql"]).0, 1);
    let (code, _, err) = migsafe(&["lint", "no/such/folder"]);
    assert_eq!(code, 2);
    assert!(err.contains("no/such/folder"), "{err}");
    let (code, _, err) = migsafe(&["lint", "--disable", "no-such-rule", "examples/nchat/migrations"]);
    assert_eq!(code, 2);
    assert!(err.contains("no-such-rule"));
}

#[test]
fn syntax_errors_are_reported_like_a_compiler() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("003_broken.sql");
    std::fs::write(&f, "CREATE TABLE ok (id int);\nALTER TABLE ok\n  ADD COLUMN x int,\n  ADD COLUMN y int int;\n")
        .unwrap();
    let (code, out, _) = migsafe(&["lint", f.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("error[syntax]: syntax error at or near \"int\""), "{out}");
    assert!(out.contains(&format!("{}:4:20", f.display())), "{out}");
    assert!(out.contains("4 |   ADD COLUMN y int int;"), "{out}");
    assert!(out.contains("  |                    ^"), "{out}");
}

#[test]
fn json_shape_is_the_documented_one() {
    let r = json(&["lint", "examples/unsafe/migrations/021_drop-column.sql"]);
    let m = &r["migrations"][0];
    for key in ["version", "name", "file", "risk", "findings"] {
        assert!(m.get(key).is_some(), "missing {key}: {m}");
    }
    for key in ["level", "reasons", "downtime", "testing", "approvals"] {
        assert!(m["risk"].get(key).is_some(), "missing risk.{key}");
    }
    let f = &m["findings"][0];
    for key in ["rule", "severity", "file", "line", "column", "message", "help"] {
        assert!(f.get(key).is_some(), "missing finding.{key}");
    }
    assert_eq!(m["version"], "021");
    assert_eq!(f["rule"], "drop-column");
    assert_eq!(f["severity"], "warning");
    assert_eq!(m["risk"]["level"], "high");
}

fn snapshot_format(format: &str) -> String {
    let (_, out, _) = migsafe(&[
        "lint",
        "--format",
        format,
        "examples/unsafe/migrations/006_foreign-key-without-not-valid.sql",
        "examples/unsafe/migrations/021_drop-column.sql",
        "examples/unsafe/migrations/040_prefer-text.sql",
    ]);
    out.replace(env!("CARGO_PKG_VERSION"), "VERSION")
}

#[test]
fn format_snapshots() {
    for format in ["human", "json", "sarif", "github", "junit", "markdown"] {
        insta::assert_snapshot!(format!("lint_{format}"), snapshot_format(format));
    }
}
