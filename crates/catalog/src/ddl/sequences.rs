//! Sequences: their options as DDL.

use super::*;

/// The parameters of a sequence, as CREATE and ALTER SEQUENCE take them.
pub(super) fn sequence_options(q: &Sequence) -> String {
    let o = &q.options;
    format!(
        "AS {} INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {} {}",
        q.data_type,
        o.increment,
        o.min,
        o.max,
        o.start,
        o.cache,
        if o.cycle { "CYCLE" } else { "NO CYCLE" }
    )
}

/// `CREATE SEQUENCE` for a sequence as the snapshot has it (ownership, comment and grants
/// apart).
pub fn create_sequence(n: &QName, q: &Sequence) -> String {
    format!("CREATE SEQUENCE {n} {}", sequence_options(q))
}
