//! Views: which are rebuilt (they depend on a changed column or type) and in what order.

use super::*;

/// Topological order of `names` (views), dependencies first, using `deps`.
pub(super) fn ordered_views(names: &BTreeSet<QName>, views: &BTreeMap<QName, View>) -> Vec<QName> {
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
pub(super) fn views_and_touched(a: &Snapshot, b: &Snapshot) -> (BTreeSet<QName>, BTreeSet<QName>) {
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
            Some(d) => d.retyped_from(c) || c.generated != d.generated,
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

pub(super) fn view_body_eq(v: &View, w: &View) -> bool {
    v.materialized == w.materialized && v.definition == w.definition && v.columns == w.columns && v.options == w.options
}
