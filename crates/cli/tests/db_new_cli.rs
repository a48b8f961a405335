//! The desired-state workflow as a user runs it: `migsafe new NAME --schema schema.sql DIR`
//! writes the next migration of the set in its layout, with hazards marked and its rollback
//! generated and proven; `migsafe diff` reads a schema kept as plain SQL.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn migsafe(args: &[&str], dir: &Path) -> Output {
    let pg_bin = migsafe_pg::testing::cluster().binaries().bin.display().to_string();
    Command::new(env!("CARGO_BIN_EXE_migsafe"))
        .args(args)
        .args(["--pg-bin", &pg_bin])
        .current_dir(dir)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

#[test]
fn new_writes_the_next_migration_from_a_schema_file_with_its_rollback_proven() {
    let tmp = tempfile::tempdir().unwrap();
    let set = tmp.path().join("migrations");
    copy_dir(&root().join("examples/nchat/migrations"), &set);
    // The schema as it is, then as it should be: a new column and an index on an existing table.
    let empty = tmp.path().join("empty.sql");
    std::fs::write(&empty, "-- no objects\n").unwrap();
    let now = migsafe(&["diff", "empty.sql", "migrations", "--sql"], tmp.path());
    let schema = String::from_utf8_lossy(&now.stdout)
        .replace("feature_enabled boolean DEFAULT false);", "feature_enabled boolean DEFAULT false, bio text);")
        + "CREATE INDEX nchat_users_bio ON nchat.nchat_users (bio);\n";
    assert!(schema.contains("bio text"), "{}", text(&now));
    std::fs::write(tmp.path().join("schema.sql"), schema).unwrap();

    let out = migsafe(&["new", "Add user bios", "migrations", "--schema", "schema.sql"], tmp.path());
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    let written = set.join("062_add_user_bios.sql");
    let sql = std::fs::read_to_string(&written).unwrap_or_else(|e| panic!("{e}: {said}"));
    assert!(sql.contains("ALTER TABLE nchat.nchat_users ADD COLUMN bio text;"), "{sql}");
    let index = sql.lines().position(|l| l.starts_with("CREATE INDEX nchat_users_bio")).expect("the index");
    assert!(sql.lines().nth(index - 1).unwrap().starts_with("--"), "{sql}");
    assert!(sql.contains("-- hazard: blocking-lock (index-not-concurrent)"), "{sql}");
    assert!(said.contains("proven"), "{said}");
    assert!(set.join("062_add_user_bios.rollback.sql").exists(), "{said}");

    // The set now builds the desired schema: nothing more to write.
    let again = migsafe(&["new", "again", "migrations", "--schema", "schema.sql"], tmp.path());
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("nothing to write"), "{}", text(&again));
    assert!(!set.join("063_again.sql").exists());
    // And the schema file and the set no longer differ.
    let diff = migsafe(&["diff", "schema.sql", "migrations"], tmp.path());
    assert_eq!(diff.status.code(), Some(0), "{}", text(&diff));
}

#[test]
fn new_follows_the_set_s_layout_and_starts_an_empty_folder() {
    let tmp = tempfile::tempdir().unwrap();
    // Diesel: a folder per migration, versions as timestamps.
    let diesel = tmp.path().join("diesel");
    std::fs::create_dir_all(diesel.join("2024-01-01-000000_create_users")).unwrap();
    std::fs::write(diesel.join("2024-01-01-000000_create_users/up.sql"), "CREATE TABLE users (id int PRIMARY KEY);")
        .unwrap();
    std::fs::write(diesel.join("2024-01-01-000000_create_users/down.sql"), "DROP TABLE users;").unwrap();
    // A schema kept as a folder of files, run in name order.
    let schema = tmp.path().join("schema");
    std::fs::create_dir_all(&schema).unwrap();
    std::fs::write(schema.join("01_users.sql"), "CREATE TABLE users (id int PRIMARY KEY, email text);").unwrap();
    std::fs::write(
        schema.join("02_posts.sql"),
        "CREATE TABLE posts (id int PRIMARY KEY, user_id int REFERENCES users);",
    )
    .unwrap();
    let out = migsafe(&["new", "posts", "diesel", "--schema", "schema"], tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let made: Vec<String> = std::fs::read_dir(&diesel)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("_posts"))
        .collect();
    assert_eq!(made.len(), 1, "{made:?} {}", text(&out));
    let folder = diesel.join(&made[0]);
    assert!(made[0].as_str() > "2024-01-01-000000_create_users", "{made:?}");
    let up = std::fs::read_to_string(folder.join("up.sql")).unwrap();
    assert!(up.contains("CREATE TABLE public.posts") && up.contains("ADD COLUMN email text"), "{up}");
    assert!(folder.join("down.sql").exists(), "{}", text(&out));

    // An empty folder: the first migration, in migsafe's own layout.
    let fresh = tmp.path().join("fresh");
    let out = migsafe(&["new", "initial", "fresh", "--schema", "schema"], tmp.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let first = std::fs::read_to_string(fresh.join("001_initial.sql")).unwrap();
    assert!(first.contains("CREATE TABLE public.users"), "{first}");
}

#[test]
fn a_schema_file_postgresql_rejects_is_named_by_line_and_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("bad.sql"),
        "CREATE TABLE a (id int);\nCREATE TABLE b (id int REFERENCES nope (id));\n",
    )
    .unwrap();
    let out = migsafe(&["new", "x", "m", "--schema", "bad.sql"], tmp.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("bad.sql:2:1"), "{}", text(&out));
    assert!(!tmp.path().join("m/001_x.sql").exists());
}
