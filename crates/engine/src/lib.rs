//! migsafe-engine: migration sets and everything that runs them.
#![warn(missing_docs)]

pub mod config;
pub mod lint;
pub mod source;

pub use config::Config;
pub use source::{Layout, Migration, MigrationSet, SourceError, Version};
