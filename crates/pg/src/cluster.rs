//! The throwaway PostgreSQL cluster: started from the machine's server binaries in a private
//! folder, on a Unix socket only, tuned for speed, and removed whatever way migsafe ends.
//!
//! Fast: an initdb'd data folder is cached per server version and copied (no initdb per run),
//! and databases are cloned from templates. Safe to abandon: a tiny guardian process holds the
//! read end of a pipe whose write end only this process has; when this process ends (normally,
//! Ctrl-C, panic or kill -9) the pipe closes and the guardian stops the server and deletes
//! the folder.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use postgres::Client;
use rand::Rng;

use crate::binaries::PgBinaries;
use crate::conn::ConnSpec;
use crate::quote_ident;
use crate::PgError;

/// Server settings for a throwaway cluster: durability off, no network, no background noise.
const SETTINGS: &[(&str, &str)] = &[
    ("listen_addresses", ""),
    ("port", "5432"),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("wal_level", "minimal"),
    ("max_wal_senders", "0"),
    ("max_wal_size", "4GB"),
    ("checkpoint_timeout", "1h"),
    ("autovacuum", "off"),
    ("max_connections", "200"),
    ("max_locks_per_transaction", "512"),
    ("shared_buffers", "256MB"),
    ("jit", "off"),
    // Shared memory segments in the data folder, so they go with it even after kill -9.
    ("dynamic_shared_memory_type", "mmap"),
    ("timezone", "UTC"),
    ("log_min_messages", "warning"),
    ("logging_collector", "off"),
];

/// Extra settings for a throwaway cluster (tests of TCP and TLS connections use them).
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Server settings added after (and so overriding) the defaults, e.g. `listen_addresses`.
    pub settings: Vec<(String, String)>,
    /// Files written into the cluster folder before the server starts (name, contents, mode),
    /// owned by the server's user: certificates, keys, an `hba_file`. Settings may refer to
    /// them as `{dir}/name`: `{dir}` in a setting's value is replaced by the cluster folder.
    pub files: Vec<(String, Vec<u8>, u32)>,
}

/// A running throwaway cluster.
pub struct Cluster {
    bins: PgBinaries,
    dir: PathBuf,
    port: u16,
    user: ServerUser,
    options: ClusterOptions,
    server: Option<Child>,
    guardian: Option<Child>,
    keep: bool,
    /// How long the start took (copy + server ready), for benchmarks and reports.
    pub start_time: Duration,
    /// Whether the cached template data folder was reused.
    pub warm: bool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cluster(PostgreSQL {} at {})", self.bins.version, self.dir.display())
    }
}

/// The OS user the server runs as: ourselves, or `postgres` when we are root (PostgreSQL
/// refuses to run as root).
#[derive(Debug, Clone, Copy)]
struct ServerUser {
    uid: u32,
    gid: u32,
    switch: bool,
}

fn server_user() -> Result<ServerUser, PgError> {
    let me = nix::unistd::geteuid();
    if !me.is_root() {
        return Ok(ServerUser { uid: me.as_raw(), gid: nix::unistd::getegid().as_raw(), switch: false });
    }
    let user = nix::unistd::User::from_name("postgres")
        .map_err(|e| PgError::Start(format!("looking up the postgres user: {e}")))?
        .ok_or_else(|| {
            PgError::Start(
                "migsafe runs as root, and PostgreSQL refuses to run as root; create a `postgres` system user \
                 (apt-get install postgresql does) or run migsafe as another user"
                    .into(),
            )
        })?;
    Ok(ServerUser { uid: user.uid.as_raw(), gid: user.gid.as_raw(), switch: true })
}

/// Where migsafe caches template data folders and fetched binaries: readable by the server
/// user (so not under /root when we are root).
pub fn cache_dir() -> PathBuf {
    if let Ok(c) = std::env::var("MIGSAFE_CACHE") {
        if !c.is_empty() {
            return PathBuf::from(c);
        }
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/cache/migsafe");
    }
    match std::env::var("XDG_CACHE_HOME") {
        Ok(x) if !x.is_empty() => PathBuf::from(x).join("migsafe"),
        _ => PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into())).join(".cache/migsafe"),
    }
}

/// Where throwaway clusters live: `MIGSAFE_CLUSTER_DIR`, else memory-backed `/dev/shm` when it
/// has room (creating the hundreds of files of a database is ten times faster there than on
/// a disk), else the temporary folder.
pub fn run_root() -> PathBuf {
    if let Ok(d) = std::env::var("MIGSAFE_CLUSTER_DIR") {
        if !d.is_empty() {
            return PathBuf::from(d);
        }
    }
    let shm = Path::new("/dev/shm");
    if let Ok(st) = nix::sys::statvfs::statvfs(shm) {
        let free = st.blocks_available() * st.fragment_size();
        if free > 2 << 30 && nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK).is_ok() {
            return shm.to_path_buf();
        }
    }
    std::env::temp_dir()
}

fn random_suffix() -> String {
    let mut rng = rand::thread_rng();
    (0..10).map(|_| char::from(b'a' + rng.gen_range(0..26))).collect()
}

fn command_as(user: ServerUser, program: &Path) -> Command {
    let mut cmd = Command::new(program);
    if user.switch {
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd.env_remove("PGDATA").env("LC_ALL", "C").env("TZ", "UTC");
    cmd
}

fn chown_tree(path: &Path, user: ServerUser) -> Result<(), PgError> {
    if !user.switch {
        return Ok(());
    }
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
        .map_err(PgError::io(format!("chown {}", path.display())))?;
    if path.is_dir() {
        for e in std::fs::read_dir(path).map_err(PgError::io(format!("reading {}", path.display())))? {
            let e = e.map_err(PgError::io("reading a directory"))?;
            let p = e.path();
            if e.file_type().map(|t| t.is_symlink()).unwrap_or(false) {
                continue;
            }
            chown_tree(&p, user)?;
        }
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), PgError> {
    std::fs::create_dir(to).map_err(PgError::io(format!("creating {}", to.display())))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).map_err(PgError::io("chmod"))?;
    for e in std::fs::read_dir(from).map_err(PgError::io(format!("reading {}", from.display())))? {
        let e = e.map_err(PgError::io("reading the template"))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().map_err(PgError::io("reading the template"))?;
        if ft.is_dir() {
            copy_tree(&src, &dst)?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&src).map_err(PgError::io("reading a symlink"))?;
            std::os::unix::fs::symlink(target, &dst).map_err(PgError::io("copying a symlink"))?;
        } else {
            std::fs::copy(&src, &dst).map_err(PgError::io(format!("copying {}", src.display())))?;
        }
    }
    Ok(())
}

/// Make sure an initdb'd data folder for these binaries exists in the cache; return it and
/// whether it was already there.
fn template_data(bins: &PgBinaries, user: ServerUser) -> Result<(PathBuf, bool), PgError> {
    let root = cache_dir().join("templates");
    let key: String =
        bins.bin.display().to_string().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let dest = root.join(format!("pg-{}-{}", bins.version, key));
    if dest.join("PG_VERSION").is_file() {
        return Ok((dest, true));
    }
    std::fs::create_dir_all(&root).map_err(PgError::io(format!("creating {}", root.display())))?;
    for dir in [root.parent().unwrap_or(&root), root.as_path()] {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    }
    let staging = root.join(format!(".initdb-{}", random_suffix()));
    std::fs::create_dir(&staging).map_err(PgError::io(format!("creating {}", staging.display())))?;
    chown_tree(&staging, user)?;
    let out = command_as(user, &bins.program("initdb"))
        .args(["-D"])
        .arg(&staging)
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        .current_dir(&root)
        .output()
        .map_err(PgError::io("running initdb"))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(PgError::Command {
            what: "initdb".into(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    // Another process may have won the race; either folder is as good.
    if std::fs::rename(&staging, &dest).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    Ok((dest, false))
}

impl Cluster {
    /// Start a throwaway cluster from `bins`.
    pub fn start(bins: &PgBinaries) -> Result<Cluster, PgError> {
        Cluster::start_with(bins, &ClusterOptions::default())
    }

    /// Start a throwaway cluster with extra settings and files.
    pub fn start_with(bins: &PgBinaries, options: &ClusterOptions) -> Result<Cluster, PgError> {
        let t0 = Instant::now();
        let user = server_user()?;
        let (template, warm) = template_data(bins, user)?;
        let dir = run_root().join(format!("migsafe-{}", random_suffix()));
        std::fs::create_dir(&dir).map_err(PgError::io(format!("creating {}", dir.display())))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(PgError::io("chmod"))?;
        let data = dir.join("data");
        let prepared = copy_tree(&template, &data)
            .and_then(|_| {
                for (name, contents, mode) in &options.files {
                    let path = dir.join(name);
                    std::fs::write(&path, contents).map_err(PgError::io(format!("writing {}", path.display())))?;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
                        .map_err(PgError::io("chmod"))?;
                }
                Ok(())
            })
            .and_then(|_| chown_tree(&dir, user));
        if let Err(e) = prepared {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let port =
            options.settings.iter().rev().find(|(k, _)| k == "port").and_then(|(_, v)| v.parse().ok()).unwrap_or(5432);
        let keep = std::env::var("MIGSAFE_KEEP_CLUSTER").is_ok_and(|v| v == "1");
        let mut cluster = Cluster {
            bins: bins.clone(),
            dir,
            port,
            user,
            options: options.clone(),
            server: None,
            guardian: None,
            keep,
            start_time: Duration::ZERO,
            warm,
        };
        cluster.spawn()?;
        cluster.wait_ready()?;
        cluster.start_time = t0.elapsed();
        if keep {
            eprintln!(
                "migsafe: keeping the throwaway cluster at {} ({})",
                cluster.dir.display(),
                cluster.conn("postgres")
            );
        }
        Ok(cluster)
    }

    /// Start the server on the cluster's folder, with a guardian that stops it and removes the
    /// folder when this process goes away.
    fn spawn(&mut self) -> Result<(), PgError> {
        let dir = &self.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .map_err(PgError::io("creating the server log"))?;
        let _ = chown_tree(&dir.join("server.log"), self.user);
        let mut cmd = command_as(self.user, &self.bins.program("postgres"));
        cmd.arg("-D").arg(dir.join("data")).arg("-k").arg(dir);
        for (k, v) in SETTINGS {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        for (k, v) in &self.options.settings {
            cmd.arg("-c").arg(format!("{k}={}", v.replace("{dir}", &dir.display().to_string())));
        }
        let server = cmd
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(PgError::io("server log"))?)
            .stderr(log)
            // Own process group: a Ctrl-C in the terminal reaches migsafe, not the server.
            .process_group(0)
            .spawn()
            .map_err(PgError::io("starting postgres"))?;
        if !self.keep {
            self.guardian = Some(spawn_guardian(server.id(), dir)?);
        }
        self.server = Some(server);
        Ok(())
    }

    /// Stop the server as `pg_ctl stop -m immediate` does (a crash: no checkpoint, clients cut
    /// off), keeping its folder, so [`Cluster::restart`] brings it back with crash recovery.
    /// For fault tests: several clusters stand in for several hosts.
    pub fn stop_immediate(&mut self) -> Result<(), PgError> {
        let status = command_as(self.user, &self.bins.program("pg_ctl"))
            .arg("stop")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(PgError::io("running pg_ctl stop"))?;
        if let Some(mut s) = self.server.take() {
            if !status.success() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(s.id() as i32),
                    nix::sys::signal::Signal::SIGQUIT,
                );
            }
            let _ = s.wait();
        }
        // The guardian would remove the folder on EOF: end it without letting it.
        if let Some(mut g) = self.guardian.take() {
            let _ = g.kill();
            let _ = g.wait();
        }
        Ok(())
    }

    /// Start the server again after [`Cluster::stop_immediate`].
    pub fn restart(&mut self) -> Result<(), PgError> {
        if self.server.is_some() {
            return Ok(());
        }
        self.spawn()?;
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), PgError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(server) = self.server.as_mut() {
                if let Ok(Some(status)) = server.try_wait() {
                    return Err(PgError::Start(format!("postgres exited with {status}: {}", self.log_tail())));
                }
            }
            if self.dir.join(format!(".s.PGSQL.{}", self.port)).exists() {
                if let Ok(mut c) = self.conn("postgres").connect() {
                    if c.simple_query("SELECT 1").is_ok() {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(PgError::Start(format!("not ready after 60 s: {}", self.log_tail())));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The last lines of the server log.
    pub fn log_tail(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("server.log")) {
            let _ = f.read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// Connection settings for database `db` of this cluster (superuser `postgres`).
    pub fn conn(&self, db: &str) -> ConnSpec {
        let mut config = postgres::Config::new();
        config.host_path(&self.dir).port(self.port).user("postgres").dbname(db).application_name("migsafe");
        config.connect_timeout(Duration::from_secs(10));
        ConnSpec::local(config)
    }

    /// The port the server listens on (its Unix socket name, and TCP when enabled).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A superuser connection to the `postgres` database.
    pub fn admin(&self) -> Result<Client, PgError> {
        self.conn("postgres").connect()
    }

    /// The server binaries it runs.
    pub fn binaries(&self) -> &PgBinaries {
        &self.bins
    }

    /// Its private folder (data, socket, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Create database `name`, cloned from `template` when given (milliseconds, not an initdb).
    pub fn create_database(&self, name: &str, template: Option<&str>) -> Result<(), PgError> {
        let mut admin = self.admin()?;
        create_database(&mut admin, name, template, self.bins.major)
    }

    /// Drop database `name` (forcing out leftover sessions).
    pub fn drop_database(&self, name: &str) -> Result<(), PgError> {
        let mut admin = self.admin()?;
        drop_database(&mut admin, name, self.bins.major)
    }
}

/// `CREATE DATABASE name [TEMPLATE t]` on any server. From PostgreSQL 15 the file-copy
/// strategy is asked for: for the small databases migsafe clones it is about twice as fast as
/// writing the copy through the WAL.
pub fn create_database(admin: &mut Client, name: &str, template: Option<&str>, major: u32) -> Result<(), PgError> {
    let strategy = if major >= 15 { " STRATEGY FILE_COPY" } else { "" };
    let sql = match template {
        Some(t) => format!("CREATE DATABASE {} TEMPLATE {}{strategy}", quote_ident(name), quote_ident(t)),
        None => format!("CREATE DATABASE {} TEMPLATE template0{strategy}", quote_ident(name)),
    };
    admin.batch_execute(&sql)?;
    Ok(())
}

/// `DROP DATABASE IF EXISTS name`, forcing out sessions (PostgreSQL 13+ has WITH (FORCE)).
pub fn drop_database(admin: &mut Client, name: &str, major: u32) -> Result<(), PgError> {
    let force = if major >= 13 { " WITH (FORCE)" } else { "" };
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {}{force}", quote_ident(name)))?;
    Ok(())
}

fn spawn_guardian(pid: u32, dir: &Path) -> Result<Child, PgError> {
    // Waits for EOF on stdin (this process gone or the cluster dropped), then stops the
    // server immediately and removes the folder.
    const SCRIPT: &str = r#"read _unused
kill -QUIT "$1" 2>/dev/null
i=0
alive() { kill -0 "$1" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
while alive "$1" && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i+1)); done
kill -KILL "$1" 2>/dev/null
rm -rf "$2"
"#;
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("migsafe-guardian")
        .arg(pid.to_string())
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(PgError::io("starting the cluster guardian"))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Some(mut s) = self.server.take() {
            // Immediate shutdown: nothing in a throwaway cluster needs to survive.
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.id() as i32), nix::sys::signal::Signal::SIGQUIT);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(s.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = s.kill();
            let _ = s.wait();
        }
        if let Some(mut g) = self.guardian.take() {
            drop(g.stdin.take());
            let _ = g.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
