//! The fleet benchmark: `migsafe fleet apply` against loops of `migsafe apply` and `psql`.

use crate::*;

pub(crate) const FLEET_SET: &[(&str, &str)] = &[
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
pub(crate) fn tenants(clusters: &[Cluster], prefix: &str, n: usize) -> R<Vec<(usize, String)>> {
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
pub(crate) fn drop_tenants(clusters: &[Cluster], dbs: &[(usize, String)]) -> R<()> {
    for (h, d) in dbs {
        clusters[*h].drop_database(d)?;
    }
    Ok(())
}

pub(crate) fn tenant_url(clusters: &[Cluster], h: usize, db: &str) -> String {
    format!("postgresql://postgres@/{db}?host={}&port={}", clusters[h].dir().display(), clusters[h].port())
}

pub(crate) fn fleet_section(bins: &PgBinaries) -> R<String> {
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
