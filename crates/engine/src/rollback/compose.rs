//! Composing a rollback: the statements inverted last-first, tried on a copy of the migrated
//! database (skipping what cannot run where it is), completed by the schema diff back to the
//! schema before, with the captured data put back in reverse statement order.

use std::path::Path;

use migsafe_catalog::model::ConstraintType;
use migsafe_catalog::Snapshot;

use super::invert::{self, Inverse, KeyedRows};
use super::opaque::{opaque, Opaque};
use super::script;
use crate::capture::{self, CapturePlan};
use crate::exec::Prepared;
use crate::scratch::ScratchDb;
use crate::source::Migration;
use crate::EngineError;

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
    /// Its risk (the script's `Complexity` when the migration declares none).
    pub risk: &'a crate::lint::RiskView,
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
                    let first = first.map(|e| e.to_string()).unwrap_or_default();
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
        .map(|(i, why)| format!("statement {} (line {}): {why}", i + 1, prepared.line(*i)))
        .collect();
    notes.extend(statement_notes(step, &inverses));
    let complexity = step.m.directives.complexity.clone().unwrap_or_else(|| step.risk.level.as_str().to_uppercase());
    // The data is undone in exact reverse statement order: captured values and rows are put
    // back, and rows the migration added are deleted, each where its statement was (a value
    // restored may point at an added row; a row re-added may share the key of an added one).
    let (blocks, sequences) = step.plan.restore_sql(s0);
    let (removals, inverses): (Vec<Inverse>, Vec<Inverse>) = inverses.into_iter().partition(|i| i.removes_rows);
    let mut blocks: Vec<(usize, Vec<String>, Option<KeyedRows>)> =
        blocks.into_iter().map(|(i, sql)| (i, sql, None)).collect();
    blocks.extend(removals.into_iter().map(|i| (i.statement, i.sql, i.keyed)));
    blocks.sort_by_key(|(statement, ..)| std::cmp::Reverse(*statement));
    let restore: Vec<String> = set_based(blocks).into_iter().chain(sequences).collect();
    Ok(Composed {
        inverses,
        enum_values,
        lines: prepared.lines().to_vec(),
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

/// The data restore's statements, in order, with rows deleted by key from one table by
/// consecutive statements (a seed of single-row INSERTs) deleted together, a batch at a time.
fn set_based(blocks: Vec<(usize, Vec<String>, Option<KeyedRows>)>) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending: Option<KeyedRows> = None;
    let flush = |pending: &mut Option<KeyedRows>, out: &mut Vec<String>| {
        if let Some((table, key, rows)) = pending.take() {
            out.extend(capture::delete_keys(&table, &key, &rows));
        }
    };
    for (_, sql, keyed) in blocks {
        match (keyed, pending.as_mut()) {
            (Some((t, k, rows)), Some((pt, pk, prows))) if t == *pt && k == *pk => prows.extend(rows),
            (Some(keyed), _) => {
                flush(&mut pending, &mut out);
                pending = Some(keyed);
            }
            (None, _) => {
                flush(&mut pending, &mut out);
                out.extend(sql);
            }
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// What the rollback's notes say of individual statements: rows added that cannot be told
/// apart, statements migsafe cannot see into, enum values that cannot be removed in place.
fn statement_notes(step: &Step, inverses: &[Inverse]) -> Vec<String> {
    let (prepared, s0, s1) = (step.prepared, step.s0, step.s1);
    let mut out = Vec::new();
    let added = adds_rows_to(&prepared.statements);
    if !prepared.captures_in_transaction()
        && step.plan.items.iter().any(|i| matches!(i, capture::CaptureItem::Added { .. }))
    {
        out.push(
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
                out.push(format!(
                    "statement {} (line {}) inserts rows into {q}, which existed before: the rollback cannot tell them \
                     from other rows (the table has no primary key or unique NOT NULL key to record), so they stay",
                    st.index + 1,
                    prepared.line(st.index)
                ));
            }
        }
        if let Some(what) = opaque(st, &|c| s1.functions.values().any(|f| f.name == c)) {
            out.push(format!(
                "statement {} (line {}) {what}: migsafe cannot see inside it, so data it changes is not reverted here \
                 (the data proof and `migsafe rehearse` compare every table's rows and will say)",
                st.index + 1,
                prepared.line(st.index)
            ));
        }
        if let migsafe_sql::StmtKind::AlterEnum { name, add_value: Some(v), .. } = &st.kind {
            out.push(format!(
                "enum values cannot be removed in place: {name} is rebuilt without '{v}' and its columns converted (this fails if rows use '{v}')"
            ));
        }
    }
    out
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
            let fk_touching = c.kind == ConstraintType::ForeignKey
                && (restored || on_restored_column || c.references.as_ref().is_some_and(|x| tables.contains(x)));
            // A key on restored values would see the values the re-added column got (new
            // sequence numbers) collide with those being put back, and a CHECK would judge the
            // values the migration wrote: they wait for the data too.
            let key_on_restored = matches!(
                c.kind,
                ConstraintType::PrimaryKey | ConstraintType::Unique | ConstraintType::Exclusion | ConstraintType::Check
            ) && on_restored_column;
            !fk_touching && !key_on_restored
        });
    }
    r
}

/// Why a trial of candidate rollback statements stopped (the text goes into the rollback's
/// notes).
#[derive(Debug, thiserror::Error)]
pub(super) enum TrialError {
    /// Connecting to the trial database failed.
    #[error("{0}")]
    Connect(#[from] migsafe_pg::PgError),
    /// Opening, committing or stepping through the transaction failed.
    #[error("{0}")]
    Session(#[from] postgres::Error),
    /// A statement of the candidate failed: its first line (none for the statements run before
    /// the transaction) and the server's message.
    #[error("{}{message}", first_line.as_deref().map(|l| format!("{l}: ")).unwrap_or_default())]
    Statement {
        /// The statement's first line.
        first_line: Option<String>,
        /// The server's message.
        message: String,
    },
}

impl TrialError {
    fn statement(sql: Option<&str>, e: &postgres::Error) -> TrialError {
        TrialError::Statement {
            first_line: sql.map(|s| s.lines().next().unwrap_or("").to_string()),
            message: migsafe_pg::db_message(e),
        }
    }
}

/// Run SQL statements one by one in a transaction (no observer); the first error stops it.
fn try_statements(db: &ScratchDb, concurrent: &[String], stmts: &[String]) -> Result<(), TrialError> {
    let mut c = db.connect()?;
    for s in concurrent {
        c.batch_execute(s).map_err(|e| TrialError::statement(None, &e))?;
    }
    let mut tx = c.transaction()?;
    tx.batch_execute("SET LOCAL check_function_bodies = off")?;
    for s in stmts {
        tx.batch_execute(s).map_err(|e| TrialError::statement(Some(s), &e))?;
    }
    Ok(tx.commit()?)
}

/// Like [`try_statements`], but a statement that fails is skipped (rolled back to a savepoint
/// before it) and the others go on; returns the positions skipped and the first error.
fn try_skipping(
    db: &ScratchDb,
    concurrent: &[String],
    stmts: &[String],
) -> Result<(Vec<usize>, Option<TrialError>), TrialError> {
    let mut c = db.connect()?;
    for s in concurrent {
        c.batch_execute(s).map_err(|e| TrialError::statement(None, &e))?;
    }
    let mut tx = c.transaction()?;
    tx.batch_execute("SET LOCAL check_function_bodies = off")?;
    let (mut skipped, mut first) = (Vec::new(), None);
    for (i, s) in stmts.iter().enumerate() {
        tx.batch_execute("SAVEPOINT migsafe_step")?;
        match tx.batch_execute(s) {
            Ok(()) => tx.batch_execute("RELEASE SAVEPOINT migsafe_step")?,
            Err(e) => {
                first.get_or_insert_with(|| TrialError::statement(Some(s), &e));
                tx.batch_execute("ROLLBACK TO SAVEPOINT migsafe_step")?;
                skipped.push(i);
            }
        }
    }
    tx.commit()?;
    Ok((skipped, first))
}

/// The tables that existed before the migration (by their S0 names, traced through renames
/// and `search_path` like the capture plan's) that its statements add rows to (INSERT, COPY
/// FROM, MERGE with an INSERT action), with the index of each such statement.
fn adds_rows_to(statements: &[migsafe_sql::Statement]) -> Vec<(usize, migsafe_catalog::QName)> {
    use migsafe_sql::StmtKind;
    let mut names = crate::names::Names::default();
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

pub(super) fn file_name(p: &Path) -> String {
    p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
}
