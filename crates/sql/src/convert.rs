//! Converts pg_query's parse tree into the statement model, once per statement.

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
            literal_rows: insert_values(s).is_some(),
            on_conflict: s.on_conflict_clause.as_ref().map(|c| {
                if c.action() == protobuf::OnConflictAction::OnconflictNothing {
                    OnConflict::Nothing
                } else {
                    OnConflict::Update
                }
            }),
            upserts: s
                .on_conflict_clause
                .as_ref()
                .filter(|c| c.action() == protobuf::OnConflictAction::OnconflictUpdate)
                .map(|c| assignments(c.target_list.iter())),
        },
        NodeEnum::CopyStmt(s) => StmtKind::Copy { table: s.relation.as_ref().map(range_var), from: s.is_from },
        NodeEnum::SelectStmt(s) => StmtKind::Select { calls: calls_in(n), has_into: s.into_clause.is_some() },
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
        },
        NodeEnum::CreateFunctionStmt(s) => create_function(s),
        NodeEnum::CreateTrigStmt(s) => StmtKind::CreateTrigger {
            name: s.trigname.clone(),
            table: s.relation.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
            replace: s.replace,
            function: qual_from_list(&s.funcname),
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

fn create_table(s: &protobuf::CreateStmt) -> StmtKind {
    let table = s.relation.as_ref().map(range_var).unwrap_or_else(|| QualName::bare(""));
    let mut columns = Vec::new();
    let mut constraints = Vec::new();
    for elt in &s.table_elts {
        match elt.node.as_ref() {
            Some(NodeEnum::ColumnDef(c)) => columns.push(column_def(c)),
            Some(NodeEnum::Constraint(c)) => constraints.push(constraint(c)),
            _ => {}
        }
    }
    let persistence = s.relation.as_ref().map(|r| r.relpersistence.as_str()).unwrap_or("p");
    StmtKind::CreateTable {
        table,
        columns,
        constraints,
        if_not_exists: s.if_not_exists,
        partition_of: if s.partbound.is_some() { s.inh_relations.first().and_then(node_range_var) } else { None },
        unlogged: persistence == "u",
        temporary: persistence == "t",
    }
}

fn column_def(c: &protobuf::ColumnDef) -> ColumnDef {
    let mut col = ColumnDef {
        name: c.colname.clone(),
        type_name: c.type_name.as_ref().map(type_name).unwrap_or_else(|| TypeName {
            schema: None,
            name: "unknown".into(),
            mods: vec![],
            array_dims: 0,
        }),
        not_null: c.is_not_null,
        default: c.raw_default.as_deref().map(expr),
        identity: !c.identity.is_empty(),
        generated: None,
        constraints: Vec::new(),
    };
    for con in &c.constraints {
        let Some(NodeEnum::Constraint(k)) = con.node.as_ref() else {
            continue;
        };
        match ConstrType::try_from(k.contype).unwrap_or(ConstrType::Undefined) {
            ConstrType::ConstrNotnull => col.not_null = true,
            ConstrType::ConstrDefault => col.default = k.raw_expr.as_deref().map(expr),
            ConstrType::ConstrIdentity => col.identity = true,
            ConstrType::ConstrGenerated => {
                col.generated = Some(if k.generated_kind == "v" { Generated::Virtual } else { Generated::Stored })
            }
            ConstrType::ConstrPrimary => {
                col.not_null = true;
                col.constraints.push(constraint(k));
            }
            ConstrType::ConstrNull
            | ConstrType::ConstrAttrDeferrable
            | ConstrType::ConstrAttrNotDeferrable
            | ConstrType::ConstrAttrDeferred
            | ConstrType::ConstrAttrImmediate
            | ConstrType::ConstrAttrEnforced
            | ConstrType::ConstrAttrNotEnforced
            | ConstrType::Undefined => {}
            _ => col.constraints.push(constraint(k)),
        }
    }
    col
}

fn constraint(c: &protobuf::Constraint) -> Constraint {
    let kind = match ConstrType::try_from(c.contype).unwrap_or(ConstrType::Undefined) {
        ConstrType::ConstrPrimary => ConstraintKind::PrimaryKey,
        ConstrType::ConstrUnique => ConstraintKind::Unique,
        ConstrType::ConstrForeign => ConstraintKind::ForeignKey {
            references: c.pktable.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
            columns: c.fk_attrs.iter().filter_map(string_of).collect(),
            ref_columns: c.pk_attrs.iter().filter_map(string_of).collect(),
            on_delete: match c.fk_del_action.as_str() {
                "r" => RefAction::Restrict,
                "c" => RefAction::Cascade,
                "n" => RefAction::SetNull,
                "d" => RefAction::SetDefault,
                _ => RefAction::NoAction,
            },
        },
        ConstrType::ConstrCheck => {
            ConstraintKind::Check(c.raw_expr.as_deref().map(expr).unwrap_or_else(|| Expr::constant("true")))
        }
        ConstrType::ConstrExclusion => ConstraintKind::Exclude,
        _ => ConstraintKind::NotNull,
    };
    Constraint {
        name: non_empty(&c.conname),
        kind,
        columns: c.keys.iter().filter_map(string_of).collect(),
        not_valid: c.skip_validation,
        not_enforced: !c.is_enforced,
        using_index: non_empty(&c.indexname),
    }
}

fn alter_table(s: &protobuf::AlterTableStmt) -> StmtKind {
    let relkind = match ObjectType::try_from(s.objtype).unwrap_or(ObjectType::ObjectTable) {
        ObjectType::ObjectIndex => RelKind::Index,
        ObjectType::ObjectView => RelKind::View,
        ObjectType::ObjectMatview => RelKind::MatView,
        ObjectType::ObjectSequence => RelKind::Sequence,
        ObjectType::ObjectForeignTable => RelKind::ForeignTable,
        ObjectType::ObjectType => RelKind::Type,
        _ => RelKind::Table,
    };
    let actions = s
        .cmds
        .iter()
        .filter_map(|c| match c.node.as_ref() {
            Some(NodeEnum::AlterTableCmd(cmd)) => Some(alter_action(cmd)),
            _ => None,
        })
        .collect();
    StmtKind::AlterTable {
        table: s.relation.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
        relkind,
        if_exists: s.missing_ok,
        actions,
    }
}

fn alter_action(cmd: &protobuf::AlterTableCmd) -> AlterAction {
    use AlterTableType as A;
    let col = || cmd.name.clone();
    let cascade = cmd.behavior == DropBehavior::DropCascade as i32;
    let def = cmd.def.as_deref().and_then(|d| d.node.as_ref());
    let sub = A::try_from(cmd.subtype).unwrap_or(A::Undefined);
    match sub {
        A::AtAddColumn | A::AtAddColumnToView => match def {
            Some(NodeEnum::ColumnDef(c)) => {
                AlterAction::AddColumn { column: column_def(c), if_not_exists: cmd.missing_ok }
            }
            _ => AlterAction::Other { tag: "ADD COLUMN".into() },
        },
        A::AtDropColumn => AlterAction::DropColumn { column: col(), if_exists: cmd.missing_ok, cascade },
        A::AtAlterColumnType => match def {
            Some(NodeEnum::ColumnDef(c)) => AlterAction::AlterType {
                column: col(),
                new_type: c.type_name.as_ref().map(type_name).unwrap_or_else(|| TypeName {
                    schema: None,
                    name: "unknown".into(),
                    mods: vec![],
                    array_dims: 0,
                }),
                using: c.raw_default.as_deref().map(expr),
                collation: c.coll_clause.as_ref().map(|cc| qual_from_list(&cc.collname).name),
            },
            _ => AlterAction::Other { tag: "ALTER COLUMN TYPE".into() },
        },
        A::AtColumnDefault => match cmd.def.as_deref() {
            Some(d) if d.node.is_some() => AlterAction::SetDefault { column: col(), default: expr(d) },
            _ => AlterAction::DropDefault { column: col() },
        },
        A::AtSetNotNull => AlterAction::SetNotNull { column: col() },
        A::AtDropNotNull => AlterAction::DropNotNull { column: col() },
        A::AtAddConstraint => match def {
            Some(NodeEnum::Constraint(c)) => AlterAction::AddConstraint(constraint(c)),
            _ => AlterAction::Other { tag: "ADD CONSTRAINT".into() },
        },
        A::AtValidateConstraint => AlterAction::ValidateConstraint { name: col() },
        A::AtAlterConstraint => match def {
            Some(NodeEnum::AtalterConstraint(a)) => AlterAction::AlterConstraint {
                name: a.conname.clone(),
                enforce: a.alter_enforceability.then_some(a.is_enforced),
            },
            _ => AlterAction::Other { tag: "ALTER CONSTRAINT".into() },
        },
        A::AtDropConstraint => AlterAction::DropConstraint { name: col(), if_exists: cmd.missing_ok, cascade },
        A::AtSetLogged => AlterAction::SetPersistence { logged: true },
        A::AtSetUnLogged => AlterAction::SetPersistence { logged: false },
        A::AtEnableTrig | A::AtEnableAlwaysTrig | A::AtEnableReplicaTrig => {
            AlterAction::Trigger { enable: true, target: TriggerTarget::Named(col()) }
        }
        A::AtDisableTrig => AlterAction::Trigger { enable: false, target: TriggerTarget::Named(col()) },
        A::AtEnableTrigAll => AlterAction::Trigger { enable: true, target: TriggerTarget::All },
        A::AtDisableTrigAll => AlterAction::Trigger { enable: false, target: TriggerTarget::All },
        A::AtEnableTrigUser => AlterAction::Trigger { enable: true, target: TriggerTarget::User },
        A::AtDisableTrigUser => AlterAction::Trigger { enable: false, target: TriggerTarget::User },
        A::AtAttachPartition => AlterAction::AttachPartition { partition: partition_name(def) },
        A::AtDetachPartition => AlterAction::DetachPartition {
            partition: partition_name(def),
            concurrently: matches!(def, Some(NodeEnum::PartitionCmd(p)) if p.concurrent),
        },
        A::AtAddIdentity => AlterAction::Identity { column: col(), add: true },
        A::AtDropIdentity => AlterAction::Identity { column: col(), add: false },
        A::AtSetExpression => AlterAction::SetExpression { column: col() },
        A::AtDropExpression => AlterAction::DropExpression { column: col() },
        A::AtSetTableSpace => AlterAction::SetTablespace,
        A::AtSetAccessMethod => AlterAction::SetAccessMethod,
        A::AtEnableRowSecurity | A::AtDisableRowSecurity | A::AtForceRowSecurity | A::AtNoForceRowSecurity => {
            AlterAction::RowSecurity
        }
        other => AlterAction::Other { tag: format!("{other:?}") },
    }
}

fn partition_name(def: Option<&NodeEnum>) -> QualName {
    match def {
        Some(NodeEnum::PartitionCmd(p)) => p.name.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
        _ => QualName::bare(""),
    }
}

fn drop_stmt(s: &protobuf::DropStmt) -> StmtKind {
    let kind = object_kind(s.remove_type);
    let names = s.objects.iter().filter_map(object_name).collect();
    StmtKind::Drop {
        kind,
        names,
        concurrently: s.concurrent,
        if_exists: s.missing_ok,
        cascade: s.behavior == DropBehavior::DropCascade as i32,
    }
}

fn rename(s: &protobuf::RenameStmt) -> StmtKind {
    let kind = object_kind(s.rename_type);
    let object = s
        .relation
        .as_ref()
        .map(range_var)
        .or_else(|| s.object.as_deref().and_then(object_name))
        .unwrap_or_else(|| QualName::bare(""));
    let column = match kind {
        ObjectKind::Column | ObjectKind::Constraint | ObjectKind::Trigger | ObjectKind::Policy | ObjectKind::Rule => {
            non_empty(&s.subname)
        }
        _ => None,
    };
    StmtKind::Rename { kind, object, column, new_name: s.newname.clone() }
}

fn create_function(s: &protobuf::CreateFunctionStmt) -> StmtKind {
    let arg_types = s
        .parameters
        .iter()
        .filter_map(|p| match p.node.as_ref() {
            Some(NodeEnum::FunctionParameter(fp)) => {
                // OUT and TABLE parameters are not part of the signature.
                let mode = protobuf::FunctionParameterMode::try_from(fp.mode).ok();
                if matches!(
                    mode,
                    Some(
                        protobuf::FunctionParameterMode::FuncParamOut | protobuf::FunctionParameterMode::FuncParamTable
                    )
                ) {
                    None
                } else {
                    fp.arg_type.as_ref().map(|t| type_name(t).sql())
                }
            }
            _ => None,
        })
        .collect();
    let volatility = s.options.iter().find_map(|o| match o.node.as_ref() {
        Some(NodeEnum::DefElem(d)) if d.defname == "volatility" => d.arg.as_deref().and_then(string_of),
        _ => None,
    });
    StmtKind::CreateFunction {
        name: qual_from_list(&s.funcname),
        arg_types,
        replace: s.replace,
        procedure: s.is_procedure,
        volatile: volatility.is_none_or(|v| v == "volatile"),
    }
}

/// The canonical name of a type as written.
pub(crate) fn type_name(t: &protobuf::TypeName) -> TypeName {
    let parts: Vec<String> = t.names.iter().filter_map(string_of).collect();
    let (schema, name) = match parts.as_slice() {
        [] => (None, "unknown".to_string()),
        [one] => (None, one.clone()),
        [.., s, n] => (Some(s.clone()), n.clone()),
    };
    let builtin = schema.as_deref() == Some("pg_catalog");
    let name = canonical_type(&name);
    let mods = t
        .typmods
        .iter()
        .filter_map(|m| match m.node.as_ref() {
            Some(NodeEnum::AConst(c)) => match &c.val {
                Some(a_const::Val::Ival(i)) => Some(i.ival as i64),
                _ => None,
            },
            _ => None,
        })
        .collect();
    TypeName { schema: if builtin { None } else { schema }, name, mods, array_dims: t.array_bounds.len() }
}

fn canonical_type(name: &str) -> String {
    match name {
        "int" | "integer" => "int4",
        "smallint" => "int2",
        "bigint" => "int8",
        "real" => "float4",
        "double precision" | "float" => "float8",
        "boolean" => "bool",
        "decimal" => "numeric",
        "character varying" => "varchar",
        "character" | "char" => "bpchar",
        "serial4" => "serial",
        "serial8" => "bigserial",
        "serial2" => "smallserial",
        other => other,
    }
    .to_string()
}

/// Summarise an expression node.
pub(crate) fn expr(node: &Node) -> Expr {
    let Some(n) = node.node.as_ref() else {
        return Expr::constant("NULL");
    };
    let is_null = matches!(n, NodeEnum::AConst(c) if c.isnull);
    Expr {
        text: expr_text(node),
        calls: calls_in(n),
        is_constant: is_constant(n),
        is_null,
        has_subquery: n.nodes().iter().any(|(r, ..)| matches!(r, NodeRef::SubLink(_))),
        not_null_column: match n {
            NodeEnum::NullTest(t) if t.nulltesttype == protobuf::NullTestType::IsNotNull as i32 => {
                t.arg.as_deref().and_then(column_ref_name)
            }
            _ => None,
        },
    }
}

impl Expr {
    /// A constant expression with this text.
    pub fn constant(text: &str) -> Expr {
        Expr {
            text: text.into(),
            calls: vec![],
            is_constant: true,
            is_null: text.eq_ignore_ascii_case("null"),
            has_subquery: false,
            not_null_column: None,
        }
    }
}

fn is_constant(n: &NodeEnum) -> bool {
    match n {
        NodeEnum::AConst(_) => true,
        NodeEnum::TypeCast(c) => c.arg.as_deref().and_then(|a| a.node.as_ref()).is_some_and(is_constant),
        NodeEnum::AArrayExpr(a) => a.elements.iter().all(|e| e.node.as_ref().is_some_and(is_constant)),
        _ => false,
    }
}

fn column_ref_name(node: &Node) -> Option<String> {
    match node.node.as_ref()? {
        NodeEnum::ColumnRef(c) => c.fields.last().and_then(string_of),
        _ => None,
    }
}

/// Functions called anywhere under `n` (lower-case, unqualified), including the SQL value
/// functions such as `CURRENT_TIMESTAMP`.
fn calls_in(n: &NodeEnum) -> Vec<String> {
    let mut calls: Vec<String> = Vec::new();
    let mut visit = |r: &NodeRef| match r {
        NodeRef::FuncCall(f) => {
            if let Some(name) = f.funcname.last().and_then(string_of) {
                calls.push(name.to_lowercase());
            }
        }
        NodeRef::SqlvalueFunction(_) => calls.push("now".into()),
        _ => {}
    };
    visit(&n.to_ref());
    for (r, ..) in n.nodes() {
        visit(&r);
    }
    calls.sort();
    calls.dedup();
    calls
}

/// Deparse an expression by wrapping it in `SELECT`.
pub(crate) fn expr_text(node: &Node) -> String {
    let target = protobuf::ResTarget {
        name: String::new(),
        indirection: vec![],
        val: Some(Box::new(node.clone())),
        location: 0,
    };
    let select = protobuf::SelectStmt {
        target_list: vec![Node { node: Some(NodeEnum::ResTarget(Box::new(target))) }],
        op: protobuf::SetOperation::SetopNone as i32,
        limit_option: protobuf::LimitOption::Default as i32,
        ..Default::default()
    };
    match NodeEnum::SelectStmt(Box::new(select)).deparse(Default::default()) {
        Ok(text) => text.strip_prefix("SELECT ").unwrap_or(&text).to_string(),
        Err(_) => "<expression>".into(),
    }
}

pub(crate) fn has_option(options: &[Node], name: &str) -> bool {
    options.iter().any(|o| match o.node.as_ref() {
        Some(NodeEnum::DefElem(d)) if d.defname == name => match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
            Some(NodeEnum::Boolean(b)) => b.boolval,
            Some(NodeEnum::String(s)) => !matches!(s.sval.as_str(), "false" | "off" | "0"),
            Some(NodeEnum::Integer(i)) => i.ival != 0,
            _ => true,
        },
        _ => false,
    })
}

fn lock_mode_number(n: i32) -> LockMode {
    match n {
        1 => LockMode::AccessShare,
        2 => LockMode::RowShare,
        3 => LockMode::RowExclusive,
        4 => LockMode::ShareUpdateExclusive,
        5 => LockMode::Share,
        6 => LockMode::ShareRowExclusive,
        7 => LockMode::Exclusive,
        _ => LockMode::AccessExclusive,
    }
}

fn object_kind(t: i32) -> ObjectKind {
    use ObjectType as O;
    match O::try_from(t).unwrap_or(O::Undefined) {
        O::ObjectTable => ObjectKind::Table,
        O::ObjectColumn => ObjectKind::Column,
        O::ObjectIndex => ObjectKind::Index,
        O::ObjectView => ObjectKind::View,
        O::ObjectMatview => ObjectKind::MatView,
        O::ObjectSequence => ObjectKind::Sequence,
        O::ObjectSchema => ObjectKind::Schema,
        O::ObjectFunction | O::ObjectRoutine => ObjectKind::Function,
        O::ObjectProcedure => ObjectKind::Procedure,
        O::ObjectAggregate => ObjectKind::Aggregate,
        O::ObjectTrigger => ObjectKind::Trigger,
        O::ObjectType => ObjectKind::Type,
        O::ObjectDomain => ObjectKind::Domain,
        O::ObjectExtension => ObjectKind::Extension,
        O::ObjectTabconstraint | O::ObjectDomconstraint => ObjectKind::Constraint,
        O::ObjectPolicy => ObjectKind::Policy,
        O::ObjectRule => ObjectKind::Rule,
        O::ObjectDatabase => ObjectKind::Database,
        O::ObjectForeignTable => ObjectKind::ForeignTable,
        O::ObjectCollation => ObjectKind::Collation,
        _ => ObjectKind::Other,
    }
}

fn range_var(r: &protobuf::RangeVar) -> QualName {
    QualName { schema: non_empty(&r.schemaname), name: r.relname.clone() }
}

fn node_range_var(n: &Node) -> Option<QualName> {
    match n.node.as_ref()? {
        NodeEnum::RangeVar(r) => Some(range_var(r)),
        _ => None,
    }
}

/// The literal rows of a plain `INSERT … VALUES`.
/// `SET col = expr, …` targets: (column, expression text).
fn assignments<'a>(targets: impl Iterator<Item = &'a Node>) -> Vec<(String, String)> {
    targets
        .filter_map(|t| match t.node.as_ref() {
            Some(NodeEnum::ResTarget(r)) => Some((r.name.clone(), r.val.as_deref().map(expr_text).unwrap_or_default())),
            _ => None,
        })
        .collect()
}

pub(crate) fn insert_values(s: &protobuf::InsertStmt) -> Option<InsertValues> {
    if s.with_clause.is_some() {
        return None;
    }
    let on_conflict = s.on_conflict_clause.as_ref().map(|c| {
        if c.action() == protobuf::OnConflictAction::OnconflictNothing {
            OnConflict::Nothing
        } else {
            OnConflict::Update
        }
    });
    let Some(NodeEnum::SelectStmt(sel)) = s.select_stmt.as_deref().and_then(|q| q.node.as_ref()) else {
        return None;
    };
    if sel.values_lists.is_empty() || sel.with_clause.is_some() {
        return None;
    }
    let columns = (!s.cols.is_empty()).then(|| {
        s.cols
            .iter()
            .filter_map(|c| match c.node.as_ref() {
                Some(NodeEnum::ResTarget(r)) if r.indirection.is_empty() => Some(r.name.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    });
    if columns.as_ref().is_some_and(|c| c.len() != s.cols.len()) {
        return None; // `col[1]` or `col.field` targets
    }
    let rows = sel
        .values_lists
        .iter()
        .map(|l| match l.node.as_ref() {
            Some(NodeEnum::List(l)) => l.items.iter().map(constant_sql).collect(),
            _ => vec![],
        })
        .collect();
    Some(InsertValues { columns, rows, on_conflict })
}

/// SQL text of a constant: a literal, or a string literal with a cast (the cast dropped, so
/// that compared with a column the literal takes the column's type).
pub(crate) fn constant_sql(n: &Node) -> Option<String> {
    match n.node.as_ref()? {
        NodeEnum::AConst(c) if c.isnull => Some("NULL".into()),
        NodeEnum::AConst(c) => match c.val.as_ref()? {
            a_const::Val::Ival(i) => Some(i.ival.to_string()),
            a_const::Val::Fval(f) => Some(f.fval.clone()),
            a_const::Val::Sval(s) => Some(crate::quote_literal(&s.sval)),
            a_const::Val::Boolval(b) => Some(if b.boolval { "true" } else { "false" }.into()),
            a_const::Val::Bsval(_) => None,
        },
        NodeEnum::TypeCast(t) => match t.arg.as_deref()?.node.as_ref()? {
            NodeEnum::AConst(c) if matches!(c.val, Some(a_const::Val::Sval(_))) => constant_sql(t.arg.as_deref()?),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn string_of(n: &Node) -> Option<String> {
    match n.node.as_ref()? {
        NodeEnum::String(s) => Some(s.sval.clone()),
        NodeEnum::AConst(c) => match &c.val {
            Some(a_const::Val::Sval(s)) => Some(s.sval.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn qual_from_list(items: &[Node]) -> QualName {
    let parts: Vec<String> = items.iter().filter_map(string_of).collect();
    match parts.as_slice() {
        [] => QualName::bare(""),
        [one] => QualName::bare(one.clone()),
        [.., s, n] => QualName::qualified(s.clone(), n.clone()),
    }
}

/// The name of a DROP/RENAME/COMMENT target: a list of strings, a type name, an object
/// with arguments (functions), or a bare string (schemas, extensions).
fn object_name(n: &Node) -> Option<QualName> {
    match n.node.as_ref()? {
        NodeEnum::List(l) => Some(qual_from_list(&l.items)),
        NodeEnum::String(s) => Some(QualName::bare(s.sval.clone())),
        NodeEnum::TypeName(t) => {
            let parts: Vec<String> = t.names.iter().filter_map(string_of).collect();
            Some(match parts.as_slice() {
                [] => QualName::bare(""),
                [one] => QualName::bare(one.clone()),
                [.., s, n] => QualName::qualified(s.clone(), n.clone()),
            })
        }
        NodeEnum::ObjectWithArgs(o) => Some(qual_from_list(&o.objname)),
        _ => None,
    }
}

fn object_text(n: &Node) -> String {
    match n.node.as_ref() {
        Some(NodeEnum::List(l)) => l.items.iter().filter_map(string_of).collect::<Vec<_>>().join("."),
        _ => object_name(n).map(|q| q.sql()).unwrap_or_default(),
    }
}

fn non_empty(s: &str) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s.to_string())
    }
}
