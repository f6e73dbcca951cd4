//! The model and schema of `mig_builtin_identity`: every attribute named once, arguments
//! apart from the attributes Azure computes; and what the arguments decide ([`Target`],
//! [`plan_target`]), what the state says ([`state_value`]), and what private state records
//! ([`Ownership`]).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use tfplugin::typed::Maybe;
use tfplugin::{
    model, Attribute, AttributePath, Block, Diagnostics, IdentitySchema, Schema, Type, Value,
};

use super::{DEFAULT_RESOURCE_GROUP_LOCATION, TIMEOUTS};
use crate::arguments;
use crate::azure::identities::Identity;
use crate::azure::ids::{self, SubscriptionId, UserAssignedIdentityId};
use crate::resources::identity;
use crate::timeouts::{self, Timeouts};

/// Tags as configured: a value may be unknown while the map is known.
pub(super) type Tags = BTreeMap<String, Maybe<String>>;

/// The resource's configuration, plan or state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Model {
    // Arguments
    pub location: Maybe<String>,
    pub subscription_id: Maybe<String>,
    pub resource_group_name: Maybe<String>,
    pub resource_group_location: Maybe<String>,
    pub name: Maybe<String>,
    pub existing_identity_id: Maybe<String>,
    pub lock: Maybe<bool>,
    pub tags: Maybe<Tags>,
    pub timeouts: Maybe<Timeouts>,
    // Attributes
    pub id: Maybe<String>,
    pub principal_id: Maybe<String>,
    pub client_id: Maybe<String>,
    pub tenant_id: Maybe<String>,
    pub lock_id: Maybe<String>,
    pub resource_group_id: Maybe<String>,
}

impl Model {
    /// Whether every argument a [`Target`] depends on is known.
    fn target_known(&self) -> bool {
        !(self.location.is_unknown()
            || self.subscription_id.is_unknown()
            || self.existing_identity_id.is_unknown()
            || self.name.is_unknown()
            || self.resource_group_name.is_unknown()
            || self.resource_group_location.is_unknown()
            || self.lock.is_unknown()
            || self.tags.is_unknown()
            || self
                .tags
                .known()
                .is_some_and(|tags| tags.values().any(Maybe::is_unknown)))
    }

    /// The arguments that describe an identity this resource creates, meaningless for your
    /// own, with whether each is set.
    pub(super) fn create_only_arguments(&self) -> [(&'static str, bool); 4] {
        [
            ("name", !self.name.is_null()),
            ("resource_group_name", !self.resource_group_name.is_null()),
            (
                "resource_group_location",
                !self.resource_group_location.is_null(),
            ),
            ("tags", !self.tags.is_null()),
        ]
    }
}

/// Known tags as a plain map.
pub(super) fn known_tags(tags: &BTreeMap<String, String>) -> Maybe<Tags> {
    Maybe::Known(
        tags.iter()
            .map(|(k, v)| (k.clone(), Maybe::Known(v.clone())))
            .collect(),
    )
}

pub(super) fn schema() -> Schema {
    let mut attributes = arguments();
    attributes.extend(computed_attributes());
    Schema::new(
        0,
        Block {
            attributes,
            block_types: vec![timeouts::block(TIMEOUTS)],
            description: "One user-assigned managed identity per subscription and region, locked as Azure's built-in policy locks it.".into(),
            ..Block::default()
        },
    )
}

/// What the configuration sets.
fn arguments() -> Vec<Attribute> {
    vec![
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
    ]
}

/// What Azure computes.
fn computed_attributes() -> Vec<Attribute> {
    let computed = |name: &str, description: &str| {
        Attribute::computed(name, Type::String).description(description)
    };
    vec![
        computed("id", "The identity's resource ID.").use_state_for_unknown(),
        computed("principal_id", "Object ID of the identity's service principal.")
            .use_state_for_unknown(),
        computed("client_id", "Client (application) ID of the identity.")
            .use_state_for_unknown(),
        computed("tenant_id", "Tenant of the identity.").use_state_for_unknown(),
        computed("lock_id", "Resource ID of the lock; null when `lock` is false, or when the lock is missing (it could not be placed, or was removed): the next plan places it, unless the principal may not (then it warns and plans no change)."),
        computed("resource_group_id", "Resource ID of the identity's resource group.")
            .use_state_for_unknown(),
    ]
}

pub(super) fn state_type() -> &'static Type {
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

/// A value of [`identity_schema`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct IdentityModel {
    pub subscription_id: Option<String>,
    pub resource_group_name: Option<String>,
    pub name: Option<String>,
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
pub(super) fn identity_of(state: &Model) -> Option<Value> {
    let id = UserAssignedIdentityId::parse(state.id.as_str()?).ok()?;
    identity::known(identity_value(&id))
}

/// The managed identity an identity names; `subscription_id` defaults to `provider`'s.
pub(super) fn identity_id_from(
    value: &Value,
    provider: &str,
) -> Result<UserAssignedIdentityId, String> {
    let named: IdentityModel = model::decode(value).map_err(|d| {
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
// What the arguments decide
// ---------------------------------------------------------------------------------------------

/// What this resource manages, decided from the (known) arguments.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Target {
    pub identity: UserAssignedIdentityId,
    /// Bring-your-own: never created nor deleted here.
    pub existing: bool,
    /// `subscription_id`: the identity's subscription, or for bring-your-own the VMs' one
    /// (the provider's unless configured), which decides the lock's default.
    pub subscription: String,
    pub location: String,
    pub resource_group_location: String,
    pub lock: bool,
    pub tags: BTreeMap<String, String>,
}

impl Target {
    pub fn lock_name(&self) -> String {
        ids::builtin_lock_name(self.identity.name())
    }

    pub fn lock_id(&self) -> String {
        format!(
            "{}/providers/Microsoft.Authorization/locks/{}",
            self.identity,
            self.lock_name()
        )
    }

    pub fn resource_group_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}",
            self.identity.subscription_id(),
            self.identity.resource_group()
        )
    }
}

/// What this resource did that it must undo on destroy, kept in private state.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Ownership {
    /// We created the resource group (it did not exist).
    #[serde(default)]
    pub created_resource_group: bool,
    /// We placed the lock (it did not exist). For an identity we created this is always so.
    #[serde(default)]
    pub placed_lock: bool,
    /// The identity was imported: it existed before Terraform knew it, so it is not ours to
    /// delete (nor is its lock, unless we placed it).
    #[serde(default)]
    pub adopted_identity: bool,
    /// ARM refused to place the lock: plans hold it (no change, one warning) while it would
    /// be refused again ([`super::locks::lock_plan`]). Cleared once the lock is placed or
    /// `lock` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_denied: Option<LockDenial>,
    /// The last refresh was refused (the principal may not read the subscription now): why.
    /// The state is as last recorded, and plans add nothing for it ([`super::access`]).
    /// Cleared by a refresh that reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

/// A lock ARM refused to place, kept in private state: the state's `lock_id` stays null, and
/// this says why, so plans stay clean while the lock would be refused again.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LockDenial {
    /// ARM's answer (code and message), repeated in each plan's warning.
    pub reason: String,
    /// The principal's permissions at the identity when ARM refused
    /// ([`super::locks::permissions_fingerprint`]); `None` when they could not be read.
    #[serde(default)]
    pub permissions: Option<String>,
}

impl Ownership {
    /// Destroy deletes the identity.
    pub(super) fn owns_identity(&self, target: &Target) -> bool {
        !target.existing && !self.adopted_identity
    }

    /// Destroy (or `lock = false`) removes the lock.
    pub(super) fn owns_lock(&self, target: &Target) -> bool {
        self.placed_lock || self.owns_identity(target)
    }

    #[cfg(test)]
    pub(super) fn from_private(bytes: &[u8]) -> Ownership {
        model::private_from_bytes(bytes)
    }

    #[cfg(test)]
    pub(super) fn to_private(&self) -> Vec<u8> {
        model::private_to_bytes(self)
    }
}

/// What the declared validators cannot see: tag names (validators see a map's values) and
/// arguments that conflict with `existing_identity_id`. Unknown values are skipped.
pub(super) fn validate_arguments(config: &Model) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    for name in config.tags.known().into_iter().flat_map(|tags| tags.keys()) {
        if let Err(detail) = arguments::check_tag_name(name) {
            diagnostics.error_at(
                AttributePath::root("tags").key_string(name),
                "Invalid tag name",
                &detail,
            );
        }
    }
    if !config.existing_identity_id.is_null() {
        for (name, set) in config.create_only_arguments() {
            if set {
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
pub(super) fn with_dependent_defaults(
    config: &Model,
    provider_subscription: Option<&str>,
) -> Model {
    let declared = schema()
        .block
        .apply_defaults(&model::encode(config, state_type()));
    let mut out: Model = model::decode(&declared).unwrap_or_else(|_| config.clone());
    let known = |value: Option<String>| value.map_or(Maybe::Unknown, Maybe::Known);
    let subscription = match &config.subscription_id {
        Maybe::Null => known(provider_subscription.map(str::to_string)),
        other => other.clone(),
    };
    out.subscription_id = subscription.clone();
    match &config.existing_identity_id {
        Maybe::Null => {
            let name = config
                .location
                .as_str()
                .and_then(|l| ids::normalize_location(l).ok())
                .map(|l| ids::builtin_identity_name(&l));
            out.name = config.name.clone().or_if_null(known(name));
            out.lock = config.lock.or_if_null(Maybe::Known(true));
        }
        // Your own identity: no group, no name; locked (policy 1.1.0) only in the VMs'
        // subscription.
        Maybe::Known(existing) => {
            let same = match (
                UserAssignedIdentityId::parse(arguments::trim_arm_id(existing)),
                subscription.as_str(),
            ) {
                (Ok(id), Some(subscription)) => {
                    Maybe::Known(id.subscription_id().eq_ignore_ascii_case(subscription))
                }
                _ => Maybe::Unknown,
            };
            out.lock = config.lock.or_if_null(same);
            out.resource_group_name = config.resource_group_name.clone();
            out.resource_group_location = config.resource_group_location.clone();
        }
        Maybe::Unknown => {
            out.resource_group_name = config
                .resource_group_name
                .clone()
                .or_if_null(Maybe::Unknown);
            out.resource_group_location = config
                .resource_group_location
                .clone()
                .or_if_null(Maybe::Unknown);
            out.name = config.name.clone().or_if_null(Maybe::Unknown);
            out.lock = config.lock.or_if_null(Maybe::Unknown);
        }
    }
    out
}

/// The target of arguments with their defaults ([`with_dependent_defaults`]); `None` while
/// anything it depends on is unknown.
pub(super) fn plan_target(arguments: &Model) -> Result<Option<Target>, String> {
    if !arguments.target_known() {
        return Ok(None);
    }
    let location = ids::normalize_location(arguments.location.as_str().unwrap_or_default())?;
    let subscription =
        SubscriptionId::parse_guid(arguments.subscription_id.as_str().unwrap_or_default())?;
    let lock = arguments.lock.known().copied().unwrap_or(true);
    if let Some(existing) = arguments.existing_identity_id.as_str() {
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
    let text = |value: &Maybe<String>| value.as_str().unwrap_or_default().to_string();
    let tags = arguments
        .tags
        .known()
        .map(|tags| {
            tags.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.known()?.clone())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Target {
        identity: UserAssignedIdentityId::new(
            subscription.as_str(),
            &text(&arguments.resource_group_name),
            &text(&arguments.name),
        ),
        existing: false,
        subscription: subscription.as_str().to_string(),
        location,
        resource_group_location: ids::normalize_location(&text(
            &arguments.resource_group_location,
        ))?,
        lock,
        tags,
    }))
}

/// The target recorded in state (all values known there).
pub(super) fn target_from_state(recorded: &Model) -> Option<Target> {
    let identity = UserAssignedIdentityId::parse(recorded.id.as_str()?).ok()?;
    let normalized = |l: &str| ids::normalize_location(l).unwrap_or(l.to_string());
    Some(Target {
        existing: recorded.existing_identity_id.is_known(),
        subscription: recorded
            .subscription_id
            .as_str()
            .unwrap_or(identity.subscription_id())
            .to_string(),
        identity,
        location: recorded
            .location
            .as_str()
            .map(normalized)
            .unwrap_or_default(),
        resource_group_location: recorded
            .resource_group_location
            .as_str()
            .map(normalized)
            .unwrap_or(DEFAULT_RESOURCE_GROUP_LOCATION.to_string()),
        lock: recorded.lock.known().copied().unwrap_or(true),
        tags: recorded
            .tags
            .known()
            .map(|tags| {
                tags.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.known()?.clone())))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------------------------
// What the state says
// ---------------------------------------------------------------------------------------------

/// The resource's value for a target; `identity` fills the server-generated IDs (unknown
/// until created), `lock_present` says whether the lock exists (drift when it should).
/// `configured` holds the arguments as the user wrote them: their spelling is kept
/// (Terraform holds a provider to the configured value of an argument), ARM's spelling is
/// used for every call. The `timeouts` block is kept as configured.
pub(super) fn state_value(
    configured: &Model,
    target: &Target,
    identity: Option<&Identity>,
    lock_present: bool,
) -> Model {
    let generated = |value: Option<&String>| value.cloned().map_or(Maybe::Unknown, Maybe::Known);
    let mut state = Model {
        location: Maybe::Known(
            configured
                .location
                .as_str()
                .unwrap_or(&target.location)
                .to_string(),
        ),
        subscription_id: Maybe::Known(target.subscription.clone()),
        existing_identity_id: configured.existing_identity_id.known().cloned().into(),
        lock: Maybe::Known(target.lock),
        timeouts: configured.timeouts.clone(),
        id: Maybe::Known(target.identity.to_string()),
        principal_id: generated(identity.map(|i| &i.principal_id)),
        client_id: generated(identity.map(|i| &i.client_id)),
        tenant_id: generated(identity.map(|i| &i.tenant_id)),
        lock_id: (target.lock && lock_present)
            .then(|| target.lock_id())
            .into(),
        resource_group_id: Maybe::Known(target.resource_group_id()),
        ..Model::default()
    };
    if !target.existing {
        state.resource_group_name = Maybe::Known(target.identity.resource_group().to_string());
        state.resource_group_location = Maybe::Known(
            configured
                .resource_group_location
                .as_str()
                .unwrap_or(&target.resource_group_location)
                .to_string(),
        );
        state.name = Maybe::Known(target.identity.name().to_string());
        if configured.tags.is_known() || !target.tags.is_empty() {
            state.tags = known_tags(&target.tags);
        }
    }
    state
}

/// The target under the identity's ID as recorded in `prior` when it names the same identity
/// (an import spelled `built-in-identity-rg`): ARM compares names case-insensitively, so a
/// case-only difference is no change.
pub(super) fn as_recorded(target: &Target, prior: &Model) -> Target {
    let recorded = prior
        .id
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
pub(super) fn recorded_value(
    config: &Model,
    prior: &Model,
    kept: &Target,
    identity: Option<&Identity>,
    lock_present: bool,
) -> Model {
    let mut value = state_value(config, kept, identity, lock_present);
    for (field, configured) in [
        (&mut value.subscription_id, &config.subscription_id),
        (&mut value.resource_group_name, &config.resource_group_name),
        (&mut value.name, &config.name),
    ] {
        if configured.is_known() {
            *field = configured.clone();
        }
    }
    if let Some(id) = prior.id.as_str() {
        if id.eq_ignore_ascii_case(&kept.identity.to_string()) {
            value.id = Maybe::Known(id.to_string());
        }
    }
    value
}
