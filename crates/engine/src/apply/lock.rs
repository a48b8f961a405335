//! One apply at a time: a session advisory lock held on a connection of its own, so that
//! closing it (on every path, a crash included) releases the lock.

use postgres::Client;
use std::time::{Duration, Instant};

use crate::EngineError;

/// The advisory lock key every migsafe apply/rollback takes ("migsafe" in ASCII).
pub const LOCK_KEY: i64 = 0x006d_6967_7361_6665;

/// The held lock: released with `pg_advisory_unlock` when dropped, on every path, before its
/// connection closes. Closing alone releases it too, but only once the server has noticed the
/// connection is gone, so the next apply could find it still held.
pub struct HeldLock {
    client: Client,
    key: i64,
}

impl HeldLock {
    /// The lock `key`, taken on `client`.
    pub fn new(client: Client, key: i64) -> HeldLock {
        HeldLock { client, key }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let _ = self.client.execute("SELECT pg_advisory_unlock($1)", &[&self.key]);
    }
}

/// What trying to take the lock gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    /// This session holds it now.
    Taken,
    /// Another session holds it: who, from where, since when.
    HeldBy(String),
}

/// Take the advisory lock `key` (`HistoryTable::lock_key`) on `lock` (its own connection),
/// waiting up to `wait`.
pub fn take_lock(lock: &mut Client, key: i64, wait: Option<Duration>) -> Result<LockAttempt, EngineError> {
    let deadline = Instant::now() + wait.unwrap_or_default();
    loop {
        let got: bool = lock.query_one("SELECT pg_try_advisory_lock($1)", &[&key])?.get(0);
        if got {
            return Ok(LockAttempt::Taken);
        }
        if Instant::now() >= deadline {
            let holder = lock
                .query_opt(
                    "SELECT 'pid ' || a.pid || ' (' || coalesce(a.application_name, '') || ') from ' || coalesce(host(a.client_addr), 'local socket') \
                     || ' as ' || a.usename || ', since ' || a.backend_start::text FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = $1 \
                       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) LIMIT 1",
                    &[&key],
                )?
                .map(|r| r.get::<_, String>(0))
                .unwrap_or_else(|| "another session".into());
            return Ok(LockAttempt::HeldBy(holder));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
