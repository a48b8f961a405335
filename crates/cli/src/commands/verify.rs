//! `migsafe verify`: data-integrity checks on any database.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

use migsafe_engine::config::parse_duration;
use migsafe_engine::verify::{verify, VerifyOptions, VerifyReport};

use super::common::{database, engine_failure};
use crate::render::{self, paint, style, xml_escape};
use crate::{CmdResult, Exit, Failure};

/// Output formats of `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    /// Readable list.
    Human,
    /// `{"ok":bool,"checks":[{"check","object","ok","count","sample","detail"}]}`.
    Json,
    /// JUnit XML.
    Junit,
}

/// Arguments of `migsafe verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Database URL (default: DATABASE_URL, PG* variables).
    #[arg(long)]
    pub db: Option<String>,
    /// Folder of SQL files that must return no rows.
    #[arg(long)]
    pub checks: Option<PathBuf>,
    /// Record row counts (and with --fingerprints, data hashes) to this file.
    #[arg(long)]
    pub save_baseline: Option<PathBuf>,
    /// Compare row counts with this baseline.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// Allowed row count change against the baseline: `5%` or a number of rows.
    #[arg(long, default_value = "0")]
    pub tolerance: String,
    /// With --save-baseline: also fingerprint every table.
    #[arg(long)]
    pub fingerprints: bool,
    /// Parallel connections.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// statement_timeout for each check.
    #[arg(long, default_value = "5m")]
    pub statement_timeout: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: VerifyFormat,
}

/// Run `migsafe verify`.
pub fn run(a: VerifyArgs) -> CmdResult {
    let spec = database(a.db.as_deref())?;
    let opts = VerifyOptions {
        checks: a.checks,
        baseline: a.baseline,
        save_baseline: a.save_baseline,
        fingerprints: a.fingerprints,
        tolerance: a.tolerance.parse().map_err(|e| Failure::input(anyhow::anyhow!("--tolerance: {e}")))?,
        jobs: a.jobs,
        statement_timeout: parse_duration(&a.statement_timeout).map_err(|e| Failure::input(anyhow::anyhow!(e)))?,
    };
    let report = verify(&spec, &opts).map_err(engine_failure)?;
    let text = match a.format {
        VerifyFormat::Json => render::json(&report),
        VerifyFormat::Human => human(&report),
        VerifyFormat::Junit => junit(&report),
    };
    render::emit(&text, None).map_err(Failure::environment)?;
    Ok(if report.ok { Exit::Ok } else { Exit::Findings })
}

fn human(r: &VerifyReport) -> String {
    let mut s = format!("{} {}\n", paint(style::BOLD, "verify"), r.database);
    let mut inventory = 0;
    for c in &r.checks {
        if matches!(c.check.as_str(), "unique_constraints" | "not_null_columns") {
            inventory += 1;
            continue;
        }
        let mark = if !c.ok {
            paint(style::ERROR, "✗")
        } else if c.warning {
            paint(style::WARNING, "!")
        } else {
            paint(style::OK, "✓")
        };
        s.push_str(&format!("{mark} {:<22} {}  {}\n", c.check, c.object, c.detail));
        if !c.sample.is_empty() {
            s.push_str(&format!("    e.g. {}\n", c.sample.join(" | ")));
        }
    }
    let failed = r.checks.iter().filter(|c| !c.ok).count();
    s.push_str(&format!(
        "{} checks, {} failed ({} constraint inventory entries in --format json)\n",
        r.checks.len() - inventory,
        failed,
        inventory
    ));
    s
}

fn junit(r: &VerifyReport) -> String {
    let failures = r.checks.iter().filter(|c| !c.ok).count();
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"migsafe verify\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">\n",
        r.checks.len()
    );
    for c in &r.checks {
        s.push_str(&format!(
            "    <testcase classname=\"migsafe.verify.{}\" name=\"{}\">",
            xml_escape(&c.check),
            xml_escape(&c.object)
        ));
        if !c.ok {
            s.push_str(&format!(
                "<failure message=\"{}\">{}</failure>",
                xml_escape(&c.detail),
                xml_escape(&c.sample.join("\n"))
            ));
        }
        s.push_str("</testcase>\n");
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}
