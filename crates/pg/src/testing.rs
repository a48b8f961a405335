//! Test support shared by every crate's database tests: one throwaway cluster per test
//! process (the same code path users get), and a fresh database per test, named after it and
//! cloned from a template. `MIGSAFE_TEST_PG_BIN` picks the server binaries (the suite runs on
//! PostgreSQL 15 and 18); `MIGSAFE_KEEP_CLUSTER=1` keeps the cluster for inspection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use postgres::Client;

use crate::{Cluster, ConnSpec, PgBinaries};

/// The cluster shared by the tests of this process.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let explicit = std::env::var("MIGSAFE_TEST_PG_BIN").ok().filter(|s| !s.is_empty());
        let bins = PgBinaries::find(explicit.as_deref().map(std::path::Path::new))
            .unwrap_or_else(|e| panic!("database tests need PostgreSQL server binaries: {e}"));
        Cluster::start(&bins).unwrap_or_else(|e| panic!("cannot start the test cluster: {e}"))
    })
}

/// A database of its own for one test; dropped afterwards unless the test failed.
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// How to connect to it.
    pub spec: ConnSpec,
}

impl TestDb {
    /// A new empty database named after `label`.
    pub fn new(label: &str) -> TestDb {
        TestDb::from_template(label, None)
    }

    /// A new database cloned from `template`.
    pub fn from_template(label: &str, template: Option<&str>) -> TestDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        let clean: String =
            label.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        let name = format!("t_{}_{}", &clean[..clean.len().min(40)], N.fetch_add(1, Ordering::SeqCst));
        let c = cluster();
        c.create_database(&name, template).unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        TestDb { spec: c.conn(&name), name }
    }

    /// A connection to it.
    pub fn client(&self) -> Client {
        self.spec.connect().unwrap_or_else(|e| panic!("connecting to {}: {e}", self.name))
    }

    /// PostgreSQL major version of the test cluster.
    pub fn major(&self) -> u32 {
        cluster().binaries().major
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "test database kept for inspection: {} (set MIGSAFE_KEEP_CLUSTER=1 to keep the cluster after the run)",
                self.spec
            );
            return;
        }
        let _ = cluster().drop_database(&self.name);
    }
}
