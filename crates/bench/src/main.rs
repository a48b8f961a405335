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

// ---------- lint ----------

const GENERATED: &[&str] = &[
    "CREATE TABLE t{n} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, created_at timestamptz DEFAULT now())",
    "ALTER TABLE t{p} ADD COLUMN c{n} text",
    "CREATE INDEX i{n} ON t{p} (name)",
    "CREATE INDEX CONCURRENTLY j{n} ON t{p} (created_at)",
    "ALTER TABLE t{p} ADD CONSTRAINT f{n} FOREIGN KEY (id) REFERENCES t{n} (id)",
    "ALTER TABLE t{p} ALTER COLUMN name SET NOT NULL",
    "UPDATE t{p} SET name = upper(name) WHERE id < {n}",
    "ALTER TABLE t{p} ALTER COLUMN c{p} TYPE varchar(200)",
    "COMMENT ON TABLE t{n} IS 'table {n}'",
    "CREATE OR REPLACE VIEW v{n} AS SELECT id, name FROM t{n} WHERE id > {n}",
];

fn generate_lint_set(dir: &Path, files: usize, per_file: usize) -> R<usize> {
    let mut n = 0;
    for f in 0..files {
        let mut text = String::new();
        for i in 0..per_file {
            let k = f * per_file + i;
            let tpl = GENERATED[k % GENERATED.len()];
            text.push_str(&tpl.replace("{n}", &k.to_string()).replace("{p}", &k.saturating_sub(1).to_string()));
            text.push_str(";\n");
            n += 1;
        }
        std::fs::write(dir.join(format!("{:05}_gen.sql", f + 1)), text)?;
    }
    Ok(n)
}

fn lint_section() -> R<String> {
    let squawk = PathBuf::from(sh(&format!("{}/scripts/fetch-squawk.sh", root().display()))?);
    let corpus = root().join("corpus/crates-io");
    let mut files: Vec<String> = std::fs::read_dir(&corpus)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".up.sql"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    let bytes: u64 = files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    let stmts: usize = files
        .iter()
        .map(|f| migsafe_engine::lint::statement_count(&std::fs::read_to_string(f).unwrap_or_default()))
        .sum();
    let gen = tempfile::tempdir()?;
    let gen_stmts = generate_lint_set(gen.path(), 100, 1000)?;
    let mut gen_files: Vec<String> =
        std::fs::read_dir(gen.path())?.filter_map(|e| e.ok().map(|e| e.path().display().to_string())).collect();
    gen_files.sort();
    let gen_bytes: u64 = gen_files.iter().map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0)).sum();
    let mut rows = String::new();
    for (label, set, n, b) in
        [("crates.io (284 files)", &files, stmts, bytes), ("generated (100 files)", &gen_files, gen_stmts, gen_bytes)]
    {
        let mut ms_args: Vec<String> =
            vec!["lint".into(), "--format".into(), "json".into(), "--fail-on".into(), "none".into()];
        ms_args.extend(set.iter().cloned());
        let mut m = vec![];
        let mut mrss = 0;
        let mut s = vec![];
        let mut srss = 0;
        for _ in 0..7 {
            let (t, r) = measure(&migsafe_bin(), &ms_args)?;
            m.push(t);
            mrss = mrss.max(r);
            let (t, r) = measure(&squawk, set)?;
            s.push(t);
            srss = srss.max(r);
        }
        let (m, s) = (median(m), median(s));
        let mb = b as f64 / 1e6;
        rows.push_str(&format!(
            "| {label} | {n} statements, {mb:.2} MB | migsafe {m:.0} ms = {:.0} stmt/s, {:.1} MB/s, {:.1} MB RSS | squawk {s:.0} ms = {:.0} stmt/s, {:.1} MB/s, {:.1} MB RSS |\n",
            n as f64 / (m / 1000.0),
            mb / (m / 1000.0),
            mrss as f64 / 1024.0,
            n as f64 / (s / 1000.0),
            mb / (s / 1000.0),
            srss as f64 / 1024.0
        ));
    }
    Ok(format!(
        "## Lint throughput (issue 2)\n\nWall time of the whole process (median of 7), `migsafe lint --format json` against \
         squawk {} on the same files, in the same run; peak RSS from getrusage.\n\n| set | size | migsafe | squawk |\n|---|---|---|---|\n{rows}\n",
        sh(&format!("{} --version", squawk.display()))?.replace("squawk ", "")
    ))
}

/// One file of a `CREATE TABLE` and `n` single-row `INSERT`s: a seed migration, a data fix
/// (about 60 bytes a statement, the shape of the 7.6 MB file of 200,000).
fn write_insert_file(path: &Path, n: usize) -> R<u64> {
    let mut text = String::from("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);\n");
    for i in 1..=n {
        text.push_str(&format!("INSERT INTO items (id, name) VALUES ({i}, 'item {i}');\n"));
    }
    std::fs::write(path, &text)?;
    Ok(text.len() as u64)
}

/// Issue 20: lint of one big file against squawk, time and peak memory, and how time grows.
fn big_file_section() -> R<String> {
    let squawk = PathBuf::from(sh(&format!("{}/scripts/fetch-squawk.sh", root().display()))?);
    let dir = tempfile::tempdir()?;
    let sizes = [5_000usize, 20_000, 200_000];
    let mut rows = String::new();
    let mut times = vec![];
    for n in sizes {
        let file = dir.path().join(format!("{n}.sql"));
        let bytes = write_insert_file(&file, n)?;
        let f = file.display().to_string();
        let ms_args: Vec<String> =
            ["lint", "--format", "json", "--fail-on", "none", &f].iter().map(|s| s.to_string()).collect();
        let (mut m, mut s, mut mrss, mut srss) = (vec![], vec![], 0, 0);
        for _ in 0..3 {
            let (t, r) = measure(&migsafe_bin(), &ms_args)?;
            m.push(t);
            mrss = mrss.max(r);
            let (t, r) = measure(&squawk, std::slice::from_ref(&f))?;
            s.push(t);
            srss = srss.max(r);
        }
        let (m, s) = (median(m), median(s));
        times.push((n, m, s));
        let mb = bytes as f64 / 1e6;
        rows.push_str(&format!(
            "| {n} | {mb:.2} MB | {:.2} s, {:.0} MB ({:.1}× the file) | {:.2} s, {:.0} MB | {:.2} |\n",
            m / 1000.0,
            mrss as f64 / 1024.0,
            mrss as f64 * 1024.0 / bytes as f64,
            s / 1000.0,
            srss as f64 / 1024.0,
            m / s
        ));
    }
    let growth = |a: (usize, f64, f64), b: (usize, f64, f64), pick: fn(&(usize, f64, f64)) -> f64| {
        let doublings = (b.0 as f64 / a.0 as f64).log2();
        (pick(&b) / pick(&a)).powf(1.0 / doublings)
    };
    let (t5, t20, t200) = (times[0], times[1], times[2]);
    Ok(format!(
        "## One big file (issue 20)\n\n`migsafe lint --format json` and squawk {} on one file of a `CREATE TABLE` and N \
         single-row `INSERT`s, in the same run (median of 3; peak RSS from getrusage). The file is read in chunks that \
         end at a statement, each parsed alone, and a statement keeps only the summary the rules read, not its \
         parse tree. Before (commit f0b04fb, a whole-file parse keeping every statement's tree): 40,000 \
         statements took 1.28 s and 622 MB.\n\n| statements | file | migsafe | squawk | migsafe / squawk |\n|---|---|---|---|---|\n{rows}\n\
         Time per doubling of the file: migsafe ×{:.2} (5k→20k), ×{:.2} (20k→200k); squawk ×{:.2}, ×{:.2}.\n\n",
        sh(&format!("{} --version", squawk.display()))?.replace("squawk ", ""),
        growth(t5, t20, |t| t.1),
        growth(t20, t200, |t| t.1),
        growth(t5, t20, |t| t.2),
        growth(t20, t200, |t| t.2),
    ))
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
         schema and data compare, re-apply, for each. Everything runs on one base database through one kept session; a checkpoint copy taken every 8 migrations restores the base whenever a down file does not give back the exact state. (The first design, a fresh database copy and connection per step, took 109 s with 310 ms of overhead per migration.)\n\n| migrations | total | user SQL (forward + rollback + reapply) | overhead per migration | target |\n|---|---|---|---|---|\n\
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

// ---------- fleet ----------

const FLEET_SET: &[(&str, &str)] = &[
    ("001_status.sql", "ALTER TABLE accounts ADD COLUMN status text;\n"),
    ("001_status.rollback.sql", "ALTER TABLE accounts DROP COLUMN status;\n"),
    ("002_plan_check.sql", "ALTER TABLE accounts ADD CONSTRAINT accounts_plan_known CHECK (plan IN ('free', 'pro')) NOT VALID;\n"),
    ("002_plan_check.rollback.sql", "ALTER TABLE accounts DROP CONSTRAINT accounts_plan_known;\n"),
    ("003_validate.sql", "ALTER TABLE accounts VALIDATE CONSTRAINT accounts_plan_known;\n"),
    (
        "003_validate.rollback.sql",
        "ALTER TABLE accounts DROP CONSTRAINT accounts_plan_known;\nALTER TABLE accounts ADD CONSTRAINT accounts_plan_known CHECK (plan IN ('free', 'pro')) NOT VALID;\n",
    ),
];

/// `n` tenant databases named `{prefix}_{i}` spread over the clusters, each a copy of `tmpl`.
fn tenants(clusters: &[Cluster], prefix: &str, n: usize) -> R<Vec<(usize, String)>> {
    let mut out = Vec::new();
    for i in 0..n {
        let h = i % clusters.len();
        let name = format!("{prefix}_{i:04}");
        clusters[h].create_database(&name, Some("tmpl"))?;
        out.push((h, name));
    }
    Ok(out)
}

/// Drop tenant databases (each is some 7 MB of catalog on /dev/shm; 3,000 of them would not fit).
fn drop_tenants(clusters: &[Cluster], dbs: &[(usize, String)]) -> R<()> {
    for (h, d) in dbs {
        clusters[*h].drop_database(d)?;
    }
    Ok(())
}

fn tenant_url(clusters: &[Cluster], h: usize, db: &str) -> String {
    format!("postgresql://postgres@/{db}?host={}&port={}", clusters[h].dir().display(), clusters[h].port())
}

fn fleet_section(bins: &PgBinaries) -> R<String> {
    let clusters: Vec<Cluster> = (0..3).map(|_| Cluster::start(bins)).collect::<Result<_, _>>()?;
    for c in &clusters {
        c.create_database("tmpl", None)?;
        c.conn("tmpl").connect()?.batch_execute(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL, plan text NOT NULL); \
             CREATE INDEX accounts_email ON accounts (email); \
             INSERT INTO accounts SELECT g, 'u' || g || '@example.com', CASE WHEN g % 2 = 0 THEN 'free' ELSE 'pro' END FROM generate_series(1, 200) g; \
             ANALYZE accounts;",
        )?;
    }
    clusters[0].create_database("control", None)?;
    let set = tempfile::tempdir()?;
    for (n, t) in FLEET_SET {
        std::fs::write(set.path().join(n), t)?;
    }
    let psql = PathBuf::from(format!("/usr/lib/postgresql/{}/bin/psql", bins.major));
    let psql = if psql.exists() { psql } else { bins.program("psql") };
    let work = tempfile::tempdir()?;
    let control = tenant_url(&clusters, 0, "control");
    let mut rows = String::new();
    let mut per_target = Vec::new();
    // MIGSAFE_BENCH_FLEET=100,1000 (the default) picks the fleet sizes.
    let sizes: Vec<usize> = std::env::var("MIGSAFE_BENCH_FLEET")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    for &n in &sizes {
        // migsafe fleet apply: the whole procedure on every target, a rehearsal, waves.
        let dbs = tenants(&clusters, &format!("f{n}"), n)?;
        let targets = work.path().join(format!("targets-{n}.txt"));
        std::fs::write(&targets, dbs.iter().map(|(h, d)| tenant_url(&clusters, *h, d) + "\n").collect::<String>())?;
        let t = Instant::now();
        let out = Command::new(migsafe_bin())
            .args(["fleet", "apply"])
            .arg(set.path())
            .arg("--targets")
            .arg(&targets)
            .args(["--control-db", &control, "--no-backup", "--approved-by", "Technical Lead=Ada", "--canary", "1"])
            .args(["--waves", "10%,100%", "--jobs", "6", "--per-host", "2", "--format", "json"])
            .env("PG_BIN", bins.program("postgres").parent().unwrap_or(Path::new("")))
            .current_dir(work.path())
            .output()?;
        let fleet_ms = t.elapsed().as_secs_f64() * 1000.0;
        let rep: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        if rep["counts"]["applied"].as_u64() != Some(n as u64) {
            return Err(format!("fleet apply of {n}: {}", String::from_utf8_lossy(&out.stdout)).into());
        }
        drop_tenants(&clusters, &dbs)?;
        // A sequential loop of `migsafe apply`.
        let dbs = tenants(&clusters, &format!("m{n}"), n)?;
        let t = Instant::now();
        for (h, d) in &dbs {
            let st = Command::new(migsafe_bin())
                .arg("apply")
                .arg(set.path())
                .args(["--db", &tenant_url(&clusters, *h, d), "--no-backup", "--approved-by", "Technical Lead=Ada"])
                .stdout(Stdio::null())
                .status()?;
            if !st.success() {
                return Err(format!("migsafe apply on {d} failed").into());
            }
        }
        let loop_ms = t.elapsed().as_secs_f64() * 1000.0;
        drop_tenants(&clusters, &dbs)?;
        // A sequential loop of `psql -f` (no safety at all).
        let dbs = tenants(&clusters, &format!("p{n}"), n)?;
        let t = Instant::now();
        for (h, d) in &dbs {
            let mut cmd = Command::new(&psql);
            cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", &clusters[*h].dir().display().to_string()]);
            cmd.args(["-p", &clusters[*h].port().to_string(), "-U", "postgres", "-d", d]);
            for (f, _) in FLEET_SET.iter().filter(|(f, _)| !f.contains("rollback")) {
                cmd.arg("-f").arg(set.path().join(f));
            }
            if !cmd.stdout(Stdio::null()).status()?.success() {
                return Err(format!("psql on {d} failed").into());
            }
        }
        let psql_ms = t.elapsed().as_secs_f64() * 1000.0;
        drop_tenants(&clusters, &dbs)?;
        per_target.push((n, fleet_ms / n as f64));
        rows.push_str(&format!(
            "| {n} | {:.1} s ({:.0} ms/target) | {:.1} s ({:.0} ms/target) | {:.1} s ({:.0} ms/target) | {:.1}× faster | {:.2}× psql |\n",
            fleet_ms / 1000.0,
            fleet_ms / n as f64,
            loop_ms / 1000.0,
            loop_ms / n as f64,
            psql_ms / 1000.0,
            psql_ms / n as f64,
            loop_ms / fleet_ms,
            fleet_ms / psql_ms,
        ));
    }
    let growth = per_target.last().map(|l| l.1).unwrap_or(0.0) / per_target.first().map(|f| f.1).unwrap_or(1.0);
    Ok(format!(
        "## Fleet apply (issue 18)\n\nTenant databases spread over three local clusters (each a copy of one 200-row `accounts` table), \
         a set of three migrations (add a column, add a CHECK NOT VALID, validate it). `migsafe fleet apply` (a survey of every \
         target, lint once, one rehearsal on a throwaway cluster, a canary, waves of 10 % and 100 %, `--jobs 6 --per-host 2`, the \
         ledger in a control database, and on every target apply's whole procedure: advisory lock, preflight, history, \
         lock_timeout, verification, checklist) against a sequential loop of `migsafe apply` and a sequential loop of \
         `psql -f` (no safety at all) over fresh copies of the same databases.\n\n\
         | targets | migsafe fleet apply | loop of migsafe apply | loop of psql -f | fleet vs the apply loop | fleet vs psql |\n|---|---|---|---|---|---|\n{rows}\n\
         Per-target cost of the fleet from the smallest to the largest fleet: ×{growth:.2} (flat is 1.0). \
         Targets: at least 5× faster than the apply loop, within 2× of the psql loop.\n\n"
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
    const ALL: [&str; 9] =
        ["lint", "big-file", "cluster", "rollback", "rehearse", "verify", "apply", "backfill", "fleet"];
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
