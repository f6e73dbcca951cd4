//! `mig_builtin_identity` (data source): the built-in policy's identity for a subscription
//! and region, if it exists, with its lock.
//!
//! Arguments follow `crate::arguments`' rules, declared on the schema (checked at
//! validate); a region the subscription does not have is refused at read (which Terraform
//! runs at plan) against the subscription's region list, naming `location`, rather than read
//! as an identity that does not exist.

use std::sync::Arc;

use async_trait::async_trait;
use tfplugin::{
    Attribute, AttributePath, Block, DataReadRequest, DataReadResponse, DataSource, Schema, Type,
    Value,
};

use crate::arguments;
use crate::azure::ids::{self, SubscriptionId};
use crate::provider_data::ProviderData;

pub struct BuiltinIdentityLookup {
    data: Arc<ProviderData>,
}

impl BuiltinIdentityLookup {
    pub fn new(data: Arc<ProviderData>) -> Self {
        BuiltinIdentityLookup { data }
    }
}

#[async_trait]
impl DataSource for BuiltinIdentityLookup {
    fn type_name(&self) -> &'static str {
        "mig_builtin_identity"
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

    async fn read(&self, request: DataReadRequest) -> DataReadResponse {
        let mut response = DataReadResponse::default();
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                response.diagnostics = diagnostics;
                return response;
            }
        };
        let location = match ids::normalize_location(
            request.config.get("location").as_str().unwrap_or_default(),
        ) {
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
        let subscription = request
            .config
            .get("subscription_id")
            .as_str()
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
            &clients,
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
        response.state = Value::object([
            ("location", Value::from(location.as_str())),
            ("subscription_id", Value::from(subscription.as_str())),
            ("id", Value::from(id.to_string())),
            ("name", Value::from(id.name())),
            ("exists", Value::Bool(identity.is_some())),
            (
                "principal_id",
                Value::optional_string(identity.as_ref().map(|i| i.principal_id.clone())),
            ),
            (
                "client_id",
                Value::optional_string(identity.as_ref().map(|i| i.client_id.clone())),
            ),
            (
                "tenant_id",
                Value::optional_string(identity.as_ref().map(|i| i.tenant_id.clone())),
            ),
            ("locked", Value::Bool(locked)),
        ]);
        response
    }
}
