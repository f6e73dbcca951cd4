//! Virtual machines and scale sets: listing with their identity blocks, and identity
//! updates with optimistic concurrency (`If-Match` on the etag).

mod listing;
mod machine;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value as Json;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::arm::{ArmClient, ArmError, Request};
use super::ids::Scope;
use super::pacing::subscription_in_path;

#[cfg(test)]
pub use machine::etag_count;
pub use machine::{is_exactly_our_write, Machine, MachineKind};

use listing::{ListingKey, ScopeListings};

pub const API_VERSION: &str = "2024-07-01";

/// `code` of a write refused before it was sent because the machine has no etag.
pub const NO_ETAG: &str = "NoEtag";

pub struct ComputeClient {
    arm: Arc<ArmClient>,
    /// Bound on `wait_until_settled_cancellable`.
    pub settle_timeout: Duration,
    listings: Mutex<HashMap<ListingKey, ScopeListings>>,
    /// Machines as our own writes left them (lower-cased ID -> when, what ARM answered). A
    /// shared listing that started before such a write shows the written machine instead:
    /// resources sharing a listing in one process see each other's writes without reading
    /// every page again.
    written: Mutex<HashMap<String, (Instant, Machine)>>,
    /// Per subscription (lower-cased ID), the machine writes that may be under way at once.
    write_slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// How many machine writes of one subscription are under way at once, across every estate
/// slice and resource of this process. ARM's write bucket (200, refilled 10 a second per
/// subscription) is the real limit and the ARM client paces to it; this many keep it busy at
/// any realistic latency. More would only wait in the pacer, each holding its machine and
/// request: an estate's 500 slices, each with its own 64, once held 32,000 such writes
/// (about 200 MB at 100,000 machines).
pub const WRITES_PER_SUBSCRIPTION: usize = 64;

/// A turn to write one machine, from [`ComputeClient::write_slot`]; dropping it ends the turn.
pub type WriteSlot = tokio::sync::OwnedSemaphorePermit;

impl ComputeClient {
    pub fn new(arm: Arc<ArmClient>) -> Self {
        ComputeClient {
            arm,
            settle_timeout: Duration::from_secs(15 * 60),
            listings: Mutex::new(HashMap::new()),
            written: Mutex::new(HashMap::new()),
            write_slots: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for a turn to write `machine_id` among its subscription's machine writes (see
    /// [`WRITES_PER_SUBSCRIPTION`]); turns are given in the order they were asked for. `None`
    /// once `cancel` fires first. The wait borrows nothing, so that a stream of writes can
    /// hold it.
    pub fn write_slot(
        &self,
        machine_id: &str,
        cancel: CancellationToken,
    ) -> impl std::future::Future<Output = Option<WriteSlot>> + Send + 'static {
        let subscription = subscription_in_path(machine_id);
        let slots = self
            .write_slots
            .lock()
            .expect("write slots lock")
            .entry(subscription.to_ascii_lowercase())
            .or_insert_with(|| Arc::new(Semaphore::new(WRITES_PER_SUBSCRIPTION)))
            .clone();
        async move {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => None,
                slot = slots.acquire_owned() => Some(slot.expect("write slots are never closed")),
            }
        }
    }

    pub async fn get_machine(
        &self,
        id: &str,
        kind: MachineKind,
    ) -> Result<Option<Machine>, ArmError> {
        Ok(self
            .arm
            .get(id, API_VERSION)
            .await?
            .and_then(|json| Machine::from_json(&json, kind)))
    }

    /// [`ComputeClient::get_machine`], stopped by `cancel` (then [`ArmError::is_stopped`]).
    pub async fn get_machine_cancellable(
        &self,
        id: &str,
        kind: MachineKind,
        cancel: &CancellationToken,
    ) -> Result<Option<Machine>, ArmError> {
        Ok(self
            .arm
            .get_cancellable(id, API_VERSION, cancel)
            .await?
            .and_then(|json| Machine::from_json(&json, kind)))
    }

    /// Sends `identity` (the new identity block) as a PATCH, with `If-Match` on `if_match`.
    /// Without an etag nothing is sent (an error saying so): the PATCH carries `type`, and
    /// written blind it could drop a system-assigned identity added since the machine was
    /// read. Returns once ARM accepted it; completion is confirmed in bulk by
    /// `wait_until_settled_cancellable`, since polling each machine's operation would spend a
    /// read per machine.
    ///
    /// `cancel` stops it if it has not been sent yet: the error is then
    /// [`ArmError::is_not_sent`] and the machine was not changed. [`ArmError::is_cancelled`]
    /// means it was stopped after an attempt ARM may have acted on: read the machine to know.
    pub async fn patch_identity_cancellable(
        &self,
        id: &str,
        kind: MachineKind,
        identity: Json,
        if_match: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<(), ArmError> {
        let Some(etag) = if_match else {
            return Err(ArmError {
                status: 0,
                code: NO_ETAG.into(),
                message: format!(
                    "{id}: ARM returned no etag for it, and a write without If-Match could drop an identity another writer added meanwhile; not written"
                ),
                request_id: None,
                after_unanswered_attempt: false,
            });
        };
        let patch = serde_json::json!({ "identity": identity });
        let headers: Vec<(&str, &str)> = vec![("If-Match", etag)];
        let result = self
            .arm
            .send_cancellable(
                Request::new(Method::PATCH, id, Some(API_VERSION))
                    .body(&patch)
                    .headers(&headers),
                cancel,
            )
            .await;
        match &result {
            Ok(response) => self.remember_write(id, kind, Some(&response.body)),
            // ARM may have acted on it: no listing from before may be trusted for it.
            Err(error)
                if error.is_cancelled()
                    || error.status >= 500
                    || error.status == 0
                    || error.after_unanswered_attempt =>
            {
                if !error.is_not_sent() {
                    self.remember_write(id, kind, None);
                }
            }
            Err(_) => {}
        }
        result.map(|_| ())
    }

    /// Waits until none of `ids` is still updating, re-listing the scope (one read per page).
    /// Stops waiting as soon as `cancel` is cancelled, with [`ArmError::is_cancelled`] (the
    /// writes were sent; they may still be finishing).
    pub async fn wait_until_settled_cancellable(
        &self,
        scope: &Scope,
        kinds: &[MachineKind],
        ids: &BTreeSet<String>,
        cancel: &CancellationToken,
    ) -> Result<(), ArmError> {
        if ids.is_empty() {
            return Ok(());
        }
        let wanted: BTreeSet<String> = ids.iter().map(|id| id.to_ascii_lowercase()).collect();
        let deadline = Instant::now() + self.settle_timeout;
        let mut delay = Duration::from_millis(500);
        // Any listing started after our writes (or after our last look) shows their outcome,
        // including one another caller started.
        let mut not_before = Instant::now();
        let stopped = || {
            ArmError::cancelled(format!(
                "stopped before the update of {} machine(s) was confirmed",
                wanted.len()
            ))
        };
        let updating = |m: &Machine| {
            matches!(
                m.provisioning_state.as_deref(),
                Some("Updating" | "Creating")
            )
        };
        // Machines seen updating, once a listing has shown the rest settled.
        let mut still_updating: Option<Vec<Machine>> = None;
        loop {
            let inventory = match still_updating.take() {
                // As few as the listing had pages: reading them one by one, all at once, costs
                // no more reads than listing again and ends sooner (a listing's pages come one
                // after another). Those the estate's last writes left updating are the usual case.
                Some(machines) if machines.len() <= self.pages_of_listing(scope, kinds) => {
                    let reads = futures::future::join_all(
                        machines
                            .iter()
                            .map(|m| self.get_machine_cancellable(&m.id, m.kind, cancel)),
                    );
                    let answers = tokio::select! {
                        biased;
                        _ = cancel.cancelled() => return Err(stopped()),
                        answers = reads => answers,
                    };
                    let mut read = Vec::new();
                    for answer in answers {
                        // A machine deleted meanwhile is not updating any more.
                        read.extend(
                            answer.map_err(|e| if e.is_stopped() { stopped() } else { e })?,
                        );
                    }
                    read
                }
                // The listing may be shared with other callers: it is not cancelled, only no
                // longer waited for (another caller then carries it on).
                _ => tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return Err(stopped()),
                    inventory = self.inventory_where(
                        scope,
                        kinds,
                        not_before,
                        |m| wanted.contains(&m.id.to_ascii_lowercase()),
                    ) => inventory?,
                },
            };
            let busy: Vec<Machine> = inventory.into_iter().filter(updating).collect();
            if busy.is_empty() {
                return Ok(());
            }
            let busy_count = busy.len();
            still_updating = Some(busy);
            if Instant::now() + delay > deadline {
                return Err(ArmError::transport(format!(
                    "{busy_count} machine(s) still updating after {:?}",
                    self.settle_timeout
                )));
            }
            tracing::debug!(busy = busy_count, "waiting for machine updates to finish");
            not_before = Instant::now();
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(stopped()),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }
}
