//! PostgreSQL 17 evaluates index expressions and predicates, and materialized view queries,
//! with `search_path = pg_catalog, pg_temp` (CREATE INDEX, REINDEX, REFRESH, CLUSTER, VACUUM,
//! ANALYZE, and pg_restore). A SQL function they call whose body names a table or a
//! non-catalog function without its schema then fails with "does not exist": the migration
//! breaks on 17+, and on an older server the next major upgrade or restore does.

use super::{violation, Cx, Violation};

pub(crate) fn check(cx: &Cx, out: &mut Vec<Violation>) {
    let calls = cx.stmt.maintenance_calls();
    for f in calls.iter().filter(|f| f.schema.is_none() || f.schema.as_deref() == Some(cx.schema.search_schema())) {
        let Some(names) = cx.schema.search_path_reliant(&f.name) else { continue };
        out.push(violation(
            format!(
                "this {} calls {}(), whose body names {} without a schema: PostgreSQL 17 and later evaluate it with \
                 search_path = pg_catalog, pg_temp, so the build fails with \"does not exist\" there (and on an \
                 older server, so do REINDEX, REFRESH and pg_restore after an upgrade to 17)",
                cx.stmt.tag,
                f.name,
                names.join(", ")
            ),
            format!(
                "pin the function's search_path: ALTER FUNCTION {}(…) SET search_path = public (or the schema \
                 its names live in), or qualify the names in its body",
                f.name
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use crate::lint::testing::*;

    // sqlxmq's setup: a partial index calls a SQL function that calls uuid-ossp's uuid_nil().
    const FUNC: &str = "CREATE FUNCTION mq_uuid_exists(id uuid) RETURNS boolean AS $$\n\
                        SELECT id IS NOT NULL AND id != uuid_nil()\n$$ LANGUAGE SQL IMMUTABLE;\n";

    #[test]
    fn an_index_calling_a_search_path_reliant_function_is_flagged() {
        let f = lint(&format!(
            "{FUNC}CREATE TABLE mq_msgs (id uuid, after_message_id uuid);\n\
             CREATE INDEX ON mq_msgs (id) WHERE NOT mq_uuid_exists(after_message_id);"
        ));
        let v = f.iter().find(|v| v.rule == "index-search-path").expect("flagged");
        assert!(v.message.contains("mq_uuid_exists()") && v.message.contains("uuid_nil()"), "{}", v.message);
        let f = lint(
            "CREATE FUNCTION total(u int) RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM orders WHERE user_id = u';\n\
             CREATE MATERIALIZED VIEW m AS SELECT id, total(id) FROM users;",
        );
        let v = f.iter().find(|v| v.rule == "index-search-path").expect("flagged");
        assert!(v.message.contains("orders"), "{}", v.message);
    }

    #[test]
    fn pinned_qualified_atomic_and_catalog_only_functions_are_fine() {
        for func in [
            // SET search_path pins it.
            "CREATE FUNCTION f(id uuid) RETURNS boolean LANGUAGE sql IMMUTABLE SET search_path = public AS $$ SELECT id != uuid_nil() $$;",
            // Qualified.
            "CREATE FUNCTION f(id uuid) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT id != public.uuid_nil() $$;",
            // Only pg_catalog functions, and a WITH name.
            "CREATE FUNCTION f(id uuid) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ WITH x AS (SELECT 1 AS a) SELECT lower(id::text) <> '' FROM x $$;",
            // BEGIN ATOMIC: names are bound when it is created.
            "CREATE FUNCTION f(id uuid) RETURNS boolean LANGUAGE sql IMMUTABLE BEGIN ATOMIC SELECT id != uuid_nil(); END;",
        ] {
            let f = lint(&format!("{func}\nCREATE TABLE t (id uuid);\nCREATE INDEX ON t (id) WHERE f(id);"));
            assert!(!ids(&f).contains(&"index-search-path"), "{func}: {f:?}");
        }
    }
}
