//! Connection settings the way libpq users expect them: a URL or key=value string, the PG*
//! environment variables for whatever the string leaves out, `.pgpass` for the password, and a
//! redacted form for every log and report (passwords are never printed).

use postgres::config::Host;
use postgres::{Client, Config, NoTls};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::tls::{self, SslMode, TlsSettings};
use crate::PgError;

/// Where and how to connect, fully resolved.
#[derive(Clone)]
pub struct ConnSpec {
    config: Config,
    tls: TlsSettings,
}

impl fmt::Debug for ConnSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnSpec({})", self.redacted())
    }
}

impl fmt::Display for ConnSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The environment a connection string is completed from (PG* variables, home folder), taken
/// as a value so tests can supply their own.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    /// The process environment.
    pub fn process() -> Env {
        Env { vars: std::env::vars().collect() }
    }

    /// A given set of variables.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Env {
        Env { vars: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    /// A variable, when set and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }
}

impl ConnSpec {
    /// Parse a libpq connection URL (`postgresql://…`, Unix sockets as `?host=/path`) or a
    /// key=value string, completed from the process environment and `.pgpass`.
    pub fn parse(s: &str) -> Result<ConnSpec, PgError> {
        ConnSpec::parse_with(s, &Env::process())
    }

    /// `DATABASE_URL`, else the PG* variables alone (libpq's behaviour with an empty string).
    pub fn from_env() -> Result<ConnSpec, PgError> {
        let env = Env::process();
        match env.get("DATABASE_URL") {
            Some(url) => ConnSpec::parse_with(url, &env),
            None => ConnSpec::parse_with("", &env),
        }
    }

    /// True when the environment names a database (`DATABASE_URL` or `PGDATABASE`/`PGHOST`).
    pub fn env_names_database() -> bool {
        let env = Env::process();
        env.get("DATABASE_URL").is_some() || env.get("PGDATABASE").is_some() || env.get("PGHOST").is_some()
    }

    /// Parse with an explicit environment.
    pub fn parse_with(s: &str, env: &Env) -> Result<ConnSpec, PgError> {
        let s = s.trim();
        // The driver does not know verify-ca/verify-full or the certificate keys: take them out.
        let (rest, ssl) = tls::extract(s, tls::KEYS)?;
        let mut config = if rest.is_empty() {
            Config::new()
        } else {
            Config::from_str(&rest).map_err(|e| PgError::BadConnString(redact_raw(s), e.to_string()))?
        };
        let home = env.get("HOME").map(PathBuf::from);
        let tls = TlsSettings::resolve(&ssl, |k| env.get(k).map(str::to_string), home)?;
        if config.get_hosts().is_empty() {
            match env.get("PGHOST") {
                Some(h) => {
                    for host in h.split(',') {
                        config.host(host);
                    }
                }
                None => {
                    config.host(default_socket_dir());
                }
            }
        }
        if config.get_ports().is_empty() {
            let port = match env.get("PGPORT") {
                Some(p) => p.parse().map_err(|_| PgError::BadConnString(format!("PGPORT={p}"), "not a port".into()))?,
                None => 5432,
            };
            config.port(port);
        }
        if config.get_user().is_none() {
            let user = env.get("PGUSER").map(str::to_string).or_else(|| env.get("USER").map(str::to_string));
            config.user(&user.unwrap_or_else(|| "postgres".into()));
        }
        if config.get_dbname().is_none() {
            let db = env
                .get("PGDATABASE")
                .map(str::to_string)
                .unwrap_or_else(|| config.get_user().unwrap_or("postgres").to_string());
            config.dbname(&db);
        }
        if config.get_application_name().is_none() {
            config.application_name(env.get("PGAPPNAME").unwrap_or("migsafe"));
        }
        if config.get_options().is_none() {
            if let Some(o) = env.get("PGOPTIONS") {
                config.options(o);
            }
        }
        if config.get_connect_timeout().is_none() {
            let secs = env.get("PGCONNECT_TIMEOUT").and_then(|t| t.parse().ok()).unwrap_or(10);
            config.connect_timeout(Duration::from_secs(secs));
        }
        if config.get_password().is_none() {
            if let Some(p) = env.get("PGPASSWORD") {
                config.password(p);
            } else if let Some(p) = pgpass_lookup(&config, env) {
                config.password(p);
            }
        }
        Ok(ConnSpec { config, tls })
    }

    /// A Unix-socket connection without TLS (throwaway clusters): no environment consulted.
    pub fn local(config: Config) -> ConnSpec {
        ConnSpec { config, tls: TlsSettings::disabled() }
    }

    /// Whether every host is a Unix socket (libpq ignores sslmode there: no TLS on sockets).
    fn unix_only(&self) -> bool {
        self.config.get_hosts().iter().all(|h| matches!(h, Host::Unix(_)))
    }

    /// The TLS settings in effect.
    pub fn tls(&self) -> &TlsSettings {
        &self.tls
    }

    /// Connect, with TLS as `sslmode` asks.
    pub fn connect(&self) -> Result<Client, PgError> {
        let fail = |e| PgError::Connect(self.redacted(), e);
        if self.tls.mode == SslMode::Disable || self.unix_only() {
            let mut config = self.config.clone();
            config.ssl_mode(postgres::config::SslMode::Disable);
            return config.connect(NoTls).map_err(fail);
        }
        let mut config = self.config.clone();
        config.ssl_mode(if self.tls.mode.requires_tls() {
            postgres::config::SslMode::Require
        } else {
            postgres::config::SslMode::Prefer
        });
        config.connect(self.tls.connector()?).map_err(fail)
    }

    /// Cancel the query running on a connection made from these settings.
    pub fn cancel(&self, token: &postgres::CancelToken) -> Result<(), PgError> {
        if self.tls.mode == SslMode::Disable || self.unix_only() {
            return token.cancel_query(NoTls).map_err(PgError::Db);
        }
        token.cancel_query(self.tls.connector()?).map_err(PgError::Db)
    }

    /// The same server and credentials, another database.
    pub fn with_dbname(&self, db: &str) -> ConnSpec {
        let mut config = self.config.clone();
        config.dbname(db);
        ConnSpec { config, tls: self.tls.clone() }
    }

    /// The same settings, every session starting with `search_path` set to `schema` and then
    /// `public` (a tenant schema of `migsafe fleet --schemas`: unqualified names in the
    /// migrations are the tenant's, extensions in `public` still resolve).
    pub fn with_search_path(&self, schema: &str) -> ConnSpec {
        let mut config = self.config.clone();
        let ident = format!("\"{}\"", schema.replace('"', "\"\""));
        // The startup `options` are split at spaces; a backslash escapes the next character.
        let value = format!("{ident}, public").replace('\\', "\\\\").replace(' ', "\\ ");
        let mut options = config.get_options().map(|o| format!("{o} ")).unwrap_or_default();
        options.push_str(&format!("-c search_path={value}"));
        config.options(&options);
        ConnSpec { config, tls: self.tls.clone() }
    }

    /// The server this connects to, as `host:port` (a socket folder for Unix sockets): targets
    /// that share it share its CPU, locks and I/O.
    pub fn server(&self) -> String {
        let host = self.config.get_hosts().first().map(host_text).unwrap_or_default();
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }

    /// The same settings with another application_name (shown in pg_stat_activity).
    pub fn with_application_name(&self, name: &str) -> ConnSpec {
        let mut config = self.config.clone();
        config.application_name(name);
        ConnSpec { config, tls: self.tls.clone() }
    }

    /// Database name.
    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or("")
    }

    /// User name.
    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("")
    }

    /// The underlying driver configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// libpq-style arguments for command-line tools (pg_dump, psql): host, port, user and
    /// database as flags, and the password only as an environment variable, never on a
    /// command line where `ps` would show it.
    pub fn tool_args(&self) -> (Vec<String>, Vec<(String, String)>) {
        let mut args = vec![];
        if let Some(h) = self.config.get_hosts().first() {
            args.push("--host".into());
            args.push(host_text(h));
        }
        if let Some(p) = self.config.get_ports().first() {
            args.push("--port".into());
            args.push(p.to_string());
        }
        args.push("--username".into());
        args.push(self.user().to_string());
        let mut env = vec![("PGAPPNAME".to_string(), "migsafe".to_string())];
        if let Some(p) = self.config.get_password() {
            env.push(("PGPASSWORD".into(), String::from_utf8_lossy(p).into_owned()));
        }
        if !self.unix_only() {
            env.extend(self.tls.tool_env());
        }
        (args, env)
    }

    /// `postgresql://user@host:port/db` with no password, whatever was given.
    pub fn redacted(&self) -> String {
        let user = self.user();
        let hosts = self.config.get_hosts();
        let ports = self.config.get_ports();
        let port = ports.first().copied().unwrap_or(5432);
        let db = self.dbname();
        let pw = if self.config.get_password().is_some() { ":***" } else { "" };
        let ssl = if self.tls.explicit && !self.unix_only() {
            format!("sslmode={}", self.tls.mode.as_str())
        } else {
            String::new()
        };
        let join = |q: &str| if ssl.is_empty() { String::new() } else { format!("{q}{ssl}") };
        match hosts.first() {
            Some(Host::Unix(p)) => {
                format!("postgresql://{user}{pw}@/{db}?host={}&port={port}{}", p.display(), join("&"))
            }
            Some(Host::Tcp(h)) => format!("postgresql://{user}{pw}@{h}:{port}/{db}{}", join("?")),
            None => format!("postgresql://{user}{pw}@/{db}{}", join("?")),
        }
    }
}

fn host_text(h: &Host) -> String {
    match h {
        Host::Tcp(s) => s.clone(),
        Host::Unix(p) => p.display().to_string(),
    }
}

/// libpq's compiled-in socket folder on Debian.
fn default_socket_dir() -> &'static str {
    "/var/run/postgresql"
}

/// Hide every password in free text (an error message, a command's output): the password of
/// each `scheme://user:password@` URL and each `password=` value.
pub fn redact_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest.find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'').unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            let cred = &rest[..at];
            match cred.split_once(':') {
                Some((user, _)) => out.push_str(&format!("{user}:***")),
                None => out.push_str(cred),
            }
            rest = &rest[at..];
        }
    }
    out.push_str(rest);
    let mut masked = String::with_capacity(out.len());
    let mut tail = out.as_str();
    while let Some(i) = tail.find("password=") {
        masked.push_str(&tail[..i + 9]);
        tail = &tail[i + 9..];
        let end = tail.find(|c: char| c.is_whitespace() || c == '&' || c == '"').unwrap_or(tail.len());
        masked.push_str("***");
        tail = &tail[end..];
    }
    masked.push_str(tail);
    masked
}

/// Hide a password in a raw connection string that failed to parse (for the error message).
pub fn redact_raw(s: &str) -> String {
    // URL form: scheme://user:password@…
    if let Some(rest) = s.split_once("://") {
        let (scheme, after) = rest;
        if let Some((cred, tail)) = after.split_once('@') {
            let user = cred.split(':').next().unwrap_or("");
            let masked = if cred.contains(':') { format!("{user}:***") } else { user.to_string() };
            return redact_password_params(&format!("{scheme}://{masked}@{tail}"));
        }
        return redact_password_params(s);
    }
    // key=value form: quoted values may hold spaces.
    match tls::pairs(s) {
        Ok(pairs) => pairs
            .iter()
            .map(|(k, _, raw)| if k == "password" { "password=***".to_string() } else { raw.to_string() })
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) if s.contains("password") => {
            "(a connection string that does not parse; not shown, it may hold a password)".into()
        }
        Err(_) => s.to_string(),
    }
}

fn redact_password_params(s: &str) -> String {
    let Some((base, query)) = s.split_once('?') else { return s.to_string() };
    let q: Vec<String> = query
        .split('&')
        .map(|p| if p.to_ascii_lowercase().starts_with("password=") { "password=***".into() } else { p.to_string() })
        .collect();
    format!("{base}?{}", q.join("&"))
}

/// Find the password in `.pgpass` (or `PGPASSFILE`) the way libpq does: first matching line,
/// `*` wildcards, `\:` escapes, and only from a file not readable by group or others.
fn pgpass_lookup(config: &Config, env: &Env) -> Option<String> {
    let path: PathBuf = match env.get("PGPASSFILE") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env.get("HOME")?).join(".pgpass"),
    };
    let text = read_private(&path)?;
    let host = config.get_hosts().first().map(|h| match h {
        Host::Tcp(s) => s.clone(),
        Host::Unix(_) => "localhost".into(),
    })?;
    let port = config.get_ports().first().copied().unwrap_or(5432).to_string();
    let db = config.get_dbname().unwrap_or("");
    let user = config.get_user().unwrap_or("");
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_pgpass(line);
        if fields.len() < 5 {
            continue;
        }
        let m = |pat: &str, val: &str| pat == "*" || pat == val;
        if m(&fields[0], &host) && m(&fields[1], &port) && m(&fields[2], db) && m(&fields[3], user) {
            return Some(fields[4].clone());
        }
    }
    None
}

#[cfg(unix)]
fn read_private(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        // libpq ignores such a file too ("has group or world access").
        return None;
    }
    std::fs::read_to_string(path).ok()
}

fn split_pgpass(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().unwrap().push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_text_hides_every_password() {
        let t = redact_text(
            "failed on postgresql://app:s3cr3t@db1:5432/t1 and host=x password=hunter2 user=u, see http://x/y",
        );
        assert!(!t.contains("s3cr3t") && !t.contains("hunter2"), "{t}");
        assert!(t.contains("postgresql://app:***@db1:5432/t1"), "{t}");
        assert!(t.contains("see http://x/y"), "{t}");
    }

    use super::*;

    #[test]
    fn url_and_key_value_forms() {
        let env = Env::from_pairs(&[("USER", "me")]);
        let c = ConnSpec::parse_with("postgresql://app:s3cret@db.internal:6543/shop", &env).unwrap();
        assert_eq!(c.redacted(), "postgresql://app:***@db.internal:6543/shop");
        assert!(!format!("{c} {c:?}").contains("s3cret"));
        let c = ConnSpec::parse_with("host=/run/pg dbname=app user=me password=hunter2", &env).unwrap();
        assert_eq!(c.redacted(), "postgresql://me:***@/app?host=/run/pg&port=5432");
        let c = ConnSpec::parse_with("postgresql:///app?host=/run/pg&user=me", &env).unwrap();
        assert_eq!(c.dbname(), "app");
        assert!(c.redacted().contains("host=/run/pg"), "{}", c.redacted());
    }

    #[test]
    fn pg_variables_fill_what_the_string_leaves_out() {
        let env = Env::from_pairs(&[("PGHOST", "/tmp/sock"), ("PGPORT", "5555"), ("PGUSER", "u"), ("PGDATABASE", "d")]);
        let c = ConnSpec::parse_with("", &env).unwrap();
        assert_eq!(c.redacted(), "postgresql://u@/d?host=/tmp/sock&port=5555");
        let c = ConnSpec::parse_with("dbname=other", &env).unwrap();
        assert_eq!(c.dbname(), "other");
        assert_eq!(c.user(), "u");
    }

    #[test]
    fn pgpass_is_honoured_only_when_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("migsafe-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("pgpass");
        std::fs::write(&f, "# comment\nother:*:*:*:nope\ndb.internal:5432:*:app:pa\\:ss\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let env = Env::from_pairs(&[("PGPASSFILE", f.to_str().unwrap())]);
        let c = ConnSpec::parse_with("postgresql://app@db.internal/shop", &env).unwrap();
        assert_eq!(c.config().get_password(), Some(&b"pa:ss"[..]));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = ConnSpec::parse_with("postgresql://app@db.internal/shop", &env).unwrap();
        assert_eq!(c.config().get_password(), None);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bad_strings_are_redacted_in_errors() {
        let e = ConnSpec::parse_with("postgresql://u:topsecret@host:notaport/db", &Env::default()).unwrap_err();
        let msg = e.to_string();
        assert!(!msg.contains("topsecret"), "{msg}");
        assert_eq!(redact_raw("host=x password=abc"), "host=x password=***");
        assert_eq!(redact_raw("postgres://h/db?password=abc&x=1"), "postgres://h/db?password=***&x=1");
    }
}
