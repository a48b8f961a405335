//! Human rendering of rehearsal-shaped reports.

use migsafe_engine::report::Report;
use migsafe_sql::lock::Blocks;

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

use super::xml_escape as esc;

/// Markdown for a pull-request comment: a table of migrations, then failures in detail.
pub fn report_markdown(r: &Report) -> String {
    let failed = r.migrations.iter().filter(|m| !m.ok).count();
    let mut s = format!(
        "## migsafe {}: {}\n\n{} migrations · {} passed · {} failed · {} · {:.1} s\n\n",
        r.command,
        if r.ok { "✅ passed" } else { "❌ failed" },
        r.migrations.len(),
        r.migrations.len() - failed,
        failed,
        r.server_version,
        r.ms / 1000.0
    );
    s.push_str("| Migration | Result | Forward | Longest blocking lock | Rewrites | Rollback | Risk |\n|---|---|---|---|---|---|---|\n");
    for m in &r.migrations {
        let fwd = m.steps.iter().find(|s| s.step == "forward").map(|s| format!("{:.0} ms", s.ms)).unwrap_or_default();
        let lock = m
            .locks
            .iter()
            .filter(|l| l.blocks != Blocks::Nothing)
            .max_by(|a, b| a.held_ms.total_cmp(&b.held_ms))
            .map(|l| format!("{} on `{}` {:.0} ms", l.mode.pg_name(), l.relation, l.held_ms))
            .unwrap_or_else(|| "none".into());
        let risk = m.risk.as_ref().map(|r| r.level.as_str()).unwrap_or("");
        s.push_str(&format!(
            "| `{}` | {} | {fwd} | {lock} | {} | {} | {risk} |\n",
            m.id(),
            if m.ok { "✅" } else { "❌" },
            m.rewrites.len(),
            m.rollback.as_deref().unwrap_or("none")
        ));
    }
    for m in r.migrations.iter().filter(|m| !m.ok) {
        s.push_str(&format!("\n### ❌ `{}`\n\n", m.id()));
        for st in m.steps.iter().filter(|s| !s.ok) {
            s.push_str(&format!("**{}** failed:\n\n```\n{}\n```\n", st.step, st.detail));
        }
    }
    s
}

/// JUnit XML: a test suite per migration, a test case per step.
pub fn report_junit(r: &Report) -> String {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for m in &r.migrations {
        let failures = m.steps.iter().filter(|s| !s.ok).count();
        s.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">\n",
            esc(&format!("{} {}", r.command, m.id())),
            m.steps.len()
        ));
        for st in &m.steps {
            s.push_str(&format!(
                "    <testcase classname=\"migsafe.{}\" name=\"{}\" time=\"{:.3}\">",
                esc(&r.command.replace(' ', "_")),
                esc(&format!("{} {}", m.id(), st.step)),
                st.ms / 1000.0
            ));
            if !st.ok {
                s.push_str(&format!(
                    "<failure message=\"{}\">{}</failure>",
                    esc(st.detail.lines().next().unwrap_or("")),
                    esc(&st.detail)
                ));
            }
            s.push_str("</testcase>\n");
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}

fn lock_color(blocks: Blocks) -> &'static str {
    match blocks {
        Blocks::ReadsAndWrites => "#d93025",
        Blocks::Writes => "#f29900",
        Blocks::Nothing => "#9aa0a6",
    }
}

fn timeline(m: &migsafe_engine::report::MigrationReport) -> String {
    let forward = m.steps.iter().find(|s| s.step == "forward").map(|s| s.ms).unwrap_or(1.0);
    let end = m.locks.iter().map(|l| l.start_ms + l.held_ms).fold(forward, f64::max).max(1.0);
    let start0 = m.locks.iter().map(|l| l.start_ms).fold(f64::INFINITY, f64::min);
    let start0 = if start0.is_finite() { start0 } else { 0.0 };
    let span = (end - start0).max(1.0);
    let (label_w, width, row) = (340.0, 560.0, 22.0);
    let height = row * m.locks.len() as f64 + 30.0;
    let mut svg = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {} {height}\" width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"lock timeline\">",
        label_w + width + 20.0,
        label_w + width + 20.0
    );
    for (i, l) in m.locks.iter().enumerate() {
        let y = i as f64 * row + 4.0;
        let x = label_w + (l.start_ms - start0) / span * width;
        let w = (l.held_ms / span * width).max(2.0);
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{}\" class=\"lbl\">{} · {}</text><rect x=\"{x:.1}\" y=\"{y}\" width=\"{w:.1}\" height=\"{}\" rx=\"3\" fill=\"{}\"><title>{} on {} held {:.1} ms, taken by {} ({})</title></rect><text x=\"{:.1}\" y=\"{}\" class=\"ms\">{:.1} ms</text>",
            y + 13.0,
            esc(&l.relation),
            esc(l.mode.pg_name().trim_end_matches("Lock")),
            row - 6.0,
            lock_color(l.blocks),
            esc(l.mode.pg_name()),
            esc(&l.relation),
            l.held_ms,
            esc(&l.statement),
            esc(&l.blocks.as_str().replace('_', " ")),
            (x + w + 4.0).min(label_w + width - 30.0),
            y + 13.0,
            l.held_ms
        ));
    }
    let axis_y = row * m.locks.len() as f64 + 20.0;
    svg.push_str(&format!(
        "<line x1=\"{label_w}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#bbb\"/><text x=\"{label_w}\" y=\"{axis_y}\" class=\"ms\">0 ms</text><text x=\"{}\" y=\"{axis_y}\" class=\"ms\" text-anchor=\"end\">{span:.1} ms</text></svg>",
        label_w + width,
        axis_y - 12.0,
        axis_y - 12.0,
        label_w + width
    ));
    svg
}

/// One self-contained HTML page: summary, then per migration its steps, lock timeline,
/// rewrites, statement timings, risk, and failure details.
pub fn report_html(r: &Report) -> String {
    let failed = r.migrations.iter().filter(|m| !m.ok).count();
    let mut body = format!(
        "<header><h1>migsafe {} <span class=\"badge {}\">{}</span></h1><p>{} migrations · {} passed · {} failed · {} · {:.1} s</p>\
         <p class=\"legend\"><span style=\"background:#d93025\"></span> blocks reads and writes <span style=\"background:#f29900\"></span> blocks writes <span style=\"background:#9aa0a6\"></span> blocks only other DDL</p></header>",
        esc(&r.command),
        if r.ok { "ok" } else { "fail" },
        if r.ok { "passed" } else { "failed" },
        r.migrations.len(),
        r.migrations.len() - failed,
        failed,
        esc(&r.server_version),
        r.ms / 1000.0
    );
    for m in &r.migrations {
        body.push_str(&format!(
            "<section class=\"mig {}\"><h2>{} <span class=\"badge {}\">{}</span>{}</h2>",
            if m.ok { "ok" } else { "fail" },
            esc(&m.id()),
            if m.ok { "ok" } else { "fail" },
            if m.ok { "passed" } else { "failed" },
            m.risk
                .as_ref()
                .map(|r| format!(" <span class=\"risk {0}\">risk {0}</span>", r.level.as_str()))
                .unwrap_or_default()
        ));
        body.push_str("<table class=\"steps\"><tr><th>step</th><th>result</th><th>ms</th><th>detail</th></tr>");
        for st in &m.steps {
            let warn = if st.warnings.is_empty() {
                String::new()
            } else {
                format!("<div class=\"warn\">{}</div>", esc(&st.warnings.join("\n")))
            };
            body.push_str(&format!(
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{:.1}</td><td><pre>{}</pre>{warn}</td></tr>",
                if st.ok { "ok" } else { "fail" },
                esc(&st.step),
                if st.ok { "ok" } else { "FAILED" },
                st.ms,
                esc(&st.detail)
            ));
        }
        body.push_str("</table>");
        if !m.locks.is_empty() {
            body.push_str("<h3>Locks held by the forward migration</h3>");
            body.push_str(&timeline(m));
        }
        if !m.rewrites.is_empty() {
            body.push_str("<h3>Rewritten relations</h3><ul>");
            for w in &m.rewrites {
                body.push_str(&format!("<li><code>{}</code> by {}</li>", esc(&w.relation), esc(&w.statement)));
            }
            body.push_str("</ul>");
        }
        if !m.statements.is_empty() {
            body.push_str("<details><summary>Statement timings</summary><table class=\"stmts\">");
            for (line, tag, ms) in &m.statements {
                body.push_str(&format!("<tr><td>line {line}</td><td>{}</td><td>{ms:.1} ms</td></tr>", esc(tag)));
            }
            body.push_str("</table></details>");
        }
        if let Some(risk) = &m.risk {
            if !risk.reasons.is_empty() {
                body.push_str(&format!(
                    "<details><summary>Risk {} · downtime {} · approvals: {}</summary><ul>{}</ul></details>",
                    risk.level.as_str(),
                    esc(&risk.downtime),
                    esc(&if risk.approvals.is_empty() { "none".into() } else { risk.approvals.join(", ") }),
                    risk.reasons.iter().map(|x| format!("<li>{}</li>", esc(x))).collect::<String>()
                ));
            }
        }
        body.push_str("</section>");
    }
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>migsafe {} report</title><style>{CSS}</style></head><body>{body}</body></html>\n",
        esc(&r.command)
    )
}

const CSS: &str = "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#202124;background:#fafafa}\
h1{font-size:22px}h2{font-size:17px;margin:0 0 8px}h3{font-size:14px;margin:14px 0 6px;color:#444}\
.badge{font-size:12px;padding:2px 8px;border-radius:10px;color:#fff;vertical-align:middle}.badge.ok{background:#188038}.badge.fail{background:#d93025}\
.risk{font-size:12px;margin-left:8px;padding:2px 8px;border-radius:10px;background:#eee}.risk.high{background:#fce8e6}.risk.medium{background:#fef7e0}.risk.low{background:#e6f4ea}\
section.mig{background:#fff;border:1px solid #ddd;border-left:5px solid #188038;border-radius:6px;padding:12px 16px;margin:12px 0}section.mig.fail{border-left-color:#d93025}\
table.steps{border-collapse:collapse;width:100%;font-size:13px}table.steps td,table.steps th{border-bottom:1px solid #eee;padding:4px 8px;text-align:left;vertical-align:top}\
tr.fail td{background:#fce8e6}pre{margin:0;white-space:pre-wrap;font-size:12px}.warn{color:#b06000;font-size:12px;white-space:pre-wrap}\
svg.timeline text.lbl{font-size:11px;fill:#333}svg.timeline text.ms{font-size:10px;fill:#666}\
.legend span{display:inline-block;width:12px;height:12px;border-radius:2px;margin:0 4px 0 12px;vertical-align:middle}\
table.stmts{font-size:12px}details{margin-top:8px;font-size:13px}code{font-size:12px}";
