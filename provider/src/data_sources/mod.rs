//! Data sources, one file each.

pub mod builtin_identity;
pub mod client_config;
pub mod orphaned_role_assignments;
pub mod permissions;
pub mod subscriptions;
pub mod unused_identities;
pub mod virtual_machines;
