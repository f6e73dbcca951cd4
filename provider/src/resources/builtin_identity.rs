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
//! warning, the state says the lock is missing, and the next plan places it in place, unless
//! placing it would be refused again ([`lock_plan`]: the principal lacks the permission, or
//! ARM refused with the same permissions, recorded in private state): then the plan holds it,
//! with one warning and no change, so no apply fails for it.
//!
//! "Created by us" is ARM's 201 to our PUT; a 200 means the group or identity appeared since
//! we looked, and it is adopted (never deleted), as an import is.
//!
//! Arguments are declared on the schema (`crate::arguments`' rules as validators, the
//! constant defaults, replacement of `name` and `resource_group_name`); what the declarative
//! layer cannot express is planned here, in one place each:
//! - defaults that depend on other arguments ([`with_dependent_defaults`]): `subscription_id`
//!   (the provider's), `name` (from `location`), `lock` (the policy's rule for your own
//!   identity), and no group or name at all for your own identity;
//! - replacement that compares meanings, not text ([`replacements`]): `location` in any
//!   spelling, `existing_identity_id` with or without a trailing `/`, and `subscription_id`,
//!   which replaces nothing for your own identity.
//!
//! Non-computed arguments are planned exactly as configured (`East US` stays `East US`) and
//! normalised where they are used (ARM gets `eastus`).
//!
//! Stops and timeouts: every Azure call runs under a child of the provider's stop signal
//! that the operation's deadline also cancels ([`Halt`]). Nothing new starts once it is
//! cancelled, not even a retry a call waits for in a backoff (the stop reaches the ARM client
//! through [`crate::azure::arm::with_stop`]); a request on the wire is given
//! [`timeouts::IN_FLIGHT_GRACE`] to answer, and when its outcome is still unknown what it
//! touched is read back. The state returned then describes exactly
//! what exists.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::{
    model, ApplyRequest, ApplyResponse, Attribute, AttributePath, Block, Diagnostics,
    IdentitySchema, ImportRequest, ImportResponse, ImportedResource, PlanRequest, PlanResponse,
    ReadRequest, ReadResponse, Resource, Schema, Type, Value,
};

use crate::arguments;
use crate::azure::arm::ArmError;
use crate::azure::authorization::{self, Permission};
use crate::azure::identities::Identity;
use crate::azure::ids::{self, SubscriptionId, UserAssignedIdentityId};
use crate::azure::AzureClients;
use crate::provider_data::ProviderData;
use crate::resources::identity;
use crate::timeouts::{self, Halt, Operation, Step};

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

/// Arguments that describe an identity this resource creates, meaningless for your own.
const CREATE_ONLY_ARGUMENTS: [&str; 4] = [
    "name",
    "resource_group_name",
    "resource_group_location",
    "tags",
];

/// Bound on reading back what exists after a stop.
const READ_BACK: Duration = Duration::from_secs(30);

pub struct BuiltinIdentity {
    data: Arc<ProviderData>,
}

impl BuiltinIdentity {
    pub fn new(data: Arc<ProviderData>) -> Self {
        BuiltinIdentity { data }
    }
}

fn schema() -> Schema {
    let computed = |name: &str, description: &str| {
        Attribute::computed(name, Type::String).description(description)
    };
    Schema::new(
        0,
        Block {
            attributes: vec![
                Attribute::required("location", Type::String)
                    .validator(arguments::region())
                    .description(
                        "The region, as ARM spells it (`eastus`) or as the portal does (`East US`; kept as written, normalised where used). One the subscription does not have is an error at plan. Changing it (other than in spelling) replaces the identity.",
                    ),
                Attribute::optional("subscription_id", Type::String)
                    .optional_computed()
                    .validator(arguments::subscription_id())
                    .description("Where the identity lives, a GUID. Default: the provider's subscription. With `existing_identity_id`, the subscription of the machines, which decides `lock`'s default; changing it then does not replace anything."),
                Attribute::optional("resource_group_name", Type::String)
                    .default_value(ids::BUILTIN_RESOURCE_GROUP)
                    .requires_replace_ignoring_case()
                    .validator(arguments::resource_group_name())
                    .description("Default `Built-In-Identity-RG` (null with `existing_identity_id`). 1 to 90 letters, digits, `_`, `-`, `.`, `(` or `)`, not ending in `.`."),
                Attribute::optional("resource_group_location", Type::String)
                    .default_value(DEFAULT_RESOURCE_GROUP_LOCATION)
                    .validator(arguments::region())
                    .description("Region of the resource group when this resource creates it, in either spelling (kept as written). Default `eastus`, as the policy (null with `existing_identity_id`)."),
                Attribute::optional("name", Type::String)
                    .optional_computed()
                    .requires_replace_ignoring_case()
                    .validator(arguments::identity_name())
                    .description("Default `Built-In-Identity-{location}`. 3 to 128 letters, digits, `-` or `_`, starting with a letter or digit."),
                Attribute::optional("existing_identity_id", Type::String)
                    .validator(arguments::identity_id())
                    .description(
                        "Bring your own identity: adopted and locked, never created or deleted. A trailing `/` is ignored; a query string is an error, and so, at plan, is an identity that does not exist. Conflicts with `name`, `resource_group_name`, `resource_group_location` and `tags`.",
                    ),
                Attribute::optional("lock", Type::Bool).optional_computed().description(
                    "Place the `CanNotDelete` lock. Default as the policy: `true`, except for a bring-your-own identity in another subscription than `subscription_id`.",
                ),
                Attribute::optional("tags", Type::map(Type::String))
                    .validator(arguments::tag_value())
                    .description("Tags of a created identity: names of 1 to 512 characters without `<>%&\\?/`, values of at most 256."),
                computed("id", "The identity's resource ID.").use_state_for_unknown(),
                computed("principal_id", "Object ID of the identity's service principal.")
                    .use_state_for_unknown(),
                computed("client_id", "Client (application) ID of the identity.")
                    .use_state_for_unknown(),
                computed("tenant_id", "Tenant of the identity.").use_state_for_unknown(),
                computed("lock_id", "Resource ID of the lock; null when `lock` is false, or when the lock is missing (it could not be placed, or was removed): the next plan places it, unless the principal may not (then it warns and plans no change)."),
                computed("resource_group_id", "Resource ID of the identity's resource group.")
                    .use_state_for_unknown(),
            ],
            block_types: vec![timeouts::block(TIMEOUTS)],
            description: "One user-assigned managed identity per subscription and region, locked as Azure's built-in policy locks it.".into(),
            ..Block::default()
        },
    )
}

fn state_type() -> &'static Type {
    static TYPE: LazyLock<Type> = LazyLock::new(|| schema().value_type());
    &TYPE
}

// ---------------------------------------------------------------------------------------------
// Resource identity (Terraform 1.12+)
// ---------------------------------------------------------------------------------------------

/// The identity names the managed identity itself, as azurerm's
/// `azurerm_user_assigned_identity` does: its subscription, resource group and name. Every
/// change of these replaces the object, so the identity of an object never changes. For your
/// own identity (`existing_identity_id`) it names that identity; import by identity always
/// imports the policy's mode (use the `existing:` import ID for your own identity).
pub fn identity_schema() -> IdentitySchema {
    IdentitySchema {
        version: 0,
        attributes: vec![
            identity::attribute(
                "subscription_id",
                false,
                "The identity's subscription, a GUID. Default: the provider's subscription.",
            ),
            identity::attribute(
                "resource_group_name",
                true,
                "The identity's resource group (the policy's is `Built-In-Identity-RG`).",
            ),
            identity::attribute(
                "name",
                true,
                "The identity's name (the policy's is `Built-In-Identity-{location}`).",
            ),
        ],
    }
}

/// The identity of a managed identity's ID.
pub fn identity_value(id: &UserAssignedIdentityId) -> Value {
    Value::object([
        ("subscription_id", Value::string(id.subscription_id())),
        ("resource_group_name", Value::string(id.resource_group())),
        ("name", Value::string(id.name())),
    ])
}

/// The identity of an object, from its state's `id` (`None` while unknown).
fn identity_of(state: &Value) -> Option<Value> {
    let id = UserAssignedIdentityId::parse(state.get("id").as_str()?).ok()?;
    identity::known(identity_value(&id))
}

/// The managed identity an identity names; `subscription_id` defaults to `provider`'s.
fn identity_id_from(value: &Value, provider: &str) -> Result<UserAssignedIdentityId, String> {
    #[derive(Deserialize)]
    struct Named {
        subscription_id: Option<String>,
        resource_group_name: Option<String>,
        name: Option<String>,
    }
    let named: Named = model::decode(value).map_err(|d| {
        d.iter()
            .map(|d| d.detail.clone())
            .collect::<Vec<_>>()
            .join(" ")
    })?;
    let subscription = match named.subscription_id.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => SubscriptionId::parse_guid(text)?.as_str().to_string(),
        _ => provider.to_string(),
    };
    let group = named
        .resource_group_name
        .filter(|g| !g.trim().is_empty())
        .ok_or("`resource_group_name` is required")?;
    let name = named
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or("`name` is required")?;
    UserAssignedIdentityId::parse(
        &UserAssignedIdentityId::new(&subscription, group.trim(), name.trim()).to_string(),
    )
}

// ---------------------------------------------------------------------------------------------
// The typed model
// ---------------------------------------------------------------------------------------------

/// The resource's attributes (the `timeouts` block aside), as configuration, plan or state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Model {
    location: Option<String>,
    subscription_id: Option<String>,
    resource_group_name: Option<String>,
    resource_group_location: Option<String>,
    name: Option<String>,
    existing_identity_id: Option<String>,
    lock: Option<bool>,
    tags: Option<BTreeMap<String, String>>,
    id: Option<String>,
    principal_id: Option<String>,
    client_id: Option<String>,
    tenant_id: Option<String>,
    lock_id: Option<String>,
    resource_group_id: Option<String>,
}

impl Model {
    /// What a configuration, state or plan holds; unknown values read as null.
    fn of(value: &Value) -> Model {
        model::decode_lenient(value).unwrap_or_default()
    }
}

/// Arguments a target depends on: while any is unknown, so is the target.
const TARGET_ARGUMENTS: [&str; 8] = [
    "location",
    "subscription_id",
    "existing_identity_id",
    "name",
    "resource_group_name",
    "resource_group_location",
    "tags",
    "lock",
];

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
    /// ARM refused to place the lock: plans hold it (no change, one warning) while it would
    /// be refused again ([`lock_plan`]). Cleared once the lock is placed or `lock` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lock_denied: Option<LockDenial>,
}

/// A lock ARM refused to place, kept in private state: the state's `lock_id` stays null, and
/// this says why, so plans stay clean while the lock would be refused again.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct LockDenial {
    /// ARM's answer (code and message), repeated in each plan's warning.
    reason: String,
    /// The principal's permissions at the identity when ARM refused
    /// ([`permissions_fingerprint`]); `None` when they could not be read.
    #[serde(default)]
    permissions: Option<String>,
}

/// Whether a failed lock write is a refusal that would happen again (a 4xx: no permission,
/// a deny assignment or policy, a conflicting lock), not a transient failure (a 5xx or a
/// connection error after retries, a throttle, a timeout), which a failing apply retries.
fn is_refusal(error: &ArmError) -> bool {
    (400..500).contains(&error.status) && error.status != 408 && error.status != 429
}

/// The principal's permissions at a scope in a form that compares equal exactly when they
/// are the same, whatever the order ARM lists roles and actions in.
fn permissions_fingerprint(permissions: &[Permission]) -> String {
    let normalized = |list: &[String]| {
        let mut actions: Vec<String> = list.iter().map(|a| a.to_ascii_lowercase()).collect();
        actions.sort();
        actions.dedup();
        actions.join(",")
    };
    let mut roles: Vec<String> = permissions
        .iter()
        .map(|p| format!("{}!{}", normalized(&p.actions), normalized(&p.not_actions)))
        .collect();
    roles.sort();
    roles.dedup();
    roles.join(";")
}

/// What a plan does about a lock that is wanted and missing.
#[derive(Debug, Clone, PartialEq)]
enum LockPlan {
    /// Plan placing it: `lock_id` unknown until apply.
    Place,
    /// No change (`lock_id` stays null), and this warning: placing it would be refused.
    Hold(String),
}

/// Decides [`LockPlan`] from the recorded refusal, if any, and the principal's permissions at
/// the identity now (or why they could not be read). Held: the principal lacks
/// `Microsoft.Authorization/locks/write`; or ARM refused although the principal had it (a deny
/// assignment, a policy) and its permissions are the same as then; or ARM refused and the
/// permissions cannot be read. Placed otherwise: nothing was refused, or the permissions
/// changed since (a role granted), so the next plan after the permission appears places it.
fn lock_plan(
    target: &Target,
    denial: Option<&LockDenial>,
    permissions: Result<&[Permission], &str>,
) -> LockPlan {
    let (identity, lock) = (&target.identity, target.lock_name());
    let kept = "Nothing is planned for it and applies succeed without it; the identity is kept.";
    match (permissions, denial) {
        (Ok(permissions), _) if !authorization::allows(permissions, LOCK_PERMISSION) => {
            LockPlan::Hold(format!(
                "{identity} has no lock `{lock}`, and the principal Terraform runs as may not place it: it lacks `{LOCK_PERMISSION}` on the identity (Owner or User Access Administrator grant it; Contributor excludes it). {kept} Grant the permission: the next plan places the lock, in place."
            ))
        }
        (Ok(permissions), Some(denial))
            if denial.permissions.as_deref() == Some(&permissions_fingerprint(permissions)) =>
        {
            LockPlan::Hold(format!(
                "{identity} has no lock `{lock}`: ARM refused to place it although the principal has `{LOCK_PERMISSION}` ({reason}); a deny assignment or a policy may forbid it. {kept} The next plan places it once the principal's permissions at the identity change; to ask again sooner, once the cause is gone, apply with `lock = false`, then set `lock` back to `true`.",
                reason = denial.reason
            ))
        }
        (Ok(_), _) | (Err(_), None) => LockPlan::Place,
        (Err(error), Some(denial)) => LockPlan::Hold(format!(
            "{identity} has no lock `{lock}`: ARM refused to place it ({reason}), and the principal's permissions at the identity cannot be read now ({error}). {kept} The next plan that reads them allowing `{LOCK_PERMISSION}`, changed since the refusal, places it.",
            reason = denial.reason
        )),
    }
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
        model::private_from_bytes(bytes)
    }

    fn to_private(&self) -> Vec<u8> {
        model::private_to_bytes(self)
    }
}

/// What the declared validators cannot see: tag names (validators see a map's values) and
/// arguments that conflict with `existing_identity_id`. Unknown values are skipped.
fn validate_arguments(config: &Value) -> Diagnostics {
    let mut diagnostics = arguments::check_tag_names(config, "tags");
    if !config.get("existing_identity_id").is_null() {
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
    diagnostics
}

/// The configuration with every default applied: the declared ones (from the
/// configuration, never the proposed state: Terraform's proposed state keeps the prior value
/// of an optional+computed argument removed from the configuration), then those that depend
/// on other arguments, which the declarative layer cannot express. A default that depends on
/// an unknown value is unknown; unknown values stay unknown.
fn with_dependent_defaults(config: &Value, provider_subscription: Option<&str>) -> Value {
    let declared = schema().block.apply_defaults(config);
    let mut fields = declared.as_object().cloned().unwrap_or_default();
    let known = |value: Option<String>| value.map_or_else(Value::unknown, Value::String);
    let subscription = match config.get("subscription_id") {
        Value::Null => known(provider_subscription.map(str::to_string)),
        other => other.clone(),
    };
    fields.insert("subscription_id".into(), subscription.clone());
    let mut set_if_null = |name: &str, value: Value| {
        if config.get(name).is_null() {
            fields.insert(name.to_string(), value);
        }
    };
    match config.get("existing_identity_id") {
        Value::Null => {
            let name = config
                .get("location")
                .as_str()
                .and_then(|l| ids::normalize_location(l).ok())
                .map(|l| ids::builtin_identity_name(&l));
            set_if_null("name", known(name));
            set_if_null("lock", Value::Bool(true));
        }
        // Your own identity: no group, no name; locked (policy 1.1.0) only in the VMs'
        // subscription.
        Value::String(existing) => {
            let same = match (
                UserAssignedIdentityId::parse(arguments::trim_arm_id(existing)),
                subscription.as_str(),
            ) {
                (Ok(id), Some(subscription)) => {
                    Value::Bool(id.subscription_id().eq_ignore_ascii_case(subscription))
                }
                _ => Value::unknown(),
            };
            set_if_null("lock", same);
            for name in ["resource_group_name", "resource_group_location"] {
                set_if_null(name, Value::Null);
            }
        }
        _ => {
            for name in [
                "resource_group_name",
                "resource_group_location",
                "name",
                "lock",
            ] {
                set_if_null(name, Value::unknown());
            }
        }
    }
    Value::Object(fields)
}

/// The target of arguments with their defaults ([`with_dependent_defaults`]); `None` while
/// anything it depends on is unknown.
fn plan_target(arguments: &Value) -> Result<Option<Target>, String> {
    if TARGET_ARGUMENTS
        .iter()
        .any(|name| !arguments.get(name).is_fully_known())
    {
        return Ok(None);
    }
    let values: Model = model::decode(arguments).map_err(|diagnostics| {
        diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.summary, d.detail))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let location = ids::normalize_location(values.location.as_deref().unwrap_or_default())?;
    let subscription =
        SubscriptionId::parse_guid(values.subscription_id.as_deref().unwrap_or_default())?;
    let lock = values.lock.unwrap_or(true);
    if let Some(existing) = &values.existing_identity_id {
        return Ok(Some(Target {
            identity: UserAssignedIdentityId::parse(arguments::trim_arm_id(existing))?,
            existing: true,
            subscription: subscription.as_str().to_string(),
            location,
            resource_group_location: DEFAULT_RESOURCE_GROUP_LOCATION.into(),
            lock,
            tags: BTreeMap::new(),
        }));
    }
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    Ok(Some(Target {
        identity: UserAssignedIdentityId::new(
            subscription.as_str(),
            &text(&values.resource_group_name),
            &text(&values.name),
        ),
        existing: false,
        subscription: subscription.as_str().to_string(),
        location,
        resource_group_location: ids::normalize_location(&text(&values.resource_group_location))?,
        lock,
        tags: values.tags.unwrap_or_default(),
    }))
}

/// The resource's value for a target; `identity` fills the server-generated IDs (unknown
/// until created), `lock_present` says whether the lock exists (drift when it should).
/// `configured` holds the arguments as the user wrote them: their spelling is kept
/// (Terraform holds a provider to the configured value of an argument), ARM's spelling is
/// used for every call.
fn state_value(
    configured: &Value,
    target: &Target,
    identity: Option<&Identity>,
    lock_present: bool,
) -> Value {
    let config = Model::of(configured);
    let mut state = Model {
        location: Some(config.location.unwrap_or(target.location.clone())),
        subscription_id: Some(target.subscription.clone()),
        existing_identity_id: config.existing_identity_id,
        lock: Some(target.lock),
        id: Some(target.identity.to_string()),
        principal_id: identity.map(|i| i.principal_id.clone()),
        client_id: identity.map(|i| i.client_id.clone()),
        tenant_id: identity.map(|i| i.tenant_id.clone()),
        lock_id: (target.lock && lock_present).then(|| target.lock_id()),
        resource_group_id: Some(target.resource_group_id()),
        ..Model::default()
    };
    if !target.existing {
        state.resource_group_name = Some(target.identity.resource_group().to_string());
        state.resource_group_location = Some(
            config
                .resource_group_location
                .unwrap_or(target.resource_group_location.clone()),
        );
        state.name = Some(target.identity.name().to_string());
        state.tags =
            (config.tags.is_some() || !target.tags.is_empty()).then(|| target.tags.clone());
    }
    let mut value = model::update(configured, &state, state_type());
    if identity.is_none() {
        for name in ["principal_id", "client_id", "tenant_id"] {
            value = value.with(name, Value::unknown());
        }
    }
    value
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

/// The planned value while some argument is unknown: the arguments with their defaults,
/// everything computed unknown.
fn unknown_computed(arguments: &Value) -> Value {
    let mut fields = arguments.as_object().cloned().unwrap_or_default();
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

/// Replacement the declarative layer cannot judge, because it compares text: `location` in
/// either spelling, `existing_identity_id` with or without a trailing `/` (any case), and
/// `subscription_id`, which for your own identity (before and after) only decides the lock's
/// default. An unknown planned value may differ. (`name` and `resource_group_name` are
/// declared `requires_replace_ignoring_case`.)
fn replacements(prior: &Value, planned: &Value) -> Vec<AttributePath> {
    if prior.is_null() || planned.is_null() {
        return Vec::new();
    }
    let differs = |name: &str, normalize: &dyn Fn(&str) -> String| {
        let (before, after) = (prior.get(name), planned.get(name));
        match (before.as_str(), after.as_str()) {
            (Some(a), Some(b)) => normalize(a) != normalize(b),
            _ => after.is_unknown() || before != after,
        }
    };
    let location = |text: &str| ids::normalize_location(text).unwrap_or(text.to_string());
    let byo = !prior.get("existing_identity_id").is_null()
        && !planned.get("existing_identity_id").is_null();
    let mut out = Vec::new();
    if differs("location", &location) {
        out.push(AttributePath::root("location"));
    }
    if differs("existing_identity_id", &arguments::normalize_arm_id) {
        out.push(AttributePath::root("existing_identity_id"));
    }
    if !byo && differs("subscription_id", &|text: &str| text.to_ascii_lowercase()) {
        out.push(AttributePath::root("subscription_id"));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Stops and deadlines
// ---------------------------------------------------------------------------------------------

/// Reads back after a halted call: not cancelled by the halt, bounded by [`READ_BACK`].
async fn read_back<T, E: std::fmt::Display>(
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(READ_BACK, call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(READ_BACK)
        )),
    }
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

/// A halted create that left nothing behind but, perhaps, an empty group.
fn halted_before_identity(halt: &Halt, target: &Target, created_group: bool) -> ApplyResponse {
    let group = if created_group {
        format!(
            " The resource group {} was created and is left in place (empty).",
            target.resource_group_id()
        )
    } else {
        String::new()
    };
    failure(
        Value::Null,
        Vec::new(),
        halt.summary(),
        &format!(
            "{} {} was not created.{group} Apply again to create it.",
            halt.reason(),
            target.identity
        ),
    )
}

/// Whether our lock is on the identity.
async fn lock_exists(clients: &AzureClients, target: &Target) -> Result<bool, ArmError> {
    clients
        .locks
        .get(&target.identity.to_string(), &target.lock_name())
        .await
        .map(|lock| lock.is_some())
}

async fn place_lock(clients: &AzureClients, target: &Target) -> Result<(), ArmError> {
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
}

async fn remove_lock(clients: &AzureClients, target: &Target) -> Result<(), ArmError> {
    clients
        .locks
        .delete(&target.identity.to_string(), &target.lock_name())
        .await
}

/// Whether the lock is there after a lock write whose outcome is unknown; `None` when that
/// cannot be read either.
async fn lock_read_back(clients: &AzureClients, target: &Target) -> Option<bool> {
    read_back(lock_exists(clients, target)).await.ok()
}

/// Places the lock under `halt`: `Ok(true)` when it is there afterwards, `Ok(false)` when it
/// is not (halted before, or read back missing), `Err` when placing it failed.
async fn place_lock_halted(
    clients: &AzureClients,
    target: &Target,
    halt: &Halt,
) -> Result<bool, ArmError> {
    match halt.run(place_lock(clients, target)).await {
        Step::Done(result) => result.map(|()| true),
        Step::NotSent => Ok(false),
        Step::Unknown => Ok(lock_read_back(clients, target).await.unwrap_or(false)),
    }
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
) -> Result<bool, ArmError> {
    if !clients
        .resource_groups
        .is_empty(subscription, group)
        .await?
    {
        return Ok(false);
    }
    let scope = ids::Scope::parse(&format!(
        "/subscriptions/{subscription}/resourceGroups/{group}"
    ))
    .map_err(ArmError::transport)?;
    Ok(clients.identities.list(&scope).await?.is_empty())
}

/// The principal's permissions at the identity, fingerprinted; `None` when they cannot be read.
async fn permissions_now(clients: &AzureClients, target: &Target, halt: &Halt) -> Option<String> {
    match halt
        .run(
            clients
                .authorization
                .permissions(&target.identity.to_string()),
        )
        .await
    {
        Step::Done(Ok(permissions)) => Some(permissions_fingerprint(&permissions)),
        _ => None,
    }
}

/// The warning of a create or update that has the identity but not its lock.
fn lock_not_placed(target: &Target, error: &str) -> String {
    format!(
        "{identity} exists and is recorded in state, but its lock `{lock}` is missing: {error}\n\nPlacing the lock needs `{LOCK_PERMISSION}` on the identity (Owner or User Access Administrator; Contributor excludes it). Grant it to the principal Terraform runs as: the next plan places the lock, in place. Until then plans show no change and warn. The identity, its principal ID and its role assignments are kept.",
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
        halt: &Halt,
    ) -> ApplyResponse {
        let mut ownership = Ownership::default();
        let mut diagnostics = Diagnostics::default();
        let identity = if target.existing {
            match halt.run(clients.identities.get(&target.identity)).await {
                Step::Done(Ok(Some(identity))) => identity,
                Step::Done(Ok(None)) => {
                    return failure(
                        Value::Null,
                        Vec::new(),
                        "Identity not found",
                        &format!("`existing_identity_id` names {}, which does not exist. Create it first, or leave `existing_identity_id` out to let this resource create the built-in identity.", target.identity),
                    )
                }
                Step::Done(Err(error)) => return failure(Value::Null, Vec::new(), "Cannot read the identity", &error.to_string()),
                Step::NotSent | Step::Unknown => {
                    return failure(
                        Value::Null,
                        Vec::new(),
                        halt.summary(),
                        &format!("{} Nothing was changed: {} was not adopted. Apply again.", halt.reason(), target.identity),
                    )
                }
            }
        } else {
            match halt.run(clients.identities.get(&target.identity)).await {
                Step::Done(Ok(Some(_))) => {
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
                Step::Done(Ok(None)) => {}
                Step::Done(Err(error)) => return failure(Value::Null, Vec::new(), "Cannot read the identity", &error.to_string()),
                Step::NotSent | Step::Unknown => return halted_before_identity(halt, target, false),
            }
            let subscription = target.identity.subscription_id();
            let group = target.identity.resource_group();
            // No destroy of another region's identity may delete the group between our
            // finding it and our identity being in it.
            let group_lock = group_lock(subscription, group);
            let _in_group = group_lock.lock().await;
            match halt
                .run(clients.resource_groups.get(subscription, group))
                .await
            {
                Step::Done(Ok(Some(_))) => {}
                Step::Done(Ok(None)) => {
                    let no_tags = BTreeMap::new();
                    let create = clients.resource_groups.create(
                        subscription,
                        group,
                        &target.resource_group_location,
                        &no_tags,
                    );
                    match halt.run(create).await {
                        // Only ARM's 201 says this PUT created it: one that appeared since our
                        // read (the policy, another workspace) is not ours to delete.
                        Step::Done(Ok((_, created))) => {
                            ownership.created_resource_group = created;
                            if !created {
                                diagnostics.warning(
                                    "Resource group created by someone else",
                                    &format!("{} did not exist when this apply looked, and existed when it created it (ARM answered 200, not 201): someone else created it meanwhile. It is not recorded as created by this resource, so destroy leaves it.", target.resource_group_id()),
                                );
                            }
                        }
                        Step::Done(Err(error)) => {
                            return failure(
                                Value::Null,
                                Vec::new(),
                                "Cannot create the resource group",
                                &error.to_string(),
                            )
                        }
                        Step::NotSent => return halted_before_identity(halt, target, false),
                        // Perhaps created, and empty: nothing of the identity exists yet.
                        Step::Unknown => return halted_before_identity(halt, target, true),
                    }
                }
                Step::Done(Err(error)) => {
                    return failure(
                        Value::Null,
                        Vec::new(),
                        "Cannot read the resource group",
                        &error.to_string(),
                    )
                }
                Step::NotSent | Step::Unknown => {
                    return halted_before_identity(halt, target, false)
                }
            }
            let create =
                clients
                    .identities
                    .create(&target.identity, &target.location, &target.tags);
            match halt.run(create).await {
                Step::Done(Ok((identity, created))) => {
                    if !created {
                        // It appeared between our read and our PUT (the policy during a
                        // migration, another workspace): adopted, as an import would.
                        ownership.adopted_identity = true;
                        diagnostics.warning_at(
                            AttributePath::root("id"),
                            "Identity created by someone else: adopted",
                            &format!("{} did not exist when this apply looked, and existed when it created it (ARM answered 200, not 201): someone else, perhaps Azure Policy, created it meanwhile. It is adopted, as an import would: recorded in state with its principal ID, never deleted by destroy (nor its group). This apply set its tags to the configured ones.", target.identity),
                        );
                    }
                    identity
                }
                Step::Done(Err(error)) => {
                    return failure(
                        Value::Null,
                        ownership.to_private(),
                        "Cannot create the identity",
                        &error.to_string(),
                    );
                }
                Step::NotSent => {
                    return halted_before_identity(halt, target, ownership.created_resource_group)
                }
                Step::Unknown => match read_back(clients.identities.get(&target.identity)).await {
                    Ok(Some(identity)) => identity,
                    Ok(None) => {
                        return halted_before_identity(
                            halt,
                            target,
                            ownership.created_resource_group,
                        )
                    }
                    Err(error) => {
                        // Perhaps created: recorded (and so replaced by the next apply),
                        // never lost.
                        ownership.placed_lock = true;
                        let state = state_value(config, target, None, false)
                            .with("principal_id", Value::Null)
                            .with("client_id", Value::Null)
                            .with("tenant_id", Value::Null);
                        return failure(
                            state,
                            ownership.to_private(),
                            halt.summary(),
                            &format!("{} Whether {} was created is unknown ({error}); it is recorded in state, and the next apply replaces it.", halt.reason(), target.identity),
                        );
                    }
                },
            }
        };
        // From here on the identity exists: never an error (Terraform would taint it and
        // replace it on the next apply). What is missing is in the state and in a warning.
        let mut lock_present = false;
        if target.lock {
            match halt.run(lock_exists(clients, target)).await {
                Step::Done(Ok(true)) => lock_present = true,
                Step::Done(Ok(false)) => match place_lock_halted(clients, target, halt).await {
                    Ok(true) => {
                        lock_present = true;
                        ownership.placed_lock = true;
                    }
                    Ok(false) => diagnostics.warning_at(
                        AttributePath::root("lock_id"),
                        "Identity created without its lock",
                        &format!(
                            "{} {} exists and is recorded in state, but its lock `{}` was not placed. The next plan places it, in place (the identity is kept).",
                            halt.reason(),
                            target.identity,
                            target.lock_name()
                        ),
                    ),
                    Err(error) => {
                        if is_refusal(&error) {
                            ownership.lock_denied = Some(LockDenial {
                                reason: error.to_string(),
                                permissions: permissions_now(clients, target, halt).await,
                            });
                        }
                        diagnostics.warning_at(
                            AttributePath::root("lock_id"),
                            "Identity created without its lock",
                            &lock_not_placed(target, &error.to_string()),
                        )
                    }
                },
                Step::Done(Err(error)) => diagnostics.warning_at(
                    AttributePath::root("lock_id"),
                    "Cannot read the identity's lock",
                    &format!("{error}\n\nThe identity is recorded in state with its lock missing; the next apply places it."),
                ),
                Step::NotSent | Step::Unknown => diagnostics.warning_at(
                    AttributePath::root("lock_id"),
                    "Identity created without its lock",
                    &format!(
                        "{} {} exists and is recorded in state; its lock `{}` was not checked nor placed. The next plan places it, in place (the identity is kept).",
                        halt.reason(),
                        target.identity,
                        target.lock_name()
                    ),
                ),
            }
        }
        if ownership.owns_identity(target) {
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
        halt: &Halt,
    ) -> ApplyResponse {
        let mut ownership = Ownership::from_private(&request.planned_private);
        let prior = target_from_state(&request.prior_state);
        let stopped = |state: Value, what: &str| {
            failure(
                state,
                request.planned_private.clone(),
                halt.summary(),
                &format!("{} {what} Apply again to finish.", halt.reason()),
            )
        };
        let mut identity = None;
        let mut tags_written = true;
        if !target.existing && prior.as_ref().map(|p| &p.tags) != Some(&target.tags) {
            let write = clients.identities.create_or_update(
                &target.identity,
                &target.location,
                &target.tags,
            );
            match halt.run(write).await {
                Step::Done(Ok(updated)) => identity = Some(updated),
                Step::Done(Err(error)) => {
                    return failure(
                        request.prior_state.clone(),
                        request.planned_private.clone(),
                        "Cannot update the identity's tags",
                        &error.to_string(),
                    )
                }
                Step::NotSent => {
                    return stopped(
                        request.prior_state.clone(),
                        "Nothing was changed: the tags were not written.",
                    )
                }
                Step::Unknown => {
                    tags_written = false;
                    match read_back(clients.identities.get(&target.identity)).await {
                        Ok(Some(found)) => identity = Some(found),
                        _ => {
                            return stopped(
                                request.prior_state.clone(),
                                "Whether the tags were written is unknown; the next refresh reads them.",
                            )
                        }
                    }
                }
            }
        }
        let identity = match identity {
            Some(identity) => identity,
            None => match halt.run(clients.identities.get(&target.identity)).await {
                Step::Done(Ok(Some(identity))) => identity,
                Step::Done(Ok(None)) => {
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
                Step::Done(Err(error)) => {
                    return failure(
                        request.prior_state.clone(),
                        request.planned_private.clone(),
                        "Cannot read the identity",
                        &error.to_string(),
                    )
                }
                Step::NotSent | Step::Unknown => {
                    return stopped(request.prior_state.clone(), "Nothing was changed.")
                }
            },
        };
        let had_lock = !request.prior_state.get("lock_id").is_null();
        let mut lock_present = had_lock;
        let mut diagnostics = Diagnostics::default();
        if !tags_written {
            diagnostics.error(
                halt.summary(),
                &format!(
                    "{} The identity was read back after its tags were sent; the state holds what it has.",
                    halt.reason()
                ),
            );
        }
        // The plan decided ([`lock_plan`]): a lock it holds (`lock_id` planned null) is not
        // tried, and the result stays as planned.
        let planned_placing = request.planned_state.get("lock_id").is_unknown();
        if !target.lock {
            ownership.lock_denied = None;
        }
        if target.lock && !had_lock && planned_placing {
            match place_lock_halted(clients, target, halt).await {
                Ok(true) => {
                    lock_present = true;
                    ownership.placed_lock = true;
                    ownership.lock_denied = None;
                }
                Ok(false) => diagnostics.error_at(
                    AttributePath::root("lock_id"),
                    halt.summary(),
                    &format!(
                        "{} The lock `{}` was not placed; the identity is kept. Apply again to place it.",
                        halt.reason(),
                        target.lock_name()
                    ),
                ),
                // Refused: recorded, and a warning; the plans that follow hold the lock
                // instead of failing every apply.
                Err(error) if is_refusal(&error) => {
                    ownership.lock_denied = Some(LockDenial {
                        reason: error.to_string(),
                        permissions: permissions_now(clients, target, halt).await,
                    });
                    diagnostics.warning_at(
                        AttributePath::root("lock_id"),
                        "The identity's lock was refused",
                        &lock_not_placed(target, &error.to_string()),
                    )
                }
                // An update is never tainted: an error keeps the identity and says why.
                Err(error) => diagnostics.error_at(
                    AttributePath::root("lock_id"),
                    "Cannot lock the identity",
                    &lock_not_placed(target, &error.to_string()),
                ),
            }
        } else if !target.lock && had_lock {
            if ownership.owns_lock(target) {
                match halt.run(remove_lock(clients, target)).await {
                    Step::Done(Ok(())) => lock_present = false,
                    Step::Done(Err(error)) => {
                        diagnostics.error("Cannot remove the lock", &error.to_string())
                    }
                    Step::NotSent => diagnostics.error(
                        halt.summary(),
                        &format!("{} The lock was not removed; apply again.", halt.reason()),
                    ),
                    Step::Unknown => {
                        lock_present = lock_read_back(clients, target).await.unwrap_or(true);
                        diagnostics.error(
                            halt.summary(),
                            &format!(
                                "{} The lock's removal was sent; the state says whether it is gone.",
                                halt.reason()
                            ),
                        );
                    }
                }
            } else {
                // Someone else's lock: we stop tracking it but leave it in place.
                lock_present = false;
            }
        }
        let shown = Target {
            lock: target.lock || lock_present,
            // Tags whose write was cut short: what the identity has, read back.
            tags: if target.existing || tags_written {
                target.tags.clone()
            } else {
                identity.tags.clone()
            },
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
        halt: &Halt,
    ) -> ApplyResponse {
        let ownership = Ownership::from_private(private);
        let Some(target) = target_from_state(prior) else {
            return ApplyResponse::default();
        };
        let stopped = |state: Value, what: &str| {
            failure(
                state,
                private.to_vec(),
                halt.summary(),
                &format!("{} {what} Destroy again to finish.", halt.reason()),
            )
        };
        let lock_recorded = !prior.get("lock_id").is_null();
        let mut state = prior.clone();
        if lock_recorded && ownership.owns_lock(&target) {
            match halt.run(remove_lock(clients, &target)).await {
                Step::Done(Ok(())) => state = state.with("lock_id", Value::Null),
                Step::Done(Err(error)) => {
                    return failure(
                        prior.clone(),
                        private.to_vec(),
                        "Cannot remove the lock",
                        &error.to_string(),
                    )
                }
                Step::NotSent => return stopped(state, "Nothing was removed."),
                Step::Unknown => {
                    if lock_read_back(clients, &target).await == Some(false) {
                        state = state.with("lock_id", Value::Null);
                    }
                    return stopped(state, "The lock's removal was sent; the identity is kept.");
                }
            }
        }
        if !ownership.owns_identity(&target) {
            // Your own identity, or one imported (adopted): forgotten, never deleted.
            return ApplyResponse::default();
        }
        match halt.run(clients.identities.delete(&target.identity)).await {
            Step::Done(Ok(())) => {}
            Step::Done(Err(error)) => {
                return failure(
                    state,
                    private.to_vec(),
                    "Cannot delete the identity",
                    &error.to_string(),
                );
            }
            Step::NotSent => return stopped(state, "The identity was not deleted."),
            Step::Unknown => match read_back(clients.identities.get(&target.identity)).await {
                Ok(None) => {}
                _ => {
                    return stopped(
                        state,
                        "The identity's deletion was sent but may not have finished; it is kept in state.",
                    )
                }
            },
        }
        if !ownership.created_resource_group {
            return ApplyResponse::default();
        }
        if halt.is_halted() {
            let mut response = ApplyResponse::default();
            response.diagnostics.warning(
                "Resource group left in place",
                &format!(
                    "{} This resource created {} and would have deleted it once empty.",
                    halt.reason(),
                    target.resource_group_id()
                ),
            );
            return response;
        }
        self.delete_group_if_empty(clients, &target, halt).await
    }

    /// Deletes the group this resource created, only if it is empty at that moment: ARM
    /// deletes everything in a group. Holds the group's lock so no create in this process puts
    /// an identity into it meanwhile, and checks emptiness under that lock, right before.
    async fn delete_group_if_empty(
        &self,
        clients: &AzureClients,
        target: &Target,
        halt: &Halt,
    ) -> ApplyResponse {
        let subscription = target.identity.subscription_id();
        let group = target.identity.resource_group();
        let group_lock = group_lock(subscription, group);
        let _in_group = group_lock.lock().await;
        let mut response = ApplyResponse::default();
        let left = |response: &mut ApplyResponse, why: String| {
            response.diagnostics.warning(
                "Resource group left in place",
                &format!("This resource created {group} but did not delete it: {why}"),
            )
        };
        match halt.run(group_is_empty(clients, subscription, group)).await {
            Step::Done(Ok(true)) => {
                match halt
                    .run(clients.resource_groups.delete(subscription, group))
                    .await
                {
                    Step::Done(Ok(())) => {}
                    Step::Done(Err(error)) => left(&mut response, error.to_string()),
                    Step::NotSent | Step::Unknown => left(&mut response, halt.reason()),
                }
            }
            Step::Done(Ok(false)) => {
                tracing::debug!(group, "resource group not empty; left in place")
            }
            Step::Done(Err(error)) => {
                tracing::warn!(group, %error, "cannot tell whether the resource group is empty; left in place")
            }
            Step::NotSent | Step::Unknown => left(&mut response, halt.reason()),
        }
        response
    }

    /// What Azure has now; halted, the state is kept as it was.
    async fn refresh(&self, request: ReadRequest, halt: &Halt) -> ReadResponse {
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
        let halted = |response: &mut ReadResponse| {
            response.diagnostics.error(
                halt.summary(),
                &format!(
                    "{} Reading the identity did not finish; raise `timeouts.read` if it needs longer.",
                    halt.reason()
                ),
            )
        };
        let identity = match halt.run(clients.identities.get(&target.identity)).await {
            Step::Done(Ok(Some(identity))) => identity,
            Step::Done(Ok(None)) => {
                // Gone: Terraform plans to create it again.
                response.new_state = Value::Null;
                return response;
            }
            Step::Done(Err(error)) => {
                response
                    .diagnostics
                    .error("Cannot read the identity", &error.to_string());
                return response;
            }
            Step::NotSent | Step::Unknown => {
                halted(&mut response);
                return response;
            }
        };
        let lock_present = if target.lock {
            match halt.run(lock_exists(&clients, &target)).await {
                Step::Done(Ok(present)) => present,
                Step::Done(Err(error)) => {
                    response
                        .diagnostics
                        .error("Cannot read the lock", &error.to_string());
                    return response;
                }
                Step::NotSent | Step::Unknown => {
                    halted(&mut response);
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
    let recorded = Model::of(state);
    let identity = UserAssignedIdentityId::parse(recorded.id.as_deref()?).ok()?;
    Some(Target {
        existing: recorded.existing_identity_id.is_some(),
        subscription: recorded
            .subscription_id
            .unwrap_or(identity.subscription_id().to_string()),
        identity,
        location: recorded
            .location
            .as_deref()
            .map(|l| ids::normalize_location(l).unwrap_or(l.to_string()))
            .unwrap_or_default(),
        resource_group_location: recorded
            .resource_group_location
            .as_deref()
            .map(|l| ids::normalize_location(l).unwrap_or(l.to_string()))
            .unwrap_or(DEFAULT_RESOURCE_GROUP_LOCATION.to_string()),
        lock: recorded.lock.unwrap_or(true),
        tags: recorded.tags.unwrap_or_default(),
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

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(identity_schema())
    }

    fn identity_of(&self, state: &Value) -> Option<Value> {
        identity_of(state)
    }

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        validate_arguments(config)
    }

    async fn plan(&self, request: PlanRequest) -> PlanResponse {
        async move {
            let mut response = PlanResponse {
                planned_state: request.proposed_new_state.clone(),
                planned_private: request.prior_private.clone(),
                ..PlanResponse::default()
            };
            if request.proposed_new_state.is_null() {
                return response;
            }
            // Values unknown at validate and known now get the same checks.
            let mut problems = schema().block.validate(&request.config);
            problems.extend(validate_arguments(&request.config));
            if problems.has_errors() {
                response.diagnostics = problems;
                return response;
            }
            let clients = self.data.clients().ok();
            let provider_subscription = clients.as_ref().map(|c| c.subscription_id().to_string());
            let arguments = with_dependent_defaults(&request.config, provider_subscription.as_deref());
            let creating = request.prior_state.is_null();
            let target = match plan_target(&arguments) {
                Ok(Some(target)) => target,
                Ok(None) => {
                    response.planned_state = unknown_computed(&arguments);
                    response.requires_replace =
                        replacements(&request.prior_state, &response.planned_state);
                    return response;
                }
                Err(reason) => {
                    response.diagnostics.error("Invalid arguments", &reason);
                    return response;
                }
            };
            if let Some(clients) = &clients {
                let checks = self.checks_against_azure(clients, &request, &target).await;
                if checks.has_errors() {
                    response.diagnostics = checks;
                    return response;
                }
            }
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
                let replacing = replacements(&request.prior_state, &planned);
                if replacing.is_empty() && prior_id.eq_ignore_ascii_case(&target.identity.to_string()) {
                    // The identity as recorded: a case-only difference is no change.
                    let kept = as_recorded(&target, &request.prior_state);
                    planned = recorded_value(&request.config, &request.prior_state, &kept, None, true);
                    if target.lock && lock_missing {
                        planned = planned.with("lock_id", Value::unknown());
                    }
                    planned = with_prior_identity(planned, &request.prior_state);
                    let held = match &clients {
                        Some(clients) if target.lock && lock_missing => {
                            let ownership = Ownership::from_private(&request.prior_private);
                            let permissions = clients
                                .authorization
                                .permissions(&kept.identity.to_string())
                                .await
                                .map_err(|e| e.to_string());
                            match lock_plan(
                                &kept,
                                ownership.lock_denied.as_ref(),
                                permissions.as_deref().map_err(String::as_str),
                            ) {
                                LockPlan::Hold(detail) => Some(detail),
                                LockPlan::Place => None,
                            }
                        }
                        _ => None,
                    };
                    if let Some(detail) = held {
                        planned = planned.with("lock_id", Value::Null);
                        response.diagnostics.warning_at(
                            AttributePath::root("lock_id"),
                            "The identity's lock is missing",
                            &detail,
                        );
                    } else if target.lock && lock_missing {
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
        .await
    }

    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        async move {
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
            let halt = Halt::new(
                self.data.stop_signal(),
                timeouts::get(state_for_timeout, operation, TIMEOUTS),
            );
            if request.planned_state.is_null() {
                return self
                    .destroy(
                        &clients,
                        &request.prior_state,
                        &request.planned_private,
                        &halt,
                    )
                    .await;
            }
            let arguments = with_dependent_defaults(&request.config, Some(clients.subscription_id()));
            let target = match plan_target(&arguments) {
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
                self.create(&clients, &request.config, &target, &halt).await
            } else {
                let kept = as_recorded(&target, &request.prior_state);
                self.update(&clients, &request, &kept, &halt).await
            }
        }
        .await
    }

    async fn read(&self, request: ReadRequest) -> ReadResponse {
        async move {
            let halt = Halt::new(
                self.data.stop_signal(),
                timeouts::get(&request.current_state, Operation::Read, TIMEOUTS),
            );
            self.refresh(request, &halt).await
        }
        .await
    }

    async fn import(&self, request: ImportRequest) -> ImportResponse {
        let mut response = ImportResponse::default();
        // By identity (`import { to = ..., identity = { ... } }`): the policy's mode, as an
        // ID would name it.
        let id_text = match &request.identity {
            None => request.id.clone(),
            Some(given) => {
                let provider = self
                    .data
                    .clients()
                    .map(|c| c.subscription_id().to_string())
                    .unwrap_or_default();
                match identity_id_from(given, &provider) {
                    Ok(id) => id.to_string(),
                    Err(reason) => {
                        response
                            .diagnostics
                            .error("Invalid import identity", &reason);
                        return response;
                    }
                }
            }
        };
        let what = match parse_import_id(&id_text) {
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
                        .error("Cannot read the identity's lock", &error.to_string());
                    return response;
                }
            }
        } else {
            false
        };
        let mut state = state_value(&skeleton, &target, Some(&identity), lock_present);
        if !target.existing {
            // The ID as given (ARM may spell the group in another case).
            state = state.with("id", Value::String(id_text.trim().to_string()));
        }
        // Terraform did not create it: adopted, never deleted by destroy; its lock, if it has
        // one, is not ours either. A lock the next apply places is.
        let ownership = Ownership {
            created_resource_group: false,
            placed_lock: false,
            adopted_identity: true,
            lock_denied: None,
        };
        response.imported.push(ImportedResource {
            identity: identity_of(&state),
            state,
            private: ownership.to_private(),
        });
        response
    }
}

impl BuiltinIdentity {
    /// Checks only Azure can answer, once the values are known: regions the target's
    /// subscription does not offer (for an identity this resource creates), and your own
    /// identity when it does not exist (on create, or when it changes). When Azure cannot
    /// tell (a principal without the right to read), nothing is refused: apply will tell.
    async fn checks_against_azure(
        &self,
        clients: &AzureClients,
        request: &PlanRequest,
        target: &Target,
    ) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        let subscription = target.identity.subscription_id();
        if target.existing {
            let existing = request
                .config
                .get("existing_identity_id")
                .as_str()
                .unwrap_or_default();
            let before = request.prior_state.get("existing_identity_id").as_str();
            let changed = before.is_none_or(|before| {
                arguments::normalize_arm_id(before) != arguments::normalize_arm_id(existing)
            });
            if changed {
                diagnostics.extend(
                    arguments::check_identity_exists(clients, "existing_identity_id", existing)
                        .await,
                );
            }
            return diagnostics;
        }
        diagnostics.extend(
            arguments::check_regions_exist(
                clients,
                subscription,
                "location",
                std::slice::from_ref(&target.location),
            )
            .await,
        );
        if let Some(group_location) = request.config.get("resource_group_location").as_str() {
            diagnostics.extend(
                arguments::check_regions_exist(
                    clients,
                    subscription,
                    "resource_group_location",
                    &[group_location.to_string()],
                )
                .await,
            );
        }
        diagnostics
    }
}

/// The state an import by ID or identity of `identity` (an identity of the policy's mode,
/// listed by `terraform query`) produces, from what a listing already read: the identity,
/// its group's location and whether its lock exists. No further read.
pub(crate) fn listed_state(identity: &Identity, group_location: &str, lock_present: bool) -> Value {
    let Ok(id) = UserAssignedIdentityId::parse(&identity.id) else {
        return Value::Null;
    };
    let target = Target {
        subscription: id.subscription_id().to_string(),
        identity: id,
        existing: false,
        location: ids::normalize_location(&identity.location).unwrap_or(identity.location.clone()),
        resource_group_location: ids::normalize_location(group_location)
            .unwrap_or(DEFAULT_RESOURCE_GROUP_LOCATION.to_string()),
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
    state_value(&skeleton, &target, Some(identity), lock_present)
        .with("id", Value::string(&identity.id))
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

    fn plan_target_of(
        config: &Value,
        provider_subscription: Option<&str>,
    ) -> Result<Option<Target>, String> {
        plan_target(&with_dependent_defaults(config, provider_subscription))
    }

    #[test]
    fn defaults_are_the_policys() {
        let target = plan_target_of(
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
        let target = plan_target_of(
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
        let target = plan_target_of(
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
        // What the server runs at validate: the declared validators, then the resource's.
        let validate = |config: &Value| {
            let mut diagnostics = schema().block.validate(config);
            diagnostics.extend(validate_arguments(config));
            diagnostics
        };
        let diagnostics = validate(&config(&[
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
    fn arguments_azure_would_refuse_are_refused_by_the_shared_rules() {
        let validate = |fields: &[(&str, Value)]| {
            let config = config(fields);
            let mut diagnostics = schema().block.validate(&config);
            diagnostics.extend(validate_arguments(&config));
            diagnostics
                .items
                .iter()
                .map(|d| (d.attribute.clone(), d.summary.clone()))
                .collect::<Vec<_>>()
        };
        let at = |name: &str| Some(AttributePath::root(name));
        let tags = |name: &str, value: &str| {
            Value::Map(
                [(name.to_string(), Value::from(value))]
                    .into_iter()
                    .collect(),
            )
        };
        let location = ("location", Value::from("eastus"));
        for (fields, attribute, summary) in [
            (
                vec![location.clone(), ("resource_group_name", Value::from(""))],
                at("resource_group_name"),
                "Invalid resource group name",
            ),
            (
                vec![location.clone(), ("resource_group_name", Value::from("a/b"))],
                at("resource_group_name"),
                "Invalid resource group name",
            ),
            (
                vec![location.clone(), ("name", Value::from("has space"))],
                at("name"),
                "Invalid identity name",
            ),
            (
                vec![location.clone(), ("name", Value::from("-lead"))],
                at("name"),
                "Invalid identity name",
            ),
            (
                vec![
                    location.clone(),
                    ("tags", tags("a<b", "x")),
                ],
                Some(AttributePath::root("tags").key_string("a<b")),
                "Invalid tag name",
            ),
            (
                vec![
                    location.clone(),
                    ("tags", tags("k", &"v".repeat(257))),
                ],
                Some(AttributePath::root("tags").key_string("k")),
                "Invalid tag value",
            ),
            (
                vec![
                    location.clone(),
                    ("existing_identity_id", Value::from(format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x?api-version=2023-01-31"))),
                ],
                at("existing_identity_id"),
                "Invalid identity ID",
            ),
            (
                vec![
                    location.clone(),
                    ("timeouts", Value::object([("create", Value::from("0s")), ("read", Value::Null), ("update", Value::Null), ("delete", Value::Null)])),
                ],
                Some(AttributePath::root("timeouts").attribute("create")),
                "Invalid duration",
            ),
        ] {
            let found = validate(&fields);
            assert!(
                found.iter().any(|(a, s)| *a == attribute && s == summary),
                "{fields:?}: {found:?}"
            );
        }
        // A trailing slash is accepted (and trimmed where used).
        let slash = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x/");
        assert!(validate(&[
            location.clone(),
            ("existing_identity_id", Value::from(slash.as_str()))
        ])
        .is_empty());
        let target = plan_target_of(
            &config(&[
                location,
                ("existing_identity_id", Value::from(slash.as_str())),
            ]),
            Some(SUB),
        )
        .unwrap()
        .unwrap();
        assert_eq!(target.identity.to_string(), slash.trim_end_matches('/'));
    }

    #[test]
    fn replacement_compares_meanings_not_spellings() {
        let id = format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x");
        let prior = config(&[
            ("location", Value::from("eastus")),
            ("subscription_id", Value::from(SUB)),
            ("existing_identity_id", Value::from(id.as_str())),
        ]);
        let respelled = prior
            .with("location", Value::from("East US"))
            .with(
                "existing_identity_id",
                Value::from(format!(
                    "{}/",
                    id.to_uppercase().replace("SUBSCRIPTIONS", "subscriptions")
                )),
            )
            .with("subscription_id", Value::from(OTHER_SUB));
        assert!(
            replacements(&prior, &respelled).is_empty(),
            "same region, same identity; the subscription of your own identity replaces nothing"
        );
        let moved = respelled.with("location", Value::from("westeurope"));
        assert_eq!(
            replacements(&prior, &moved),
            vec![AttributePath::root("location")]
        );
        let created = prior.with("existing_identity_id", Value::Null);
        let other_subscription = created.with("subscription_id", Value::from(OTHER_SUB));
        assert_eq!(
            replacements(&created, &other_subscription),
            vec![AttributePath::root("subscription_id")]
        );
        assert_eq!(
            replacements(&created, &created.with("location", Value::unknown())),
            vec![AttributePath::root("location")],
            "an unknown value may differ"
        );
    }

    #[test]
    fn planned_value_knows_the_ids_but_not_the_principal() {
        let config = config(&[("location", Value::from("eastus"))]);
        let target = plan_target_of(&config, Some(SUB)).unwrap().unwrap();
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
            lock_denied: None,
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
        let target = plan_target_of(&config(&[("location", Value::from("eastus"))]), Some(SUB))
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
        let defaulted = with_dependent_defaults(
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
        let configured = with_dependent_defaults(
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
        let byo = with_dependent_defaults(
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
        let unknown = with_dependent_defaults(
            &config(&[
                ("location", Value::from("eastus")),
                ("existing_identity_id", Value::unknown()),
            ]),
            Some(SUB),
        );
        assert!(unknown.get("name").is_unknown());
        assert!(unknown.get("lock").is_unknown());
        assert_eq!(
            plan_target_of(
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

    fn role(actions: &[&str], not_actions: &[&str]) -> Permission {
        Permission {
            actions: actions.iter().map(|a| a.to_string()).collect(),
            not_actions: not_actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn contributor() -> Vec<Permission> {
        vec![role(
            &["*"],
            &[
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
            ],
        )]
    }

    fn eastus() -> Target {
        plan_target_of(&config(&[("location", Value::from("eastus"))]), Some(SUB))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_principal_that_may_not_lock_holds_the_lock_with_a_warning_naming_the_permission() {
        let target = eastus();
        for denial in [
            None,
            Some(LockDenial {
                reason: "AuthorizationFailed".into(),
                permissions: Some(permissions_fingerprint(&contributor())),
            }),
        ] {
            match lock_plan(&target, denial.as_ref(), Ok(&contributor())) {
                LockPlan::Hold(detail) => {
                    assert!(detail.contains(LOCK_PERMISSION), "{detail}");
                    assert!(detail.contains("next plan places the lock"), "{detail}");
                }
                LockPlan::Place => panic!("a Contributor cannot place it"),
            }
        }
        // The permission appears (User Access Administrator next to Contributor): placed.
        let mut granted = contributor();
        granted.push(role(&["Microsoft.Authorization/*"], &[]));
        let denial = LockDenial {
            reason: "AuthorizationFailed".into(),
            permissions: Some(permissions_fingerprint(&contributor())),
        };
        assert_eq!(
            lock_plan(&target, Some(&denial), Ok(&granted)),
            LockPlan::Place
        );
        assert_eq!(lock_plan(&target, None, Ok(&granted)), LockPlan::Place);
    }

    #[test]
    fn a_lock_refused_despite_the_permission_is_held_until_the_permissions_change() {
        let target = eastus();
        let owner = vec![role(&["*"], &[])];
        let denial = LockDenial {
            reason: "RequestDisallowedByPolicy: disallowed (HTTP 403)".into(),
            permissions: Some(permissions_fingerprint(&owner)),
        };
        match lock_plan(&target, Some(&denial), Ok(&owner)) {
            LockPlan::Hold(detail) => {
                assert!(detail.contains("RequestDisallowedByPolicy"), "{detail}");
                assert!(detail.contains("`lock = false`"), "{detail}");
            }
            LockPlan::Place => panic!("the same permissions would be refused again"),
        }
        // Permissions changed since the refusal: asked again.
        let changed = vec![role(&["*"], &[]), role(&["Microsoft.Authorization/*"], &[])];
        assert_eq!(
            lock_plan(&target, Some(&denial), Ok(&changed)),
            LockPlan::Place
        );
        // Refused when the permissions could not be read: asked again once they can be.
        let unread = LockDenial {
            permissions: None,
            ..denial.clone()
        };
        assert_eq!(
            lock_plan(&target, Some(&unread), Ok(&owner)),
            LockPlan::Place
        );
        // Permissions unreadable now: held after a refusal, placed when nothing was refused.
        assert!(matches!(
            lock_plan(&target, Some(&denial), Err("HTTP 500")),
            LockPlan::Hold(detail) if detail.contains("HTTP 500")
        ));
        assert_eq!(lock_plan(&target, None, Err("HTTP 500")), LockPlan::Place);
    }

    #[test]
    fn permissions_fingerprints_ignore_order_and_case() {
        let a = vec![
            role(
                &["*"],
                &[
                    "Microsoft.Authorization/*/Write",
                    "Microsoft.Authorization/*/Delete",
                ],
            ),
            role(&["Microsoft.Compute/*/read"], &[]),
        ];
        let b = vec![
            role(&["microsoft.compute/*/READ"], &[]),
            role(
                &["*"],
                &[
                    "Microsoft.Authorization/*/Delete",
                    "Microsoft.Authorization/*/Write",
                ],
            ),
        ];
        assert_eq!(permissions_fingerprint(&a), permissions_fingerprint(&b));
        assert_ne!(
            permissions_fingerprint(&a),
            permissions_fingerprint(&a[..1])
        );
    }

    #[test]
    fn only_refusals_are_recorded_transient_failures_are_not() {
        let status = |status: u16| ArmError {
            status,
            ..ArmError::transport("x")
        };
        for refused in [400, 403, 404, 409] {
            assert!(is_refusal(&status(refused)), "{refused}");
        }
        for transient in [0, 408, 429, 500, 503] {
            assert!(!is_refusal(&status(transient)), "{transient}");
        }
    }

    #[test]
    fn a_denial_survives_private_state_and_older_private_state_has_none() {
        let ownership = Ownership {
            lock_denied: Some(LockDenial {
                reason: "AuthorizationFailed".into(),
                permissions: Some("*!".into()),
            }),
            ..Ownership::default()
        };
        assert_eq!(Ownership::from_private(&ownership.to_private()), ownership);
        let old = Ownership::from_private(br#"{"created_resource_group":true,"placed_lock":true}"#);
        assert_eq!(old.lock_denied, None);
    }

    #[test]
    fn only_a_201_makes_a_create_ours_a_200_is_adopted() {
        use crate::azure::arm::put_created;
        assert!(put_created(201));
        // 200: it existed (someone created it between our read and our PUT, or a retry of a
        // PUT whose answer was lost); 202: not said. Neither is taken for ours.
        for status in [200, 202] {
            assert!(!put_created(status), "{status}");
        }
        // What create records for an identity its PUT found: adopted, never deleted.
        let target = eastus();
        let found = Ownership {
            adopted_identity: !put_created(200),
            created_resource_group: put_created(200),
            ..Ownership::default()
        };
        assert!(!found.owns_identity(&target));
        assert!(!found.created_resource_group);
        let created = Ownership {
            adopted_identity: !put_created(201),
            ..Ownership::default()
        };
        assert!(created.owns_identity(&target));
    }
}
