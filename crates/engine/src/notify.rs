//! Telling people (the guide's "stakeholders notified"): a JSON webhook (`--notify-url`; the
//! payload's `text` is what Slack and Microsoft Teams incoming webhooks show) and a command
//! (`--notify-cmd`, the JSON on its stdin and the event in `MIGSAFE_EVENT`), at the start,
//! after each wave, on every failure, rollback or quarantine, and at the end. A notification
//! that cannot be delivered is a warning, never a reason to stop.

use serde::Serialize;
use std::io::Write;
use std::time::Duration;

/// Where notifications go.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    /// Webhook URL (http or https).
    pub url: Option<String>,
    /// Command run with `sh -c`.
    pub cmd: Option<String>,
}

/// What is sent.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    /// What Slack and Teams show.
    pub text: String,
    /// `start`, `wave`, `failure`, `quarantine`, `rollback`, `stop`, `end`.
    pub event: String,
    /// The fleet run (0 for a single-database apply).
    pub run: i64,
    /// The target it is about, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Counts by state, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<std::collections::BTreeMap<String, i64>>,
}

impl Notifier {
    /// Anything configured?
    pub fn any(&self) -> bool {
        self.url.is_some() || self.cmd.is_some()
    }

    /// Send `notice` everywhere configured; the warnings of what could not be delivered.
    pub fn send(&self, notice: &Notice) -> Vec<String> {
        let mut warnings = Vec::new();
        let notice = Notice { text: migsafe_pg::redact_text(&notice.text), ..notice.clone() };
        let body = serde_json::to_string(&notice).unwrap_or_default();
        if let Some(url) = &self.url {
            let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(10)).build();
            if let Err(e) = agent.post(url).set("Content-Type", "application/json").send_string(&body) {
                warnings.push(format!("notification to {} not delivered: {e}", migsafe_pg::redact_text(url)));
            }
        }
        if let Some(cmd) = &self.cmd {
            let run = std::process::Command::new("sh")
                .arg("-c")
                .arg(cmd)
                .env("MIGSAFE_EVENT", &notice.event)
                .env("MIGSAFE_RUN", notice.run.to_string())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .spawn()
                .and_then(|mut child| {
                    if let Some(mut stdin) = child.stdin.take() {
                        let _ = stdin.write_all(body.as_bytes());
                    }
                    child.wait()
                });
            match run {
                Ok(s) if s.success() => {}
                Ok(s) => warnings.push(format!("notify command `{cmd}` exited with {s}")),
                Err(e) => warnings.push(format!("notify command `{cmd}` could not run: {e}")),
            }
        }
        warnings
    }
}
