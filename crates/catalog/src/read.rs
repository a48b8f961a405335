//! Reading a [`Snapshot`] from `pg_catalog`: one query per object kind for the whole database
//! (not per table), in one read-only repeatable-read transaction, with `search_path` empty so
//! every definition names its objects fully. Catalog differences between PostgreSQL 13 and 18
//! are handled by branching on `server_version_num`.

use postgres::{Client, IsolationLevel, Row};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use crate::model::*;
use crate::statements::{listed, Reusing};
use crate::CatalogError;

/// What to leave out of a snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// Schemas to skip entirely (besides the system ones). Default: migsafe's own.
    pub exclude_schemas: Vec<String>,
    /// When not empty, only these schemas (a tenant schema of a database holding many).
    pub only_schemas: Vec<String>,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions { exclude_schemas: vec!["migsafe".into(), "migsafe_backup".into()], only_schemas: vec![] }
    }
}

/// SQL that is true for a namespace oid expression we snapshot.
pub(crate) fn ns_filter(col: &str, opts: &SnapshotOptions) -> String {
    let mut s = format!(
        "{col} NOT IN (SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog','information_schema','pg_toast') \
         OR nspname LIKE 'pg\\_temp\\_%' OR nspname LIKE 'pg\\_toast\\_temp\\_%'"
    );
    for e in &opts.exclude_schemas {
        s.push_str(&format!(" OR nspname = {}", migsafe_sql::quote_literal(e)));
    }
    s.push(')');
    if !opts.only_schemas.is_empty() {
        let names: Vec<String> = opts.only_schemas.iter().map(|n| migsafe_sql::quote_literal(n)).collect();
        s.push_str(&format!(" AND {col} IN (SELECT oid FROM pg_namespace WHERE nspname IN ({}))", names.join(", ")));
    }
    s
}

/// PostgreSQL's `FirstNormalObjectId`: objects with a lower oid were made by `initdb` (the
/// server never assigns one to a user's object, even after the oid counter wraps), so a
/// catalog read of user objects can skip the thousands of built-in ones by their oid index.
/// Not for schemas: `public` is made by `initdb`.
pub(crate) const FIRST_USER_OID: u32 = 16384;

/// SQL that is true when the object is not a member of an extension.
pub(crate) fn not_extension_member(oid: &str, catalog: &str) -> String {
    format!(
        // NOT IN, hashed once: the NOT EXISTS form is planned as an index scan on classid
        // alone, per row (5 ms for pg_operator with an extension or two).
        "{oid} NOT IN (SELECT d.objid FROM pg_depend d WHERE d.classid = '{catalog}'::regclass AND d.deptype = 'e')"
    )
}

/// Grants to roles other than the owner, as sorted `role=PRIV[*]` strings.
fn grants(acl: &str, owner: &str, kind: char) -> String {
    let listed = format!(
        "coalesce((SELECT array_agg(g ORDER BY g) FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END \
         || '=' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END AS g \
         FROM aclexplode(coalesce({acl}, acldefault('{kind}', {owner}))) a WHERE a.grantee <> {owner}) x), '{{}}'::text[])"
    );
    // Where the default grants nothing to anyone but the owner (columns, tables, sequences,
    // schemas), an object without an ACL has none to list, and the subquery is not run for it.
    if matches!(kind, 'c' | 'r' | 's' | 'n') {
        format!("CASE WHEN {acl} IS NULL THEN '{{}}'::text[] ELSE {listed} END")
    } else {
        listed
    }
}

fn qname(schema: String, name: String) -> QName {
    QName { schema, name }
}

/// Read the snapshot of the database `client` is connected to.
pub fn read_snapshot(client: &mut Client, opts: &SnapshotOptions) -> Result<Snapshot, CatalogError> {
    let mut tx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
    let snap = read_in(&mut tx, None, opts)?;
    tx.commit()?;
    Ok(snap)
}

/// [`read_snapshot`] with a second session on the same database reading part of the catalog
/// at the same time: a snapshot is CPU work in the server, and two backends do it on two
/// cores. Both read in one MVCC snapshot (exported by `client`'s transaction and taken by
/// `helper`'s, as `pg_dump --jobs` does), so the result is the same as one session's.
pub fn read_snapshot_split(
    client: &mut Client,
    helper: &mut Client,
    opts: &SnapshotOptions,
) -> Result<Snapshot, CatalogError> {
    let mut tx = client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
    let id: String = tx.query_one("SELECT pg_catalog.pg_export_snapshot()", &[])?.get(0);
    let mut other =
        helper.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start()?;
    other.batch_execute(&format!("SET TRANSACTION SNAPSHOT {}", migsafe_sql::quote_literal(&id)))?;
    let snap = read_in(&mut tx, Some(&mut other), opts)?;
    other.commit()?;
    tx.commit()?;
    Ok(snap)
}

/// Read the snapshot inside the transaction block `client` has open (a migration's, to see
/// what its statements did so far), in a savepoint that is rolled back after, so the
/// session's settings and the transaction are as they were. Fails outside a transaction block.
pub fn read_snapshot_nested(client: &mut Client, opts: &SnapshotOptions) -> Result<Snapshot, CatalogError> {
    client.batch_execute("SAVEPOINT migsafe_snapshot")?;
    let snap = read_in(client, None, opts);
    client.batch_execute("ROLLBACK TO SAVEPOINT migsafe_snapshot; RELEASE SAVEPOINT migsafe_snapshot")?;
    snap
}

/// Run first in each reading session's transaction: every name printed fully qualified, and no
/// waiting long on a lock.
const SESSION_SETUP: &str = "SET LOCAL search_path = pg_catalog; SET LOCAL lock_timeout = '5s'";

/// The queries about the relations listed ([`Reusing::set_relations`]), the costliest first,
/// and how each one's rows go into the snapshot.
fn per_relation(version: u32) -> Vec<(String, Fold)> {
    vec![
        (columns_sql(version), Fold::Columns),
        (indexes_sql(), Fold::Indexes),
        (constraints_sql(), Fold::Constraints),
        (triggers_sql(version), Fold::Triggers),
        (rules_sql(), Fold::Rules),
        (policies_sql(), Fold::Policies),
    ]
}

#[derive(Clone, Copy)]
enum Fold {
    Columns,
    Indexes,
    Constraints,
    Triggers,
    Rules,
    Policies,
}

/// The rows of per-relation query `.0` ([`per_relation`]) about one part of the relations.
type Taken = Vec<(usize, Vec<Row>)>;

/// The per-relation work, shared by the sessions reading: each task is one of the
/// [`per_relation`] queries about one part of the relations (two parts when two sessions read,
/// so each session's share comes out about even; the whole list when one does). A session
/// takes the next task not taken yet.
struct Tasks {
    queries: Vec<(String, Fold)>,
    parts: Vec<Vec<u32>>,
    next: AtomicUsize,
}

impl Tasks {
    /// Run tasks until none is left, setting the session's list of relations as needed.
    fn take(&self, c: &mut Reusing<'_, impl postgres::GenericClient>) -> Result<Taken, CatalogError> {
        let mut out = Vec::new();
        let mut listed: Option<usize> = None;
        loop {
            let t = self.next.fetch_add(1, Ordering::SeqCst);
            let (q, part) = (t / self.parts.len(), t % self.parts.len());
            let Some((sql, _)) = self.queries.get(q) else { return Ok(out) };
            if listed != Some(part) {
                c.set_relations(self.parts[part].iter().copied())?;
                listed = Some(part);
            }
            out.push((q, c.query(sql)?));
        }
    }
}

/// What does not depend on the list of relations: sequences, functions and the other kinds.
fn read_unrelated(
    c: &mut Reusing<'_, impl postgres::GenericClient>,
    opts: &SnapshotOptions,
    snap: &mut Snapshot,
) -> Result<(), CatalogError> {
    read_sequences(c, opts, snap)?;
    read_functions(c, opts, snap)?;
    snap.others = crate::others::read_others(c, snap.server_version, opts)?;
    Ok(())
}

/// The helper's share: [`read_unrelated`] first, then, once the main session has listed the
/// relations, the per-relation tasks the main session has not taken.
fn helper_share(
    t: &mut postgres::Transaction<'_>,
    opts: &SnapshotOptions,
    version: u32,
    tasks: mpsc::Receiver<Arc<Tasks>>,
) -> Result<(Snapshot, Taken), CatalogError> {
    let c = &mut Reusing::new(t)?;
    c.batch_execute(SESSION_SETUP)?;
    let mut part = Snapshot { server_version: version, ..Default::default() };
    read_unrelated(c, opts, &mut part)?;
    // None: the main session failed, and says why.
    let Ok(tasks) = tasks.recv() else { return Ok((part, Vec::new())) };
    let rows = tasks.take(c)?;
    Ok((part, rows))
}

fn read_in(
    c: &mut impl postgres::GenericClient,
    helper: Option<&mut postgres::Transaction<'_>>,
    opts: &SnapshotOptions,
) -> Result<Snapshot, CatalogError> {
    let c = &mut Reusing::new(c)?;
    c.batch_execute(SESSION_SETUP)?;
    let version: i32 = c
        .query("SELECT current_setting('server_version_num')::int")?
        .first()
        .map(|r| r.get(0))
        .ok_or_else(|| CatalogError::Unexpected("no server version".into()))?;
    let version = version as u32;
    let (send, tasks) = mpsc::channel::<Arc<Tasks>>();
    std::thread::scope(|scope| {
        let helper = helper.map(|t| scope.spawn(move || helper_share(t, opts, version, tasks)));
        let sessions = if helper.is_some() { 2 } else { 1 };
        let mut snap = Snapshot { server_version: version, ..Default::default() };
        let mine = (move || -> Result<_, CatalogError> {
            read_schemas(c, opts, &mut snap)?;
            read_collations(c, opts, version, &mut snap)?;
            read_types(c, opts, &mut snap)?;
            let deps = rule_dependencies(c)?;
            let rels = read_relations(c, opts, &deps, &mut snap)?;
            let mut oids: Vec<u32> = rels.keys().copied().collect();
            oids.sort_unstable();
            let parts = (0..sessions).map(|p| oids.iter().skip(p).step_by(sessions).copied().collect()).collect();
            let work = Arc::new(Tasks { queries: per_relation(version), parts, next: AtomicUsize::new(0) });
            // Nobody listens when there is no helper.
            let _ = send.send(work.clone());
            drop(send);
            let rows = work.take(c)?;
            if sessions == 1 {
                read_unrelated(c, opts, &mut snap)?;
            }
            Ok((snap, rels, deps, rows, work))
        })();
        let theirs = match helper {
            Some(h) => {
                Some(h.join().map_err(|_| CatalogError::Unexpected("the helper session's reader panicked".into()))??)
            }
            None => None,
        };
        let (mut snap, rels, deps, mut rows, work) = mine?;
        if let Some((part, more)) = theirs {
            snap.sequences = part.sequences;
            snap.functions = part.functions;
            snap.others = part.others;
            rows.extend(more);
        }
        // Columns come in order within a relation, and each relation is in one part.
        rows.sort_by_key(|(q, _)| *q);
        for (q, rows) in rows {
            match work.queries[q].1 {
                Fold::Columns => fold_columns(rows, &rels, &mut snap)?,
                Fold::Indexes => fold_indexes(rows, &rels, &mut snap)?,
                Fold::Constraints => fold_constraints(rows, &rels, &mut snap)?,
                Fold::Triggers => fold_triggers(rows, &rels, &mut snap)?,
                Fold::Rules => fold_rules(rows, &rels, &deps, &mut snap)?,
                Fold::Policies => fold_policies(rows, &rels, &mut snap)?,
            }
        }
        Ok(snap)
    })
}

/// Schemas and extensions.
fn read_schemas(
    c: &mut Reusing<'_, impl postgres::GenericClient>,
    opts: &SnapshotOptions,
    snap: &mut Snapshot,
) -> Result<(), CatalogError> {
    let sql = format!(
        "SELECT n.nspname::text, (SELECT dsc.description FROM pg_description dsc WHERE dsc.objoid = n.oid AND dsc.classoid = 'pg_namespace'::regclass AND dsc.objsubid = 0), {} FROM pg_namespace n WHERE {} AND {}",
        grants("n.nspacl", "n.nspowner", 'n'),
        ns_filter("n.oid", opts),
        not_extension_member("n.oid", "pg_namespace")
    );
    for r in c.query(&sql)? {
        snap.schemas.insert(r.get(0), Schema { comment: r.get(1), grants: r.get(2) });
    }
    for r in c.query(
        "SELECT e.extname::text, n.nspname::text, e.extversion FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace")? {
        snap.extensions.insert(r.get(0), Extension { schema: r.get(1), version: r.get(2) });
    }
    Ok(())
}

fn read_collations(
    c: &mut Reusing<'_, impl postgres::GenericClient>,
    opts: &SnapshotOptions,
    version: u32,
    snap: &mut Snapshot,
) -> Result<(), CatalogError> {
    let locale = if version >= 170000 {
        "coalesce(co.colllocale, co.collcollate)"
    } else if version >= 150000 {
        "coalesce(co.colliculocale, co.collcollate)"
    } else {
        "co.collcollate"
    };
    let sql = format!(
        "SELECT n.nspname::text, co.collname::text, co.collprovider::text, coalesce({locale}, ''), co.collisdeterministic \
         FROM pg_collation co JOIN pg_namespace n ON n.oid = co.collnamespace WHERE co.oid >= {FIRST_USER_OID} AND {} AND {}",
        ns_filter("n.oid", opts),
        not_extension_member("co.oid", "pg_collation")
    );
    for r in c.query(&sql)? {
        let provider = match r.get::<_, String>(2).as_str() {
            "i" => "icu",
            "c" => "libc",
            _ => "default",
        };
        snap.collations.insert(
            qname(r.get(0), r.get(1)),
            Collation { provider: provider.into(), locale: r.get(3), deterministic: r.get(4) },
        );
    }
    Ok(())
}

fn read_types(
    c: &mut Reusing<'_, impl postgres::GenericClient>,
    opts: &SnapshotOptions,
    snap: &mut Snapshot,
) -> Result<(), CatalogError> {
    let sql = format!(
        "SELECT t.oid, n.nspname::text, t.typname::text, t.typtype::text, (SELECT dsc.description FROM pg_description dsc WHERE dsc.objoid = t.oid AND dsc.classoid = 'pg_type'::regclass AND dsc.objsubid = 0), \
           CASE WHEN t.typtype = 'e' THEN ARRAY(SELECT enumlabel::text FROM pg_enum WHERE enumtypid = t.oid ORDER BY enumsortorder) END, \
           CASE WHEN t.typtype = 'c' THEN ARRAY(SELECT a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) END, \
           CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END, \
           t.typnotnull, t.typdefault, \
           CASE WHEN t.typtype = 'd' AND t.typcollation <> (SELECT typcollation FROM pg_type b WHERE b.oid = t.typbasetype) \
                THEN (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) END, \
           CASE WHEN t.typtype = 'r' THEN (SELECT format_type(rngsubtype, NULL) FROM pg_range WHERE rngtypid = t.oid) END, \
           {} \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE t.oid >= {FIRST_USER_OID} AND t.typtype IN ('e','c','d','r') AND {} AND {} \
           AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')",
        grants("t.typacl", "t.typowner", 'T'),
        ns_filter("n.oid", opts),
        not_extension_member("t.oid", "pg_type")
    );
    let rows = c.query(&sql)?;
    let domain_constraints = c.query(
        "SELECT co.contypid, co.conname::text, pg_get_constraintdef(co.oid), co.convalidated FROM pg_constraint co \
         WHERE co.contypid <> 0 AND co.contype <> 'n'",
    )?;
    let mut by_domain: HashMap<u32, BTreeMap<String, (String, bool)>> = HashMap::new();
    for r in domain_constraints {
        by_domain.entry(r.get(0)).or_default().insert(r.get(1), (r.get(2), r.get(3)));
    }
    for r in rows {
        let oid: u32 = r.get(0);
        let comment: Option<String> = r.get(4);
        let def = match r.get::<_, String>(3).as_str() {
            "e" => TypeDef::Enum { labels: r.get::<_, Option<Vec<String>>>(5).unwrap_or_default(), comment },
            "c" => TypeDef::Composite {
                attributes: r
                    .get::<_, Option<Vec<String>>>(6)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| {
                        let (n, t) = a.split_once(' ').unwrap_or((&a, ""));
                        (n.to_string(), t.to_string())
                    })
                    .collect(),
                comment,
            },
            "d" => TypeDef::Domain {
                base: r.get::<_, Option<String>>(7).unwrap_or_default(),
                not_null: r.get(8),
                default: r.get(9),
                collation: r.get(10),
                constraints: by_domain.remove(&oid).unwrap_or_default(),
                comment,
            },
            _ => TypeDef::Range { subtype: r.get::<_, Option<String>>(11).unwrap_or_default(), comment },
        };
        let name = qname(r.get(1), r.get(2));
        let grants: Grants = r.get(12);
        if grants != default_type_grants() {
            snap.type_grants.insert(name.clone(), grants);
        }
        snap.types.insert(name, def);
    }
    Ok(())
}

/// Relations we snapshot, by oid: tables, views, materialized views.
type Rels = HashMap<u32, (QName, char)>;

fn read_relations(
    c: &mut Reusing<'_, impl postgres::GenericClient>,
    opts: &SnapshotOptions,
    view_deps: &RuleDeps,
    snap: &mut Snapshot,
) -> Result<Rels, CatalogError> {
    let sql = format!(
        "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text, c.relpersistence::text, \
           c.relrowsecurity, c.relforcerowsecurity, coalesce(c.reloptions, '{{}}')::text[], c.relreplident::text, \
           CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
           CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END, \
           CASE WHEN c.relispartition THEN (SELECT pn.nspname::text FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent \
                JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid) END, \
           CASE WHEN c.relispartition THEN (SELECT pc.relname::text FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent \
                WHERE i.inhrelid = c.oid) END, \
           ARRAY(SELECT pn.nspname::text || chr(31) || pc.relname::text FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent \
                JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid AND NOT c.relispartition ORDER BY i.inhseqno), \
           (SELECT dsc.description FROM pg_description dsc WHERE dsc.objoid = c.oid AND dsc.classoid = 'pg_class'::regclass AND dsc.objsubid = 0), {}, \
           CASE WHEN c.relkind IN ('v','m') THEN pg_get_viewdef(c.oid, true) END, c.relispopulated, \
           CASE WHEN c.relkind = 'f' THEN (SELECT s.srvname::text || coalesce(' ' || array_to_string(ft.ftoptions, ','), '') \
                FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver WHERE ft.ftrelid = c.oid) END, \
           (SELECT ic.relname::text FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid WHERE x.indrelid = c.oid AND x.indisreplident) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r','p','f','v','m') AND {} AND {}",
        grants("c.relacl", "c.relowner", 'r'),
        ns_filter("n.oid", opts),
        not_extension_member("c.oid", "pg_class")
    );
    let mut rels = Rels::new();
    for r in c.query(&sql)? {
        let oid: u32 = r.get(0);
        let name = qname(r.get(1), r.get(2));
        let kind: String = r.get(3);
        let kind = kind.chars().next().unwrap_or('r');
        rels.insert(oid, (name.clone(), kind));
        let comment: Option<String> = r.get(14);
        let grants: Vec<String> = r.get(15);
        if kind == 'v' || kind == 'm' {
            snap.views.insert(
                name,
                View {
                    materialized: kind == 'm',
                    definition: r.get::<_, Option<String>>(16).unwrap_or_default(),
                    columns: vec![],
                    options: r.get(7),
                    populated: r.get(17),
                    depends_on: view_deps.get(&(oid, "_RETURN".to_string())).cloned().unwrap_or_default(),
                    indexes: BTreeMap::new(),
                    comment,
                    column_comments: BTreeMap::new(),
                    grants,
                    triggers: BTreeMap::new(),
                },
            );
            continue;
        }
        let partition_of =
            match (r.get::<_, Option<String>>(11), r.get::<_, Option<String>>(12), r.get::<_, Option<String>>(10)) {
                (Some(s), Some(n), Some(bound)) => Some((qname(s, n), bound)),
                _ => None,
            };
        let replica_identity = ReplicaIdentity::from_code(&r.get::<_, String>(8), r.get(19));
        let table = Table {
            kind: TableKind::from_relkind(kind),
            persistence: if r.get::<_, String>(4) == "u" { Persistence::Unlogged } else { Persistence::Permanent },
            partition_key: r.get(9),
            partition_of,
            inherits: r
                .get::<_, Vec<String>>(13)
                .into_iter()
                .map(|s| {
                    let (a, b) = s.split_once('\u{1f}').unwrap_or(("", &s));
                    QName::new(a, b)
                })
                .collect(),
            rls: (r.get(5), r.get(6)),
            options: sorted(r.get(7)),
            replica_identity,
            columns: vec![],
            constraints: BTreeMap::new(),
            indexes: BTreeMap::new(),
            triggers: BTreeMap::new(),
            policies: BTreeMap::new(),
            comment,
            grants,
            foreign: r.get(18),
        };
        snap.tables.insert(name, table);
    }
    Ok(rels)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// (relation oid, rule name) → relations and functions the rule uses: a view's `_RETURN`
/// rule is its definition; other rules are `CREATE RULE`s.
type RuleDeps = HashMap<(u32, String), Vec<QName>>;

fn rule_dependencies(c: &mut Reusing<'_, impl postgres::GenericClient>) -> Result<RuleDeps, CatalogError> {
    let rows = c.query(&format!(
        "SELECT DISTINCT r.ev_class, r.rulename::text, n.nspname::text, coalesce(cl.relname, p.proname)::text \
         FROM pg_rewrite r JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid \
         LEFT JOIN pg_class cl ON d.refclassid = 'pg_class'::regclass AND cl.oid = d.refobjid \
         LEFT JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid \
         JOIN pg_namespace n ON n.oid = coalesce(cl.relnamespace, p.pronamespace) \
         WHERE r.oid >= {FIRST_USER_OID} AND d.refobjid <> r.ev_class AND (cl.oid IS NOT NULL OR p.oid IS NOT NULL) \
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         ORDER BY 1, 2, 3, 4"
    ))?;
    let mut out: RuleDeps = HashMap::new();
    for r in rows {
        out.entry((r.get(0), r.get(1))).or_default().push(qname(r.get(2), r.get(3)));
    }
    Ok(out)
}

/// The query of the columns of the relations listed.
fn columns_sql(version: u32) -> String {
    // Compression exists from 14; the statistics target is NULL by default from 17, -1 before.
    let compression = if version >= 140000 {
        "CASE a.attcompression WHEN 'p' THEN 'compression=pglz' WHEN 'l' THEN 'compression=lz4' END"
    } else {
        "NULL"
    };
    let statistics = if version >= 170000 {
        "'statistics=' || a.attstattarget"
    } else {
        "CASE WHEN a.attstattarget >= 0 THEN 'statistics=' || a.attstattarget END"
    };
    // Per column, so what most columns do not need is not run for them: without options the
    // three settings are already in order (compression < statistics < storage).
    let own = format!(
        "ARRAY[{compression}, {statistics}, \
           CASE WHEN a.attstorage <> t.typstorage THEN 'storage=' || CASE a.attstorage WHEN 'p' THEN 'plain' \
                WHEN 'e' THEN 'external' WHEN 'm' THEN 'main' ELSE 'extended' END END]"
    );
    let settings = format!(
        "CASE WHEN a.attoptions IS NULL THEN array_remove({own}, NULL) \
         ELSE ARRAY(SELECT x FROM unnest({own} || a.attoptions) x WHERE x IS NOT NULL ORDER BY x) END"
    );
    // PostgreSQL 18 keeps every NOT NULL as a named constraint. Only a table's own are read: an
    // inherited one (a partition's) keeps the name it had when it was attached, or its
    // parent's when created as a partition, and cannot be renamed; it is not compared.
    // Joined (hashed), not a subquery per column: PostgreSQL keeps one per column.
    let (not_null_name, not_null_join) = if version >= 180000 {
        (
            "nn.conname::text",
            "LEFT JOIN pg_constraint nn ON nn.conrelid = a.attrelid AND nn.contype = 'n' \
               AND nn.conkey[1] = a.attnum AND nn.conislocal AND nn.coninhcount = 0",
        )
    } else {
        ("NULL::text", "")
    };
    let listed = listed("a.attrelid");
    format!(
        "SELECT a.attrelid, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
           pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text, \
           CASE WHEN a.attcollation <> t.typcollation THEN (SELECT quote_ident(cn.nspname) || '.' || quote_ident(co.collname) \
                FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END, \
           (SELECT dsc.description FROM pg_description dsc WHERE dsc.objoid = a.attrelid AND dsc.classoid = 'pg_class'::regclass AND dsc.objsubid = a.attnum), \
           {}, a.attinhcount > 0, \
           {settings}, \
           CASE WHEN a.attidentity <> '' THEN (SELECT ARRAY[s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle::int] \
              FROM pg_depend dep JOIN pg_sequence s ON s.seqrelid = dep.objid \
              WHERE dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass \
                AND dep.refobjid = a.attrelid AND dep.refobjsubid = a.attnum AND dep.deptype = 'i' LIMIT 1) END, \
           {not_null_name}, \
           CASE WHEN a.attidentity <> '' THEN (SELECT ARRAY[sn.nspname::text, sc.relname::text] \
              FROM pg_depend dep JOIN pg_class sc ON sc.oid = dep.objid JOIN pg_namespace sn ON sn.oid = sc.relnamespace \
              WHERE dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass \
                AND dep.refobjid = a.attrelid AND dep.refobjsubid = a.attnum AND dep.deptype = 'i' LIMIT 1) END, \
           a.attislocal AND a.attinhcount > 0 \
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
         JOIN pg_class cl ON cl.oid = a.attrelid \
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum {not_null_join} \
         WHERE {listed} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum",
        grants("a.attacl", "cl.relowner", 'c')
    )
}

fn fold_columns(rows: Vec<Row>, rels: &Rels, snap: &mut Snapshot) -> Result<(), CatalogError> {
    for r in rows {
        let Some((name, kind)) = rels.get(&r.get::<_, u32>(0)) else { continue };
        let col_name: String = r.get(1);
        if *kind == 'v' || *kind == 'm' {
            if let Some(v) = snap.views.get_mut(name) {
                if let Some(cm) = r.get::<_, Option<String>>(8) {
                    v.column_comments.insert(col_name.clone(), cm);
                }
                v.columns.push(col_name);
            }
            continue;
        }
        let identity: String = r.get(5);
        let generated: String = r.get(6);
        let expr: Option<String> = r.get(4);
        let (default, generated) = if generated.is_empty() {
            (expr, None)
        } else {
            let kind = if generated == "v" { GeneratedKind::Virtual } else { GeneratedKind::Stored };
            (None, Some(Generated { kind, expr: expr.unwrap_or_default() }))
        };
        let column = Column {
            name: col_name,
            type_name: r.get(2),
            not_null: r.get(3),
            default,
            identity: match identity.as_str() {
                "a" => Some(IdentityKind::Always),
                "d" => Some(IdentityKind::ByDefault),
                _ => None,
            },
            identity_options: r.get::<_, Option<Vec<i64>>>(12).and_then(|v| match v[..] {
                [start, increment, min, max, cache, cycle] => {
                    Some(SequenceOptions { start, increment, min, max, cache, cycle: cycle != 0 })
                }
                _ => None,
            }),
            not_null_name: r.get(13),
            identity_sequence: r.get::<_, Option<Vec<String>>>(14).and_then(|v| match <[String; 2]>::try_from(v) {
                Ok([schema, name]) => Some(QName::new(schema, name)),
                Err(_) => None,
            }),
            generated,
            collation: r.get(7),
            comment: r.get(8),
            grants: r.get(9),
            inherited: r.get(10),
            local_too: r.get(15),
            settings: r.get(11),
        };
        if let Some(t) = snap.tables.get_mut(name) {
            t.columns.push(column);
        }
    }
    Ok(())
}

fn constraints_sql() -> String {
    format!("SELECT co.conrelid, co.conname::text, co.contype::text, pg_get_constraintdef(co.oid), co.convalidated, \
           fn.nspname::text, fc.relname::text, \
           ARRAY(SELECT a.attname::text FROM unnest(co.conkey) WITH ORDINALITY k(n, i) \
                 JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.n ORDER BY k.i), \
           (co.conparentid <> 0 OR NOT co.conislocal), (SELECT dsc.description FROM pg_description dsc WHERE dsc.objoid = co.oid AND dsc.classoid = 'pg_constraint'::regclass AND dsc.objsubid = 0) \
         FROM pg_constraint co \
         LEFT JOIN pg_class fc ON fc.oid = co.confrelid LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace \
         WHERE {listed} AND co.contype <> 'n'", listed = listed("co.conrelid"))
}

fn fold_constraints(rows: Vec<Row>, rels: &Rels, snap: &mut Snapshot) -> Result<(), CatalogError> {
    for r in rows {
        let Some((name, _)) = rels.get(&r.get::<_, u32>(0)) else { continue };
        let references = match (r.get::<_, Option<String>>(5), r.get::<_, Option<String>>(6)) {
            (Some(s), Some(n)) => Some(qname(s, n)),
            _ => None,
        };
        let contype: String = r.get(2);
        let Some(kind) = ConstraintType::from_contype(&contype) else {
            return Err(CatalogError::Unexpected(format!("constraint type {contype:?}")));
        };
        let con = Constraint {
            kind,
            definition: r.get(3),
            validated: r.get(4),
            references,
            columns: r.get(7),
            inherited: r.get(8),
            comment: r.get(9),
        };
        if let Some(t) = snap.tables.get_mut(name) {
            t.constraints.insert(r.get(1), con);
        }
    }
    Ok(())
}

fn indexes_sql() -> String {
    format!("SELECT i.indrelid, ic.relname::text, pg_get_indexdef(i.indexrelid), i.indisvalid AND i.indisready, \
           EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid AND co.conrelid = i.indrelid AND co.contype IN ('p','u','x')), \
           ic.relispartition, (SELECT dsc.description FROM pg_description dsc WHERE dsc.objoid = i.indexrelid AND dsc.classoid = 'pg_class'::regclass AND dsc.objsubid = 0), \
           i.indisclustered \
         FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE {listed}", listed = listed("i.indrelid"))
}

fn fold_indexes(rows: Vec<Row>, rels: &Rels, snap: &mut Snapshot) -> Result<(), CatalogError> {
    for r in rows {
        let Some((name, _)) = rels.get(&r.get::<_, u32>(0)) else { continue };
        let idx = Index {
            definition: r.get(2),
            valid: r.get(3),
            constraint: r.get(4),
            inherited: r.get(5),
            comment: r.get(6),
            clustered: r.get(7),
        };
        if let Some(t) = snap.tables.get_mut(name) {
            t.indexes.insert(r.get(1), idx);
        } else if let Some(v) = snap.views.get_mut(name) {
            v.indexes.insert(r.get(1), idx);
        }
    }
    Ok(())
}

fn triggers_sql(version: u32) -> String {
    let listed = listed("t.tgrelid");
    let parent = if version >= 130000 { "t.tgparentid <> 0" } else { "false" };
    format!(
        "SELECT t.tgrelid, t.tgname::text, pg_get_triggerdef(t.oid), t.tgenabled::text, {parent}, (SELECT dsc.description FROM pg_description dsc WHERE dsc.objoid = t.oid AND dsc.classoid = 'pg_trigger'::regclass AND dsc.objsubid = 0) \
         FROM pg_trigger t WHERE NOT t.tgisinternal AND {listed}"
    )
}

fn fold_triggers(rows: Vec<Row>, rels: &Rels, snap: &mut Snapshot) -> Result<(), CatalogError> {
    for r in rows {
        let Some((name, _)) = rels.get(&r.get::<_, u32>(0)) else { continue };
        let trigger = Trigger {
            definition: r.get(2),
            enabled: Firing::from_code(&r.get::<_, String>(3)),
            inherited: r.get(4),
            comment: r.get(5),
        };
        if let Some(t) = snap.tables.get_mut(name) {
            t.triggers.insert(r.get(1), trigger);
        } else if let Some(v) = snap.views.get_mut(name) {
            v.triggers.insert(r.get(1), trigger);
        }
    }
    Ok(())
}

fn rules_sql() -> String {
    format!("SELECT r.ev_class, r.rulename::text, pg_get_ruledef(r.oid), r.ev_enabled::text, \
           (SELECT dsc.description FROM pg_description dsc WHERE dsc.objoid = r.oid AND dsc.classoid = 'pg_rewrite'::regclass AND dsc.objsubid = 0) \
         FROM pg_rewrite r WHERE r.rulename <> '_RETURN' AND {listed}", listed = listed("r.ev_class"))
}

fn fold_rules(rows: Vec<Row>, rels: &Rels, deps: &RuleDeps, snap: &mut Snapshot) -> Result<(), CatalogError> {
    for r in rows {
        let oid: u32 = r.get(0);
        let Some((relation, _)) = rels.get(&oid) else { continue };
        let name: String = r.get(1);
        let definition: String = r.get(2);
        let rule = RewriteRule {
            relation: relation.clone(),
            depends_on: deps.get(&(oid, name.clone())).cloned().unwrap_or_default(),
            name: name.clone(),
            definition: definition.trim_end().trim_end_matches(';').to_string(),
            enabled: Firing::from_code(&r.get::<_, String>(3)),
            comment: r.get(4),
        };
        snap.rules.insert(RewriteRule::key(relation, &name), rule);
    }
    Ok(())
}

fn policies_sql() -> String {
    format!("SELECT p.polrelid, p.polname::text, p.polpermissive, p.polcmd::text, \
           ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r)::text END FROM unnest(p.polroles) r ORDER BY 1), \
           pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid) \
         FROM pg_policy p WHERE {listed}", listed = listed("p.polrelid"))
}

fn fold_policies(rows: Vec<Row>, rels: &Rels, snap: &mut Snapshot) -> Result<(), CatalogError> {
    for r in rows {
        let Some((name, _)) = rels.get(&r.get::<_, u32>(0)) else { continue };
        let command = match r.get::<_, String>(3).as_str() {
            "r" => "SELECT",
            "a" => "INSERT",
            "w" => "UPDATE",
            "d" => "DELETE",
            _ => "ALL",
        };
        if let Some(t) = snap.tables.get_mut(name) {
            t.policies.insert(
                r.get(1),
                Policy {
                    permissive: r.get(2),
                    command: command.into(),
                    roles: r.get(4),
                    using: r.get(5),
                    with_check: r.get(6),
                },
            );
        }
    }
    Ok(())
}

fn read_sequences(
    c: &mut Reusing<'_, impl postgres::GenericClient>,
    opts: &SnapshotOptions,
    snap: &mut Snapshot,
) -> Result<(), CatalogError> {
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, \
           s.seqcache, s.seqcycle, \
           (SELECT tn.nspname::text FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = t.relnamespace \
             WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a' AND d.refobjsubid > 0), \
           (SELECT t.relname::text FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid \
             WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a' AND d.refobjsubid > 0), \
           (SELECT a.attname::text FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
             WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a' AND d.refobjsubid > 0), \
           (SELECT dsc.description FROM pg_description dsc WHERE dsc.objoid = c.oid AND dsc.classoid = 'pg_class'::regclass AND dsc.objsubid = 0), {} \
         FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE {} AND {} \
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'i')",
        grants("c.relacl", "c.relowner", 's'),
        ns_filter("n.oid", opts),
        not_extension_member("c.oid", "pg_class")
    );
    for r in c.query(&sql)? {
        let owned_by =
            match (r.get::<_, Option<String>>(9), r.get::<_, Option<String>>(10), r.get::<_, Option<String>>(11)) {
                (Some(s), Some(t), Some(col)) => Some((qname(s, t), col)),
                _ => None,
            };
        snap.sequences.insert(
            qname(r.get(0), r.get(1)),
            Sequence {
                data_type: r.get(2),
                options: SequenceOptions {
                    start: r.get(3),
                    increment: r.get(4),
                    min: r.get(5),
                    max: r.get(6),
                    cache: r.get(7),
                    cycle: r.get(8),
                },
                owned_by,
                comment: r.get(12),
                grants: r.get(13),
            },
        );
    }
    Ok(())
}

fn read_functions(
    c: &mut Reusing<'_, impl postgres::GenericClient>,
    opts: &SnapshotOptions,
    snap: &mut Snapshot,
) -> Result<(), CatalogError> {
    let sql = format!(
        "SELECT n.nspname::text, p.proname::text, p.prokind::text, pg_get_function_identity_arguments(p.oid), \
           CASE WHEN p.prokind <> 'p' THEN pg_get_function_result(p.oid) END, \
           CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) ELSE \
             (SELECT 'CREATE AGGREGATE ' || quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_arguments(p.oid) || ') (' \
                || 'SFUNC = ' || a.aggtransfn::regproc::text || ', STYPE = ' || format_type(a.aggtranstype, NULL) \
                || CASE WHEN a.aggfinalfn <> 0 THEN ', FINALFUNC = ' || a.aggfinalfn::regproc::text ELSE '' END \
                || CASE WHEN a.aggcombinefn <> 0 THEN ', COMBINEFUNC = ' || a.aggcombinefn::regproc::text ELSE '' END \
                || CASE WHEN a.agginitval IS NOT NULL THEN ', INITCOND = ' || quote_literal(a.agginitval) ELSE '' END \
                || CASE WHEN a.aggsortop <> 0 THEN ', SORTOP = OPERATOR(' || a.aggsortop::regoperator::text || ')' ELSE '' END \
                || ')' FROM pg_aggregate a WHERE a.aggfnoid = p.oid) END, \
           (SELECT dsc.description FROM pg_description dsc WHERE dsc.objoid = p.oid AND dsc.classoid = 'pg_proc'::regclass AND dsc.objsubid = 0), {} \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid >= {FIRST_USER_OID} AND {} AND {}",
        grants("p.proacl", "p.proowner", 'f'),
        ns_filter("n.oid", opts),
        not_extension_member("p.oid", "pg_proc")
    );
    for r in c.query(&sql)? {
        let kind = FunctionKind::from_prokind(&r.get::<_, String>(2));
        let f = Function {
            schema: r.get(0),
            name: r.get(1),
            kind,
            identity_args: r.get(3),
            result: r.get(4),
            definition: r.get::<_, Option<String>>(5).unwrap_or_default(),
            comment: r.get(6),
            grants: r.get(7),
        };
        snap.functions.insert(f.signature(), f);
    }
    Ok(())
}
