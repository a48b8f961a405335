//! `migsafe fleet status`: per target, applied and pending migrations, drift and reachability,
//! from the survey alone (nothing is written).

use super::*;

/// One line per distinct state of the fleet (`fleet status`).
#[derive(Debug, Clone, Serialize)]
pub struct StatusLine {
    /// The target.
    pub target: String,
    /// Redacted connection string.
    pub url: String,
    /// `up to date`, `pending`, `interrupted`, `drifted`, `unreachable`, `changed`.
    pub state: String,
    /// Applied versions of the set.
    pub applied: usize,
    /// Pending versions.
    pub pending: Vec<String>,
    /// What differs, or why it could not be read.
    pub detail: Option<String>,
}

/// `migsafe fleet status`: per target, applied and pending migrations, drift, reachability.
#[derive(Debug, Clone, Serialize)]
pub struct FleetStatus {
    /// Every target.
    pub targets: Vec<StatusLine>,
    /// Distinct states and how many targets are in each.
    pub summary: Vec<(String, usize)>,
    /// The survey's groups.
    pub groups: Vec<Group>,
}

/// Read the fleet's state without changing anything.
pub fn status(set: &MigrationSet, targets: &[Target], limits: &Limits) -> FleetStatus {
    let seen = survey::survey(set, targets, limits);
    let groups = survey::group(targets, &seen);
    let drifted: BTreeMap<&str, &Drifted> =
        groups.iter().flat_map(|g| g.drifted.iter().map(|d| (d.target.as_str(), d))).collect();
    let mut lines = Vec::new();
    for (t, s) in targets.iter().zip(&seen) {
        let line = match &s.seen {
            Err(e) => StatusLine {
                target: t.name.clone(),
                url: t.url(),
                state: "unreachable".into(),
                applied: 0,
                pending: vec![],
                detail: Some(e.to_string()),
            },
            Ok(v) => {
                let (state, detail) = if !v.changed.is_empty() {
                    ("changed", Some(format!("applied migrations changed since: {}", v.changed.join(", "))))
                } else if !v.interrupted.is_empty() {
                    let which = v.interrupted.join(", ");
                    ("interrupted", Some(format!(
                        "{which} never finished (its session or server went away mid-run, or a migsafe is applying it now): `migsafe diagnose`, or `migsafe fleet apply --resume`"
                    )))
                } else if let Some(d) = drifted.get(t.name.as_str()) {
                    ("drifted", Some(d.diff.clone()))
                } else if v.pending.is_empty() {
                    ("up to date", None)
                } else {
                    ("pending", None)
                };
                StatusLine {
                    target: t.name.clone(),
                    url: t.url(),
                    state: state.into(),
                    applied: v.position.len(),
                    pending: v.pending.clone(),
                    detail,
                }
            }
        };
        lines.push(line);
    }
    let mut summary: BTreeMap<String, usize> = BTreeMap::new();
    for l in &lines {
        let key = match l.state.as_str() {
            "pending" => {
                format!(
                    "pending: {} migrations, from {}",
                    l.pending.len(),
                    l.pending.first().cloned().unwrap_or_default()
                )
            }
            s => s.to_string(),
        };
        *summary.entry(key).or_default() += 1;
    }
    FleetStatus { targets: lines, summary: summary.into_iter().collect(), groups }
}
