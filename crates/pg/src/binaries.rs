//! Finding PostgreSQL's server programs: `--pg-bin` / `PG_BIN`, else `pg_config --bindir`,
//! else the newest `/usr/lib/postgresql/*/bin`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::PgError;

/// A folder of PostgreSQL server binaries and the version they are.
#[derive(Debug, Clone)]
pub struct PgBinaries {
    /// The bin folder.
    pub bin: PathBuf,
    /// Major version, e.g. 15.
    pub major: u32,
    /// Full version string, e.g. `15.18`.
    pub version: String,
}

impl PgBinaries {
    /// Find server binaries: `explicit`, then `PG_BIN`, then `pg_config --bindir`, then the
    /// newest `/usr/lib/postgresql/*/bin`.
    pub fn find(explicit: Option<&Path>) -> Result<PgBinaries, PgError> {
        if let Some(dir) = explicit {
            return PgBinaries::at(dir);
        }
        if let Ok(dir) = std::env::var("PG_BIN") {
            if !dir.is_empty() {
                return PgBinaries::at(Path::new(&dir));
            }
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if out.status.success() && dir.join("postgres").is_file() {
                return PgBinaries::at(&dir);
            }
        }
        let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major = e.file_name().to_string_lossy().parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("postgres").is_file().then_some((major, bin))
            })
            .collect();
        found.sort();
        match found.pop() {
            Some((_, bin)) => PgBinaries::at(&bin),
            None => Err(PgError::NoBinaries(
                "set --pg-bin or PG_BIN to a folder with initdb and postgres, or install the server \
                 (apt-get install postgresql; `make test` and `make demo` do this for you)"
                    .into(),
            )),
        }
    }

    /// The binaries in `dir`.
    pub fn at(dir: &Path) -> Result<PgBinaries, PgError> {
        for prog in ["postgres", "initdb"] {
            if !dir.join(prog).is_file() {
                return Err(PgError::NoBinaries(format!("{} has no `{prog}`", dir.display())));
            }
        }
        let out = Command::new(dir.join("postgres"))
            .arg("--version")
            .output()
            .map_err(PgError::io(format!("running {}/postgres --version", dir.display())))?;
        if !out.status.success() {
            return Err(PgError::NoBinaries(format!(
                "{}/postgres --version failed: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let version = parse_version(&text)
            .ok_or_else(|| PgError::NoBinaries(format!("cannot read the version from `{}`", text.trim())))?;
        let major = version.split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
        Ok(PgBinaries { bin: dir.to_path_buf(), major, version })
    }

    /// Path of a program in this folder.
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }
}

/// `postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → `15.18`.
fn parse_version(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|w| w.trim_end_matches(|c: char| !c.is_ascii_digit()).to_string())
}

/// A client program (`pg_dump`, `pg_restore`, `psql`) of exactly `major`, or the reason why
/// none is found. pg_dump refuses servers newer than itself, so the major must match.
pub fn client_program(name: &str, major: u32, extra_dirs: &[PathBuf]) -> Result<PathBuf, PgError> {
    let mut candidates: Vec<PathBuf> = extra_dirs.iter().map(|d| d.join(name)).collect();
    if let Ok(dir) = std::env::var("PG_BIN") {
        candidates.push(Path::new(&dir).join(name));
    }
    candidates.push(PathBuf::from(format!("/usr/lib/postgresql/{major}/bin/{name}")));
    for c in &candidates {
        if c.is_file() {
            let out = Command::new(c).arg("--version").output();
            if let Ok(out) = out {
                let v = parse_version(&String::from_utf8_lossy(&out.stdout)).unwrap_or_default();
                if v.split('.').next() == Some(&major.to_string()) {
                    return Ok(c.clone());
                }
            }
        }
    }
    Err(PgError::NoBinaries(format!(
        "no {name} for PostgreSQL {major} (looked in {}); install postgresql-client-{major}",
        candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)").as_deref(), Some("15.18"));
        assert_eq!(parse_version("postgres (PostgreSQL) 18.4").as_deref(), Some("18.4"));
    }
}
