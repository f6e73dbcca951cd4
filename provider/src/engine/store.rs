//! Where the machines live, as the engine sees it: a listing, a read and a write of one
//! machine's identity block, a turn to write, and a wait for writes to settle. The Azure
//! client implements it (`crate::resources::identity_assignment::store`); the property tests
//! implement it in memory.

use std::collections::BTreeSet;
use std::fmt;

use async_trait::async_trait;
use futures::future::BoxFuture;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::azure::compute::{Machine, MachineKind};
use crate::azure::ids::Scope;

/// Why a call to the store failed, as far as the engine's decisions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// HTTP status; 0 when no answer arrived.
    pub status: u16,
    /// Stopped before anything was sent: nothing changed.
    pub not_sent: bool,
    /// Stopped after something was sent: the change may or may not be made.
    pub cancelled: bool,
    /// A write refused before it was sent because the machine has no etag.
    pub no_etag: bool,
    /// An earlier attempt got no answer the store can be trusted to have refused it with: the
    /// store may have acted on it.
    pub after_unanswered_attempt: bool,
    /// What the user reads.
    pub message: String,
}

impl StoreError {
    pub fn is_not_sent(&self) -> bool {
        self.not_sent
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }

    pub fn is_stopped(&self) -> bool {
        self.not_sent || self.cancelled
    }

    /// Whether a write that failed so may still have been applied: a 5xx, a 408, no answer,
    /// or any refusal of a retry after such an attempt (a 412 above all).
    pub fn outcome_unknown(&self) -> bool {
        self.after_unanswered_attempt
            || self.status >= 500
            || self.status == 408
            || (self.status == 0 && !self.not_sent && !self.no_etag)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A turn to write one machine, held while the write runs (dropping it ends the turn).
pub struct Turn(#[allow(dead_code)] pub Box<dyn std::any::Any + Send + Sync>);

/// The machines, read and written.
#[async_trait]
pub trait MachineStore: Send + Sync {
    /// The machines of `kinds` in `scope` that `keep` selects, from a listing started no
    /// earlier than `not_before`.
    async fn list(
        &self,
        scope: &Scope,
        kinds: &[MachineKind],
        not_before: Instant,
        keep: &(dyn for<'m> Fn(&'m Machine) -> bool + Send + Sync),
    ) -> Result<Vec<Machine>, StoreError>;

    /// One machine by its ID; `None` when it is gone. Stopped by `halt` when given (then
    /// [`StoreError::is_stopped`]).
    async fn read(
        &self,
        id: &str,
        kind: MachineKind,
        halt: Option<&CancellationToken>,
    ) -> Result<Option<Machine>, StoreError>;

    /// Replaces the identity block of machine `id` with `identity`, if its etag is still
    /// `if_match` (nothing is written without one).
    async fn write_identity(
        &self,
        id: &str,
        kind: MachineKind,
        identity: serde_json::Value,
        if_match: Option<&str>,
        halt: &CancellationToken,
    ) -> Result<(), StoreError>;

    /// Waits for a turn to write `machine_id`; `None` once `halt` fires first. The future
    /// borrows nothing.
    fn turn(&self, machine_id: &str, halt: CancellationToken) -> BoxFuture<'static, Option<Turn>>;

    /// Waits until none of `machines` is still updating, unless `halt` fires first.
    async fn settle(
        &self,
        scope: &Scope,
        kinds: &[MachineKind],
        machines: &BTreeSet<String>,
        halt: &CancellationToken,
    ) -> Result<(), StoreError>;
}

/// An operation's stop (Terraform's stop request or its deadline), as the engine needs it.
pub trait Stopping: Send + Sync {
    fn token(&self) -> &CancellationToken;
    /// What stopped it, for the user.
    fn reason(&self) -> String;
    fn is_halted(&self) -> bool {
        self.token().is_cancelled()
    }
}

/// How many machines of one subscription are read or written at once.
pub const CONCURRENCY: usize = crate::azure::compute::WRITES_PER_SUBSCRIPTION;
