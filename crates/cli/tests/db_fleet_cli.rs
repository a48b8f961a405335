//! `migsafe fleet` on real clusters standing in for hosts: tenant databases spread over three
//! throwaway clusters and tenant schemas of one database, with planted drift, a tenant whose
//! rows violate the new constraint, a host stopped mid-wave (`pg_ctl stop -m immediate`), the
//! runner killed with SIGKILL and resumed, two runners on one run, and a failing canary. After
//! each: every target's history shows each migration applied exactly once or not at all, its
//! schema matches its history (nothing half-applied), and the ledger agrees with every target.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use migsafe_pg::cluster::ClusterOptions;
use migsafe_pg::{Cluster, ConnSpec, PgBinaries};

const PASSWORD: &str = "fleet-s3cret";
const RUN_VERSIONS: [&str; 3] = ["002", "003", "004"];

const FILES: &[(&str, &str)] = &[
    (
        "001_accounts.sql",
        "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL, plan text NOT NULL);\nCREATE INDEX accounts_email ON accounts (email);\n",
    ),
    ("001_accounts.rollback.sql", "DROP TABLE accounts;\n"),
    ("002_status.sql", "ALTER TABLE accounts ADD COLUMN status text;\nSELECT pg_sleep(0.05);\n"),
    ("002_status.rollback.sql", "ALTER TABLE accounts DROP COLUMN status;\n"),
    (
        "003_plan_check.sql",
        "ALTER TABLE accounts ADD CONSTRAINT accounts_plan_known CHECK (plan IN ('free', 'pro')) NOT VALID;\n",
    ),
    ("003_plan_check.rollback.sql", "ALTER TABLE accounts DROP CONSTRAINT accounts_plan_known;\n"),
    ("004_validate.sql", "ALTER TABLE accounts VALIDATE CONSTRAINT accounts_plan_known;\n"),
    (
        "004_validate.rollback.sql",
        "ALTER TABLE accounts DROP CONSTRAINT accounts_plan_known;\nALTER TABLE accounts ADD CONSTRAINT accounts_plan_known CHECK (plan IN ('free', 'pro')) NOT VALID;\n",
    ),
];

fn migsafe() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_migsafe"));
    c.env_remove("DATABASE_URL").env_remove("MIGSAFE_CONTROL_DB");
    // The rehearsal's throwaway cluster runs the same PostgreSQL as the test's clusters.
    if let Some(bin) = std::env::var_os("MIGSAFE_TEST_PG_BIN").filter(|s| !s.is_empty()) {
        c.env("PG_BIN", bin);
    }
    c
}

fn bins() -> PgBinaries {
    let explicit = std::env::var("MIGSAFE_TEST_PG_BIN").ok().filter(|s| !s.is_empty());
    PgBinaries::find(explicit.as_deref().map(Path::new)).expect("PostgreSQL binaries")
}

/// A throwaway cluster standing in for a host: durable commits, like a real server (the default
/// throwaway settings turn synchronous_commit off, and a crash would then lose commits a real
/// server keeps).
fn host(bins: &PgBinaries) -> Cluster {
    let options = ClusterOptions { settings: vec![("synchronous_commit".into(), "on".into())], files: vec![] };
    Cluster::start_with(bins, &options).unwrap()
}

/// A URL with a password (the clusters trust local connections, so it is never checked, but
/// it must never be printed).
fn url(c: &Cluster, db: &str) -> String {
    format!("postgresql://postgres:{PASSWORD}@/{db}?host={}&port={}", c.dir().display(), c.port())
}

fn set_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (n, t) in FILES {
        std::fs::write(d.path().join(n), t).unwrap();
    }
    d
}

/// A fleet: `hosts` clusters, `per_host` tenant databases on each, every one at 001 with rows.
struct Fleet {
    hosts: Vec<Cluster>,
    set: tempfile::TempDir,
    work: tempfile::TempDir,
    /// (cluster index, database) per target, in the targets file's order.
    dbs: Vec<(usize, String)>,
}

impl Fleet {
    fn new(hosts: usize, per_host: usize) -> Fleet {
        let bins = bins();
        let set = set_dir();
        let hosts: Vec<Cluster> = (0..hosts).map(|_| host(&bins)).collect();
        let mut dbs = Vec::new();
        for (h, c) in hosts.iter().enumerate() {
            c.create_database("tmpl", None).unwrap();
            let out = migsafe()
                .arg("apply")
                .arg(set.path())
                .args(["--db", &url(c, "tmpl"), "--to", "001", "--no-backup"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
            c.conn("tmpl")
                .connect()
                .unwrap()
                .batch_execute(
                    "INSERT INTO accounts SELECT g, 'u' || g || '@example.com', CASE WHEN g % 2 = 0 THEN 'free' ELSE 'pro' END FROM generate_series(1, 50) g; ANALYZE accounts",
                )
                .unwrap();
            for i in 0..per_host {
                let name = format!("tenant_{h}_{i:03}");
                c.create_database(&name, Some("tmpl")).unwrap();
                dbs.push((h, name));
            }
        }
        hosts[0].create_database("control", None).unwrap();
        Fleet { hosts, set, work: tempfile::tempdir().unwrap(), dbs }
    }

    fn spec(&self, i: usize) -> ConnSpec {
        let (h, db) = &self.dbs[i];
        self.hosts[*h].conn(db)
    }

    fn index(&self, db: &str) -> usize {
        self.dbs.iter().position(|(_, d)| d == db).unwrap()
    }

    fn control_url(&self) -> String {
        url(&self.hosts[0], "control")
    }

    /// The targets file (TOML, with a `region` label), the targets in this order.
    fn targets_file(&self, order: &[usize]) -> PathBuf {
        let path = self.work.path().join("targets.toml");
        let mut s = String::new();
        for &i in order {
            let (h, db) = &self.dbs[i];
            s.push_str(&format!(
                "[[target]]\nname = \"{db}\"\nurl = \"{}\"\nregion = \"{}\"\n\n",
                url(&self.hosts[*h], db),
                if h % 2 == 0 { "eu" } else { "us" }
            ));
        }
        std::fs::write(&path, s).unwrap();
        path
    }

    fn fleet(&self, sub: &str, targets: &Path, extra: &[&str]) -> Command {
        let mut c = migsafe();
        c.args(["fleet", sub]);
        if sub == "work" || sub == "rollback" {
            c.arg(extra[0]);
        }
        c.arg(self.set.path()).arg("--targets").arg(targets).args(["--control-db", &self.control_url()]);
        if sub != "status" {
            c.args(["--no-backup", "--approved-by", "Technical Lead=Ada", "--lock-timeout", "1s"]);
        }
        c.args(if sub == "work" || sub == "rollback" { &extra[1..] } else { extra });
        c.current_dir(self.work.path());
        c
    }

    fn control(&self) -> postgres::Client {
        self.hosts[0].conn("control").connect().unwrap()
    }

    /// (state, applied, pending) per target of a run.
    fn ledger(&self, run: i64) -> BTreeMap<String, (String, Vec<String>, Vec<String>)> {
        self.control()
            .query(
                "SELECT name, state, ARRAY(SELECT jsonb_array_elements_text(applied)), ARRAY(SELECT jsonb_array_elements_text(pending)) \
                 FROM migsafe_fleet.targets WHERE run_id = $1",
                &[&run],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
            .collect()
    }
}

/// One target's history: each version applied at most once, and its schema what its history says.
fn history_of(spec: &ConnSpec, table: &str, schema: &str) -> BTreeSet<String> {
    let mut c = spec.connect().unwrap();
    let twice: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM (SELECT version FROM {table} WHERE status = 'applied' GROUP BY version HAVING count(*) > 1) x"),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(twice, 0, "a migration recorded as applied twice on {spec:?}");
    let applied: BTreeSet<String> = c
        .query(&format!("SELECT DISTINCT ON (version) version, status FROM {table} ORDER BY version, id DESC"), &[])
        .unwrap()
        .iter()
        .filter(|r| r.get::<_, String>(1) == "applied")
        .map(|r| r.get(0))
        .collect();
    let mut has = |sql: &str| -> bool { c.query_one(sql, &[&schema]).unwrap().get(0) };
    let column = has("SELECT count(*) > 0 FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = $1 AND t.relname = 'accounts' AND a.attname = 'status' AND NOT a.attisdropped");
    let check = has("SELECT count(*) > 0 FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace WHERE n.nspname = $1 AND k.conname = 'accounts_plan_known'");
    let valid = has("SELECT coalesce(bool_and(convalidated), false) FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace WHERE n.nspname = $1 AND k.conname = 'accounts_plan_known'");
    assert_eq!(column, applied.contains("002"), "{spec:?}: column status vs history {applied:?}");
    assert_eq!(check, applied.contains("003"), "{spec:?}: constraint vs history {applied:?}");
    assert_eq!(valid, applied.contains("004"), "{spec:?}: validated vs history {applied:?}");
    applied
}

/// The ledger agrees with every target: applied ⇔ the run's migrations all applied; failed,
/// quarantined, skipped ⇔ none of them; unreachable or pending ⇔ all or none (never a part).
fn check_consistent(f: &Fleet, run: i64, targets: &[(String, ConnSpec, String, String)]) -> BTreeMap<String, String> {
    let ledger = f.ledger(run);
    let mut states = BTreeMap::new();
    for (name, spec, table, schema) in targets {
        let applied = history_of(spec, table, schema);
        let ours: Vec<String> = RUN_VERSIONS.iter().filter(|v| applied.contains(**v)).map(|v| v.to_string()).collect();
        let (state, ledger_applied, pending) =
            ledger.get(name).unwrap_or_else(|| panic!("{name} missing from the ledger"));
        match state.as_str() {
            "applied" => assert_eq!(ours.len(), 3, "{name}: ledger says applied, history has {ours:?}"),
            "quarantined" | "skipped_drift" | "failed" | "rolled_back" => {
                assert!(ours.is_empty(), "{name}: ledger says {state}, history has {ours:?}")
            }
            // Each migration commits on its own: a target that went down mid-apply holds the
            // first few of the run's, in order (its schema matches its history: `history_of`).
            _ => assert_eq!(ours, RUN_VERSIONS[..ours.len()], "{name}: {state}, and not a prefix of the run: {ours:?}"),
        }
        if state == "unreachable" {
            // The ledger cannot know what committed on a host that went away; it never claims more.
            assert!(ledger_applied.iter().all(|v| ours.contains(v)), "{name}: ledger {ledger_applied:?} vs {ours:?}");
        } else if state != "pending" && state != "running" {
            let expect: Vec<String> = pending.iter().filter(|v| ours.contains(v)).cloned().collect();
            assert_eq!(ledger_applied, &expect, "{name}: the ledger's applied list vs the history");
        }
        states.insert(name.clone(), state.clone());
    }
    states
}

fn db_targets(f: &Fleet) -> Vec<(String, ConnSpec, String, String)> {
    (0..f.dbs.len())
        .map(|i| (f.dbs[i].1.clone(), f.spec(i), "migsafe.history".to_string(), "public".to_string()))
        .collect()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

fn count(states: &BTreeMap<String, String>, s: &str) -> usize {
    states.values().filter(|v| *v == s).count()
}

/// A local HTTP server that records what it receives (the webhook).
fn webhook() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut r = BufReader::new(stream);
            let mut len = 0usize;
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                if line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            if let Ok(v) = serde_json::from_slice(&body) {
                g.lock().unwrap().push(v);
            }
            let _ = r.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (addr, got)
}

#[test]
fn databases_over_three_hosts_with_drift_a_violating_tenant_notifications_and_reports() {
    let f = Fleet::new(3, 100);
    // Plant: an extra column, a missing index, rows the new constraint rejects.
    let drift_col = f.index("tenant_1_003");
    let drift_idx = f.index("tenant_2_007");
    let bad = f.index("tenant_0_011");
    f.spec(drift_col).connect().unwrap().batch_execute("ALTER TABLE accounts ADD COLUMN nickname text").unwrap();
    f.spec(drift_idx).connect().unwrap().batch_execute("DROP INDEX accounts_email").unwrap();
    f.spec(bad)
        .connect()
        .unwrap()
        .batch_execute("INSERT INTO accounts VALUES (999, 'x@example.com', 'legacy')")
        .unwrap();
    let order: Vec<usize> = (0..f.dbs.len()).collect();
    let targets = f.targets_file(&order);

    // Status before: drift is found and explained, nobody is touched.
    let out = f.fleet("status", &targets, &["--format", "json"]).output().unwrap();
    let st = json(&out);
    let by: BTreeMap<&str, &str> = st["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["target"].as_str().unwrap(), t["state"].as_str().unwrap()))
        .collect();
    assert_eq!(by["tenant_1_003"], "drifted", "{}", text(&out));
    assert_eq!(by["tenant_2_007"], "drifted");
    let n = f.dbs.len();
    assert_eq!(by.values().filter(|s| **s == "pending").count(), n - 2);
    let drift_text = serde_json::to_string(&st).unwrap();
    assert!(drift_text.contains("nickname"), "the drift report names the extra column: {drift_text}");
    assert!(drift_text.contains("accounts_email"), "the drift report names the missing index");

    let (hook, received) = webhook();
    let report = f.work.path().join("out/fleet.json");
    std::fs::create_dir_all(report.parent().unwrap()).unwrap();
    let out = f
        .fleet(
            "apply",
            &targets,
            &[
                "--canary",
                "1",
                "--waves",
                "25%,100%",
                "--jobs",
                "4",
                "--per-host",
                "2",
                "--max-failures",
                "3",
                "--format",
                "json",
                "--notify-url",
                &hook,
                "--report",
                report.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    let all = text(&out);
    assert!(!all.contains(PASSWORD), "a password was printed");
    assert_eq!(out.status.code(), Some(4), "quarantined targets exit 4: {all}");
    let rep = json(&out);
    assert_eq!(rep["status"], "finished", "{all}");
    assert_eq!(rep["rehearsals"][0]["ok"], true, "{all}");
    let run = rep["run"].as_i64().unwrap();
    let states = check_consistent(&f, run, &db_targets(&f));
    assert_eq!(states["tenant_1_003"], "skipped_drift");
    assert_eq!(states["tenant_2_007"], "skipped_drift");
    assert_eq!(states["tenant_0_011"], "quarantined");
    assert_eq!(count(&states, "applied"), n - 3, "{states:?}");
    let bad_row = rep["targets"].as_array().unwrap().iter().find(|t| t["name"] == "tenant_0_011").unwrap();
    assert!(bad_row["error"].as_str().unwrap().contains("accounts_plan_known"), "{bad_row}");

    // Waves: the canary first, then 25 %, then the rest; the canary finished before any other started.
    let mut c = f.control();
    let waves: Vec<(i32, i64)> = c
        .query("SELECT wave, count(*) FROM migsafe_fleet.targets WHERE run_id = $1 AND state <> 'skipped_drift' GROUP BY 1 ORDER BY 1", &[&run])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // After the canary, 25 % of the other n - 3 targets, then the rest.
    let second = ((n - 3) as f64 * 0.25).ceil() as i64;
    assert_eq!(waves, vec![(0, 1), (1, second), (2, (n - 3) as i64 - second)], "{waves:?}");
    let canary_first: bool = c
        .query_one(
            "SELECT (SELECT max(finished_at) FROM migsafe_fleet.targets WHERE run_id = $1 AND wave = 0) \
               <= (SELECT min(started_at) FROM migsafe_fleet.targets WHERE run_id = $1 AND wave > 0)",
            &[&run],
        )
        .unwrap()
        .get(0);
    assert!(canary_first);
    // --per-host 2: never more than two targets of one server running at once.
    let busiest: i64 = c
        .query_one(
            "SELECT max(n) FROM (SELECT (SELECT count(*) FROM migsafe_fleet.targets o WHERE o.run_id = t.run_id AND o.host = t.host \
               AND o.started_at <= t.started_at AND o.finished_at > t.started_at) AS n \
             FROM migsafe_fleet.targets t WHERE t.run_id = $1 AND t.started_at IS NOT NULL) x",
            &[&run],
        )
        .unwrap()
        .get(0);
    assert!((1..=2).contains(&busiest), "{busiest} targets of one server ran at once");
    // Nothing in the ledger holds a password.
    let ledger_text: String = c
        .query_one(
            "SELECT (SELECT string_agg(t::text, ' ') FROM migsafe_fleet.targets t WHERE run_id = $1) || (SELECT string_agg(e::text, ' ') FROM migsafe_fleet.events e WHERE run_id = $1)",
            &[&run],
        )
        .unwrap()
        .get(0);
    assert!(!ledger_text.contains(PASSWORD));
    assert!(ledger_text.contains("region"), "labels are kept");

    // The report file, the incident report (mode 0600, P1, the quarantined tenant in it).
    let file = std::fs::read_to_string(&report).unwrap();
    assert!(!file.contains(PASSWORD));
    let incident = f.work.path().join(format!("out/migsafe-fleet-run-{run}-incident.md"));
    let md = std::fs::read_to_string(&incident).unwrap_or_else(|e| panic!("{}: {e}", incident.display()));
    assert!(md.contains("P1") && md.contains("tenant_0_011"), "{md}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&incident).unwrap().permissions().mode() & 0o777, 0o600);

    // Notifications: start, waves, the quarantine, the end, in a payload Slack accepts (`text`).
    let got = received.lock().unwrap().clone();
    let events: Vec<&str> = got.iter().map(|v| v["event"].as_str().unwrap()).collect();
    assert_eq!(events.first(), Some(&"start"), "{events:?}");
    assert_eq!(events.last(), Some(&"end"), "{events:?}");
    assert!(events.contains(&"quarantine") && events.iter().filter(|e| **e == "wave").count() == 3, "{events:?}");
    assert!(got.iter().all(|v| v["text"].is_string() && !v.to_string().contains(PASSWORD)));

    // Rolling the run back undoes it wherever it applied, and only there.
    let out = f.fleet("rollback", &targets, &[&run.to_string(), "--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let states = check_consistent(&f, run, &db_targets(&f));
    assert_eq!(count(&states, "rolled_back"), n - 3, "{states:?}");
    assert_eq!(states["tenant_0_011"], "quarantined");
}

#[test]
fn tenant_schemas_of_one_database() {
    let bins = bins();
    let host = host(&bins);
    host.create_database("saas", None).unwrap();
    host.create_database("control", None).unwrap();
    let set = set_dir();
    let mut c = host.conn("saas").connect().unwrap();
    let mut sql = String::new();
    for i in 0..100 {
        sql.push_str(&format!(
            "CREATE SCHEMA tenant_{i:03}; CREATE TABLE tenant_{i:03}.accounts (id bigint PRIMARY KEY, email text NOT NULL, plan text NOT NULL); \
             CREATE INDEX accounts_email ON tenant_{i:03}.accounts (email); INSERT INTO tenant_{i:03}.accounts VALUES (1, 'a@b', 'free');"
        ));
    }
    sql.push_str("CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);");
    c.batch_execute(&sql).unwrap();
    // One tenant drifted: an extra column.
    c.batch_execute("ALTER TABLE tenant_042.accounts ADD COLUMN legacy int").unwrap();
    // The tenants were created with 001's objects but no history: the set's 001 is written to
    // be re-runnable, and a first run up to it records it in every tenant's own history.
    for (n, t) in FILES.iter().filter(|(n, _)| n.starts_with("001_accounts.sql")) {
        let t = t
            .replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS")
            .replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS");
        std::fs::write(set.path().join(n), t).unwrap();
    }
    let work = tempfile::tempdir().unwrap();
    let saas = format!("postgresql://postgres:{PASSWORD}@/saas?host={}&port={}", host.dir().display(), host.port());
    let control = format!("postgresql://postgres@/control?host={}&port={}", host.dir().display(), host.port());
    let out = migsafe()
        .args(["fleet", "apply"])
        .arg(set.path())
        .args([
            "--db",
            &saas,
            "--schemas",
            "tenant_%",
            "--control-db",
            &control,
            "--no-backup",
            "--no-rehearse",
            "--to",
            "001",
        ])
        .args(["--canary", "1", "--jobs", "4", "--per-host", "4", "--include-drifted", "--format", "json"])
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let out = migsafe()
        .args(["fleet", "status"])
        .arg(set.path())
        .args(["--db", &saas, "--schemas", "tenant_%", "--format", "json"])
        .output()
        .unwrap();
    let st = json(&out);
    assert_eq!(st["targets"].as_array().unwrap().len(), 100, "billing is not a tenant");
    let drifted: Vec<&str> = st["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == "drifted")
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    assert_eq!(drifted, vec!["tenant_042"], "{}", text(&out));
    let out = migsafe()
        .args(["fleet", "apply"])
        .arg(set.path())
        .args([
            "--db",
            &saas,
            "--schemas",
            "tenant_%",
            "--control-db",
            &control,
            "--no-backup",
            "--canary",
            "1",
            "--waves",
            "50%,100%",
            "--jobs",
            "4",
            "--per-host",
            "4",
        ])
        .args(["--approved-by", "Technical Lead=Ada", "--format", "json"])
        .current_dir(work.path())
        .output()
        .unwrap();
    let rep = json(&out);
    assert!(!text(&out).contains(PASSWORD));
    assert_eq!(rep["status"], "finished", "{}", text(&out));
    assert_eq!(rep["counts"]["applied"], 99, "{}", text(&out));
    // One rehearsal for the 99 tenants that share a schema, built from that schema (their
    // tables exist only in tenant schemas, which the set's own migrations never created).
    let rehearsals = rep["rehearsals"].as_array().unwrap();
    assert_eq!(rehearsals.len(), 1, "{}", text(&out));
    assert_eq!(
        (rehearsals[0]["ok"].as_bool(), rehearsals[0]["targets"].as_u64()),
        (Some(true), Some(99)),
        "{}",
        text(&out)
    );
    assert_eq!(rep["counts"]["skipped_drift"], 1);
    let run = rep["run"].as_i64().unwrap();
    let ledger: BTreeMap<String, String> = host
        .conn("control")
        .connect()
        .unwrap()
        .query("SELECT name, state FROM migsafe_fleet.targets WHERE run_id = $1", &[&run])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for i in 0..100 {
        let schema = format!("tenant_{i:03}");
        let applied = history_of(&host.conn("saas"), &format!("migsafe_{schema}.history"), &schema);
        let ours = RUN_VERSIONS.iter().filter(|v| applied.contains(**v)).count();
        match ledger[&schema].as_str() {
            "applied" => assert_eq!(ours, 3, "{schema}"),
            other => assert_eq!(ours, 0, "{schema} is {other}"),
        }
    }
    // Nothing leaked into other schemas.
    let public: i64 = c
        .query_one("SELECT count(*) FROM pg_tables WHERE tablename = 'accounts' AND schemaname NOT LIKE 'tenant%'", &[])
        .unwrap()
        .get(0);
    assert_eq!(public, 0);
}

/// Make `db` stall (pg_sleep in an event trigger) when a migration adds
/// `accounts_plan_known`: 003 hangs after 002 committed. The trigger is planted in every target,
/// so all keep one schema; only `db` carries the setting that arms it.
fn plant_stall(f: &Fleet, db: &str) {
    for i in 0..f.dbs.len() {
        f.spec(i)
            .connect()
            .unwrap()
            .batch_execute(
                "CREATE FUNCTION stall() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN \
                   IF current_setting('migsafe_test.stall', true) = 'on' AND current_query() LIKE '%ADD CONSTRAINT accounts_plan_known%' \
                   THEN PERFORM pg_sleep(600); END IF; END $$; \
                 CREATE EVENT TRIGGER stall ON ddl_command_start EXECUTE FUNCTION stall()",
            )
            .unwrap();
    }
    f.spec(f.index(db))
        .connect()
        .unwrap()
        .batch_execute(&format!("ALTER DATABASE {db} SET migsafe_test.stall = 'on'"))
        .unwrap();
}

/// Wait until a session of `host` sleeps in `db`'s stall.
fn wait_stalled(host: &Cluster, db: &str) {
    let t0 = Instant::now();
    loop {
        let n: i64 = host
            .conn("postgres")
            .connect()
            .unwrap()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event = 'PgSleep' AND query LIKE '%accounts_plan_known%'",
                &[&db],
            )
            .unwrap()
            .get(0);
        if n > 0 {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "{db} never reached its stall");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `fleet apply` with `args`, `db`'s server stopped (`pg_ctl stop -m immediate`) once `db` is
/// between two of its migrations: 002 committed, 003 running (see [`plant_stall`]).
fn apply_until_stopped_mid_target(f: &mut Fleet, targets: &Path, db: &str, args: &[&str]) -> Output {
    plant_stall(f, db);
    let host = f.dbs[f.index(db)].0;
    let child = f.fleet("apply", targets, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_stalled(&f.hosts[host], db);
    f.hosts[host].stop_immediate().unwrap();
    child.wait_with_output().unwrap()
}

/// Start `db`'s server again, with `db`'s stall disarmed.
fn restart_disarmed(f: &mut Fleet, db: &str) {
    let i = f.index(db);
    f.hosts[f.dbs[i].0].restart().unwrap();
    f.spec(i).connect().unwrap().batch_execute(&format!("ALTER DATABASE {db} RESET migsafe_test.stall")).unwrap();
}

/// Wait for a run to have at least `n` targets finished.
fn wait_finished(f: &Fleet, n: i64, limit: Duration) {
    let t0 = Instant::now();
    loop {
        let done: i64 = f
            .control()
            .query_one(
                "SELECT count(*) FROM migsafe_fleet.targets WHERE finished_at IS NOT NULL AND state = 'applied'",
                &[],
            )
            .map(|r| r.get(0))
            .unwrap_or(0);
        if done >= n || t0.elapsed() > limit {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_host_stopped_mid_wave_then_the_runner_killed_then_resumed() {
    let mut f = Fleet::new(3, 8);
    let order: Vec<usize> = (0..f.dbs.len()).collect();
    let targets = f.targets_file(&order);
    // Host 2 goes down while the rollout runs, with tenant_2_003 between two of its migrations.
    let out = apply_until_stopped_mid_target(
        &mut f,
        &targets,
        "tenant_2_003",
        &["--no-rehearse", "--jobs", "3", "--per-host", "1", "--max-failures", "100%", "--format", "json"],
    );
    assert!(!text(&out).contains(PASSWORD));
    let rep = json(&out);
    let run = rep["run"].as_i64().unwrap();
    let down: Vec<(String, String)> = rep["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str().unwrap().starts_with("tenant_2_"))
        .map(|t| (t["name"].as_str().unwrap().to_string(), t["state"].as_str().unwrap().to_string()))
        .collect();
    assert!(down.iter().all(|(_, s)| s == "unreachable" || s == "applied"), "{down:?}");
    assert!(down.iter().any(|(_, s)| s == "unreachable"), "the stop came mid-wave: {down:?}");
    restart_disarmed(&mut f, "tenant_2_003");
    let half = f.index("tenant_2_003");
    let states = check_consistent(&f, run, &db_targets(&f));
    assert_eq!(states["tenant_2_003"], "unreachable");
    let applied = history_of(&f.spec(half), "migsafe.history", "public");
    assert!(applied.contains("002") && !applied.contains("003"), "{applied:?}");
    // Status reads the truth from the target: 002 applied there, 003 and 004 pending.
    let out = f.fleet("status", &targets, &["--format", "json"]).output().unwrap();
    let st = json(&out);
    let line = st["targets"].as_array().unwrap().iter().find(|t| t["target"] == "tenant_2_003").unwrap().clone();
    assert_eq!(line["pending"], serde_json::json!(["003", "004"]), "{}", text(&out));
    assert_eq!(line["state"], "interrupted", "{}", text(&out));

    // Resume, and kill the resumed runner with SIGKILL part-way.
    let mut child = f
        .fleet(
            "apply",
            &targets,
            &[
                "--resume",
                "--run",
                &run.to_string(),
                "--no-rehearse",
                "--jobs",
                "1",
                "--per-host",
                "1",
                "--format",
                "json",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let before: i64 = f
        .control()
        .query_one("SELECT count(*) FROM migsafe_fleet.targets WHERE run_id = $1 AND state = 'applied'", &[&run])
        .unwrap()
        .get(0);
    wait_finished(&f, before + 1, Duration::from_secs(60));
    child.kill().unwrap();
    child.wait().unwrap();
    check_consistent(&f, run, &db_targets(&f));
    // Resume again: every target ends applied, each migration applied exactly once.
    let out = f
        .fleet("apply", &targets, &["--resume", "--no-rehearse", "--jobs", "4", "--per-host", "2", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let states = check_consistent(&f, run, &db_targets(&f));
    assert_eq!(count(&states, "applied"), f.dbs.len(), "{states:?}");
}

#[test]
fn a_target_that_went_down_mid_apply_is_rolled_back_from_its_history() {
    let mut f = Fleet::new(2, 2);
    let order: Vec<usize> = (0..f.dbs.len()).collect();
    let targets = f.targets_file(&order);
    let out = apply_until_stopped_mid_target(
        &mut f,
        &targets,
        "tenant_1_000",
        &["--no-rehearse", "--jobs", "2", "--per-host", "1", "--format", "json"],
    );
    let run = json(&out)["run"].as_i64().unwrap();
    restart_disarmed(&mut f, "tenant_1_000");
    let half = f.index("tenant_1_000");
    let states = check_consistent(&f, run, &db_targets(&f));
    assert_eq!(states["tenant_1_000"], "unreachable", "{states:?}");
    // The ledger could not know 002 committed there; the rollback asks the target.
    let out = f.fleet("rollback", &targets, &[&run.to_string(), "--format", "json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let states = check_consistent(&f, run, &db_targets(&f));
    assert_eq!(states["tenant_1_000"], "rolled_back", "{states:?}\n{}", text(&out));
    let h = history_of(&f.spec(half), "migsafe.history", "public");
    assert!(!RUN_VERSIONS.iter().any(|v| h.contains(*v)), "{h:?}");
    assert_eq!(count(&states, "rolled_back"), 3, "the two applied targets too: {states:?}");
}

#[test]
fn two_runners_share_a_run_and_a_failing_canary_stops_everything() {
    let f = Fleet::new(2, 10);
    let order: Vec<usize> = (0..f.dbs.len()).collect();
    let targets = f.targets_file(&order);
    // Two runners: the first creates the run, the second joins it.
    let first = f
        .fleet(
            "apply",
            &targets,
            &["--no-rehearse", "--canary", "0", "--jobs", "1", "--per-host", "1", "--format", "json"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let run = loop {
        let r: Option<i64> =
            f.control().query_one("SELECT max(id) FROM migsafe_fleet.runs", &[]).ok().and_then(|r| r.get(0));
        if let Some(r) = r {
            break r;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no run was created");
        std::thread::sleep(Duration::from_millis(20));
    };
    let second = f
        .fleet("work", &targets, &[&run.to_string(), "--jobs", "1", "--per-host", "1", "--format", "json"])
        .output()
        .unwrap();
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    assert!(second.status.success(), "{}", text(&second));
    let states = check_consistent(&f, run, &db_targets(&f));
    assert_eq!(count(&states, "applied"), 20);
    let runners: i64 = f
        .control()
        .query_one("SELECT count(DISTINCT runner) FROM migsafe_fleet.targets WHERE run_id = $1", &[&run])
        .unwrap()
        .get(0);
    assert_eq!(runners, 2, "both runners claimed targets");

    // A failing canary: the first target violates the constraint; nothing else is touched.
    let g = Fleet::new(1, 6);
    let bad = g.index("tenant_0_000");
    g.spec(bad)
        .connect()
        .unwrap()
        .batch_execute("INSERT INTO accounts VALUES (999, 'x@example.com', 'legacy')")
        .unwrap();
    let order: Vec<usize> = (0..g.dbs.len()).collect();
    let targets = g.targets_file(&order);
    // --targets-sql: the same tenants, listed in a table of the control database.
    let mut c = g.control();
    c.batch_execute("CREATE TABLE tenants (name text, url text, tier text, active bool)").unwrap();
    for (i, (h, db)) in g.dbs.iter().enumerate() {
        c.execute("INSERT INTO tenants VALUES ($1, $2, 'gold', $3)", &[db, &url(&g.hosts[*h], db), &(i != 5)]).unwrap();
    }
    let out = migsafe()
        .args(["fleet", "status"])
        .arg(g.set.path())
        .args([
            "--control-db",
            &g.control_url(),
            "--targets-sql",
            "SELECT name, url, tier FROM tenants WHERE active",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let st = json(&out);
    assert_eq!(st["targets"].as_array().unwrap().len(), 5, "{}", text(&out));
    assert!(st["targets"].as_array().unwrap().iter().all(|t| t["state"] == "pending"), "{}", text(&out));
    assert!(!text(&out).contains(PASSWORD));
    let junit = g.work.path().join("canary.xml");
    let out = g
        .fleet(
            "apply",
            &targets,
            &[
                "--no-rehearse",
                "--canary",
                "1",
                "--max-failures",
                "50%",
                "--format",
                "json",
                "--report",
                junit.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let rep = json(&out);
    assert_eq!(rep["status"], "stopped");
    assert!(rep["stop_reason"].as_str().unwrap().contains("canary"), "{}", text(&out));
    let run = rep["run"].as_i64().unwrap();
    let states = check_consistent(&g, run, &db_targets(&g));
    assert_eq!(states["tenant_0_000"], "quarantined");
    assert_eq!(count(&states, "pending"), 5, "{states:?}");
    for i in 1..6 {
        assert!(history_of(&g.spec(i), "migsafe.history", "public").iter().all(|v| v.as_str() == "001"));
    }
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"tests="6" failures="1""#) && xml.contains("<skipped"), "{xml}");
}

#[test]
fn failures_past_the_budget_stop_the_run() {
    let f = Fleet::new(1, 8);
    for db in ["tenant_0_002", "tenant_0_003"] {
        f.spec(f.index(db))
            .connect()
            .unwrap()
            .batch_execute("INSERT INTO accounts VALUES (999, 'x@example.com', 'legacy')")
            .unwrap();
    }
    let order: Vec<usize> = (0..f.dbs.len()).collect();
    let targets = f.targets_file(&order);
    // One at a time, so the order is known: 000 (canary), 001, then 002 fails (1, within the
    // budget), 003 fails (2, past it): the run stops and nothing after 003 is touched.
    let out = f
        .fleet(
            "apply",
            &targets,
            &["--no-rehearse", "--jobs", "1", "--per-host", "1", "--max-failures", "1", "--format", "json"],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let rep = json(&out);
    assert_eq!(rep["status"], "stopped");
    assert!(rep["stop_reason"].as_str().unwrap().contains("--max-failures"), "{}", text(&out));
    let states = check_consistent(&f, rep["run"].as_i64().unwrap(), &db_targets(&f));
    assert_eq!(
        (states["tenant_0_001"].as_str(), states["tenant_0_002"].as_str(), states["tenant_0_003"].as_str()),
        ("applied", "quarantined", "quarantined")
    );
    assert_eq!(count(&states, "pending"), 4, "{states:?}");
}

#[test]
fn an_unhealthy_wave_is_rolled_back_and_the_run_stops() {
    let f = Fleet::new(1, 6);
    let order: Vec<usize> = (0..f.dbs.len()).collect();
    let targets = f.targets_file(&order);
    let seen = f.work.path().join("waves.txt");
    // Healthy for each target's own apply and after the canary; unhealthy after wave 1.
    let health = format!(
        r#"if [ -n "$MIGSAFE_WAVE" ]; then echo "wave $MIGSAFE_WAVE: $(echo "$MIGSAFE_WAVE_TARGETS" | tr '\n' ' ')" >> '{}'; fi; test "$MIGSAFE_WAVE" != 1"#,
        seen.display()
    );
    // A dry run plans the waves and touches nothing.
    let out = f
        .fleet(
            "apply",
            &targets,
            &["--no-rehearse", "--canary", "1", "--waves", "50%,100%", "--dry-run", "--format", "json"],
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let plan = json(&out);
    assert_eq!(plan["status"], "dry_run");
    let waves: Vec<i64> = plan["targets"].as_array().unwrap().iter().map(|t| t["wave"].as_i64().unwrap()).collect();
    assert_eq!(waves, [0, 1, 1, 1, 2, 2]);
    let runs: i64 = f.control().query_one("SELECT count(*) FROM migsafe_fleet.runs", &[]).unwrap().get(0);
    assert_eq!(runs, 0);
    assert!((0..6).all(|i| history_of(&f.spec(i), "migsafe.history", "public").iter().all(|v| v.as_str() == "001")));
    let html = f.work.path().join("run.html");
    let out = f
        .fleet(
            "apply",
            &targets,
            &[
                "--no-rehearse",
                "--canary",
                "1",
                "--waves",
                "50%,100%",
                "--health-cmd",
                &health,
                "--format",
                "json",
                "--report",
                html.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let rep = json(&out);
    assert_eq!(rep["status"], "stopped");
    assert!(rep["stop_reason"].as_str().unwrap().contains("wave 1 unhealthy"), "{}", text(&out));
    let run = rep["run"].as_i64().unwrap();
    let states = check_consistent(&f, run, &db_targets(&f));
    assert_eq!(states["tenant_0_000"], "applied", "the canary's wave was healthy: {states:?}");
    assert_eq!(count(&states, "rolled_back"), 3, "wave 1 is rolled back: {states:?}");
    assert_eq!(count(&states, "pending"), 2, "wave 2 never starts: {states:?}");
    let waves = std::fs::read_to_string(&seen).unwrap();
    assert!(waves.contains("wave 0: tenant_0_000"), "{waves}");
    assert!(waves.contains("wave 1: tenant_0_001 tenant_0_002 tenant_0_003"), "{waves}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(r#"class="rolled_back""#) && page.contains("<th>004</th>"), "{page}");
}
