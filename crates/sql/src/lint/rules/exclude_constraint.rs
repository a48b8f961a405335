//! EXCLUDE constraints on existing tables: no online way to add one.

use super::{existing_table_actions, violation, Cx, Violation};
use crate::model::{AlterAction, ConstraintKind};

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    let Some((table, actions)) = existing_table_actions(cx) else {
        return;
    };
    if actions.iter().any(|a| matches!(a, AlterAction::AddConstraint(c) if c.kind == ConstraintKind::Exclude)) {
        out.push(violation(
            format!(
                "adding an EXCLUDE constraint builds its index and checks every pair of conflicting rows while \
                 holding an ACCESS EXCLUSIVE lock on {}: every query on the table is blocked for the whole build, and \
                 PostgreSQL has no CONCURRENTLY or USING INDEX form for it",
                cx.sized(table)
            ),
            "schedule it in a maintenance window sized by a rehearsal (migsafe rehearse --rows N), or create the \
             table with the constraint and move the data in batches",
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn exclude_on_existing_table() {
        let f =
            lint("ALTER TABLE bookings ADD CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&);");
        assert_eq!(ids(&f), vec!["exclude-constraint"]);
        assert!(lint("CREATE TABLE b (room int, during tstzrange, EXCLUDE USING gist (room WITH =, during WITH &&));")
            .is_empty());
    }
}
