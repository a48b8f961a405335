pub mod apply;
pub mod backup;
pub mod common;
pub mod lint;
pub mod rehearse;
pub mod rollback;
pub mod schema;
pub mod verify;
