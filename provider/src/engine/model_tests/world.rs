//! The model's world: the machine slots and identities, the machines as Azure holds them
//! (with who attached each identity, so a write of ours that strips another writer's is
//! caught), the in-memory [`MachineStore`] the engine writes through, with its faults (lost
//! answers, writes stopped half-way), and the stop signal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::azure::compute::{Machine, MachineKind};
use crate::azure::ids::Scope;
use crate::engine::policy::IdentityType;
use crate::engine::store::{MachineStore, Stopping, StoreError, Turn};

pub(super) const OURS: [&str; 2] = [
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ours-a",
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ours-b",
];
pub(super) const OTHER: &str =
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app";
pub(super) const SCOPES: [&str; 3] = [
    "/subscriptions/00000000-0000-0000-0000-000000000001",
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg1",
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg2",
];
/// The machine slots: resource group, region, kind.
pub(super) const SLOTS: [(&str, &str, MachineKind); 6] = [
    ("rg1", "eastus", MachineKind::VirtualMachine),
    ("rg1", "westus", MachineKind::VirtualMachine),
    ("rg1", "eastus", MachineKind::ScaleSet),
    ("rg2", "eastus", MachineKind::VirtualMachine),
    ("rg2", "westus", MachineKind::VirtualMachine),
    ("rg2", "eastus", MachineKind::VirtualMachine),
];

pub(super) fn machine_id(slot: usize) -> String {
    let (group, _, kind) = SLOTS[slot];
    let kind = match kind {
        MachineKind::VirtualMachine => "virtualMachines",
        MachineKind::ScaleSet => "virtualMachineScaleSets",
    };
    format!("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/{group}/providers/Microsoft.Compute/{kind}/m{slot}")
}

/// Who put an identity on a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Who {
    Us,
    Other,
}

#[derive(Default)]
pub(super) struct World {
    pub(super) machines: BTreeMap<String, Machine>,
    /// (unique ID, lower-cased identity) to who attached it.
    pub(super) attached_by: BTreeMap<(String, String), Who>,
    pub(super) next_unique: u64,
    /// Writes of ours to apply and then answer as lost (a 500), or as stopped.
    pub(super) lose_answers: usize,
    pub(super) stop_answers: usize,
    /// Writes of ours after which the operation is stopped.
    pub(super) stop_after: Option<usize>,
    pub(super) halt: Option<CancellationToken>,
    pub(super) violations: Vec<String>,
    /// Writes of ours that took one of our identities off a machine.
    pub(super) detached_ours: usize,
}

impl World {
    pub(super) fn create(&mut self, slot: usize, identities: &[&str]) {
        let (_, region, kind) = SLOTS[slot];
        self.next_unique += 1;
        let unique_id = format!("u{}", self.next_unique);
        for identity in identities {
            self.attached_by.insert(
                (unique_id.clone(), identity.to_ascii_lowercase()),
                Who::Other,
            );
        }
        let machine = Machine {
            id: machine_id(slot),
            kind,
            location: region.into(),
            tags: BTreeMap::new(),
            provisioning_state: Some("Succeeded".into()),
            identity_type: Some(
                if identities.is_empty() {
                    "SystemAssigned"
                } else {
                    "SystemAssigned, UserAssigned"
                }
                .into(),
            ),
            user_assigned_identity_ids: identities.iter().map(|s| s.to_string()).collect(),
            etag: Some("\"1\"".into()),
            unique_id: Some(unique_id),
        };
        self.machines
            .insert(machine.id.to_ascii_lowercase(), machine);
    }

    fn bump(machine: &mut Machine) {
        let count = crate::azure::compute::etag_count(machine.etag.as_deref()).unwrap_or(0);
        machine.etag = Some(format!("\"{}\"", count + 1));
    }

    /// Merges an identity block PATCH into `machine`, as ARM does; returns what was added
    /// and removed.
    fn merge(machine: &mut Machine, patch: &serde_json::Value) -> (Vec<String>, Vec<String>) {
        let kind = IdentityType::parse(patch.get("type").and_then(|t| t.as_str()));
        let before: Vec<String> = machine.user_assigned_identity_ids.clone();
        let mut now = before.clone();
        if let Some(changes) = patch
            .get("userAssignedIdentities")
            .and_then(|m| m.as_object())
        {
            for (id, value) in changes {
                now.retain(|held| !held.eq_ignore_ascii_case(id));
                if !value.is_null() {
                    now.push(id.clone());
                }
            }
        }
        if !kind.has_user_assigned() {
            now.clear();
        }
        machine.identity_type = Some(kind.as_arm().to_string());
        machine.user_assigned_identity_ids = now.clone();
        let lower = |list: &[String]| -> BTreeSet<String> {
            list.iter().map(|s| s.to_ascii_lowercase()).collect()
        };
        let (b, n) = (lower(&before), lower(&now));
        (
            n.difference(&b).cloned().collect(),
            b.difference(&n).cloned().collect(),
        )
    }

    /// Another writer's change to one machine's identities.
    pub(super) fn others_write(&mut self, slot: usize, identity: &str, attach: bool) {
        let Some(machine) = self
            .machines
            .get_mut(&machine_id(slot).to_ascii_lowercase())
        else {
            return;
        };
        let unique_id = machine.unique_id.clone().unwrap_or_default();
        let patch = if attach {
            serde_json::json!({"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {identity: {}}})
        } else {
            let block = crate::engine::ownership::identity_block(machine);
            match crate::engine::policy::removal_patch(&block, identity) {
                Some(patch) => patch,
                None => return,
            }
        };
        let (added, removed) = World::merge(machine, &patch);
        World::bump(machine);
        for id in added {
            self.attached_by.insert((unique_id.clone(), id), Who::Other);
        }
        for id in removed {
            self.attached_by.remove(&(unique_id.clone(), id));
        }
    }
}

pub(super) struct FakeStore(pub(super) Mutex<World>);

#[async_trait]
impl MachineStore for FakeStore {
    async fn list(
        &self,
        scope: &Scope,
        kinds: &[MachineKind],
        _not_before: Instant,
        keep: &(dyn for<'m> Fn(&'m Machine) -> bool + Send + Sync),
    ) -> Result<Vec<Machine>, StoreError> {
        let prefix = format!("{}/", scope.to_string().to_ascii_lowercase());
        let world = self.0.lock().unwrap();
        Ok(world
            .machines
            .values()
            .filter(|m| m.id.to_ascii_lowercase().starts_with(&prefix))
            .filter(|m| kinds.contains(&m.kind) && keep(m))
            .cloned()
            .collect())
    }

    async fn read(
        &self,
        id: &str,
        _kind: MachineKind,
        _halt: Option<&CancellationToken>,
    ) -> Result<Option<Machine>, StoreError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .machines
            .get(&id.to_ascii_lowercase())
            .cloned())
    }

    async fn write_identity(
        &self,
        id: &str,
        _kind: MachineKind,
        identity: serde_json::Value,
        if_match: Option<&str>,
        halt: &CancellationToken,
    ) -> Result<(), StoreError> {
        let error = |status: u16, message: &str| StoreError {
            status,
            not_sent: false,
            cancelled: false,
            no_etag: false,
            after_unanswered_attempt: false,
            message: message.into(),
        };
        if halt.is_cancelled() {
            return Err(StoreError {
                not_sent: true,
                ..error(0, "not sent")
            });
        }
        let mut world = self.0.lock().unwrap();
        let world = &mut *world;
        let Some(machine) = world.machines.get_mut(&id.to_ascii_lowercase()) else {
            return Err(error(404, "not found"));
        };
        if machine.etag.as_deref() != if_match {
            return Err(error(412, "precondition failed"));
        }
        let unique_id = machine.unique_id.clone().unwrap_or_default();
        let (added, removed) = World::merge(machine, &identity);
        World::bump(machine);
        for id in added {
            world.attached_by.insert((unique_id.clone(), id), Who::Us);
        }
        for id in removed {
            if OURS.iter().any(|ours| ours.eq_ignore_ascii_case(&id)) {
                world.detached_ours += 1;
            }
            if world.attached_by.remove(&(unique_id.clone(), id.clone())) == Some(Who::Other) {
                world.violations.push(format!(
                    "stripped another writer's {id} from {}",
                    machine.id
                ));
            }
        }
        if let Some(left) = world.stop_after.as_mut() {
            if *left == 0 {
                if let Some(halt) = &world.halt {
                    halt.cancel();
                }
            } else {
                *left -= 1;
            }
        }
        if world.lose_answers > 0 {
            world.lose_answers -= 1;
            return Err(error(500, "answer lost"));
        }
        if world.stop_answers > 0 {
            world.stop_answers -= 1;
            return Err(StoreError {
                cancelled: true,
                ..error(0, "stopped")
            });
        }
        Ok(())
    }

    fn turn(
        &self,
        _machine_id: &str,
        _halt: CancellationToken,
    ) -> BoxFuture<'static, Option<Turn>> {
        async { Some(Turn(Box::new(()))) }.boxed()
    }

    async fn settle(
        &self,
        _scope: &Scope,
        _kinds: &[MachineKind],
        _machines: &BTreeSet<String>,
        _halt: &CancellationToken,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

pub(super) struct Stop(pub(super) CancellationToken);

impl Stopping for Stop {
    fn token(&self) -> &CancellationToken {
        &self.0
    }

    fn reason(&self) -> String {
        "Terraform asked the provider to stop.".into()
    }
}
