//! Hazards: what a statement can do to a live database with data in it, as `migsafe diff`
//! marks them in the SQL it writes. Each lint rule that finds one says which kind.

use serde::Serialize;

use super::Rule;

/// A kind of hazard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hazard {
    /// Rows or values are destroyed (dropped tables and columns, truncation, a conversion that
    /// cuts values).
    DataLoss,
    /// The statement fails on some data (a NOT NULL column without a default on a table with
    /// rows, a conversion some values do not survive); nothing is lost, the migration stops.
    MayFail,
    /// The table is rewritten under ACCESS EXCLUSIVE: every query on it waits for the copy.
    Rewrite,
    /// A lock that blocks writes (or reads) is held while the table is scanned or an index built.
    BlockingLock,
    /// Running application code that uses the old name or meaning breaks.
    BreaksClients,
}

impl Hazard {
    /// Its id in the SQL comments and the JSON: `data-loss`, `may-fail`, `rewrite`,
    /// `blocking-lock`, `breaks-clients`.
    pub fn id(self) -> &'static str {
        match self {
            Hazard::DataLoss => "data-loss",
            Hazard::MayFail => "may-fail",
            Hazard::Rewrite => "rewrite",
            Hazard::BlockingLock => "blocking-lock",
            Hazard::BreaksClients => "breaks-clients",
        }
    }
}

impl Rule {
    /// The hazard a finding of this rule is, if it is one (rules about style, transactions or
    /// the migration file itself are not).
    pub fn hazard(self) -> Option<Hazard> {
        use Rule as R;
        Some(match self {
            R::DropColumn | R::DropTable | R::DropSchema | R::Truncate | R::DeleteWithoutWhere => Hazard::DataLoss,
            R::AddColumnNotNullWithoutDefault => Hazard::MayFail,
            R::AlterColumnType
            | R::AddColumnVolatileDefault
            | R::AddColumnSerial
            | R::AddColumnIdentity
            | R::AddColumnGeneratedStored
            | R::VacuumFull
            | R::Cluster
            | R::SetLoggedUnlogged
            | R::TableRewrite
            | R::RefreshMatviewNotConcurrent => Hazard::Rewrite,
            R::IndexNotConcurrent
            | R::DropIndexNotConcurrent
            | R::ReindexNotConcurrent
            | R::ForeignKeyWithoutNotValid
            | R::CheckWithoutNotValid
            | R::EnforceConstraint
            | R::SetNotNull
            | R::UniqueWithoutUsingIndex
            | R::ExcludeConstraint
            | R::AlterColumnTypeRebuild
            | R::LockTable
            | R::DetachPartitionNotConcurrent
            | R::DomainCheckWithoutNotValid
            | R::UpdateWithoutWhere => Hazard::BlockingLock,
            R::RenameColumn | R::RenameTable => Hazard::BreaksClients,
            _ => return None,
        })
    }
}

impl Rule {
    /// True when the statement the rule flags reads the whole table while it holds a lock that
    /// blocks writes: a rewrite, an index build, or a constraint checked against every row.
    pub fn scans(self) -> bool {
        use Rule as R;
        self.hazard() == Some(Hazard::Rewrite)
            || matches!(
                self,
                R::IndexNotConcurrent
                    | R::ReindexNotConcurrent
                    | R::ForeignKeyWithoutNotValid
                    | R::CheckWithoutNotValid
                    | R::EnforceConstraint
                    | R::SetNotNull
                    | R::UniqueWithoutUsingIndex
                    | R::ExcludeConstraint
                    | R::AlterColumnTypeRebuild
                    | R::DomainCheckWithoutNotValid
                    | R::AddColumnNotNullWithoutDefault
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_that_destroys_rewrites_or_blocks_is_a_hazard() {
        let hazards: Vec<&str> = Rule::ALL.iter().filter(|r| r.hazard().is_some()).map(|r| r.id()).collect();
        for id in ["drop-table", "drop-column", "alter-column-type", "index-not-concurrent", "set-not-null"] {
            assert!(hazards.contains(&id), "{id}");
        }
        // Style and transaction-structure rules are not.
        for id in ["prefer-text", "nested-transaction", "non-transactional-migration", "frozen-time"] {
            assert!(!hazards.contains(&id), "{id}");
        }
        // A rule whose summary says it destroys data, rewrites, or blocks is classified (but the
        // order of locks across statements is about the script, not one statement, and advice
        // rules speak of what a later change would do).
        let advice = |r: &Rule| r.severity() == crate::lint::Severity::Info;
        for r in Rule::ALL.iter().filter(|r| **r != Rule::LocksAfterAccessExclusive && !advice(r)) {
            let s = r.summary();
            if s.contains("destroys") || s.contains("rewrites the table") || s.contains("ACCESS EXCLUSIVE") {
                assert!(r.hazard().is_some(), "{} ({s}) has no hazard kind", r.id());
            }
        }
    }
}
