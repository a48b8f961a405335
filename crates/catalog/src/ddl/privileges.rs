//! Comments, grants and default privileges.

use super::*;

pub(super) fn comment_sql(what: &str, comment: &Option<String>) -> String {
    match comment {
        Some(c) => format!("COMMENT ON {what} IS {}", ql(c)),
        None => format!("COMMENT ON {what} IS NULL"),
    }
}

/// GRANT/REVOKE turning `before` grants into `after` on `object` (e.g. `TABLE "s"."t"`).
pub(super) fn grant_sql(object: &str, before: &[String], after: &[String], columns: Option<&str>, s: &mut Script) {
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

/// Whether a trigger's or rule's comment must be set: when created anew, the comment it has,
/// if any; when kept, a comment that changed.
pub(super) fn comment_due(same_def: bool, old: Option<&Option<String>>, new: &Option<String>) -> bool {
    if same_def {
        old.is_some_and(|o| o != new)
    } else {
        new.is_some()
    }
}

/// Default privileges from what is in force in `a` to what should be in `b`, for each entry
/// either side has (an entry that is missing means the defaults that hold without it), as
/// (REVOKEs, GRANTs): the REVOKEs run with the drops (before the schema they name can go),
/// the GRANTs at the end (after it is back).
pub(super) fn default_privilege_changes(a: &Snapshot, b: &Snapshot) -> (Vec<String>, Vec<String>) {
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
pub(super) fn default_privileges_sql(
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
