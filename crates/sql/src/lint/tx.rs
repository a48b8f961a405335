//! Transaction semantics of a migration file as migsafe runs it, and the per-transaction
//! state the rules need (constraints added NOT VALID, ACCESS EXCLUSIVE locks held).

use serde::Serialize;

use super::rules::Rule;
use super::schema::SchemaModel;
use super::Violation;
use crate::directives::Directives;
use crate::lock::{statement_locks, LockMode};
use crate::model::{AlterAction, QualName, Statement, StmtKind, TxControl};

/// How migsafe runs a migration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum TxMode {
    /// The whole file in one transaction that migsafe opens and commits.
    Wrapped,
    /// The file has its own BEGIN/COMMIT; migsafe runs its statements as written.
    OwnTransactions,
    /// Statement by statement, each committed on its own.
    Autocommit {
        /// Why: the directive, or the first statement that cannot run in a transaction.
        reason: String,
    },
}

impl TxMode {
    /// Decide how a file runs: a `no-transaction` directive or any statement PostgreSQL
    /// refuses inside a transaction block (CONCURRENTLY, VACUUM…) means statement by
    /// statement; explicit BEGIN/COMMIT means as written; otherwise one wrapping transaction.
    pub fn of(directives: &Directives, statements: &[Statement]) -> TxMode {
        if directives.no_transaction {
            return TxMode::Autocommit { reason: "the file has a no-transaction directive".into() };
        }
        if let Some(s) = statements.iter().find(|s| s.forbids_transaction()) {
            return TxMode::Autocommit {
                reason: format!("{} cannot run inside a transaction block (statement {})", s.tag, s.index + 1),
            };
        }
        if statements.iter().any(|s| matches!(s.kind, StmtKind::Transaction(TxControl::Begin | TxControl::Commit))) {
            return TxMode::OwnTransactions;
        }
        TxMode::Wrapped
    }

    /// True when the whole file is atomic (all or nothing).
    pub fn is_atomic(&self) -> bool {
        matches!(self, TxMode::Wrapped)
    }
}

/// Walks a file's statements keeping transaction state.
#[derive(Debug, Clone)]
pub struct TxTracker {
    wrapped: bool,
    explicit_open: Option<usize>,
    /// Constraints added NOT VALID in the current transaction: (table, name).
    pub not_valid_added: Vec<(QualName, String)>,
    /// The first ACCESS EXCLUSIVE lock on an existing table held in the current transaction.
    /// (resolved name, name as written, statement index).
    pub access_exclusive: Option<(QualName, QualName, usize)>,
    /// Statements since that lock that took locks on other existing tables.
    pub other_locks_after_access_exclusive: usize,
    /// Statements that began a transaction while one was open.
    pub nested_begin: bool,
    /// A COMMIT/ROLLBACK with no transaction open.
    pub unmatched_end: bool,
}

impl TxTracker {
    /// A tracker for a file run in `mode`.
    pub fn new(mode: &TxMode) -> Self {
        TxTracker {
            wrapped: matches!(mode, TxMode::Wrapped),
            explicit_open: None,
            not_valid_added: Vec::new(),
            access_exclusive: None,
            other_locks_after_access_exclusive: 0,
            nested_begin: false,
            unmatched_end: false,
        }
    }

    /// True when the current statement runs inside a transaction block.
    pub fn in_transaction(&self) -> bool {
        self.wrapped || self.explicit_open.is_some()
    }

    /// Update state for transaction control before the statement is checked.
    pub fn before(&mut self, stmt: &Statement) {
        self.nested_begin = false;
        self.unmatched_end = false;
        match stmt.kind {
            StmtKind::Transaction(TxControl::Begin) => {
                if self.in_transaction() {
                    self.nested_begin = true;
                } else {
                    self.explicit_open = Some(stmt.index);
                    self.reset();
                }
            }
            StmtKind::Transaction(TxControl::Commit | TxControl::Rollback) if self.explicit_open.is_none() => {
                self.unmatched_end = true;
            }
            _ => {}
        }
    }

    /// Record what the statement leaves held until commit.
    pub fn after(&mut self, stmt: &Statement, schema: &SchemaModel) {
        match stmt.kind {
            StmtKind::Transaction(TxControl::Commit | TxControl::Rollback) => {
                if self.explicit_open.take().is_some() {
                    self.reset();
                }
                return;
            }
            StmtKind::Transaction(_) => return,
            _ => {}
        }
        if !self.in_transaction() {
            return;
        }
        if let StmtKind::AlterTable { table, actions, .. } = &stmt.kind {
            for a in actions {
                if let AlterAction::AddConstraint(c) = a {
                    if c.not_valid {
                        if let Some(name) = &c.name {
                            self.not_valid_added.push((schema.resolve(table), name.clone()));
                        }
                    }
                }
            }
        }
        if let Some((held, _, _)) = &self.access_exclusive {
            let others = statement_locks(&stmt.kind, schema)
                .into_iter()
                .any(|(t, _)| !schema.is_new(&t) && &schema.resolve(&t) != held);
            if others {
                self.other_locks_after_access_exclusive += 1;
            }
        } else {
            for (table, mode) in statement_locks(&stmt.kind, schema) {
                if mode == LockMode::AccessExclusive && !schema.is_new(&table) && !is_created_by(stmt, &table) {
                    self.access_exclusive = Some((schema.resolve(&table), table.clone(), stmt.index));
                    break;
                }
            }
        }
    }

    fn reset(&mut self) {
        self.not_valid_added.clear();
        self.access_exclusive = None;
        self.other_locks_after_access_exclusive = 0;
    }

    /// At the end of the file: a transaction still open is a finding on its BEGIN.
    pub(crate) fn finish(&self, statements: &[Statement], out: &mut Vec<(Rule, usize, Violation)>) {
        if let Some(begin) = self.explicit_open {
            let _ = statements;
            out.push((
                Rule::UnterminatedTransaction,
                begin,
                Violation {
                    message: "this BEGIN is never committed: the migration ends with its transaction open, so \
                              everything after it is rolled back when the session closes, and every lock it took \
                              is held until then"
                        .into(),
                    help: "end the transaction with COMMIT; (or remove BEGIN and let migsafe run the file in one \
                           transaction)"
                        .into(),
                },
            ));
        }
    }
}

fn is_created_by(stmt: &Statement, table: &QualName) -> bool {
    matches!(&stmt.kind, StmtKind::CreateTable { table: t, .. } if t == table)
}
