//! TLS connections as libpq users configure them (`sslmode`, `sslrootcert`, `sslcert`/`sslkey`),
//! against a real server that accepts only TLS on TCP, with certificates made for the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use migsafe_pg::cluster::ClusterOptions;
use migsafe_pg::conn::Env;
use migsafe_pg::testing::cluster;
use migsafe_pg::{Cluster, ConnSpec};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

struct Pki {
    ca_pem: String,
    server_pem: String,
    server_key: String,
    client_pem: String,
    client_key: String,
    other_ca_pem: String,
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(names: Vec<String>, cn: &str, issuer: &Issuer<'static, KeyPair>) -> (String, String) {
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> Pki {
    let (ca_pem, issuer) = ca("migsafe test CA");
    let (server_pem, server_key) = leaf(vec!["localhost".into()], "localhost", &issuer);
    let (client_pem, client_key) = leaf(vec![], "certuser", &issuer);
    let (other_ca_pem, _) = ca("some other CA");
    Pki { ca_pem, server_pem, server_key, client_pem, client_key, other_ca_pem }
}

struct Fixture {
    cluster: Cluster,
    files: tempfile::TempDir,
    port: u16,
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }
}

/// One TLS-only cluster for this file's tests.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let pki = pki();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let hba = "local all all trust\n\
                   hostssl all certuser 127.0.0.1/32 cert\n\
                   hostssl all all 127.0.0.1/32 trust\n\
                   hostnossl all all 0.0.0.0/0 reject\n\
                   hostnossl all all ::/0 reject\n";
        let options = ClusterOptions {
            settings: [
                ("listen_addresses", "127.0.0.1".to_string()),
                ("port", port.to_string()),
                ("ssl", "on".into()),
                ("ssl_cert_file", "{dir}/server.crt".into()),
                ("ssl_key_file", "{dir}/server.key".into()),
                ("ssl_ca_file", "{dir}/ca.crt".into()),
                ("hba_file", "{dir}/hba.conf".into()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            files: vec![
                ("server.crt".into(), pki.server_pem.clone().into_bytes(), 0o644),
                ("server.key".into(), pki.server_key.clone().into_bytes(), 0o600),
                ("ca.crt".into(), pki.ca_pem.clone().into_bytes(), 0o644),
                ("hba.conf".into(), hba.as_bytes().to_vec(), 0o600),
            ],
        };
        let bins = cluster().binaries().clone();
        let c = Cluster::start_with(&bins, &options).unwrap_or_else(|e| panic!("TLS cluster: {e}"));
        c.admin().unwrap().batch_execute("CREATE ROLE certuser LOGIN").unwrap();
        let files = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str, mode: u32| {
            let p = files.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
        };
        write("ca.pem", &pki.ca_pem, 0o644);
        write("other-ca.pem", &pki.other_ca_pem, 0o644);
        write("client.crt", &pki.client_pem, 0o644);
        write("client.key", &pki.client_key, 0o600);
        Fixture { cluster: c, files, port }
    })
}

/// Connection settings parsed with no PG* environment and a home without ~/.postgresql.
fn spec(s: &str) -> ConnSpec {
    ConnSpec::parse_with(s, &Env::from_pairs(&[("HOME", "/nonexistent")])).unwrap()
}

/// Whether the session runs over TLS, as the server sees it.
fn server_sees_tls(s: &ConnSpec) -> Result<bool, String> {
    let mut c = s.connect().map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))?;
    Ok(c.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).unwrap().get(0))
}

#[test]
fn require_and_the_default_prefer_encrypt_and_disable_is_refused_by_the_server() {
    let f = fixture();
    let url = |q: &str| format!("postgresql://postgres@127.0.0.1:{}/postgres{q}", f.port);
    assert_eq!(server_sees_tls(&spec(&url("?sslmode=require"))), Ok(true));
    assert_eq!(server_sees_tls(&spec(&url(""))), Ok(true), "libpq's default, prefer, uses TLS when offered");
    let kv = format!("host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=require", f.port);
    assert_eq!(server_sees_tls(&spec(&kv)), Ok(true));
    let e = server_sees_tls(&spec(&url("?sslmode=disable"))).unwrap_err();
    assert!(e.contains("no encryption"), "the server's pg_hba.conf refuses plain connections: {e}");
    // The redacted form says which mode was asked for.
    assert!(spec(&url("?sslmode=require")).redacted().ends_with("?sslmode=require"));
}

#[test]
fn verify_full_checks_the_chain_and_the_host_name() {
    let f = fixture();
    let ca = f.path("ca.pem");
    let other = f.path("other-ca.pem");
    let url = |host: &str, mode: &str, root: &Path| {
        format!("postgresql://postgres@{host}:{}/postgres?sslmode={mode}&sslrootcert={}", f.port, root.display())
    };
    assert_eq!(server_sees_tls(&spec(&url("localhost", "verify-full", &ca))), Ok(true));
    let e = server_sees_tls(&spec(&url("localhost", "verify-full", &other))).unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "an unknown issuer is refused: {e}");
    // The certificate names localhost, not 127.0.0.1: verify-full refuses, verify-ca accepts.
    let e = server_sees_tls(&spec(&url("127.0.0.1", "verify-full", &ca))).unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    assert_eq!(server_sees_tls(&spec(&url("127.0.0.1", "verify-ca", &ca))), Ok(true));
    // libpq: require with a root certificate file verifies the chain.
    let e = server_sees_tls(&spec(&url("127.0.0.1", "require", &other))).unwrap_err();
    assert!(e.to_lowercase().contains("certificate"), "{e}");
    // Verification without any root certificate is refused with the way out.
    let e = spec(&format!("postgresql://postgres@localhost:{}/postgres?sslmode=verify-full", f.port))
        .connect()
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("sslrootcert"), "{e}");
}

#[test]
fn client_certificates_authenticate() {
    let f = fixture();
    let base = format!(
        "host=localhost port={} user=certuser dbname=postgres sslmode=verify-full sslrootcert='{}'",
        f.port,
        f.path("ca.pem").display()
    );
    let with_cert =
        format!("{base} sslcert='{}' sslkey='{}'", f.path("client.crt").display(), f.path("client.key").display());
    assert_eq!(server_sees_tls(&spec(&with_cert)), Ok(true));
    let e = server_sees_tls(&spec(&base)).unwrap_err();
    assert!(e.contains("certificate") || e.contains("certuser"), "no client certificate, no login: {e}");
    // The same settings from the environment, as PGSSL* variables.
    let env = Env::from_pairs(&[
        ("HOME", "/nonexistent"),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", f.path("ca.pem").to_str().unwrap()),
        ("PGSSLCERT", f.path("client.crt").to_str().unwrap()),
        ("PGSSLKEY", f.path("client.key").to_str().unwrap()),
    ]);
    let s = ConnSpec::parse_with(&format!("postgresql://certuser@localhost:{}/postgres", f.port), &env).unwrap();
    assert_eq!(server_sees_tls(&s), Ok(true));
}

#[test]
fn unix_sockets_ignore_sslmode_like_libpq() {
    let f = fixture();
    let s = spec(&format!(
        "host={} port={} user=postgres dbname=postgres sslmode=require",
        f.cluster.dir().display(),
        f.port
    ));
    assert_eq!(server_sees_tls(&s), Ok(false));
}

#[test]
fn command_line_tools_get_the_same_tls_settings() {
    // psql (libpq) gets host, port and user as flags and the TLS settings as PGSSL* variables.
    let f = fixture();
    let s = spec(&format!(
        "postgresql://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        f.port,
        f.path("ca.pem").display()
    ));
    let psql = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL client programs under /usr/lib/postgresql (scripts/setup.sh installs them)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin/psql")))
        .find(|p| p.is_file())
        .expect("a psql under /usr/lib/postgresql/*/bin");
    let (args, env) = s.tool_args();
    assert!(env.iter().any(|(k, v)| k == "PGSSLMODE" && v == "verify-full"), "{env:?}");
    let out = Command::new(&psql)
        .args(&args)
        .args(["--dbname", "postgres", "-XAtc", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"])
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t");
}
