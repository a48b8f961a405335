//! Issue 20: rehearsing a migration of many statements, against `psql -1 -f` of the same file.

use crate::*;

/// `migsafe rehearse` of a seed migration of N single-row INSERTs into an existing table: its
/// forward step (lock-traced) and performance step against `psql -1 -f` of the same file on a
/// server built the same way, in the same run.
pub(crate) fn rehearse_big_section(bins: &PgBinaries) -> R<String> {
    let psql = bins.bin.join("psql");
    let cluster = Cluster::start(bins)?;
    let server = ScratchServer::throwaway(Some(&bins.bin))?;
    let mut rows = String::new();
    let mut generated = String::new();
    for n in [1_000usize, 10_000, 100_000] {
        let dir = tempfile::tempdir()?;
        let create = crate::lint::ITEMS;
        std::fs::write(dir.path().join("001_items.sql"), create)?;
        std::fs::write(dir.path().join("001_items.rollback.sql"), "DROP TABLE items;\n")?;
        let seed = dir.path().join("002_seed.sql");
        std::fs::write(&seed, crate::lint::inserts(n))?;
        // psql: three runs on fresh databases, the median.
        let mut psql_ms = vec![];
        for k in 0..3 {
            let db = format!("seed_{n}_{k}");
            cluster.create_database(&db, None)?;
            cluster.conn(&db).connect()?.batch_execute(create)?;
            let t = Instant::now();
            let st = Command::new(&psql)
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-h", &cluster.dir().display().to_string()])
                .args(["-U", "postgres", "-d", &db, "-f"])
                .arg(&seed)
                .stdout(Stdio::null())
                .status()?;
            if !st.success() {
                return Err("psql -1 -f failed".into());
            }
            psql_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let psql_ms = median(psql_ms);
        let set = MigrationSet::load(dir.path())?;
        let t = Instant::now();
        let r = rehearse(
            &set,
            &server,
            &RehearseOptions { budget: Duration::from_secs(30), ..Default::default() },
            &Quiet,
        )?;
        let total = t.elapsed().as_secs_f64();
        let m = r.migrations.last().ok_or("no rehearsal")?;
        if !m.ok {
            return Err(format!("the rehearsal of {n} INSERTs failed: {:?}", m.steps.iter().find(|s| !s.ok)).into());
        }
        if n == 100_000 {
            let t = Instant::now();
            let g = rollback::generate(&set, &server, &GenerateOptions::default())?;
            let secs = t.elapsed().as_secs_f64();
            let g = g.last().ok_or("no rollback")?;
            generated = format!(
                "`rollback generate` of the 100,000-row seed (generation and proof on a scratch database): {secs:.1} s, \
                 {}; the script is {:.0} KB ({:.0} KB of INSERTs) with {} `DELETE … WHERE id IN (…)` statements.\n\n",
                if g.ok() { "proven" } else { "NOT proven" },
                g.script.len() as f64 / 1024.0,
                std::fs::metadata(&seed)?.len() as f64 / 1024.0,
                g.script.matches("DELETE FROM").count(),
            );
        }
        let step = |name: &str| m.steps.iter().find(|s| s.step == name).map_or(0.0, |s| s.ms);
        let forward = step("forward");
        rows.push_str(&format!(
            "| {n} | {:.2} s | {:.2} s | {:.2} | {:.2} s | {:.2} s | {total:.1} s |\n",
            psql_ms / 1000.0,
            forward / 1000.0,
            forward / psql_ms,
            step("performance") / 1000.0,
            step("rollback") / 1000.0,
        ));
    }
    Ok(format!(
        "## Rehearsing a migration of many statements (issue 20)\n\n`rehearse` of a seed migration of N single-row \
         `INSERT`s into a table the migration before it created, against `psql -X -1 -f` of the same file into the \
         same table on a cluster built the same way (median of 3), in the same run. The forward step traces locks \
         and rewrites after each statement that can take more than row locks, and once after each run of \
         row-level statements (INSERT, UPDATE, DELETE, MERGE, COPY, SET); the performance step judges the \
         statements' own time.\n\n| statements | psql -1 -f | migsafe forward step | forward / psql | \
         performance step | generated rollback run | whole rehearsal |\n|---|---|---|---|---|---|---|\n{rows}\n{generated}",
    ))
}
