//! The data-capture step: before a destructive migration runs, copy exactly the data it will
//! destroy into `migsafe_backup` (tables named after the migration version), so the rollback
//! can put it back. Decided from the forward statements and the schema before them.

use std::collections::{BTreeMap, BTreeSet};

use migsafe_catalog::model::{Snapshot, Table};
use migsafe_catalog::QName;
use migsafe_sql::model::{AlterAction, ColumnConstants, ObjectKind, StmtKind};
use migsafe_sql::{quote_ident as qi, quote_literal as ql, Statement};

use super::names::Names;

/// The schema capture tables live in.
pub const BACKUP_SCHEMA: &str = "migsafe_backup";

/// What one destructive statement loses, and how to get it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureItem {
    /// Whole rows (DROP TABLE, TRUNCATE, DELETE): copied entirely, re-inserted when missing.
    Rows {
        /// Table.
        table: QName,
        /// Backup table name in `migsafe_backup`.
        backup: String,
        /// Columns to copy (generated ones are recomputed, not copied).
        columns: Vec<String>,
        /// Key to tell which rows are missing; without one, a multiset difference is used.
        key: Option<Vec<String>>,
        /// Columns copied as text, with the type to cast them back to (see [`as_text`]).
        casts: BTreeMap<String, String>,
        /// When the whole table went (DROP TABLE / DROP SCHEMA), the columns set back to their
        /// captured values in rows whose key was captured (all but the key and identity columns
        /// generated always): a table the migration built again under the same name holds the
        /// migration's rows, not the old ones. Empty otherwise.
        reset: Vec<String>,
        /// Put back with the table's triggers off (see [`CaptureItem::quiet`]).
        quiet: bool,
        /// Index of the statement that destroys them.
        statement: usize,
    },
    /// Column values (DROP COLUMN, ALTER TYPE, UPDATE): copied with the row key, written back.
    Values {
        /// Table.
        table: QName,
        /// Backup table name in `migsafe_backup`.
        backup: String,
        /// Columns whose values are restored.
        columns: Vec<String>,
        /// Primary (or unique not-null) key.
        key: Vec<String>,
        /// Columns copied as text, with the type to cast them back to (see [`as_text`]).
        casts: BTreeMap<String, String>,
        /// Put back with the table's triggers off (see [`CaptureItem::quiet`]).
        quiet: bool,
        /// Index of the statement that destroys them.
        statement: usize,
    },
    /// Rows an `INSERT … VALUES … ON CONFLICT DO NOTHING` may add to an existing table: the
    /// keys among them that already existed are recorded; the rollback deletes the others. Or,
    /// with `rename`, the old key of a [`KeyRename`]: recorded if it existed, and then renamed
    /// back.
    Seeded {
        /// Table.
        table: QName,
        /// Backup table name in `migsafe_backup`.
        backup: String,
        /// Primary (or unique not-null) key.
        key: Vec<String>,
        /// Per inserted row, the key values as SQL constants.
        rows: Vec<Vec<String>>,
        /// Index of the INSERT statement.
        statement: usize,
        /// For a key renamed by an UPDATE (see [`key_rename`]) instead of rows inserted: the
        /// rollback's assignments and WHERE; the copy records whether the old key existed (the
        /// UPDATE changed a row) and the rename back runs only then.
        rename: Option<(ColumnConstants, ColumnConstants)>,
    },
    /// Rows an `INSERT … SELECT` (or MERGE, or an INSERT whose keys are not constants) adds to
    /// an existing table: the keys the table had before are recorded with the migration's
    /// transaction id; the rollback deletes the rows with a key not recorded that this very
    /// transaction wrote (so rows the application inserted since are never touched).
    Added {
        /// Table.
        table: QName,
        /// Backup table name in `migsafe_backup`.
        backup: String,
        /// Primary (or unique not-null) key.
        key: Vec<String>,
        /// Index of the statement.
        statement: usize,
    },
}

impl CaptureItem {
    /// The table whose data is captured.
    pub fn table(&self) -> &QName {
        match self {
            CaptureItem::Rows { table, .. }
            | CaptureItem::Values { table, .. }
            | CaptureItem::Seeded { table, .. }
            | CaptureItem::Added { table, .. } => table,
        }
    }

    /// Index of the statement whose effect it undoes.
    pub fn statement(&self) -> usize {
        match self {
            CaptureItem::Rows { statement, .. }
            | CaptureItem::Values { statement, .. }
            | CaptureItem::Seeded { statement, .. }
            | CaptureItem::Added { statement, .. } => *statement,
        }
    }

    /// Columns that get values back (so they must accept NULL until the restore ran).
    pub fn restored_columns(&self) -> &[String] {
        match self {
            CaptureItem::Rows { columns, .. } | CaptureItem::Values { columns, .. } => columns,
            CaptureItem::Seeded { .. } | CaptureItem::Added { .. } => &[],
        }
    }

    /// Whether the data goes back with the table's triggers off: when the statement that
    /// destroyed it fired no row triggers (DROP, TRUNCATE, DROP COLUMN, ALTER TYPE), putting it
    /// back must not fire them either (a counter kept by a trigger never lost those rows);
    /// after a DELETE or UPDATE, which fired them, the triggers run again to undo their effects.
    pub fn quiet(&self) -> bool {
        match self {
            CaptureItem::Rows { quiet, .. } | CaptureItem::Values { quiet, .. } => *quiet,
            CaptureItem::Seeded { .. } | CaptureItem::Added { .. } => false,
        }
    }

    fn backup_name_mut(&mut self) -> &mut String {
        match self {
            CaptureItem::Rows { backup, .. }
            | CaptureItem::Values { backup, .. }
            | CaptureItem::Seeded { backup, .. }
            | CaptureItem::Added { backup, .. } => backup,
        }
    }

    fn backup(&self) -> QName {
        match self {
            CaptureItem::Rows { backup, .. }
            | CaptureItem::Values { backup, .. }
            | CaptureItem::Seeded { backup, .. }
            | CaptureItem::Added { backup, .. } => QName::new(BACKUP_SCHEMA, backup),
        }
    }
}

/// Record the keys of an existing table that a statement adds rows to (once per table: the
/// first item's rollback deletes every row the transaction added).
fn added(version: &str, statement: usize, table: Option<QName>, s0: &Snapshot, plan: &mut CapturePlan) {
    let Some(q) = table else { return };
    let Some(key) = s0.tables.get(&q).and_then(row_key) else { return };
    if plan.items.iter().any(|i| matches!(i, CaptureItem::Added { table, .. } if *table == q)) {
        return;
    }
    plan.items.push(CaptureItem::Added { backup: backup_name(version, statement, &q), table: q, key, statement });
}

/// The capture plan of a migration: items, and statements whose data cannot be captured.
#[derive(Debug, Clone, Default)]
pub struct CapturePlan {
    /// What to copy.
    pub items: Vec<CaptureItem>,
    /// Statements whose destroyed data cannot be restored, with the reason.
    pub manual: Vec<(usize, String)>,
}

/// The row key of a table: its primary key, else a unique constraint on NOT NULL columns, else
/// a valid, non-partial unique index on plain NOT NULL columns (many schemas declare their key
/// as `CREATE UNIQUE INDEX … (id)` and never add a constraint).
pub fn row_key(t: &Table) -> Option<Vec<String>> {
    row_key_without(t, &[])
}

/// [`row_key`], skipping keys that use any of `avoid` (columns the migration drops or changes:
/// a key among them cannot find the rows again once the rollback re-created them).
pub fn row_key_without(t: &Table, avoid: &[String]) -> Option<Vec<String>> {
    let usable = |cols: &[String]| {
        !cols.is_empty()
            && cols.iter().all(|c| t.column(c).is_some_and(|col| col.not_null))
            && !cols.iter().any(|x| avoid.contains(x))
    };
    let mut cands: Vec<(&String, &migsafe_catalog::model::Constraint)> =
        t.constraints.iter().filter(|(_, c)| c.kind == "p" || c.kind == "u").collect();
    cands.sort_by_key(|(n, c)| (c.kind != "p", (*n).clone()));
    if let Some((_, c)) = cands.into_iter().find(|(_, c)| usable(&c.columns)) {
        return Some(c.columns.clone());
    }
    // BTreeMap order: the first usable unique index by name, so the choice is deterministic.
    t.indexes.values().filter(|i| i.valid && !i.constraint).find_map(|i| {
        let cols = unique_index_columns(&i.definition)?;
        usable(&cols).then_some(cols)
    })
}

/// The items of a `pg_get_indexdef` text when it is a unique index that is not partial: column
/// names, and the text of expressions (which never names a column of the table, so `usable`
/// rejects it as a key).
fn unique_index_columns(definition: &str) -> Option<Vec<String>> {
    let parsed = migsafe_sql::parse::parse_sql(definition);
    match &parsed.statements.first()?.kind {
        StmtKind::CreateIndex { unique: true, partial: false, columns, .. } => Some(columns.clone()),
        _ => None,
    }
}

fn backup_name(version: &str, index: usize, table: &QName) -> String {
    let clean: String = version.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let mut n = format!("v{clean}_{index}_{}_{}", table.schema, table.name);
    while n.len() > 63 {
        n.pop();
    }
    n
}

/// Columns of types that are not built in (enums, domains, composites, extension types) are
/// copied as text: the migration may drop or replace the type (Lemmy renames an enum, moves
/// the column to a new one and drops the old), which it could not do while a capture table
/// depended on it. Text round-trips every type exactly; the restore casts back to the type the
/// column had, which the rollback has recreated by then. `format_type` qualifies exactly the
/// types outside `pg_catalog`, so a dot in the name tells them apart.
fn as_text(t: &Table, columns: &[String]) -> BTreeMap<String, String> {
    columns
        .iter()
        .filter_map(|c| t.column(c))
        .filter(|c| c.type_name.contains('.'))
        .map(|c| (c.name.clone(), c.type_name.clone()))
        .collect()
}

fn stored_columns(t: &Table) -> Vec<String> {
    t.columns.iter().filter(|c| c.generated.is_none()).map(|c| c.name.clone()).collect()
}

/// Whether a column of `t` has a type `=` compares (not json, xml or a geometric type).
pub fn comparable(t: &Table, column: &str) -> bool {
    t.column(column).is_some_and(|col| {
        let ty = col.type_name.trim_end_matches("[]");
        !matches!(ty, "json" | "xml" | "point" | "line" | "lseg" | "box" | "path" | "polygon" | "circle")
    })
}

/// The key of `t` and, per row of an `INSERT … VALUES`, the key's values as constants; None
/// when the table has no key or a row does not give all of it as constants.
///
/// Without the row key among the constants (a serial id left to its default), any unique
/// constraint or index (expressions included: LedgerSMB's `UNIQUE (lower(name))`) whose columns
/// all get constants identifies each row by every column given a constant: that row alone can
/// hold them all.
pub fn seeded_keys(t: &Table, v: &migsafe_sql::model::InsertValues) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let columns: Vec<String> = match &v.columns {
        Some(c) => c.clone(),
        None => t.columns.iter().map(|c| c.name.clone()).collect(),
    };
    let project = |key: &[String]| -> Option<Vec<Vec<String>>> {
        let positions: Vec<usize> = key.iter().map(|k| columns.iter().position(|c| c == k)).collect::<Option<_>>()?;
        let rows: Vec<Vec<String>> = v
            .rows
            .iter()
            .map(|row| positions.iter().map(|&i| row.get(i).cloned().flatten().filter(|x| x != "NULL")).collect())
            .collect::<Option<_>>()?;
        (!rows.is_empty()).then_some(rows)
    };
    if let Some(key) = row_key(t) {
        if let Some(rows) = project(&key) {
            return Some((key, rows));
        }
    }
    // Columns every row gives a non-NULL constant, of types `=` compares.
    let comparable = |c: &String| comparable(t, c);
    let constant: Vec<String> = columns
        .iter()
        .enumerate()
        .filter(|(i, c)| {
            comparable(c) && v.rows.iter().all(|row| row.get(*i).cloned().flatten().is_some_and(|x| x != "NULL"))
        })
        .map(|(_, c)| c.clone())
        .collect();
    let unique_sets =
        t.constraints.values().filter(|c| c.kind == "p" || c.kind == "u").map(|c| c.columns.clone()).chain(
            t.indexes.values().filter(|i| i.valid && !i.constraint).filter_map(|i| unique_index_uses(&i.definition, t)),
        );
    for used in unique_sets {
        if !used.is_empty() && used.iter().all(|u| constant.contains(u)) {
            return project(&constant).map(|rows| (constant.clone(), rows));
        }
    }
    None
}

/// The columns of `t` a valid, non-partial unique index uses, in its key columns or its
/// expressions (`lower(name)` uses `name`); None when it is not such an index.
fn unique_index_uses(definition: &str, t: &Table) -> Option<Vec<String>> {
    let mut used: Vec<String> = Vec::new();
    for item in unique_index_columns(definition)? {
        if t.column(&item).is_some() {
            used.push(item);
            continue;
        }
        // An expression: the column names among its identifiers.
        for word in item.split(|ch: char| !(ch.is_alphanumeric() || ch == '_')) {
            if !word.is_empty() && t.column(word).is_some() && !used.iter().any(|u| u == word) {
                used.push(word.to_string());
            }
        }
    }
    Some(used)
}

/// An UPDATE that changes only key columns, to constants, of the one row its WHERE pins by its
/// whole key with constants (`UPDATE language SET code = 'ms_MY' WHERE code = 'my'`).
pub struct KeyRename {
    /// The table's row key.
    pub key: Vec<String>,
    /// The key's values before the UPDATE, as SQL constants.
    pub old: Vec<String>,
    /// The rename back: its assignments.
    pub back: ColumnConstants,
    /// The rename back: its WHERE, the key as the UPDATE left it.
    pub now: ColumnConstants,
}

/// [`KeyRename`] for statement `st` on `t`, or None.
pub fn key_rename(t: &Table, st: &Statement) -> Option<KeyRename> {
    // A BEFORE UPDATE trigger may change other columns too: then the values are captured.
    if reshaped_on_update(t) {
        return None;
    }
    let (sets, wheres) = st.update_constants()?;
    let key = row_key(t)?;
    let pinned = |c: &String| wheres.iter().find(|(w, _)| w == c).map(|(_, v)| v.clone());
    if sets.is_empty() || !sets.iter().all(|(c, _)| key.contains(c)) {
        return None;
    }
    let back: Vec<(String, String)> =
        sets.iter().map(|(c, _)| pinned(c).map(|v| (c.clone(), v))).collect::<Option<_>>()?;
    let now: Vec<(String, String)> = key
        .iter()
        .map(|k| {
            sets.iter().find(|(c, _)| c == k).map(|(_, v)| v.clone()).or_else(|| pinned(k)).map(|v| (k.clone(), v))
        })
        .collect::<Option<_>>()?;
    let old: Vec<String> = key.iter().map(pinned).collect::<Option<_>>()?;
    Some(KeyRename { key, old, back, now })
}

/// `(k1 = v AND k2 = v) OR …` for the rows' keys, columns prefixed with `alias.`.
pub fn key_match(key: &[String], rows: &[Vec<String>], alias: &str) -> String {
    rows.iter()
        .map(|r| {
            let parts: Vec<String> = key.iter().zip(r).map(|(k, v)| format!("{alias}{} = {v}", qi(k))).collect();
            format!("({})", parts.join(" AND "))
        })
        .collect::<Vec<_>>()
        .join("\n   OR ")
}

/// Decide what to capture for a migration whose statements run against `s0`.
pub fn plan(version: &str, statements: &[Statement], s0: &Snapshot) -> CapturePlan {
    let mut plan = CapturePlan::default();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    // Names as the migration uses them, traced to S0: a table renamed (or moved) by an earlier
    // statement is captured under its S0 name, which is what it has when the capture runs and
    // again once the rollback renamed it back; a table the migration created has no S0 data.
    let mut after = Names::default();
    for stmt in statements {
        // The statement's names as the statements before it left them.
        let names = after.clone();
        after.observe(&stmt.kind);
        let rows = |table: QName,
                    dropped: bool,
                    quiet: bool,
                    plan: &mut CapturePlan,
                    seen: &mut BTreeSet<(String, String)>| {
            let Some(t) = s0.tables.get(&table) else { return };
            if !seen.insert((table.to_string(), "*".into())) {
                return;
            }
            let columns = stored_columns(t);
            let key = row_key(t);
            let reset = match &key {
                Some(k) if dropped => columns
                    .iter()
                    .filter(|c| !k.contains(c))
                    .filter(|c| t.column(c).is_some_and(|col| col.identity.as_deref() != Some("always")))
                    .cloned()
                    .collect(),
                _ => vec![],
            };
            plan.items.push(CaptureItem::Rows {
                statement: stmt.index,
                backup: backup_name(version, stmt.index, &table),
                casts: as_text(t, &columns),
                columns,
                key,
                table,
                reset,
                quiet,
            });
        };
        // What the statement does to existing rows: the table it deletes from (MERGE too), the
        // table and columns it updates (MERGE's UPDATE actions too).
        let (deletes_from, updates) = match &stmt.kind {
            StmtKind::Delete { table, .. } => (Some(table), None),
            StmtKind::Update { table, assignments, .. } => (None, Some((table, assignments.as_slice()))),
            StmtKind::Merge { table, updates, deletes, .. } => {
                (deletes.then_some(table), updates.as_deref().map(|u| (table, u)))
            }
            // ON CONFLICT … DO UPDATE changes the existing rows it meets, like an UPDATE.
            StmtKind::Insert { table, upserts: Some(u), .. } => (None, Some((table, u.as_slice()))),
            _ => (None, None),
        };
        if let Some((table, assignments)) = updates {
            let Some(q) = names.s0_table(table) else { continue };
            // A key renamed by constants is renamed back, if the UPDATE found its row.
            if let Some(r) = s0.tables.get(&q).and_then(|t| key_rename(t, stmt)) {
                plan.items.push(CaptureItem::Seeded {
                    backup: backup_name(version, stmt.index, &q),
                    table: q,
                    key: r.key,
                    rows: vec![r.old],
                    statement: stmt.index,
                    rename: Some((r.back, r.now)),
                });
                continue;
            }
            // Columns as S0 names them (a column renamed away is not there: it is new).
            let assigned: Vec<String> = assignments.iter().filter_map(|(c, _)| names.s0_column(table, c)).collect();
            // A BEFORE UPDATE row trigger may change any column of the rows (an updated_at
            // stamp): then every column is captured, not only those assigned.
            let reshaped = s0.tables.get(&q).is_some_and(reshaped_on_update);
            let cols: Vec<String> = match s0.tables.get(&q) {
                Some(t) if reshaped => {
                    let key = row_key(t).unwrap_or_default();
                    stored_columns(t).into_iter().filter(|c| !key.contains(c)).collect()
                }
                _ => assigned.clone(),
            };
            // Rows whose key the UPDATE changes are not found by it again.
            values(version, stmt.index, q, cols, s0, &mut plan, &mut seen, "UPDATE", false, &assigned);
        }
        if let Some(table) = deletes_from {
            if let Some(q) = names.s0_table(table) {
                // Rows of tables referencing it ON DELETE CASCADE go too, and ON DELETE SET
                // NULL / SET DEFAULT columns lose their values.
                let (gone, cleared) = cascade_closure(s0, &q, false);
                for t in gone {
                    rows(t, false, false, &mut plan, &mut seen);
                }
                for (t, cols) in cleared {
                    values(
                        version,
                        stmt.index,
                        t,
                        cols.clone(),
                        s0,
                        &mut plan,
                        &mut seen,
                        "DELETE (ON DELETE SET NULL)",
                        false,
                        &cols,
                    );
                }
            }
        }
        match &stmt.kind {
            StmtKind::Drop { kind: ObjectKind::Table, names: dropped, .. } => {
                for q in dropped.iter().filter_map(|n| names.s0_table(n)) {
                    rows(q, true, true, &mut plan, &mut seen);
                }
            }
            StmtKind::Drop { kind: ObjectKind::Schema, names: dropped, .. } => {
                for n in dropped {
                    let tables: Vec<QName> = s0.tables.keys().filter(|q| q.schema == n.name).cloned().collect();
                    for t in tables {
                        rows(t, true, true, &mut plan, &mut seen);
                    }
                }
            }
            StmtKind::Truncate { tables, cascade } => {
                for q in tables.iter().filter_map(|n| names.s0_table(n)) {
                    // TRUNCATE … CASCADE empties every table referencing it, whatever the action.
                    let reached = if *cascade { cascade_closure(s0, &q, true) } else { (vec![q], vec![]) };
                    for t in reached.0 {
                        rows(t, false, true, &mut plan, &mut seen);
                    }
                }
            }
            StmtKind::Insert { table, values: Some(v), .. }
                if v.on_conflict == Some(migsafe_sql::model::OnConflict::Nothing) =>
            {
                let Some(q) = names.s0_table(table) else { continue };
                if let Some((key, keys)) = s0.tables.get(&q).and_then(|t| seeded_keys(t, v)) {
                    plan.items.push(CaptureItem::Seeded {
                        backup: backup_name(version, stmt.index, &q),
                        table: q,
                        key,
                        rows: keys,
                        statement: stmt.index,
                        rename: None,
                    });
                } else {
                    added(version, stmt.index, Some(q), s0, &mut plan);
                }
            }
            // Rows given as constants with their key are deleted by it (see the inversion);
            // the others are told apart by the transaction that wrote them.
            StmtKind::Insert { table, values, .. } => {
                let q = names.s0_table(table);
                let by_constants = match (values, q.as_ref().and_then(|q| s0.tables.get(q))) {
                    (Some(v), Some(t)) => v.on_conflict.is_none() && seeded_keys(t, v).is_some(),
                    _ => false,
                };
                if !by_constants {
                    added(version, stmt.index, q, s0, &mut plan);
                }
            }
            StmtKind::Merge { table, inserts: true, .. } => {
                added(version, stmt.index, names.s0_table(table), s0, &mut plan);
            }
            StmtKind::AlterTable { table, actions, .. } => {
                let Some(q) = names.s0_table(table) else { continue };
                let cols: Vec<String> = actions
                    .iter()
                    .filter_map(|a| match a {
                        AlterAction::DropColumn { column: c, .. } | AlterAction::AlterType { column: c, .. } => {
                            names.s0_column(table, c)
                        }
                        _ => None,
                    })
                    .collect();
                // A key among the dropped columns comes back with new values; one whose type
                // changes comes back with its own values (cast back), so it still finds the rows.
                let dropped: Vec<String> = actions
                    .iter()
                    .filter_map(|a| match a {
                        AlterAction::DropColumn { column: c, .. } => names.s0_column(table, c),
                        _ => None,
                    })
                    .collect();
                if !cols.is_empty() {
                    values(version, stmt.index, q, cols, s0, &mut plan, &mut seen, &stmt.tag, true, &dropped);
                }
            }
            _ => {}
        }
    }
    // One statement can capture a table twice (its rows through a cascade, and values it
    // clears): each copy gets its own name.
    let mut taken: BTreeSet<String> = BTreeSet::new();
    for item in &mut plan.items {
        let name = item.backup_name_mut();
        let mut n = 2;
        let base = name.clone();
        while !taken.insert(name.clone()) {
            let suffix = format!("_{n}");
            let mut b = base.clone();
            while b.len() + suffix.len() > 63 {
                b.pop();
            }
            *name = format!("{b}{suffix}");
            n += 1;
        }
    }
    plan
}

/// Whether an enabled BEFORE UPDATE row trigger on `t` may change columns an UPDATE does
/// not assign (an updated_at stamp).
fn reshaped_on_update(t: &Table) -> bool {
    t.triggers.values().any(|g| g.enabled != "D" && row_trigger(&g.definition, "BEFORE", "UPDATE"))
}

/// Whether a trigger (`pg_get_triggerdef`) fires `when` (BEFORE, AFTER) for each row on an
/// event list containing `event` (any event when empty).
fn row_trigger(definition: &str, when: &str, event: &str) -> bool {
    let d = definition.to_ascii_uppercase();
    let Some(rest) = d.split_once(&format!(" {when} ")).map(|(_, r)| r) else { return false };
    let events = rest.split(" ON ").next().unwrap_or("");
    d.contains("FOR EACH ROW") && (event.is_empty() || events.split(" OR ").any(|e| e.trim().starts_with(event)))
}

/// What deleting rows of `table` reaches through foreign keys: the tables whose rows go with
/// them (`table` first, then those referencing it ON DELETE CASCADE, transitively; with `all`,
/// every referencing table, as TRUNCATE … CASCADE does), and the referencing columns ON DELETE
/// SET NULL / SET DEFAULT clears.
fn cascade_closure(s0: &Snapshot, table: &QName, all: bool) -> (Vec<QName>, Vec<(QName, Vec<String>)>) {
    let mut gone = vec![table.clone()];
    let mut cleared = Vec::new();
    let mut i = 0;
    while i < gone.len() {
        let parent = gone[i].clone();
        i += 1;
        for (tn, t) in &s0.tables {
            for c in t.constraints.values() {
                if c.kind != "f" || c.references.as_ref() != Some(&parent) || c.inherited {
                    continue;
                }
                let action = c.definition.split(" ON DELETE ").nth(1).unwrap_or("");
                if all || action.starts_with("CASCADE") {
                    if !gone.contains(tn) {
                        gone.push(tn.clone());
                    }
                } else if action.starts_with("SET NULL") || action.starts_with("SET DEFAULT") {
                    cleared.push((tn.clone(), c.columns.clone()));
                }
            }
        }
    }
    (gone, cleared)
}

#[allow(clippy::too_many_arguments)]
fn values(
    version: &str,
    index: usize,
    table: QName,
    cols: Vec<String>,
    s0: &Snapshot,
    plan: &mut CapturePlan,
    seen: &mut BTreeSet<(String, String)>,
    what: &str,
    quiet: bool,
    avoid: &[String],
) {
    let Some(t) = s0.tables.get(&table) else { return };
    let cols: Vec<String> = cols
        .into_iter()
        .filter(|c| t.column(c).is_some_and(|col| col.generated.is_none()))
        .filter(|c| seen.insert((table.to_string(), c.clone())))
        .collect();
    if cols.is_empty() {
        return;
    }
    match row_key_without(t, avoid) {
        Some(key) => {
            let casts = as_text(t, &key.iter().chain(&cols).cloned().collect::<Vec<_>>());
            plan.items.push(CaptureItem::Values {
                statement: index,
                backup: backup_name(version, index, &table),
                table,
                columns: cols,
                key,
                casts,
                quiet,
            })
        }
        None => plan.manual.push((
            index,
            format!(
                "{what} destroys values of {} in {table}, which has no primary key or unique NOT NULL key to put them \
                 back by; restore them from the backup by hand",
                cols.join(", ")
            ),
        )),
    }
}

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
            let triggers: Vec<(&String, &String)> = match s0.tables.get(table) {
                Some(t) => t
                    .triggers
                    .iter()
                    .filter(|(_, g)| !g.inherited && g.enabled != "D")
                    .filter(|(_, g)| item.quiet() || row_trigger(&g.definition, "BEFORE", ""))
                    .map(|(n, g)| (n, &g.enabled))
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
                let how = migsafe_catalog::enable_clause(enabled);
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
