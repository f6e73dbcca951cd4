//! Actions (Terraform 1.14+ `action` blocks), one file each.

pub mod orphan_cleanup;
