//! The human rendering of an apply or rollback report: preflight, what ran, what was observed
//! and decided, the outcome and the post-migration checklist.

use migsafe_engine::apply::{ApplyReport, Check, ChecklistStatus, Outcome};

use super::{paint, style};

/// Human rendering of an apply/rollback report.
pub fn human(r: &ApplyReport) -> String {
    let mut s = format!("{} {}\n", paint(style::BOLD, "database"), r.database);
    if !r.preflight.is_empty() {
        s.push_str(&format!("{}\n", paint(style::BOLD, "preflight")));
        for p in &r.preflight {
            let mark = match p.status {
                Check::Pass => paint(style::OK, "pass"),
                Check::Warn => paint(style::WARNING, "warn"),
                Check::Fail => paint(style::ERROR, "FAIL"),
            };
            s.push_str(&format!("  {mark} {:<34} {}\n", p.item, p.detail));
        }
    }
    if !r.pending.is_empty() {
        s.push_str(&format!("{} {}\n", paint(style::BOLD, "plan:"), r.pending.join(" → ")));
    }
    for a in &r.applied {
        s.push_str(&format!(
            "  applied {}_{} in {:.0} ms{}\n",
            a.version,
            a.name,
            a.ms,
            if a.attempts > 1 { format!(" ({} attempts)", a.attempts) } else { String::new() }
        ));
        for e in &a.events {
            s.push_str(&format!("    {e}\n"));
        }
    }
    for o in &r.observations {
        s.push_str(&format!("  observed {:?}: {}\n", o.severity, o.what));
    }
    if let Some(d) = &r.decision {
        s.push_str(&format!("{} {d}\n", paint(style::BOLD, "decision:")));
    }
    for a in &r.rolled_back {
        s.push_str(&format!("  rolled back {}_{} in {:.0} ms\n", a.version, a.name, a.ms));
    }
    let outcome = match &r.outcome {
        Outcome::NothingToDo => paint(style::OK, "nothing to do: the database is up to date"),
        Outcome::DryRun => paint(style::OK, "dry run: nothing changed"),
        Outcome::Refused => paint(style::ERROR, "refused: fix the FAIL items above (nothing changed)"),
        Outcome::Locked { holder } => {
            paint(style::ERROR, format!("another migsafe apply is running ({holder}); use --wait to queue behind it"))
        }
        Outcome::Applied => paint(style::OK, format!("applied {} migrations", r.applied.len())),
        Outcome::RolledBack { reason } => paint(style::WARNING, format!("rolled back: {reason}")),
        Outcome::NeedsHuman { reason, state, next } => {
            paint(style::ERROR, format!("NEEDS A HUMAN: {reason}\n  state: {state}\n  next: {next}"))
        }
        Outcome::Interrupted { state } => paint(style::WARNING, format!("interrupted: {state}")),
    };
    s.push_str(&format!("{} {outcome}\n", paint(style::BOLD, "outcome:")));
    if !r.checklist.is_empty() {
        s.push_str(&format!("{}\n", paint(style::BOLD, "post-migration checklist")));
        for c in &r.checklist {
            let mark = match c.status {
                ChecklistStatus::Checked => paint(style::OK, "[x]"),
                ChecklistStatus::Failed => paint(style::ERROR, "[!]"),
                ChecklistStatus::Human => "[ ]".to_string(),
            };
            s.push_str(&format!("  {mark} {} — {}\n", c.item, c.detail));
        }
    }
    s
}
