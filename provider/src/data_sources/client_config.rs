//! `mig_client_config`: who the provider is signed in as, and where. Lets a configuration
//! build scopes (`/subscriptions/${...subscription_id}`) without hard-coding them.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::typed::{DataRead, TypedDataSource};
use tfplugin::{Attribute, Block, Schema, Type};

use crate::azure::AzureClients;
use crate::provider_data::ProviderData;

pub struct ClientConfig {
    data: Arc<ProviderData>,
}

impl ClientConfig {
    pub fn new(data: Arc<ProviderData>) -> Self {
        ClientConfig { data }
    }
}

/// Every attribute is computed; all known after a read.
#[derive(Debug, Serialize, Deserialize)]
pub struct Model {
    id: Option<String>,
    subscription_id: Option<String>,
    tenant_id: Option<String>,
    client_id: Option<String>,
    object_id: Option<String>,
    resource_manager_endpoint: Option<String>,
}

#[async_trait]
impl TypedDataSource for ClientConfig {
    type Data = ProviderData;
    type Model = Model;
    const TYPE_NAME: &'static str = "mig_client_config";

    fn data(&self) -> &ProviderData {
        &self.data
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

    async fn read(&self, clients: &Arc<AzureClients>, _config: Model) -> DataRead<Model> {
        let object_id = match clients.object_id().await {
            Ok(object_id) => object_id,
            Err(error) => {
                return DataRead::failed(
                    "Cannot get a token for Azure Resource Manager",
                    &error.to_string(),
                )
            }
        };
        let subscription_id = clients.subscription_id().to_string();
        let tenant_id = clients.tenant_id().to_string();
        let id = format!(
            "{tenant_id}/{subscription_id}/{}",
            object_id.as_deref().unwrap_or_default()
        );
        DataRead::new(Model {
            id: Some(id),
            subscription_id: Some(subscription_id),
            tenant_id: Some(tenant_id),
            client_id: clients.client_id(),
            object_id,
            resource_manager_endpoint: Some(clients.resource_manager_endpoint().to_string()),
        })
    }
}
