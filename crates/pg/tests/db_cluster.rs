//! The throwaway cluster against the real server binaries.

use std::time::Instant;

use migsafe_pg::testing::{cluster, TestDb};
use migsafe_pg::{Cluster, PgBinaries};

#[test]
fn shared_cluster_serves_databases_cloned_from_templates() {
    let t = TestDb::new("clone_source");
    let mut c = t.client();
    c.batch_execute("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2);").unwrap();
    drop(c);
    let clone = TestDb::from_template("clone_copy", Some(&t.name));
    let n: i64 = clone.client().query_one("SELECT count(*) FROM t", &[]).unwrap().get(0);
    assert_eq!(n, 2);
    let v = migsafe_pg::server_version_num(&mut clone.client()).unwrap();
    assert_eq!(v / 10000, cluster().binaries().major);
}

#[test]
fn a_dropped_cluster_leaves_nothing_behind() {
    let bins = cluster().binaries().clone();
    let t0 = Instant::now();
    let c = Cluster::start(&bins).unwrap();
    assert!(c.warm || t0.elapsed().as_secs() < 120);
    let dir = c.dir().to_path_buf();
    assert!(dir.join("data/PG_VERSION").is_file());
    let spec = c.conn("postgres");
    assert!(spec.to_string().contains(&dir.display().to_string()));
    drop(c);
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(spec.connect().is_err());
}

#[test]
fn a_killed_owner_does_not_leak_the_cluster() {
    // Start a cluster in a child process, kill -9 that process, and check the guardian
    // stops the server and removes the folder.
    let bins = cluster().binaries().clone();
    let exe = std::env::current_exe().unwrap();
    if std::env::var("MIGSAFE_CHILD_CLUSTER").is_ok() {
        let c = Cluster::start(&bins).unwrap();
        println!("DIR={}", c.dir().display());
        std::thread::sleep(std::time::Duration::from_secs(600));
        return;
    }
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "a_killed_owner_does_not_leak_the_cluster", "--nocapture"])
        .env("MIGSAFE_CHILD_CLUSTER", "1")
        .env("MIGSAFE_TEST_PG_BIN", &bins.bin)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let dir = loop {
        let mut line = String::new();
        use std::io::BufRead;
        if out.read_line(&mut line).unwrap() == 0 {
            panic!("child ended without starting a cluster");
        }
        if let Some(d) = line.trim().strip_prefix("DIR=") {
            break d.to_string();
        }
    };
    assert!(std::path::Path::new(&dir).exists());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while std::path::Path::new(&dir).exists() && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!std::path::Path::new(&dir).exists(), "{dir} survived its owner's kill -9");
}

#[test]
fn binaries_are_found_and_versioned() {
    let b = PgBinaries::find(None).unwrap();
    assert!(b.major >= 13, "{b:?}");
    assert!(PgBinaries::at(std::path::Path::new("/nonexistent")).is_err());
}
