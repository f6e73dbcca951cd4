//! Resource groups (Microsoft.Resources).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value as Json};

use super::arm::{ArmClient, ArmError};

pub const API_VERSION: &str = "2022-09-01";

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceGroup {
    pub id: String,
    pub name: String,
    pub location: String,
    pub tags: BTreeMap<String, String>,
}

impl ResourceGroup {
    fn from_json(json: &Json) -> ResourceGroup {
        let text = |key: &str| {
            json.get(key)
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string()
        };
        ResourceGroup {
            id: text("id"),
            name: text("name"),
            location: text("location"),
            tags: super::string_map(json.get("tags")),
        }
    }
}

pub struct ResourceGroupsClient {
    arm: Arc<ArmClient>,
}

fn path(subscription: &str, name: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/{name}")
}

impl ResourceGroupsClient {
    pub fn new(arm: Arc<ArmClient>) -> Self {
        ResourceGroupsClient { arm }
    }

    pub async fn get(
        &self,
        subscription: &str,
        name: &str,
    ) -> Result<Option<ResourceGroup>, ArmError> {
        Ok(self
            .arm
            .get(&path(subscription, name), API_VERSION)
            .await?
            .as_ref()
            .map(ResourceGroup::from_json))
    }

    /// Creates the group: also whether this PUT created it (ARM's 201) rather than found it
    /// (200: someone created it since we looked).
    pub async fn create(
        &self,
        subscription: &str,
        name: &str,
        location: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(ResourceGroup, bool), ArmError> {
        let body = json!({"location": location, "tags": tags});
        let (status, resource) = self
            .arm
            .put_with_status(&path(subscription, name), API_VERSION, &body)
            .await?;
        Ok((
            ResourceGroup::from_json(&resource),
            super::arm::put_created(status),
        ))
    }

    /// Deletes the group and waits until it is gone.
    pub async fn delete(&self, subscription: &str, name: &str) -> Result<(), ArmError> {
        self.arm
            .delete(&path(subscription, name), API_VERSION)
            .await
    }

    /// Whether the group holds no resources.
    pub async fn is_empty(&self, subscription: &str, name: &str) -> Result<bool, ArmError> {
        let resources = format!("{}/resources", path(subscription, name));
        let mut pages = self.arm.list(resources, API_VERSION);
        use futures::StreamExt;
        match pages.next().await {
            Some(page) => Ok(page?.is_empty()),
            None => Ok(true),
        }
    }
}
