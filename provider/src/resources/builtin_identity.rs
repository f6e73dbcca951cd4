//! `mig_builtin_identity`: the identity Azure's built-in policy creates for a subscription
//! and region (`Built-In-Identity-{location}` in `Built-In-Identity-RG`), locked as the
//! policy locks it; or, with `existing_identity_id`, your own identity, adopted and locked.
//!
//! Create refuses to adopt an identity that already exists (import it instead). What this
//! resource created is recorded in private state, so destroy takes back exactly that: our
//! lock, our identity, and the resource group only if we created it and it is empty.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::{
    ApplyRequest, ApplyResponse, Attribute, AttributePath, Block, Diagnostics, ImportRequest,
    ImportResponse, ImportedResource, PlanRequest, PlanResponse, ReadRequest, ReadResponse,
    Resource, Schema, Type, Value,
};

use crate::azure::identities::Identity;
use crate::azure::ids::{self, SubscriptionId, UserAssignedIdentityId};
use crate::azure::AzureClients;
use crate::provider::ProviderData;
use crate::timeouts::{self, Operation};

pub const TYPE_NAME: &str = "mig_builtin_identity";

const TIMEOUTS: timeouts::Defaults = timeouts::Defaults {
    create: Duration::from_secs(30 * 60),
    read: Duration::from_secs(5 * 60),
    update: Duration::from_secs(30 * 60),
    delete: Duration::from_secs(30 * 60),
};

/// The group location the policy uses when it creates `Built-In-Identity-RG`.
const DEFAULT_RESOURCE_GROUP_LOCATION: &str = "eastus";

/// Arguments whose change means a different identity.
const REPLACING_ARGUMENTS: [&str; 5] = [
    "location",
    "subscription_id",
    "resource_group_name",
    "name",
    "existing_identity_id",
];

/// Arguments that describe an identity this resource creates, meaningless for your own.
const CREATE_ONLY_ARGUMENTS: [&str; 4] = [
    "name",
    "resource_group_name",
    "resource_group_location",
    "tags",
];

pub struct BuiltinIdentity {
    data: Arc<ProviderData>,
}

impl BuiltinIdentity {
    pub fn new(data: Arc<ProviderData>) -> Self {
        BuiltinIdentity { data }
    }
}

fn schema() -> Schema {
    let text = |name: &str| Attribute::optional(name, Type::String).optional_computed();
    let computed = |name: &str, description: &str| {
        Attribute::computed(name, Type::String).description(description)
    };
    Schema::new(
        0,
        Block {
            attributes: vec![
                Attribute::required("location", Type::String).description(
                    "The region, as ARM spells it (`eastus`) or as the portal does (`East US`; normalised). Changing it replaces the identity.",
                ),
                text("subscription_id").description("Where the identity lives. Default: the provider's subscription."),
                text("resource_group_name").description("Default `Built-In-Identity-RG`."),
                text("resource_group_location")
                    .description("Region of the resource group when this resource creates it. Default `eastus`, as the policy."),
                text("name").description("Default `Built-In-Identity-{location}`."),
                Attribute::optional("existing_identity_id", Type::String).description(
                    "Bring your own identity: adopted and locked, never created or deleted. Conflicts with `name`, `resource_group_name`, `resource_group_location` and `tags`.",
                ),
                Attribute::optional("lock", Type::Bool).optional_computed().description(
                    "Place the `CanNotDelete` lock. Default as the policy: `true`, except for a bring-your-own identity in another subscription than `subscription_id`.",
                ),
                Attribute::optional("tags", Type::map(Type::String)).description("Tags of a created identity."),
                computed("id", "The identity's resource ID."),
                computed("principal_id", "Object ID of the identity's service principal."),
                computed("client_id", "Client (application) ID of the identity."),
                computed("tenant_id", "Tenant of the identity."),
                computed("lock_id", "Resource ID of the lock, null when `lock` is false."),
                computed("resource_group_id", "Resource ID of the identity's resource group."),
            ],
            block_types: vec![timeouts::block(TIMEOUTS)],
            description: "One user-assigned managed identity per subscription and region, locked as Azure's built-in policy locks it.".into(),
            ..Block::default()
        },
    )
}

// ---------------------------------------------------------------------------------------------
// The typed model
// ---------------------------------------------------------------------------------------------

/// What this resource manages, decided from the (known) arguments.
#[derive(Debug, Clone, PartialEq)]
struct Target {
    identity: UserAssignedIdentityId,
    /// Bring-your-own: never created nor deleted here.
    existing: bool,
    location: String,
    resource_group_location: String,
    lock: bool,
    tags: BTreeMap<String, String>,
}

impl Target {
    fn lock_name(&self) -> String {
        ids::builtin_lock_name(self.identity.name())
    }

    fn lock_id(&self) -> String {
        format!(
            "{}/providers/Microsoft.Authorization/locks/{}",
            self.identity,
            self.lock_name()
        )
    }

    fn resource_group_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}",
            self.identity.subscription_id(),
            self.identity.resource_group()
        )
    }
}

/// What this resource did that it must undo on destroy, kept in private state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Ownership {
    /// We created the resource group (it did not exist).
    #[serde(default)]
    created_resource_group: bool,
    /// We placed the lock (it did not exist). For an identity we created this is always so.
    #[serde(default)]
    placed_lock: bool,
}

impl Ownership {
    fn from_private(bytes: &[u8]) -> Ownership {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    fn to_private(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("ownership serializes")
    }
}

/// Problems with the arguments visible without Azure. Unknown values are skipped.
fn validate_arguments(config: &Value) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    for name in ["location", "resource_group_location"] {
        if let Some(location) = config.get(name).as_str() {
            if let Err(reason) = ids::normalize_location(location) {
                diagnostics.error_at(AttributePath::root(name), "Invalid region", &reason);
            }
        }
    }
    if let Some(subscription) = config.get("subscription_id").as_str() {
        if let Err(reason) = SubscriptionId::parse_guid(subscription) {
            diagnostics.error_at(
                AttributePath::root("subscription_id"),
                "Invalid subscription ID",
                &reason,
            );
        }
    }
    if let Some(name) = config.get("name").as_str() {
        if name.is_empty() || name.len() > 128 || name.contains(['/', '\\', '?', '#']) {
            diagnostics.error_at(
                AttributePath::root("name"),
                "Invalid identity name",
                &format!("`{name}` is not a valid user-assigned identity name: 1 to 128 characters, no `/`, `\\`, `?` or `#`."),
            );
        }
    }
    let existing = config.get("existing_identity_id");
    if let Some(id) = existing.as_str() {
        if let Err(reason) = UserAssignedIdentityId::parse(id) {
            diagnostics.error_at(
                AttributePath::root("existing_identity_id"),
                "Invalid identity ID",
                &reason,
            );
        }
    }
    if !existing.is_null() {
        for name in CREATE_ONLY_ARGUMENTS {
            if !config.get(name).is_null() {
                diagnostics.error_at(
                    AttributePath::root(name),
                    "Conflicting arguments",
                    &format!("`{name}` describes an identity this resource creates; with `existing_identity_id` the identity is yours and is never created. Remove `{name}` or `existing_identity_id`."),
                );
            }
        }
    }
    timeouts::validate(config, &mut diagnostics);
    diagnostics
}

/// Regions the target's subscription does not offer, as errors on the argument that names
/// them. When the regions cannot be read (a principal without the right), ARM itself judges
/// at apply.
async fn unknown_regions(clients: &AzureClients, config: &Value, target: &Target) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    let subscription = target.identity.subscription_id();
    let regions = match clients.subscriptions.regions(subscription).await {
        Ok(regions) => regions,
        Err(error) => {
            tracing::debug!(%error, "cannot list the subscription's regions; not checking them");
            return diagnostics;
        }
    };
    let mut check = |argument: &str, region: &str| {
        if !regions.contains(region) {
            diagnostics.error_at(
                AttributePath::root(argument),
                "Unknown region",
                &format!(
                    "Subscription {subscription} has no region `{region}`. Regions it has: {}.",
                    regions.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
        }
    };
    if !target.existing {
        check("location", &target.location);
        if !config.get("resource_group_location").is_null() {
            check("resource_group_location", &target.resource_group_location);
        }
    }
    diagnostics
}

/// The planned value: defaults filled in and the computed IDs derived. Needs the provider's
/// subscription when the configuration does not name one.
fn plan_target(
    config: &Value,
    provider_subscription: Option<&str>,
) -> Result<Option<Target>, String> {
    let Some(location) = config.get("location").as_str() else {
        return Ok(None);
    };
    let location = ids::normalize_location(location)?;
    if let Some(existing) = config.get("existing_identity_id").as_str() {
        let identity = UserAssignedIdentityId::parse(existing)?;
        let subscription = match config.get("subscription_id").as_str() {
            Some(subscription) => subscription.to_string(),
            None => match provider_subscription {
                Some(subscription) => subscription.to_string(),
                None => return Ok(None),
            },
        };
        let same_subscription = identity
            .subscription_id()
            .eq_ignore_ascii_case(&subscription);
        let lock = match config.get("lock") {
            Value::Bool(lock) => *lock,
            Value::Null => same_subscription,
            _ => return Ok(None),
        };
        return Ok(Some(Target {
            resource_group_location: DEFAULT_RESOURCE_GROUP_LOCATION.into(),
            identity,
            existing: true,
            location,
            lock,
            tags: BTreeMap::new(),
        }));
    }
    let subscription = match config.get("subscription_id").as_str() {
        Some(subscription) => subscription.to_string(),
        None => match provider_subscription {
            Some(subscription) => subscription.to_string(),
            None => return Ok(None),
        },
    };
    if [
        config.get("name"),
        config.get("resource_group_name"),
        config.get("resource_group_location"),
        config.get("tags"),
        config.get("lock"),
    ]
    .iter()
    .any(|v| !v.is_fully_known())
    {
        return Ok(None);
    }
    let subscription = SubscriptionId::parse_guid(&subscription)?;
    let resource_group = config
        .get("resource_group_name")
        .as_str()
        .unwrap_or(ids::BUILTIN_RESOURCE_GROUP)
        .to_string();
    let name = config
        .get("name")
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| ids::builtin_identity_name(&location));
    let resource_group_location = match config.get("resource_group_location").as_str() {
        Some(text) => ids::normalize_location(text)?,
        None => DEFAULT_RESOURCE_GROUP_LOCATION.into(),
    };
    Ok(Some(Target {
        identity: UserAssignedIdentityId::new(subscription.as_str(), &resource_group, &name),
        existing: false,
        location,
        resource_group_location,
        lock: config.get("lock").as_bool().unwrap_or(true),
        tags: config.get("tags").as_string_map().unwrap_or_default(),
    }))
}

/// The resource's value for a target; `identity` fills the server-generated IDs (unknown
/// until created), `lock_present` says whether the lock exists (drift when it should).
fn state_value(
    config: &Value,
    target: &Target,
    identity: Option<&Identity>,
    lock_present: bool,
) -> Value {
    let known_or_unknown =
        |text: Option<&str>| text.map_or_else(Value::unknown, |t| Value::String(t.to_string()));
    let mut state = config.as_object().cloned().unwrap_or_default();
    let mut set = |name: &str, value: Value| {
        state.insert(name.to_string(), value);
    };
    // The spelling the configuration uses ("East US"): Terraform holds a provider to the
    // configured value of a non-computed argument; ARM's spelling is used for every call.
    let location = config
        .get("location")
        .as_str()
        .unwrap_or(&target.location)
        .to_string();
    set("location", Value::String(location));
    set(
        "subscription_id",
        Value::String(subscription_of_target(target)),
    );
    if target.existing {
        set("resource_group_name", Value::Null);
        set("resource_group_location", Value::Null);
        set("name", Value::Null);
        set("tags", Value::Null);
    } else {
        set(
            "resource_group_name",
            Value::String(target.identity.resource_group().to_string()),
        );
        set(
            "resource_group_location",
            Value::String(target.resource_group_location.clone()),
        );
        set("name", Value::String(target.identity.name().to_string()));
        let tags_configured = !config.get("tags").is_null();
        set(
            "tags",
            if tags_configured || !target.tags.is_empty() {
                Value::Map(
                    target
                        .tags
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect(),
                )
            } else {
                Value::Null
            },
        );
    }
    set("lock", Value::Bool(target.lock));
    set("id", Value::String(target.identity.to_string()));
    set(
        "principal_id",
        known_or_unknown(identity.map(|i| i.principal_id.as_str())),
    );
    set(
        "client_id",
        known_or_unknown(identity.map(|i| i.client_id.as_str())),
    );
    set(
        "tenant_id",
        known_or_unknown(identity.map(|i| i.tenant_id.as_str())),
    );
    set(
        "lock_id",
        if target.lock && lock_present {
            Value::String(target.lock_id())
        } else {
            Value::Null
        },
    );
    set(
        "resource_group_id",
        Value::String(target.resource_group_id()),
    );
    Value::Object(state)
}

/// For bring-your-own the configured subscription is the VMs' one, not the identity's.
fn subscription_of_target(target: &Target) -> String {
    target.identity.subscription_id().to_string()
}

fn with_prior_identity(planned: Value, prior: &Value) -> Value {
    let mut fields = planned.as_object().cloned().unwrap_or_default();
    for name in ["principal_id", "client_id", "tenant_id"] {
        if let Some(text) = prior.get(name).as_str() {
            fields.insert(name.into(), Value::String(text.to_string()));
        }
    }
    Value::Object(fields)
}

fn unknown_computed(config: &Value) -> Value {
    let mut fields = config.as_object().cloned().unwrap_or_default();
    for name in [
        "subscription_id",
        "resource_group_name",
        "resource_group_location",
        "name",
        "lock",
        "id",
        "principal_id",
        "client_id",
        "tenant_id",
        "lock_id",
        "resource_group_id",
    ] {
        if fields.get(name).is_none_or(Value::is_null) {
            fields.insert(name.into(), Value::unknown());
        }
    }
    Value::Object(fields)
}

// ---------------------------------------------------------------------------------------------
// Azure operations
// ---------------------------------------------------------------------------------------------

fn failure(prior: Value, private: Vec<u8>, summary: &str, detail: &str) -> ApplyResponse {
    ApplyResponse {
        new_state: prior,
        private,
        diagnostics: Diagnostics::from_error(summary, detail),
        ..ApplyResponse::default()
    }
}

/// Whether our lock is on the identity.
async fn lock_exists(clients: &AzureClients, target: &Target) -> Result<bool, String> {
    clients
        .locks
        .get(&target.identity.to_string(), &target.lock_name())
        .await
        .map(|lock| lock.is_some())
        .map_err(|e| e.to_string())
}

async fn place_lock(clients: &AzureClients, target: &Target) -> Result<(), String> {
    clients
        .locks
        .create_or_update(
            &target.identity.to_string(),
            &target.lock_name(),
            "CanNotDelete",
            ids::BUILTIN_LOCK_NOTES,
        )
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn remove_lock(clients: &AzureClients, target: &Target) -> Result<(), String> {
    clients
        .locks
        .delete(&target.identity.to_string(), &target.lock_name())
        .await
        .map_err(|e| e.to_string())
}

impl BuiltinIdentity {
    async fn create(
        &self,
        clients: &AzureClients,
        config: &Value,
        target: &Target,
    ) -> ApplyResponse {
        let mut ownership = Ownership::default();
        let identity = if target.existing {
            match clients.identities.get(&target.identity).await {
                Ok(Some(identity)) => identity,
                Ok(None) => {
                    return failure(
                        Value::Null,
                        Vec::new(),
                        "Identity not found",
                        &format!("`existing_identity_id` names {}, which does not exist. Create it first, or leave `existing_identity_id` out to let this resource create the built-in identity.", target.identity),
                    )
                }
                Err(error) => return failure(Value::Null, Vec::new(), "Cannot read the identity", &error.to_string()),
            }
        } else {
            match clients.identities.get(&target.identity).await {
                Ok(Some(_)) => {
                    return failure(
                        Value::Null,
                        Vec::new(),
                        "Identity already exists",
                        &format!(
                            "{id} already exists (perhaps Azure Policy created it). To manage it with Terraform, import it:\n  terraform import {TYPE_NAME}.<name> {id}\nor add an `import` block with that ID.",
                            id = target.identity
                        ),
                    )
                }
                Ok(None) => {}
                Err(error) => return failure(Value::Null, Vec::new(), "Cannot read the identity", &error.to_string()),
            }
            let subscription = target.identity.subscription_id();
            let group = target.identity.resource_group();
            match clients.resource_groups.get(subscription, group).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    if let Err(error) = clients
                        .resource_groups
                        .create_or_update(
                            subscription,
                            group,
                            &target.resource_group_location,
                            &BTreeMap::new(),
                        )
                        .await
                    {
                        return failure(
                            Value::Null,
                            Vec::new(),
                            "Cannot create the resource group",
                            &error.to_string(),
                        );
                    }
                    ownership.created_resource_group = true;
                }
                Err(error) => {
                    return failure(
                        Value::Null,
                        Vec::new(),
                        "Cannot read the resource group",
                        &error.to_string(),
                    )
                }
            }
            match clients
                .identities
                .create_or_update(&target.identity, &target.location, &target.tags)
                .await
            {
                Ok(identity) => identity,
                Err(error) => {
                    // The group we may have created stays recorded, so destroy can take it back.
                    return failure(
                        Value::Null,
                        ownership.to_private(),
                        "Cannot create the identity",
                        &error.to_string(),
                    );
                }
            }
        };
        let mut lock_present = false;
        let mut diagnostics = Diagnostics::default();
        if target.lock {
            match lock_exists(clients, target).await {
                Ok(true) => lock_present = true,
                Ok(false) => match place_lock(clients, target).await {
                    Ok(()) => {
                        lock_present = true;
                        ownership.placed_lock = true;
                    }
                    Err(error) => diagnostics.error(
                        "Cannot lock the identity",
                        &format!("The identity exists and is recorded in state; the next apply places the lock. {error}"),
                    ),
                },
                Err(error) => diagnostics.error("Cannot read the lock", &error),
            }
        }
        if !target.existing {
            // The lock guards an identity we created: destroy removes it with the identity.
            ownership.placed_lock = true;
        }
        ApplyResponse {
            new_state: state_value(config, target, Some(&identity), lock_present),
            private: ownership.to_private(),
            diagnostics,
            ..ApplyResponse::default()
        }
    }

    async fn update(
        &self,
        clients: &AzureClients,
        request: &ApplyRequest,
        target: &Target,
    ) -> ApplyResponse {
        let mut ownership = Ownership::from_private(&request.planned_private);
        let prior_target = plan_target(&request.prior_state, None).ok().flatten();
        let mut identity = None;
        if !target.existing && prior_target.as_ref().map(|p| &p.tags) != Some(&target.tags) {
            match clients
                .identities
                .create_or_update(&target.identity, &target.location, &target.tags)
                .await
            {
                Ok(updated) => identity = Some(updated),
                Err(error) => {
                    return failure(
                        request.prior_state.clone(),
                        request.planned_private.clone(),
                        "Cannot update the identity's tags",
                        &error.to_string(),
                    )
                }
            }
        }
        let identity = match identity {
            Some(identity) => identity,
            None => match clients.identities.get(&target.identity).await {
                Ok(Some(identity)) => identity,
                Ok(None) => {
                    return failure(
                        Value::Null,
                        Vec::new(),
                        "Identity gone",
                        &format!(
                            "{} was deleted outside Terraform; apply again to create it.",
                            target.identity
                        ),
                    )
                }
                Err(error) => {
                    return failure(
                        request.prior_state.clone(),
                        request.planned_private.clone(),
                        "Cannot read the identity",
                        &error.to_string(),
                    )
                }
            },
        };
        let had_lock = !request.prior_state.get("lock_id").is_null();
        let mut lock_present = had_lock;
        let mut diagnostics = Diagnostics::default();
        if target.lock && !had_lock {
            match place_lock(clients, target).await {
                Ok(()) => {
                    lock_present = true;
                    ownership.placed_lock = true;
                }
                Err(error) => diagnostics.error("Cannot lock the identity", &error),
            }
        } else if !target.lock && had_lock {
            if ownership.placed_lock || !target.existing {
                if let Err(error) = remove_lock(clients, target).await {
                    diagnostics.error("Cannot remove the lock", &error);
                } else {
                    lock_present = false;
                }
            } else {
                // Someone else's lock: we stop tracking it but leave it in place.
                lock_present = false;
            }
        }
        let shown = Target {
            lock: target.lock || lock_present,
            ..target.clone()
        };
        ApplyResponse {
            new_state: state_value(&request.config, &shown, Some(&identity), lock_present),
            private: ownership.to_private(),
            diagnostics,
            ..ApplyResponse::default()
        }
    }

    async fn destroy(
        &self,
        clients: &AzureClients,
        prior: &Value,
        private: &[u8],
    ) -> ApplyResponse {
        let ownership = Ownership::from_private(private);
        let Some(target) = target_from_state(prior) else {
            return ApplyResponse::default();
        };
        let lock_recorded = !prior.get("lock_id").is_null();
        if lock_recorded && (ownership.placed_lock || !target.existing) {
            if let Err(error) = remove_lock(clients, &target).await {
                return failure(
                    prior.clone(),
                    private.to_vec(),
                    "Cannot remove the lock",
                    &error,
                );
            }
        }
        if target.existing {
            return ApplyResponse::default();
        }
        if let Err(error) = clients.identities.delete(&target.identity).await {
            let still_locked = prior.with("lock_id", Value::Null);
            return failure(
                still_locked,
                private.to_vec(),
                "Cannot delete the identity",
                &error.to_string(),
            );
        }
        if ownership.created_resource_group {
            let subscription = target.identity.subscription_id();
            let group = target.identity.resource_group();
            match clients.resource_groups.is_empty(subscription, group).await {
                Ok(true) => {
                    if let Err(error) = clients.resource_groups.delete(subscription, group).await {
                        return ApplyResponse {
                            diagnostics: {
                                let mut d = Diagnostics::default();
                                d.warning(
                                    "Resource group left in place",
                                    &format!("This resource created {group} but could not delete it: {error}"),
                                );
                                d
                            },
                            ..ApplyResponse::default()
                        };
                    }
                }
                Ok(false) => tracing::debug!(group, "resource group not empty; left in place"),
                Err(error) => {
                    tracing::warn!(group, %error, "cannot tell whether the resource group is empty; left in place")
                }
            }
        }
        ApplyResponse::default()
    }
    /// Read without the deadline: what Azure has now.
    async fn refresh(&self, request: ReadRequest) -> ReadResponse {
        let state = request.current_state;
        let mut response = ReadResponse {
            new_state: state.clone(),
            private: request.private,
            ..ReadResponse::default()
        };
        let Some(target) = target_from_state(&state) else {
            return response;
        };
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                response.diagnostics = diagnostics;
                return response;
            }
        };
        let identity = match clients.identities.get(&target.identity).await {
            Ok(Some(identity)) => identity,
            Ok(None) => {
                // Gone: Terraform plans to create it again.
                response.new_state = Value::Null;
                return response;
            }
            Err(error) => {
                response
                    .diagnostics
                    .error("Cannot read the identity", &error.to_string());
                return response;
            }
        };
        let lock_present = if target.lock {
            match lock_exists(&clients, &target).await {
                Ok(present) => present,
                Err(error) => {
                    response.diagnostics.error("Cannot read the lock", &error);
                    return response;
                }
            }
        } else {
            false
        };
        let refreshed = Target {
            tags: if target.existing {
                BTreeMap::new()
            } else {
                identity.tags.clone()
            },
            location: ids::normalize_location(&identity.location)
                .unwrap_or(target.location.clone()),
            ..target
        };
        let mut new_state = state_value(&state, &refreshed, Some(&identity), lock_present);
        if state.get("tags").is_null() && refreshed.tags.is_empty() {
            new_state = new_state.with("tags", Value::Null);
        }
        // Keep the ID as recorded; ARM may spell it in another case.
        new_state = new_state.with("id", state.get("id").clone());
        response.new_state = new_state;
        response
    }
}

/// The target recorded in state (all values known there).
fn target_from_state(state: &Value) -> Option<Target> {
    let id = state.get("id").as_str()?;
    let identity = UserAssignedIdentityId::parse(id).ok()?;
    let existing = !state.get("existing_identity_id").is_null();
    Some(Target {
        identity,
        existing,
        location: state
            .get("location")
            .as_str()
            .unwrap_or_default()
            .to_string(),
        resource_group_location: state
            .get("resource_group_location")
            .as_str()
            .unwrap_or(DEFAULT_RESOURCE_GROUP_LOCATION)
            .to_string(),
        lock: state.get("lock").as_bool().unwrap_or(true),
        tags: state.get("tags").as_string_map().unwrap_or_default(),
    })
}

#[async_trait]
impl Resource for BuiltinIdentity {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        validate_arguments(config)
    }

    async fn plan(&self, request: PlanRequest) -> PlanResponse {
        let mut response = PlanResponse {
            planned_state: request.proposed_new_state.clone(),
            planned_private: request.prior_private.clone(),
            ..PlanResponse::default()
        };
        if request.proposed_new_state.is_null() {
            return response;
        }
        let problems = validate_arguments(&request.config);
        if problems.has_errors() {
            response.diagnostics = problems;
            return response;
        }
        let provider_subscription = self
            .data
            .clients()
            .ok()
            .map(|c| c.subscription_id().to_string());
        // Config decides; for optional+computed arguments left out, the defaults.
        let target = match plan_target(&request.config, provider_subscription.as_deref()) {
            Ok(Some(target)) => target,
            Ok(None) => {
                response.planned_state = unknown_computed(&request.proposed_new_state);
                return response;
            }
            Err(reason) => {
                response.diagnostics.error("Invalid arguments", &reason);
                return response;
            }
        };
        if let Ok(clients) = self.data.clients() {
            let unknown = unknown_regions(&clients, &request.config, &target).await;
            if unknown.has_errors() {
                response.diagnostics = unknown;
                return response;
            }
        }
        let creating = request.prior_state.is_null();
        let mut planned = state_value(&request.config, &target, None, true);
        if !creating {
            let prior_id = request.prior_state.get("id").as_str().unwrap_or_default();
            let replacing: Vec<AttributePath> = REPLACING_ARGUMENTS
                .iter()
                .filter(|name| {
                    let (before, after) = (request.prior_state.get(name), planned.get(name));
                    match (before.as_str(), after.as_str()) {
                        (Some(a), Some(b)) if **name == "location" => {
                            ids::normalize_location(a).ok() != ids::normalize_location(b).ok()
                        }
                        (Some(a), Some(b)) => !a.eq_ignore_ascii_case(b),
                        _ => before != after,
                    }
                })
                .map(|name| AttributePath::root(*name))
                .collect();
            if replacing.is_empty() && prior_id.eq_ignore_ascii_case(&target.identity.to_string()) {
                planned = with_prior_identity(planned, &request.prior_state);
                // Keep the ID as recorded (ARM may spell the group in another case).
                planned = planned.with("id", Value::String(prior_id.to_string()));
            }
            response.requires_replace = replacing;
        }
        response.planned_state = planned;
        response
    }

    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                return ApplyResponse {
                    new_state: request.prior_state,
                    private: request.planned_private,
                    diagnostics,
                    ..ApplyResponse::default()
                }
            }
        };
        let (operation, state_for_timeout) = if request.planned_state.is_null() {
            (Operation::Delete, &request.prior_state)
        } else if request.prior_state.is_null() {
            (Operation::Create, &request.planned_state)
        } else {
            (Operation::Update, &request.planned_state)
        };
        let deadline = timeouts::get(state_for_timeout, operation, TIMEOUTS);
        let work = async {
            if request.planned_state.is_null() {
                return self
                    .destroy(&clients, &request.prior_state, &request.planned_private)
                    .await;
            }
            let target = match plan_target(&request.config, Some(clients.subscription_id())) {
                Ok(Some(target)) => target,
                Ok(None) | Err(_) => {
                    return failure(
                        request.prior_state.clone(),
                        request.planned_private.clone(),
                        "Arguments unknown at apply",
                        "Terraform passed unknown arguments to apply; this is a bug in Terraform or the provider.",
                    )
                }
            };
            if request.prior_state.is_null() {
                self.create(&clients, &request.config, &target).await
            } else {
                self.update(&clients, &request, &target).await
            }
        };
        match tokio::time::timeout(deadline, work).await {
            Ok(response) => response,
            Err(_) => failure(
                request.prior_state.clone(),
                request.planned_private.clone(),
                "Timed out",
                &format!(
                    "The operation did not finish within {}; raise `timeouts` and apply again.",
                    humantime::format_duration(deadline)
                ),
            ),
        }
    }

    async fn read(&self, request: ReadRequest) -> ReadResponse {
        let deadline = timeouts::get(&request.current_state, Operation::Read, TIMEOUTS);
        let fallback = ReadResponse {
            new_state: request.current_state.clone(),
            private: request.private.clone(),
            diagnostics: Diagnostics::from_error(
                "Timed out",
                &format!(
                    "Reading the identity took longer than {}; raise `timeouts.read`.",
                    humantime::format_duration(deadline)
                ),
            ),
            ..ReadResponse::default()
        };
        tokio::time::timeout(deadline, self.refresh(request))
            .await
            .unwrap_or(fallback)
    }

    async fn import(&self, request: ImportRequest) -> ImportResponse {
        let mut response = ImportResponse::default();
        let identity_id = match UserAssignedIdentityId::parse(request.id.trim()) {
            Ok(id) => id,
            Err(reason) => {
                response.diagnostics.error(
                    "Invalid import ID",
                    &format!("Import {TYPE_NAME} by the identity's resource ID, like /subscriptions/{{id}}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus. {reason}"),
                );
                return response;
            }
        };
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                response.diagnostics = diagnostics;
                return response;
            }
        };
        let identity = match clients.identities.get(&identity_id).await {
            Ok(Some(identity)) => identity,
            Ok(None) => {
                response.diagnostics.error(
                    "Cannot import a missing identity",
                    &format!("{identity_id} does not exist."),
                );
                return response;
            }
            Err(error) => {
                response
                    .diagnostics
                    .error("Cannot read the identity", &error.to_string());
                return response;
            }
        };
        let resource_group_location = match clients
            .resource_groups
            .get(identity_id.subscription_id(), identity_id.resource_group())
            .await
        {
            Ok(Some(group)) => ids::normalize_location(&group.location).unwrap_or(group.location),
            _ => DEFAULT_RESOURCE_GROUP_LOCATION.to_string(),
        };
        let target = Target {
            location: ids::normalize_location(&identity.location)
                .unwrap_or(identity.location.clone()),
            resource_group_location,
            existing: false,
            lock: true,
            tags: identity.tags.clone(),
            identity: identity_id.clone(),
        };
        let lock_present = lock_exists(&clients, &target).await.unwrap_or(false);
        let skeleton = Value::object([
            ("existing_identity_id", Value::Null),
            ("timeouts", Value::Null),
            (
                "tags",
                if identity.tags.is_empty() {
                    Value::Null
                } else {
                    Value::Map(BTreeMap::new())
                },
            ),
        ]);
        let state = state_value(&skeleton, &target, Some(&identity), lock_present)
            .with("id", Value::String(request.id.trim().to_string()));
        // An imported identity is now ours to destroy; its lock comes off with it.
        let ownership = Ownership {
            created_resource_group: false,
            placed_lock: true,
        };
        response.imported.push(ImportedResource {
            state,
            private: ownership.to_private(),
            identity: None,
        });
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "00000000-0000-0000-0000-000000000001";
    const OTHER_SUB: &str = "11111111-1111-1111-1111-111111111111";

    fn config(fields: &[(&str, Value)]) -> Value {
        let mut all: BTreeMap<String, Value> = schema()
            .block
            .attributes
            .iter()
            .map(|a| (a.name.clone(), Value::Null))
            .collect();
        all.insert("timeouts".into(), Value::Null);
        for (name, value) in fields {
            all.insert(name.to_string(), value.clone());
        }
        Value::Object(all)
    }

    #[test]
    fn defaults_are_the_policys() {
        let target = plan_target(
            &config(&[("location", Value::from("West Europe"))]),
            Some(SUB),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            target.identity.to_string(),
            format!("/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-westeurope")
        );
        assert!(target.lock);
        assert_eq!(target.resource_group_location, "eastus");
        assert_eq!(
            target.lock_name(),
            "CanNotDeleteLock-Built-In-Identity-westeurope"
        );
    }

    #[test]
    fn byo_identity_in_another_subscription_is_not_locked_by_default() {
        let id = format!("/subscriptions/{OTHER_SUB}/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shared");
        let target = plan_target(
            &config(&[
                ("location", Value::from("eastus")),
                ("existing_identity_id", Value::from(id.as_str())),
            ]),
            Some(SUB),
        )
        .unwrap()
        .unwrap();
        assert!(target.existing);
        assert!(
            !target.lock,
            "1.1.0 semantics: no lock outside the VMs' subscription"
        );
        let same = id.replace(OTHER_SUB, SUB);
        let target = plan_target(
            &config(&[
                ("location", Value::from("eastus")),
                ("existing_identity_id", Value::from(same.as_str())),
            ]),
            Some(SUB),
        )
        .unwrap()
        .unwrap();
        assert!(target.lock);
    }

    #[test]
    fn conflicting_and_malformed_arguments_name_the_attribute() {
        let diagnostics = validate_arguments(&config(&[
            ("location", Value::from("mars!")),
            ("existing_identity_id", Value::from("/subscriptions/x")),
            ("name", Value::from("mine")),
        ]));
        let attributes: Vec<String> = diagnostics
            .items
            .iter()
            .filter_map(|d| d.attribute.as_ref())
            .map(|p| format!("{:?}", p.steps[0]))
            .collect();
        for name in ["location", "existing_identity_id", "name"] {
            assert!(
                attributes.iter().any(|a| a.contains(name)),
                "{name} not named: {attributes:?}"
            );
        }
    }

    #[test]
    fn planned_value_knows_the_ids_but_not_the_principal() {
        let config = config(&[("location", Value::from("eastus"))]);
        let target = plan_target(&config, Some(SUB)).unwrap().unwrap();
        let planned = state_value(&config, &target, None, true);
        assert!(planned
            .get("id")
            .as_str()
            .unwrap()
            .ends_with("Built-In-Identity-eastus"));
        assert!(planned
            .get("lock_id")
            .as_str()
            .unwrap()
            .ends_with("/locks/CanNotDeleteLock-Built-In-Identity-eastus"));
        assert!(planned.get("principal_id").is_unknown());
        assert!(planned.get("tags").is_null());
    }

    #[test]
    fn ownership_survives_private_state() {
        let ownership = Ownership {
            created_resource_group: true,
            placed_lock: false,
        };
        assert_eq!(Ownership::from_private(&ownership.to_private()), ownership);
        assert_eq!(Ownership::from_private(b""), Ownership::default());
    }
}
