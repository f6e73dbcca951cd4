//! Real-Terraform acceptance harness.
//!
//! Every test here runs the real `terraform` (or `tofu`) CLI, which launches the real
//! `terraform-provider-mig` binary over gRPC with AutoMTLS, which talks HTTPS to the real
//! `azure-emulator` process. Nothing is faked in-process.
//!
//! Binaries are taken from `target/debug` (or `MIG_PROVIDER_BIN` / `MIG_EMULATOR_BIN`);
//! `make testacc` builds them first. The Terraform binary comes from `MIG_TF_BIN`, else
//! `scripts/install-terraform` (which prefers `terraform`/`tofu` on PATH).

mod emulator;
pub mod plugin_client;
mod terraform;

pub use emulator::{configuration, Emulator, ReadyInfo};
pub use terraform::{provider_version, terraform_has, terraform_minor, CommandOutput, Workdir};

use std::path::PathBuf;

/// The workspace root (the folder holding the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("acceptance-tests lives inside the workspace")
        .to_path_buf()
}

/// Path of a binary built by this workspace, overridable through `env_var`.
pub fn workspace_binary(env_var: &str, name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env_var) {
        return PathBuf::from(path);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} not found at {}; run `make build` (or `cargo build --bins`) first, or set {env_var}",
        name,
        path.display()
    );
    path
}
