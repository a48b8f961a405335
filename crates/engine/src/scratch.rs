//! Where scratch databases come from: the throwaway cluster (the embedded default), or a real
//! server named with `--db`, on which migsafe creates and drops only its own uniquely named
//! `migsafe_scratch_*` databases and never touches any other.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use migsafe_pg::cluster::{create_database, drop_database};
use migsafe_pg::{Cluster, ConnSpec, PgBinaries, PgError};

/// A server that hands out scratch databases. One administrative connection is kept open
/// and reused for every `CREATE`/`DROP DATABASE` (a new one is made if it breaks).
pub struct ScratchServer {
    // Declared first so it is closed before a throwaway cluster stops.
    admin_conn: Mutex<Option<postgres::Client>>,
    kind: Kind,
    /// `[session]` settings of the migration set, given to every database created from now on.
    session: Mutex<crate::config::SessionConfig>,
}

enum Kind {
    /// A private throwaway cluster.
    Throwaway(Box<Cluster>),
    /// A real server; only `migsafe_scratch_*` databases are created and dropped.
    Remote(Box<Remote>),
}

/// A real server used for scratch databases.
pub struct Remote {
    /// Connection with CREATEDB.
    pub admin: ConnSpec,
    /// Major version.
    pub major: u32,
    /// Databases created and not yet dropped.
    created: Mutex<Vec<String>>,
}

impl std::fmt::Debug for ScratchServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Throwaway(c) => write!(f, "{c:?}"),
            Kind::Remote(r) => write!(f, "Remote({})", r.admin),
        }
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl ScratchServer {
    /// Start a throwaway cluster from `pg_bin` (or the binaries found on the machine).
    pub fn throwaway(pg_bin: Option<&Path>) -> Result<ScratchServer, PgError> {
        let bins = PgBinaries::find(pg_bin)?;
        Ok(ScratchServer::new(Kind::Throwaway(Box::new(Cluster::start(&bins)?))))
    }

    /// Use a real server for scratch databases.
    pub fn remote(spec: &ConnSpec) -> Result<ScratchServer, PgError> {
        let mut c = spec.connect()?;
        let major = migsafe_pg::server_version_num(&mut c)? / 10000;
        let can: bool =
            c.query_one("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user", &[])?.get(0);
        if !can {
            return Err(PgError::Start(format!(
                "{} may not create databases (needs CREATEDB) for migsafe's scratch databases",
                spec.user()
            )));
        }
        Ok(ScratchServer::new(Kind::Remote(Box::new(Remote {
            admin: spec.clone(),
            major,
            created: Mutex::new(vec![]),
        }))))
    }

    fn new(kind: Kind) -> ScratchServer {
        ScratchServer { kind, admin_conn: Mutex::new(None), session: Mutex::new(Default::default()) }
    }

    /// The server's PostgreSQL major version.
    pub fn major(&self) -> u32 {
        match &self.kind {
            Kind::Throwaway(c) => c.binaries().major,
            Kind::Remote(r) => r.major,
        }
    }

    /// Connection settings for database `db` on this server.
    pub fn conn(&self, db: &str) -> ConnSpec {
        match &self.kind {
            Kind::Throwaway(c) => c.conn(db),
            Kind::Remote(r) => r.admin.with_dbname(db),
        }
    }

    /// The throwaway cluster, when this is one.
    pub fn cluster(&self) -> Option<&Cluster> {
        match &self.kind {
            Kind::Throwaway(c) => Some(c),
            Kind::Remote(_) => None,
        }
    }

    fn connect_admin(&self) -> Result<postgres::Client, PgError> {
        match &self.kind {
            Kind::Throwaway(c) => c.admin(),
            Kind::Remote(r) => r.admin.connect(),
        }
    }

    /// Run `f` on the kept administrative connection; on a connection failure, once more on
    /// a new one.
    fn with_admin(&self, mut f: impl FnMut(&mut postgres::Client) -> Result<(), PgError>) -> Result<(), PgError> {
        let mut slot = self.admin_conn.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = slot.as_mut() {
            if !c.is_closed() {
                match f(c) {
                    Err(PgError::Db(e)) if e.is_closed() || e.as_db_error().is_none() => {}
                    other => return other,
                }
            }
        }
        *slot = None;
        let mut c = self.connect_admin()?;
        let r = f(&mut c);
        *slot = Some(c);
        r
    }

    /// Roles the migrations of `set` name but do not create (`GRANT … TO readonly`, `OWNER TO
    /// app`, policies `TO authenticated`…) exist on the real server, not in a throwaway
    /// cluster: create the missing ones there (NOLOGIN, no privileges) so the migrations run as
    /// they would in production. On a server given with `--db` nothing is created. Returns the
    /// roles created.
    pub fn provide_roles(&self, set: &crate::source::MigrationSet) -> Result<Vec<String>, PgError> {
        if !matches!(self.kind, Kind::Throwaway(_)) {
            return Ok(vec![]);
        }
        let (mut named, mut created) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
        for m in &set.migrations {
            for text in [Some(&m.forward), m.rollback.as_ref(), m.capture.as_ref()].into_iter().flatten() {
                for st in migsafe_sql::parse_sql(&text.text).statements {
                    let (n, c) = st.roles();
                    named.extend(n);
                    created.extend(c);
                }
            }
        }
        let wanted: Vec<String> = named.difference(&created).cloned().collect();
        if wanted.is_empty() {
            return Ok(vec![]);
        }
        let mut made = Vec::new();
        self.with_admin(|c| {
            let existing: Vec<String> =
                c.query("SELECT rolname::text FROM pg_roles WHERE rolname = ANY($1)", &[&wanted])?.iter().map(|r| r.get(0)).collect();
            for r in wanted.iter().filter(|r| !existing.contains(r)) {
                // Another process may create the same role meanwhile (a shared cluster).
                c.batch_execute(&format!(
                    "DO $migsafe$ BEGIN CREATE ROLE {} NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $migsafe$",
                    migsafe_sql::quote_ident(r)
                ))?;
                made.push(r.clone());
            }
            Ok(())
        })?;
        Ok(made)
    }

    /// A new database, empty or cloned from `template` (another scratch database).
    pub fn create_db(&self, purpose: &str, template: Option<&str>) -> Result<ScratchDb<'_>, PgError> {
        let clean: String = purpose.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(30).collect();
        let name =
            format!("migsafe_scratch_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst), clean);
        self.with_admin(|admin| create_database(admin, &name, template, self.major()))?;
        // Database settings are not copied with a template: set them on every copy.
        let settings = self.session.lock().unwrap_or_else(|e| e.into_inner()).settings.clone();
        for (k, v) in settings {
            self.with_admin(|admin| {
                admin
                    .batch_execute(&format!(
                        "ALTER DATABASE {} SET {k} = {}",
                        migsafe_sql::quote_ident(&name),
                        migsafe_sql::quote_literal(&v)
                    ))
                    .map_err(PgError::Db)
            })?;
        }
        if let Kind::Remote(r) = &self.kind {
            r.created.lock().unwrap_or_else(|e| e.into_inner()).push(name.clone());
        }
        Ok(ScratchDb { spec: self.conn(&name), name, server: self, tracer: Default::default() })
    }

    /// A new empty database for the migrations of `set`, holding what they expect to find
    /// before the first one runs: the roles they name (see [`Self::provide_roles`]) and the
    /// migration-framework tables they refer to (Diesel's `__diesel_schema_migrations`, sqlx's
    /// `_sqlx_migrations`; see [`crate::source::MigrationSet::framework_sql`]).
    pub fn create_set_db(&self, purpose: &str, set: &crate::source::MigrationSet) -> Result<ScratchDb<'_>, PgError> {
        self.provide_roles(set)?;
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = set.config.session.clone();
        let db = self.create_db(purpose, None)?;
        let framework = set.framework_sql();
        if !framework.is_empty() {
            db.connect()?.batch_execute(&framework.join(";\n"))?;
        }
        Ok(db)
    }

    fn drop_db(&self, name: &str) -> Result<(), PgError> {
        debug_assert!(name.starts_with("migsafe_scratch_"));
        self.with_admin(|admin| drop_database(admin, name, self.major()))?;
        if let Kind::Remote(r) = &self.kind {
            r.created.lock().unwrap_or_else(|e| e.into_inner()).retain(|n| n != name);
        }
        Ok(())
    }
}

impl Drop for ScratchServer {
    fn drop(&mut self) {
        if let Kind::Remote(r) = &self.kind {
            let names: Vec<String> = r.created.lock().map(|v| v.clone()).unwrap_or_default();
            for n in names {
                let _ = self.drop_db(&n);
            }
        }
    }
}

/// A scratch database, dropped when this goes out of scope.
pub struct ScratchDb<'a> {
    /// Its name.
    pub name: String,
    /// How to connect.
    pub spec: ConnSpec,
    server: &'a ScratchServer,
    /// The lock tracer's session, kept between migrations (closed before the database is
    /// cloned or dropped, which need it to have no sessions).
    pub(crate) tracer: crate::rehearse::trace::TracerSession,
}

impl<'a> ScratchDb<'a> {
    /// Connect to it.
    pub fn connect(&self) -> Result<postgres::Client, PgError> {
        self.spec.connect()
    }

    /// A clone of this database (it must have no open connections).
    pub fn clone_db(&self, purpose: &str) -> Result<ScratchDb<'a>, PgError> {
        self.tracer.close();
        self.server.create_db(purpose, Some(&self.name))
    }
}

impl Drop for ScratchDb<'_> {
    fn drop(&mut self) {
        self.tracer.close();
        let _ = self.server.drop_db(&self.name);
    }
}
