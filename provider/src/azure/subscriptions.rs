//! Subscriptions (Microsoft.Resources): the regions a subscription can use.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use serde_json::Value as Json;

use super::arm::{ArmClient, ArmError};

pub const API_VERSION: &str = "2022-12-01";

pub struct SubscriptionsClient {
    arm: Arc<ArmClient>,
    /// Region names per subscription: they do not change during one Terraform run.
    regions: Mutex<HashMap<String, Arc<BTreeSet<String>>>>,
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
        let key = subscription.to_ascii_lowercase();
        if let Some(known) = self.regions.lock().expect("regions lock").get(&key) {
            return Ok(known.clone());
        }
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
        let names = Arc::new(names);
        self.regions
            .lock()
            .expect("regions lock")
            .insert(key, names.clone());
        Ok(names)
    }
}
