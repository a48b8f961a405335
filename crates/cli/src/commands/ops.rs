//! `migsafe backfill` and `migsafe monitor`.

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

use migsafe_engine::apply::Cancel;
use migsafe_engine::backfill::{self, BackfillOptions, BackfillProgress};
use migsafe_engine::config::parse_duration;
use migsafe_engine::monitor::{self, LockNode, MonitorView};

use super::common::{database, engine_failure};
use crate::render::{self, paint, style};
use crate::{CmdResult, Exit, Failure};

/// Arguments of `migsafe backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Database URL (default: DATABASE_URL, PG* variables).
    #[arg(long)]
    pub db: Option<String>,
    /// Table to update.
    #[arg(long)]
    pub table: String,
    /// SET clause, e.g. "new_field = legacy_field".
    #[arg(long)]
    pub set: String,
    /// Rows to update; at the end no row may still match it.
    #[arg(long = "where")]
    pub filter: Option<String>,
    /// Rows per batch (adapted with --target-batch).
    #[arg(long, default_value_t = 5000)]
    pub batch: i64,
    /// Pause between batches.
    #[arg(long, default_value = "0s")]
    pub sleep: String,
    /// Adapt the batch size so a batch takes about this long (e.g. 200ms).
    #[arg(long)]
    pub target_batch: Option<String>,
    /// Pause while a replica lags more than this.
    #[arg(long)]
    pub max_lag: Option<String>,
    /// Pause while more than this many sessions wait for locks on the table.
    #[arg(long)]
    pub max_lock_waits: Option<i64>,
    /// lock_timeout of each batch.
    #[arg(long, default_value = "1s")]
    pub lock_timeout: String,
    /// Count the rows that would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Checkpoint name (default: derived from table, SET and WHERE).
    #[arg(long)]
    pub name: Option<String>,
}

struct Bar(ProgressBar);

impl BackfillProgress for Bar {
    fn update(&self, done: i64, walked: i64, total: i64, batch: i64) {
        self.0.set_length(total.max(1) as u64);
        self.0.set_position(walked.min(total) as u64);
        self.0.set_message(format!("{done} rows updated, batch {batch}"));
    }
}

fn dur(flag: &str, s: &str) -> Result<std::time::Duration, Failure> {
    parse_duration(s).map_err(|e| Failure::input(anyhow::anyhow!("{flag}: {e}")))
}

/// Run `migsafe backfill`.
pub fn backfill(a: BackfillArgs) -> CmdResult {
    backfill::validate(&a.table, &a.set, a.filter.as_deref()).map_err(Failure::input)?;
    let spec = database(a.db.as_deref())?;
    let o = BackfillOptions {
        table: a.table.clone(),
        set: a.set.clone(),
        filter: a.filter.clone(),
        batch: a.batch,
        sleep: dur("--sleep", &a.sleep)?,
        target_batch: a.target_batch.as_deref().map(|t| dur("--target-batch", t)).transpose()?,
        max_lag: a.max_lag.as_deref().map(|t| dur("--max-lag", t)).transpose()?,
        max_lock_waits: a.max_lock_waits,
        lock_timeout: dur("--lock-timeout", &a.lock_timeout)?,
        dry_run: a.dry_run,
        name: a.name.clone(),
    };
    let cancel = Cancel::default();
    let c2 = cancel.clone();
    let _ = ctrlc::set_handler(move || {
        eprintln!("\nmigsafe: stopping after the current batch (its checkpoint commits with it)…");
        c2.cancel();
    });
    let bar = ProgressBar::new(1);
    if std::io::stderr().is_terminal() {
        bar.set_style(
            ProgressStyle::with_template("{spinner} backfill [{bar:30}] {percent}% {per_sec} keys, ETA {eta} · {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let r = backfill::backfill(&spec, &o, &Bar(bar.clone()), &cancel).map_err(engine_failure)?;
    bar.finish_and_clear();
    let mut s = String::new();
    if let Some(n) = r.would_update {
        s.push_str(&format!("dry run: {n} rows of {} match and would be updated\n", a.table));
        render::emit(&s, None).map_err(Failure::environment)?;
        return Ok(Exit::Ok);
    }
    s.push_str(&format!(
        "{} {}: {} rows updated in {} batches ({:.0} rows/s; longest batch held its row locks {:.0} ms){}\n",
        if r.finished { paint(style::OK, "finished") } else { paint(style::WARNING, "stopped") },
        r.name,
        r.updated,
        r.batches,
        r.rows_per_sec,
        r.longest_batch_ms,
        if r.resumed { ", resumed from its checkpoint" } else { "" }
    ));
    for p in &r.pauses {
        s.push_str(&format!("  {p}\n"));
    }
    if !r.finished {
        s.push_str("  run the same command again to continue from the checkpoint\n");
    }
    let bad = r.remaining.is_some_and(|n| n > 0);
    if let Some(n) = r.remaining {
        if n > 0 {
            s.push_str(&format!(
                "  {} {n} rows still match --where (written meanwhile without the new value?)\n",
                paint(style::ERROR, "check failed:")
            ));
        } else {
            s.push_str("  check: no row matches --where any more\n");
        }
    }
    render::emit(&s, None).map_err(Failure::environment)?;
    Ok(if bad || !r.finished { Exit::Findings } else { Exit::Ok })
}

/// Output of `monitor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MonitorFormat {
    /// Screen.
    Human,
    /// JSON (one look).
    Json,
}

/// Arguments of `migsafe monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// Database URL (default: DATABASE_URL, PG* variables).
    #[arg(long)]
    pub db: Option<String>,
    /// Refresh in place every interval until Ctrl-C (e.g. 2s).
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "2s")]
    pub watch: Option<String>,
    /// Queries running longer than this are long-running.
    #[arg(long, default_value = "30s")]
    pub long: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: MonitorFormat,
}

fn tree(n: &LockNode, depth: usize, s: &mut String) {
    let pad = "  ".repeat(depth);
    let head = if depth == 0 { paint(style::ERROR, "blocker") } else { paint(style::WARNING, "waits ") };
    s.push_str(&format!(
        "{pad}{head} pid {} ({}, {}, {:.0} s){}: {}\n",
        n.pid,
        n.user,
        n.state,
        n.seconds,
        n.waiting_for.as_deref().map(|w| format!(" for {w}")).unwrap_or_default(),
        n.query.split_whitespace().collect::<Vec<_>>().join(" ")
    ));
    for c in &n.blocked {
        tree(c, depth + 1, s);
    }
}

/// The screen.
pub fn screen(v: &MonitorView) -> String {
    let mut s = format!("{} {} · {} connections\n\n", paint(style::BOLD, "migsafe monitor"), v.at, v.total_connections);
    s.push_str(&format!("{}\n", paint(style::BOLD, "connections")));
    for c in &v.connections {
        s.push_str(&format!("  {:>5}  {:<22} {}\n", c.count, c.state, c.application));
    }
    s.push_str(&format!("\n{}\n", paint(style::BOLD, "lock waits (who blocks whom)")));
    if v.lock_waits.is_empty() {
        s.push_str("  none\n");
    }
    for n in &v.lock_waits {
        tree(n, 1, &mut s);
    }
    s.push_str(&format!("\n{}\n", paint(style::BOLD, "long-running queries")));
    if v.long_running.is_empty() {
        s.push_str("  none\n");
    }
    for q in &v.long_running {
        s.push_str(&format!(
            "  pid {} {:.0} s {} {}{}: {}\n",
            q.pid,
            q.seconds,
            q.state,
            q.user,
            q.waiting_for.as_deref().map(|w| format!(" waiting on {w}")).unwrap_or_default(),
            q.query.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    s.push_str(&format!("\n{}\n", paint(style::BOLD, "largest tables")));
    for t in &v.largest_tables {
        s.push_str(&format!("  {:>10}  {:>12} rows  {}\n", t.size, t.rows, t.table));
    }
    s
}

/// Run `migsafe monitor`.
pub fn monitor(a: MonitorArgs) -> CmdResult {
    let spec = database(a.db.as_deref())?;
    let long = dur("--long", &a.long)?;
    let mut c = spec.with_application_name("migsafe monitor").connect().map_err(Failure::environment)?;
    c.batch_execute("SET default_transaction_read_only = on").map_err(Failure::environment)?;
    let Some(every) = a.watch.as_deref().map(|w| dur("--watch", w)).transpose()? else {
        let v = monitor::look(&mut c, long).map_err(engine_failure)?;
        let text = match a.format {
            MonitorFormat::Json => render::json(&v),
            MonitorFormat::Human => screen(&v),
        };
        render::emit(&text, None).map_err(Failure::environment)?;
        return Ok(Exit::Ok);
    };
    loop {
        let v = monitor::look(&mut c, long).map_err(engine_failure)?;
        let text = match a.format {
            MonitorFormat::Json => render::json(&v),
            // Home the cursor and clear: the view refreshes in place.
            MonitorFormat::Human => {
                format!("\x1b[H\x1b[2J{}\n(refreshing every {:?}; Ctrl-C to quit)\n", screen(&v), every)
            }
        };
        render::emit(&text, None).map_err(Failure::environment)?;
        std::thread::sleep(every);
    }
}
