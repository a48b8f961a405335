//! The fleet's ledger in the control database (schema `migsafe_fleet`): the run, its targets
//! with their wave and state, and a timeline of events. Runners claim targets with
//! `FOR UPDATE SKIP LOCKED` under a lease they renew; a runner that dies (kill -9, lost
//! machine) stops renewing, and its targets are claimed again when the lease has expired (at
//! once when the claimer can see the dead runner was on its own machine). Each target's own
//! history stays the truth for that target: running a target again applies only what its
//! history says is pending.

use postgres::Client;
use serde::Serialize;
use std::time::Duration;

use migsafe_pg::ConnSpec;

use super::targets::Target;
use crate::EngineError;

/// The ledger's DDL (idempotent).
const SCHEMA_SQL: &str = "
CREATE SCHEMA IF NOT EXISTS migsafe_fleet;
CREATE TABLE IF NOT EXISTS migsafe_fleet.runs (
    id bigserial PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at timestamptz,
    status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'stopped', 'finished')),
    stop_reason text,
    dir text NOT NULL,
    migrations jsonb NOT NULL,
    settings jsonb NOT NULL,
    waves int NOT NULL,
    current_wave int NOT NULL DEFAULT 0,
    started_by text NOT NULL DEFAULT current_user
);
CREATE TABLE IF NOT EXISTS migsafe_fleet.targets (
    run_id bigint NOT NULL REFERENCES migsafe_fleet.runs ON DELETE CASCADE,
    name text NOT NULL,
    ord int NOT NULL,
    url text NOT NULL,
    host text NOT NULL,
    labels jsonb NOT NULL DEFAULT '{}',
    wave int NOT NULL,
    state text NOT NULL CHECK (state IN ('pending', 'running', 'applied', 'failed', 'rolled_back', 'quarantined', 'skipped_drift', 'unreachable')),
    attempts int NOT NULL DEFAULT 0,
    runner text,
    lease_until timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    ms double precision,
    fingerprint text,
    pending jsonb NOT NULL DEFAULT '[]',
    applied jsonb NOT NULL DEFAULT '[]',
    error text,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS targets_claim ON migsafe_fleet.targets (run_id, state, wave, ord);
CREATE TABLE IF NOT EXISTS migsafe_fleet.events (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES migsafe_fleet.runs ON DELETE CASCADE,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    target text,
    kind text NOT NULL,
    detail text NOT NULL
);
";

/// A target's state in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Not started.
    Pending,
    /// Claimed by a runner (under its lease).
    Running,
    /// Every migration of the run is applied (or was already).
    Applied,
    /// Refused by its preflight, or left needing a human (its rollback failed, or it was
    /// interrupted statement by statement): see its error and `migsafe diagnose`.
    Failed,
    /// Rolled back by `migsafe fleet rollback`.
    RolledBack,
    /// Its migration failed and was rolled back; skipped from then on.
    Quarantined,
    /// Its schema differs from the others at the same history position; not touched.
    SkippedDrift,
    /// Could not be reached, or the connection was lost; nothing of this run is half-applied on
    /// it (its history says what is), `--resume` tries it again.
    Unreachable,
}

impl TargetState {
    /// The ledger's text.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Pending => "pending",
            TargetState::Running => "running",
            TargetState::Applied => "applied",
            TargetState::Failed => "failed",
            TargetState::RolledBack => "rolled_back",
            TargetState::Quarantined => "quarantined",
            TargetState::SkippedDrift => "skipped_drift",
            TargetState::Unreachable => "unreachable",
        }
    }

    /// Read the ledger's text (its CHECK allows nothing else).
    pub fn read(s: &str) -> TargetState {
        match s {
            "running" => TargetState::Running,
            "applied" => TargetState::Applied,
            "failed" => TargetState::Failed,
            "rolled_back" => TargetState::RolledBack,
            "quarantined" => TargetState::Quarantined,
            "skipped_drift" => TargetState::SkippedDrift,
            "unreachable" => TargetState::Unreachable,
            _ => TargetState::Pending,
        }
    }

    /// Counts against `--max-failures`.
    pub fn is_failure(self) -> bool {
        matches!(self, TargetState::Failed | TargetState::Quarantined)
    }
}

impl std::fmt::Display for TargetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run as the ledger keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    /// Run id.
    pub id: i64,
    /// `running`, `stopped` or `finished`.
    pub status: String,
    /// Why it stopped.
    pub stop_reason: Option<String>,
    /// The wave being rolled out (0 is the canary).
    pub current_wave: i32,
    /// Number of waves, the canary included.
    pub waves: i32,
    /// The settings it was started with (JSON).
    pub settings: serde_json::Value,
    /// The migrations of the run: `[{version, name, checksum}]`.
    pub migrations: serde_json::Value,
}

/// A target as the ledger keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct TargetRow {
    /// Its name.
    pub name: String,
    /// Redacted connection string.
    pub url: String,
    /// Server.
    pub host: String,
    /// Wave (0: canary).
    pub wave: i32,
    /// State.
    pub state: TargetState,
    /// Times claimed.
    pub attempts: i32,
    /// Milliseconds its last attempt took.
    pub ms: Option<f64>,
    /// The run's migrations it had pending at the survey.
    pub pending: Vec<String>,
    /// Of those, the ones its history shows applied (read back from it after each attempt).
    pub applied: Vec<String>,
    /// Why it failed, was skipped or could not be reached.
    pub error: Option<String>,
    /// Its schema's fingerprint at the survey.
    pub fingerprint: Option<String>,
}

/// An event of the run's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// When (ISO 8601).
    pub at: String,
    /// Target, if it is about one.
    pub target: Option<String>,
    /// `plan`, `claim`, `applied`, `failure`, `rollback`, `quarantine`, `wave`, `stop`, `end`…
    pub kind: String,
    /// What happened.
    pub detail: String,
}

/// A target as a new run records it.
#[derive(Debug, Clone)]
pub struct NewTarget<'a> {
    /// The target.
    pub target: &'a Target,
    /// Its wave (0: canary).
    pub wave: i32,
    /// Its first state (`pending`, or what the survey decided).
    pub state: TargetState,
    /// Its fingerprint at the survey.
    pub fingerprint: Option<String>,
    /// The run's migrations it had pending at the survey.
    pub pending: Vec<String>,
    /// Why it is not pending.
    pub error: Option<String>,
}

/// The connection to the control database.
pub struct Ledger {
    c: Client,
    spec: ConnSpec,
    /// This runner (`host/pid/random`).
    pub runner: String,
}

impl Ledger {
    /// Connect and make sure the ledger's tables exist.
    pub fn open(spec: &ConnSpec) -> Result<Ledger, EngineError> {
        let mut c = spec.with_application_name("migsafe fleet (ledger)").connect()?;
        // Two runners creating the schema at once would collide on the catalog.
        c.batch_execute(&format!(
            "SELECT pg_advisory_lock(7170418); {SCHEMA_SQL} SELECT pg_advisory_unlock(7170418);"
        ))?;
        let runner = format!("{}/{}/{:08x}", crate::apply::host_name(), std::process::id(), rand::random::<u32>());
        Ok(Ledger { c, spec: spec.clone(), runner })
    }

    /// Another connection for the same runner (worker threads each have their own).
    pub fn reopen(&self) -> Result<Ledger, EngineError> {
        let c = self.spec.with_application_name("migsafe fleet (ledger)").connect()?;
        Ok(Ledger { c, spec: self.spec.clone(), runner: self.runner.clone() })
    }

    /// Record a new run with its targets (state and wave decided by the caller).
    pub fn create_run(
        &mut self,
        dir: &str,
        migrations: &serde_json::Value,
        settings: &serde_json::Value,
        waves: i32,
        targets: &[NewTarget],
    ) -> Result<i64, EngineError> {
        let mut tx = self.c.transaction()?;
        let id: i64 = tx
            .query_one(
                "INSERT INTO migsafe_fleet.runs (dir, migrations, settings, waves) VALUES ($1, $2::text::jsonb, $3::text::jsonb, $4) RETURNING id",
                &[&dir, &migrations.to_string(), &settings.to_string(), &waves],
            )?
            .get(0);
        let st = tx.prepare(
            "INSERT INTO migsafe_fleet.targets (run_id, name, ord, url, host, labels, wave, state, fingerprint, error, pending) \
             VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8, $9, $10, $11::text::jsonb)",
        )?;
        for (i, n) in targets.iter().enumerate() {
            let t = n.target;
            let labels = serde_json::to_string(&t.labels).unwrap_or_else(|_| "{}".into());
            let pending = serde_json::to_string(&n.pending).unwrap_or_else(|_| "[]".into());
            tx.execute(
                &st,
                &[
                    &id,
                    &t.name,
                    &(i as i32),
                    &t.url(),
                    &t.host(),
                    &labels,
                    &n.wave,
                    &n.state.as_str(),
                    &n.fingerprint,
                    &n.error,
                    &pending,
                ],
            )?;
        }
        tx.commit()?;
        Ok(id)
    }

    /// The run `id`, or the latest unfinished one.
    pub fn run(&mut self, id: Option<i64>) -> Result<RunRow, EngineError> {
        let row = match id {
            Some(id) => self.c.query_opt(&format!("{RUN_COLUMNS} WHERE id = $1"), &[&id])?,
            None => {
                self.c.query_opt(&format!("{RUN_COLUMNS} WHERE status <> 'finished' ORDER BY id DESC LIMIT 1"), &[])?
            }
        };
        let row = row.ok_or_else(|| {
            EngineError::Usage(match id {
                Some(id) => format!("the control database has no fleet run {id}"),
                None => "the control database has no unfinished fleet run to resume".into(),
            })
        })?;
        Ok(RunRow {
            id: row.get(0),
            status: row.get(1),
            stop_reason: row.get(2),
            current_wave: row.get(3),
            waves: row.get(4),
            settings: serde_json::from_str(row.get::<_, &str>(5)).unwrap_or_default(),
            migrations: serde_json::from_str(row.get::<_, &str>(6)).unwrap_or_default(),
        })
    }

    /// Every target of the run, in rollout order.
    pub fn targets(&mut self, run: i64) -> Result<Vec<TargetRow>, EngineError> {
        let rows = self.c.query(
            "SELECT name, url, host, wave, state, attempts, ms, ARRAY(SELECT jsonb_array_elements_text(applied)), error, fingerprint, \
               ARRAY(SELECT jsonb_array_elements_text(pending)) \
             FROM migsafe_fleet.targets WHERE run_id = $1 ORDER BY wave, ord",
            &[&run],
        )?;
        Ok(rows
            .iter()
            .map(|r| TargetRow {
                name: r.get(0),
                url: r.get(1),
                host: r.get(2),
                wave: r.get(3),
                state: TargetState::read(r.get(4)),
                attempts: r.get(5),
                ms: r.get(6),
                applied: r.get(7),
                error: r.get(8),
                fingerprint: r.get(9),
                pending: r.get(10),
            })
            .collect())
    }

    /// Claim the next target this runner may run: of a wave up to the current one, pending,
    /// or running under a lease that expired (or held by a runner known dead), and on a server
    /// with fewer than `per_host` targets running. Claims are serialised per run, so the
    /// per-server count is exact across runners.
    pub fn claim(
        &mut self,
        run: i64,
        per_host: i64,
        lease: Duration,
        dead: &[String],
    ) -> Result<Option<String>, EngineError> {
        let mut tx = self.c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock(7170419, $1::int)", &[&(run as i32)])?;
        let secs = lease.as_secs_f64();
        let row = tx.query_opt(
            "SELECT t.name FROM migsafe_fleet.targets t JOIN migsafe_fleet.runs r ON r.id = t.run_id \
             WHERE t.run_id = $1 AND r.status = 'running' AND t.wave <= r.current_wave \
               AND (t.state = 'pending' OR (t.state = 'running' AND (t.lease_until < clock_timestamp() OR t.runner = ANY($3)))) \
               AND (SELECT count(*) FROM migsafe_fleet.targets o WHERE o.run_id = t.run_id AND o.host = t.host AND o.state = 'running' \
                    AND o.lease_until >= clock_timestamp() AND NOT (o.runner = ANY($3))) < $2 \
             ORDER BY t.wave, t.ord LIMIT 1 FOR UPDATE OF t SKIP LOCKED",
            &[&run, &per_host, &dead],
        )?;
        let Some(row) = row else {
            tx.commit()?;
            return Ok(None);
        };
        let name: String = row.get(0);
        tx.execute(
            "UPDATE migsafe_fleet.targets SET state = 'running', runner = $3, attempts = attempts + 1, started_at = clock_timestamp(), \
             lease_until = clock_timestamp() + make_interval(secs => $4) WHERE run_id = $1 AND name = $2",
            &[&run, &name, &self.runner, &secs],
        )?;
        tx.commit()?;
        Ok(Some(name))
    }

    /// The run's migrations a target had pending at the survey.
    pub fn pending_of(&mut self, run: i64, name: &str) -> Result<Vec<String>, EngineError> {
        let row = self.c.query_opt(
            "SELECT ARRAY(SELECT jsonb_array_elements_text(pending)) FROM migsafe_fleet.targets WHERE run_id = $1 AND name = $2",
            &[&run, &name],
        )?;
        Ok(row.map(|r| r.get(0)).unwrap_or_default())
    }

    /// Renew the leases of every target this runner is running.
    pub fn renew(&mut self, run: i64, lease: Duration) -> Result<(), EngineError> {
        self.c.execute(
            "UPDATE migsafe_fleet.targets SET lease_until = clock_timestamp() + make_interval(secs => $3) \
             WHERE run_id = $1 AND runner = $2 AND state = 'running'",
            &[&run, &self.runner, &lease.as_secs_f64()],
        )?;
        Ok(())
    }

    /// Runners holding targets of this run that are known dead: on this machine, with no
    /// process of their pid any more.
    pub fn dead_runners(&mut self, run: i64) -> Result<Vec<String>, EngineError> {
        let rows = self.c.query(
            "SELECT DISTINCT runner FROM migsafe_fleet.targets WHERE run_id = $1 AND state = 'running' AND runner IS NOT NULL",
            &[&run],
        )?;
        let me = crate::apply::host_name();
        Ok(rows
            .iter()
            .map(|r| r.get::<_, String>(0))
            .filter(|r| {
                let mut parts = r.split('/');
                let (host, pid) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                r != &self.runner && host == me && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            })
            .collect())
    }

    /// Record how a target's attempt ended (only if this runner still holds it).
    pub fn finish(
        &mut self,
        run: i64,
        name: &str,
        state: TargetState,
        ms: f64,
        applied: Option<&[String]>,
        error: Option<&str>,
    ) -> Result<(), EngineError> {
        let applied = applied.map(|a| serde_json::to_string(a).unwrap_or_else(|_| "[]".into()));
        self.c.execute(
            "UPDATE migsafe_fleet.targets SET state = $3, finished_at = clock_timestamp(), ms = $4, lease_until = NULL, \
             applied = coalesce($5::text::jsonb, applied), error = $6 WHERE run_id = $1 AND name = $2 AND runner = $7",
            &[&run, &name, &state.as_str(), &ms, &applied, &error, &self.runner],
        )?;
        Ok(())
    }

    /// Set a target's state outright (`fleet rollback`), with what its history shows applied.
    pub fn set_state(
        &mut self,
        run: i64,
        name: &str,
        state: TargetState,
        applied: &[String],
        error: Option<&str>,
    ) -> Result<(), EngineError> {
        let applied = serde_json::to_string(applied).unwrap_or_else(|_| "[]".into());
        self.c.execute(
            "UPDATE migsafe_fleet.targets SET state = $3, error = $4, applied = $5::text::jsonb, lease_until = NULL, \
             finished_at = clock_timestamp() WHERE run_id = $1 AND name = $2",
            &[&run, &name, &state.as_str(), &error, &applied],
        )?;
        Ok(())
    }

    /// Record what a target's history shows applied of the run, its state unchanged.
    pub fn set_applied(&mut self, run: i64, name: &str, applied: &[String]) -> Result<(), EngineError> {
        let applied = serde_json::to_string(applied).unwrap_or_else(|_| "[]".into());
        self.c.execute(
            "UPDATE migsafe_fleet.targets SET applied = $3::text::jsonb WHERE run_id = $1 AND name = $2",
            &[&run, &name, &applied],
        )?;
        Ok(())
    }

    /// Make a resumed run claimable again: unreachable targets are tried again, and the run
    /// goes on from its current wave.
    pub fn reopen_run(&mut self, run: i64) -> Result<(), EngineError> {
        let mut tx = self.c.transaction()?;
        tx.execute(
            "UPDATE migsafe_fleet.targets SET state = 'pending', error = NULL WHERE run_id = $1 AND state = 'unreachable'",
            &[&run],
        )?;
        tx.execute(
            "UPDATE migsafe_fleet.runs SET status = 'running', stop_reason = NULL, finished_at = NULL WHERE id = $1 AND status = 'stopped'",
            &[&run],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Count targets by state.
    pub fn counts(&mut self, run: i64) -> Result<Vec<(TargetState, i64)>, EngineError> {
        let rows = self.c.query(
            "SELECT state, count(*) FROM migsafe_fleet.targets WHERE run_id = $1 GROUP BY 1 ORDER BY 1",
            &[&run],
        )?;
        Ok(rows.iter().map(|r| (TargetState::read(r.get(0)), r.get(1))).collect())
    }

    /// Targets of waves up to `wave` still pending or running.
    pub fn open_in_wave(&mut self, run: i64, wave: i32) -> Result<i64, EngineError> {
        Ok(self
            .c
            .query_one(
                "SELECT count(*) FROM migsafe_fleet.targets WHERE run_id = $1 AND wave <= $2 AND state IN ('pending', 'running')",
                &[&run, &wave],
            )?
            .get(0))
    }

    /// The targets of one wave that were run (claimed at least once), and their states.
    pub fn wave(&mut self, run: i64, wave: i32) -> Result<Vec<(String, TargetState)>, EngineError> {
        let rows = self.c.query(
            "SELECT name, state FROM migsafe_fleet.targets WHERE run_id = $1 AND wave = $2 AND attempts > 0 ORDER BY ord",
            &[&run, &wave],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), TargetState::read(r.get(1)))).collect())
    }

    /// Try to become the one runner that closes wave `wave` (a transaction-level lock: the
    /// caller commits with [`Ledger::advance`] or [`Ledger::stop`] in the returned scope).
    pub fn try_close_wave(&mut self, run: i64, wave: i32) -> Result<bool, EngineError> {
        let got: bool = self.c.query_one("SELECT pg_try_advisory_lock(7170420, $1::int)", &[&(run as i32)])?.get(0);
        if !got {
            return Ok(false);
        }
        let still: bool = self
            .c
            .query_one(
                "SELECT current_wave = $2 AND status = 'running' FROM migsafe_fleet.runs WHERE id = $1",
                &[&run, &wave],
            )?
            .get(0);
        if !still {
            self.release_wave(run)?;
        }
        Ok(still)
    }

    /// Release what [`Ledger::try_close_wave`] took.
    pub fn release_wave(&mut self, run: i64) -> Result<(), EngineError> {
        self.c.execute("SELECT pg_advisory_unlock(7170420, $1::int)", &[&(run as i32)])?;
        Ok(())
    }

    /// Move to the next wave; after the last, the run is finished, or stopped when targets
    /// could not be reached (`--resume` tries them again). True when this was the last wave.
    pub fn advance(&mut self, run: i64, from: i32) -> Result<bool, EngineError> {
        let row = self.c.query_opt(
            "WITH left_over AS (SELECT count(*) AS n FROM migsafe_fleet.targets WHERE run_id = $1 AND state IN ('unreachable', 'pending')) \
             UPDATE migsafe_fleet.runs SET current_wave = current_wave + 1, \
               status = CASE WHEN current_wave + 1 < waves THEN status WHEN (SELECT n FROM left_over) > 0 THEN 'stopped' ELSE 'finished' END, \
               stop_reason = CASE WHEN current_wave + 1 >= waves AND (SELECT n FROM left_over) > 0 \
                 THEN (SELECT n FROM left_over) || ' targets could not be reached: `migsafe fleet apply --resume` tries them again' END, \
               finished_at = CASE WHEN current_wave + 1 >= waves THEN clock_timestamp() END \
             WHERE id = $1 AND current_wave = $2 RETURNING current_wave >= waves",
            &[&run, &from],
        )?;
        Ok(row.map(|r| r.get(0)).unwrap_or(false))
    }

    /// Stop the run: no runner claims anything more.
    pub fn stop(&mut self, run: i64, reason: &str) -> Result<(), EngineError> {
        self.c.execute(
            "UPDATE migsafe_fleet.runs SET status = 'stopped', stop_reason = $2, finished_at = clock_timestamp() WHERE id = $1 AND status = 'running'",
            &[&run, &reason],
        )?;
        Ok(())
    }

    /// Mark a run finished (a rollback run, or a run with nothing left).
    pub fn finish_run(&mut self, run: i64) -> Result<(), EngineError> {
        self.c.execute(
            "UPDATE migsafe_fleet.runs SET status = 'finished', finished_at = clock_timestamp() WHERE id = $1",
            &[&run],
        )?;
        Ok(())
    }

    /// Add an event to the run's timeline.
    pub fn event(&mut self, run: i64, target: Option<&str>, kind: &str, detail: &str) -> Result<(), EngineError> {
        self.c.execute(
            "INSERT INTO migsafe_fleet.events (run_id, target, kind, detail) VALUES ($1, $2, $3, $4)",
            &[&run, &target, &kind, &migsafe_pg::redact_text(detail)],
        )?;
        Ok(())
    }

    /// The run's timeline.
    pub fn events(&mut self, run: i64) -> Result<Vec<Event>, EngineError> {
        let rows = self.c.query(
            "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), target, kind, detail \
             FROM migsafe_fleet.events WHERE run_id = $1 ORDER BY id",
            &[&run],
        )?;
        Ok(rows.iter().map(|r| Event { at: r.get(0), target: r.get(1), kind: r.get(2), detail: r.get(3) }).collect())
    }
}

const RUN_COLUMNS: &str =
    "SELECT id, status, stop_reason, current_wave, waves, settings::text, migrations::text FROM migsafe_fleet.runs";
