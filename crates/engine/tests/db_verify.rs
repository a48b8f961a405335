//! `verify` finds each integrity fault on a real database, and nothing on a clean one.

use migsafe_engine::verify::{verify, VerifyOptions};
use migsafe_pg::testing::TestDb;

fn db(label: &str, sql: &str) -> TestDb {
    let d = TestDb::new(label);
    d.client().batch_execute(sql).unwrap();
    d
}

const CLEAN: &str = "
CREATE TABLE parents (id serial PRIMARY KEY, a int, b int, UNIQUE (a, b));
CREATE TABLE kids (id serial PRIMARY KEY, parent_id int REFERENCES parents (id), a int, b int,
    FOREIGN KEY (a, b) REFERENCES parents (a, b) MATCH FULL);
INSERT INTO parents (a, b) SELECT g, g FROM generate_series(1, 100) g;
INSERT INTO kids (parent_id, a, b) SELECT g, g, g FROM generate_series(1, 100) g;
INSERT INTO kids (parent_id, a, b) VALUES (NULL, NULL, NULL);
CREATE UNIQUE INDEX kids_a ON kids (a);
";

#[test]
fn a_clean_database_has_no_false_alarm() {
    let d = db("verify_clean", CLEAN);
    let r = verify(&d.spec, &VerifyOptions::default()).unwrap();
    assert!(r.ok, "{:#?}", r.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
    assert!(r.checks.iter().any(|c| c.check == "foreign_key_orphans"));
    assert!(r.checks.iter().any(|c| c.check == "sequence_behind"));
}

#[test]
fn each_fault_is_found() {
    let d = db("verify_faults", CLEAN);
    let mut c = d.client();
    // Orphans behind a NOT VALID foreign key.
    c.batch_execute(
        "CREATE TABLE orders (id int PRIMARY KEY, kid_id int);
         INSERT INTO orders SELECT g, g + 1000 FROM generate_series(1, 7) g;
         ALTER TABLE orders ADD CONSTRAINT orders_kid FOREIGN KEY (kid_id) REFERENCES kids (id) NOT VALID;
         -- Indexed children take the index-walking anti-join; kids.parent_id stays unindexed.
         CREATE INDEX orders_kid_id ON orders (kid_id); CREATE INDEX kids_b_a ON kids (b, a); ANALYZE;",
    )
    .unwrap();
    // MATCH FULL: half-NULL keys are violations.
    c.batch_execute("ALTER TABLE kids DROP CONSTRAINT kids_a_b_fkey; INSERT INTO kids (a, b) VALUES (500, NULL);
                     ALTER TABLE kids ADD CONSTRAINT kids_a_b_fkey FOREIGN KEY (a, b) REFERENCES parents (a, b) MATCH FULL NOT VALID;")
        .unwrap();
    // An invalid index from a failed concurrent build (duplicates).
    c.batch_execute("CREATE TABLE tags (name text); INSERT INTO tags VALUES ('x'), ('x'), ('y');").unwrap();
    assert!(c.batch_execute("CREATE UNIQUE INDEX CONCURRENTLY tags_name ON tags (name)").is_err());
    // A sequence behind its column.
    c.batch_execute("INSERT INTO parents (id, a, b) VALUES (500, 500, 500);").unwrap();
    // A violated NOT VALID check.
    c.batch_execute("ALTER TABLE parents ADD CONSTRAINT small_a CHECK (a < 90) NOT VALID;").unwrap();
    drop(c);
    let r = verify(&d.spec, &VerifyOptions::default()).unwrap();
    assert!(!r.ok);
    let find = |check: &str, object_part: &str| {
        r.checks
            .iter()
            .find(|c| c.check == check && c.object.contains(object_part))
            .unwrap_or_else(|| panic!("no {check} on {object_part}: {:#?}", r.checks))
    };
    let o = find("foreign_key_orphans", "orders_kid");
    assert!(!o.ok && o.count == 7 && o.sample.len() == 5 && o.detail.contains("NOT VALID"), "{o:?}");
    let full = find("foreign_key_orphans", "kids_a_b_fkey");
    assert!(!full.ok && full.count == 1, "{full:?}");
    let simple = find("foreign_key_orphans", "kids_parent_id_fkey");
    assert!(simple.ok, "a NULL key references nothing under MATCH SIMPLE: {simple:?}");
    let i = find("invalid_index", "tags_name");
    assert!(!i.ok && i.detail.contains("duplicate keys") && i.sample == vec!["x".to_string()], "{i:?}");
    let s = find("sequence_behind", "parents_id_seq");
    assert!(!s.ok && s.detail.contains("setval"), "{s:?}");
    let n = find("not_valid_constraint", "small_a");
    assert!(!n.ok && n.count == 12, "{n:?}");
}

#[test]
fn baselines_and_custom_checks() {
    let d = db("verify_baseline", CLEAN);
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.json");
    let r =
        verify(&d.spec, &VerifyOptions { save_baseline: Some(base.clone()), fingerprints: true, ..Default::default() })
            .unwrap();
    assert!(r.ok);
    d.client().batch_execute("DELETE FROM kids WHERE id > 90").unwrap();
    let checks = dir.path().join("checks");
    std::fs::create_dir(&checks).unwrap();
    std::fs::write(
        checks.join("every_parent_has_a_kid.sql"),
        "SELECT p.id FROM parents p WHERE NOT EXISTS (SELECT 1 FROM kids k WHERE k.parent_id = p.id)",
    )
    .unwrap();
    let r = verify(
        &d.spec,
        &VerifyOptions { baseline: Some(base.clone()), checks: Some(checks.clone()), ..Default::default() },
    )
    .unwrap();
    let rc = r.checks.iter().find(|c| c.check == "row_count" && c.object == "public.kids").unwrap();
    assert!(!rc.ok && rc.detail.contains("101 → 90"), "{rc:?}");
    let custom = r.checks.iter().find(|c| c.check == "custom").unwrap();
    assert!(!custom.ok && custom.count == 10 && custom.sample.len() == 5, "{custom:?}");
    let r = verify(
        &d.spec,
        &VerifyOptions { baseline: Some(base), tolerance: "15%".parse().unwrap(), ..Default::default() },
    )
    .unwrap();
    assert!(r.checks.iter().find(|c| c.check == "row_count" && c.object == "public.kids").unwrap().ok);
}

/// PostgreSQL 18's NOT ENFORCED constraints: PostgreSQL never checks them, so rows that break
/// them are reported as warnings (not failures), and never with a VALIDATE hint that would fail.
#[test]
fn not_enforced_constraints_warn_instead_of_failing() {
    let d = db("verify_not_enforced", CLEAN);
    if d.major() < 18 {
        // Before 18 the syntax does not exist: the grammar must refuse it, so the branch below is
        // the only behaviour there is to check.
        assert!(d.client().batch_execute("ALTER TABLE kids ADD CONSTRAINT c CHECK (a > 0) NOT ENFORCED").is_err());
        return;
    }
    d.client()
        .batch_execute(
            "CREATE TABLE notes (id int PRIMARY KEY, kid_id int, body text);
             INSERT INTO notes VALUES (1, 1, 'x'), (2, 9999, ''), (3, 9998, '');
             ALTER TABLE notes ADD CONSTRAINT notes_kid FOREIGN KEY (kid_id) REFERENCES kids (id) NOT ENFORCED;
             ALTER TABLE notes ADD CONSTRAINT notes_body CHECK (body <> '') NOT ENFORCED;
             ALTER TABLE kids ADD CONSTRAINT kids_a_pos CHECK (a > 0) NOT ENFORCED;",
        )
        .unwrap();
    let r = verify(&d.spec, &VerifyOptions::default()).unwrap();
    let find = |check: &str, object_part: &str| {
        r.checks
            .iter()
            .find(|c| c.check == check && c.object.contains(object_part))
            .unwrap_or_else(|| panic!("no {check} on {object_part}: {:#?}", r.checks))
    };
    let fk = find("foreign_key_orphans", "notes_kid");
    assert!(fk.ok && fk.warning && fk.count == 2 && fk.detail.contains("NOT ENFORCED"), "{fk:?}");
    let ck = find("not_valid_constraint", "notes_body");
    assert!(ck.ok && ck.warning && ck.count == 2 && ck.detail.contains("NOT ENFORCED"), "{ck:?}");
    let clean = find("not_valid_constraint", "kids_a_pos");
    assert!(clean.ok && !clean.warning && !clean.detail.contains("VALIDATE"), "{clean:?}");
    assert!(r.ok, "{:#?}", r.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
}
