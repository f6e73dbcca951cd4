//! Terraform plugin protocol v6.
