//! Backups you can trust: `pg_dump -Fc` with the pg_dump of the server's own major version,
//! streamed into a private (0600) temporary file while its sha256 is computed, verified with
//! `pg_restore --list` against the catalog, optionally restored into a scratch database and
//! compared, then renamed into place with a manifest. Plus re-verification of a dump against
//! its manifest, listing, retention, and the PITR status of the server.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use migsafe_catalog::Snapshot;
use migsafe_pg::binaries::client_program;
use migsafe_pg::{ConnSpec, PgError};

use crate::scratch::ScratchServer;
use crate::EngineError;

/// What is recorded next to each dump.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Dump file name.
    pub file: String,
    /// Database it came from (redacted).
    pub database: String,
    /// Database name.
    pub dbname: String,
    /// Server version.
    pub server_version: String,
    /// When (UTC, RFC 3339).
    pub created_utc: String,
    /// Bytes.
    pub size: u64,
    /// sha256 of the file, hex.
    pub sha256: String,
    /// Entries in its table of contents (`pg_restore --list`).
    pub toc_entries: usize,
    /// Tables whose data it holds.
    pub tables: Vec<String>,
    /// Passed the `pg_restore --list` check against the catalog.
    pub verified: bool,
    /// Restored into a scratch database and compared.
    pub restore_tested: bool,
    /// What the restore test found (empty when identical).
    pub restore_differences: Vec<String>,
}

/// Options of a backup.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Where dumps go.
    pub dir: PathBuf,
    /// Restore and compare.
    pub restore_test: bool,
    /// Extra folders to look for pg_dump / pg_restore in.
    pub tool_dirs: Vec<PathBuf>,
    /// Server binaries for the throwaway restore target.
    pub pg_bin: Option<PathBuf>,
}

/// Sizes of what a run did.
#[derive(Debug, Clone, Serialize)]
pub struct BackupResult {
    /// The dump.
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// PITR status of the server.
    pub pitr: PitrStatus,
}

fn manifest_path(dump: &Path) -> PathBuf {
    let mut s = dump.as_os_str().to_owned();
    s.push(".manifest.json");
    PathBuf::from(s)
}

fn sha256_file(path: &Path) -> Result<(u64, String), EngineError> {
    let mut f = File::open(path).map_err(|e| EngineError::file(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| EngineError::file(path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, hex::encode(h.finalize())))
}

/// `pg_restore --list` of a dump: its TOC lines, or why it cannot be read.
pub fn toc(pg_restore: &Path, dump: &Path) -> Result<Vec<String>, EngineError> {
    let out = Command::new(pg_restore)
        .arg("--list")
        .arg(dump)
        .output()
        .map_err(|e| EngineError::Pg(PgError::io("running pg_restore --list")(e)))?;
    if !out.status.success() {
        return Err(EngineError::Backup(format!(
            "{}: pg_restore --list failed: {}",
            dump.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

fn write_private(path: &Path, text: &str) -> Result<(), EngineError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| EngineError::file(path, e))?;
    f.write_all(text.as_bytes()).map_err(|e| EngineError::file(path, e))
}

/// Take a verified backup of `spec`.
pub fn backup(spec: &ConnSpec, opts: &BackupOptions) -> Result<BackupResult, EngineError> {
    let mut c = spec.connect()?;
    let version_num = migsafe_pg::server_version_num(&mut c)?;
    let major = version_num / 10000;
    let server_version: String = c.query_one("SHOW server_version", &[])?.get(0);
    let snap = Snapshot::capture(&mut c)?;
    let pitr = pitr_status(&mut c)?;
    let pg_dump = client_program("pg_dump", major, &opts.tool_dirs)?;
    let pg_restore = client_program("pg_restore", major, &opts.tool_dirs)?;
    std::fs::create_dir_all(&opts.dir).map_err(|e| EngineError::file(&opts.dir, e))?;
    let stamp = chrono::Utc::now();
    let clean_db: String =
        spec.dbname().chars().map(|ch| if ch.is_ascii_alphanumeric() || ch == '_' { ch } else { '_' }).collect();
    let name = format!("{clean_db}_{}.dump", stamp.format("%Y%m%dT%H%M%SZ"));
    let final_path = opts.dir.join(&name);
    let tmp = opts.dir.join(format!(".{name}.partial"));
    let (args, env) = spec.tool_args();
    // Stream pg_dump's output into a 0600 file we create, hashing as it goes.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| EngineError::file(&tmp, e))?;
    let mut child = Command::new(&pg_dump)
        .args(&args)
        .args(["--format=custom", "--no-password", "--dbname", spec.dbname()])
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| EngineError::Pg(PgError::io("starting pg_dump")(e)))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut out = child.stdout.take().expect("piped stdout");
    let mut buf = vec![0u8; 1 << 16];
    let copy: Result<(), std::io::Error> = (|| loop {
        let n = out.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        file.write_all(&buf[..n])?;
        hasher.update(&buf[..n]);
        size += n as u64;
    })();
    let status = child.wait().map_err(|e| EngineError::Pg(PgError::io("waiting for pg_dump")(e)))?;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let failed = |why: String| {
        let _ = std::fs::remove_file(&tmp);
        EngineError::Backup(why)
    };
    copy.map_err(|e| failed(format!("writing {}: {e}", tmp.display())))?;
    file.sync_all().map_err(|e| failed(format!("syncing {}: {e}", tmp.display())))?;
    if !status.success() {
        return Err(failed(format!("pg_dump failed ({status}): {}", err.trim())));
    }
    // Verify: the TOC lists every table and its data.
    let entries = toc(&pg_restore, &tmp).map_err(|e| failed(e.to_string()))?;
    let mut tables = Vec::new();
    let mut missing = Vec::new();
    for n in snap.tables.keys() {
        let needle = format!(" {} {} ", n.schema, n.name);
        let has = |kind: &str| entries.iter().any(|l| l.contains(kind) && l.contains(&needle));
        if has(" TABLE ") {
            tables.push(n.to_string());
        } else {
            missing.push(n.to_string());
        }
    }
    if !missing.is_empty() {
        return Err(failed(format!("the dump's table of contents lacks tables: {}", missing.join(", "))));
    }
    let mut manifest = Manifest {
        file: name.clone(),
        database: spec.redacted(),
        dbname: spec.dbname().to_string(),
        server_version,
        created_utc: stamp.to_rfc3339(),
        size,
        sha256: hex::encode(hasher.finalize()),
        toc_entries: entries.len(),
        tables,
        verified: true,
        restore_tested: false,
        restore_differences: vec![],
    };
    if opts.restore_test {
        manifest.restore_differences =
            restore_test(spec, &snap, &pg_restore, &tmp, major, opts).map_err(|e| failed(e.to_string()))?;
        manifest.restore_tested = true;
    }
    std::fs::rename(&tmp, &final_path).map_err(|e| failed(format!("renaming into place: {e}")))?;
    write_private(&manifest_path(&final_path), &serde_json::to_string_pretty(&manifest).expect("manifests serialise"))?;
    Ok(BackupResult { path: final_path, manifest, pitr })
}

/// Restore `dump` into a scratch database (throwaway cluster of the same major, else a
/// scratch database on the source server) and compare schema and row counts.
fn restore_test(
    source: &ConnSpec,
    snap: &Snapshot,
    pg_restore: &Path,
    dump: &Path,
    major: u32,
    opts: &BackupOptions,
) -> Result<Vec<String>, EngineError> {
    let server = match ScratchServer::throwaway(opts.pg_bin.as_deref()) {
        Ok(s) if s.major() == major => s,
        _ => ScratchServer::remote(source)?,
    };
    let db = server.create_db("restore_test", None)?;
    let (args, env) = db.spec.tool_args();
    let out = Command::new(pg_restore)
        .args(&args)
        .args(["--no-owner", "--no-privileges", "--exit-on-error", "--dbname", &db.name])
        .arg(dump)
        .envs(env)
        .output()
        .map_err(|e| EngineError::Pg(PgError::io("running pg_restore")(e)))?;
    if !out.status.success() {
        return Err(EngineError::Backup(format!(
            "the restore test failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut c = db.connect()?;
    let restored = Snapshot::capture(&mut c)?;
    let mut diffs = Vec::new();
    // Grants and ownership are not restored (--no-owner/--no-privileges): compare the rest.
    let strip = |s: &Snapshot| {
        let mut s = s.clone();
        for t in s.tables.values_mut() {
            t.grants.clear();
            for col in t.columns.iter_mut() {
                col.grants.clear();
            }
        }
        for x in s.schemas.values_mut() {
            x.grants.clear();
        }
        for v in s.views.values_mut() {
            v.grants.clear();
        }
        for f in s.functions.values_mut() {
            f.grants.clear();
        }
        for q in s.sequences.values_mut() {
            q.grants.clear();
        }
        s
    };
    let (source_schema, restored_schema) = (strip(snap), strip(&restored));
    let d = source_schema.diff(&restored_schema);
    if !d.differences.is_empty() {
        diffs.push(format!("schema differs:\n{}", d.summary().trim_end()));
    }
    let mut src = source.connect()?;
    let a = crate::verify::row_counts(&mut src, snap)?;
    let b = crate::verify::row_counts(&mut c, &restored)?;
    for (t, n) in &a {
        if b.get(t) != Some(n) {
            diffs.push(format!(
                "{t}: {n} rows in the source, {} restored",
                b.get(t).map(|x| x.to_string()).unwrap_or("none".into())
            ));
        }
    }
    Ok(diffs)
}

/// Re-check a dump against its manifest: size, checksum and table of contents.
pub fn verify_file(dump: &Path, tool_dirs: &[PathBuf]) -> Result<Manifest, EngineError> {
    let mp = manifest_path(dump);
    let text = std::fs::read_to_string(&mp)
        .map_err(|e| EngineError::Backup(format!("{}: no manifest ({e})", mp.display())))?;
    let m: Manifest =
        serde_json::from_str(&text).map_err(|e| EngineError::Backup(format!("{}: bad manifest: {e}", mp.display())))?;
    let (size, sha) = sha256_file(dump)?;
    if size != m.size {
        return Err(EngineError::Backup(format!(
            "{}: {size} bytes, but the manifest says {} (truncated or altered)",
            dump.display(),
            m.size
        )));
    }
    if sha != m.sha256 {
        return Err(EngineError::Backup(format!("{}: checksum differs from the manifest (altered)", dump.display())));
    }
    let major: u32 = m.server_version.split('.').next().and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let pg_restore = client_program("pg_restore", major, tool_dirs)?;
    let entries = toc(&pg_restore, dump)?;
    if entries.len() != m.toc_entries {
        return Err(EngineError::Backup(format!(
            "{}: {} table-of-contents entries, the manifest says {}",
            dump.display(),
            entries.len(),
            m.toc_entries
        )));
    }
    Ok(m)
}

/// Every backup in `dir` (by manifest), newest first.
pub fn list(dir: &Path) -> Result<Vec<(PathBuf, Manifest)>, EngineError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(EngineError::file(dir, e)),
    };
    for e in rd.flatten() {
        let p = e.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else { continue };
        if let Some(dump) = name.strip_suffix(".manifest.json") {
            if let Ok(text) = std::fs::read_to_string(&p) {
                if let Ok(m) = serde_json::from_str::<Manifest>(&text) {
                    out.push((dir.join(dump), m));
                }
            }
        }
    }
    out.sort_by(|a, b| b.1.created_utc.cmp(&a.1.created_utc));
    Ok(out)
}

/// Delete backups beyond `keep` or older than `max_age`, never the newest verified one.
/// Returns the deleted dumps.
pub fn prune(dir: &Path, keep: Option<usize>, max_age: Option<Duration>) -> Result<Vec<PathBuf>, EngineError> {
    let all = list(dir)?;
    let newest_verified = all.iter().position(|(_, m)| m.verified);
    let now = chrono::Utc::now();
    let mut deleted = Vec::new();
    for (i, (path, m)) in all.iter().enumerate() {
        if Some(i) == newest_verified {
            continue;
        }
        let too_many = keep.is_some_and(|k| i >= k);
        let too_old = max_age.is_some_and(|age| {
            chrono::DateTime::parse_from_rfc3339(&m.created_utc)
                .map(|t| (now - t.with_timezone(&chrono::Utc)).to_std().unwrap_or_default() > age)
                .unwrap_or(false)
        });
        if too_many || too_old {
            let _ = std::fs::remove_file(path);
            let _ = std::fs::remove_file(manifest_path(path));
            deleted.push(path.clone());
        }
    }
    Ok(deleted)
}

/// Point-in-time recovery readiness.
#[derive(Debug, Clone, Serialize)]
pub struct PitrStatus {
    /// `wal_level`.
    pub wal_level: String,
    /// `archive_mode`.
    pub archive_mode: String,
    /// `archive_command` (or `archive_library`).
    pub archive_command: String,
    /// Last archived WAL file and when.
    pub last_archived: Option<String>,
    /// Archiving failures and the last one.
    pub failed_count: i64,
    /// Last failure.
    pub last_failed: Option<String>,
    /// PITR is possible (WAL is archived).
    pub enabled: bool,
    /// What to do when it is not.
    pub advice: Option<String>,
}

/// Read the PITR status from the server settings and `pg_stat_archiver`.
pub fn pitr_status(c: &mut postgres::Client) -> Result<PitrStatus, EngineError> {
    let wal_level: String = c.query_one("SHOW wal_level", &[])?.get(0);
    let archive_mode: String = c.query_one("SHOW archive_mode", &[])?.get(0);
    let archive_command: String = c.query_one("SELECT coalesce(nullif(current_setting('archive_command', true), ''), current_setting('archive_library', true), '')", &[])?.get(0);
    let r = c.query_one(
        "SELECT last_archived_wal || ' at ' || last_archived_time::text, failed_count, last_failed_wal || ' at ' || last_failed_time::text FROM pg_stat_archiver",
        &[],
    )?;
    let enabled = wal_level != "minimal"
        && archive_mode != "off"
        && !archive_command.is_empty()
        && archive_command != "(disabled)";
    let advice = (!enabled).then(|| {
        "point-in-time recovery is not enabled: set wal_level = replica, archive_mode = on and an archive_command \
         (or use your provider's PITR) so a failed migration can be undone to the second"
            .to_string()
    });
    Ok(PitrStatus {
        wal_level,
        archive_mode,
        archive_command,
        last_archived: r.get(0),
        failed_count: r.get(1),
        last_failed: r.get(2),
        enabled,
        advice,
    })
}

/// Drop `migsafe_backup` capture tables older than `older_than` (by the capture time recorded
/// in their comment, else their version name is kept).
pub fn prune_captures(spec: &ConnSpec, older_than: Duration) -> Result<Vec<String>, EngineError> {
    let mut c = spec.connect()?;
    let rows = c.query(
        "SELECT c.relname::text, obj_description(c.oid, 'pg_class') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'migsafe_backup' AND c.relkind = 'r'",
        &[],
    )?;
    let now = chrono::Utc::now();
    let mut dropped = Vec::new();
    for r in rows {
        let name: String = r.get(0);
        let comment: Option<String> = r.get(1);
        let when = comment
            .as_deref()
            .and_then(|c| c.strip_prefix("captured "))
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t.split_whitespace().next().unwrap_or("")).ok());
        let old = when.is_some_and(|t| (now - t.with_timezone(&chrono::Utc)).to_std().unwrap_or_default() > older_than);
        if old {
            c.batch_execute(&format!("DROP TABLE migsafe_backup.{}", migsafe_sql::quote_ident(&name)))?;
            dropped.push(name);
        }
    }
    Ok(dropped)
}
