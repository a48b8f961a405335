//! An oracle for the schema tests that does not use migsafe's snapshot: one query over
//! `pg_catalog`, written apart from `migsafe_catalog::read`, that lists every user object of a
//! database as text lines (names instead of OIDs, PostgreSQL's own deparse functions for
//! definitions, no column positions). Two databases have the same schema when they give the
//! same lines; the lines one has and the other lacks say where they differ.

use std::collections::BTreeSet;

/// The objects the oracle lists. Left out: owners (every test runs as one user), storage
/// parameters PostgreSQL sets itself (statistics counters, relfilenodes) and internal objects
/// (foreign-key triggers, array types, row types of tables), and `connoinherit` of constraints
/// other than CHECK and NOT NULL (it means nothing for them; PostgreSQL sets it one way for a
/// key made on a partition and another for one made through its parent). An inherited NOT NULL
/// constraint (PostgreSQL 18: a partition's) is compared without its name and whether it is also
/// local: those come from how the partition was made (created under its parent or attached),
/// cannot be renamed, and migsafe's snapshot says it does not compare them.
const QUERY: &str = r#"
WITH ns AS (
  SELECT oid, nspname FROM pg_namespace
  WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'migsafe', 'migsafe_backup')
    AND nspname NOT LIKE 'pg\_temp\_%' AND nspname NOT LIKE 'pg\_toast\_temp\_%'),
ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'),
rel AS (SELECT c.* FROM pg_class c WHERE c.relnamespace IN (SELECT oid FROM ns)
        AND (c.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_class'::regclass)))
SELECT 'schema ' || quote_ident(nspname) || ' acl=' || (SELECT coalesce((SELECT string_agg(i::text, ',' ORDER BY i::text) FROM unnest(coalesce(nspacl, acldefault('n', nspowner))) i), '') FROM pg_namespace p WHERE p.oid = ns.oid)
  FROM ns
UNION ALL
SELECT 'extension ' || quote_ident(extname) || ' ' || extversion || ' in ' || extnamespace::regnamespace::text
  FROM pg_extension
UNION ALL
SELECT 'relation ' || c.oid::regclass::text || ' kind=' || c.relkind::text || ' persistence=' || c.relpersistence::text
  || ' options=' || coalesce(c.reloptions::text, '') || ' rls=' || c.relrowsecurity || '/' || c.relforcerowsecurity
  || ' replident=' || c.relreplident::text || ' partkey=' || coalesce(pg_get_partkeydef(c.oid), '')
  || ' bound=' || coalesce(pg_get_expr(c.relpartbound, c.oid), '') || ' acl=' || coalesce((SELECT string_agg(i::text, ',' ORDER BY i::text) FROM unnest(coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) i), '')
  || ' am=' || coalesce((SELECT amname::text FROM pg_am WHERE pg_am.oid = c.relam), '')
  || ' populated=' || c.relispopulated
  || CASE WHEN c.relkind IN ('v', 'm') THEN ' query=' || pg_get_viewdef(c.oid) ELSE '' END
  FROM rel c WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c')
UNION ALL
SELECT 'inherits ' || i.inhrelid::regclass::text || ' from ' || i.inhparent::regclass::text || ' #' || i.inhseqno
  FROM pg_inherits i WHERE i.inhrelid IN (SELECT oid FROM rel)
UNION ALL
SELECT 'column ' || a.attrelid::regclass::text || '.' || quote_ident(a.attname)
  || ' type=' || format_type(a.atttypid, a.atttypmod) || ' notnull=' || a.attnotnull
  || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' identity=' || a.attidentity::text
  || ' generated=' || a.attgenerated::text || ' collation=' || coalesce(a.attcollation::regcollation::text, '')
  || ' storage=' || a.attstorage::text || ' stattarget=' || coalesce(a.attstattarget::text, '')
  || ' local=' || a.attislocal || ' inherited=' || a.attinhcount || ' options=' || coalesce(a.attoptions::text, '')
  || ' acl=' || coalesce((SELECT string_agg(i::text, ',' ORDER BY i::text) FROM unnest(coalesce(a.attacl, acldefault('c', c.relowner))) i), '')
  FROM pg_attribute a JOIN rel c ON c.oid = a.attrelid
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
UNION ALL
SELECT CASE WHEN co.contype = 'n' AND co.coninhcount > 0 THEN
    'inherited not null ' || co.conrelid::regclass::text || ' ' || pg_get_constraintdef(co.oid)
  ELSE 'constraint ' || coalesce(co.conrelid::regclass::text, co.contypid::regtype::text) || '.' || quote_ident(co.conname)
  || ' ' || pg_get_constraintdef(co.oid) || ' validated=' || co.convalidated
  || ' deferrable=' || co.condeferrable || '/' || co.condeferred || ' local=' || co.conislocal
  || ' inherited=' || co.coninhcount
  || CASE WHEN co.contype IN ('c', 'n') THEN ' noinherit=' || co.connoinherit ELSE '' END
  || ' parent=' || coalesce((SELECT p.conname::text FROM pg_constraint p WHERE p.oid = co.conparentid), '') END
  FROM pg_constraint co WHERE co.connamespace IN (SELECT oid FROM ns)
UNION ALL
SELECT 'index ' || x.indexrelid::regclass::text || ' ' || pg_get_indexdef(x.indexrelid)
  || ' valid=' || x.indisvalid || ' ready=' || x.indisready || ' primary=' || x.indisprimary
  || ' immediate=' || x.indimmediate || ' clustered=' || x.indisclustered || ' replident=' || x.indisreplident
  || ' options=' || coalesce((SELECT reloptions::text FROM pg_class ic WHERE ic.oid = x.indexrelid), '')
  || ' attached-to=' || coalesce((SELECT inhparent::regclass::text FROM pg_inherits WHERE inhrelid = x.indexrelid), '')
  FROM pg_index x WHERE x.indrelid IN (SELECT oid FROM rel)
UNION ALL
SELECT 'sequence ' || s.seqrelid::regclass::text || ' as ' || s.seqtypid::regtype::text || ' start=' || s.seqstart
  || ' increment=' || s.seqincrement || ' min=' || s.seqmin || ' max=' || s.seqmax || ' cache=' || s.seqcache
  || ' cycle=' || s.seqcycle
  || ' owned-by=' || coalesce((SELECT pg_describe_object(refclassid, refobjid, refobjsubid) FROM pg_depend dp
       WHERE dp.classid = 'pg_class'::regclass AND dp.objid = s.seqrelid AND dp.refclassid = 'pg_class'::regclass
       AND dp.deptype IN ('a', 'i') LIMIT 1), '')
  FROM pg_sequence s WHERE s.seqrelid IN (SELECT oid FROM rel)
UNION ALL
SELECT 'trigger ' || t.tgrelid::regclass::text || '.' || quote_ident(t.tgname) || ' ' || pg_get_triggerdef(t.oid)
  || ' enabled=' || t.tgenabled::text
  || ' parent=' || coalesce((SELECT p.tgname::text FROM pg_trigger p WHERE p.oid = t.tgparentid), '')
  FROM pg_trigger t WHERE t.tgrelid IN (SELECT oid FROM rel) AND NOT t.tgisinternal
UNION ALL
SELECT 'policy ' || p.polrelid::regclass::text || '.' || quote_ident(p.polname) || ' cmd=' || p.polcmd::text
  || ' permissive=' || p.polpermissive || ' roles=' || p.polroles::regrole[]::text
  || ' using=' || coalesce(pg_get_expr(p.polqual, p.polrelid), '')
  || ' check=' || coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')
  FROM pg_policy p WHERE p.polrelid IN (SELECT oid FROM rel)
UNION ALL
SELECT 'rule ' || r.ev_class::regclass::text || '.' || quote_ident(r.rulename) || ' ' || pg_get_ruledef(r.oid)
  || ' enabled=' || r.ev_enabled::text
  FROM pg_rewrite r WHERE r.ev_class IN (SELECT oid FROM rel) AND r.rulename <> '_RETURN'
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text || ' kind=' || p.prokind::text || ' acl=' || coalesce((SELECT string_agg(i::text, ',' ORDER BY i::text) FROM unnest(coalesce(p.proacl, acldefault('f', p.proowner))) i), '')
  || CASE WHEN p.prokind IN ('f', 'p') THEN ' ' || pg_get_functiondef(p.oid) ELSE '' END
  FROM pg_proc p WHERE p.pronamespace IN (SELECT oid FROM ns)
    AND p.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_proc'::regclass)
UNION ALL
SELECT 'type ' || t.oid::regtype::text || ' kind=' || t.typtype::text
  || ' base=' || CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) ELSE '' END
  || ' notnull=' || t.typnotnull || ' default=' || coalesce(t.typdefault, '')
  || ' collation=' || coalesce(t.typcollation::regcollation::text, '') || ' acl=' || coalesce((SELECT string_agg(i::text, ',' ORDER BY i::text) FROM unnest(coalesce(t.typacl, acldefault('T', t.typowner))) i), '')
  || ' labels=' || coalesce((SELECT string_agg(quote_literal(e.enumlabel), ',' ORDER BY e.enumsortorder)
       FROM pg_enum e WHERE e.enumtypid = t.oid), '')
  || ' range-of=' || coalesce((SELECT rngsubtype::regtype::text FROM pg_range WHERE rngtypid = t.oid), '')
  FROM pg_type t WHERE t.typnamespace IN (SELECT oid FROM ns) AND t.typtype IN ('e', 'd', 'r', 'c', 'm')
    AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
    AND t.oid NOT IN (SELECT objid FROM ext WHERE classid = 'pg_type'::regclass)
UNION ALL
SELECT 'statistics ' || pg_get_statisticsobjdef(s.oid)
  FROM pg_statistic_ext s WHERE s.stxnamespace IN (SELECT oid FROM ns)
UNION ALL
SELECT 'comment ' || pg_describe_object(d.classoid, d.objoid, d.objsubid) || ' = ' || quote_literal(d.description)
  FROM pg_description d
  WHERE (pg_identify_object(d.classoid, d.objoid, d.objsubid)).schema IN (SELECT nspname FROM ns)
     OR (d.classoid = 'pg_trigger'::regclass AND d.objoid IN (SELECT oid FROM pg_trigger WHERE tgrelid IN (SELECT oid FROM rel)))
     OR (d.classoid = 'pg_policy'::regclass AND d.objoid IN (SELECT oid FROM pg_policy WHERE polrelid IN (SELECT oid FROM rel)))
     OR (d.classoid = 'pg_rewrite'::regclass AND d.objoid IN (SELECT oid FROM pg_rewrite WHERE ev_class IN (SELECT oid FROM rel)))
     OR (d.classoid = 'pg_namespace'::regclass AND d.objoid IN (SELECT oid FROM ns))
"#;

/// The lines of the database `client` is connected to (names fully qualified).
pub fn schema_lines(client: &mut postgres::Client) -> BTreeSet<String> {
    let mut tx = client.transaction().unwrap();
    tx.batch_execute("SET LOCAL search_path = ''").unwrap();
    let lines = tx.query(QUERY, &[]).unwrap().iter().map(|r| r.get::<_, String>(0)).collect();
    tx.commit().unwrap();
    lines
}

/// What `got` lacks of `want` (`+`) and has that `want` does not (`-`), one per line; empty
/// when the two are the same schema.
pub fn difference(got: &BTreeSet<String>, want: &BTreeSet<String>) -> String {
    let mut out = String::new();
    for l in want.difference(got) {
        out.push_str(&format!("+ {l}\n"));
    }
    for l in got.difference(want) {
        out.push_str(&format!("- {l}\n"));
    }
    out
}
