//! Lint benchmarks: throughput on many files, and one big file, against squawk.

use crate::*;

pub(crate) const GENERATED: &[&str] = &[
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

pub(crate) fn generate_lint_set(dir: &Path, files: usize, per_file: usize) -> R<usize> {
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

pub(crate) fn lint_section() -> R<String> {
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

/// The table the seed files fill.
pub(crate) const ITEMS: &str = "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);\n";

/// `n` single-row `INSERT`s into [`ITEMS`]: a seed migration, a data fix (about 60 bytes a
/// statement, the shape of the 7.6 MB file of 200,000).
pub(crate) fn inserts(n: usize) -> String {
    (1..=n).map(|i| format!("INSERT INTO items (id, name) VALUES ({i}, 'item {i}');\n")).collect()
}

/// One file of the `CREATE TABLE` and `n` INSERTs; its size.
fn write_insert_file(path: &Path, n: usize) -> R<u64> {
    let text = format!("{ITEMS}{}", inserts(n));
    std::fs::write(path, &text)?;
    Ok(text.len() as u64)
}

/// Issue 20: lint of one big file against squawk, time and peak memory, and how time grows.
pub(crate) fn big_file_section() -> R<String> {
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
