//! Converts pg_query's parse tree into the statement model, once per statement: `summarise`
//! and the command tag here, tables and other definitions in `definitions`, expressions,
//! constants, types and names in `expr`.

use pg_query::protobuf::{self, a_const, AlterTableType, ConstrType, DropBehavior, ObjectType, TransactionStmtKind};
use pg_query::{Node, NodeEnum, NodeRef};

use crate::lock::LockMode;
use crate::model::*;

/// Summarise one raw statement: its model and its command tag.
pub fn summarise(node: &Node) -> (StmtKind, String) {
    let Some(n) = node.node.as_ref() else {
        return (StmtKind::Other { tag: "EMPTY".into() }, "EMPTY".into());
    };
    let kind = match n {
        NodeEnum::CreateStmt(s) => create_table(s),
        NodeEnum::CreateTableAsStmt(s) => {
            let into = s.into.as_deref();
            StmtKind::CreateTableAs {
                table: into.and_then(|i| i.rel.as_ref()).map(range_var).unwrap_or_else(|| QualName::bare("")),
                materialized: s.objtype == ObjectType::ObjectMatview as i32,
                with_data: !into.is_some_and(|i| i.skip_data),
                if_not_exists: s.if_not_exists,
                sources: s.query.as_deref().map(sources).unwrap_or_default(),
            }
        }
        NodeEnum::AlterTableStmt(s) => alter_table(s),
        NodeEnum::IndexStmt(s) => StmtKind::CreateIndex {
            name: non_empty(&s.idxname),
            table: s.relation.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
            unique: s.unique,
            concurrently: s.concurrent,
            if_not_exists: s.if_not_exists,
            columns: s
                .index_params
                .iter()
                .filter_map(|p| match p.node.as_ref() {
                    Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => Some(e.name.clone()),
                    Some(NodeEnum::IndexElem(e)) => e.expr.as_deref().map(expr_text),
                    _ => None,
                })
                .collect(),
            partial: s.where_clause.is_some(),
            expr_columns: {
                let exprs = s.index_params.iter().filter_map(|p| match p.node.as_ref() {
                    Some(NodeEnum::IndexElem(e)) => e.expr.as_deref(),
                    _ => None,
                });
                let mut cols: Vec<String> = exprs
                    .chain(s.where_clause.as_deref())
                    .filter_map(|e| e.node.as_ref())
                    .flat_map(expr::columns_in)
                    .collect();
                cols.sort();
                cols.dedup();
                cols
            },
            method: if s.access_method.is_empty() { "btree".into() } else { s.access_method.clone() },
        },
        NodeEnum::DropStmt(s) => drop_stmt(s),
        NodeEnum::ReindexStmt(s) => {
            use protobuf::ReindexObjectType as R;
            let target = match R::try_from(s.kind).unwrap_or(R::Undefined) {
                R::ReindexObjectIndex => ObjectKind::Index,
                R::ReindexObjectTable => ObjectKind::Table,
                R::ReindexObjectSchema => ObjectKind::Schema,
                _ => ObjectKind::Database,
            };
            let name = s.relation.as_ref().map(range_var).unwrap_or_else(|| QualName::bare(s.name.clone()));
            StmtKind::Reindex { target, name, concurrently: has_option(&s.params, "concurrently") }
        }
        NodeEnum::RenameStmt(s) => rename(s),
        NodeEnum::AlterObjectSchemaStmt(s) => StmtKind::AlterSchema {
            kind: object_kind(s.object_type),
            object: s
                .relation
                .as_ref()
                .map(range_var)
                .or_else(|| s.object.as_deref().and_then(object_name))
                .unwrap_or_else(|| QualName::bare("")),
            new_schema: s.newschema.clone(),
        },
        NodeEnum::TruncateStmt(s) => StmtKind::Truncate {
            tables: s.relations.iter().filter_map(node_range_var).collect(),
            cascade: s.behavior == DropBehavior::DropCascade as i32,
        },
        NodeEnum::DeleteStmt(s) => StmtKind::Delete {
            table: s.relation.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
            has_where: s.where_clause.is_some(),
        },
        NodeEnum::UpdateStmt(s) => StmtKind::Update {
            table: s.relation.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
            has_where: s.where_clause.is_some(),
            assignments: assignments(s.target_list.iter()),
        },
        NodeEnum::MergeStmt(s) => {
            let clauses: Vec<&protobuf::MergeWhenClause> = s
                .merge_when_clauses
                .iter()
                .filter_map(|c| match c.node.as_ref() {
                    Some(NodeEnum::MergeWhenClause(w)) => Some(w.as_ref()),
                    _ => None,
                })
                .collect();
            let has = |t: protobuf::CmdType| clauses.iter().any(|w| w.command_type == t as i32);
            let updates = has(protobuf::CmdType::CmdUpdate).then(|| {
                assignments(
                    clauses
                        .iter()
                        .filter(|w| w.command_type == protobuf::CmdType::CmdUpdate as i32)
                        .flat_map(|w| w.target_list.iter()),
                )
            });
            StmtKind::Merge {
                table: s.relation.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
                updates,
                deletes: has(protobuf::CmdType::CmdDelete),
                inserts: has(protobuf::CmdType::CmdInsert),
            }
        }
        NodeEnum::InsertStmt(s) => StmtKind::Insert {
            table: s.relation.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
            from_select: s.select_stmt.as_deref().is_some_and(|q| match q.node.as_ref() {
                Some(NodeEnum::SelectStmt(sel)) => sel.values_lists.is_empty(),
                _ => true,
            }),
            literal_rows: literal_rows(s).is_some(),
            on_conflict: on_conflict(s),
            upserts: s
                .on_conflict_clause
                .as_ref()
                .filter(|c| c.action() == protobuf::OnConflictAction::OnconflictUpdate)
                .map(|c| assignments(c.target_list.iter())),
        },
        NodeEnum::CopyStmt(s) => StmtKind::Copy { table: s.relation.as_ref().map(range_var), from: s.is_from },
        NodeEnum::SelectStmt(s) => StmtKind::Select {
            calls: calls_in(n),
            constant_calls: constant_calls(n),
            has_into: s.into_clause.is_some(),
        },
        NodeEnum::VacuumStmt(s) => StmtKind::Vacuum {
            full: has_option(&s.options, "full"),
            analyze_only: !s.is_vacuumcmd,
            tables: s
                .rels
                .iter()
                .filter_map(|r| match r.node.as_ref() {
                    Some(NodeEnum::VacuumRelation(v)) => v.relation.as_ref().map(range_var),
                    _ => None,
                })
                .collect(),
        },
        NodeEnum::ClusterStmt(s) => StmtKind::Cluster { table: s.relation.as_ref().map(range_var) },
        NodeEnum::RefreshMatViewStmt(s) => StmtKind::RefreshMatView {
            view: s.relation.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
            concurrently: s.concurrent,
            with_data: !s.skip_data,
        },
        NodeEnum::LockStmt(s) => StmtKind::Lock {
            tables: s.relations.iter().filter_map(node_range_var).collect(),
            mode: lock_mode_number(s.mode),
        },
        NodeEnum::TransactionStmt(s) => {
            use TransactionStmtKind as T;
            StmtKind::Transaction(match T::try_from(s.kind).unwrap_or(T::Undefined) {
                T::TransStmtBegin | T::TransStmtStart => TxControl::Begin,
                T::TransStmtCommit => TxControl::Commit,
                T::TransStmtRollback => TxControl::Rollback,
                T::TransStmtSavepoint | T::TransStmtRelease | T::TransStmtRollbackTo => TxControl::Savepoint,
                _ => TxControl::Prepared,
            })
        }
        NodeEnum::ViewStmt(s) => StmtKind::CreateView {
            view: s.view.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
            replace: s.replace,
            sources: s.query.as_deref().map(sources).unwrap_or_default(),
        },
        NodeEnum::CreateFunctionStmt(s) => create_function(s),
        NodeEnum::CreateTrigStmt(s) => StmtKind::CreateTrigger {
            name: s.trigname.clone(),
            table: s.relation.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
            replace: s.replace,
            function: qual_from_list(&s.funcname),
            // PostgreSQL's TRIGGER_TYPE_INSERT, _DELETE, _UPDATE, _TRUNCATE bits.
            events: [(4, "INSERT"), (8, "DELETE"), (16, "UPDATE"), (32, "TRUNCATE")]
                .iter()
                .filter(|(bit, _)| s.events & bit != 0)
                .map(|(_, e)| e.to_string())
                .collect(),
        },
        NodeEnum::CreateSchemaStmt(s) => {
            StmtKind::CreateSchema { name: s.schemaname.clone(), if_not_exists: s.if_not_exists }
        }
        NodeEnum::CreateSeqStmt(s) => StmtKind::CreateSequence {
            name: s.sequence.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
            if_not_exists: s.if_not_exists,
        },
        NodeEnum::AlterSeqStmt(s) => {
            StmtKind::AlterSequence { name: s.sequence.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")) }
        }
        NodeEnum::CreateEnumStmt(s) => StmtKind::CreateType {
            name: qual_from_list(&s.type_name),
            enum_labels: Some(s.vals.iter().filter_map(string_of).collect()),
        },
        NodeEnum::CompositeTypeStmt(s) => StmtKind::CreateType {
            name: s.typevar.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
            enum_labels: None,
        },
        NodeEnum::CreateRangeStmt(s) => StmtKind::CreateType { name: qual_from_list(&s.type_name), enum_labels: None },
        NodeEnum::DefineStmt(s) if s.kind == ObjectType::ObjectType as i32 => {
            StmtKind::CreateType { name: qual_from_list(&s.defnames), enum_labels: None }
        }
        NodeEnum::AlterEnumStmt(s) => StmtKind::AlterEnum {
            name: qual_from_list(&s.type_name),
            add_value: if s.old_val.is_empty() { non_empty(&s.new_val) } else { None },
            rename_value: if s.old_val.is_empty() { None } else { Some((s.old_val.clone(), s.new_val.clone())) },
            if_not_exists: s.skip_if_new_val_exists,
        },
        NodeEnum::CreateDomainStmt(s) => StmtKind::CreateDomain { name: qual_from_list(&s.domainname) },
        NodeEnum::AlterDomainStmt(s) => {
            let not_valid = match s.def.as_deref().and_then(|d| d.node.as_ref()) {
                Some(NodeEnum::Constraint(c)) => c.skip_validation,
                _ => false,
            };
            StmtKind::AlterDomain { name: qual_from_list(&s.type_name), adds_constraint: s.subtype == "C", not_valid }
        }
        NodeEnum::CreateExtensionStmt(s) => {
            StmtKind::CreateExtension { name: s.extname.clone(), if_not_exists: s.if_not_exists }
        }
        NodeEnum::AlterExtensionStmt(s) => StmtKind::AlterExtension { name: s.extname.clone() },
        NodeEnum::CommentStmt(s) => StmtKind::Comment {
            kind: object_kind(s.objtype),
            object: s.object.as_deref().map(object_text).unwrap_or_default(),
            relation: s.object.as_deref().and_then(|o| commented_relation(s.objtype, o)),
            text: non_empty(&s.comment),
        },
        NodeEnum::GrantStmt(s) => StmtKind::Grant { grant: s.is_grant },
        NodeEnum::GrantRoleStmt(s) => StmtKind::Grant { grant: s.is_grant },
        NodeEnum::CreatePolicyStmt(s) => StmtKind::CreatePolicy {
            name: s.policy_name.clone(),
            table: s.table.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
        },
        NodeEnum::AlterPolicyStmt(s) => StmtKind::AlterPolicy {
            name: s.policy_name.clone(),
            table: s.table.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
        },
        NodeEnum::VariableSetStmt(s) => {
            StmtKind::Set { name: s.name.clone(), value: s.args.first().map(expr_text), local: s.is_local }
        }
        NodeEnum::DoStmt(_) => StmtKind::Do,
        NodeEnum::CreatedbStmt(_) => StmtKind::CreateDatabase,
        NodeEnum::AlterSystemStmt(_) => StmtKind::AlterSystem,
        NodeEnum::DropdbStmt(_) => StmtKind::Other { tag: "DROP DATABASE".into() },
        NodeEnum::CreateTableSpaceStmt(_) => StmtKind::Other { tag: "CREATE TABLESPACE".into() },
        NodeEnum::DropTableSpaceStmt(_) => StmtKind::Other { tag: "DROP TABLESPACE".into() },
        _ => StmtKind::Other { tag: fallback_tag(node) },
    };
    let tag = command_tag(&kind, node);
    (kind, tag)
}

/// The relations a query reads: every table name under it (a CTE's name included).
fn sources(query: &Node) -> Vec<QualName> {
    let Some(n) = query.node.as_ref() else { return vec![] };
    let mut out: Vec<QualName> = n
        .nodes()
        .into_iter()
        .filter_map(|(r, ..)| match r {
            NodeRef::RangeVar(v) => Some(range_var(v)),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The relation COMMENT ON locks (SHARE UPDATE EXCLUSIVE): the table, view, materialized view,
/// sequence or foreign table itself, or the one a column, table constraint, trigger, policy or
/// rule belongs to. Not an index's table (the index alone is locked), not a domain's.
fn commented_relation(objtype: i32, object: &Node) -> Option<QualName> {
    use ObjectType as O;
    match ObjectType::try_from(objtype).ok()? {
        O::ObjectTable | O::ObjectView | O::ObjectMatview | O::ObjectSequence | O::ObjectForeignTable => {
            object_name(object)
        }
        O::ObjectColumn | O::ObjectTabconstraint | O::ObjectTrigger | O::ObjectPolicy | O::ObjectRule => {
            relation_of_member(object)
        }
        _ => None,
    }
}

fn command_tag(kind: &StmtKind, node: &Node) -> String {
    match kind {
        StmtKind::CreateTable { .. } => "CREATE TABLE".into(),
        StmtKind::CreateTableAs { materialized: true, .. } => "CREATE MATERIALIZED VIEW".into(),
        StmtKind::CreateTableAs { .. } => "CREATE TABLE AS".into(),
        StmtKind::AlterTable { relkind, .. } => match relkind {
            RelKind::Index => "ALTER INDEX",
            RelKind::View => "ALTER VIEW",
            RelKind::MatView => "ALTER MATERIALIZED VIEW",
            RelKind::Sequence => "ALTER SEQUENCE",
            RelKind::ForeignTable => "ALTER FOREIGN TABLE",
            RelKind::Type => "ALTER TYPE",
            RelKind::Table => "ALTER TABLE",
        }
        .into(),
        StmtKind::CreateIndex { .. } => "CREATE INDEX".into(),
        StmtKind::Drop { kind, .. } => format!("DROP {}", kind_word(*kind)),
        StmtKind::Reindex { .. } => "REINDEX".into(),
        StmtKind::Rename { kind, .. } | StmtKind::AlterSchema { kind, .. } => {
            format!("ALTER {}", kind_word(*kind))
        }
        StmtKind::Truncate { .. } => "TRUNCATE".into(),
        StmtKind::Delete { .. } => "DELETE".into(),
        StmtKind::Update { .. } => "UPDATE".into(),
        StmtKind::Insert { .. } => "INSERT".into(),
        StmtKind::Merge { .. } => "MERGE".into(),
        StmtKind::Copy { .. } => "COPY".into(),
        StmtKind::Select { .. } => "SELECT".into(),
        StmtKind::Vacuum { analyze_only: true, .. } => "ANALYZE".into(),
        StmtKind::Vacuum { .. } => "VACUUM".into(),
        StmtKind::Cluster { .. } => "CLUSTER".into(),
        StmtKind::RefreshMatView { .. } => "REFRESH MATERIALIZED VIEW".into(),
        StmtKind::Lock { .. } => "LOCK TABLE".into(),
        StmtKind::Transaction(t) => match t {
            TxControl::Begin => "BEGIN",
            TxControl::Commit => "COMMIT",
            TxControl::Rollback => "ROLLBACK",
            TxControl::Savepoint => "SAVEPOINT",
            TxControl::Prepared => "PREPARE TRANSACTION",
        }
        .into(),
        StmtKind::CreateView { .. } => "CREATE VIEW".into(),
        StmtKind::CreateFunction { procedure: true, .. } => "CREATE PROCEDURE".into(),
        StmtKind::CreateFunction { .. } => "CREATE FUNCTION".into(),
        StmtKind::CreateTrigger { .. } => "CREATE TRIGGER".into(),
        StmtKind::CreateSchema { .. } => "CREATE SCHEMA".into(),
        StmtKind::CreateSequence { .. } => "CREATE SEQUENCE".into(),
        StmtKind::AlterSequence { .. } => "ALTER SEQUENCE".into(),
        StmtKind::CreateType { .. } => "CREATE TYPE".into(),
        StmtKind::AlterEnum { .. } => "ALTER TYPE".into(),
        StmtKind::CreateDomain { .. } => "CREATE DOMAIN".into(),
        StmtKind::AlterDomain { .. } => "ALTER DOMAIN".into(),
        StmtKind::CreateExtension { .. } => "CREATE EXTENSION".into(),
        StmtKind::AlterExtension { .. } => "ALTER EXTENSION".into(),
        StmtKind::Comment { .. } => "COMMENT".into(),
        StmtKind::Grant { grant: true } => "GRANT".into(),
        StmtKind::Grant { grant: false } => "REVOKE".into(),
        StmtKind::CreatePolicy { .. } => "CREATE POLICY".into(),
        StmtKind::AlterPolicy { .. } => "ALTER POLICY".into(),
        StmtKind::Set { .. } => "SET".into(),
        StmtKind::Do => "DO".into(),
        StmtKind::CreateDatabase => "CREATE DATABASE".into(),
        StmtKind::AlterSystem => "ALTER SYSTEM".into(),
        StmtKind::Other { tag } if !tag.is_empty() => tag.clone(),
        StmtKind::Other { .. } => fallback_tag(node),
    }
}

/// A readable tag for statements the model does not summarise: pg_query's node name,
/// `CreateCastStmt` → `CREATE CAST`.
fn fallback_tag(node: &Node) -> String {
    let Some(n) = node.node.as_ref() else {
        return "UNKNOWN".into();
    };
    let debug = format!("{:?}", n.to_ref());
    let name = debug.split('(').next().unwrap_or("Unknown");
    let name = name.strip_suffix("Stmt").unwrap_or(name);
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn kind_word(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Table => "TABLE",
        ObjectKind::Column => "TABLE",
        ObjectKind::Index => "INDEX",
        ObjectKind::View => "VIEW",
        ObjectKind::MatView => "MATERIALIZED VIEW",
        ObjectKind::Sequence => "SEQUENCE",
        ObjectKind::Schema => "SCHEMA",
        ObjectKind::Function => "FUNCTION",
        ObjectKind::Procedure => "PROCEDURE",
        ObjectKind::Aggregate => "AGGREGATE",
        ObjectKind::Trigger => "TRIGGER",
        ObjectKind::Type => "TYPE",
        ObjectKind::Domain => "DOMAIN",
        ObjectKind::Extension => "EXTENSION",
        ObjectKind::Constraint => "TABLE",
        ObjectKind::Policy => "POLICY",
        ObjectKind::Rule => "RULE",
        ObjectKind::Database => "DATABASE",
        ObjectKind::ForeignTable => "FOREIGN TABLE",
        ObjectKind::Collation => "COLLATION",
        ObjectKind::Other => "OBJECT",
    }
}

mod definitions;
mod expr;
use definitions::*;
pub(crate) use expr::*;
