//! Fleet reports: human, Markdown, HTML (a matrix of targets × migrations), JUnit (a test case
//! per target), and `fleet status`.

use std::fmt::Write as _;

use migsafe_engine::fleet::{FleetReport, FleetStatus, TargetRow, TargetState};

use super::{paint, style, xml_escape};

fn state_style(s: TargetState) -> anstyle::Style {
    match s {
        TargetState::Applied | TargetState::RolledBack => style::OK,
        TargetState::Pending | TargetState::Running | TargetState::SkippedDrift => style::WARNING,
        _ => style::ERROR,
    }
}

/// The cell of one migration on one target: applied by this run, pending, or not this run's.
fn cell(t: &TargetRow, version: &str) -> &'static str {
    if t.applied.iter().any(|v| v == version) {
        "applied"
    } else if t.pending.iter().any(|v| v == version) {
        "pending"
    } else {
        "—"
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// For a terminal: the run, counts, every target that did not end applied, and what to do next.
pub fn human(r: &FleetReport) -> String {
    let mut s = String::new();
    let status = match r.status.as_str() {
        "finished" => paint(style::OK, "finished"),
        other => paint(style::ERROR, other),
    };
    if r.status == "dry_run" {
        let _ = writeln!(s, "fleet dry run: nothing applied, no run recorded");
        let mut waves: std::collections::BTreeMap<i32, usize> = Default::default();
        for t in r.targets.iter().filter(|t| t.state == TargetState::Pending) {
            *waves.entry(t.wave).or_default() += 1;
        }
        for (w, n) in waves {
            let what = if w == 0 { "canary" } else { "wave" };
            let _ = writeln!(s, "  {what} {w}: {n} targets");
        }
    } else {
        let _ = writeln!(
            s,
            "fleet run {}: {status}{}",
            r.run,
            r.stop_reason.as_ref().map(|x| format!(" ({x})")).unwrap_or_default()
        );
    }
    let _ = writeln!(s, "  migrations: {}", r.migrations.join(", "));
    for g in &r.groups {
        if !g.drifted.is_empty() {
            let _ = writeln!(
                s,
                "  {} drifted from the {} others at {}:",
                g.drifted.len(),
                g.targets.len(),
                g.position.last().map(String::as_str).unwrap_or("an empty history")
            );
            for d in &g.drifted {
                let _ = writeln!(s, "    {}: {}", paint(style::WARNING, &d.target), d.diff.replace('\n', "; "));
            }
        }
    }
    for rh in &r.rehearsals {
        let verdict = if rh.ok { paint(style::OK, "passed") } else { paint(style::ERROR, "failed") };
        let _ = writeln!(
            s,
            "  rehearsal from {} ({} targets): {verdict}{}",
            rh.from.as_deref().unwrap_or("an empty history"),
            rh.targets,
            rh.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
        );
    }
    for t in r.targets.iter().filter(|t| t.state != TargetState::Applied) {
        let _ = writeln!(
            s,
            "  {:<24} {:<13} {}",
            t.name,
            paint(state_style(t.state), t.state),
            first_line(t.error.as_deref().unwrap_or(""))
        );
    }
    let counts: Vec<String> = r.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = writeln!(s, "  targets: {} ({:.1} s)", counts.join(", "), r.ms / 1000.0);
    if let Some(p) = &r.incident_report {
        let _ = writeln!(s, "  incident report: {}", p.display());
    }
    for w in &r.warnings {
        let _ = writeln!(s, "  {} {w}", paint(style::WARNING, "warning:"));
    }
    if r.status != "finished" {
        let _ = writeln!(
            s,
            "  next: `migsafe fleet apply DIR … --resume --run {}` goes on; `migsafe fleet rollback {} DIR …` undoes it",
            r.run, r.run
        );
    }
    s
}

/// Markdown, for a change ticket: counts, then the matrix.
pub fn markdown(r: &FleetReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# migsafe fleet run {}: {}\n", r.run, r.status);
    if let Some(x) = &r.stop_reason {
        let _ = writeln!(s, "Stopped: {x}\n");
    }
    let _ = writeln!(s, "| target | state | {} | error |", r.migrations.join(" | "));
    let _ = writeln!(s, "|---|---|{}---|", "---|".repeat(r.migrations.len()));
    for t in &r.targets {
        let cells: Vec<&str> = r.migrations.iter().map(|v| cell(t, v)).collect();
        let err = first_line(t.error.as_deref().unwrap_or("")).replace('|', "\\|");
        let _ = writeln!(s, "| {} | {} | {} | {err} |", t.name, t.state, cells.join(" | "));
    }
    s
}

/// HTML: the matrix of targets × migrations, each failure's reason in its row.
pub fn html(r: &FleetReport) -> String {
    let e = xml_escape;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>migsafe fleet run {}</title><style>\
         body{{font-family:sans-serif}}td,th{{border:1px solid #ccc;padding:2px 6px}}table{{border-collapse:collapse}}\
         .applied{{background:#cfc}}.pending{{background:#ffc}}.failed,.quarantined,.unreachable{{background:#fcc}}\
         </style></head><body><h1>migsafe fleet run {}: {}</h1>",
        r.run,
        r.run,
        e(&r.status)
    );
    if let Some(x) = &r.stop_reason {
        let _ = write!(s, "<p>Stopped: {}</p>", e(x));
    }
    let counts: Vec<String> = r.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = write!(s, "<p>{}</p><table><tr><th>target</th><th>state</th>", e(&counts.join(", ")));
    for m in &r.migrations {
        let _ = write!(s, "<th>{}</th>", e(m));
    }
    let _ = write!(s, "<th>error</th></tr>");
    for t in &r.targets {
        let _ = write!(s, "<tr><td>{}</td><td class=\"{}\">{}</td>", e(&t.name), t.state, t.state);
        for m in &r.migrations {
            let c = cell(t, m);
            let _ = write!(s, "<td class=\"{c}\">{c}</td>");
        }
        let _ = write!(s, "<td><pre>{}</pre></td></tr>", e(t.error.as_deref().unwrap_or("")));
    }
    let _ = write!(s, "</table><h2>Timeline</h2><ul>");
    for ev in &r.events {
        let _ = write!(
            s,
            "<li>{} <b>{}</b> {}{}</li>",
            e(&ev.at),
            e(&ev.kind),
            ev.target.as_deref().map(|t| format!("{}: ", e(t))).unwrap_or_default(),
            e(&ev.detail)
        );
    }
    s.push_str("</ul></body></html>\n");
    s
}

/// JUnit: one test case per target; failed, quarantined and unreachable targets fail,
/// drifted ones are skipped.
pub fn junit(r: &FleetReport) -> String {
    let e = xml_escape;
    let failures = r
        .targets
        .iter()
        .filter(|t| matches!(t.state, TargetState::Failed | TargetState::Quarantined | TargetState::Unreachable))
        .count();
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"migsafe fleet run {}\" tests=\"{}\" failures=\"{failures}\">\n",
        r.run,
        r.targets.len()
    );
    for t in &r.targets {
        let _ = write!(
            s,
            "  <testcase classname=\"fleet\" name=\"{}\" time=\"{:.3}\">",
            e(&t.name),
            t.ms.unwrap_or(0.0) / 1000.0
        );
        match t.state {
            TargetState::Failed | TargetState::Quarantined | TargetState::Unreachable => {
                let _ = write!(s, "<failure message=\"{}\">{}</failure>", t.state, e(t.error.as_deref().unwrap_or("")));
            }
            TargetState::SkippedDrift | TargetState::Pending | TargetState::Running => {
                let _ = write!(
                    s,
                    "<skipped message=\"{}\"/>",
                    e(first_line(t.error.as_deref().unwrap_or(t.state.as_str())))
                );
            }
            _ => {}
        }
        s.push_str("</testcase>\n");
    }
    s.push_str("</testsuite>\n");
    s
}

/// `fleet status`: a line per target that is not plainly pending or up to date, then a summary
/// line per distinct state.
pub fn status_human(st: &FleetStatus) -> String {
    let mut s = String::new();
    for t in &st.targets {
        if t.state == "up to date" || t.state == "pending" {
            continue;
        }
        let _ = writeln!(
            s,
            "{:<24} {:<12} {}",
            t.target,
            paint(style::WARNING, &t.state),
            t.detail.as_deref().unwrap_or("").replace('\n', "; ")
        );
    }
    for (state, n) in &st.summary {
        let painted = if state == "up to date" { paint(style::OK, state) } else { paint(style::BOLD, state) };
        let _ = writeln!(s, "{n:>6} {painted}");
    }
    s
}
