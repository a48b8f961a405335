//! Batched background data migration (the guide's phase 2): walk the table in key order
//! (keyset pagination, composite keys too), each batch its own short transaction with a
//! lock_timeout, the checkpoint committed with the batch so an interrupted run resumes exactly
//! where it stopped, one run per backfill at a time (advisory lock), throttled by sleep, a
//! target batch duration, replication lag and lock waits.

use postgres::Client;
use serde::Serialize;
use std::time::{Duration, Instant};

use migsafe_pg::ConnSpec;
use migsafe_sql::{quote_ident as qi, quote_literal as ql, StmtKind};

use crate::apply::Cancel;
use crate::EngineError;

/// What to backfill and how.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Table (optionally schema-qualified).
    pub table: String,
    /// SET clause, e.g. `new_field = legacy_field`.
    pub set: String,
    /// WHERE condition rows must match to be updated (and must not match at the end).
    pub filter: Option<String>,
    /// Starting batch size.
    pub batch: i64,
    /// Pause between batches.
    pub sleep: Duration,
    /// Adapt the batch size to take about this long (None: fixed size).
    pub target_batch: Option<Duration>,
    /// Pause while a replica lags more than this.
    pub max_lag: Option<Duration>,
    /// Pause while more than this many sessions wait for locks on the table.
    pub max_lock_waits: Option<i64>,
    /// lock_timeout of each batch.
    pub lock_timeout: Duration,
    /// Only count what would change.
    pub dry_run: bool,
    /// Checkpoint name (default: derived from table, SET and WHERE).
    pub name: Option<String>,
}

/// Progress reports to a progress bar.
pub trait BackfillProgress {
    /// `done` rows updated of about `total`, `walked` keys visited.
    fn update(&self, done: i64, walked: i64, total: i64, batch: i64);
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillReport {
    /// Checkpoint name.
    pub name: String,
    /// Rows updated in this run.
    pub updated: i64,
    /// Rows updated in all runs of this backfill.
    pub total_updated: i64,
    /// Batches in this run.
    pub batches: i64,
    /// Continued an interrupted run.
    pub resumed: bool,
    /// Finished the whole table.
    pub finished: bool,
    /// Rows still matching the WHERE at the end (should be 0).
    pub remaining: Option<i64>,
    /// Longest batch transaction (how long its row locks were held), ms.
    pub longest_batch_ms: f64,
    /// Rows per second.
    pub rows_per_sec: f64,
    /// Pauses for lag or lock waits, and lock-timeout retries.
    pub pauses: Vec<String>,
    /// Dry run: rows that would change.
    pub would_update: Option<i64>,
}

const CHECKPOINTS_SQL: &str = "
CREATE SCHEMA IF NOT EXISTS migsafe;
CREATE TABLE IF NOT EXISTS migsafe.backfills (
    name text PRIMARY KEY,
    table_name text NOT NULL,
    set_clause text NOT NULL,
    where_clause text,
    key_columns text[] NOT NULL,
    last_key text[],
    rows_done bigint NOT NULL DEFAULT 0,
    batches bigint NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz
);";

/// Check that SET and WHERE are one well-formed UPDATE of the table, parsed by PostgreSQL's
/// own grammar (so nothing else can be smuggled in).
pub fn validate(table: &str, set: &str, filter: Option<&str>) -> Result<(), EngineError> {
    let sql = format!("UPDATE {table} SET {set}{}", filter.map(|w| format!(" WHERE {w}")).unwrap_or_default());
    let parsed = migsafe_sql::parse_sql(&sql);
    if let Some(e) = parsed.errors.first() {
        return Err(EngineError::Usage(format!("--set/--where do not parse as `{sql}`: {}", e.message)));
    }
    match parsed.statements.as_slice() {
        [s] if matches!(s.kind, StmtKind::Update { .. }) => Ok(()),
        _ => Err(EngineError::Usage(format!("--set/--where must form exactly one UPDATE statement, got: {sql}"))),
    }
}

/// The table's name as SQL and its row key: primary key, else a unique index on NOT NULL
/// columns. Returns (qualified SQL name, [(column, type)]).
fn key_of(c: &mut Client, table: &str) -> Result<(String, Vec<(String, String)>), EngineError> {
    let oid: Option<u32> = c.query_one("SELECT to_regclass($1)::oid", &[&table])?.get(0);
    let oid = oid.ok_or_else(|| EngineError::Refused(format!("table {table} does not exist")))?;
    let name: String = c.query_one("SELECT $1::oid::regclass::text", &[&oid])?.get(0);
    let rows = c.query(
        "SELECT i.indisprimary, array_agg(a.attname::text ORDER BY k.o), array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.o), \
           bool_and(a.attnotnull) \
         FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o) \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
         WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL \
         GROUP BY i.indexrelid, i.indisprimary ORDER BY i.indisprimary DESC, count(*)",
        &[&oid],
    )?;
    for r in rows {
        let all_not_null: bool = r.get(3);
        if all_not_null {
            let cols: Vec<String> = r.get(1);
            let types: Vec<String> = r.get(2);
            return Ok((name, cols.into_iter().zip(types).collect()));
        }
    }
    Err(EngineError::Refused(format!(
        "{name} has no primary key and no unique index on NOT NULL columns: a backfill needs a key to walk the table in \
         order and resume exactly; add one (CREATE UNIQUE INDEX CONCURRENTLY …) first"
    )))
}

fn default_name(table: &str, set: &str, filter: Option<&str>) -> String {
    use sha2::{Digest, Sha256};
    let h = hex::encode(Sha256::digest(format!("{table}\n{set}\n{}", filter.unwrap_or("")).as_bytes()));
    format!("{table}:{}", &h[..12])
}

/// Run (or resume) a backfill.
pub fn backfill(
    spec: &ConnSpec,
    o: &BackfillOptions,
    progress: &dyn BackfillProgress,
    cancel: &Cancel,
) -> Result<BackfillReport, EngineError> {
    validate(&o.table, &o.set, o.filter.as_deref())?;
    let mut c = spec.with_application_name("migsafe backfill").connect()?;
    let (table, key) = key_of(&mut c, &o.table)?;
    let name = o.name.clone().unwrap_or_else(|| default_name(&table, &o.set, o.filter.as_deref()));
    let filter = o.filter.as_deref().map(|w| format!("({w})")).unwrap_or_else(|| "true".into());
    let mut rep = BackfillReport {
        name: name.clone(),
        updated: 0,
        total_updated: 0,
        batches: 0,
        resumed: false,
        finished: false,
        remaining: None,
        longest_batch_ms: 0.0,
        rows_per_sec: 0.0,
        pauses: vec![],
        would_update: None,
    };
    if o.dry_run {
        let n: i64 = c.query_one(&format!("SELECT count(*) FROM {table} WHERE {filter}"), &[])?.get(0);
        rep.would_update = Some(n);
        return Ok(rep);
    }
    c.batch_execute(CHECKPOINTS_SQL)?;
    // One run per backfill: a session lock on a connection of its own.
    let mut lock = spec.with_application_name("migsafe backfill (lock)").connect()?;
    let got: bool = lock.query_one("SELECT pg_try_advisory_lock(7265, hashtext($1))", &[&name])?.get(0);
    if !got {
        return Err(EngineError::Refused(format!("backfill {name} is already running in another session")));
    }
    let key_cols: Vec<String> = key.iter().map(|(k, _)| k.clone()).collect();
    let mut last = checkpoint(&mut c, &name, &table, o, &key_cols, &mut rep)?;
    let total: i64 = c
        .query_one(
            &format!("SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = {}::regclass", ql(&table)),
            &[],
        )?
        .get(0);
    let walk = Walk::new(&table, &filter, &o.set, &key);
    let mut batch = o.batch.max(1);
    let t0 = Instant::now();
    let mut walked = 0i64;
    let mut retries = 0u32;
    loop {
        if cancel.requested() {
            break;
        }
        throttle(&mut c, o, &table, &mut rep)?;
        let bt = Instant::now();
        let result = walk.batch(&mut c, &name, last.as_deref(), batch - 1, o.lock_timeout);
        let ms = bt.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok((updated, upper_key)) => {
                retries = 0;
                rep.updated += updated;
                rep.total_updated += updated;
                rep.batches += 1;
                rep.longest_batch_ms = rep.longest_batch_ms.max(ms);
                walked += batch;
                progress.update(rep.total_updated, walked, total.max(walked), batch);
                match upper_key {
                    Some(u) => last = Some(u),
                    None => {
                        rep.finished = true;
                        break;
                    }
                }
                if let Some(target) = o.target_batch {
                    let t = target.as_secs_f64() * 1000.0;
                    if ms < t / 2.0 {
                        batch = (batch as f64 * 1.5) as i64;
                    } else if ms > t {
                        batch = (batch / 2).max(100);
                    }
                    batch = batch.min(1_000_000);
                }
            }
            Err(e) => {
                let lock_timeout = e.as_db_error().is_some_and(|d| d.code().code() == "55P03");
                if lock_timeout && retries < 20 && !cancel.requested() {
                    retries += 1;
                    rep.pauses.push(format!("batch after {:?} hit the lock_timeout; retrying", last));
                    std::thread::sleep(Duration::from_millis(100 * retries as u64));
                    continue;
                }
                return Err(e.into());
            }
        }
        if !o.sleep.is_zero() {
            std::thread::sleep(o.sleep);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    rep.rows_per_sec = if secs > 0.0 { rep.updated as f64 / secs } else { 0.0 };
    if rep.finished && o.filter.is_some() {
        rep.remaining = Some(c.query_one(&format!("SELECT count(*) FROM {table} WHERE {filter}"), &[])?.get(0));
    }
    drop(lock);
    Ok(rep)
}

/// The backfill's checkpoint: resumed (the last key done) when it exists for the same SET and
/// WHERE, started again from the first key when that run had finished, created otherwise.
fn checkpoint(
    c: &mut Client,
    name: &str,
    table: &str,
    o: &BackfillOptions,
    key_cols: &[String],
    rep: &mut BackfillReport,
) -> Result<Option<Vec<String>>, EngineError> {
    let existing = c.query_opt("SELECT last_key, rows_done, finished_at IS NOT NULL, set_clause, coalesce(where_clause, '') FROM migsafe.backfills WHERE name = $1", &[&name])?;
    match existing {
        Some(r) => {
            let (set0, where0): (String, String) = (r.get(3), r.get(4));
            if set0 != o.set || where0 != o.filter.clone().unwrap_or_default() {
                return Err(EngineError::Refused(format!(
                    "checkpoint {name} belongs to another backfill (SET {set0} WHERE {where0}); pass --name"
                )));
            }
            let mut last: Option<Vec<String>> = r.get(0);
            rep.total_updated = r.get(1);
            rep.resumed = last.is_some();
            if r.get::<_, bool>(2) {
                // Finished before: walk again (new rows may match), from the start.
                last = None;
                c.execute(
                    "UPDATE migsafe.backfills SET last_key = NULL, finished_at = NULL WHERE name = $1",
                    &[&name],
                )?;
            }
            Ok(last)
        }
        None => {
            c.execute(
                "INSERT INTO migsafe.backfills (name, table_name, set_clause, where_clause, key_columns) VALUES ($1, $2, $3, $4, $5)",
                &[&name, &table, &o.set, &o.filter, &key_cols],
            )?;
            Ok(None)
        }
    }
}

/// One backfill's walk over its table in key order, a batch per transaction.
struct Walk<'a> {
    /// The table, as SQL.
    table: &'a str,
    /// The WHERE condition (`true` when none).
    filter: &'a str,
    /// The SET clause.
    set: &'a str,
    /// The row key: (column, type).
    key: &'a [(String, String)],
    /// The key of the row `$1` rows into the table, and after the key in `$2…`.
    next_first: String,
    next_after: String,
}

impl<'a> Walk<'a> {
    fn new(table: &'a str, filter: &'a str, set: &'a str, key: &'a [(String, String)]) -> Walk<'a> {
        let mut w = Walk { table, filter, set, key, next_first: String::new(), next_after: String::new() };
        w.next_first = w.next_key_sql(false);
        w.next_after = w.next_key_sql(true);
        w
    }

    /// `prefix.k1, prefix.k2`.
    fn tuple(&self, prefix: &str) -> String {
        self.key.iter().map(|(k, _)| format!("{prefix}{}", qi(k))).collect::<Vec<_>>().join(", ")
    }

    /// The key as parameters from `$base`, each cast from text to its type.
    fn typed(&self, base: usize) -> String {
        self.key
            .iter()
            .enumerate()
            .map(|(i, (_, t))| format!("${}::text::{t}", base + i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The key of the row `offset` rows after `last` (or from the start), as text.
    fn next_key_sql(&self, after: bool) -> String {
        let keys = self.key.iter().map(|(k, _)| qi(k)).collect::<Vec<_>>().join(", ");
        let select = self.key.iter().map(|(k, _)| format!("t.{}::text", qi(k))).collect::<Vec<_>>().join(", ");
        let from = if after { format!(" WHERE ({}) > ({})", self.tuple("t."), self.typed(2)) } else { String::new() };
        format!("SELECT ARRAY[{select}] FROM {} t{from} ORDER BY {keys} OFFSET $1 LIMIT 1", self.table)
    }

    /// One batch in one transaction: the rows after `last` up to the key `offset` rows on
    /// (to the end when there is none), updated, and the checkpoint moved in the same
    /// transaction. Returns the rows updated and the batch's upper key (None: the walk is done).
    fn batch(
        &self,
        c: &mut Client,
        name: &str,
        last: Option<&[String]>,
        offset: i64,
        lock_timeout: Duration,
    ) -> Result<(i64, Option<Vec<String>>), postgres::Error> {
        let n = self.key.len();
        let mut tx = c.transaction()?;
        tx.batch_execute(&format!("SET LOCAL lock_timeout = {}", lock_timeout.as_millis()))?;
        let upper_key: Option<Vec<String>> = match last {
            Some(l) => {
                let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&offset];
                for v in l {
                    params.push(v);
                }
                tx.query_opt(&self.next_after, &params)?.map(|r| r.get(0))
            }
            None => tx.query_opt(&self.next_first, &[&offset])?.map(|r| r.get(0)),
        };
        let lower =
            if last.is_some() { format!(" AND ({}) > ({})", self.tuple("t."), self.typed(1)) } else { String::new() };
        let upper = if upper_key.is_some() {
            format!(" AND ({}) <= ({})", self.tuple("t."), self.typed(1 + if last.is_some() { n } else { 0 }))
        } else {
            String::new()
        };
        let sql = format!("UPDATE {} t SET {} WHERE {}{lower}{upper}", self.table, self.set, self.filter);
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![];
        if let Some(l) = last {
            for v in l {
                params.push(v);
            }
        }
        if let Some(u) = &upper_key {
            for v in u {
                params.push(v);
            }
        }
        let updated = tx.execute(&sql, &params)? as i64;
        match &upper_key {
            Some(u) => tx.execute(
                "UPDATE migsafe.backfills SET last_key = $2, rows_done = rows_done + $3, batches = batches + 1, updated_at = clock_timestamp() WHERE name = $1",
                &[&name, u, &updated],
            )?,
            None => tx.execute(
                "UPDATE migsafe.backfills SET last_key = NULL, rows_done = rows_done + $2, batches = batches + 1, updated_at = clock_timestamp(), finished_at = clock_timestamp() WHERE name = $1",
                &[&name, &updated],
            )?,
        };
        tx.commit()?;
        Ok((updated, upper_key))
    }
}

/// Pause while replicas lag or sessions queue for locks on the table.
fn throttle(c: &mut Client, o: &BackfillOptions, table: &str, rep: &mut BackfillReport) -> Result<(), EngineError> {
    for _ in 0..600 {
        let mut why = None;
        if let Some(max) = o.max_lag {
            let lag: Option<f64> =
                c.query_one("SELECT max(extract(epoch FROM replay_lag))::float8 FROM pg_stat_replication", &[])?.get(0);
            if lag.is_some_and(|l| l > max.as_secs_f64()) {
                why = Some(format!("replica lag {:.1} s", lag.unwrap_or(0.0)));
            }
        }
        if let Some(max) = o.max_lock_waits {
            let waits: i64 = c
                .query_one("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = to_regclass($1)", &[&table])?
                .get(0);
            if waits > max {
                why = Some(format!("{waits} sessions waiting for locks on {table}"));
            }
        }
        match why {
            None => return Ok(()),
            Some(w) => {
                if rep.pauses.last() != Some(&format!("paused: {w}")) {
                    rep.pauses.push(format!("paused: {w}"));
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_where_must_be_one_update() {
        assert!(validate("users", "new_field = legacy_field", Some("new_field IS NULL")).is_ok());
        assert!(validate("users", "a = 1; DROP TABLE users", None).is_err());
        assert!(validate("users", "a = = 1", None).is_err());
        assert!(validate("users", "a = 1", Some("true; DELETE FROM users")).is_err());
    }
}
