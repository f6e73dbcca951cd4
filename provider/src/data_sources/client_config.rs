//! `mig_client_config`: who the provider is signed in as, and where. Lets a configuration
//! build scopes (`/subscriptions/${...subscription_id}`) without hard-coding them.

use std::sync::Arc;

use async_trait::async_trait;
use tfplugin::{
    Attribute, Block, DataReadRequest, DataReadResponse, DataSource, Schema, Type, Value,
};

use crate::provider_data::ProviderData;

pub struct ClientConfig {
    data: Arc<ProviderData>,
}

impl ClientConfig {
    pub fn new(data: Arc<ProviderData>) -> Self {
        ClientConfig { data }
    }
}

#[async_trait]
impl DataSource for ClientConfig {
    fn type_name(&self) -> &'static str {
        "mig_client_config"
    }

    fn schema(&self) -> Schema {
        let computed = |name: &str, description: &str| {
            Attribute::computed(name, Type::String).description(description)
        };
        Schema::new(
            0,
            Block {
                attributes: vec![
                    computed("id", "`{tenant_id}/{subscription_id}/{object_id}`."),
                    computed("subscription_id", "The provider's subscription."),
                    computed("tenant_id", "The tenant the provider signed in to."),
                    computed(
                        "client_id",
                        "The client (application) ID of the signed-in principal, when known.",
                    ),
                    computed(
                        "object_id",
                        "The object ID of the signed-in principal (from its ARM token).",
                    ),
                    computed(
                        "resource_manager_endpoint",
                        "The ARM endpoint the provider talks to.",
                    ),
                ],
                description:
                    "The subscription, tenant and principal the `mig` provider is configured with."
                        .into(),
                ..Block::default()
            },
        )
    }

    async fn read(&self, _request: DataReadRequest) -> DataReadResponse {
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                return DataReadResponse {
                    diagnostics,
                    ..DataReadResponse::default()
                }
            }
        };
        let object_id = match clients.object_id().await {
            Ok(object_id) => object_id,
            Err(error) => {
                return DataReadResponse {
                    diagnostics: tfplugin::Diagnostics::from_error(
                        "Cannot get a token for Azure Resource Manager",
                        &error.to_string(),
                    ),
                    ..DataReadResponse::default()
                }
            }
        };
        let subscription_id = clients.subscription_id().to_string();
        let tenant_id = clients.tenant_id().to_string();
        let id = format!(
            "{tenant_id}/{subscription_id}/{}",
            object_id.as_deref().unwrap_or_default()
        );
        DataReadResponse {
            state: Value::object([
                ("id", Value::String(id)),
                ("subscription_id", Value::String(subscription_id)),
                ("tenant_id", Value::String(tenant_id)),
                ("client_id", Value::optional_string(clients.client_id())),
                ("object_id", Value::optional_string(object_id)),
                (
                    "resource_manager_endpoint",
                    Value::String(clients.resource_manager_endpoint().to_string()),
                ),
            ]),
            ..DataReadResponse::default()
        }
    }
}
