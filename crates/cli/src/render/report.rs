//! Human rendering of rehearsal-shaped reports.

use migsafe_engine::report::Report;

use super::{paint, style};

/// One block per migration: its steps, failures with their details; then a summary.
pub fn report_human(r: &Report) -> String {
    let mut s = String::new();
    for m in &r.migrations {
        let mark = if m.ok { paint(style::OK, "✓") } else { paint(style::ERROR, "✗") };
        s.push_str(&format!("{mark} {}\n", paint(style::BOLD, m.id())));
        for st in &m.steps {
            let sm = if st.ok { paint(style::OK, "ok") } else { paint(style::ERROR, "FAILED") };
            let first = st.detail.lines().next().unwrap_or("");
            s.push_str(&format!("   {:<12} {sm:<6} {:>8.1} ms  {first}\n", st.step, st.ms));
            if !st.ok {
                for l in st.detail.lines().skip(1) {
                    s.push_str(&format!("                  {l}\n"));
                }
            }
            for w in &st.warnings {
                s.push_str(&format!(
                    "                  {} {}\n",
                    paint(style::WARNING, "warning:"),
                    w.replace('\n', "\n                  ")
                ));
            }
        }
    }
    let failed = r.migrations.iter().filter(|m| !m.ok).count();
    s.push_str(&format!(
        "{} {} migrations, {} passed, {} failed ({})\n",
        paint(style::BOLD, format!("{}:", r.command)),
        r.migrations.len(),
        r.migrations.len() - failed,
        failed,
        r.server_version
    ));
    s
}
