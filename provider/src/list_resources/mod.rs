//! List resources (`terraform query`, Terraform 1.14+): what the built-in policy made, found
//! by its naming, as objects to adopt.
//!
//! Both list the policy's identities: `Built-In-Identity-*` in `Built-In-Identity-RG` (or the
//! configured group) of each subscription given and of every subscription anywhere under each
//! management group given, each subscription once (the provider's when neither is given).
//!
//! Listing is cheap: one descendants listing per management group (read when the listing gets
//! to it), one read per page of identities per subscription, and results are sent to
//! Terraform as each page arrives. `include_resource` adds, per subscription, one read of the
//! group and one of its locks (`mig_builtin_identity`), or one listing of the machines shared
//! by every region (`mig_identity_assignment`). Listing stops at `limit`.

mod builtin_identity;
mod identity_assignment;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::Deserialize;
use tfplugin::typed::{list_resource, Maybe, Results};
use tfplugin::{Attribute, Block, Diagnostics, ListResource, ListResult, Schema, Type};

use crate::arguments;
use crate::azure::identities::Identity;
use crate::azure::ids::{self, Scope};
use crate::azure::management_groups;
use crate::azure::AzureClients;
use crate::provider_data::ProviderData;

pub fn all(data: &Arc<ProviderData>) -> Vec<Arc<dyn ListResource>> {
    vec![
        list_resource(builtin_identity::BuiltinIdentities::new(data.clone())),
        list_resource(identity_assignment::IdentityAssignments::new(data.clone())),
    ]
}

/// The `config` of a `list` block, the same for both list resources.
fn schema(description: &str) -> Schema {
    Schema::new(
        0,
        Block {
            attributes: vec![
                Attribute::optional("subscription_ids", Type::list(Type::String))
                    .validator(arguments::subscription_id())
                    .description("Subscriptions (GUIDs) to look in, besides those under `management_group_ids`. Default (neither given): the provider's subscription."),
                Attribute::optional("management_group_ids", Type::set(Type::String))
                    .validator(arguments::management_group_id())
                    .description("Management groups, by name (the tenant ID for the tenant root group) or ID (`/providers/Microsoft.Management/managementGroups/{name}`): every subscription anywhere below each is looked in too, once however often it is found."),
                Attribute::optional("resource_group_name", Type::String)
                    .validator(arguments::resource_group_name())
                    .description("The group the policy's identities live in. Default `Built-In-Identity-RG`."),
                Attribute::optional("locations", Type::set(Type::String))
                    .validator(arguments::region())
                    .description("Only identities in these regions (either spelling). Default: every region."),
            ],
            description: description.into(),
            ..Block::default()
        },
    )
}

/// The `config` of a `list` block. Elements may be unknown at validation; a listing's
/// configuration is known (the adapter checks).
#[derive(Debug, Default, Deserialize)]
pub struct Config {
    subscription_ids: Option<Vec<Maybe<String>>>,
    management_group_ids: Option<Vec<Maybe<String>>>,
    resource_group_name: Option<String>,
    locations: Option<Vec<Maybe<String>>>,
}

/// The known elements of a list or set.
fn known(list: Option<Vec<Maybe<String>>>) -> Option<Vec<String>> {
    list.map(|list| list.into_iter().filter_map(Maybe::into_known).collect())
}

/// Where to look, with the defaults applied.
#[derive(Debug, Clone, PartialEq)]
struct Search {
    /// Those named (the provider's when neither these nor groups are given).
    subscriptions: Vec<String>,
    /// Management group names, each once.
    management_groups: Vec<String>,
    resource_group: String,
    /// Normalised (`eastus`); `None` for every region.
    locations: Option<BTreeSet<String>>,
}

/// The prefix of the policy's identity names.
const POLICY_NAME_PREFIX: &str = "Built-In-Identity-";

/// What the declared validators cannot see alone: empty lists and sets.
fn validate(config: &Config) -> Diagnostics {
    let mut diagnostics = arguments::check_listed(
        config.subscription_ids.as_deref(),
        "subscription_ids",
        "No subscriptions",
        "An empty list looks nowhere. Name at least one subscription, or leave `subscription_ids` out for the provider's.",
    );
    diagnostics.extend(arguments::check_listed(
        config.management_group_ids.as_deref(),
        "management_group_ids",
        "No management groups",
        "An empty set adds no subscription. Name at least one management group, or leave `management_group_ids` out.",
    ));
    diagnostics.extend(arguments::check_listed(
        config.locations.as_deref(),
        "locations",
        "No regions",
        "An empty set matches no identity. Name at least one region, or leave `locations` out for every region.",
    ));
    diagnostics
}

/// Where a checked configuration looks, with the defaults applied.
fn search_from(config: Config, provider_subscription: &str) -> Search {
    let management_groups = once_each(
        known(config.management_group_ids)
            .unwrap_or_default()
            .iter()
            .map(|g| management_groups::group_name(g).to_string()),
        &mut BTreeSet::new(),
    );
    let subscriptions = known(config.subscription_ids).unwrap_or_else(|| {
        if management_groups.is_empty() {
            vec![provider_subscription.to_string()]
        } else {
            Vec::new()
        }
    });
    Search {
        subscriptions: once_each(subscriptions, &mut BTreeSet::new()),
        management_groups,
        resource_group: config
            .resource_group_name
            .unwrap_or(ids::BUILTIN_RESOURCE_GROUP.to_string()),
        locations: known(config.locations).map(|list| {
            list.iter()
                .filter_map(|l| ids::normalize_location(l).ok())
                .collect()
        }),
    }
}

/// The names not in `seen` (compared without case), in order, each once; `seen` gains them.
fn once_each(names: impl IntoIterator<Item = String>, seen: &mut BTreeSet<String>) -> Vec<String> {
    names
        .into_iter()
        .filter(|name| seen.insert(name.to_ascii_lowercase()))
        .collect()
}

/// The subscriptions a search covers, each once, in order: those named, then those under each
/// management group in turn. A group's descendants are listed (one read per page) only when
/// the walk gets to it, so a listing stopped at `limit` reads no further.
struct Subscriptions<'a> {
    clients: &'a AzureClients,
    seen: BTreeSet<String>,
    next: VecDeque<String>,
    groups: std::slice::Iter<'a, String>,
}

impl<'a> Subscriptions<'a> {
    fn new(clients: &'a AzureClients, search: &'a Search) -> Self {
        let mut seen = BTreeSet::new();
        let next = once_each(search.subscriptions.iter().cloned(), &mut seen).into();
        Subscriptions {
            clients,
            seen,
            next,
            groups: search.management_groups.iter(),
        }
    }

    /// The next subscription, `None` after the last; an error when a group cannot be listed.
    async fn next(&mut self) -> Option<Result<String, String>> {
        loop {
            if let Some(subscription) = self.next.pop_front() {
                return Some(Ok(subscription));
            }
            let group = self.groups.next()?;
            match self
                .clients
                .management_groups
                .descendant_subscriptions(group)
                .await
            {
                Ok(found) => {
                    let found = found.into_iter().map(|s| s.subscription_id);
                    self.next = once_each(found, &mut self.seen).into();
                }
                Err(error) => {
                    return Some(Err(format!(
                        "Cannot list the subscriptions of the management group `{group}`: {error} The principal needs `Microsoft.Management/managementGroups/read` on `{group}` (Reader there, or above it); ARM answers 403 for a group that does not exist too."
                    )))
                }
            }
        }
    }
}

/// A policy identity found, with its region as ARM spells it.
struct Found {
    subscription: String,
    identity: Identity,
    location: String,
}

/// Whether `identity` is one of the policy's that the search asks for.
fn matches(search: &Search, identity: &Identity) -> Option<String> {
    let name = identity.name.as_str();
    let is_policys = name.len() > POLICY_NAME_PREFIX.len()
        && name[..POLICY_NAME_PREFIX.len()].eq_ignore_ascii_case(POLICY_NAME_PREFIX);
    let location = ids::normalize_location(&identity.location).ok()?;
    let wanted = search
        .locations
        .as_ref()
        .is_none_or(|locations| locations.contains(&location));
    (is_policys && wanted).then_some(location)
}

/// The policy identities of one subscription, a page at a time (one read per page), in the
/// order ARM lists them. A missing group holds nothing.
fn policy_identities<'a>(
    clients: &'a AzureClients,
    search: &'a Search,
    subscription: &'a str,
) -> BoxStream<'a, Result<Vec<Found>, String>> {
    let scope = match Scope::parse(&format!(
        "/subscriptions/{subscription}/resourceGroups/{}",
        search.resource_group
    )) {
        Ok(scope) => scope,
        Err(error) => return futures::stream::once(async move { Err(error) }).boxed(),
    };
    let where_ = scope.to_string();
    clients
        .identities
        .pages(&scope)
        .map(move |page| match page {
            Ok(page) => Ok(page
                .into_iter()
                .filter_map(|identity| {
                    matches(search, &identity).map(|location| Found {
                        subscription: subscription.to_string(),
                        identity,
                        location,
                    })
                })
                .collect()),
            Err(error) if error.status == 404 => Ok(Vec::new()),
            Err(error) => Err(format!("Cannot list the identities in {where_}: {error}")),
        })
        .boxed()
}

/// What a list resource makes of the policy identities [`list_each`] finds.
#[async_trait]
trait Lister: Sync {
    /// What it reads once per subscription, before that subscription's identities.
    type Extras: Send + Sync;
    async fn extras(&self, subscription: &str) -> Result<Self::Extras, String>;
    async fn result(&self, found: &Found, extras: &Self::Extras) -> ListResult;
}

/// Lists the policy identities the search finds, subscription by subscription and page by
/// page, sending what `lister` makes of each; stops at the limit, or at the first error.
async fn list_each<L: Lister>(
    clients: &AzureClients,
    search: &Search,
    results: &mut Results,
    lister: &L,
) -> Diagnostics {
    let failed =
        |error: String| Diagnostics::from_error("Cannot list the policy's identities", &error);
    let mut subscriptions = Subscriptions::new(clients, search);
    while let Some(subscription) = subscriptions.next().await {
        let subscription = match subscription {
            Ok(subscription) => subscription,
            Err(error) => return failed(error),
        };
        let extras = match lister.extras(&subscription).await {
            Ok(extras) => extras,
            Err(error) => return failed(error),
        };
        let mut pages = policy_identities(clients, search, &subscription);
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(error) => return failed(error),
            };
            for found in page {
                if !results.send(lister.result(&found, &extras).await).await {
                    return Diagnostics::default();
                }
            }
        }
    }
    Diagnostics::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfplugin::{model, Value};

    /// What a listing starts from: `config` checked as the adapter checks it (declared
    /// validators, then [`validate`]), then the search.
    fn search_from(config: &Value, provider_subscription: &str) -> Result<Search, Diagnostics> {
        let data = Arc::new(ProviderData::default());
        let adapter =
            tfplugin::typed::ListAdapter::new(builtin_identity::BuiltinIdentities::new(data));
        let problems = futures::executor::block_on(adapter.validate_config(config));
        if problems.has_errors() {
            return Err(problems);
        }
        Ok(super::search_from(
            model::decode(config)?,
            provider_subscription,
        ))
    }

    fn identity(name: &str, location: &str) -> Identity {
        Identity {
            id: format!("/subscriptions/s/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"),
            name: name.into(),
            location: location.into(),
            principal_id: String::new(),
            client_id: String::new(),
            tenant_id: String::new(),
            tags: Default::default(),
        }
    }

    const SUB: &str = "00000000-0000-0000-0000-000000000001";

    #[test]
    fn defaults_are_the_policys() {
        let search = search_from(&Value::object([("subscription_ids", Value::Null)]), SUB).unwrap();
        assert_eq!(search.subscriptions, vec![SUB.to_string()]);
        assert!(search.management_groups.is_empty());
        assert_eq!(search.resource_group, "Built-In-Identity-RG");
        assert_eq!(search.locations, None);
    }

    #[test]
    fn management_groups_replace_the_default_and_add_to_the_subscriptions_named() {
        let groups = Value::string_set([
            "mg-corp",
            "/providers/Microsoft.Management/managementGroups/MG-CORP/",
            "mg-eu",
        ]);
        let only = Value::object([("management_group_ids", groups.clone())]);
        let search = search_from(&only, SUB).unwrap();
        assert!(search.subscriptions.is_empty(), "not the provider's");
        assert_eq!(search.management_groups.len(), 2, "{search:?}");
        assert!(search.management_groups.contains(&"mg-eu".to_string()));

        let both = Value::object([
            ("management_group_ids", groups),
            (
                "subscription_ids",
                Value::List(vec![Value::string(SUB), Value::string(SUB.to_uppercase())]),
            ),
        ]);
        let search = search_from(&both, SUB).unwrap();
        assert_eq!(search.subscriptions, vec![SUB.to_string()]);
        assert_eq!(search.management_groups.len(), 2);

        let mut seen = BTreeSet::from([SUB.to_string()]);
        let other = "00000000-0000-0000-0000-000000000002";
        assert_eq!(
            once_each(
                [SUB.to_uppercase(), other.to_string(), other.to_string()],
                &mut seen
            ),
            vec![other.to_string()],
            "a subscription named and under a group is listed once"
        );
    }

    #[test]
    fn only_the_policys_names_in_the_regions_asked_for() {
        let config = Value::object([("locations", Value::string_set(["East US", "westeurope"]))]);
        let search = search_from(&config, SUB).unwrap();
        assert_eq!(
            matches(&search, &identity("Built-In-Identity-eastus", "eastus")),
            Some("eastus".into())
        );
        assert_eq!(
            matches(
                &search,
                &identity("built-in-identity-westeurope", "West Europe")
            ),
            Some("westeurope".into())
        );
        assert_eq!(
            matches(
                &search,
                &identity("Built-In-Identity-northeurope", "northeurope")
            ),
            None
        );
        assert_eq!(matches(&search, &identity("id-app", "eastus")), None);
        assert_eq!(
            matches(&search, &identity("Built-In-Identity-", "eastus")),
            None
        );
    }

    #[test]
    fn bad_configuration_names_the_attribute() {
        let config = Value::object([(
            "subscription_ids",
            Value::List(vec![Value::string("not-a-guid")]),
        )]);
        let problems = search_from(&config, SUB).unwrap_err();
        assert!(problems.has_errors());
        let empty = Value::object([("subscription_ids", Value::List(vec![]))]);
        assert!(search_from(&empty, SUB).unwrap_err().has_errors());
        for bad in [
            Value::string_set(["mg corp"]),
            Value::string_set([format!("/subscriptions/{SUB}")]),
            Value::Set(vec![]),
        ] {
            let config = Value::object([("management_group_ids", bad)]);
            assert!(search_from(&config, SUB).unwrap_err().has_errors());
        }
    }
}
