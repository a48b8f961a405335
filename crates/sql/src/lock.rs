//! PostgreSQL's table lock modes as a type that knows what each mode conflicts with and what
//! it blocks, and the locks each statement takes (predicted from the grammar).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use crate::model::{AlterAction, ConstraintKind, ObjectKind, QualName, StmtKind};

/// A table-level lock mode, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    /// Taken by SELECT.
    AccessShare,
    /// Taken by SELECT … FOR UPDATE / FOR SHARE.
    RowShare,
    /// Taken by INSERT, UPDATE, DELETE.
    RowExclusive,
    /// Taken by VACUUM, ANALYZE, CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT.
    ShareUpdateExclusive,
    /// Taken by CREATE INDEX.
    Share,
    /// Taken by CREATE TRIGGER and ADD FOREIGN KEY.
    ShareRowExclusive,
    /// Taken by REFRESH MATERIALIZED VIEW CONCURRENTLY.
    Exclusive,
    /// Taken by most ALTER TABLE forms, DROP, TRUNCATE, VACUUM FULL, CLUSTER.
    AccessExclusive,
}

/// Every mode, weakest first.
pub const ALL_MODES: [LockMode; 8] = [
    LockMode::AccessShare,
    LockMode::RowShare,
    LockMode::RowExclusive,
    LockMode::ShareUpdateExclusive,
    LockMode::Share,
    LockMode::ShareRowExclusive,
    LockMode::Exclusive,
    LockMode::AccessExclusive,
];

/// What a held lock stops other sessions from doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocks {
    /// Nothing ordinary queries do (only other DDL/maintenance).
    Nothing,
    /// INSERT, UPDATE, DELETE (and SELECT … FOR UPDATE for the strongest of these).
    Writes,
    /// Every query, SELECT included.
    ReadsAndWrites,
}

impl Blocks {
    /// Its name in reports: `nothing`, `writes`, `reads_and_writes`.
    pub fn as_str(self) -> &'static str {
        match self {
            Blocks::Nothing => "nothing",
            Blocks::Writes => "writes",
            Blocks::ReadsAndWrites => "reads_and_writes",
        }
    }

    /// Human description.
    pub fn describe(self) -> &'static str {
        match self {
            Blocks::Nothing => "blocks only other schema changes and maintenance",
            Blocks::Writes => "blocks INSERT, UPDATE and DELETE (reads continue)",
            Blocks::ReadsAndWrites => "blocks every query on the table, SELECT included",
        }
    }
}

impl LockMode {
    /// The name PostgreSQL uses in `pg_locks.mode`.
    pub fn pg_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "AccessShareLock",
            LockMode::RowShare => "RowShareLock",
            LockMode::RowExclusive => "RowExclusiveLock",
            LockMode::ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            LockMode::Share => "ShareLock",
            LockMode::ShareRowExclusive => "ShareRowExclusiveLock",
            LockMode::Exclusive => "ExclusiveLock",
            LockMode::AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// The SQL spelling (`ACCESS EXCLUSIVE`).
    pub fn sql_name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// True when a session holding `self` makes a session asking for `other` wait
    /// (PostgreSQL's conflict table, which is symmetric).
    pub fn conflicts_with(self, other: LockMode) -> bool {
        use LockMode::*;
        let (a, b) = if self <= other { (self, other) } else { (other, self) };
        match a {
            AccessShare => b == AccessExclusive,
            RowShare => b >= Exclusive,
            RowExclusive => b >= Share,
            ShareUpdateExclusive => b >= ShareUpdateExclusive,
            Share => b > Share,
            ShareRowExclusive => b >= RowExclusive,
            Exclusive => b >= RowShare,
            AccessExclusive => true,
        }
    }

    /// What ordinary application traffic this lock stops.
    pub fn blocks(self) -> Blocks {
        if self.conflicts_with(LockMode::AccessShare) {
            Blocks::ReadsAndWrites
        } else if self.conflicts_with(LockMode::RowExclusive) {
            Blocks::Writes
        } else {
            Blocks::Nothing
        }
    }
}

/// "a" or "an" before the mode's SQL name.
pub fn article(mode: LockMode) -> &'static str {
    if matches!(mode, LockMode::AccessShare | LockMode::AccessExclusive | LockMode::Exclusive) {
        "an"
    } else {
        "a"
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sql_name())
    }
}

impl Serialize for LockMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.pg_name())
    }
}

/// What a mode blocks equals its name in reports (`writes`).
impl PartialEq<&str> for Blocks {
    fn eq(&self, name: &&str) -> bool {
        self.as_str() == *name
    }
}

/// A mode equals the name `pg_locks` gives it (`AccessExclusiveLock`).
impl PartialEq<&str> for LockMode {
    fn eq(&self, name: &&str) -> bool {
        self.pg_name() == *name
    }
}

impl<'de> Deserialize<'de> for LockMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A name that is no lock mode (neither `pg_locks`' `AccessExclusiveLock` nor SQL's
/// `ACCESS EXCLUSIVE`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown lock mode {0:?}")]
pub struct UnknownLockMode(pub String);

impl FromStr for LockMode {
    type Err = UnknownLockMode;
    fn from_str(s: &str) -> Result<Self, UnknownLockMode> {
        ALL_MODES
            .iter()
            .copied()
            .find(|m| m.pg_name().eq_ignore_ascii_case(s) || m.sql_name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownLockMode(s.to_string()))
    }
}

/// The table-level locks a statement takes, predicted from its kind: `(relation, mode)`.
/// `index_table` maps an index name to its table (DROP INDEX locks the table).
pub fn statement_locks(
    kind: &StmtKind,
    index_table: &dyn Fn(&QualName) -> Option<QualName>,
) -> Vec<(QualName, LockMode)> {
    use LockMode::*;
    let mut out: Vec<(QualName, LockMode)> = Vec::new();
    let mut take = |q: &QualName, m: LockMode| {
        if let Some(e) = out.iter_mut().find(|(t, _)| t == q) {
            e.1 = e.1.max(m);
        } else {
            out.push((q.clone(), m));
        }
    };
    match kind {
        StmtKind::CreateTable { columns, constraints, partition_of, .. } => {
            for c in constraints.iter().chain(columns.iter().flat_map(|c| c.constraints.iter())) {
                if let ConstraintKind::ForeignKey { references, .. } = &c.kind {
                    take(references, ShareRowExclusive);
                }
            }
            if let Some(p) = partition_of {
                take(p, AccessExclusive);
            }
        }
        StmtKind::AlterTable { table, actions, .. } => {
            for a in actions {
                let mode = match a {
                    AlterAction::AddConstraint(c) => match &c.kind {
                        ConstraintKind::ForeignKey { references, .. } => {
                            take(references, ShareRowExclusive);
                            ShareRowExclusive
                        }
                        _ => AccessExclusive,
                    },
                    AlterAction::ValidateConstraint { .. } => ShareUpdateExclusive,
                    AlterAction::Trigger { .. } => ShareRowExclusive,
                    AlterAction::AttachPartition { partition } => {
                        take(partition, AccessExclusive);
                        ShareUpdateExclusive
                    }
                    AlterAction::DetachPartition { partition, concurrently } => {
                        if *concurrently {
                            ShareUpdateExclusive
                        } else {
                            take(partition, AccessExclusive);
                            AccessExclusive
                        }
                    }
                    AlterAction::Other { tag }
                        if matches!(
                            tag.as_str(),
                            "AtSetStatistics" | "AtClusterOn" | "AtDropCluster" | "AtSetOptions" | "AtResetOptions"
                        ) =>
                    {
                        ShareUpdateExclusive
                    }
                    _ => AccessExclusive,
                };
                take(table, mode);
            }
        }
        StmtKind::CreateIndex { table, concurrently, .. } => {
            take(table, if *concurrently { ShareUpdateExclusive } else { Share })
        }
        StmtKind::Drop { kind: ObjectKind::Index, names, concurrently, .. } => {
            for n in names {
                let t = index_table(n).unwrap_or_else(|| n.clone());
                take(&t, if *concurrently { ShareUpdateExclusive } else { AccessExclusive });
            }
        }
        StmtKind::Drop {
            kind: ObjectKind::Table | ObjectKind::View | ObjectKind::MatView | ObjectKind::Sequence,
            names,
            ..
        } => {
            for n in names {
                take(n, AccessExclusive);
            }
        }
        StmtKind::Reindex { target: ObjectKind::Table, name, concurrently } => {
            take(name, if *concurrently { ShareUpdateExclusive } else { Share })
        }
        StmtKind::Reindex { target: ObjectKind::Index, name, concurrently } => {
            let t = index_table(name).unwrap_or_else(|| name.clone());
            take(&t, if *concurrently { ShareUpdateExclusive } else { Share })
        }
        StmtKind::Rename { kind: ObjectKind::Table | ObjectKind::Column | ObjectKind::View, object, .. } => {
            take(object, AccessExclusive)
        }
        StmtKind::Truncate { tables, .. } => tables.iter().for_each(|t| take(t, AccessExclusive)),
        StmtKind::Delete { table, .. }
        | StmtKind::Update { table, .. }
        | StmtKind::Insert { table, .. }
        | StmtKind::Merge { table, .. } => take(table, RowExclusive),
        StmtKind::Copy { table: Some(t), from: true } => take(t, RowExclusive),
        StmtKind::Vacuum { full, tables, .. } => {
            let mode = if *full { AccessExclusive } else { ShareUpdateExclusive };
            tables.iter().for_each(|t| take(t, mode));
        }
        StmtKind::Cluster { table: Some(t) } => take(t, AccessExclusive),
        StmtKind::RefreshMatView { view, concurrently, .. } => {
            take(view, if *concurrently { Exclusive } else { AccessExclusive })
        }
        StmtKind::Lock { tables, mode } => tables.iter().for_each(|t| take(t, *mode)),
        StmtKind::CreateTrigger { table, .. } => take(table, ShareRowExclusive),
        StmtKind::CreatePolicy { table, .. } | StmtKind::AlterPolicy { table, .. } => take(table, AccessExclusive),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use LockMode::*;

    /// PostgreSQL's documented conflict table (Table 13.2), row by row.
    const TABLE: [(LockMode, &[LockMode]); 8] = [
        (AccessShare, &[AccessExclusive]),
        (RowShare, &[Exclusive, AccessExclusive]),
        (RowExclusive, &[Share, ShareRowExclusive, Exclusive, AccessExclusive]),
        (ShareUpdateExclusive, &[ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive]),
        (Share, &[RowExclusive, ShareUpdateExclusive, ShareRowExclusive, Exclusive, AccessExclusive]),
        (
            ShareRowExclusive,
            &[RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive],
        ),
        (
            Exclusive,
            &[RowShare, RowExclusive, ShareUpdateExclusive, Share, ShareRowExclusive, Exclusive, AccessExclusive],
        ),
        (AccessExclusive, &ALL_MODES),
    ];

    #[test]
    fn conflict_table_matches_postgres_docs() {
        for (mode, conflicts) in TABLE {
            for other in ALL_MODES {
                assert_eq!(mode.conflicts_with(other), conflicts.contains(&other), "{mode:?} vs {other:?}");
            }
        }
    }

    #[test]
    fn what_modes_block() {
        assert_eq!(AccessExclusive.blocks(), Blocks::ReadsAndWrites);
        assert_eq!(Share.blocks(), Blocks::Writes);
        assert_eq!(ShareRowExclusive.blocks(), Blocks::Writes);
        assert_eq!(ShareUpdateExclusive.blocks(), Blocks::Nothing);
        assert_eq!("ShareLock".parse::<LockMode>().unwrap(), Share);
        assert_eq!("access exclusive".parse::<LockMode>().unwrap(), AccessExclusive);
    }
}
