//! Data-integrity checks: orphaned rows behind every foreign key (NOT VALID ones included,
//! MATCH SIMPLE and FULL semantics), constraints still waiting for validation and whether rows
//! violate them, invalid indexes and the duplicates behind an invalid unique index, sequences
//! behind their column's maximum. Read-only: plain SELECTs, so at most ACCESS SHARE locks.

use postgres::Client;
use serde::Serialize;

use std::collections::BTreeMap;

use crate::model::{QName, Snapshot, TableKind};
use crate::read::{not_extension_member, ns_filter, SnapshotOptions};
use crate::CatalogError;

/// What the checks are planned over: the tables a snapshot holds (the same schemas, extension
/// members left out) and their kinds. From a snapshot already read, or read alone in one query,
/// when nothing else needs the whole snapshot (the checklist after `apply`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// `server_version_num`.
    pub server_version: u32,
    /// The tables, with their kinds.
    pub tables: BTreeMap<QName, TableKind>,
}

impl From<&Snapshot> for Scope {
    fn from(snap: &Snapshot) -> Scope {
        Scope {
            server_version: snap.server_version,
            tables: snap.tables.iter().map(|(n, t)| (n.clone(), t.kind)).collect(),
        }
    }
}

impl Scope {
    /// Read the tables a snapshot with `opts` would hold (the condition `read_relations` uses).
    pub fn read(client: &mut Client, opts: &SnapshotOptions) -> Result<Scope, CatalogError> {
        let server_version: i32 = client.query_one("SELECT current_setting('server_version_num')::int", &[])?.get(0);
        let sql = format!(
            "SELECT n.nspname::text, c.relname::text, c.relkind::text FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p','f') AND {} AND {}",
            ns_filter("n.oid", opts),
            not_extension_member("c.oid", "pg_class")
        );
        let tables = client
            .query(&sql, &[])?
            .iter()
            .map(|r| {
                let kind = TableKind::from_relkind(r.get::<_, String>(2).chars().next().unwrap_or('r'));
                (QName::new(r.get::<_, String>(0), r.get::<_, String>(1)), kind)
            })
            .collect();
        Ok(Scope { server_version: server_version as u32, tables })
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Check name: `foreign_key_orphans`, `not_valid_constraint`, `invalid_index`,
    /// `unique_duplicates`, `sequence_behind`, `custom`.
    pub check: String,
    /// The object checked.
    pub object: String,
    /// Passed.
    pub ok: bool,
    /// Offending rows (or 1 for a failed object-level check).
    pub count: i64,
    /// Up to five offending keys.
    pub sample: Vec<String>,
    /// What it means.
    pub detail: String,
    /// A warning rather than a failure (e.g. a NOT VALID constraint that rows satisfy).
    pub warning: bool,
}

/// A check to run: a name, the object, and how.
#[derive(Debug, Clone)]
pub struct PlannedCheck {
    /// Check name.
    pub check: String,
    /// Object.
    pub object: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Orphans {
        child: QName,
        parent: QName,
        cols: Vec<String>,
        ref_cols: Vec<String>,
        full: bool,
        validated: bool,
        /// False for a NOT ENFORCED constraint (PostgreSQL 18): violations are then expected to
        /// be possible and reported as warnings.
        enforced: bool,
        /// The child has a valid, non-partial btree index led by the key columns (the parent
        /// always has a unique one on the referenced columns).
        indexed: bool,
    },
    NotValidCheck {
        table: QName,
        expr: String,
        enforced: bool,
    },
    InvalidIndex {
        index: QName,
        table: QName,
        unique_cols: Option<(QName, Vec<String>)>,
    },
    SequenceBehind {
        seq: QName,
        table: QName,
        column: String,
    },
}

/// A NOT ENFORCED constraint no row breaks.
const NOT_ENFORCED_CLEAN: &str = "NOT ENFORCED: no row violates it today, but PostgreSQL does not check new ones";
/// A NOT VALID constraint no row breaks.
const NOT_VALID_CLEAN: &str = "NOT VALID: no row violates it; VALIDATE CONSTRAINT can run";

fn qi(s: &str) -> String {
    migsafe_sql::quote_ident(s)
}

/// Plan every integrity check the database needs (one catalog read).
pub fn plan_checks(client: &mut Client, snap: &Scope) -> Result<Vec<PlannedCheck>, CatalogError> {
    let mut out = Vec::new();
    // The same four catalog queries after every migration of a rehearsal: prepared once.
    let client = &mut crate::statements::Reusing::new(client)?;
    // NOT ENFORCED constraints exist from PostgreSQL 18 on.
    let enforced = if snap.server_version >= 180000 { "co.conenforced" } else { "true" };
    // Foreign keys, with columns and match type, from pg_constraint directly.
    let rows = client.query(
        &format!("SELECT {enforced}, n.nspname::text, c.relname::text, co.conname::text, fn.nspname::text, fc.relname::text, co.confmatchtype::text, co.convalidated, \
           ARRAY(SELECT a.attname::text FROM unnest(co.conkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.n ORDER BY k.i), \
           ARRAY(SELECT a.attname::text FROM unnest(co.confkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.n ORDER BY k.i), \
           EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam \
                   WHERE i.indrelid = co.conrelid AND i.indisvalid AND i.indpred IS NULL AND am.amname = 'btree' \
                     AND (i.indkey::int2[])[0:cardinality(co.conkey) - 1] @> co.conkey \
                     AND (i.indkey::int2[])[0:cardinality(co.conkey) - 1] <@ co.conkey) \
         FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_class fc ON fc.oid = co.confrelid JOIN pg_namespace fn ON fn.oid = fc.relnamespace \
         WHERE co.contype = 'f' AND co.conparentid = 0 ORDER BY 2, 3, 4"))?;
    for r in rows {
        let child = QName::new(r.get::<_, String>(1), r.get::<_, String>(2));
        if !snap.tables.contains_key(&child) {
            continue;
        }
        let con: String = r.get(3);
        out.push(PlannedCheck {
            check: "foreign_key_orphans".into(),
            object: format!("{child}.{}", qi(&con)),
            kind: Kind::Orphans {
                parent: QName::new(r.get::<_, String>(4), r.get::<_, String>(5)),
                full: r.get::<_, String>(6) == "f",
                validated: r.get(7),
                enforced: r.get(0),
                cols: r.get(8),
                ref_cols: r.get(9),
                indexed: r.get(10),
                child,
            },
        });
    }
    // CHECK constraints waiting for validation.
    let rows = client.query(
        &format!(
            "SELECT n.nspname::text, c.relname::text, co.conname::text, pg_get_expr(co.conbin, co.conrelid), {enforced} \
             FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE co.contype = 'c' AND NOT co.convalidated ORDER BY 1, 2, 3"
        ))?;
    for r in rows {
        let table = QName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        if !snap.tables.contains_key(&table) {
            continue;
        }
        let con: String = r.get(2);
        out.push(PlannedCheck {
            check: "not_valid_constraint".into(),
            object: format!("{table}.{}", qi(&con)),
            kind: Kind::NotValidCheck { table, expr: r.get(3), enforced: r.get(4) },
        });
    }
    // Invalid or not-ready indexes.
    let rows = client.query(
        "SELECT n.nspname::text, ic.relname::text, tn.nspname::text, tc.relname::text, i.indisunique, \
           ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o), \
           i.indexprs IS NULL \
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace \
         JOIN pg_class tc ON tc.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace \
         WHERE NOT (i.indisvalid AND i.indisready) AND n.nspname NOT IN ('pg_catalog', 'pg_toast') ORDER BY 1, 2")?;
    for r in rows {
        let index = QName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        let table = QName::new(r.get::<_, String>(2), r.get::<_, String>(3));
        let unique: bool = r.get(4);
        let plain: bool = r.get(6);
        let cols: Vec<String> = r.get(5);
        out.push(PlannedCheck {
            check: "invalid_index".into(),
            object: index.to_string(),
            kind: Kind::InvalidIndex {
                index,
                table: table.clone(),
                unique_cols: (unique && plain && !cols.is_empty()).then_some((table, cols)),
            },
        });
    }
    // Sequences owned by a column (serial and identity).
    let rows = client.query(
        "SELECT sn.nspname::text, s.relname::text, tn.nspname::text, t.relname::text, a.attname::text \
         FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' JOIN pg_namespace sn ON sn.oid = s.relnamespace \
         JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
         JOIN pg_type ty ON ty.oid = a.atttypid \
         WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') \
           AND d.refobjsubid > 0 AND ty.typname IN ('int2', 'int4', 'int8') ORDER BY 1, 2")?;
    for r in rows {
        let table = QName::new(r.get::<_, String>(2), r.get::<_, String>(3));
        if snap.tables.get(&table).is_none_or(|k| *k == TableKind::Foreign) {
            continue;
        }
        let seq = QName::new(r.get::<_, String>(0), r.get::<_, String>(1));
        out.push(PlannedCheck {
            check: "sequence_behind".into(),
            object: seq.to_string(),
            kind: Kind::SequenceBehind { seq, table, column: r.get(4) },
        });
    }
    Ok(out)
}

impl PlannedCheck {
    /// The relations whose rows or definition decide the check's result: a check none of
    /// them changed for gives the same result as last time.
    pub fn relations(&self) -> Vec<&QName> {
        match &self.kind {
            Kind::Orphans { child, parent, .. } => vec![child, parent],
            Kind::NotValidCheck { table, .. } => vec![table],
            Kind::InvalidIndex { index, table, .. } => vec![index, table],
            Kind::SequenceBehind { seq, table, .. } => vec![seq, table],
        }
    }
}

fn cols_sql(prefix: &str, cols: &[String]) -> String {
    cols.iter().map(|c| format!("{prefix}.{}", qi(c))).collect::<Vec<_>>().join(", ")
}

fn sample(client: &mut Client, sql: &str) -> Result<Vec<String>, CatalogError> {
    Ok(client.query(sql, &[])?.iter().map(|r| r.get::<_, Option<String>>(0).unwrap_or_default()).collect())
}

impl PlannedCheck {
    /// Run the check.
    pub fn run(&self, client: &mut Client) -> Result<CheckResult, CatalogError> {
        let mut res = CheckResult {
            check: self.check.clone(),
            object: self.object.clone(),
            ok: true,
            count: 0,
            sample: vec![],
            detail: String::new(),
            warning: false,
        };
        match &self.kind {
            Kind::Orphans { child, parent, cols, ref_cols, full, validated, enforced, indexed } => {
                let join = cols
                    .iter()
                    .zip(ref_cols)
                    .map(|(c, p)| format!("p.{} = c.{}", qi(p), qi(c)))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                let all_set = cols.iter().map(|c| format!("c.{} IS NOT NULL", qi(c))).collect::<Vec<_>>().join(" AND ");
                let some_set = cols.iter().map(|c| format!("c.{} IS NOT NULL", qi(c))).collect::<Vec<_>>().join(" OR ");
                // MATCH SIMPLE: a row with any NULL key column references nothing. MATCH FULL:
                // all NULL, or all set and found.
                let bad = if *full {
                    format!("(({all_set}) AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {join})) OR (({some_set}) AND NOT ({all_set}))")
                } else {
                    format!("({all_set}) AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {join})")
                };
                // With an index on both sides the anti-join walks the two indexes in order (a
                // merge anti-join, no hash table to build); without one on the child, the
                // planner's hash anti-join reads each table once.
                if *indexed {
                    client.batch_execute("SET enable_hashjoin = off")?;
                }
                let counted = client.query_one(&format!("SELECT count(*) FROM {child} c WHERE {bad}"), &[]);
                if *indexed {
                    client.batch_execute("RESET enable_hashjoin")?;
                }
                let n: i64 = counted?.get(0);
                res.count = n;
                res.ok = n == 0 || !enforced;
                if n > 0 {
                    let key = format!("concat_ws(', ', {})", cols_sql("c", cols));
                    res.sample = sample(client, &format!("SELECT ({key})::text FROM {child} c WHERE {bad} LIMIT 5"))?;
                    res.warning = !enforced;
                    res.detail = format!(
                        "{n} rows of {child} reference {parent} rows that do not exist{}",
                        if !enforced {
                            " (the constraint is NOT ENFORCED, so PostgreSQL lets them in; ALTER CONSTRAINT … ENFORCED \
                             will fail until they are fixed)"
                        } else if *validated {
                            " (the constraint is validated: rows were written with checks off)"
                        } else {
                            " (the constraint is NOT VALID: VALIDATE CONSTRAINT will fail until they are fixed)"
                        }
                    );
                } else if !enforced {
                    res.detail = NOT_ENFORCED_CLEAN.into();
                } else if !validated {
                    res.warning = true;
                    res.detail = NOT_VALID_CLEAN.into();
                } else {
                    res.detail = "no orphaned rows".into();
                }
            }
            Kind::NotValidCheck { table, expr, enforced } => {
                let bad = format!("({expr}) IS FALSE");
                let n: i64 = client.query_one(&format!("SELECT count(*) FROM {table} WHERE {bad}"), &[])?.get(0);
                res.count = n;
                if n > 0 {
                    res.sample = sample(client, &format!("SELECT t::text FROM {table} t WHERE {bad} LIMIT 5"))?;
                }
                // A NOT ENFORCED constraint's violations are warnings; a NOT VALID one's fail.
                res.ok = n == 0 || !enforced;
                res.warning = if *enforced { n == 0 } else { n > 0 };
                res.detail = match (*enforced, n > 0) {
                    (false, true) => format!(
                        "NOT ENFORCED and violated by {n} rows: PostgreSQL does not check it, so nothing stops them"
                    ),
                    (false, false) => NOT_ENFORCED_CLEAN.into(),
                    (true, true) => format!(
                        "NOT VALID and violated by {n} rows: VALIDATE CONSTRAINT will fail until they are fixed"
                    ),
                    (true, false) => NOT_VALID_CLEAN.into(),
                };
            }
            Kind::InvalidIndex { index, unique_cols, .. } => {
                res.ok = false;
                res.count = 1;
                res.detail = format!(
                    "index {index} is INVALID (a failed CREATE INDEX CONCURRENTLY leaves one): queries do not use it but \
                     writes still maintain it; drop it and build it again"
                );
                if let Some((table, cols)) = unique_cols {
                    let key = cols_sql("t", cols);
                    let dup_sql = format!(
                        "SELECT ({}) ::text FROM {table} t GROUP BY {key} HAVING count(*) > 1 LIMIT 5",
                        format_args!("concat_ws(', ', {key})")
                    );
                    let dups = sample(client, &dup_sql)?;
                    if !dups.is_empty() {
                        let n: i64 = client
                            .query_one(&format!("SELECT count(*) FROM (SELECT 1 FROM {table} t GROUP BY {key} HAVING count(*) > 1) d"), &[])?
                            .get(0);
                        res.count = n;
                        res.sample = dups;
                        res.detail.push_str(&format!("; {n} duplicate keys stop the unique index from being built"));
                    }
                }
            }
            Kind::SequenceBehind { seq, table, column } => {
                let row = client.query_one(
                    &format!(
                        "SELECT (SELECT max({c})::bigint FROM {table}), (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {seq})",
                        c = qi(column)
                    ),
                    &[],
                )?;
                let max: Option<i64> = row.get(0);
                let last: i64 = row.get(1);
                if let Some(m) = max {
                    if m > last {
                        res.ok = false;
                        res.count = m - last;
                        res.detail = format!(
                            "{seq} will next hand out {} but {table}.{} already holds {m}: inserts will fail with duplicate keys; fix with SELECT setval('{seq}', {m})",
                            last + 1,
                            qi(column)
                        );
                        return Ok(res);
                    }
                }
                res.detail = "sequence is ahead of the column".into();
            }
        }
        Ok(res)
    }
}

/// Run a team's own assertion: SQL that must return no rows.
pub fn run_custom(client: &mut Client, name: &str, sql: &str) -> CheckResult {
    let mut res = CheckResult {
        check: "custom".into(),
        object: name.into(),
        ok: true,
        count: 0,
        sample: vec![],
        detail: String::new(),
        warning: false,
    };
    // The simple protocol returns every column as text, whatever its type.
    match client.simple_query(sql) {
        Ok(msgs) => {
            let rows: Vec<String> = msgs
                .iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(r) => Some(
                        (0..r.len()).map(|i| r.get(i).unwrap_or("NULL").to_string()).collect::<Vec<_>>().join(", "),
                    ),
                    _ => None,
                })
                .collect();
            res.count = rows.len() as i64;
            res.ok = rows.is_empty();
            res.detail = if res.ok {
                "returned no rows".into()
            } else {
                format!("returned {} rows (it must return none)", rows.len())
            };
            res.sample = rows.into_iter().take(5).collect();
        }
        Err(e) => {
            res.ok = false;
            res.count = 1;
            res.detail = format!("failed: {}", migsafe_pg::db_message(&e));
        }
    }
    res
}

/// Plan and run every check on one connection.
pub fn run_all(client: &mut Client, snap: &Scope) -> Result<Vec<CheckResult>, CatalogError> {
    let plan = plan_checks(client, snap)?;
    plan.iter().map(|p| p.run(client)).collect()
}
