//! Virtual machines and scale sets: listing with their identity blocks, and identity
//! updates with optimistic concurrency (`If-Match` on the etag).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use reqwest::Method;
use serde_json::Value as Json;

use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::arm::{ArmClient, ArmError, Request};
use super::ids::Scope;
use super::pacing::subscription_in_path;

pub const API_VERSION: &str = "2024-07-01";

/// `code` of a write refused before it was sent because the machine has no etag.
pub const NO_ETAG: &str = "NoEtag";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MachineKind {
    VirtualMachine,
    ScaleSet,
}

impl MachineKind {
    fn resource_type(self) -> &'static str {
        match self {
            MachineKind::VirtualMachine => "virtualMachines",
            MachineKind::ScaleSet => "virtualMachineScaleSets",
        }
    }
}

/// A VM or scale set as far as identities go.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub id: String,
    pub kind: MachineKind,
    pub location: String,
    pub tags: BTreeMap<String, String>,
    pub provisioning_state: Option<String>,
    /// `identity.type` as ARM returned it; `None` when the machine has no identity block.
    pub identity_type: Option<String>,
    /// Keys of `identity.userAssignedIdentities`, as ARM spells them.
    pub user_assigned_identity_ids: Vec<String>,
    pub etag: Option<String>,
    /// What tells this machine from one deleted and created again under the same ID:
    /// `properties.vmId` of a VM, `properties.uniqueId` of a scale set, or, when ARM gives
    /// neither, `properties.timeCreated`.
    pub unique_id: Option<String>,
}

impl Machine {
    /// The machine ARM describes in `json`; `None` without an `id`.
    pub fn from_json(json: &Json, kind: MachineKind) -> Option<Machine> {
        use serde::Deserialize;
        ListedMachine::deserialize(json).ok()?.into_machine(kind)
    }
}

/// The write count an etag of Compute stands for: Compute's etags count a machine's writes
/// (`"1"` when created, `"2"` after its first update, ...). `None` for an etag of another
/// shape (then how many writes came between two reads is not knowable).
pub fn etag_count(etag: Option<&str>) -> Option<u64> {
    let etag = etag?.trim();
    let etag = etag.strip_prefix("W/").unwrap_or(etag);
    etag.trim_matches('"').parse().ok()
}

/// Whether `after` (read after a write whose answer was lost) is exactly what `identity`, an
/// identity block PATCHed onto `before`, leaves, written once: its identity block is
/// `before`'s with the patch merged in and nothing else, its tags and location are
/// `before`'s, and its etag counts exactly one write more. Then the one write between the two
/// reads made exactly our change, and ours, sent with `If-Match` on `before`'s etag, could
/// only have taken as that one write: it did.
///
/// Anything else is not proof: another writer changed the machine too (two writes; either
/// may have put our identity there, ours first or theirs with it), or the etags cannot be
/// counted. A writer that, in the same moment, made byte for byte our change while ours
/// failed, is the one case this cannot tell from ours.
pub fn is_exactly_our_write(before: &Machine, identity: &Json, after: &Machine) -> bool {
    use crate::policy::IdentityType;
    let one_write = match (
        etag_count(before.etag.as_deref()),
        etag_count(after.etag.as_deref()),
    ) {
        (Some(then), Some(now)) => now == then + 1,
        _ => false,
    };
    let kind = IdentityType::parse(identity.get("type").and_then(Json::as_str));
    let mut expected: BTreeSet<String> = BTreeSet::new();
    if kind.has_user_assigned() {
        expected.extend(
            before
                .user_assigned_identity_ids
                .iter()
                .map(|id| id.to_ascii_lowercase()),
        );
        if let Some(changes) = identity
            .get("userAssignedIdentities")
            .and_then(Json::as_object)
        {
            for (id, value) in changes {
                if value.is_null() {
                    expected.remove(&id.to_ascii_lowercase());
                } else {
                    expected.insert(id.to_ascii_lowercase());
                }
            }
        }
    }
    let found: BTreeSet<String> = after
        .user_assigned_identity_ids
        .iter()
        .map(|id| id.to_ascii_lowercase())
        .collect();
    one_write
        && IdentityType::parse(after.identity_type.as_deref()) == kind
        && found == expected
        && after.tags == before.tags
        && after.location.eq_ignore_ascii_case(&before.location)
}

/// A machine as ARM writes it, only what [`Machine`] keeps; a listing reads its pages straight
/// into it (see [`ArmClient::list_of`]). Every member may be missing or null.
#[derive(serde::Deserialize)]
struct ListedMachine {
    id: Option<String>,
    location: Option<String>,
    tags: Option<BTreeMap<String, Json>>,
    identity: Option<ListedIdentity>,
    properties: Option<ListedProperties>,
    etag: Option<String>,
}

#[derive(serde::Deserialize)]
struct ListedIdentity {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "userAssignedIdentities")]
    user_assigned: Option<BTreeMap<String, serde::de::IgnoredAny>>,
}

#[derive(serde::Deserialize)]
struct ListedProperties {
    #[serde(rename = "provisioningState")]
    provisioning_state: Option<String>,
    #[serde(rename = "vmId")]
    vm_id: Option<String>,
    #[serde(rename = "uniqueId")]
    unique_id: Option<String>,
    #[serde(rename = "timeCreated")]
    time_created: Option<String>,
}

impl ListedProperties {
    /// The machine's unique ID for its kind, or its creation time when ARM gives none.
    fn unique_id(&mut self, kind: MachineKind) -> Option<String> {
        let id = match kind {
            MachineKind::VirtualMachine => self.vm_id.take(),
            MachineKind::ScaleSet => self.unique_id.take(),
        };
        id.filter(|id| !id.is_empty())
            .or_else(|| self.time_created.take().filter(|t| !t.is_empty()))
    }
}

impl ListedMachine {
    fn into_machine(self, kind: MachineKind) -> Option<Machine> {
        let identity = self.identity;
        let mut properties = self.properties;
        let unique_id = properties.as_mut().and_then(|p| p.unique_id(kind));
        Some(Machine {
            id: self.id?,
            kind,
            location: self.location.unwrap_or_default(),
            tags: self
                .tags
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(k, v)| match v {
                    Json::String(v) => Some((k, v)),
                    _ => None,
                })
                .collect(),
            provisioning_state: properties.and_then(|p| p.provisioning_state),
            user_assigned_identity_ids: identity
                .as_ref()
                .and_then(|i| i.user_assigned.as_ref())
                .map(|ids| ids.keys().cloned().collect())
                .unwrap_or_default(),
            identity_type: identity.and_then(|i| i.kind),
            etag: self.etag,
            unique_id,
        })
    }
}

/// Every machine of some kinds in a scope, listed once for every caller that asks while the
/// listing runs or soon after it: many resources over one subscription (one per region,
/// say) then cost one read per page between them, not one each.
struct Listing {
    /// When its first page was asked for; unset while it waits its turn (see `queued`).
    started: std::sync::OnceLock<Instant>,
    /// Set when it was queued behind a listing still running: it starts once that one ends.
    after: Option<CancellationToken>,
    /// Cancelled once it ends, however it ends (its caller gone included).
    ended: CancellationToken,
    machines: OnceCell<Result<Arc<Vec<Machine>>, ArmError>>,
}

impl Listing {
    fn new(after: Option<CancellationToken>) -> Arc<Listing> {
        Arc::new(Listing {
            started: std::sync::OnceLock::new(),
            after,
            ended: CancellationToken::new(),
            machines: OnceCell::new(),
        })
    }

    /// Shows what ARM held at `not_before` or later: it started then or later, or has not
    /// started yet.
    fn is_from(&self, not_before: Instant) -> bool {
        self.started
            .get()
            .is_none_or(|started| *started >= not_before)
    }
}

/// The listings of one scope: the latest to start, and the one queued behind it.
///
/// A caller that needs a listing newer than the one running (to confirm its own writes)
/// does not start another beside it: it queues one that starts when the running one ends,
/// and every caller that comes meanwhile with the same need shares it. Ten resources of a
/// subscription finishing their writes within a second then cost two listings between them,
/// not ten, which ARM's read throttling would spread over several seconds.
#[derive(Default)]
struct ScopeListings {
    latest: Option<Arc<Listing>>,
    queued: Option<Arc<Listing>>,
    /// The reads the last listing to end took (the latest may still run).
    pages: usize,
}

type ListingKey = (String, Vec<MachineKind>);

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

/// How many machine writes of one subscription are under way at once, across every bucket
/// and resource of this process. ARM's write bucket (200, refilled 10 a second per
/// subscription) is the real limit and the ARM client paces to it; this many keep it busy at
/// any realistic latency. More would only wait in the pacer, each holding its machine and
/// request: an estate's 500 buckets, each with its own 64, once held 32,000 such writes
/// (about 200 MB at 100,000 machines).
pub const WRITES_PER_SUBSCRIPTION: usize = 64;

/// A turn to write one machine, from [`ComputeClient::write_slot`]; dropping it ends the turn.
pub type WriteSlot = tokio::sync::OwnedSemaphorePermit;

fn listing_key(scope: &Scope, kinds: &[MachineKind]) -> ListingKey {
    (scope.to_string().to_ascii_lowercase(), kinds.to_vec())
}

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

    /// The machines of `kinds` in `scope`, from a listing started no earlier than
    /// `not_before`: a running or recent one is shared, else a new one starts.
    pub async fn inventory(
        &self,
        scope: &Scope,
        kinds: &[MachineKind],
        not_before: Instant,
    ) -> Result<Arc<Vec<Machine>>, ArmError> {
        let (machines, started) = self.shared_listing(scope, kinds, not_before).await?;
        Ok(self.with_own_writes(&machines, started))
    }

    /// The reads the last listing of `scope` to end took, 0 when none ended.
    fn pages_of_listing(&self, scope: &Scope, kinds: &[MachineKind]) -> usize {
        let key = listing_key(scope, kinds);
        self.listings
            .lock()
            .expect("listings lock")
            .get(&key)
            .map_or(0, |listings| listings.pages)
    }

    /// The machines of [`ComputeClient::inventory`] that `keep` selects, copied one by one:
    /// many callers sharing a large listing (an estate's buckets, one region each) each copy
    /// only their own.
    pub async fn inventory_where(
        &self,
        scope: &Scope,
        kinds: &[MachineKind],
        not_before: Instant,
        keep: impl Fn(&Machine) -> bool,
    ) -> Result<Vec<Machine>, ArmError> {
        let (machines, started) = self.shared_listing(scope, kinds, not_before).await?;
        let written = self.written.lock().expect("written lock");
        Ok(machines
            .iter()
            .filter(|m| keep(m))
            .map(|m| {
                written
                    .get(&m.id.to_ascii_lowercase())
                    .filter(|(at, _)| *at >= started)
                    .map_or_else(|| m.clone(), |(_, fresh)| fresh.clone())
            })
            .collect())
    }

    /// The listing itself, as ARM answered it (without our later writes), and when it
    /// started: what does not change with our writes (where the machines are) reads from it.
    pub async fn shared_listing(
        &self,
        scope: &Scope,
        kinds: &[MachineKind],
        not_before: Instant,
    ) -> Result<(Arc<Vec<Machine>>, Instant), ArmError> {
        let key = listing_key(scope, kinds);
        let listing = {
            let mut listings = self.listings.lock().expect("listings lock");
            let entry = listings.entry(key.clone()).or_default();
            match (&entry.latest, &entry.queued) {
                (Some(latest), _) if latest.is_from(not_before) => latest.clone(),
                (_, Some(queued)) => queued.clone(),
                (Some(latest), None) if !latest.ended.is_cancelled() => {
                    let queued = Listing::new(Some(latest.ended.clone()));
                    entry.queued = Some(queued.clone());
                    queued
                }
                _ => {
                    let listing = Listing::new(None);
                    entry.latest = Some(listing.clone());
                    listing
                }
            }
        };
        let result = listing
            .machines
            .get_or_init(|| async {
                if let Some(running) = &listing.after {
                    running.cancelled().await;
                }
                // Ended from here on however it ends; a caller that leaves while it waits
                // its turn leaves it queued, for the next caller to start.
                let _ended = listing.ended.clone().drop_guard();
                {
                    // Started and made the latest at once: a caller never joins a queued
                    // listing that has already started.
                    let mut listings = self.listings.lock().expect("listings lock");
                    let _ = listing.started.set(Instant::now());
                    let entry = listings.entry(key.clone()).or_default();
                    if entry
                        .queued
                        .as_ref()
                        .is_some_and(|queued| Arc::ptr_eq(queued, &listing))
                    {
                        entry.latest = entry.queued.take();
                    }
                }
                let mut machines = Vec::new();
                let mut read = 0;
                for kind in kinds {
                    let mut pages = self.list_machines(scope, *kind);
                    while let Some(page) = pages.next().await {
                        machines.extend(page?);
                        read += 1;
                    }
                }
                self.listings
                    .lock()
                    .expect("listings lock")
                    .entry(key.clone())
                    .or_default()
                    .pages = read;
                Ok(Arc::new(machines))
            })
            .await
            .clone();
        let started = *listing
            .started
            .get()
            .expect("a listing that ended has started");
        if result.is_err() {
            // A failed listing is not shared with later callers: they try again.
            let mut listings = self.listings.lock().expect("listings lock");
            if let Some(entry) = listings.get_mut(&key) {
                if entry
                    .latest
                    .as_ref()
                    .is_some_and(|latest| Arc::ptr_eq(latest, &listing))
                {
                    entry.latest = None;
                }
            }
        }
        result.map(|machines| (machines, started))
    }

    /// `machines` (listed from `started` on) with every machine we wrote since then as our
    /// write left it.
    fn with_own_writes(&self, machines: &Arc<Vec<Machine>>, started: Instant) -> Arc<Vec<Machine>> {
        let written = self.written.lock().expect("written lock");
        let newer = |machine: &Machine| {
            written
                .get(&machine.id.to_ascii_lowercase())
                .filter(|(at, _)| *at >= started)
                .map(|(_, fresh)| fresh.clone())
        };
        if !machines.iter().any(|m| newer(m).is_some()) {
            return machines.clone();
        }
        Arc::new(
            machines
                .iter()
                .map(|m| newer(m).unwrap_or_else(|| m.clone()))
                .collect(),
        )
    }

    /// Records what a write of ours left on a machine (ARM's answer), or, when the answer
    /// does not describe the machine, drops every listing so the next one reads afresh.
    fn remember_write(&self, id: &str, kind: MachineKind, answer: Option<&Json>) {
        match answer.and_then(|body| Machine::from_json(body, kind)) {
            Some(machine) => {
                self.written
                    .lock()
                    .expect("written lock")
                    .insert(id.to_ascii_lowercase(), (Instant::now(), machine));
            }
            None => self.listings.lock().expect("listings lock").clear(),
        }
    }

    fn list_path(scope: &Scope, kind: MachineKind) -> String {
        format!(
            "{scope}/providers/Microsoft.Compute/{}",
            kind.resource_type()
        )
    }

    /// One item per page of machines in the scope (subscription-wide or one group).
    pub fn list_machines(
        &self,
        scope: &Scope,
        kind: MachineKind,
    ) -> BoxStream<'_, Result<Vec<Machine>, ArmError>> {
        self.arm
            .list_of::<ListedMachine>(Self::list_path(scope, kind), API_VERSION)
            .map(move |page| {
                page.map(|items| {
                    items
                        .into_iter()
                        .filter_map(|listed| listed.into_machine(kind))
                        .collect()
                })
            })
            .boxed()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waiting_for_updates_to_settle_ends_on_cancel() {
        use crate::azure::arm::test_support::{client, ok};
        let vm =
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";
        let machine = serde_json::json!({
            "id": vm, "location": "eastus",
            "properties": {"provisioningState": "Updating"}
        });
        let page = serde_json::json!({ "value": [machine] }).to_string();
        let machine = machine.to_string();
        let (arm, transport) = client(move |request, _| {
            if request.url().path().ends_with("/virtualMachines") {
                ok(&page)
            } else {
                ok(&machine)
            }
        });
        let compute = ComputeClient::new(arm);
        let scope = Scope::subscription("s1");
        let cancel = CancellationToken::new();
        let ids = BTreeSet::from([vm.to_string()]);
        let wait = compute.wait_until_settled_cancellable(
            &scope,
            &[MachineKind::VirtualMachine],
            &ids,
            &cancel,
        );
        let stopper = async {
            tokio::time::sleep(Duration::from_secs(20)).await;
            let reads = transport.count.load(std::sync::atomic::Ordering::SeqCst);
            assert!(reads >= 2, "still waiting after {reads} reads");
            cancel.cancel();
            Instant::now()
        };
        let (result, stopped_at) = tokio::join!(wait, stopper);
        let error = result.unwrap_err();
        assert!(error.is_cancelled(), "{error}");
        assert_eq!(stopped_at.elapsed(), Duration::ZERO, "stops at once");
    }

    /// After a listing shows the writes settled but for a few, those few are read one by one,
    /// all at once, not listed again (no more reads than a listing, and sooner).
    #[tokio::test(start_paused = true)]
    async fn the_last_few_updating_machines_are_read_one_by_one() {
        use crate::azure::arm::test_support::{client, ok};
        let machine = |n: usize, state: &str| {
            serde_json::json!({
                "id": format!("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{n}"),
                "location": "eastus",
                "properties": {"provisioningState": state}
            })
        };
        // Two pages of two machines; vm3 is still updating when listed, settled when read.
        let (arm, transport) = client(move |request, _| {
            let url = request.url();
            if url.path().ends_with("/virtualMachines") {
                let second = url.query().unwrap_or("").contains("skiptoken");
                let body = if second {
                    serde_json::json!({"value": [machine(2, "Succeeded"), machine(3, "Updating")]})
                } else {
                    serde_json::json!({
                        "value": [machine(0, "Succeeded"), machine(1, "Succeeded")],
                        "nextLink": format!("{}?api-version={API_VERSION}&$skiptoken=1", url.as_str().split('?').next().unwrap()),
                    })
                };
                ok(&body.to_string())
            } else {
                ok(&machine(3, "Succeeded").to_string())
            }
        });
        let compute = ComputeClient::new(arm);
        let ids: BTreeSet<String> = (0..4)
            .map(|n| format!("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{n}"))
            .collect();
        compute
            .wait_until_settled_cancellable(
                &Scope::subscription("s1"),
                &[MachineKind::VirtualMachine],
                &ids,
                &CancellationToken::new(),
            )
            .await
            .unwrap();
        let paths: Vec<String> = transport
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|(_, url, _)| {
                let path = url.split('?').next().unwrap();
                path.rsplit('/').next().unwrap().to_string()
            })
            .collect();
        assert_eq!(paths, ["virtualMachines", "virtualMachines", "vm3"]);
    }

    /// A page is read straight into machines: members missing or null take their defaults,
    /// an item without `id` is no machine, and an item of the wrong shape fails the page.
    #[tokio::test(start_paused = true)]
    async fn listed_pages_are_read_into_machines() {
        use crate::azure::arm::test_support::{client, ok};
        use futures::StreamExt;
        let (arm, _) = client(|request, _| {
            if request.url().path().contains("/subscriptions/bad/") {
                return ok(
                    r#"{"value": [{"id": "/x/vm9", "identity": {"userAssignedIdentities": []}}]}"#,
                );
            }
            ok(r#"{"value": [
                {"id": "/x/vm1", "location": null, "tags": {"a": "b", "n": 1},
                 "identity": {"type": "UserAssigned", "userAssignedIdentities": {"/i/one": {}}},
                 "properties": {"provisioningState": "Succeeded", "other": [1, 2]}},
                {"id": "/x/vm2", "extra": {"deep": {"deeper": true}}},
                {"location": "eastus"}
            ]}"#)
        });
        let compute = ComputeClient::new(arm);
        let first_page = |subscription: &'static str| {
            let mut pages = compute.list_machines(
                &Scope::subscription(subscription),
                MachineKind::VirtualMachine,
            );
            async move { pages.next().await.unwrap() }
        };
        let page = first_page("s1").await.unwrap();
        assert_eq!(page.len(), 2, "{page:?}");
        assert_eq!(page[0].location, "");
        assert_eq!(page[0].tags, BTreeMap::from([("a".into(), "b".into())]));
        assert_eq!(page[0].identity_type.as_deref(), Some("UserAssigned"));
        assert_eq!(page[0].user_assigned_identity_ids, ["/i/one"]);
        assert_eq!(page[0].provisioning_state.as_deref(), Some("Succeeded"));
        assert_eq!(page[1].identity_type, None);
        assert!(page[1].user_assigned_identity_ids.is_empty());
        let bad = first_page("bad").await.unwrap_err();
        assert!(bad.message.contains("cannot be read"), "{bad}");
    }

    #[test]
    fn machines_are_read_from_arm_json() {
        let json = serde_json::json!({
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
            "location": "eastus",
            "etag": "\"3\"",
            "tags": {"env": "prod"},
            "identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {"/x/id1": {"principalId": "p"}}},
            "properties": {"provisioningState": "Succeeded"}
        });
        let machine = Machine::from_json(&json, MachineKind::VirtualMachine).unwrap();
        assert_eq!(
            machine.identity_type.as_deref(),
            Some("SystemAssigned, UserAssigned")
        );
        assert_eq!(
            machine.user_assigned_identity_ids,
            vec!["/x/id1".to_string()]
        );
        assert_eq!(machine.etag.as_deref(), Some("\"3\""));
        assert_eq!(machine.tags["env"], "prod");
        let bare = Machine::from_json(
            &serde_json::json!({"id": "/x", "location": "westus"}),
            MachineKind::ScaleSet,
        )
        .unwrap();
        assert_eq!(bare.identity_type, None);
        assert!(bare.user_assigned_identity_ids.is_empty());
    }

    #[test]
    fn a_machines_unique_id_is_its_vm_id_or_unique_id_or_creation_time() {
        let with = |properties: serde_json::Value, kind| {
            Machine::from_json(
                &serde_json::json!({"id": "/x", "properties": properties}),
                kind,
            )
            .unwrap()
            .unique_id
        };
        let both = serde_json::json!({"vmId": "v", "uniqueId": "u", "timeCreated": "t"});
        assert_eq!(
            with(both.clone(), MachineKind::VirtualMachine).as_deref(),
            Some("v")
        );
        assert_eq!(with(both, MachineKind::ScaleSet).as_deref(), Some("u"));
        assert_eq!(
            with(
                serde_json::json!({"timeCreated": "2026-01-01T00:00:00Z"}),
                MachineKind::VirtualMachine
            )
            .as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(with(serde_json::json!({}), MachineKind::ScaleSet), None);
    }

    /// Every writer of a subscription (an estate's buckets, several resources) shares its
    /// turns: once they are all taken the next write waits, in order, while another
    /// subscription's writes go on; a stop ends the wait.
    #[tokio::test]
    async fn a_subscriptions_writers_share_its_turns() {
        use crate::azure::arm::test_support::client;
        use futures::FutureExt;
        let (arm, _) = client(|_, _| unreachable!("taking turns sends nothing"));
        let compute = ComputeClient::new(arm);
        let machine = |subscription: &str, name: usize| {
            format!("/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{name}")
        };
        let cancel = CancellationToken::new();
        let mut held = Vec::new();
        for n in 0..WRITES_PER_SUBSCRIPTION {
            // Two "buckets" of S1, each asking in turn.
            let subscription = if n % 2 == 0 { "S1" } else { "s1" };
            let slot = compute.write_slot(&machine(subscription, n), cancel.clone());
            held.push(slot.now_or_never().flatten().expect("a turn is free"));
        }
        let mut next = Box::pin(compute.write_slot(&machine("s1", 999), cancel.clone()));
        assert!(
            (&mut next).now_or_never().is_none(),
            "all of s1's turns are taken"
        );
        let other = compute.write_slot(&machine("s2", 0), cancel.clone());
        assert!(
            other.now_or_never().flatten().is_some(),
            "s2 has turns of its own"
        );
        held.pop();
        assert!(
            next.now_or_never().flatten().is_some(),
            "a finished write frees its turn"
        );

        let waiting = compute.write_slot(&machine("s1", 1000), cancel.clone());
        cancel.cancel();
        assert!(
            waiting.await.is_none(),
            "a stop ends the wait without a turn"
        );
    }

    /// A client whose every listing is `page`, answered a second after it is asked for.
    fn listing_one_page_a_second(
        page: serde_json::Value,
    ) -> (
        ComputeClient,
        Arc<crate::azure::arm::test_support::Scripted>,
    ) {
        use crate::azure::arm::test_support::{client, ok, Step};
        let page = page.to_string();
        let (arm, transport) =
            client(move |_, _| Step::Later(Duration::from_secs(1), Box::new(ok(&page))));
        (ComputeClient::new(arm), transport)
    }

    /// Callers that need a listing newer than the one running (each confirming its own
    /// writes) share one listing queued behind it, which starts when it ends; a caller that
    /// the running one satisfies is not kept waiting for the queued one.
    #[tokio::test(start_paused = true)]
    async fn callers_needing_a_newer_listing_share_one_queued_behind_the_running_one() {
        let (compute, transport) = listing_one_page_a_second(serde_json::json!({ "value": [{
            "id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm0",
            "location": "eastus",
        }]}));
        let scope = Scope::subscription("s1");
        let kinds = [MachineKind::VirtualMachine];
        let listing = |not_before: Instant| compute.shared_listing(&scope, &kinds, not_before);

        let first_asked = Instant::now();
        let running = listing(first_asked);
        // While it runs: one caller needs newer at 0.3 s, another at 0.6 s, and one at 0.6 s
        // is content with the running listing.
        let needs_newer = |after: u64| async move {
            tokio::time::sleep(Duration::from_millis(after)).await;
            let asked = Instant::now();
            (asked, listing(asked).await.unwrap().1)
        };
        let content = async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            let started = listing(first_asked).await.unwrap().1;
            (started, Instant::now())
        };
        // While the queued one runs, what the last one to end took is still known: the
        // confirmation of writes decides from it whether to read machines one by one.
        let pages_meanwhile = async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            compute.pages_of_listing(&scope, &kinds)
        };
        let (
            running,
            (a_asked, a_started),
            (b_asked, b_started),
            (content_started, content_at),
            pages_meanwhile,
        ) = tokio::join!(
            running,
            needs_newer(300),
            needs_newer(600),
            content,
            pages_meanwhile
        );
        let running_started = running.unwrap().1;
        assert_eq!(pages_meanwhile, 1);

        assert_eq!(transport.count.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(a_started, b_started, "one listing between them");
        assert!(
            a_started >= a_asked && b_started >= b_asked,
            "newer than they asked for"
        );
        assert_eq!(
            a_started,
            running_started + Duration::from_secs(1),
            "queued behind"
        );
        assert_eq!(content_started, running_started);
        assert_eq!(content_at, running_started + Duration::from_secs(1));
    }

    /// A caller that leaves while its queued listing waits for its turn leaves it queued: the
    /// next caller starts it, and it counts as running until it ends (a caller that needs
    /// newer than it then queues behind it instead of listing beside it).
    #[tokio::test(start_paused = true)]
    async fn a_queued_listing_its_caller_left_still_runs_once_as_the_next_callers() {
        let (compute, transport) = listing_one_page_a_second(serde_json::json!({ "value": [] }));
        let scope = Scope::subscription("s1");
        let kinds = [MachineKind::VirtualMachine];
        let listing = |not_before: Instant| compute.shared_listing(&scope, &kinds, not_before);
        let needs_newer_at = |after: u64| async move {
            tokio::time::sleep(Duration::from_millis(after)).await;
            listing(Instant::now()).await.unwrap().1
        };

        let running = listing(Instant::now());
        let leaves = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let left = tokio::time::timeout(Duration::from_millis(200), listing(Instant::now()));
            assert!(left.await.is_err(), "it left before its listing started");
        };
        let (running, (), next_started, later_started) =
            tokio::join!(running, leaves, needs_newer_at(600), needs_newer_at(1200));
        let running_started = running.unwrap().1;

        assert_eq!(next_started, running_started + Duration::from_secs(1));
        assert_eq!(
            later_started,
            next_started + Duration::from_secs(1),
            "queued behind the listing the caller who left had queued"
        );
        assert_eq!(transport.count.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    fn vm_before(etag: Option<&str>, kind: Option<&str>, ids: &[&str]) -> Machine {
        Machine {
            id: "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1".into(),
            kind: MachineKind::VirtualMachine,
            location: "eastus".into(),
            tags: BTreeMap::from([("env".into(), "prod".into())]),
            provisioning_state: Some("Succeeded".into()),
            identity_type: kind.map(str::to_string),
            user_assigned_identity_ids: ids.iter().map(|s| s.to_string()).collect(),
            etag: etag.map(str::to_string),
            unique_id: None,
        }
    }

    #[test]
    fn etags_count_writes_when_they_are_numbers() {
        assert_eq!(etag_count(Some("\"7\"")), Some(7));
        assert_eq!(etag_count(Some("W/\"7\"")), Some(7));
        assert_eq!(etag_count(Some("\"0x8DC1\"")), None);
        assert_eq!(etag_count(None), None);
    }

    /// The evidence that a write whose answer was lost was ours: exactly our change, in exactly
    /// one write. Every other shape is not proof.
    #[test]
    fn only_exactly_our_change_in_one_write_is_ours() {
        let ours = "/x/ours";
        let attach = serde_json::json!({"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {ours: {}}});
        let before = vm_before(Some("\"3\""), Some("SystemAssigned"), &[]);
        let took = Machine {
            identity_type: Some("SystemAssigned, UserAssigned".into()),
            user_assigned_identity_ids: vec!["/X/OURS".into()],
            etag: Some("\"4\"".into()),
            provisioning_state: Some("Updating".into()),
            ..before.clone()
        };
        assert!(is_exactly_our_write(&before, &attach, &took));

        // Two writes: ours then another's, or another's (with our identity) and ours refused.
        let twice = Machine {
            etag: Some("\"5\"".into()),
            ..took.clone()
        };
        assert!(!is_exactly_our_write(&before, &attach, &twice));
        // One write that also changed a tag, or another identity: not our PATCH.
        let mut tagged = took.clone();
        tagged.tags.insert("other".into(), "1".into());
        assert!(!is_exactly_our_write(&before, &attach, &tagged));
        let more = Machine {
            user_assigned_identity_ids: vec![ours.into(), "/x/theirs".into()],
            ..took.clone()
        };
        assert!(!is_exactly_our_write(&before, &attach, &more));
        // The system-assigned identity dropped: not what our PATCH does.
        let dropped = Machine {
            identity_type: Some("UserAssigned".into()),
            ..took.clone()
        };
        assert!(!is_exactly_our_write(&before, &attach, &dropped));
        // Etags that do not count writes prove nothing.
        let opaque = |etag: &str| Machine {
            etag: Some(etag.into()),
            ..took.clone()
        };
        let before_opaque = Machine {
            etag: Some("\"abc\"".into()),
            ..before.clone()
        };
        assert!(!is_exactly_our_write(
            &before_opaque,
            &attach,
            &opaque("\"abd\"")
        ));
        assert!(!is_exactly_our_write(
            &Machine {
                etag: None,
                ..before.clone()
            },
            &attach,
            &took
        ));

        // A swap: the old identity goes, the new one comes, the others stay.
        let before = vm_before(Some("\"9\""), Some("UserAssigned"), &["/x/old", "/x/app"]);
        let swap = serde_json::json!({"type": "UserAssigned", "userAssignedIdentities": {"/x/old": null, ours: {}}});
        let swapped = Machine {
            user_assigned_identity_ids: vec!["/x/app".into(), ours.into()],
            etag: Some("\"10\"".into()),
            ..before.clone()
        };
        assert!(is_exactly_our_write(&before, &swap, &swapped));
        let kept_old = Machine {
            user_assigned_identity_ids: vec!["/x/old".into(), "/x/app".into(), ours.into()],
            ..swapped.clone()
        };
        assert!(!is_exactly_our_write(&before, &swap, &kept_old));
    }

    /// A machine without an etag is never written: nothing is sent, and the error says why.
    #[tokio::test(start_paused = true)]
    async fn a_write_without_an_etag_is_refused_unsent() {
        use crate::azure::arm::test_support::client;
        let (arm, transport) = client(|_, _| unreachable!("nothing is sent"));
        let compute = ComputeClient::new(arm);
        let error = compute
            .patch_identity_cancellable(
                "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
                MachineKind::VirtualMachine,
                serde_json::json!({"type": "UserAssigned", "userAssignedIdentities": {"/x/ours": {}}}),
                None,
                &CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(error.code, NO_ETAG);
        assert!(error.message.contains("If-Match"), "{error}");
        assert_eq!(transport.count.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
