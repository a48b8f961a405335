//! Know the fleet before touching it: each target's history position (which of the set's
//! migrations its history says are applied) and schema fingerprint (a hash of its catalog
//! snapshot, with a tenant schema's name normalised), read in parallel; targets grouped by
//! both; the targets whose schema differs from the majority at the same position are drifted,
//! reported with the diff against the majority.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

use migsafe_catalog::{read_snapshot, Snapshot};
use migsafe_sql::QualName;

use super::targets::Target;
use super::{parallel, Limits};
use crate::apply::history::{self, State};
use crate::source::MigrationSet;
use crate::EngineError;

/// The schema name a tenant schema is replaced by in its fingerprint.
const TENANT: &str = "$tenant";

/// What the survey read of one target.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Versions of the set its history shows applied, in order.
    pub position: Vec<String>,
    /// Versions of the set it has pending (in order), interrupted ones included.
    pub pending: Vec<String>,
    /// Versions whose last run never finished (its session or server went away mid-run, or a
    /// migsafe is applying it now).
    pub interrupted: Vec<String>,
    /// Applied migrations whose file changed since (checksum drift).
    pub changed: Vec<String>,
    /// Hash of the normalised snapshot.
    pub fingerprint: String,
    /// The normalised snapshot (shared among targets with the same fingerprint).
    pub snapshot: Arc<Snapshot>,
    /// Row estimates of its tables (a tenant schema's under `public`, as the migrations name them).
    pub table_rows: BTreeMap<QualName, i64>,
}

/// One target's survey.
#[derive(Debug, Clone)]
pub struct Surveyed {
    /// Index into the targets.
    pub index: usize,
    /// What was read, or why it could not be.
    pub seen: Result<Seen, Unreached>,
}

/// Why a target could not be surveyed: its error, with any password redacted.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Unreached(pub String);

/// A group of targets at the same history position.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// The versions applied.
    pub position: Vec<String>,
    /// The fingerprint most of them share.
    pub fingerprint: String,
    /// Targets with that fingerprint.
    pub targets: Vec<String>,
    /// Targets with another one, each with what differs from the majority.
    pub drifted: Vec<Drifted>,
}

/// A target whose schema is not its group's.
#[derive(Debug, Clone, Serialize)]
pub struct Drifted {
    /// Target name.
    pub target: String,
    /// Its fingerprint.
    pub fingerprint: String,
    /// The difference from the majority's schema (`+`/`-`/`~` lines).
    pub diff: String,
}

/// Read every target (at most `limits` at a time).
pub fn survey(set: &MigrationSet, targets: &[Target], limits: &Limits) -> Vec<Surveyed> {
    let shared: std::sync::Mutex<BTreeMap<String, Arc<Snapshot>>> = Default::default();
    let mut out = parallel(targets, limits, |i, t| Surveyed {
        index: i,
        seen: read_one(set, t, &shared).map_err(|e| Unreached(migsafe_pg::redact_text(&e.to_string()))),
    });
    out.sort_by_key(|s| s.index);
    out
}

fn read_one(
    set: &MigrationSet,
    t: &Target,
    shared: &std::sync::Mutex<BTreeMap<String, Arc<Snapshot>>>,
) -> Result<Seen, EngineError> {
    let mut c = t.spec.with_application_name("migsafe fleet (survey)").connect()?;
    let rows = history::latest_in(&mut c, &t.history())?;
    let states = history::status(set, &rows);
    let position = states.iter().filter(|s| s.state == State::Applied).map(|s| s.version.clone()).collect();
    let pending = states
        .iter()
        .filter(|s| matches!(s.state, State::Pending | State::Failed | State::RolledBack | State::Running))
        .map(|s| s.version.clone())
        .collect();
    let interrupted = states.iter().filter(|s| s.state == State::Running).map(|s| s.version.clone()).collect();
    let changed = states.iter().filter(|s| s.state == State::Drifted).map(|s| s.version.clone()).collect();
    let snap = read_snapshot(&mut c, &t.snapshot_options())?;
    let mut table_rows = crate::lint::table_rows(&mut c)?;
    let json = match &t.schema {
        Some(schema) => {
            table_rows = table_rows
                .into_iter()
                .filter(|(k, _)| k.schema.as_deref() == Some(schema.as_str()))
                .map(|(k, v)| (QualName::qualified("public", k.name), v))
                .collect();
            replace_ident(&snap.to_json(), schema, TENANT)
        }
        None => snap.to_json(),
    };
    let fingerprint = hex::encode(&Sha256::digest(json.as_bytes())[..12]);
    let snapshot = {
        let mut m = shared.lock().unwrap_or_else(|p| p.into_inner());
        match m.get(&fingerprint) {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(Snapshot::from_json(&json).unwrap_or(snap));
                m.insert(fingerprint.clone(), s.clone());
                s
            }
        }
    };
    Ok(Seen { position, pending, interrupted, changed, fingerprint, snapshot, table_rows })
}

/// A tenant schema's normalised snapshot with `$tenant` renamed `public`.
pub(super) fn as_public(snap: &Snapshot) -> Snapshot {
    let json = snap.to_json().replace(TENANT, "public");
    Snapshot::from_json(&json).unwrap_or_else(|_| snap.clone())
}

/// Replace the identifier `name` wherever it stands as a whole word in `text`.
fn replace_ident(text: &str, name: &str, with: &str) -> String {
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(name) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + name.len()..].chars().next();
        let whole = !before.is_some_and(word) && !after.is_some_and(word);
        out.push_str(&rest[..i]);
        out.push_str(if whole { with } else { name });
        rest = &rest[i + name.len()..];
    }
    out.push_str(rest);
    out
}

/// Group the reachable targets by history position; in each group the fingerprint most targets
/// share is the reference (ties: the first target's), the others are drifted.
pub fn group(targets: &[Target], seen: &[Surveyed]) -> Vec<Group> {
    let mut by_position: BTreeMap<Vec<String>, Vec<(usize, &Seen)>> = BTreeMap::new();
    for s in seen {
        if let Ok(v) = &s.seen {
            by_position.entry(v.position.clone()).or_default().push((s.index, v));
        }
    }
    let mut groups = Vec::new();
    for (position, members) in by_position {
        let mut count: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for (i, v) in &members {
            let e = count.entry(v.fingerprint.as_str()).or_insert((0, *i));
            e.0 += 1;
        }
        let Some((majority, _)) =
            count.iter().max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1))).map(|(f, n)| (f.to_string(), *n))
        else {
            continue;
        };
        let reference = members.iter().find(|(_, v)| v.fingerprint == majority).map(|(_, v)| v.snapshot.clone());
        let mut g = Group { position, fingerprint: majority.clone(), targets: vec![], drifted: vec![] };
        for (i, v) in &members {
            if v.fingerprint == majority {
                g.targets.push(targets[*i].name.clone());
            } else {
                let diff = reference.as_ref().map(|r| r.diff(&v.snapshot).summary()).unwrap_or_default();
                g.drifted.push(Drifted {
                    target: targets[*i].name.clone(),
                    fingerprint: v.fingerprint.clone(),
                    diff: diff.trim_end().to_string(),
                });
            }
        }
        groups.push(g);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_identifiers_only() {
        let t = r#"{"schema":"tenant_1","def":"CREATE INDEX i ON tenant_1.t (a)","other":"tenant_10.t","q":"\"tenant_1\".x"}"#;
        let r = replace_ident(t, "tenant_1", TENANT);
        assert!(r.contains(r#""schema":"$tenant""#), "{r}");
        assert!(r.contains("ON $tenant.t"), "{r}");
        assert!(r.contains("tenant_10.t"), "{r}");
        assert!(r.contains(r#"\"$tenant\".x"#), "{r}");
    }
}
