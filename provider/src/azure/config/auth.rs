//! The one authentication method the settings choose.

use std::fmt;

use super::{config_error, ConfigError, ProviderSettings};

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

impl ProviderSettings {
    pub(super) fn auth_method(&self) -> Result<AuthMethod, Vec<ConfigError>> {
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
