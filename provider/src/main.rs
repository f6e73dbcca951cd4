//! `terraform-provider-mig`: Azure's built-in user-assigned managed identity policy as a
//! Terraform provider. Terraform launches this binary; run directly it explains itself.

mod actions;
mod arguments;
mod azure;
mod data_sources;
mod functions;
mod handover;
mod orphans;
mod ownership;
mod policy;
mod provider;
mod resources;
mod timeouts;

use std::sync::Arc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    tfplugin::init_logging();
    match tfplugin::serve(Arc::new(provider::MigProvider::new())).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("terraform-provider-mig: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
