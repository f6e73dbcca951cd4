//! Managed resources, one file each.

pub mod identity_assignment;
