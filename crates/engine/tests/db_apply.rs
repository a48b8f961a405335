//! `apply` against a real server: exactly-once under concurrency, lock timeouts that retry
//! without stalling traffic, every branch of the decision tree, history and status.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use migsafe_engine::apply::{self, history, ApplyOptions, BackupPolicy, Outcome, RunSettings};
use migsafe_engine::MigrationSet;
use migsafe_pg::testing::TestDb;

fn set(files: &[(&str, &str)]) -> (tempfile::TempDir, MigrationSet) {
    let d = tempfile::tempdir().unwrap();
    for (n, t) in files {
        let path = d.path().join(n);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, t).unwrap();
    }
    let s = MigrationSet::load(d.path()).unwrap();
    (d, s)
}

fn opts() -> ApplyOptions {
    ApplyOptions {
        backup: BackupPolicy::Skip,
        approvals: vec![
            ("Technical Lead".into(), "Ada".into()),
            ("Product Owner".into(), "Bob".into()),
            ("CTO".into(), "Cy".into()),
        ],
        run: RunSettings {
            lock_timeout: Duration::from_millis(300),
            lock_retries: 8,
            backoff: Duration::from_millis(100),
            statement_timeout: None,
            session: Default::default(),
        },
        allow_lint_errors: true,
        ..ApplyOptions::default()
    }
}

const BASIC: &[(&str, &str)] = &[
    ("001_users.sql", "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);"),
    ("001_users.rollback.sql", "DROP TABLE users;"),
    ("002_posts.sql", "CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id));"),
    ("002_posts.rollback.sql", "DROP TABLE posts;"),
    ("003_index.sql", "CREATE INDEX CONCURRENTLY posts_user ON posts (user_id);"),
    ("003_index.rollback.sql", "DROP INDEX CONCURRENTLY posts_user;"),
];

fn applied_count(db: &TestDb, version: &str) -> i64 {
    db.client()
        .query_one("SELECT count(*) FROM migsafe.history WHERE version = $1 AND status = 'applied'", &[&version])
        .unwrap()
        .get(0)
}

#[test]
fn applies_then_has_nothing_to_do_and_reports_status() {
    let db = TestDb::new("apply_basic");
    let (_d, s) = set(BASIC);
    let r = apply::apply(&s, &db.spec, &opts()).unwrap();
    assert_eq!(r.outcome, Outcome::Applied, "{r:#?}");
    assert_eq!(r.applied.len(), 3);
    let r = apply::apply(&s, &db.spec, &opts()).unwrap();
    assert_eq!(r.outcome, Outcome::NothingToDo);
    let rows = history::latest(&mut db.client()).unwrap();
    let st = history::status(&s, &rows);
    assert!(st.iter().all(|l| l.state == history::State::Applied), "{st:?}");
    // Drift: a file changed after it was applied.
    std::fs::write(s.dir.join("002_posts.sql"), "CREATE TABLE posts (id bigint PRIMARY KEY);").unwrap();
    let s2 = MigrationSet::load(&s.dir).unwrap();
    let st = history::status(&s2, &history::latest(&mut db.client()).unwrap());
    assert_eq!(st[1].state, history::State::Drifted);
    let r = apply::apply(&s2, &db.spec, &opts()).unwrap();
    assert_eq!(r.outcome, Outcome::Refused);
    // Rollback two steps, then apply again.
    let r = apply::rollback(&s, &db.spec, Some(2), None, &opts()).unwrap();
    assert_eq!(r.rolled_back.len(), 2, "{r:#?}");
    let st = history::status(&s, &history::latest(&mut db.client()).unwrap());
    assert_eq!(
        st.iter().map(|l| l.state).collect::<Vec<_>>(),
        vec![history::State::Applied, history::State::RolledBack, history::State::RolledBack]
    );
    let r = apply::apply(&s, &db.spec, &opts()).unwrap();
    assert_eq!(r.outcome, Outcome::Applied);
}

#[test]
fn two_applies_at_once_apply_each_migration_exactly_once() {
    let db = TestDb::new("apply_concurrent");
    let slow: Vec<(String, String)> = (1..=6)
        .map(|i| (format!("{i:03}_t{i}.sql"), format!("SELECT pg_sleep(0.05); CREATE TABLE t{i} (id int);")))
        .chain((1..=6).map(|i| (format!("{i:03}_t{i}.rollback.sql"), format!("DROP TABLE t{i};"))))
        .collect();
    let files: Vec<(&str, &str)> = slow.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let (_d, s) = set(&files);
    let outcomes: Vec<Outcome> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let s = &s;
                let spec = db.spec.clone();
                sc.spawn(move || {
                    match apply::apply(s, &spec, &ApplyOptions { wait: Some(Duration::from_secs(30)), ..opts() }) {
                        Ok(r) => r.outcome,
                        Err(e) => panic!("{e:?} / {e}"),
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(outcomes.contains(&Outcome::Applied), "{outcomes:?}");
    assert!(outcomes.contains(&Outcome::NothingToDo), "{outcomes:?}");
    for i in 1..=6 {
        assert_eq!(applied_count(&db, &format!("{i:03}")), 1);
    }
    // Without --wait the second one says who holds the lock.
    let mut holder = db.spec.connect().unwrap();
    holder.query_one("SELECT pg_advisory_lock($1)", &[&apply::LOCK_KEY]).unwrap();
    let r = apply::apply(&s, &db.spec, &opts()).unwrap();
    match r.outcome {
        Outcome::Locked { holder } => assert!(holder.contains("pid"), "{holder}"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn lock_timeout_retries_without_stalling_traffic() {
    let db = TestDb::new("apply_locks");
    db.client().batch_execute("CREATE TABLE hot (id serial PRIMARY KEY, v int); INSERT INTO hot (v) SELECT g FROM generate_series(1, 1000) g;").unwrap();
    let (_d, s) = set(&[
        ("001_col.sql", "ALTER TABLE hot ADD COLUMN note text;"),
        ("001_col.rollback.sql", "ALTER TABLE hot DROP COLUMN note;"),
    ]);
    // A long read transaction holds a lock the ALTER conflicts with.
    let mut blocker = db.client();
    blocker.batch_execute("BEGIN; SELECT count(*) FROM hot;").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(AtomicU64::new(0));
    let traffic = {
        let (stop, worst, spec) = (stop.clone(), worst.clone(), db.spec.clone());
        std::thread::spawn(move || {
            let mut c = spec.connect().unwrap();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                c.batch_execute("INSERT INTO hot (v) VALUES (1); SELECT v FROM hot WHERE id = 1;").unwrap();
                worst.fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        blocker.batch_execute("COMMIT").unwrap();
    });
    let r = apply::apply(&s, &db.spec, &opts()).unwrap();
    release.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    assert_eq!(r.outcome, Outcome::Applied, "{r:#?}");
    assert!(r.applied[0].attempts > 1, "it should have timed out and retried: {r:#?}");
    assert!(r.applied[0].events.iter().any(|e| e.contains("lock_timeout")));
    let worst = worst.load(Ordering::Relaxed);
    assert!(worst < 300 + 200, "traffic stalled {worst} ms, longer than lock_timeout + 200 ms");
}

fn decision(files: &[(&str, &str)], tweak: impl FnOnce(&mut ApplyOptions)) -> (TestDb, apply::ApplyReport) {
    let db = TestDb::new("apply_decision");
    let (_d, s) = set(files);
    let mut o = opts();
    tweak(&mut o);
    let r = apply::apply(&s, &db.spec, &o).unwrap();
    (db, r)
}

fn exists(db: &TestDb, rel: &str) -> bool {
    db.client().query_one("SELECT to_regclass($1) IS NOT NULL", &[&rel]).unwrap().get(0)
}

#[test]
fn a_migration_error_rolls_back_the_whole_run() {
    let files = &[
        ("001_a.sql", "CREATE TABLE a (id int);"),
        ("001_a.rollback.sql", "DROP TABLE a;"),
        ("002_b.sql", "CREATE TABLE b (id int); ALTER TABLE nope ADD COLUMN x int;"),
        ("002_b.rollback.sql", "DROP TABLE b;"),
    ];
    let (db, r) = decision(files, |_| {});
    assert!(matches!(&r.outcome, Outcome::RolledBack { reason } if reason.contains("002_b failed")), "{r:#?}");
    assert!(r.decision.as_deref().unwrap().starts_with("P0"));
    assert!(!exists(&db, "a") && !exists(&db, "b"));
    assert_eq!(r.rolled_back.len(), 1);
    // The failed transactional migration recorded no schema before it (its transaction left
    // nothing); diagnose says so and says to run it again.
    let d = apply::diagnose::diagnose(&MigrationSet::load(set(files).0.path()).unwrap(), &db.spec, None).unwrap();
    let b = d.iter().find(|d| d.version == "002").expect("002 is diagnosed");
    assert!(b.applied.is_empty() && b.not_applied.len() == 2, "{b:?}");
    assert!(b.changed_since_before.starts_with("nothing") && b.next[0].contains("run it again"), "{b:?}");
}

#[test]
fn failing_health_check_rolls_back() {
    let files = &[("001_a.sql", "CREATE TABLE a (id int);"), ("001_a.rollback.sql", "DROP TABLE a;")];
    let (db, r) = decision(files, |o| o.probes.health_cmd = Some("exit 1".into()));
    assert!(matches!(r.outcome, Outcome::RolledBack { .. }), "{r:#?}");
    assert!(r.observations.iter().any(|o| o.what.contains("health command failed")));
    assert!(!exists(&db, "a"));
}

#[test]
fn error_rate_over_threshold_rolls_back_after_assessment() {
    let files = &[("001_a.sql", "CREATE TABLE a (id int);"), ("001_a.rollback.sql", "DROP TABLE a;")];
    let (db, r) = decision(files, |o| {
        o.probes.error_rate_cmd = Some("echo 12.5".into());
        o.assess = Duration::from_millis(300);
        o.watch_interval = Duration::from_millis(100);
    });
    assert!(matches!(r.outcome, Outcome::RolledBack { .. }), "{r:#?}");
    assert!(r.decision.as_deref().unwrap().starts_with("P1"), "{:?}", r.decision);
    assert!(!exists(&db, "a"));
    // Under the threshold: kept.
    let (db, r) = decision(files, |o| o.probes.error_rate_cmd = Some("echo 0.4".into()));
    assert_eq!(r.outcome, Outcome::Applied);
    assert!(exists(&db, "a"));
}

#[test]
fn latency_degradation_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("n");
    // First call (the baseline) prints 100, later calls 300: 200 % worse.
    let cmd = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}; if [ $n -eq 0 ]; then echo 100; else echo 300; fi",
        c = counter.display()
    );
    let files = &[("001_a.sql", "CREATE TABLE a (id int);"), ("001_a.rollback.sql", "DROP TABLE a;")];
    let (db, r) = decision(files, |o| {
        o.probes.latency_cmd = Some(cmd);
        o.act_now = true;
    });
    assert!(matches!(r.outcome, Outcome::RolledBack { .. }), "{r:#?}");
    assert!(r.decision.as_deref().unwrap().starts_with("P2"), "{:?}", r.decision);
    assert!(!exists(&db, "a"));
}

#[test]
fn a_rollback_that_fails_needs_a_human() {
    let files = &[("001_a.sql", "CREATE TABLE a (id int);"), ("001_a.rollback.sql", "DROP TABLE not_there;")];
    let (db, r) = decision(files, |o| o.probes.health_cmd = Some("false".into()));
    match &r.outcome {
        Outcome::NeedsHuman { state, next, .. } => {
            assert!(state.contains("001_a"), "{state}");
            assert!(next.contains("migsafe diagnose"), "{next}");
        }
        o => panic!("{o:?}"),
    }
    assert!(exists(&db, "a"));
}

#[test]
fn approvals_the_matrix_requires_are_enforced() {
    let db = TestDb::new("apply_approvals");
    db.client().batch_execute("CREATE TABLE users (id int PRIMARY KEY, legacy text);").unwrap();
    let (_d, s) = set(&[
        ("001_drop.sql", "ALTER TABLE users DROP COLUMN legacy;"),
        ("001_drop.rollback.sql", "ALTER TABLE users ADD COLUMN legacy text;"),
    ]);
    let mut o = opts();
    o.approvals = vec![("Technical Lead".into(), "Ada".into())];
    let r = apply::apply(&s, &db.spec, &o).unwrap();
    assert_eq!(r.outcome, Outcome::Refused);
    let a = r.preflight.iter().find(|p| p.item.starts_with("approvals")).unwrap();
    assert!(a.detail.contains("Product Owner"), "{}", a.detail);
}

#[test]
fn importing_golang_migrate_history() {
    let db = TestDb::new("apply_import");
    db.client()
        .batch_execute("CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL); INSERT INTO schema_migrations VALUES (2, false); CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL); CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint REFERENCES users (id));")
        .unwrap();
    let (_d, s) = set(BASIC);
    let (n, tool) = history::import(&mut db.client(), &s).unwrap();
    assert_eq!((n, tool.as_str()), (2, "golang-migrate"));
    let r = apply::apply(&s, &db.spec, &opts()).unwrap();
    assert_eq!(r.applied.len(), 1, "only 003 runs: {r:#?}");
}

#[test]
fn copy_from_stdin_rows_are_applied_in_and_out_of_a_transaction() {
    let db = TestDb::new("apply_copy");
    let (_d, s) = set(&[
        ("001_kv.sql", "CREATE TABLE kv (k text PRIMARY KEY, v text);\nCOPY kv FROM stdin;\na\t1\nb\t\\N\n\\.\n"),
        (
            "002_more.sql",
            "-- migsafe:no-transaction\nCOPY kv (k, v) FROM stdin WITH (FORMAT csv);\nc,\"x,y\"\n\\.\nCREATE INDEX CONCURRENTLY kv_v ON kv (v);\n",
        ),
        ("001_kv.rollback.sql", "DROP TABLE kv;"),
        ("002_more.rollback.sql", "-- migsafe:no-transaction\nDROP INDEX CONCURRENTLY kv_v;\nDELETE FROM kv WHERE k = 'c';"),
    ]);
    let r = apply::apply(&s, &db.spec, &opts()).unwrap();
    assert_eq!(r.outcome, Outcome::Applied, "{r:#?}");
    let rows: Vec<(String, Option<String>)> = db
        .client()
        .query("SELECT k, v FROM kv ORDER BY k", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, vec![("a".into(), Some("1".into())), ("b".into(), None), ("c".into(), Some("x,y".into()))]);
}

#[test]
fn a_rolled_back_run_removes_the_rows_a_begin_commit_file_added_and_keeps_the_applications() {
    // 002 copies rows into an existing table inside its own BEGIN/COMMIT; its generated
    // capture runs right after that BEGIN. 003 fails, so the run is rolled back: 002's
    // rollback deletes exactly the rows its transaction added, not the application's own.
    let db = TestDb::new("apply_added_rows");
    let d = tempfile::tempdir().unwrap();
    let write = |n: &str, t: &str| std::fs::write(d.path().join(n), t).unwrap();
    write(
        "001_users.sql",
        "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);\n\
         INSERT INTO users VALUES (1, 'a'), (2, 'b'), (3, 'c');\n",
    );
    write("001_users.rollback.sql", "DROP TABLE users;");
    let r = apply::apply(&MigrationSet::load(d.path()).unwrap(), &db.spec, &opts()).unwrap();
    assert_eq!(r.outcome, Outcome::Applied, "{r:#?}");
    db.client().batch_execute("INSERT INTO users VALUES (50, 'app')").unwrap();
    write("002_copy.sql", "BEGIN;\nINSERT INTO users SELECT id + 100, name || ' copy' FROM users;\nCOMMIT;\n");
    let server =
        migsafe_engine::scratch::ScratchServer::throwaway(Some(&migsafe_pg::testing::cluster().binaries().bin))
            .unwrap();
    let generated = migsafe_engine::rollback::generate(
        &MigrationSet::load(d.path()).unwrap(),
        &server,
        &migsafe_engine::rollback::GenerateOptions { write: true, ..Default::default() },
    )
    .unwrap();
    assert!(generated.iter().all(|g| g.ok()), "{generated:#?}");
    write("003_fail.sql", "ALTER TABLE nope ADD COLUMN x int;");
    write("003_fail.rollback.sql", "SELECT 1;");
    let r = apply::apply(&MigrationSet::load(d.path()).unwrap(), &db.spec, &opts()).unwrap();
    assert!(matches!(&r.outcome, Outcome::RolledBack { .. }), "{r:#?}");
    let ids: Vec<i32> =
        db.client().query("SELECT id FROM users ORDER BY id", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, vec![1, 2, 3, 50]);
}

#[test]
fn importing_prisma_and_diesel_history() {
    // Prisma names migrations by folder; a finished, not rolled back row is applied. Diesel
    // records the version without its dashes.
    let db = TestDb::new("apply_import_prisma");
    db.client()
        .batch_execute(
            "CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL, \
             finished_at timestamptz, migration_name varchar(255) NOT NULL, logs text, rolled_back_at timestamptz, \
             started_at timestamptz NOT NULL DEFAULT now(), applied_steps_count int NOT NULL DEFAULT 0);\n\
             INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name) VALUES \
             ('1', 'x', now(), '20250101000000_users'), ('2', 'x', now(), '20250102_posts');\n\
             CREATE TABLE users (id int PRIMARY KEY); CREATE TABLE posts (id int PRIMARY KEY);",
        )
        .unwrap();
    let (_d, s) = set(&[
        ("20250101000000_users/migration.sql", "CREATE TABLE users (id int PRIMARY KEY);"),
        ("20250102_posts/migration.sql", "CREATE TABLE posts (id int PRIMARY KEY);"),
        ("20250103000000_tags/migration.sql", "CREATE TABLE tags (id int PRIMARY KEY);"),
        ("20250103000000_tags/down.sql", "DROP TABLE tags;"),
    ]);
    let (n, tool) = history::import(&mut db.client(), &s).unwrap();
    assert_eq!((n, tool.as_str()), (2, "prisma"));
    let r = apply::apply(&s, &db.spec, &opts()).unwrap();
    assert_eq!(r.applied.len(), 1, "only tags runs: {r:#?}");
    // A migration Prisma left unfinished is refused, not imported.
    let db = TestDb::new("apply_import_prisma_failed");
    db.client()
        .batch_execute(
            "CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, finished_at timestamptz, \
             migration_name varchar(255) NOT NULL, rolled_back_at timestamptz);\n\
             INSERT INTO _prisma_migrations VALUES ('1', NULL, '20250101000000_users', NULL);",
        )
        .unwrap();
    let e = history::import(&mut db.client(), &s).unwrap_err().to_string();
    assert!(e.contains("20250101000000_users") && e.contains("not finished"), "{e}");

    let db = TestDb::new("apply_import_diesel");
    db.client()
        .batch_execute(
            "CREATE TABLE __diesel_schema_migrations (version varchar(50) PRIMARY KEY, run_on timestamp NOT NULL DEFAULT now());\n\
             INSERT INTO __diesel_schema_migrations (version) VALUES ('20190226002946');\n\
             CREATE TABLE users (id int PRIMARY KEY);",
        )
        .unwrap();
    let (_d, s) = set(&[
        ("2019-02-26-002946_users/up.sql", "CREATE TABLE users (id int PRIMARY KEY);"),
        ("2019-02-27-000000_posts/up.sql", "CREATE TABLE posts (id int PRIMARY KEY);"),
    ]);
    let (n, tool) = history::import(&mut db.client(), &s).unwrap();
    assert_eq!((n, tool.as_str()), (1, "diesel"));
}
