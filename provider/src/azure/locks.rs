//! Management locks (Microsoft.Authorization/locks) at any scope.

use std::sync::Arc;

use serde_json::{json, Value as Json};

use super::arm::{ArmClient, ArmError};

pub const API_VERSION: &str = "2020-05-01";

#[derive(Debug, Clone, PartialEq)]
pub struct Lock {
    pub id: String,
    pub name: String,
    pub level: String,
    pub notes: Option<String>,
}

impl Lock {
    fn from_json(json: &Json) -> Lock {
        let text = |pointer: &str| {
            json.pointer(pointer)
                .and_then(Json::as_str)
                .map(str::to_string)
        };
        Lock {
            id: text("/id").unwrap_or_default(),
            name: text("/name").unwrap_or_default(),
            level: text("/properties/level").unwrap_or_default(),
            notes: text("/properties/notes"),
        }
    }
}

pub struct LocksClient {
    arm: Arc<ArmClient>,
}

fn path(scope: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Authorization/locks/{name}",
        scope.trim_end_matches('/')
    )
}

impl LocksClient {
    pub fn new(arm: Arc<ArmClient>) -> Self {
        LocksClient { arm }
    }

    pub async fn get(&self, scope: &str, name: &str) -> Result<Option<Lock>, ArmError> {
        Ok(self
            .arm
            .get(&path(scope, name), API_VERSION)
            .await?
            .as_ref()
            .map(Lock::from_json))
    }

    pub async fn create_or_update(
        &self,
        scope: &str,
        name: &str,
        level: &str,
        notes: &str,
    ) -> Result<Lock, ArmError> {
        let body = json!({"properties": {"level": level, "notes": notes}});
        Ok(Lock::from_json(
            &self.arm.put(&path(scope, name), API_VERSION, &body).await?,
        ))
    }

    pub async fn delete(&self, scope: &str, name: &str) -> Result<(), ArmError> {
        self.arm.delete(&path(scope, name), API_VERSION).await
    }

    /// Every lock at `scope` and below it (one read per page).
    pub async fn list(&self, scope: &str) -> Result<Vec<Lock>, ArmError> {
        let path = format!(
            "{}/providers/Microsoft.Authorization/locks",
            scope.trim_end_matches('/')
        );
        Ok(self
            .arm
            .list_all(path, API_VERSION)
            .await?
            .iter()
            .map(Lock::from_json)
            .collect())
    }
}
