//! Subscriptions (Microsoft.Resources): the regions a subscription can use.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde_json::Value as Json;
use tokio::sync::OnceCell;

use super::arm::{ArmClient, ArmError};

pub const API_VERSION: &str = "2022-12-01";

/// A subscription's region names, read once.
type Regions = Arc<OnceCell<Arc<BTreeSet<String>>>>;

pub struct SubscriptionsClient {
    arm: Arc<ArmClient>,
    /// Region names per subscription: they do not change during one Terraform run. Callers
    /// asking at once (an estate's slices of one subscription) share one read; a failed read
    /// is not kept, so a later caller tries again.
    regions: Mutex<HashMap<String, Regions>>,
}

impl SubscriptionsClient {
    pub fn new(arm: Arc<ArmClient>) -> Self {
        SubscriptionsClient {
            arm,
            regions: Mutex::new(HashMap::new()),
        }
    }

    /// The region names (`eastus`) the subscription can use.
    pub async fn regions(&self, subscription: &str) -> Result<Arc<BTreeSet<String>>, ArmError> {
        let cell = self
            .regions
            .lock()
            .expect("regions lock")
            .entry(subscription.to_ascii_lowercase())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let mut names = BTreeSet::new();
            let mut pages = self.arm.list(
                format!("/subscriptions/{subscription}/locations"),
                API_VERSION,
            );
            while let Some(page) = pages.next().await {
                names.extend(
                    page?
                        .iter()
                        .filter_map(|location| location.get("name").and_then(Json::as_str))
                        .map(str::to_ascii_lowercase),
                );
            }
            Ok(Arc::new(names))
        })
        .await
        .cloned()
    }

    /// The tenant the subscription belongs to (its `tenantId`, lower case): another tenant
    /// than the signed-in one for a subscription reached through Azure Lighthouse. `None`
    /// when ARM answers 404 or gives no `tenantId`.
    pub async fn tenant_of(&self, subscription: &str) -> Result<Option<String>, ArmError> {
        let json = self
            .arm
            .get(&format!("/subscriptions/{subscription}"), API_VERSION)
            .await?;
        Ok(json
            .as_ref()
            .and_then(|json| json.get("tenantId"))
            .and_then(Json::as_str)
            .map(str::to_ascii_lowercase))
    }
}
