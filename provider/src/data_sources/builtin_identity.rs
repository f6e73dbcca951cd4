//! `mig_builtin_identity` (data source): the built-in policy's identity for a subscription
//! and region, if it exists, with its lock.
//!
//! Arguments follow `crate::arguments`' rules, declared on the schema (checked at
//! validate); a region the subscription does not have is refused at read (which Terraform
//! runs at plan) against the subscription's region list, naming `location`, rather than read
//! as an identity that does not exist.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::typed::{DataRead, TypedDataSource};
use tfplugin::{Attribute, AttributePath, Block, Diagnostics, Schema, Type};

use crate::arguments;
use crate::azure::ids::{self, SubscriptionId};
use crate::azure::AzureClients;
use crate::provider_data::ProviderData;

pub struct BuiltinIdentityLookup {
    data: Arc<ProviderData>,
}

impl BuiltinIdentityLookup {
    pub fn new(data: Arc<ProviderData>) -> Self {
        BuiltinIdentityLookup { data }
    }
}

/// The arguments and what the read finds; a read's configuration is known.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Model {
    location: Option<String>,
    subscription_id: Option<String>,
    id: Option<String>,
    name: Option<String>,
    exists: Option<bool>,
    principal_id: Option<String>,
    client_id: Option<String>,
    tenant_id: Option<String>,
    locked: Option<bool>,
}

#[async_trait]
impl TypedDataSource for BuiltinIdentityLookup {
    type Data = ProviderData;
    type Model = Model;
    const TYPE_NAME: &'static str = "mig_builtin_identity";

    fn data(&self) -> &ProviderData {
        &self.data
    }

    fn schema(&self) -> Schema {
        let text = |name: &str, description: &str| {
            Attribute::computed(name, Type::String).description(description)
        };
        Schema::new(
            0,
            Block {
                attributes: vec![
                    Attribute::required("location", Type::String)
                        .validator(arguments::region())
                        .description("The region (`eastus` or `East US`). One the subscription does not have is an error at plan."),
                    Attribute::optional("subscription_id", Type::String)
                        .optional_computed()
                        .validator(arguments::subscription_id())
                        .description("A GUID. Default: the provider's subscription."),
                    text("id", "The identity's resource ID (whether or not it exists)."),
                    text("name", "`Built-In-Identity-{location}`."),
                    Attribute::computed("exists", Type::Bool).description("Whether the identity exists."),
                    text("principal_id", "Object ID of its service principal; null when it does not exist."),
                    text("client_id", "Client ID; null when it does not exist."),
                    text("tenant_id", "Tenant; null when it does not exist."),
                    Attribute::computed("locked", Type::Bool)
                        .description("Whether the policy's CanNotDelete lock is on it."),
                ],
                description: "Looks up the identity Azure's built-in policy uses for a subscription and region.".into(),
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
        let location = match ids::normalize_location(config.location.as_deref().unwrap_or_default())
        {
            Ok(location) => location,
            Err(reason) => {
                response.diagnostics.error_at(
                    AttributePath::root("location"),
                    "Invalid region",
                    &reason,
                );
                return response;
            }
        };
        let subscription = config
            .subscription_id
            .as_deref()
            .unwrap_or(clients.subscription_id())
            .to_string();
        let subscription = match SubscriptionId::parse_guid(&subscription) {
            Ok(subscription) => subscription,
            Err(reason) => {
                response.diagnostics.error_at(
                    AttributePath::root("subscription_id"),
                    "Invalid subscription ID",
                    &reason,
                );
                return response;
            }
        };
        // Not "does not exist": a region the subscription lacks is a mistake in `location`.
        let unknown = arguments::check_regions_exist(
            clients,
            subscription.as_str(),
            "location",
            std::slice::from_ref(&location),
        )
        .await;
        if unknown.has_errors() {
            response.diagnostics = unknown;
            return response;
        }
        let id = ids::builtin_identity_id(&subscription, &location);
        let identity = match clients.identities.get(&id).await {
            Ok(identity) => identity,
            Err(error) => {
                response
                    .diagnostics
                    .error("Cannot read the identity", &error.to_string());
                return response;
            }
        };
        let locked = match &identity {
            Some(_) => match clients
                .locks
                .get(&id.to_string(), &ids::builtin_lock_name(id.name()))
                .await
            {
                Ok(lock) => lock.is_some(),
                Err(error) => {
                    response
                        .diagnostics
                        .error("Cannot read the lock", &error.to_string());
                    return response;
                }
            },
            None => false,
        };
        response.state = Some(Model {
            location: Some(location),
            subscription_id: Some(subscription.as_str().to_string()),
            id: Some(id.to_string()),
            name: Some(id.name().to_string()),
            exists: Some(identity.is_some()),
            principal_id: identity.as_ref().map(|i| i.principal_id.clone()),
            client_id: identity.as_ref().map(|i| i.client_id.clone()),
            tenant_id: identity.as_ref().map(|i| i.tenant_id.clone()),
            locked: Some(locked),
        });
        response
    }
}
