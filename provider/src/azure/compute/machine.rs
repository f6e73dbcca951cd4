//! A machine as far as identities go, read from ARM's JSON, and the proof that a write
//! whose answer was lost was ours.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MachineKind {
    VirtualMachine,
    ScaleSet,
}

impl MachineKind {
    pub(super) fn resource_type(self) -> &'static str {
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
pub(super) struct ListedMachine {
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
    pub(super) fn into_machine(self, kind: MachineKind) -> Option<Machine> {
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
