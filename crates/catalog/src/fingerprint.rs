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
        let mut tables = BTreeMap::new();
        for (name, t) in &snapshot.tables {
            if t.kind != TableKind::Regular {
                continue;
            }
            tables.insert(name.clone(), fingerprint_table(client, name)?);
        }
        Ok(Fingerprint { tables })
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

/// Count and hash one table.
pub fn fingerprint_table(client: &mut Client, table: &QName) -> Result<TableFingerprint, CatalogError> {
    let sql = format!(
        "SELECT count(*), coalesce(sum(hashtextextended(to_jsonb(t)::text, 0)::numeric), 0)::text FROM {} t",
        table.sql()
    );
    let row = client.query_one(&sql, &[])?;
    Ok(TableFingerprint { rows: row.get(0), hash: row.get(1) })
}
