//! The emulated world: subscriptions, resources, the directory, operations.
//!
//! Everything here is plain data (serialisable for `--state-file` and
//! `GET /_emulator/state`); the HTTP handlers live in `arm/`, `graph.rs`, `auth.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::util::{guid, key, now_ms};

pub const DEFAULT_TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const DEFAULT_SUBSCRIPTION: &str = "00000000-0000-0000-0000-000000000001";

/// Realism knobs, after profile defaults and scenario overrides are combined.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Realism {
    /// Seconds a VM / scale set create or update stays `Creating`/`Updating`.
    pub vm_update_seconds: f64,
    /// Seconds a resource group deletion takes.
    pub rg_delete_seconds: f64,
    /// Seconds a new principal stays invisible to Graph and role assignments.
    pub principal_replication_seconds: f64,
    /// ARM token buckets and Compute's update limits.
    pub throttling: bool,
    /// Speeds buckets and delays up (10 = ten times faster).
    pub time_scale: f64,
    /// Items per page of list calls (`nextLink` paging).
    pub page_size: usize,
    /// Compute's per-VM update allowance per minute.
    pub compute_per_vm_updates_per_min: f64,
    /// Compute's per-subscription VM update allowance per minute.
    pub compute_vm_updates_per_subscription_per_min: f64,
    /// ARM bucket sizes and refill rates (per subscription and principal).
    pub read_bucket: f64,
    pub read_refill_per_sec: f64,
    pub write_bucket: f64,
    pub write_refill_per_sec: f64,
    pub delete_bucket: f64,
    pub delete_refill_per_sec: f64,
    /// When true, a role assignment PUT that names `principalType` skips the
    /// directory lookup (as ARM documents); when false it is checked anyway.
    pub principal_type_bypasses_replication: bool,
    /// Enforce RBAC on ARM calls (403 `AuthorizationFailed`).
    pub enforce_rbac: bool,
}

impl Realism {
    pub fn profile(name: &str) -> Realism {
        let fast = Realism {
            vm_update_seconds: 0.0,
            rg_delete_seconds: 0.0,
            principal_replication_seconds: 0.0,
            throttling: false,
            time_scale: 1.0,
            page_size: 50,
            compute_per_vm_updates_per_min: 12.0,
            compute_vm_updates_per_subscription_per_min: 1500.0,
            read_bucket: 250.0,
            read_refill_per_sec: 25.0,
            write_bucket: 200.0,
            write_refill_per_sec: 10.0,
            delete_bucket: 200.0,
            delete_refill_per_sec: 10.0,
            principal_type_bypasses_replication: false,
            enforce_rbac: true,
        };
        match name {
            "realistic" => Realism {
                vm_update_seconds: 3.0,
                rg_delete_seconds: 2.0,
                principal_replication_seconds: 5.0,
                throttling: true,
                ..fast
            },
            _ => fast,
        }
    }

    pub fn apply(&mut self, o: &RealismOverrides) {
        macro_rules! set {
            ($f:ident) => {
                if let Some(v) = o.$f.clone() {
                    self.$f = v;
                }
            };
        }
        set!(vm_update_seconds);
        set!(rg_delete_seconds);
        set!(principal_replication_seconds);
        set!(throttling);
        set!(time_scale);
        set!(page_size);
        set!(compute_per_vm_updates_per_min);
        set!(compute_vm_updates_per_subscription_per_min);
        set!(read_bucket);
        set!(read_refill_per_sec);
        set!(write_bucket);
        set!(write_refill_per_sec);
        set!(delete_bucket);
        set!(delete_refill_per_sec);
        set!(principal_type_bypasses_replication);
        set!(enforce_rbac);
        if self.time_scale <= 0.0 {
            self.time_scale = 1.0;
        }
        if self.page_size == 0 {
            self.page_size = 50;
        }
    }

    /// A configured number of seconds, scaled, in milliseconds.
    pub fn scaled_ms(&self, seconds: f64) -> u64 {
        ((seconds.max(0.0) * 1000.0) / self.time_scale) as u64
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RealismOverrides {
    pub vm_update_seconds: Option<f64>,
    pub rg_delete_seconds: Option<f64>,
    pub principal_replication_seconds: Option<f64>,
    pub throttling: Option<bool>,
    pub time_scale: Option<f64>,
    pub page_size: Option<usize>,
    pub compute_per_vm_updates_per_min: Option<f64>,
    pub compute_vm_updates_per_subscription_per_min: Option<f64>,
    pub read_bucket: Option<f64>,
    pub read_refill_per_sec: Option<f64>,
    pub write_bucket: Option<f64>,
    pub write_refill_per_sec: Option<f64>,
    pub delete_bucket: Option<f64>,
    pub delete_refill_per_sec: Option<f64>,
    pub principal_type_bypasses_replication: Option<bool>,
    pub enforce_rbac: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub display_name: String,
    pub regions: Vec<String>,
    pub state: String,
    #[serde(default)]
    pub registered_providers: BTreeSet<String>,
    /// The tenant the subscription belongs to when it is not the emulator's own (a customer
    /// subscription seen through Azure Lighthouse, or as a guest); `None` is the world's
    /// tenant.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// Left out of `GET /subscriptions` (as a passing gap in ARM's listing leaves one out),
    /// while still readable and in its management group.
    #[serde(default)]
    pub unlisted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResourceGroup {
    pub id: String,
    pub subscription: String,
    pub name: String,
    pub location: String,
    pub tags: Map<String, Value>,
    pub managed_by: Option<String>,
    pub created_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserIdentity {
    pub id: String,
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub tags: Map<String, Value>,
    pub principal_id: String,
    pub client_id: String,
    pub tenant_id: String,
    pub isolation_scope: Option<String>,
    pub created_ms: u64,
    /// Last write (epoch ms); 0 = never changed since creation.
    #[serde(default)]
    pub changed_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComputeKind {
    Vm,
    Vmss,
}

impl ComputeKind {
    pub fn type_name(self) -> &'static str {
        match self {
            ComputeKind::Vm => "virtualMachines",
            ComputeKind::Vmss => "virtualMachineScaleSets",
        }
    }
    pub fn full_type(self) -> &'static str {
        match self {
            ComputeKind::Vm => "Microsoft.Compute/virtualMachines",
            ComputeKind::Vmss => "Microsoft.Compute/virtualMachineScaleSets",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SystemIdentity {
    pub principal_id: String,
    pub tenant_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AssignedIdentity {
    /// The identity's resource id as the client spelled it.
    pub id: String,
    pub principal_id: String,
    pub client_id: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ResourceIdentity {
    pub system: Option<SystemIdentity>,
    pub user: Vec<AssignedIdentity>,
}

impl ResourceIdentity {
    pub fn type_str(&self) -> &'static str {
        match (self.system.is_some(), !self.user.is_empty()) {
            (false, false) => "None",
            (true, false) => "SystemAssigned",
            (false, true) => "UserAssigned",
            (true, true) => "SystemAssigned, UserAssigned",
        }
    }

    pub fn is_none(&self) -> bool {
        self.system.is_none() && self.user.is_empty()
    }

    /// ARM's JSON for the identity block (`None` -> no block).
    pub fn to_json(&self) -> Option<Value> {
        if self.is_none() {
            return None;
        }
        let mut m = Map::new();
        if let Some(s) = &self.system {
            m.insert("principalId".into(), json!(s.principal_id));
            m.insert("tenantId".into(), json!(s.tenant_id));
        }
        m.insert("type".into(), json!(self.type_str()));
        if !self.user.is_empty() {
            let mut u = Map::new();
            for a in &self.user {
                u.insert(
                    a.id.clone(),
                    json!({"principalId": a.principal_id, "clientId": a.client_id}),
                );
            }
            m.insert("userAssignedIdentities".into(), Value::Object(u));
        }
        Some(Value::Object(m))
    }

    pub fn has_user(&self, id: &str) -> bool {
        let k = key(id);
        self.user.iter().any(|a| key(&a.id) == k)
    }
}

/// A virtual machine or a scale set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Compute {
    pub kind: ComputeKind,
    pub id: String,
    pub subscription: String,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub tags: Map<String, Value>,
    pub identity: ResourceIdentity,
    /// `properties` as the client sent them, minus read-only and secret fields.
    pub properties: Value,
    /// Other top-level members (zones, plan, sku, extendedLocation, placement...).
    pub extra: Map<String, Value>,
    pub etag: u64,
    /// The state while busy (`Creating`, `Updating`, `Deleting`), or `Succeeded`/`Failed`.
    pub provisioning_state: String,
    /// Until when (epoch ms) the resource is busy; `Succeeded` afterwards.
    pub busy_until_ms: u64,
    pub unique_id: String,
    pub time_created_ms: u64,
    /// Last write (epoch ms); 0 = never changed since creation.
    #[serde(default)]
    pub changed_ms: u64,
}

impl Compute {
    pub fn effective_state(&self, now: u64) -> String {
        if now >= self.busy_until_ms
            && matches!(
                self.provisioning_state.as_str(),
                "Creating" | "Updating" | "Deleting"
            )
        {
            "Succeeded".to_string()
        } else {
            self.provisioning_state.clone()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lock {
    pub id: String,
    pub scope: String,
    pub name: String,
    pub level: String,
    pub notes: Option<String>,
    pub owners: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleAssignment {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub role_definition_guid: String,
    pub principal_id: String,
    pub principal_type: String,
    pub description: Option<String>,
    pub condition: Option<String>,
    pub condition_version: Option<String>,
    pub delegated_managed_identity_resource_id: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub created_by: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    #[serde(default)]
    pub audiences: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Credentials {
    #[serde(default)]
    pub secrets: Vec<String>,
    /// PEM certificates whose keys may sign client assertions.
    #[serde(default)]
    pub certificates: Vec<String>,
    #[serde(default)]
    pub federated: Vec<FederatedCredential>,
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty() && self.certificates.is_empty() && self.federated.is_empty()
    }
}

/// A directory object: a service principal (application or managed identity) or a user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Principal {
    pub id: String,
    pub app_id: Option<String>,
    pub display_name: String,
    /// `ServicePrincipal` or `User`.
    pub kind: String,
    /// For service principals: `Application` or `ManagedIdentity`.
    pub sp_type: String,
    pub alternative_names: Vec<String>,
    pub visible_from_ms: u64,
    pub created_ms: u64,
    #[serde(default)]
    pub credentials: Credentials,
    /// For managed identities: the identity's (or owning resource's) ARM id.
    pub mi_resource_id: Option<String>,
    pub user_principal_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum OpKind {
    /// Compute create/update/delete status (`Azure-AsyncOperation`).
    Compute,
    /// Resource group deletion (`Location` polling).
    RgDelete,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Operation {
    pub id: String,
    pub kind: OpKind,
    pub resource_id: String,
    pub start_ms: u64,
    pub until_ms: u64,
}

/// Which managed identities the emulator's "host" has, for the MSI endpoints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostIdentities {
    /// When set, the host is this VM (or scale set): its identity block decides.
    pub vm: Option<String>,
    pub system: Option<SystemIdentity>,
    /// Identity resource ids.
    pub user: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientApp {
    pub app_id: String,
    pub object_id: String,
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    pub tenant_id: String,
    pub client: ClientApp,
    pub subscriptions: BTreeMap<String, Subscription>,
    pub resource_groups: BTreeMap<String, ResourceGroup>,
    pub identities: BTreeMap<String, UserIdentity>,
    pub vms: BTreeMap<String, Compute>,
    pub vmss: BTreeMap<String, Compute>,
    pub locks: BTreeMap<String, Lock>,
    pub role_assignments: BTreeMap<String, RoleAssignment>,
    pub principals: BTreeMap<String, Principal>,
    pub deleted_principals: BTreeSet<String>,
    pub operations: HashMap<String, Operation>,
    pub host: HostIdentities,
    pub realism: Realism,
    /// The profile the realism started from.
    pub profile: String,
    /// Management groups below the tenant root group (whose name is the tenant ID and which
    /// is not stored), by lower-cased name.
    #[serde(default)]
    pub management_groups: BTreeMap<String, ManagementGroup>,
    /// Lower-cased subscription ID -> lower-cased name of its management group; a
    /// subscription not listed is under the tenant root group.
    #[serde(default)]
    pub subscription_groups: BTreeMap<String, String>,
}

/// A management group (Microsoft.Management) other than the tenant root group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManagementGroup {
    /// The name as declared (the group's ID in ARM).
    pub name: String,
    pub display_name: String,
    /// The parent's lower-cased name; `None` is the tenant root group.
    pub parent: Option<String>,
    pub updated_ms: u64,
}

impl World {
    pub fn new(tenant_id: &str, client: ClientApp, profile: &str) -> World {
        World {
            tenant_id: tenant_id.to_string(),
            client,
            subscriptions: BTreeMap::new(),
            resource_groups: BTreeMap::new(),
            identities: BTreeMap::new(),
            vms: BTreeMap::new(),
            vmss: BTreeMap::new(),
            locks: BTreeMap::new(),
            role_assignments: BTreeMap::new(),
            principals: BTreeMap::new(),
            deleted_principals: BTreeSet::new(),
            operations: HashMap::new(),
            host: HostIdentities::default(),
            realism: Realism::profile(profile),
            profile: profile.to_string(),
            management_groups: BTreeMap::new(),
            subscription_groups: BTreeMap::new(),
        }
    }

    pub fn subscription(&self, sub: &str) -> Option<&Subscription> {
        self.subscriptions.get(&sub.to_ascii_lowercase())
    }

    pub fn rg_key(sub: &str, rg: &str) -> String {
        key(&format!("/subscriptions/{sub}/resourceGroups/{rg}"))
    }

    pub fn rg(&self, sub: &str, rg: &str) -> Option<&ResourceGroup> {
        self.resource_groups.get(&World::rg_key(sub, rg))
    }

    pub fn compute_map(&self, kind: ComputeKind) -> &BTreeMap<String, Compute> {
        match kind {
            ComputeKind::Vm => &self.vms,
            ComputeKind::Vmss => &self.vmss,
        }
    }

    pub fn compute_map_mut(&mut self, kind: ComputeKind) -> &mut BTreeMap<String, Compute> {
        match kind {
            ComputeKind::Vm => &mut self.vms,
            ComputeKind::Vmss => &mut self.vmss,
        }
    }

    /// Whether a principal exists and has replicated (is visible) at `now`.
    pub fn principal_visible(&self, id: &str, now: u64) -> Option<&Principal> {
        let k = id.to_ascii_lowercase();
        if self.deleted_principals.contains(&k) {
            return None;
        }
        self.principals.get(&k).filter(|p| p.visible_from_ms <= now)
    }

    /// Adds a managed-identity service principal, visible after the replication delay.
    pub fn add_mi_principal(
        &mut self,
        object_id: &str,
        app_id: &str,
        display_name: &str,
        resource_id: &str,
        explicit: bool,
        immediately: bool,
    ) {
        let now = now_ms();
        let delay = if immediately {
            0
        } else {
            self.realism
                .scaled_ms(self.realism.principal_replication_seconds)
        };
        let oid = object_id.to_ascii_lowercase();
        self.deleted_principals.remove(&oid);
        self.principals.insert(
            oid.clone(),
            Principal {
                id: oid,
                app_id: Some(app_id.to_string()),
                display_name: display_name.to_string(),
                kind: "ServicePrincipal".into(),
                sp_type: "ManagedIdentity".into(),
                alternative_names: vec![
                    format!("isExplicit={}", if explicit { "True" } else { "False" }),
                    resource_id.to_string(),
                ],
                visible_from_ms: now + delay,
                created_ms: now,
                credentials: Credentials::default(),
                mi_resource_id: Some(resource_id.to_string()),
                user_principal_name: None,
            },
        );
    }

    pub fn remove_principal(&mut self, object_id: &str) {
        let k = object_id.to_ascii_lowercase();
        self.principals.remove(&k);
        self.deleted_principals.insert(k);
    }

    /// Locks whose scope covers `id` (the id itself or an ancestor).
    pub fn locks_covering(&self, id: &str) -> Vec<&Lock> {
        self.locks
            .values()
            .filter(|l| crate::util::scope_contains(&l.scope, id))
            .collect()
    }

    /// Locks at `id`, above it, or below it (what a delete of `id` runs into).
    pub fn locks_touching(&self, id: &str) -> Vec<&Lock> {
        self.locks
            .values()
            .filter(|l| {
                crate::util::scope_contains(&l.scope, id)
                    || crate::util::scope_contains(id, &l.scope)
            })
            .collect()
    }

    /// Finds an identity by resource id (case-insensitive).
    pub fn identity(&self, id: &str) -> Option<&UserIdentity> {
        self.identities.get(&key(id))
    }

    pub fn new_client() -> ClientApp {
        ClientApp {
            app_id: guid(),
            object_id: guid(),
            secret: format!("emu~{}", guid().replace('-', "")),
        }
    }
}
