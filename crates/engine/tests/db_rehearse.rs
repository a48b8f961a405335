//! Each rehearsal step catches the fault it exists for, on a real server.

use std::time::Duration;

use migsafe_engine::rehearse::{rehearse, Quiet, RehearseOptions};
use migsafe_engine::report::{MigrationReport, Report, StepReport};
use migsafe_engine::scratch::ScratchServer;
use migsafe_engine::MigrationSet;
use migsafe_pg::testing::cluster;

fn server() -> ScratchServer {
    ScratchServer::throwaway(Some(&cluster().binaries().bin)).unwrap()
}

fn run(files: &[(&str, &str)], opts: RehearseOptions) -> Report {
    let d = tempfile::tempdir().unwrap();
    for (n, t) in files {
        std::fs::write(d.path().join(n), t).unwrap();
    }
    let set = MigrationSet::load(d.path()).unwrap();
    rehearse(&set, &server(), &RehearseOptions { budget: Duration::from_secs(30), ..opts }, &Quiet).unwrap()
}

fn mig<'a>(r: &'a Report, version: &str) -> &'a MigrationReport {
    r.migrations.iter().find(|m| m.version == version).unwrap()
}

fn step<'a>(m: &'a MigrationReport, name: &str) -> &'a StepReport {
    m.steps.iter().find(|s| s.step == name).unwrap_or_else(|| panic!("no {name} step: {m:#?}"))
}

fn failed_steps(m: &MigrationReport) -> Vec<&str> {
    m.steps.iter().filter(|s| !s.ok).map(|s| s.step.as_str()).collect()
}

const BASE: &str = "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);\n\
                    INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 100) g;";

#[test]
fn a_clean_set_passes_every_step_with_locks_traced() {
    let r = run(
        &[
            ("001_base.sql", BASE),
            ("002_index.sql", "CREATE INDEX users_name ON users (name);"),
            ("003_col.sql", "ALTER TABLE users ADD COLUMN bio text;"),
        ],
        RehearseOptions { rows: Some(5000), ..Default::default() },
    );
    assert!(r.ok, "{r:#?}");
    let m = mig(&r, "002");
    let steps: Vec<&str> = m.steps.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(steps, vec!["forward", "verify", "rollback", "compare", "data", "reapply", "performance"]);
    assert_eq!(m.rollback.as_deref(), Some("generated"));
    let lock = m.locks.iter().find(|l| l.relation == "public.users").expect("the index build locks users");
    assert_eq!(lock.mode, "ShareLock");
    assert_eq!(lock.blocks, "writes");
    assert!(lock.statement.contains("CREATE INDEX"));
    let m = mig(&r, "003");
    assert!(m
        .locks
        .iter()
        .any(|l| l.relation == "public.users" && l.mode == "AccessExclusiveLock" && l.blocks == "reads_and_writes"));
}

#[test]
fn row_level_statements_traced_as_a_run_keep_their_locks_and_the_ddl_after_them_its_own() {
    // 300 INSERTs, then a rewrite, then more INSERTs: the run's ROW EXCLUSIVE lock is put on
    // its first statement, the rewrite and its ACCESS EXCLUSIVE lock on the ALTER TABLE, and
    // the performance step judges the statements' own time.
    let mut fwd = String::new();
    for i in 1..=300 {
        fwd.push_str(&format!("INSERT INTO users (id, name) VALUES ({}, 'seed');\n", 1000 + i));
    }
    fwd.push_str("ALTER TABLE users ALTER COLUMN name TYPE varchar(200);\n");
    fwd.push_str("INSERT INTO users (id, name) VALUES (5000, 'after');\n");
    let r = run(&[("001_base.sql", BASE), ("002_seed.sql", &fwd)], RehearseOptions::default());
    let m = mig(&r, "002");
    assert!(m.ok, "{m:#?}");
    let row = m.locks.iter().find(|l| l.relation == "public.users" && l.mode == "RowExclusiveLock").expect("row lock");
    assert_eq!(row.statement, "line 1: INSERT", "{:#?}", m.locks);
    let ddl = m.locks.iter().find(|l| l.relation == "public.users" && l.mode == "AccessExclusiveLock").expect("ddl");
    assert_eq!(ddl.statement, "line 301: ALTER TABLE", "{:#?}", m.locks);
    assert!(m.rewrites.iter().any(|w| w.relation == "public.users" && w.statement == "line 301: ALTER TABLE"));
    assert_eq!(m.statements.len(), 302);
    let own: f64 = m.statements.iter().map(|s| s.2).sum();
    assert!((step(m, "performance").ms - own).abs() < 1e-6, "{:?} vs {own}", step(m, "performance"));
}

#[test]
fn a_relation_dropped_and_made_again_is_locked_by_its_drop_not_by_the_statement_after_it() {
    // The migration's own look after a statement cannot name a relation the statement dropped,
    // and the tracer names it only from its first poll, which can come a statement later; the
    // relation is named from the look before the DROP. Made again under its name later, it is
    // still first locked by the DROP.
    let base = "CREATE TABLE t (id int PRIMARY KEY, x int);\nCREATE VIEW v1 AS SELECT * FROM t;\n\
                CREATE MATERIALIZED VIEW mv AS SELECT id, x FROM v1;\nCREATE UNIQUE INDEX mv_id ON mv (id);\n\
                CREATE VIEW v2 AS SELECT * FROM mv;\n";
    let fwd = "DROP VIEW v2;\nDROP MATERIALIZED VIEW mv;\nDROP VIEW v1;\nCREATE VIEW v1 AS SELECT * FROM t;\n\
               CREATE MATERIALIZED VIEW mv AS SELECT id, x FROM v1;\n";
    let back = "DROP MATERIALIZED VIEW mv;\nCREATE MATERIALIZED VIEW mv AS SELECT id, x FROM v1;\n\
                CREATE UNIQUE INDEX mv_id ON mv (id);\nCREATE VIEW v2 AS SELECT * FROM mv;\n";
    let r = run(
        &[("001_base.sql", base), ("002_again.sql", fwd), ("002_again.rollback.sql", back)],
        RehearseOptions::default(),
    );
    let m = mig(&r, "002");
    assert!(m.ok, "{m:#?}");
    for rel in ["public.mv", "public.mv_id"] {
        let l = m.locks.iter().find(|l| l.relation == rel && l.mode == "AccessExclusiveLock").expect(rel);
        assert_eq!(l.statement, "line 2: DROP MATERIALIZED VIEW", "{:#?}", m.locks);
    }
}

#[test]
fn a_rollback_that_leaves_a_column_fails_compare() {
    let r = run(
        &[
            ("001_base.sql", BASE),
            ("002_add.sql", "ALTER TABLE users ADD COLUMN email text;"),
            ("002_add.rollback.sql", "SELECT 1;"),
        ],
        RehearseOptions::default(),
    );
    let m = mig(&r, "002");
    assert!(failed_steps(m).contains(&"compare"), "{m:#?}");
    let compare = step(m, "compare");
    assert!(compare.detail.contains("- column public.users.email"), "{}", compare.detail);
    assert!(compare.detail.contains("- left behind by the rollback"), "{}", compare.detail);
    assert!(!r.ok);
}

#[test]
fn a_rollback_that_loses_rows_fails_data() {
    let r = run(
        &[
            ("001_base.sql", BASE),
            ("002_add.sql", "ALTER TABLE users ADD COLUMN email text;"),
            ("002_add.rollback.sql", "ALTER TABLE users DROP COLUMN email; DELETE FROM users WHERE id > 90;"),
        ],
        RehearseOptions::default(),
    );
    let m = mig(&r, "002");
    assert_eq!(failed_steps(m), vec!["data"], "{m:#?}");
    let data = step(m, "data");
    assert!(data.detail.contains("public.users: 100 rows before, 90 after"), "{}", data.detail);
}

#[test]
fn a_rollback_that_breaks_reapply_fails_reapply() {
    let r = run(
        &[
            ("001_base.sql", BASE),
            ("002_seq.sql", "CREATE SEQUENCE invoice_no; ALTER TABLE users ADD COLUMN invoice bigint DEFAULT nextval('invoice_no');"),
            ("002_seq.rollback.sql", "ALTER TABLE users DROP COLUMN invoice;"),
        ],
        RehearseOptions::default(),
    );
    let m = mig(&r, "002");
    let failed = failed_steps(m);
    assert!(failed.contains(&"reapply"), "{m:#?}");
    let re = step(m, "reapply");
    assert!(re.detail.contains("already exists"), "{}", re.detail);
}

#[test]
fn a_migration_that_leaves_an_invalid_index_fails_verify() {
    let r = run(
        &[
            ("001_base.sql", BASE),
            (
                "002_idx.sql",
                "CREATE INDEX users_name_idx ON users (name);\n\
                 UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'users_name_idx'::regclass;",
            ),
        ],
        RehearseOptions::default(),
    );
    let m = mig(&r, "002");
    assert!(failed_steps(m).contains(&"verify"), "{m:#?}");
    let v = step(m, "verify");
    assert!(v.detail.contains("users_name_idx") && v.detail.contains("INVALID"), "{}", v.detail);
}

#[test]
fn not_valid_constraints_warn_when_satisfied_and_fail_when_violated() {
    let r = run(
        &[
            ("001_base.sql", BASE),
            ("002_ok.sql", "ALTER TABLE users ADD CONSTRAINT name_len CHECK (length(name) < 100) NOT VALID;"),
            ("003_bad.sql", "ALTER TABLE users ADD CONSTRAINT id_small CHECK (id < 50) NOT VALID;"),
        ],
        RehearseOptions::default(),
    );
    let ok = mig(&r, "002");
    assert!(ok.ok, "{ok:#?}");
    let v = step(ok, "verify");
    assert!(v.warnings.iter().any(|w| w.contains("name_len")), "{v:?}");
    let bad = mig(&r, "003");
    let v = step(bad, "verify");
    assert!(!v.ok && v.detail.contains("violated by 51 rows"), "{v:?}");
}

#[test]
fn failing_checks_fail_the_checks_steps() {
    let checks = tempfile::tempdir().unwrap();
    std::fs::write(checks.path().join("no_unnamed.sql"), "SELECT id FROM users WHERE name = 'u7'").unwrap();
    let r = run(
        &[("001_base.sql", BASE), ("002_add.sql", "ALTER TABLE users ADD COLUMN email text;")],
        RehearseOptions {
            checks: Some(checks.path().to_path_buf()),
            check_cmd: Some("test \"$MIGSAFE_STEP\" = checks".into()),
            ..Default::default()
        },
    );
    let m = mig(&r, "002");
    let checks_step = step(m, "checks");
    assert!(!checks_step.ok);
    assert!(
        checks_step.detail.contains("no_unnamed.sql") && checks_step.detail.contains("returned 1 rows"),
        "{}",
        checks_step.detail
    );
    // The command passes in the first check run and fails after the rollback.
    let after = step(m, "checks_after_rollback");
    assert!(after.detail.contains("exited with"), "{}", after.detail);
}

#[test]
fn a_slow_migration_fails_the_budget_naming_the_statement() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("001_base.sql"), BASE).unwrap();
    std::fs::write(d.path().join("002_slow.sql"), "SELECT pg_sleep(0.3);\nALTER TABLE users ADD COLUMN x int;")
        .unwrap();
    let set = MigrationSet::load(d.path()).unwrap();
    let opts = RehearseOptions { budget: Duration::from_millis(100), ..Default::default() };
    let r = rehearse(&set, &server(), &opts, &Quiet).unwrap();
    let m = mig(&r, "002");
    let p = step(m, "performance");
    assert!(!p.ok);
    assert!(p.detail.contains("line 1 SELECT"), "{}", p.detail);
}

#[test]
fn a_failing_forward_stops_the_later_migrations() {
    let r = run(
        &[("001_base.sql", BASE), ("002_bad.sql", "ALTER TABLE nope ADD COLUMN x int;"), ("003_next.sql", "SELECT 1;")],
        RehearseOptions::default(),
    );
    let f = &mig(&r, "002").steps[0];
    assert!(!f.ok && f.detail.contains("002_bad.sql:1:1") && f.detail.contains("does not exist"), "{}", f.detail);
    assert!(mig(&r, "003").steps[0].detail.contains("not run"));
}

#[test]
fn session_state_left_by_a_script_does_not_leak_into_the_next_step() {
    // The rollback, the comparison and the re-apply share one connection: a rollback that
    // ends in a read-only session with a temporary table shadowing `users` must not make the
    // re-apply fail or alter the wrong table.
    let r = run(
        &[
            ("001_base.sql", BASE),
            ("002_bio.sql", "ALTER TABLE users ADD COLUMN bio text;\nSET search_path = nowhere;"),
            (
                "002_bio.rollback.sql",
                "ALTER TABLE users DROP COLUMN bio;\nCREATE TEMP TABLE users (id int);\nSET default_transaction_read_only = on;",
            ),
            ("003_index.sql", "CREATE INDEX users_name ON public.users (name);"),
        ],
        RehearseOptions::default(),
    );
    assert!(r.ok, "{r:#?}");
    assert_eq!(mig(&r, "002").steps.iter().filter(|s| s.step == "reapply" && s.ok).count(), 1);
    assert_eq!(mig(&r, "003").steps.iter().filter(|s| s.step == "compare" && s.ok).count(), 1);
}

#[test]
fn a_rollback_that_leaves_junk_does_not_spoil_the_later_migrations() {
    // The rehearsal goes on from the migrated database. 002's rollback leaves a table behind:
    // 002 fails, and 003 (which creates that very table) must still be rehearsed from the
    // exact result of 001 and 002, restored from a checkpoint.
    let r = run(
        &[
            ("001_base.sql", BASE),
            ("002_bio.sql", "ALTER TABLE users ADD COLUMN bio text;"),
            ("002_bio.rollback.sql", "ALTER TABLE users DROP COLUMN bio;\nCREATE TABLE junk (id int);"),
            ("003_junk.sql", "CREATE TABLE junk (id int, note text);\nALTER TABLE users ADD COLUMN nick text;"),
            ("004_index.sql", "CREATE INDEX users_nick ON users (nick);"),
        ],
        RehearseOptions { rows: Some(50), ..Default::default() },
    );
    let two = mig(&r, "002");
    assert_eq!(failed_steps(two), vec!["compare", "reapply"], "{two:#?}");
    let reapply = step(two, "reapply");
    assert!(reapply.warnings.iter().any(|w| w.contains("rebuilt from its checkpoint before 001")), "{reapply:#?}");
    for v in ["003", "004"] {
        let m = mig(&r, v);
        assert!(m.ok, "{m:#?}");
    }
    let data = step(mig(&r, "004"), "data");
    assert!(data.detail.contains("2 tables"), "{}", data.detail);
}

#[test]
fn seeded_rows_are_deleted_by_the_generated_rollback_by_their_key() {
    // The common "register a background job / feature flag / lookup value" migration: rows
    // inserted into a table that already existed. The generated rollback deletes exactly
    // those rows (by key), so the data matches and the migration applies again.
    let r = run(
        &[
            (
                "001_base.sql",
                "CREATE TABLE background_updates (update_name text NOT NULL, ordering int NOT NULL, progress_json jsonb,
                   CONSTRAINT background_updates_uniqueness UNIQUE (update_name));
                 INSERT INTO background_updates VALUES ('older_job', 1, '{}');
                 CREATE TABLE flags (id bigint PRIMARY KEY, region text, name text NOT NULL);",
            ),
            (
                "002_jobs.sql",
                "CREATE INDEX bu_ordering ON background_updates (ordering);
                 INSERT INTO background_updates (ordering, update_name, progress_json) VALUES
                   (7306, 'thread_id_null', '{}'::jsonb), (7307, 'it''s quoted', NULL);",
            ),
            ("003_flags.sql", "INSERT INTO flags VALUES (1, 'eu', 'dark_mode'), (-2, NULL, 'beta');"),
            // Idempotent seeding: 'older_job' was there before and must survive the rollback.
            (
                "004_idempotent.sql",
                "INSERT INTO background_updates (ordering, update_name, progress_json)
                   VALUES (1, 'older_job', '{}'), (9, 'new_job', '{}') ON CONFLICT (update_name) DO NOTHING;",
            ),
        ],
        RehearseOptions::default(),
    );
    for v in ["002", "003", "004"] {
        let m = mig(&r, v);
        assert!(m.ok, "{m:#?}");
        assert_eq!(m.rollback.as_deref(), Some("generated"));
    }
}

#[test]
fn a_column_moved_to_bytea_and_back_keeps_its_values() {
    // bytea casts to nothing: the generated rollback decodes the UTF-8 bytes back.
    let r = run(
        &[
            (
                "001_jobs.sql",
                "CREATE TABLE jobs (id bigint PRIMARY KEY, job jsonb NOT NULL, note text);
                 INSERT INTO jobs SELECT g, jsonb_build_object('n', g, 'é', 'ü'), 'n' || g FROM generate_series(1, 50) g;",
            ),
            ("002_bytes.sql", "ALTER TABLE jobs ALTER COLUMN job TYPE bytea USING convert_to(job::text, 'UTF8');"),
            ("003_text.sql", "ALTER TABLE jobs ALTER COLUMN note TYPE bytea USING convert_to(note, 'UTF8');"),
            ("004_back.sql", "ALTER TABLE jobs ALTER COLUMN note TYPE text USING convert_from(note, 'UTF8');"),
        ],
        RehearseOptions::default(),
    );
    for v in ["002", "003", "004"] {
        let m = mig(&r, v);
        assert!(m.ok, "{m:#?}");
    }
}

#[test]
fn roles_the_migrations_name_are_provided_in_the_throwaway_cluster() {
    // Roles live on the production server, not in the migrations; without them a GRANT
    // fails on the throwaway cluster. A role a migration creates itself is left to it.
    let r = run(
        &[
            ("001_base.sql", BASE),
            (
                "002_access.sql",
                "GRANT SELECT ON users TO readonly_reporting;
                 ALTER TABLE users ENABLE ROW LEVEL SECURITY;
                 CREATE POLICY own ON users TO \"App User\" USING (true);
                 ALTER TABLE users OWNER TO app_owner;",
            ),
            ("003_role.sql", "CREATE ROLE migration_made NOLOGIN;\nGRANT SELECT ON users TO migration_made;"),
        ],
        RehearseOptions::default(),
    );
    let two = mig(&r, "002");
    assert!(two.ok, "{two:#?}");
    let three = mig(&r, "003");
    assert!(three.steps.iter().any(|s| s.step == "forward" && s.ok), "{three:#?}");
}

#[test]
fn a_view_that_freezes_now_warns_instead_of_failing_and_real_differences_still_fail() {
    let old_view = "CREATE VIEW recent AS SELECT id FROM users WHERE 'now'::timestamp > '2000-01-01';";
    let new_view =
        "DROP VIEW recent; CREATE VIEW recent AS SELECT id, name FROM users WHERE 'now'::timestamp > '2000-01-01';";
    let r = run(
        &[
            ("001_base.sql", BASE),
            ("002_view.sql", old_view),
            ("003_widen.sql", new_view),
            ("003_widen.rollback.sql", &format!("DROP VIEW recent; {old_view}")),
            ("004_keep.sql", "ALTER TABLE users ADD COLUMN bio text;"),
            (
                "004_keep.rollback.sql",
                &format!("ALTER TABLE users DROP COLUMN bio; {new_view} COMMENT ON VIEW recent IS 'x';"),
            ),
        ],
        RehearseOptions::default(),
    );
    let m = mig(&r, "003");
    assert!(failed_steps(m).is_empty(), "{m:#?}");
    for name in ["compare", "reapply"] {
        let s = step(m, name);
        assert!(
            s.warnings.iter().any(|w| w.contains("view public.recent holds the time it was created")),
            "{name}: {s:#?}"
        );
    }
    // The rollback recreates the view (frozen time: a warning) but also adds a comment: a failure,
    // and the comment is still there when the migration is applied again.
    let m = mig(&r, "004");
    assert_eq!(failed_steps(m), vec!["compare", "reapply"], "{m:#?}");
    let compare = step(m, "compare");
    assert!(compare.detail.contains("view public.recent (comment"), "{}", compare.detail);
}

#[test]
fn a_migration_rejecting_synthetic_rows_points_to_real_data() {
    let r = run(
        &[
            ("001_base.sql", "CREATE TABLE users (id bigint PRIMARY KEY, url text NOT NULL);"),
            (
                "002_check.sql",
                "DO $$ BEGIN IF EXISTS (SELECT FROM users WHERE url NOT LIKE 'http%') THEN RAISE 'upgrade first'; END IF; END $$;",
            ),
        ],
        RehearseOptions { rows: Some(20), ..Default::default() },
    );
    let m = mig(&r, "002");
    let forward = step(m, "forward");
    assert!(!forward.ok);
    assert!(forward.detail.contains("upgrade first") && forward.detail.contains("--data DUMP"), "{}", forward.detail);
}

#[test]
fn column_order_changed_by_a_rollback_is_not_carried_into_later_migrations() {
    let r = run(
        &[
            ("001_base.sql", "CREATE TABLE t (id int PRIMARY KEY, a text, b text);"),
            ("002_add.sql", "ALTER TABLE t ADD COLUMN x text;"),
            // Leaves the table's columns in another order: (id, b, a).
            ("002_add.rollback.sql", "ALTER TABLE t DROP COLUMN x, DROP COLUMN a; ALTER TABLE t ADD COLUMN a text;"),
            ("003_more.sql", "ALTER TABLE t ADD COLUMN c text;"),
            ("004_insert.sql", "INSERT INTO t VALUES (1, 'a', 'b', 'x', 'c');"),
        ],
        RehearseOptions::default(),
    );
    assert!(r.ok, "{r:#?}");
    let m = mig(&r, "002");
    let reapply = step(m, "reapply");
    assert!(reapply.warnings.iter().any(|w| w.contains("column order of public.t differs")), "{reapply:#?}");
    assert!(reapply.warnings.iter().any(|w| w.contains("rebuilt from its checkpoint")), "{reapply:#?}");
    // 003 and 004 run on the table as the migrations built it, not as the rollback left it.
    for v in ["003", "004"] {
        let m = mig(&r, v);
        assert!(m.steps.iter().all(|s| s.warnings.is_empty()), "{m:#?}");
    }
}

#[test]
fn restored_rows_fire_triggers_exactly_when_their_removal_did() {
    // A counter kept by triggers: DELETE fired them (the restore must fire them again), DROP
    // TABLE and DROP COLUMN did not (the restore must not).
    let base = "CREATE TABLE counts (name text PRIMARY KEY, n bigint NOT NULL);\n\
                INSERT INTO counts VALUES ('items', 0), ('updates', 0);\n\
                CREATE TABLE items (id bigint PRIMARY KEY, label text, note text);\n\
                CREATE FUNCTION count_items() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN\n\
                  IF TG_OP = 'INSERT' THEN UPDATE counts SET n = n + 1 WHERE name = 'items';\n\
                  ELSIF TG_OP = 'DELETE' THEN UPDATE counts SET n = n - 1 WHERE name = 'items';\n\
                  ELSE UPDATE counts SET n = n + 1 WHERE name = 'updates'; END IF;\n\
                  RETURN NULL; END $$;\n\
                CREATE TRIGGER items_count AFTER INSERT OR UPDATE OR DELETE ON items FOR EACH ROW EXECUTE FUNCTION count_items();\n\
                INSERT INTO items SELECT g, 'l' || g, 'n' || g FROM generate_series(1, 30) g;";
    let r = run(
        &[
            ("001_base.sql", base),
            ("002_purge.sql", "DELETE FROM items WHERE id > 20;"),
            ("003_drop_note.sql", "ALTER TABLE items DROP COLUMN note;"),
            ("004_drop.sql", "DROP TABLE items;"),
        ],
        RehearseOptions::default(),
    );
    for v in ["002", "003", "004"] {
        let m = mig(&r, v);
        assert!(failed_steps(m).is_empty(), "{v}: {m:#?}");
    }
}

#[test]
fn an_update_through_a_before_trigger_is_undone_with_what_the_trigger_changed() {
    // crates.io's versions: a BEFORE UPDATE trigger stamps updated_at on every changed row.
    let base = "CREATE TABLE items (id bigint PRIMARY KEY, label text, updated_at timestamptz NOT NULL DEFAULT '2020-01-01');\n\
                CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at = clock_timestamp(); RETURN NEW; END $$;\n\
                CREATE TRIGGER items_stamp BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION stamp();\n\
                INSERT INTO items (id, label) SELECT g, 'l' || g FROM generate_series(1, 30) g;";
    let r = run(
        &[("001_base.sql", base), ("002_upper.sql", "UPDATE items SET label = upper(label) WHERE id > 10;")],
        RehearseOptions::default(),
    );
    let m = mig(&r, "002");
    assert!(failed_steps(m).is_empty(), "{m:#?}");
}

#[test]
fn set_not_null_over_rows_never_backfilled_says_to_backfill() {
    let r = run(
        &[
            ("001_base.sql", "CREATE TABLE t (id bigint PRIMARY KEY);"),
            ("002_add.sql", "ALTER TABLE t ADD COLUMN expires_at timestamptz;"),
            ("003_not_null.sql", "ALTER TABLE t ALTER COLUMN expires_at SET NOT NULL;"),
        ],
        RehearseOptions { rows: Some(10), ..Default::default() },
    );
    let forward = step(mig(&r, "003"), "forward").clone();
    assert!(!forward.ok);
    assert!(forward.detail.contains("backfill") && !forward.detail.contains("made up"), "{}", forward.detail);
}

#[test]
fn a_dropped_key_column_gets_its_values_back_through_the_other_key() {
    // Lemmy's change_primary_keys: drop the serial id, promote the unique pair to primary key.
    let base = "CREATE TABLE likes (id serial PRIMARY KEY, person_id int NOT NULL, post_id int NOT NULL, score int, \
                UNIQUE (person_id, post_id));\n\
                INSERT INTO likes (person_id, post_id, score) SELECT g % 7, g, g FROM generate_series(1, 40) g;\n\
                DELETE FROM likes WHERE id % 5 = 0;";
    let fwd = "ALTER TABLE likes DROP COLUMN id, ADD PRIMARY KEY (person_id, post_id), \
               DROP CONSTRAINT likes_person_id_post_id_key;";
    let r = run(&[("001_base.sql", base), ("002_pk.sql", fwd)], RehearseOptions::default());
    let m = mig(&r, "002");
    assert!(failed_steps(m).is_empty(), "{m:#?}");
}

#[test]
fn a_type_change_that_does_not_cast_back_is_undone_from_the_captured_values() {
    // Lemmy's sort types: smallint codes mapped to an enum with a CASE; the enum labels do not
    // cast back to the codes, the captured values do.
    let base = "CREATE TABLE prefs (id bigint PRIMARY KEY, sort smallint NOT NULL DEFAULT 0);\n\
                INSERT INTO prefs SELECT g, g % 3 FROM generate_series(1, 30) g;";
    let fwd = "CREATE TYPE sort_type AS ENUM ('Active', 'Hot', 'New');\n\
               ALTER TABLE prefs ALTER COLUMN sort DROP DEFAULT;\n\
               ALTER TABLE prefs ALTER COLUMN sort TYPE sort_type USING \
               CASE sort WHEN 0 THEN 'Active' WHEN 1 THEN 'Hot' ELSE 'New' END::sort_type;\n\
               ALTER TABLE prefs ALTER COLUMN sort SET DEFAULT 'Active';";
    let r = run(&[("001_base.sql", base), ("002_enum.sql", fwd)], RehearseOptions::default());
    let m = mig(&r, "002");
    assert!(failed_steps(m).is_empty(), "{m:#?}");
}

#[test]
fn session_settings_from_migsafe_toml_reach_the_migrations() {
    // Lemmy's runner sets lemmy.protocol_and_hostname; its migrations read it.
    let fwd = "UPDATE users SET name = current_setting('app.base_url') || '/u/' || id;";
    let toml = "[session]\nsettings = { \"app.base_url\" = \"https://example.org\" }\n";
    let r = run(&[("migsafe.toml", toml), ("001_base.sql", BASE), ("002_urls.sql", fwd)], RehearseOptions::default());
    let m = mig(&r, "002");
    assert!(failed_steps(m).is_empty(), "{m:#?}");
}

#[test]
fn a_check_the_migration_widened_comes_back_after_the_old_values() {
    let base = "CREATE TABLE log (id bigint PRIMARY KEY, kind text NOT NULL, CONSTRAINT log_check CHECK (kind IN ('a', 'b')));\n\
                INSERT INTO log SELECT g, CASE WHEN g % 2 = 0 THEN 'a' ELSE 'b' END FROM generate_series(1, 20) g;";
    let fwd = "ALTER TABLE log DROP CONSTRAINT log_check;\n\
               UPDATE log SET kind = 'c' WHERE id > 10;\n\
               ALTER TABLE log ADD CONSTRAINT log_check CHECK (kind IN ('a', 'b', 'c'));";
    let r = run(&[("001_base.sql", base), ("002_widen.sql", fwd)], RehearseOptions::default());
    let m = mig(&r, "002");
    assert!(failed_steps(m).is_empty(), "{m:#?}");
}

#[test]
fn an_index_calling_a_function_with_unqualified_names_is_explained_on_pg17_and_later() {
    // sqlxmq's partial index calls a SQL function whose body calls another schema's function
    // unqualified (public's uuid_nil()): fine up to PostgreSQL 16, "does not exist" from 17 on, where index
    // expressions run with search_path = pg_catalog, pg_temp.
    let base = "CREATE FUNCTION nil() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 0';\n\
                CREATE FUNCTION not_nil(x int) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT x <> nil()';\n\
                CREATE TABLE msgs (id int PRIMARY KEY);";
    let fwd = "CREATE INDEX msgs_live ON msgs (id) WHERE not_nil(id);";
    let r = run(&[("001_base.sql", base), ("002_index.sql", fwd)], RehearseOptions::default());
    let m = mig(&r, "002");
    if cluster().binaries().major >= 17 {
        let forward = step(m, "forward");
        assert!(!forward.ok, "{m:#?}");
        assert!(forward.detail.contains("context: SQL function \"not_nil\""), "{}", forward.detail);
        assert!(forward.detail.contains("search_path = pg_catalog, pg_temp"), "{}", forward.detail);
    } else {
        assert!(failed_steps(m).is_empty(), "{m:#?}");
    }
}

#[test]
fn rows_copied_in_from_stdin_are_loaded_and_taken_out_by_the_rollback() {
    // pg_dump / psql style: rows inline after COPY … FROM stdin, up to `\.`; one set into an
    // existing table (text format, LedgerSMB's `|` delimiter, a NULL), one into a new table (CSV).
    let base = "CREATE TABLE settings (name text PRIMARY KEY, value text);\n\
                INSERT INTO settings VALUES ('version', '1');";
    let fwd = "COPY settings FROM stdin WITH DELIMITER '|';\n\
               timeout|90 minutes\n\
               closed_to|\\N\n\
               o'brien|tab\\there\n\
               \\.\n\
               CREATE TABLE menu (id int PRIMARY KEY, label text);\n\
               COPY menu (id, label) FROM stdin WITH (FORMAT csv);\n\
               1,\"Search, all\"\n\
               2,Reports\n\
               \\.\n\
               UPDATE settings SET value = '2' WHERE name = 'version';";
    let r = run(&[("001_base.sql", base), ("002_seed.sql", fwd)], RehearseOptions::default());
    let m = mig(&r, "002");
    assert!(failed_steps(m).is_empty(), "{m:#?}");
    let forward = step(m, "forward");
    assert_eq!(forward.detail, "4 statements", "{m:#?}");
}

#[test]
fn an_integrity_fault_fails_the_migration_that_made_it_not_every_later_one() {
    // LedgerSMB's base schema inserts explicit ids and leaves their sequences behind.
    let base = "CREATE TABLE kinds (id serial PRIMARY KEY, label text);\n\
                INSERT INTO kinds (id, label) VALUES (1, 'a'), (2, 'b');";
    let r = run(
        &[
            ("001_base.sql", base),
            ("002_other.sql", "CREATE TABLE notes (id int PRIMARY KEY);"),
            ("003_alter.sql", "ALTER TABLE kinds ADD COLUMN note text;"),
            ("004_fix.sql", "SELECT setval('kinds_id_seq', 2);"),
        ],
        RehearseOptions::default(),
    );
    let verify = |v: &str| step(mig(&r, v), "verify").clone();
    assert!(!verify("001").ok && verify("001").detail.contains("sequence_behind"), "{:#?}", verify("001"));
    // A migration that touches neither the table nor its sequence does not check them again.
    let other = verify("002");
    assert!(other.ok && other.warnings.is_empty(), "{other:#?}");
    assert!(other.detail.contains("others read nothing it changed"), "{other:#?}");
    // One that alters the table checks it, and the fault it inherited is a warning.
    let later = verify("003");
    assert!(later.ok, "{later:#?}");
    assert!(later.warnings.iter().any(|w| w.contains("already so since 001")), "{later:#?}");
    assert!(verify("004").ok && verify("004").warnings.is_empty(), "{:#?}", verify("004"));
}

#[test]
fn verify_after_a_migration_checks_what_it_wrote_to() {
    // Orphans a migration made (foreign keys not enforced for its session) are found although
    // only the child table is written to; a migration outside a transaction (CREATE INDEX
    // CONCURRENTLY) checks everything.
    let base = "CREATE TABLE parent (id int PRIMARY KEY);\n\
                CREATE TABLE child (id int PRIMARY KEY, parent_id int);\n\
                CREATE TABLE other (id int PRIMARY KEY);";
    let r = run(
        &[
            ("001_base.sql", base),
            ("002_fk.sql", "ALTER TABLE child ADD CONSTRAINT child_parent_fk FOREIGN KEY (parent_id) REFERENCES parent (id) NOT VALID;"),
            ("003_rows.sql", "SET session_replication_role = replica;\nINSERT INTO child VALUES (1, 42);"),
            ("004_other.sql", "INSERT INTO other VALUES (1);"),
            ("005_index.sql", "CREATE INDEX CONCURRENTLY other_id ON other (id);"),
        ],
        RehearseOptions::default(),
    );
    let verify = |v: &str| step(mig(&r, v), "verify").clone();
    assert!(verify("002").ok, "{:#?}", verify("002"));
    let rows = verify("003");
    assert!(!rows.ok && rows.detail.contains("foreign_key_orphans"), "{rows:#?}");
    let other = verify("004");
    assert!(other.ok && other.detail.contains("others read nothing it changed"), "{other:#?}");
    let outside = verify("005");
    assert!(outside.ok && !outside.detail.contains("others read"), "{outside:#?}");
    assert!(outside.warnings.iter().any(|w| w.contains("already so since 003")), "{outside:#?}");
}

#[test]
fn rows_a_migration_added_go_after_the_values_that_point_at_them_are_back() {
    // LedgerSMB's menu: new nodes are inserted, existing nodes moved under them.
    let base = "CREATE TABLE node (id int PRIMARY KEY, parent int REFERENCES node (id), label text NOT NULL);\n\
                INSERT INTO node VALUES (1, NULL, 'root'), (2, 1, 'a'), (3, 1, 'b');";
    let fwd = "INSERT INTO node (id, parent, label) VALUES (10, 1, 'group');\n\
               UPDATE node SET parent = 10 WHERE id IN (2, 3);";
    let r = run(&[("001_base.sql", base), ("002_group.sql", fwd)], RehearseOptions::default());
    let m = mig(&r, "002");
    assert!(failed_steps(m).is_empty(), "{m:#?}");
}

#[test]
fn rows_inserted_without_their_serial_key_are_found_by_another_unique_key() {
    // LedgerSMB adds countries by name; the id comes from the sequence, and the only other
    // unique key is an expression index.
    let base =
        "CREATE TABLE country (id serial PRIMARY KEY, name text NOT NULL, short_name text NOT NULL, itu text);\n\
                CREATE UNIQUE INDEX country_name_idx ON country (lower(name));\n\
                INSERT INTO country (short_name, name) VALUES ('FR', 'France'), ('DE', 'Germany');";
    let fwd = "INSERT INTO country (short_name, name) VALUES ('BL', 'St. Barthelemy');\n\
               INSERT INTO country (short_name, name, itu) VALUES ('CW', 'Curacao', NULL), ('SX', 'Sint Maarten', '1');";
    let r = run(&[("001_base.sql", base), ("002_countries.sql", fwd)], RehearseOptions::default());
    let m = mig(&r, "002");
    assert!(failed_steps(m).is_empty(), "{m:#?}");
}

#[test]
fn an_extension_created_if_not_exists_may_outlive_the_rollback_one_created_outright_may_not() {
    // Diesel-style sets (fang, backie, sqlxmq) create uuid-ossp IF NOT EXISTS and leave it in
    // their down migration.
    let shared = "CREATE EXTENSION IF NOT EXISTS citext;\nCREATE TABLE tags (name citext PRIMARY KEY);";
    let owned = "CREATE EXTENSION citext;\nCREATE TABLE tags (name citext PRIMARY KEY);";
    let down = "DROP TABLE tags;";
    let r = run(&[("001_tags.up.sql", shared), ("001_tags.down.sql", down)], RehearseOptions::default());
    let compare = step(mig(&r, "001"), "compare").clone();
    assert!(compare.ok, "{compare:#?}");
    assert!(compare.warnings.iter().any(|w| w.contains("extension citext stays installed")), "{compare:#?}");
    let r = run(&[("001_tags.up.sql", owned), ("001_tags.down.sql", down)], RehearseOptions::default());
    let compare = step(mig(&r, "001"), "compare").clone();
    assert!(!compare.ok && compare.detail.contains("extension citext"), "{compare:#?}");
}

#[test]
fn a_row_deleted_then_inserted_again_under_its_key_comes_back_as_it_was() {
    // Synapse re-queues a background update: DELETE the row, INSERT it afresh with the same key.
    let base = "CREATE TABLE background_updates (update_name text NOT NULL UNIQUE, progress_json text NOT NULL, ordering int NOT NULL DEFAULT 0);\n\
                INSERT INTO background_updates VALUES ('flag_media', '{\"done\": 40}', 9403), ('other', '{}', 1);";
    let fwd = "DELETE FROM background_updates WHERE update_name = 'flag_media';\n\
               INSERT INTO background_updates (ordering, update_name, progress_json) VALUES (9405, 'flag_media', '{}');";
    let r = run(&[("001_base.sql", base), ("002_rerun.sql", fwd)], RehearseOptions::default());
    let m = mig(&r, "002");
    assert!(failed_steps(m).is_empty(), "{m:#?}");
}

#[test]
fn a_key_renamed_by_constants_is_renamed_back_only_if_the_update_found_it() {
    // LedgerSMB: UPDATE language SET code = 'ms_MY' WHERE code = 'my'; on a fresh database
    // 'ms_MY' is already there and 'my' is not, so the UPDATE changes nothing and neither may
    // the rollback. Where 'my' exists, the change follows ON UPDATE CASCADE and back.
    let fwd = "UPDATE language SET code = 'ms_MY' WHERE code = 'my';";
    for rows in ["('my', 'Malay'), ('en', 'English')", "('ms_MY', 'Malay'), ('en', 'English')"] {
        let base = format!(
            "CREATE TABLE language (code varchar(6) PRIMARY KEY, description text);\n\
             CREATE TABLE person (id int PRIMARY KEY, lang varchar(6) REFERENCES language ON UPDATE CASCADE);\n\
             INSERT INTO language VALUES {rows};\n\
             INSERT INTO person SELECT row_number() OVER (), code FROM language;"
        );
        let r = run(&[("001_base.sql", base.as_str()), ("002_locale.sql", fwd)], RehearseOptions::default());
        let m = mig(&r, "002");
        assert!(failed_steps(m).is_empty(), "{rows}: {m:#?}");
    }
}

#[test]
fn lint_s_model_is_checked_against_the_locks_rewrites_and_scans_the_server_saw() {
    let base = "CREATE TABLE accounts (id int PRIMARY KEY, email text, seen timestamp);\n\
                CREATE TABLE audit (id int);\n\
                CREATE FUNCTION lock_audit() RETURNS trigger LANGUAGE plpgsql AS \
                $$ BEGIN EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', TG_ARGV[0]); RETURN NEW; END $$;\n\
                CREATE TRIGGER accounts_lock BEFORE INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION lock_audit('audit');\n\
                CREATE FUNCTION manage(_tbl regclass) RETURNS void LANGUAGE plpgsql AS $$ BEGIN \
                EXECUTE format('CREATE TRIGGER set_seen BEFORE UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION lock_audit(%L)', \
                _tbl, 'audit'); END $$;";
    let r = run(
        &[
            ("001_base.sql", base),
            // What lint predicts is what the server does: no mismatch.
            (
                "002_index.sql",
                "CREATE INDEX accounts_email ON accounts (email);\nALTER TABLE accounts ADD COLUMN note text;",
            ),
            // A trigger takes a lock lint cannot see (SQL built from the trigger's arguments when
            // it runs; a static LOCK, or one built from constants, it reads from the function).
            ("003_insert.sql", "INSERT INTO accounts VALUES (1, 'a', now());"),
            // The server's sessions start in UTC, where this retype keeps the rows; lint, which
            // reads SET but not set_config, does not see the zone change, and PostgreSQL rewrites.
            (
                "004_retype.sql",
                "SELECT set_config('TimeZone', 'America/New_York', false);\n\
                 ALTER TABLE accounts ALTER COLUMN seen TYPE timestamptz;",
            ),
            (
                "005_opaque.sql",
                "CREATE FUNCTION add_check() RETURNS void LANGUAGE plpgsql AS \
                 $$ BEGIN ALTER TABLE accounts ADD CONSTRAINT email_present CHECK (email IS NOT NULL); END $$;\n\
                 SELECT add_check();",
            ),
            ("006_not_null.sql", "ALTER TABLE accounts ALTER COLUMN email SET NOT NULL;"),
            // SQL computed from constants: by a function from the constant it is called with, and
            // by a DO block. Lint reads both.
            (
                "007_computed.sql",
                "SELECT manage('accounts');\n\
                 DO $$ BEGIN EXECUTE format('ALTER TABLE %I ADD COLUMN %I %s', 'audit', 'at', 'timestamptz'); END $$;\n\
                 DO $$ BEGIN EXECUTE 'CREATE INDEX audit_id ON ' || quote_ident('audit') || ' (id)'; END $$;",
            ),
        ],
        RehearseOptions::default(),
    );
    let m = |v: &str| mig(&r, v);
    assert!(m("002").lint_model.is_empty(), "{:#?}", m("002").lint_model);
    let trig = &m("003").lint_model;
    assert!(
        trig.iter().any(|x| x.relation == "public.audit"
            && x.predicted == "no lock"
            && x.observed.contains("ACCESS EXCLUSIVE")),
        "{trig:#?}"
    );
    let forward = step(m("003"), "forward");
    assert!(
        forward.warnings.iter().any(|w| w.starts_with("lint-model: line 1 INSERT: on public.audit")),
        "{forward:#?}"
    );
    // A scan lint cannot see (a CHECK added by a function), and one lint predicts that the
    // server skips (SET NOT NULL proven by that CHECK, which lint never saw).
    let opaque = &m("005").lint_model;
    assert!(
        opaque.iter().any(|x| x.about == "scan"
            && x.relation == "public.accounts"
            && x.predicted == "no scan"
            && x.observed.contains("ACCESS EXCLUSIVE")),
        "{opaque:#?}"
    );
    let proven = &m("006").lint_model;
    assert!(
        proven.iter().any(|x| x.about == "scan" && x.predicted == "a scan" && x.observed == "did not scan it"),
        "{proven:#?}"
    );
    assert_eq!(proven.len(), 1, "{proven:#?}");
    assert!(m("007").lint_model.is_empty(), "{:#?}", m("007").lint_model);
    let retype = &m("004").lint_model;
    assert!(
        retype.iter().any(|x| x.about == "rewrite" && x.relation == "public.accounts" && x.predicted == "no rewrite"),
        "{retype:#?}"
    );
}

#[test]
fn the_examples_locks_rewrites_and_scans_are_the_ones_lint_predicts() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let opts = RehearseOptions { budget: Duration::from_secs(30), ..Default::default() };
    let mismatches = |r: &Report| -> Vec<String> {
        r.migrations
            .iter()
            .flat_map(|m| m.lint_model.iter().map(move |x| format!("{}: {}", m.id(), x.text())))
            .collect()
    };
    // nchat: a whole history.
    let r =
        rehearse(&MigrationSet::load(&examples.join("nchat/migrations")).unwrap(), &server(), &opts, &Quiet).unwrap();
    assert!(r.ok, "{r:#?}");
    assert!(mismatches(&r).is_empty(), "nchat: {}", mismatches(&r).join("\n"));
    // unsafe: each file shows one hazard on the base tables; each is rehearsed on them alone.
    let dir = examples.join("unsafe/migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let (base, rest) = files.split_first().unwrap();
    let mut ran = 0;
    let mut all = Vec::new();
    for f in rest {
        let d = tempfile::tempdir().unwrap();
        for p in [base, f] {
            std::fs::copy(p, d.path().join(p.file_name().unwrap())).unwrap();
        }
        let r = rehearse(&MigrationSet::load(d.path()).unwrap(), &server(), &opts, &Quiet).unwrap();
        ran += usize::from(r.migrations[1].steps[0].ok);
        all.extend(mismatches(&r));
    }
    assert!(all.is_empty(), "unsafe: {}", all.join("\n"));
    // Those that cannot run (CONCURRENTLY in a transaction, an unterminated one…) are not checked.
    assert!(ran >= 35, "only {ran} of {} ran", rest.len());
}
