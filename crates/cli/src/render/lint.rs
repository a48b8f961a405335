//! Renderers for `migsafe lint`: human, SARIF, GitHub annotations, JUnit, Markdown.

use serde_json::json;

use migsafe_engine::lint::{LintReport, MigrationLint};
use migsafe_sql::lint::{Finding, Rule, Severity, TxMode};
use migsafe_sql::risk::RiskLevel;

use super::{paint, snippet, source_line, style, xml_escape};

fn severity_style(s: Severity) -> anstyle::Style {
    match s {
        Severity::Error => style::ERROR,
        Severity::Warning => style::WARNING,
        Severity::Info => style::INFO,
    }
}

fn risk_style(r: RiskLevel) -> anstyle::Style {
    match r {
        RiskLevel::Low => style::OK,
        RiskLevel::Medium => style::WARNING,
        RiskLevel::High => style::ERROR,
    }
}

/// Word-wrap `text` to `width` columns, continuation lines indented by `indent`.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut col = 0;
    for word in text.split(' ') {
        if col > 0 && col + 1 + word.chars().count() > width {
            out.push('\n');
            out.push_str(indent);
            col = indent.len();
        } else if col > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += word.chars().count();
    }
    out
}

fn tx_text(t: &TxMode) -> String {
    match t {
        TxMode::Wrapped => "runs in one transaction".into(),
        TxMode::OwnTransactions => "runs its own BEGIN/COMMIT blocks".into(),
        TxMode::Autocommit { reason } => format!("runs statement by statement: {reason}"),
    }
}

fn finding_human(f: &Finding) -> String {
    let sev = severity_style(f.severity);
    let head = format!("{}[{}]: ", f.severity.as_str(), f.rule);
    let body = wrap(&format!("{head}{}", f.message), 100, "  ");
    let mut s = format!("{}{}\n", paint(sev, &head), &body[head.len()..]);
    s.push_str(&snippet(&f.file, f.line, f.column, &source_line(&f.file, f.line), true));
    let mut lines = f.help.lines();
    if let Some(first) = lines.next() {
        s.push_str(&format!("   {} {}\n", paint(style::DIM, "= help:"), wrap(first, 92, "           ")));
        for l in lines {
            s.push_str(&format!("           {l}\n"));
        }
    }
    s.push('\n');
    s
}

fn risk_human(m: &MigrationLint) -> String {
    let r = &m.risk;
    let mut s = format!(
        "   {} {} · downtime {} · {}\n",
        paint(style::BOLD, "risk:"),
        paint(risk_style(r.level), r.level.as_str().to_uppercase()),
        r.downtime,
        tx_text(&m.transaction)
    );
    for reason in r.reasons.iter().take(8) {
        s.push_str(&format!("     - {}\n", reason));
    }
    if r.reasons.len() > 8 {
        s.push_str(&format!("     - … and {} more\n", r.reasons.len() - 8));
    }
    if r.level > RiskLevel::Low {
        s.push_str(&format!("     testing: {}\n", r.testing.join(", ")));
        s.push_str(&format!(
            "     approvals: {} (guide level {} of 5); reviews: {}; documentation: {}\n",
            r.approvals.join(" + "),
            r.approval_tier,
            r.reviews.join(", "),
            r.documentation
        ));
    }
    s
}

/// Running totals of a streamed lint run.
#[derive(Debug, Default)]
pub struct LintTotals {
    /// Migrations seen.
    pub migrations: usize,
    /// Findings by severity: info, warning, error.
    pub by_severity: [usize; 3],
    /// Syntax errors.
    pub syntax_errors: usize,
    /// Suppressed findings.
    pub suppressed: usize,
    /// Findings at or above the threshold.
    pub failing: usize,
    /// Highest risk.
    pub max_risk: Option<RiskLevel>,
}

impl LintTotals {
    /// Count one migration.
    pub fn add(&mut self, m: &MigrationLint, threshold: Option<Severity>) {
        self.migrations += 1;
        for f in &m.findings {
            self.by_severity[f.severity as usize] += 1;
            if threshold.is_some_and(|t| f.severity >= t) {
                self.failing += 1;
            }
        }
        self.syntax_errors += m.errors.len();
        self.suppressed += m.suppressed;
        self.max_risk = self.max_risk.max(Some(m.risk.level));
    }
}

/// The human report of one migration: its findings and risk.
pub fn lint_human_migration(m: &MigrationLint, threshold: Option<Severity>) -> String {
    let mut s = String::new();
    let clean = m.findings.is_empty() && m.errors.is_empty();
    let mark = if !m.errors.is_empty() {
        paint(style::ERROR, "✗")
    } else if m.findings.iter().any(|f| threshold.is_some_and(|t| f.severity >= t)) {
        paint(style::WARNING, "!")
    } else {
        paint(style::OK, "✓")
    };
    s.push_str(&format!("{mark} {}\n", paint(style::BOLD, &m.file)));
    if clean && m.risk.level == RiskLevel::Low {
        s.push_str(&format!("   risk: {} · {}\n\n", paint(style::OK, "LOW"), tx_text(&m.transaction)));
        return s;
    }
    for e in &m.errors {
        s.push_str(&format!("{} {}\n", paint(style::ERROR, "error[syntax]:"), e.message));
        s.push_str(&snippet(&e.file, e.line, e.column, &e.source_line, false));
        s.push('\n');
    }
    for f in &m.findings {
        s.push_str(&finding_human(f));
    }
    s.push_str(&risk_human(m));
    s.push('\n');
    s
}

/// The last line of the human report.
pub fn lint_human_summary(t: &LintTotals) -> String {
    let [info, warnings, errors] = t.by_severity;
    let risk = t.max_risk.unwrap_or(RiskLevel::Low);
    format!(
        "{} {} migration{} linted: {} error{}, {} warning{}, {} info{}{}; highest risk {}\n",
        paint(style::BOLD, "Summary:"),
        t.migrations,
        plural(t.migrations),
        errors,
        plural(errors),
        warnings,
        plural(warnings),
        info,
        if t.syntax_errors > 0 {
            format!(", {} syntax error{}", t.syntax_errors, plural(t.syntax_errors))
        } else {
            String::new()
        },
        if t.suppressed > 0 { format!(" ({} suppressed)", t.suppressed) } else { String::new() },
        paint(risk_style(risk), risk.as_str().to_uppercase()),
    )
}

/// One migration as an element of the streamed JSON array.
pub fn lint_json_migration(m: &MigrationLint, first: bool) -> String {
    let body = serde_json::to_string_pretty(m).unwrap_or_default();
    let indented: String = body.lines().map(|l| format!("\n    {l}")).collect();
    format!("{}{indented}", if first { "" } else { "," })
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// SARIF 2.1.0.
pub fn lint_sarif(report: &LintReport) -> String {
    let rules: Vec<_> = Rule::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.id(),
                "shortDescription": {"text": r.summary()},
                "defaultConfiguration": {"level": sarif_level(r.severity())},
            })
        })
        .collect();
    let mut results: Vec<_> = report
        .findings()
        .map(|f| {
            json!({
                "ruleId": f.rule,
                "level": sarif_level(f.severity),
                "message": {"text": format!("{}\n\nHow to fix: {}", f.message, f.help)},
                "locations": [location(&f.file, f.line, f.column, f.end_line, f.end_column)],
            })
        })
        .collect();
    results.extend(report.errors().map(|e| {
        json!({
            "ruleId": "syntax-error",
            "level": "error",
            "message": {"text": e.message},
            "locations": [location(&e.file, e.line, e.column, e.line, e.column)],
        })
    }));
    super::json(&json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "migsafe",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/migsafe/migsafe",
                "rules": rules,
            }},
            "results": results,
        }],
    }))
}

fn sarif_level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn location(file: &str, line: usize, col: usize, end_line: usize, end_col: usize) -> serde_json::Value {
    json!({"physicalLocation": {
        "artifactLocation": {"uri": file},
        "region": {"startLine": line, "startColumn": col, "endLine": end_line, "endColumn": end_col},
    }})
}

/// The annotations of one migration.
pub fn lint_github_migration(m: &MigrationLint) -> String {
    let mut s = String::new();
    for f in &m.findings {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        s.push_str(&format!(
            "::{level} file={},line={},col={},endLine={},endColumn={},title={}::{}\n",
            gh_property(&f.file),
            f.line,
            f.column,
            f.end_line,
            f.end_column,
            gh_property(&format!("migsafe {}", f.rule)),
            gh_data(&format!("{}\n\nHow to fix: {}", f.message, f.help)),
        ));
    }
    for e in &m.errors {
        s.push_str(&format!(
            "::error file={},line={},col={},title=syntax error::{}\n",
            gh_property(&e.file),
            e.line,
            e.column,
            gh_data(&e.message)
        ));
    }
    s
}

fn gh_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

fn gh_property(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// JUnit XML: a test case per migration, failing when it has findings at or above the threshold.
pub fn lint_junit(report: &LintReport, threshold: Option<Severity>) -> String {
    let mut cases = String::new();
    let mut failures = 0;
    for m in &report.migrations {
        let name = xml_escape(&m.file);
        let failing: Vec<&Finding> = m.findings.iter().filter(|f| threshold.is_some_and(|t| f.severity >= t)).collect();
        let mut body = String::new();
        if !m.errors.is_empty() {
            failures += 1;
            let text: Vec<String> =
                m.errors.iter().map(|e| format!("{}:{}:{}: {}", e.file, e.line, e.column, e.message)).collect();
            body.push_str(&format!(
                "<error message=\"syntax error\" type=\"syntax\">{}</error>",
                xml_escape(&text.join("\n"))
            ));
        } else if !failing.is_empty() {
            failures += 1;
            let text: Vec<String> = failing
                .iter()
                .map(|f| {
                    format!(
                        "{}:{}:{}: {} [{}] {}\nhow to fix: {}",
                        f.file, f.line, f.column, f.severity, f.rule, f.message, f.help
                    )
                })
                .collect();
            body.push_str(&format!(
                "<failure message=\"{}\" type=\"{}\">{}</failure>",
                xml_escape(&format!("{} finding(s), first: {}", failing.len(), failing[0].rule)),
                failing[0].rule,
                xml_escape(&text.join("\n\n"))
            ));
        }
        let others: Vec<String> = m
            .findings
            .iter()
            .filter(|f| threshold.is_none_or(|t| f.severity < t))
            .map(|f| format!("{}:{}: {} [{}] {}", f.file, f.line, f.severity, f.rule, f.message))
            .collect();
        body.push_str(&format!(
            "<system-out>{}</system-out>",
            xml_escape(&format!("risk: {} ({})\n{}", m.risk.level, m.risk.downtime, others.join("\n")))
        ));
        cases.push_str(&format!("    <testcase classname=\"migsafe.lint\" name=\"{name}\">{body}</testcase>\n"));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n  <testsuite name=\"migsafe lint\" tests=\"{}\" failures=\"{failures}\" errors=\"0\">\n{cases}  </testsuite>\n</testsuites>\n",
        report.migrations.len()
    )
}

/// Markdown for a pull-request comment.
pub fn lint_markdown(report: &LintReport) -> String {
    let counts = report.counts();
    let n = |sev| counts.get(&sev).copied().unwrap_or(0);
    let mut s = format!(
        "## migsafe lint\n\n**{}** migrations · **{}** errors · **{}** warnings · **{}** info · highest risk **{}**\n\n",
        report.migrations.len(),
        n(Severity::Error),
        n(Severity::Warning),
        n(Severity::Info),
        report.max_risk().as_str().to_uppercase()
    );
    s.push_str("| Migration | Risk | Downtime | Findings | Approvals |\n|---|---|---|---|---|\n");
    for m in &report.migrations {
        let icon = match m.risk.level {
            RiskLevel::Low => "🟢",
            RiskLevel::Medium => "🟡",
            RiskLevel::High => "🔴",
        };
        let approvals = if m.risk.approvals.is_empty() { "none".to_string() } else { m.risk.approvals.join(" + ") };
        s.push_str(&format!(
            "| `{}` | {icon} {} | {} | {} | {} |\n",
            md_cell(&m.file),
            m.risk.level,
            m.risk.downtime,
            m.findings.len() + m.errors.len(),
            approvals
        ));
    }
    for m in report.migrations.iter().filter(|m| !m.findings.is_empty() || !m.errors.is_empty()) {
        s.push_str(&format!("\n### `{}`\n\n", md_cell(&m.file)));
        for e in &m.errors {
            s.push_str(&format!("- ❌ **syntax error** at line {}, column {}: {}\n", e.line, e.column, e.message));
        }
        for f in &m.findings {
            let icon = match f.severity {
                Severity::Error => "❌",
                Severity::Warning => "⚠️",
                Severity::Info => "ℹ️",
            };
            s.push_str(&format!("- {icon} **{}** (line {}): {}\n", f.rule, f.line, f.message));
            s.push_str(&format!(
                "  <details><summary>How to fix</summary>\n\n  ```sql\n{}\n  ```\n  </details>\n",
                indent_block(&f.help)
            ));
        }
        if !m.risk.reasons.is_empty() {
            s.push_str(&format!("\nRisk **{}**: {}\n", m.risk.level, m.risk.reasons.join("; ")));
        }
    }
    s
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn indent_block(s: &str) -> String {
    s.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n")
}
