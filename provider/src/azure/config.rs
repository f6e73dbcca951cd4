//! The provider's Azure settings: block arguments merged with `ARM_*` environment variables
//! under azurerm's names and precedence, checked, and resolved into one authentication
//! method and one cloud's endpoints.

use std::fmt;

use url::Url;

use super::ids;

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

/// A cloud's endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEndpoints {
    pub name: String,
    pub resource_manager: Url,
    pub authority_host: Url,
    /// The audience ARM tokens are requested for.
    pub resource_manager_audience: String,
    pub graph: Url,
    pub graph_audience: String,
}

impl CloudEndpoints {
    fn known(name: &str, arm: &str, login: &str, graph: &str) -> CloudEndpoints {
        CloudEndpoints {
            name: name.into(),
            resource_manager: Url::parse(arm).expect("built-in URL"),
            authority_host: Url::parse(login).expect("built-in URL"),
            resource_manager_audience: arm.into(),
            graph: Url::parse(graph).expect("built-in URL"),
            graph_audience: graph.into(),
        }
    }

    pub fn public() -> CloudEndpoints {
        Self::known(
            "public",
            "https://management.azure.com/",
            "https://login.microsoftonline.com/",
            "https://graph.microsoft.com/",
        )
    }

    pub fn usgovernment() -> CloudEndpoints {
        Self::known(
            "usgovernment",
            "https://management.usgovcloudapi.net/",
            "https://login.microsoftonline.us/",
            "https://graph.microsoft.us/",
        )
    }

    pub fn china() -> CloudEndpoints {
        Self::known(
            "china",
            "https://management.chinacloudapi.cn/",
            "https://login.chinacloudapi.cn/",
            "https://microsoftgraph.chinacloudapi.cn/",
        )
    }

    /// The OAuth scope for a resource audience: `{audience}/.default`.
    pub fn scope_for(audience: &str) -> String {
        format!("{}/.default", audience.trim_end_matches('/'))
    }

    /// Reads `https://{host}/metadata/endpoints` (the single-cloud shape, api 2022-09-01).
    pub fn from_metadata(json: &serde_json::Value) -> Result<CloudEndpoints, String> {
        let text = |pointer: &str| {
            json.pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    format!(
                        "the metadata lacks `{}`",
                        pointer.trim_start_matches('/').replace('/', ".")
                    )
                })
        };
        let https = |field: &str, value: String| -> Result<Url, String> {
            let url = Url::parse(&value)
                .map_err(|e| format!("`{field}` = {value:?} is not a URL: {e}"))?;
            if url.scheme() != "https" {
                return Err(format!(
                    "`{field}` = {value:?} is not https://; the provider only talks HTTPS"
                ));
            }
            Ok(url)
        };
        let resource_manager = https("resourceManager", text("/resourceManager")?)?;
        let authority_host = https(
            "authentication.loginEndpoint",
            text("/authentication/loginEndpoint")?,
        )?;
        let audience = text("/authentication/audiences/0")?;
        let graph_audience = text("/microsoftGraphResourceId")?;
        // `graph` is where Graph answers; `microsoftGraphResourceId` is only the token
        // audience. Older metadata documents have no `graph`, and there the two coincide.
        let graph = match text("/graph") {
            Ok(endpoint) => https("graph", endpoint)?,
            Err(_) => https("microsoftGraphResourceId", graph_audience.clone())?,
        };
        Ok(CloudEndpoints {
            name: json
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or("custom")
                .to_string(),
            resource_manager,
            authority_host,
            resource_manager_audience: audience,
            graph,
            graph_audience,
        })
    }
}

/// Where an OIDC (federated) token comes from.
#[derive(Clone, PartialEq)]
pub enum OidcSource {
    Token(String),
    File(String),
    /// GitHub Actions: GET `{url}&audience=api://AzureADTokenExchange` with the bearer token.
    Request {
        url: String,
        token: String,
    },
}

#[derive(Clone, PartialEq)]
pub enum AuthMethod {
    ClientSecret {
        secret: String,
    },
    ClientCertificate {
        path: String,
        password: Option<String>,
    },
    Oidc(OidcSource),
    ManagedIdentity {
        endpoint: Option<String>,
    },
    AzureCli,
}

impl AuthMethod {
    pub fn name(&self) -> &'static str {
        match self {
            AuthMethod::ClientSecret { .. } => "client secret",
            AuthMethod::ClientCertificate { .. } => "client certificate",
            AuthMethod::Oidc(_) => "OIDC",
            AuthMethod::ManagedIdentity { .. } => "managed identity",
            AuthMethod::AzureCli => "Azure CLI",
        }
    }
}

impl fmt::Debug for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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

    fn auth_method(&self) -> Result<AuthMethod, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut need = |value: &Option<String>, attribute: &str, env: &str, method: &str| {
            if value.is_none() {
                errors.push(config_error(
                    attribute,
                    &format!("Missing `{attribute}`"),
                    format!("Authenticating with a {method} needs `{attribute}` (or `{env}`)."),
                ));
            }
        };
        let method = if self.use_oidc == Some(true) {
            need(
                &self.tenant_id,
                "tenant_id",
                "ARM_TENANT_ID",
                "federated OIDC token",
            );
            need(
                &self.client_id,
                "client_id",
                "ARM_CLIENT_ID",
                "federated OIDC token",
            );
            let source = match (
                &self.oidc_token,
                &self.oidc_token_file_path,
                &self.oidc_request_url,
                &self.oidc_request_token,
            ) {
                (Some(token), _, _, _) => Some(OidcSource::Token(token.clone())),
                (None, Some(path), _, _) => Some(OidcSource::File(path.clone())),
                (None, None, Some(url), Some(token)) => Some(OidcSource::Request {
                    url: url.clone(),
                    token: token.clone(),
                }),
                _ => {
                    errors.push(config_error(
                        "use_oidc",
                        "No OIDC token",
                        "`use_oidc` needs `oidc_token`, `oidc_token_file_path`, or `oidc_request_url` with `oidc_request_token` (or ARM_OIDC_TOKEN, ARM_OIDC_TOKEN_FILE_PATH, ACTIONS_ID_TOKEN_REQUEST_URL/TOKEN).",
                    ));
                    None
                }
            };
            source.map(AuthMethod::Oidc)
        } else if self.use_msi == Some(true) {
            Some(AuthMethod::ManagedIdentity {
                endpoint: self.msi_endpoint.clone(),
            })
        } else if let Some(path) = &self.client_certificate_path {
            need(
                &self.tenant_id,
                "tenant_id",
                "ARM_TENANT_ID",
                "client certificate",
            );
            need(
                &self.client_id,
                "client_id",
                "ARM_CLIENT_ID",
                "client certificate",
            );
            if let Err(reason) = std::fs::metadata(path) {
                errors.push(config_error(
                    "client_certificate_path",
                    "Cannot read the client certificate",
                    format!("{path}: {reason}. Point `client_certificate_path` (or ARM_CLIENT_CERTIFICATE_PATH) at a readable .pfx or .pem file."),
                ));
            }
            Some(AuthMethod::ClientCertificate {
                path: path.clone(),
                password: self.client_certificate_password.clone(),
            })
        } else if let Some(secret) = &self.client_secret {
            need(
                &self.tenant_id,
                "tenant_id",
                "ARM_TENANT_ID",
                "client secret",
            );
            need(
                &self.client_id,
                "client_id",
                "ARM_CLIENT_ID",
                "client secret",
            );
            Some(AuthMethod::ClientSecret {
                secret: secret.clone(),
            })
        } else if self.use_cli != Some(false) {
            Some(AuthMethod::AzureCli)
        } else {
            errors.push(config_error(
                "use_cli",
                "No way to authenticate",
                "Nothing to authenticate with: set `client_secret`, `client_certificate_path`, `use_oidc` or `use_msi` (or their ARM_* variables), or allow the Azure CLI's login with `use_cli = true`.",
            ));
            None
        };
        match method {
            Some(method) if errors.is_empty() => Ok(method),
            _ => Err(errors),
        }
    }
}

fn cloud_by_name(name: &str) -> Option<CloudEndpoints> {
    match name.trim().to_ascii_lowercase().as_str() {
        "public" | "azurecloud" | "azurepubliccloud" => Some(CloudEndpoints::public()),
        "usgovernment" | "azureusgovernment" | "azureusgovernmentcloud" => {
            Some(CloudEndpoints::usgovernment())
        }
        "china" | "azurechinacloud" => Some(CloudEndpoints::china()),
        _ => None,
    }
}

/// `SSL_CERT_FILE` (as Go programs honour it) and `ca_certificate_file`, as PEM bundles.
fn read_ca_files(
    settings: &ProviderSettings,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Vec<Vec<u8>>, ConfigError> {
    let mut pems = Vec::new();
    if let Some(path) = env("SSL_CERT_FILE") {
        match std::fs::read(&path) {
            Ok(pem) if super::http::pem_has_certificates(&pem) => pems.push(pem),
            Ok(_) => tracing::warn!(path, "SSL_CERT_FILE holds no PEM certificate; ignored"),
            Err(error) => tracing::warn!(path, %error, "SSL_CERT_FILE unreadable; ignored"),
        }
    }
    if let Some(path) = &settings.ca_certificate_file {
        let pem = std::fs::read(path).map_err(|e| {
            config_error(
                "ca_certificate_file",
                "Cannot read the CA certificate file",
                format!("{path}: {e}. Point `ca_certificate_file` (or ARM_CA_CERTIFICATE_FILE) at a readable PEM file."),
            )
        })?;
        if !super::http::pem_has_certificates(&pem) {
            return Err(config_error(
                "ca_certificate_file",
                "Not a PEM certificate file",
                format!("{path} holds no `-----BEGIN CERTIFICATE-----` block. Point `ca_certificate_file` (or ARM_CA_CERTIFICATE_FILE) at a PEM file of CA certificates."),
            ));
        }
        // A truncated or corrupt certificate would otherwise fail the first HTTPS client
        // built with it, reported against whatever that client was for.
        if let Err(reason) = check_pem_bundle(&pem) {
            return Err(config_error(
                "ca_certificate_file",
                "Unreadable CA certificate",
                format!("{path}: {reason}. The file must hold complete PEM certificates, each from `-----BEGIN CERTIFICATE-----` to `-----END CERTIFICATE-----`; export the CA again (or fix ARM_CA_CERTIFICATE_FILE)."),
            ));
        }
        pems.push(pem);
    }
    Ok(pems)
}

/// Whether every certificate in a PEM bundle is whole: PEM framing, base64 and DER.
fn check_pem_bundle(pem: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(pem);
    let begins = text.matches("-----BEGIN CERTIFICATE-----").count();
    let ends = text.matches("-----END CERTIFICATE-----").count();
    if begins != ends {
        return Err(format!(
            "{begins} certificate(s) begin but {ends} end: the file is truncated"
        ));
    }
    let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
    if certificates.is_empty() {
        return Err("no certificate could be read".into());
    }
    for certificate in certificates {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(certificate)
            .build()
            .map_err(|e| format!("a certificate is not valid DER ({e})"))?;
    }
    Ok(())
}

/// Whether a failed metadata read is worth another try, as ARM reads are: 408, 429 and 5xx
/// (but 501) answers and connection errors are; anything else will not change.
fn discovery_retryable(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(status) => {
            status == 408 || status == 429 || (500..600).contains(&status) && status != 501
        }
    }
}

/// How long to wait before attempt `attempt + 1` of the metadata read: `Retry-After` when the
/// answer has one (capped), else the ARM client's backoff, as for any ARM read.
fn discovery_wait(
    policy: &super::arm::RetryPolicy,
    headers: Option<&reqwest::header::HeaderMap>,
    attempt: u32,
) -> std::time::Duration {
    if let Some(wait) = headers.and_then(super::pacing::retry_after) {
        return wait.min(policy.max_delay);
    }
    let exponential = policy.base_delay.saturating_mul(1u32 << attempt.min(10));
    let capped = exponential.min(policy.max_delay);
    capped + capped.mul_f64(rand::random::<f64>() * 0.25)
}

async fn discover_endpoints(
    host: &str,
    extra_ca_pems: &[Vec<u8>],
) -> Result<CloudEndpoints, ConfigError> {
    // ARM's backoff and `Retry-After`, over fewer attempts: a host that is wrong (the
    // commonest failure here) should fail `terraform validate` in seconds, not a minute.
    let policy = super::arm::RetryPolicy {
        max_attempts: DISCOVERY_ATTEMPTS,
        ..super::arm::RetryPolicy::default()
    };
    discover_endpoints_with(host, extra_ca_pems, policy).await
}

/// Attempts at reading the cloud's metadata: waits of about 0.4, 0.8, 1.6 and 3.2 s between
/// them (or what `Retry-After` says).
const DISCOVERY_ATTEMPTS: u32 = 5;

/// `GET https://{host}/metadata/endpoints`, retried like any ARM read (bounded, with backoff,
/// honouring `Retry-After`): one throttled or dropped answer must not fail the run.
async fn discover_endpoints_with(
    host: &str,
    extra_ca_pems: &[Vec<u8>],
    policy: super::arm::RetryPolicy,
) -> Result<CloudEndpoints, ConfigError> {
    let url = format!("https://{host}/metadata/endpoints?api-version=2022-09-01");
    let failed = |detail: String| {
        config_error(
            "metadata_host",
            "Cannot discover the cloud's endpoints",
            format!("GET {url}: {detail}. Check `metadata_host` (or ARM_METADATA_HOSTNAME), and `ca_certificate_file` if the host uses a private CA."),
        )
    };
    let client =
        super::http::build_client(extra_ca_pems, "terraform-provider-mig").map_err(failed)?;
    let mut attempt = 0;
    loop {
        let last_attempt = attempt + 1 >= policy.max_attempts.max(1);
        let gave_up = |detail: String| {
            if attempt == 0 {
                detail
            } else {
                format!("{detail} (gave up after {} attempts)", attempt + 1)
            }
        };
        let (detail, headers, retryable) = match client.get(&url).send().await {
            Err(error) => (super::http::describe_error(&error), None, true),
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                if status.is_success() {
                    match response.bytes().await {
                        Ok(bytes) => {
                            let json: serde_json::Value = serde_json::from_slice(&bytes)
                                .map_err(|e| failed(format!("the answer is not JSON: {e}")))?;
                            return CloudEndpoints::from_metadata(&json).map_err(failed);
                        }
                        // Cut short: it may read whole next time.
                        Err(error) => (
                            format!(
                                "cannot read the answer: {}",
                                super::http::describe_error(&error)
                            ),
                            Some(headers),
                            true,
                        ),
                    }
                } else {
                    let retryable = discovery_retryable(Some(status.as_u16()));
                    (format!("HTTP {status}"), Some(headers), retryable)
                }
            }
        };
        if !retryable || last_attempt {
            return Err(failed(gave_up(detail)));
        }
        let wait = discovery_wait(&policy, headers.as_ref(), attempt);
        tracing::debug!(%url, error = %detail, attempt, ?wait, "cloud discovery failed; retrying");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SUB: &str = "00000000-0000-0000-0000-000000000001";
    const TENANT: &str = "00000000-0000-0000-0000-0000000000aa";
    const CLIENT: &str = "00000000-0000-0000-0000-0000000000c1";

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Sync {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn resolve(
        settings: ProviderSettings,
        pairs: &[(&str, &str)],
    ) -> Result<ResolvedConfig, Vec<ConfigError>> {
        let env = env(pairs);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(settings.resolve_with(&env))
    }

    #[test]
    fn the_block_wins_over_the_environment() {
        let settings = ProviderSettings {
            subscription_id: Some(SUB.into()),
            use_cli: Some(false),
            client_secret: Some("from-block".into()),
            ..Default::default()
        };
        let resolved = resolve(
            settings,
            &[
                (
                    "ARM_SUBSCRIPTION_ID",
                    "11111111-1111-1111-1111-111111111111",
                ),
                ("ARM_TENANT_ID", TENANT),
                ("ARM_CLIENT_ID", CLIENT),
                ("ARM_CLIENT_SECRET", "from-env"),
            ],
        )
        .unwrap();
        assert_eq!(resolved.subscription_id, SUB);
        assert_eq!(resolved.tenant_id.as_deref(), Some(TENANT));
        assert_eq!(
            resolved.auth,
            AuthMethod::ClientSecret {
                secret: "from-block".into()
            }
        );
        assert_eq!(resolved.cloud, CloudEndpoints::public());
    }

    #[test]
    fn environment_alone_configures_a_client_secret() {
        let resolved = resolve(
            ProviderSettings::default(),
            &[
                ("ARM_SUBSCRIPTION_ID", SUB),
                ("ARM_TENANT_ID", TENANT),
                ("ARM_CLIENT_ID", CLIENT),
                ("ARM_CLIENT_SECRET", "s"),
                ("ARM_ENVIRONMENT", "usgovernment"),
            ],
        )
        .unwrap();
        assert!(matches!(resolved.auth, AuthMethod::ClientSecret { .. }));
        assert_eq!(resolved.cloud.name, "usgovernment");
    }

    #[test]
    fn missing_subscription_names_the_argument_and_the_variable() {
        let errors = resolve(ProviderSettings::default(), &[]).unwrap_err();
        let error = errors
            .iter()
            .find(|e| e.attribute == "subscription_id")
            .unwrap();
        assert!(error.detail.contains("ARM_SUBSCRIPTION_ID"));
    }

    #[test]
    fn two_methods_in_the_block_are_refused() {
        let settings = ProviderSettings {
            client_secret: Some("s".into()),
            use_msi: Some(true),
            ..Default::default()
        };
        let errors = settings.static_errors();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].detail.contains("`client_secret`") && errors[0].detail.contains("`use_msi`")
        );
    }

    #[test]
    fn msi_in_the_block_is_not_contradicted_by_a_secret_in_the_environment() {
        let settings = ProviderSettings {
            subscription_id: Some(SUB.into()),
            use_msi: Some(true),
            ..Default::default()
        };
        let resolved = resolve(
            settings,
            &[
                ("ARM_CLIENT_SECRET", "left over"),
                ("ARM_CLIENT_ID", CLIENT),
            ],
        )
        .unwrap();
        assert!(matches!(resolved.auth, AuthMethod::ManagedIdentity { .. }));
    }

    #[test]
    fn bad_values_are_caught_before_any_call() {
        let settings = ProviderSettings {
            environment: Some("mars".into()),
            metadata_host: Some("https://example.com".into()),
            subscription_id: Some("nope".into()),
            msi_endpoint: Some("http://example.com/token".into()),
            ..Default::default()
        };
        let attributes: Vec<String> = settings
            .static_errors()
            .into_iter()
            .map(|e| e.attribute)
            .collect();
        for name in [
            "environment",
            "metadata_host",
            "subscription_id",
            "msi_endpoint",
        ] {
            assert!(
                attributes.contains(&name.to_string()),
                "{name} not reported: {attributes:?}"
            );
        }
    }

    #[test]
    fn unreadable_certificate_and_ca_are_reported() {
        let settings = ProviderSettings {
            subscription_id: Some(SUB.into()),
            tenant_id: Some(TENANT.into()),
            client_id: Some(CLIENT.into()),
            client_certificate_path: Some("/nonexistent/cert.pfx".into()),
            ..Default::default()
        };
        let errors = resolve(settings.clone(), &[]).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.attribute == "client_certificate_path"),
            "{errors:?}"
        );
        let with_ca = ProviderSettings {
            ca_certificate_file: Some("/nonexistent/ca.pem".into()),
            ..settings
        };
        let errors = resolve(with_ca, &[]).unwrap_err();
        assert!(
            errors.iter().any(|e| e.attribute == "ca_certificate_file"),
            "{errors:?}"
        );
    }

    #[test]
    fn empty_values_and_truncated_ca_files_name_their_argument() {
        let settings = ProviderSettings {
            subscription_id: Some(SUB.into()),
            tenant_id: Some(TENANT.into()),
            client_id: Some(CLIENT.into()),
            client_secret: Some(String::new()),
            ..Default::default()
        };
        let errors = settings.static_errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].attribute, "client_secret");
        assert!(errors[0].detail.contains("ARM_CLIENT_SECRET"), "{errors:?}");
        let not_guid = ProviderSettings {
            client_id: Some("my-app".into()),
            ..Default::default()
        };
        assert_eq!(not_guid.static_errors()[0].attribute, "client_id");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n").unwrap();
        let settings = ProviderSettings {
            subscription_id: Some(SUB.into()),
            tenant_id: Some(TENANT.into()),
            client_id: Some(CLIENT.into()),
            client_secret: Some("s".into()),
            metadata_host: Some("127.0.0.1:1".into()),
            ca_certificate_file: Some(path.display().to_string()),
            ..Default::default()
        };
        let errors = resolve(settings, &[]).unwrap_err();
        assert_eq!(errors[0].attribute, "ca_certificate_file", "{errors:?}");
        assert!(errors[0].detail.contains("truncated"), "{errors:?}");
    }

    #[test]
    fn oidc_needs_a_token_source() {
        let settings = ProviderSettings {
            subscription_id: Some(SUB.into()),
            tenant_id: Some(TENANT.into()),
            client_id: Some(CLIENT.into()),
            use_oidc: Some(true),
            ..Default::default()
        };
        let errors = resolve(settings.clone(), &[]).unwrap_err();
        assert!(errors.iter().any(|e| e.attribute == "use_oidc"));
        let resolved = resolve(
            settings,
            &[
                (
                    "ACTIONS_ID_TOKEN_REQUEST_URL",
                    "https://token.actions/x?a=1",
                ),
                ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "t"),
            ],
        )
        .unwrap();
        assert!(matches!(
            resolved.auth,
            AuthMethod::Oidc(OidcSource::Request { .. })
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let settings = ProviderSettings {
            client_secret: Some("hunter2".into()),
            oidc_token: Some("eyJ-token".into()),
            ..Default::default()
        };
        let text = format!("{settings:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("eyJ-token"),
            "{text}"
        );
        assert!(!format!(
            "{:?}",
            AuthMethod::ClientSecret {
                secret: "hunter2".into()
            }
        )
        .contains("hunter2"));
    }

    #[test]
    fn metadata_is_read_in_the_single_cloud_shape() {
        let json = serde_json::json!({
            "name": "AzureCloud",
            "resourceManager": "https://127.0.0.1:8443/",
            "authentication": {"loginEndpoint": "https://127.0.0.1:8443/", "audiences": ["https://management.core.windows.net/"]},
            "microsoftGraphResourceId": "https://graph.microsoft.com/"
        });
        let cloud = CloudEndpoints::from_metadata(&json).unwrap();
        assert_eq!(cloud.resource_manager.as_str(), "https://127.0.0.1:8443/");
        assert_eq!(
            CloudEndpoints::scope_for(&cloud.resource_manager_audience),
            "https://management.core.windows.net/.default"
        );
        let insecure = serde_json::json!({
            "resourceManager": "http://example.com/",
            "authentication": {"loginEndpoint": "https://x/", "audiences": ["a"]},
            "microsoftGraphResourceId": "https://g/"
        });
        assert!(CloudEndpoints::from_metadata(&insecure)
            .unwrap_err()
            .contains("https"));
    }

    #[test]
    fn graph_is_called_at_its_endpoint_with_its_own_audience() {
        let json = serde_json::json!({
            "resourceManager": "https://127.0.0.1:8443/",
            "authentication": {"loginEndpoint": "https://127.0.0.1:8443/", "audiences": ["https://management.core.windows.net/"]},
            "microsoftGraphResourceId": "https://graph.microsoft.com/",
            "graph": "https://127.0.0.1:8443/"
        });
        let cloud = CloudEndpoints::from_metadata(&json).unwrap();
        assert_eq!(cloud.graph.as_str(), "https://127.0.0.1:8443/");
        assert_eq!(cloud.graph_audience, "https://graph.microsoft.com/");
    }

    #[test]
    fn discovery_retries_what_an_arm_read_retries() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(discovery_retryable(Some(status)), "{status}");
        }
        assert!(discovery_retryable(None), "a dropped connection");
        for status in [400, 401, 403, 404, 501] {
            assert!(!discovery_retryable(Some(status)), "{status}");
        }
        let policy = crate::azure::arm::RetryPolicy::default();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(
            discovery_wait(&policy, Some(&headers), 0),
            std::time::Duration::from_secs(3),
            "Retry-After is honoured"
        );
        headers.insert("retry-after", "100000".parse().unwrap());
        assert_eq!(
            discovery_wait(&policy, Some(&headers), 0),
            policy.max_delay,
            "and capped"
        );
        let first = discovery_wait(&policy, None, 0);
        assert!(first >= policy.base_delay && first <= policy.base_delay.mul_f64(1.25));
        assert!(
            discovery_wait(&policy, None, 3) >= policy.base_delay * 8,
            "it backs off"
        );
    }

    #[test]
    fn discovery_gives_up_after_the_bounded_attempts() {
        // Nothing listens on port 1: every attempt is a connection error.
        let policy = crate::azure::arm::RetryPolicy {
            max_attempts: 3,
            base_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(5),
        };
        let error = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(discover_endpoints_with("127.0.0.1:1", &[], policy))
            .unwrap_err();
        assert_eq!(error.attribute, "metadata_host");
        assert!(
            error.detail.contains("gave up after 3 attempts"),
            "{error:?}"
        );
    }
}
