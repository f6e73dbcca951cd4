//! Managed resources, one file each.

pub mod builtin_identity;
pub mod identity;
pub mod identity_assignment;
pub mod orphan_cleanup;
