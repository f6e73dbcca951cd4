//! The provider's Azure settings: block arguments merged with `ARM_*` environment variables
//! under azurerm's names and precedence, checked, and resolved into one authentication
//! method and one cloud's endpoints.

mod auth;
mod ca;
mod cloud;
#[cfg(test)]
mod tests;

use std::fmt;

use url::Url;

use super::ids;

pub use auth::{AuthMethod, OidcSource};
pub use cloud::CloudEndpoints;

use ca::read_ca_files;
use cloud::{cloud_by_name, discover_endpoints};

/// A problem with the settings, naming the provider argument it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub attribute: String,
    pub summary: String,
    pub detail: String,
}

fn config_error(attribute: &str, summary: &str, detail: impl Into<String>) -> ConfigError {
    ConfigError {
        attribute: attribute.to_string(),
        summary: summary.to_string(),
        detail: detail.into(),
    }
}

/// What the provider block says; `None` means not set there.
#[derive(Clone, Default)]
pub struct ProviderSettings {
    pub subscription_id: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_certificate_path: Option<String>,
    pub client_certificate_password: Option<String>,
    pub use_oidc: Option<bool>,
    pub oidc_token: Option<String>,
    pub oidc_token_file_path: Option<String>,
    pub oidc_request_url: Option<String>,
    pub oidc_request_token: Option<String>,
    pub use_msi: Option<bool>,
    pub msi_endpoint: Option<String>,
    pub use_cli: Option<bool>,
    pub environment: Option<String>,
    pub metadata_host: Option<String>,
    pub ca_certificate_file: Option<String>,
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |value: &Option<String>| value.as_ref().map(|_| "<redacted>");
        f.debug_struct("ProviderSettings")
            .field("subscription_id", &self.subscription_id)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &secret(&self.client_secret))
            .field("client_certificate_path", &self.client_certificate_path)
            .field(
                "client_certificate_password",
                &secret(&self.client_certificate_password),
            )
            .field("use_oidc", &self.use_oidc)
            .field("oidc_token", &secret(&self.oidc_token))
            .field("oidc_request_token", &secret(&self.oidc_request_token))
            .field("use_msi", &self.use_msi)
            .field("msi_endpoint", &self.msi_endpoint)
            .field("use_cli", &self.use_cli)
            .field("environment", &self.environment)
            .field("metadata_host", &self.metadata_host)
            .field("ca_certificate_file", &self.ca_certificate_file)
            .finish_non_exhaustive()
    }
}

/// Settings resolved: one authentication method, one cloud, the CAs to trust.
#[derive(Clone, Debug)]
pub struct ResolvedConfig {
    pub subscription_id: String,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub auth: AuthMethod,
    pub cloud: CloudEndpoints,
    /// PEM bundles of CAs to trust on top of the public roots.
    pub extra_ca_pems: Vec<Vec<u8>>,
}

fn parse_bool(name: &str, text: &str) -> Result<bool, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" => Ok(true),
        "0" | "false" | "f" | "no" | "" => Ok(false),
        _ => Err(config_error(
            name,
            "Invalid boolean in the environment",
            format!("{text:?} is not true or false."),
        )),
    }
}

/// A value set to something other than blanks (blank ones are reported once, as empty).
fn set(value: &Option<String>) -> Option<&String> {
    value.as_ref().filter(|v| !v.trim().is_empty())
}

fn is_loopback_or_imds(url: &Url) -> bool {
    matches!(
        url.host_str(),
        Some("169.254.169.254" | "localhost" | "127.0.0.1" | "[::1]")
    )
}

impl ProviderSettings {
    /// The string arguments with their environment variables, for the messages.
    fn texts(&self) -> [(&'static str, &'static str, &Option<String>); 13] {
        [
            (
                "subscription_id",
                "ARM_SUBSCRIPTION_ID",
                &self.subscription_id,
            ),
            ("tenant_id", "ARM_TENANT_ID", &self.tenant_id),
            ("client_id", "ARM_CLIENT_ID", &self.client_id),
            ("client_secret", "ARM_CLIENT_SECRET", &self.client_secret),
            (
                "client_certificate_path",
                "ARM_CLIENT_CERTIFICATE_PATH",
                &self.client_certificate_path,
            ),
            (
                "client_certificate_password",
                "ARM_CLIENT_CERTIFICATE_PASSWORD",
                &self.client_certificate_password,
            ),
            ("oidc_token", "ARM_OIDC_TOKEN", &self.oidc_token),
            (
                "oidc_token_file_path",
                "ARM_OIDC_TOKEN_FILE_PATH",
                &self.oidc_token_file_path,
            ),
            (
                "oidc_request_url",
                "ARM_OIDC_REQUEST_URL",
                &self.oidc_request_url,
            ),
            (
                "oidc_request_token",
                "ARM_OIDC_REQUEST_TOKEN",
                &self.oidc_request_token,
            ),
            ("msi_endpoint", "ARM_MSI_ENDPOINT", &self.msi_endpoint),
            ("environment", "ARM_ENVIRONMENT", &self.environment),
            (
                "metadata_host",
                "ARM_METADATA_HOSTNAME",
                &self.metadata_host,
            ),
        ]
    }

    /// Problems visible in the provider block alone (`terraform validate`), and again in
    /// the block merged with the environment at configure.
    pub fn static_errors(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        // An empty string is a value, not an absence: it would win over the environment and
        // fail later, far from here. (Empty environment variables count as unset.)
        let mut blank = Vec::new();
        for (name, variable, value) in self.texts().into_iter().chain([(
            "ca_certificate_file",
            "ARM_CA_CERTIFICATE_FILE",
            &self.ca_certificate_file,
        )]) {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                blank.push(name);
                errors.push(config_error(
                    name,
                    &format!("Empty `{name}`"),
                    format!("`{name}` is set to an empty string. Give it a value, or leave it out (null) to take `{variable}` from the environment or use another authentication method."),
                ));
            }
        }
        if let Some(environment) = set(&self.environment) {
            if cloud_by_name(environment).is_none() {
                errors.push(config_error(
                    "environment",
                    "Unknown Azure environment",
                    format!("`environment` = {environment:?}; use \"public\", \"usgovernment\" or \"china\", or `metadata_host` for another cloud (also `ARM_ENVIRONMENT`)."),
                ));
            }
        }
        if let Some(host) = set(&self.metadata_host) {
            if host.contains("://") || host.contains('/') || host.contains(char::is_whitespace) {
                errors.push(config_error(
                    "metadata_host",
                    "Invalid metadata host",
                    format!("`metadata_host` = {host:?}; give a host name (and port) only, like \"management.azure.com\"; the provider reads https://{{metadata_host}}/metadata/endpoints (also `ARM_METADATA_HOSTNAME`)."),
                ));
            }
        }
        if let Some(subscription) = set(&self.subscription_id) {
            if let Err(reason) = ids::validate_guid("subscription ID", subscription) {
                errors.push(config_error(
                    "subscription_id",
                    "Invalid subscription ID",
                    format!("{reason} (`subscription_id`, or `ARM_SUBSCRIPTION_ID`)."),
                ));
            }
        }
        if let Some(client) = set(&self.client_id) {
            if let Err(reason) = ids::validate_guid("client ID", client) {
                errors.push(config_error(
                    "client_id",
                    "Invalid client ID",
                    format!("{reason}. `client_id` (or `ARM_CLIENT_ID`) is the application (client) ID of the service principal or managed identity, as the portal shows it, not its name or object ID's path."),
                ));
            }
        }
        if let Some(tenant) = set(&self.tenant_id) {
            let domain = tenant.contains('.') && !tenant.contains(['/', ' ']);
            if ids::validate_guid("tenant ID", tenant).is_err() && !domain {
                errors.push(config_error(
                    "tenant_id",
                    "Invalid tenant ID",
                    format!("`tenant_id` = {tenant:?} is neither a GUID nor a domain like contoso.onmicrosoft.com (also `ARM_TENANT_ID`)."),
                ));
            }
        }
        if let Some(endpoint) = set(&self.msi_endpoint) {
            match Url::parse(endpoint) {
                Ok(url) if url.scheme() == "https" || (url.scheme() == "http" && is_loopback_or_imds(&url)) => {}
                Ok(_) => errors.push(config_error(
                    "msi_endpoint",
                    "Insecure managed identity endpoint",
                    format!("`msi_endpoint` = {endpoint:?}: tokens only travel over https://, or plain http:// to IMDS (169.254.169.254) or localhost."),
                )),
                Err(e) => errors.push(config_error("msi_endpoint", "Invalid managed identity endpoint", format!("`msi_endpoint` = {endpoint:?}: {e}. Give a full URL like \"http://169.254.169.254/metadata/identity/oauth2/token\" (also `ARM_MSI_ENDPOINT`)."))),
            }
        }
        let explicit: Vec<&str> = [
            (self.client_secret.is_some(), "client_secret"),
            (
                self.client_certificate_path.is_some(),
                "client_certificate_path",
            ),
            (self.use_oidc == Some(true), "use_oidc"),
            (self.use_msi == Some(true), "use_msi"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .filter(|name| !blank.contains(name))
        .collect();
        if explicit.len() > 1 {
            errors.push(config_error(
                explicit[1],
                "Two authentication methods at once",
                format!(
                    "The provider block sets {}; keep exactly one of `client_secret`, `client_certificate_path`, `use_oidc` and `use_msi`.",
                    explicit.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" and ")
                ),
            ));
        }
        errors
    }

    /// Merges `ARM_*` from this process's environment and resolves the settings.
    pub async fn resolve_from_process_env(self) -> Result<ResolvedConfig, Vec<ConfigError>> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        self.resolve_with(&env).await
    }

    /// Like `resolve_from_process_env`, with the environment given (for tests).
    pub async fn resolve_with(
        self,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<ResolvedConfig, Vec<ConfigError>> {
        let merged = self.merged_with(env)?;
        let mut errors = merged.static_errors();
        if !errors.is_empty() {
            return Err(errors);
        }
        let extra_ca_pems = match read_ca_files(&merged, env) {
            Ok(pems) => pems,
            Err(error) => return Err(vec![error]),
        };
        let subscription_id = match &merged.subscription_id {
            Some(subscription) => subscription.clone(),
            None => {
                errors.push(config_error(
                    "subscription_id",
                    "No subscription",
                    "Set `subscription_id` in the provider block or `ARM_SUBSCRIPTION_ID` in the environment.",
                ));
                String::new()
            }
        };
        let auth = match merged.auth_method() {
            Ok(auth) => Some(auth),
            Err(mut auth_errors) => {
                errors.append(&mut auth_errors);
                None
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let auth = auth.expect("no errors means an auth method");
        let cloud = match &merged.metadata_host {
            Some(host) => discover_endpoints(host, &extra_ca_pems)
                .await
                .map_err(|e| vec![e])?,
            None => merged
                .environment
                .as_deref()
                .map_or_else(|| Some(CloudEndpoints::public()), cloud_by_name)
                .expect("checked by static_errors"),
        };
        Ok(ResolvedConfig {
            subscription_id,
            tenant_id: merged.tenant_id,
            client_id: merged.client_id,
            auth,
            cloud,
            extra_ca_pems,
        })
    }

    /// The block's settings with the environment filling what the block leaves out.
    fn merged_with(
        self,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<ProviderSettings, Vec<ConfigError>> {
        let text = |value: Option<String>, names: &[&str]| {
            value.or_else(|| names.iter().find_map(|n| env(n)))
        };
        let mut errors = Vec::new();
        let mut flag = |value: Option<bool>, name: &str| -> Option<bool> {
            value.or_else(|| match env(name).map(|t| parse_bool(name, &t)) {
                Some(Ok(flag)) => Some(flag),
                Some(Err(error)) => {
                    errors.push(error);
                    None
                }
                None => None,
            })
        };
        let use_oidc = flag(self.use_oidc, "ARM_USE_OIDC");
        let use_msi = flag(self.use_msi, "ARM_USE_MSI");
        let use_cli = flag(self.use_cli, "ARM_USE_CLI");
        let explicitly_other = self.client_secret.is_some()
            || self.client_certificate_path.is_some()
            || self.use_oidc == Some(true)
            || self.use_msi == Some(true);
        // A method chosen in the block is not contradicted by credentials of another method
        // lying around in the environment.
        let from_env_unless_block_chose =
            |value: Option<String>, names: &[&str], this_chosen: bool| {
                if value.is_some() || !explicitly_other || this_chosen {
                    text(value, names)
                } else {
                    value
                }
            };
        let merged = ProviderSettings {
            subscription_id: text(self.subscription_id, &["ARM_SUBSCRIPTION_ID"]),
            tenant_id: text(self.tenant_id, &["ARM_TENANT_ID"]),
            client_id: text(self.client_id, &["ARM_CLIENT_ID"]),
            client_secret: from_env_unless_block_chose(
                self.client_secret,
                &["ARM_CLIENT_SECRET"],
                false,
            ),
            client_certificate_path: from_env_unless_block_chose(
                self.client_certificate_path,
                &["ARM_CLIENT_CERTIFICATE_PATH"],
                false,
            ),
            client_certificate_password: text(
                self.client_certificate_password,
                &["ARM_CLIENT_CERTIFICATE_PASSWORD"],
            ),
            use_oidc: if explicitly_other && self.use_oidc.is_none() {
                None
            } else {
                use_oidc
            },
            oidc_token: text(self.oidc_token, &["ARM_OIDC_TOKEN"]),
            oidc_token_file_path: text(self.oidc_token_file_path, &["ARM_OIDC_TOKEN_FILE_PATH"]),
            oidc_request_url: text(
                self.oidc_request_url,
                &["ARM_OIDC_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_URL"],
            ),
            oidc_request_token: text(
                self.oidc_request_token,
                &["ARM_OIDC_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"],
            ),
            use_msi: if explicitly_other && self.use_msi.is_none() {
                None
            } else {
                use_msi
            },
            msi_endpoint: text(self.msi_endpoint, &["ARM_MSI_ENDPOINT"]),
            use_cli,
            environment: text(self.environment, &["ARM_ENVIRONMENT"]),
            metadata_host: text(self.metadata_host, &["ARM_METADATA_HOSTNAME"]),
            ca_certificate_file: text(self.ca_certificate_file, &["ARM_CA_CERTIFICATE_FILE"]),
        };
        if errors.is_empty() {
            Ok(merged)
        } else {
            Err(errors)
        }
    }
}
