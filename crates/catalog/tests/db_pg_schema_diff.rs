//! stripe/pg-schema-diff's acceptance cases (`corpus/pg-schema-diff`: 340 schema pairs nobody
//! here wrote), both ways: the DDL of `diff(old, new)`, applied to a copy of a database holding
//! old, must give new's schema exactly, and the reverse: migsafe's snapshots must be equal, and
//! so must the lines of an independent catalog query (`independent`), which does not use the
//! snapshot at all. A case whose SQL does not load on the
//! server under test (an older or newer PostgreSQL) is counted apart, not passed.
//!
//! The directions not reproduced yet are listed in `corpus/pg-schema-diff.known` (`CASE
//! DIRECTION [pgNN] # why`): the test fails when any other direction fails (a regression) and when a listed one now
//! passes (so the list only shrinks). `MIGSAFE_CORPUS_REPORT=path` writes every failure's detail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use migsafe_catalog::Snapshot;
use migsafe_pg::testing::TestDb;

mod independent;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../corpus/pg-schema-diff")
}

/// Load `sql` into a new database; None when the server rejects it.
fn load(label: &str, sql: &str) -> Option<TestDb> {
    let db = TestDb::new(label);
    db.client().batch_execute(sql).ok()?;
    Some(db)
}

/// One direction: Ok, or what went wrong.
fn direction(label: &str, from: &TestDb, to_db: &TestDb, to: &Snapshot) -> Result<(), String> {
    let a = Snapshot::capture(&mut from.client()).map_err(|e| format!("snapshot: {e}"))?;
    let ddl = a.diff(to).to_sql();
    let work = TestDb::from_template(label, Some(&from.name));
    let mut c = work.client();
    c.batch_execute(&ddl).map_err(|e| {
        format!("the DDL failed: {}\n{ddl}", e.as_db_error().map(|d| d.message().to_string()).unwrap_or(e.to_string()))
    })?;
    let after = Snapshot::capture(&mut c).map_err(|e| format!("snapshot: {e}"))?;
    let left = after.diff(to);
    if !left.differences.is_empty() {
        return Err(format!("still differs:\n{}\n--- DDL ---\n{ddl}", left.summary()));
    }
    let (got, want) = (independent::schema_lines(&mut c), independent::schema_lines(&mut to_db.client()));
    if got != want {
        return Err(format!(
            "the catalog query still differs:\n{}--- DDL ---\n{ddl}",
            independent::difference(&got, &want)
        ));
    }
    Ok(())
}

#[test]
fn pg_schema_diff_cases_reproduce_exactly_both_ways() {
    let mut cases: Vec<PathBuf> =
        std::fs::read_dir(corpus()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    cases.sort();
    assert!(cases.len() >= 340, "{} cases", cases.len());
    let known_path = corpus().with_extension("known");
    // Lines: `CASE DIRECTION [pgNN] # why` (DIRECTION: forward, reverse or loads; pgNN limits
    // the line to one major version).
    let major = format!("pg{}", migsafe_pg::testing::cluster().binaries().major);
    let known: BTreeSet<String> = std::fs::read_to_string(&known_path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() >= 2 && w.get(2).is_none_or(|v| *v == major))
        .map(|w| format!("{} {}", w[0], w[1]))
        .collect();
    // Two workers: the server does the work, and the machine has two cores.
    let chunks: Vec<Vec<PathBuf>> = {
        let mut v = vec![Vec::new(), Vec::new()];
        for (i, c) in cases.iter().enumerate() {
            v[i % 2].push(c.clone());
        }
        v
    };
    let results: Vec<(String, Result<(), String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for dir in chunk {
                        let case = dir.file_name().unwrap().to_string_lossy().into_owned();
                        let old = std::fs::read_to_string(dir.join("old.sql")).unwrap();
                        let new = std::fs::read_to_string(dir.join("new.sql")).unwrap();
                        let (Some(a), Some(b)) = (load(&format!("{case}_o"), &old), load(&format!("{case}_n"), &new))
                        else {
                            out.push((format!("{case} loads"), Err("does not load on this server".to_string())));
                            continue;
                        };
                        let sa = Snapshot::capture(&mut a.client()).unwrap();
                        let sb = Snapshot::capture(&mut b.client()).unwrap();
                        out.push((format!("{case} forward"), direction(&format!("{case}_f"), &a, &b, &sb)));
                        out.push((format!("{case} reverse"), direction(&format!("{case}_r"), &b, &a, &sa)));
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let failed: BTreeSet<String> = results.iter().filter(|(_, r)| r.is_err()).map(|(k, _)| k.clone()).collect();
    if let Some(path) = std::env::var_os("MIGSAFE_CORPUS_REPORT") {
        let text: String =
            results.iter().filter_map(|(k, r)| r.as_ref().err().map(|e| format!("=== {k}\n{e}\n"))).collect();
        std::fs::write(path, text).unwrap();
    }
    let directions = results.iter().filter(|(k, _)| !k.ends_with(" loads")).count();
    let passed = results.iter().filter(|(_, r)| r.is_ok()).count();
    eprintln!("pg-schema-diff corpus: {passed} of {directions} directions reproduced exactly");
    let new_failures: Vec<&String> = failed.iter().filter(|k| !known.contains(*k)).collect();
    let now_passing: Vec<&String> = known.iter().filter(|k| !failed.contains(*k)).collect();
    let detail = |k: &String| {
        results.iter().find(|(n, _)| n == k).and_then(|(_, r)| r.as_ref().err().cloned()).unwrap_or_default()
    };
    assert!(
        new_failures.is_empty(),
        "{} directions fail that are not in {}:\n{}",
        new_failures.len(),
        known_path.display(),
        new_failures.iter().map(|k| format!("=== {k}\n{}", detail(k))).collect::<Vec<_>>().join("\n")
    );
    assert!(now_passing.is_empty(), "these now pass: take them out of {}: {now_passing:?}", known_path.display());
}
