//! `'now'`, `'today'`… stored in a view, default, check or index: frozen at creation time.

use super::{violation, Cx, Violation};

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    let frozen = cx.stmt.frozen_times();
    if frozen.is_empty() {
        return;
    }
    out.push(violation(
        format!(
            "{} is turned into a fixed time when this {} runs and stored that way: it keeps meaning the moment \
             the migration ran, forever, and every database the migration runs on gets a different definition",
            frozen.join(", "),
            cx.stmt.tag
        ),
        "use the function, evaluated each time: now() or CURRENT_TIMESTAMP for 'now', CURRENT_DATE for 'today', \
         CURRENT_DATE + 1 for 'tomorrow', CURRENT_DATE - 1 for 'yesterday'",
    ));
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    #[test]
    fn frozen_time_in_stored_expressions() {
        let f = lint(
            "CREATE VIEW recent AS SELECT * FROM post WHERE published > ('now'::timestamp - '1 month'::interval);",
        );
        assert_eq!(ids(&f), vec!["frozen-time"]);
        assert!(f[0].message.contains("'now'::timestamp"), "{}", f[0].message);
        assert!(f[0].help.contains("now()"));
        let f = lint("CREATE MATERIALIZED VIEW m AS SELECT date 'today' AS d;");
        assert!(ids(&f).contains(&"frozen-time"), "{f:?}");
        let f =
            lint("CREATE TABLE t (id bigint, at timestamptz DEFAULT 'now', d date NOT NULL DEFAULT 'today'::date);");
        let msg = &f.iter().find(|f| f.rule == "frozen-time").expect("found").message;
        assert!(msg.contains("DEFAULT 'now' on a timestamptz column") && msg.contains("'today'::date"), "{msg}");
        for sql in [
            "ALTER TABLE t ADD COLUMN seen timestamp DEFAULT 'now';",
            "ALTER TABLE t ALTER COLUMN seen SET DEFAULT 'now'::timestamp;",
            "ALTER TABLE t ADD CONSTRAINT past CHECK (at <= 'tomorrow'::date) NOT VALID;",
            "CREATE INDEX CONCURRENTLY t_recent ON t (id) WHERE at > 'yesterday'::timestamptz;",
            "CREATE POLICY fresh ON t USING (at > timestamp 'now' - interval '1 day');",
        ] {
            assert!(ids(&lint(sql)).contains(&"frozen-time"), "{sql}");
        }
    }

    #[test]
    fn evaluated_times_and_plain_strings_are_fine() {
        for sql in [
            "CREATE VIEW recent AS SELECT * FROM post WHERE published > now() - interval '1 month';",
            "CREATE TABLE t (id bigint, at timestamptz DEFAULT CURRENT_TIMESTAMP, label text DEFAULT 'now');",
            "SELECT 'now'::timestamp;",
            "UPDATE post SET seen = 'now'::timestamptz WHERE id = 1;",
        ] {
            assert!(!ids(&lint(sql)).contains(&"frozen-time"), "{sql}");
        }
    }
}
