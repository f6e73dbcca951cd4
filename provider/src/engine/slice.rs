//! The estate's unit: a *slice*, the machines of one subscription (or of one resource group
//! of it) in one region, with the identity they get. A `mig_estate_assignment` runs one
//! assignment object ([`crate::engine::assignment::Assignment`]) per slice. A slice is keyed
//! `{subscription_id}/{region}`, the subscription lower-cased and the region normalised.
//!
//! (Not to be confused with ARM's throttling buckets, `crate::azure::pacing`.)

use crate::azure::ids::{self, Scope};

/// One slice to plan: where, and with which identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    pub scope: Scope,
    pub identity_id: String,
}

/// The key of the slice of `subscription` in `region`.
pub fn key(subscription: &str, region: &str) -> String {
    let region = ids::normalize_location(region).unwrap_or_else(|_| region.to_string());
    format!("{}/{region}", subscription.to_ascii_lowercase())
}

/// The region part of a slice key.
pub fn region_of_key(key: &str) -> &str {
    key.rsplit_once('/').map_or(key, |(_, region)| region)
}

/// The subscription part of a slice key.
pub fn subscription_of_key(key: &str) -> &str {
    key.rsplit_once('/')
        .map_or(key, |(subscription, _)| subscription)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_names_its_subscription_and_region() {
        let key = key("ABC", "East US");
        assert_eq!(key, "abc/eastus");
        assert_eq!(region_of_key(&key), "eastus");
        assert_eq!(subscription_of_key(&key), "abc");
    }
}
