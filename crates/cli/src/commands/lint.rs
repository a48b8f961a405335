//! `migsafe lint` and `migsafe rules`.

use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

use migsafe_engine::config::FailOn as ConfigFailOn;
use migsafe_engine::lint::{lint_each, lint_inputs, LintInput};
use migsafe_sql::lint::{LintOptions, Rule, Severity, DEFAULT_PG_VERSION};

use crate::render;
use crate::{CmdResult, Exit, Failure};

/// Output formats of `lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// Grouped by file, with source snippets (colour on a terminal).
    Human,
    /// The documented JSON report.
    Json,
    /// SARIF 2.1.0, for code-scanning UIs.
    Sarif,
    /// GitHub Actions workflow commands (annotations on the pull request).
    Github,
    /// JUnit XML, one test case per migration.
    Junit,
    /// Markdown, for a pull-request comment.
    Markdown,
}

/// Threshold for a failing exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Any finding.
    Info,
    /// Warnings and errors (default).
    Warning,
    /// Errors only.
    Error,
    /// Never fail on findings (syntax errors still exit 2).
    None,
}

/// Arguments of `migsafe lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Migration folders (linted as ordered sets) or single SQL files. Default: the current folder.
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: LintFormat,
    /// Lowest severity that makes the exit code 1 (default: `warning`, or `[lint] fail_on`).
    #[arg(long, value_enum)]
    pub fail_on: Option<FailOn>,
    /// PostgreSQL major version the migrations will run on (default 15, or `[lint] pg_version`).
    #[arg(long)]
    pub pg_version: Option<u32>,
    /// Switch a rule off (repeatable), on top of `[lint] disable`.
    #[arg(long = "disable", value_name = "RULE")]
    pub disable: Vec<Rule>,
    /// Write the report to this file instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Read table sizes (and the server version) from this database, so risk uses real sizes.
    #[arg(long)]
    pub db: Option<String>,
}

/// Run `migsafe lint`.
pub fn run(args: LintArgs) -> CmdResult {
    let paths = if args.paths.is_empty() { vec![PathBuf::from(".")] } else { args.paths.clone() };
    let inputs: Vec<LintInput> =
        paths.iter().map(|p| LintInput::from_path(p)).collect::<Result<_, _>>().map_err(Failure::input)?;
    let config = inputs.iter().find_map(|i| match i {
        LintInput::Set(s) => Some(s.config.lint.clone()),
        LintInput::File(_) => None,
    });
    let mut opts = LintOptions {
        pg_version: args.pg_version.or(config.as_ref().and_then(|c| c.pg_version)).unwrap_or(DEFAULT_PG_VERSION),
        ..Default::default()
    };
    // Rule ids were parsed where they were read: the config's by serde, the command line's by clap.
    opts.disabled.extend(config.iter().flat_map(|c| c.disable.iter().copied()));
    opts.disabled.extend(args.disable.iter().copied());
    if let Some(url) = &args.db {
        let spec = migsafe_pg::ConnSpec::parse(url).map_err(Failure::input)?;
        let mut c = spec.connect().map_err(Failure::environment)?;
        let server = migsafe_engine::lint::server_options(&mut c).map_err(Failure::environment)?;
        if args.pg_version.is_none() {
            opts.pg_version = server.pg_version;
        }
        opts.time_zone = server.time_zone;
        opts.table_rows = migsafe_engine::lint::table_rows(&mut c).map_err(Failure::environment)?;
    }
    let fail_on = match args.fail_on {
        Some(f) => f,
        None => match config.as_ref().and_then(|c| c.fail_on) {
            Some(ConfigFailOn::Never) => FailOn::None,
            Some(ConfigFailOn::Severity(Severity::Info)) => FailOn::Info,
            Some(ConfigFailOn::Severity(Severity::Warning)) => FailOn::Warning,
            Some(ConfigFailOn::Severity(Severity::Error)) => FailOn::Error,
            None => FailOn::Warning,
        },
    };
    let threshold = match fail_on {
        FailOn::Info => Some(Severity::Info),
        FailOn::Warning => Some(Severity::Warning),
        FailOn::Error => Some(Severity::Error),
        FailOn::None => None,
    };
    let (has_errors, fails) = match args.format {
        // These three stream: each migration is printed as soon as it is linted.
        LintFormat::Human | LintFormat::Json | LintFormat::Github => {
            let mut out = render::Sink::open(args.output.as_deref()).map_err(Failure::environment)?;
            let mut totals = render::LintTotals::default();
            if args.format == LintFormat::Json {
                out.write("{\n  \"migrations\": [").map_err(Failure::environment)?;
            }
            let mut failed = None;
            lint_each(&inputs, &opts, &mut |m| {
                let text = match args.format {
                    LintFormat::Human => render::lint_human_migration(&m, threshold),
                    LintFormat::Json => render::lint_json_migration(&m, totals.migrations == 0),
                    _ => render::lint_github_migration(&m),
                };
                totals.add(&m, threshold);
                if let Err(e) = out.write(&text) {
                    failed.get_or_insert(e);
                }
            })
            .map_err(Failure::input)?;
            if let Some(e) = failed {
                return Err(Failure::environment(e));
            }
            match args.format {
                LintFormat::Json => out.write("\n  ]\n}\n").map_err(Failure::environment)?,
                LintFormat::Human => out.write(&render::lint_human_summary(&totals)).map_err(Failure::environment)?,
                _ => {}
            }
            out.finish().map_err(Failure::environment)?;
            (totals.syntax_errors > 0, totals.failing > 0)
        }
        _ => {
            let report = lint_inputs(&inputs, &opts).map_err(Failure::input)?;
            let text = match args.format {
                LintFormat::Sarif => render::lint_sarif(&report),
                LintFormat::Junit => render::lint_junit(&report, threshold),
                _ => render::lint_markdown(&report),
            };
            render::emit(&text, args.output.as_deref()).map_err(Failure::environment)?;
            let syntax = report.errors().next().is_some();
            let fails = threshold.is_some_and(|t| report.fails(t));
            (syntax, fails)
        }
    };
    if has_errors {
        return Ok(Exit::Input);
    }
    Ok(if fails { Exit::Findings } else { Exit::Ok })
}

/// Run `migsafe rules`.
pub fn rules() -> CmdResult {
    let mut out = anstream::stdout();
    for r in Rule::ALL {
        writeln!(out, "{:<40} {:<8} {}", r.id(), r.severity().as_str(), r.summary()).map_err(Failure::environment)?;
    }
    Ok(Exit::Ok)
}
