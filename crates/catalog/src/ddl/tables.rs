//! Tables and columns: creating, altering, retyping, persistence, and the constraints and
//! indexes that a retyped or rekeyed table takes down and puts back.

use super::*;

/// Tables with a column whose type changes in place (`ALTER COLUMN … TYPE`, also when its
/// enum is rebuilt). PostgreSQL refuses that while a trigger (`WHEN`, `UPDATE OF`) or a
/// policy uses the column, so on these tables such triggers and the policies are dropped
/// first and created again after.
pub(super) fn retyped_tables(a: &Snapshot, b: &Snapshot) -> BTreeSet<QName> {
    let mut out = BTreeSet::new();
    for n in renewed_types(a, b) {
        for (tn, _) in columns_of_type(a, &n) {
            out.insert(tn.clone());
        }
    }
    for (tn, t) in &a.tables {
        let Some(u) = b.tables.get(tn) else { continue };
        if t.columns.iter().any(|c| u.column(&c.name).is_some_and(|d| d.retyped_from(c))) {
            out.insert(tn.clone());
        }
    }
    out
}

/// An index with a predicate or typed constants is rebuilt by `ALTER COLUMN … TYPE` from its
/// stored form, whose constants keep the old type: it goes first and is built again after.
pub(super) fn has_typed_expressions(i: &Index) -> bool {
    i.definition.contains(" WHERE ") || i.definition.contains("::")
}

/// A CHECK or EXCLUDE constraint with typed constants (`kind = 'a'::kind`) is checked again by
/// `ALTER COLUMN … TYPE` with its constants still of the old type (no operator between an
/// enum and its rebuilt twin): on a retyped table it goes first and is added again after.
pub(super) fn has_typed_constants(c: &Constraint) -> bool {
    matches!(c.kind, ConstraintType::Check | ConstraintType::Exclusion) && c.definition.contains("::")
}

/// Foreign keys referencing a table in `rekeyed` (see [`rekeyed_tables`]).
pub(super) fn fk_on(rekeyed: &BTreeSet<QName>, c: &Constraint) -> bool {
    c.kind == ConstraintType::ForeignKey && c.references.as_ref().is_some_and(|r| rekeyed.contains(r))
}

/// Tables of the source whose primary key, unique or exclusion constraints or unique indexes
/// go, change or are made again (a foreign key referencing them may depend on one).
pub(super) fn rekeyed_tables(a: &Snapshot, b: &Snapshot, retyped: &BTreeSet<QName>) -> BTreeSet<QName> {
    let mut out = BTreeSet::new();
    for (tn, t) in &a.tables {
        let Some(u) = b.tables.get(tn) else { continue };
        let keys_change = t
            .constraints
            .iter()
            .filter(|(_, c)| c.kind.is_key())
            .any(|(cn, c)| !u.constraints.get(cn).is_some_and(|o| constraint_same(c, o)) || retyped.contains(tn));
        let unique_index_changes =
            t.indexes.iter().filter(|(_, i)| !i.constraint && i.definition.starts_with("CREATE UNIQUE")).any(
                |(n, i)| u.indexes.get(n).is_none_or(|j| j.definition != i.definition) || index_remade(a, b, tn, n, i),
            );
        // A partitioned table's key or index made again for its partitions' sake.
        let keys_remade = t.constraints.iter().any(|(cn, c)| c.kind.is_key() && unattaches(a, b, tn, cn));
        if keys_change || unique_index_changes || keys_remade {
            out.insert(tn.clone());
        }
    }
    out
}

/// A trigger that names columns (`WHEN (…)`, `UPDATE OF col`) blocks changing their type.
pub(super) fn names_columns(t: &Trigger) -> bool {
    t.definition.contains(" WHEN (") || t.definition.contains(" UPDATE OF ")
}

/// Whether constraint `c` of `a` stays through the drop phase, `other` being the target's of
/// the same name (on a retyped table, one with typed constants is made again; a foreign key on
/// a rekeyed table too).
pub(super) fn constraint_kept(
    c: &Constraint,
    other: Option<&Constraint>,
    retyped: bool,
    rekeyed: &BTreeSet<QName>,
) -> bool {
    other.is_some_and(|o| constraint_same(c, o)) && !(retyped && has_typed_constants(c)) && !fk_on(rekeyed, c)
}

/// [`constraint_kept`] for constraint `cn` of table `tn`, and not a key of a partitioned table
/// that a partition staying under it has attached in `a` and not in `b`: an attached key cannot
/// be dropped alone, so the parent's goes and comes back.
pub(super) fn key_kept(
    a: &Snapshot,
    b: &Snapshot,
    tn: &QName,
    cn: &str,
    c: &Constraint,
    retyped: &BTreeSet<QName>,
    rekeyed: &BTreeSet<QName>,
) -> bool {
    let other = b.tables.get(tn).and_then(|u| u.constraints.get(cn));
    constraint_kept(c, other, retyped.contains(tn), rekeyed)
        && !unattaches(a, b, tn, cn)
        && !fk_clones_renamed(a, b, tn, c)
}

/// Whether foreign key `c` of table `tn` references a partitioned table and the copies
/// PostgreSQL keeps of it for each referenced partition (before 18, named after the referencing
/// table when they were made) have other names in `b`: a renamed table's keep the old ones, so
/// the foreign key is made again.
fn fk_clones_renamed(a: &Snapshot, b: &Snapshot, tn: &QName, c: &Constraint) -> bool {
    let Some(p) = c.references.as_ref().filter(|p| c.kind == ConstraintType::ForeignKey && is_partitioned(b, p)) else {
        return false;
    };
    let clones = |snap: &Snapshot| -> Option<BTreeSet<String>> {
        let t = snap.tables.get(tn)?;
        let under =
            |r: &QName| snap.tables.get(r).is_some_and(|x| x.partition_of.as_ref().is_some_and(|(q, _)| q == p));
        Some(
            t.constraints
                .iter()
                .filter(|(_, k)| k.inherited && k.kind == ConstraintType::ForeignKey)
                .filter(|(_, k)| k.references.as_ref().is_some_and(under))
                .map(|(n, _)| n.clone())
                .collect(),
        )
    };
    matches!((clones(a), clones(b)), (Some(x), Some(y)) if x != y)
}

/// Whether a partition of `tn` that stays has, in `a`, its key attached to `tn`'s key `cn`,
/// and in `b` not.
fn unattaches(a: &Snapshot, b: &Snapshot, tn: &QName, cn: &str) -> bool {
    if !is_partitioned(a, tn) {
        return false;
    }
    let under = |t: &Table| t.partition_of.as_ref().is_some_and(|(p, _)| p == tn);
    a.tables.iter().filter(|(_, t)| under(t)).any(|(pn, t)| {
        let Some(u) = b.tables.get(pn).filter(|u| under(u)) else { return false };
        t.constraints.iter().filter(|(_, k)| k.inherited).any(|(kn, k)| {
            parent_constraint(a, t, kn, k).is_some_and(|(p, pcn, _)| p == tn && pcn == cn)
                && u.constraints.get(kn).is_none_or(|k| !k.inherited)
        })
    })
}

/// Whether `tn` is a partitioned table in `snap` (only those have partitions to look through).
fn is_partitioned(snap: &Snapshot, tn: &QName) -> bool {
    snap.tables.get(tn).is_some_and(|t| t.kind == TableKind::Partitioned)
}

/// Whether `b` has key `cn` of partitioned table `tn` on the parent alone (its index invalid:
/// not every partition has one attached): it is added `ONLY` there.
fn key_only(b: &Snapshot, tn: &QName, cn: &str) -> bool {
    b.tables.get(tn).is_some_and(|u| u.kind == TableKind::Partitioned)
        && b.tables.get(tn).and_then(|u| u.indexes.get(cn)).is_some_and(|i| !i.valid)
}

/// The constraint of a parent of `t` (its partitioned table or an inheritance parent) that
/// `t`'s inherited constraint `cn` comes from: a key or exclusion of the same definition (a
/// partition's key has its own name), anything else of the same name.
fn parent_constraint<'s>(
    snap: &'s Snapshot,
    t: &Table,
    cn: &str,
    k: &Constraint,
) -> Option<(&'s QName, &'s String, &'s Constraint)> {
    let keyed = k.kind.has_index();
    let parents = t.partition_of.iter().map(|(p, _)| p).chain(t.inherits.iter());
    parents.filter_map(|p| snap.tables.get_key_value(p)).find_map(|(pn, pt)| {
        pt.constraints
            .iter()
            .find(|(pcn, pk)| if keyed { pk.kind == k.kind && pk.definition == k.definition } else { *pcn == cn })
            .map(|(pcn, pk)| (pn, pcn, pk))
    })
}

/// Whether `a`'s inherited constraint `cn` of table `t` is still there after the drop phase:
/// it goes with its parent's when that is dropped (detaching comes after).
pub(super) fn inherited_kept(
    a: &Snapshot,
    b: &Snapshot,
    t: &Table,
    cn: &str,
    k: &Constraint,
    retyped: &BTreeSet<QName>,
    rekeyed: &BTreeSet<QName>,
) -> bool {
    let Some((pn, pcn, pk)) = parent_constraint(a, t, cn, k) else { return true };
    b.tables.contains_key(pn) && key_kept(a, b, pn, pcn, pk, retyped, rekeyed)
}

pub(super) fn constraint_same(a: &Constraint, b: &Constraint) -> bool {
    // NOT VALID → valid is a VALIDATE, not a drop. Valid → NOT VALID is a drop and an ADD … NOT
    // VALID (cheap: nothing is checked), so the target is reproduced exactly.
    let strip = |d: &str| d.trim_end_matches(" NOT VALID").to_string();
    a.kind == b.kind && strip(&a.definition) == strip(&b.definition) && (b.validated || !a.validated)
}

pub(super) fn table_ddl(tn: &QName, t: &Table, snap: &Snapshot) -> String {
    let kw = match (t.kind, t.persistence) {
        (TableKind::Foreign, _) => "CREATE FOREIGN TABLE",
        (_, Persistence::Unlogged) => "CREATE UNLOGGED TABLE",
        _ => "CREATE TABLE",
    };
    // A child's own columns, and its inherited ones it declares too (merged with the parent's;
    // the generation expression is the parent's).
    let mut cols: Vec<String> = t
        .columns
        .iter()
        .filter(|c| !c.inherited || c.local_too)
        .map(|c| if c.inherited { c.merged_definition() } else { c.definition(true) })
        .collect();
    let mut d = match &t.partition_of {
        Some((parent, bound)) => {
            // What a partition sets on a column of its parent: its own DEFAULT, NOT NULL where
            // the parent allows NULL.
            for c in t.columns.iter().filter(|c| c.inherited) {
                let Some(pc) = snap.tables.get(parent).and_then(|p| p.column(&c.name)) else { continue };
                let mut own = String::new();
                if c.default.is_some() && c.default != pc.default {
                    own.push_str(&format!(" DEFAULT {}", c.default.as_deref().unwrap_or_default()));
                }
                if c.not_null && !pc.not_null {
                    own.push_str(" NOT NULL");
                }
                if !own.is_empty() {
                    cols.push(format!("{} WITH OPTIONS{own}", qi(&c.name)));
                }
            }
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
pub(super) fn table_depth(snap: &Snapshot, n: &QName) -> usize {
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
pub(super) fn render_persistence(a: &Snapshot, b: &Snapshot, s: &mut Script) {
    for to_logged in [false, true] {
        let target = if to_logged { Persistence::Permanent } else { Persistence::Unlogged };
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
                if c.kind == ConstraintType::ForeignKey
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

/// The kind of a built-in scalar type as `format_type` prints it: numbers, date and time,
/// text, or None for the rest.
fn builtin_kind(t: &str) -> Option<char> {
    let base = t.split('(').next().unwrap_or(t).trim();
    match base {
        "smallint" | "integer" | "bigint" | "numeric" | "real" | "double precision" => Some('n'),
        "date" | "timestamp without time zone" | "timestamp with time zone" | "interval" => Some('d'),
        "time without time zone" | "time with time zone" => Some('t'),
        "text" | "character varying" | "character" | "name" | "\"char\"" => Some('s'),
        "boolean" => Some('b'),
        _ => None,
    }
}

/// Two built-in scalar types of different kinds, neither of them text: PostgreSQL has no cast
/// between them (`bigint` and `timestamp`, `date` and `time`, `boolean` and `bigint`).
fn no_direct_cast(from: &str, to: &str) -> bool {
    if from.ends_with("[]")
        || to.ends_with("[]")
        || (from == "boolean" && to == "integer")
        || (from == "integer" && to == "boolean")
    {
        return false;
    }
    match (builtin_kind(from), builtin_kind(to)) {
        (Some(x), Some(y)) => x != y && x != 's' && y != 's',
        _ => false,
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

pub(super) fn render_tables(
    a: &Snapshot,
    b: &Snapshot,
    retyped: &BTreeSet<QName>,
    rekeyed: &BTreeSet<QName>,
    s: &mut Script,
) {
    // New tables: parents before partitions and children.
    let mut new_tables: Vec<&QName> = b.tables.keys().filter(|n| !a.tables.contains_key(*n)).collect();
    new_tables.sort_by_key(|n| (table_depth(b, n), (*n).clone()));
    for tn in &new_tables {
        s.push(table_ddl(tn, &b.tables[*tn], b));
    }
    render_persistence(a, b, s);
    alter_tables(a, b, s);
    // Constraints other than foreign keys, then indexes, then foreign keys.
    add_constraints(a, b, retyped, rekeyed, false, s);
    attach_partition_keys(a, b, retyped, rekeyed, s);
    add_indexes(a, b, retyped, s);
    add_constraints(a, b, retyped, rekeyed, true, s);
    table_settings(a, b, s);
}

/// Existing tables: storage options, partition and inheritance links, and their columns.
fn alter_tables(a: &Snapshot, b: &Snapshot, s: &mut Script) {
    // A child's column that it declares too and its parent gives it: added to the child first,
    // so that the parent's `ADD COLUMN` (or the child's `INHERIT`) merges with it.
    for (tn, u) in &b.tables {
        let Some(t) = a.tables.get(tn) else { continue };
        for c in u.columns.iter().filter(|c| c.inherited && c.local_too && t.column(&c.name).is_none()) {
            s.push(format!("ALTER TABLE {tn} ADD COLUMN {}", c.merged_definition()));
        }
    }
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
                // A partition's column comes from the parent, but its NOT NULL is its own when the
                // parent's column has none (a key of the partition alone makes it NOT NULL).
                let at = format!("ALTER TABLE {tn} ALTER COLUMN {}", qi(&c.name));
                match t.column(&c.name).map(|o| (o.not_null, c.not_null)) {
                    Some((true, false)) => s.push(format!("{at} DROP NOT NULL")),
                    Some((false, true)) => s.push(format!("{at} SET NOT NULL")),
                    _ => {}
                }
                // So is its default: one attached keeps its own, one made under the parent
                // copies the parent's. (A default that changes was dropped in the first phase,
                // unless it was inherited then too.)
                let old = t.column(&c.name);
                if let Some(o) = old.filter(|o| o.local_too != c.local_too && (o.inherited || !c.local_too)) {
                    s.push(local_too_manual(tn, o, c));
                }
                let now = old.filter(|o| !default_dropped(o, c)).and_then(|o| o.default.clone());
                if old.is_some() && c.default != now {
                    match &c.default {
                        Some(d) => s.push(format!("{at} SET DEFAULT {d}")),
                        None => s.push(format!("{at} DROP DEFAULT")),
                    }
                }
                continue;
            }
            match t.column(&c.name) {
                None => s.push(format!("ALTER TABLE {tn} ADD COLUMN {}", c.definition(true))),
                Some(old) => alter_column(tn, old, c, a, b, s),
            }
        }
    }
}

/// What to do by hand when an inherited column must change between the child's own too and
/// inherited only in a way no statement does (a handover to a parent that gains the column is
/// rendered: see `inherited`).
fn local_too_manual(tn: &QName, old: &Column, c: &Column) -> String {
    let col = format!("{tn}.{}", qi(&c.name));
    if c.local_too {
        format!(
            "-- MANUAL: column {col} is inherited only and must be declared by {tn} too (so it stays when its \
             parent drops it); only NO INHERIT then INHERIT of the parent does that, and it makes every \
             inherited column and constraint of {tn} its own"
        )
    } else if old.inherited {
        format!(
            "-- MANUAL: column {col} is declared by {tn} too and must be inherited only (so it goes when its \
             parent drops it); PostgreSQL keeps it declared: only building the column again does that \
             (values copied aside, the parent's column dropped and added again, values copied back)"
        )
    } else {
        format!(
            "-- MANUAL: column {col} becomes inherited from a new parent and must be inherited only; INHERIT \
             keeps it declared by {tn}: drop it first (its values copied aside), INHERIT, copy them back"
        )
    }
}

/// Constraints that are new or changed (foreign keys in their own pass, after the indexes);
/// one only validated since is validated, one whose comment changed gets it.
fn add_constraints(
    a: &Snapshot,
    b: &Snapshot,
    retyped: &BTreeSet<QName>,
    rekeyed: &BTreeSet<QName>,
    fk_pass: bool,
    s: &mut Script,
) {
    for (tn, u) in &b.tables {
        let t = a.tables.get(tn);
        for (cn, c) in &u.constraints {
            // A constraint trigger is its trigger's: CREATE CONSTRAINT TRIGGER makes both.
            if c.kind == ConstraintType::Trigger || (c.kind == ConstraintType::ForeignKey) != fk_pass {
                continue;
            }
            if c.inherited {
                // A child's copy of a parent's NOT VALID check or foreign key is NOT VALID
                // too, until validated on the child alone.
                let parent_not_valid = parent_constraint(b, u, cn, c).is_some_and(|(_, _, pk)| !pk.validated);
                let valid_now = t
                    .and_then(|t| t.constraints.get(cn).map(|k| (t, k)))
                    .is_some_and(|(t, k)| k.validated && inherited_kept(a, b, t, cn, k, retyped, rekeyed));
                if c.validated && parent_not_valid && !valid_now {
                    s.push(format!("ALTER TABLE {tn} VALIDATE CONSTRAINT {}", qi(cn)));
                }
                continue;
            }
            // One inherited before goes with its parent's when that is dropped.
            let old = t
                .and_then(|t| t.constraints.get(cn).map(|k| (t, k)))
                .filter(|(t, k)| !k.inherited || inherited_kept(a, b, t, cn, k, retyped, rekeyed));
            match old.map(|(_, k)| k) {
                Some(old) if key_kept(a, b, tn, cn, old, retyped, rekeyed) => {
                    if !old.validated && c.validated {
                        s.push(format!("ALTER TABLE {tn} VALIDATE CONSTRAINT {}", qi(cn)));
                    }
                    if old.comment != c.comment {
                        s.push(comment_sql(&format!("CONSTRAINT {} ON {tn}", qi(cn)), &c.comment));
                    }
                }
                _ => {
                    let only = if key_only(b, tn, cn) { "ONLY " } else { "" };
                    s.push(format!("ALTER TABLE {only}{tn} ADD CONSTRAINT {} {}", qi(cn), c.definition));
                    if c.comment.is_some() {
                        s.push(comment_sql(&format!("CONSTRAINT {} ON {tn}", qi(cn)), &c.comment));
                    }
                }
            }
        }
    }
}

/// A partition's key (primary key, unique, exclusion) that the target has attached to its
/// parent's, where the parent's stays (one added now brings its partitions' along): the
/// partition's is added when it has none, and its index attached to the parent's.
fn attach_partition_keys(
    a: &Snapshot,
    b: &Snapshot,
    retyped: &BTreeSet<QName>,
    rekeyed: &BTreeSet<QName>,
    s: &mut Script,
) {
    for (tn, u) in b.tables.iter().filter(|(_, u)| u.partition_of.is_some()) {
        let t = a.tables.get(tn);
        for (cn, c) in u.constraints.iter().filter(|(_, c)| c.inherited) {
            if !c.kind.has_index() {
                continue;
            }
            let Some((pn, pcn, _)) = parent_constraint(b, u, cn, c) else { continue };
            let parent_stays = a
                .tables
                .get(pn)
                .and_then(|p| p.constraints.get(pcn))
                .is_some_and(|old| key_kept(a, b, pn, pcn, old, retyped, rekeyed));
            // A partition made or attached now gets its parent's keys from PostgreSQL.
            let stays_under = t.is_some_and(|t| t.partition_of.as_ref().map(|(p, _)| p) == Some(pn));
            if !(parent_stays || key_only(b, pn, pcn)) || !stays_under {
                continue;
            }
            let old = t.and_then(|t| t.constraints.get(cn).map(|k| (t, k)));
            if old.is_some_and(|(t, k)| k.inherited && inherited_kept(a, b, t, cn, k, retyped, rekeyed)) {
                continue; // attached already
            }
            let own =
                old.is_some_and(|(_, k)| !k.inherited && constraint_kept(k, Some(c), retyped.contains(tn), rekeyed));
            if !own {
                s.push(format!("ALTER TABLE {tn} ADD CONSTRAINT {} {}", qi(cn), c.definition));
            }
            s.push(attach_sql(pn, pcn, tn, cn));
        }
    }
}

/// Indexes that are new or changed, and index comments (those of constraint-backing indexes
/// too).
fn add_indexes(a: &Snapshot, b: &Snapshot, retyped: &BTreeSet<QName>, s: &mut Script) {
    for (tn, u) in &b.tables {
        let t = a.tables.get(tn);
        let retyped = retyped.contains(tn);
        for (iname, i) in &u.indexes {
            if i.constraint || i.inherited {
                continue;
            }
            // One attached to a parent's index goes with it (an index partition cannot be
            // detached): made again as the partition's own.
            let same = |j: &&Index| j.definition == i.definition && !j.constraint && !j.inherited;
            let old = t
                .and_then(|t| t.indexes.get(iname))
                .filter(|j| same(j) && !(retyped && has_typed_expressions(j)) && !index_remade(a, b, tn, iname, j));
            let qn = QName::new(&tn.schema, iname);
            if old.is_none() {
                partitioned_index(a, b, tn, iname, i, s);
            } else if u.kind == TableKind::Partitioned {
                attach_partition_indexes(a, b, tn, iname, i, s);
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

/// What follows `USING` in an index definition (method, keys, INCLUDE, WHERE), with whether it
/// is unique: equal for a partitioned table's index and the partitions' indexes attached to it.
fn index_shape(definition: &str) -> Option<(bool, &str)> {
    let using = definition.find(" USING ")?;
    Some((definition.starts_with("CREATE UNIQUE INDEX"), &definition[using..]))
}

/// The partitions of `tn` in `b`, each with its index of the shape `shape` (the one attached
/// to `tn`'s index of that shape), or None where that cannot be told (none, or several).
fn partition_indexes<'b>(
    b: &'b Snapshot,
    tn: &QName,
    shape: (bool, &str),
) -> Vec<(&'b QName, Vec<(&'b String, &'b Index)>)> {
    b.tables
        .iter()
        .filter(|(_, t)| t.partition_of.as_ref().is_some_and(|(p, _)| p == tn))
        .map(|(pn, p)| {
            let found = p.indexes.iter().filter(|(_, j)| j.inherited && index_shape(&j.definition) == Some(shape));
            (pn, found.collect())
        })
        .collect()
}

/// The partitions' keys (table, constraint) whose indexes `a` has attached to index `iname`
/// of partitioned table `tn` (one not backing a constraint itself): dropping the parent's index
/// needs CASCADE and takes them, and they cannot be dropped before it.
pub(super) fn keys_under_index<'a>(a: &'a Snapshot, tn: &QName, i: &Index) -> Vec<(&'a QName, &'a String)> {
    let Some(shape) = index_shape(&i.definition).filter(|_| !i.constraint && is_partitioned(a, tn)) else {
        return vec![];
    };
    partition_indexes(a, tn, shape)
        .into_iter()
        .filter_map(|(pn, found)| match found.as_slice() {
            [(name, j)] if j.constraint => Some((pn, *name)),
            _ => None,
        })
        .collect()
}

/// Whether index `iname` of table `t` in `a` stays through the drop phase (`u` is the
/// target's table).
pub(super) fn index_kept(i: &Index, u: &Table, iname: &str, retyped: bool) -> bool {
    u.indexes.get(iname).is_some_and(|j| j.definition == i.definition && !j.constraint)
        && !(retyped && has_typed_expressions(i))
}

/// Whether index `iname` of table `tn` (`i` in `a`), the same in `b`, is dropped and made again
/// for its partitions' or its new parent's sake.
pub(super) fn index_remade(a: &Snapshot, b: &Snapshot, tn: &QName, iname: &str, i: &Index) -> bool {
    index_unattaches(a, b, tn, i) || adopted_instead(a, b, tn, iname, i)
}

/// Whether table `tn`'s own index `iname` (`i` in `a`) would be taken by `ATTACH PARTITION` for
/// an index of the new parent's that the target has attached to another index of `tn`: it is
/// dropped before and made again after, so PostgreSQL makes the parent's its own.
fn adopted_instead(a: &Snapshot, b: &Snapshot, tn: &QName, iname: &str, i: &Index) -> bool {
    let (Some(t), Some(u)) = (a.tables.get(tn), b.tables.get(tn)) else { return false };
    let Some((pn, _)) = u.partition_of.as_ref().filter(|_| t.partition_of != u.partition_of) else { return false };
    let Some(shape) = index_shape(&i.definition).filter(|_| !i.inherited && !i.constraint) else { return false };
    let parent_has =
        b.tables.get(pn).is_some_and(|p| p.indexes.values().any(|j| index_shape(&j.definition) == Some(shape)));
    parent_has && u.indexes.iter().any(|(n, j)| n != iname && j.inherited && index_shape(&j.definition) == Some(shape))
}

/// Whether a partition of `tn` that stays under it has, in `a`, its index attached to `tn`'s
/// index `i` and, in `b`, not: an index partition cannot be detached, so the parent's index
/// goes (taking the attached ones) and is made again.
///
/// So too when a partition made now has a key's index attached to it: a partition made with
/// `PARTITION OF` gets an index of its own for each of its parent's at once, and the key's would
/// be a second one.
fn index_unattaches(a: &Snapshot, b: &Snapshot, tn: &QName, i: &Index) -> bool {
    let Some(shape) = index_shape(&i.definition).filter(|_| is_partitioned(a, tn) && is_partitioned(b, tn)) else {
        return false;
    };
    let new_with_key = partition_indexes(b, tn, shape)
        .into_iter()
        .any(|(pn, found)| !a.tables.contains_key(pn) && matches!(found.as_slice(), [(_, j)] if j.constraint));
    new_with_key
        || partition_indexes(a, tn, shape).into_iter().any(|(pn, found)| {
            let stays = b.tables.get(pn).is_some_and(|u| u.partition_of.as_ref().is_some_and(|(p, _)| p == tn));
            match found.as_slice() {
                [(name, _)] => stays && b.tables[pn].indexes.get(*name).is_none_or(|j| !j.inherited),
                _ => false,
            }
        })
}

/// `ALTER INDEX … ATTACH PARTITION …`: index `child` of partition `pn` under index `iname` of
/// its parent `tn`.
fn attach_sql(tn: &QName, iname: &str, pn: &QName, child: &str) -> String {
    format!("ALTER INDEX {} ATTACH PARTITION {}", QName::new(&tn.schema, iname), QName::new(&pn.schema, child))
}

/// Create index `iname` of table `tn` as `b` has it. On a partitioned table PostgreSQL prints it
/// `ON ONLY` the parent, which alone leaves it invalid and the partitions without theirs: as
/// pg_dump does, each partition's index (`b`'s name and definition) is created, or found already
/// there, and attached, which makes the parent's valid. An index `b` has invalid has partitions
/// without one attached: those are left alone. When a partition's index cannot be told among
/// `b`'s, the index is created on the parent without ONLY, and PostgreSQL creates or attaches
/// the partitions' own.
fn partitioned_index(a: &Snapshot, b: &Snapshot, tn: &QName, iname: &str, i: &Index, s: &mut Script) {
    let only = format!(" ON ONLY {tn} ");
    if !i.definition.contains(&only) {
        s.push(i.definition.clone());
        return;
    }
    let children = index_shape(&i.definition).map(|shape| partition_indexes(b, tn, shape));
    let told = |c: &Vec<(&QName, Vec<(&String, &Index)>)>| {
        c.iter().all(|(_, found)| found.len() == 1 || (found.is_empty() && !i.valid))
    };
    let Some(children) = children.filter(told) else {
        s.push(i.definition.replacen(&only, &format!(" ON {tn} "), 1));
        return;
    };
    s.push(i.definition.clone());
    for (pn, found) in children {
        let Some((name, j)) = found.first() else { continue };
        // (One that backs a constraint goes with it, one attached to this index's old self
        // with that.)
        let there = a
            .tables
            .get(pn)
            .and_then(|t| t.indexes.get(*name))
            .is_some_and(|k| k.definition == j.definition && !k.constraint && !k.inherited);
        // A key's index is made by its constraint, added before the indexes.
        if !there && !j.constraint {
            partitioned_index(a, b, pn, name, j, s);
        }
        s.push(attach_sql(tn, iname, pn, name));
    }
}

/// An index of partitioned table `tn` that both sides have: the partitions' indexes `b` has
/// attached to it and `a` has as their own (same name and definition) are attached.
fn attach_partition_indexes<'b>(a: &Snapshot, b: &'b Snapshot, tn: &QName, iname: &str, i: &Index, s: &mut Script) {
    let Some(shape) = index_shape(&i.definition) else { return };
    let one = |(pn, found): (&'b QName, Vec<(&'b String, &'b Index)>)| match found.as_slice() {
        [(name, j)] => Some((pn, (*name, *j))),
        _ => None,
    };
    for (pn, (name, j)) in partition_indexes(b, tn, shape).into_iter().filter_map(one) {
        let local = a
            .tables
            .get(pn)
            .and_then(|t| t.indexes.get(name))
            .is_some_and(|k| !k.inherited && k.definition == j.definition);
        if local {
            s.push(attach_sql(tn, iname, pn, name));
        }
    }
}

/// Row level security, replica identity, comments, grants and column settings.
fn table_settings(a: &Snapshot, b: &Snapshot, s: &mut Script) {
    for (tn, u) in &b.tables {
        let t = a.tables.get(tn);
        let (rls0, force0) = t.map(|t| t.rls).unwrap_or((false, false));
        if rls0 != u.rls.0 {
            s.push(format!("ALTER TABLE {tn} {} ROW LEVEL SECURITY", if u.rls.0 { "ENABLE" } else { "DISABLE" }));
        }
        if force0 != u.rls.1 {
            s.push(format!("ALTER TABLE {tn} {} ROW LEVEL SECURITY", if u.rls.1 { "FORCE" } else { "NO FORCE" }));
        }
        let ri0 = t.map(|t| t.replica_identity.clone()).unwrap_or(ReplicaIdentity::Default);
        if ri0 != u.replica_identity {
            let ri = match &u.replica_identity {
                ReplicaIdentity::Nothing => "NOTHING".to_string(),
                ReplicaIdentity::Full => "FULL".to_string(),
                ReplicaIdentity::Index(i) => format!("USING INDEX {}", qi(i)),
                ReplicaIdentity::Default => "DEFAULT".to_string(),
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
pub(super) fn column_settings(tn: &QName, c: &Column, before: &[String], version: u32, s: &mut Script) {
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

/// The DDL that turns column `old` of table `tn` into `c`.
pub(super) fn alter_column(tn: &QName, old: &Column, c: &Column, a: &Snapshot, b: &Snapshot, s: &mut Script) {
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
    // ALWAYS ↔ BY DEFAULT keeps the sequence and where it is (dropping and adding the identity
    // would start it again at 1, under rows that have those ids).
    match (old.identity, c.identity) {
        (Some(was), Some(kind)) if was != kind => s.push(format!("{at} SET GENERATED {}", kind.sql())),
        (Some(_), None) => s.push(format!("{at} DROP IDENTITY")),
        _ => {}
    }
    // A changing default was dropped in the first phase.
    let retyped = c.retyped_from(old);
    if retyped {
        let collate = c.collation.as_ref().map(|x| format!(" COLLATE {x}")).unwrap_or_default();
        // Between user types (enums), and between built-in types of different kinds (a number
        // and a date), there is no direct cast: go through text, which converts what has the
        // form and fails on the rest (the hazard says so).
        let via = if a.has_user_type(&old.type_name)
            || b.has_user_type(&c.type_name)
            || no_direct_cast(&old.type_name, &c.type_name)
        {
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
    match (old.not_null, c.not_null, &c.not_null_name) {
        // PostgreSQL 18 names the constraint: give it the target's name. (Not `ADD CONSTRAINT n
        // NOT NULL col`, which fails when the column already has one under another name, as a
        // rollback's script can have made it by then.)
        (false, true, Some(n)) if !c.inherited => {
            s.push(format!("{at} SET NOT NULL"));
            s.push(rename_not_null(tn, &c.name, n));
        }
        (false, true, _) => s.push(format!("{at} SET NOT NULL")),
        (true, false, _) => s.push(format!("{at} DROP NOT NULL")),
        (true, true, Some(n)) if !c.inherited && old.not_null_name.as_ref() != Some(n) => match &old.not_null_name {
            Some(o) => s.push(format!("ALTER TABLE {tn} RENAME CONSTRAINT {} TO {}", qi(o), qi(n))),
            // The source's was inherited (a partition detached here keeps its parent's name):
            // rename whatever it is now.
            None => s.push(rename_not_null(tn, &c.name, n)),
        },
        _ => {}
    }
    match (old.identity, c.identity_clause()) {
        (None, Some(identity)) => s.push(format!("{at} ADD {identity}")),
        (Some(_), Some(_)) => {
            // The sequence keeps its name through renames of the table or column: give it the
            // target's.
            if let (Some(from), Some(to)) = (&old.identity_sequence, &c.identity_sequence) {
                if from.schema != to.schema {
                    s.push(format!("ALTER SEQUENCE {from} SET SCHEMA {}", qi(&to.schema)));
                }
                if from.name != to.name {
                    s.push(format!("ALTER SEQUENCE {} RENAME TO {}", QName::new(&to.schema, &from.name), qi(&to.name)));
                }
            }
            if let (Some(from), Some(to)) = (&old.identity_options, &c.identity_options) {
                let set = to.alter_sql(from);
                if !set.is_empty() {
                    s.push(format!("{at} {set}"));
                }
            }
        }
        _ => {}
    }
}

/// A DO block that gives the NOT NULL constraint of `column` the name `to`, whatever it is
/// called when it runs.
fn rename_not_null(tn: &QName, column: &str, to: &str) -> String {
    let (t, c, n) = (ql(&tn.to_string()), ql(column), ql(to));
    format!(
        "DO $migsafe$ DECLARE n name; BEGIN\n\
         \x20 SELECT co.conname INTO n FROM pg_constraint co JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = co.conkey[1]\n\
         \x20  WHERE co.conrelid = {t}::regclass AND co.contype = 'n' AND a.attname = {c};\n\
         \x20 IF n IS NOT NULL AND n <> {n} THEN EXECUTE format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', {t}, n, {n}); END IF;\n\
         END $migsafe$"
    )
}
