//! ALTER TABLE … DISABLE TRIGGER: it is not per-session.

use super::{existing_table_actions, violation, Cx, Violation};
use crate::model::{AlterAction, TriggerTarget};

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    let Some((table, actions)) = existing_table_actions(cx) else {
        return;
    };
    for a in actions {
        let AlterAction::Trigger { enable: false, target } = a else {
            continue;
        };
        let (what, effect) = match target {
            TriggerTarget::All => (
                "ALL triggers".to_string(),
                "including the internal ones that enforce foreign keys, so rows written meanwhile by any session are \
                 not checked and orphans can appear",
            ),
            TriggerTarget::User => ("all user triggers".to_string(), "so writes by every session skip them"),
            TriggerTarget::Named(n) => (format!("trigger {n}"), "so writes by every session skip it"),
        };
        out.push(violation(
            format!(
                "disabling {what} on {table} is not limited to this migration: it takes a SHARE ROW EXCLUSIVE lock \
                 (blocking writes) and stays in effect for the whole application until re-enabled, {effect}"
            ),
            "to skip triggers only for this migration's own statements, use SET LOCAL session_replication_role = \
             replica inside the transaction instead (needs superuser), and run `migsafe verify` afterwards",
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn disable_trigger() {
        let f = lint("ALTER TABLE messages DISABLE TRIGGER ALL;");
        assert_eq!(ids(&f), vec!["disable-trigger"]);
        assert!(f[0].message.contains("foreign keys"));
        assert!(lint("ALTER TABLE messages ENABLE TRIGGER ALL;").is_empty());
    }
}
