//! Running a migration's SQL the way migsafe runs it: parsed into statements (so each can be
//! timed, traced and located), in one transaction, statement by statement outside one, or
//! with the file's own BEGIN/COMMIT, as its [`TxMode`] says. Errors name the file, line and
//! column of the failing statement (and of the exact token PostgreSQL points at).

use postgres::error::ErrorPosition;
use postgres::Client;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use migsafe_sql::directives::Directives;
use migsafe_sql::lint::TxMode;
use migsafe_sql::{parse_sql, LineIndex, Statement};

use crate::source::SqlText;

/// A migration file ready to run.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The file.
    pub file: PathBuf,
    /// Its text.
    pub source: String,
    /// Parsed statements.
    pub statements: Vec<Statement>,
    /// How it runs.
    pub tx_mode: TxMode,
    /// The line each statement starts on (one pass over the text, not one per statement).
    lines: Vec<usize>,
}

/// Why SQL could not be run.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
pub enum ExecError {
    /// The file does not parse.
    #[error("{file}:{line}:{column}: syntax error: {message}")]
    Syntax {
        /// File.
        file: String,
        /// Line.
        line: usize,
        /// Column.
        column: usize,
        /// PostgreSQL's message.
        message: String,
    },
    /// A statement failed on the server.
    #[error("{file}:{line}:{column}: {tag} failed: {message}")]
    Statement {
        /// File.
        file: String,
        /// Line of the error (the token PostgreSQL points at, else the statement start).
        line: usize,
        /// Column.
        column: usize,
        /// 0-based statement index.
        statement: usize,
        /// Command tag.
        tag: String,
        /// PostgreSQL's message, with detail and hint.
        message: String,
        /// SQLSTATE (`55P03` lock_not_available, `57014` query_canceled…).
        sqlstate: String,
    },
    /// Connection-level failure.
    #[error("{0}")]
    Connection(String),
}

impl ExecError {
    /// SQLSTATE of a statement error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ExecError::Statement { sqlstate, .. } => Some(sqlstate),
            _ => None,
        }
    }

    /// True for a lock_timeout expiry (retryable).
    pub fn is_lock_timeout(&self) -> bool {
        self.sqlstate() == Some("55P03")
    }
}

/// PostgreSQL 17 runs the functions that index expressions and predicates, materialized views
/// and maintenance commands call with `search_path = pg_catalog, pg_temp`: a function body that
/// names a table, type or function of another schema without qualifying it then fails with
/// "does not exist" although the same call works in a query (sqlxmq's partial index calls a SQL
/// function that calls `uuid_nil()` from uuid-ossp).
fn maintenance_search_path_hint(tag: &str, sqlstate: &str, context: &str) -> Option<&'static str> {
    const MAINTENANCE: &[&str] = &[
        "CREATE INDEX",
        "REINDEX",
        "REFRESH MATERIALIZED VIEW",
        "CREATE MATERIALIZED VIEW",
        "CLUSTER",
        "VACUUM",
        "ANALYZE",
    ];
    let missing = matches!(sqlstate, "42883" | "42P01" | "42704");
    let in_function = context.contains("function");
    (missing && in_function && MAINTENANCE.contains(&tag)).then_some(
        " (on PostgreSQL 17 and later, functions called by indexes, materialized views and maintenance \
         commands run with search_path = pg_catalog, pg_temp: qualify the names in that function's body with \
         their schema, or give the function `SET search_path = …`)",
    )
}

impl Prepared {
    /// Parse a migration text; syntax errors are located.
    pub fn new(sql: &SqlText) -> Result<Prepared, ExecError> {
        let parsed = parse_sql(&sql.text);
        if let Some(e) = parsed.errors.first() {
            let at = LineIndex::new(&sql.text).line_col(&sql.text, e.offset);
            return Err(ExecError::Syntax {
                file: sql.path.display().to_string(),
                line: at.line,
                column: at.column,
                message: e.message.clone(),
            });
        }
        let directives = Directives::parse(&sql.text);
        let tx_mode = TxMode::of(&directives, &parsed.statements);
        let index = LineIndex::new(&sql.text);
        let lines = parsed.statements.iter().map(|s| index.line_col(&sql.text, s.span.start).line).collect();
        Ok(Prepared { file: sql.path.clone(), source: sql.text.clone(), statements: parsed.statements, tx_mode, lines })
    }

    /// The line statement `i` starts on (0 when there is no such statement).
    pub fn line(&self, i: usize) -> usize {
        self.lines.get(i).copied().unwrap_or(0)
    }

    /// The line each statement starts on, in statement order.
    pub fn lines(&self) -> &[usize] {
        &self.lines
    }

    /// Parse SQL that is not in a file (generated scripts).
    pub fn from_text(label: &str, text: &str) -> Result<Prepared, ExecError> {
        Prepared::new(&SqlText { path: PathBuf::from(label), text: text.to_string() })
    }

    /// The text of statement `i`.
    pub fn text(&self, i: usize) -> &str {
        self.statements[i].text(&self.source)
    }

    /// Run statement `i` on `c`: its text, and for a `COPY … FROM STDIN` the rows that follow
    /// it in the file, streamed as psql would.
    pub fn execute(&self, c: &mut impl postgres::GenericClient, i: usize) -> Result<(), ExecError> {
        let stmt = &self.statements[i];
        let Some(rows) = stmt.copy_data else {
            return c.batch_execute(stmt.text(&self.source)).map_err(|e| self.locate(i, &e));
        };
        let mut w = c.copy_in(stmt.text(&self.source)).map_err(|e| self.locate(i, &e))?;
        let wrote = std::io::Write::write_all(&mut w, rows.slice(&self.source).as_bytes());
        match (wrote, w.finish()) {
            (_, Err(e)) => Err(self.locate(i, &e)),
            (Err(e), Ok(_)) => Err(ExecError::Connection(format!("sending the rows of COPY failed: {e}"))),
            (Ok(()), Ok(_)) => Ok(()),
        }
    }

    /// Whether the file opens its own transaction with its first statement (`BEGIN; … COMMIT;`):
    /// the data capture then runs right after that BEGIN, inside it.
    pub fn opens_with_begin(&self) -> bool {
        self.statements
            .first()
            .is_some_and(|s| matches!(s.kind, migsafe_sql::StmtKind::Transaction(migsafe_sql::model::TxControl::Begin)))
    }

    /// Whether the data capture runs in the same transaction as the migration's statements.
    pub fn captures_in_transaction(&self) -> bool {
        self.tx_mode == TxMode::Wrapped || self.opens_with_begin()
    }

    /// Turn a server error on statement `i` into a located error.
    pub fn locate(&self, i: usize, e: &postgres::Error) -> ExecError {
        let stmt = &self.statements[i];
        let Some(db) = e.as_db_error() else {
            return ExecError::Connection(e.to_string());
        };
        let mut offset = stmt.span.start;
        if let Some(ErrorPosition::Original(p)) = db.position() {
            let text = stmt.text(&self.source);
            let chars = (*p as usize).saturating_sub(1);
            offset += text.char_indices().nth(chars).map(|(b, _)| b).unwrap_or(0);
        }
        let at = LineIndex::new(&self.source).line_col(&self.source, offset);
        let mut message = db.message().to_string();
        if let Some(d) = db.detail() {
            message.push_str(&format!(" (detail: {d})"));
        }
        if let Some(h) = db.hint() {
            message.push_str(&format!(" (hint: {h})"));
        }
        // Where inside a function, DO block or inlined SQL function the error arose.
        if let Some(w) = db.where_().filter(|w| !w.is_empty()) {
            message.push_str(&format!(" (context: {})", w.lines().collect::<Vec<_>>().join("; ")));
            if let Some(h) = maintenance_search_path_hint(&stmt.tag, db.code().code(), w) {
                message.push_str(h);
            }
        }
        ExecError::Statement {
            file: self.file.display().to_string(),
            line: at.line,
            column: at.column,
            statement: i,
            tag: stmt.tag.clone(),
            message,
            sqlstate: db.code().code().to_string(),
        }
    }
}

/// One statement that ran.
#[derive(Debug, Clone, Serialize)]
pub struct StatementRun {
    /// 0-based index.
    pub index: usize,
    /// Command tag.
    pub tag: String,
    /// 1-based line where it starts.
    pub line: usize,
    /// How long it took.
    pub ms: f64,
}

/// Called after each statement, on the migration's own connection (inside its transaction
/// when there is one), e.g. to read the locks it holds.
pub type Observer<'a> = dyn FnMut(&mut Client, usize, Duration) + 'a;

/// Run a prepared migration on `client`. In [`TxMode::Wrapped`] everything is one
/// transaction that is rolled back on error; otherwise statements run as the file says.
pub fn run(client: &mut Client, p: &Prepared, observer: &mut Observer<'_>) -> Result<Vec<StatementRun>, ExecError> {
    run_captured(client, None, p, observer)
}

/// [`run`], with the data capture step first: in the migration's own transaction when it
/// has one (as `apply` runs it: the capture records that transaction's id, by which the
/// rollback tells the rows the migration added), else on its own before it.
pub fn run_captured(
    client: &mut Client,
    capture: Option<&Prepared>,
    p: &Prepared,
    observer: &mut Observer<'_>,
) -> Result<Vec<StatementRun>, ExecError> {
    run_observed(client, capture, p, &mut |_| {}, observer)
}

/// [`run_captured`], with `ready` called on the migration's connection just before its first
/// statement, once the data capture ran (inside the transaction when there is one): what the
/// observer compares each statement against starts there, not counting the capture's reads.
pub fn run_observed(
    client: &mut Client,
    capture: Option<&Prepared>,
    p: &Prepared,
    ready: &mut dyn FnMut(&mut Client),
    observer: &mut Observer<'_>,
) -> Result<Vec<StatementRun>, ExecError> {
    let index = LineIndex::new(&p.source);
    let wrapped = p.tx_mode == TxMode::Wrapped;
    let after_begin = !wrapped && p.opens_with_begin();
    if let Some(cap) = capture.filter(|_| !wrapped && !after_begin) {
        run_plain(client, cap)?;
    }
    if wrapped {
        client.batch_execute("BEGIN").map_err(|e| ExecError::Connection(e.to_string()))?;
        for i in 0..capture.map_or(0, |c| c.statements.len()) {
            if let Err(err) = capture.expect("capture").execute(client, i) {
                let _ = client.batch_execute("ROLLBACK");
                return Err(err);
            }
        }
    }
    ready(client);
    let mut runs = Vec::with_capacity(p.statements.len());
    for (i, stmt) in p.statements.iter().enumerate() {
        let t0 = Instant::now();
        if let Err(err) = p.execute(client, i) {
            // Leave no transaction open behind us.
            let _ = client.batch_execute("ROLLBACK");
            return Err(err);
        }
        if i == 0 && after_begin {
            for j in 0..capture.map_or(0, |c| c.statements.len()) {
                if let Err(err) = capture.expect("capture").execute(client, j) {
                    let _ = client.batch_execute("ROLLBACK");
                    return Err(err);
                }
            }
        }
        let took = t0.elapsed();
        observer(client, i, took);
        runs.push(StatementRun {
            index: i,
            tag: stmt.tag.clone(),
            line: index.line_col(&p.source, stmt.span.start).line,
            ms: took.as_secs_f64() * 1000.0,
        });
    }
    if wrapped {
        client.batch_execute("COMMIT").map_err(|e| ExecError::Connection(e.to_string()))?;
    }
    Ok(runs)
}

/// Run without observing.
pub fn run_plain(client: &mut Client, p: &Prepared) -> Result<Vec<StatementRun>, ExecError> {
    run(client, p, &mut |_, _, _| {})
}

/// Undo whatever session state migration SQL left on a connection we go on using, as if it
/// were a new one: a transaction it left open is rolled back (as closing the connection
/// would), and settings, role, temporary tables, cursors, advisory locks and listeners are
/// reset. (Not `DISCARD ALL`: it would also drop the client's own prepared statements.)
pub fn reset_session(c: &mut Client) -> Result<(), postgres::Error> {
    c.batch_execute(
        "ROLLBACK; CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; \
         SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES",
    )?;
    Ok(())
}
