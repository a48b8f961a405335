//! Catalog queries prepared once per session and used again. A snapshot runs the same couple
//! of dozen queries every time, and on a session that takes many (a rehearsal takes three per
//! migration) parsing and planning them again each time was about a third of the snapshot's
//! cost. Each query is a server-side prepared statement named after its text
//! (`PREPARE migsafe_<hash> AS …`), prepared the first time the session runs it: the session's
//! own list (`pg_prepared_statements`) says which it has, so a new session, or one whose
//! statements migration SQL deallocated, simply prepares them again. Prepared statements are
//! not transactional: one prepared inside a transaction or savepoint that is rolled back stays.
//!
//! The queries take no parameters (the text is the cache key); a list of relations is passed
//! as a transaction-local setting, [`RELATIONS_SETTING`], which the query reads with
//! `current_setting`.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use postgres::{GenericClient, Row};

/// The setting that carries the relations (an `oid[]` literal) a query is about.
pub const RELATIONS_SETTING: &str = "migsafe.relations";

/// SQL that is true when `column` (a relation's oid) is among those [`Reusing::set_relations`]
/// listed.
pub(crate) fn listed(column: &str) -> String {
    format!("{column} = ANY(current_setting('{RELATIONS_SETTING}')::pg_catalog.oid[])")
}

/// A session whose catalog queries are prepared once and reused.
pub struct Reusing<'c, C: GenericClient> {
    client: &'c mut C,
    /// Statements the session has now.
    live: HashSet<String>,
}

/// The prepared statement's name for `sql`.
fn name(sql: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sql.hash(&mut h);
    format!("migsafe_{:016x}", h.finish())
}

impl<'c, C: GenericClient> Reusing<'c, C> {
    /// Wrap `client`, reading which of migsafe's statements its session has.
    pub fn new(client: &'c mut C) -> Result<Self, postgres::Error> {
        let live: Vec<String> = client
            .query_one(
                "SELECT coalesce(array_agg(name::text), '{}') FROM pg_catalog.pg_prepared_statements \
                 WHERE from_sql AND name LIKE 'migsafe\\_%'",
                &[],
            )?
            .get(0);
        Ok(Reusing { client, live: live.into_iter().collect() })
    }

    /// Run `sql` (prepared on first use in this session).
    pub fn query(&mut self, sql: &str) -> Result<Vec<Row>, postgres::Error> {
        debug_assert!(!sql.contains("$1"), "reused catalog queries take no parameters");
        let n = name(sql);
        if !self.live.contains(&n) {
            self.client.batch_execute(&format!("PREPARE {n} AS {sql}"))?;
            self.live.insert(n.clone());
        }
        self.client.query(&format!("EXECUTE {n}"), &[])
    }

    /// Set [`RELATIONS_SETTING`] for the rest of the transaction.
    pub fn set_relations(&mut self, oids: impl Iterator<Item = u32>) -> Result<(), postgres::Error> {
        let list: Vec<String> = oids.map(|o| o.to_string()).collect();
        self.client.batch_execute(&format!("SET LOCAL {RELATIONS_SETTING} = '{{{}}}'", list.join(",")))
    }

    /// Run statements that return nothing (not prepared).
    pub fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.client.batch_execute(sql)
    }
}
