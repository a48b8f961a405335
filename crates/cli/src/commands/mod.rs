pub mod common;
pub mod lint;
pub mod rollback;
pub mod schema;
