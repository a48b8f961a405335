//! Renames. An object that is in one schema under one name and in the other under another,
//! with the same definition, is renamed (`ALTER … RENAME`) rather than dropped and created
//! again, which would lose a table's rows or a column's values, start a sequence again at 1
//! under rows holding its numbers, and fail on the foreign keys pointing at a dropped table.
//! Found kind by kind: tables (same schema, kind and columns), sequences (same options and
//! owner), then in the tables on both sides columns (same definition), constraints (same
//! definition) and indexes (same definition but the name). A pair is renamed only when neither
//! side has another candidate; when the evidence is ambiguous, nothing is renamed and a note in
//! the SQL names the possible renames, as statements to use instead of the drop and create.
//!
//! The renames go first; the rest of the DDL is rendered from the source schema with the
//! renames applied (definitions that print a renamed name are rewritten as PostgreSQL would
//! print them after the rename; one left unrewritten is simply rebuilt by the rest).

use migsafe_sql::quote_ident as qi;

use crate::model::*;

/// What the renames found: the statements, notes for the ambiguous ones, and the source schema
/// as it is after them.
pub(super) struct Renames {
    pub statements: Vec<String>,
    pub notes: Vec<String>,
    pub renamed: Snapshot,
}

/// Pairs of names: (in the source, in the target).
type Pairs<K> = Vec<(K, K)>;

/// Pair the items of `gone` with those of `new` that `same` says are the same but the name,
/// when the pairing is unique both ways. Returns the pairs and the ambiguous candidates.
fn pair<'a, K: Ord + Clone, T>(
    gone: &[(&'a K, &'a T)],
    new: &[(&'a K, &'a T)],
    same: impl Fn(&T, &T) -> bool,
) -> (Pairs<K>, Pairs<K>) {
    let mut pairs = Vec::new();
    let mut ambiguous = Vec::new();
    for (ka, ta) in gone {
        let matches: Vec<&K> = new.iter().filter(|(_, tb)| same(ta, tb)).map(|(k, _)| *k).collect();
        for kb in &matches {
            let back = gone.iter().filter(|(_, t)| new.iter().any(|(k, tb)| k == kb && same(t, tb))).count();
            if matches.len() == 1 && back == 1 {
                pairs.push(((*ka).clone(), (*kb).clone()));
            } else {
                ambiguous.push(((*ka).clone(), (*kb).clone()));
            }
        }
    }
    (pairs, ambiguous)
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '"'
}

/// `text` with the qualified name `from` (as PostgreSQL prints it) replaced by `to`, where it
/// stands as a whole name.
fn replace_name(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + from.len()..].chars().next();
        let whole = before.is_none_or(|c| !is_ident(c) && c != '.') && after.is_none_or(|c| !is_ident(c) && c != '.');
        out.push_str(&rest[..i]);
        out.push_str(if whole { to } else { from });
        rest = &rest[i + from.len()..];
    }
    out.push_str(rest);
    out
}

/// `text` with the column `from` replaced by `to` where it stands as a bare name (not in a
/// string, not qualified, not a function called).
fn replace_column(text: &str, from: &str, to: &str) -> String {
    let (from_q, to_q) = (qi(from), qi(to));
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // A string literal ('' inside it is a quote).
            let start = i;
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        i += 2;
                        continue;
                    }
                    break;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
            out.extend(&chars[start..i]);
            continue;
        }
        if is_ident(c) && !c.is_ascii_digit() {
            let start = i;
            if c == '"' {
                i += 1;
                while i < chars.len() && !(chars[i] == '"' && chars.get(i + 1) != Some(&'"')) {
                    i += if chars[i] == '"' { 2 } else { 1 };
                }
                i = (i + 1).min(chars.len());
            } else {
                while i < chars.len() && is_ident(chars[i]) && chars[i] != '"' {
                    i += 1;
                }
            }
            let token: String = chars[start..i].iter().collect();
            let qualified = start > 0 && chars[start - 1] == '.';
            let call = chars[i..].iter().find(|c| !c.is_whitespace()) == Some(&'(');
            if token == from_q && !qualified && !call && chars.get(i).is_none_or(|c| *c != '.') {
                out.push_str(&to_q);
            } else {
                out.push_str(&token);
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// In a foreign key's definition, the referenced columns of `table` renamed.
fn replace_referenced_column(def: &str, table: &QName, from: &str, to: &str) -> String {
    let marker = format!("REFERENCES {}(", table.sql());
    let Some(at) = def.find(&marker) else { return def.to_string() };
    let start = at + marker.len();
    let Some(len) = def[start..].find(')') else { return def.to_string() };
    let list = replace_column(&def[start..start + len], from, to);
    format!("{}{}{}", &def[..start], list, &def[start + len..])
}

/// In a foreign key's definition, its own columns renamed (the list after `FOREIGN KEY`).
fn replace_own_fk_column(def: &str, from: &str, to: &str) -> String {
    let Some(start) = def.find("FOREIGN KEY (").map(|i| i + "FOREIGN KEY (".len()) else {
        return def.to_string();
    };
    let Some(len) = def[start..].find(')') else { return def.to_string() };
    let list = replace_column(&def[start..start + len], from, to);
    format!("{}{}{}", &def[..start], list, &def[start + len..])
}

/// Apply a table rename to `s`: the entry moves, and what prints its name is rewritten.
fn rename_table(s: &mut Snapshot, from: &QName, to: &QName) {
    let Some(t) = s.tables.remove(from) else { return };
    s.tables.insert(to.clone(), t);
    let (f, n) = (from.sql(), to.sql());
    for t in s.tables.values_mut() {
        for c in t.constraints.values_mut() {
            c.definition = replace_name(&c.definition, &f, &n);
            if c.references.as_ref() == Some(from) {
                c.references = Some(to.clone());
            }
        }
        for i in t.indexes.values_mut() {
            i.definition = replace_name(&i.definition, &f, &n);
        }
        for tr in t.triggers.values_mut() {
            tr.definition = replace_name(&tr.definition, &f, &n);
        }
        if let Some((p, _)) = t.partition_of.as_mut() {
            if p == from {
                *p = to.clone();
            }
        }
        for p in &mut t.inherits {
            if p == from {
                *p = to.clone();
            }
        }
    }
    for v in s.views.values_mut() {
        v.definition = replace_name(&v.definition, &f, &n);
        for d in &mut v.depends_on {
            if d == from {
                *d = to.clone();
            }
        }
    }
    for q in s.sequences.values_mut() {
        if let Some((t, _)) = q.owned_by.as_mut() {
            if t == from {
                *t = to.clone();
            }
        }
    }
    let rules: Vec<(String, RewriteRule)> = std::mem::take(&mut s.rules).into_iter().collect();
    for (_, mut r) in rules {
        if r.relation == *from {
            r.relation = to.clone();
        }
        r.definition = replace_name(&r.definition, &f, &n);
        s.rules.insert(RewriteRule::key(&r.relation, &r.name), r);
    }
}

/// Apply a sequence rename to `s`: the entry moves, and column defaults name the new one.
fn rename_sequence(s: &mut Snapshot, from: &QName, to: &QName) {
    let Some(q) = s.sequences.remove(from) else { return };
    s.sequences.insert(to.clone(), q);
    let (f, n) = (from.sql(), to.sql());
    for t in s.tables.values_mut() {
        for c in &mut t.columns {
            if let Some(d) = c.default.as_mut() {
                *d = replace_name(d, &f, &n);
            }
        }
    }
}

/// Apply a column rename in table `table` of `s`.
fn rename_column(s: &mut Snapshot, table: &QName, from: &str, to: &str) {
    let Some(t) = s.tables.get_mut(table) else { return };
    for c in &mut t.columns {
        if c.name == from {
            c.name = to.to_string();
        }
    }
    for c in t.constraints.values_mut() {
        c.definition = if c.kind == crate::kinds::ConstraintType::ForeignKey {
            replace_own_fk_column(&c.definition, from, to)
        } else {
            replace_column(&c.definition, from, to)
        };
        for col in &mut c.columns {
            if col == from {
                *col = to.to_string();
            }
        }
    }
    for i in t.indexes.values_mut() {
        // The index's own name comes before ON: only what follows names columns.
        if let Some(on) = i.definition.find(" USING ") {
            let (head, tail) = i.definition.split_at(on);
            i.definition = format!("{head}{}", replace_column(tail, from, to));
        }
    }
    for other in s.tables.values_mut() {
        for c in other.constraints.values_mut() {
            if c.references.as_ref() == Some(table) {
                c.definition = replace_referenced_column(&c.definition, table, from, to);
            }
        }
    }
    for q in s.sequences.values_mut() {
        if let Some((t, col)) = q.owned_by.as_mut() {
            if t == table && col == from {
                *col = to.to_string();
            }
        }
    }
}

/// Apply an index rename in table `t`: the entry moves, and its definition names it.
fn rename_index(t: &mut Table, from: &str, to: &str) {
    if let Some(mut i) = t.indexes.remove(from) {
        i.definition = replace_name(&i.definition, &qi(from), &qi(to));
        t.indexes.insert(to.to_string(), i);
    }
}

/// A column as compared for a rename: everything but its name (and the name of its NOT NULL
/// constraint, which PostgreSQL 18 derives from the column's name and the rest of the DDL
/// renames on its own).
fn column_shape(c: &Column) -> Column {
    Column { name: String::new(), not_null_name: None, identity_sequence: None, ..c.clone() }
}

/// Names of the relations of `s` (tables, views, sequences, indexes share one namespace per
/// schema): a rename to one of them would collide with what the rest of the DDL drops later.
fn relation_names(s: &Snapshot) -> std::collections::BTreeSet<QName> {
    let mut out: std::collections::BTreeSet<QName> =
        s.tables.keys().chain(s.views.keys()).chain(s.sequences.keys()).cloned().collect();
    for (tn, t) in &s.tables {
        out.extend(t.indexes.keys().map(|i| QName::new(&tn.schema, i)));
    }
    for (vn, v) in &s.views {
        out.extend(v.indexes.keys().map(|i| QName::new(&vn.schema, i)));
    }
    out
}

/// The renames from `a` to `b`, or None when there are none and nothing is ambiguous.
pub(super) fn detect(a: &Snapshot, b: &Snapshot) -> Option<Renames> {
    let mut s = a.clone();
    let mut statements = Vec::new();
    let mut notes = Vec::new();
    let mut taken = relation_names(a);

    // Tables.
    let gone: Vec<(&QName, &Table)> = a.tables.iter().filter(|(n, _)| !b.tables.contains_key(*n)).collect();
    let new: Vec<(&QName, &Table)> = b.tables.iter().filter(|(n, _)| !a.tables.contains_key(*n)).collect();
    let same_table = |x: &Table, y: &Table| {
        x.kind == y.kind
            && x.partition_key == y.partition_key
            && x.columns.len() == y.columns.len()
            && x.columns.iter().zip(&y.columns).all(|(c, d)| c.name == d.name && column_shape(c) == column_shape(d))
    };
    let (pairs, unsure) = pair(
        &gone.iter().map(|(k, t)| (*k, *t)).collect::<Vec<_>>(),
        &new.iter().map(|(k, t)| (*k, *t)).collect::<Vec<_>>(),
        same_table,
    );
    let pairs: Vec<(QName, QName)> =
        pairs.into_iter().filter(|(x, y)| x.schema == y.schema && !taken.contains(y)).collect();
    for (x, y) in &pairs {
        taken.remove(x);
        taken.insert(y.clone());
        statements.push(format!("ALTER TABLE {} RENAME TO {}", x.sql(), qi(&y.name)));
        rename_table(&mut s, x, y);
    }
    for (x, y) in unsure.iter().filter(|(x, y)| x.schema == y.schema) {
        notes.push(format!(
            "{x} and {y} have the same columns as another table dropped or created, so which (if any) is a rename \
             cannot be told; to keep its rows, replace the DROP TABLE and CREATE TABLE below with ALTER TABLE {} \
             RENAME TO {}",
            x.sql(),
            qi(&y.name)
        ));
    }

    // Sequences (after the tables, whose renames they follow as owners).
    let gone: Vec<(&QName, &Sequence)> = s.sequences.iter().filter(|(n, _)| !b.sequences.contains_key(*n)).collect();
    let new: Vec<(&QName, &Sequence)> = b.sequences.iter().filter(|(n, _)| !s.sequences.contains_key(*n)).collect();
    let (seq_pairs, _) = pair(&gone, &new, |x: &Sequence, y: &Sequence| x == y);
    let seq_pairs: Vec<(QName, QName)> =
        seq_pairs.into_iter().filter(|(x, y)| x.schema == y.schema && !taken.contains(y)).collect();
    for (x, y) in &seq_pairs {
        taken.remove(x);
        taken.insert(y.clone());
        statements.push(format!("ALTER SEQUENCE {} RENAME TO {}", x.sql(), qi(&y.name)));
        rename_sequence(&mut s, x, y);
    }

    // Columns, constraints and indexes of the tables on both sides.
    let names: Vec<QName> = s.tables.keys().filter(|n| b.tables.contains_key(*n)).cloned().collect();
    for tn in &names {
        let (ta, tb) = (&s.tables[tn], &b.tables[tn]);
        let gone: Vec<(&String, &Column)> =
            ta.columns.iter().filter(|c| !tb.columns.iter().any(|d| d.name == c.name)).map(|c| (&c.name, c)).collect();
        let new: Vec<(&String, &Column)> =
            tb.columns.iter().filter(|c| !ta.columns.iter().any(|d| d.name == c.name)).map(|c| (&c.name, c)).collect();
        let (col_pairs, unsure) = pair(&gone, &new, |x: &Column, y: &Column| column_shape(x) == column_shape(y));
        if let Some((x, y)) = unsure.first() {
            let mut from: Vec<String> = unsure.iter().map(|(x, _)| qi(x)).collect();
            let mut to: Vec<String> = unsure.iter().map(|(_, y)| qi(y)).collect();
            from.dedup();
            to.sort();
            to.dedup();
            notes.push(format!(
                "{tn}: {} dropped and {} added have the same definition, so which (if any) is a rename cannot be \
                 told; to keep values, replace the DROP COLUMN and ADD COLUMN below with renames, e.g. ALTER TABLE \
                 {tn} RENAME COLUMN {} TO {}",
                from.join(", "),
                to.join(", "),
                qi(x),
                qi(y)
            ));
        }
        for (x, y) in col_pairs {
            statements.push(format!("ALTER TABLE {tn} RENAME COLUMN {} TO {}", qi(&x), qi(&y)));
            rename_column(&mut s, tn, &x, &y);
        }

        let (ta, tb) = (&s.tables[tn], &b.tables[tn]);
        let gone: Vec<(&String, &Constraint)> =
            ta.constraints.iter().filter(|(n, _)| !tb.constraints.contains_key(*n)).collect();
        let new: Vec<(&String, &Constraint)> =
            tb.constraints.iter().filter(|(n, _)| !ta.constraints.contains_key(*n)).collect();
        let (con_pairs, _) = pair(&gone, &new, |x: &Constraint, y: &Constraint| {
            x.kind == y.kind && x.definition == y.definition && x.validated == y.validated && !x.inherited
        });
        for (x, y) in con_pairs {
            // A key's index takes the constraint's name: it must be free.
            let (xi, yi) = (QName::new(&tn.schema, &x), QName::new(&tn.schema, &y));
            if s.tables[tn].indexes.contains_key(&x) {
                if taken.contains(&yi) {
                    continue;
                }
                taken.remove(&xi);
                taken.insert(yi);
            }
            statements.push(format!("ALTER TABLE {tn} RENAME CONSTRAINT {} TO {}", qi(&x), qi(&y)));
            let t = s.tables.get_mut(tn).expect("table on both sides");
            if let Some(c) = t.constraints.remove(&x) {
                t.constraints.insert(y.clone(), c);
            }
            // A primary key's or unique constraint's index is renamed with it.
            rename_index(t, &x, &y);
        }

        let (ta, tb) = (&s.tables[tn], &b.tables[tn]);
        let unnamed = |name: &str, i: &Index| replace_name(&i.definition, &qi(name), "?");
        let gone: Vec<(&String, &Index)> = ta.indexes.iter().filter(|(n, _)| !tb.indexes.contains_key(*n)).collect();
        let new: Vec<(&String, &Index)> = tb.indexes.iter().filter(|(n, _)| !ta.indexes.contains_key(*n)).collect();
        let shaped = |v: &[(&String, &Index)]| -> Vec<(String, Index)> {
            v.iter().map(|(n, i)| ((*n).clone(), Index { definition: unnamed(n, i), ..(*i).clone() })).collect()
        };
        let (g, nn) = (shaped(&gone), shaped(&new));
        let (idx_pairs, _) = pair(
            &g.iter().map(|(n, i)| (n, i)).collect::<Vec<_>>(),
            &nn.iter().map(|(n, i)| (n, i)).collect::<Vec<_>>(),
            |x: &Index, y: &Index| x == y && !x.constraint && !x.inherited,
        );
        for (x, y) in idx_pairs {
            let index = QName::new(&tn.schema, &x);
            let to = QName::new(&tn.schema, &y);
            if taken.contains(&to) {
                continue;
            }
            taken.remove(&index);
            taken.insert(to);
            statements.push(format!("ALTER INDEX {} RENAME TO {}", index.sql(), qi(&y)));
            let t = s.tables.get_mut(tn).expect("table on both sides");
            rename_index(t, &x, &y);
        }
    }
    if statements.is_empty() && notes.is_empty() {
        return None;
    }
    Some(Renames { statements, notes, renamed: s })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_replaced_only_where_they_stand_whole() {
        assert_eq!(
            replace_name("FOREIGN KEY (a) REFERENCES public.t(id)", "public.t", "public.u"),
            "FOREIGN KEY (a) REFERENCES public.u(id)"
        );
        assert_eq!(replace_name("REFERENCES public.tt(id)", "public.t", "public.u"), "REFERENCES public.tt(id)");
        assert_eq!(
            replace_column("CHECK ((price > 0) AND (lower(name) <> 'price'))", "price", "cost"),
            "CHECK ((cost > 0) AND (lower(name) <> 'price'))"
        );
        assert_eq!(replace_column("(x.price + price)", "price", "Cost"), "(x.price + \"Cost\")");
        assert_eq!(
            replace_referenced_column(
                "FOREIGN KEY (id) REFERENCES public.p(id)",
                &QName::new("public", "p"),
                "id",
                "pid"
            ),
            "FOREIGN KEY (id) REFERENCES public.p(pid)"
        );
        assert_eq!(
            replace_own_fk_column("FOREIGN KEY (id) REFERENCES public.p(id)", "id", "child_id"),
            "FOREIGN KEY (child_id) REFERENCES public.p(id)"
        );
    }
}
