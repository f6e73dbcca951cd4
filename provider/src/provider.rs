//! The `mig` provider: its configuration block, and the registry of resources, data
//! sources, functions, actions and list resources. Configuration values are translated into the Azure
//! client's settings here; nothing below this file sees Terraform types.

use std::sync::Arc;

use async_trait::async_trait;
use tfplugin::{
    Attribute, AttributePath, Block, ConfigureRequest, DataSource, Diagnostics, Function, Provider,
    Resource, Schema, Type, Value,
};

use crate::azure::config::{ConfigError, ProviderSettings};
use crate::azure::AzureClients;

/// List resources (`terraform query`), one file each.
#[path = "list_resources/mod.rs"]
mod list_resources;

use crate::provider_data::ProviderData;

pub struct MigProvider {
    data: Arc<ProviderData>,
}

impl MigProvider {
    pub fn new() -> Self {
        MigProvider {
            data: Arc::new(ProviderData::default()),
        }
    }
}

fn string_attr(name: &str, description: &str) -> Attribute {
    Attribute::optional(name, Type::String).description(description)
}

fn bool_attr(name: &str, description: &str) -> Attribute {
    Attribute::optional(name, Type::Bool).description(description)
}

fn provider_schema() -> Schema {
    let attributes = vec![
        string_attr("subscription_id", "The subscription the resources default to. Also `ARM_SUBSCRIPTION_ID`."),
        string_attr("tenant_id", "The Microsoft Entra tenant. Also `ARM_TENANT_ID`."),
        string_attr(
            "client_id",
            "The client (application) ID, a GUID, of the service principal, or of the managed identity with `use_msi`. Also `ARM_CLIENT_ID`.",
        ),
        string_attr("client_secret", "A client secret of the service principal. Also `ARM_CLIENT_SECRET`. An empty string is refused (leave the argument out to use the environment).").sensitive(),
        string_attr(
            "client_certificate_path",
            "Path to a PKCS#12 (`.pfx`) or PEM file holding the service principal's certificate and private key. Also `ARM_CLIENT_CERTIFICATE_PATH`.",
        ),
        string_attr(
            "client_certificate_password",
            "Password of the certificate file. Also `ARM_CLIENT_CERTIFICATE_PASSWORD`.",
        )
        .sensitive(),
        bool_attr(
            "use_oidc",
            "Authenticate with a federated OIDC token (GitHub Actions, Azure DevOps, Kubernetes workload identity). Also `ARM_USE_OIDC`.",
        ),
        string_attr("oidc_token", "The OIDC ID token. Also `ARM_OIDC_TOKEN`.").sensitive(),
        string_attr("oidc_token_file_path", "A file holding the OIDC ID token. Also `ARM_OIDC_TOKEN_FILE_PATH`."),
        string_attr(
            "oidc_request_url",
            "URL from which to request an OIDC token (GitHub Actions). Also `ARM_OIDC_REQUEST_URL` / `ACTIONS_ID_TOKEN_REQUEST_URL`.",
        ),
        string_attr(
            "oidc_request_token",
            "Bearer token for `oidc_request_url`. Also `ARM_OIDC_REQUEST_TOKEN` / `ACTIONS_ID_TOKEN_REQUEST_TOKEN`.",
        )
        .sensitive(),
        bool_attr("use_msi", "Authenticate with a managed identity. Also `ARM_USE_MSI`."),
        string_attr(
            "msi_endpoint",
            "A custom managed identity endpoint (App Service style); by default IMDS. Also `ARM_MSI_ENDPOINT`.",
        ),
        bool_attr(
            "use_cli",
            "Authenticate with the Azure CLI's login when nothing else is configured. Default `true`. Also `ARM_USE_CLI`.",
        ),
        string_attr(
            "environment",
            "The cloud: `public` (default), `usgovernment` or `china`. Also `ARM_ENVIRONMENT`. Ignored with `metadata_host`.",
        ),
        string_attr(
            "metadata_host",
            "Host name of a custom cloud's metadata service; endpoints are discovered from `https://{metadata_host}/metadata/endpoints`. Also `ARM_METADATA_HOSTNAME`.",
        ),
        string_attr(
            "ca_certificate_file",
            "A PEM file with extra CA certificates to trust for every HTTPS call, token requests included (`SSL_CERT_FILE` is honoured too). Also `ARM_CA_CERTIFICATE_FILE`.",
        ),
    ];
    Schema::new(
        0,
        Block {
            attributes,
            description: "The `mig` provider brings Azure's built-in \"Assign Built-In User-Assigned Managed Identity to Virtual Machines\" policy to Terraform. Authentication follows the `azurerm` provider: the same arguments and `ARM_*` environment variables.".into(),
            ..Block::default()
        },
    )
}

/// The provider block's known values, as the Azure client's settings. Unknown values are
/// left out (they are resolved at apply time, when Terraform configures the provider again).
fn settings_from_config(config: &Value) -> ProviderSettings {
    let text = |name: &str| config.get(name).as_str().map(str::to_string);
    let flag = |name: &str| config.get(name).as_bool();
    ProviderSettings {
        subscription_id: text("subscription_id"),
        tenant_id: text("tenant_id"),
        client_id: text("client_id"),
        client_secret: text("client_secret"),
        client_certificate_path: text("client_certificate_path"),
        client_certificate_password: text("client_certificate_password"),
        use_oidc: flag("use_oidc"),
        oidc_token: text("oidc_token"),
        oidc_token_file_path: text("oidc_token_file_path"),
        oidc_request_url: text("oidc_request_url"),
        oidc_request_token: text("oidc_request_token"),
        use_msi: flag("use_msi"),
        msi_endpoint: text("msi_endpoint"),
        use_cli: flag("use_cli"),
        environment: text("environment"),
        metadata_host: text("metadata_host"),
        ca_certificate_file: text("ca_certificate_file"),
    }
}

fn push_config_errors(diagnostics: &mut Diagnostics, errors: Vec<ConfigError>) {
    for error in errors {
        diagnostics.error_at(
            AttributePath::root(error.attribute),
            &error.summary,
            &error.detail,
        );
    }
}

#[async_trait]
impl Provider for MigProvider {
    fn type_name(&self) -> &'static str {
        "mig"
    }

    fn schema(&self) -> Schema {
        provider_schema()
    }

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        let settings = settings_from_config(config);
        push_config_errors(&mut diagnostics, settings.static_errors());
        diagnostics
    }

    async fn configure(&self, request: ConfigureRequest) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        let settings = settings_from_config(&request.config);
        let config = match settings.resolve_from_process_env().await {
            Ok(config) => config,
            Err(errors) => {
                push_config_errors(&mut diagnostics, errors);
                return diagnostics;
            }
        };
        match AzureClients::new(config, &request.terraform_version) {
            Ok(clients) => {
                self.data.set_clients(clients);
            }
            Err(error) => diagnostics.error("Cannot create the Azure clients", &error.to_string()),
        }
        diagnostics
    }

    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        use crate::resources::*;
        vec![
            tfplugin::typed::resource(builtin_identity::BuiltinIdentity::new(self.data.clone())),
            tfplugin::typed::resource(identity_assignment::IdentityAssignment::new(
                self.data.clone(),
            )),
            tfplugin::typed::resource(orphan_cleanup::OrphanCleanup::new(self.data.clone())),
            tfplugin::typed::resource(estate_assignment::EstateAssignment::new(self.data.clone())),
        ]
    }

    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        use crate::data_sources::*;
        vec![
            tfplugin::typed::data_source(builtin_identity::BuiltinIdentityLookup::new(
                self.data.clone(),
            )),
            tfplugin::typed::data_source(client_config::ClientConfig::new(self.data.clone())),
            tfplugin::typed::data_source(orphaned_role_assignments::OrphanedRoleAssignments::new(
                self.data.clone(),
            )),
            tfplugin::typed::data_source(permissions::Permissions::new(self.data.clone())),
            tfplugin::typed::data_source(subscriptions::Subscriptions::new(self.data.clone())),
            tfplugin::typed::data_source(unused_identities::UnusedIdentities::new(
                self.data.clone(),
            )),
            tfplugin::typed::data_source(virtual_machines::VirtualMachines::new(self.data.clone())),
        ]
    }

    fn actions(&self) -> Vec<Arc<dyn tfplugin::Action>> {
        vec![tfplugin::typed::action(
            crate::actions::orphan_cleanup::OrphanCleanupAction::new(self.data.clone()),
        )]
    }

    fn functions(&self) -> Vec<Arc<dyn Function>> {
        crate::functions::all()
    }

    fn list_resources(&self) -> Vec<Arc<dyn tfplugin::ListResource>> {
        list_resources::all(&self.data)
    }

    async fn stop(&self) {
        self.data.stop_signal().cancel();
    }
}
