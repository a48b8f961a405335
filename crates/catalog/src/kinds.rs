//! Catalog codes as types: each `pg_catalog` letter or word becomes a variant once, where the
//! catalog is read, and everything downstream matches on the variant. Each serialises as the
//! code it stands for, so snapshot files keep their form.

use serde::{Deserialize, Serialize};

/// What a constraint is (`pg_constraint.contype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConstraintType {
    /// `p`
    #[serde(rename = "p")]
    PrimaryKey,
    /// `u`
    #[serde(rename = "u")]
    Unique,
    /// `f`
    #[serde(rename = "f")]
    ForeignKey,
    /// `c`
    #[serde(rename = "c")]
    Check,
    /// `x`
    #[serde(rename = "x")]
    Exclusion,
    /// `t`: a constraint trigger.
    #[serde(rename = "t")]
    Trigger,
    /// `n` (PostgreSQL 18 keeps NOT NULL as a constraint).
    #[serde(rename = "n")]
    NotNull,
}

impl ConstraintType {
    /// From `pg_constraint.contype`.
    pub fn from_contype(code: &str) -> Option<ConstraintType> {
        Some(match code {
            "p" => ConstraintType::PrimaryKey,
            "u" => ConstraintType::Unique,
            "f" => ConstraintType::ForeignKey,
            "c" => ConstraintType::Check,
            "x" => ConstraintType::Exclusion,
            "t" => ConstraintType::Trigger,
            "n" => ConstraintType::NotNull,
            _ => return None,
        })
    }

    /// A primary key or unique constraint: it identifies rows.
    pub fn is_key(self) -> bool {
        matches!(self, ConstraintType::PrimaryKey | ConstraintType::Unique)
    }

    /// Whether an index backs it (a primary key, unique or exclusion constraint): a
    /// partition's is attached to its parent's by its index.
    pub fn has_index(self) -> bool {
        matches!(self, ConstraintType::PrimaryKey | ConstraintType::Unique | ConstraintType::Exclusion)
    }

    /// The suffix PostgreSQL gives the name it chooses for an unnamed one (`t_a_key`).
    pub fn default_name_suffix(self) -> &'static str {
        match self {
            ConstraintType::PrimaryKey => "_pkey",
            ConstraintType::Unique => "_key",
            ConstraintType::ForeignKey => "_fkey",
            ConstraintType::Exclusion => "_excl",
            ConstraintType::NotNull => "_not_null",
            ConstraintType::Check | ConstraintType::Trigger => "_check",
        }
    }
}

/// When a trigger or rule fires (`pg_trigger.tgenabled`, `pg_rewrite.ev_enabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Firing {
    /// `O`: enabled, in origin and local sessions.
    #[serde(rename = "O")]
    Origin,
    /// `D`: disabled.
    #[serde(rename = "D")]
    Disabled,
    /// `R`: only in replica sessions.
    #[serde(rename = "R")]
    Replica,
    /// `A`: always.
    #[serde(rename = "A")]
    Always,
}

impl Firing {
    /// From the catalog's letter (anything unknown reads as enabled, PostgreSQL's default).
    pub fn from_code(code: &str) -> Firing {
        match code {
            "D" => Firing::Disabled,
            "R" => Firing::Replica,
            "A" => Firing::Always,
            _ => Firing::Origin,
        }
    }

    /// The `ALTER TABLE … <clause> TRIGGER|RULE name` that sets it.
    pub fn enable_clause(self) -> &'static str {
        match self {
            Firing::Disabled => "DISABLE",
            Firing::Replica => "ENABLE REPLICA",
            Firing::Always => "ENABLE ALWAYS",
            Firing::Origin => "ENABLE",
        }
    }
}

/// Whether a table is WAL-logged (`pg_class.relpersistence`; temporary tables are never in a
/// snapshot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Persistence {
    /// `p`
    Permanent,
    /// `u`
    Unlogged,
}

/// What a routine is (`pg_proc.prokind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FunctionKind {
    /// `f`
    Function,
    /// `p`
    Procedure,
    /// `a`
    Aggregate,
    /// `w`
    Window,
}

impl FunctionKind {
    /// From `pg_proc.prokind`.
    pub fn from_prokind(code: &str) -> FunctionKind {
        match code {
            "p" => FunctionKind::Procedure,
            "a" => FunctionKind::Aggregate,
            "w" => FunctionKind::Window,
            _ => FunctionKind::Function,
        }
    }
}

/// How a generated column is computed (`pg_attribute.attgenerated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeneratedKind {
    /// `s`: computed on write and stored.
    Stored,
    /// `v` (PostgreSQL 18): computed on read.
    Virtual,
}

impl GeneratedKind {
    /// `STORED` or `VIRTUAL`, as DDL writes it.
    pub fn sql(self) -> &'static str {
        match self {
            GeneratedKind::Stored => "STORED",
            GeneratedKind::Virtual => "VIRTUAL",
        }
    }
}

/// An identity column's kind (`pg_attribute.attidentity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdentityKind {
    /// `a`
    #[serde(rename = "always")]
    Always,
    /// `d`
    #[serde(rename = "by default")]
    ByDefault,
}

impl IdentityKind {
    /// `ALWAYS` or `BY DEFAULT`, as DDL writes it.
    pub fn sql(self) -> &'static str {
        match self {
            IdentityKind::Always => "ALWAYS",
            IdentityKind::ByDefault => "BY DEFAULT",
        }
    }
}

/// What logical replication logs of an updated or deleted row (`pg_class.relreplident`).
/// Serialised as the catalog's letter, `i:<index>` for an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum ReplicaIdentity {
    /// `d`: the primary key.
    Default,
    /// `n`: nothing.
    Nothing,
    /// `f`: the whole row.
    Full,
    /// `i`: this unique index.
    Index(String),
}

impl ReplicaIdentity {
    /// From `pg_class.relreplident` and, for `i`, the index's name.
    pub fn from_code(code: &str, index: Option<String>) -> ReplicaIdentity {
        match (code, index) {
            ("n", _) => ReplicaIdentity::Nothing,
            ("f", _) => ReplicaIdentity::Full,
            ("i", Some(idx)) => ReplicaIdentity::Index(idx),
            _ => ReplicaIdentity::Default,
        }
    }
}

impl From<ReplicaIdentity> for String {
    fn from(r: ReplicaIdentity) -> String {
        match r {
            ReplicaIdentity::Default => "d".into(),
            ReplicaIdentity::Nothing => "n".into(),
            ReplicaIdentity::Full => "f".into(),
            ReplicaIdentity::Index(i) => format!("i:{i}"),
        }
    }
}

impl From<String> for ReplicaIdentity {
    fn from(s: String) -> ReplicaIdentity {
        match s.split_once(':') {
            Some(("i", idx)) => ReplicaIdentity::Index(idx.to_string()),
            _ => ReplicaIdentity::from_code(&s, None),
        }
    }
}
