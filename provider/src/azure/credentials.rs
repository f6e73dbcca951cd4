//! Credentials through azure_identity, chosen by the resolved auth method, with tokens
//! cached per audience (ARM and Graph are different audiences).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential, TokenRequestOptions};
use azure_core::http::{ClientMethodOptions, ClientOptions, Transport as CoreTransport};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertion, ClientAssertionCredential,
    ClientAssertionCredentialOptions, ClientCertificateCredential,
    ClientCertificateCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId,
};
use time::OffsetDateTime;
use tokio::sync::Mutex;

use super::config::{AuthMethod, OidcSource, ResolvedConfig};
use super::http::Transport;

/// Refresh a token this long before it expires.
const EXPIRY_MARGIN: time::Duration = time::Duration::minutes(5);

fn client_options(config: &ResolvedConfig, http: &reqwest::Client) -> ClientOptions {
    let mut custom = azure_core::cloud::CustomConfiguration::default();
    custom.authority_host = config
        .cloud
        .authority_host
        .as_str()
        .trim_end_matches('/')
        .to_string();
    ClientOptions {
        transport: Some(CoreTransport::new(Arc::new(Transport(http.clone())))),
        cloud: Some(Arc::new(custom.into())),
        ..ClientOptions::default()
    }
}

pub fn credential_for(
    config: &ResolvedConfig,
    http: &reqwest::Client,
) -> Result<Arc<dyn TokenCredential>, String> {
    let tenant = || config.tenant_id.clone().unwrap_or_default();
    let client_id = || config.client_id.clone().unwrap_or_default();
    let described =
        |e: azure_core::Error| format!("cannot set up {} authentication: {e}", config.auth.name());
    let credential: Arc<dyn TokenCredential> = match &config.auth {
        AuthMethod::ClientSecret { secret } => ClientSecretCredential::new(
            &tenant(),
            client_id(),
            Secret::new(secret.clone()),
            Some(ClientSecretCredentialOptions {
                client_options: client_options(config, http),
            }),
        )
        .map_err(described)?,
        AuthMethod::ClientCertificate { path, password } => {
            let pkcs12 = read_certificate(path, password.as_deref())?;
            ClientCertificateCredential::new(
                tenant(),
                client_id(),
                pkcs12.into(),
                Some(ClientCertificateCredentialOptions {
                    client_options: client_options(config, http),
                    password: password.clone().map(Secret::new),
                }),
            )
            .map_err(described)?
        }
        AuthMethod::Oidc(source) => ClientAssertionCredential::new(
            tenant(),
            client_id(),
            OidcAssertion {
                source: source.clone(),
                http: http.clone(),
            },
            Some(ClientAssertionCredentialOptions {
                client_options: client_options(config, http),
            }),
        )
        .map_err(described)?,
        AuthMethod::ManagedIdentity {
            endpoint: Some(endpoint),
        } => Arc::new(ManagedIdentityEndpoint {
            endpoint: endpoint.clone(),
            client_id: config.client_id.clone(),
            http: http.clone(),
        }),
        AuthMethod::ManagedIdentity { endpoint: None } => {
            ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id: config.client_id.clone().map(UserAssignedId::ClientId),
                client_options: client_options(config, http),
            }))
            .map_err(described)?
        }
        AuthMethod::AzureCli => AzureCliCredential::new(Some(AzureCliCredentialOptions {
            tenant_id: config.tenant_id.clone(),
            ..Default::default()
        }))
        .map_err(described)?,
    };
    Ok(credential)
}

/// A `.pfx`/`.p12` file as it is, or a PEM file (certificate and private key) converted to
/// PKCS#12, which is what azure_identity reads.
fn read_certificate(path: &str, password: Option<&str>) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read the client certificate {path}: {e}"))?;
    if !bytes.starts_with(b"-----") && !String::from_utf8_lossy(&bytes).contains("-----BEGIN") {
        return Ok(bytes);
    }
    let certificate = openssl::x509::X509::from_pem(&bytes)
        .map_err(|e| format!("{path} holds no PEM certificate: {e}"))?;
    let key = openssl::pkey::PKey::private_key_from_pem(&bytes).map_err(|e| {
        format!("{path} holds no unencrypted PEM private key next to the certificate: {e}")
    })?;
    openssl::pkcs12::Pkcs12::builder()
        .name("client")
        .pkey(&key)
        .cert(&certificate)
        .build2(password.unwrap_or(""))
        .and_then(|p| p.to_der())
        .map_err(|e| format!("cannot use the certificate in {path}: {e}"))
}

/// The federated token for `use_oidc`, fetched again for every token request because OIDC
/// tokens are short-lived (GitHub's last minutes).
struct OidcAssertion {
    source: OidcSource,
    http: reqwest::Client,
}

impl fmt::Debug for OidcAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OidcAssertion")
    }
}

#[async_trait::async_trait]
impl ClientAssertion for OidcAssertion {
    async fn secret(
        &self,
        _options: Option<ClientMethodOptions<'_>>,
    ) -> azure_core::Result<String> {
        use azure_core::error::{Error, ErrorKind};
        let failure = |message: String| Error::with_message(ErrorKind::Credential, message);
        match &self.source {
            OidcSource::Token(token) => Ok(token.clone()),
            OidcSource::File(path) => std::fs::read_to_string(path)
                .map(|t| t.trim().to_string())
                .map_err(|e| failure(format!("cannot read the OIDC token file {path}: {e}"))),
            OidcSource::Request { url, token } => {
                let separator = if url.contains('?') { '&' } else { '?' };
                let response = self
                    .http
                    .get(format!(
                        "{url}{separator}audience=api://AzureADTokenExchange"
                    ))
                    .bearer_auth(token)
                    .send()
                    .await
                    .map_err(|e| {
                        failure(format!(
                            "cannot request an OIDC token: {}",
                            super::http::describe_error(&e)
                        ))
                    })?;
                if !response.status().is_success() {
                    return Err(failure(format!(
                        "the OIDC token request answered HTTP {}",
                        response.status()
                    )));
                }
                let body: serde_json::Value = response
                    .json()
                    .await
                    .map_err(|e| failure(format!("the OIDC token response is not JSON: {e}")))?;
                body.get("value")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
                    .ok_or_else(|| failure("the OIDC token response has no `value`".into()))
            }
        }
    }
}

/// A managed identity endpoint given in `msi_endpoint` (App Service style). azure_identity
/// only takes the endpoint from the process environment, which a provider must not change.
struct ManagedIdentityEndpoint {
    endpoint: String,
    client_id: Option<String>,
    http: reqwest::Client,
}

impl fmt::Debug for ManagedIdentityEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentityEndpoint")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

#[async_trait::async_trait]
impl TokenCredential for ManagedIdentityEndpoint {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<azure_core::credentials::AccessToken> {
        use azure_core::error::{Error, ErrorKind};
        let failure = |message: String| Error::with_message(ErrorKind::Credential, message);
        let resource = scopes
            .first()
            .map(|s| s.trim_end_matches("/.default"))
            .unwrap_or_default();
        let mut query = vec![
            ("api-version", "2019-08-01".to_string()),
            ("resource", resource.to_string()),
        ];
        if let Some(client_id) = &self.client_id {
            query.push(("client_id", client_id.clone()));
        }
        let mut request = self
            .http
            .get(&self.endpoint)
            .query(&query)
            .header("Metadata", "true");
        if let Some(secret) = std::env::var("IDENTITY_HEADER")
            .ok()
            .or_else(|| std::env::var("MSI_SECRET").ok())
        {
            request = request.header("X-IDENTITY-HEADER", secret);
        }
        let response = request.send().await.map_err(|e| {
            failure(format!(
                "managed identity endpoint {}: {}",
                self.endpoint,
                super::http::describe_error(&e)
            ))
        })?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            let message = body
                .pointer("/error/message")
                .or_else(|| body.get("error_description"))
                .or_else(|| body.get("message"))
                .and_then(|v| v.as_str())
                .unwrap_or("no message");
            return Err(failure(format!(
                "managed identity endpoint answered HTTP {status}: {message}"
            )));
        }
        let token = body
            .get("access_token")
            .and_then(|v| v.as_str())
            .ok_or_else(|| failure("managed identity response has no access_token".into()))?;
        let expires_on = body
            .get("expires_on")
            .and_then(|v| {
                v.as_str()
                    .map(str::to_string)
                    .or_else(|| v.as_i64().map(|n| n.to_string()))
            })
            .and_then(|text| text.parse::<i64>().ok())
            .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
            .unwrap_or_else(|| OffsetDateTime::now_utc() + time::Duration::hours(1));
        Ok(azure_core::credentials::AccessToken::new(
            Secret::new(token.to_string()),
            expires_on,
        ))
    }
}

/// Tokens per scope, refreshed shortly before they expire; concurrent callers share one
/// request.
pub struct TokenProvider {
    credential: Arc<dyn TokenCredential>,
    cache: Mutex<HashMap<String, (String, OffsetDateTime)>>,
}

impl TokenProvider {
    pub fn new(credential: Arc<dyn TokenCredential>) -> Self {
        TokenProvider {
            credential,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub async fn token(&self, scope: &str) -> Result<String, String> {
        let mut cache = self.cache.lock().await;
        if let Some((token, expires_on)) = cache.get(scope) {
            if *expires_on - EXPIRY_MARGIN > OffsetDateTime::now_utc() {
                return Ok(token.clone());
            }
        }
        let fresh = self
            .credential
            .get_token(&[scope], None)
            .await
            .map_err(|e| format!("cannot get a token for {scope}: {e}"))?;
        let token = fresh.token.secret().to_string();
        cache.insert(scope.to_string(), (token.clone(), fresh.expires_on));
        Ok(token)
    }
}

/// The `oid` claim of a JWT access token (who we are), without verifying it: the token
/// came from Entra ID over TLS and is only read for display.
pub fn object_id_of(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("oid")
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_id_is_read_from_the_token() {
        use base64::Engine;
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"oid":"abc","aud":"x"}"#);
        assert_eq!(
            object_id_of(&format!("h.{payload}.s")).as_deref(),
            Some("abc")
        );
        assert_eq!(object_id_of("garbage"), None);
    }
}
