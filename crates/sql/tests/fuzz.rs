//! No input may panic the parser, the rules or the risk classification: arbitrary text and
//! mutated real migrations (the crates.io corpus and the examples), with bounded case counts
//! so it runs in CI. Every finding must point inside the file.

use proptest::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

use migsafe_sql::lint::{LintOptions, Linter, SourceFile};

fn corpus() -> &'static Vec<String> {
    static C: OnceLock<Vec<String>> = OnceLock::new();
    C.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut out = Vec::new();
        for dir in ["corpus/crates-io", "examples/nchat/migrations", "examples/unsafe/migrations"] {
            let mut files: Vec<_> = std::fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()).collect();
            files.sort();
            for f in files {
                if let Ok(t) = std::fs::read_to_string(&f) {
                    out.push(t);
                }
            }
        }
        assert!(out.len() > 500, "corpus not found");
        out
    })
}

fn check(text: &str) {
    for version in [11, 15, 18] {
        let mut linter = Linter::new(LintOptions { pg_version: version, ..Default::default() });
        let out = linter.lint(SourceFile { path: "fuzz.sql", source: text });
        for f in &out.findings {
            assert!(f.span.end <= text.len() && f.span.start <= f.span.end, "{f:?}");
            assert!(f.line >= 1 && f.column >= 1);
            assert!(!f.message.is_empty() && !f.help.is_empty());
        }
        for e in &out.errors {
            assert!(e.offset <= text.len());
        }
        for s in &out.parsed.statements {
            assert!(text.is_char_boundary(s.span.start) && text.is_char_boundary(s.span.end), "{s:?}");
        }
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    Duplicate(usize, usize),
    Truncate(usize),
}

fn apply(text: &str, m: &Mutation) -> String {
    let clamp = |i: usize| {
        let mut i = i % (text.len() + 1);
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    match m {
        Mutation::Delete(a, len) => {
            let a = clamp(*a);
            let b = clamp(a + len);
            let (a, b) = (a.min(b), a.max(b));
            format!("{}{}", &text[..a], &text[b..])
        }
        Mutation::Insert(a, s) => {
            let a = clamp(*a);
            format!("{}{}{}", &text[..a], s, &text[a..])
        }
        Mutation::Duplicate(a, len) => {
            let a = clamp(*a);
            let b = clamp(a + len);
            let (a, b) = (a.min(b), a.max(b));
            format!("{}{}{}", &text[..b], &text[a..b], &text[b..])
        }
        Mutation::Truncate(a) => text[..clamp(*a)].to_string(),
    }
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(";".to_string()),
        Just("'".to_string()),
        Just("$$".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just("--".to_string()),
        Just("/*".to_string()),
        Just(" CONCURRENTLY ".to_string()),
        Just(" NOT VALID ".to_string()),
        Just(" BEGIN; ".to_string()),
        Just(" COMMIT; ".to_string()),
        Just("ALTER TABLE x ".to_string()),
        Just(" DROP COLUMN ".to_string()),
        Just("\u{0}".to_string()),
        Just("é".to_string()),
        "[a-z_ ,.()]{1,12}",
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0usize..64).prop_map(|(a, l)| Mutation::Delete(a, l)),
        (any::<usize>(), token()).prop_map(|(a, s)| Mutation::Insert(a, s)),
        (any::<usize>(), 0usize..128).prop_map(|(a, l)| Mutation::Duplicate(a, l)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        check(&text);
    }

    #[test]
    fn sql_shaped_text_never_panics(parts in proptest::collection::vec(token(), 0..40)) {
        check(&parts.concat());
    }

    #[test]
    fn mutated_real_migrations_never_panic(pick in any::<usize>(), muts in proptest::collection::vec(mutation(), 1..6)) {
        let c = corpus();
        let mut text = c[pick % c.len()].clone();
        for m in &muts {
            text = apply(&text, m);
        }
        check(&text);
    }
}

#[test]
fn every_real_migration_lints_cleanly_at_every_version() {
    for text in corpus() {
        check(text);
    }
}
