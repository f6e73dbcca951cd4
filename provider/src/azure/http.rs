//! The one HTTP client every call goes through, token requests included: rustls with the
//! public roots plus the extra CAs, and its adapter for azure_identity's credentials.

use std::time::Duration;

use azure_core::http::{AsyncRawResponse, Body, HttpClient, Method, Request, StatusCode};

pub fn pem_has_certificates(pem: &[u8]) -> bool {
    String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----")
}

pub fn build_client(
    extra_ca_pems: &[Vec<u8>],
    user_agent: &str,
) -> Result<reqwest::Client, String> {
    client_builder(extra_ca_pems, user_agent, true)?
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// For token requests only: IMDS answers on plain HTTP at 169.254.169.254.
pub fn build_client_allowing_http(
    extra_ca_pems: &[Vec<u8>],
    user_agent: &str,
) -> Result<reqwest::Client, String> {
    client_builder(extra_ca_pems, user_agent, false)?
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

fn client_builder(
    extra_ca_pems: &[Vec<u8>],
    user_agent: &str,
    https_only: bool,
) -> Result<reqwest::ClientBuilder, String> {
    let mut builder = reqwest::Client::builder()
        .user_agent(user_agent)
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(300))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .https_only(https_only);
    for pem in extra_ca_pems {
        let certificates = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("cannot read a CA certificate: {e}"))?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    Ok(builder)
}

/// A transport error in words a user can act on (reqwest's Display hides the cause).
pub fn describe_error(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Lets azure_identity's credentials send their token requests through our client, so the
/// custom authority host and the extra CAs apply to them too.
#[derive(Debug, Clone)]
pub struct Transport(pub reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for Transport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        use azure_core::error::{Error, ErrorKind};
        let method = match request.method() {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Head => reqwest::Method::HEAD,
            other => {
                return Err(Error::with_message(
                    ErrorKind::Other,
                    format!("unsupported method {other:?}"),
                ));
            }
        };
        let mut builder = self.0.request(method, request.url().clone());
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        match request.body() {
            Body::Bytes(bytes) => builder = builder.body(bytes.to_vec()),
            #[allow(unreachable_patterns)]
            _ => {
                return Err(Error::with_message(
                    ErrorKind::Other,
                    "streaming request bodies are not supported",
                ))
            }
        }
        let response = builder
            .send()
            .await
            .map_err(|e| Error::with_message(ErrorKind::Io, describe_error(&e)))?;
        let status = StatusCode::from(response.status().as_u16());
        let mut headers = azure_core::http::headers::Headers::new();
        for (name, value) in response.headers() {
            if let Ok(value) = value.to_str() {
                headers.insert(name.as_str().to_string(), value.to_string());
            }
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::with_message(ErrorKind::Io, describe_error(&e)))?;
        Ok(AsyncRawResponse::from_bytes(status, headers, bytes))
    }
}
