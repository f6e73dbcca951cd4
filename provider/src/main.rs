//! `terraform-provider-mig`: Azure's built-in user-assigned managed identity policy as a
//! Terraform provider. Terraform launches this binary; run directly it explains itself.

mod actions;
mod arguments;
mod azure;
mod data_sources;
mod engine;
mod functions;
mod orphans;
mod provider;
mod provider_data;
mod resources;
mod timeouts;

use std::sync::Arc;

// The engine's pure modules, by the paths the rest of the provider has always used.
pub(crate) use engine::{handover, ownership, policy};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tfplugin::init_logging(env!("CARGO_CRATE_NAME"));
    let provider = Arc::new(provider::MigProvider::new());
    let code = match tfplugin::serve(provider.clone()).await {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("terraform-provider-mig: {error:#}");
            1
        }
    };
    // Exit without freeing what the provider holds: Terraform waits for this process to end
    // before it writes the state, and after an estate's apply (every machine listed and
    // written, hundreds of MB in small allocations) freeing it all took longer than the rest
    // of the shutdown. The operating system takes the memory back at once.
    std::mem::forget(provider);
    std::process::exit(code)
}
