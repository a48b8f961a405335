//! The guide's maintenance steps around an apply: the `pre_apply` / `post_apply` commands
//! (maintenance mode on and off) and waiting for the application's sessions to drain.

use postgres::Client;
use std::time::{Duration, Instant};

use crate::EngineError;

/// The name of this machine, for the history's `host`.
pub(crate) fn host() -> String {
    std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "unknown".into())
}

/// A user's command (a hook or a probe) that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// It could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// It ran and failed (with what it printed on stderr, when it was captured).
    #[error("`{command}` exited with {status}{}", stderr.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
    Exit {
        /// The command.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its stderr, when captured.
        stderr: Option<String>,
    },
}

/// Run a hook command with `sh -c`, its output going where migsafe's goes.
pub(super) fn sh(cmd: &str) -> Result<(), CommandError> {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .status()
        .map_err(|source| CommandError::Spawn { command: cmd.to_string(), source })?;
    if status.success() {
        Ok(())
    } else {
        Err(CommandError::Exit { command: cmd.to_string(), status, stderr: None })
    }
}

/// Run a probe command with `sh -c`, with these environment variables added, and return what
/// it printed (trimmed).
pub(super) fn sh_output_with(cmd: &str, env: &[(String, String)]) -> Result<String, CommandError> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|source| CommandError::Spawn { command: cmd.to_string(), source })?;
    if !out.status.success() {
        let stderr = Some(String::from_utf8_lossy(&out.stderr).trim().to_string());
        return Err(CommandError::Exit { command: cmd.to_string(), status: out.status, stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Client sessions still connected when the wait for them to drain ran out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{sessions} client sessions still connected after {waited:?}")]
pub struct StillConnected {
    /// How many.
    pub sessions: i64,
    /// How long migsafe waited.
    pub waited: Duration,
}

/// Wait until no other client session (migsafe's own aside) is connected to the database,
/// up to `limit`.
pub(super) fn wait_for_sessions(c: &mut Client, limit: Duration) -> Result<Result<(), StillConnected>, EngineError> {
    let deadline = Instant::now() + limit;
    loop {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND backend_type = 'client backend' AND coalesce(application_name, '') NOT LIKE 'migsafe%'",
                &[],
            )?
            .get(0);
        if n == 0 {
            return Ok(Ok(()));
        }
        if Instant::now() >= deadline {
            return Ok(Err(StillConnected { sessions: n, waited: limit }));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}
