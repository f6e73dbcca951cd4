//! The ARM ID parsers every `scope`, `identity_id` and ID-valued argument goes through
//! (provider/src/azure/ids.rs, compiled here as it is: it needs only `std`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use terraform_provider_mig_fuzz::MAX_INPUT;

#[allow(dead_code)]
#[path = "../../provider/src/azure/ids.rs"]
mod ids;

use ids::{normalize_location, ResourceId, Scope, UserAssignedIdentityId};

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = ResourceId::parse(text) {
        ids::validate_guid("subscription ID", &id.subscription_id).expect("parsed IDs hold a GUID");
        assert_eq!(id.provider_namespace.is_some(), id.resource_type.is_some());
        assert_eq!(id.resource_type.is_some(), id.name.is_some());
    }
    match Scope::parse(text) {
        Ok(scope) => {
            let shown = scope.to_string();
            assert_eq!(
                Scope::parse(&shown).as_ref(),
                Ok(&scope),
                "scope {shown} does not re-parse"
            );
        }
        Err(message) => assert!(!message.is_empty()),
    }
    if let Ok(identity) = UserAssignedIdentityId::parse(text) {
        let shown = identity.to_string();
        assert_eq!(
            UserAssignedIdentityId::parse(&shown).as_ref(),
            Ok(&identity)
        );
        assert!(
            shown.eq_ignore_ascii_case(text.trim_end_matches('/')),
            "{shown} is not {text}"
        );
    }
    if let Ok(location) = normalize_location(text) {
        assert_eq!(
            normalize_location(&location).as_deref(),
            Ok(location.as_str())
        );
    }
});
