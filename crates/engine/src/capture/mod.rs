//! The data-capture step: before a destructive migration runs, copy exactly the data it will
//! destroy into `migsafe_backup` (tables named after the migration version), so the rollback
//! can put it back. Decided from the forward statements and the schema before them.

use std::collections::{BTreeMap, BTreeSet};

use migsafe_catalog::model::{ConstraintType, Firing, IdentityKind, Snapshot, Table};
use migsafe_catalog::QName;
use migsafe_sql::model::{AlterAction, ColumnConstants, ObjectKind, StmtKind};
use migsafe_sql::Statement;

use crate::names::Names;

mod keys;
mod sql;

pub use keys::{comparable, delete_keys, key_match, key_rename, row_key, row_key_without, seeded_keys, KeyRename};

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

/// The capture plan of a migration: items, and statements whose data cannot be captured.
#[derive(Debug, Clone, Default)]
pub struct CapturePlan {
    /// What to copy.
    pub items: Vec<CaptureItem>,
    /// Statements whose destroyed data cannot be restored, with the reason.
    pub manual: Vec<(usize, String)>,
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

/// Decide what to capture for a migration whose statements run against `s0`.
pub fn plan(version: &str, statements: &[Statement], s0: &Snapshot) -> CapturePlan {
    let mut planner = Planner { version, s0, plan: CapturePlan::default(), seen: BTreeSet::new() };
    // Names as the migration uses them, traced to S0: a table renamed (or moved) by an earlier
    // statement is captured under its S0 name, which is what it has when the capture runs and
    // again once the rollback renamed it back; a table the migration created has no S0 data.
    let mut after = Names::default();
    for stmt in statements {
        // The statement's names as the statements before it left them.
        let names = after.clone();
        after.observe(&stmt.kind);
        planner.statement(stmt, &names);
    }
    planner.name_copies();
    planner.plan
}

/// A capture plan being built: the items so far, and what they already copy ((table, column),
/// or (table, `*`) for whole rows), so nothing is copied twice.
struct Planner<'a> {
    version: &'a str,
    s0: &'a Snapshot,
    plan: CapturePlan,
    seen: BTreeSet<(String, String)>,
}

impl Planner<'_> {
    /// What one statement destroys of existing data, or adds to existing tables.
    fn statement(&mut self, stmt: &Statement, names: &Names) {
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
            if !self.updated(stmt, names, table, assignments) {
                return;
            }
        }
        if let Some(table) = deletes_from {
            self.deleted(stmt, names, table);
        }
        self.dropped_or_added(stmt, names);
    }

    /// The rows and columns an UPDATE (or MERGE's update, or an upsert's SET) changes. False
    /// when that was all of the statement (a key renamed back, or a table new since S0).
    fn updated(
        &mut self,
        stmt: &Statement,
        names: &Names,
        table: &migsafe_sql::QualName,
        assignments: &[(String, String)],
    ) -> bool {
        let Some(q) = names.s0_table(table) else { return false };
        // A key renamed by constants is renamed back, if the UPDATE found its row.
        if let Some(r) = self.s0.tables.get(&q).and_then(|t| key_rename(t, stmt)) {
            self.plan.items.push(CaptureItem::Seeded {
                backup: backup_name(self.version, stmt.index, &q),
                table: q,
                key: r.key,
                rows: vec![r.old],
                statement: stmt.index,
                rename: Some((r.back, r.now)),
            });
            return false;
        }
        // Columns as S0 names them (a column renamed away is not there: it is new).
        let assigned: Vec<String> = assignments.iter().filter_map(|(c, _)| names.s0_column(table, c)).collect();
        // A BEFORE UPDATE row trigger may change any column of the rows (an updated_at
        // stamp): then every column is captured, not only those assigned.
        let reshaped = self.s0.tables.get(&q).is_some_and(reshaped_on_update);
        let cols: Vec<String> = match self.s0.tables.get(&q) {
            Some(t) if reshaped => {
                let key = row_key(t).unwrap_or_default();
                stored_columns(t).into_iter().filter(|c| !key.contains(c)).collect()
            }
            _ => assigned.clone(),
        };
        // Rows whose key the UPDATE changes are not found by it again.
        self.values(stmt.index, q, cols, "UPDATE", false, &assigned);
        true
    }

    /// The rows a DELETE (or MERGE's delete) removes, with what its foreign keys cascade to.
    fn deleted(&mut self, stmt: &Statement, names: &Names, table: &migsafe_sql::QualName) {
        if let Some(q) = names.s0_table(table) {
            // Rows of tables referencing it ON DELETE CASCADE go too, and ON DELETE SET
            // NULL / SET DEFAULT columns lose their values.
            let (gone, cleared) = cascade_closure(self.s0, &q, false);
            for t in gone {
                self.rows(stmt.index, t, false, false);
            }
            for (t, cols) in cleared {
                self.values(stmt.index, t, cols.clone(), "DELETE (ON DELETE SET NULL)", false, &cols);
            }
        }
    }

    /// Tables, schemas and columns dropped, tables truncated, and rows added to existing tables.
    fn dropped_or_added(&mut self, stmt: &Statement, names: &Names) {
        match &stmt.kind {
            StmtKind::Drop { kind: ObjectKind::Table, names: dropped, .. } => {
                for q in dropped.iter().filter_map(|n| names.s0_table(n)) {
                    self.rows(stmt.index, q, true, true);
                }
            }
            StmtKind::Drop { kind: ObjectKind::Schema, names: dropped, .. } => {
                for n in dropped {
                    let tables: Vec<QName> = self.s0.tables.keys().filter(|q| q.schema == n.name).cloned().collect();
                    for t in tables {
                        self.rows(stmt.index, t, true, true);
                    }
                }
            }
            StmtKind::Truncate { tables, cascade } => {
                for q in tables.iter().filter_map(|n| names.s0_table(n)) {
                    // TRUNCATE … CASCADE empties every table referencing it, whatever the action.
                    let reached = if *cascade { cascade_closure(self.s0, &q, true) } else { (vec![q], vec![]) };
                    for t in reached.0 {
                        self.rows(stmt.index, t, false, true);
                    }
                }
            }
            StmtKind::Insert {
                table,
                literal_rows: true,
                on_conflict: Some(migsafe_sql::model::OnConflict::Nothing),
                ..
            } => {
                let Some(q) = names.s0_table(table) else { return };
                let v = stmt.insert_values();
                if let Some((key, keys)) = self.s0.tables.get(&q).zip(v.as_ref()).and_then(|(t, v)| seeded_keys(t, v)) {
                    self.plan.items.push(CaptureItem::Seeded {
                        backup: backup_name(self.version, stmt.index, &q),
                        table: q,
                        key,
                        rows: keys,
                        statement: stmt.index,
                        rename: None,
                    });
                } else {
                    self.added(stmt.index, Some(q));
                }
            }
            // Rows given as constants with their key are deleted by it (see the inversion);
            // the others are told apart by the transaction that wrote them.
            StmtKind::Insert { table, literal_rows, on_conflict, .. } => {
                let q = names.s0_table(table);
                let by_constants = match q.as_ref().and_then(|q| self.s0.tables.get(q)) {
                    Some(t) if *literal_rows && on_conflict.is_none() => {
                        stmt.insert_values().is_some_and(|v| seeded_keys(t, &v).is_some())
                    }
                    _ => false,
                };
                if !by_constants {
                    self.added(stmt.index, q);
                }
            }
            StmtKind::Merge { table, inserts: true, .. } => {
                self.added(stmt.index, names.s0_table(table));
            }
            StmtKind::AlterTable { table, actions, .. } => {
                let Some(q) = names.s0_table(table) else { return };
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
                    self.values(stmt.index, q, cols, &stmt.tag, true, &dropped);
                }
            }
            _ => {}
        }
    }

    /// Whole rows of `table` that statement `statement` destroys; `dropped` when the whole
    /// table goes (DROP TABLE / DROP SCHEMA), `quiet` when the statement fires no row triggers.
    fn rows(&mut self, statement: usize, table: QName, dropped: bool, quiet: bool) {
        let Some(t) = self.s0.tables.get(&table) else { return };
        if !self.seen.insert((table.to_string(), "*".into())) {
            return;
        }
        let columns = stored_columns(t);
        let key = row_key(t);
        let reset = match &key {
            Some(k) if dropped => columns
                .iter()
                .filter(|c| !k.contains(c))
                .filter(|c| t.column(c).is_some_and(|col| col.identity != Some(IdentityKind::Always)))
                .cloned()
                .collect(),
            _ => vec![],
        };
        self.plan.items.push(CaptureItem::Rows {
            statement,
            backup: backup_name(self.version, statement, &table),
            casts: as_text(t, &columns),
            columns,
            key,
            table,
            reset,
            quiet,
        });
    }

    /// The values of `cols` that statement `index` destroys (`what` names it in the manual note),
    /// copied with the row key (one avoiding the columns in `avoid`).
    fn values(&mut self, index: usize, table: QName, cols: Vec<String>, what: &str, quiet: bool, avoid: &[String]) {
        let Some(t) = self.s0.tables.get(&table) else { return };
        let cols: Vec<String> = cols
            .into_iter()
            .filter(|c| t.column(c).is_some_and(|col| col.generated.is_none()))
            .filter(|c| self.seen.insert((table.to_string(), c.clone())))
            .collect();
        if cols.is_empty() {
            return;
        }
        match row_key_without(t, avoid) {
            Some(key) => {
                let casts = as_text(t, &key.iter().chain(&cols).cloned().collect::<Vec<_>>());
                self.plan.items.push(CaptureItem::Values {
                    statement: index,
                    backup: backup_name(self.version, index, &table),
                    table,
                    columns: cols,
                    key,
                    casts,
                    quiet,
                })
            }
            None => self.plan.manual.push((
                index,
                format!(
                    "{what} destroys values of {} in {table}, which has no primary key or unique NOT NULL key to put them \
                     back by; restore them from the backup by hand",
                    cols.join(", ")
                ),
            )),
        }
    }

    /// Record the keys of an existing table that a statement adds rows to (once per table: the
    /// first item's rollback deletes every row the transaction added).
    fn added(&mut self, statement: usize, table: Option<QName>) {
        let Some(q) = table else { return };
        let Some(key) = self.s0.tables.get(&q).and_then(row_key) else { return };
        if self.plan.items.iter().any(|i| matches!(i, CaptureItem::Added { table, .. } if *table == q)) {
            return;
        }
        self.plan.items.push(CaptureItem::Added {
            backup: backup_name(self.version, statement, &q),
            table: q,
            key,
            statement,
        });
    }

    /// One statement can capture a table twice (its rows through a cascade, and values it
    /// clears): each copy gets its own name.
    fn name_copies(&mut self) {
        let mut taken: BTreeSet<String> = BTreeSet::new();
        for item in &mut self.plan.items {
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
    }
}

/// Whether an enabled BEFORE UPDATE row trigger on `t` may change columns an UPDATE does
/// not assign (an updated_at stamp).
fn reshaped_on_update(t: &Table) -> bool {
    t.triggers.values().any(|g| g.enabled != Firing::Disabled && row_trigger(&g.definition, "BEFORE", "UPDATE"))
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
                if c.kind != ConstraintType::ForeignKey || c.references.as_ref() != Some(&parent) || c.inherited {
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
