//! migsafe-sql: migration SQL read with PostgreSQL's own grammar (pg_query).
//!
//! Pure: no I/O and no database. Parsing never fails (it returns statements plus errors);
//! every statement is summarised once into [`model::StmtKind`], which the lint rules, the
//! risk classification and the rollback inversion read.
#![warn(missing_docs)]

pub mod conversion;
pub mod convert;
pub mod copy;
pub mod directives;
pub mod lint;
pub mod lock;
pub mod model;
pub mod parse;
pub mod plpgsql;
pub mod quote;
pub mod risk;
pub mod span;
pub mod tree;
pub mod volatility;

pub use lock::LockMode;
pub use model::{QualName, Statement, StmtKind};
pub use parse::{parse_sql, ParsedSql, SyntaxError};
pub use quote::{quote_ident, quote_literal};
pub use span::{LineCol, LineIndex, Span};
