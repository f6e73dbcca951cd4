//! Management groups (Microsoft.Management) and the subscriptions a principal can see: the
//! estate a configuration covers, as the built-in policy covers everything under the group it
//! is assigned to.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value as Json;

use super::arm::{ArmClient, ArmError};

/// The newest stable Microsoft.Management api-version (azure-mgmt-managementgroups 2.0.0's).
pub const API_VERSION: &str = "2023-04-01";
/// Microsoft.Resources, for `GET /subscriptions`.
pub const SUBSCRIPTIONS_API_VERSION: &str = super::subscriptions::API_VERSION;

const GROUP_PREFIX: &str = "/providers/Microsoft.Management/managementGroups/";

/// A subscription as far as an estate goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    /// The GUID, lower case.
    pub subscription_id: String,
    pub display_name: String,
    /// `Enabled`, `Warned`, `PastDue`, `Disabled`, `Deleted`; `None` when ARM did not say
    /// (a subscription found under a group but not in `GET /subscriptions`).
    pub state: Option<String>,
}

/// Subscription states in which ARM still takes writes (`Active` is the management group
/// API's word for `Enabled`). ARM refuses creates, updates and actions in a `Disabled` or
/// `Deleted` one (`ReadOnlyDisabledSubscription`); a state this list does not know is taken
/// as refusing too, so that nothing is planned that cannot be written.
const WRITABLE_STATES: [&str; 4] = ["Enabled", "Warned", "PastDue", "Active"];

impl SubscriptionInfo {
    /// Whether ARM refuses writes in the subscription, by its state (`None`: not known, as
    /// for a subscription found under a group but not in `GET /subscriptions`: writable).
    pub fn refuses_writes(&self) -> bool {
        self.state.as_deref().is_some_and(|state| {
            !WRITABLE_STATES
                .iter()
                .any(|writable| writable.eq_ignore_ascii_case(state))
        })
    }
}

/// A management group's name from its name or its ID
/// (`/providers/Microsoft.Management/managementGroups/{name}`, any casing, trailing `/`).
pub fn group_name(text: &str) -> &str {
    let trimmed = text.trim_end_matches('/');
    if trimmed.len() > GROUP_PREFIX.len()
        && trimmed[..GROUP_PREFIX.len()].eq_ignore_ascii_case(GROUP_PREFIX)
    {
        &trimmed[GROUP_PREFIX.len()..]
    } else {
        trimmed
    }
}

/// The ARM ID of the management group named `name`.
pub fn group_id(name: &str) -> String {
    format!("{GROUP_PREFIX}{name}")
}

pub struct ManagementGroupsClient {
    arm: Arc<ArmClient>,
}

impl ManagementGroupsClient {
    pub fn new(arm: Arc<ArmClient>) -> Self {
        ManagementGroupsClient { arm }
    }

    /// Every subscription the principal can see (`GET /subscriptions`), sorted by ID.
    pub async fn visible_subscriptions(&self) -> Result<Vec<SubscriptionInfo>, ArmError> {
        let items = self
            .arm
            .list_all("/subscriptions".to_string(), SUBSCRIPTIONS_API_VERSION)
            .await?;
        let mut out: Vec<SubscriptionInfo> = items.iter().filter_map(subscription_of).collect();
        out.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
        out.dedup_by(|a, b| a.subscription_id == b.subscription_id);
        Ok(out)
    }

    /// One subscription (`GET /subscriptions/{id}`), with its state; `None` when ARM does
    /// not know it (or the principal may not see it).
    pub async fn subscription(
        &self,
        subscription: &str,
    ) -> Result<Option<SubscriptionInfo>, ArmError> {
        let found = self
            .arm
            .get(
                &format!("/subscriptions/{subscription}"),
                SUBSCRIPTIONS_API_VERSION,
            )
            .await?;
        Ok(found.as_ref().and_then(subscription_of))
    }

    /// The subscriptions anywhere below the management group `group` (a name), from its
    /// descendants (one read per page), sorted by ID; states from `GET /subscriptions`.
    pub async fn subscriptions_under(
        &self,
        group: &str,
    ) -> Result<Vec<SubscriptionInfo>, ArmError> {
        let mut found: BTreeMap<String, SubscriptionInfo> = self
            .descendant_subscriptions(group)
            .await?
            .into_iter()
            .map(|s| (s.subscription_id.clone(), s))
            .collect();
        if found.is_empty() {
            return Ok(Vec::new());
        }
        for visible in self.visible_subscriptions().await? {
            if let Some(entry) = found.get_mut(&visible.subscription_id) {
                entry.state = visible.state;
                if entry.display_name.is_empty() {
                    entry.display_name = visible.display_name;
                }
            }
        }
        Ok(found.into_values().collect())
    }

    /// The subscriptions anywhere below the management group `group` (a name), from its
    /// descendants alone (one read per page), sorted by ID, without states.
    pub async fn descendant_subscriptions(
        &self,
        group: &str,
    ) -> Result<Vec<SubscriptionInfo>, ArmError> {
        let descendants = self
            .arm
            .list_all(format!("{}/descendants", group_id(group)), API_VERSION)
            .await?;
        let found: BTreeMap<String, SubscriptionInfo> = descendants
            .iter()
            .filter(|d| {
                d.get("type")
                    .and_then(Json::as_str)
                    .is_some_and(|t| t.to_ascii_lowercase().ends_with("/subscriptions"))
            })
            .filter_map(|d| {
                let id = d.get("name").and_then(Json::as_str)?.to_ascii_lowercase();
                Some((
                    id.clone(),
                    SubscriptionInfo {
                        subscription_id: id,
                        display_name: d
                            .pointer("/properties/displayName")
                            .and_then(Json::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        state: None,
                    },
                ))
            })
            .collect();
        Ok(found.into_values().collect())
    }
}

fn subscription_of(json: &Json) -> Option<SubscriptionInfo> {
    let text = |name: &str| json.get(name).and_then(Json::as_str).map(str::to_string);
    let id = text("subscriptionId")
        .or_else(|| text("id").map(|id| id.trim_start_matches("/subscriptions/").to_string()))?;
    Some(SubscriptionInfo {
        subscription_id: id.to_ascii_lowercase(),
        display_name: text("displayName").unwrap_or_default(),
        state: text("state"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_deleted_and_unknown_states_refuse_writes() {
        let with = |state: Option<&str>| SubscriptionInfo {
            subscription_id: "aaaa".into(),
            display_name: String::new(),
            state: state.map(str::to_string),
        };
        for state in ["Disabled", "Deleted", "Expired"] {
            assert!(with(Some(state)).refuses_writes(), "{state}");
        }
        for state in ["Enabled", "enabled", "Warned", "PastDue", "Active"] {
            assert!(!with(Some(state)).refuses_writes(), "{state}");
        }
        assert!(
            !with(None).refuses_writes(),
            "not known: its listing decides"
        );
    }

    #[test]
    fn group_names_come_from_names_or_ids() {
        assert_eq!(group_name("mg-corp"), "mg-corp");
        assert_eq!(
            group_name("/providers/microsoft.management/managementgroups/mg-corp/"),
            "mg-corp"
        );
        assert_eq!(group_id("mg-corp"), format!("{GROUP_PREFIX}mg-corp"));
    }

    #[tokio::test]
    async fn subscriptions_under_a_group_come_from_its_descendants_with_their_states() {
        use crate::azure::arm::test_support::{client, ok};
        let (arm, _) = client(|request, _| {
            let path = request.url().path().to_string();
            if path.ends_with("/descendants") {
                ok(&serde_json::json!({"value": [
                    {"name": "mg-child", "type": "Microsoft.Management/managementGroups",
                     "properties": {"displayName": "Child"}},
                    {"name": "BBBB", "type": "Microsoft.Management/managementGroups/subscriptions",
                     "properties": {"displayName": "B"}},
                    {"name": "aaaa", "type": "/subscriptions", "properties": {"displayName": "A"}}
                ]})
                .to_string())
            } else {
                ok(&serde_json::json!({"value": [
                    {"subscriptionId": "aaaa", "displayName": "A", "state": "Enabled"},
                    {"subscriptionId": "cccc", "displayName": "C", "state": "Enabled"}
                ]})
                .to_string())
            }
        });
        let groups = ManagementGroupsClient::new(arm);
        let found = groups.subscriptions_under("mg").await.unwrap();
        assert_eq!(
            found,
            vec![
                SubscriptionInfo {
                    subscription_id: "aaaa".into(),
                    display_name: "A".into(),
                    state: Some("Enabled".into()),
                },
                SubscriptionInfo {
                    subscription_id: "bbbb".into(),
                    display_name: "B".into(),
                    state: None,
                },
            ]
        );
    }
}
