//! The base database a walk through a migration set builds on: every migration applied so
//! far, and its schema. Rehearse and rollback generation both replay a set on it, migration by
//! migration, and take copies of it (`CREATE DATABASE … TEMPLATE`) for each trial.

use migsafe_catalog::Snapshot;

use crate::scratch::{ScratchDb, ScratchServer};
use crate::source::MigrationSet;
use crate::EngineError;

/// A base database holding every migration applied so far, and its snapshot.
pub struct Replay<'s> {
    base: ScratchDb<'s>,
    /// The schema of the base (before the next migration).
    pub s0: Snapshot,
}

impl<'s> Replay<'s> {
    /// An empty base database on `server`, for the migrations of `set` (with the roles and
    /// framework tables they expect, see [`ScratchServer::create_set_db`]).
    pub fn new(server: &'s ScratchServer, set: &MigrationSet) -> Result<Replay<'s>, EngineError> {
        let base = server.create_set_db("base", set)?;
        let s0 = Snapshot::capture(&mut base.connect()?)?;
        Ok(Replay { base, s0 })
    }

    /// A copy of the base (it must have no open sessions).
    pub fn work(&self, purpose: &str) -> Result<ScratchDb<'s>, EngineError> {
        Ok(self.base.clone_db(purpose)?)
    }

    /// Replace the base (the old one is dropped).
    pub fn set_base(&mut self, base: ScratchDb<'s>, s0: Snapshot) {
        self.base = base;
        self.s0 = s0;
    }

    /// The base database itself.
    pub fn base(&self) -> &ScratchDb<'s> {
        &self.base
    }

    /// A connection to the base (close it before the next `work`).
    pub fn connect(&self) -> Result<postgres::Client, EngineError> {
        Ok(self.base.connect()?)
    }
}
