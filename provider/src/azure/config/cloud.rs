//! A cloud's endpoints: the known clouds by name, and discovery from a metadata host.

use url::Url;

use super::{config_error, ConfigError};

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

pub(super) fn cloud_by_name(name: &str) -> Option<CloudEndpoints> {
    match name.trim().to_ascii_lowercase().as_str() {
        "public" | "azurecloud" | "azurepubliccloud" => Some(CloudEndpoints::public()),
        "usgovernment" | "azureusgovernment" | "azureusgovernmentcloud" => {
            Some(CloudEndpoints::usgovernment())
        }
        "china" | "azurechinacloud" => Some(CloudEndpoints::china()),
        _ => None,
    }
}

/// Whether a failed metadata read is worth another try, as ARM reads are: 408, 429 and 5xx
/// (but 501) answers and connection errors are; anything else will not change.
pub(super) fn discovery_retryable(status: Option<u16>) -> bool {
    match status {
        None => true,
        Some(status) => {
            status == 408 || status == 429 || (500..600).contains(&status) && status != 501
        }
    }
}

/// How long to wait before attempt `attempt + 1` of the metadata read: `Retry-After` when the
/// answer has one (capped), else the ARM client's backoff, as for any ARM read.
pub(super) fn discovery_wait(
    policy: &crate::azure::retry::RetryPolicy,
    headers: Option<&reqwest::header::HeaderMap>,
    attempt: u32,
) -> std::time::Duration {
    if let Some(wait) = headers.and_then(crate::azure::pacing::retry_after) {
        return wait.min(policy.max_delay);
    }
    policy.backoff(attempt)
}

pub(super) async fn discover_endpoints(
    host: &str,
    extra_ca_pems: &[Vec<u8>],
) -> Result<CloudEndpoints, ConfigError> {
    // ARM's backoff and `Retry-After`, over fewer attempts: a host that is wrong (the
    // commonest failure here) should fail `terraform validate` in seconds, not a minute.
    let policy = crate::azure::retry::RetryPolicy {
        max_attempts: DISCOVERY_ATTEMPTS,
        ..crate::azure::retry::RetryPolicy::default()
    };
    discover_endpoints_with(host, extra_ca_pems, policy).await
}

/// Attempts at reading the cloud's metadata: waits of about 0.4, 0.8, 1.6 and 3.2 s between
/// them (or what `Retry-After` says).
const DISCOVERY_ATTEMPTS: u32 = 5;

/// `GET https://{host}/metadata/endpoints`, retried like any ARM read (bounded, with backoff,
/// honouring `Retry-After`): one throttled or dropped answer must not fail the run.
pub(super) async fn discover_endpoints_with(
    host: &str,
    extra_ca_pems: &[Vec<u8>],
    policy: crate::azure::retry::RetryPolicy,
) -> Result<CloudEndpoints, ConfigError> {
    let url = format!("https://{host}/metadata/endpoints?api-version=2022-09-01");
    let failed = |detail: String| {
        config_error(
            "metadata_host",
            "Cannot discover the cloud's endpoints",
            format!("GET {url}: {detail}. Check `metadata_host` (or ARM_METADATA_HOSTNAME), and `ca_certificate_file` if the host uses a private CA."),
        )
    };
    let client = crate::azure::http::build_client(extra_ca_pems, "terraform-provider-mig")
        .map_err(failed)?;
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
            Err(error) => (crate::azure::http::describe_error(&error), None, true),
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
                                crate::azure::http::describe_error(&error)
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
