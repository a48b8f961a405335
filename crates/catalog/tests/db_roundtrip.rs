//! The round-trip property on real schemas: for schemas A and B, applying
//! `A.diff(B).to_sql()` to a database holding A gives a snapshot equal to B — on the migra
//! fixture pairs (both directions) on whichever server the suite runs against.

use std::path::{Path, PathBuf};

use migsafe_catalog::{integrity, Snapshot};
use migsafe_pg::testing::TestDb;

mod independent;

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/migra-fixtures");
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    v.sort();
    v
}

fn db_with(label: &str, sql: &str) -> TestDb {
    // Roles are cluster-wide; the fixtures grant to this one. Created once per process.
    static ROLE: std::sync::Once = std::sync::Once::new();
    ROLE.call_once(|| {
        let admin = TestDb::new("roles");
        admin
            .client()
            .batch_execute(
                "DO $$ BEGIN CREATE ROLE schemainspect_test_role; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            )
            .unwrap();
    });
    let db = TestDb::new(label);
    let mut c = db.client();
    c.batch_execute(sql).unwrap_or_else(|e| {
        panic!("{label}: {}", e.as_db_error().map(|d| d.message().to_string()).unwrap_or(e.to_string()))
    });
    db
}

/// Apply diff(from → to) to `from_db` and return what still differs (empty = property holds).
fn round_trip(label: &str, from_sql: &str, to_sql: &str) -> Result<(), String> {
    let from = db_with(&format!("{label}_from"), from_sql);
    let to = db_with(&format!("{label}_to"), to_sql);
    let a = Snapshot::capture(&mut from.client()).unwrap();
    let b = Snapshot::capture(&mut to.client()).unwrap();
    // The integrity checks' scope read alone is the snapshot's tables.
    let scope = integrity::Scope::read(&mut from.client(), &Default::default()).unwrap();
    assert_eq!(
        scope,
        integrity::Scope::from(&a),
        "{label}: the integrity scope read alone differs from the snapshot's"
    );
    // Read by two sessions at once, the snapshot is the same as read by one.
    let split = Snapshot::capture_split(&mut to.client(), &mut to.client()).unwrap();
    assert!(split == b, "{label}: the snapshot read by two sessions differs:\n{}", split.diff(&b).summary());
    let diff = a.diff(&b);
    let ddl = diff.to_sql();
    let mut c = from.client();
    if let Err(e) = c.batch_execute(&ddl) {
        return Err(format!(
            "{label}: the DDL failed: {}\n--- DDL ---\n{ddl}",
            e.as_db_error().map(|d| d.message().to_string()).unwrap_or(e.to_string())
        ));
    }
    let a2 = Snapshot::capture(&mut c).unwrap();
    let left = a2.diff(&b);
    if !left.differences.is_empty() {
        return Err(format!("{label}: still differs after applying the DDL:\n{}\n--- DDL ---\n{ddl}", left.summary()));
    }
    // And by a catalog query that does not use the snapshot.
    let (got, want) = (independent::schema_lines(&mut c), independent::schema_lines(&mut to.client()));
    if got != want {
        return Err(format!(
            "{label}: the catalog query still differs after applying the DDL:\n{}--- DDL ---\n{ddl}",
            independent::difference(&got, &want)
        ));
    }
    Ok(())
}

/// Round trips that still differ, with why. The test fails when one of them passes (take it out).
const KNOWN: &[(&str, &str)] = &[];

#[test]
fn migra_fixture_pairs_round_trip_both_ways() {
    let mut failures = Vec::new();
    let mut known_failed = Vec::new();
    let mut ran = 0;
    for dir in fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let a = std::fs::read_to_string(dir.join("a.sql")).unwrap();
        let b = std::fs::read_to_string(dir.join("b.sql")).unwrap();
        for (label, x, y) in [(format!("{name}_ab"), &a, &b), (format!("{name}_ba"), &b, &a)] {
            ran += 1;
            match round_trip(&label, x, y) {
                Err(_) if KNOWN.iter().any(|(k, _)| *k == label) => known_failed.push(label),
                Err(e) => failures.push(e),
                Ok(()) => {}
            }
        }
    }
    assert!(ran >= 52);
    let now_passing: Vec<&str> =
        KNOWN.iter().map(|(k, _)| *k).filter(|k| !known_failed.iter().any(|f| f == k)).collect();
    assert!(now_passing.is_empty(), "these pass now: take them out of KNOWN: {now_passing:?}");
    assert!(failures.is_empty(), "{} of {ran} round trips failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn equal_schemas_have_an_empty_diff_and_no_sql() {
    let sql = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/migra-fixtures/everything/b.sql"),
    )
    .unwrap();
    let x = db_with("equal_x", &sql);
    let y = db_with("equal_y", &sql);
    let a = Snapshot::capture(&mut x.client()).unwrap();
    let b = Snapshot::capture(&mut y.client()).unwrap();
    assert!(a.diff(&b).is_empty(), "{}", a.diff(&b).summary());
    assert_eq!(a.diff(&b).to_sql(), "");
    // JSON round trip is lossless and stable.
    let json = a.to_json();
    assert_eq!(Snapshot::from_json(&json).unwrap(), a);
    assert_eq!(Snapshot::from_json(&json).unwrap().to_json(), json);
}

/// A base schema touching every object kind, and independent edits of it: any subset of the
/// edits, in any order, is a valid schema change.
const BASE: &str = r#"
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN app.email AS text CHECK (VALUE LIKE '%@%');
CREATE TYPE app.pair AS (a int, b text);
CREATE SEQUENCE app.ticket_seq START 100 INCREMENT 2;
CREATE TABLE app.users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email app.email NOT NULL,
    name text,
    mood app.mood DEFAULT 'ok',
    score int DEFAULT 0,
    bio varchar(200),
    nickname text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE app.posts (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES app.users (id) ON DELETE CASCADE,
    title text NOT NULL,
    body text,
    ticket int DEFAULT nextval('app.ticket_seq'),
    words int GENERATED ALWAYS AS (length(body)) STORED
);
CREATE INDEX posts_user_idx ON app.posts (user_id);
CREATE TABLE app.events (id bigint NOT NULL, at date NOT NULL, payload jsonb) PARTITION BY RANGE (at);
CREATE TABLE app.events_2024 PARTITION OF app.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app.notes (id int PRIMARY KEY, txt text);
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE FUNCTION app.double(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';
CREATE TRIGGER users_touch BEFORE UPDATE ON app.users FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE VIEW app.user_names AS SELECT id, name FROM app.users;
CREATE VIEW app.post_titles AS SELECT p.id, p.title, u.name FROM app.posts p JOIN app.user_names u ON u.id = p.user_id;
CREATE MATERIALIZED VIEW app.post_counts AS SELECT user_id, count(*) AS n FROM app.posts GROUP BY user_id;
CREATE UNIQUE INDEX post_counts_user ON app.post_counts (user_id);
COMMENT ON TABLE app.users IS 'people';
COMMENT ON COLUMN app.users.name IS 'display name';
ALTER TABLE app.notes ENABLE ROW LEVEL SECURITY;
CREATE POLICY notes_all ON app.notes USING (true);
GRANT SELECT ON app.users TO schemainspect_test_role;
CREATE TABLE app.deleted_titles (title text, at timestamptz DEFAULT now());
CREATE RULE posts_keep_title AS ON DELETE TO app.posts DO ALSO INSERT INTO app.deleted_titles (title) VALUES (OLD.title);
CREATE RULE users_keep_root AS ON DELETE TO app.users WHERE OLD.id = 0 DO INSTEAD NOTHING;
"#;

const EDITS: &[&str] = &[
    "ALTER TABLE app.users ADD COLUMN phone text",
    "ALTER TABLE app.users DROP COLUMN score",
    "ALTER TABLE app.users ALTER COLUMN bio TYPE text",
    "ALTER TABLE app.users ALTER COLUMN name SET NOT NULL",
    "ALTER TABLE app.users ALTER COLUMN mood SET DEFAULT 'happy'",
    "ALTER TABLE app.users ADD CONSTRAINT users_email_key UNIQUE (email)",
    "ALTER TABLE app.posts ADD CONSTRAINT posts_title_len CHECK (length(title) < 300) NOT VALID",
    "CREATE INDEX posts_title_trgm ON app.posts USING gin (title gin_trgm_ops)",
    "DROP INDEX app.posts_user_idx",
    "CREATE INDEX users_created_partial ON app.users (created_at) WHERE name IS NOT NULL",
    "CREATE OR REPLACE VIEW app.user_names AS SELECT id, name, email FROM app.users",
    "DROP MATERIALIZED VIEW app.post_counts",
    "CREATE OR REPLACE FUNCTION app.double(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x + x'",
    "CREATE FUNCTION app.triple(x int) RETURNS int LANGUAGE sql AS 'SELECT x * 3'",
    "ALTER TABLE app.users DISABLE TRIGGER users_touch",
    "ALTER TYPE app.mood ADD VALUE 'meh' BEFORE 'ok'",
    "CREATE TYPE app.color AS ENUM ('red', 'green')",
    "ALTER DOMAIN app.email ADD CONSTRAINT email_len CHECK (length(VALUE) < 320)",
    "ALTER SEQUENCE app.ticket_seq INCREMENT 5 CACHE 10",
    "COMMENT ON TABLE app.users IS 'accounts'",
    "COMMENT ON COLUMN app.posts.title IS 'headline'",
    "GRANT INSERT, UPDATE ON app.posts TO schemainspect_test_role",
    "REVOKE SELECT ON app.users FROM schemainspect_test_role",
    "CREATE POLICY notes_read ON app.notes AS RESTRICTIVE FOR SELECT TO schemainspect_test_role USING (txt IS NOT NULL)",
    "ALTER TABLE app.notes SET (fillfactor = 70)",
    "ALTER TABLE app.notes SET UNLOGGED",
    "CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
    "ALTER TABLE app.events DETACH PARTITION app.events_2024",
    "ALTER TABLE app.notes ADD COLUMN code text COLLATE \"C\"",
    "ALTER TABLE app.notes ALTER COLUMN id TYPE bigint",
    "CREATE SCHEMA audit",
    "CREATE TABLE app.tags (post_id bigint REFERENCES app.posts (id) DEFERRABLE INITIALLY DEFERRED, tag text, EXCLUDE USING btree (tag WITH =))",
    "ALTER TABLE app.posts DROP COLUMN words",
    "ALTER TABLE app.users RENAME COLUMN nickname TO handle",
    "ALTER TABLE app.notes REPLICA IDENTITY FULL",
    "DROP TYPE app.pair",
    // An aggregate goes before its state function and comes after it.
    "CREATE FUNCTION app.add_double(s int, x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT s + 2 * x'; \
     CREATE AGGREGATE app.sum_double(int) (sfunc = app.add_double, stype = int, initcond = '0')",
    "CREATE RULE titles_need_time AS ON INSERT TO app.deleted_titles WHERE NEW.at IS NULL DO INSTEAD NOTHING",
    "DROP RULE users_keep_root ON app.users",
    "ALTER TABLE app.posts DISABLE RULE posts_keep_title",
    "COMMENT ON RULE posts_keep_title ON app.posts IS 'titles outlive posts'",
    "CREATE OR REPLACE RULE posts_keep_title AS ON DELETE TO app.posts DO ALSO INSERT INTO app.deleted_titles (title) VALUES (OLD.body)",
    // A column a rule uses cannot change type under it: the rule goes and comes back.
    "DROP RULE posts_keep_title ON app.posts; ALTER TABLE app.deleted_titles ALTER COLUMN title TYPE varchar(500); \
     CREATE RULE posts_keep_title AS ON DELETE TO app.posts DO ALSO INSERT INTO app.deleted_titles (title) VALUES (OLD.title)",
];

fn apply_edits(mask: u64, order: &[usize]) -> String {
    let mut sql = String::from(BASE);
    for &i in order {
        if mask & (1 << i) != 0 {
            sql.push_str(EDITS[i]);
            sql.push_str(";\n");
        }
    }
    sql
}

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_schema_edits_round_trip(
        a_mask in any::<u64>(),
        b_mask in any::<u64>(),
        order in Just((0..EDITS.len()).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        let a = apply_edits(a_mask & ((1 << EDITS.len()) - 1), &order);
        let b = apply_edits(b_mask & ((1 << EDITS.len()) - 1), &order);
        if let Err(e) = round_trip("random_ab", &a, &b) {
            prop_assert!(false, "{}", e);
        }
    }
}

#[test]
fn every_single_edit_round_trips_both_ways() {
    let order: Vec<usize> = (0..EDITS.len()).collect();
    let mut failures = vec![];
    for (i, edit) in EDITS.iter().enumerate() {
        let b = apply_edits(1 << i, &order);
        for (label, x, y) in [("edit_fwd", BASE, b.as_str()), ("edit_back", b.as_str(), BASE)] {
            if let Err(e) = round_trip(&format!("{label}_{i}"), x, y) {
                failures.push(format!("edit {i} ({edit}):\n{e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn persistence_changes_follow_foreign_keys_even_in_cycles() {
    // PostgreSQL makes a table LOGGED only after every table it references, and UNLOGGED only
    // after every table referencing it; two tables that reference each other need their keys
    // dropped around the change.
    let chain = |kind: &str| {
        format!(
            "CREATE {kind} TABLE p (id int PRIMARY KEY);
             CREATE {kind} TABLE c (id int PRIMARY KEY, p_id int REFERENCES p);
             CREATE {kind} TABLE g (id int PRIMARY KEY, c_id int REFERENCES c);"
        )
    };
    let cycle = |kind: &str| {
        format!(
            "CREATE {kind} TABLE locks (name text, token text, mode text, PRIMARY KEY (name, token), UNIQUE (name, mode));
             CREATE {kind} TABLE lock_modes (name text, mode text, token text, PRIMARY KEY (name, mode),
                 FOREIGN KEY (name, token) REFERENCES locks (name, token) DEFERRABLE INITIALLY DEFERRED);
             ALTER TABLE locks ADD CONSTRAINT locks_mode FOREIGN KEY (name, mode) REFERENCES lock_modes (name, mode);"
        )
    };
    for (label, make) in [("chain", &chain as &dyn Fn(&str) -> String), ("cycle", &cycle)] {
        let (logged, unlogged) = (make(""), make("UNLOGGED"));
        round_trip(&format!("{label}_to_unlogged"), &logged, &unlogged).unwrap();
        round_trip(&format!("{label}_to_logged"), &unlogged, &logged).unwrap();
    }
}

#[test]
fn foreign_keys_follow_the_key_they_depend_on() {
    // LedgerSMB moves entity's primary key to id, which had a UNIQUE constraint that every
    // foreign key to entity(id) depended on.
    let unique =
        "CREATE TABLE e (id int NOT NULL UNIQUE, code text NOT NULL, cls int NOT NULL, PRIMARY KEY (code, cls));
                  CREATE TABLE r (e_id int REFERENCES e (id), other int);";
    let primary = "CREATE TABLE e (id int PRIMARY KEY, code text NOT NULL, cls int NOT NULL);
                   CREATE TABLE r (e_id int REFERENCES e (id), other int);";
    round_trip("to_primary", unique, primary).unwrap();
    round_trip("to_unique", primary, unique).unwrap();
    let index = "CREATE TABLE e (id int NOT NULL, code text);
                 CREATE UNIQUE INDEX e_id ON e (id);
                 CREATE TABLE r (e_id int REFERENCES e (id));";
    let other = "CREATE TABLE e (id int NOT NULL, code text);
                 CREATE UNIQUE INDEX e_id ON e (id) INCLUDE (code);
                 CREATE TABLE r (e_id int REFERENCES e (id));";
    round_trip("index_changes", index, other).unwrap();
}

#[test]
fn columns_move_into_and_out_of_bytea() {
    let json = "CREATE TABLE jobs (id int PRIMARY KEY, job jsonb, note text);
                INSERT INTO jobs VALUES (1, '{\"a\": 1}', 'x');";
    let bytes = "CREATE TABLE jobs (id int PRIMARY KEY, job bytea, note bytea);
                 INSERT INTO jobs VALUES (1, convert_to('{\"a\": 1}', 'UTF8'), 'x'::bytea);";
    round_trip("to_bytea", json, bytes).unwrap();
    round_trip("from_bytea", bytes, json).unwrap();
}

#[test]
fn functions_on_a_table_row_type_go_before_the_table() {
    let with = "CREATE TABLE jobs (id bigserial PRIMARY KEY, queue text);
                CREATE FUNCTION next_job(q text) RETURNS jobs LANGUAGE sql AS 'SELECT * FROM jobs WHERE queue = q LIMIT 1';
                CREATE FUNCTION touch(j jobs) RETURNS bigint LANGUAGE sql AS 'SELECT j.id';";
    round_trip("rowtype_fn_gone", with, "").unwrap();
    round_trip("rowtype_fn_new", "", with).unwrap();
}

#[test]
fn retyped_columns_used_by_trigger_conditions_and_policies() {
    // Removing an enum value rebuilds the type and converts its columns; PostgreSQL refuses
    // that while a trigger's WHEN clause or a policy uses the column.
    let schema = |values: &str, note_type: &str| {
        format!(
            "CREATE TYPE job_status AS ENUM ({values});
             CREATE TABLE jobs (id int PRIMARY KEY, status job_status NOT NULL DEFAULT 'todo', note {note_type},
                                CONSTRAINT done_has_note CHECK (status <> 'done' OR note IS NOT NULL));
             CREATE FUNCTION notify_job() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
             CREATE FUNCTION finish_job(id int, s job_status) RETURNS job_status LANGUAGE sql AS 'SELECT s';
             CREATE TRIGGER jobs_notify AFTER INSERT ON jobs FOR EACH ROW WHEN (NEW.status = 'todo' AND NEW.note IS NOT NULL) EXECUTE FUNCTION notify_job();
             ALTER TABLE jobs DISABLE TRIGGER jobs_notify;
             CREATE TRIGGER jobs_status_update AFTER UPDATE OF status ON jobs FOR EACH ROW EXECUTE FUNCTION notify_job();
             CREATE UNIQUE INDEX jobs_one_doing ON jobs (note) WHERE status = 'doing';
             CREATE INDEX jobs_todo ON jobs ((status = 'todo'));
             COMMENT ON INDEX jobs_todo IS 'todo first';
             ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
             CREATE POLICY open_jobs ON jobs USING (status <> 'done' AND note <> '');
             INSERT INTO jobs VALUES (1, 'todo', 'a');"
        )
    };
    let before = schema("'todo', 'doing', 'done'", "varchar(20)");
    let after = schema("'todo', 'doing', 'done', 'cancelled'", "text");
    round_trip("retyped_back", &after, &before).unwrap();
    round_trip("retyped_fwd", &before, &after).unwrap();
}

#[test]
fn sequences_survive_when_the_table_or_column_owning_them_goes() {
    // Renaming a table keeps its serial's sequence name; dropping the renamed table would drop
    // the sequence the recreated one needs.
    let original = "CREATE TABLE person_mention (id serial PRIMARY KEY, note text);
                    CREATE TABLE tag (id int PRIMARY KEY, n serial);";
    let renamed = "CREATE SEQUENCE person_mention_id_seq AS integer;
                   CREATE TABLE person_comment_mention (id int NOT NULL DEFAULT nextval('person_mention_id_seq') PRIMARY KEY, note text);
                   ALTER SEQUENCE person_mention_id_seq OWNED BY person_comment_mention.id;
                   CREATE SEQUENCE tag_n_seq AS integer;
                   CREATE TABLE tag (id int PRIMARY KEY, m int DEFAULT nextval('tag_n_seq'));
                   ALTER SEQUENCE tag_n_seq OWNED BY tag.m;";
    round_trip("owned_seq_back", renamed, original).unwrap();
    round_trip("owned_seq_fwd", original, renamed).unwrap();
}

/// Issue 21: an attribute PostgreSQL keeps, changed alone (the independent catalog query sees
/// the change), changes the snapshot, and the diff's DDL reproduces it in both directions. (A snapshot that did not read it would round-trip
/// trivially: the first assertion is the one that fails then.)
fn attribute_changes(cases: &[(&str, &str)]) {
    let mut failures = vec![];
    for (i, (what, edit)) in cases.iter().enumerate() {
        let changed = format!("{BASE}\n{edit};");
        let (da, db) = (db_with(&format!("attr_a_{i}"), BASE), db_with(&format!("attr_b_{i}"), &changed));
        // The edit changes something PostgreSQL keeps (the independent query sees it)...
        if independent::schema_lines(&mut da.client()) == independent::schema_lines(&mut db.client()) {
            failures.push(format!("{what} ({edit}): the catalog query does not see it either: not a test"));
            continue;
        }
        // ... and the snapshot must see it.
        let a = Snapshot::capture(&mut da.client()).unwrap();
        let b = Snapshot::capture(&mut db.client()).unwrap();
        if a.diff(&b).differences.is_empty() {
            failures.push(format!("{what} ({edit}): the snapshot does not see it"));
            continue;
        }
        for (label, x, y) in [("attr_fwd", BASE, changed.as_str()), ("attr_back", changed.as_str(), BASE)] {
            if let Err(e) = round_trip(&format!("{label}_{i}"), x, y) {
                failures.push(format!("{what} ({edit}):\n{e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn identity_sequence_options_are_each_seen_and_reproduced() {
    attribute_changes(&[
        ("increment", "ALTER TABLE app.users ALTER COLUMN id SET INCREMENT BY 5"),
        ("start", "ALTER TABLE app.users ALTER COLUMN id SET START WITH 1000"),
        ("minimum", "ALTER TABLE app.posts ALTER COLUMN id SET MINVALUE -100"),
        ("maximum", "ALTER TABLE app.posts ALTER COLUMN id SET MAXVALUE 1000000"),
        ("cache", "ALTER TABLE app.users ALTER COLUMN id SET CACHE 20"),
        ("cycle", "ALTER TABLE app.posts ALTER COLUMN id SET MAXVALUE 100 SET CYCLE"),
        ("descending", "ALTER TABLE app.notes ADD COLUMN seq int GENERATED BY DEFAULT AS IDENTITY (INCREMENT BY -1)"),
    ]);
}

#[test]
fn not_null_constraint_names_are_seen_and_reproduced_from_postgresql_18() {
    let db = db_with("nn_version", BASE);
    let version: i32 =
        db.client().query_one("SHOW server_version_num", &[]).unwrap().get::<_, String>(0).parse().unwrap();
    let snap = Snapshot::capture(&mut db.client()).unwrap();
    let email = &snap.tables[&migsafe_catalog::QName::new("app", "users")].columns[1];
    if version < 180000 {
        // Before 18 a NOT NULL is a column flag with no name to compare.
        assert_eq!(email.not_null_name, None);
        return;
    }
    assert_eq!(email.not_null_name.as_deref(), Some("users_email_not_null"));
    attribute_changes(&[
        ("a NOT NULL renamed", "ALTER TABLE app.users RENAME CONSTRAINT users_email_not_null TO email_required"),
        ("a NOT NULL added by name", "ALTER TABLE app.users ADD CONSTRAINT name_required NOT NULL name"),
    ]);
}

#[test]
fn an_identity_switched_between_always_and_by_default_keeps_its_sequence_position() {
    // ALWAYS ↔ BY DEFAULT is seen, reproduced, and done with SET GENERATED: the sequence keeps
    // its place, so the next row does not get an id the table already holds.
    attribute_changes(&[("always to by default", "ALTER TABLE app.users ALTER COLUMN id SET GENERATED BY DEFAULT")]);
    let from = "CREATE TABLE ids (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);\n\
                INSERT INTO ids (v) VALUES ('a'), ('b'), ('c');";
    let to = "CREATE TABLE ids (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text);";
    let db = db_with("identity_switch_from", from);
    let a = Snapshot::capture(&mut db.client()).unwrap();
    let b = Snapshot::capture(&mut db_with("identity_switch_to", to).client()).unwrap();
    let ddl = a.diff(&b).to_sql();
    assert!(ddl.contains("SET GENERATED BY DEFAULT") && !ddl.contains("DROP IDENTITY"), "{ddl}");
    let mut c = db.client();
    c.batch_execute(&ddl).unwrap();
    let id: i32 = c.query_one("INSERT INTO ids (v) VALUES ('d') RETURNING id", &[]).unwrap().get(0);
    assert_eq!(id, 4);
}

#[test]
fn a_constraint_goes_from_validated_to_not_valid_and_back() {
    let not_valid =
        format!("{BASE}\nALTER TABLE app.posts ADD CONSTRAINT posts_title_len CHECK (length(title) < 300) NOT VALID;");
    let valid = format!("{not_valid}\nALTER TABLE app.posts VALIDATE CONSTRAINT posts_title_len;");
    let a = Snapshot::capture(&mut db_with("validity_a", &valid).client()).unwrap();
    let b = Snapshot::capture(&mut db_with("validity_b", &not_valid).client()).unwrap();
    assert!(!a.diff(&b).differences.is_empty(), "the snapshot sees validity");
    let mut failures = vec![];
    for (label, x, y) in [("valid_to_not", valid.as_str(), not_valid.as_str()), ("not_to_valid", &not_valid, &valid)] {
        if let Err(e) = round_trip(label, x, y) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_session_prepares_the_catalog_queries_once_and_again_when_they_are_gone() {
    let db = db_with(
        "prepared",
        "CREATE TABLE t (id int PRIMARY KEY, note text DEFAULT 'x'); CREATE VIEW v AS SELECT id FROM t;",
    );
    let mut c = db.client();
    let prepared = |c: &mut postgres::Client| -> i64 {
        c.query_one("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'migsafe\\_%'", &[]).unwrap().get(0)
    };
    let first = Snapshot::capture(&mut c).expect("snapshot");
    let after_first = prepared(&mut c);
    assert!(after_first > 10, "{after_first} prepared");
    // A second snapshot on the session uses them: none added, same result.
    assert_eq!(Snapshot::capture(&mut c).expect("snapshot"), first);
    assert_eq!(prepared(&mut c), after_first);
    // Migration SQL may deallocate them: they are prepared again.
    c.batch_execute("DEALLOCATE ALL; ALTER TABLE t ADD COLUMN extra int").unwrap();
    let changed = Snapshot::capture(&mut c).expect("snapshot");
    assert_ne!(changed, first);
    assert_eq!(prepared(&mut c), after_first);
    c.batch_execute("ALTER TABLE t DROP COLUMN extra").unwrap();
    // Inside a transaction block (a savepoint, rolled back after): same again.
    c.batch_execute("BEGIN").unwrap();
    assert_eq!(Snapshot::capture_within(&mut c).expect("snapshot"), first);
    c.batch_execute("COMMIT").unwrap();
    // A new session starts with none.
    let mut c2 = db.client();
    assert_eq!(prepared(&mut c2), 0);
    assert_eq!(Snapshot::capture(&mut c2).expect("snapshot"), first);
}

/// Apply diff(from → to) to a database holding `from` and its `rows`; return the DDL and the
/// database (the schema must then equal `to`).
fn renamed(label: &str, from_sql: &str, rows: &str, to_sql: &str) -> (String, TestDb) {
    let from = db_with(&format!("{label}_from"), from_sql);
    from.client().batch_execute(rows).unwrap();
    let to = db_with(&format!("{label}_to"), to_sql);
    let a = Snapshot::capture(&mut from.client()).unwrap();
    let b = Snapshot::capture(&mut to.client()).unwrap();
    let ddl = a.diff(&b).to_sql();
    from.client().batch_execute(&ddl).unwrap_or_else(|e| panic!("{label}: {e}\n{ddl}"));
    let after = Snapshot::capture(&mut from.client()).unwrap();
    assert!(after.diff(&b).differences.is_empty(), "{label}: {}\n{ddl}", after.diff(&b).summary());
    (ddl, from)
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn a_renamed_table_keeps_its_rows_and_the_foreign_keys_pointing_at_it() {
    let (ddl, db) = renamed(
        "rn_table",
        "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL); \
         CREATE TABLE posts (id int PRIMARY KEY, user_id int REFERENCES users (id));",
        "INSERT INTO users VALUES (1, 'a'), (2, 'b'); INSERT INTO posts VALUES (1, 1), (2, 2);",
        "CREATE TABLE accounts (id int, name text NOT NULL, CONSTRAINT users_pkey PRIMARY KEY (id)); \
         CREATE TABLE posts (id int PRIMARY KEY, user_id int, CONSTRAINT posts_user_id_fkey FOREIGN KEY (user_id) REFERENCES accounts (id));",
    );
    assert!(ddl.contains("ALTER TABLE public.users RENAME TO accounts"), "{ddl}");
    assert!(!ddl.contains("DROP TABLE"), "{ddl}");
    assert_eq!(count(&db, "SELECT count(*) FROM accounts"), 2);
}

#[test]
fn a_renamed_column_keeps_its_values_and_its_index_and_constraints_follow() {
    let (ddl, db) = renamed(
        "rn_column",
        "CREATE TABLE items (id int PRIMARY KEY, price numeric CHECK (price > 0), label text); \
         CREATE INDEX items_price ON items (price); \
         CREATE TABLE lines (id int PRIMARY KEY, item_id int REFERENCES items (id));",
        "INSERT INTO items VALUES (1, 9, 'a'), (2, 3, 'b');",
        "CREATE TABLE items (item_id int, cost numeric, label text, CONSTRAINT items_pkey PRIMARY KEY (item_id), \
           CONSTRAINT items_price_check CHECK (cost > 0)); \
         CREATE INDEX items_price ON items (cost); \
         CREATE TABLE lines (id int PRIMARY KEY, item_id int, CONSTRAINT lines_item_id_fkey FOREIGN KEY (item_id) REFERENCES items (item_id));",
    );
    assert!(ddl.contains("RENAME COLUMN price TO cost"), "{ddl}");
    assert!(ddl.contains("RENAME COLUMN id TO item_id"), "{ddl}");
    assert!(!ddl.contains("DROP COLUMN"), "{ddl}");
    // Nothing rebuilt: the index and the constraints follow the column by themselves.
    assert!(!ddl.contains("DROP INDEX") && !ddl.contains("DROP CONSTRAINT"), "{ddl}");
    assert_eq!(count(&db, "SELECT sum(cost)::int8 FROM items"), 12);
}

#[test]
fn renamed_indexes_constraints_and_sequences_are_renamed_not_rebuilt() {
    let (ddl, db) = renamed(
        "rn_objects",
        "CREATE SEQUENCE order_no START 100; \
         CREATE TABLE orders (id int PRIMARY KEY, no int DEFAULT nextval('order_no'), total int, \
           CONSTRAINT total_positive CHECK (total > 0)); \
         CREATE INDEX orders_total ON orders (total);",
        "INSERT INTO orders (id, total) VALUES (1, 5), (2, 7);",
        "CREATE SEQUENCE order_number START 100; \
         CREATE TABLE orders (id int PRIMARY KEY, no int DEFAULT nextval('order_number'), total int, \
           CONSTRAINT orders_total_check CHECK (total > 0)); \
         CREATE INDEX orders_by_total ON orders (total);",
    );
    assert!(ddl.contains("ALTER SEQUENCE public.order_no RENAME TO order_number"), "{ddl}");
    assert!(ddl.contains("RENAME CONSTRAINT total_positive TO orders_total_check"), "{ddl}");
    assert!(ddl.contains("ALTER INDEX public.orders_total RENAME TO orders_by_total"), "{ddl}");
    assert!(!ddl.contains("DROP SEQUENCE") && !ddl.contains("DROP INDEX"), "{ddl}");
    // The sequence goes on from where it was, under the rows numbered by it.
    assert_eq!(count(&db, "SELECT nextval('order_number')"), 102);
}

#[test]
fn ambiguous_renames_are_left_to_the_reader_as_notes() {
    // Two text columns go and two come: which is which cannot be told from the schema.
    let (ddl, _db) = renamed(
        "rn_ambiguous",
        "CREATE TABLE people (id int PRIMARY KEY, first text, last text);",
        "INSERT INTO people VALUES (1, 'a', 'b');",
        "CREATE TABLE people (id int PRIMARY KEY, given text, family text);",
    );
    let statements: Vec<&str> = ddl.lines().filter(|l| !l.starts_with("--")).collect();
    assert!(!statements.iter().any(|l| l.contains("RENAME")), "{ddl}");
    let notes: Vec<&str> = ddl.lines().filter(|l| l.starts_with("-- note:")).collect();
    assert_eq!(notes.len(), 1, "{ddl}");
    assert!(notes[0].contains("first, last dropped and family, given added"), "{ddl}");
    assert!(notes[0].contains("RENAME COLUMN first TO given"), "{ddl}");
    assert!(statements.iter().any(|l| l.contains("DROP COLUMN first")), "{ddl}");
}

#[test]
fn a_views_triggers_and_an_identity_sequences_name_are_seen_and_reproduced() {
    // Both were missed by the snapshot; the independent catalog query found them.
    attribute_changes(&[
        (
            "a trigger on a view",
            "CREATE TRIGGER names_insert INSTEAD OF INSERT ON app.user_names FOR EACH ROW EXECUTE FUNCTION app.touch()",
        ),
        ("an identity sequence's name", "ALTER SEQUENCE app.users_id_seq RENAME TO users_ids"),
    ]);
}

#[test]
fn every_attribute_the_catalog_keeps_is_seen_and_reproduced() {
    attribute_changes(&[
        // Tables.
        ("persistence", "ALTER TABLE app.notes SET UNLOGGED"),
        ("storage parameters", "ALTER TABLE app.notes SET (fillfactor = 70)"),
        ("row level security", "ALTER TABLE app.posts ENABLE ROW LEVEL SECURITY"),
        ("forced row level security", "ALTER TABLE app.notes FORCE ROW LEVEL SECURITY"),
        ("replica identity", "ALTER TABLE app.notes REPLICA IDENTITY FULL"),
        ("replica identity index", "ALTER TABLE app.notes REPLICA IDENTITY USING INDEX notes_pkey"),
        ("table grant", "GRANT INSERT ON app.notes TO schemainspect_test_role"),
        ("table comment", "COMMENT ON TABLE app.notes IS 'scratch'"),
        ("inheritance", "CREATE TABLE app.more_notes (extra int) INHERITS (app.notes)"),
        // Columns.
        ("column type", "ALTER TABLE app.notes ALTER COLUMN txt TYPE varchar(50)"),
        ("column collation", "ALTER TABLE app.notes ALTER COLUMN txt TYPE text COLLATE \"C\""),
        ("column default", "ALTER TABLE app.notes ALTER COLUMN txt SET DEFAULT 'none'"),
        ("column not null", "ALTER TABLE app.notes ALTER COLUMN txt SET NOT NULL"),
        ("column storage", "ALTER TABLE app.notes ALTER COLUMN txt SET STORAGE EXTERNAL"),
        ("column statistics", "ALTER TABLE app.notes ALTER COLUMN txt SET STATISTICS 500"),
        ("column options", "ALTER TABLE app.notes ALTER COLUMN txt SET (n_distinct = 100)"),
        ("column grant", "GRANT SELECT (txt) ON app.notes TO schemainspect_test_role"),
        ("column comment", "COMMENT ON COLUMN app.notes.txt IS 'the text'"),
        ("generated expression", "ALTER TABLE app.notes ADD COLUMN len int GENERATED ALWAYS AS (length(txt)) STORED"),
        // Constraints.
        ("check", "ALTER TABLE app.notes ADD CONSTRAINT txt_short CHECK (length(txt) < 100)"),
        ("check no inherit", "ALTER TABLE app.notes ADD CONSTRAINT txt_some CHECK (txt <> '') NO INHERIT"),
        (
            "deferrable unique",
            "ALTER TABLE app.notes ADD CONSTRAINT txt_unique UNIQUE (txt) DEFERRABLE INITIALLY DEFERRED",
        ),
        (
            "foreign key actions",
            "ALTER TABLE app.posts DROP CONSTRAINT posts_user_id_fkey, \
          ADD CONSTRAINT posts_user_id_fkey FOREIGN KEY (user_id) REFERENCES app.users (id) ON DELETE SET NULL",
        ),
        ("exclusion", "ALTER TABLE app.notes ADD CONSTRAINT one_txt EXCLUDE USING btree (txt WITH =)"),
        ("constraint comment", "COMMENT ON CONSTRAINT notes_pkey ON app.notes IS 'key'"),
        ("domain check", "ALTER DOMAIN app.email ADD CONSTRAINT email_short CHECK (length(VALUE) < 300)"),
        // Indexes.
        ("index storage parameters", "ALTER INDEX app.posts_user_idx SET (fillfactor = 80)"),
        ("index clustered on", "ALTER TABLE app.posts CLUSTER ON posts_user_idx"),
        ("index comment", "COMMENT ON INDEX app.posts_user_idx IS 'by author'"),
        (
            "index predicate",
            "DROP INDEX app.posts_user_idx; CREATE INDEX posts_user_idx ON app.posts (user_id) WHERE body IS NOT NULL",
        ),
        // Sequences.
        ("sequence increment", "ALTER SEQUENCE app.ticket_seq INCREMENT 3"),
        ("sequence bounds", "ALTER SEQUENCE app.ticket_seq MAXVALUE 5000"),
        ("sequence cycle", "ALTER SEQUENCE app.ticket_seq CYCLE"),
        ("sequence owner column", "ALTER SEQUENCE app.ticket_seq OWNED BY app.posts.ticket"),
        ("sequence grant", "GRANT USAGE ON SEQUENCE app.ticket_seq TO schemainspect_test_role"),
        // Triggers, policies, rules.
        ("trigger firing", "ALTER TABLE app.users DISABLE TRIGGER users_touch"),
        ("trigger comment", "COMMENT ON TRIGGER users_touch ON app.users IS 'keeps time'"),
        ("policy roles", "ALTER POLICY notes_all ON app.notes TO schemainspect_test_role"),
        ("policy check", "ALTER POLICY notes_all ON app.notes WITH CHECK (id > 0)"),
        ("restrictive policy", "CREATE POLICY notes_mine ON app.notes AS RESTRICTIVE FOR SELECT USING (id > 0)"),
        ("rule firing", "ALTER TABLE app.posts DISABLE RULE posts_keep_title"),
        // Functions, types, views, schemas.
        (
            "function body",
            "CREATE OR REPLACE FUNCTION app.double(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x + x'",
        ),
        ("function volatility", "ALTER FUNCTION app.double(int) STABLE"),
        ("function setting", "ALTER FUNCTION app.double(int) SET search_path = app"),
        ("function grant", "REVOKE EXECUTE ON FUNCTION app.double(int) FROM PUBLIC"),
        ("function comment", "COMMENT ON FUNCTION app.double(int) IS 'twice'"),
        ("enum label", "ALTER TYPE app.mood ADD VALUE 'great'"),
        ("domain default", "ALTER DOMAIN app.email SET DEFAULT 'x@y'"),
        ("domain not null", "ALTER DOMAIN app.email SET NOT NULL"),
        ("type comment", "COMMENT ON TYPE app.pair IS 'two'"),
        ("type grant", "REVOKE USAGE ON TYPE app.mood FROM PUBLIC"),
        ("view options", "ALTER VIEW app.user_names SET (security_barrier = true)"),
        ("view grant", "GRANT SELECT ON app.user_names TO schemainspect_test_role"),
        ("view column comment", "COMMENT ON COLUMN app.user_names.name IS 'shown'"),
        ("materialized view index", "CREATE INDEX post_counts_n ON app.post_counts (n)"),
        ("schema comment", "COMMENT ON SCHEMA app IS 'the app'"),
        ("schema grant", "GRANT USAGE ON SCHEMA app TO schemainspect_test_role"),
        ("statistics object", "CREATE STATISTICS app.posts_stats ON user_id, ticket FROM app.posts"),
    ]);
}

/// An inheritance child's column `e`: the child's own (its parent has none), inherited only,
/// declared by both (`attislocal` of an inherited column), and absent from the child.
const CHILD_OWN: &str = "CREATE TABLE parent (id int); \
    CREATE TABLE child (e int CONSTRAINT child_e_check CHECK (e > 0), note text) INHERITS (parent); \
    CREATE INDEX child_e ON child (e); CREATE VIEW child_es AS SELECT e FROM child;";
const CHILD_INHERITS: &str = "CREATE TABLE parent (id int, e int); \
    CREATE TABLE child (note text) INHERITS (parent); \
    ALTER TABLE child ADD CONSTRAINT child_e_check CHECK (e > 0); \
    CREATE INDEX child_e ON child (e); CREATE VIEW child_es AS SELECT e FROM child;";
const CHILD_BOTH: &str = "CREATE TABLE parent (id int, e int); \
    CREATE TABLE child (e int CONSTRAINT child_e_check CHECK (e > 0), note text) INHERITS (parent); \
    CREATE INDEX child_e ON child (e); CREATE VIEW child_es AS SELECT e FROM child;";
const CHILD_WITHOUT: &str = "CREATE TABLE parent (id int); CREATE TABLE child (note text) INHERITS (parent);";

#[test]
fn a_childs_column_declared_by_the_child_too_is_seen_and_reproduced() {
    // The snapshot tells inherited only from declared by the child too (the independent query
    // does, so this is a test).
    let (inh, both) = (db_with("local_too_inh", CHILD_INHERITS), db_with("local_too_both", CHILD_BOTH));
    assert_ne!(independent::schema_lines(&mut inh.client()), independent::schema_lines(&mut both.client()));
    let (a, b) = (Snapshot::capture(&mut inh.client()).unwrap(), Snapshot::capture(&mut both.client()).unwrap());
    let diff = a.diff(&b);
    assert!(!diff.differences.is_empty(), "the snapshot does not see attislocal");
    // No statement makes either of those two into the other without rebuilding: it is said.
    assert!(diff.to_sql().contains("-- MANUAL: column public.child.e is inherited only"), "{}", diff.to_sql());
    assert!(b.diff(&a).to_sql().contains("-- MANUAL: column public.child.e is declared by public.child too"));
    // Every other way between the four is reproduced exactly, both ways.
    let mut failures = vec![];
    for (i, (x, y)) in [
        (CHILD_OWN, CHILD_INHERITS),
        (CHILD_OWN, CHILD_BOTH),
        (CHILD_WITHOUT, CHILD_BOTH),
        (CHILD_WITHOUT, CHILD_INHERITS),
        ("CREATE TABLE parent (id int, e int);", CHILD_BOTH),
    ]
    .into_iter()
    .enumerate()
    {
        for (label, from, to) in [(format!("local_too_{i}_ab"), x, y), (format!("local_too_{i}_ba"), y, x)] {
            if let Err(e) = round_trip(&label, from, to) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_childs_own_column_its_parent_gains_becomes_inherited_only_and_keeps_its_values() {
    let (ddl, db) =
        renamed("handover", CHILD_OWN, "INSERT INTO child VALUES (1, 5, 'x'), (2, 7, 'y');", CHILD_INHERITS);
    assert!(ddl.contains("-- note: column public.child.e becomes inherited only"), "{ddl}");
    assert_eq!(count(&db, "SELECT sum(e)::int8 FROM child"), 12, "{ddl}");
    assert_eq!(count(&db, "SELECT count(*) FROM child WHERE note IS NOT NULL"), 2);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'child'::regclass AND attname = 'e' AND NOT attislocal"
        ),
        1
    );
    // The spare column is gone, the view and index are there again.
    assert_eq!(count(&db, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'child'::regclass AND attname LIKE 'migsafe%' AND NOT attisdropped"), 0);
    assert_eq!(count(&db, "SELECT sum(e)::int8 FROM child_es"), 12);

    // The child's own child loses the column with it (inherited only there): its values and
    // its index on the column are kept too.
    let (ddl, db) = renamed(
        "handover_grandchild",
        "CREATE TABLE parent (id int); CREATE TABLE child (e int, note text) INHERITS (parent); \
         CREATE TABLE grandchild (g int) INHERITS (child); CREATE INDEX grandchild_e ON grandchild (e);",
        "INSERT INTO child VALUES (1, 5, 'x'); INSERT INTO grandchild VALUES (2, 7, 'y', 1), (3, 9, 'z', 2);",
        "CREATE TABLE parent (id int, e int); CREATE TABLE child (note text) INHERITS (parent); \
         CREATE TABLE grandchild (g int) INHERITS (child); CREATE INDEX grandchild_e ON grandchild (e);",
    );
    assert_eq!(count(&db, "SELECT sum(e)::int8 FROM ONLY grandchild"), 16, "{ddl}");
    assert_eq!(count(&db, "SELECT sum(e)::int8 FROM ONLY child"), 5, "{ddl}");
}
