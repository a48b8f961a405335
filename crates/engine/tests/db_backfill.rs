//! Backfill and monitor on a real server.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use migsafe_engine::apply::Cancel;
use migsafe_engine::backfill::{backfill, BackfillOptions, BackfillProgress};
use migsafe_engine::monitor;
use migsafe_pg::testing::TestDb;

struct NoBar;
impl BackfillProgress for NoBar {
    fn update(&self, _: i64, _: i64, _: i64, _: i64) {}
}

fn opts(table: &str, set: &str, filter: Option<&str>) -> BackfillOptions {
    BackfillOptions {
        table: table.into(),
        set: set.into(),
        filter: filter.map(str::to_string),
        batch: 20_000,
        sleep: Duration::ZERO,
        target_batch: None,
        max_lag: None,
        max_lock_waits: None,
        lock_timeout: Duration::from_secs(1),
        dry_run: false,
        name: None,
    }
}

#[test]
fn a_million_rows_end_exactly_right_while_writers_keep_going() {
    let db = TestDb::new("backfill_1m");
    db.client()
        .batch_execute(
            "CREATE TABLE events (id bigint PRIMARY KEY, legacy int NOT NULL, new_field int);
             INSERT INTO events SELECT g, g % 1000 FROM generate_series(1, 1000000) g; ANALYZE events;",
        )
        .unwrap();
    let dry = backfill(
        &db.spec,
        &BackfillOptions { dry_run: true, ..opts("events", "new_field = legacy * 2", Some("new_field IS NULL")) },
        &NoBar,
        &Cancel::default(),
    )
    .unwrap();
    assert_eq!(dry.would_update, Some(1_000_000));
    // A concurrent writer updates random rows the whole time and measures how long it waits.
    let stop = Arc::new(AtomicBool::new(false));
    let worst = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, worst, spec) = (stop.clone(), worst.clone(), db.spec.clone());
        std::thread::spawn(move || {
            let mut c = spec.connect().unwrap();
            let mut i: i64 = 1;
            while !stop.load(Ordering::Relaxed) {
                i = (i * 7919 + 13) % 1_000_000 + 1;
                let t = Instant::now();
                c.execute("UPDATE events SET legacy = legacy WHERE id = $1", &[&i]).unwrap();
                worst.fetch_max(t.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
        })
    };
    let r = backfill(
        &db.spec,
        &opts("events", "new_field = legacy * 2", Some("new_field IS NULL")),
        &NoBar,
        &Cancel::default(),
    )
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(r.finished);
    assert_eq!(r.updated, 1_000_000);
    assert_eq!(r.remaining, Some(0));
    let wrong: i64 = db
        .client()
        .query_one("SELECT count(*) FROM events WHERE new_field IS DISTINCT FROM legacy * 2", &[])
        .unwrap()
        .get(0);
    assert_eq!(wrong, 0);
    let worst = worst.load(Ordering::Relaxed) as f64;
    assert!(
        worst <= r.longest_batch_ms + 100.0,
        "a writer waited {worst} ms; the longest batch took {} ms",
        r.longest_batch_ms
    );
}

#[test]
fn composite_keys_resume_from_the_checkpoint() {
    let db = TestDb::new("backfill_composite");
    db.client()
        .batch_execute(
            "CREATE TABLE kv (tenant int, k text, v text, v2 text, touched int NOT NULL DEFAULT 0, PRIMARY KEY (tenant, k));
             INSERT INTO kv (tenant, k, v) SELECT g % 7, 'k' || g, 'v' || g FROM generate_series(1, 50000) g;",
        )
        .unwrap();
    let o = BackfillOptions { batch: 1000, ..opts("kv", "v2 = upper(v), touched = touched + 1", Some("v2 IS NULL")) };
    // Stop after a few batches, as Ctrl-C would.
    let cancel = Cancel::default();
    struct StopAfter(Cancel, AtomicU64);
    impl BackfillProgress for StopAfter {
        fn update(&self, _: i64, _: i64, _: i64, _: i64) {
            if self.1.fetch_add(1, Ordering::SeqCst) == 5 {
                self.0.cancel();
            }
        }
    }
    let first = backfill(&db.spec, &o, &StopAfter(cancel.clone(), AtomicU64::new(0)), &cancel).unwrap();
    assert!(!first.finished);
    assert_eq!(first.updated, 6000);
    let second = backfill(&db.spec, &o, &NoBar, &Cancel::default()).unwrap();
    assert!(second.resumed && second.finished);
    assert_eq!(first.updated + second.updated, 50_000);
    let (bad, touched): (i64, i64) = {
        let r = db
            .client()
            .query_one("SELECT count(*) FILTER (WHERE v2 IS DISTINCT FROM upper(v)), max(touched) FROM kv", &[])
            .unwrap();
        (r.get(0), r.get::<_, i32>(1) as i64)
    };
    assert_eq!((bad, touched), (0, 1), "every row exactly once");
}

#[test]
fn tables_without_a_key_and_bad_expressions_are_refused() {
    let db = TestDb::new("backfill_refuse");
    db.client().batch_execute("CREATE TABLE nokey (a int, b int);").unwrap();
    let e = backfill(&db.spec, &opts("nokey", "b = a", None), &NoBar, &Cancel::default()).unwrap_err().to_string();
    assert!(e.contains("no primary key"), "{e}");
    let e = backfill(&db.spec, &opts("nokey", "b = a; DROP TABLE nokey", None), &NoBar, &Cancel::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("exactly one UPDATE"), "{e}");
    let n: i64 = db.client().query_one("SELECT count(*) FROM pg_tables WHERE tablename = 'nokey'", &[]).unwrap().get(0);
    assert_eq!(n, 1);
}

#[test]
fn monitor_shows_a_real_blocking_chain() {
    let db = TestDb::new("monitor_chain");
    db.client()
        .batch_execute("CREATE TABLE acct (id int PRIMARY KEY, bal int); INSERT INTO acct VALUES (1, 0);")
        .unwrap();
    // A holds a row lock; B waits to update the row; C waits for an exclusive table lock
    // behind both.
    let mut a = db.client();
    a.batch_execute("BEGIN; UPDATE acct SET bal = 1 WHERE id = 1;").unwrap();
    let (sb, sc) = (db.spec.clone(), db.spec.clone());
    let b = std::thread::spawn(move || {
        let mut c = sb.connect().unwrap();
        let _ = c.batch_execute("SET lock_timeout = '5s'; UPDATE acct SET bal = 2 WHERE id = 1;");
    });
    std::thread::sleep(Duration::from_millis(300));
    let c = std::thread::spawn(move || {
        let mut c = sc.connect().unwrap();
        let _ = c.batch_execute("SET lock_timeout = '5s'; LOCK TABLE acct IN ACCESS EXCLUSIVE MODE;");
    });
    std::thread::sleep(Duration::from_millis(400));
    let v = monitor::look(&mut db.client(), Duration::from_millis(100)).unwrap();
    a.batch_execute("ROLLBACK").unwrap();
    b.join().unwrap();
    c.join().unwrap();
    assert_eq!(v.lock_waits.len(), 1, "{:#?}", v.lock_waits);
    let root = &v.lock_waits[0];
    assert!(root.query.contains("UPDATE acct SET bal = 1"), "{root:#?}");
    assert_eq!(root.blocked.len(), 1);
    let second = &root.blocked[0];
    assert!(second.query.contains("bal = 2") && second.waiting_for.is_some(), "{second:#?}");
    assert_eq!(second.blocked.len(), 1);
    assert!(second.blocked[0].query.contains("LOCK TABLE acct"), "{:#?}", second.blocked[0]);
    assert!(v.largest_tables.iter().any(|t| t.table == "public.acct"));
    assert!(v.long_running.iter().any(|q| q.query.contains("LOCK TABLE")));
}
