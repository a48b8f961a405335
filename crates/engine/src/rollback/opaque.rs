//! Statements migsafe cannot see into (DO blocks, CALL, SELECT of the database's own
//! functions): what they do to the schema is watched while the migration runs, and the DDL
//! that undoes it becomes their inverse at their place.

use migsafe_catalog::Snapshot;

use crate::exec::Prepared;

/// The schema changes of statements migsafe cannot see into (DO blocks, CALL, SELECT of the
/// database's own functions), observed while the migration runs: a snapshot just before and
/// just after each, and the DDL that takes the after back to the before, which is that
/// statement's inverse (a trigger a function created is dropped where the function is).
#[derive(Default)]
pub struct Opaque {
    /// The statements to watch.
    watch: Vec<usize>,
    before: Option<Snapshot>,
    /// Per opaque statement that changed the schema, its inverse.
    pub diffs: std::collections::BTreeMap<usize, Vec<String>>,
    /// Per opaque statement, the tables, columns, constraints and indexes it dropped or
    /// renamed away (as the inversion lists what statements drop): a later statement that
    /// creates one of those names again creates something new.
    pub gone: std::collections::BTreeMap<usize, Vec<(migsafe_sql::model::ObjectKind, String)>>,
}

impl Opaque {
    /// Watch the opaque statements of `prepared`; `s0` is the schema before it runs.
    pub fn new(prepared: &Prepared, s0: &Snapshot) -> Opaque {
        let own = |c: &str| {
            s0.functions.values().any(|f| f.name == c)
                || prepared
                    .statements
                    .iter()
                    .any(|st| matches!(&st.kind, migsafe_sql::StmtKind::CreateFunction { name, .. } if name.name == c))
        };
        let watch: Vec<usize> =
            prepared.statements.iter().filter(|st| opaque(st, &own).is_some()).map(|st| st.index).collect();
        let before = watch.contains(&0).then(|| s0.clone());
        Opaque { watch, before, diffs: Default::default(), gone: Default::default() }
    }

    /// Called after statement `i` ran on `c` (inside the migration's transaction).
    pub fn observe(&mut self, c: &mut postgres::Client, i: usize) {
        if self.watch.is_empty() {
            return;
        }
        if self.watch.contains(&i) {
            if let (Some(before), Ok(after)) = (self.before.take(), Snapshot::capture_within(c)) {
                self.gone.insert(i, gone_between(&before, &after));
                let sql = undo_opaque(c, &before, after);
                if !sql.is_empty() {
                    self.diffs.insert(i, sql);
                }
            }
        }
        if self.watch.contains(&(i + 1)) {
            self.before = Snapshot::capture_within(c).ok();
        }
    }
}

/// What `before` has and `after` has not, named as the inversion names what a statement drops.
fn gone_between(before: &Snapshot, after: &Snapshot) -> Vec<(migsafe_sql::model::ObjectKind, String)> {
    use migsafe_sql::model::ObjectKind as K;
    use migsafe_sql::quote_ident as qi;
    let mut out = Vec::new();
    for (n, t) in &before.tables {
        let Some(a) = after.tables.get(n) else {
            out.push((K::Table, n.to_string()));
            continue;
        };
        out.extend(
            t.columns
                .iter()
                .filter(|c| a.column(&c.name).is_none())
                .map(|c| (K::Column, format!("{n}.{}", qi(&c.name)))),
        );
        out.extend(
            t.constraints
                .keys()
                .filter(|k| !a.constraints.contains_key(*k))
                .map(|k| (K::Constraint, format!("{n}.{}", qi(k)))),
        );
        out.extend(
            t.indexes
                .keys()
                .filter(|k| !a.indexes.contains_key(*k))
                .map(|k| (K::Index, migsafe_catalog::QName::new(&n.schema, k.as_str()).to_string())),
        );
    }
    out
}

/// The DDL taking `after` back to `before` across one opaque statement. Tables, columns and
/// indexes it renamed (a DO block's `ALTER TABLE IF EXISTS a RENAME TO b`) are renamed back
/// rather than dropped and created empty: each rename is tried in a savepoint inside the
/// migration's transaction and the rest is the diff from there. Outside a transaction block
/// (nothing to try it in), the plain diff.
fn undo_opaque(c: &mut postgres::Client, before: &Snapshot, after: Snapshot) -> Vec<String> {
    let mut renames = table_and_column_renames(before, &after);
    if renames.is_empty() {
        return after.diff(before).statements();
    }
    let mut seen = match tried(c, &renames) {
        Some(s) => s,
        None => return after.diff(before).statements(),
    };
    let indexes = index_renames(before, &seen);
    if !indexes.is_empty() {
        renames.extend(indexes);
        match tried(c, &renames) {
            Some(s) => seen = s,
            None => return after.diff(before).statements(),
        }
    }
    renames.extend(seen.diff(before).statements());
    renames
}

/// The schema after running `sql` in a savepoint that is then rolled back (None when that
/// fails, or outside a transaction block).
fn tried(c: &mut postgres::Client, sql: &[String]) -> Option<Snapshot> {
    c.batch_execute("SAVEPOINT migsafe_renames").ok()?;
    let seen = sql.iter().try_for_each(|s| c.batch_execute(s)).ok().and_then(|()| Snapshot::capture_within(c).ok());
    c.batch_execute("ROLLBACK TO SAVEPOINT migsafe_renames; RELEASE SAVEPOINT migsafe_renames").ok()?;
    seen
}

/// Renames back: a table gone from `before` and one new in `after`, in the same schema, with
/// the same column types in the same order (one candidate only); then, in each table, a column
/// gone and a new one at the same position with the same type.
fn table_and_column_renames(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    use migsafe_catalog::QName;
    let types = |t: &migsafe_catalog::model::Table| t.columns.iter().map(|c| c.type_name.clone()).collect::<Vec<_>>();
    let gone: Vec<&QName> = before.tables.keys().filter(|n| !after.tables.contains_key(*n)).collect();
    let new: Vec<&QName> = after.tables.keys().filter(|n| !before.tables.contains_key(*n)).collect();
    let mut out = Vec::new();
    let mut pairs: Vec<(&QName, &QName)> =
        before.tables.keys().filter(|n| after.tables.contains_key(*n)).map(|n| (n, n)).collect();
    for g in gone {
        let want = types(&before.tables[g]);
        let fits: Vec<&&QName> =
            new.iter().filter(|n| n.schema == g.schema && types(&after.tables[**n]) == want).collect();
        if let [n] = fits.as_slice() {
            if !pairs.iter().any(|(_, a)| a == *n) {
                out.push(format!("ALTER TABLE {n} RENAME TO {}", migsafe_sql::quote_ident(&g.name)));
                pairs.push((g, n));
            }
        }
    }
    for (b, a) in pairs {
        let (tb, ta) = (&before.tables[b], &after.tables[a]);
        for (pos, col) in tb.columns.iter().enumerate() {
            if ta.column(&col.name).is_some() {
                continue;
            }
            if let Some(now) = ta.columns.get(pos) {
                if tb.column(&now.name).is_none() && now.type_name == col.type_name {
                    out.push(format!(
                        "ALTER TABLE {b} RENAME COLUMN {} TO {}",
                        migsafe_sql::quote_ident(&now.name),
                        migsafe_sql::quote_ident(&col.name)
                    ));
                }
            }
        }
    }
    out
}

/// Indexes of a table gone from `before` under one name and new in `after` under another,
/// with the same definition apart from the name.
fn index_renames(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (tn, tb) in &before.tables {
        let Some(ta) = after.tables.get(tn) else { continue };
        let unnamed =
            |name: &str, def: &str| def.replacen(&format!(" {} ON ", migsafe_sql::quote_ident(name)), " ON ", 1);
        for (old, ib) in tb.indexes.iter().filter(|(n, _)| !ta.indexes.contains_key(*n)) {
            let want = unnamed(old, &ib.definition);
            let fits: Vec<&String> = ta
                .indexes
                .iter()
                .filter(|(n, ia)| !tb.indexes.contains_key(*n) && unnamed(n, &ia.definition) == want)
                .map(|(n, _)| n)
                .collect();
            if let [new] = fits.as_slice() {
                out.push(format!(
                    "ALTER INDEX {} RENAME TO {}",
                    migsafe_catalog::QName::new(&tn.schema, new.as_str()),
                    migsafe_sql::quote_ident(old)
                ));
            }
        }
    }
    out
}

/// What makes a statement opaque to the rollback: a DO block, a CALL, or a SELECT calling
/// one of the database's own functions (which may write anything: `SELECT create_queue('q')`).
/// `own` says whether a function name is one of the database's (or the migration's) own.
pub(super) fn opaque(st: &migsafe_sql::Statement, own: &dyn Fn(&str) -> bool) -> Option<String> {
    use migsafe_sql::StmtKind;
    match &st.kind {
        StmtKind::Do => Some("is a DO block".into()),
        StmtKind::Other { tag } if tag == "CALL" => Some("calls a procedure".into()),
        StmtKind::Select { calls, .. } => calls.iter().find(|c| own(c)).map(|c| format!("calls the function {c}()")),
        _ => None,
    }
}
