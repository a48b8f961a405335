//! Directives written as SQL comments: how a file runs, the guide's header lines, and lint
//! suppressions.

use serde::Serialize;

use crate::parse::Comment;
use crate::span::Span;

/// Header directives of a migration file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// `-- migsafe:no-transaction` (also sqlx's `-- no-transaction` and dbmate's
    /// `transaction:false`): run statement by statement, outside a transaction.
    pub no_transaction: bool,
    /// The guide's `-- Complexity: LOW|MEDIUM|HIGH` header.
    pub complexity: Option<String>,
    /// The guide's `-- Estimated Duration: …` header.
    pub estimated_duration: Option<String>,
}

impl Directives {
    /// Read the directives from the comment lines of `text` (anywhere in the file: headers
    /// are conventionally at the top, but a directive is never ignored because of where it is).
    pub fn parse(text: &str) -> Directives {
        let mut d = Directives::default();
        for line in text.lines() {
            let Some(body) = line.trim().strip_prefix("--") else {
                continue;
            };
            let body = body.trim();
            let lower = body.to_ascii_lowercase();
            let dbmate_off = lower.starts_with("migrate:") && lower.contains("transaction:false");
            if lower == "migsafe:no-transaction" || lower == "no-transaction" || dbmate_off {
                d.no_transaction = true;
            } else if let Some(v) = strip_key(body, "complexity:") {
                d.complexity = Some(v.to_ascii_uppercase());
            } else if let Some(v) = strip_key(body, "estimated duration:") {
                d.estimated_duration = Some(v.to_string());
            }
        }
        d
    }
}

fn strip_key<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let head = body.get(..key.len())?;
    if head.eq_ignore_ascii_case(key) {
        Some(body[key.len()..].trim()).filter(|v| !v.is_empty())
    } else {
        None
    }
}

/// A `-- migsafe:ignore RULE reason` or `-- migsafe:ignore-file RULE reason` comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suppression {
    /// Rule ids suppressed (comma-separated in the comment).
    pub rules: Vec<String>,
    /// Why, as written.
    pub reason: String,
    /// Applies to the whole file.
    pub whole_file: bool,
    /// Where the comment is.
    pub span: Span,
}

/// Every suppression comment among `comments`.
pub fn suppressions(comments: &[Comment]) -> Vec<Suppression> {
    comments
        .iter()
        .filter_map(|c| {
            let (whole_file, rest) = if let Some(r) = c.text.strip_prefix("migsafe:ignore-file") {
                (true, r)
            } else if let Some(r) = c.text.strip_prefix("migsafe:ignore") {
                (false, r)
            } else {
                return None;
            };
            let rest = rest.trim();
            let (ids, reason) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            Some(Suppression {
                rules: ids.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
                reason: reason.trim().to_string(),
                whole_file,
                span: c.span,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_sql;

    #[test]
    fn header_directives() {
        let d = Directives::parse(
            "-- migsafe:no-transaction\n-- Complexity: medium\n-- Estimated Duration: 30 seconds\nSELECT 1;",
        );
        assert!(d.no_transaction);
        assert_eq!(d.complexity.as_deref(), Some("MEDIUM"));
        assert_eq!(d.estimated_duration.as_deref(), Some("30 seconds"));
        assert!(Directives::parse("-- migrate:up transaction:false\n").no_transaction);
        assert!(!Directives::parse("SELECT '-- migsafe:no-transaction'").no_transaction);
    }

    #[test]
    fn suppression_comments() {
        let p = parse_sql("-- migsafe:ignore drop-column,rename-column app no longer reads it\nSELECT 1;\n-- migsafe:ignore-file prefer-text\n");
        let s = suppressions(&p.comments);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].rules, vec!["drop-column", "rename-column"]);
        assert_eq!(s[0].reason, "app no longer reads it");
        assert!(!s[0].whole_file);
        assert!(s[1].whole_file);
    }
}
