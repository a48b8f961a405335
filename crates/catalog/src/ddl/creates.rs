//! Phase 2 of the DDL: what is new or changed is created or altered, dependencies first.

use super::*;

/// Schemas, with their comments and grants.
pub(super) fn create_schemas(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
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
}

/// Extensions: installed, updated, or reinstalled at an older version (no downgrade path).
pub(super) fn create_extensions(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
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
}

/// Collations that are new or changed.
pub(super) fn create_collations(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
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
}

/// Sequences that are new or whose options changed.
pub(super) fn create_sequences(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
    for (n, q) in &b.sequences {
        match a.sequences.get(n) {
            None => s.push(create_sequence(n, q)),
            // Ownership, comments and grants are set elsewhere.
            Some(p) if p.data_type != q.data_type || p.options != q.options => {
                s.push(format!("ALTER SEQUENCE {n} {}", sequence_options(q)));
            }
            Some(_) => {}
        }
    }
}

/// Functions, then tables and columns; functions taking or returning the row type of a new
/// table come after the tables.
pub(super) fn create_functions_and_tables(c: &Change, s: &mut Script) {
    let Change { a, b, retyped, renewed, rekeyed, .. } = c;
    let new_rows: Vec<QName> = b.tables.keys().filter(|n| !a.tables.contains_key(*n)).cloned().collect();
    let mut after_tables = Vec::new();
    for (sig, f) in by_kind(&b.functions, false) {
        match a.functions.get(sig) {
            Some(g)
                if g.definition == f.definition
                    && g.result == f.result
                    && g.kind == f.kind
                    && !uses_type(g, renewed) => {}
            _ if uses_type(f, &new_rows) => after_tables.push(trim_semicolon(&f.definition).to_string()),
            _ => s.push(trim_semicolon(&f.definition).to_string()),
        }
    }
    render_tables(a, b, retyped, rekeyed, s);
    for f in after_tables {
        s.push(f);
    }
}

/// Sequences owned by columns, once the columns exist.
pub(super) fn set_sequence_owners(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
    for (n, q) in &b.sequences {
        let before = a.sequences.get(n).and_then(|p| p.owned_by.clone());
        if before != q.owned_by {
            match &q.owned_by {
                Some((t, c)) => s.push(format!("ALTER SEQUENCE {n} OWNED BY {t}.{}", qi(c))),
                None => s.push(format!("ALTER SEQUENCE {n} OWNED BY NONE")),
            }
        }
    }
}

/// Views in dependency order, then their indexes, comments and grants.
pub(super) fn create_views(c: &Change, s: &mut Script) {
    let Change { a, b, rebuild_views, .. } = c;
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
}

/// Triggers and policies last: they need functions and tables.
pub(super) fn create_triggers_and_policies(c: &Change, s: &mut Script) {
    let Change { a, b, retyped, .. } = c;
    for (tn, t) in &b.tables {
        let u = a.tables.get(tn);
        let retyped = retyped.contains(tn);
        for (gn, g) in t.triggers.iter().filter(|(_, g)| !g.inherited) {
            let old = u.and_then(|u| u.triggers.get(gn)).filter(|_| !(retyped && names_columns(g)));
            create_trigger(s, tn, gn, g, old);
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
}

/// The triggers of views (after the views and the functions they call); a view made or rebuilt
/// has none yet.
pub(super) fn create_view_triggers(c: &Change, s: &mut Script) {
    for (vn, v) in &c.b.views {
        let old = c.a.views.get(vn).filter(|_| !c.rebuild_views.contains(vn));
        for (gn, g) in &v.triggers {
            create_trigger(s, vn, gn, g, old.and_then(|o| o.triggers.get(gn)));
        }
    }
}

/// The trigger `gn` on `on` as `g` says, given what it was (`old`, None when it is not there):
/// made when its definition is new, then its firing and its comment set.
fn create_trigger(s: &mut Script, on: &QName, gn: &str, g: &Trigger, old: Option<&Trigger>) {
    let same_def = old.is_some_and(|h| h.definition == g.definition);
    if !same_def {
        s.push(g.definition.clone());
    }
    let was = if same_def { old.map(|h| h.enabled).unwrap_or(Firing::Origin) } else { Firing::Origin };
    if was != g.enabled {
        s.push(format!("ALTER TABLE {on} {} TRIGGER {}", g.enabled.enable_clause(), qi(gn)));
    }
    if comment_due(same_def, old.map(|h| &h.comment), &g.comment) {
        s.push(comment_sql(&format!("TRIGGER {} ON {on}", qi(gn)), &g.comment));
    }
}

/// Rules, back after the tables and views they use.
pub(super) fn create_rules(c: &Change, s: &mut Script) {
    let Change { a, b, .. } = c;
    for (k, r) in &b.rules {
        let old = a.rules.get(k);
        let same_def = old.is_some_and(|o| o.definition == r.definition) && !c.redo_rule(r);
        if !same_def {
            s.push(r.definition.clone());
        }
        let was = if same_def { old.map(|o| o.enabled).unwrap_or(Firing::Origin) } else { Firing::Origin };
        if was != r.enabled {
            s.push(format!("ALTER TABLE {} {} RULE {}", r.relation, r.enabled.enable_clause(), qi(&r.name)));
        }
        if comment_due(same_def, old.map(|o| &o.comment), &r.comment) {
            s.push(comment_sql(&format!("RULE {} ON {}", qi(&r.name), r.relation), &r.comment));
        }
    }
}
