//! Listings of a scope's machines, shared between the callers that need them at once.

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::Value as Json;
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::machine::ListedMachine;
use super::{ComputeClient, Machine, MachineKind, API_VERSION};
use crate::azure::arm::ArmError;
use crate::azure::ids::Scope;

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
pub(super) struct ScopeListings {
    latest: Option<Arc<Listing>>,
    queued: Option<Arc<Listing>>,
    /// The reads the last listing to end took (the latest may still run).
    pages: usize,
}

pub(super) type ListingKey = (String, Vec<MachineKind>);

fn listing_key(scope: &Scope, kinds: &[MachineKind]) -> ListingKey {
    (scope.to_string().to_ascii_lowercase(), kinds.to_vec())
}

impl ComputeClient {
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
    pub(super) fn pages_of_listing(&self, scope: &Scope, kinds: &[MachineKind]) -> usize {
        let key = listing_key(scope, kinds);
        self.listings
            .lock()
            .expect("listings lock")
            .get(&key)
            .map_or(0, |listings| listings.pages)
    }

    /// The machines of [`ComputeClient::inventory`] that `keep` selects, copied one by one:
    /// many callers sharing a large listing (an estate's slices, one region each) each copy
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
    pub(super) fn remember_write(&self, id: &str, kind: MachineKind, answer: Option<&Json>) {
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
}
