//! Rendering the DDL that turns one snapshot into another, ordered by dependencies: drops
//! first (dependent objects before what they depend on), then creates and alters (what is
//! depended on first). Views that depend on changed columns are dropped and recreated around
//! the change. Every identifier is quoted; every literal escaped.

use std::collections::{BTreeMap, BTreeSet};

use migsafe_sql::{quote_ident as qi, quote_literal as ql};

use crate::diff::SchemaDiff;
use crate::model::*;

/// Statements with the phase they belong to, rendered in order.
#[derive(Default)]
struct Script {
    stmts: Vec<String>,
}

impl Script {
    fn push(&mut self, s: impl Into<String>) {
        self.stmts.push(s.into());
    }
}

impl SchemaDiff<'_> {
    /// The DDL that turns the source schema into the target, as one script (`;`-terminated
    /// statements). Empty when the schemas are equal.
    pub fn to_sql(&self) -> String {
        let stmts = self.statements();
        if stmts.is_empty() {
            return String::new();
        }
        let mut out = String::from("SET check_function_bodies = off;\n");
        for s in stmts {
            out.push_str(&s);
            out.push_str(";\n");
        }
        out
    }

    /// The same DDL as separate statements (no trailing `;`).
    pub fn statements(&self) -> Vec<String> {
        let mut s = Script::default();
        match without_rebuilt_tables(self.from, self.to) {
            // Tables that change kind (regular ↔ partitioned) cannot be altered: drop them
            // (with what depends on them) first, then build the target from there.
            Some(mid) => {
                render(self.from, &mid, &mut s);
                render(&mid, self.to, &mut s);
            }
            None => render(self.from, self.to, &mut s),
        }
        s.stmts
    }
}

/// `a` without the tables that cannot be altered into their `b` form (and without what
/// depends on them), or None when there are none.
fn without_rebuilt_tables(a: &Snapshot, b: &Snapshot) -> Option<Snapshot> {
    let mut gone: BTreeSet<QName> = a
        .tables
        .iter()
        .filter(|(n, t)| b.tables.get(*n).is_some_and(|u| u.kind != t.kind || u.partition_key != t.partition_key))
        .map(|(n, _)| n.clone())
        .collect();
    if gone.is_empty() {
        return None;
    }
    // Partitions and inheritance children go with their parent.
    loop {
        let before = gone.len();
        for (n, t) in &a.tables {
            let parent = t.partition_of.as_ref().map(|(p, _)| p);
            if parent.is_some_and(|p| gone.contains(p)) {
                gone.insert(n.clone());
            }
        }
        if gone.len() == before {
            break;
        }
    }
    let mut mid = a.clone();
    mid.tables.retain(|n, _| !gone.contains(n));
    for t in mid.tables.values_mut() {
        t.constraints.retain(|_, c| c.references.as_ref().is_none_or(|r| !gone.contains(r)));
    }
    let mut dead: BTreeSet<QName> = gone.clone();
    loop {
        let before = dead.len();
        for (n, v) in &a.views {
            if v.depends_on.iter().any(|d| dead.contains(d)) {
                dead.insert(n.clone());
            }
        }
        if dead.len() == before {
            break;
        }
    }
    mid.views.retain(|n, _| !dead.contains(n));
    mid.sequences.retain(|_, q| q.owned_by.as_ref().is_none_or(|(t, _)| !gone.contains(t)));
    Some(mid)
}

fn comment_sql(what: &str, comment: &Option<String>) -> String {
    match comment {
        Some(c) => format!("COMMENT ON {what} IS {}", ql(c)),
        None => format!("COMMENT ON {what} IS NULL"),
    }
}

/// GRANT/REVOKE turning `before` grants into `after` on `object` (e.g. `TABLE "s"."t"`).
fn grant_sql(object: &str, before: &[String], after: &[String], columns: Option<&str>, s: &mut Script) {
    let parse = |g: &String| -> (String, String, bool) {
        let (role, rest) = g.split_once('=').unwrap_or((g.as_str(), ""));
        let grantable = rest.ends_with('*');
        (role.to_string(), rest.trim_end_matches('*').to_string(), grantable)
    };
    let role_sql = |r: &str| if r == "PUBLIC" { "PUBLIC".to_string() } else { qi(r) };
    let cols = columns.map(|c| format!(" ({c})")).unwrap_or_default();
    for g in before.iter().filter(|g| !after.contains(g)) {
        let (role, privilege, _) = parse(g);
        s.push(format!("REVOKE {privilege}{cols} ON {object} FROM {}", role_sql(&role)));
    }
    for g in after.iter().filter(|g| !before.contains(g)) {
        let (role, privilege, grantable) = parse(g);
        let opt = if grantable { " WITH GRANT OPTION" } else { "" };
        s.push(format!("GRANT {privilege}{cols} ON {object} TO {}{opt}", role_sql(&role)));
    }
}

fn trim_semicolon(s: &str) -> &str {
    s.trim().trim_end_matches(';').trim_end()
}

/// Topological order of `names` (views), dependencies first, using `deps`.
fn ordered_views(names: &BTreeSet<QName>, views: &BTreeMap<QName, View>) -> Vec<QName> {
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    fn visit(
        n: &QName,
        names: &BTreeSet<QName>,
        views: &BTreeMap<QName, View>,
        done: &mut BTreeSet<QName>,
        stack: &mut BTreeSet<QName>,
        out: &mut Vec<QName>,
    ) {
        if done.contains(n) || !stack.insert(n.clone()) {
            return;
        }
        if let Some(v) = views.get(n) {
            for d in &v.depends_on {
                if names.contains(d) {
                    visit(d, names, views, done, stack, out);
                }
            }
        }
        stack.remove(n);
        done.insert(n.clone());
        out.push(n.clone());
    }
    let mut stack = BTreeSet::new();
    for n in names {
        visit(n, names, views, &mut done, &mut stack, &mut out);
    }
    out
}

/// The views that need dropping and recreating (changed, or depending transitively on
/// something that is dropped or whose columns change), and every object that is dropped,
/// rebuilt or whose columns change (what a rule using it must be dropped around).
fn views_and_touched(a: &Snapshot, b: &Snapshot) -> (BTreeSet<QName>, BTreeSet<QName>) {
    let mut touched: BTreeSet<QName> = BTreeSet::new();
    for (n, v) in &a.views {
        match b.views.get(n) {
            Some(w) if view_body_eq(v, w) => {}
            _ => {
                touched.insert(n.clone());
            }
        }
    }
    for (n, t) in &a.tables {
        let Some(u) = b.tables.get(n) else {
            touched.insert(n.clone());
            continue;
        };
        let changed = t.columns.iter().any(|c| match u.column(&c.name) {
            None => true,
            Some(d) => c.type_name != d.type_name || c.collation != d.collation || c.generated != d.generated,
        });
        if changed {
            touched.insert(n.clone());
        }
    }
    for (sig, f) in &a.functions {
        match b.functions.get(sig) {
            Some(g) if g.result == f.result && g.kind == f.kind => {}
            _ => {
                touched.insert(QName::new(&f.schema, &f.name));
            }
        }
    }
    for (n, t) in &a.types {
        if b.types.get(n).is_none_or(|u| needs_type_rebuild(t, u)) {
            touched.insert(n.clone());
            for (tn, _) in columns_of_type(a, n) {
                touched.insert(tn.clone());
            }
        }
    }
    // Close over view dependencies in the source.
    let mut rebuild: BTreeSet<QName> = BTreeSet::new();
    loop {
        let before = rebuild.len();
        for (n, v) in &a.views {
            if touched.contains(n) && a.views.contains_key(n) && b.views.contains_key(n) {
                rebuild.insert(n.clone());
            }
            if v.depends_on.iter().any(|d| touched.contains(d) || rebuild.contains(d)) && b.views.contains_key(n) {
                rebuild.insert(n.clone());
            }
        }
        for r in &rebuild {
            touched.insert(r.clone());
        }
        if rebuild.len() == before {
            break;
        }
    }
    (rebuild, touched)
}

/// Types (not enums) that change shape and no column uses: dropped and created again.
fn rebuilt_types(a: &Snapshot, b: &Snapshot) -> Vec<QName> {
    renewed_types(a, b)
        .into_iter()
        .filter(|n| {
            !matches!((&a.types[n], &b.types[n]), (TypeDef::Enum { .. }, TypeDef::Enum { .. }))
                && columns_of_type(b, n).is_empty()
        })
        .collect()
}

/// The function's arguments or result name one of `types` (a table's name is its row type).
fn uses_type(f: &Function, rebuilt: &[QName]) -> bool {
    let text = format!("{} {}", f.identity_args, f.result.as_deref().unwrap_or(""));
    rebuilt.iter().any(|n| {
        text.contains(&n.to_string()) || text.split(|c: char| !c.is_alphanumeric() && c != '_').any(|w| w == n.name)
    })
}

fn view_body_eq(v: &View, w: &View) -> bool {
    v.materialized == w.materialized && v.definition == w.definition && v.columns == w.columns && v.options == w.options
}

fn needs_type_rebuild(a: &TypeDef, b: &TypeDef) -> bool {
    match (a, b) {
        (TypeDef::Enum { labels: x, .. }, TypeDef::Enum { labels: y, .. }) => !enum_only_adds(x, y),
        (TypeDef::Composite { attributes: x, .. }, TypeDef::Composite { attributes: y, .. }) => x != y,
        (TypeDef::Domain { base: x, collation: cx, .. }, TypeDef::Domain { base: y, collation: cy, .. }) => {
            x != y || cx != cy
        }
        (TypeDef::Range { subtype: x, .. }, TypeDef::Range { subtype: y, .. }) => x != y,
        _ => true,
    }
}

/// True when `new` is `old` with labels inserted (old labels keep their relative order).
fn enum_only_adds(old: &[String], new: &[String]) -> bool {
    let kept: Vec<&String> = new.iter().filter(|l| old.contains(l)).collect();
    kept.len() == old.len() && kept.iter().zip(old).all(|(a, b)| *a == b)
}

fn type_comment(t: &TypeDef) -> &Option<String> {
    match t {
        TypeDef::Enum { comment, .. }
        | TypeDef::Composite { comment, .. }
        | TypeDef::Domain { comment, .. }
        | TypeDef::Range { comment, .. } => comment,
    }
}

fn create_type(n: &QName, t: &TypeDef, s: &mut Script) {
    match t {
        TypeDef::Enum { labels, .. } => {
            let l: Vec<String> = labels.iter().map(|x| ql(x)).collect();
            s.push(format!("CREATE TYPE {n} AS ENUM ({})", l.join(", ")));
        }
        TypeDef::Composite { attributes, .. } => {
            let a: Vec<String> = attributes.iter().map(|(k, v)| format!("{} {v}", qi(k))).collect();
            s.push(format!("CREATE TYPE {n} AS ({})", a.join(", ")));
        }
        TypeDef::Domain { base, not_null, default, collation, constraints, .. } => {
            let mut d = format!("CREATE DOMAIN {n} AS {base}");
            if let Some(c) = collation {
                d.push_str(&format!(" COLLATE {c}"));
            }
            if let Some(df) = default {
                d.push_str(&format!(" DEFAULT {df}"));
            }
            if *not_null {
                d.push_str(" NOT NULL");
            }
            s.push(d);
            for (cn, (def, _)) in constraints {
                s.push(format!("ALTER DOMAIN {n} ADD CONSTRAINT {} {def}", qi(cn)));
            }
        }
        TypeDef::Range { subtype, .. } => s.push(format!("CREATE TYPE {n} AS RANGE (subtype = {subtype})")),
    }
    if type_comment(t).is_some() {
        s.push(comment_sql(&format!("{} {n}", type_keyword(t)), type_comment(t)));
    }
}

fn type_keyword(t: &TypeDef) -> &'static str {
    if matches!(t, TypeDef::Domain { .. }) {
        "DOMAIN"
    } else {
        "TYPE"
    }
}

/// Columns (in `b`) whose type is the type `n` (or an array of it).
fn columns_of_type<'a>(b: &'a Snapshot, n: &QName) -> Vec<(&'a QName, &'a Column)> {
    let spellings = [n.to_string(), n.name.clone(), format!("{}.{}", n.schema, n.name)];
    let mut out = Vec::new();
    for (tn, t) in &b.tables {
        for c in &t.columns {
            let base = c.type_name.trim_end_matches("[]");
            if spellings.iter().any(|s| s == base) && !c.inherited {
                out.push((tn, c));
            }
        }
    }
    out
}

/// Every type built anew, enums losing values included (see `needs_type_rebuild`).
fn renewed_types(a: &Snapshot, b: &Snapshot) -> Vec<QName> {
    a.types
        .iter()
        .filter(|(n, t)| b.types.get(*n).is_some_and(|u| needs_type_rebuild(t, u)))
        .map(|(n, _)| n.clone())
        .collect()
}

/// Tables with a column whose type changes in place (`ALTER COLUMN … TYPE`, also when its
/// enum is rebuilt). PostgreSQL refuses that while a trigger (`WHEN`, `UPDATE OF`) or a
/// policy uses the column, so on these tables such triggers and the policies are dropped
/// first and created again after.
fn retyped_tables(a: &Snapshot, b: &Snapshot) -> BTreeSet<QName> {
    let mut out = BTreeSet::new();
    for n in renewed_types(a, b) {
        for (tn, _) in columns_of_type(a, &n) {
            out.insert(tn.clone());
        }
    }
    for (tn, t) in &a.tables {
        let Some(u) = b.tables.get(tn) else { continue };
        if t.columns
            .iter()
            .any(|c| u.column(&c.name).is_some_and(|d| d.type_name != c.type_name || d.collation != c.collation))
        {
            out.insert(tn.clone());
        }
    }
    out
}

/// An index with a predicate or typed constants is rebuilt by `ALTER COLUMN … TYPE` from its
/// stored form, whose constants keep the old type: it goes first and is built again after.
fn has_typed_expressions(i: &Index) -> bool {
    i.definition.contains(" WHERE ") || i.definition.contains("::")
}

/// A CHECK or EXCLUDE constraint with typed constants (`kind = 'a'::kind`) is checked again by
/// `ALTER COLUMN … TYPE` with its constants still of the old type (no operator between an
/// enum and its rebuilt twin): on a retyped table it goes first and is added again after.
fn has_typed_constants(c: &Constraint) -> bool {
    matches!(c.kind.as_str(), "c" | "x") && c.definition.contains("::")
}

/// `ALTER TABLE … <clause> TRIGGER|RULE name` for a firing state (`pg_trigger.tgenabled`,
/// `pg_rewrite.ev_enabled`): `O` origin, `D` disabled, `R` replica, `A` always.
pub fn enable_clause(state: &str) -> &'static str {
    match state {
        "D" => "DISABLE",
        "R" => "ENABLE REPLICA",
        "A" => "ENABLE ALWAYS",
        _ => "ENABLE",
    }
}

/// Whether a trigger's or rule's comment must be set: when created anew, the comment it has,
/// if any; when kept, a comment that changed.
fn comment_due(same_def: bool, old: Option<&Option<String>>, new: &Option<String>) -> bool {
    if same_def {
        old.is_some_and(|o| o != new)
    } else {
        new.is_some()
    }
}

/// Foreign keys referencing a table in `rekeyed` (see [`rekeyed_tables`]).
fn fk_on(rekeyed: &BTreeSet<QName>, c: &Constraint) -> bool {
    c.kind == "f" && c.references.as_ref().is_some_and(|r| rekeyed.contains(r))
}

/// Tables of the source whose primary key, unique or exclusion constraints or unique indexes
/// go or change (a foreign key referencing them may depend on one).
fn rekeyed_tables(a: &Snapshot, b: &Snapshot, retyped: &BTreeSet<QName>) -> BTreeSet<QName> {
    let mut out = BTreeSet::new();
    for (tn, t) in &a.tables {
        let Some(u) = b.tables.get(tn) else { continue };
        let keys_change = t
            .constraints
            .iter()
            .filter(|(_, c)| matches!(c.kind.as_str(), "p" | "u"))
            .any(|(cn, c)| !u.constraints.get(cn).is_some_and(|o| constraint_same(c, o)) || retyped.contains(tn));
        let unique_index_changes = t
            .indexes
            .iter()
            .filter(|(_, i)| !i.constraint && i.definition.starts_with("CREATE UNIQUE"))
            .any(|(n, i)| u.indexes.get(n).is_none_or(|j| j.definition != i.definition));
        if keys_change || unique_index_changes {
            out.insert(tn.clone());
        }
    }
    out
}

/// Functions in the order to drop them (`aggregates_first`: an aggregate depends on its state
/// and final functions) or to create them (aggregates last).
fn by_kind(m: &BTreeMap<String, Function>, aggregates_first: bool) -> Vec<(&String, &Function)> {
    let mut v: Vec<(&String, &Function)> = m.iter().collect();
    v.sort_by_key(|(_, f)| (f.kind == "aggregate") != aggregates_first);
    v
}

/// A trigger that names columns (`WHEN (…)`, `UPDATE OF col`) blocks changing their type.
fn names_columns(t: &Trigger) -> bool {
    t.definition.contains(" WHEN (") || t.definition.contains(" UPDATE OF ")
}

fn render(a: &Snapshot, b: &Snapshot, s: &mut Script) {
    let (rebuild_views, touched) = views_and_touched(a, b);
    let retyped = retyped_tables(a, b);
    // Every type built anew (enums losing values included): functions taking or returning it
    // would keep the old one.
    let renewed = renewed_types(a, b);
    // Tables that go: their row types go with them.
    let gone_rows: Vec<QName> = a.tables.keys().filter(|n| !b.tables.contains_key(*n)).cloned().collect();

    // ---------- Phase 1: drops, dependents first ----------
    drop_others(a, b, s);
    for (tn, t) in &a.tables {
        let u = b.tables.get(tn);
        let retyped = retyped.contains(tn);
        for (pn, p) in &t.policies {
            if u.and_then(|u| u.policies.get(pn)) != Some(p) || (retyped && u.is_some()) {
                s.push(format!("DROP POLICY {} ON {tn}", qi(pn)));
            }
        }
        for (gn, g) in &t.triggers {
            if g.inherited {
                continue;
            }
            let keep = u.and_then(|u| u.triggers.get(gn)).is_some_and(|h| h.definition == g.definition)
                && !(retyped && names_columns(g));
            if !keep && u.is_some() {
                s.push(format!("DROP TRIGGER {} ON {tn}", qi(gn)));
            }
        }
    }
    // Rules go before the tables and views they read or write (a rule blocks dropping them and
    // changing the type of a column it uses) and come back at the end.
    let redo_rule = |r: &Rule| {
        touched.contains(&r.relation)
            || retyped.contains(&r.relation)
            || r.depends_on.iter().any(|d| touched.contains(d) || retyped.contains(d))
    };
    for (k, r) in &a.rules {
        if b.rules.get(k).is_none_or(|x| x.definition != r.definition) || redo_rule(r) {
            s.push(format!("DROP RULE {} ON {}", qi(&r.name), r.relation));
        }
    }
    let removed_views: BTreeSet<QName> =
        a.views.keys().filter(|n| !b.views.contains_key(*n)).cloned().chain(rebuild_views.iter().cloned()).collect();
    let mut drop_order = ordered_views(&removed_views, &a.views);
    drop_order.reverse();
    for n in &drop_order {
        let v = &a.views[n];
        let kw = if v.materialized { "MATERIALIZED VIEW" } else { "VIEW" };
        s.push(format!("DROP {kw} {n}"));
    }
    // A foreign key depends on the unique index of the key it references: when that key goes
    // or changes, the foreign keys referencing its table go first and come back after.
    let rekeyed = rekeyed_tables(a, b, &retyped);
    // Constraints that go or change: foreign keys first (they depend on unique indexes).
    for pass in [true, false] {
        for (tn, t) in &a.tables {
            let u = b.tables.get(tn);
            let table_dropped = u.is_none();
            let retyped = retyped.contains(tn);
            for (cn, c) in &t.constraints {
                if c.inherited || (c.kind == "f") != pass {
                    continue;
                }
                let other = u.and_then(|u| u.constraints.get(cn));
                let keep = other.is_some_and(|o| constraint_same(c, o))
                    && !(retyped && has_typed_constants(c))
                    && !fk_on(&rekeyed, c);
                if table_dropped && !pass {
                    continue; // dropped with the table
                }
                if !keep {
                    s.push(format!("ALTER TABLE {tn} DROP CONSTRAINT {}", qi(cn)));
                }
            }
        }
    }
    for (tn, t) in &a.tables {
        let Some(u) = b.tables.get(tn) else { continue };
        let retyped = retyped.contains(tn);
        for (iname, i) in &t.indexes {
            if i.constraint || i.inherited {
                continue;
            }
            let keep = u.indexes.get(iname).is_some_and(|j| j.definition == i.definition && !j.constraint)
                && !(retyped && has_typed_expressions(i));
            if !keep {
                s.push(format!("DROP INDEX {}", QName::new(&tn.schema, iname)));
            }
        }
    }
    for (vn, v) in &a.views {
        let Some(w) = b.views.get(vn) else { continue };
        if rebuild_views.contains(vn) {
            continue;
        }
        for (iname, i) in &v.indexes {
            if w.indexes.get(iname).is_none_or(|j| j.definition != i.definition) {
                s.push(format!("DROP INDEX {}", QName::new(&vn.schema, iname)));
            }
        }
    }
    // Functions that go and take or return the row type of a table that goes: before it.
    for (sig, f) in by_kind(&a.functions, true) {
        if !b.functions.contains_key(sig) && uses_type(f, &gone_rows) {
            s.push(format!("DROP {} {}", f.keyword(), f.signature()));
        }
    }
    // Dropping a table or column drops the sequences it owns: detach those that stay (a
    // renamed table's sequence keeps its name) so they survive; ownership is set again below.
    for (n, q) in &a.sequences {
        let Some((t, c)) = &q.owned_by else { continue };
        let column_goes = b.tables.get(t).is_none_or(|bt| bt.column(c).is_none());
        if column_goes && b.sequences.contains_key(n) {
            s.push(format!("ALTER SEQUENCE {n} OWNED BY NONE"));
        }
    }
    // Tables that go: children before parents; a partition goes with its parent.
    let mut gone: Vec<&QName> = a.tables.keys().filter(|n| !b.tables.contains_key(*n)).collect();
    gone.sort_by_key(|n| (std::cmp::Reverse(table_depth(a, n)), (*n).clone()));
    for tn in gone {
        let t = &a.tables[tn];
        let parent_dropped = t.partition_of.as_ref().is_some_and(|(p, _)| !b.tables.contains_key(p));
        if !parent_dropped {
            let kw = if t.kind == TableKind::Foreign { "FOREIGN TABLE" } else { "TABLE" };
            s.push(format!("DROP {kw} {tn}"));
        }
    }
    // A column that stays on a child while its parent drops it must become local first:
    // re-attaching the child makes all its columns local.
    for (tn, t) in &a.tables {
        let Some(u) = b.tables.get(tn) else { continue };
        for p in t.inherits.iter().filter(|p| u.inherits.contains(p)) {
            let (Some(pa), Some(pb)) = (a.tables.get(p), b.tables.get(p)) else { continue };
            let orphaned = pa.columns.iter().any(|c| pb.column(&c.name).is_none() && u.column(&c.name).is_some());
            if orphaned {
                s.push(format!("ALTER TABLE {tn} NO INHERIT {p}"));
                s.push(format!("ALTER TABLE {tn} INHERIT {p}"));
            }
        }
    }
    // Partitions that move to another parent or bound are detached here, attached later.
    for (tn, t) in &a.tables {
        let Some(u) = b.tables.get(tn) else { continue };
        if let Some((parent, _)) = &t.partition_of {
            if t.partition_of != u.partition_of && b.tables.contains_key(parent) {
                s.push(format!("ALTER TABLE {parent} DETACH PARTITION {tn}"));
            }
        }
    }
    for (tn, t) in &a.tables {
        let Some(u) = b.tables.get(tn) else { continue };
        for c in &t.columns {
            if !c.inherited && u.column(&c.name).is_none() {
                s.push(format!("ALTER TABLE {tn} DROP COLUMN {}", qi(&c.name)));
            }
        }
    }
    // Defaults that change go now: they may use sequences or types dropped at the end.
    for (tn, t) in &a.tables {
        let Some(u) = b.tables.get(tn) else { continue };
        for c in &t.columns {
            if let Some(d) = u.column(&c.name) {
                let retyped = c.type_name != d.type_name || c.collation != d.collation;
                if c.default.is_some() && (c.default != d.default || retyped) && !c.inherited {
                    s.push(format!("ALTER TABLE {tn} ALTER COLUMN {} DROP DEFAULT", qi(&c.name)));
                }
            }
        }
    }
    // Functions whose result or kind changes cannot be replaced in place; nor can those that
    // use a type that is rebuilt.
    let rebuilt = rebuilt_types(a, b);
    for (sig, f) in by_kind(&a.functions, true) {
        let changed = b.functions.get(sig).is_some_and(|g| g.result != f.result || g.kind != f.kind);
        let dropped_already = !b.functions.contains_key(sig) && uses_type(f, &gone_rows);
        if (changed || uses_type(f, &renewed)) && !dropped_already {
            s.push(format!("DROP {} {}", f.keyword(), f.signature()));
        }
    }
    for n in &rebuilt {
        s.push(format!("DROP {} {n}", type_keyword(&a.types[n])));
    }

    // ---------- Phase 2: creates and alters, dependencies first ----------
    for (n, x) in &b.schemas {
        match a.schemas.get(n) {
            None => {
                s.push(format!("CREATE SCHEMA {}", qi(n)));
                if x.comment.is_some() {
                    s.push(comment_sql(&format!("SCHEMA {}", qi(n)), &x.comment));
                }
                grant_sql(&format!("SCHEMA {}", qi(n)), &[], &x.grants, None, s);
            }
            Some(y) => {
                if y.comment != x.comment {
                    s.push(comment_sql(&format!("SCHEMA {}", qi(n)), &x.comment));
                }
                grant_sql(&format!("SCHEMA {}", qi(n)), &y.grants, &x.grants, None, s);
            }
        }
    }
    for (n, e) in &b.extensions {
        match a.extensions.get(n) {
            None => s.push(format!(
                "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {} VERSION {}",
                qi(n),
                qi(&e.schema),
                ql(&e.version)
            )),
            Some(f) => {
                if f.version != e.version && version_lt(&e.version, &f.version) {
                    // Extensions have no downgrade path: reinstall at the older version.
                    s.push(format!("DROP EXTENSION {}", qi(n)));
                    s.push(format!(
                        "CREATE EXTENSION {} WITH SCHEMA {} VERSION {}",
                        qi(n),
                        qi(&e.schema),
                        ql(&e.version)
                    ));
                } else if f.version != e.version {
                    s.push(format!("ALTER EXTENSION {} UPDATE TO {}", qi(n), ql(&e.version)));
                }
                if f.schema != e.schema {
                    s.push(format!("ALTER EXTENSION {} SET SCHEMA {}", qi(n), qi(&e.schema)));
                }
            }
        }
    }
    for (n, c) in &b.collations {
        if a.collations.get(n) != Some(c) {
            if a.collations.contains_key(n) {
                s.push(format!("DROP COLLATION {n}"));
            }
            let mut opts = vec![format!("locale = {}", ql(&c.locale))];
            if c.provider != "default" {
                opts.insert(0, format!("provider = {}", c.provider));
            }
            if !c.deterministic {
                opts.push("deterministic = false".into());
            }
            s.push(format!("CREATE COLLATION {n} ({})", opts.join(", ")));
        }
    }
    render_types(a, b, s);
    for (n, q) in &b.sequences {
        let opts = sequence_options(q);
        match a.sequences.get(n) {
            None => s.push(create_sequence(n, q)),
            Some(p) => {
                let (mut p2, mut q2) = (p.clone(), q.clone());
                for x in [&mut p2, &mut q2] {
                    x.owned_by = None;
                    x.comment = None;
                    x.grants.clear();
                }
                if p2 != q2 {
                    s.push(format!("ALTER SEQUENCE {n} {opts}"));
                }
            }
        }
    }
    // Functions taking or returning the row type of a new table come after the tables.
    let new_rows: Vec<QName> = b.tables.keys().filter(|n| !a.tables.contains_key(*n)).cloned().collect();
    let mut after_tables = Vec::new();
    for (sig, f) in by_kind(&b.functions, false) {
        match a.functions.get(sig) {
            Some(g)
                if g.definition == f.definition
                    && g.result == f.result
                    && g.kind == f.kind
                    && !uses_type(g, &renewed) => {}
            _ if uses_type(f, &new_rows) => after_tables.push(trim_semicolon(&f.definition).to_string()),
            _ => s.push(trim_semicolon(&f.definition).to_string()),
        }
    }
    render_tables(a, b, &retyped, &rekeyed, s);
    for f in after_tables {
        s.push(f);
    }
    // Sequences owned by columns, once the columns exist.
    for (n, q) in &b.sequences {
        let before = a.sequences.get(n).and_then(|p| p.owned_by.clone());
        if before != q.owned_by {
            match &q.owned_by {
                Some((t, c)) => s.push(format!("ALTER SEQUENCE {n} OWNED BY {t}.{}", qi(c))),
                None => s.push(format!("ALTER SEQUENCE {n} OWNED BY NONE")),
            }
        }
    }
    // Views in dependency order.
    let create_views: BTreeSet<QName> =
        b.views.keys().filter(|n| !a.views.contains_key(*n) || rebuild_views.contains(*n)).cloned().collect();
    for n in ordered_views(&create_views, &b.views) {
        let v = &b.views[&n];
        let with = if v.options.is_empty() { String::new() } else { format!(" WITH ({})", v.options.join(", ")) };
        if v.materialized {
            let data = if v.populated { "WITH DATA" } else { "WITH NO DATA" };
            s.push(format!("CREATE MATERIALIZED VIEW {n}{with} AS {} {data}", trim_semicolon(&v.definition)));
        } else {
            s.push(format!("CREATE VIEW {n}{with} AS {}", trim_semicolon(&v.definition)));
        }
    }
    for (n, v) in &b.views {
        let fresh = create_views.contains(n);
        let old = if fresh { None } else { a.views.get(n) };
        for (iname, i) in &v.indexes {
            if old.and_then(|o| o.indexes.get(iname)).is_none_or(|j| j.definition != i.definition) {
                s.push(i.definition.clone());
            }
        }
        let kw = if v.materialized { "MATERIALIZED VIEW" } else { "VIEW" };
        if old.map(|o| &o.comment) != Some(&v.comment) && (v.comment.is_some() || old.is_some()) {
            s.push(comment_sql(&format!("{kw} {n}"), &v.comment));
        }
        for (col, cm) in &v.column_comments {
            if old.and_then(|o| o.column_comments.get(col)) != Some(cm) {
                s.push(comment_sql(&format!("COLUMN {n}.{}", qi(col)), &Some(cm.clone())));
            }
        }
        if let Some(o) = old {
            for col in o.column_comments.keys().filter(|c| !v.column_comments.contains_key(*c)) {
                s.push(comment_sql(&format!("COLUMN {n}.{}", qi(col)), &None));
            }
        }
        grant_sql(&format!("TABLE {n}"), old.map(|o| o.grants.as_slice()).unwrap_or(&[]), &v.grants, None, s);
        if let Some(o) = old {
            if o.materialized && o.populated != v.populated && v.populated {
                s.push(format!("REFRESH MATERIALIZED VIEW {n}"));
            }
        }
    }
    // Triggers and policies last: they need functions and tables.
    for (tn, t) in &b.tables {
        let u = a.tables.get(tn);
        let retyped = retyped.contains(tn);
        for (gn, g) in &t.triggers {
            if g.inherited {
                continue;
            }
            let old = u.and_then(|u| u.triggers.get(gn));
            let same_def = old.is_some_and(|h| h.definition == g.definition) && !(retyped && names_columns(g));
            if !same_def {
                s.push(g.definition.clone());
            }
            let was = if same_def { old.map(|h| h.enabled.as_str()).unwrap_or("O") } else { "O" };
            if was != g.enabled {
                s.push(format!("ALTER TABLE {tn} {} TRIGGER {}", enable_clause(&g.enabled), qi(gn)));
            }
            if comment_due(same_def, old.map(|h| &h.comment), &g.comment) {
                s.push(comment_sql(&format!("TRIGGER {} ON {tn}", qi(gn)), &g.comment));
            }
        }
        for (pn, p) in &t.policies {
            if u.and_then(|u| u.policies.get(pn)) == Some(p) && !retyped {
                continue;
            }
            let mut d = format!(
                "CREATE POLICY {} ON {tn} AS {} FOR {} TO {}",
                qi(pn),
                if p.permissive { "PERMISSIVE" } else { "RESTRICTIVE" },
                p.command,
                p.roles
                    .iter()
                    .map(|r| if r == "public" { "PUBLIC".to_string() } else { qi(r) })
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some(q) = &p.using {
                d.push_str(&format!(" USING ({q})"));
            }
            if let Some(w) = &p.with_check {
                d.push_str(&format!(" WITH CHECK ({w})"));
            }
            s.push(d);
        }
    }
    for (k, r) in &b.rules {
        let old = a.rules.get(k);
        let same_def = old.is_some_and(|o| o.definition == r.definition) && !redo_rule(r);
        if !same_def {
            s.push(r.definition.clone());
        }
        let was = if same_def { old.map(|o| o.enabled.as_str()).unwrap_or("O") } else { "O" };
        if was != r.enabled {
            s.push(format!("ALTER TABLE {} {} RULE {}", r.relation, enable_clause(&r.enabled), qi(&r.name)));
        }
        if comment_due(same_def, old.map(|o| &o.comment), &r.comment) {
            s.push(comment_sql(&format!("RULE {} ON {}", qi(&r.name), r.relation), &r.comment));
        }
    }
    // ---------- Phase 3: what nothing uses any more ----------
    for (sig, f) in by_kind(&a.functions, true) {
        if !b.functions.contains_key(sig) && !uses_type(f, &gone_rows) && !uses_type(f, &renewed) {
            s.push(format!("DROP {} {}", f.keyword(), f.signature()));
        }
    }
    for n in a.sequences.keys() {
        if !b.sequences.contains_key(n) {
            s.push(format!("DROP SEQUENCE IF EXISTS {n}"));
        }
    }
    for (n, t) in &a.types {
        if !b.types.contains_key(n) {
            s.push(format!("DROP {} {n}", type_keyword(t)));
        }
    }
    for n in a.collations.keys() {
        if !b.collations.contains_key(n) {
            s.push(format!("DROP COLLATION {n}"));
        }
    }
    for n in a.schemas.keys() {
        if !b.schemas.contains_key(n) {
            s.push(format!("DROP SCHEMA {}", qi(n)));
        }
    }
    for n in a.extensions.keys() {
        if !b.extensions.contains_key(n) {
            s.push(format!("DROP EXTENSION {}", qi(n)));
        }
    }

    // Comments and grants on functions, sequences, types.
    for (sig, f) in &b.functions {
        let old = a.functions.get(sig).filter(|g| g.result == f.result && g.kind == f.kind);
        if old.map(|g| &g.comment) != Some(&f.comment) && (f.comment.is_some() || old.is_some()) {
            s.push(comment_sql(&format!("{} {}", f.keyword(), f.signature()), &f.comment));
        }
        let routine = if f.kind == "procedure" { "PROCEDURE" } else { "FUNCTION" };
        if f.kind != "aggregate" {
            grant_sql(
                &format!("{routine} {}", f.signature()),
                old.map(|g| g.grants.as_slice()).unwrap_or(&default_function_grants()),
                &f.grants,
                None,
                s,
            );
        }
    }
    for (n, q) in &b.sequences {
        let old = a.sequences.get(n);
        if old.map(|p| &p.comment) != Some(&q.comment) && (q.comment.is_some() || old.is_some()) {
            s.push(comment_sql(&format!("SEQUENCE {n}"), &q.comment));
        }
        grant_sql(&format!("SEQUENCE {n}"), old.map(|p| p.grants.as_slice()).unwrap_or(&[]), &q.grants, None, s);
    }
    create_others(a, b, s);
}

/// Kinds of [`OtherObject`] in the order they are dropped (dependents first); created in the
/// reverse order.
const OTHER_DROP_ORDER: &[&str] = &[
    "publication table",
    "publication schema",
    "user mapping",
    "event trigger",
    "statistics object",
    "cast",
    "operator class",
    "operator family",
    "operator",
    "text search configuration",
    "text search dictionary",
    "server",
    "foreign-data wrapper",
    "publication",
    "language",
    "access method",
];

fn other_rank(o: &OtherObject) -> usize {
    OTHER_DROP_ORDER.iter().position(|k| *k == o.kind).unwrap_or(OTHER_DROP_ORDER.len())
}

/// Publications that are dropped and created again: their tables must be added back.
fn rebuilt_publications(a: &Snapshot, b: &Snapshot) -> BTreeSet<String> {
    b.others
        .iter()
        .filter(|(k, o)| o.kind == "publication" && a.others.get(*k).is_none_or(|p| p.definition != o.definition))
        .map(|(_, o)| o.identity.clone())
        .collect()
}

fn member_of(o: &OtherObject, publications: &BTreeSet<String>) -> bool {
    o.member && publications.iter().any(|p| o.identity.starts_with(&format!("{p} ")))
}

/// Drop the other objects that go or change (the ones without a DROP form stay and show in
/// the proof as differences a human resolves).
fn drop_others(a: &Snapshot, b: &Snapshot, s: &mut Script) {
    let mut gone: Vec<&OtherObject> = a
        .others
        .iter()
        .filter(|(k, o)| o.default_acl.is_none() && b.others.get(*k).is_none_or(|p| p.definition != o.definition))
        .map(|(_, o)| o)
        .collect();
    gone.sort_by_key(|o| other_rank(o));
    for o in gone {
        if let Some(d) = &o.drop {
            s.push(d.clone());
        }
    }
    for revoke in default_privilege_changes(a, b).0 {
        s.push(revoke);
    }
}

/// Create the other objects that are new or changed, set the state of the ones that only
/// changed state, and put default privileges back entry by entry.
fn create_others(a: &Snapshot, b: &Snapshot, s: &mut Script) {
    let rebuilt = rebuilt_publications(a, b);
    let mut new: Vec<&OtherObject> = Vec::new();
    for (k, o) in &b.others {
        if o.default_acl.is_some() {
            continue;
        }
        match a.others.get(k) {
            Some(p) if p.definition == o.definition && !member_of(o, &rebuilt) => {
                if p.state != o.state {
                    if let Some(alter) = &o.alter {
                        s.push(alter.clone());
                    }
                }
            }
            _ => new.push(o),
        }
    }
    new.sort_by_key(|o| std::cmp::Reverse(other_rank(o)));
    for o in new {
        if let Some(c) = &o.create {
            s.push(c.clone());
        }
    }
    for grant in default_privilege_changes(a, b).1 {
        s.push(grant);
    }
}

/// Default privileges from what is in force in `a` to what should be in `b`, for each entry
/// either side has (an entry that is missing means the defaults that hold without it), as
/// (REVOKEs, GRANTs): the REVOKEs run with the drops (before the schema they name can go),
/// the GRANTs at the end (after it is back).
fn default_privilege_changes(a: &Snapshot, b: &Snapshot) -> (Vec<String>, Vec<String>) {
    let mut out = (Vec::new(), Vec::new());
    let keys: BTreeSet<&String> =
        a.others.iter().chain(b.others.iter()).filter(|(_, o)| o.default_acl.is_some()).map(|(k, _)| k).collect();
    for k in keys {
        let (x, y) = (a.others.get(k), b.others.get(k));
        let acl = |o: Option<&OtherObject>, other: Option<&OtherObject>| -> Vec<String> {
            match (o.and_then(|o| o.default_acl.as_ref()), other.and_then(|o| o.default_acl.as_ref())) {
                (Some((now, _)), _) => now.clone(),
                (None, Some((_, base))) => base.clone(),
                (None, None) => vec![],
            }
        };
        let (from, to) = (acl(x, y), acl(y, x));
        if from == to {
            continue;
        }
        let Some(identity) = x.or(y).map(|o| o.identity.as_str()) else { continue };
        let split = identity.rsplit_once(" ON ").or_else(|| identity.strip_prefix("ON ").map(|o| ("", o)));
        let Some((prefix, objects)) = split else { continue };
        default_privileges_sql(prefix, objects, &from, &to, &mut out);
    }
    out
}

/// GRANT and REVOKE statements of ALTER DEFAULT PRIVILEGES taking `from` to `to` (entries
/// `grantee=PRIVILEGE`, `*` for WITH GRANT OPTION).
fn default_privileges_sql(
    prefix: &str,
    objects: &str,
    from: &[String],
    to: &[String],
    (revokes, grants): &mut (Vec<String>, Vec<String>),
) {
    let parse = |e: &String| -> (String, String, bool) {
        let (g, p) = e.rsplit_once('=').unwrap_or((e.as_str(), ""));
        (g.to_string(), p.trim_end_matches('*').to_string(), p.ends_with('*'))
    };
    let f: Vec<_> = from.iter().map(parse).collect();
    let t: Vec<_> = to.iter().map(parse).collect();
    let at = format!("ALTER DEFAULT PRIVILEGES{}{prefix}", if prefix.is_empty() { "" } else { " " });
    for (g, p, opt) in &f {
        match t.iter().find(|(h, q, _)| h == g && q == p) {
            None => revokes.push(format!("{at} REVOKE {p} ON {objects} FROM {g}")),
            Some((_, _, false)) if *opt => {
                revokes.push(format!("{at} REVOKE GRANT OPTION FOR {p} ON {objects} FROM {g}"))
            }
            _ => {}
        }
    }
    for (g, p, opt) in &t {
        let had = f.iter().find(|(h, q, _)| h == g && q == p);
        if had.is_none() || (*opt && had.is_some_and(|x| !x.2)) {
            let with = if *opt { " WITH GRANT OPTION" } else { "" };
            grants.push(format!("{at} GRANT {p} ON {objects} TO {g}{with}"));
        }
    }
}

/// The parameters of a sequence, as CREATE and ALTER SEQUENCE take them.
fn sequence_options(q: &Sequence) -> String {
    format!(
        "AS {} INCREMENT BY {} MINVALUE {} MAXVALUE {} START WITH {} CACHE {} {}",
        q.data_type,
        q.increment,
        q.min,
        q.max,
        q.start,
        q.cache,
        if q.cycle { "CYCLE" } else { "NO CYCLE" }
    )
}

/// `CREATE SEQUENCE` for a sequence as the snapshot has it (ownership, comment and grants
/// apart).
pub fn create_sequence(n: &QName, q: &Sequence) -> String {
    format!("CREATE SEQUENCE {n} {}", sequence_options(q))
}

/// Compare dotted versions numerically (`1.10` > `1.9`).
fn version_lt(a: &str, b: &str) -> bool {
    let parts = |v: &str| v.split('.').map(|p| p.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
    parts(a) < parts(b)
}

/// A new function's default privileges: EXECUTE for PUBLIC.
fn default_function_grants() -> Vec<String> {
    vec!["PUBLIC=EXECUTE".to_string()]
}

fn constraint_same(a: &Constraint, b: &Constraint) -> bool {
    // NOT VALID → valid is a VALIDATE, not a drop.
    let strip = |d: &str| d.trim_end_matches(" NOT VALID").to_string();
    a.kind == b.kind && strip(&a.definition) == strip(&b.definition) && (a.validated || !b.validated)
}

fn render_types(a: &Snapshot, b: &Snapshot, s: &mut Script) {
    // Order: enums and ranges, then domains (may be over enums), then composites.
    let rank = |t: &TypeDef| match t {
        TypeDef::Enum { .. } | TypeDef::Range { .. } => 0,
        TypeDef::Domain { .. } => 1,
        TypeDef::Composite { .. } => 2,
    };
    let mut names: Vec<(&QName, &TypeDef)> = b.types.iter().collect();
    names.sort_by_key(|(n, t)| (rank(t), (*n).clone()));
    for (n, t) in names {
        let Some(old) = a.types.get(n) else {
            create_type(n, t, s);
            continue;
        };
        match (old, t) {
            (TypeDef::Enum { labels: x, .. }, TypeDef::Enum { labels: y, .. }) if x != y => {
                if enum_only_adds(x, y) {
                    for (i, l) in y.iter().enumerate() {
                        if x.contains(l) {
                            continue;
                        }
                        let pos = match y[i + 1..].iter().find(|n| x.contains(n)) {
                            Some(next) => format!(" BEFORE {}", ql(next)),
                            None => String::new(),
                        };
                        s.push(format!("ALTER TYPE {n} ADD VALUE IF NOT EXISTS {}{pos}", ql(l)));
                    }
                } else {
                    // Labels removed or reordered: build a new type and convert columns to it.
                    let tmp = QName::new(&n.schema, format!("{}__migsafe_old", n.name));
                    s.push(format!("ALTER TYPE {n} RENAME TO {}", qi(&tmp.name)));
                    create_type(n, t, s);
                    for (tn, c) in columns_of_type(b, n) {
                        let arr = if c.type_name.ends_with("[]") { "[]" } else { "" };
                        if c.default.is_some() {
                            s.push(format!("ALTER TABLE {tn} ALTER COLUMN {} DROP DEFAULT", qi(&c.name)));
                        }
                        s.push(format!(
                            "ALTER TABLE {tn} ALTER COLUMN {c} TYPE {n}{arr} USING {c}::text{arr}::{n}{arr}",
                            c = qi(&c.name)
                        ));
                        if let Some(d) = &c.default {
                            s.push(format!("ALTER TABLE {tn} ALTER COLUMN {} SET DEFAULT {d}", qi(&c.name)));
                        }
                    }
                    s.push(format!("DROP TYPE {tmp}"));
                }
            }
            (
                TypeDef::Domain { not_null: nn0, default: d0, constraints: c0, .. },
                TypeDef::Domain { not_null: nn1, default: d1, constraints: c1, .. },
            ) if !needs_type_rebuild(old, t) => {
                if d0 != d1 {
                    match d1 {
                        Some(d) => s.push(format!("ALTER DOMAIN {n} SET DEFAULT {d}")),
                        None => s.push(format!("ALTER DOMAIN {n} DROP DEFAULT")),
                    }
                }
                if nn0 != nn1 {
                    s.push(format!("ALTER DOMAIN {n} {} NOT NULL", if *nn1 { "SET" } else { "DROP" }));
                }
                for (cn, (def, _)) in c0 {
                    if c1.get(cn).is_none_or(|(d, _)| d != def) {
                        s.push(format!("ALTER DOMAIN {n} DROP CONSTRAINT {}", qi(cn)));
                    }
                }
                for (cn, (def, valid)) in c1 {
                    match c0.get(cn) {
                        Some((d, v)) if d == def => {
                            if !v && *valid {
                                s.push(format!("ALTER DOMAIN {n} VALIDATE CONSTRAINT {}", qi(cn)));
                            }
                        }
                        _ => s.push(format!("ALTER DOMAIN {n} ADD CONSTRAINT {} {def}", qi(cn))),
                    }
                }
            }
            _ if needs_type_rebuild(old, t) => {
                if columns_of_type(b, n).is_empty() {
                    create_type(n, t, s);
                } else {
                    s.push(format!("-- MANUAL: type {n} changed shape while columns use it; convert them by hand"));
                }
                continue;
            }
            _ => {}
        }
        if type_comment(old) != type_comment(t) {
            s.push(comment_sql(&format!("{} {n}", type_keyword(t)), type_comment(t)));
        }
    }
}

fn table_ddl(tn: &QName, t: &Table) -> String {
    let kw = match (t.kind, t.persistence.as_str()) {
        (TableKind::Foreign, _) => "CREATE FOREIGN TABLE",
        (_, "unlogged") => "CREATE UNLOGGED TABLE",
        _ => "CREATE TABLE",
    };
    let cols: Vec<String> = t.columns.iter().filter(|c| !c.inherited).map(|c| c.definition(true)).collect();
    let mut d = match &t.partition_of {
        Some((parent, bound)) => {
            let body = if cols.is_empty() { String::new() } else { format!(" ({})", cols.join(", ")) };
            format!("{kw} {tn} PARTITION OF {parent}{body} {bound}")
        }
        None => format!("{kw} {tn} ({})", cols.join(", ")),
    };
    if !t.inherits.is_empty() {
        let p: Vec<String> = t.inherits.iter().map(|q| q.to_string()).collect();
        d.push_str(&format!(" INHERITS ({})", p.join(", ")));
    }
    if let Some(k) = &t.partition_key {
        d.push_str(&format!(" PARTITION BY {k}"));
    }
    if !t.options.is_empty() {
        d.push_str(&format!(" WITH ({})", t.options.join(", ")));
    }
    if let Some(f) = &t.foreign {
        let (server, opts) = f.split_once(' ').unwrap_or((f.as_str(), ""));
        d.push_str(&format!(" SERVER {}", qi(server)));
        if !opts.is_empty() {
            let o: Vec<String> = opts
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    format!("{} {}", qi(k), ql(v))
                })
                .collect();
            d.push_str(&format!(" OPTIONS ({})", o.join(", ")));
        }
    }
    d
}

/// How many partition/inheritance parents a table has above it.
fn table_depth(snap: &Snapshot, n: &QName) -> usize {
    let mut d = 0;
    let mut cur = snap.tables.get(n);
    while let Some(t) = cur {
        match t.partition_of.as_ref().map(|(p, _)| p).or(t.inherits.first()) {
            Some(p) if d < 32 => {
                d += 1;
                cur = snap.tables.get(p);
            }
            _ => break,
        }
    }
    d
}

/// `SET UNLOGGED` / `SET LOGGED` in an order PostgreSQL accepts: a table becomes logged only
/// after every table it references, and unlogged only after every table referencing it.
/// Foreign keys that tie the changing tables in a cycle are dropped for the change and added
/// back after it. (Runs between the constraint drops and adds, so the foreign keys present
/// are those both snapshots have.)
fn render_persistence(a: &Snapshot, b: &Snapshot, s: &mut Script) {
    for to_logged in [false, true] {
        let target = if to_logged { "permanent" } else { "unlogged" };
        let changing: BTreeSet<&QName> = b
            .tables
            .iter()
            .filter(|(n, u)| {
                u.persistence == target && a.tables.get(*n).is_some_and(|t| t.persistence != u.persistence)
            })
            .map(|(n, _)| n)
            .collect();
        if changing.is_empty() {
            continue;
        }
        // Foreign keys among the changing tables that exist at this point of the script:
        // (referencing table, constraint name, referenced table).
        let mut fks: Vec<(&QName, &String, &QName)> = Vec::new();
        for tn in &changing {
            let (t, u) = (&a.tables[*tn], &b.tables[*tn]);
            for (cn, c) in &t.constraints {
                let Some(r) = c.references.as_ref() else { continue };
                if c.kind == "f"
                    && r != *tn
                    && changing.contains(r)
                    && u.constraints.get(cn).is_some_and(|o| constraint_same(c, o))
                {
                    fks.push((tn, cn, r));
                }
            }
        }
        // (first, then): `first` must change before `then`.
        let edges: Vec<(&QName, &QName)> =
            fks.iter().map(|fk| if to_logged { (fk.2, fk.0) } else { (fk.0, fk.2) }).collect();
        let mut order: Vec<&QName> = Vec::new();
        let mut left: BTreeSet<&QName> = changing.clone();
        loop {
            let ready: Vec<&QName> = left
                .iter()
                .copied()
                .filter(|n| !edges.iter().any(|(first, then)| then == n && left.contains(first)))
                .collect();
            if ready.is_empty() {
                break;
            }
            for n in ready {
                left.remove(n);
                order.push(n);
            }
        }
        // What is left is tied in cycles: drop their foreign keys around the change.
        let cut: Vec<&(&QName, &String, &QName)> =
            fks.iter().filter(|fk| left.contains(fk.0) && left.contains(fk.2)).collect();
        for fk in &cut {
            s.push(format!("ALTER TABLE {} DROP CONSTRAINT {}", fk.0, qi(fk.1)));
        }
        let kw = if to_logged { "LOGGED" } else { "UNLOGGED" };
        for n in order.into_iter().chain(left.iter().copied()) {
            s.push(format!("ALTER TABLE {n} SET {kw}"));
        }
        for fk in &cut {
            s.push(format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {}",
                fk.0,
                qi(fk.1),
                b.tables[fk.0].constraints[fk.1].definition
            ));
        }
    }
}

/// The `USING` expression that converts column `col` (SQL text) from type `from` to `to`;
/// `via` is `::text` (or `::text[]`) when one side is a user type with no direct cast. bytea
/// casts to nothing: values moved into it are text encoded as UTF-8 bytes (`convert_to`), and
/// go back the same way (`convert_from`).
pub fn retype_using(col: &str, from: &str, to: &str, via: &str) -> String {
    match (from == "bytea", to == "bytea") {
        (true, false) => format!("convert_from({col}, 'UTF8')::{to}"),
        (false, true) => format!("convert_to({col}::text, 'UTF8')"),
        _ => format!("{col}{via}::{to}"),
    }
}

fn render_tables(a: &Snapshot, b: &Snapshot, retyped: &BTreeSet<QName>, rekeyed: &BTreeSet<QName>, s: &mut Script) {
    // New tables: parents before partitions and children.
    let mut new_tables: Vec<&QName> = b.tables.keys().filter(|n| !a.tables.contains_key(*n)).collect();
    new_tables.sort_by_key(|n| (table_depth(b, n), (*n).clone()));
    for tn in &new_tables {
        s.push(table_ddl(tn, &b.tables[*tn]));
    }
    render_persistence(a, b, s);
    // Existing tables: table properties and columns.
    for (tn, u) in &b.tables {
        let Some(t) = a.tables.get(tn) else { continue };
        if t.options != u.options {
            let gone: Vec<String> = t
                .options
                .iter()
                .map(|o| o.split('=').next().unwrap_or("").to_string())
                .filter(|k| !u.options.iter().any(|o| o.split('=').next() == Some(k.as_str())))
                .collect();
            if !gone.is_empty() {
                s.push(format!("ALTER TABLE {tn} RESET ({})", gone.join(", ")));
            }
            if !u.options.is_empty() {
                s.push(format!("ALTER TABLE {tn} SET ({})", u.options.join(", ")));
            }
        }
        if t.partition_of != u.partition_of {
            if let Some((parent, bound)) = &u.partition_of {
                s.push(format!("ALTER TABLE {parent} ATTACH PARTITION {tn} {bound}"));
            }
        }
        for p in u.inherits.iter().filter(|p| !t.inherits.contains(p)) {
            s.push(format!("ALTER TABLE {tn} INHERIT {p}"));
        }
        for p in t.inherits.iter().filter(|p| !u.inherits.contains(p)) {
            s.push(format!("ALTER TABLE {tn} NO INHERIT {p}"));
        }
        for c in &u.columns {
            if c.inherited {
                continue;
            }
            match t.column(&c.name) {
                None => s.push(format!("ALTER TABLE {tn} ADD COLUMN {}", c.definition(true))),
                Some(old) => alter_column(tn, old, c, a, b, s),
            }
        }
    }
    // Constraints other than foreign keys, then indexes, then foreign keys.
    for fk_pass in [false, true] {
        for (tn, u) in &b.tables {
            let t = a.tables.get(tn);
            let retyped = retyped.contains(tn);
            for (cn, c) in &u.constraints {
                if c.inherited || (c.kind == "f") != fk_pass {
                    continue;
                }
                match t.and_then(|t| t.constraints.get(cn)) {
                    Some(old)
                        if constraint_same(old, c)
                            && !(retyped && has_typed_constants(old))
                            && !fk_on(rekeyed, old) =>
                    {
                        if !old.validated && c.validated {
                            s.push(format!("ALTER TABLE {tn} VALIDATE CONSTRAINT {}", qi(cn)));
                        }
                        if old.comment != c.comment {
                            s.push(comment_sql(&format!("CONSTRAINT {} ON {tn}", qi(cn)), &c.comment));
                        }
                    }
                    _ => {
                        s.push(format!("ALTER TABLE {tn} ADD CONSTRAINT {} {}", qi(cn), c.definition));
                        if c.comment.is_some() {
                            s.push(comment_sql(&format!("CONSTRAINT {} ON {tn}", qi(cn)), &c.comment));
                        }
                    }
                }
            }
        }
        if fk_pass {
            break;
        }
        for (tn, u) in &b.tables {
            let t = a.tables.get(tn);
            let retyped = retyped.contains(tn);
            for (iname, i) in &u.indexes {
                if i.constraint || i.inherited {
                    continue;
                }
                let old = t.and_then(|t| t.indexes.get(iname)).filter(|j| {
                    j.definition == i.definition && !j.constraint && !(retyped && has_typed_expressions(j))
                });
                let qn = QName::new(&tn.schema, iname);
                if old.is_none() {
                    s.push(i.definition.clone());
                }
                if old.map(|j| &j.comment) != Some(&i.comment) && (i.comment.is_some() || old.is_some()) {
                    s.push(comment_sql(&format!("INDEX {qn}"), &i.comment));
                }
            }
            // Comments on constraint-backing indexes.
            for (iname, i) in u.indexes.iter().filter(|(_, i)| i.constraint && !i.inherited) {
                let old = t.and_then(|t| t.indexes.get(iname)).map(|j| &j.comment);
                if old != Some(&i.comment) && (i.comment.is_some() || old.is_some()) {
                    s.push(comment_sql(&format!("INDEX {}", QName::new(&tn.schema, iname)), &i.comment));
                }
            }
        }
    }
    // Row level security, replica identity, comments, grants.
    for (tn, u) in &b.tables {
        let t = a.tables.get(tn);
        let (rls0, force0) = t.map(|t| t.rls).unwrap_or((false, false));
        if rls0 != u.rls.0 {
            s.push(format!("ALTER TABLE {tn} {} ROW LEVEL SECURITY", if u.rls.0 { "ENABLE" } else { "DISABLE" }));
        }
        if force0 != u.rls.1 {
            s.push(format!("ALTER TABLE {tn} {} ROW LEVEL SECURITY", if u.rls.1 { "FORCE" } else { "NO FORCE" }));
        }
        let ri0 = t.map(|t| t.replica_identity.as_str()).unwrap_or("d");
        if ri0 != u.replica_identity {
            let ri = match u.replica_identity.as_str() {
                "n" => "NOTHING".to_string(),
                "f" => "FULL".to_string(),
                x if x.starts_with("i:") => format!("USING INDEX {}", qi(&x[2..])),
                _ => "DEFAULT".to_string(),
            };
            s.push(format!("ALTER TABLE {tn} REPLICA IDENTITY {ri}"));
        }
        if t.map(|t| &t.comment) != Some(&u.comment) && (u.comment.is_some() || t.is_some()) {
            s.push(comment_sql(&format!("TABLE {tn}"), &u.comment));
        }
        grant_sql(&format!("TABLE {tn}"), t.map(|t| t.grants.as_slice()).unwrap_or(&[]), &u.grants, None, s);
        for c in &u.columns {
            let old = t.and_then(|t| t.column(&c.name));
            column_settings(tn, c, old.map(|o| o.settings.as_slice()).unwrap_or(&[]), b.server_version, s);
            if old.map(|o| &o.comment) != Some(&c.comment) && (c.comment.is_some() || old.is_some()) {
                s.push(comment_sql(&format!("COLUMN {tn}.{}", qi(&c.name)), &c.comment));
            }
            grant_sql(
                &format!("TABLE {tn}"),
                old.map(|o| o.grants.as_slice()).unwrap_or(&[]),
                &c.grants,
                Some(&qi(&c.name)),
                s,
            );
        }
    }
}

/// Set a column's storage, compression, statistics target and attribute options from `before`
/// to what `c` has, resetting the ones it no longer has.
fn column_settings(tn: &QName, c: &Column, before: &[String], version: u32, s: &mut Script) {
    if before == c.settings.as_slice() {
        return;
    }
    let at = format!("ALTER TABLE {tn} ALTER COLUMN {}", qi(&c.name));
    let split = |x: &str| x.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).unwrap_or_default();
    let now: BTreeMap<String, String> = c.settings.iter().map(|x| split(x)).collect();
    let was: BTreeMap<String, String> = before.iter().map(|x| split(x)).collect();
    let mut reset_options = Vec::new();
    for k in was.keys().filter(|k| !now.contains_key(*k)) {
        match k.as_str() {
            "storage" if version >= 160000 => s.push(format!("{at} SET STORAGE DEFAULT")),
            // Before 16 there is no SET STORAGE DEFAULT: look the type's default up.
            "storage" => s.push(format!(
                "DO $migsafe$ BEGIN EXECUTE format('ALTER TABLE %s ALTER COLUMN %I SET STORAGE %s', {table}, {column}, \
                 (SELECT CASE t.typstorage WHEN 'p' THEN 'PLAIN' WHEN 'e' THEN 'EXTERNAL' WHEN 'm' THEN 'MAIN' \
                 ELSE 'EXTENDED' END FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE a.attrelid = {table}::regclass AND a.attname = {column})); END $migsafe$",
                table = ql(&tn.to_string()),
                column = ql(&c.name),
            )),
            "compression" => s.push(format!("{at} SET COMPRESSION DEFAULT")),
            "statistics" => s.push(format!("{at} SET STATISTICS -1")),
            _ => reset_options.push(k.clone()),
        }
    }
    if !reset_options.is_empty() {
        s.push(format!("{at} RESET ({})", reset_options.join(", ")));
    }
    let mut set_options = Vec::new();
    for (k, v) in now.iter().filter(|(k, v)| was.get(*k) != Some(*v)) {
        match k.as_str() {
            "storage" => s.push(format!("{at} SET STORAGE {}", v.to_uppercase())),
            "compression" => s.push(format!("{at} SET COMPRESSION {v}")),
            "statistics" => s.push(format!("{at} SET STATISTICS {v}")),
            _ => set_options.push(format!("{k}={v}")),
        }
    }
    if !set_options.is_empty() {
        s.push(format!("{at} SET ({})", set_options.join(", ")));
    }
}

/// Is `type_name` (as format_type spells it) a user-defined type of `snap`?
fn alter_column(tn: &QName, old: &Column, c: &Column, a: &Snapshot, b: &Snapshot, s: &mut Script) {
    let col = qi(&c.name);
    let at = format!("ALTER TABLE {tn} ALTER COLUMN {col}");
    if old.generated != c.generated {
        match (&old.generated, &c.generated) {
            (Some(_), None) => s.push(format!("{at} DROP EXPRESSION")),
            // Same kind, new expression: PostgreSQL 17+ changes it in place, keeping the column's
            // position, its indexes and the views on it.
            (Some(o), Some(g)) if o.kind == g.kind && a.server_version.min(b.server_version) >= 170000 => {
                s.push(format!("{at} SET EXPRESSION AS ({})", g.expr));
            }
            _ => {
                // Expression changes: drop and re-add (generated values are recomputed).
                s.push(format!("ALTER TABLE {tn} DROP COLUMN {col}"));
                s.push(format!("ALTER TABLE {tn} ADD COLUMN {}", c.definition(true)));
                return;
            }
        }
    }
    if old.identity.is_some() && old.identity != c.identity {
        s.push(format!("{at} DROP IDENTITY"));
    }
    // A changing default was dropped in the first phase.
    let retyped = old.type_name != c.type_name || old.collation != c.collation;
    if retyped {
        let collate = c.collation.as_ref().map(|x| format!(" COLLATE {x}")).unwrap_or_default();
        // Between user types (enums) there is no direct cast: go through text.
        let via = if a.has_user_type(&old.type_name) || b.has_user_type(&c.type_name) {
            if c.type_name.ends_with("[]") {
                "::text[]"
            } else {
                "::text"
            }
        } else {
            ""
        };
        s.push(format!(
            "{at} TYPE {}{collate} USING {}",
            c.type_name,
            retype_using(&col, &old.type_name, &c.type_name, via)
        ));
    }
    if (old.default != c.default || (retyped && old.default.is_some())) && c.default.is_some() {
        if let Some(d) = &c.default {
            s.push(format!("{at} SET DEFAULT {d}"));
        }
    }
    if old.not_null != c.not_null {
        s.push(format!("{at} {} NOT NULL", if c.not_null { "SET" } else { "DROP" }));
    }
    if c.identity.is_some() && old.identity != c.identity {
        s.push(format!(
            "{at} ADD GENERATED {} AS IDENTITY",
            c.identity.as_deref().unwrap_or("by default").to_uppercase()
        ));
    }
}
