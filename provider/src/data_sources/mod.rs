//! Data sources, one file each.

pub mod builtin_identity;
pub mod client_config;
pub mod orphaned_role_assignments;
pub mod permissions;
pub mod unused_identities;
pub mod virtual_machines;

use tfplugin::Validator;

use crate::azure::ids::Scope;

/// A subscription or resource group ID.
pub(crate) fn scope_validator() -> Validator {
    Validator::string("Invalid scope", |scope| Scope::parse(scope).map(|_| ()))
}
