//! `migsafe.toml`: project settings. Every key is optional; unknown keys are errors, so a
//! typo never silently turns a safety setting off.

use serde::Deserialize;
use std::path::{Path, PathBuf};

use crate::source::{Layout, SourceError};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Migration layout; detected when absent.
    pub layout: Option<Layout>,
    /// Folder of the migrations, relative to the file.
    pub dir: Option<PathBuf>,
    /// `[lint]`.
    #[serde(default)]
    pub lint: LintConfig,
    /// `[apply]`.
    #[serde(default)]
    pub apply: ApplyConfig,
    /// `[backup]`.
    #[serde(default)]
    pub backup: BackupConfig,
    /// `[rehearse]`.
    #[serde(default)]
    pub rehearse: RehearseConfig,
    /// `[session]`.
    #[serde(default)]
    pub session: SessionConfig,
}

/// `[session]`: what the migrations expect their session to hold, as the project's own runner
/// sets it (Lemmy's sets `lemmy.protocol_and_hostname`, which its migrations read with
/// `current_setting`). Every session migsafe runs migrations in gets them: `apply` and
/// `rollback` with `SET`, scratch databases (rehearse, rollback generate) with `ALTER DATABASE
/// … SET`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// Parameter name → value, e.g. `"lemmy.protocol_and_hostname" = "https://example.com"`.
    #[serde(default)]
    pub settings: std::collections::BTreeMap<String, String>,
}

impl SessionConfig {
    /// `SET [LOCAL] name = 'value'` for each setting, `;`-separated (empty when none).
    pub fn set_sql(&self, local: bool) -> String {
        let scope = if local { "LOCAL " } else { "" };
        self.settings
            .iter()
            .map(|(k, v)| format!("SET {scope}{k} = {}", migsafe_sql::quote_literal(v)))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The lowest severity that fails a lint run, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    /// Findings of this severity or worse fail it.
    Severity(migsafe_sql::lint::Severity),
    /// Findings never fail it (syntax errors still do).
    Never,
}

impl<'de> Deserialize<'de> for FailOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.to_ascii_lowercase().as_str() {
            "none" => Ok(FailOn::Never),
            other => other.parse().map(FailOn::Severity).map_err(serde::de::Error::custom),
        }
    }
}

/// `[lint]` settings, checked when the file is read (an unknown rule or severity is an error
/// there, for every command).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LintConfig {
    /// Lowest severity that fails the run (`info`, `warning`, `error`, or `none`).
    pub fail_on: Option<FailOn>,
    /// Rules switched off, by id.
    #[serde(default)]
    pub disable: Vec<migsafe_sql::lint::Rule>,
    /// PostgreSQL major version to lint for.
    pub pg_version: Option<u32>,
}

/// `[apply]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyConfig {
    /// lock_timeout per attempt, e.g. `2s`.
    pub lock_timeout: Option<String>,
    /// statement_timeout, e.g. `15min`.
    pub statement_timeout: Option<String>,
    /// Retries after a lock timeout.
    pub lock_retries: Option<u32>,
    /// Command run before applying (maintenance mode on).
    pub pre_apply: Option<String>,
    /// Command run after applying (maintenance mode off).
    pub post_apply: Option<String>,
    /// Health URL that must answer 2xx.
    pub health_url: Option<String>,
    /// Health command that must exit 0.
    pub health_cmd: Option<String>,
    /// Command printing the error rate in percent.
    pub error_rate_cmd: Option<String>,
    /// Error rate (percent) above which apply rolls back.
    pub error_rate_threshold: Option<f64>,
    /// Command printing a latency figure to compare before and after.
    pub latency_cmd: Option<String>,
    /// Monitoring window after apply, e.g. `10m`.
    pub watch: Option<String>,
    /// Wait until no other client sessions remain before applying.
    pub wait_for_sessions: Option<bool>,
}

/// `[backup]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Folder for dumps.
    pub dir: Option<PathBuf>,
    /// Keep at most this many.
    pub keep: Option<usize>,
    /// Delete older than this, e.g. `30d`.
    pub max_age: Option<String>,
}

/// `[rehearse]` settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RehearseConfig {
    /// Synthetic rows per table.
    pub rows: Option<u64>,
    /// Time budget per migration, e.g. `30s`.
    pub budget: Option<String>,
    /// Folder of SQL checks that must return no rows.
    pub checks: Option<PathBuf>,
    /// Command that must exit 0 ("the application works").
    pub check_cmd: Option<String>,
}

/// A text that is no duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadDuration {
    /// It does not start with a number.
    #[error("`{0}` is not a duration (examples: 500ms, 30s, 10m, 1h, 30d)")]
    NotANumber(String),
    /// The unit after the number is unknown.
    #[error("`{text}`: unknown unit `{unit}` (use ms, s, m, h or d)")]
    UnknownUnit {
        /// The whole text.
        text: String,
        /// The unit given.
        unit: String,
    },
}

/// Parse a duration like `500ms`, `30s`, `10m`, `1h`, `30d` (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, BadDuration> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| BadDuration::NotANumber(text.to_string()))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" | "sec" | "secs" => n,
        "m" | "min" | "mins" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        other => return Err(BadDuration::UnknownUnit { text: text.to_string(), unit: other.to_string() }),
    };
    Ok(std::time::Duration::from_secs_f64(secs))
}

impl Config {
    /// Read `migsafe.toml` from `dir`, if there is one.
    pub fn load(dir: &Path) -> Result<Option<(Config, PathBuf)>, SourceError> {
        let path = dir.join("migsafe.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SourceError::Unreadable { path, source: e }),
        };
        let config: Config =
            toml::from_str(&text).map_err(|e| SourceError::BadConfig { path: path.clone(), message: e.to_string() })?;
        // Names go into SQL as they are: only parameter-name characters, a dot for custom ones.
        for name in config.session.settings.keys() {
            let ok = name.split('.').all(|part| {
                part.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            if !ok {
                return Err(SourceError::BadConfig {
                    path: path.clone(),
                    message: format!("[session] settings: {name:?} is not a parameter name (letters, digits, _ and .)"),
                });
            }
        }
        Ok(Some((config, path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_settings_become_set_statements_and_names_are_checked() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("migsafe.toml"), "[session]\nsettings = { \"app.url\" = \"it's\" }\n").unwrap();
        let (c, _) = Config::load(d.path()).unwrap().unwrap();
        assert_eq!(c.session.set_sql(false), "SET app.url = 'it''s'");
        assert_eq!(c.session.set_sql(true), "SET LOCAL app.url = 'it''s'");
        std::fs::write(d.path().join("migsafe.toml"), "[session]\nsettings = { \"x; DROP TABLE t\" = \"1\" }\n")
            .unwrap();
        let e = Config::load(d.path()).unwrap_err().to_string();
        assert!(e.contains("not a parameter name"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap().as_secs(), 30);
        assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
        assert_eq!(parse_duration("10m").unwrap().as_secs(), 600);
        assert_eq!(parse_duration("2").unwrap().as_secs(), 2);
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn parses_every_section_and_rejects_typos() {
        let c: Config = toml::from_str(
            "layout = \"golang-migrate\"\ndir = \"db\"\n[lint]\nfail_on = \"error\"\ndisable = [\"prefer-text\"]\n\
             [apply]\nlock_timeout = \"3s\"\nlock_retries = 5\n[backup]\nkeep = 3\n[rehearse]\nbudget = \"20s\"\n",
        )
        .unwrap();
        assert_eq!(c.layout, Some(Layout::GolangMigrate));
        assert_eq!(c.lint.disable, vec!["prefer-text"]);
        assert_eq!(c.apply.lock_retries, Some(5));
        assert!(toml::from_str::<Config>("[lint]\nfail_onn = \"error\"").is_err());
    }

    #[test]
    fn lint_settings_are_checked_when_read() {
        let c: Config = toml::from_str("[lint]\nfail_on = \"None\"\ndisable = [\"drop-column\"]").unwrap();
        assert_eq!(c.lint.fail_on, Some(FailOn::Never));
        assert_eq!(c.lint.disable, vec![migsafe_sql::lint::Rule::DropColumn]);
        let c: Config = toml::from_str("[lint]\nfail_on = \"warn\"").unwrap();
        assert_eq!(c.lint.fail_on, Some(FailOn::Severity(migsafe_sql::lint::Severity::Warning)));
        let bad = toml::from_str::<Config>("[lint]\ndisable = [\"no-such-rule\"]").unwrap_err().to_string();
        assert!(bad.contains("unknown rule `no-such-rule`"), "{bad}");
        let bad = toml::from_str::<Config>("[lint]\nfail_on = \"sometimes\"").unwrap_err().to_string();
        assert!(bad.contains("unknown severity"), "{bad}");
    }
}
