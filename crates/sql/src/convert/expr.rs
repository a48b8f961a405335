//! Expressions, constants, types and names as the model writes them.

use super::*;

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

pub(super) fn canonical_type(name: &str) -> String {
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
        columns: columns_in(n),
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
            columns: vec![],
            is_constant: true,
            is_null: text.eq_ignore_ascii_case("null"),
            has_subquery: false,
            not_null_column: None,
        }
    }
}

pub(super) fn is_constant(n: &NodeEnum) -> bool {
    match n {
        NodeEnum::AConst(_) => true,
        NodeEnum::TypeCast(c) => c.arg.as_deref().and_then(|a| a.node.as_ref()).is_some_and(is_constant),
        NodeEnum::AArrayExpr(a) => a.elements.iter().all(|e| e.node.as_ref().is_some_and(is_constant)),
        _ => false,
    }
}

pub(super) fn column_ref_name(node: &Node) -> Option<String> {
    match node.node.as_ref()? {
        NodeEnum::ColumnRef(c) => c.fields.last().and_then(string_of),
        _ => None,
    }
}

/// `n` and every node under it.
fn nodes_under(n: &NodeEnum) -> impl Iterator<Item = NodeRef<'_>> {
    std::iter::once(n.to_ref()).chain(n.nodes().into_iter().map(|(r, ..)| r))
}

/// The names `pick` finds at `n` and every node under it, sorted, once each.
fn names_under(n: &NodeEnum, pick: impl Fn(&NodeRef) -> Option<String>) -> Vec<String> {
    let mut names: Vec<String> = nodes_under(n).filter_map(|r| pick(&r)).collect();
    names.sort();
    names.dedup();
    names
}

/// Functions called anywhere under `n` (lower-case, unqualified), including the SQL value
/// functions such as `CURRENT_TIMESTAMP`.
pub(super) fn calls_in(n: &NodeEnum) -> Vec<String> {
    names_under(n, |r| match r {
        NodeRef::FuncCall(f) => f.funcname.last().and_then(string_of).map(|name| name.to_lowercase()),
        NodeRef::SqlvalueFunction(_) => Some("now".into()),
        _ => None,
    })
}

/// The calls under `n` whose arguments are all constants (evaluated as PL/pgSQL would).
pub(super) fn constant_calls(n: &NodeEnum) -> Vec<ConstantCall> {
    let no_names = crate::plpgsql::Bindings::default();
    nodes_under(n)
        .filter_map(|r| match r {
            NodeRef::FuncCall(f) if !f.func_variadic && !f.agg_star => Some(ConstantCall {
                function: qual_from_list(&f.funcname),
                args: f
                    .args
                    .iter()
                    .map(|a| crate::plpgsql::eval_node(a.node.as_ref()?, &no_names))
                    .collect::<Option<_>>()?,
            }),
            _ => None,
        })
        .collect()
}

/// The columns named anywhere under `n` (the last part of each column reference), sorted.
pub(crate) fn columns_in(n: &NodeEnum) -> Vec<String> {
    names_under(n, |r| match r {
        NodeRef::ColumnRef(c) => c.fields.last().and_then(string_of),
        _ => None,
    })
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

pub(super) fn lock_mode_number(n: i32) -> LockMode {
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

pub(super) fn object_kind(t: i32) -> ObjectKind {
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

pub(super) fn range_var(r: &protobuf::RangeVar) -> QualName {
    QualName { schema: non_empty(&r.schemaname), name: r.relname.clone() }
}

pub(super) fn node_range_var(n: &Node) -> Option<QualName> {
    match n.node.as_ref()? {
        NodeEnum::RangeVar(r) => Some(range_var(r)),
        _ => None,
    }
}

/// The literal rows of a plain `INSERT … VALUES`.
/// `SET col = expr, …` targets: (column, expression text).
pub(super) fn assignments<'a>(targets: impl Iterator<Item = &'a Node>) -> Vec<(String, String)> {
    targets
        .filter_map(|t| match t.node.as_ref() {
            Some(NodeEnum::ResTarget(r)) => Some((r.name.clone(), r.val.as_deref().map(expr_text).unwrap_or_default())),
            _ => None,
        })
        .collect()
}

/// `ON CONFLICT DO NOTHING` / `DO UPDATE`, if the INSERT has it.
pub(crate) fn on_conflict(s: &protobuf::InsertStmt) -> Option<OnConflict> {
    s.on_conflict_clause.as_ref().map(|c| {
        if c.action() == protobuf::OnConflictAction::OnconflictNothing {
            OnConflict::Nothing
        } else {
            OnConflict::Update
        }
    })
}

/// For `INSERT … VALUES` without `WITH` and with plain column targets: its VALUES lists and
/// its column list (None: every column). The shape alone, read cheaply while parsing.
pub(crate) fn literal_rows(s: &protobuf::InsertStmt) -> Option<(&protobuf::SelectStmt, Option<Vec<String>>)> {
    if s.with_clause.is_some() {
        return None;
    }
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
    Some((sel, columns))
}

/// The rows of an INSERT with [`literal_rows`], every value as a constant (None where it is
/// another expression).
pub(crate) fn insert_values(s: &protobuf::InsertStmt) -> Option<InsertValues> {
    let (sel, columns) = literal_rows(s)?;
    let rows = sel
        .values_lists
        .iter()
        .map(|l| match l.node.as_ref() {
            Some(NodeEnum::List(l)) => l.items.iter().map(constant_sql).collect(),
            _ => vec![],
        })
        .collect();
    Some(InsertValues { columns, rows, on_conflict: on_conflict(s) })
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

pub(super) fn qual_from_list(items: &[Node]) -> QualName {
    let parts: Vec<String> = items.iter().filter_map(string_of).collect();
    match parts.as_slice() {
        [] => QualName::bare(""),
        [one] => QualName::bare(one.clone()),
        [.., s, n] => QualName::qualified(s.clone(), n.clone()),
    }
}

/// The name of a DROP/RENAME/COMMENT target: a list of strings, a type name, an object
/// with arguments (functions), or a bare string (schemas, extensions).
pub(super) fn object_name(n: &Node) -> Option<QualName> {
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

/// For an object that belongs to a relation, written as a name list whose last part is the
/// object (`schema.table.trigger`, `table.column`): the relation.
pub(super) fn relation_of_member(n: &Node) -> Option<QualName> {
    match n.node.as_ref()? {
        NodeEnum::List(l) if l.items.len() >= 2 => Some(qual_from_list(&l.items[..l.items.len() - 1])),
        _ => None,
    }
}

pub(super) fn object_text(n: &Node) -> String {
    match n.node.as_ref() {
        Some(NodeEnum::List(l)) => l.items.iter().filter_map(string_of).collect::<Vec<_>>().join("."),
        _ => object_name(n).map(|q| q.sql()).unwrap_or_default(),
    }
}

pub(super) fn non_empty(s: &str) -> Option<String> {
    if s.is_empty() {
        None
    } else {
        Some(s.to_string())
    }
}
