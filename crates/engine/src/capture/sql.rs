//! The SQL of a capture plan: the copy taken before the migration, and the statements that
//! put the data back.

use std::collections::BTreeMap;

use migsafe_catalog::model::{Firing, Snapshot};
use migsafe_catalog::QName;
use migsafe_sql::{quote_ident as qi, quote_literal as ql};

use super::{key_match, row_trigger, CaptureItem, CapturePlan, BACKUP_SCHEMA};

/// `t.k1 = b.k1 AND …`: a row of the table (`t`) and its copy in the capture (`b`).
fn same_key(key: &[String], casts: &BTreeMap<String, String>) -> String {
    key.iter().map(|c| format!("t.{} = {}", qi(c), copied(c, "b.", casts))).collect::<Vec<_>>().join(" AND ")
}

fn col_list(cols: &[String]) -> String {
    cols.iter().map(|c| qi(c)).collect::<Vec<_>>().join(", ")
}

/// What the capture selects: the columns, those in `casts` as text.
fn captured_list(cols: &[String], casts: &BTreeMap<String, String>) -> String {
    cols.iter()
        .map(|c| if casts.contains_key(c) { format!("{c}::text AS {c}", c = qi(c)) } else { qi(c) })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A captured column read back (`prefix` is the copy's alias), cast to its type when it was
/// copied as text.
fn copied(c: &str, prefix: &str, casts: &BTreeMap<String, String>) -> String {
    match casts.get(c) {
        Some(ty) => format!("{prefix}{}::{ty}", qi(c)),
        None => format!("{prefix}{}", qi(c)),
    }
}

impl CapturePlan {
    /// Columns whose values the capture step records (type changes, dropped columns,
    /// updates), by (table, column) as S0 names them, with the copy that holds them.
    pub fn captured_columns(&self) -> BTreeMap<(QName, String), QName> {
        let mut out = BTreeMap::new();
        for item in &self.items {
            if let CaptureItem::Values { table, columns, .. } = item {
                for c in columns {
                    out.insert((table.clone(), c.clone()), item.backup());
                }
            }
        }
        out
    }

    /// The capture SQL (run before the forward migration, in its transaction), or None.
    pub fn capture_sql(&self, migration_file: &str) -> Option<String> {
        if self.items.is_empty() {
            return None;
        }
        let mut s = format!(
            "-- Data capture for {migration_file}\n-- Copies the data the migration destroys (and the keys of tables it adds rows to) into \
             {BACKUP_SCHEMA}, so its rollback can put it back.\n-- `migsafe apply` runs this in the migration's transaction, just before it; `migsafe backup \
             prune-captures` drops the copies after the retention window.\nCREATE SCHEMA IF NOT EXISTS {BACKUP_SCHEMA};\n"
        );
        for item in &self.items {
            let b = item.backup();
            s.push_str(&format!("DROP TABLE IF EXISTS {b};\n"));
            match item {
                CaptureItem::Rows { table, columns, casts, .. } => {
                    s.push_str(&format!(
                        "CREATE TABLE {b} AS SELECT {} FROM {table};\n",
                        captured_list(columns, casts)
                    ));
                }
                CaptureItem::Values { table, columns, key, casts, .. } => {
                    let mut all = key.clone();
                    all.extend(columns.iter().filter(|c| !key.contains(c)).cloned());
                    s.push_str(&format!("CREATE TABLE {b} AS SELECT {} FROM {table};\n", captured_list(&all, casts)));
                }
                CaptureItem::Seeded { table, key, rows, .. } => {
                    s.push_str(&format!(
                        "CREATE TABLE {b} AS SELECT {} FROM {table} WHERE {};\n",
                        col_list(key),
                        key_match(key, rows, "")
                    ));
                }
                CaptureItem::Added { table, key, .. } => {
                    // One more row, keys NULL: the transaction that adds the rows.
                    s.push_str(&format!(
                        "CREATE TABLE {b} AS SELECT {}, NULL::xid8 AS migsafe_xact FROM {table};\n\
                         INSERT INTO {b} (migsafe_xact) VALUES (pg_current_xact_id());\n",
                        col_list(key)
                    ));
                }
            }
            // When it was taken, for `migsafe backup prune-captures`.
            s.push_str(&format!(
                "DO $migsafe$ BEGIN EXECUTE format('COMMENT ON TABLE %s IS %L', {}, 'captured ' || to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') || ' for ' || {}); END $migsafe$;\n",
                ql(&b.to_string()),
                ql(migration_file)
            ));
        }
        Some(s)
    }

    /// Statements that put captured data back (each a no-op when its copy is absent), with the
    /// table's triggers (as S0 had them) off around items that are [`CaptureItem::quiet`].
    ///
    /// Returns, per item, the statement it undoes and its SQL (last statement first), then what
    /// runs after all of them (sequences moved past restored values).
    pub fn restore_sql(&self, s0: &Snapshot) -> (Vec<(usize, Vec<String>)>, Vec<String>) {
        let mut blocks = Vec::new();
        for item in self.items.iter().rev() {
            let mut out = Vec::new();
            let b = item.backup();
            let body = match item {
                CaptureItem::Rows { table, columns, key, casts, reset, .. } => {
                    let cols = col_list(columns);
                    let back = columns.iter().map(|c| copied(c, "b.", casts)).collect::<Vec<_>>().join(", ");
                    let missing = match key {
                        Some(k) => format!(
                            "SELECT {back} FROM {b} b WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {})",
                            same_key(k, casts)
                        ),
                        None => format!("SELECT {back} FROM {b} b EXCEPT ALL SELECT {cols} FROM {table}"),
                    };
                    let insert = format!("INSERT INTO {table} ({cols}) OVERRIDING SYSTEM VALUE {missing};");
                    match key {
                        Some(k) if !reset.is_empty() => format!(
                            "UPDATE {table} t SET {} FROM {b} b WHERE {};\n    {insert}",
                            reset
                                .iter()
                                .map(|c| format!("{} = {}", qi(c), copied(c, "b.", casts)))
                                .collect::<Vec<_>>()
                                .join(", "),
                            same_key(k, casts)
                        ),
                        _ => insert,
                    }
                }
                CaptureItem::Values { table, columns, key, casts, .. } => format!(
                    "UPDATE {table} t SET {} FROM {b} b WHERE {};",
                    columns
                        .iter()
                        .map(|c| format!("{} = {}", qi(c), copied(c, "b.", casts)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    same_key(key, casts)
                ),
                CaptureItem::Seeded { table, rename: Some((back, now)), .. } => format!(
                    "UPDATE {table} SET {} WHERE {} AND EXISTS (SELECT 1 FROM {b});",
                    back.iter().map(|(c, v)| format!("{} = {v}", qi(c))).collect::<Vec<_>>().join(", "),
                    now.iter().map(|(c, v)| format!("{} = {v}", qi(c))).collect::<Vec<_>>().join(" AND ")
                ),
                CaptureItem::Seeded { table, key, rows, .. } => format!(
                    "DELETE FROM {table} t WHERE ({}) AND NOT EXISTS (SELECT 1 FROM {b} b WHERE {});",
                    key_match(key, rows, "t."),
                    same_key(key, &BTreeMap::new())
                ),
                CaptureItem::Added { table, key, .. } => format!(
                    "DELETE FROM {table} t WHERE t.xmin = (SELECT migsafe_xact FROM {b} WHERE migsafe_xact IS NOT NULL)::xid \
                     AND NOT EXISTS (SELECT 1 FROM {b} b WHERE {});",
                    same_key(key, &BTreeMap::new())
                ),
            };
            let table = item.table();
            // BEFORE row triggers shape the row written, and the restore writes rows exactly as
            // captured: they are always off. The others carry the change to other tables: off
            // when the destroying statement did not fire them (see `quiet`).
            let triggers: Vec<(&String, Firing)> = match s0.tables.get(table) {
                Some(t) => t
                    .triggers
                    .iter()
                    .filter(|(_, g)| !g.inherited && g.enabled != Firing::Disabled)
                    .filter(|(_, g)| item.quiet() || row_trigger(&g.definition, "BEFORE", ""))
                    .map(|(n, g)| (n, g.enabled))
                    .collect(),
                None => vec![],
            };
            for (name, _) in &triggers {
                out.push(format!("ALTER TABLE {table} DISABLE TRIGGER {}", qi(name)));
            }
            out.push(format!(
                "DO $migsafe$ BEGIN\n  IF to_regclass({}) IS NOT NULL THEN\n    {body}\n  END IF;\nEND $migsafe$",
                ql(&b.to_string())
            ));
            for (name, enabled) in triggers {
                let how = enabled.enable_clause();
                out.push(format!("ALTER TABLE {table} {how} TRIGGER {}", qi(name)));
            }
            blocks.push((item.statement(), out));
        }
        let mut out = Vec::new();
        // A serial or identity column whose values came back: its sequence must not hand out
        // numbers the restored rows already use (re-adding the column consumed fewer).
        let mut sequenced: Vec<(QName, String)> = Vec::new();
        for item in &self.items {
            let Some(t) = s0.tables.get(item.table()) else { continue };
            for c in item.restored_columns() {
                let Some(col) = t.column(c) else { continue };
                let serial =
                    col.identity.is_some() || col.default.as_deref().is_some_and(|d| d.starts_with("nextval("));
                let entry = (item.table().clone(), c.clone());
                if serial && !sequenced.contains(&entry) {
                    sequenced.push(entry);
                }
            }
        }
        for (table, c) in sequenced {
            out.push(format!(
                "DO $migsafe$ DECLARE s text := pg_get_serial_sequence({t}, {c}); m bigint; BEGIN\n  \
                 IF s IS NOT NULL THEN\n    EXECUTE format('SELECT max(%I) FROM %s', {c}, {t}) INTO m;\n    \
                 IF m > coalesce(pg_sequence_last_value(s::regclass), 0) THEN PERFORM setval(s, m); END IF;\n  \
                 END IF;\nEND $migsafe$",
                t = ql(&table.to_string()),
                c = ql(&c),
            ));
        }
        (blocks, out)
    }
}
