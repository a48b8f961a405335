//! Statement-by-statement inversion of a forward migration, in reverse order, using the schema
//! before it (S0) for everything a statement destroys or replaces and the schema after it (S1)
//! for names the statement left to PostgreSQL. What has no exact inverse here is left to the
//! snapshot diff that follows.

mod column;
mod constraint;
mod function;
mod index;
mod other;
mod rename;
mod rows;
mod table;
mod types;
mod view;

use std::collections::{BTreeMap, BTreeSet};

use migsafe_catalog::model::Snapshot;
use migsafe_catalog::QName;
use migsafe_sql::model::{AlterAction, ObjectKind, StmtKind};
use migsafe_sql::{quote_ident as qi, Statement};

use crate::names::Names;

/// Rows deleted by key: the table, the key's columns, the rows' keys.
pub type KeyedRows = (QName, Vec<String>, Vec<Vec<String>>);

/// The inverse of one forward statement.
#[derive(Debug, Clone, Default)]
pub struct Inverse {
    /// Index of the forward statement.
    pub statement: usize,
    /// Tag of the forward statement, for the comment.
    pub tag: String,
    /// Statements that undo it (in a transaction).
    pub sql: Vec<String>,
    /// Statements that must run outside a transaction (CONCURRENTLY).
    pub concurrent: Vec<String>,
    /// It deletes rows the statement added (INSERT, COPY): data only, so it runs with the data
    /// restore, where its statement was in reverse order (see `compose`).
    pub removes_rows: bool,
    /// When it deletes rows by their key (an `INSERT … VALUES` giving every key): the table,
    /// the key's columns and the rows' keys, so consecutive ones on one table are deleted
    /// together (see `compose`).
    pub keyed: Option<KeyedRows>,
    /// When it only adds back dropped columns: the table, and the first column's position in
    /// S0 (consecutive such inverses on one table are put in S0's column order).
    readds: Option<(QName, usize)>,
}

struct Inversion<'a> {
    /// The migration's text (the rows of `COPY … FROM STDIN` are in it).
    source: &'a str,
    s0: &'a Snapshot,
    s1: &'a Snapshot,
    /// What the statements before the one being inverted did.
    before: Earlier,
    /// Columns whose values the capture step records, by S0 names, with their copy.
    captured: &'a BTreeMap<(QName, String), QName>,
    /// Function signatures a later CREATE FUNCTION's inverse already undid (overloads share
    /// a name; each is undone once, by the statement that created it where that is known).
    functions_done: std::cell::RefCell<BTreeSet<String>>,
}

/// What the earlier statements of the migration did, as seen by one statement.
#[derive(Clone, Default)]
struct Earlier {
    /// Tables and columns renamed, moved or created, and `search_path`.
    names: Names,
    /// Objects (kind, schema-qualified name) dropped: a later CREATE of the same name is
    /// undone by dropping it, whatever S0 had.
    dropped: Vec<(ObjectKind, String)>,
    /// Columns (`table.column`) whose default was set, dropped or retyped: that statement's
    /// inverse restores the default S0 had, so later ones leave it alone (S0's default may not
    /// even fit the type at their point).
    defaults: Vec<String>,
}

impl Inversion<'_> {
    fn q(&self, n: &migsafe_sql::QualName) -> QName {
        self.before.names.named(n)
    }

    /// The S0 name of a table the statement names (renamed by an earlier statement or not).
    fn original(&self, t: &QName) -> QName {
        self.before.names.original(t)
    }

    /// The S0 name of the column of `t` the statement calls `c` (see [`Names::original_column`]).
    fn original_column(&self, t: &QName, c: &str) -> Option<String> {
        self.before.names.original_column(t, c)
    }
}

/// Invert every statement of a forward migration, last first.
pub fn invert_all(
    source: &str,
    statements: &[Statement],
    s0: &Snapshot,
    s1: &Snapshot,
    captured: &BTreeMap<(QName, String), QName>,
    opaque: &super::Opaque,
) -> Vec<Inverse> {
    let mut now = Earlier::default();
    let mut earlier: Vec<Earlier> = Vec::with_capacity(statements.len());
    for st in statements {
        earlier.push(now.clone());
        // What an opaque statement was seen to drop or rename away.
        if let Some(gone) = opaque.gone.get(&st.index) {
            now.dropped.extend(gone.iter().cloned());
        }
        let q = |n: &migsafe_sql::QualName| now.names.named(n);
        match &st.kind {
            StmtKind::Drop { kind, names, cascade, .. } => {
                let mut gone: Vec<_> = names.iter().map(|n| (*kind, q(n).to_string())).collect();
                if *cascade {
                    // The views built on what goes (transitively) go with it.
                    let roots: Vec<QName> = names.iter().map(&q).collect();
                    for (name, v) in s0.views_on(&roots) {
                        let k = if v.materialized { ObjectKind::MatView } else { ObjectKind::View };
                        gone.push((k, name.to_string()));
                    }
                }
                now.dropped.extend(gone);
            }
            StmtKind::AlterTable { table, actions, .. } => {
                let t = q(table);
                for a in actions {
                    match a {
                        AlterAction::DropConstraint { name, .. } => {
                            now.dropped.push((ObjectKind::Constraint, format!("{t}.{}", qi(name))));
                        }
                        AlterAction::DropColumn { column, .. } => {
                            now.dropped.push((ObjectKind::Column, format!("{t}.{}", qi(column))));
                        }
                        AlterAction::SetDefault { column, .. }
                        | AlterAction::DropDefault { column }
                        | AlterAction::AlterType { column, .. } => {
                            now.defaults.push(format!("{t}.{}", qi(column)));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        now.names.observe(&st.kind);
    }
    let mut cx = Inversion { source, captured, s0, s1, before: Earlier::default(), functions_done: Default::default() };
    let mut out = Vec::new();
    for (st, e) in statements.iter().zip(earlier).rev() {
        cx.before = e;
        let mut inv = Inverse { statement: st.index, tag: st.tag.clone(), ..Default::default() };
        match opaque.diffs.get(&st.index) {
            // What a DO block or a function call did to the schema, seen around it.
            Some(sql) => inv.sql.extend(sql.iter().cloned()),
            None => invert(st, &cx, &mut inv),
        }
        if !inv.sql.is_empty() || !inv.concurrent.is_empty() {
            out.push(inv);
        }
    }
    // Columns dropped by consecutive statements come back in the order the table had them
    // (last-first would add them reversed); nothing between them depends on their order.
    let mut i = 0;
    while i < out.len() {
        let Some((table, _)) = out[i].readds.clone() else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        while j < out.len() && out[j].readds.as_ref().is_some_and(|(t, _)| *t == table) {
            j += 1;
        }
        out[i..j].sort_by_key(|inv| inv.readds.as_ref().map_or(usize::MAX, |(_, p)| *p));
        i = j;
    }
    out
}

/// The inverse of one statement, by the kind of object it works on.
fn invert(st: &Statement, cx: &Inversion, inv: &mut Inverse) {
    match &st.kind {
        StmtKind::Insert { .. } | StmtKind::Copy { .. } => rows::invert(st, cx, inv),
        StmtKind::CreateTable { .. } | StmtKind::CreateTableAs { .. } | StmtKind::AlterTable { .. } => {
            table::invert(st, cx, inv)
        }
        StmtKind::CreateIndex { .. } | StmtKind::Drop { kind: ObjectKind::Index, .. } => index::invert(st, cx, inv),
        StmtKind::CreateView { .. } => view::invert(st, cx, inv),
        StmtKind::CreateFunction { .. } | StmtKind::CreateTrigger { .. } => function::invert(st, cx, inv),
        StmtKind::CreateType { .. } | StmtKind::CreateDomain { .. } | StmtKind::AlterEnum { .. } => {
            types::invert(st, cx, inv)
        }
        StmtKind::Rename { .. } | StmtKind::AlterSchema { .. } => rename::invert(st, cx, inv),
        StmtKind::CreateSchema { .. }
        | StmtKind::CreateSequence { .. }
        | StmtKind::CreateExtension { .. }
        | StmtKind::CreatePolicy { .. } => other::invert(st, cx, inv),
        _ => {}
    }
}
