//! List resources (`terraform query`, Terraform 1.14+): what the built-in policy made, found
//! by its naming, as objects to adopt.
//!
//! Both list the policy's identities: `Built-In-Identity-*` in `Built-In-Identity-RG` (or the
//! configured group) of each subscription given (the provider's by default). Management
//! groups are not walked: the emulator does not serve them, so that path could not be tested;
//! name the subscriptions instead.
//!
//! Listing is cheap: one read per page of identities per subscription, and results are sent to
//! Terraform as each page arrives. `include_resource` adds, per subscription, one read of the
//! group and one of its locks (`mig_builtin_identity`), or one listing of the machines shared
//! by every region (`mig_identity_assignment`). Listing stops at `limit`.

mod builtin_identity;
mod identity_assignment;

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::stream::BoxStream;
use futures::StreamExt;
use serde::Deserialize;
use tfplugin::{model, Attribute, Block, Diagnostics, ListResource, ListSink, Schema, Type, Value};

use crate::arguments;
use crate::azure::identities::Identity;
use crate::azure::ids::{self, Scope};
use crate::azure::AzureClients;
use crate::provider::ProviderData;

pub fn all(data: &Arc<ProviderData>) -> Vec<Arc<dyn ListResource>> {
    vec![
        Arc::new(builtin_identity::BuiltinIdentities::new(data.clone())),
        Arc::new(identity_assignment::IdentityAssignments::new(data.clone())),
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
                    .description("Subscriptions (GUIDs) to look in. Default: the provider's subscription."),
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

#[derive(Debug, Default, Deserialize)]
struct Config {
    subscription_ids: Option<Vec<String>>,
    resource_group_name: Option<String>,
    locations: Option<Vec<String>>,
}

/// Where to look, with the defaults applied.
#[derive(Debug, Clone, PartialEq)]
struct Search {
    subscriptions: Vec<String>,
    resource_group: String,
    /// Normalised (`eastus`); `None` for every region.
    locations: Option<BTreeSet<String>>,
}

/// The prefix of the policy's identity names.
const POLICY_NAME_PREFIX: &str = "Built-In-Identity-";

fn validate(config: &Value) -> Diagnostics {
    let mut diagnostics = schema("").block.validate(config);
    diagnostics.extend(arguments::check_not_empty(
        config,
        "subscription_ids",
        "No subscriptions",
        "An empty list looks nowhere. Name at least one subscription, or leave `subscription_ids` out for the provider's.",
    ));
    diagnostics.extend(arguments::check_not_empty(
        config,
        "locations",
        "No regions",
        "An empty set matches no identity. Name at least one region, or leave `locations` out for every region.",
    ));
    diagnostics
}

fn search_from(config: &Value, provider_subscription: &str) -> Result<Search, Diagnostics> {
    let problems = validate(config);
    if problems.has_errors() {
        return Err(problems);
    }
    let config: Config = model::decode(config)?;
    let mut subscriptions: Vec<String> = Vec::new();
    for subscription in config
        .subscription_ids
        .unwrap_or_else(|| vec![provider_subscription.to_string()])
    {
        if !subscriptions
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&subscription))
        {
            subscriptions.push(subscription);
        }
    }
    Ok(Search {
        subscriptions,
        resource_group: config
            .resource_group_name
            .unwrap_or(ids::BUILTIN_RESOURCE_GROUP.to_string()),
        locations: config.locations.map(|list| {
            list.iter()
                .filter_map(|l| ids::normalize_location(l).ok())
                .collect()
        }),
    })
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

/// Counts what was sent against `limit` (0: none) and stops at it or when Terraform stopped
/// listening.
struct Sender {
    sink: ListSink,
    sent: i64,
    limit: i64,
}

impl Sender {
    fn new(sink: ListSink, limit: i64) -> Sender {
        Sender {
            sink,
            sent: 0,
            limit,
        }
    }

    fn full(&self) -> bool {
        self.limit > 0 && self.sent >= self.limit
    }

    /// Sends one result; false when no more should be sent.
    async fn send(&mut self, result: tfplugin::ListResult) -> bool {
        if self.full() || !self.sink.push(result).await {
            return false;
        }
        self.sent += 1;
        !self.full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(search.resource_group, "Built-In-Identity-RG");
        assert_eq!(search.locations, None);
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
    }
}
