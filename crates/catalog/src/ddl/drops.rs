//! Phase 1 of the DDL: what goes or changes is dropped, dependents before what they depend on.

use super::*;

/// Policies and triggers that go or change (on a retyped table, those naming its columns too).
pub(super) fn drop_policies_and_triggers(c: &Change, s: &mut Script) {
    let Change { a, b, retyped, .. } = c;
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
    // A view's triggers that go or change, on a view that stays (one dropped takes them along).
    for (vn, v) in &a.views {
        let Some(w) = b.views.get(vn).filter(|_| !c.rebuild_views.contains(vn)) else { continue };
        for (gn, g) in &v.triggers {
            if w.triggers.get(gn).is_none_or(|h| h.definition != g.definition) {
                s.push(format!("DROP TRIGGER {} ON {vn}", qi(gn)));
            }
        }
    }
}

/// Rules go before the tables and views they read or write (a rule blocks dropping them and
/// changing the type of a column it uses) and come back at the end.
pub(super) fn drop_rules(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
    for (k, r) in &a.rules {
        if b.rules.get(k).is_none_or(|x| x.definition != r.definition) || c.redo_rule(r) {
            s.push(format!("DROP RULE {} ON {}", qi(&r.name), r.relation));
        }
    }
}

/// Views that go or are rebuilt, dependents first.
pub(super) fn drop_views(c: &Change, s: &mut Script) {
    let Change { a, b, rebuild_views, .. } = c;
    let removed_views: BTreeSet<QName> =
        a.views.keys().filter(|n| !b.views.contains_key(*n)).cloned().chain(rebuild_views.iter().cloned()).collect();
    let mut drop_order = ordered_views(&removed_views, &a.views);
    drop_order.reverse();
    for n in &drop_order {
        let v = &a.views[n];
        let kw = if v.materialized { "MATERIALIZED VIEW" } else { "VIEW" };
        s.push(format!("DROP {kw} {n}"));
    }
}

/// Constraints that go or change: foreign keys first (they depend on unique indexes); a
/// foreign key on a rekeyed table goes and comes back.
pub(super) fn drop_constraints(c: &Change, s: &mut Script) {
    let Change { a, b, retyped, rekeyed, .. } = c;
    // Partitions' keys attached to a parent's index that is dropped go with it (CASCADE).
    let cascaded: BTreeSet<(&QName, &String)> =
        dropped_table_indexes(c).flat_map(|(tn, _, i)| keys_under_index(a, tn, i)).collect();
    for pass in [true, false] {
        for (tn, t) in &a.tables {
            let u = b.tables.get(tn);
            let table_dropped = u.is_none();
            for (cn, c) in &t.constraints {
                // A constraint trigger goes with its trigger (DROP TRIGGER).
                if c.inherited || c.kind == ConstraintType::Trigger || (c.kind == ConstraintType::ForeignKey) != pass {
                    continue;
                }
                let keep = key_kept(a, b, tn, cn, c, retyped, rekeyed);
                if table_dropped && !pass {
                    continue; // dropped with the table
                }
                if !keep && !cascaded.contains(&(tn, cn)) {
                    s.push(format!("ALTER TABLE {tn} DROP CONSTRAINT {}", qi(cn)));
                }
            }
        }
    }
}

/// Indexes of tables that stay, which go or change.
pub(super) fn drop_table_indexes(c: &Change, s: &mut Script) {
    for (tn, iname, i) in dropped_table_indexes(c) {
        let cascade = if keys_under_index(c.a, tn, i).is_empty() { "" } else { " CASCADE" };
        s.push(format!("DROP INDEX {}{cascade}", QName::new(&tn.schema, iname)));
    }
}

/// The tables' own indexes (not a key's, not attached to a parent's) that go, change or are
/// made again, on tables that stay.
fn dropped_table_indexes<'a>(c: &'a Change) -> impl Iterator<Item = (&'a QName, &'a String, &'a Index)> + 'a {
    let Change { a, b, retyped, .. } = c;
    a.tables.iter().filter_map(|(tn, t)| Some((tn, t, b.tables.get(tn)?))).flat_map(move |(tn, t, u)| {
        t.indexes
            .iter()
            .filter(move |(iname, i)| {
                !i.constraint
                    && !i.inherited
                    && (!index_kept(i, u, iname, retyped.contains(tn)) || index_remade(a, b, tn, iname, i))
            })
            .map(move |(iname, i)| (tn, iname, i))
    })
}

/// Indexes of materialized views that stay, which go or change.
pub(super) fn drop_view_indexes(c: &Change, s: &mut Script) {
    let Change { a, b, rebuild_views, .. } = c;
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
}

/// Functions that go and take or return the row type of a table that goes: before it.
pub(super) fn drop_functions_of_gone_rows(c: &Change, s: &mut Script) {
    let Change { a, b, gone_rows, .. } = c;
    for (sig, f) in by_kind(&a.functions, true) {
        if !b.functions.contains_key(sig) && uses_type(f, gone_rows) {
            s.push(format!("DROP {} {}", f.keyword(), f.signature()));
        }
    }
}

/// Dropping a table or column drops the sequences it owns: detach those that stay (a
/// renamed table's sequence keeps its name) so they survive; ownership is set again later.
pub(super) fn detach_owned_sequences(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
    for (n, q) in &a.sequences {
        let Some((t, c)) = &q.owned_by else { continue };
        let column_goes = b.tables.get(t).is_none_or(|bt| bt.column(c).is_none());
        if column_goes && b.sequences.contains_key(n) {
            s.push(format!("ALTER SEQUENCE {n} OWNED BY NONE"));
        }
    }
}

/// Tables that go: children before parents; a partition goes with its parent.
pub(super) fn drop_tables(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
    let mut gone: Vec<&QName> = a.tables.keys().filter(|n| !b.tables.contains_key(*n)).collect();
    gone.sort_by_key(|n| (std::cmp::Reverse(table_depth(a, n)), (*n).clone()));
    for tn in gone {
        let t = &a.tables[tn];
        let parent_dropped = t.partition_of.as_ref().is_some_and(|(p, _)| !b.tables.contains_key(p));
        // A foreign key referencing the partitioned table depends on each of its partitions:
        // one that goes is detached first (that check is PostgreSQL's).
        if let Some((p, _)) = t.partition_of.as_ref().filter(|_| !parent_dropped) {
            let referenced = a
                .tables
                .values()
                .flat_map(|x| x.constraints.values())
                .any(|k| k.kind == ConstraintType::ForeignKey && k.references.as_ref() == Some(p));
            if referenced {
                s.push(format!("ALTER TABLE {p} DETACH PARTITION {tn}"));
            }
        }
        if !parent_dropped {
            let kw = if t.kind == TableKind::Foreign { "FOREIGN TABLE" } else { "TABLE" };
            s.push(format!("DROP {kw} {tn}"));
        }
    }
}

/// Partitions that move to another parent or bound are detached here, attached later.
pub(super) fn detach_moved_partitions(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
    for (tn, t) in &a.tables {
        let Some(u) = b.tables.get(tn) else { continue };
        if let Some((parent, _)) = &t.partition_of {
            if t.partition_of != u.partition_of && b.tables.contains_key(parent) {
                s.push(format!("ALTER TABLE {parent} DETACH PARTITION {tn}"));
            }
        }
    }
}

/// A partition detached for good keeps what it had from its parent, now its own: the indexes
/// and constraints the target does not have go (the parent's drop no longer takes them).
pub(super) fn drop_what_detached_partitions_keep(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
    for (tn, t) in &a.tables {
        let Some(u) = b.tables.get(tn) else { continue };
        let Some((parent, _)) = &t.partition_of else { continue };
        if u.partition_of.is_some() || !b.tables.contains_key(parent) {
            continue;
        }
        for (cn, k) in t.constraints.iter().filter(|(cn, k)| k.inherited && !u.constraints.contains_key(*cn)) {
            if k.kind != ConstraintType::Trigger {
                s.push(format!("ALTER TABLE {tn} DROP CONSTRAINT {}", qi(cn)));
            }
        }
        for (iname, _) in t.indexes.iter().filter(|(n, i)| i.inherited && !i.constraint && !u.indexes.contains_key(*n))
        {
            s.push(format!("DROP INDEX {}", QName::new(&tn.schema, iname)));
        }
    }
}

/// Columns that go. A parent's column that an inheritance child keeps is dropped from the parent
/// ONLY: the children's columns stay, made local (each of the others is then dropped itself).
/// The child's other inherited columns stay inherited.
pub(super) fn drop_columns(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
    for (tn, t) in &a.tables {
        let Some(u) = b.tables.get(tn) else { continue };
        // The inheritance children that stay children (partitions always follow their parent),
        // before and after.
        let children: Vec<(&QName, &Table, &Table)> = a
            .tables
            .iter()
            .filter(|(_, k)| k.inherits.contains(tn))
            .filter_map(|(kn, was)| Some((kn, was, b.tables.get(kn).filter(|k| k.inherits.contains(tn))?)))
            .collect();
        for c in &t.columns {
            if c.inherited || u.column(&c.name).is_some() {
                continue;
            }
            // A child that keeps the column, or declares it too (it would keep it), needs the
            // drop from the parent alone, then its own where it goes.
            if children
                .iter()
                .any(|(_, was, k)| k.column(&c.name).is_some() || was.column(&c.name).is_some_and(|x| x.local_too))
            {
                s.push(format!("ALTER TABLE ONLY {tn} DROP COLUMN {}", qi(&c.name)));
                for (kn, _, _) in children.iter().filter(|(_, _, k)| k.column(&c.name).is_none()) {
                    s.push(format!("ALTER TABLE {kn} DROP COLUMN {}", qi(&c.name)));
                }
            } else {
                s.push(format!("ALTER TABLE {tn} DROP COLUMN {}", qi(&c.name)));
            }
        }
    }
}

/// Defaults that change go now: they may use sequences or types dropped at the end.
pub(super) fn drop_changed_defaults(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
    for (tn, t) in &a.tables {
        let Some(u) = b.tables.get(tn) else { continue };
        for c in &t.columns {
            if u.column(&c.name).is_some_and(|d| default_dropped(c, d)) {
                s.push(format!("ALTER TABLE {tn} ALTER COLUMN {} DROP DEFAULT", qi(&c.name)));
            }
        }
    }
}

/// Whether [`drop_changed_defaults`] drops the default of column `old` on its way to `new`: one
/// that changes, or whose column is retyped, unless it is inherited.
pub(super) fn default_dropped(old: &Column, new: &Column) -> bool {
    old.default.is_some() && (old.default != new.default || new.retyped_from(old)) && !old.inherited
}

/// Functions whose result or kind changes cannot be replaced in place; nor can those that
/// use a type that is rebuilt. Then the rebuilt types themselves.
pub(super) fn drop_replaced_functions_and_types(c: &Change, s: &mut Script) {
    let Change { a, b, renewed, gone_rows, rebuilt, .. } = c;
    for (sig, f) in by_kind(&a.functions, true) {
        let changed = b.functions.get(sig).is_some_and(|g| g.result != f.result || g.kind != f.kind);
        let dropped_already = !b.functions.contains_key(sig) && uses_type(f, gone_rows);
        if (changed || uses_type(f, renewed)) && !dropped_already {
            s.push(format!("DROP {} {}", f.keyword(), f.signature()));
        }
    }
    for n in rebuilt.iter() {
        s.push(format!("DROP {} {n}", type_keyword(&a.types[n])));
    }
}
