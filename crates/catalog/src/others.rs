//! Objects the snapshot does not model field by field (see [`OtherObject`]): one catalog
//! query per kind, each giving what the object is, what is compared, and the SQL to drop,
//! create or alter it where that can be written from the catalog.

use std::collections::BTreeMap;

use crate::model::OtherObject;
use crate::read::{not_extension_member, ns_filter, SnapshotOptions, FIRST_USER_OID};
use crate::statements::Reusing;
use crate::CatalogError;

/// `kind, identity, definition, state, create, drop, alter, member` for each kind, by version.
fn queries(version: u32, opts: &SnapshotOptions) -> Vec<String> {
    let ns = |col: &str| ns_filter(col, opts);
    let mut q = Vec::new();
    // Extended statistics.
    q.push(format!(
        "SELECT 'statistics object', quote_ident(n.nspname) || '.' || quote_ident(s.stxname), pg_get_statisticsobjdef(s.oid), \
           coalesce(nullif(s.stxstattarget::int, -1)::text, ''), \
           pg_get_statisticsobjdef(s.oid) || coalesce(';' || chr(10) || 'ALTER STATISTICS ' || quote_ident(n.nspname) || '.' || quote_ident(s.stxname) \
             || ' SET STATISTICS ' || nullif(s.stxstattarget::int, -1), ''), \
           'DROP STATISTICS IF EXISTS ' || quote_ident(n.nspname) || '.' || quote_ident(s.stxname), \
           'ALTER STATISTICS ' || quote_ident(n.nspname) || '.' || quote_ident(s.stxname) || ' SET STATISTICS ' || coalesce(nullif(s.stxstattarget::int, -1), -1), false \
         FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE {} AND {}",
        ns("s.stxnamespace"),
        not_extension_member("s.oid", "pg_statistic_ext")
    ));
    // Publications, and the tables and schemas they publish.
    let gencols = if version >= 180000 {
        "|| ', publish_generated_columns = ' || CASE p.pubgencols WHEN 's' THEN 'stored' ELSE 'none' END"
    } else {
        ""
    };
    let with = format!(
        "' WITH (publish = ' || quote_literal(concat_ws(', ', CASE WHEN p.pubinsert THEN 'insert' END, CASE WHEN p.pubupdate THEN 'update' END, \
           CASE WHEN p.pubdelete THEN 'delete' END, CASE WHEN p.pubtruncate THEN 'truncate' END)) \
           || ', publish_via_partition_root = ' || p.pubviaroot {gencols} || ')'"
    );
    q.push(format!(
        "SELECT 'publication', quote_ident(p.pubname), CASE WHEN p.puballtables THEN 'FOR ALL TABLES' ELSE '' END, {with}, \
           'CREATE PUBLICATION ' || quote_ident(p.pubname) || CASE WHEN p.puballtables THEN ' FOR ALL TABLES' ELSE '' END || {with}, \
           'DROP PUBLICATION IF EXISTS ' || quote_ident(p.pubname), 'ALTER PUBLICATION ' || quote_ident(p.pubname) || ' SET' || substr({with}, 6), false \
         FROM pg_publication p"
    ));
    let (cols, filter) = if version >= 150000 {
        (
            "coalesce(' (' || (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a \
               WHERE a.attrelid = r.prrelid AND a.attnum = ANY (r.prattrs)) || ')', '')",
            "coalesce(' WHERE (' || pg_get_expr(r.prqual, r.prrelid) || ')', '')",
        )
    } else {
        ("''", "''")
    };
    q.push(format!(
        "SELECT 'publication table', quote_ident(p.pubname) || ' ' || r.prrelid::regclass::text, {cols} || {filter}, '', \
           'ALTER PUBLICATION ' || quote_ident(p.pubname) || ' ADD TABLE ONLY ' || r.prrelid::regclass::text || {cols} || {filter}, \
           'ALTER PUBLICATION ' || quote_ident(p.pubname) || ' DROP TABLE ONLY ' || r.prrelid::regclass::text, NULL, true \
         FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid"
    ));
    if version >= 150000 {
        q.push(
            "SELECT 'publication schema', quote_ident(p.pubname) || ' ' || quote_ident(n.nspname), '', '', \
               'ALTER PUBLICATION ' || quote_ident(p.pubname) || ' ADD TABLES IN SCHEMA ' || quote_ident(n.nspname), \
               'ALTER PUBLICATION ' || quote_ident(p.pubname) || ' DROP TABLES IN SCHEMA ' || quote_ident(n.nspname), NULL, true \
             FROM pg_publication_namespace pn JOIN pg_publication p ON p.oid = pn.pnpubid JOIN pg_namespace n ON n.oid = pn.pnnspid"
                .into(),
        );
    }
    // Event triggers.
    let enable = "'ALTER EVENT TRIGGER ' || quote_ident(e.evtname) || CASE e.evtenabled WHEN 'D' THEN ' DISABLE' \
                  WHEN 'R' THEN ' ENABLE REPLICA' WHEN 'A' THEN ' ENABLE ALWAYS' ELSE ' ENABLE' END";
    q.push(format!(
        "SELECT 'event trigger', quote_ident(e.evtname), \
           e.evtevent || ' ' || e.evtfoid::regprocedure::text || coalesce(' ' || e.evttags::text, ''), e.evtenabled::text, \
           'CREATE EVENT TRIGGER ' || quote_ident(e.evtname) || ' ON ' || quote_ident(e.evtevent) \
             || coalesce(' WHEN TAG IN (' || (SELECT string_agg(quote_literal(t), ', ') FROM unnest(e.evttags) t) || ')', '') \
             || ' EXECUTE FUNCTION ' || e.evtfoid::regproc::text || '()' \
             || CASE WHEN e.evtenabled <> 'O' THEN ';' || chr(10) || {enable} ELSE '' END, \
           'DROP EVENT TRIGGER IF EXISTS ' || quote_ident(e.evtname), {enable}, false \
         FROM pg_event_trigger e WHERE {}",
        not_extension_member("e.oid", "pg_event_trigger")
    ));
    // Casts between types, when not built in.
    q.push(format!(
        "SELECT 'cast', '(' || c.castsource::regtype::text || ' AS ' || c.casttarget::regtype::text || ')', \
           c.castmethod::text || ' ' || c.castcontext::text || ' ' || c.castfunc::regprocedure::text, '', \
           'CREATE CAST (' || c.castsource::regtype::text || ' AS ' || c.casttarget::regtype::text || ') ' \
             || CASE c.castmethod WHEN 'f' THEN 'WITH FUNCTION ' || c.castfunc::regprocedure::text WHEN 'i' THEN 'WITH INOUT' ELSE 'WITHOUT FUNCTION' END \
             || CASE c.castcontext WHEN 'a' THEN ' AS ASSIGNMENT' WHEN 'i' THEN ' AS IMPLICIT' ELSE '' END, \
           'DROP CAST IF EXISTS (' || c.castsource::regtype::text || ' AS ' || c.casttarget::regtype::text || ')', NULL, false \
         FROM pg_cast c WHERE c.oid >= {FIRST_USER_OID} AND {}",
        not_extension_member("c.oid", "pg_cast")
    ));
    // Operators, operator classes and families (dropped by name; created by hand).
    q.push(format!(
        "SELECT 'operator', o.oid::regoperator::text, o.oprcode::regprocedure::text || ' ' || o.oprresult::regtype::text, '', NULL, \
           'DROP OPERATOR IF EXISTS ' || o.oid::regoperator::text, NULL, false \
         FROM pg_operator o WHERE o.oid >= {FIRST_USER_OID} AND {} AND {}",
        ns("o.oprnamespace"),
        not_extension_member("o.oid", "pg_operator")
    ));
    q.push(format!(
        "SELECT 'operator class', quote_ident(n.nspname) || '.' || quote_ident(c.opcname) || ' USING ' || quote_ident(am.amname), \
           c.opcintype::regtype::text || CASE WHEN c.opcdefault THEN ' DEFAULT' ELSE '' END, '', NULL, \
           'DROP OPERATOR CLASS IF EXISTS ' || quote_ident(n.nspname) || '.' || quote_ident(c.opcname) || ' USING ' || quote_ident(am.amname), NULL, false \
         FROM pg_opclass c JOIN pg_namespace n ON n.oid = c.opcnamespace JOIN pg_am am ON am.oid = c.opcmethod \
         WHERE c.oid >= {FIRST_USER_OID} AND {} AND {}",
        ns("c.opcnamespace"),
        not_extension_member("c.oid", "pg_opclass")
    ));
    q.push(format!(
        "SELECT 'operator family', quote_ident(n.nspname) || '.' || quote_ident(f.opfname) || ' USING ' || quote_ident(am.amname), '', '', NULL, \
           'DROP OPERATOR FAMILY IF EXISTS ' || quote_ident(n.nspname) || '.' || quote_ident(f.opfname) || ' USING ' || quote_ident(am.amname), NULL, false \
         FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace JOIN pg_am am ON am.oid = f.opfmethod \
         WHERE f.oid >= {FIRST_USER_OID} AND {} AND {} \
           AND NOT EXISTS (SELECT 1 FROM pg_opclass c WHERE c.opcfamily = f.oid AND c.opcname = f.opfname AND c.opcnamespace = f.opfnamespace)",
        ns("f.opfnamespace"),
        not_extension_member("f.oid", "pg_opfamily")
    ));
    // Text search.
    // A configuration is its parser (changing it means a new configuration) and its mappings,
    // which change in place: dropping it would take the indexes and columns using it along.
    let adds = "(SELECT string_agg('ALTER TEXT SEARCH CONFIGURATION ' || c.oid::regconfig::text || ' ADD MAPPING FOR ' || t.alias \
                  || ' WITH ' || x.dicts, ';' || chr(10) ORDER BY t.tokid) \
                FROM ts_token_type(c.cfgparser) t, LATERAL (SELECT string_agg(m.mapdict::regdictionary::text, ', ' ORDER BY m.mapseqno) AS dicts \
                  FROM pg_ts_config_map m WHERE m.mapcfg = c.oid AND m.maptokentype = t.tokid) x WHERE x.dicts IS NOT NULL)";
    q.push(format!(
        "SELECT 'text search configuration', c.oid::regconfig::text, quote_ident(pn.nspname) || '.' || quote_ident(p.prsname), \
           coalesce((SELECT string_agg(m.maptokentype || ':' || m.mapdict::regdictionary::text, ',' \
             ORDER BY m.maptokentype, m.mapseqno) FROM pg_ts_config_map m WHERE m.mapcfg = c.oid), ''), \
           'CREATE TEXT SEARCH CONFIGURATION ' || c.oid::regconfig::text || ' (PARSER = ' || quote_ident(pn.nspname) || '.' || quote_ident(p.prsname) || ')' \
             || coalesce(';' || chr(10) || {adds}, ''), \
           'DROP TEXT SEARCH CONFIGURATION IF EXISTS ' || c.oid::regconfig::text, \
           'ALTER TEXT SEARCH CONFIGURATION ' || c.oid::regconfig::text || ' DROP MAPPING IF EXISTS FOR ' \
             || (SELECT string_agg(t.alias, ', ' ORDER BY t.tokid) FROM ts_token_type(c.cfgparser) t) || coalesce(';' || chr(10) || {adds}, ''), false \
         FROM pg_ts_config c JOIN pg_ts_parser p ON p.oid = c.cfgparser JOIN pg_namespace pn ON pn.oid = p.prsnamespace \
         WHERE c.oid >= {FIRST_USER_OID} AND {} AND {}",
        ns("c.cfgnamespace"),
        not_extension_member("c.oid", "pg_ts_config")
    ));
    q.push(format!(
        "SELECT 'text search dictionary', td.oid::regdictionary::text, quote_ident(tn.nspname) || '.' || quote_ident(t.tmplname) || ' ' || coalesce(td.dictinitoption, ''), '', \
           'CREATE TEXT SEARCH DICTIONARY ' || td.oid::regdictionary::text || ' (TEMPLATE = ' || quote_ident(tn.nspname) || '.' || quote_ident(t.tmplname) \
             || coalesce(', ' || td.dictinitoption, '') || ')', \
           'DROP TEXT SEARCH DICTIONARY IF EXISTS ' || td.oid::regdictionary::text, NULL, false \
         FROM pg_ts_dict td JOIN pg_ts_template t ON t.oid = td.dicttemplate JOIN pg_namespace tn ON tn.oid = t.tmplnamespace \
         WHERE td.oid >= {FIRST_USER_OID} AND {} AND {}",
        ns("td.dictnamespace"),
        not_extension_member("td.oid", "pg_ts_dict")
    ));
    // Foreign-data wrappers, servers and user mappings (a mapping's options hold credentials:
    // only their names are read, from the pg_user_mappings view any role may read, and it is
    // recreated by hand).
    let opts = |col: &str| {
        format!(
            "coalesce(' OPTIONS (' || (SELECT string_agg(quote_ident(split_part(o, '=', 1)) || ' ' || quote_literal(substr(o, strpos(o, '=') + 1)), ', ') \
               FROM unnest({col}) o) || ')', '')"
        )
    };
    q.push(format!(
        "SELECT 'foreign-data wrapper', quote_ident(w.fdwname), w.fdwhandler::regproc::text || ' ' || w.fdwvalidator::regproc::text || {}, '', NULL, \
           'DROP FOREIGN DATA WRAPPER IF EXISTS ' || quote_ident(w.fdwname), NULL, false \
         FROM pg_foreign_data_wrapper w WHERE {}",
        opts("w.fdwoptions"),
        not_extension_member("w.oid", "pg_foreign_data_wrapper")
    ));
    q.push(format!(
        "SELECT 'server', quote_ident(s.srvname), quote_ident(w.fdwname) || coalesce(' TYPE ' || quote_literal(s.srvtype), '') \
             || coalesce(' VERSION ' || quote_literal(s.srvversion), '') || {o}, '', \
           'CREATE SERVER ' || quote_ident(s.srvname) || coalesce(' TYPE ' || quote_literal(s.srvtype), '') \
             || coalesce(' VERSION ' || quote_literal(s.srvversion), '') || ' FOREIGN DATA WRAPPER ' || quote_ident(w.fdwname) || {o}, \
           'DROP SERVER IF EXISTS ' || quote_ident(s.srvname), NULL, false \
         FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw WHERE {}",
        not_extension_member("s.oid", "pg_foreign_server"),
        o = opts("s.srvoptions")
    ));
    q.push(
        "SELECT 'user mapping', 'FOR ' || CASE WHEN u.umuser = 0 THEN 'PUBLIC' ELSE quote_ident(u.usename) END \
           || ' SERVER ' || quote_ident(u.srvname), \
           coalesce((SELECT string_agg(split_part(o, '=', 1), ', ' ORDER BY o) FROM unnest(u.umoptions) o), ''), '', NULL, \
           'DROP USER MAPPING IF EXISTS FOR ' || CASE WHEN u.umuser = 0 THEN 'PUBLIC' ELSE quote_ident(u.usename) END \
             || ' SERVER ' || quote_ident(u.srvname), NULL, false \
         FROM pg_user_mappings u"
            .into(),
    );
    // Procedural languages and access methods that are not built in or from an extension.
    q.push(format!(
        "SELECT 'language', quote_ident(l.lanname), l.lanplcallfoid::regprocedure::text, '', NULL, \
           'DROP LANGUAGE IF EXISTS ' || quote_ident(l.lanname), NULL, false \
         FROM pg_language l WHERE l.oid >= {FIRST_USER_OID} AND {}",
        not_extension_member("l.oid", "pg_language")
    ));
    q.push(format!(
        "SELECT 'access method', quote_ident(a.amname), a.amtype::text || ' ' || a.amhandler::regproc::text, '', \
           'CREATE ACCESS METHOD ' || quote_ident(a.amname) || ' TYPE ' || CASE a.amtype WHEN 't' THEN 'TABLE' ELSE 'INDEX' END \
             || ' HANDLER ' || a.amhandler::regproc::text, \
           'DROP ACCESS METHOD IF EXISTS ' || quote_ident(a.amname), NULL, false \
         FROM pg_am a WHERE a.oid >= {FIRST_USER_OID} AND {}",
        not_extension_member("a.oid", "pg_am")
    ));
    q
}

/// Read every object of the kinds [`OtherObject`] covers.
pub(crate) fn read_others(
    c: &mut Reusing<'_, impl postgres::GenericClient>,
    version: u32,
    opts: &SnapshotOptions,
) -> Result<BTreeMap<String, OtherObject>, CatalogError> {
    let mut out = BTreeMap::new();
    for sql in queries(version, opts) {
        for r in c.query(&sql)? {
            let o = OtherObject {
                kind: r.get(0),
                identity: r.get(1),
                definition: r.get::<_, Option<String>>(2).unwrap_or_default(),
                state: r.get::<_, Option<String>>(3).unwrap_or_default(),
                create: r.get(4),
                drop: r.get(5),
                alter: r.get(6),
                member: r.get(7),
                default_acl: None,
            };
            out.insert(format!("{} {}", o.kind, o.identity), o);
        }
    }
    // Default privileges: the entries in force, and the ones that hold without the entry.
    let sql = format!(
        "SELECT ltrim(CASE WHEN pg_get_userbyid(d.defaclrole) = current_user THEN '' ELSE 'FOR ROLE ' || quote_ident(pg_get_userbyid(d.defaclrole)) END \
           || coalesce(' IN SCHEMA ' || quote_ident(n.nspname), '') || ' ON ') || CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS' \
                WHEN 'T' THEN 'TYPES' WHEN 'n' THEN 'SCHEMAS' ELSE 'LARGE OBJECTS' END, \
           {}, \
           CASE WHEN d.defaclnamespace = 0 THEN {} ELSE '{{}}'::text[] END \
         FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace",
        acl_entries("d.defaclacl"),
        acl_entries(
            "acldefault(CASE d.defaclobjtype WHEN 'S' THEN 's' WHEN 'L' THEN 'L' ELSE d.defaclobjtype END, d.defaclrole)"
        ),
    );
    for r in c.query(&sql)? {
        let identity: String = r.get(0);
        let now: Vec<String> = r.get(1);
        let base: Vec<String> = r.get(2);
        let o = OtherObject {
            kind: "default privileges".into(),
            definition: String::new(),
            state: now.join(", "),
            create: None,
            drop: None,
            alter: None,
            member: false,
            default_acl: Some((now, base)),
            identity,
        };
        out.insert(format!("{} {}", o.kind, o.identity), o);
    }
    Ok(out)
}

/// `grantee=PRIVILEGE[*]` entries of an aclitem[] expression, sorted. The role reading the
/// catalog is CURRENT_USER: the role that runs the migration, whatever it is called.
fn acl_entries(acl: &str) -> String {
    format!(
        "coalesce((SELECT array_agg(g ORDER BY g) FROM (SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' \
           WHEN pg_get_userbyid(a.grantee) = current_user THEN 'CURRENT_USER' ELSE quote_ident(pg_get_userbyid(a.grantee)) END \
         || '=' || a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END AS g FROM aclexplode({acl}) a) x), '{{}}'::text[])"
    )
}
