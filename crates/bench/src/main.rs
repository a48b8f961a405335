//! migsafe's benchmark harness. Every figure in `bench/results.md` comes from one run of
//! `make bench` (`cargo run --release -p migsafe-bench -- all`): lint throughput against
//! squawk on the same files, throwaway-cluster start and clone, snapshot and diff of a
//! 500-table schema, rollback generation and rehearsal of the crates.io history, verify on
//! 10M rows, the longest write stall under pgbench during apply versus psql, and backfill
//! throughput versus one plain UPDATE.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use migsafe_catalog::Snapshot;
use migsafe_engine::apply::{self, ApplyOptions, BackupPolicy, RunSettings};
use migsafe_engine::backfill::{backfill, BackfillOptions, BackfillProgress};
use migsafe_engine::rehearse::{rehearse, Quiet, RehearseOptions};
use migsafe_engine::rollback::{self, GenerateOptions};
use migsafe_engine::scratch::ScratchServer;
use migsafe_engine::MigrationSet;
use migsafe_pg::{Cluster, PgBinaries};

mod fleet;
mod lint;
mod rehearse_big;
use fleet::fleet_section;
use lint::{big_file_section, lint_section};
use rehearse_big::rehearse_big_section;

type R<T> = Result<T, Box<dyn std::error::Error>>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Run a command in a helper process and return (wall ms, peak RSS kB) of the command alone.
fn measure(program: &Path, args: &[String]) -> R<(f64, i64)> {
    let out = Command::new(std::env::current_exe()?).arg("__measure").arg(program).args(args).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let ms: f64 = it.next().ok_or("no timing")?.parse()?;
    let rss: i64 = it.next().ok_or("no rss")?.parse()?;
    Ok((ms, rss))
}

fn measure_helper(args: &[String]) -> R<()> {
    let t = Instant::now();
    let _ = Command::new(&args[0]).args(&args[1..]).stdout(Stdio::null()).stderr(Stdio::null()).status()?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)?;
    println!("{ms} {}", usage.max_rss());
    Ok(())
}

fn sh(cmd: &str) -> R<String> {
    let out = Command::new("sh").arg("-c").arg(cmd).output()?;
    if !out.status.success() {
        return Err(format!("`{cmd}` failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn migsafe_bin() -> PathBuf {
    root().join("target/release/migsafe")
}

// ---------- cluster, snapshot, diff ----------

fn five_hundred_tables(c: &mut postgres::Client) -> R<()> {
    let mut sql = String::from("CREATE TABLE t0 (id bigint PRIMARY KEY);");
    for i in 1..500 {
        sql.push_str(&format!(
            "CREATE TABLE t{i} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, parent_id bigint REFERENCES t{p} (id), \
             name text NOT NULL, email varchar(200), score numeric(10,2) DEFAULT 0, flags int[], meta jsonb, \
             created_at timestamptz NOT NULL DEFAULT now(), CONSTRAINT t{i}_score CHECK (score >= 0));
             CREATE INDEX t{i}_parent ON t{i} (parent_id); CREATE INDEX t{i}_name ON t{i} (lower(name));
             COMMENT ON TABLE t{i} IS 'table {i}';",
            p = i - 1
        ));
        if i % 10 == 0 {
            sql.push_str(&format!("CREATE VIEW v{i} AS SELECT id, name FROM t{i} WHERE score > 0;"));
            sql.push_str(&format!(
                "CREATE FUNCTION f{i}(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x + {i}';"
            ));
        }
    }
    c.batch_execute(&sql)?;
    Ok(())
}

fn cluster_section(bins: &PgBinaries) -> R<String> {
    let cache = tempfile::tempdir()?;
    std::env::set_var("MIGSAFE_CACHE", cache.path());
    let t = Instant::now();
    let cold = Cluster::start(bins)?;
    let cold_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert!(!cold.warm);
    drop(cold);
    let mut warm = vec![];
    for _ in 0..5 {
        let t = Instant::now();
        let c = Cluster::start(bins)?;
        warm.push(t.elapsed().as_secs_f64() * 1000.0);
        drop(c);
    }
    std::env::remove_var("MIGSAFE_CACHE");
    let cluster = Cluster::start(bins)?;
    cluster.create_database("tpl", None)?;
    cluster.conn("tpl").connect()?.batch_execute("CREATE TABLE a (id int PRIMARY KEY, t text); CREATE TABLE b (id int REFERENCES a); INSERT INTO a SELECT g, 'x' FROM generate_series(1, 1000) g;")?;
    let mut clone = vec![];
    for i in 0..20 {
        let t = Instant::now();
        cluster.create_database(&format!("c{i}"), Some("tpl"))?;
        clone.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    cluster.create_database("big", None)?;
    let mut c = cluster.conn("big").connect()?;
    five_hundred_tables(&mut c)?;
    let mut snap = vec![];
    let mut s = Snapshot::default();
    for _ in 0..5 {
        let t = Instant::now();
        s = Snapshot::capture(&mut c)?;
        snap.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut b = s.clone();
    for (i, t) in b.tables.values_mut().enumerate() {
        if i % 25 == 0 && t.columns.len() > 2 {
            t.columns[2].type_name = "character varying(80)".into();
            t.comment = Some("changed".into());
        }
    }
    let mut diffs = vec![];
    let mut ddl = vec![];
    let mut sql_len = 0;
    for _ in 0..50 {
        let t = Instant::now();
        let d = s.diff(&b);
        diffs.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        sql_len = d.to_sql().len();
        ddl.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let counts = s.counts();
    Ok(format!(
        "## Throwaway cluster, snapshot and diff (issue 3)\n\nPostgreSQL {} from `{}`; data folder on /dev/shm.\n\n\
         | what | time | target |\n|---|---|---|\n\
         | cluster start, cold (initdb into an empty cache) | {cold_ms:.0} ms | |\n\
         | cluster start, warm (cached template copied; median of 5) | {:.0} ms | < 1 s |\n\
         | database clone `CREATE DATABASE … TEMPLATE` (median of 20) | {:.1} ms | < 150 ms |\n\
         | snapshot of {} tables, {} columns, {} indexes, {} constraints, {} views, {} functions (median of 5) | {:.0} ms | < 500 ms |\n\
         | diff of two such snapshots (median of 50) | {:.1} ms | < 20 ms |\n\
         | rendering that diff's DDL ({} bytes) (median of 50) | {:.1} ms | |\n\n",
        bins.version,
        bins.bin.display(),
        median(warm),
        median(clone),
        counts["tables"],
        counts["columns"],
        counts["indexes"],
        counts["constraints"],
        counts["views"],
        counts["functions"],
        median(snap),
        median(diffs),
        sql_len,
        median(ddl)
    ))
}

// ---------- rollbacks and rehearsal of crates.io ----------

fn rollback_section(bins: &PgBinaries) -> R<String> {
    let tmp = tempfile::tempdir()?;
    for e in std::fs::read_dir(root().join("corpus/crates-io"))? {
        let p = e?.path();
        if p.to_string_lossy().ends_with(".up.sql") {
            std::fs::copy(&p, tmp.path().join(p.file_name().ok_or("name")?))?;
        }
    }
    let set = MigrationSet::load(tmp.path())?;
    let server = ScratchServer::throwaway(Some(&bins.bin))?;
    let t = Instant::now();
    let gen = rollback::generate(&set, &server, &GenerateOptions { write: true, ..Default::default() })?;
    let total = t.elapsed().as_secs_f64();
    let proven = gen.iter().filter(|g| g.ok()).count();
    // Why the others are not: the first reason each gives.
    let why: String = gen
        .iter()
        .filter(|g| !g.ok())
        .map(|g| {
            let reason = g
                .manual
                .first()
                .cloned()
                .or_else(|| g.data_differences.first().cloned())
                .unwrap_or_else(|| g.remaining.lines().next().unwrap_or("").to_string());
            format!("- `{}_{}`: {}\n", g.version, g.name, reason.replace('\n', " "))
        })
        .collect();
    let why = if why.is_empty() { String::new() } else { format!("Not proven, and why:\n\n{why}\n") };
    Ok(format!(
        "## Rollback generation (issue 4)\n\nThe 284 crates.io migrations without their down files: generate every rollback and prove it \
         (apply to a copy of the migrated schema, compare the schema and every pre-existing table's rows with \
         the state before).\n\n| migrations | proven | total | per migration | target |\n|---|---|---|---|---|\n\
         | {} | {proven} | {total:.1} s | {:.0} ms | < 2 min |\n\n{why}",
        gen.len(),
        total * 1000.0 / gen.len() as f64
    ))
}

fn rehearse_section(bins: &PgBinaries) -> R<String> {
    let set = MigrationSet::load(&root().join("corpus/crates-io"))?;
    let server = ScratchServer::throwaway(Some(&bins.bin))?;
    let t = Instant::now();
    let r =
        rehearse(&set, &server, &RehearseOptions { budget: Duration::from_secs(30), ..Default::default() }, &Quiet)?;
    let total = t.elapsed().as_secs_f64() * 1000.0;
    let user: f64 = r
        .migrations
        .iter()
        .flat_map(|m| m.steps.iter())
        .filter(|s| matches!(s.step.as_str(), "forward" | "rollback" | "reapply"))
        .map(|s| s.ms)
        .sum();
    let failed = r.migrations.iter().filter(|m| !m.ok).count();
    let n = r.migrations.len() as f64;
    Ok(format!(
        "## Rehearsal (issue 5)\n\nThe 284 crates.io migrations with their own down files: forward (lock-traced), verify, rollback, \
         schema and data compare, re-apply, for each. Everything runs on one base database through two kept sessions (the migration runs on one; snapshots, fingerprints and integrity checks are read by both at once); a checkpoint copy taken every 16 migrations restores the base whenever a down file does not give back the exact state. (The first design, a fresh database copy and connection per step, took 109 s with 310 ms of overhead per migration.)\n\n| migrations | total | user SQL (forward + rollback + reapply) | overhead per migration | target |\n|---|---|---|---|---|\n\
         | {} ({failed} down files found not to restore the schema) | {:.1} s | {:.1} s | {:.0} ms | < 3 min total, < 200 ms overhead |\n\n",
        r.migrations.len(),
        total / 1000.0,
        user / 1000.0,
        (total - user) / n
    ))
}

// ---------- verify on 10M rows ----------

fn verify_section(bins: &PgBinaries) -> R<String> {
    let cluster = Cluster::start(bins)?;
    cluster.create_database("v", None)?;
    let spec = cluster.conn("v");
    let mut c = spec.connect()?;
    let t = Instant::now();
    c.batch_execute(
        "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL);
         INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 1000000) g;
         CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL, total numeric);
         INSERT INTO orders SELECT g, 1 + g % 1000000, g FROM generate_series(1, 4000000) g;
         CREATE TABLE items (id bigint PRIMARY KEY, order_id bigint NOT NULL, sku text);
         INSERT INTO items SELECT g, 1 + g % 4000000, 's' || g FROM generate_series(1, 5000000) g;
         ALTER TABLE orders ADD CONSTRAINT orders_user FOREIGN KEY (user_id) REFERENCES users (id);
         ALTER TABLE items ADD CONSTRAINT items_order FOREIGN KEY (order_id) REFERENCES orders (id) NOT VALID;
         CREATE INDEX ON orders (user_id); CREATE INDEX ON items (order_id);",
    )?;
    c.batch_execute("VACUUM ANALYZE")?; // alone: VACUUM cannot run in the implicit transaction of a batch
    let load = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let r = migsafe_engine::verify::verify(&spec, &Default::default())?;
    let verify_s = t.elapsed().as_secs_f64();
    // The bound: one sequential scan of each foreign key's child and parent (an anti-join has to
    // read both), measured with index scans off so the scans are real.
    c.batch_execute("SET enable_indexscan = off; SET enable_indexonlyscan = off; SET enable_bitmapscan = off")?;
    let t = Instant::now();
    for table in ["items", "orders", "orders", "users"] {
        c.query_one(&format!("SELECT count(*) FROM {table}"), &[])?;
    }
    let scans = t.elapsed().as_secs_f64();
    c.batch_execute("RESET ALL")?;
    // How the orphan checks run: the plan of each (both children have an index on the key, so
    // verify turns hash joins off for them, as here).
    c.batch_execute("SET enable_hashjoin = off")?;
    let mut plans = Vec::new();
    for (child, col, parent) in [("items", "order_id", "orders"), ("orders", "user_id", "users")] {
        let sql = format!(
            "EXPLAIN (FORMAT JSON) SELECT count(*) FROM {child} c WHERE (c.{col} IS NOT NULL) AND NOT EXISTS \
             (SELECT 1 FROM {parent} p WHERE p.id = c.{col})"
        );
        let plan_text = c
            .simple_query(&sql)?
            .into_iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .ok_or("EXPLAIN returned nothing")?;
        let plan: serde_json::Value = serde_json::from_str(&plan_text)?;
        let mut nodes = Vec::new();
        plan_nodes(&plan[0]["Plan"], &mut nodes);
        plans.push(format!("{child} → {parent}: {}", nodes.join(", ")));
    }
    Ok(format!(
        "## Verify on 10M rows (issue 6)\n\nusers 1M, orders 4M (validated FK), items 5M (NOT VALID FK); loaded in {load:.0} s.\n\n\
         | checks | verify ({} jobs) | one sequential scan of each FK's child and parent | target |\n|---|---|---|---|\n\
         | {} ({} failed) | {verify_s:.1} s | {scans:.1} s | < 30 s, no more than one scan per FK |\n\n\
         Plans of the orphan checks (each table or index read once): {}.\n\n",
        migsafe_engine::verify::VerifyOptions::default().jobs,
        r.checks.len(),
        r.checks.iter().filter(|c| !c.ok).count(),
        plans.join("; ")
    ))
}

/// Node types and relations of a JSON plan, depth first.
fn plan_nodes(node: &serde_json::Value, out: &mut Vec<String>) {
    let kind = node["Node Type"].as_str().unwrap_or("?");
    match node["Relation Name"].as_str() {
        Some(rel) => out.push(format!("{kind} on {rel}")),
        None if kind.contains("Join") => out.push(kind.to_string()),
        None => {}
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        plan_nodes(child, out);
    }
}

// ---------- apply stall under pgbench ----------

fn pgbench_stall(cluster: &Cluster, bins: &PgBinaries, db: &str, migrate: &dyn Fn() -> R<()>) -> R<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    nix::unistd::chown(dir.path(), None, None).ok();
    let script = dir.path().join("w.sql");
    std::fs::write(&script, "\\set id random(1, 10000)\nUPDATE hot SET v = v + 1 WHERE id = :id;\n")?;
    let pgbench = bins.bin.join("pgbench");
    let pgbench = if pgbench.exists() {
        pgbench
    } else {
        PathBuf::from(format!("/usr/lib/postgresql/{}/bin/pgbench", bins.major))
    };
    let spec = cluster.conn(db);
    let mut child = Command::new(pgbench)
        .args(["-n", "-c", "4", "-j", "2", "-T", "8", "-l", "--log-prefix"])
        .arg(dir.path().join("pgb"))
        .arg("-f")
        .arg(&script)
        .args(["-h", &cluster.dir().display().to_string(), "-p", "5432", "-U", "postgres", db])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(1500));
    // A long transaction holds a lock the migration conflicts with for 3 s.
    let blocker = std::thread::spawn({
        let spec = spec.clone();
        move || -> Result<(), String> {
            let mut b = spec.connect().map_err(|e| e.to_string())?;
            b.batch_execute("BEGIN; SELECT count(*) FROM hot;").map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_secs(3));
            b.batch_execute("COMMIT").map_err(|e| e.to_string())
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    migrate()?;
    let migration_s = t.elapsed().as_secs_f64();
    blocker.join().map_err(|_| "blocker panicked")??;
    child.wait()?;
    let mut worst = 0f64;
    for e in std::fs::read_dir(dir.path())? {
        let p = e?.path();
        if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("pgb")) {
            for line in std::fs::read_to_string(&p)?.lines() {
                if let Some(us) = line.split_whitespace().nth(2).and_then(|x| x.parse::<f64>().ok()) {
                    worst = worst.max(us / 1000.0);
                }
            }
        }
    }
    Ok((worst, migration_s))
}

fn apply_section(bins: &PgBinaries) -> R<String> {
    let cluster = Cluster::start(bins)?;
    let psql = PathBuf::from(format!("/usr/lib/postgresql/{}/bin/psql", bins.major));
    let mig = tempfile::tempdir()?;
    std::fs::write(mig.path().join("001_note.sql"), "ALTER TABLE hot ADD COLUMN note text;\n")?;
    std::fs::write(mig.path().join("001_note.rollback.sql"), "ALTER TABLE hot DROP COLUMN note;\n")?;
    let set = MigrationSet::load(mig.path())?;
    let mut rows = String::new();
    for (label, db) in [("psql -f", "viapsql"), ("migsafe apply (lock_timeout 500 ms)", "viamigsafe")] {
        cluster.create_database(db, None)?;
        cluster.conn(db).connect()?.batch_execute("CREATE TABLE hot (id int PRIMARY KEY, v int); INSERT INTO hot SELECT g, 0 FROM generate_series(1, 10000) g;")?;
        let spec = cluster.conn(db);
        let migrate = || -> R<()> {
            if db == "viapsql" {
                let st = Command::new(&psql)
                    .args(["-X", "-q", "-h", &cluster.dir().display().to_string(), "-U", "postgres", "-d", db, "-f"])
                    .arg(mig.path().join("001_note.sql"))
                    .status()?;
                if !st.success() {
                    return Err("psql failed".into());
                }
            } else {
                let opts = ApplyOptions {
                    backup: BackupPolicy::Skip,
                    run: RunSettings {
                        lock_timeout: Duration::from_millis(500),
                        lock_retries: 30,
                        backoff: Duration::from_millis(200),
                        statement_timeout: None,
                        session: Default::default(),
                    },
                    ..ApplyOptions::default()
                };
                let r = apply::apply(&set, &spec, &opts)?;
                if r.outcome != apply::Outcome::Applied {
                    return Err(format!("apply: {:?}", r.outcome).into());
                }
            }
            Ok(())
        };
        let (worst, took) = pgbench_stall(&cluster, bins, db, &migrate)?;
        rows.push_str(&format!("| {label} | {worst:.0} ms | {took:.1} s |\n"));
    }
    Ok(format!(
        "## Write stall during apply (issue 7)\n\npgbench (4 clients) updates `hot` for 8 s; a transaction holds a lock on it for 3 s; \
         meanwhile `ALTER TABLE hot ADD COLUMN` runs. Longest latency any pgbench transaction saw:\n\n| how | longest client stall | migration wall time |\n|---|---|---|\n{rows}\
         \nTarget: migsafe stalls no client longer than lock_timeout + 200 ms (700 ms); psql stalls them for as long as the blocker runs.\n\n"
    ))
}

// ---------- backfill ----------

struct NoBar;
impl BackfillProgress for NoBar {
    fn update(&self, _: i64, _: i64, _: i64, _: i64) {}
}

fn backfill_section(bins: &PgBinaries) -> R<String> {
    let cluster = Cluster::start(bins)?;
    cluster.create_database("bf", None)?;
    let spec = cluster.conn("bf");
    let mut c = spec.connect()?;
    let n = 10_000_000i64;
    c.batch_execute(&format!(
        "CREATE TABLE a (id bigint PRIMARY KEY, legacy int NOT NULL, new_field int); INSERT INTO a SELECT g, g % 1000 FROM generate_series(1, {n}) g;
         CREATE TABLE b (id bigint PRIMARY KEY, legacy int NOT NULL, new_field int); INSERT INTO b SELECT g, g % 1000 FROM generate_series(1, {n}) g;"
    ))?;
    c.batch_execute("VACUUM ANALYZE")?;
    let t = Instant::now();
    c.execute("UPDATE b SET new_field = legacy * 2", &[])?;
    let plain = t.elapsed().as_secs_f64();
    let o = BackfillOptions {
        table: "a".into(),
        set: "new_field = legacy * 2".into(),
        filter: Some("new_field IS NULL".into()),
        batch: 20_000,
        sleep: Duration::ZERO,
        target_batch: Some(Duration::from_millis(200)),
        max_lag: None,
        max_lock_waits: None,
        lock_timeout: Duration::from_secs(1),
        dry_run: false,
        name: None,
    };
    let r = backfill(&spec, &o, &NoBar, &Default::default())?;
    Ok(format!(
        "## Backfill (issue 8)\n\n{n} rows, `new_field = legacy * 2`.\n\n| how | rows/s | longest row-lock hold |\n|---|---|---|\n\
         | one plain UPDATE | {:.0} | {:.1} s (the whole statement) |\n| migsafe backfill (target batch 200 ms, {} batches) | {:.0} ({:.0} % of plain) | {:.0} ms |\n\n\
         Target: at least half the plain UPDATE's rows/s, no batch holding row locks over 500 ms.\n\n",
        n as f64 / plain,
        plain,
        r.batches,
        r.rows_per_sec,
        r.rows_per_sec / (n as f64 / plain) * 100.0,
        r.longest_batch_ms
    ))
}

const MARK: &str = "<!-- scenario: ";

/// The sections of an earlier results file, by scenario.
fn parse_sections(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for chunk in text.split(MARK).skip(1) {
        if let Some((name, body)) = chunk.split_once(" -->\n") {
            out.insert(name.trim().to_string(), body.to_string());
        }
    }
    out
}

fn main() -> R<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__measure") {
        return measure_helper(&args[1..]);
    }
    const ALL: [&str; 10] =
        ["lint", "big-file", "cluster", "rollback", "rehearse", "rehearse-big", "verify", "apply", "backfill", "fleet"];
    let which: Vec<&str> = if args.is_empty() || args.iter().any(|a| a == "all") {
        ALL.to_vec()
    } else {
        args.iter().filter(|a| !a.starts_with("--")).map(String::as_str).collect()
    };
    if let Some(bad) = which.iter().find(|w| !ALL.contains(w)) {
        return Err(format!("unknown scenario {bad}; scenarios: {}", ALL.join(", ")).into());
    }
    let bins = PgBinaries::find(None)?;
    let path = root().join("bench/results.md");
    // Sections of scenarios not run this time are kept from the previous results.
    let mut sections = parse_sections(&std::fs::read_to_string(&path).unwrap_or_default());
    for w in which {
        eprintln!("bench: {w}…");
        let section = match w {
            "lint" => lint_section(),
            "big-file" => big_file_section(),
            "cluster" => cluster_section(&bins),
            "rollback" => rollback_section(&bins),
            "rehearse" => rehearse_section(&bins),
            "rehearse-big" => rehearse_big_section(&bins),
            "verify" => verify_section(&bins),
            "apply" => apply_section(&bins),
            "backfill" => backfill_section(&bins),
            "fleet" => fleet_section(&bins),
            _ => unreachable!("checked above"),
        };
        let body = match section {
            Ok(s) => {
                eprint!("{s}");
                s
            }
            Err(e) => {
                let mut text = e.to_string();
                let mut cause = e.source();
                while let Some(c) = cause {
                    text.push_str(&format!(": {c}"));
                    cause = c.source();
                }
                eprintln!("{w} failed: {text}");
                format!("## {w}\n\nfailed: {text}\n\n")
            }
        };
        let stamp = format!(
            "_Measured {} with `migsafe-bench {w}` (release build), PostgreSQL {}, {} cores, {} GiB RAM._\n\n",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            bins.version,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            sh("awk '/MemTotal/ {printf \"%.0f\", $2/1048576}' /proc/meminfo").unwrap_or_default(),
        );
        sections.insert(w.to_string(), format!("{body}{stamp}"));
    }
    let mut out = String::from(
        "# migsafe benchmark results\n\nProduced by `make bench` (`migsafe-bench all`, release build). \
         `migsafe-bench SCENARIO…` re-runs some scenarios and replaces only their sections; each section \
         says when and where it was measured.\n\n",
    );
    // Each section ends with one blank line, whichever comes after it.
    for name in ALL {
        if let Some(body) = sections.get(name) {
            out.push_str(&format!("{MARK}{name} -->\n{}\n\n", body.trim_end()));
        }
    }
    // Sections measured by hand (real-world histories that cannot be committed) are kept.
    for (name, body) in sections.iter().filter(|(n, _)| !ALL.contains(&n.as_str())) {
        out.push_str(&format!("{MARK}{name} -->\n{}\n\n", body.trim_end()));
    }
    std::fs::write(&path, format!("{}\n", out.trim_end()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
