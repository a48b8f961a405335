//! Names as a migration's statements use them, traced back to the schema before it (S0).
//! A statement may name a table an earlier statement of the same migration renamed, moved or
//! created, or a column it renamed; what migsafe looks up in S0 (to capture data, to invert
//! the statement) must use the S0 name. Both the capture plan and the inverter walk the
//! statements in order with one of these, calling [`Names::observe`] after each.

use std::collections::{BTreeMap, BTreeSet};

use migsafe_catalog::QName;
use migsafe_sql::model::{ObjectKind, StmtKind};
use migsafe_sql::QualName;

/// What the statements so far did to names.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// First schema of `search_path` (`SET search_path` changes it).
    search: String,
    /// Tables renamed or moved: current name → name in S0.
    renamed: BTreeMap<QName, QName>,
    /// Columns renamed: (S0 table, current name) → name in S0.
    columns: BTreeMap<(QName, String), String>,
    /// Tables the migration created, by current name.
    created: BTreeSet<QName>,
}

impl Default for Names {
    fn default() -> Self {
        Names { search: "public".into(), renamed: BTreeMap::new(), columns: BTreeMap::new(), created: BTreeSet::new() }
    }
}

impl Names {
    /// The schema-qualified name a statement means (unqualified names in `search_path`).
    pub fn named(&self, q: &QualName) -> QName {
        QName::new(q.schema.clone().unwrap_or_else(|| self.search.clone()), q.name.clone())
    }

    /// The S0 name of a table the statement calls `t` (its current name).
    pub fn original(&self, t: &QName) -> QName {
        self.renamed.get(t).cloned().unwrap_or_else(|| t.clone())
    }

    /// Whether the migration created the table the statement calls `t`.
    pub fn created(&self, t: &QName) -> bool {
        self.created.contains(t)
    }

    /// The S0 table a statement's name refers to; None for a table the migration created.
    pub fn s0_table(&self, q: &QualName) -> Option<QName> {
        let current = self.named(q);
        (!self.created(&current)).then(|| self.original(&current))
    }

    /// The S0 name of the column of `t` (current table name) the statement calls `c`; None
    /// when no S0 column goes by that name any more (an earlier statement renamed it away, so
    /// `c` is a new column).
    pub fn original_column(&self, t: &QName, c: &str) -> Option<String> {
        let table = self.original(t);
        if let Some(original) = self.columns.get(&(table.clone(), c.to_string())) {
            return Some(original.clone());
        }
        let renamed_away = self.columns.iter().any(|((tn, now), was)| *tn == table && was == c && now != c);
        (!renamed_away).then(|| c.to_string())
    }

    /// [`Self::original_column`] for a column of the table a statement names `table`.
    pub fn s0_column(&self, table: &QualName, c: &str) -> Option<String> {
        self.original_column(&self.named(table), c)
    }

    /// Take in what a statement did, for the statements after it.
    pub fn observe(&mut self, kind: &StmtKind) {
        match kind {
            StmtKind::Set { name, value: Some(v), .. } if name == "search_path" => {
                self.search =
                    v.split(',').next().unwrap_or("public").trim().trim_matches('\'').trim_matches('"').to_string();
            }
            StmtKind::CreateTable { table, .. } | StmtKind::CreateTableAs { table, materialized: false, .. } => {
                let current = self.named(table);
                self.renamed.remove(&current);
                self.created.insert(current);
            }
            StmtKind::Rename { kind: ObjectKind::Table, object, column: None, new_name } => {
                let current = self.named(object);
                self.moved(QName::new(&current.schema, new_name), current);
            }
            StmtKind::AlterSchema { kind: ObjectKind::Table, object, new_schema } => {
                let current = self.named(object);
                self.moved(QName::new(new_schema, &current.name), current);
            }
            StmtKind::Rename { kind: ObjectKind::Column, object, column: Some(old), new_name } => {
                let table = self.original(&self.named(object));
                let original = self.columns.remove(&(table.clone(), old.clone())).unwrap_or_else(|| old.clone());
                self.columns.insert((table, new_name.clone()), original);
            }
            _ => {}
        }
    }

    /// A table now called `to` was called `from` before this statement.
    fn moved(&mut self, to: QName, from: QName) {
        if self.created.remove(&from) {
            self.created.insert(to);
            return;
        }
        let original = self.renamed.remove(&from).unwrap_or(from);
        self.renamed.insert(to, original);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use migsafe_sql::parse_sql;

    fn after(sql: &str) -> Names {
        let mut n = Names::default();
        for st in parse_sql(sql).statements {
            n.observe(&st.kind);
        }
        n
    }

    fn q(s: &str) -> QualName {
        let (schema, name) = s.split_once('.').map_or((None, s), |(a, b)| (Some(a.to_string()), b));
        QualName { schema, name: name.to_string() }
    }

    #[test]
    fn renames_moves_and_creations_trace_back_to_s0() {
        let n = after(
            "ALTER TABLE user_ RENAME TO person; ALTER TABLE person RENAME COLUMN legacy TO notes;\n\
             ALTER TABLE person SET SCHEMA app; CREATE TABLE local_user (id int); SET search_path = app;",
        );
        assert_eq!(n.s0_table(&q("app.person")), Some(QName::new("public", "user_")));
        assert_eq!(n.s0_table(&q("person")), Some(QName::new("public", "user_")));
        assert_eq!(n.s0_table(&q("public.local_user")), None);
        assert_eq!(n.original_column(&QName::new("app", "person"), "notes").as_deref(), Some("legacy"));
        // The old name is free: a column called legacy now is a new one.
        assert_eq!(n.original_column(&QName::new("app", "person"), "legacy"), None);
        assert_eq!(n.original_column(&QName::new("app", "person"), "name").as_deref(), Some("name"));
    }
}
