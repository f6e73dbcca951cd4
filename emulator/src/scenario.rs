//! The scenario document (see README.md) and how it seeds a [`World`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::authz::{builtin_role_by_name_or_id, OWNER_ID};
use crate::model::*;
use crate::util::{guid, key, normalize_location, now_ms, stable_guid};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Scenario {
    pub tenant_id: Option<String>,
    pub subscriptions: Vec<ScSubscription>,
    pub deleted_principals: Vec<String>,
    pub principals: Vec<ScPrincipal>,
    pub client: Option<ScClient>,
    pub managed_identities_on_host: Option<ScHost>,
    pub realism: Option<RealismOverrides>,
    /// Management groups below the tenant root group; subscriptions not placed in one are
    /// under the root. When present (even empty) the client and the `owner` principals are
    /// Owner at the tenant root group.
    pub management_groups: Option<Vec<ScManagementGroup>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScManagementGroup {
    /// The group's name (its ID in ARM).
    pub id: String,
    pub display_name: Option<String>,
    /// The parent group's ID; absent (or the tenant ID) means the tenant root group.
    pub parent: Option<String>,
    /// IDs of the scenario's subscriptions placed directly in this group.
    pub subscriptions: Vec<String>,
    /// Role assignments at the group's scope (`scope` is ignored).
    pub role_assignments: Vec<ScRoleAssignment>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScSubscription {
    pub id: String,
    pub display_name: Option<String>,
    /// `Enabled` (default), `Warned`, `PastDue`, `Disabled` or `Deleted`; set on a merge too.
    /// ARM refuses writes (PUT, PATCH, POST) in a `Disabled` or `Deleted` subscription.
    pub state: Option<String>,
    /// `false`: left out of `GET /subscriptions` while still readable; set on a merge too.
    pub listed: Option<bool>,
    pub regions: Vec<String>,
    pub resource_groups: Vec<ScResourceGroup>,
    pub virtual_machines: Vec<ScCompute>,
    pub scale_sets: Vec<ScCompute>,
    pub user_assigned_identities: Vec<ScIdentity>,
    pub role_assignments: Vec<ScRoleAssignment>,
    pub locks: Vec<ScLock>,
    /// Another tenant's subscription (Azure Lighthouse, guest access): `GET /subscriptions`
    /// reports this `tenantId`, and the emulator's tenant in `managedByTenants`. Graph still
    /// answers for the emulator's tenant, where this tenant's principals do not exist.
    pub tenant_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScResourceGroup {
    pub name: String,
    pub location: Option<String>,
    pub tags: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScIdentityBlock {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Identity resource ids (or bare names, looked up in the subscription).
    pub user_assigned: Vec<String>,
    /// Optional fixed principal id for the system-assigned identity.
    pub principal_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScCompute {
    pub name: String,
    pub resource_group: String,
    pub location: Option<String>,
    pub tags: Map<String, Value>,
    pub identity: Option<ScIdentityBlock>,
    pub provisioning_state: Option<String>,
    /// Replaces the generated `properties` block.
    pub properties: Option<Value>,
    pub zones: Option<Vec<String>>,
    pub sku: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScIdentity {
    pub name: String,
    pub resource_group: String,
    pub location: Option<String>,
    pub tags: Map<String, Value>,
    pub principal_id: Option<String>,
    pub client_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScRoleAssignment {
    pub id: Option<String>,
    pub scope: String,
    pub role: String,
    pub principal_id: String,
    pub principal_type: Option<String>,
    /// When the assignment was made (RFC 3339); seeds assignments older than now.
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_on: Option<time::OffsetDateTime>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScLock {
    pub scope: String,
    pub name: String,
    pub level: Option<String>,
    pub notes: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScPrincipal {
    pub id: String,
    pub app_id: Option<String>,
    pub display_name: Option<String>,
    /// `ServicePrincipal` (default) or `User`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub service_principal_type: Option<String>,
    pub secret: Option<String>,
    pub certificate_pem: Option<String>,
    pub federated_credentials: Vec<FederatedCredential>,
    /// Seconds from scenario load until the principal replicates (default: visible now).
    pub visible_after_seconds: Option<f64>,
    /// Owner on every subscription, like the client.
    pub owner: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScClient {
    pub id: Option<String>,
    pub object_id: Option<String>,
    pub secret: Option<String>,
    pub display_name: Option<String>,
    pub certificate_pem: Option<String>,
    pub federated_credentials: Vec<FederatedCredential>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ScHost {
    /// A VM or scale set id: its identity block decides what the host has.
    pub vm: Option<String>,
    /// A system-assigned identity: `true` (new principal) or a principal id.
    pub system_assigned: Option<Value>,
    pub user_assigned: Vec<String>,
}

/// Builds a fresh world from a scenario (client and tenant taken from `keep` when absent).
pub fn build_world(sc: &Scenario, profile: &str, keep: Option<&World>) -> World {
    let tenant = sc
        .tenant_id
        .clone()
        .or_else(|| keep.map(|w| w.tenant_id.clone()))
        .unwrap_or_else(|| DEFAULT_TENANT.to_string())
        .to_ascii_lowercase();
    let client = match (&sc.client, keep) {
        (Some(c), _) => ClientApp {
            app_id: c
                .id
                .clone()
                .unwrap_or_else(|| stable_guid(&format!("client-app:{tenant}"))),
            object_id: c
                .object_id
                .clone()
                .unwrap_or_else(|| stable_guid(&format!("client-object:{tenant}"))),
            secret: c
                .secret
                .clone()
                .unwrap_or_else(|| format!("emu~{}", stable_guid(&tenant).replace('-', ""))),
        },
        (None, Some(w)) => w.client.clone(),
        (None, None) => ClientApp {
            app_id: stable_guid(&format!("client-app:{tenant}")),
            object_id: stable_guid(&format!("client-object:{tenant}")),
            secret: format!("emu~{}", stable_guid(&tenant).replace('-', "")),
        },
    };
    let mut world = World::new(&tenant, client, profile);
    if let Some(keep) = keep {
        world.realism = Realism::profile(&keep.profile);
        world.profile = keep.profile.clone();
    }
    // The client's own service principal.
    let c = world.client.clone();
    let mut creds = Credentials {
        secrets: vec![c.secret.clone()],
        ..Default::default()
    };
    if let Some(sc_client) = &sc.client {
        if let Some(pem) = &sc_client.certificate_pem {
            creds.certificates.push(pem.clone());
        }
        creds.federated = sc_client.federated_credentials.clone();
    }
    world.principals.insert(
        c.object_id.to_ascii_lowercase(),
        Principal {
            id: c.object_id.to_ascii_lowercase(),
            app_id: Some(c.app_id.clone()),
            display_name: sc
                .client
                .as_ref()
                .and_then(|c| c.display_name.clone())
                .unwrap_or_else(|| "azure-emulator-client".into()),
            kind: "ServicePrincipal".into(),
            sp_type: "Application".into(),
            alternative_names: vec![],
            visible_from_ms: 0,
            created_ms: now_ms(),
            credentials: creds,
            mi_resource_id: None,
            user_principal_name: None,
        },
    );
    let mut sc = sc.clone();
    if sc.subscriptions.is_empty() {
        sc.subscriptions.push(ScSubscription {
            id: DEFAULT_SUBSCRIPTION.into(),
            ..Default::default()
        });
    }
    seed(&mut world, &sc);
    world
}

/// Adds a scenario's content to a world.
pub fn seed(world: &mut World, sc: &Scenario) {
    if let Some(r) = &sc.realism {
        world.realism.apply(r);
    }
    let now = now_ms();
    for p in &sc.principals {
        let id = p.id.to_ascii_lowercase();
        let kind = p.kind.clone().unwrap_or_else(|| "ServicePrincipal".into());
        let mut creds = Credentials::default();
        if let Some(s) = &p.secret {
            creds.secrets.push(s.clone());
        }
        if let Some(c) = &p.certificate_pem {
            creds.certificates.push(c.clone());
        }
        creds.federated = p.federated_credentials.clone();
        let visible = p
            .visible_after_seconds
            .map(|s| now + world.realism.scaled_ms(s))
            .unwrap_or(0);
        world.principals.insert(
            id.clone(),
            Principal {
                id: id.clone(),
                app_id: if kind == "User" {
                    None
                } else {
                    Some(p.app_id.clone().unwrap_or_else(guid))
                },
                display_name: p
                    .display_name
                    .clone()
                    .unwrap_or_else(|| format!("principal-{}", &id[..8.min(id.len())])),
                user_principal_name: (kind == "User").then(|| {
                    format!(
                        "{}@emulator.onmicrosoft.com",
                        p.display_name
                            .clone()
                            .unwrap_or_else(|| id.clone())
                            .replace(' ', ".")
                    )
                }),
                kind,
                sp_type: p
                    .service_principal_type
                    .clone()
                    .unwrap_or_else(|| "Application".into()),
                alternative_names: vec![],
                visible_from_ms: visible,
                created_ms: now,
                credentials: creds,
                mi_resource_id: None,
            },
        );
    }
    for d in &sc.deleted_principals {
        world.remove_principal(d);
    }
    let owner_extra: Vec<String> = sc
        .principals
        .iter()
        .filter(|p| p.owner)
        .map(|p| p.id.to_ascii_lowercase())
        .collect();
    for s in &sc.subscriptions {
        seed_subscription(world, s, &owner_extra);
    }
    seed_management_groups(world, sc, &owner_extra);
    if let Some(h) = &sc.managed_identities_on_host {
        let mut host = HostIdentities {
            vm: h.vm.clone(),
            ..Default::default()
        };
        match &h.system_assigned {
            Some(Value::Bool(true)) => {
                let pid = guid();
                world.add_mi_principal(
                    &pid,
                    &guid(),
                    "emulator-host",
                    "/emulator/host",
                    false,
                    true,
                );
                host.system = Some(SystemIdentity {
                    principal_id: pid,
                    tenant_id: world.tenant_id.clone(),
                });
            }
            Some(Value::String(pid)) => {
                if world.principal_visible(pid, u64::MAX).is_none() {
                    world.add_mi_principal(
                        pid,
                        &guid(),
                        "emulator-host",
                        "/emulator/host",
                        false,
                        true,
                    );
                }
                host.system = Some(SystemIdentity {
                    principal_id: pid.to_ascii_lowercase(),
                    tenant_id: world.tenant_id.clone(),
                });
            }
            _ => {}
        }
        host.user = h.user_assigned.clone();
        world.host = host;
    }
}

fn seed_subscription(world: &mut World, s: &ScSubscription, owner_extra: &[String]) {
    let sub = s.id.to_ascii_lowercase();
    let regions: Vec<String> = if s.regions.is_empty() {
        vec!["eastus".into(), "westeurope".into()]
    } else {
        s.regions.iter().map(|r| normalize_location(r)).collect()
    };
    let default_region = regions[0].clone();
    let home_tenant = world.tenant_id.to_ascii_lowercase();
    let entry = world
        .subscriptions
        .entry(sub.clone())
        .or_insert_with(|| Subscription {
            id: sub.clone(),
            display_name: s
                .display_name
                .clone()
                .unwrap_or_else(|| format!("Emulated subscription {}", &sub[..8.min(sub.len())])),
            regions: regions.clone(),
            state: "Enabled".into(),
            registered_providers: [
                "Microsoft.Compute",
                "Microsoft.ManagedIdentity",
                "Microsoft.Authorization",
                "Microsoft.Resources",
                "Microsoft.Network",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            tenant_id: None,
            unlisted: false,
        });
    if let Some(tenant) = &s.tenant_id {
        let tenant = tenant.to_ascii_lowercase();
        entry.tenant_id = (tenant != home_tenant).then_some(tenant);
    }
    if let Some(state) = &s.state {
        entry.state = state.clone();
    }
    if let Some(listed) = s.listed {
        entry.unlisted = !listed;
    }
    for r in &regions {
        if !entry.regions.contains(r) {
            entry.regions.push(r.clone());
        }
    }
    let now = now_ms();
    // The client (and extra owners) are Owner on the subscription.
    let mut owners = vec![world.client.object_id.to_ascii_lowercase()];
    owners.extend(owner_extra.iter().cloned());
    for oid in owners {
        let name = stable_guid(&format!("owner:{sub}:{oid}"));
        let scope = format!("/subscriptions/{sub}");
        let id = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
        world.role_assignments.insert(
            key(&id),
            RoleAssignment {
                id,
                name,
                scope,
                role_definition_guid: OWNER_ID.into(),
                principal_id: oid,
                principal_type: "ServicePrincipal".into(),
                description: None,
                condition: None,
                condition_version: None,
                delegated_managed_identity_resource_id: None,
                created_ms: now,
                updated_ms: now,
                created_by: None,
            },
        );
    }
    for rg in &s.resource_groups {
        ensure_rg(
            world,
            &sub,
            &rg.name,
            rg.location.as_deref().unwrap_or(&default_region),
            rg.tags.clone(),
        );
    }
    for i in &s.user_assigned_identities {
        let loc = i.location.clone().unwrap_or_else(|| default_region.clone());
        ensure_rg(world, &sub, &i.resource_group, &loc, Map::new());
        let rg_name = world
            .rg(&sub, &i.resource_group)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        let id = format!(
            "/subscriptions/{sub}/resourceGroups/{rg_name}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
            i.name
        );
        create_identity(
            world,
            &id,
            &sub,
            &rg_name,
            &i.name,
            &normalize_location(&loc),
            i.tags.clone(),
            i.principal_id.clone(),
            i.client_id.clone(),
            true,
        );
    }
    for (list, kind) in [
        (&s.virtual_machines, ComputeKind::Vm),
        (&s.scale_sets, ComputeKind::Vmss),
    ] {
        for v in list {
            seed_compute(world, &sub, &default_region, v, kind);
        }
    }
    for ra in &s.role_assignments {
        let name = ra
            .id
            .as_deref()
            .map(|i| i.rsplit('/').next().unwrap_or(i).to_string())
            .unwrap_or_else(|| {
                stable_guid(&format!("ra:{}:{}:{}", ra.scope, ra.role, ra.principal_id))
            });
        let scope = if ra.scope.is_empty() {
            format!("/subscriptions/{sub}")
        } else {
            ra.scope.trim_end_matches('/').to_string()
        };
        let role = builtin_role_by_name_or_id(&ra.role)
            .map(|r| r.id.to_string())
            .unwrap_or_else(|| ra.role.rsplit('/').next().unwrap_or(&ra.role).to_string());
        let id = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
        let created_ms = ra
            .created_on
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
            .unwrap_or(now);
        world.role_assignments.insert(
            key(&id),
            RoleAssignment {
                id,
                name,
                scope,
                role_definition_guid: role,
                principal_id: ra.principal_id.to_ascii_lowercase(),
                principal_type: ra
                    .principal_type
                    .clone()
                    .unwrap_or_else(|| "ServicePrincipal".into()),
                description: None,
                condition: None,
                condition_version: None,
                delegated_managed_identity_resource_id: None,
                created_ms,
                updated_ms: created_ms,
                created_by: None,
            },
        );
    }
    for l in &s.locks {
        let scope = if l.scope.is_empty() {
            format!("/subscriptions/{sub}")
        } else {
            l.scope.trim_end_matches('/').to_string()
        };
        let id = format!("{scope}/providers/Microsoft.Authorization/locks/{}", l.name);
        world.locks.insert(
            key(&id),
            Lock {
                id,
                scope,
                name: l.name.clone(),
                level: l.level.clone().unwrap_or_else(|| "CanNotDelete".into()),
                notes: l.notes.clone(),
                owners: None,
            },
        );
    }
}

/// The scenario's management groups, subscriptions placed in them, role assignments at their
/// scope, and (when `management_groups` is present) the client and the extra owners as Owner at the
/// tenant root group, as they are Owner on every subscription.
fn seed_management_groups(world: &mut World, sc: &Scenario, owner_extra: &[String]) {
    let Some(groups) = &sc.management_groups else {
        return;
    };
    let root = world.tenant_id.to_ascii_lowercase();
    let now = now_ms();
    for g in groups {
        let k = g.id.to_ascii_lowercase();
        if k.is_empty() || k == root {
            continue;
        }
        world.management_groups.insert(
            k,
            ManagementGroup {
                name: g.id.clone(),
                display_name: g.display_name.clone().unwrap_or_else(|| g.id.clone()),
                parent: g
                    .parent
                    .as_ref()
                    .map(|p| {
                        p.trim_end_matches('/')
                            .rsplit('/')
                            .next()
                            .unwrap_or(p)
                            .to_ascii_lowercase()
                    })
                    .filter(|p| *p != root),
                updated_ms: now,
            },
        );
    }
    let mut principals = vec![world.client.object_id.to_ascii_lowercase()];
    principals.extend(owner_extra.iter().cloned());
    let mut assignments: Vec<(String, ScRoleAssignment)> = principals
        .into_iter()
        .map(|p| {
            (
                root.clone(),
                ScRoleAssignment {
                    role: "Owner".into(),
                    principal_id: p,
                    ..Default::default()
                },
            )
        })
        .collect();
    for g in groups {
        let k = g.id.to_ascii_lowercase();
        for sub in &g.subscriptions {
            world
                .subscription_groups
                .insert(sub.to_ascii_lowercase(), k.clone());
        }
        for ra in &g.role_assignments {
            assignments.push((k.clone(), ra.clone()));
        }
    }
    for (group, ra) in assignments {
        let name = world
            .management_groups
            .get(&group)
            .map(|g| g.name.clone())
            .unwrap_or_else(|| group.clone());
        let scope = format!("/providers/Microsoft.Management/managementGroups/{name}");
        seed_role_assignment(world, &scope, &ra, now);
    }
}

fn seed_role_assignment(world: &mut World, scope: &str, ra: &ScRoleAssignment, now: u64) {
    let name = ra
        .id
        .as_deref()
        .map(|i| i.rsplit('/').next().unwrap_or(i).to_string())
        .unwrap_or_else(|| stable_guid(&format!("ra:{}:{}:{}", scope, ra.role, ra.principal_id)));
    let role = builtin_role_by_name_or_id(&ra.role)
        .map(|r| r.id.to_string())
        .unwrap_or_else(|| ra.role.rsplit('/').next().unwrap_or(&ra.role).to_string());
    let id = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
    let created_ms = ra
        .created_on
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
        .unwrap_or(now);
    world.role_assignments.insert(
        key(&id),
        RoleAssignment {
            id,
            name,
            scope: scope.to_string(),
            role_definition_guid: role,
            principal_id: ra.principal_id.to_ascii_lowercase(),
            principal_type: ra
                .principal_type
                .clone()
                .unwrap_or_else(|| "ServicePrincipal".into()),
            description: None,
            condition: None,
            condition_version: None,
            delegated_managed_identity_resource_id: None,
            created_ms,
            updated_ms: created_ms,
            created_by: None,
        },
    );
}

pub fn ensure_rg(
    world: &mut World,
    sub: &str,
    name: &str,
    location: &str,
    tags: Map<String, Value>,
) {
    let k = World::rg_key(sub, name);
    world
        .resource_groups
        .entry(k)
        .or_insert_with(|| ResourceGroup {
            id: format!("/subscriptions/{sub}/resourceGroups/{name}"),
            subscription: sub.to_string(),
            name: name.to_string(),
            location: normalize_location(location),
            tags,
            managed_by: None,
            created_ms: now_ms(),
        });
}

/// Creates (or returns) a user-assigned identity and its service principal.
#[allow(clippy::too_many_arguments)]
pub fn create_identity(
    world: &mut World,
    id: &str,
    sub: &str,
    rg: &str,
    name: &str,
    location: &str,
    tags: Map<String, Value>,
    principal_id: Option<String>,
    client_id: Option<String>,
    immediately: bool,
) -> UserIdentity {
    if let Some(existing) = world.identity(id) {
        return existing.clone();
    }
    let ident = UserIdentity {
        id: id.to_string(),
        subscription: sub.to_string(),
        resource_group: rg.to_string(),
        name: name.to_string(),
        location: location.to_string(),
        tags,
        principal_id: principal_id.unwrap_or_else(guid).to_ascii_lowercase(),
        client_id: client_id.unwrap_or_else(guid).to_ascii_lowercase(),
        tenant_id: world.tenant_id.clone(),
        isolation_scope: None,
        created_ms: now_ms(),
        changed_ms: 0,
    };
    world.add_mi_principal(
        &ident.principal_id,
        &ident.client_id,
        name,
        id,
        true,
        immediately,
    );
    world.identities.insert(key(id), ident.clone());
    ident
}

/// Resolves a user-assigned identity reference from a scenario, creating it if needed.
fn resolve_identity_ref(
    world: &mut World,
    sub: &str,
    default_region: &str,
    r: &str,
) -> AssignedIdentity {
    let id = if r.starts_with('/') {
        r.trim_end_matches('/').to_string()
    } else if let Some(found) = world
        .identities
        .values()
        .find(|i| i.subscription == sub && i.name.eq_ignore_ascii_case(r))
    {
        found.id.clone()
    } else {
        format!("/subscriptions/{sub}/resourceGroups/identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{r}")
    };
    if world.identity(&id).is_none() {
        let parts: Vec<&str> = id.split('/').collect();
        let (isub, irg, iname) = (
            parts.get(2).copied().unwrap_or(sub).to_ascii_lowercase(),
            parts.get(4).copied().unwrap_or("identities").to_string(),
            parts.last().copied().unwrap_or("identity").to_string(),
        );
        let loc = if iname.to_ascii_lowercase().starts_with("built-in-identity-") {
            iname["built-in-identity-".len()..].to_ascii_lowercase()
        } else {
            default_region.to_string()
        };
        if !world.subscriptions.contains_key(&isub) {
            // Identity in a subscription the scenario does not list: keep the
            // reference resolvable anyway.
        }
        ensure_rg(world, &isub, &irg, &loc, Map::new());
        let rg_name = world.rg(&isub, &irg).map(|r| r.name.clone()).unwrap_or(irg);
        let canonical = format!(
            "/subscriptions/{isub}/resourceGroups/{rg_name}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{iname}"
        );
        create_identity(
            world,
            &canonical,
            &isub,
            &rg_name,
            &iname,
            &loc,
            Map::new(),
            None,
            None,
            true,
        );
    }
    let ident = world.identity(&id).cloned().expect("identity just ensured");
    AssignedIdentity {
        id: ident.id.clone(),
        principal_id: ident.principal_id,
        client_id: ident.client_id,
    }
}

fn seed_compute(
    world: &mut World,
    sub: &str,
    default_region: &str,
    v: &ScCompute,
    kind: ComputeKind,
) {
    let loc = normalize_location(v.location.as_deref().unwrap_or(default_region));
    let rg_in = if v.resource_group.is_empty() {
        "rg-default"
    } else {
        v.resource_group.as_str()
    };
    ensure_rg(world, sub, rg_in, &loc, Map::new());
    let rg = world
        .rg(sub, rg_in)
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let id = format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/{}/{}",
        kind.full_type(),
        v.name
    );
    let mut identity = ResourceIdentity::default();
    if let Some(ib) = &v.identity {
        let t = ib.kind.clone().unwrap_or_else(|| {
            if ib.user_assigned.is_empty() {
                "None".into()
            } else {
                "UserAssigned".into()
            }
        });
        let tl = t.to_ascii_lowercase();
        if tl.contains("systemassigned") {
            let pid = ib
                .principal_id
                .clone()
                .unwrap_or_else(guid)
                .to_ascii_lowercase();
            world.add_mi_principal(&pid, &guid(), &v.name, &id, false, true);
            identity.system = Some(SystemIdentity {
                principal_id: pid,
                tenant_id: world.tenant_id.clone(),
            });
        }
        if tl.contains("userassigned") {
            let mut seen = BTreeSet::new();
            for r in &ib.user_assigned {
                let a = resolve_identity_ref(world, sub, &loc, r);
                if seen.insert(key(&a.id)) {
                    identity.user.push(a);
                }
            }
        }
    }
    let properties = v
        .properties
        .clone()
        .unwrap_or_else(|| default_properties(kind, sub, &rg, &v.name));
    let mut extra = Map::new();
    if let Some(z) = &v.zones {
        extra.insert("zones".into(), json!(z));
    }
    if kind == ComputeKind::Vmss {
        extra.insert(
            "sku".into(),
            v.sku.clone().unwrap_or_else(
                || json!({"name": "Standard_D2s_v3", "tier": "Standard", "capacity": 2}),
            ),
        );
    }
    let now = now_ms();
    let c = Compute {
        kind,
        id: id.clone(),
        subscription: sub.to_string(),
        resource_group: rg,
        name: v.name.clone(),
        location: loc,
        tags: v.tags.clone(),
        identity,
        properties,
        extra,
        etag: 1,
        provisioning_state: v
            .provisioning_state
            .clone()
            .unwrap_or_else(|| "Succeeded".into()),
        busy_until_ms: 0,
        unique_id: stable_guid(&format!("vm:{}", key(&id))),
        time_created_ms: now,
        changed_ms: 0,
    };
    world.compute_map_mut(kind).insert(key(&id), c);
}

/// A plausible `properties` block for a seeded VM or scale set.
pub fn default_properties(kind: ComputeKind, sub: &str, rg: &str, name: &str) -> Value {
    match kind {
        ComputeKind::Vm => json!({
            "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
            "storageProfile": {
                "imageReference": {
                    "publisher": "Canonical",
                    "offer": "0001-com-ubuntu-server-jammy",
                    "sku": "22_04-lts-gen2",
                    "version": "latest",
                    "exactVersion": "22.04.202409190"
                },
                "osDisk": {
                    "osType": "Linux",
                    "name": format!("{name}_OsDisk_1"),
                    "createOption": "FromImage",
                    "caching": "ReadWrite",
                    "managedDisk": {
                        "storageAccountType": "Premium_LRS",
                        "id": format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/disks/{name}_OsDisk_1")
                    },
                    "deleteOption": "Delete",
                    "diskSizeGB": 30
                },
                "dataDisks": []
            },
            "osProfile": {
                "computerName": name,
                "adminUsername": "azureuser",
                "linuxConfiguration": {
                    "disablePasswordAuthentication": true,
                    "provisionVMAgent": true,
                    "patchSettings": {"patchMode": "ImageDefault", "assessmentMode": "ImageDefault"}
                },
                "secrets": [],
                "allowExtensionOperations": true,
                "requireGuestProvisionSignal": true
            },
            "networkProfile": {
                "networkInterfaces": [{
                    "id": format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkInterfaces/{name}-nic"),
                    "properties": {"deleteOption": "Delete"}
                }]
            },
            "diagnosticsProfile": {"bootDiagnostics": {"enabled": true}}
        }),
        ComputeKind::Vmss => json!({
            "singlePlacementGroup": false,
            "orchestrationMode": "Uniform",
            "upgradePolicy": {"mode": "Manual"},
            "virtualMachineProfile": {
                "osProfile": {
                    "computerNamePrefix": name,
                    "adminUsername": "azureuser",
                    "linuxConfiguration": {"disablePasswordAuthentication": true, "provisionVMAgent": true},
                    "secrets": [],
                    "allowExtensionOperations": true
                },
                "storageProfile": {
                    "osDisk": {"osType": "Linux", "createOption": "FromImage", "caching": "ReadWrite",
                               "managedDisk": {"storageAccountType": "Premium_LRS"}, "diskSizeGB": 30},
                    "imageReference": {"publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy",
                                       "sku": "22_04-lts-gen2", "version": "latest"}
                },
                "networkProfile": {"networkInterfaceConfigurations": [{
                    "name": format!("{name}-nic"),
                    "properties": {"primary": true, "ipConfigurations": [{"name": "ipconfig1", "properties": {
                        "subnet": {"id": format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/default")}
                    }}]}
                }]}
            },
            "overprovision": true,
            "doNotRunExtensionsOnOverprovisionedVMs": false,
            "platformFaultDomainCount": 5
        }),
    }
}
