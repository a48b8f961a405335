//! TLS the way libpq users configure it: `sslmode` (`disable`, `allow`, `prefer`, `require`,
//! `verify-ca`, `verify-full`), `sslrootcert` (a PEM file, or `system` for the platform's
//! trusted roots), `sslcert`/`sslkey` for client certificates, from the connection string or
//! `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`; defaults from `~/.postgresql/`.
//!
//! The driver (`tokio-postgres`) knows only disable/prefer/require and rejects the other keys,
//! so they are taken out of the connection string here ([`extract`]) and turned into a rustls
//! configuration with the verification each mode promises: `prefer` and `require` encrypt
//! without checking the certificate (unless a root certificate file exists, when `require`
//! behaves as `verify-ca`, as in libpq); `verify-ca` checks the chain; `verify-full` checks the
//! chain and that the certificate names the host.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::PgError;

/// The connection-string keys handled here rather than by the driver.
pub const KEYS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey"];

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain connections only.
    Disable,
    /// Plain first; TLS when the server insists (migsafe treats it as `prefer`).
    Allow,
    /// TLS when the server offers it, certificate not checked (libpq's default).
    Prefer,
    /// TLS required, certificate not checked (checked as `verify-ca` when a root file exists).
    Require,
    /// TLS required, certificate chain checked against the root certificates.
    VerifyCa,
    /// TLS required, chain checked and the certificate must name the host.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<SslMode, PgError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(PgError::BadConnString(
                    format!("sslmode={other}"),
                    "sslmode must be disable, allow, prefer, require, verify-ca or verify-full".into(),
                ))
            }
        })
    }

    /// The name libpq uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a connection without TLS is refused.
    pub fn requires_tls(self) -> bool {
        matches!(self, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// Where the trusted root certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// A PEM file.
    File(PathBuf),
    /// The platform's trusted roots (`sslrootcert=system`).
    System,
}

/// Resolved TLS settings of a connection.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Mode, after libpq's rules (a `require` with a root file present is `verify-ca`).
    pub mode: SslMode,
    /// Trusted roots, when verifying.
    pub roots: Option<RootCerts>,
    /// Client certificate and key, when both exist.
    pub client: Option<(PathBuf, PathBuf)>,
    /// Whether the mode was set explicitly (shown in the redacted connection string).
    pub explicit: bool,
    connector: Connector,
}

/// TLS settings that cannot be used. (Clone: the outcome of building a connector is kept and
/// shared by clones of the settings, so the causes are kept as their text.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the protocol versions.
    #[error("{0}")]
    Protocol(String),
    /// verify-ca / verify-full without root certificates.
    #[error(
        "sslmode={0} needs root certificates to check the server's certificate: give sslrootcert=FILE \
         (or PGSSLROOTCERT), use the system's trusted roots with sslrootcert=system, or put them in \
         ~/.postgresql/root.crt"
    )]
    NoRoots(&'static str),
    /// `sslrootcert=system` on a system with no trusted roots.
    #[error("sslrootcert=system, but the system has no trusted root certificates")]
    NoSystemRoots,
    /// The root certificates were read but cannot be used.
    #[error("the root certificates cannot be used: {0}")]
    UnusableRoots(String),
    /// A root certificate rustls rejected.
    #[error("{path}: {detail}")]
    BadRoot {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// A certificate file that is not there.
    #[error("certificate file {0} does not exist")]
    MissingFile(String),
    /// A certificate file that cannot be read or parsed.
    #[error("cannot read certificates from {path}: {detail}")]
    UnreadableCerts {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// A certificate file with no PEM certificate in it.
    #[error("{0} holds no PEM certificate")]
    NoPem(String),
    /// The client key cannot be read.
    #[error("cannot read the client key {path}: {detail}")]
    ClientKey {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
    /// The client certificate and key cannot be used together.
    #[error("client certificate: {0}")]
    ClientCert(String),
}

/// The rustls connector, built on first use and shared by clones of the settings.
#[derive(Clone, Default)]
struct Connector(Arc<OnceLock<Result<MakeRustlsConnect, TlsError>>>);

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() { "Connector(built)" } else { "Connector(not built)" })
    }
}

impl TlsSettings {
    /// Resolve from the keys taken out of the connection string, then the environment, then
    /// libpq's default files under `~/.postgresql/`.
    pub fn resolve(
        given: &[(String, String)],
        env: impl Fn(&str) -> Option<String>,
        home: Option<PathBuf>,
    ) -> Result<TlsSettings, PgError> {
        let get = |key: &str, var: &str| -> Option<String> {
            given.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone()).or_else(|| env(var))
        };
        let mode_text = get("sslmode", "PGSSLMODE");
        let explicit = mode_text.is_some();
        let mut mode = SslMode::parse(mode_text.as_deref().unwrap_or("prefer"))?;
        let pgdir = home.map(|h| h.join(".postgresql"));
        let roots = match get("sslrootcert", "PGSSLROOTCERT") {
            Some(s) if s == "system" => Some(RootCerts::System),
            Some(s) => Some(RootCerts::File(PathBuf::from(s))),
            None => pgdir.as_ref().map(|d| d.join("root.crt")).filter(|p| p.exists()).map(RootCerts::File),
        };
        if mode == SslMode::Require && roots.is_some() {
            mode = SslMode::VerifyCa;
        }
        if roots == Some(RootCerts::System) && mode != SslMode::Disable {
            // libpq: sslrootcert=system implies full verification.
            mode = SslMode::VerifyFull;
        }
        let cert = get("sslcert", "PGSSLCERT")
            .map(PathBuf::from)
            .or_else(|| pgdir.as_ref().map(|d| d.join("postgresql.crt")))
            .filter(|p| p.exists());
        let key = get("sslkey", "PGSSLKEY")
            .map(PathBuf::from)
            .or_else(|| pgdir.as_ref().map(|d| d.join("postgresql.key")))
            .filter(|p| p.exists());
        let client = cert.zip(key);
        Ok(TlsSettings { mode, roots, client, explicit, connector: Connector::default() })
    }

    /// No TLS at all (throwaway clusters on Unix sockets).
    pub fn disabled() -> TlsSettings {
        TlsSettings {
            mode: SslMode::Disable,
            roots: None,
            client: None,
            explicit: false,
            connector: Connector::default(),
        }
    }

    /// The rustls connector for this mode, built once per connection settings.
    pub fn connector(&self) -> Result<MakeRustlsConnect, PgError> {
        self.connector.0.get_or_init(|| self.build().map(MakeRustlsConnect::new)).clone().map_err(PgError::Tls)
    }

    /// Environment variables that give command-line tools (pg_dump, psql) the same settings.
    pub fn tool_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("PGSSLMODE".to_string(), self.mode.as_str().to_string())];
        match &self.roots {
            Some(RootCerts::File(p)) => env.push(("PGSSLROOTCERT".into(), p.display().to_string())),
            Some(RootCerts::System) => env.push(("PGSSLROOTCERT".into(), "system".into())),
            None => {}
        }
        if let Some((c, k)) = &self.client {
            env.push(("PGSSLCERT".into(), c.display().to_string()));
            env.push(("PGSSLKEY".into(), k.display().to_string()));
        }
        env
    }

    fn build(&self) -> Result<ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Protocol(e.to_string()))?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.mode {
            SslMode::Disable | SslMode::Allow | SslMode::Prefer | SslMode::Require => {
                Arc::new(EncryptOnly { provider: provider.clone() })
            }
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = Arc::new(self.root_store()?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| TlsError::UnusableRoots(e.to_string()))?;
                if self.mode == SslMode::VerifyFull {
                    webpki
                } else {
                    Arc::new(ChainOnly { inner: webpki })
                }
            }
        };
        let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
        match &self.client {
            None => Ok(builder.with_no_client_auth()),
            Some((cert, key)) => {
                let certs = read_certs(cert)?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| TlsError::ClientKey { path: key.display().to_string(), detail: e.to_string() })?;
                builder.with_client_auth_cert(certs, key).map_err(|e| TlsError::ClientCert(e.to_string()))
            }
        }
    }

    fn root_store(&self) -> Result<RootCertStore, TlsError> {
        let mut store = RootCertStore::empty();
        match &self.roots {
            None => return Err(TlsError::NoRoots(self.mode.as_str())),
            Some(RootCerts::File(path)) => {
                for cert in read_certs(path)? {
                    store
                        .add(cert)
                        .map_err(|e| TlsError::BadRoot { path: path.display().to_string(), detail: e.to_string() })?;
                }
            }
            Some(RootCerts::System) => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(TlsError::NoSystemRoots);
                }
            }
        }
        Ok(store)
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    if !path.exists() {
        return Err(TlsError::MissingFile(path.display().to_string()));
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::UnreadableCerts { path: path.display().to_string(), detail: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::NoPem(path.display().to_string()));
    }
    Ok(certs)
}

/// `prefer` / `require`: the connection is encrypted, the certificate is not checked (libpq's
/// semantics); the handshake signatures still are.
#[derive(Debug)]
struct EncryptOnly {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name in it is not compared with the host.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Take `keys` out of a libpq connection string (URL query parameters or key=value pairs),
/// returning the rest, unchanged otherwise, and the values taken (percent-decoded or unquoted).
pub fn extract(s: &str, keys: &[&str]) -> Result<(String, Vec<(String, String)>), PgError> {
    let mut taken = Vec::new();
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        let Some((base, query)) = s.split_once('?') else { return Ok((s.to_string(), taken)) };
        let mut kept = Vec::new();
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let key = percent_decode(k);
            if keys.contains(&key.as_str()) {
                taken.push((key, percent_decode(v)));
            } else {
                kept.push(part);
            }
        }
        let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        return Ok((rest, taken));
    }
    let mut rest = String::new();
    for (key, value, raw) in key_values(s)? {
        if keys.contains(&key.as_str()) {
            taken.push((key, value));
        } else {
            if !rest.is_empty() {
                rest.push(' ');
            }
            rest.push_str(raw);
        }
    }
    Ok((rest, taken))
}

/// The pairs of a key=value connection string, with each pair's source text. Values may be
/// single-quoted with `\'` and `\\` escapes, as libpq allows.
pub fn key_values(s: &str) -> Result<Vec<(String, String, &str)>, PgError> {
    pairs(s).map_err(|why| PgError::BadConnString(crate::conn::redact_raw(s), why.to_string()))
}

/// Why a key=value connection string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyValueError {
    /// A key with no `=` after it.
    #[error("missing \"=\" after \"{0}\"")]
    MissingEquals(String),
    /// A quoted value that never closes.
    #[error("unterminated quoted value")]
    Unterminated,
}

/// [`key_values`] with the reason of a failure (used by redaction itself).
pub(crate) fn pairs(s: &str) -> Result<Vec<(String, String, &str)>, KeyValueError> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return Ok(out);
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = s[start..i].to_string();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            return Err(KeyValueError::MissingEquals(key));
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            let mut closed = false;
            while i < b.len() {
                match b[i] {
                    b'\\' if i + 1 < b.len() => {
                        value.push(b[i + 1] as char);
                        i += 2;
                    }
                    b'\'' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    _ => {
                        let ch = s[i..].chars().next().unwrap_or(' ');
                        value.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            if !closed {
                return Err(KeyValueError::Unterminated);
            }
        } else {
            let vstart = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            value = s[vstart..i].replace("\\\\", "\\");
        }
        out.push((key, value, &s[start..i]));
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn ssl_keys_are_taken_out_of_both_forms() {
        let (rest, taken) = extract(
            "postgresql://u:p@db:5432/app?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem",
            KEYS,
        )
        .unwrap();
        assert_eq!(rest, "postgresql://u:p@db:5432/app?application_name=x");
        assert_eq!(taken, vec![("sslmode".into(), "verify-full".into()), ("sslrootcert".into(), "/tmp/ca.pem".into())]);
        let (rest, taken) =
            extract("host=db sslmode = require password='a b\\'c' sslrootcert='/x y/ca.pem'", KEYS).unwrap();
        assert_eq!(rest, "host=db password='a b\\'c'");
        assert_eq!(taken, vec![("sslmode".into(), "require".into()), ("sslrootcert".into(), "/x y/ca.pem".into())]);
        let (rest, taken) = extract("postgresql://db/app", KEYS).unwrap();
        assert_eq!((rest.as_str(), taken.len()), ("postgresql://db/app", 0));
        assert!(extract("host=db password='open", KEYS).is_err());
        assert!(extract("host", KEYS).is_err());
    }

    #[test]
    fn modes_follow_libpq() {
        let s = |pairs: &[(&str, &str)]| {
            let given: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            TlsSettings::resolve(&given, none, None)
        };
        assert_eq!(s(&[]).unwrap().mode, SslMode::Prefer);
        assert_eq!(s(&[("sslmode", "require")]).unwrap().mode, SslMode::Require);
        assert_eq!(s(&[("sslmode", "require"), ("sslrootcert", "/ca.pem")]).unwrap().mode, SslMode::VerifyCa);
        assert_eq!(s(&[("sslrootcert", "system")]).unwrap().mode, SslMode::VerifyFull);
        assert!(s(&[("sslmode", "maybe")]).is_err());
        let from_env = TlsSettings::resolve(&[], |v| (v == "PGSSLMODE").then(|| "disable".to_string()), None).unwrap();
        assert_eq!(from_env.mode, SslMode::Disable);
        // Verification without roots is refused with the way out, not silently weakened.
        let e = s(&[("sslmode", "verify-full")]).unwrap().connector().err().unwrap().to_string();
        assert!(e.contains("sslrootcert"), "{e}");
        let e = s(&[("sslmode", "verify-ca"), ("sslrootcert", "/nonexistent/ca.pem")])
            .unwrap()
            .connector()
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
