//! `mig_subscriptions`: the subscriptions under a management group (or every subscription the
//! principal can see) and the regions of each that hold VMs or scale sets, flattened to one
//! entry per subscription and region, so one configuration can `for_each` over a whole estate
//! as the built-in policy, assigned once at a management group, covers it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tfplugin::typed::{DataRead, TypedDataSource};
#[cfg(test)]
use tfplugin::{model, Value};
use tfplugin::{Attribute, AttributePath, Block, Diagnostics, NestingMode, Schema, Type};

use crate::arguments;
use crate::azure::arm::ArmError;
use crate::azure::compute::MachineKind;
use crate::azure::ids::{self, Scope};
use crate::azure::management_groups::{self, SubscriptionInfo};
use crate::azure::AzureClients;
use crate::provider_data::ProviderData;

/// A listing of a subscription's machines this recent (by any resource or data source of this
/// provider process) is shared rather than read again: the same age
/// `mig_identity_assignment` accepts at plan.
const LISTING_MAX_AGE: Duration = Duration::from_secs(60);
/// Subscriptions listed at once.
const CONCURRENT_LISTINGS: usize = 8;
/// The kinds of machines whose regions count, in the order `mig_identity_assignment` lists
/// them (so the listing is shared).
const KINDS: [MachineKind; 2] = [MachineKind::VirtualMachine, MachineKind::ScaleSet];

pub struct Subscriptions {
    data: Arc<ProviderData>,
}

impl Subscriptions {
    pub fn new(data: Arc<ProviderData>) -> Self {
        Subscriptions { data }
    }
}

/// The key of a subscription and region in `subscription_locations`.
pub fn pair_key(subscription_id: &str, location: &str) -> String {
    format!("{subscription_id}/{location}")
}

fn subscription_attributes() -> Vec<Attribute> {
    vec![
        Attribute::computed("subscription_id", Type::String)
            .description("The subscription's GUID, lower case."),
        Attribute::computed("display_name", Type::String).description("Its name."),
        Attribute::computed("state", Type::String).description(
            "`Enabled`, `Warned`, `PastDue`, `Disabled`, ...; null when ARM did not say.",
        ),
        Attribute::computed("locations", Type::set(Type::String)).description(
            "Regions that hold at least one VM or scale set in it, as ARM spells them; null when its machines could not be listed (`readable` false).",
        ),
        Attribute::computed("readable", Type::Bool).description(
            "Whether its machines could be listed. False when ARM refused (401, 403, 404 or 409: access narrowed, the subscription moved, cancelled or disabled); its regions are then unknown.",
        ),
        Attribute::computed("read_error", Type::String)
            .description("Why its machines could not be listed, as ARM said it; null when `readable`."),
    ]
}

fn pair_attributes() -> Vec<Attribute> {
    vec![
        Attribute::computed("subscription_id", Type::String).description("The subscription."),
        Attribute::computed("location", Type::String).description("The region."),
    ]
}

/// Whether a failed listing of a subscription's machines means that the principal cannot read
/// it now (access narrowed, the subscription moved, cancelled or disabled): it is then
/// reported, not the read failed. Any other failure (a 5xx or a lost connection after
/// retries) fails the read, as a passing failure must not change what the configuration sees.
fn unreadable(error: &ArmError) -> bool {
    matches!(error.status, 401 | 403 | 404 | 409)
}

/// The warning for the subscriptions whose machines could not be listed (by ID, with why).
fn unreadable_warning(unread: &BTreeMap<String, String>) -> Option<String> {
    if unread.is_empty() {
        return None;
    }
    let each: Vec<String> = unread
        .iter()
        .map(|(subscription_id, cause)| format!("{subscription_id}: {cause}"))
        .collect();
    Some(format!(
        "The machines of these subscriptions could not be listed, so their regions are unknown: {}. They are in `subscriptions` with `readable = false` and in `unreadable_subscription_ids`, and have no entry in `locations_by_subscription` or `subscription_locations`: resources declared with `for_each` over those would plan to destroy theirs. Keep them while the subscription cannot be read (examples/estate: `unreadable_locations`), and give the principal Reader on it (or leave it out of the management group) to read it again.",
        each.join("; ")
    ))
}

/// One of `subscriptions`.
#[derive(Debug, Serialize, Deserialize)]
pub struct SubscriptionModel {
    subscription_id: String,
    display_name: String,
    state: Option<String>,
    /// Null when its machines could not be listed.
    locations: Option<BTreeSet<String>>,
    readable: bool,
    read_error: Option<String>,
}

/// One of `subscription_locations`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PairModel {
    subscription_id: String,
    location: String,
}

/// The argument and what the read finds; a read's configuration is known.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Model {
    management_group_id: Option<String>,
    id: Option<String>,
    subscription_ids: Option<BTreeSet<String>>,
    subscriptions: Option<Vec<SubscriptionModel>>,
    unreadable_subscription_ids: Option<BTreeSet<String>>,
    locations_by_subscription: Option<BTreeMap<String, BTreeSet<String>>>,
    subscription_locations: Option<BTreeMap<String, PairModel>>,
}

/// The state for the subscriptions found and the regions of each; `unread` are those whose
/// machines could not be listed, with why.
fn state_from(
    config: Model,
    id: String,
    subscriptions: &[SubscriptionInfo],
    locations: &BTreeMap<String, BTreeSet<String>>,
    unread: &BTreeMap<String, String>,
) -> Model {
    let empty = BTreeSet::new();
    let regions = |s: &SubscriptionInfo| locations.get(&s.subscription_id).unwrap_or(&empty);
    let readable = |s: &&SubscriptionInfo| !unread.contains_key(&s.subscription_id);
    Model {
        id: Some(id),
        subscription_ids: Some(
            subscriptions
                .iter()
                .map(|s| s.subscription_id.clone())
                .collect(),
        ),
        subscriptions: Some(
            subscriptions
                .iter()
                .map(|s| SubscriptionModel {
                    subscription_id: s.subscription_id.clone(),
                    display_name: s.display_name.clone(),
                    state: s.state.clone(),
                    locations: readable(&s).then(|| regions(s).clone()),
                    readable: readable(&s),
                    read_error: unread.get(&s.subscription_id).cloned(),
                })
                .collect(),
        ),
        unreadable_subscription_ids: Some(unread.keys().cloned().collect()),
        locations_by_subscription: Some(
            subscriptions
                .iter()
                .filter(readable)
                .map(|s| (s.subscription_id.clone(), regions(s).clone()))
                .collect(),
        ),
        subscription_locations: Some(
            subscriptions
                .iter()
                .filter(readable)
                .flat_map(|s| {
                    regions(s).iter().map(move |location| {
                        (
                            pair_key(&s.subscription_id, location),
                            PairModel {
                                subscription_id: s.subscription_id.clone(),
                                location: location.clone(),
                            },
                        )
                    })
                })
                .collect(),
        ),
        ..config
    }
}

/// [`state_from`] as the state Terraform gets, from the configuration as a value.
#[cfg(test)]
fn state_of(
    config: &Value,
    id: String,
    subscriptions: &[SubscriptionInfo],
    locations: &BTreeMap<String, BTreeSet<String>>,
    unread: &BTreeMap<String, String>,
) -> Value {
    let config = model::decode_lenient::<Model>(config).unwrap_or_default();
    model::encode(
        &state_from(config, id, subscriptions, locations, unread),
        &Subscriptions::new(Arc::default()).schema().value_type(),
    )
}

#[async_trait]
impl TypedDataSource for Subscriptions {
    type Data = ProviderData;
    type Model = Model;
    const TYPE_NAME: &'static str = "mig_subscriptions";

    fn data(&self) -> &ProviderData {
        &self.data
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block {
                attributes: vec![
                    Attribute::optional("management_group_id", Type::String)
                        .validator(arguments::management_group_id())
                        .description("A management group's name (the tenant ID for the tenant root group) or ID (`/providers/Microsoft.Management/managementGroups/{name}`): the subscriptions anywhere below it. Default (left out): every subscription the principal can see."),
                    Attribute::computed("id", Type::String).description(
                        "The management group's ID, or `/subscriptions` when none is given.",
                    ),
                    Attribute::computed("subscription_ids", Type::set(Type::String))
                        .description("The GUIDs of the subscriptions found, lower case."),
                    Attribute::computed("subscriptions", Type::Dynamic)
                        .nested(NestingMode::List, subscription_attributes())
                        .description("Every subscription found, sorted by ID, with the regions that hold its machines, readable or not."),
                    Attribute::computed("unreadable_subscription_ids", Type::set(Type::String))
                        .description("The subscriptions found whose machines could not be listed (ARM answered 401, 403, 404 or 409); a warning names each and the cause."),
                    Attribute::computed("locations_by_subscription", Type::map(Type::set(Type::String)))
                        .description("Subscription ID -> regions that hold its VMs or scale sets."),
                    Attribute::computed("subscription_locations", Type::Dynamic)
                        .nested(NestingMode::Map, pair_attributes())
                        .description("One entry per subscription and region that holds machines, keyed `{subscription_id}/{location}`: what `for_each` needs to declare one `mig_builtin_identity` and one `mig_identity_assignment` per pair."),
                ],
                description: "Lists the subscriptions under a management group, or every subscription the principal can see, with the regions of each that hold VMs or scale sets.".into(),
                ..Block::default()
            },
        )
    }

    async fn read(&self, clients: &Arc<AzureClients>, config: Model) -> DataRead<Model> {
        let mut response = DataRead {
            state: None,
            diagnostics: Diagnostics::default(),
            deferred: None,
        };
        let group = config
            .management_group_id
            .as_deref()
            .map(|text| management_groups::group_name(text).to_string());
        let (id, found) = match &group {
            Some(name) => (
                management_groups::group_id(name),
                clients.management_groups.subscriptions_under(name).await,
            ),
            None => (
                "/subscriptions".to_string(),
                clients.management_groups.visible_subscriptions().await,
            ),
        };
        let subscriptions = match found {
            Ok(found) => found,
            Err(error) => {
                let (path, summary, hint) = match &group {
                    Some(name) => (
                        AttributePath::root("management_group_id"),
                        "Cannot list the subscriptions of the management group",
                        format!(" The principal needs `Microsoft.Management/managementGroups/read` on `{name}` (Reader there, or above it); ARM answers 403 for a group that does not exist too."),
                    ),
                    None => (
                        AttributePath::root("id"),
                        "Cannot list the subscriptions",
                        String::new(),
                    ),
                };
                response
                    .diagnostics
                    .error_at(path, summary, &format!("{error}{hint}"));
                return response;
            }
        };
        let now = tokio::time::Instant::now();
        let not_before = now.checked_sub(LISTING_MAX_AGE).unwrap_or(now);
        let compute = &clients.compute;
        let ids: Vec<String> = subscriptions
            .iter()
            .map(|s| s.subscription_id.clone())
            .collect();
        let listings: Vec<_> = futures::stream::iter(ids.into_iter().map(|subscription_id| {
            let scope = Scope::subscription(&subscription_id);
            async move {
                let machines = compute.inventory(&scope, &KINDS, not_before).await;
                (subscription_id, machines)
            }
        }))
        .buffered(CONCURRENT_LISTINGS)
        .collect()
        .await;
        let mut locations: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut unread: BTreeMap<String, String> = BTreeMap::new();
        for (subscription_id, machines) in listings {
            match machines {
                Ok(machines) => {
                    locations.insert(
                        subscription_id,
                        machines
                            .iter()
                            .filter_map(|m| ids::normalize_location(&m.location).ok())
                            .collect(),
                    );
                }
                Err(error) if unreadable(&error) => {
                    tracing::warn!(subscription_id, %error, "the machines of a subscription cannot be listed");
                    unread.insert(subscription_id, error.to_string());
                }
                Err(error) => {
                    response.diagnostics.error_at(
                        AttributePath::root("subscriptions"),
                        "Cannot list the machines of a subscription",
                        &format!("Subscription {subscription_id}: {error}"),
                    );
                }
            }
        }
        if response.diagnostics.has_errors() {
            return response;
        }
        if let Some(detail) = unreadable_warning(&unread) {
            response.diagnostics.warning_at(
                AttributePath::root("unreadable_subscription_ids"),
                "Subscriptions whose machines cannot be listed",
                &detail,
            );
        }
        response.state = Some(state_from(config, id, &subscriptions, &locations, &unread));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_groups_are_names_or_ids_and_never_subscriptions() {
        for good in [
            "mg-corp",
            "Corp_(EU).1",
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "/providers/Microsoft.Management/managementGroups/mg-corp",
            "/providers/microsoft.management/managementgroups/mg-corp/",
        ] {
            assert!(arguments::check_management_group_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "mg corp",
            "mg.",
            "mg?api-version=2023-04-01",
            "/subscriptions/00000000-0000-0000-0000-000000000001",
            "/providers/Microsoft.Management/managementGroups/",
        ] {
            assert!(arguments::check_management_group_id(bad).is_err(), "{bad}");
        }
        assert!(arguments::check_management_group_id("/subscriptions/x")
            .unwrap_err()
            .contains("is a subscription, not a management group"));
    }

    #[test]
    fn pairs_cover_every_subscription_and_region_with_machines() {
        let subs = vec![
            SubscriptionInfo {
                subscription_id: "a".into(),
                display_name: "A".into(),
                state: Some("Enabled".into()),
            },
            SubscriptionInfo {
                subscription_id: "b".into(),
                display_name: "B".into(),
                state: None,
            },
        ];
        let locations = BTreeMap::from([(
            "a".to_string(),
            BTreeSet::from(["eastus".to_string(), "westeurope".to_string()]),
        )]);
        let state = state_of(
            &Value::Null,
            "/subscriptions".into(),
            &subs,
            &locations,
            &BTreeMap::new(),
        );
        let Value::Map(pairs) = state.get("subscription_locations") else {
            panic!("a map");
        };
        assert_eq!(
            pairs.keys().cloned().collect::<Vec<_>>(),
            vec!["a/eastus".to_string(), "a/westeurope".to_string()]
        );
        assert_eq!(
            pairs["a/westeurope"].get("location").as_str(),
            Some("westeurope")
        );
        let Value::Map(by_subscription) = state.get("locations_by_subscription") else {
            panic!("a map");
        };
        assert_eq!(
            by_subscription.len(),
            2,
            "a subscription without machines too"
        );
        assert!(state
            .get("subscriptions")
            .as_list()
            .is_some_and(|l| l.len() == 2));
    }

    fn error(status: u16, code: &str) -> ArmError {
        ArmError {
            status,
            code: code.into(),
            message: "m".into(),
            request_id: None,
            after_unanswered_attempt: false,
        }
    }

    #[test]
    fn refusals_are_reported_and_passing_failures_fail() {
        for status in [401, 403, 404, 409] {
            assert!(
                unreadable(&error(status, "AuthorizationFailed")),
                "{status}"
            );
        }
        for status in [0, 429, 500, 503] {
            assert!(
                !unreadable(&error(status, "InternalServerError")),
                "{status}"
            );
        }
        assert_eq!(unreadable_warning(&BTreeMap::new()), None);
    }

    #[test]
    fn an_unreadable_subscription_is_listed_with_unknown_regions_and_no_pairs() {
        let enabled = |id: &str| SubscriptionInfo {
            subscription_id: id.into(),
            display_name: id.to_ascii_uppercase(),
            state: Some("Enabled".into()),
        };
        let subs = vec![enabled("a"), enabled("c")];
        let locations = BTreeMap::from([("a".to_string(), BTreeSet::from(["eastus".to_string()]))]);
        let unread = BTreeMap::from([(
            "c".to_string(),
            "AuthorizationFailed: no (HTTP 403)".to_string(),
        )]);
        let state = state_of(
            &Value::Null,
            "/subscriptions".into(),
            &subs,
            &locations,
            &unread,
        );
        let list = state.get("subscriptions").as_list().unwrap();
        assert_eq!(list[0].get("readable").as_bool(), Some(true));
        assert!(list[0].get("read_error").is_null());
        assert_eq!(list[1].get("readable").as_bool(), Some(false));
        assert!(list[1].get("locations").is_null(), "unknown, not none");
        assert_eq!(
            list[1].get("read_error").as_str(),
            Some("AuthorizationFailed: no (HTTP 403)")
        );
        assert_eq!(
            state.get("unreadable_subscription_ids"),
            &Value::string_set(["c"])
        );
        assert_eq!(
            state
                .get("subscription_locations")
                .as_map()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            vec!["a/eastus"]
        );
        assert_eq!(
            state
                .get("locations_by_subscription")
                .as_map()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            vec!["a"]
        );
        let warning = unreadable_warning(&unread).unwrap();
        assert!(
            warning.contains("c: AuthorizationFailed: no (HTTP 403)"),
            "{warning}"
        );
    }
}
