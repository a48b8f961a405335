//! Volatility of built-in and common contrib functions, generated from pg_proc by
//! `scripts/gen-function-volatility.sh`. Decides whether `ADD COLUMN … DEFAULT f()` rewrites.

use std::collections::HashSet;
use std::sync::OnceLock;

static VOLATILE: &str = include_str!("data/volatile_functions.txt");
static NON_VOLATILE: &str = include_str!("data/stable_functions.txt");

fn sets() -> &'static (HashSet<&'static str>, HashSet<&'static str>) {
    static SETS: OnceLock<(HashSet<&str>, HashSet<&str>)> = OnceLock::new();
    SETS.get_or_init(|| (VOLATILE.lines().collect(), NON_VOLATILE.lines().collect()))
}

/// `Some(true)` for a volatile built-in (any overload volatile), `Some(false)` for a stable or
/// immutable one, `None` for a function PostgreSQL does not ship (user-defined or unknown).
pub fn builtin_volatile(name: &str) -> Option<bool> {
    let (v, s) = sets();
    if v.contains(name) {
        Some(true)
    } else if s.contains(name) {
        Some(false)
    } else {
        None
    }
}

static CATALOG: &str = include_str!("data/catalog_functions.txt");

/// Whether a function of that name lives in `pg_catalog` (contrib functions such as
/// `uuid_nil` do not: their extension installs them in a schema of its own or `public`).
pub fn in_pg_catalog(name: &str) -> bool {
    static SET: OnceLock<HashSet<&str>> = OnceLock::new();
    SET.get_or_init(|| CATALOG.lines().collect()).contains(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_functions() {
        assert_eq!(builtin_volatile("random"), Some(true));
        assert_eq!(builtin_volatile("gen_random_uuid"), Some(true));
        assert_eq!(builtin_volatile("nextval"), Some(true));
        assert_eq!(builtin_volatile("now"), Some(false));
        assert_eq!(builtin_volatile("lower"), Some(false));
        assert_eq!(builtin_volatile("my_func"), None);
        assert!(in_pg_catalog("lower") && in_pg_catalog("now"));
        assert!(!in_pg_catalog("uuid_nil") && !in_pg_catalog("my_func"));
    }
}
