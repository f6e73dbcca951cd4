//! `mig_estate_assignment`: the built-in policy's own unit. One object covers a management
//! group, a subscription, a resource group, or every subscription the principal can see, and
//! gives each machine the identity of its own subscription and region.
//!
//! The estate is cut into *buckets*, one per subscription and region that holds machines
//! (`{subscription_id}/{region}`). Each bucket is exactly one `mig_identity_assignment` over
//! that subscription (or resource group) and region, planned, applied, refreshed and destroyed
//! by that resource's code: ownership, hand-over, private state, timeouts and Ctrl-C behave as
//! they do there. What this resource adds is that every bucket runs at once inside one
//! Terraform operation, so every subscription's write bucket is busy from the first second
//! whatever `-parallelism` is (ARM paces per subscription; the client paces to it).
//!
//! Buckets come and go with the machines: a region that gains its first machine gets a
//! bucket in the next plan; a bucket that leaves (its subscription left the scope, its region
//! left `locations`, or `identity_ids` no longer names it) is destroyed, which gives back
//! exactly what it attached.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use tfplugin::{
    model, ApplyRequest, ApplyResponse, Attribute, AttributePath, Block, ClientCapabilities,
    Diagnostics, IdentitySchema, ImportRequest, ImportResponse, ImportedResource, PathStep,
    PlanRequest, PlanResponse, ReadRequest, ReadResponse, Resource, Schema, Type, Validator, Value,
};
use tracing::Instrument;

use crate::arguments;
use crate::azure::arm::ArmError;
use crate::azure::compute::MachineKind;
use crate::azure::ids::{self, Scope, SubscriptionId};
use crate::azure::management_groups::{self, SubscriptionInfo};
use crate::azure::AzureClients;
use crate::provider::ProviderData;
use crate::resources::identity;
use crate::resources::identity_assignment::{self as assignment, IdentityAssignment, Written};
use crate::timeouts::{self, Halt, Operation};

pub const TYPE_NAME: &str = "mig_estate_assignment";

/// What `id` says when no scope is given.
const EVERY_VISIBLE_SUBSCRIPTION: &str = "/subscriptions";

/// How old a listing of a subscription's machines may be when the plan looks for regions:
/// the refresh that ran just before in the same process shares it.
const DISCOVERY_MAX_AGE: Duration = Duration::from_secs(60);

pub struct EstateAssignment {
    data: Arc<ProviderData>,
    /// Every bucket is one object of this resource.
    buckets: Arc<IdentityAssignment>,
}

impl EstateAssignment {
    pub fn new(data: Arc<ProviderData>) -> Self {
        EstateAssignment {
            buckets: Arc::new(IdentityAssignment::estate_buckets(data.clone())),
            data,
        }
    }
}

/// Runs each bucket's operation as a task of its own and returns the results in order.
/// Polled together inside the operation's one task, an estate's buckets did all their work
/// (listings decoded, writes built, answers read) on one thread while the others idled: at
/// 100,000 machines the first writes of the last subscriptions waited most of a second.
/// The tasks keep the operation's log span; dropping the operation aborts them.
async fn each_on_its_own_task<T, F>(operations: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    let mut results = Vec::new();
    for (index, operation) in operations.into_iter().enumerate() {
        tasks.spawn(async move { (index, operation.await) }.in_current_span());
        results.push(None);
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            // As if the bucket had run in this task: its panic is this operation's.
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Only an abort cancels a task, and only dropping `tasks` aborts them.
            Err(error) => unreachable!("bucket task cancelled: {error}"),
        }
    }
    results.into_iter().flatten().collect()
}

// ---------------------------------------------------------------------------------------------
// Resource identity (Terraform 1.12+)
// ---------------------------------------------------------------------------------------------

/// The identity is the scope the object was created (or imported) with; `scope` changes in
/// place, and an object keeps the identity it started with (see `crate::resources::identity`).
pub fn identity_schema() -> IdentitySchema {
    IdentitySchema {
        version: 0,
        attributes: vec![identity::attribute(
            "scope",
            true,
            "The management group, subscription or resource group ID the object was created (or imported) with, or `/subscriptions` for every subscription the principal can see.",
        )],
    }
}

fn identity_of(state: &Value) -> Option<Value> {
    identity::known(Value::object([("scope", estate_id(state))]))
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

/// The arguments a bucket takes from the estate as they are (`mig_identity_assignment`'s,
/// less `identity_id` and `scope`, which the estate decides per bucket).
const SHARED_ARGUMENTS: [&str; 8] = [
    "locations",
    "resource_types",
    "skip_single_user_assigned",
    "exclude_ids",
    "exclude_tags",
    "mode",
    "timeouts",
    "adopt",
];

/// The computed attributes of a bucket, as `mig_identity_assignment` names them.
const OUTCOME_ATTRIBUTES: [&str; 4] = [
    "assigned_ids",
    "compliant_ids",
    "skipped",
    "noncompliant_ids",
];

fn check_estate_scope(text: &str) -> Result<(), String> {
    if text.to_ascii_lowercase().starts_with("/providers/") {
        if !text
            .to_ascii_lowercase()
            .starts_with("/providers/microsoft.management/managementgroups/")
        {
            return Err(format!(
                "`{text}` is not a management group ID (/providers/Microsoft.Management/managementGroups/{{name}})."
            ));
        }
        return arguments::check_management_group_id(text);
    }
    arguments::check_scope(text).map_err(|reason| {
        format!("{reason} A management group ID (/providers/Microsoft.Management/managementGroups/{{name}}) is accepted too, or leave `scope` out for every subscription the principal can see.")
    })
}

/// An `identity_ids` key: `{region}` (every subscription) or `{subscription_id}/{region}`.
fn check_identity_key(key: &str) -> Result<(), String> {
    let (subscription, region) = match key.split_once('/') {
        Some((subscription, region)) => (Some(subscription), region),
        None => (None, key),
    };
    if let Some(subscription) = subscription {
        arguments::check_subscription_id(subscription)
            .map_err(|reason| format!("key `{key}`: {reason}"))?;
    }
    arguments::check_region(region).map_err(|reason| {
        format!("key `{key}`: {reason} Keys are `{{region}}` or `{{subscription_id}}/{{region}}`.")
    })
}

fn bucket_type() -> Type {
    Type::Object(BTreeMap::from([
        ("identity_id".to_string(), Type::String),
        ("scope".to_string(), Type::String),
        (
            "assigned_ids".to_string(),
            assignment::sorted_list_of_strings(),
        ),
        (
            "compliant_ids".to_string(),
            assignment::sorted_list_of_strings(),
        ),
        ("skipped".to_string(), Type::Map(Box::new(Type::String))),
        (
            "noncompliant_ids".to_string(),
            assignment::sorted_list_of_strings(),
        ),
    ]))
}

fn schema() -> Schema {
    let mut attributes = vec![
        Attribute::optional("scope", Type::String)
            .description(
                "What the estate covers: a management group (`/providers/Microsoft.Management/managementGroups/{name}`, every subscription anywhere below it), a subscription (`/subscriptions/{id}`) or a resource group. Left out: every subscription the principal can see. A subscription that cannot be planned (`Disabled` or `Deleted`, its machines unreadable, or missing from `GET /subscriptions`) keeps its buckets exactly as recorded and is not written, with a warning. Changing it converges in place: buckets that leave (the configuration leaves their subscription out, or the management group API shows it left the group) give back what they attached.",
            )
            .validator(Validator::string("Invalid scope", check_estate_scope)),
        Attribute::optional("identity_ids", Type::Map(Box::new(Type::String)))
            .description(
                "The identity of each region: keys are `{region}` (every subscription) or `{subscription_id}/{region}` (that one; it wins), values are user-assigned identity IDs. Machines of a subscription and region with no entry are left alone (the plan warns). Left out: the policy's own naming, `Built-In-Identity-{region}` in the machine's subscription's `Built-In-Identity-RG`, which must exist (see `mig_builtin_identity`).",
            )
            .validator(arguments::identity_id()),
    ];
    attributes.extend(
        assignment::arguments()
            .into_iter()
            .filter(|a| SHARED_ARGUMENTS.contains(&a.name.as_str())),
    );
    attributes.push(
        Attribute::computed("id", Type::String)
            .description("The `scope`, or `/subscriptions` when it is left out."),
    );
    attributes.push(
        Attribute::computed("buckets", Type::Map(Box::new(bucket_type()))).description(
            "One entry per subscription and region holding machines, keyed `{subscription_id}/{region}`: the `identity_id` given to its machines, the `scope` it covers, and, as in `mig_identity_assignment`, `assigned_ids` (attached by this resource; only these lose it on destroy), `compliant_ids` (held it from someone else), `skipped` (machine to reason) and `noncompliant_ids` (audit mode).",
        ),
    );
    Schema::new(
        0,
        Block {
            attributes,
            block_types: vec![timeouts::block(assignment::TIMEOUTS)],
            description: "Gives every VM and scale set of an estate (a management group, a subscription, a resource group, or every subscription in view) the identity of its own subscription and region, by the rules of Azure's built-in policy \"Assign Built-In User-Assigned Managed Identity to Virtual Machines\", in one resource: the unit the policy is assigned at. Every subscription's buckets are written at once, at the speed ARM's throttling allows, whatever Terraform's `-parallelism`.".into(),
            ..Block::default()
        },
    )
}

fn validate_arguments(config: &Value) -> Diagnostics {
    let mut diagnostics = schema().block.validate(config);
    if let Some(map) = config.get("identity_ids").as_map() {
        for key in map.keys() {
            if let Err(reason) = check_identity_key(key) {
                diagnostics.error_at(
                    AttributePath::root("identity_ids").key_string(key.clone()),
                    "Invalid identity_ids key",
                    &reason,
                );
            }
        }
    }
    diagnostics.extend(assignment::check_machine_selection(config));
    diagnostics
}

// ---------------------------------------------------------------------------------------------
// The estate: which subscriptions, which buckets, which identity each
// ---------------------------------------------------------------------------------------------

/// What the estate's arguments say, once they are known.
struct Estate {
    scope: Option<String>,
    /// Normalised `identity_ids` keys (`{subscription}/{region}` or `{region}`) to identities;
    /// `None` for the policy's naming.
    identity_ids: Option<BTreeMap<String, String>>,
    locations: Option<BTreeSet<String>>,
    kinds: Vec<MachineKind>,
}

impl Estate {
    /// `None` while an argument it depends on is unknown.
    fn from(resource: &Value) -> Option<Estate> {
        for name in ["scope", "identity_ids", "locations", "resource_types"] {
            if !resource.get(name).is_fully_known() {
                return None;
            }
        }
        let identity_ids = resource.get("identity_ids").as_string_map().map(|map| {
            map.into_iter()
                .map(|(key, id)| (normalize_key(&key), arguments::trim_arm_id(&id).to_string()))
                .collect()
        });
        let locations = resource.get("locations").as_string_list().map(|list| {
            list.iter()
                .filter_map(|l| ids::normalize_location(l).ok())
                .collect()
        });
        let mut kinds = match resource.get("resource_types").as_string_list() {
            Some(list) => list
                .iter()
                .filter_map(|k| arguments::parse_machine_kind(k))
                .collect(),
            None => vec![MachineKind::VirtualMachine, MachineKind::ScaleSet],
        };
        // Sorted as `mig_identity_assignment` sorts them: listings are shared by scope and kinds.
        kinds.sort();
        kinds.dedup();
        Some(Estate {
            scope: resource
                .get("scope")
                .as_str()
                .map(|s| arguments::trim_arm_id(s).to_string()),
            identity_ids,
            locations,
            kinds,
        })
    }

    /// The identity the machines of `subscription` in `region` get, if any.
    fn identity_for(&self, subscription: &str, region: &str) -> Option<String> {
        match &self.identity_ids {
            None => SubscriptionId::parse_guid(subscription)
                .ok()
                .map(|subscription| ids::builtin_identity_id(&subscription, region).to_string()),
            Some(map) => map
                .get(&bucket_key(subscription, region))
                .or_else(|| map.get(region))
                .cloned(),
        }
    }
}

fn normalize_key(key: &str) -> String {
    match key.split_once('/') {
        Some((subscription, region)) => bucket_key(subscription, region),
        None => ids::normalize_location(key).unwrap_or_else(|_| key.to_string()),
    }
}

fn bucket_key(subscription: &str, region: &str) -> String {
    let region = ids::normalize_location(region).unwrap_or_else(|_| region.to_string());
    format!("{}/{region}", subscription.to_ascii_lowercase())
}

fn region_of_key(key: &str) -> &str {
    key.rsplit_once('/').map_or(key, |(_, region)| region)
}

/// The subscription part of a bucket key (`{subscription_id}/{region}`).
fn subscription_of_key(key: &str) -> &str {
    key.rsplit_once('/')
        .map_or(key, |(subscription, _)| subscription)
}

/// How one subscription's buckets fare in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Standing {
    /// Its machines are listed and its buckets planned.
    Planned,
    /// Its buckets keep exactly what they recorded, with no write to it, for this cause.
    Kept(String),
    /// Its buckets are released: the configuration leaves it out, or the management group
    /// API shows it is not below the group.
    Released,
}

/// The standing of a subscription the estate's scope may cover: `found` is what the
/// listing of the scope's subscriptions said of it (`None`: not in it), `confirmed` whether
/// that listing is the management group API's (a group's descendants), which alone can say
/// that a subscription left the scope. `GET /subscriptions` shows only what the principal may
/// read, and a subscription can be missing from one answer: absence there releases nothing.
fn standing(found: Option<&SubscriptionInfo>, confirmed: bool) -> Standing {
    match found {
        Some(subscription) if subscription.refuses_writes() => Standing::Kept(format!(
            "its state is `{}`, in which ARM refuses writes (re-enable it, or leave it out of `scope`)",
            subscription.state.as_deref().unwrap_or_default()
        )),
        Some(_) => Standing::Planned,
        None if confirmed => Standing::Released,
        None => Standing::Kept(
            "it is missing from the subscriptions the principal can see (GET /subscriptions): read rights narrowed, or a gap in ARM's listing (check the principal's roles on it)".to_string(),
        ),
    }
}

/// Whether a failed listing of a subscription's machines means that it cannot be read now
/// (access narrowed, the subscription moved, cancelled or disabled) rather than a passing
/// failure: its buckets are then kept as recorded, not the plan failed.
fn unreadable(error: &ArmError) -> bool {
    matches!(error.status, 401 | 403 | 404 | 409)
}

/// What the estate covers now: the scopes to list and plan, and the subscriptions whose
/// buckets keep what they recorded (with why).
#[derive(Default)]
struct Covered {
    scopes: Vec<Scope>,
    kept: BTreeMap<String, String>,
}

/// The scopes whose machines the estate covers (one per subscription, or the resource
/// group). `recorded` are the subscriptions the state holds buckets of: those neither
/// covered nor confirmed gone are kept.
async fn covered_scopes(
    clients: &AzureClients,
    scope: Option<&str>,
    recorded: &Recorded,
    diagnostics: &mut Diagnostics,
) -> Option<Covered> {
    let (found, confirmed) = match scope {
        Some(text) if text.to_ascii_lowercase().starts_with("/subscriptions/") => {
            let scope = match Scope::parse(text) {
                Ok(scope) => scope,
                Err(reason) => {
                    diagnostics.error_at(AttributePath::root("scope"), "Invalid scope", &reason);
                    return None;
                }
            };
            // The configuration names it: only its state can keep it from being planned
            // (not known when it cannot be read: its listing says).
            let subscription = scope.subscription_id().to_ascii_lowercase();
            let state = clients.management_groups.subscription(&subscription).await;
            let mut covered = Covered::default();
            match state {
                Ok(Some(info)) if info.refuses_writes() => {
                    if let Standing::Kept(cause) = standing(Some(&info), true) {
                        covered.kept.insert(subscription, cause);
                    }
                }
                _ => covered.scopes.push(scope),
            }
            return Some(covered);
        }
        Some(group) => (
            clients
                .management_groups
                .subscriptions_under(management_groups::group_name(group))
                .await,
            true,
        ),
        None => (
            clients.management_groups.visible_subscriptions().await,
            false,
        ),
    };
    let subscriptions = match found {
        Ok(subscriptions) => subscriptions,
        Err(error) => {
            diagnostics.error_at(
                AttributePath::root("scope"),
                "Cannot list the subscriptions of the estate",
                &error.to_string(),
            );
            return None;
        }
    };
    let mut covered = Covered::default();
    for subscription in &subscriptions {
        match standing(Some(subscription), confirmed) {
            Standing::Planned => covered
                .scopes
                .push(Scope::subscription(&subscription.subscription_id)),
            Standing::Kept(cause) => {
                covered
                    .kept
                    .insert(subscription.subscription_id.clone(), cause);
            }
            Standing::Released => {}
        }
    }
    for subscription in recorded.keys() {
        if subscriptions
            .iter()
            .any(|s| s.subscription_id.eq_ignore_ascii_case(subscription))
        {
            continue;
        }
        if let Standing::Kept(cause) = standing(None, confirmed) {
            covered.kept.insert(subscription.clone(), cause);
        }
    }
    Some(covered)
}

/// The warning for subscriptions whose buckets keep what they recorded; `None` when there are
/// none.
fn kept_warning(kept: &BTreeMap<String, String>, recorded: &Recorded) -> Option<String> {
    if kept.is_empty() {
        return None;
    }
    let lines: Vec<String> = kept
        .iter()
        .map(|(subscription, cause)| {
            let buckets = if recorded.contains_key(subscription) {
                "its buckets keep what they recorded"
            } else {
                "it has no bucket yet"
            };
            format!("{subscription}: {cause}; {buckets}")
        })
        .collect();
    Some(format!(
        "These subscriptions are not planned this time, and nothing is written to them: {}. The rest of the estate is planned as usual, and the next plan picks them up once they can be read and written again. A bucket is released only when the configuration leaves its subscription out, or the management group API shows that it left the group of `scope`.",
        lines.join("; ")
    ))
}

/// An error at `locations` for each region that no subscription of the estate has (a typo
/// would otherwise match no machine, silently).
async fn check_regions_exist(
    clients: &AzureClients,
    scopes: &[Scope],
    locations: &BTreeSet<String>,
) -> Diagnostics {
    let subscriptions: BTreeSet<String> = scopes
        .iter()
        .map(|scope| scope.subscription_id().to_ascii_lowercase())
        .collect();
    let mut known = BTreeSet::new();
    for regions in join_all(
        subscriptions
            .iter()
            .map(|s| clients.subscriptions.regions(s)),
    )
    .await
    {
        match regions {
            Ok(regions) => known.extend(regions.iter().cloned()),
            // Not checkable: the regions are taken as given.
            Err(error) => {
                tracing::debug!(%error, "cannot list a subscription's regions; not checking them");
                return Diagnostics::default();
            }
        }
    }
    let mut diagnostics = Diagnostics::default();
    for region in locations.difference(&known) {
        diagnostics.error_at(
            AttributePath::root("locations"),
            "Unknown region",
            &format!(
                "No subscription of the estate has a region `{region}`. Regions they have: {}.",
                known.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
    }
    diagnostics
}

/// One bucket to plan: where, and with which identity.
struct Wanted {
    scope: Scope,
    identity_id: String,
}

/// What discovery found: the buckets the machines call for, and the subscriptions whose
/// buckets keep what they recorded (subscription to cause).
struct Discovery {
    wanted: BTreeMap<String, Wanted>,
    kept: BTreeMap<String, String>,
}

/// The subscriptions (lower case) the state holds buckets of, each with the scopes its
/// buckets cover.
type Recorded = BTreeMap<String, BTreeSet<String>>;

fn recorded_of<'a>(buckets: impl IntoIterator<Item = (&'a String, &'a Value)>) -> Recorded {
    let mut recorded = Recorded::new();
    for (key, bucket) in buckets {
        let scopes = recorded
            .entry(subscription_of_key(key).to_ascii_lowercase())
            .or_default();
        if let Some(scope) = bucket.get("scope").as_str() {
            scopes.insert(scope.to_string());
        }
    }
    recorded
}

/// The buckets the machines call for now: every subscription and region (within
/// `locations`) holding a machine of the estate's kinds, with its identity. Subscriptions and
/// regions without an identity in `identity_ids` are reported in `diagnostics`, and so are
/// subscriptions that cannot be planned now (kept): `recorded` are those the state holds
/// buckets of.
async fn wanted_buckets(
    clients: &AzureClients,
    estate: &Estate,
    recorded: &Recorded,
    check_locations: bool,
    diagnostics: &mut Diagnostics,
) -> Option<Discovery> {
    let Covered { scopes, mut kept } =
        covered_scopes(clients, estate.scope.as_deref(), recorded, diagnostics).await?;
    if check_locations {
        if let Some(locations) = &estate.locations {
            diagnostics.extend(check_regions_exist(clients, &scopes, locations).await);
            if diagnostics.has_errors() {
                return None;
            }
        }
    }
    // The buckets that leave give back what they attached, which needs their machines: a
    // subscription that left but cannot be read is kept, not left to fail every apply.
    let leaving: Vec<Scope> = recorded
        .iter()
        .filter(|(subscription, _)| {
            !kept.contains_key(*subscription)
                && !scopes
                    .iter()
                    .any(|scope| scope.subscription_id().eq_ignore_ascii_case(subscription))
        })
        .flat_map(|(_, scopes)| scopes.iter().filter_map(|scope| Scope::parse(scope).ok()))
        .collect();
    let now = tokio::time::Instant::now();
    let not_before = now.checked_sub(DISCOVERY_MAX_AGE).unwrap_or(now);
    let listings = join_all(
        scopes
            .iter()
            .map(|scope| (scope, false))
            .chain(leaving.iter().map(|scope| (scope, true)))
            .map(|(scope, leaves)| async move {
                // Where the machines are does not change with our writes: the listing as ARM
                // gave it.
                let listing = clients
                    .compute
                    .shared_listing(scope, &estate.kinds, not_before)
                    .await
                    .map(|(machines, _)| machines);
                (scope, leaves, listing)
            }),
    )
    .await;
    let mut wanted = BTreeMap::new();
    let mut without_identity = Vec::new();
    for (scope, leaves, listing) in listings {
        let machines = match listing {
            Ok(_) if leaves => continue,
            Ok(machines) => machines,
            Err(error) if unreadable(&error) && leaves => {
                tracing::warn!(%scope, %error, "a subscription that left cannot be read; its buckets are kept");
                kept.insert(
                    scope.subscription_id().to_ascii_lowercase(),
                    format!("it left the scope, but its machines cannot be listed to give back what its buckets attached ({scope}: {error}; give the principal read access to it)"),
                );
                continue;
            }
            Err(error) if unreadable(&error) => {
                tracing::warn!(%scope, %error, "cannot list a subscription's machines; its buckets are kept");
                kept.insert(
                    scope.subscription_id().to_ascii_lowercase(),
                    format!("its machines cannot be listed ({scope}: {error}; give the principal read access to it, or leave it out of `scope`)"),
                );
                continue;
            }
            Err(error) => {
                diagnostics.error_at(
                    AttributePath::root("scope"),
                    "Cannot list the machines of the estate",
                    &format!("{scope}: {error}"),
                );
                return None;
            }
        };
        let regions: BTreeSet<std::borrow::Cow<str>> = machines
            .iter()
            .filter_map(|m| ids::normalized_location(&m.location))
            .filter(|region| {
                estate
                    .locations
                    .as_ref()
                    .is_none_or(|l| l.contains(region.as_ref()))
            })
            .collect();
        let subscription = scope.subscription_id().to_ascii_lowercase();
        for region in regions {
            let key = bucket_key(&subscription, &region);
            match estate.identity_for(&subscription, &region) {
                Some(identity_id) => {
                    wanted.insert(
                        key,
                        Wanted {
                            scope: scope.clone(),
                            identity_id,
                        },
                    );
                }
                None => without_identity.push(key),
            }
        }
    }
    if !without_identity.is_empty() {
        diagnostics.warning_at(
            AttributePath::root("identity_ids"),
            "Machines with no identity named for their region",
            &format!(
                "`identity_ids` names no identity for these subscriptions and regions, so their machines are left alone: {}. Add `{{region}}` or `{{subscription_id}}/{{region}}` keys for them.",
                without_identity.join(", ")
            ),
        );
    }
    if let Some(detail) = kept_warning(&kept, recorded) {
        diagnostics.warning_at(
            AttributePath::root("scope"),
            "Subscriptions kept as recorded",
            &detail,
        );
    }
    Some(Discovery { wanted, kept })
}

// ---------------------------------------------------------------------------------------------
// Buckets as `mig_identity_assignment` objects
// ---------------------------------------------------------------------------------------------

/// A bucket's `mig_identity_assignment` arguments: the estate's shared ones, its scope, its
/// region and its identity.
fn bucket_arguments(estate: &Value, scope: &str, region: &str, identity_id: Value) -> Value {
    let mut fields = BTreeMap::from([
        ("identity_id".to_string(), identity_id),
        ("scope".to_string(), Value::string(scope)),
    ]);
    for name in SHARED_ARGUMENTS {
        fields.insert(name.to_string(), estate.get(name).clone());
    }
    fields.insert("locations".to_string(), Value::string_set([region]));
    Value::Object(fields)
}

/// A bucket of the estate's state (or plan) as the `mig_identity_assignment` object it is.
/// The bucket's machine lists move into the object: an estate's lists hold up to every
/// machine it covers (100,000 and more), and each copy costs as much memory as the state
/// file.
fn bucket_object(estate: &Value, key: &str, mut bucket: Value) -> Value {
    let scope = bucket.get("scope").as_str().unwrap_or_default().to_string();
    let identity = bucket.take("identity_id");
    let id = match identity.as_str() {
        Some(identity) => Value::string(assignment::resource_id(&scope, identity)),
        None => Value::unknown(),
    };
    let mut object = bucket_arguments(estate, &scope, region_of_key(key), identity);
    if let Value::Object(fields) = &mut object {
        fields.insert("id".to_string(), id);
        for name in OUTCOME_ATTRIBUTES {
            fields.insert(name.to_string(), bucket.take(name));
        }
    }
    object
}

/// The estate's view of a `mig_identity_assignment` object (its lists move, as above).
fn bucket_of(mut object: Value) -> Value {
    let fields = ["identity_id", "scope"]
        .iter()
        .chain(OUTCOME_ATTRIBUTES.iter())
        .map(|name| (name.to_string(), object.take(name)))
        .collect();
    Value::Object(fields)
}

/// What Terraform's config holds for a bucket object: its arguments, computed values null.
fn config_of(object: &Value) -> Value {
    match object.as_object() {
        Some(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| {
                    let computed = name == "id" || OUTCOME_ATTRIBUTES.contains(&name.as_str());
                    let value = if computed { Value::Null } else { value.clone() };
                    (name.clone(), value)
                })
                .collect(),
        ),
        None => Value::Null,
    }
}

/// Moves the buckets out of the estate's state (or plan), which keeps its arguments.
fn take_buckets(resource: &mut Value) -> BTreeMap<String, Value> {
    match resource.take("buckets") {
        Value::Map(buckets) => buckets,
        _ => BTreeMap::new(),
    }
}

/// Moves out of `buckets` those of the `kept` subscriptions.
fn take_kept(
    buckets: &mut BTreeMap<String, Value>,
    kept: &BTreeMap<String, String>,
) -> BTreeMap<String, Value> {
    let keys: Vec<String> = buckets
        .keys()
        .filter(|key| kept.contains_key(&subscription_of_key(key).to_ascii_lowercase()))
        .cloned()
        .collect();
    keys.into_iter()
        .filter_map(|key| buckets.remove(&key).map(|bucket| (key, bucket)))
        .collect()
}

fn estate_id(resource: &Value) -> Value {
    match resource.get("scope") {
        Value::String(scope) => Value::string(arguments::trim_arm_id(scope)),
        Value::Null => Value::string(EVERY_VISIBLE_SUBSCRIPTION),
        _ => Value::unknown(),
    }
}

/// Each bucket's private state (`mig_identity_assignment`'s), by bucket key.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Private {
    #[serde(flatten)]
    buckets: BTreeMap<String, serde_json::Value>,
    /// Set in a plan's private state that Terraform keeps for the plan it makes during apply
    /// (1.16+): the buckets here are every bucket that plan showed, even when there is none.
    /// Without it, a plan that showed no bucket would hand back nothing, as older Terraform
    /// does.
    #[serde(
        rename = "#every_bucket_shown",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    every_bucket_shown: bool,
    /// Set in a plan's private state: the buckets whose subscription cannot be planned now
    /// (unreadable, read-only, or missing from a listing). Apply hands them back exactly as
    /// recorded, with no call to Azure.
    #[serde(rename = "#kept", default, skip_serializing_if = "BTreeSet::is_empty")]
    kept: BTreeSet<String>,
}

impl Private {
    fn from_bytes(bytes: &[u8]) -> Private {
        model::private_from_bytes(bytes)
    }

    fn of(&self, key: &str) -> Vec<u8> {
        self.buckets
            .get(key)
            .map(|json| serde_json::to_vec(json).expect("private state serializes"))
            .unwrap_or_default()
    }

    fn set(&mut self, key: &str, bytes: &[u8]) {
        if let Ok(json) = serde_json::from_slice(bytes) {
            self.buckets.insert(key.to_string(), json);
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        model::private_to_bytes(self)
    }
}

/// A bucket's diagnostics as the estate's: the bucket named in the summary, `identity_id`
/// pointing at `identity_ids` (the other arguments have the same names in both).
fn bucket_diagnostics(key: &str, diagnostics: Diagnostics) -> Diagnostics {
    let mut out = diagnostics;
    for item in &mut out.items {
        item.summary = format!("{key}: {}", item.summary);
        if let Some(path) = &mut item.attribute {
            if path.steps.first() == Some(&PathStep::Attribute("identity_id".into())) {
                *path = AttributePath::root("identity_ids");
                item.detail.push_str(" Or name this subscription and region's identity in `identity_ids` (`{region}` or `{subscription_id}/{region}` keys).");
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// CRUD
// ---------------------------------------------------------------------------------------------

/// One subscription's buckets to apply, and what their writes leave to confirm.
#[derive(Default)]
struct SubscriptionWork {
    buckets: Vec<BucketApply>,
    later: Arc<Mutex<Vec<Written>>>,
}

type BucketApply =
    std::pin::Pin<Box<dyn std::future::Future<Output = (String, ApplyResponse)> + Send>>;

/// What planning the buckets produced.
struct PlannedBuckets {
    buckets: BTreeMap<String, Value>,
    private: Private,
    diagnostics: Diagnostics,
}

impl EstateAssignment {
    /// Plans every bucket `planned` (the estate's arguments) calls for, against `prior` (its
    /// arguments) and `prior_buckets` (moved out of it). `first_plan` is what the first plan
    /// of this change answered, when Terraform (1.16+) hands it to the plan made during
    /// apply: each bucket gets its own part.
    #[allow(clippy::too_many_arguments)]
    async fn plan_buckets(
        &self,
        clients: &AzureClients,
        planned: &Value,
        prior: &Value,
        mut prior_buckets: BTreeMap<String, Value>,
        prior_private: &Private,
        first_plan: Option<&Private>,
        client_capabilities: &ClientCapabilities,
    ) -> Option<PlannedBuckets> {
        let estate = Estate::from(planned)?;
        let mut diagnostics = Diagnostics::default();
        let locations_changed = prior.get("locations") != planned.get("locations");
        let recorded = recorded_of(&prior_buckets);
        let Some(Discovery { mut wanted, kept }) = wanted_buckets(
            clients,
            &estate,
            &recorded,
            locations_changed,
            &mut diagnostics,
        )
        .await
        else {
            return Some(PlannedBuckets {
                buckets: BTreeMap::new(),
                private: Private::default(),
                diagnostics,
            });
        };
        // The buckets of subscriptions that cannot be planned now stay exactly as recorded.
        let kept_buckets = take_kept(&mut prior_buckets, &kept);
        if let Some(first_plan) = first_plan {
            // Planned again during apply (Terraform 1.16+): a bucket the first plan did not
            // show (a region that got its first machine since) waits for the next plan, as
            // each bucket's new machines do.
            wanted.retain(|key, _| first_plan.buckets.contains_key(key));
        }
        self.note_existing_identities(clients, &wanted, &prior_buckets)
            .await;
        let plans = each_on_its_own_task(wanted.iter().map(|(key, wanted)| {
            let prior_bucket = prior_buckets.remove(key);
            let arguments = bucket_arguments(
                planned,
                &wanted.scope.to_string(),
                region_of_key(key),
                Value::string(&wanted.identity_id),
            );
            let prior_object = prior_bucket.map_or(Value::Null, |b| bucket_object(prior, key, b));
            // As Terraform proposes it: the arguments, and the computed values of before (unknown
            // on create); the bucket's plan decides them.
            let mut proposed = arguments.clone();
            if let Value::Object(fields) = &mut proposed {
                for name in OUTCOME_ATTRIBUTES.iter().chain(["id"].iter()) {
                    let value = if prior_object.is_null() {
                        Value::unknown()
                    } else {
                        prior_object.get(name).clone()
                    };
                    fields.insert(name.to_string(), value);
                }
            }
            let request = PlanRequest {
                prior_state: prior_object,
                proposed_new_state: proposed,
                config: arguments,
                prior_private: prior_private.of(key),
                planned_private: first_plan.map(|plan| plan.of(key)).unwrap_or_default(),
                client_capabilities: *client_capabilities,
                ..PlanRequest::default()
            };
            let buckets = self.buckets.clone();
            let key = key.clone();
            async move { (key, buckets.plan(request).await) }
        }))
        .await;
        let mut result = PlannedBuckets {
            buckets: BTreeMap::new(),
            private: Private::default(),
            diagnostics,
        };
        for (key, response) in plans {
            result
                .diagnostics
                .extend(bucket_diagnostics(&key, response.diagnostics));
            result.private.set(&key, &response.planned_private);
            result
                .buckets
                .insert(key, bucket_of(response.planned_state));
        }
        // Buckets that leave (those left once the wanted ones were taken out) are destroyed at
        // apply with what they hold now.
        for key in prior_buckets.keys() {
            result.private.set(key, &prior_private.of(key));
        }
        for (key, bucket) in kept_buckets {
            result.private.set(&key, &prior_private.of(&key));
            result.private.kept.insert(key.clone());
            result.buckets.insert(key, bucket);
        }
        Some(result)
    }

    /// Each bucket checks at plan that a new identity exists, with one read each. For an
    /// estate that is hundreds of reads per plan: list instead each resource group holding the
    /// new identities (one read per page) and note those found, so a bucket reads only an
    /// identity that is missing, to say so.
    async fn note_existing_identities(
        &self,
        clients: &AzureClients,
        wanted: &BTreeMap<String, Wanted>,
        prior_buckets: &BTreeMap<String, Value>,
    ) {
        let handover = self.data.handover();
        let mut groups: BTreeMap<String, Scope> = BTreeMap::new();
        for (key, bucket) in wanted {
            let unchanged = prior_buckets.get(key).is_some_and(|prior| {
                prior
                    .get("identity_id")
                    .as_str()
                    .is_some_and(|id| id.eq_ignore_ascii_case(&bucket.identity_id))
            });
            if unchanged || handover.is_planned_identity(&bucket.identity_id) {
                continue;
            }
            if let Ok(id) = ids::UserAssignedIdentityId::parse(&bucket.identity_id) {
                let group = format!(
                    "/subscriptions/{}/resourceGroups/{}",
                    id.subscription_id(),
                    id.resource_group()
                );
                if let Ok(scope) = Scope::parse(&group) {
                    groups.insert(group.to_ascii_lowercase(), scope);
                }
            }
        }
        let listings = join_all(groups.values().map(|group| clients.identities.list(group))).await;
        for identity in listings.into_iter().flatten().flatten() {
            handover.note_existing_identity(&identity.id);
        }
    }

    /// Applies one bucket: `planned` null destroys it. What its writes leave to confirm goes
    /// to `later`.
    fn apply_bucket(
        &self,
        key: &str,
        prior: Value,
        planned: Value,
        planned_private: Vec<u8>,
        later: Arc<Mutex<Vec<Written>>>,
    ) -> BucketApply {
        let request = ApplyRequest {
            config: config_of(&planned),
            prior_state: prior,
            planned_state: planned,
            planned_private,
            planned_identity: None,
        };
        let buckets = self.buckets.clone();
        let key = key.to_string();
        Box::pin(async move {
            let response = assignment::settle_later(later, buckets.apply(request)).await;
            (key, response)
        })
    }

    /// Waits, once per scope, until every machine the buckets wrote is settled (one listing
    /// per round for a subscription, however many of its buckets wrote).
    async fn settle(&self, written: Vec<Written>, halt: &Halt) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        let Ok(clients) = self.data.clients() else {
            return diagnostics;
        };
        let mut by_scope: BTreeMap<(String, Vec<MachineKind>), Written> = BTreeMap::new();
        for entry in written {
            let key = (
                entry.scope.to_string().to_ascii_lowercase(),
                entry.kinds.clone(),
            );
            match by_scope.get_mut(&key) {
                Some(existing) => existing.machines.extend(entry.machines),
                None => {
                    by_scope.insert(key, entry);
                }
            }
        }
        let waits = join_all(by_scope.values().map(|entry| {
            let clients = clients.clone();
            async move {
                let mut found = Diagnostics::default();
                assignment::settle_written(
                    &clients,
                    &entry.scope,
                    &entry.kinds,
                    &entry.machines,
                    halt.token(),
                    &mut found,
                )
                .await;
                found
            }
        }))
        .await;
        for found in waits {
            diagnostics.extend(found);
        }
        diagnostics
    }
}

#[async_trait]
impl Resource for EstateAssignment {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        validate_arguments(config)
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(identity_schema())
    }

    fn identity_of(&self, state: &Value) -> Option<Value> {
        identity_of(state)
    }

    async fn plan(&self, mut request: PlanRequest) -> PlanResponse {
        if request.proposed_new_state.is_null() {
            // Destroyed: nothing to plan.
            return PlanResponse {
                planned_private: request.prior_private,
                ..PlanResponse::default()
            };
        }
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                return PlanResponse {
                    planned_state: request.proposed_new_state,
                    planned_private: request.prior_private,
                    diagnostics,
                    ..PlanResponse::default()
                }
            }
        };
        // Every bucket is planned afresh: the buckets of before move out of the request (the
        // proposal carries them too), so that the estate is not copied with them.
        request.proposed_new_state.take("buckets");
        let prior_buckets = take_buckets(&mut request.prior_state);
        let planned = request
            .proposed_new_state
            .with("id", estate_id(&request.proposed_new_state));
        let prior_private = Private::from_bytes(&request.prior_private);
        let first_plan = Private::from_bytes(&request.planned_private);
        let mut response = PlanResponse::default();
        match self
            .plan_buckets(
                &clients,
                &planned,
                &request.prior_state,
                prior_buckets,
                &prior_private,
                first_plan.every_bucket_shown.then_some(&first_plan),
                &request.client_capabilities,
            )
            .await
        {
            // Known at apply only: the buckets are planned then.
            None => {
                response.planned_state = planned.with("buckets", Value::unknown());
                response.planned_private = prior_private.to_bytes();
            }
            Some(result) => {
                response.diagnostics = result.diagnostics;
                response.planned_state = planned.with("buckets", Value::Map(result.buckets));
                let mut private = result.private;
                private.every_bucket_shown = request.client_capabilities.store_planned_private;
                response.planned_private = private.to_bytes();
            }
        }
        response
    }

    async fn apply(&self, mut request: ApplyRequest) -> ApplyResponse {
        let prior = &request.prior_state;
        let planned = &request.planned_state;
        // The deadline of the whole operation, for the confirmation after the buckets' writes
        // (each bucket keeps its own, counted from the same start).
        let (operation, timed) = if planned.is_null() {
            (Operation::Delete, prior)
        } else if prior.is_null() {
            (Operation::Create, planned)
        } else {
            (Operation::Update, planned)
        };
        let halt = Halt::new(
            self.data.stop_signal(),
            timeouts::get(timed, operation, assignment::TIMEOUTS),
        );
        let mut planned_private = Private::from_bytes(&request.planned_private);
        let mut diagnostics = Diagnostics::default();
        let planned_buckets;
        if !planned.is_null() && planned.get("buckets").is_unknown() {
            let clients = match self.data.clients() {
                Ok(clients) => clients,
                Err(diagnostics) => {
                    return ApplyResponse {
                        new_state: prior.clone(),
                        private: request.planned_private.clone(),
                        diagnostics,
                        ..ApplyResponse::default()
                    }
                }
            };
            let prior_private = Private::from_bytes(&request.planned_private);
            let mut prior_arguments = prior.clone();
            let prior_buckets = take_buckets(&mut prior_arguments);
            match self
                .plan_buckets(
                    &clients,
                    planned,
                    &prior_arguments,
                    prior_buckets,
                    &prior_private,
                    None,
                    &ClientCapabilities::default(),
                )
                .await
            {
                Some(result) if !result.diagnostics.has_errors() => {
                    diagnostics.extend(result.diagnostics);
                    planned_buckets = result.buckets;
                    planned_private = result.private;
                }
                Some(result) => {
                    return ApplyResponse {
                        new_state: prior.clone(),
                        private: request.planned_private.clone(),
                        diagnostics: result.diagnostics,
                        ..ApplyResponse::default()
                    }
                }
                None => {
                    return ApplyResponse {
                        new_state: prior.clone(),
                        private: request.planned_private.clone(),
                        diagnostics: Diagnostics::from_error(
                            "Arguments still unknown at apply",
                            "Terraform passed unknown arguments to apply; this is a bug in Terraform or the provider.",
                        ),
                        ..ApplyResponse::default()
                    }
                }
            }
        } else {
            planned_buckets = take_buckets(&mut request.planned_state);
        }
        // The buckets move into their objects: what is left of the estate is its arguments.
        let mut prior_buckets = take_buckets(&mut request.prior_state);
        let (prior, planned) = (&request.prior_state, &request.planned_state);
        // Every bucket at once: ARM paces each subscription on its own, and so does the client.
        // Each subscription's writes are confirmed as soon as its own buckets are done, while
        // busier subscriptions still write: only the busiest one's confirmation follows the
        // last write.
        let mut by_subscription: BTreeMap<String, SubscriptionWork> = BTreeMap::new();
        let mut kept = BTreeMap::new();
        for (key, bucket) in planned_buckets {
            if planned_private.kept.contains(&key) && prior_buckets.remove(&key).is_some() {
                // Not planned this time (its subscription cannot be read or written): as
                // recorded, untouched.
                kept.insert(key, bucket);
                continue;
            }
            let prior_object = prior_buckets
                .remove(&key)
                .map_or(Value::Null, |b| bucket_object(prior, &key, b));
            let work = by_subscription
                .entry(subscription_of_key(&key).to_string())
                .or_default();
            work.buckets.push(self.apply_bucket(
                &key,
                prior_object,
                bucket_object(planned, &key, bucket),
                planned_private.of(&key),
                work.later.clone(),
            ));
        }
        // The prior buckets left are those that leave.
        let mut handing_over = BTreeMap::new();
        for (key, bucket) in prior_buckets {
            let work = by_subscription
                .entry(subscription_of_key(&key).to_string())
                .or_default();
            let object = bucket_object(prior, &key, bucket);
            if planned.is_null() {
                // What it hands over to the object replacing the estate, should another
                // bucket's destroy fail (see below).
                if let Some(kept) =
                    assignment::handed_over_state(&object, &planned_private.of(&key))
                {
                    handing_over.insert(key.clone(), kept);
                }
            }
            work.buckets.push(self.apply_bucket(
                &key,
                object,
                Value::Null,
                planned_private.of(&key),
                work.later.clone(),
            ));
        }
        let halt = &halt;
        let per_subscription = join_all(by_subscription.into_values().map(|work| async move {
            let results = each_on_its_own_task(work.buckets).await;
            let written = std::mem::take(&mut *work.later.lock().expect("settle_later lock"));
            (results, self.settle(written, halt).await)
        }))
        .await;
        let mut results = Vec::new();
        for (subscription_results, confirmed) in per_subscription {
            results.extend(subscription_results);
            diagnostics.extend(confirmed);
        }
        let mut buckets = BTreeMap::new();
        let mut private = Private::default();
        for (key, bucket) in kept {
            private.set(&key, &planned_private.of(&key));
            buckets.insert(key, bucket);
        }
        let mut destroyed = Vec::new();
        for (key, response) in results {
            diagnostics.extend(bucket_diagnostics(&key, response.diagnostics));
            if !response.new_state.is_null() {
                private.set(&key, &response.private);
                buckets.insert(key, bucket_of(response.new_state));
            } else {
                destroyed.push(key);
            }
        }
        if planned.is_null() && diagnostics.has_errors() {
            // Terraform creates no replacement after a failed destroy: the machines a bucket
            // left holding its identity for it are still that bucket's.
            for key in destroyed {
                if let Some((state, kept_private)) = handing_over.remove(&key) {
                    private.set(&key, &kept_private);
                    buckets.insert(key, bucket_of(state));
                }
            }
        }
        if planned.is_null() {
            // Destroyed, unless a bucket could not give everything back: it stays, with exactly
            // what it still holds, and the next destroy finishes.
            let new_state = if buckets.is_empty() {
                Value::Null
            } else {
                prior.with("buckets", Value::Map(buckets))
            };
            return ApplyResponse {
                new_state,
                private: private.to_bytes(),
                diagnostics,
                ..ApplyResponse::default()
            };
        }
        ApplyResponse {
            new_state: planned.with("buckets", Value::Map(buckets)),
            private: private.to_bytes(),
            diagnostics,
            ..ApplyResponse::default()
        }
    }

    async fn read(&self, request: ReadRequest) -> ReadResponse {
        let private = Private::from_bytes(&request.private);
        let mut response = ReadResponse::default();
        // Buckets the machines call for that the state lacks (after an import, or a region's
        // first machine) are read as new objects: machines holding their identity are
        // compliant, nothing is ours. Warnings about the estate are the plan's to give.
        let mut wanted = BTreeMap::new();
        let mut kept = BTreeMap::new();
        if let (Some(estate), Ok(clients)) =
            (Estate::from(&request.current_state), self.data.clients())
        {
            let mut discovery = Diagnostics::default();
            let recorded = match request.current_state.get("buckets") {
                Value::Map(buckets) => recorded_of(buckets),
                _ => Recorded::new(),
            };
            match wanted_buckets(&clients, &estate, &recorded, false, &mut discovery).await {
                Some(found) => {
                    wanted = found.wanted;
                    kept = found.kept;
                }
                None => {
                    response.new_state = request.current_state;
                    response.private = request.private;
                    response.diagnostics = discovery;
                    return response;
                }
            }
        }
        // The buckets move into their objects: what is left of the estate is its arguments.
        let mut state = request.current_state;
        let mut recorded = take_buckets(&mut state);
        // The buckets of subscriptions that cannot be planned now are not read: as recorded.
        let kept_buckets = take_kept(&mut recorded, &kept);
        let mut objects: BTreeMap<String, Value> = recorded
            .into_iter()
            .map(|(key, bucket)| {
                let object = bucket_object(&state, &key, bucket);
                (key, object)
            })
            .collect();
        for (key, wanted) in wanted {
            objects.entry(key.clone()).or_insert_with(|| {
                let fresh = Value::object([
                    ("identity_id", Value::string(&wanted.identity_id)),
                    ("scope", Value::string(wanted.scope.to_string())),
                    ("assigned_ids", Value::List(Vec::new())),
                    ("compliant_ids", Value::List(Vec::new())),
                    ("skipped", Value::Map(BTreeMap::new())),
                    ("noncompliant_ids", Value::List(Vec::new())),
                ]);
                bucket_object(&state, &key, fresh)
            });
        }
        let reads = each_on_its_own_task(objects.into_iter().map(|(key, object)| {
            let read = ReadRequest {
                current_state: object,
                private: private.of(&key),
                ..ReadRequest::default()
            };
            let buckets = self.buckets.clone();
            async move { (key, buckets.read(read).await) }
        }))
        .await;
        let mut buckets = BTreeMap::new();
        let mut refreshed_private = Private::default();
        for (key, bucket) in kept_buckets {
            refreshed_private.set(&key, &private.of(&key));
            buckets.insert(key, bucket);
        }
        for (key, read) in reads {
            response
                .diagnostics
                .extend(bucket_diagnostics(&key, read.diagnostics));
            if !read.new_state.is_null() {
                refreshed_private.set(&key, &read.private);
                buckets.insert(key, bucket_of(read.new_state));
            }
        }
        response.new_state = state.with("buckets", Value::Map(buckets));
        response.private = refreshed_private.to_bytes();
        response
    }

    async fn import(&self, request: ImportRequest) -> ImportResponse {
        let mut response = ImportResponse::default();
        // By identity: `import { to = ..., identity = { scope = ... } }`.
        let given = request
            .identity
            .as_ref()
            .and_then(|identity| identity.get("scope").as_str().map(str::to_string));
        let text = given.unwrap_or_else(|| request.id.clone());
        let id = arguments::trim_arm_id(text.trim());
        let scope = if id.eq_ignore_ascii_case(EVERY_VISIBLE_SUBSCRIPTION) {
            Value::Null
        } else {
            if let Err(reason) = check_estate_scope(id) {
                response.diagnostics.error(
                    "Invalid import ID",
                    &format!("{reason} The import ID is the estate's `scope`, or `/subscriptions` for every subscription the principal can see."),
                );
                return response;
            }
            Value::string(id)
        };
        let mut fields: BTreeMap<String, Value> = schema()
            .block
            .attributes
            .iter()
            .map(|a| (a.name.clone(), Value::Null))
            .collect();
        fields.insert("timeouts".into(), Value::Null);
        fields.insert("scope".into(), scope);
        let skeleton = schema().block.apply_defaults(&Value::Object(fields));
        // Nothing is recorded as ours: every bucket is planned afresh, machines holding their
        // identity now are compliant, and destroy leaves them alone.
        let state = skeleton
            .with("id", estate_id(&skeleton))
            .with("buckets", Value::Map(BTreeMap::new()));
        response.imported.push(ImportedResource {
            identity: identity_of(&state),
            state,
            private: Vec::new(),
        });
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bucket_operations_run_side_by_side_and_keep_the_input_order() {
        // The first operation holds its thread until the last one has run. Polled together
        // in one task (as `join_all` does), the last could not run until the first gave the
        // thread back, and the wait would end at its timeout; as tasks of their own, the
        // other worker runs the last at once.
        let (ran, wait_for_it) = std::sync::mpsc::channel::<()>();
        let first = async move {
            match wait_for_it.recv_timeout(Duration::from_secs(60)) {
                Ok(()) => "first",
                Err(_) => "the last operation did not run beside the first",
            }
        };
        let last = async move {
            let _ = ran.send(());
            "last"
        };
        let operations: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = &str> + Send>>> = vec![
            Box::pin(first),
            Box::pin(async { "middle" }),
            Box::pin(last),
        ];
        assert_eq!(
            each_on_its_own_task(operations).await,
            ["first", "middle", "last"]
        );
    }

    #[tokio::test]
    #[should_panic(expected = "a bucket's bug")]
    async fn a_panicking_bucket_task_panics_the_operation() {
        let operations: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> = vec![
            Box::pin(async {}),
            Box::pin(async { panic!("a bucket's bug") }),
        ];
        each_on_its_own_task(operations).await;
    }

    const SUB: &str = "00000000-0000-0000-0000-0000000000a1";

    fn subscription(state: Option<&str>) -> SubscriptionInfo {
        SubscriptionInfo {
            subscription_id: SUB.into(),
            display_name: String::new(),
            state: state.map(str::to_string),
        }
    }

    #[test]
    fn only_the_management_group_api_releases_a_missing_subscription() {
        for confirmed in [true, false] {
            assert_eq!(
                standing(Some(&subscription(Some("Enabled"))), confirmed),
                Standing::Planned
            );
            // Found under a group but not in `GET /subscriptions`: its listing decides.
            assert_eq!(
                standing(Some(&subscription(None)), confirmed),
                Standing::Planned
            );
        }
        // Not among a group's descendants: it left the group.
        assert_eq!(standing(None, true), Standing::Released);
        // Not in `GET /subscriptions`: read rights, or a gap in the listing.
        match standing(None, false) {
            Standing::Kept(cause) => assert!(cause.contains("GET /subscriptions"), "{cause}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subscriptions_that_refuse_writes_are_kept_whoever_lists_them() {
        for state in ["Disabled", "Deleted", "deleted", "Expired"] {
            for confirmed in [true, false] {
                match standing(Some(&subscription(Some(state))), confirmed) {
                    Standing::Kept(cause) => assert!(cause.contains(state), "{cause}"),
                    other => panic!("{state}: {other:?}"),
                }
            }
        }
        for state in ["Warned", "PastDue", "Active"] {
            assert_eq!(
                standing(Some(&subscription(Some(state))), true),
                Standing::Planned,
                "{state} still takes writes"
            );
        }
    }

    #[test]
    fn a_listing_refused_or_not_found_is_unreadable_a_passing_failure_is_not() {
        let error = |status: u16| ArmError {
            status,
            code: "X".into(),
            message: String::new(),
            request_id: None,
            after_unanswered_attempt: false,
        };
        for status in [401, 403, 404, 409] {
            assert!(unreadable(&error(status)), "{status}");
        }
        for status in [0, 429, 500, 503] {
            assert!(!unreadable(&error(status)), "{status}");
        }
    }

    #[test]
    fn kept_buckets_are_those_of_kept_subscriptions_and_the_warning_names_each() {
        let other = "00000000-0000-0000-0000-0000000000b2";
        let mut buckets: BTreeMap<String, Value> = [
            bucket_key(SUB, "eastus"),
            bucket_key(SUB, "westus"),
            bucket_key(other, "eastus"),
        ]
        .into_iter()
        .map(|key| (key, Value::Null))
        .collect();
        let kept = BTreeMap::from([(SUB.to_string(), "its state is `Disabled`".to_string())]);
        let taken = take_kept(&mut buckets, &kept);
        assert_eq!(
            taken.keys().cloned().collect::<Vec<_>>(),
            [bucket_key(SUB, "eastus"), bucket_key(SUB, "westus")]
        );
        assert_eq!(
            buckets.keys().cloned().collect::<Vec<_>>(),
            [bucket_key(other, "eastus")]
        );
        let recorded = recorded_of(&taken);
        let warning = kept_warning(&kept, &recorded).unwrap();
        assert!(
            warning.contains(&format!(
                "{SUB}: its state is `Disabled`; its buckets keep what they recorded"
            )),
            "{warning}"
        );
        assert_eq!(kept_warning(&BTreeMap::new(), &recorded), None);
    }

    #[test]
    fn recorded_subscriptions_carry_the_scopes_their_buckets_cover() {
        let group = format!("/subscriptions/{SUB}/resourceGroups/rg");
        let bucket = |scope: &str| Value::object([("scope", Value::string(scope))]);
        let buckets = BTreeMap::from([
            (bucket_key(SUB, "eastus"), bucket(&group)),
            (bucket_key(SUB, "westus"), bucket(&group)),
            (
                bucket_key("00000000-0000-0000-0000-0000000000B2", "eastus"),
                bucket("/subscriptions/00000000-0000-0000-0000-0000000000b2"),
            ),
        ]);
        assert_eq!(
            recorded_of(&buckets),
            Recorded::from([
                (SUB.to_string(), BTreeSet::from([group.clone()])),
                (
                    "00000000-0000-0000-0000-0000000000b2".to_string(),
                    BTreeSet::from([
                        "/subscriptions/00000000-0000-0000-0000-0000000000b2".to_string()
                    ])
                ),
            ])
        );
    }

    #[test]
    fn the_kept_buckets_travel_in_the_plans_private_state() {
        let mut private = Private::default();
        private.set(&bucket_key(SUB, "eastus"), br#"{"taken_over":[]}"#);
        private.kept.insert(bucket_key(SUB, "eastus"));
        let back = Private::from_bytes(&private.to_bytes());
        assert_eq!(back, private);
        assert_eq!(back.buckets.len(), 1, "the marker is not a bucket");
        // Without kept buckets the private state is as before.
        let plain = Private::default();
        assert!(!String::from_utf8(plain.to_bytes())
            .unwrap()
            .contains("#kept"));
    }

    #[test]
    fn scopes_are_groups_subscriptions_or_resource_groups() {
        for good in [
            "/providers/Microsoft.Management/managementGroups/estate",
            "/subscriptions/00000000-0000-0000-0000-0000000000a1",
            "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/rg",
        ] {
            assert!(check_estate_scope(good).is_ok(), "{good}");
        }
        for bad in [
            "estate",
            "/providers/Microsoft.Compute/virtualMachines/x",
            "/subscriptions/not-a-guid",
        ] {
            assert!(check_estate_scope(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identity_keys_are_regions_or_subscription_and_region() {
        assert!(check_identity_key("eastus").is_ok());
        assert!(check_identity_key(&format!("{SUB}/eastus")).is_ok());
        assert!(check_identity_key("not-a-guid/eastus").is_err());
        assert!(check_identity_key(&format!("{SUB}/east us!")).is_err());
    }

    #[test]
    fn a_subscription_key_wins_over_a_region_key_and_the_default_is_the_policys_naming() {
        let named = Estate {
            scope: None,
            identity_ids: Some(BTreeMap::from([
                ("eastus".to_string(), "/all".to_string()),
                (bucket_key(SUB, "East US"), "/this".to_string()),
            ])),
            locations: None,
            kinds: vec![MachineKind::VirtualMachine],
        };
        assert_eq!(named.identity_for(SUB, "eastus").as_deref(), Some("/this"));
        assert_eq!(
            named
                .identity_for("00000000-0000-0000-0000-0000000000b2", "eastus")
                .as_deref(),
            Some("/all")
        );
        assert_eq!(named.identity_for(SUB, "westus"), None);
        let policy = Estate {
            identity_ids: None,
            ..named
        };
        assert_eq!(
            policy.identity_for(SUB, "westus").unwrap(),
            format!("/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-westus")
        );
    }

    #[test]
    fn a_bucket_is_the_assignment_object_it_stands_for_and_back() {
        let estate = schema().block.apply_defaults(&Value::object([
            ("scope", Value::Null),
            ("identity_ids", Value::Null),
            ("locations", Value::Null),
            ("exclude_ids", Value::Null),
            ("exclude_tags", Value::Null),
            ("resource_types", Value::Null),
            ("skip_single_user_assigned", Value::Null),
            ("mode", Value::Null),
            ("timeouts", Value::Null),
        ]));
        let key = bucket_key(SUB, "eastus");
        let bucket = Value::object([
            ("identity_id", Value::string("/i")),
            ("scope", Value::string(format!("/subscriptions/{SUB}"))),
            ("assigned_ids", Value::List(vec![Value::string("/m1")])),
            ("compliant_ids", Value::List(vec![])),
            ("skipped", Value::Map(BTreeMap::new())),
            ("noncompliant_ids", Value::List(vec![])),
        ]);
        let object = bucket_object(&estate, &key, bucket.clone());
        assert_eq!(object.get("locations"), &Value::string_set(["eastus"]));
        assert_eq!(object.get("mode"), &Value::string("enforce"));
        assert_eq!(
            object.get("id").as_str(),
            Some(format!("/subscriptions/{SUB}|/i").as_str())
        );
        assert_eq!(bucket_of(object.clone()), bucket);
    }
}
