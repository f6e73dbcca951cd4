//! The Azure side: configuration and credentials, the shared ARM client, and one typed
//! client per resource family. Nothing here knows about Terraform.

pub mod arm;
pub mod authorization;
pub mod compute;
pub mod config;
pub mod credentials;
pub mod graph;
pub mod http;
pub mod identities;
pub mod ids;
pub mod locks;
pub mod management_groups;
pub mod pacing;
pub mod resource_groups;
pub mod retry;
pub mod subscriptions;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use arm::ArmError;

use config::{CloudEndpoints, ResolvedConfig};

pub struct AzureClients {
    config: ResolvedConfig,
    arm: Arc<ArmClient>,
    pub compute: compute::ComputeClient,
    pub identities: identities::IdentitiesClient,
    pub locks: locks::LocksClient,
    pub management_groups: management_groups::ManagementGroupsClient,
    pub resource_groups: resource_groups::ResourceGroupsClient,
    pub subscriptions: subscriptions::SubscriptionsClient,
    pub authorization: authorization::AuthorizationClient,
    pub graph: graph::GraphClient,
}

use arm::ArmClient;

impl AzureClients {
    pub fn new(config: ResolvedConfig, terraform_version: &str) -> Result<AzureClients, String> {
        let terraform = if terraform_version.is_empty() {
            "unknown"
        } else {
            terraform_version
        };
        let user_agent = format!(
            "terraform-provider-mig/{} Terraform/{terraform}",
            env!("CARGO_PKG_VERSION")
        );
        tracing::info!(%user_agent, "terraform-provider-mig {}", env!("CARGO_PKG_VERSION"));
        let https = http::build_client(&config.extra_ca_pems, &user_agent)?;
        // Token requests may go to IMDS, which is plain HTTP on a link-local address.
        let token_http = http::build_client_allowing_http(&config.extra_ca_pems, &user_agent)?;
        let credential = credentials::credential_for(&config, &token_http)?;
        let tokens = Arc::new(credentials::TokenProvider::new(credential));
        let arm = Arc::new(ArmClient::new(
            https.clone(),
            config.cloud.resource_manager.clone(),
            tokens.clone(),
            CloudEndpoints::scope_for(&config.cloud.resource_manager_audience),
        ));
        let graph = Arc::new(ArmClient::new(
            https,
            config.cloud.graph.clone(),
            tokens,
            CloudEndpoints::scope_for(&config.cloud.graph_audience),
        ));
        Ok(AzureClients {
            compute: compute::ComputeClient::new(arm.clone()),
            identities: identities::IdentitiesClient::new(arm.clone()),
            locks: locks::LocksClient::new(arm.clone()),
            management_groups: management_groups::ManagementGroupsClient::new(arm.clone()),
            resource_groups: resource_groups::ResourceGroupsClient::new(arm.clone()),
            subscriptions: subscriptions::SubscriptionsClient::new(arm.clone()),
            authorization: authorization::AuthorizationClient::new(arm.clone()),
            graph: graph::GraphClient::new(graph),
            arm,
            config,
        })
    }

    pub fn subscription_id(&self) -> &str {
        &self.config.subscription_id
    }

    pub fn tenant_id(&self) -> &str {
        self.config.tenant_id.as_deref().unwrap_or_default()
    }

    pub fn client_id(&self) -> Option<String> {
        self.config.client_id.clone()
    }

    pub fn resource_manager_endpoint(&self) -> &str {
        self.config.cloud.resource_manager.as_str()
    }

    /// The signed-in principal's object ID, from its ARM token.
    pub async fn object_id(&self) -> Result<Option<String>, ArmError> {
        Ok(credentials::object_id_of(&self.arm.token().await?))
    }
}

/// A JSON object of strings (tags) as a map; anything else is empty.
pub(crate) fn string_map(json: Option<&serde_json::Value>) -> BTreeMap<String, String> {
    json.and_then(serde_json::Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}
