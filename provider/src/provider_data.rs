//! What resources, data sources, list resources and actions share: the configured Azure
//! clients, the stop signal and the hand-over between identity assignments. Its own module,
//! apart from the registry in `provider.rs`, so that what uses it does not import the
//! registry that imports it.

use std::sync::{Arc, OnceLock};

use tfplugin::Diagnostics;
use tokio_util::sync::CancellationToken;

use crate::azure::AzureClients;
use crate::handover::Handover;

/// What resources share: the configured Azure clients and the stop signal.
#[derive(Default)]
pub struct ProviderData {
    clients: OnceLock<Arc<AzureClients>>,
    stop: CancellationToken,
    handover: Handover,
}

impl ProviderData {
    /// The Azure clients, or a diagnostic when the provider was not configured.
    pub fn clients(&self) -> Result<Arc<AzureClients>, Diagnostics> {
        self.clients.get().cloned().ok_or_else(|| {
            let mut diagnostics = Diagnostics::default();
            diagnostics.error(
                "Provider not configured",
                "The mig provider was used before Terraform configured it. This is a bug in Terraform or in the provider; please report it.",
            );
            diagnostics
        })
    }

    /// Records the clients `configure` created. Terraform configures a provider instance
    /// once; a second call keeps the first.
    pub(crate) fn set_clients(&self, clients: AzureClients) {
        let _ = self.clients.set(Arc::new(clients));
    }

    /// Cancelled when Terraform asks the provider to stop (Ctrl-C): no new writes start.
    pub fn stop_signal(&self) -> &CancellationToken {
        &self.stop
    }

    /// What identity assignments tell each other within this provider process.
    pub fn handover(&self) -> &Handover {
        &self.handover
    }
}

/// Typed resources ([`tfplugin::typed`]) receive ready clients from here.
impl tfplugin::typed::ProviderData for ProviderData {
    type Clients = Arc<AzureClients>;

    fn ready(&self) -> Result<Arc<AzureClients>, Diagnostics> {
        self.clients()
    }
}
