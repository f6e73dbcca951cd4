//! Managed resources, one file each.

pub mod builtin_identity;
pub mod estate_assignment;
pub mod identity;
pub mod identity_assignment;
pub mod orphan_cleanup;
