//! Data fingerprints: per table, the row count and an order-independent hash of the rows,
//! computed inside PostgreSQL (no rows are shipped to the client). Rows are hashed as jsonb,
//! whose keys are sorted, so a column that moved position hashes the same.

use postgres::Client;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::model::{QName, Snapshot, TableKind};
use crate::CatalogError;

/// Row count and hash of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFingerprint {
    /// Rows.
    pub rows: i64,
    /// Sum of per-row 64-bit hashes (as text: it is a numeric).
    pub hash: String,
}

/// Fingerprints of every table of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Fingerprint {
    /// Per table.
    pub tables: BTreeMap<QName, TableFingerprint>,
}

/// A table whose data differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataDifference {
    /// Table.
    pub table: String,
    /// Rows before (None: the table did not exist).
    pub rows_before: Option<i64>,
    /// Rows after (None: the table no longer exists).
    pub rows_after: Option<i64>,
    /// Same count but different contents.
    pub contents_differ: bool,
}

impl Fingerprint {
    /// Fingerprint the tables of `snapshot` (partitioned parents are skipped: their rows are
    /// in the partitions).
    pub fn capture(client: &mut Client, snapshot: &Snapshot) -> Result<Fingerprint, CatalogError> {
        Fingerprint::of(client, &Fingerprint::tables_of(snapshot))
    }

    /// The tables of `snapshot` that hold rows of their own (not partitioned parents).
    pub fn tables_of(snapshot: &Snapshot) -> Vec<&QName> {
        snapshot.tables.iter().filter(|(_, t)| t.kind == TableKind::Regular).map(|(n, _)| n).collect()
    }

    /// Fingerprint these tables, which must exist.
    pub fn of(client: &mut Client, tables: &[&QName]) -> Result<Fingerprint, CatalogError> {
        Ok(Fingerprint { tables: fingerprint_tables(client, tables)? })
    }

    /// Fingerprint the given tables, those of them that exist (a table the migration dropped
    /// and the rollback did not bring back is simply absent, which [`Fingerprint::compare`]
    /// reports).
    pub fn capture_tables<'a>(
        client: &mut Client,
        tables: impl Iterator<Item = &'a QName>,
    ) -> Result<Fingerprint, CatalogError> {
        let present = Fingerprint::existing(client, tables)?;
        Fingerprint::of(client, &present)
    }

    /// Those of `tables` that exist.
    pub fn existing<'a>(
        client: &mut Client,
        tables: impl Iterator<Item = &'a QName>,
    ) -> Result<Vec<&'a QName>, CatalogError> {
        let tables: Vec<&QName> = tables.collect();
        let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
        let existing: std::collections::HashSet<String> = client
            .query("SELECT n FROM unnest($1::text[]) n WHERE to_regclass(n) IS NOT NULL", &[&names])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(tables.into_iter().filter(|t| existing.contains(&t.to_string())).collect())
    }

    /// Tables of `self` whose data is not the same in `after` (tables only in `after` are
    /// new and not compared).
    pub fn compare(&self, after: &Fingerprint) -> Vec<DataDifference> {
        let mut out = Vec::new();
        for (n, a) in &self.tables {
            match after.tables.get(n) {
                Some(b) if a == b => {}
                Some(b) => out.push(DataDifference {
                    table: n.to_string(),
                    rows_before: Some(a.rows),
                    rows_after: Some(b.rows),
                    contents_differ: a.rows == b.rows,
                }),
                None => out.push(DataDifference {
                    table: n.to_string(),
                    rows_before: Some(a.rows),
                    rows_after: None,
                    contents_differ: false,
                }),
            }
        }
        out
    }
}

fn fingerprint_sql(table: &QName) -> String {
    format!(
        "SELECT count(*), coalesce(sum(hashtextextended(to_jsonb(t)::text, 0)::numeric), 0)::text FROM {} t",
        table.sql()
    )
}

/// Count and hash many tables, many per round trip (one simple-protocol batch of statements
/// per 100 tables, all in one implicit transaction).
pub fn fingerprint_tables(
    client: &mut Client,
    tables: &[&QName],
) -> Result<BTreeMap<QName, TableFingerprint>, CatalogError> {
    let mut out = BTreeMap::new();
    for chunk in tables.chunks(100) {
        let batch: String = chunk.iter().map(|t| fingerprint_sql(t) + ";\n").collect();
        let rows: Vec<postgres::SimpleQueryRow> = client
            .simple_query(&batch)?
            .into_iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .collect();
        if rows.len() != chunk.len() {
            return Err(CatalogError::Unexpected(format!(
                "{} fingerprint rows for {} tables",
                rows.len(),
                chunk.len()
            )));
        }
        for (t, r) in chunk.iter().zip(rows) {
            let count = r.get(0).and_then(|v| v.parse::<i64>().ok());
            let (Some(rows), Some(hash)) = (count, r.get(1)) else {
                return Err(CatalogError::Unexpected(format!("unreadable fingerprint of {t}")));
            };
            out.insert((*t).clone(), TableFingerprint { rows, hash: hash.to_string() });
        }
    }
    Ok(out)
}
