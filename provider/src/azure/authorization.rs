//! Role assignments, role definitions and the caller's permissions
//! (Microsoft.Authorization, 2022-04-01).

use std::sync::Arc;

use reqwest::Method;
use serde_json::Value as Json;

use super::arm::{ArmClient, ArmError, Request};

pub const API_VERSION: &str = "2022-04-01";

#[derive(Debug, Clone, PartialEq)]
pub struct RoleAssignment {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub role_definition_id: String,
    pub principal_id: String,
    pub principal_type: String,
    pub created_on: Option<String>,
}

impl RoleAssignment {
    fn from_json(json: &Json) -> RoleAssignment {
        let text = |pointer: &str| {
            json.pointer(pointer)
                .and_then(Json::as_str)
                .map(str::to_string)
        };
        RoleAssignment {
            id: text("/id").unwrap_or_default(),
            name: text("/name").unwrap_or_default(),
            scope: text("/properties/scope").unwrap_or_default(),
            role_definition_id: text("/properties/roleDefinitionId").unwrap_or_default(),
            principal_id: text("/properties/principalId").unwrap_or_default(),
            principal_type: text("/properties/principalType").unwrap_or_default(),
            created_on: text("/properties/createdOn"),
        }
    }
}

/// What the caller may do at a scope: `actions` minus `not_actions`, per role.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Permission {
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
}

impl Permission {
    /// Whether `action` (like `Microsoft.Authorization/roleAssignments/delete`) is allowed,
    /// with ARM's `*` wildcards.
    pub fn allows(&self, action: &str) -> bool {
        let matches = |pattern: &String| wildcard_match(pattern, action);
        self.actions.iter().any(matches) && !self.not_actions.iter().any(matches)
    }
}

/// Whether any of the caller's permissions (one per role it holds at the scope) allows
/// `action`: ARM grants what any role allows and its own `notActions` do not take back.
pub fn allows(permissions: &[Permission], action: &str) -> bool {
    permissions.iter().any(|p| p.allows(action))
}

fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.to_ascii_lowercase(), text.to_ascii_lowercase());
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, suffix)) => {
            text.len() >= prefix.len() + suffix.len()
                && text.starts_with(prefix)
                && text.ends_with(suffix)
        }
    }
}

pub struct AuthorizationClient {
    arm: Arc<ArmClient>,
}

impl AuthorizationClient {
    pub fn new(arm: Arc<ArmClient>) -> Self {
        AuthorizationClient { arm }
    }

    /// Every assignment at or below the scope (no filter).
    pub async fn list_role_assignments_below(
        &self,
        scope: &str,
    ) -> Result<Vec<RoleAssignment>, ArmError> {
        let path = format!(
            "{}/providers/Microsoft.Authorization/roleAssignments",
            scope.trim_end_matches('/')
        );
        Ok(self
            .arm
            .list_all(path, API_VERSION)
            .await?
            .iter()
            .map(RoleAssignment::from_json)
            .collect())
    }

    /// Deletes by ID; one already gone is not an error.
    pub async fn delete_role_assignment(&self, id: &str) -> Result<(), ArmError> {
        match self
            .arm
            .send(Request::new(Method::DELETE, id, Some(API_VERSION)))
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.status == 404 => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The role's display name (`Contributor`), by role definition ID.
    pub async fn role_name(&self, role_definition_id: &str) -> Result<Option<String>, ArmError> {
        Ok(self
            .arm
            .get(role_definition_id, API_VERSION)
            .await?
            .and_then(|json| {
                json.pointer("/properties/roleName")
                    .and_then(Json::as_str)
                    .map(str::to_string)
            }))
    }

    /// The caller's permissions at a scope.
    pub async fn permissions(&self, scope: &str) -> Result<Vec<Permission>, ArmError> {
        let path = format!(
            "{}/providers/Microsoft.Authorization/permissions",
            scope.trim_end_matches('/')
        );
        let strings = |json: &Json, key: &str| -> Vec<String> {
            json.get(key)
                .and_then(Json::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(self
            .arm
            .list_all(path, API_VERSION)
            .await?
            .iter()
            .map(|json| Permission {
                actions: strings(json, "actions"),
                not_actions: strings(json, "notActions"),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_honour_wildcards_and_not_actions() {
        let contributor = Permission {
            actions: vec!["*".into()],
            not_actions: vec![
                "Microsoft.Authorization/*/Delete".into(),
                "Microsoft.Authorization/*/Write".into(),
            ],
        };
        assert!(contributor.allows("Microsoft.Compute/virtualMachines/write"));
        assert!(!contributor.allows("Microsoft.Authorization/roleAssignments/delete"));
        let owner = Permission {
            actions: vec!["*".into()],
            not_actions: vec![],
        };
        assert!(owner.allows("Microsoft.Authorization/roleAssignments/delete"));
    }
}
