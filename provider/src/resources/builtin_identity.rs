//! `mig_builtin_identity`: the identity Azure's built-in policy creates for a subscription
//! and region (`Built-In-Identity-{location}` in `Built-In-Identity-RG`), locked as the
//! policy locks it; or, with `existing_identity_id`, your own identity, adopted and locked.
//!
//! Create refuses to adopt an identity that already exists (import it instead). What this
//! resource created is recorded in private state, so destroy takes back exactly that: our
//! lock, our identity, and the resource group only if we created it and it is empty. An
//! imported identity is adopted: destroy forgets it and never deletes it.
//!
//! Once the identity exists, create never fails (Terraform would taint it and the next apply
//! would replace it, orphaning its role assignments): a lock that cannot be placed is a
//! warning, the state says the lock is missing, and the next plan places it in place.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};
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

/// The permission a lock needs, named in diagnostics.
const LOCK_PERMISSION: &str = "Microsoft.Authorization/locks/write";

/// Arguments whose change means a different identity (for bring-your-own, not
/// `subscription_id`: the identity is `existing_identity_id`; the subscription only decides
/// the lock's default).
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
                text("subscription_id").description("Where the identity lives. Default: the provider's subscription. With `existing_identity_id`, the subscription of the machines, which decides `lock`'s default; changing it then does not replace anything."),
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
                computed("lock_id", "Resource ID of the lock; null when `lock` is false, or when the lock is missing (it could not be placed, or was removed): the next plan places it."),
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
    /// `subscription_id`: the identity's subscription, or for bring-your-own the VMs' one
    /// (the provider's unless configured), which decides the lock's default.
    subscription: String,
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
    /// The identity was imported: it existed before Terraform knew it, so it is not ours to
    /// delete (nor is its lock, unless we placed it).
    #[serde(default)]
    adopted_identity: bool,
}

impl Ownership {
    /// Destroy deletes the identity.
    fn owns_identity(&self, target: &Target) -> bool {
        !target.existing && !self.adopted_identity
    }

    /// Destroy (or `lock = false`) removes the lock.
    fn owns_lock(&self, target: &Target) -> bool {
        self.placed_lock || self.owns_identity(target)
    }

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

/// The configuration with every optional argument it leaves out (null) set to its documented
/// default. Reads the CONFIGURATION, never the proposed state: Terraform's proposed state
/// keeps the prior value of an optional+computed argument removed from the configuration, so a
/// default applied there would never come back. A default that depends on an unknown value is
/// unknown; unknown values stay unknown. One helper, so the declarative layer in proto/ can
/// take it over.
fn with_defaults(config: &Value, provider_subscription: Option<&str>) -> Value {
    let mut fields = config.as_object().cloned().unwrap_or_default();
    let known = |value: Option<String>| value.map_or_else(Value::unknown, Value::String);
    let subscription = match config.get("subscription_id") {
        Value::Null => known(provider_subscription.map(str::to_string)),
        other => other.clone(),
    };
    let existing = config.get("existing_identity_id").clone();
    let mut defaults: Vec<(&str, Value)> = vec![("subscription_id", subscription.clone())];
    match &existing {
        Value::Null => {
            let location = config.get("location").as_str();
            let name = location
                .and_then(|l| ids::normalize_location(l).ok())
                .map(|l| ids::builtin_identity_name(&l));
            defaults.extend([
                (
                    "resource_group_name",
                    Value::string(ids::BUILTIN_RESOURCE_GROUP),
                ),
                (
                    "resource_group_location",
                    Value::string(DEFAULT_RESOURCE_GROUP_LOCATION),
                ),
                ("name", known(name)),
                ("lock", Value::Bool(true)),
            ]);
        }
        // The policy (1.1.0) locks your own identity only in the VMs' subscription.
        Value::String(existing) => {
            let same = match (
                UserAssignedIdentityId::parse(existing),
                subscription.as_str(),
            ) {
                (Ok(id), Some(subscription)) => {
                    Value::Bool(id.subscription_id().eq_ignore_ascii_case(subscription))
                }
                _ => Value::unknown(),
            };
            defaults.push(("lock", same));
        }
        _ => {
            for name in [
                "resource_group_name",
                "resource_group_location",
                "name",
                "lock",
            ] {
                defaults.push((name, Value::unknown()));
            }
        }
    }
    for (name, default) in defaults {
        if fields.get(name).is_none_or(Value::is_null) {
            fields.insert(name.to_string(), default);
        }
    }
    Value::Object(fields)
}

/// The planned value: defaults filled in and the computed IDs derived. Needs the provider's
/// subscription when the configuration does not name one. `None` while anything it depends on
/// is unknown.
fn plan_target(
    config: &Value,
    provider_subscription: Option<&str>,
) -> Result<Option<Target>, String> {
    let Some(location) = config.get("location").as_str() else {
        return Ok(None);
    };
    let location = ids::normalize_location(location)?;
    let values = with_defaults(config, provider_subscription);
    let relevant = [
        "subscription_id",
        "existing_identity_id",
        "name",
        "resource_group_name",
        "resource_group_location",
        "tags",
        "lock",
    ];
    if relevant
        .iter()
        .any(|name| !values.get(name).is_fully_known())
    {
        return Ok(None);
    }
    let text = |name: &str| values.get(name).as_str().unwrap_or_default().to_string();
    let subscription = SubscriptionId::parse_guid(&text("subscription_id"))?;
    let lock = values.get("lock").as_bool().unwrap_or(true);
    if let Some(existing) = values.get("existing_identity_id").as_str() {
        return Ok(Some(Target {
            identity: UserAssignedIdentityId::parse(existing)?,
            existing: true,
            subscription: subscription.as_str().to_string(),
            location,
            resource_group_location: DEFAULT_RESOURCE_GROUP_LOCATION.into(),
            lock,
            tags: BTreeMap::new(),
        }));
    }
    Ok(Some(Target {
        identity: UserAssignedIdentityId::new(
            subscription.as_str(),
            &text("resource_group_name"),
            &text("name"),
        ),
        existing: false,
        subscription: subscription.as_str().to_string(),
        location,
        resource_group_location: ids::normalize_location(&text("resource_group_location"))?,
        lock,
        tags: values.get("tags").as_string_map().unwrap_or_default(),
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
        Value::String(target.subscription.clone()),
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

/// The target under the identity's ID as recorded in `prior` when it names the same identity
/// (an import spelled `built-in-identity-rg`): ARM compares names case-insensitively, so a
/// case-only difference is no change.
fn as_recorded(target: &Target, prior: &Value) -> Target {
    let recorded = prior
        .get("id")
        .as_str()
        .and_then(|id| UserAssignedIdentityId::parse(id).ok());
    match recorded {
        Some(recorded)
            if recorded
                .to_string()
                .eq_ignore_ascii_case(&target.identity.to_string()) =>
        {
            Target {
                subscription: if target.existing {
                    target.subscription.clone()
                } else {
                    recorded.subscription_id().to_string()
                },
                identity: recorded,
                ..target.clone()
            }
        }
        _ => target.clone(),
    }
}

/// [`state_value`] of an existing object under its recorded spelling: its `id` as recorded, and
/// the arguments the configuration sets as configured (Terraform holds a provider to them).
fn recorded_value(
    config: &Value,
    prior: &Value,
    kept: &Target,
    identity: Option<&Identity>,
    lock_present: bool,
) -> Value {
    let mut value = state_value(config, kept, identity, lock_present);
    for name in ["subscription_id", "resource_group_name", "name"] {
        if let Some(text) = config.get(name).as_str() {
            value = value.with(name, Value::string(text));
        }
    }
    match prior.get("id").as_str() {
        Some(id) if id.eq_ignore_ascii_case(&kept.identity.to_string()) => {
            value.with("id", Value::string(id))
        }
        _ => value,
    }
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

/// The planned value while some argument is unknown: the configuration with its defaults
/// (never the proposed state, see [`with_defaults`]), everything computed unknown.
fn unknown_computed(config: &Value, provider_subscription: Option<&str>) -> Value {
    let mut fields = with_defaults(config, provider_subscription)
        .as_object()
        .cloned()
        .unwrap_or_default();
    for name in [
        "id",
        "principal_id",
        "client_id",
        "tenant_id",
        "lock_id",
        "resource_group_id",
    ] {
        fields.insert(name.into(), Value::unknown());
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

/// One in-process lock per subscription and resource group: creating an identity in a group
/// and deleting that group never overlap (Terraform creates one region's identity while it
/// destroys another's in the same apply, and ARM deletes everything in a group).
fn group_lock(subscription: &str, group: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let key = format!(
        "{}/{}",
        subscription.to_ascii_lowercase(),
        group.to_ascii_lowercase()
    );
    let mut locks = LOCKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    locks.entry(key).or_default().clone()
}

/// Whether the group holds nothing: no resource in ARM's list and no identity in the
/// identity provider's own list (which does not lag behind a fresh create as ARM's may).
async fn group_is_empty(
    clients: &AzureClients,
    subscription: &str,
    group: &str,
) -> Result<bool, String> {
    if !clients
        .resource_groups
        .is_empty(subscription, group)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(false);
    }
    let scope = ids::Scope::parse(&format!(
        "/subscriptions/{subscription}/resourceGroups/{group}"
    ))?;
    Ok(clients
        .identities
        .list(&scope)
        .await
        .map_err(|e| e.to_string())?
        .is_empty())
}

/// The warning of a create that made the identity but not its lock.
fn lock_not_placed(target: &Target, error: &str) -> String {
    format!(
        "{identity} exists and is recorded in state, but its lock `{lock}` is missing: {error}\n\nPlacing the lock needs `{LOCK_PERMISSION}` on the identity (Owner or User Access Administrator; Contributor excludes it). Grant it to the principal Terraform runs as and apply again: the plan shows an in-place update that places the lock. The identity, its principal ID and its role assignments are kept.",
        identity = target.identity,
        lock = target.lock_name(),
    )
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
                            "{id} already exists (perhaps Azure Policy created it). To manage it with Terraform, import it:\n  terraform import {TYPE_NAME}.<name> {id}\nor add an `import` block with that ID. An imported identity is adopted: destroy never deletes it.",
                            id = target.identity
                        ),
                    )
                }
                Ok(None) => {}
                Err(error) => return failure(Value::Null, Vec::new(), "Cannot read the identity", &error.to_string()),
            }
            let subscription = target.identity.subscription_id();
            let group = target.identity.resource_group();
            // No destroy of another region's identity may delete the group between our
            // finding it and our identity being in it.
            let group_lock = group_lock(subscription, group);
            let _in_group = group_lock.lock().await;
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
                    return failure(
                        Value::Null,
                        ownership.to_private(),
                        "Cannot create the identity",
                        &error.to_string(),
                    );
                }
            }
        };
        // From here on the identity exists: never an error (Terraform would taint it and
        // replace it on the next apply). What is missing is in the state and in a warning.
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
                    Err(error) => diagnostics.warning_at(
                        AttributePath::root("lock_id"),
                        "Identity created without its lock",
                        &lock_not_placed(target, &error),
                    ),
                },
                Err(error) => diagnostics.warning_at(
                    AttributePath::root("lock_id"),
                    "Cannot read the identity's lock",
                    &format!("{error}\n\nThe identity is recorded in state with its lock missing; the next apply places it."),
                ),
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
                // An update is never tainted: an error keeps the identity and says why.
                Err(error) => diagnostics.error_at(
                    AttributePath::root("lock_id"),
                    "Cannot lock the identity",
                    &lock_not_placed(target, &error),
                ),
            }
        } else if !target.lock && had_lock {
            if ownership.owns_lock(target) {
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
            new_state: recorded_value(
                &request.config,
                &request.prior_state,
                &shown,
                Some(&identity),
                lock_present,
            ),
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
        if lock_recorded && ownership.owns_lock(&target) {
            if let Err(error) = remove_lock(clients, &target).await {
                return failure(
                    prior.clone(),
                    private.to_vec(),
                    "Cannot remove the lock",
                    &error,
                );
            }
        }
        if !ownership.owns_identity(&target) {
            // Your own identity, or one imported (adopted): forgotten, never deleted.
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
            self.delete_group_if_empty(clients, &target).await
        } else {
            ApplyResponse::default()
        }
    }

    /// Deletes the group this resource created, only if it is empty at that moment: ARM
    /// deletes everything in a group. Holds the group's lock so no create in this process puts
    /// an identity into it meanwhile, and checks emptiness under that lock, right before.
    async fn delete_group_if_empty(
        &self,
        clients: &AzureClients,
        target: &Target,
    ) -> ApplyResponse {
        let subscription = target.identity.subscription_id();
        let group = target.identity.resource_group();
        let group_lock = group_lock(subscription, group);
        let _in_group = group_lock.lock().await;
        let mut response = ApplyResponse::default();
        match group_is_empty(clients, subscription, group).await {
            Ok(true) => {
                if let Err(error) = clients.resource_groups.delete(subscription, group).await {
                    response.diagnostics.warning(
                        "Resource group left in place",
                        &format!("This resource created {group} but could not delete it: {error}"),
                    );
                }
            }
            Ok(false) => tracing::debug!(group, "resource group not empty; left in place"),
            Err(error) => {
                tracing::warn!(group, %error, "cannot tell whether the resource group is empty; left in place")
            }
        }
        response
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
    let subscription = state
        .get("subscription_id")
        .as_str()
        .unwrap_or(identity.subscription_id())
        .to_string();
    Some(Target {
        identity,
        existing,
        subscription,
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
                response.planned_state =
                    unknown_computed(&request.config, provider_subscription.as_deref());
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
        if !target.existing {
            // Resources planned after this one in the same run may name this identity before
            // it exists; they find here that it will.
            self.data
                .handover()
                .note_planned_identity(&target.identity.to_string());
        }
        let mut planned = state_value(&request.config, &target, None, true);
        // A lock still to be placed may not be placeable (a principal without the right): its
        // ID is known only once it exists, so apply can honestly report it missing.
        let lock_missing = creating || request.prior_state.get("lock_id").is_null();
        if target.lock && lock_missing {
            planned = planned.with("lock_id", Value::unknown());
        }
        if !creating {
            let prior_id = request.prior_state.get("id").as_str().unwrap_or_default();
            let byo = target.existing && !request.prior_state.get("existing_identity_id").is_null();
            let replacing: Vec<AttributePath> = REPLACING_ARGUMENTS
                .iter()
                .filter(|name| !(byo && **name == "subscription_id"))
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
                // The identity as recorded: a case-only difference is no change.
                let kept = as_recorded(&target, &request.prior_state);
                planned = recorded_value(&request.config, &request.prior_state, &kept, None, true);
                if target.lock && lock_missing {
                    planned = planned.with("lock_id", Value::unknown());
                }
                planned = with_prior_identity(planned, &request.prior_state);
                if target.lock && lock_missing {
                    response.diagnostics.warning_at(
                        AttributePath::root("lock_id"),
                        "The identity's lock is missing",
                        &format!(
                            "{} has no lock `{}`; this apply places it, in place (the identity is kept). Placing it needs `{LOCK_PERMISSION}` on the identity (Owner or User Access Administrator; Contributor excludes it).",
                            target.identity,
                            target.lock_name()
                        ),
                    );
                }
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
                let kept = as_recorded(&target, &request.prior_state);
                self.update(&clients, &request, &kept).await
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
        let what = match parse_import_id(&request.id) {
            Ok(what) => what,
            Err(reason) => {
                response.diagnostics.error(
                    "Invalid import ID",
                    &format!("{reason}\n\n{IMPORT_ID_FORMATS}"),
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
        let identity_id = match &what {
            ImportTarget::Named(id) => id.clone(),
            ImportTarget::Existing { identity, .. } => identity.clone(),
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
        let identity_location =
            ids::normalize_location(&identity.location).unwrap_or(identity.location.clone());
        let (target, skeleton) = match what {
            ImportTarget::Named(id) => {
                let resource_group_location = match clients
                    .resource_groups
                    .get(id.subscription_id(), id.resource_group())
                    .await
                {
                    Ok(Some(group)) => {
                        ids::normalize_location(&group.location).unwrap_or(group.location)
                    }
                    _ => DEFAULT_RESOURCE_GROUP_LOCATION.to_string(),
                };
                let target = Target {
                    subscription: id.subscription_id().to_string(),
                    identity: id,
                    existing: false,
                    location: identity_location,
                    resource_group_location,
                    lock: true,
                    tags: identity.tags.clone(),
                };
                let tags = if identity.tags.is_empty() {
                    Value::Null
                } else {
                    Value::Map(BTreeMap::new())
                };
                let skeleton = Value::object([
                    ("existing_identity_id", Value::Null),
                    ("timeouts", Value::Null),
                    ("tags", tags),
                ]);
                (target, skeleton)
            }
            ImportTarget::Existing {
                id_text,
                identity,
                location,
                subscription,
            } => {
                let subscription =
                    subscription.unwrap_or_else(|| clients.subscription_id().to_string());
                let target = Target {
                    lock: identity
                        .subscription_id()
                        .eq_ignore_ascii_case(&subscription),
                    identity,
                    existing: true,
                    subscription,
                    location: location.unwrap_or(identity_location),
                    resource_group_location: DEFAULT_RESOURCE_GROUP_LOCATION.into(),
                    tags: BTreeMap::new(),
                };
                let skeleton = Value::object([
                    ("existing_identity_id", Value::String(id_text)),
                    ("timeouts", Value::Null),
                    ("tags", Value::Null),
                ]);
                (target, skeleton)
            }
        };
        let lock_present = if target.lock {
            match lock_exists(&clients, &target).await {
                Ok(present) => present,
                Err(error) => {
                    response
                        .diagnostics
                        .error("Cannot read the identity's lock", &error);
                    return response;
                }
            }
        } else {
            false
        };
        let mut state = state_value(&skeleton, &target, Some(&identity), lock_present);
        if !target.existing {
            // The ID as given (ARM may spell the group in another case).
            state = state.with("id", Value::String(request.id.trim().to_string()));
        }
        // Terraform did not create it: adopted, never deleted by destroy; its lock, if it has
        // one, is not ours either. A lock the next apply places is.
        let ownership = Ownership {
            created_resource_group: false,
            placed_lock: false,
            adopted_identity: true,
        };
        response.imported.push(ImportedResource {
            state,
            private: ownership.to_private(),
            identity: None,
        });
        response
    }
}

/// What an import ID names (docs/resources/builtin_identity.md, "Import").
#[derive(Debug, Clone, PartialEq)]
enum ImportTarget {
    /// `{identity ID}`: an identity configured without `existing_identity_id` (the policy's
    /// `Built-In-Identity-{location}`, or `name` and `resource_group_name`).
    Named(UserAssignedIdentityId),
    /// `existing:{identity ID}[?location={region}&subscription_id={guid}]`: your own identity,
    /// configured with `existing_identity_id`.
    Existing {
        id_text: String,
        identity: UserAssignedIdentityId,
        location: Option<String>,
        subscription: Option<String>,
    },
}

const IMPORT_ID_FORMATS: &str = "Import mig_builtin_identity by\n  {identity ID} for an identity configured without `existing_identity_id` (the policy's Built-In-Identity-{location}), or\n  existing:{identity ID}[?location={region}&subscription_id={guid}] for your own identity (`existing_identity_id`); `location` defaults to the identity's region, `subscription_id` to the provider's.\nAn imported identity is adopted: destroy never deletes it.";

fn parse_import_id(text: &str) -> Result<ImportTarget, String> {
    let text = text.trim();
    let Some(rest) = text.strip_prefix("existing:") else {
        return UserAssignedIdentityId::parse(text).map(ImportTarget::Named);
    };
    let (id_text, options) = rest.split_once('?').unwrap_or((rest, ""));
    let identity = UserAssignedIdentityId::parse(id_text)?;
    let (mut location, mut subscription) = (None, None);
    for option in options.split('&').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some(("location", region)) => location = Some(ids::normalize_location(region)?),
            Some(("subscription_id", guid)) => {
                subscription = Some(SubscriptionId::parse_guid(guid)?.as_str().to_string())
            }
            _ => {
                return Err(format!(
                    "Unknown import option `{option}`; the options are `location` and `subscription_id`."
                ))
            }
        }
    }
    Ok(ImportTarget::Existing {
        id_text: id_text.to_string(),
        identity,
        location,
        subscription,
    })
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
            adopted_identity: true,
        };
        assert_eq!(Ownership::from_private(&ownership.to_private()), ownership);
        assert_eq!(Ownership::from_private(b""), Ownership::default());
        // Private state written before adoption was recorded: what we created stays ours.
        let old =
            Ownership::from_private(br#"{"created_resource_group":false,"placed_lock":true}"#);
        assert!(!old.adopted_identity);
    }

    #[test]
    fn an_adopted_identity_and_its_lock_are_not_ours_unless_we_placed_the_lock() {
        let target = plan_target(&config(&[("location", Value::from("eastus"))]), Some(SUB))
            .unwrap()
            .unwrap();
        let adopted = Ownership {
            adopted_identity: true,
            ..Ownership::default()
        };
        assert!(!adopted.owns_identity(&target));
        assert!(!adopted.owns_lock(&target));
        let locked_by_us = Ownership {
            placed_lock: true,
            ..adopted
        };
        assert!(locked_by_us.owns_lock(&target));
        assert!(!locked_by_us.owns_identity(&target));
        assert!(Ownership::default().owns_identity(&target));
    }

    #[test]
    fn defaults_come_from_the_configuration_not_the_proposed_state() {
        let defaulted = with_defaults(
            &config(&[("location", Value::from("West Europe"))]),
            Some(SUB),
        );
        assert_eq!(defaulted.get("subscription_id").as_str(), Some(SUB));
        assert_eq!(
            defaulted.get("resource_group_name").as_str(),
            Some("Built-In-Identity-RG")
        );
        assert_eq!(
            defaulted.get("resource_group_location").as_str(),
            Some("eastus")
        );
        assert_eq!(
            defaulted.get("name").as_str(),
            Some("Built-In-Identity-westeurope")
        );
        assert_eq!(defaulted.get("lock").as_bool(), Some(true));
        // A configured value wins; an unknown one stays unknown, and so do defaults that
        // depend on it.
        let configured = with_defaults(
            &config(&[
                ("location", Value::unknown()),
                ("lock", Value::Bool(false)),
                ("resource_group_location", Value::unknown()),
            ]),
            Some(SUB),
        );
        assert_eq!(configured.get("lock").as_bool(), Some(false));
        assert!(configured.get("resource_group_location").is_unknown());
        assert!(configured.get("name").is_unknown());
        // Bring your own: nothing to name, the lock as the policy decides.
        let id = format!("/subscriptions/{OTHER_SUB}/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shared");
        let byo = with_defaults(
            &config(&[
                ("location", Value::from("eastus")),
                ("existing_identity_id", Value::from(id.as_str())),
            ]),
            Some(SUB),
        );
        assert!(byo.get("name").is_null());
        assert!(byo.get("resource_group_name").is_null());
        assert_eq!(byo.get("lock").as_bool(), Some(false));
        // Unknown whether it is your own: nothing is decided.
        let unknown = with_defaults(
            &config(&[
                ("location", Value::from("eastus")),
                ("existing_identity_id", Value::unknown()),
            ]),
            Some(SUB),
        );
        assert!(unknown.get("name").is_unknown());
        assert!(unknown.get("lock").is_unknown());
        assert_eq!(
            plan_target(
                &config(&[
                    ("location", Value::from("eastus")),
                    ("existing_identity_id", Value::unknown()),
                ]),
                Some(SUB)
            ),
            Ok(None),
            "an unknown `existing_identity_id` is not a policy-named identity"
        );
    }

    #[test]
    fn import_ids_name_the_mode() {
        let id = format!("/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus");
        assert_eq!(
            parse_import_id(&format!(" {id} ")),
            Ok(ImportTarget::Named(
                UserAssignedIdentityId::parse(&id).unwrap()
            ))
        );
        let mine = format!("/subscriptions/{OTHER_SUB}/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/shared");
        assert_eq!(
            parse_import_id(&format!("existing:{mine}")),
            Ok(ImportTarget::Existing {
                id_text: mine.clone(),
                identity: UserAssignedIdentityId::parse(&mine).unwrap(),
                location: None,
                subscription: None,
            })
        );
        assert_eq!(
            parse_import_id(&format!(
                "existing:{mine}?location=West Europe&subscription_id={SUB}"
            )),
            Ok(ImportTarget::Existing {
                id_text: mine.clone(),
                identity: UserAssignedIdentityId::parse(&mine).unwrap(),
                location: Some("westeurope".into()),
                subscription: Some(SUB.into()),
            })
        );
        assert!(parse_import_id(&format!("existing:{mine}?lock=false")).is_err());
        assert!(parse_import_id("existing:/subscriptions/x").is_err());
        assert!(parse_import_id("Built-In-Identity-eastus").is_err());
    }
}
