//! The whole crates.io history (284 up/down pairs, contrib extensions, views, functions,
//! triggers, enums): rehearsal runs through it and names the down migrations that do not
//! restore the schema, with their diffs; and lint's predictions agree with what the server did
//! on every statement. Runs on the default server (PostgreSQL 15, which the
//! corpus targets).

use std::path::Path;
use std::time::Duration;

use migsafe_engine::rehearse::{rehearse, Quiet, RehearseOptions};
use migsafe_engine::scratch::ScratchServer;
use migsafe_engine::MigrationSet;

#[test]
fn crates_io_history_rehearses_and_names_broken_down_migrations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/crates-io");
    let set = MigrationSet::load(&dir).unwrap();
    let server = ScratchServer::throwaway(None).unwrap();
    let r = rehearse(&set, &server, &RehearseOptions { budget: Duration::from_secs(30), ..Default::default() }, &Quiet)
        .unwrap();
    assert_eq!(r.migrations.len(), 284);
    // Every migration applies forward (the history is real and consistent).
    for m in &r.migrations {
        let f = &m.steps[0];
        assert!(f.step == "forward" && f.ok, "{} forward: {}", m.id(), f.detail);
    }
    let failed: Vec<&str> = r.migrations.iter().filter(|m| !m.ok).map(|m| m.version.as_str()).collect();
    // Known broken down files: a missing semicolon, defaults not restored, a unique constraint
    // not restored, a dropped table not recreated.
    for v in ["0013", "0090", "0132", "0136"] {
        assert!(failed.contains(&v), "{v} should fail; failed: {failed:?}");
    }
    let m0090 = r.migrations.iter().find(|m| m.version == "0090").unwrap();
    let compare = m0090.steps.iter().find(|s| s.step == "compare").unwrap();
    assert!(compare.detail.contains("users_email_key"), "{}", compare.detail);
    let m0132 = r.migrations.iter().find(|m| m.version == "0132").unwrap();
    let rb = m0132.steps.iter().find(|s| s.step == "rollback").unwrap();
    assert!(
        rb.detail.contains("0132_downloads_need_no_id.down.sql:2:1") && rb.detail.contains("syntax error"),
        "{}",
        rb.detail
    );
    // Most down migrations are fine.
    assert!(failed.len() < 60, "{} failed: {failed:?}", failed.len());
    // Lint's model is PostgreSQL's: on every statement of the history, the locks (SHARE UPDATE
    // EXCLUSIVE and stronger), rewrites and whole-table scans lint predicts are the ones the
    // server took (75 mismatches when the cross-check was first run).
    let mismatches: Vec<String> = r
        .migrations
        .iter()
        .flat_map(|m| m.lint_model.iter().map(move |x| format!("{}: {}", m.id(), x.text())))
        .collect();
    assert!(mismatches.is_empty(), "{} lint-model mismatches:\n{}", mismatches.len(), mismatches.join("\n"));
}
