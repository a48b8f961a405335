pub mod lint;
pub mod schema;
