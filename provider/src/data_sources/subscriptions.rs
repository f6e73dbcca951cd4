//! `mig_subscriptions`: the subscriptions under a management group (or every subscription the
//! principal can see) and the regions of each that hold VMs or scale sets, flattened to one
//! entry per subscription and region, so one configuration can `for_each` over a whole estate
//! as the built-in policy, assigned once at a management group, covers it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tfplugin::{
    Attribute, AttributePath, Block, DataReadRequest, DataReadResponse, DataSource, NestingMode,
    Schema, Type, Value,
};

use crate::arguments;
use crate::azure::compute::MachineKind;
use crate::azure::ids::{self, Scope};
use crate::azure::management_groups::{self, SubscriptionInfo};
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
            "Regions that hold at least one VM or scale set in it, as ARM spells them.",
        ),
    ]
}

fn pair_attributes() -> Vec<Attribute> {
    vec![
        Attribute::computed("subscription_id", Type::String).description("The subscription."),
        Attribute::computed("location", Type::String).description("The region."),
    ]
}

/// The state for the subscriptions found and the regions of each.
fn state_of(
    config: &Value,
    id: String,
    subscriptions: &[SubscriptionInfo],
    locations: &BTreeMap<String, BTreeSet<String>>,
) -> Value {
    let empty = BTreeSet::new();
    let regions = |s: &SubscriptionInfo| locations.get(&s.subscription_id).unwrap_or(&empty);
    let mut state: BTreeMap<String, Value> = config.as_object().cloned().unwrap_or_default();
    state.insert("id".into(), Value::String(id));
    state.insert(
        "subscription_ids".into(),
        Value::string_set(subscriptions.iter().map(|s| s.subscription_id.clone())),
    );
    state.insert(
        "subscriptions".into(),
        Value::List(
            subscriptions
                .iter()
                .map(|s| {
                    Value::object([
                        ("subscription_id", Value::String(s.subscription_id.clone())),
                        ("display_name", Value::String(s.display_name.clone())),
                        ("state", Value::optional_string(s.state.clone())),
                        ("locations", Value::string_set(regions(s).iter().cloned())),
                    ])
                })
                .collect(),
        ),
    );
    state.insert(
        "locations_by_subscription".into(),
        Value::Map(
            subscriptions
                .iter()
                .map(|s| {
                    (
                        s.subscription_id.clone(),
                        Value::string_set(regions(s).iter().cloned()),
                    )
                })
                .collect(),
        ),
    );
    state.insert(
        "subscription_locations".into(),
        Value::Map(
            subscriptions
                .iter()
                .flat_map(|s| {
                    regions(s).iter().map(move |location| {
                        (
                            pair_key(&s.subscription_id, location),
                            Value::object([
                                ("subscription_id", Value::String(s.subscription_id.clone())),
                                ("location", Value::String(location.clone())),
                            ]),
                        )
                    })
                })
                .collect(),
        ),
    );
    Value::Object(state)
}

#[async_trait]
impl DataSource for Subscriptions {
    fn type_name(&self) -> &'static str {
        "mig_subscriptions"
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
                        .description("Every subscription found, sorted by ID, with the regions that hold its machines."),
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

    async fn read(&self, request: DataReadRequest) -> DataReadResponse {
        let mut response = DataReadResponse::default();
        let config = &request.config;
        let group = config
            .get("management_group_id")
            .as_str()
            .map(|text| management_groups::group_name(text).to_string());
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                response.diagnostics = diagnostics;
                return response;
            }
        };
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
        response.state = state_of(config, id, &subscriptions, &locations);
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
        let state = state_of(&Value::Null, "/subscriptions".into(), &subs, &locations);
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
}
