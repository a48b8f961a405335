//! Output renderers. Each takes a library report and returns text; nothing here decides
//! anything.

pub mod apply;
pub mod fleet;
mod lint;
mod report;

pub use lint::{
    lint_github_migration, lint_human_migration, lint_human_summary, lint_json_migration, lint_junit, lint_markdown,
    lint_sarif, LintTotals,
};
pub use report::{report_html, report_human, report_junit, report_markdown};

use anstyle::{AnsiColor, Style};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// Styles used by the human renderers (stripped automatically when not a terminal).
pub mod style {
    use super::*;
    /// Errors.
    pub const ERROR: Style = AnsiColor::Red.on_default().bold();
    /// Warnings.
    pub const WARNING: Style = AnsiColor::Yellow.on_default().bold();
    /// Info.
    pub const INFO: Style = AnsiColor::Cyan.on_default().bold();
    /// Success.
    pub const OK: Style = AnsiColor::Green.on_default().bold();
    /// Structure (gutters, arrows).
    pub const DIM: Style = AnsiColor::Blue.on_default().bold();
    /// Emphasis.
    pub const BOLD: Style = Style::new().bold();
}

/// `text` in `style` (ANSI codes; anstream strips them when the output is not a terminal).
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

/// Pretty JSON of any report.
pub fn json<T: Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    s.push('\n');
    s
}

/// Write `text` to `path`, or to standard output (colour stripped when not a terminal).
pub fn emit(text: &str, path: Option<&Path>) -> std::io::Result<()> {
    match path {
        Some(p) => {
            let plain = anstream::adapter::strip_str(text).to_string();
            std::fs::write(p, plain)
        }
        None => {
            let mut out = anstream::stdout();
            // A closed pipe (`| head`) is the reader's choice, not an error.
            match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => other,
            }
        }
    }
}

/// Where streamed output goes: a file (plain text) or standard output (colour when a terminal).
pub enum Sink {
    /// A file.
    File(std::io::BufWriter<std::fs::File>),
    /// Standard output.
    Stdout(anstream::AutoStream<std::io::Stdout>),
}

impl Sink {
    /// Open `path`, or standard output.
    pub fn open(path: Option<&Path>) -> std::io::Result<Sink> {
        Ok(match path {
            Some(p) => Sink::File(std::io::BufWriter::new(std::fs::File::create(p)?)),
            None => Sink::Stdout(anstream::stdout()),
        })
    }

    /// Write a piece (a closed pipe is not an error).
    pub fn write(&mut self, text: &str) -> std::io::Result<()> {
        let r = match self {
            Sink::File(f) => f.write_all(anstream::adapter::strip_str(text).to_string().as_bytes()),
            Sink::Stdout(o) => o.write_all(text.as_bytes()),
        };
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }

    /// Flush.
    pub fn finish(mut self) -> std::io::Result<()> {
        match &mut self {
            Sink::File(f) => f.flush(),
            Sink::Stdout(o) => match o.flush() {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => other,
            },
        }
    }
}

/// Print an error and its whole cause chain to standard error.
pub fn print_error(e: &anyhow::Error) {
    let mut err = anstream::stderr();
    let _ = writeln!(err, "{} {e}", paint(style::ERROR, "error:"));
    for cause in e.chain().skip(1) {
        let _ = writeln!(err, "  {} {cause}", paint(style::DIM, "caused by:"));
    }
}

/// A compiler-style source snippet: `--> file:line:col`, the line, and a caret underline.
pub fn snippet(file: &str, line: usize, column: usize, source_line: &str, underline_to_end: bool) -> String {
    let gutter = line.to_string().len();
    let pad = " ".repeat(gutter);
    let col0 = column.saturating_sub(1);
    let visible: String = source_line.chars().map(|c| if c == '\t' { ' ' } else { c }).collect();
    let width = if underline_to_end { visible.chars().count().saturating_sub(col0).max(1) } else { 1 };
    format!(
        "{pad}{} {file}:{line}:{column}\n{pad} {}\n{} {} {visible}\n{pad} {} {}{}\n",
        paint(style::DIM, "-->"),
        paint(style::DIM, "|"),
        paint(style::DIM, line),
        paint(style::DIM, "|"),
        paint(style::DIM, "|"),
        " ".repeat(col0),
        paint(style::ERROR, "^".repeat(width)),
    )
}

/// Escape text for XML content and attributes.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

/// Read a file's line for a snippet (empty when unreadable).
pub fn source_line(file: &str, line: usize) -> String {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.lines().nth(line.saturating_sub(1)).map(str::to_string))
        .unwrap_or_default()
}
