//! What is read from a statement's parse tree. A [`Statement`] does not keep its tree (it is many
//! times the size of the text): what every statement is asked is read once while parsing
//! ([`TreeFacts`]); the rarer questions parse the statement's text again ([`Statement::tree`]).

use crate::model::{ColumnConstants, InsertValues, QualName, Statement, StmtKind};

/// What rules ask of every statement's parse tree, read while it is at hand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TreeFacts {
    roles_named: Vec<String>,
    roles_created: Vec<String>,
    frozen_times: Vec<String>,
    maintenance_calls: Vec<QualName>,
}

impl TreeFacts {
    /// The facts of a statement's tree, or None when there are none.
    pub(crate) fn of(raw: &pg_query::protobuf::Node) -> Option<Box<TreeFacts>> {
        let (roles_named, roles_created) = Statement::roles_in(raw);
        let f = TreeFacts {
            roles_named,
            roles_created,
            frozen_times: Statement::frozen_times_in(raw),
            maintenance_calls: Statement::maintenance_calls_in(raw),
        };
        (f != TreeFacts::default()).then(|| Box::new(f))
    }
}

impl Statement {
    /// The statement's parse tree, parsed again from its text (statements do not keep their
    /// trees; see `facts`). None only if the text no longer parses alone, which PostgreSQL's
    /// grammar does not allow for a statement it parsed in its file.
    pub fn tree(&self) -> Option<pg_query::protobuf::Node> {
        let text = self.span.slice(&self.parsed_text);
        let mut parsed = pg_query::parse(text, 0).ok()?.protobuf;
        if parsed.stmts.len() != 1 {
            return None;
        }
        parsed.stmts.pop()?.stmt.map(|b| *b)
    }

    /// Roles the statement names (`GRANT … TO r`, `OWNER TO r`, `CREATE POLICY … TO r`,
    /// `SET ROLE r`, …), and roles it creates. `PUBLIC`, `CURRENT_USER` and the like are not
    /// names.
    pub fn roles(&self) -> (Vec<String>, Vec<String>) {
        self.facts.as_ref().map(|f| (f.roles_named.clone(), f.roles_created.clone())).unwrap_or_default()
    }

    /// Date/time special values that this statement stores frozen (see `frozen_times_in`).
    pub fn frozen_times(&self) -> Vec<String> {
        self.facts.as_ref().map(|f| f.frozen_times.clone()).unwrap_or_default()
    }

    /// Functions called where PostgreSQL 17 and later evaluate with `search_path =
    /// pg_catalog, pg_temp` (see `maintenance_calls_in`).
    pub fn maintenance_calls(&self) -> Vec<QualName> {
        self.facts.as_ref().map(|f| f.maintenance_calls.clone()).unwrap_or_default()
    }

    /// Roles the statement names (`GRANT … TO r`, `OWNER TO r`, `CREATE POLICY … TO r`,
    /// `SET ROLE r`, …), and roles it creates. `PUBLIC`, `CURRENT_USER` and the like are not
    /// names.
    fn roles_in(raw: &pg_query::protobuf::Node) -> (Vec<String>, Vec<String>) {
        use pg_query::protobuf::{a_const, RoleSpecType};
        use pg_query::NodeEnum as N;
        let (mut named, mut created) = (Vec::new(), Vec::new());
        fn spec(n: Option<&pg_query::protobuf::RoleSpec>, out: &mut Vec<String>) {
            if let Some(r) = n.filter(|r| r.roletype() == RoleSpecType::RolespecCstring) {
                out.push(r.rolename.clone());
            }
        }
        fn specs(list: &[pg_query::protobuf::Node], out: &mut Vec<String>) {
            for n in list {
                if let Some(N::RoleSpec(r)) = n.node.as_ref() {
                    spec(Some(r), out);
                }
            }
        }
        match raw.node.as_ref() {
            Some(N::GrantStmt(g)) => specs(&g.grantees, &mut named),
            Some(N::GrantRoleStmt(g)) => {
                specs(&g.grantee_roles, &mut named);
                for n in &g.granted_roles {
                    if let Some(N::AccessPriv(p)) = n.node.as_ref() {
                        named.push(p.priv_name.clone());
                    }
                }
            }
            Some(N::AlterOwnerStmt(a)) => spec(a.newowner.as_ref(), &mut named),
            Some(N::AlterTableStmt(a)) => {
                for c in &a.cmds {
                    if let Some(N::AlterTableCmd(c)) = c.node.as_ref() {
                        spec(c.newowner.as_ref(), &mut named);
                    }
                }
            }
            Some(N::CreatePolicyStmt(p)) => specs(&p.roles, &mut named),
            Some(N::AlterPolicyStmt(p)) => specs(&p.roles, &mut named),
            Some(N::CreateSchemaStmt(c)) => spec(c.authrole.as_ref(), &mut named),
            Some(N::AlterDefaultPrivilegesStmt(a)) => {
                for o in &a.options {
                    if let Some(N::DefElem(d)) = o.node.as_ref() {
                        if let Some(N::List(l)) = d.arg.as_deref().and_then(|x| x.node.as_ref()) {
                            specs(&l.items, &mut named);
                        }
                    }
                }
                if let Some(g) = &a.action {
                    specs(&g.grantees, &mut named);
                }
            }
            Some(N::CreateRoleStmt(c)) => created.push(c.role.clone()),
            Some(N::VariableSetStmt(v)) if v.name == "role" => {
                for a in &v.args {
                    if let Some(N::AConst(c)) = a.node.as_ref() {
                        if let Some(a_const::Val::Sval(s)) = &c.val {
                            if s.sval != "none" {
                                named.push(s.sval.clone());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        (named, created)
    }

    /// Date/time special values that this statement stores frozen: `'now'::timestamp`,
    /// `date 'today'`, or `DEFAULT 'now'` on a date/time column, inside what PostgreSQL keeps
    /// and evaluates later (a view, a materialized view, a default, a check, an index, a policy,
    /// a trigger's WHEN). Such a literal becomes the time the statement ran, for good. Returns
    /// the literals as written with their type, e.g. `'now'::timestamp`.
    fn frozen_times_in(raw: &pg_query::protobuf::Node) -> Vec<String> {
        use pg_query::protobuf::{a_const, node::Node as N, ConstrType, Node, ObjectType, TypeName};
        use pg_query::NodeRef as R;
        const SPECIAL: [&str; 4] = ["now", "today", "tomorrow", "yesterday"];
        const TIME_TYPES: [&str; 5] = ["timestamp", "timestamptz", "date", "time", "timetz"];
        let special = |n: Option<&Node>| match n.and_then(|n| n.node.as_ref()) {
            Some(N::AConst(c)) => match &c.val {
                Some(a_const::Val::Sval(s)) => {
                    let v = s.sval.trim().to_ascii_lowercase();
                    SPECIAL.contains(&v.as_str()).then_some(v)
                }
                _ => None,
            },
            _ => None,
        };
        let time_type = |t: Option<&TypeName>| {
            t.and_then(|t| t.names.last()).and_then(|n| match n.node.as_ref() {
                Some(N::String(s)) if TIME_TYPES.contains(&s.sval.as_str()) => Some(s.sval.clone()),
                _ => None,
            })
        };
        // The expressions PostgreSQL stores: pg_query's walker only follows queries and
        // expressions, so the roots inside DDL are found here.
        let mut roots: Vec<&Node> = Vec::new();
        let mut columns: Vec<&pg_query::protobuf::ColumnDef> = Vec::new();
        fn element<'a>(n: &'a Node, roots: &mut Vec<&'a Node>, columns: &mut Vec<&'a pg_query::protobuf::ColumnDef>) {
            match n.node.as_ref() {
                Some(N::ColumnDef(c)) => {
                    columns.push(c);
                    roots.extend(c.raw_default.as_deref());
                    for k in &c.constraints {
                        element(k, roots, columns);
                    }
                }
                Some(N::Constraint(k)) => roots.extend(k.raw_expr.as_deref()),
                Some(_) => roots.push(n),
                None => {}
            }
        }
        match raw.node.as_ref() {
            Some(N::ViewStmt(_) | N::RuleStmt(_)) => roots.push(raw),
            Some(N::CreateTableAsStmt(c)) if c.objtype == ObjectType::ObjectMatview as i32 => roots.push(raw),
            Some(N::CreateStmt(c)) => c.table_elts.iter().for_each(|e| element(e, &mut roots, &mut columns)),
            Some(N::AlterTableStmt(a)) => {
                for cmd in &a.cmds {
                    if let Some(N::AlterTableCmd(cmd)) = cmd.node.as_ref() {
                        if let Some(d) = cmd.def.as_deref() {
                            element(d, &mut roots, &mut columns);
                        }
                    }
                }
            }
            Some(N::IndexStmt(i)) => {
                roots.extend(i.where_clause.as_deref());
                for p in &i.index_params {
                    if let Some(N::IndexElem(e)) = p.node.as_ref() {
                        roots.extend(e.expr.as_deref());
                    }
                }
            }
            Some(N::CreatePolicyStmt(p)) => roots.extend(p.qual.as_deref().into_iter().chain(p.with_check.as_deref())),
            Some(N::AlterPolicyStmt(p)) => roots.extend(p.qual.as_deref().into_iter().chain(p.with_check.as_deref())),
            Some(N::CreateTrigStmt(t)) => roots.extend(t.when_clause.as_deref()),
            Some(N::CreateDomainStmt(d)) => d.constraints.iter().for_each(|e| element(e, &mut roots, &mut columns)),
            Some(N::AlterDomainStmt(d)) => {
                if let Some(e) = d.def.as_deref() {
                    element(e, &mut roots, &mut columns);
                }
            }
            _ => {}
        }
        let mut out = Vec::new();
        for root in roots {
            let Some(n) = root.node.as_ref() else { continue };
            let mut nodes = vec![n.to_ref()];
            nodes.extend(n.nodes().into_iter().skip(1).map(|(r, ..)| r));
            for node in nodes {
                if let R::TypeCast(c) = node {
                    if let (Some(v), Some(t)) = (special(c.arg.as_deref()), time_type(c.type_name.as_ref())) {
                        out.push(format!("'{v}'::{t}"));
                    }
                }
            }
        }
        for col in columns {
            let Some(t) = time_type(col.type_name.as_ref()) else { continue };
            let defaults =
                col.raw_default.as_deref().into_iter().chain(col.constraints.iter().filter_map(
                    |k| match k.node.as_ref() {
                        Some(N::Constraint(k)) if k.contype == ConstrType::ConstrDefault as i32 => {
                            k.raw_expr.as_deref()
                        }
                        _ => None,
                    },
                ));
            for d in defaults {
                if let Some(v) = special(Some(d)) {
                    out.push(format!("DEFAULT '{v}' on a {t} column"));
                }
            }
        }
        out.dedup();
        out
    }

    /// Functions called where PostgreSQL 17 and later evaluate with `search_path =
    /// pg_catalog, pg_temp`: index expressions and predicates, and materialized view queries.
    fn maintenance_calls_in(raw: &pg_query::protobuf::Node) -> Vec<QualName> {
        use pg_query::protobuf::{node::Node as N, ObjectType};
        let roots: Vec<&pg_query::protobuf::Node> = match raw.node.as_ref() {
            Some(N::IndexStmt(i)) => i
                .where_clause
                .as_deref()
                .into_iter()
                .chain(i.index_params.iter().filter_map(|p| match p.node.as_ref() {
                    Some(N::IndexElem(e)) => e.expr.as_deref(),
                    _ => None,
                }))
                .collect(),
            Some(N::CreateTableAsStmt(c)) if c.objtype == ObjectType::ObjectMatview as i32 => vec![raw],
            _ => vec![],
        };
        let mut out: Vec<QualName> = Vec::new();
        for root in roots {
            for name in function_calls(root) {
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        out
    }

    /// For `CREATE FUNCTION … LANGUAGE sql` with a body in a string (not `BEGIN ATOMIC`, whose
    /// names are bound when it is created): whether it pins `search_path` (`SET search_path`),
    /// and the names its body leaves to `search_path`: relations without a schema, and
    /// functions without one that are not in `pg_catalog`. None for other statements.
    pub fn search_path_reliance(&self) -> Option<(bool, Vec<String>)> {
        use pg_query::protobuf::node::Node as N;
        if !matches!(self.kind, StmtKind::CreateFunction { .. }) {
            return None;
        }
        let raw = self.tree()?;
        let Some(N::CreateFunctionStmt(f)) = raw.node.as_ref() else { return None };
        if f.sql_body.is_some() {
            return None;
        }
        let mut language = String::new();
        let mut body = String::new();
        let mut pinned = false;
        for o in &f.options {
            let Some(N::DefElem(d)) = o.node.as_ref() else { continue };
            match d.defname.as_str() {
                "language" => language = d.arg.as_deref().and_then(crate::convert::string_of).unwrap_or_default(),
                "as" => {
                    if let Some(N::List(l)) = d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                        body = l.items.first().and_then(crate::convert::string_of).unwrap_or_default();
                    }
                }
                "set" => {
                    if let Some(N::VariableSetStmt(v)) = d.arg.as_deref().and_then(|a| a.node.as_ref()) {
                        pinned |= v.name.eq_ignore_ascii_case("search_path");
                    }
                }
                _ => {}
            }
        }
        if !language.eq_ignore_ascii_case("sql") {
            return None;
        }
        let parsed = pg_query::parse(&body, 0).ok()?;
        let nodes = parsed.protobuf.nodes();
        // WITH names are read in FROM like tables but are not looked up in search_path.
        let ctes: Vec<&str> = nodes
            .iter()
            .filter_map(|(n, ..)| match n {
                pg_query::NodeRef::CommonTableExpr(c) => Some(c.ctename.as_str()),
                _ => None,
            })
            .collect();
        let mut names: Vec<String> = Vec::new();
        for (node, ..) in nodes.iter().cloned() {
            let name = match node {
                pg_query::NodeRef::RangeVar(r)
                    if r.schemaname.is_empty()
                        && !r.relname.starts_with("pg_")
                        && !ctes.contains(&r.relname.as_str()) =>
                {
                    Some(r.relname.clone())
                }
                pg_query::NodeRef::FuncCall(c) if c.funcname.len() == 1 => c
                    .funcname
                    .first()
                    .and_then(crate::convert::string_of)
                    .filter(|n| !crate::volatility::in_pg_catalog(n))
                    .map(|n| format!("{n}()")),
                _ => None,
            };
            if let Some(n) = name.filter(|n| !names.contains(n)) {
                names.push(n);
            }
        }
        Some((pinned, names))
    }

    /// For `UPDATE t SET a = const, … WHERE k = const AND …` (no FROM, WHERE only equalities of
    /// columns with constants): the assignments and the equalities, as (column, SQL constant).
    /// An UPDATE that renames a key (`SET code = 'ms_MY' WHERE code = 'my'`) can be undone by
    /// the same UPDATE the other way round.
    pub fn update_constants(&self) -> Option<(ColumnConstants, ColumnConstants)> {
        use pg_query::protobuf::{node::Node as N, AExprKind, BoolExprType};
        if !matches!(self.kind, StmtKind::Update { .. }) {
            return None;
        }
        let raw = self.tree()?;
        let Some(N::UpdateStmt(u)) = raw.node.as_ref() else { return None };
        if !u.from_clause.is_empty() || u.with_clause.is_some() {
            return None;
        }
        let mut sets = Vec::new();
        for t in &u.target_list {
            let Some(N::ResTarget(r)) = t.node.as_ref() else { return None };
            if !r.indirection.is_empty() {
                return None;
            }
            sets.push((r.name.clone(), crate::convert::constant_sql(r.val.as_deref()?)?));
        }
        let mut conjuncts: Vec<&pg_query::protobuf::Node> = Vec::new();
        match u.where_clause.as_deref()?.node.as_ref()? {
            N::BoolExpr(b) if b.boolop == BoolExprType::AndExpr as i32 => conjuncts.extend(b.args.iter()),
            _ => conjuncts.push(u.where_clause.as_deref()?),
        }
        let mut wheres = Vec::new();
        for c in conjuncts {
            let Some(N::AExpr(e)) = c.node.as_ref() else { return None };
            let op: Vec<String> = e.name.iter().filter_map(crate::convert::string_of).collect();
            if e.kind != AExprKind::AexprOp as i32 || op != ["="] {
                return None;
            }
            let Some(N::ColumnRef(col)) = e.lexpr.as_deref()?.node.as_ref() else { return None };
            let [field] = col.fields.as_slice() else { return None };
            wheres.push((crate::convert::string_of(field)?, crate::convert::constant_sql(e.rexpr.as_deref()?)?));
        }
        Some((sets, wheres))
    }

    /// For `INSERT … VALUES` with literal rows (see `StmtKind::Insert`): the columns and the
    /// rows as constants. None for any other statement.
    pub fn insert_values(&self) -> Option<InsertValues> {
        if !matches!(self.kind, StmtKind::Insert { literal_rows: true, .. }) {
            return None;
        }
        match self.tree()?.node? {
            pg_query::NodeEnum::InsertStmt(s) => crate::convert::insert_values(&s),
            _ => None,
        }
    }
}

/// The functions called anywhere under `root`.
fn function_calls(root: &pg_query::protobuf::Node) -> Vec<QualName> {
    let Some(n) = root.node.as_ref() else { return vec![] };
    let mut nodes = vec![n.to_ref()];
    nodes.extend(n.nodes().into_iter().skip(1).map(|(r, ..)| r));
    nodes
        .into_iter()
        .filter_map(|node| match node {
            pg_query::NodeRef::FuncCall(c) => {
                let parts: Vec<String> = c.funcname.iter().filter_map(crate::convert::string_of).collect();
                match parts.as_slice() {
                    [name] => Some(QualName::bare(name.clone())),
                    [schema, name] => Some(QualName::qualified(schema.clone(), name.clone())),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}
