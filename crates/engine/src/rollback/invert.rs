//! Statement-by-statement inversion of a forward migration, in reverse order, using the schema
//! before it (S0) for everything a statement destroys or replaces and the schema after it (S1)
//! for names the statement left to PostgreSQL. What has no exact inverse here is left to the
//! snapshot diff that follows.

use std::collections::{BTreeMap, BTreeSet};

use migsafe_catalog::model::{Column, Snapshot};
use migsafe_catalog::QName;
use migsafe_sql::model::{AlterAction, ConstraintKind, ObjectKind, StmtKind, TriggerTarget};
use migsafe_sql::{quote_ident as qi, Statement};

use super::names::Names;

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
    /// When it only adds back dropped columns: the table, and the first column's position in
    /// S0 (consecutive such inverses on one table are put in S0's column order).
    readds: Option<(QName, usize)>,
}

struct Cx<'a> {
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

impl Cx<'_> {
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

/// Column definition as it was, without NOT NULL (re-added after data is restored).
fn column_def_nullable(c: &Column) -> String {
    let mut d = format!("{} {}", qi(&c.name), c.type_name);
    if let Some(col) = &c.collation {
        d.push_str(&format!(" COLLATE {col}"));
    }
    if let Some(g) = &c.generated {
        let kind = if g.kind == "virtual" { "VIRTUAL" } else { "STORED" };
        d.push_str(&format!(" GENERATED ALWAYS AS ({}) {kind}", g.expr));
    }
    if let Some(def) = &c.default {
        d.push_str(&format!(" DEFAULT {def}"));
    }
    if let Some(id) = &c.identity {
        d.push_str(&format!(" GENERATED {} AS IDENTITY", id.to_uppercase()));
    }
    d
}

fn user_type(s: &Snapshot, type_name: &str) -> bool {
    let base = type_name.trim_end_matches("[]");
    s.types.keys().any(|n| n.to_string() == base || n.name == base)
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
                    let mut reached: Vec<QName> = names.iter().map(&q).collect();
                    while let Some((name, v)) = s0
                        .views
                        .iter()
                        .find(|(name, v)| !reached.contains(name) && v.depends_on.iter().any(|d| reached.contains(d)))
                    {
                        let k = if v.materialized { ObjectKind::MatView } else { ObjectKind::View };
                        gone.push((k, name.to_string()));
                        reached.push(name.clone());
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
    let mut cx = Cx { source, captured, s0, s1, before: Earlier::default(), functions_done: Default::default() };
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

fn invert(st: &Statement, cx: &Cx, inv: &mut Inverse) {
    let (s0, s1) = (cx.s0, cx.s1);
    match &st.kind {
        StmtKind::Insert { table, values: Some(v), .. } if v.on_conflict.is_none() => {
            if let Some(sql) = delete_inserted(&cx.q(table), v, cx) {
                inv.sql.push(sql);
                inv.removes_rows = true;
            }
        }
        StmtKind::Copy { table: Some(table), from: true } => {
            // Rows given inline, as constants: deleted by their key, as INSERT … VALUES.
            if let Some(sql) = st.copy_rows(cx.source).and_then(|v| delete_inserted(&cx.q(table), &v, cx)) {
                inv.sql.push(sql);
                inv.removes_rows = true;
            }
        }
        StmtKind::CreateTable { table, .. } => {
            let q = cx.q(table);
            let recreated = cx.before.dropped.iter().any(|(k, x)| *k == ObjectKind::Table && *x == q.to_string());
            if (recreated || !s0.tables.contains_key(&q)) && s1.tables.contains_key(&q) {
                inv.sql.push(format!("DROP TABLE {q}"));
            }
        }
        StmtKind::CreateTableAs { table, materialized, .. } => {
            let q = cx.q(table);
            // Dropped earlier in the migration and built again: the new one goes (the DROP's
            // inverse brings the old one back).
            let recreated = |kind: ObjectKind| cx.before.dropped.iter().any(|(k, x)| *k == kind && *x == q.to_string());
            if *materialized
                && s1.views.contains_key(&q)
                && (recreated(ObjectKind::MatView) || !s0.views.contains_key(&q))
            {
                inv.sql.push(format!("DROP MATERIALIZED VIEW {q}"));
            } else if !*materialized
                && s1.tables.contains_key(&q)
                && (recreated(ObjectKind::Table) || !s0.tables.contains_key(&q))
            {
                inv.sql.push(format!("DROP TABLE {q}"));
            }
        }
        StmtKind::CreateIndex { name, table, concurrently, .. } => {
            let t = cx.q(table);
            let unnamed = name.is_none();
            let names: Vec<String> = match name {
                Some(n) => vec![n.clone()],
                None => {
                    // The name PostgreSQL chose: a plain (not constraint-backing) index new on
                    // the table (IF EXISTS below, as several unnamed ones may be new).
                    let before =
                        s0.tables.get(&t).map(|x| x.indexes.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
                    s1.tables
                        .get(&t)
                        .map(|x| {
                            x.indexes
                                .iter()
                                .filter(|(k, i)| !before.contains(k) && !i.constraint)
                                .map(|(k, _)| k.clone())
                                .collect()
                        })
                        .unwrap_or_default()
                }
            };
            let if_exists = if unnamed { "IF EXISTS " } else { "" };
            for n in names {
                let qn = QName::new(&t.schema, &n);
                let recreated = cx.before.dropped.iter().any(|(k, x)| *k == ObjectKind::Index && *x == qn.to_string());
                let existed = !recreated
                    && (s0.tables.get(&t).is_some_and(|x| x.indexes.contains_key(&n))
                        || s0.views.get(&t).is_some_and(|x| x.indexes.contains_key(&n)));
                if existed {
                    continue;
                }
                if *concurrently {
                    inv.concurrent.push(format!("DROP INDEX CONCURRENTLY IF EXISTS {qn}"));
                } else {
                    inv.sql.push(format!("DROP INDEX {if_exists}{qn}"));
                }
            }
        }
        StmtKind::Drop { kind: ObjectKind::Index, names, concurrently, .. } => {
            for n in names {
                let q = cx.q(n);
                let def = s0
                    .tables
                    .iter()
                    .filter(|(t, _)| t.schema == q.schema)
                    .find_map(|(_, t)| t.indexes.get(&q.name))
                    .or_else(|| {
                        s0.views.iter().filter(|(v, _)| v.schema == q.schema).find_map(|(_, v)| v.indexes.get(&q.name))
                    });
                if let Some(i) = def {
                    if i.constraint {
                        continue;
                    }
                    if *concurrently {
                        inv.concurrent.push(i.definition.replacen("INDEX ", "INDEX CONCURRENTLY ", 1));
                    } else {
                        inv.sql.push(i.definition.clone());
                    }
                }
            }
        }
        StmtKind::CreateView { view, .. } => {
            let q = cx.q(view);
            let recreated = cx.before.dropped.iter().any(|(k, x)| matches!(k, ObjectKind::View) && *x == q.to_string());
            let before = if recreated { None } else { s0.views.get(&q) };
            match (before, s1.views.get(&q)) {
                (None, Some(_)) => inv.sql.push(format!("DROP VIEW {q}")),
                (Some(old), Some(new)) if old.definition != new.definition || old.columns != new.columns => {
                    let def = old.definition.trim().trim_end_matches(';');
                    if old.columns.starts_with(&new.columns) {
                        inv.sql.push(format!("CREATE OR REPLACE VIEW {q} AS {def}"));
                    } else {
                        inv.sql.push(format!("DROP VIEW {q}"));
                        inv.sql.push(format!("CREATE VIEW {q} AS {def}"));
                    }
                }
                _ => {}
            }
        }
        StmtKind::CreateFunction { name, arg_types, .. } => {
            let q = cx.q(name);
            let mut done = cx.functions_done.borrow_mut();
            let overloads: Vec<(&String, &migsafe_catalog::model::Function)> = s1
                .functions
                .iter()
                .filter(|(sig, f)| f.schema == q.schema && f.name == q.name && !done.contains(*sig))
                .collect();
            // The overload this statement created, by its argument types; when they cannot
            // be matched (a type spelled through %TYPE, say), every overload not yet undone.
            let exact: Vec<_> =
                overloads.iter().copied().filter(|(_, f)| same_arguments(&f.identity_args, arg_types)).collect();
            let mine = if exact.is_empty() { overloads } else { exact };
            for (sig, f) in mine {
                done.insert(sig.clone());
                let recreated = cx
                    .before
                    .dropped
                    .iter()
                    .any(|(k, x)| matches!(k, ObjectKind::Function | ObjectKind::Procedure) && *x == q.to_string());
                match if recreated { None } else { s0.functions.get(sig) } {
                    None => inv.sql.push(format!("DROP {} {}", f.keyword(), f.signature())),
                    Some(old) if old.definition != f.definition && old.result == f.result => {
                        inv.sql.push(old.definition.trim().trim_end_matches(';').to_string())
                    }
                    _ => {}
                }
            }
        }
        StmtKind::CreateTrigger { name, table, .. } => {
            let t = cx.q(table);
            let recreated = cx.before.dropped.iter().any(|(k, n)| *k == ObjectKind::Trigger && n.ends_with(&qi(name)));
            let before = if recreated { None } else { s0.tables.get(&t).and_then(|x| x.triggers.get(name)) };
            let after = s1.tables.get(&t).and_then(|x| x.triggers.get(name));
            match (before, after) {
                (None, Some(_)) => inv.sql.push(format!("DROP TRIGGER {} ON {t}", qi(name))),
                (Some(b), Some(a)) if a.definition != b.definition => {
                    inv.sql.push(format!("DROP TRIGGER {} ON {t}", qi(name)));
                    inv.sql.push(b.definition.clone());
                }
                _ => {}
            }
        }
        StmtKind::CreateSchema { name, .. } if !s0.schemas.contains_key(name) && s1.schemas.contains_key(name) => {
            inv.sql.push(format!("DROP SCHEMA {}", qi(name)))
        }
        StmtKind::CreateSequence { name, .. } => {
            let q = cx.q(name);
            // Owned (OWNED BY, later) by a column the migration created: it goes with that
            // column's table or the column itself, whose inverse runs first.
            let goes_with_owner = s1
                .sequences
                .get(&q)
                .and_then(|x| x.owned_by.as_ref())
                .is_some_and(|(t, c)| s0.tables.get(t).is_none_or(|x| x.column(c).is_none()));
            if !s0.sequences.contains_key(&q) && s1.sequences.contains_key(&q) && !goes_with_owner {
                inv.sql.push(format!("DROP SEQUENCE {q}"));
            }
        }
        StmtKind::CreateType { name, .. } | StmtKind::CreateDomain { name } => {
            let q = cx.q(name);
            let recreated = cx
                .before
                .dropped
                .iter()
                .any(|(k, x)| matches!(k, ObjectKind::Type | ObjectKind::Domain) && *x == q.to_string());
            let before = if recreated { None } else { s0.types.get(&q) };
            if let (None, Some(t)) = (before, s1.types.get(&q)) {
                let kw = if matches!(t, migsafe_catalog::model::TypeDef::Domain { .. }) { "DOMAIN" } else { "TYPE" };
                inv.sql.push(format!("DROP {kw} {q}"));
            }
        }
        StmtKind::CreateExtension { name, .. }
            if !s0.extensions.contains_key(name) && s1.extensions.contains_key(name) =>
        {
            inv.sql.push(format!("DROP EXTENSION {}", qi(name)))
        }
        StmtKind::CreatePolicy { name, table } => {
            let t = cx.q(table);
            if s0.tables.get(&t).is_some_and(|x| !x.policies.contains_key(name)) {
                inv.sql.push(format!("DROP POLICY {} ON {t}", qi(name)));
            }
        }
        StmtKind::AlterEnum { name, rename_value: Some((old, new)), .. } => {
            inv.sql.push(format!(
                "ALTER TYPE {} RENAME VALUE {} TO {}",
                cx.q(name),
                migsafe_sql::quote_literal(new),
                migsafe_sql::quote_literal(old)
            ));
        }
        StmtKind::Rename { kind, object, column, new_name } => {
            rename(cx, *kind, object, column.as_deref(), new_name, inv)
        }
        StmtKind::AlterSchema { kind, object, new_schema } => {
            let old = cx.q(object);
            let moved = QName::new(new_schema, &old.name);
            let kw = match kind {
                ObjectKind::Table => "TABLE",
                ObjectKind::View => "VIEW",
                ObjectKind::MatView => "MATERIALIZED VIEW",
                ObjectKind::Sequence => "SEQUENCE",
                ObjectKind::Type => "TYPE",
                ObjectKind::Domain => "DOMAIN",
                _ => return,
            };
            inv.sql.push(format!("ALTER {kw} {moved} SET SCHEMA {}", qi(&old.schema)));
        }
        StmtKind::AlterTable { table, actions, .. } => {
            let t = cx.q(table);
            if cx.before.names.created(&t) {
                return;
            }
            // Dropped columns come back first, in the order the table had them (undoing the
            // actions last-first would add them reversed), unless the statement adds a column
            // of the same name again.
            let added: Vec<&str> = actions
                .iter()
                .filter_map(|a| match a {
                    AlterAction::AddColumn { column, .. } => Some(column.name.as_str()),
                    _ => None,
                })
                .collect();
            let hoisted = |a: &AlterAction| matches!(a, AlterAction::DropColumn { column, .. } if !added.contains(&column.as_str()));
            let position = |a: &&AlterAction| match a {
                AlterAction::DropColumn { column, .. } => cx
                    .s0
                    .tables
                    .get(&t)
                    .and_then(|x| x.columns.iter().position(|c| c.name == *column))
                    .unwrap_or(usize::MAX),
                _ => usize::MAX,
            };
            let mut drops: Vec<&AlterAction> = actions.iter().filter(|a| hoisted(a)).collect();
            drops.sort_by_key(position);
            if drops.len() == actions.len() {
                inv.readds = drops.first().map(|a| (cx.original(&t), position(a)));
            }
            for a in drops {
                alter_action(cx, &t, a, actions, inv);
            }
            for a in actions.iter().rev().filter(|a| !hoisted(a)) {
                alter_action(cx, &t, a, actions, inv);
            }
        }
        _ => {}
    }
}

fn rename(
    cx: &Cx,
    kind: ObjectKind,
    object: &migsafe_sql::QualName,
    column: Option<&str>,
    new_name: &str,
    inv: &mut Inverse,
) {
    let old = cx.q(object);
    match (kind, column) {
        (ObjectKind::Column, Some(c)) => {
            inv.sql.push(format!("ALTER TABLE {old} RENAME COLUMN {} TO {}", qi(new_name), qi(c)));
        }
        (ObjectKind::Constraint, Some(c)) => {
            inv.sql.push(format!("ALTER TABLE {old} RENAME CONSTRAINT {} TO {}", qi(new_name), qi(c)));
        }
        (ObjectKind::Trigger, Some(c)) => {
            inv.sql.push(format!("ALTER TRIGGER {} ON {old} RENAME TO {}", qi(new_name), qi(c)));
        }
        (ObjectKind::Policy, Some(c)) => {
            inv.sql.push(format!("ALTER POLICY {} ON {old} RENAME TO {}", qi(new_name), qi(c)));
        }
        (ObjectKind::Schema, _) => {
            inv.sql.push(format!("ALTER SCHEMA {} RENAME TO {}", qi(new_name), qi(&object.name)))
        }
        (k, _) => {
            let kw = match k {
                ObjectKind::Table => "TABLE",
                ObjectKind::View => "VIEW",
                ObjectKind::MatView => "MATERIALIZED VIEW",
                ObjectKind::Index => "INDEX",
                ObjectKind::Sequence => "SEQUENCE",
                ObjectKind::Type => "TYPE",
                ObjectKind::Domain => "DOMAIN",
                _ => return,
            };
            let renamed = QName::new(&old.schema, new_name);
            inv.sql.push(format!("ALTER {kw} {renamed} RENAME TO {}", qi(&old.name)));
        }
    }
}

/// `actions` are the statement's (a DROP CONSTRAINT among them runs before its ADDs).
fn alter_action(cx: &Cx, t: &QName, a: &AlterAction, actions: &[AlterAction], inv: &mut Inverse) {
    let (s0, s1) = (cx.s0, cx.s1);
    // The table and its columns as S0 had them, under the names they had there.
    let before = s0.tables.get(&cx.original(t));
    let after = s1.tables.get(t);
    let col0 = |c: &str| before.and_then(|x| cx.original_column(t, c).and_then(|n| x.column(&n)));
    let at = |c: &str| format!("ALTER TABLE {t} ALTER COLUMN {}", qi(c));
    match a {
        // New, or added again after the migration dropped the old one (the DROP's inverse
        // brings that back).
        AlterAction::AddColumn { column, .. }
            if (col0(&column.name).is_none()
                || cx
                    .before
                    .dropped
                    .iter()
                    .any(|(k, x)| *k == ObjectKind::Column && *x == format!("{t}.{}", qi(&column.name)))
                || actions
                    .iter()
                    .any(|a| matches!(a, AlterAction::DropColumn { column: c, .. } if *c == column.name)))
                && after.is_some_and(|x| x.column(&column.name).is_some()) =>
        {
            inv.sql.push(format!("ALTER TABLE {t} DROP COLUMN {}", qi(&column.name)));
        }
        AlterAction::DropColumn { column, .. } => {
            if let Some(c) = col0(column) {
                // A serial column's sequence went with it: back first, owned by it again after.
                let original = cx.original(t);
                let owned: Vec<(&QName, &migsafe_catalog::model::Sequence)> = s0
                    .sequences
                    .iter()
                    .filter(|(n, q)| {
                        !s1.sequences.contains_key(*n)
                            && q.owned_by.as_ref().is_some_and(|(ot, oc)| *ot == original && oc == &c.name)
                    })
                    .collect();
                for (n, q) in &owned {
                    inv.sql.push(migsafe_catalog::create_sequence(n, q));
                }
                // Under the name it had when dropped; an earlier rename's inverse renames it back.
                let c = Column { name: column.clone(), ..c.clone() };
                inv.sql.push(format!("ALTER TABLE {t} ADD COLUMN {}", column_def_nullable(&c)));
                for (n, _) in owned {
                    inv.sql.push(format!("ALTER SEQUENCE {n} OWNED BY {t}.{}", qi(column)));
                }
            }
        }
        AlterAction::AlterType { column, new_type, .. } => {
            if let Some(c) = col0(column) {
                let cur = after.and_then(|x| x.column(column));
                // Not in S1 under this name: a later statement renamed or dropped it (and its
                // inverse, run before this one, gave it this name again); its type here is the
                // one the statement set.
                let gone = cur.is_none();
                let written = new_type.sql();
                if gone || cur.is_some_and(|x| x.type_name != c.type_name || x.collation != c.collation) {
                    if gone || cur.is_some_and(|x| x.default.is_some()) {
                        inv.sql.push(format!("{} DROP DEFAULT", at(column)));
                    }
                    let user_written = new_type.schema.is_some() || s1.types.keys().any(|q| q.name == new_type.name);
                    let via = if user_type(s0, &c.type_name)
                        || cur.is_some_and(|x| user_type(s1, &x.type_name))
                        || (gone && user_written)
                    {
                        "::text"
                    } else {
                        ""
                    };
                    let collate = c.collation.as_ref().map(|x| format!(" COLLATE {x}")).unwrap_or_default();
                    let using = migsafe_catalog::retype_using(
                        &qi(column),
                        cur.map_or(written.as_str(), |x| x.type_name.as_str()),
                        &c.type_name,
                        via,
                    );
                    let retype = format!("{} TYPE {}{collate} USING {using}", at(column), c.type_name);
                    let copy = cx.original_column(t, column).and_then(|oc| cx.captured.get(&(cx.original(t), oc)));
                    match copy {
                        // Values the forward conversion mapped (a CASE, a lossy cast) may not
                        // convert back; the capture step recorded them and the restore below
                        // puts them back, so they may go through NULL (NOT NULL comes back
                        // after the data).
                        Some(copy) => inv.sql.push(format!(
                            "DO $migsafe$ BEGIN\n  {retype};\nEXCEPTION WHEN others THEN\n  \
                             IF to_regclass({}) IS NULL THEN RAISE; END IF;\n  \
                             {} DROP NOT NULL;\n  {} TYPE {}{collate} USING NULL;\nEND $migsafe$",
                            migsafe_sql::quote_literal(&copy.to_string()),
                            at(column),
                            at(column),
                            c.type_name
                        )),
                        None => inv.sql.push(retype),
                    }
                    if let Some(d) = &c.default {
                        inv.sql.push(format!("{} SET DEFAULT {d}", at(column)));
                    }
                }
            }
        }
        AlterAction::SetDefault { column, .. } | AlterAction::DropDefault { column }
            if !cx.before.defaults.contains(&format!("{t}.{}", qi(column))) =>
        {
            if let Some(c) = col0(column) {
                match &c.default {
                    Some(d) => inv.sql.push(format!("{} SET DEFAULT {d}", at(column))),
                    None => inv.sql.push(format!("{} DROP DEFAULT", at(column))),
                }
            }
        }
        AlterAction::SetNotNull { column } if col0(column).is_some_and(|c| !c.not_null) => {
            inv.sql.push(format!("{} DROP NOT NULL", at(column)));
        }
        AlterAction::DropNotNull { column } if col0(column).is_some_and(|c| c.not_null) => {
            inv.sql.push(format!("{} SET NOT NULL", at(column)));
        }
        AlterAction::AddConstraint(c) => {
            // One S0 had that the migration dropped first (DROP CONSTRAINT IF EXISTS c; ADD
            // CONSTRAINT c …, or an unnamed ADD that PostgreSQL gives the freed name) is new:
            // it goes, and the DROP's inverse brings the old one back.
            let dropped = |n: &str| {
                cx.before.dropped.iter().any(|(k, x)| *k == ObjectKind::Constraint && *x == format!("{t}.{}", qi(n)))
                    || actions.iter().any(|a| matches!(a, AlterAction::DropConstraint { name, .. } if name == n))
            };
            let names: Vec<String> = match &c.name {
                Some(n) => vec![n.clone()],
                None => {
                    // The constraint PostgreSQL named: new since S0, of the same kind, on the
                    // same columns when the statement lists them.
                    let kind = match &c.kind {
                        ConstraintKind::PrimaryKey => "p",
                        ConstraintKind::Unique => "u",
                        ConstraintKind::ForeignKey { .. } => "f",
                        ConstraintKind::Check(_) => "c",
                        ConstraintKind::Exclude => "x",
                        ConstraintKind::NotNull => "n",
                    };
                    let columns: &[String] = match &c.kind {
                        ConstraintKind::ForeignKey { columns, .. } => columns,
                        _ => &c.columns,
                    };
                    // A name a DROP freed counts as new when it is one PostgreSQL would choose
                    // (`<table>_…_<check|key|fkey|pkey|excl>`).
                    let suffix = match kind {
                        "p" => "_pkey",
                        "u" => "_key",
                        "f" => "_fkey",
                        "x" => "_excl",
                        _ => "_check",
                    };
                    let chosen = |k: &str| k.starts_with(&format!("{}_", t.name)) && k.ends_with(suffix);
                    let old: Vec<&String> = before
                        .map(|x| x.constraints.keys().filter(|k| !(dropped(k) && chosen(k))).collect())
                        .unwrap_or_default();
                    after
                        .map(|x| {
                            x.constraints
                                .iter()
                                .filter(|(k, d)| {
                                    !old.contains(k) && d.kind == kind && (columns.is_empty() || d.columns == columns)
                                })
                                .map(|(k, _)| k.clone())
                                .collect()
                        })
                        .unwrap_or_default()
                }
            };
            for n in names {
                if before.is_some_and(|x| x.constraints.contains_key(&n)) && !dropped(&n) {
                    continue;
                }
                if matches!(c.kind, ConstraintKind::NotNull) {
                    continue;
                }
                // Two unnamed constraints of a kind in one statement both match each.
                let drop = format!("ALTER TABLE {t} DROP CONSTRAINT {}", qi(&n));
                if !inv.sql.contains(&drop) {
                    inv.sql.push(drop);
                }
            }
        }
        AlterAction::ValidateConstraint { name } => {
            if let Some(c) = before.and_then(|x| x.constraints.get(name)) {
                if !c.validated {
                    inv.sql.push(format!("ALTER TABLE {t} DROP CONSTRAINT {}", qi(name)));
                    inv.sql.push(format!("ALTER TABLE {t} ADD CONSTRAINT {} {}", qi(name), c.definition));
                }
            }
        }
        AlterAction::DropConstraint { name, .. } => {
            if let Some(c) = before.and_then(|x| x.constraints.get(name)) {
                inv.sql.push(format!("ALTER TABLE {t} ADD CONSTRAINT {} {}", qi(name), c.definition));
            }
        }
        AlterAction::SetPersistence { logged } => {
            inv.sql.push(format!("ALTER TABLE {t} SET {}", if *logged { "UNLOGGED" } else { "LOGGED" }));
        }
        AlterAction::Trigger { enable, target } => {
            let what = match target {
                TriggerTarget::All => "ALL".to_string(),
                TriggerTarget::User => "USER".to_string(),
                TriggerTarget::Named(n) => qi(n),
            };
            inv.sql.push(format!("ALTER TABLE {t} {} TRIGGER {what}", if *enable { "DISABLE" } else { "ENABLE" }));
        }
        AlterAction::AttachPartition { partition } => {
            let p = cx.q(partition);
            inv.sql.push(format!("ALTER TABLE {t} DETACH PARTITION {p}"));
        }
        AlterAction::DetachPartition { partition, .. } => {
            let p = cx.q(partition);
            if let Some((_, bound)) = s0.tables.get(&p).and_then(|x| x.partition_of.clone()) {
                inv.sql.push(format!("ALTER TABLE {t} ATTACH PARTITION {p} {bound}"));
            }
        }
        AlterAction::Identity { column, add: true } if col0(column).is_some_and(|c| c.identity.is_none()) => {
            inv.sql.push(format!("{} DROP IDENTITY", at(column)));
        }
        _ => {}
    }
}

/// The inverse of `INSERT INTO t … VALUES` into a table that existed before the migration:
/// delete exactly those rows, by the table's key, when every row gives its key as constants.
/// (Otherwise the rows stay, and the rollback's notes say so.)
fn delete_inserted(q: &QName, v: &migsafe_sql::model::InsertValues, cx: &Cx) -> Option<String> {
    let recreated = cx.before.dropped.iter().any(|(k, x)| *k == ObjectKind::Table && *x == q.to_string());
    let t = cx.s0.tables.get(q).filter(|_| !recreated)?;
    match super::capture::seeded_keys(t, v) {
        Some((key, rows)) => Some(format!("DELETE FROM {q} WHERE {}", super::capture::key_match(&key, &rows, ""))),
        None => delete_whole_rows(q, t, v),
    }
}

/// For a table without a key: rows given whole (every stored column a constant or NULL) are
/// deleted one for one, each a single row equal to it in every column. Rows equal in every
/// column cannot be told apart, so which of them goes does not matter.
fn delete_whole_rows(
    q: &QName,
    t: &migsafe_catalog::model::Table,
    v: &migsafe_sql::model::InsertValues,
) -> Option<String> {
    let stored: Vec<&Column> = t.columns.iter().filter(|c| c.generated.is_none()).collect();
    let columns: Vec<String> = match &v.columns {
        Some(c) => c.clone(),
        None => stored.iter().map(|c| c.name.clone()).collect(),
    };
    // A column left out would take its default, which the row cannot be matched on.
    if stored.iter().any(|c| !columns.contains(&c.name)) || columns.len() != stored.len() {
        return None;
    }
    if !columns.iter().all(|c| super::capture::comparable(t, c)) {
        return None;
    }
    let mut deletes = Vec::new();
    for row in &v.rows {
        if row.len() != columns.len() {
            return None;
        }
        let same: Vec<String> = columns
            .iter()
            .zip(row)
            .map(|(c, x)| x.as_ref().map(|x| format!("{} IS NOT DISTINCT FROM {x}", qi(c))))
            .collect::<Option<_>>()?;
        deletes
            .push(format!("DELETE FROM {q} WHERE ctid = (SELECT ctid FROM {q} WHERE {} LIMIT 1)", same.join(" AND ")));
    }
    (!deletes.is_empty()).then(|| deletes.join(";\n"))
}

/// Whether a function's identity arguments (`pg_get_function_identity_arguments`: `name type`,
/// modes, no typmods) are the argument types a CREATE FUNCTION wrote (as the parser's
/// canonical spelling, `integer`, `timestamptz`, `"pgmq".msg[]`…), compared by unqualified
/// type name; OUT arguments (part of a procedure's identity) are left out.
fn same_arguments(identity_args: &str, written: &[String]) -> bool {
    let mut args = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in identity_args.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                args.push(identity_args[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if !identity_args.trim().is_empty() {
        args.push(identity_args[start..].trim());
    }
    args.retain(|a| !a.starts_with("OUT "));
    let spelled = |t: &str| -> String {
        let dims = t.matches("[]").count();
        let base = t.split('(').next().unwrap_or(t).trim_end_matches("[]");
        let base = base.rsplit('.').next().unwrap_or(base).replace('"', "");
        let base = match base.as_str() {
            "timestamptz" => "timestamp with time zone",
            "timestamp" => "timestamp without time zone",
            "timetz" => "time with time zone",
            "time" => "time without time zone",
            "varchar" => "character varying",
            "char" | "bpchar" => "character",
            "varbit" => "bit varying",
            other => other,
        };
        format!("{base}{}", "[]".repeat(dims))
    };
    args.len() == written.len()
        && args.iter().zip(written).all(|(a, w)| {
            let want = spelled(w);
            let a = a.replace('"', "");
            let unqualified =
                |x: &str| x == want || x.ends_with(&format!(" {want}")) || x.ends_with(&format!(".{want}"));
            unqualified(&a)
        })
}
