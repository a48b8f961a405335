//! The guide's rollback decision tree: after a migration, is the application healthy, is its
//! error rate under the threshold, did query latency degrade by more than half? Each
//! observation is classified into the guide's incident severities, which decide whether and
//! when to roll back.

use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

use postgres::Client;

/// The probes configured.
#[derive(Debug, Clone, Default)]
pub struct Probes {
    /// URL that must answer 2xx.
    pub health_url: Option<String>,
    /// Command that must exit 0.
    pub health_cmd: Option<String>,
    /// Command printing the error rate in percent.
    pub error_rate_cmd: Option<String>,
    /// Error-rate threshold in percent (the guide: 5).
    pub error_rate_threshold: f64,
    /// Command printing a latency figure (any unit, compared before/after).
    pub latency_cmd: Option<String>,
    /// Tables the migrations touched (for pg_stat_statements).
    pub tables: Vec<String>,
    /// Environment given to the probe commands (a fleet names the wave's targets).
    pub env: Vec<(String, String)>,
}

/// The guide's incident severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum IncidentSeverity {
    /// Critical: outage or corruption. Roll back immediately.
    P0,
    /// High: major functionality broken. Roll back after the assessment window.
    P1,
    /// Medium: degraded. Roll back after the assessment window.
    P2,
    /// Low: cosmetic. No rollback.
    P3,
}

impl IncidentSeverity {
    /// Roll back at once (P0), after assessment (P1/P2), or not at all (P3).
    pub fn action(self) -> &'static str {
        match self {
            IncidentSeverity::P0 => "roll back immediately",
            IncidentSeverity::P1 | IncidentSeverity::P2 => "roll back after the assessment window unless it recovers",
            IncidentSeverity::P3 => "no rollback; track it",
        }
    }
}

/// One observation that went wrong.
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    /// What was observed.
    pub what: String,
    /// Its severity.
    pub severity: IncidentSeverity,
}

/// Latency baseline taken before the migration.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    latency_cmd: Option<f64>,
    /// queryid → (calls, total ms) of statements touching the tables.
    statements: HashMap<i64, (i64, f64)>,
}

use super::hooks::sh_output_with;

fn number(text: &str) -> Option<f64> {
    text.split_whitespace().find_map(|w| w.trim_end_matches('%').parse::<f64>().ok())
}

/// Why a health URL is not healthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// Not a plain http:// URL.
    #[error("{0}: only http:// URLs (use --health-cmd 'curl -fsS …' for https)")]
    NotHttp(String),
    /// Its address could not be resolved, reached, or written to.
    #[error("{url}: {source}")]
    Network {
        /// The URL.
        url: String,
        /// Why.
        source: std::io::Error,
    },
    /// The name resolved to no address.
    #[error("{0}: no address")]
    NoAddress(String),
    /// It answered something other than 2xx (0: nothing readable).
    #[error("{url} answered {}", if *code == 0 { "nothing".to_string() } else { code.to_string() })]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status code.
        code: u16,
    },
}

/// `GET url` must answer 2xx (plain HTTP; use --health-cmd with curl for anything fancier).
fn http_ok(url: &str) -> Result<(), HealthError> {
    use std::io::{Read, Write};
    let network = |source: std::io::Error| HealthError::Network { url: url.to_string(), source };
    let rest = url.strip_prefix("http://").ok_or_else(|| HealthError::NotHttp(url.to_string()))?;
    let (hostport, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let addr = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:80") };
    let sock = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .map_err(network)?
        .next()
        .ok_or_else(|| HealthError::NoAddress(url.to_string()))?;
    let mut s = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(5)).map_err(network)?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nUser-Agent: migsafe\r\n\r\n").map_err(network)?;
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let code: u16 = buf.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(HealthError::Status { url: url.to_string(), code })
    }
}

fn statement_stats(c: &mut Client, tables: &[String]) -> HashMap<i64, (i64, f64)> {
    let has: bool =
        c.query_one("SELECT to_regclass('pg_stat_statements') IS NOT NULL", &[]).map(|r| r.get(0)).unwrap_or(false);
    if !has || tables.is_empty() {
        return HashMap::new();
    }
    let names: Vec<String> =
        tables.iter().map(|t| t.rsplit('.').next().unwrap_or(t).trim_matches('"').to_string()).collect();
    c.query(
        "SELECT queryid, calls, total_exec_time FROM pg_stat_statements WHERE queryid IS NOT NULL \
         AND EXISTS (SELECT 1 FROM unnest($1::text[]) t WHERE query ILIKE '%' || t || '%') AND query NOT ILIKE '%migsafe%'",
        &[&names],
    )
    .map(|rows| rows.iter().map(|r| (r.get::<_, i64>(0), (r.get::<_, i64>(1), r.get::<_, f64>(2)))).collect())
    .unwrap_or_default()
}

impl Probes {
    /// Run a probe command with this probe's environment; what it printed.
    fn sh(&self, cmd: &str) -> Result<String, super::CommandError> {
        sh_output_with(cmd, &self.env)
    }

    /// Anything to watch?
    pub fn any(&self) -> bool {
        self.health_url.is_some()
            || self.health_cmd.is_some()
            || self.error_rate_cmd.is_some()
            || self.latency_cmd.is_some()
    }

    /// Measure before the migration.
    pub fn baseline(&self, c: &mut Client) -> Baseline {
        Baseline {
            latency_cmd: self.latency_cmd.as_deref().and_then(|cmd| self.sh(cmd).ok()).and_then(|t| number(&t)),
            statements: statement_stats(c, &self.tables),
        }
    }

    /// Look once; the problems found.
    pub fn observe(&self, c: &mut Client, base: &Baseline) -> Vec<Observation> {
        let mut out = self.observe_app();
        self.observe_latency(c, base, &mut out);
        out
    }

    /// Look once at what the application says (health URL and command, error rate), without a
    /// database or a baseline: a fleet between waves.
    pub fn observe_app(&self) -> Vec<Observation> {
        let mut out = Vec::new();
        if let Some(url) = &self.health_url {
            if let Err(e) = http_ok(url) {
                out.push(Observation { what: format!("health check failed: {e}"), severity: IncidentSeverity::P0 });
            }
        }
        if let Some(cmd) = &self.health_cmd {
            if let Err(e) = self.sh(cmd) {
                out.push(Observation { what: format!("health command failed: {e}"), severity: IncidentSeverity::P0 });
            }
        }
        if let Some(cmd) = &self.error_rate_cmd {
            match self.sh(cmd).map(|t| number(&t)) {
                Ok(Some(rate)) if rate > self.error_rate_threshold => out.push(Observation {
                    what: format!("error rate {rate}% is above the {}% threshold", self.error_rate_threshold),
                    severity: IncidentSeverity::P1,
                }),
                Ok(Some(_)) => {}
                Ok(None) => {
                    out.push(Observation { what: format!("`{cmd}` printed no number"), severity: IncidentSeverity::P3 })
                }
                Err(e) => out.push(Observation {
                    what: format!("error-rate probe failed: {e}"),
                    severity: IncidentSeverity::P1,
                }),
            }
        }
        out
    }

    /// Latency against the baseline, from the latency command and pg_stat_statements.
    fn observe_latency(&self, c: &mut Client, base: &Baseline, out: &mut Vec<Observation>) {
        if let (Some(cmd), Some(before)) = (&self.latency_cmd, base.latency_cmd) {
            if let Some(now) = self.sh(cmd).ok().and_then(|t| number(&t)) {
                if before > 0.0 && now > before * 1.5 {
                    out.push(Observation {
                        what: format!(
                            "latency {now} is {:.0}% above the {before} measured before the migration",
                            (now / before - 1.0) * 100.0
                        ),
                        severity: IncidentSeverity::P2,
                    });
                }
            }
        }
        if !base.statements.is_empty() {
            let now = statement_stats(c, &self.tables);
            let (mut calls_before, mut ms_before, mut calls_after, mut ms_after) = (0i64, 0f64, 0i64, 0f64);
            for (q, (calls, total)) in &now {
                let (c0, t0) = base.statements.get(q).copied().unwrap_or((0, 0.0));
                calls_before += c0;
                ms_before += t0;
                calls_after += calls - c0;
                ms_after += total - t0;
            }
            if calls_before > 0 && calls_after >= 10 {
                let (m0, m1) = (ms_before / calls_before as f64, ms_after / calls_after as f64);
                if m1 > m0 * 1.5 {
                    out.push(Observation {
                        what: format!("queries on the migrated tables take {m1:.2} ms on average, up from {m0:.2} ms (pg_stat_statements)"),
                        severity: IncidentSeverity::P2,
                    });
                }
            }
        }
    }
}
