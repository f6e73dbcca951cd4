//! User-assigned managed identities (Microsoft.ManagedIdentity).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value as Json};

use super::arm::{ArmClient, ArmError};
use super::ids::UserAssignedIdentityId;

pub const API_VERSION: &str = "2023-01-31";

#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub id: String,
    pub name: String,
    pub location: String,
    pub principal_id: String,
    pub client_id: String,
    pub tenant_id: String,
    pub tags: BTreeMap<String, String>,
}

impl Identity {
    fn from_json(json: &Json) -> Identity {
        let text = |pointer: &str| {
            json.pointer(pointer)
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Identity {
            id: text("/id"),
            name: text("/name"),
            location: text("/location"),
            principal_id: text("/properties/principalId"),
            client_id: text("/properties/clientId"),
            tenant_id: text("/properties/tenantId"),
            tags: super::string_map(json.get("tags")),
        }
    }
}

pub struct IdentitiesClient {
    arm: Arc<ArmClient>,
}

impl IdentitiesClient {
    pub fn new(arm: Arc<ArmClient>) -> Self {
        IdentitiesClient { arm }
    }

    pub async fn get(&self, id: &UserAssignedIdentityId) -> Result<Option<Identity>, ArmError> {
        Ok(self
            .arm
            .get(&id.to_string(), API_VERSION)
            .await?
            .as_ref()
            .map(Identity::from_json))
    }

    pub async fn create_or_update(
        &self,
        id: &UserAssignedIdentityId,
        location: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<Identity, ArmError> {
        let body = json!({"location": location, "tags": tags});
        Ok(Identity::from_json(
            &self.arm.put(&id.to_string(), API_VERSION, &body).await?,
        ))
    }

    /// [`IdentitiesClient::create_or_update`] for a create: also whether this PUT created the
    /// identity (ARM's 201) rather than found it (200: someone created it since we looked).
    pub async fn create(
        &self,
        id: &UserAssignedIdentityId,
        location: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(Identity, bool), ArmError> {
        let body = json!({"location": location, "tags": tags});
        let (status, resource) = self
            .arm
            .put_with_status(&id.to_string(), API_VERSION, &body)
            .await?;
        Ok((
            Identity::from_json(&resource),
            super::arm::put_created(status),
        ))
    }

    pub async fn delete(&self, id: &UserAssignedIdentityId) -> Result<(), ArmError> {
        self.arm.delete(&id.to_string(), API_VERSION).await
    }

    /// Every user-assigned identity in a subscription or resource group.
    pub async fn list(&self, scope: &super::ids::Scope) -> Result<Vec<Identity>, ArmError> {
        let path = format!("{scope}/providers/Microsoft.ManagedIdentity/userAssignedIdentities");
        Ok(self
            .arm
            .list_all(path, API_VERSION)
            .await?
            .iter()
            .map(Identity::from_json)
            .collect())
    }

    /// [`IdentitiesClient::list`] page by page (one read each), for listings that stream.
    pub fn pages<'a>(
        &'a self,
        scope: &super::ids::Scope,
    ) -> futures::stream::BoxStream<'a, Result<Vec<Identity>, ArmError>> {
        use futures::StreamExt;
        let path = format!("{scope}/providers/Microsoft.ManagedIdentity/userAssignedIdentities");
        self.arm
            .list(path, API_VERSION)
            .map(|page| page.map(|items| items.iter().map(Identity::from_json).collect()))
            .boxed()
    }
}
