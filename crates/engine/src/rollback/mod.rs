//! Rollback scripts that are proven to work.
//!
//! For each migration, on scratch databases: replay the earlier migrations (S0), apply it (S1),
//! invert it statement by statement using S0, complete the inversion with the snapshot diff
//! back to S0, then prove it: apply the script to a copy of S1 and require the schema to equal
//! S0 exactly. Destructive migrations get a data-capture step, and the rollback restores from
//! it. `check` proves existing, hand-written rollbacks the same way.

pub mod capture;
mod invert;
mod names;
mod script;

use std::path::{Path, PathBuf};
use std::time::Instant;

use migsafe_catalog::{Fingerprint, Snapshot};
use migsafe_sql::LineIndex;

use crate::exec::{reset_session, run_plain, Prepared};
use crate::lint::RiskView;
use crate::report::{MigrationReport, StepReport};
use crate::scratch::{ScratchDb, ScratchServer};
use crate::source::{Layout, Migration, MigrationSet};
use crate::EngineError;
pub use capture::{CapturePlan, BACKUP_SCHEMA};
pub use invert::Inverse;

/// A base database holding every migration applied so far, and its snapshot.
pub struct Replay<'s> {
    base: ScratchDb<'s>,
    /// The schema of the base (before the next migration).
    pub s0: Snapshot,
}

impl<'s> Replay<'s> {
    /// An empty base database on `server`, for the migrations of `set` (with the roles and
    /// framework tables they expect, see [`ScratchServer::create_set_db`]).
    pub fn new(server: &'s ScratchServer, set: &MigrationSet) -> Result<Replay<'s>, EngineError> {
        let base = server.create_set_db("base", set)?;
        let s0 = Snapshot::capture(&mut base.connect()?)?;
        Ok(Replay { base, s0 })
    }

    /// A copy of the base (it must have no open sessions).
    pub fn work(&self, purpose: &str) -> Result<ScratchDb<'s>, EngineError> {
        Ok(self.base.clone_db(purpose)?)
    }

    /// Replace the base (the old one is dropped).
    pub fn set_base(&mut self, base: ScratchDb<'s>, s0: Snapshot) {
        self.base = base;
        self.s0 = s0;
    }

    /// The base database itself.
    pub fn base(&self) -> &ScratchDb<'s> {
        &self.base
    }

    /// A connection to the base (close it before the next `work`).
    pub fn connect(&self) -> Result<postgres::Client, EngineError> {
        Ok(self.base.connect()?)
    }
}

/// What happened to one migration's rollback.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GeneratedRollback {
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// The rollback text.
    pub script: String,
    /// The capture step, when the migration destroys data.
    pub capture: Option<String>,
    /// Applying the script to the migrated schema gave back exactly the schema before it.
    pub proven: bool,
    /// Column order differences left (reported, not a failure).
    pub column_order: Vec<String>,
    /// What could not be reversed, and why.
    pub manual: Vec<String>,
    /// What still differs when not proven.
    pub remaining: String,
    /// Where it was written (None when not written).
    pub written: Option<PathBuf>,
    /// Proof run time in milliseconds.
    pub proof_ms: f64,
    /// Tables whose data the capture step protects but which did not come back identical
    /// (empty when the data came back, or there was nothing to capture).
    pub data_differences: Vec<String>,
}

impl GeneratedRollback {
    /// Proven and nothing left for a human.
    pub fn ok(&self) -> bool {
        self.proven && self.manual.is_empty() && self.data_differences.is_empty()
    }
}

/// Options of `rollback generate`.
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    /// Only these versions (numeric match); all when empty.
    pub versions: Vec<String>,
    /// Replace rollbacks that exist.
    pub force: bool,
    /// Write files (false: only compute, e.g. for rehearse).
    pub write: bool,
}

fn selected(m: &Migration, versions: &[String]) -> bool {
    versions.is_empty() || versions.iter().any(|v| m.version.matches(v))
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Relax `s0` for the restore: restored columns accept NULL, and constraints that the missing
/// data would violate (foreign keys to and from restored tables) are added after the restore.
fn relaxed(s0: &Snapshot, s1: &Snapshot, plan: &CapturePlan) -> Snapshot {
    let mut r = s0.clone();
    // Tables whose rows come back: foreign keys to and from them wait for the rows.
    let tables: Vec<_> = plan
        .items
        .iter()
        .filter(|i| matches!(i, capture::CaptureItem::Rows { .. }))
        .map(|i| i.table().clone())
        .collect();
    // Columns whose values come back: foreign keys on them wait for the values.
    let columns: Vec<(migsafe_catalog::QName, String)> = plan
        .items
        .iter()
        .filter(|i| matches!(i, capture::CaptureItem::Values { .. }))
        .flat_map(|i| i.restored_columns().iter().map(move |c| (i.table().clone(), c.clone())))
        .collect();
    // Columns the migration dropped or retyped come back empty: NOT NULL waits for their values. (A table
    // gone from S1 under its S0 name was dropped or renamed: its columns count as dropped.)
    for item in &plan.items {
        let after = s1.tables.get(item.table());
        if let Some(t) = r.tables.get_mut(item.table()) {
            for c in t.columns.iter_mut().filter(|c| item.restored_columns().contains(&c.name)) {
                // Also a column whose type changed: its values may come back through NULL.
                let retyped =
                    |a: &migsafe_catalog::model::Table| a.column(&c.name).is_none_or(|x| x.type_name != c.type_name);
                if after.is_none_or(retyped) {
                    c.not_null = false;
                }
            }
        }
    }
    for (n, t) in r.tables.iter_mut() {
        let restored = tables.contains(n);
        t.constraints.retain(|_, c| {
            let on_restored_column = c.columns.iter().any(|col| columns.contains(&(n.clone(), col.clone())));
            let fk_touching = c.kind == "f"
                && (restored || on_restored_column || c.references.as_ref().is_some_and(|x| tables.contains(x)));
            // A key on restored values would see the values the re-added column got (new
            // sequence numbers) collide with those being put back, and a CHECK would judge the
            // values the migration wrote: they wait for the data too.
            let key_on_restored = matches!(c.kind.as_str(), "p" | "u" | "x" | "c") && on_restored_column;
            !fk_touching && !key_on_restored
        });
    }
    r
}

/// Run SQL statements one by one in a transaction (no observer); the first error stops it.
fn try_statements(db: &ScratchDb, concurrent: &[String], stmts: &[String]) -> Result<(), String> {
    let mut c = db.connect().map_err(|e| e.to_string())?;
    for s in concurrent {
        c.batch_execute(s).map_err(|e| db_message(&e))?;
    }
    let mut tx = c.transaction().map_err(|e| e.to_string())?;
    tx.batch_execute("SET LOCAL check_function_bodies = off").map_err(|e| e.to_string())?;
    for s in stmts {
        tx.batch_execute(s).map_err(|e| format!("{}: {}", s.lines().next().unwrap_or(""), db_message(&e)))?;
    }
    tx.commit().map_err(|e| e.to_string())
}

/// Like [`try_statements`], but a statement that fails is skipped (rolled back to a savepoint
/// before it) and the others go on; returns the positions skipped and the first error.
fn try_skipping(db: &ScratchDb, concurrent: &[String], stmts: &[String]) -> Result<(Vec<usize>, String), String> {
    let mut c = db.connect().map_err(|e| e.to_string())?;
    for s in concurrent {
        c.batch_execute(s).map_err(|e| db_message(&e))?;
    }
    let mut tx = c.transaction().map_err(|e| e.to_string())?;
    tx.batch_execute("SET LOCAL check_function_bodies = off").map_err(|e| e.to_string())?;
    let (mut skipped, mut first) = (Vec::new(), String::new());
    for (i, s) in stmts.iter().enumerate() {
        tx.batch_execute("SAVEPOINT migsafe_step").map_err(|e| e.to_string())?;
        match tx.batch_execute(s) {
            Ok(()) => tx.batch_execute("RELEASE SAVEPOINT migsafe_step").map_err(|e| e.to_string())?,
            Err(e) => {
                if first.is_empty() {
                    first = format!("{}: {}", s.lines().next().unwrap_or(""), db_message(&e));
                }
                tx.batch_execute("ROLLBACK TO SAVEPOINT migsafe_step").map_err(|e| e.to_string())?;
                skipped.push(i);
            }
        }
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok((skipped, first))
}

/// The server's message of a query error.
pub fn db_message(e: &postgres::Error) -> String {
    e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())
}

/// One migration as the rollback builder sees it.
pub struct Step<'a> {
    /// The migration.
    pub m: &'a Migration,
    /// Its parsed forward SQL.
    pub prepared: &'a Prepared,
    /// Its capture plan.
    pub plan: &'a CapturePlan,
    /// Schema before it.
    pub s0: &'a Snapshot,
    /// Schema after it.
    pub s1: &'a Snapshot,
    /// Wrap the script in BEGIN/COMMIT (false for dbmate sections).
    pub transaction: bool,
    /// What its opaque statements did to the schema, seen as it ran.
    pub opaque: &'a Opaque,
}

/// The schema changes of statements migsafe cannot see into (DO blocks, CALL, SELECT of the
/// database's own functions), observed while the migration runs: a snapshot just before and
/// just after each, and the DDL that takes the after back to the before, which is that
/// statement's inverse (a trigger a function created is dropped where the function is).
#[derive(Default)]
pub struct Opaque {
    /// The statements to watch.
    watch: Vec<usize>,
    before: Option<Snapshot>,
    /// Per opaque statement that changed the schema, its inverse.
    pub diffs: std::collections::BTreeMap<usize, Vec<String>>,
    /// Per opaque statement, the tables, columns, constraints and indexes it dropped or
    /// renamed away (as the inversion lists what statements drop): a later statement that
    /// creates one of those names again creates something new.
    pub gone: std::collections::BTreeMap<usize, Vec<(migsafe_sql::model::ObjectKind, String)>>,
}

impl Opaque {
    /// Watch the opaque statements of `prepared`; `s0` is the schema before it runs.
    pub fn new(prepared: &Prepared, s0: &Snapshot) -> Opaque {
        let own = |c: &str| {
            s0.functions.values().any(|f| f.name == c)
                || prepared
                    .statements
                    .iter()
                    .any(|st| matches!(&st.kind, migsafe_sql::StmtKind::CreateFunction { name, .. } if name.name == c))
        };
        let watch: Vec<usize> =
            prepared.statements.iter().filter(|st| opaque(st, &own).is_some()).map(|st| st.index).collect();
        let before = watch.contains(&0).then(|| s0.clone());
        Opaque { watch, before, diffs: Default::default(), gone: Default::default() }
    }

    /// Called after statement `i` ran on `c` (inside the migration's transaction).
    pub fn observe(&mut self, c: &mut postgres::Client, i: usize) {
        if self.watch.is_empty() {
            return;
        }
        if self.watch.contains(&i) {
            if let (Some(before), Ok(after)) = (self.before.take(), Snapshot::capture_within(c)) {
                self.gone.insert(i, gone_between(&before, &after));
                let sql = undo_opaque(c, &before, after);
                if !sql.is_empty() {
                    self.diffs.insert(i, sql);
                }
            }
        }
        if self.watch.contains(&(i + 1)) {
            self.before = Snapshot::capture_within(c).ok();
        }
    }
}

/// A rollback composed but not yet proven.
pub struct Composed {
    inverses: Vec<Inverse>,
    /// Enum values to add before the transaction (a value added inside one cannot be used
    /// until it commits, and the rollback uses them: defaults, restored data).
    enum_values: Vec<String>,
    lines: Vec<usize>,
    residual: Vec<String>,
    restore: Vec<String>,
    finalize: Vec<String>,
    /// What cannot be reversed.
    pub manual: Vec<String>,
    notes: Vec<String>,
    verify: Option<String>,
    complexity: String,
    forward_file: String,
    transaction: bool,
}

impl Composed {
    /// The rollback file text.
    pub fn render(&self, duration: &str) -> String {
        script::render(&script::ScriptParts {
            forward_file: &self.forward_file,
            complexity: &self.complexity,
            duration: duration.to_string(),
            inverses: &self.inverses,
            enum_values: &self.enum_values,
            lines: &self.lines,
            residual: self.residual.clone(),
            restore: self.restore.clone(),
            finalize: self.finalize.clone(),
            manual: self.manual.clone(),
            notes: self.notes.clone(),
            verify: self.verify.clone(),
            transaction: self.transaction,
        })
    }
}

/// Compose the rollback of a migration that ran on `work` (which must have no open
/// connections): inversion, tried on a copy, completed with the diff back to S0.
pub fn compose(step: &Step, work: &ScratchDb) -> Result<Composed, EngineError> {
    let (prepared, s0, s1) = (step.prepared, step.s0, step.s1);
    let inverses =
        invert::invert_all(&prepared.source, &prepared.statements, s0, s1, &step.plan.captured_columns(), step.opaque);
    // Rows the migration added are deleted after the data restore: the trial is about schema.
    let candidate: Vec<String> =
        inverses.iter().filter(|i| !i.removes_rows).flat_map(|i| i.sql.iter().cloned()).collect();
    let concurrent: Vec<String> = inverses.iter().flat_map(|i| i.concurrent.iter().cloned()).collect();
    let target = relaxed(s0, s1, step.plan);
    let mut notes = Vec::new();
    let trial = work.clone_db("trial")?;
    let (inverses, residual) = match try_statements(&trial, &concurrent, &candidate) {
        Ok(()) => {
            let sc = Snapshot::capture(&mut trial.connect()?)?;
            drop(trial);
            (inverses, sc.diff(&target).statements())
        }
        Err(e) => {
            // Again, skipping what fails where it is (an index recreated by its old
            // definition before a rename it needs is undone): the diff from there puts it right
            // at the end. Only when nothing runs is the rollback the diff alone.
            drop(trial);
            let again = work.clone_db("trial")?;
            match try_skipping(&again, &concurrent, &candidate) {
                Ok((skipped, first)) if skipped.len() < candidate.len() => {
                    let sc = Snapshot::capture(&mut again.connect()?)?;
                    notes.push(format!(
                        "{} statement(s) of the inversion could not run where they were (first: {first}); the schema \
                         diff after the others does what they would have",
                        skipped.len()
                    ));
                    let mut position = 0;
                    let kept: Vec<Inverse> = inverses
                        .into_iter()
                        .map(|mut inv| {
                            if !inv.removes_rows {
                                let mut keep = Vec::new();
                                for sql in inv.sql {
                                    if !skipped.contains(&position) {
                                        keep.push(sql);
                                    }
                                    position += 1;
                                }
                                inv.sql = keep;
                            }
                            inv
                        })
                        .filter(|inv| !inv.sql.is_empty() || !inv.concurrent.is_empty())
                        .collect();
                    (kept, sc.diff(&target).statements())
                }
                _ => {
                    notes.push(format!(
                        "the statement-by-statement inversion failed ({e}); the rollback is the schema diff alone"
                    ));
                    (vec![], s1.diff(&target).statements())
                }
            }
        }
    };
    let finalize = target.diff(s0).statements();
    let adds_enum_value = |x: &String| x.starts_with("ALTER TYPE ") && x.contains(" ADD VALUE ");
    let (enum_values, residual): (Vec<String>, Vec<String>) = residual.into_iter().partition(adds_enum_value);
    let (more_values, finalize): (Vec<String>, Vec<String>) = finalize.into_iter().partition(adds_enum_value);
    let enum_values: Vec<String> = enum_values.into_iter().chain(more_values).collect();
    let manual: Vec<String> = step
        .plan
        .manual
        .iter()
        .map(|(i, why)| format!("statement {} (line {}): {why}", i + 1, line_of(prepared, *i)))
        .collect();
    let added = adds_rows_to(&prepared.statements);
    if !prepared.captures_in_transaction()
        && step.plan.items.iter().any(|i| matches!(i, capture::CaptureItem::Added { .. }))
    {
        notes.push(
            "this migration does not run in one transaction that the capture step can join (migsafe's own, or a \
             BEGIN opening the file), so the rows it adds to existing tables cannot be told apart by the transaction \
             that wrote them: they stay"
                .into(),
        );
    }
    for st in &prepared.statements {
        if let Some((_, q)) = added.iter().find(|(i, _)| *i == st.index) {
            let inverted = inverses.iter().any(|i| i.statement == st.index)
                || step.plan.items.iter().any(|i| match i {
                    capture::CaptureItem::Seeded { statement, .. } => *statement == st.index,
                    capture::CaptureItem::Added { table, .. } => table == q,
                    _ => false,
                });
            if s0.tables.contains_key(q) && !inverted {
                notes.push(format!(
                    "statement {} (line {}) inserts rows into {q}, which existed before: the rollback cannot tell them \
                     from other rows (the table has no primary key or unique NOT NULL key to record), so they stay",
                    st.index + 1,
                    line_of(prepared, st.index)
                ));
            }
        }
        if let Some(what) = opaque(st, &|c| s1.functions.values().any(|f| f.name == c)) {
            notes.push(format!(
                "statement {} (line {}) {what}: migsafe cannot see inside it, so data it changes is not reverted here \
                 (the data proof and `migsafe rehearse` compare every table's rows and will say)",
                st.index + 1,
                line_of(prepared, st.index)
            ));
        }
        if let migsafe_sql::StmtKind::AlterEnum { name, add_value: Some(v), .. } = &st.kind {
            notes.push(format!(
                "enum values cannot be removed in place: {name} is rebuilt without '{v}' and its columns converted (this fails if rows use '{v}')"
            ));
        }
    }
    let lines: Vec<usize> = (0..prepared.statements.len()).map(|i| line_of(prepared, i)).collect();
    let complexity =
        step.m.directives.complexity.clone().unwrap_or_else(|| risk_of(step.m).level.as_str().to_uppercase());
    // The data is undone in exact reverse statement order: captured values and rows are put
    // back, and rows the migration added are deleted, each where its statement was (a value
    // restored may point at an added row; a row re-added may share the key of an added one).
    let (mut blocks, sequences) = step.plan.restore_sql(s0);
    let (removals, inverses): (Vec<Inverse>, Vec<Inverse>) = inverses.into_iter().partition(|i| i.removes_rows);
    blocks.extend(removals.into_iter().map(|i| (i.statement, i.sql)));
    blocks.sort_by_key(|(statement, _)| std::cmp::Reverse(*statement));
    let restore: Vec<String> = blocks.into_iter().flat_map(|(_, sql)| sql).chain(sequences).collect();
    Ok(Composed {
        inverses,
        enum_values,
        lines,
        residual,
        restore,
        finalize,
        manual,
        notes,
        verify: script::verification(s1, s0),
        complexity,
        forward_file: file_name(&step.m.forward.path),
        transaction: step.transaction,
    })
}

/// The tables that existed before the migration (by their S0 names, traced through renames
/// and `search_path` like the capture plan's) that its statements add rows to (INSERT, COPY
/// FROM, MERGE with an INSERT action), with the index of each such statement.
fn adds_rows_to(statements: &[migsafe_sql::Statement]) -> Vec<(usize, migsafe_catalog::QName)> {
    use migsafe_sql::StmtKind;
    let mut names = names::Names::default();
    let mut out = Vec::new();
    for st in statements {
        let table = match &st.kind {
            StmtKind::Insert { table, .. }
            | StmtKind::Merge { table, inserts: true, .. }
            | StmtKind::Copy { table: Some(table), from: true } => names.s0_table(table),
            _ => None,
        };
        out.extend(table.map(|q| (st.index, q)));
        names.observe(&st.kind);
    }
    out
}

/// What `before` has and `after` has not, named as the inversion names what a statement drops.
fn gone_between(before: &Snapshot, after: &Snapshot) -> Vec<(migsafe_sql::model::ObjectKind, String)> {
    use migsafe_sql::model::ObjectKind as K;
    use migsafe_sql::quote_ident as qi;
    let mut out = Vec::new();
    for (n, t) in &before.tables {
        let Some(a) = after.tables.get(n) else {
            out.push((K::Table, n.to_string()));
            continue;
        };
        out.extend(
            t.columns
                .iter()
                .filter(|c| a.column(&c.name).is_none())
                .map(|c| (K::Column, format!("{n}.{}", qi(&c.name)))),
        );
        out.extend(
            t.constraints
                .keys()
                .filter(|k| !a.constraints.contains_key(*k))
                .map(|k| (K::Constraint, format!("{n}.{}", qi(k)))),
        );
        out.extend(
            t.indexes
                .keys()
                .filter(|k| !a.indexes.contains_key(*k))
                .map(|k| (K::Index, migsafe_catalog::QName::new(&n.schema, k.as_str()).to_string())),
        );
    }
    out
}

/// The DDL taking `after` back to `before` across one opaque statement. Tables, columns and
/// indexes it renamed (a DO block's `ALTER TABLE IF EXISTS a RENAME TO b`) are renamed back
/// rather than dropped and created empty: each rename is tried in a savepoint inside the
/// migration's transaction and the rest is the diff from there. Outside a transaction block
/// (nothing to try it in), the plain diff.
fn undo_opaque(c: &mut postgres::Client, before: &Snapshot, after: Snapshot) -> Vec<String> {
    let mut renames = table_and_column_renames(before, &after);
    if renames.is_empty() {
        return after.diff(before).statements();
    }
    let mut seen = match tried(c, &renames) {
        Some(s) => s,
        None => return after.diff(before).statements(),
    };
    let indexes = index_renames(before, &seen);
    if !indexes.is_empty() {
        renames.extend(indexes);
        match tried(c, &renames) {
            Some(s) => seen = s,
            None => return after.diff(before).statements(),
        }
    }
    renames.extend(seen.diff(before).statements());
    renames
}

/// The schema after running `sql` in a savepoint that is then rolled back (None when that
/// fails, or outside a transaction block).
fn tried(c: &mut postgres::Client, sql: &[String]) -> Option<Snapshot> {
    c.batch_execute("SAVEPOINT migsafe_renames").ok()?;
    let seen = sql.iter().try_for_each(|s| c.batch_execute(s)).ok().and_then(|()| Snapshot::capture_within(c).ok());
    c.batch_execute("ROLLBACK TO SAVEPOINT migsafe_renames; RELEASE SAVEPOINT migsafe_renames").ok()?;
    seen
}

/// Renames back: a table gone from `before` and one new in `after`, in the same schema, with
/// the same column types in the same order (one candidate only); then, in each table, a column
/// gone and a new one at the same position with the same type.
fn table_and_column_renames(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    use migsafe_catalog::QName;
    let types = |t: &migsafe_catalog::model::Table| t.columns.iter().map(|c| c.type_name.clone()).collect::<Vec<_>>();
    let gone: Vec<&QName> = before.tables.keys().filter(|n| !after.tables.contains_key(*n)).collect();
    let new: Vec<&QName> = after.tables.keys().filter(|n| !before.tables.contains_key(*n)).collect();
    let mut out = Vec::new();
    let mut pairs: Vec<(&QName, &QName)> =
        before.tables.keys().filter(|n| after.tables.contains_key(*n)).map(|n| (n, n)).collect();
    for g in gone {
        let want = types(&before.tables[g]);
        let fits: Vec<&&QName> =
            new.iter().filter(|n| n.schema == g.schema && types(&after.tables[**n]) == want).collect();
        if let [n] = fits.as_slice() {
            if !pairs.iter().any(|(_, a)| a == *n) {
                out.push(format!("ALTER TABLE {n} RENAME TO {}", migsafe_sql::quote_ident(&g.name)));
                pairs.push((g, n));
            }
        }
    }
    for (b, a) in pairs {
        let (tb, ta) = (&before.tables[b], &after.tables[a]);
        for (pos, col) in tb.columns.iter().enumerate() {
            if ta.column(&col.name).is_some() {
                continue;
            }
            if let Some(now) = ta.columns.get(pos) {
                if tb.column(&now.name).is_none() && now.type_name == col.type_name {
                    out.push(format!(
                        "ALTER TABLE {b} RENAME COLUMN {} TO {}",
                        migsafe_sql::quote_ident(&now.name),
                        migsafe_sql::quote_ident(&col.name)
                    ));
                }
            }
        }
    }
    out
}

/// Indexes of a table gone from `before` under one name and new in `after` under another,
/// with the same definition apart from the name.
fn index_renames(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (tn, tb) in &before.tables {
        let Some(ta) = after.tables.get(tn) else { continue };
        let unnamed =
            |name: &str, def: &str| def.replacen(&format!(" {} ON ", migsafe_sql::quote_ident(name)), " ON ", 1);
        for (old, ib) in tb.indexes.iter().filter(|(n, _)| !ta.indexes.contains_key(*n)) {
            let want = unnamed(old, &ib.definition);
            let fits: Vec<&String> = ta
                .indexes
                .iter()
                .filter(|(n, ia)| !tb.indexes.contains_key(*n) && unnamed(n, &ia.definition) == want)
                .map(|(n, _)| n)
                .collect();
            if let [new] = fits.as_slice() {
                out.push(format!(
                    "ALTER INDEX {} RENAME TO {}",
                    migsafe_catalog::QName::new(&tn.schema, new.as_str()),
                    migsafe_sql::quote_ident(old)
                ));
            }
        }
    }
    out
}

/// What makes a statement opaque to the rollback: a DO block, a CALL, or a SELECT calling
/// one of the database's own functions (which may write anything: `SELECT create_queue('q')`).
/// `own` says whether a function name is one of the database's (or the migration's) own.
fn opaque(st: &migsafe_sql::Statement, own: &dyn Fn(&str) -> bool) -> Option<String> {
    use migsafe_sql::StmtKind;
    match &st.kind {
        StmtKind::Do => Some("is a DO block".into()),
        StmtKind::Other { tag } if tag == "CALL" => Some("calls a procedure".into()),
        StmtKind::Select { calls, .. } => calls.iter().find(|c| own(c)).map(|c| format!("calls the function {c}()")),
        _ => None,
    }
}

/// Compose and prove the rollback of a migration, given the copy of the database it ran on.
fn build(step: &Step, work: &ScratchDb, f0: &Fingerprint) -> Result<GeneratedRollback, EngineError> {
    let mut composed = compose(step, work)?;
    let text = composed.render("under 1 second on the proof database");
    // Prove it: run the file as migsafe would, on a fresh copy of the migrated database.
    let proof = work.clone_db("proof")?;
    let t0 = Instant::now();
    let outcome = Prepared::from_text("rollback.sql", &text).map_err(EngineError::from).and_then(|p| {
        let mut c = proof.connect()?;
        run_plain(&mut c, &p)?;
        let snap = Snapshot::capture(&mut c)?;
        let data = fingerprint_tables(&mut c, f0.tables.keys())?;
        Ok((snap, data))
    });
    let proof_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let mut data_differences = Vec::new();
    let (proven, remaining, column_order) = match outcome {
        Ok((sr, data)) => {
            data_differences = f0
                .compare(&data)
                .into_iter()
                .map(|d| match (d.rows_before, d.rows_after) {
                    (Some(a), Some(b)) if a != b => {
                        format!("{}: {a} rows before the migration, {b} after the rollback", d.table)
                    }
                    (_, None) => format!("{}: missing after the rollback", d.table),
                    _ => format!("{}: same row count, different contents after the rollback", d.table),
                })
                .collect();
            let d = sr.diff(step.s0);
            let order = d
                .column_order
                .iter()
                .map(|o| format!("{}: ({}) instead of ({})", o.table, o.before.join(", "), o.after.join(", ")))
                .collect();
            (d.differences.is_empty(), if d.differences.is_empty() { String::new() } else { d.summary() }, order)
        }
        Err(e) => (false, format!("the rollback failed on the migrated schema: {e}"), vec![]),
    };
    if !proven {
        composed.manual.push(format!(
            "this rollback does not restore the schema exactly; what still differs:\n--   {}",
            remaining.trim_end().replace('\n', "\n--   ")
        ));
    }
    let duration = if proof_ms < 1000.0 {
        format!("under 1 second (took {proof_ms:.0} ms on the proof database; grows with table sizes)")
    } else {
        format!("about {:.0} seconds on the proof database (grows with table sizes)", proof_ms / 1000.0)
    };
    let script = composed.render(&duration);
    let file_label = file_name(&step.m.forward.path);
    Ok(GeneratedRollback {
        version: step.m.version.to_string(),
        name: step.m.name.clone(),
        script,
        capture: step.plan.capture_sql(&file_label),
        proven,
        column_order,
        manual: composed.manual,
        remaining,
        written: None,
        proof_ms,
        data_differences,
    })
}

/// Fingerprint the given tables (those that exist).
pub fn fingerprint_tables<'a>(
    c: &mut postgres::Client,
    tables: impl Iterator<Item = &'a migsafe_catalog::QName>,
) -> Result<Fingerprint, EngineError> {
    let tables: Vec<&migsafe_catalog::QName> = tables.collect();
    let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    let existing: std::collections::HashSet<String> = c
        .query("SELECT n FROM unnest($1::text[]) n WHERE to_regclass(n) IS NOT NULL", &[&names])?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let present: Vec<&migsafe_catalog::QName> =
        tables.into_iter().filter(|t| existing.contains(&t.to_string())).collect();
    Ok(Fingerprint { tables: migsafe_catalog::fingerprint::fingerprint_tables(c, &present)? })
}

fn line_of(p: &Prepared, i: usize) -> usize {
    let idx = LineIndex::new(&p.source);
    p.statements.get(i).map(|s| idx.line_col(&p.source, s.span.start).line).unwrap_or(0)
}

/// Generate (and prove) rollbacks for the migrations of `set` that lack one.
pub fn generate(
    set: &MigrationSet,
    server: &ScratchServer,
    opts: &GenerateOptions,
) -> Result<Vec<GeneratedRollback>, EngineError> {
    let mut replay = Replay::new(server, set)?;
    let mut out = Vec::new();
    for m in &set.migrations {
        let want = selected(m, &opts.versions) && (m.rollback.is_none() || opts.force);
        let prepared = Prepared::new(&m.forward)?;
        let plan = capture::plan(m.version.as_str(), &prepared.statements, &replay.s0);
        // The migration runs on the base itself (one connection); the rollback is composed
        // and proven on copies of it.
        let mut c = replay.connect()?;
        let f0 = if want {
            // The data proof covers every table that existed before, as a rehearsal does: a
            // rollback that loses or leaves rows anywhere (a column renamed back by DROP + ADD,
            // rows added by a query or a function) must not pass as proven.
            Fingerprint::capture(&mut c, &replay.s0)?
        } else {
            Fingerprint::default()
        };
        let cap = match plan.capture_sql(&file_name(&m.forward.path)).filter(|_| want) {
            Some(text) => Some(Prepared::from_text("capture.sql", &text)?),
            None => None,
        };
        let mut seen = Opaque::new(&prepared, &replay.s0);
        crate::exec::run_captured(&mut c, cap.as_ref(), &prepared, &mut |c, i, _| seen.observe(c, i))?;
        reset_session(&mut c)?;
        let s1 = Snapshot::capture(&mut c)?;
        drop(c);
        if want {
            let step = Step {
                m,
                prepared: &prepared,
                plan: &plan,
                s0: &replay.s0,
                s1: &s1,
                transaction: set.layout != Layout::Dbmate,
                opaque: &seen,
            };
            let mut g = build(&step, replay.base(), &f0)?;
            if opts.write {
                g.written = Some(write(set, m, &g)?);
            }
            out.push(g);
        }
        replay.s0 = s1;
    }
    Ok(out)
}

/// Write the rollback (and capture step) in the set's layout.
fn write(set: &MigrationSet, m: &Migration, g: &GeneratedRollback) -> Result<PathBuf, EngineError> {
    let path = set.rollback_path(m);
    let io = |e: std::io::Error, p: &Path| EngineError::Input(format!("{}: cannot write: {e}", p.display()));
    if set.layout == Layout::Dbmate {
        let text = std::fs::read_to_string(&path).map_err(|e| io(e, &path))?;
        let up_end = text.find("\n-- migrate:down").map(|i| i + 1).unwrap_or(text.len());
        let mut new = text[..up_end].to_string();
        if !new.ends_with('\n') {
            new.push('\n');
        }
        new.push_str("-- migrate:down\n");
        new.push_str(&g.script);
        std::fs::write(&path, new).map_err(|e| io(e, &path))?;
    } else {
        std::fs::write(&path, &g.script).map_err(|e| io(e, &path))?;
    }
    if let Some(cap) = &g.capture {
        let cp = set.capture_path(m);
        std::fs::write(&cp, cap).map_err(|e| io(e, &cp))?;
    }
    Ok(path)
}

/// Prove existing rollbacks: each migration's rollback must bring its schema back exactly.
/// The reports use the rehearse shape (steps `forward`, `rollback`, `compare`).
pub fn check(
    set: &MigrationSet,
    server: &ScratchServer,
    versions: &[String],
) -> Result<Vec<MigrationReport>, EngineError> {
    let mut replay = Replay::new(server, set)?;
    let mut out = Vec::new();
    for m in &set.migrations {
        let prepared = Prepared::new(&m.forward)?;
        let mut rep = MigrationReport::new(m.version.as_str(), &m.name);
        let t0 = Instant::now();
        let s1 = {
            let mut c = replay.connect()?;
            // In the migration's transaction, as apply runs it (the capture records its id).
            let cap = m.capture.as_ref().map(Prepared::new).transpose()?;
            crate::exec::run_captured(&mut c, cap.as_ref(), &prepared, &mut |_, _, _| {})?;
            reset_session(&mut c)?;
            Snapshot::capture(&mut c)?
        };
        let want = selected(m, versions);
        if want {
            rep.push(StepReport::pass("forward", t0.elapsed().as_secs_f64() * 1000.0, "applied"));
            match &m.rollback {
                None => rep.push(StepReport::fail(
                    "rollback",
                    0.0,
                    "no rollback file (migsafe rollback generate writes one)",
                )),
                Some(rb) => {
                    rep.rollback = Some("hand-written".into());
                    let shared = Prepared::new(&m.forward)
                        .map(|p| StepReport::shared_extensions(&p.statements))
                        .unwrap_or_default();
                    let steps = prove_rollback(replay.base(), rb, &replay.s0, &shared)?;
                    for s in steps {
                        rep.push(s);
                    }
                }
            }
            out.push(rep);
        }
        replay.s0 = s1;
    }
    Ok(out)
}

/// Apply `rollback` to a copy of `work` and compare with `s0`: the `rollback` and `compare`
/// steps.
pub fn prove_rollback(
    work: &ScratchDb,
    rollback: &crate::source::SqlText,
    s0: &Snapshot,
    shared_extensions: &[String],
) -> Result<Vec<StepReport>, EngineError> {
    let mut steps = Vec::new();
    let proof = work.clone_db("proof")?;
    let t0 = Instant::now();
    let prepared = match Prepared::new(rollback) {
        Ok(p) => p,
        Err(e) => {
            steps.push(StepReport::fail("rollback", 0.0, e.to_string()));
            return Ok(steps);
        }
    };
    let mut c = proof.connect()?;
    if let Err(e) = run_plain(&mut c, &prepared) {
        steps.push(StepReport::fail("rollback", t0.elapsed().as_secs_f64() * 1000.0, e.to_string()));
        return Ok(steps);
    }
    let ms = t0.elapsed().as_secs_f64() * 1000.0;
    steps.push(StepReport::pass("rollback", ms, format!("{} statements ran", prepared.statements.len())));
    let sr = Snapshot::capture(&mut c)?;
    let step = StepReport::rollback_compare(0.0, sr.diff(s0), shared_extensions);
    steps.push(step);
    Ok(steps)
}

/// Risk view of a migration (for reports).
pub fn risk_of(m: &Migration) -> RiskView {
    let mut linter = migsafe_sql::lint::Linter::new(Default::default());
    RiskView::from(&linter.lint(migsafe_sql::lint::SourceFile { path: "", source: &m.forward.text }).risk)
}
