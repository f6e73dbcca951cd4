//! Data sources, one file each.

pub mod client_config;
pub mod virtual_machines;
