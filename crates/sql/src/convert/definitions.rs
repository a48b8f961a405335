//! Definitions: tables, columns, constraints, ALTER TABLE actions, drops, renames, functions.

use super::*;

pub(super) fn create_table(s: &protobuf::CreateStmt) -> StmtKind {
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
        access_method: non_empty(&s.access_method),
        inherits: if s.partbound.is_none() {
            s.inh_relations.iter().filter_map(node_range_var).collect()
        } else {
            vec![]
        },
    }
}

pub(super) fn column_def(c: &protobuf::ColumnDef) -> ColumnDef {
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

pub(super) fn constraint(c: &protobuf::Constraint) -> Constraint {
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

pub(super) fn alter_table(s: &protobuf::AlterTableStmt) -> StmtKind {
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
        only: s.relation.as_ref().is_some_and(|r| !r.inh),
        relkind,
        if_exists: s.missing_ok,
        actions,
    }
}

pub(super) fn alter_action(cmd: &protobuf::AlterTableCmd) -> AlterAction {
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
            Some(NodeEnum::ColumnDef(c)) => {
                let new_type = c.type_name.as_ref().map(type_name).unwrap_or_else(|| TypeName {
                    schema: None,
                    name: "unknown".into(),
                    mods: vec![],
                    array_dims: 0,
                });
                // `USING col::new_type` (the column itself, cast to the new type) and `USING col`
                // are what no USING does: PostgreSQL simplifies both the same way and skips the rewrite for a
                // binary-compatible change just the same.
                let own_cast = |n: &Node| match n.node.as_ref() {
                    Some(NodeEnum::ColumnRef(_)) => column_ref_name(n).as_deref() == Some(col().as_str()),
                    Some(NodeEnum::TypeCast(tc)) => {
                        tc.arg.as_deref().and_then(column_ref_name).as_deref() == Some(col().as_str())
                            && tc.type_name.as_ref().map(type_name).as_ref() == Some(&new_type)
                    }
                    _ => false,
                };
                AlterAction::AlterType {
                    column: col(),
                    using: c.raw_default.as_deref().filter(|n| !own_cast(n)).map(expr),
                    new_type,
                    collation: c.coll_clause.as_ref().map(|cc| qual_from_list(&cc.collname).name),
                }
            }
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
        A::AtSetAccessMethod => AlterAction::SetAccessMethod { method: non_empty(&cmd.name) },
        A::AtEnableRowSecurity | A::AtDisableRowSecurity | A::AtForceRowSecurity | A::AtNoForceRowSecurity => {
            AlterAction::RowSecurity
        }
        other => AlterAction::Other { tag: format!("{other:?}") },
    }
}

pub(super) fn partition_name(def: Option<&NodeEnum>) -> QualName {
    match def {
        Some(NodeEnum::PartitionCmd(p)) => p.name.as_ref().map(range_var).unwrap_or_else(|| QualName::bare("")),
        _ => QualName::bare(""),
    }
}

pub(super) fn drop_stmt(s: &protobuf::DropStmt) -> StmtKind {
    let kind = object_kind(s.remove_type);
    let names = s.objects.iter().filter_map(object_name).collect();
    let on = match kind {
        ObjectKind::Trigger | ObjectKind::Policy | ObjectKind::Rule => s.objects.first().and_then(relation_of_member),
        _ => None,
    };
    StmtKind::Drop {
        kind,
        names,
        on,
        concurrently: s.concurrent,
        if_exists: s.missing_ok,
        cascade: s.behavior == DropBehavior::DropCascade as i32,
    }
}

pub(super) fn rename(s: &protobuf::RenameStmt) -> StmtKind {
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

pub(super) fn create_function(s: &protobuf::CreateFunctionStmt) -> StmtKind {
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
