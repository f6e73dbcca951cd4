//! The ARM client every Azure call shares: bearer tokens, bounded retries with backoff on
//! 429 (honouring `Retry-After`), 5xx and connection errors, pacing by ARM's remaining-quota
//! headers, long-running operations, `nextLink` paging, and ARM error bodies turned into
//! `ArmError`s with code, message and request id.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value as Json;

use super::credentials::TokenProvider;
use super::pacing::{subscription_of, Bucket, Pacer};

/// An error from ARM (or from reaching it), as the user should see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmError {
    /// HTTP status; 0 when no response arrived.
    pub status: u16,
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
}

impl ArmError {
    pub fn transport(message: impl Into<String>) -> Self {
        ArmError {
            status: 0,
            code: "ConnectionFailed".into(),
            message: message.into(),
            request_id: None,
        }
    }

    fn from_response(status: u16, headers: &HeaderMap, body: &[u8]) -> Self {
        let json: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
        let error = json.get("error").unwrap_or(&json);
        let text = |key: &str| error.get(key).and_then(Json::as_str).map(str::to_string);
        ArmError {
            status,
            code: text("code").unwrap_or_else(|| format!("HTTP{status}")),
            message: text("message")
                .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect()),
            request_id: header(headers, "x-ms-request-id"),
        }
    }
}

impl fmt::Display for ArmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.status == 0 {
            return write!(f, "{}: {}", self.code, self.message);
        }
        write!(f, "{}: {} (HTTP {}", self.code, self.message, self.status)?;
        if let Some(id) = &self.request_id {
            write!(f, ", request id {id}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for ArmError {}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A successful response.
#[derive(Debug, Clone)]
pub struct ArmResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Json,
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(400),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.base_delay.saturating_mul(1u32 << attempt.min(10));
        let capped = exponential.min(self.max_delay);
        // Up to 25% jitter so concurrent writers do not retry in lockstep.
        let jitter = capped.mul_f64(rand::random::<f64>() * 0.25);
        capped + jitter
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = header(headers, "retry-after")?;
    if let Ok(seconds) = text.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date =
        time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc2822)
            .ok()?;
    let wait = date - time::OffsetDateTime::now_utc();
    Some(Duration::try_from(wait).unwrap_or_default())
}

pub struct ArmClient {
    http: reqwest::Client,
    endpoint: url::Url,
    tokens: Arc<TokenProvider>,
    scope: String,
    pub retry: RetryPolicy,
    pacer: Pacer,
    /// How often to poll a long-running operation when ARM gives no `Retry-After`.
    pub poll_interval: Duration,
}

impl ArmClient {
    pub fn new(
        http: reqwest::Client,
        endpoint: url::Url,
        tokens: Arc<TokenProvider>,
        scope: String,
    ) -> Self {
        ArmClient {
            http,
            endpoint,
            tokens,
            scope,
            retry: RetryPolicy::default(),
            pacer: Pacer::default(),
            poll_interval: Duration::from_secs(2),
        }
    }

    pub async fn token(&self) -> Result<String, ArmError> {
        self.tokens
            .token(&self.scope)
            .await
            .map_err(|message| ArmError {
                status: 401,
                code: "AuthenticationFailed".into(),
                message,
                request_id: None,
            })
    }

    /// An absolute URL for a path (`/subscriptions/...`) with its api-version, or a full URL
    /// ARM gave us (`nextLink`, operation status), used as it is.
    fn url(&self, path_or_url: &str, api_version: Option<&str>) -> Result<url::Url, ArmError> {
        let mut url = if path_or_url.starts_with("https://") || path_or_url.starts_with("http://") {
            url::Url::parse(path_or_url)
                .map_err(|e| ArmError::transport(format!("bad URL {path_or_url}: {e}")))?
        } else {
            self.endpoint
                .join(path_or_url.trim_start_matches('/'))
                .map_err(|e| ArmError::transport(format!("bad path {path_or_url}: {e}")))?
        };
        if url.scheme() != "https" {
            return Err(ArmError::transport(format!(
                "refusing to send a token over plain HTTP to {url}"
            )));
        }
        if let Some(version) = api_version {
            if !url.query_pairs().any(|(k, _)| k == "api-version") {
                url.query_pairs_mut().append_pair("api-version", version);
            }
        }
        Ok(url)
    }

    /// One request with retries; `Ok` for 2xx, `Err` for anything else after retries.
    pub async fn send(
        &self,
        method: Method,
        path_or_url: &str,
        api_version: Option<&str>,
        body: Option<&Json>,
        headers: &[(&str, &str)],
    ) -> Result<ArmResponse, ArmError> {
        let url = self.url(path_or_url, api_version)?;
        let bucket = Bucket::of(&method);
        let subscription = subscription_of(&url).to_string();
        let mut attempt = 0;
        loop {
            let ticket = self.pacer.acquire(&subscription, bucket).await;
            let token = self.token().await?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let started = std::time::Instant::now();
            let outcome = request.send().await;
            let retry_in = match outcome {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let response_headers = response.headers().clone();
                    self.pacer.observe(ticket, status, &response_headers);
                    let bytes = response.bytes().await.unwrap_or_default();
                    tracing::debug!(
                        method = %method,
                        url = %url,
                        status,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        request_id = header(&response_headers, "x-ms-request-id").unwrap_or_default(),
                        "ARM request"
                    );
                    if (200..300).contains(&status) {
                        let body = if bytes.is_empty() {
                            Json::Null
                        } else {
                            serde_json::from_slice(&bytes).unwrap_or(Json::Null)
                        };
                        return Ok(ArmResponse {
                            status,
                            headers: response_headers,
                            body,
                        });
                    }
                    let error = ArmError::from_response(status, &response_headers, &bytes);
                    let retryable = status == 429
                        || status == 408
                        || (500..600).contains(&status) && status != 501;
                    if !retryable || attempt + 1 >= self.retry.max_attempts {
                        return Err(error);
                    }
                    tracing::debug!(%error, attempt, "retrying");
                    retry_after(&response_headers)
                        .map(|d| d.min(self.retry.max_delay))
                        .unwrap_or_else(|| self.retry.backoff(attempt))
                }
                Err(error) => {
                    let message = super::http::describe_error(&error);
                    if attempt + 1 >= self.retry.max_attempts {
                        return Err(ArmError::transport(format!("{method} {url}: {message}")));
                    }
                    tracing::debug!(error = %message, attempt, "connection error; retrying");
                    self.retry.backoff(attempt)
                }
            };
            attempt += 1;
            tokio::time::sleep(retry_in).await;
        }
    }

    /// GET a resource; `None` when it does not exist.
    pub async fn get(&self, path: &str, api_version: &str) -> Result<Option<Json>, ArmError> {
        match self
            .send(Method::GET, path, Some(api_version), None, &[])
            .await
        {
            Ok(response) => Ok(Some(response.body)),
            Err(error) if error.status == 404 => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// PUT and wait for the operation to finish; returns the resource.
    pub async fn put(&self, path: &str, api_version: &str, body: &Json) -> Result<Json, ArmError> {
        let response = self
            .send(Method::PUT, path, Some(api_version), Some(body), &[])
            .await?;
        self.finish(path, api_version, response).await
    }

    /// DELETE and wait; a resource already gone is not an error.
    pub async fn delete(&self, path: &str, api_version: &str) -> Result<(), ArmError> {
        match self
            .send(Method::DELETE, path, Some(api_version), None, &[])
            .await
        {
            Ok(response) => self.wait(&response).await.map(|_| ()),
            Err(error) if error.status == 404 => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The final resource of a write: the response body when synchronous, else the
    /// operation's result once it finished, else a fresh GET.
    async fn finish(
        &self,
        path: &str,
        api_version: &str,
        response: ArmResponse,
    ) -> Result<Json, ArmError> {
        let asynchronous = response.status == 202
            || header(&response.headers, "azure-asyncoperation").is_some()
            || (response.status == 201 && header(&response.headers, "location").is_some());
        if !asynchronous {
            return Ok(response.body);
        }
        self.wait(&response).await?;
        Ok(self.get(path, api_version).await?.unwrap_or(response.body))
    }

    /// Polls a long-running operation until it ends (`Azure-AsyncOperation`, else
    /// `Location`); Failed and Canceled become errors with the operation's error.
    pub async fn wait(&self, response: &ArmResponse) -> Result<Option<Json>, ArmError> {
        if let Some(status_url) = header(&response.headers, "azure-asyncoperation") {
            let mut delay = retry_after(&response.headers).unwrap_or(self.poll_interval);
            loop {
                tokio::time::sleep(delay).await;
                let poll = self.send(Method::GET, &status_url, None, None, &[]).await?;
                let status = poll
                    .body
                    .get("status")
                    .and_then(Json::as_str)
                    .unwrap_or("InProgress")
                    .to_string();
                match status.as_str() {
                    "Succeeded" => return Ok(Some(poll.body)),
                    "Failed" | "Canceled" | "Cancelled" => {
                        let error = poll.body.get("error").cloned().unwrap_or(Json::Null);
                        return Err(ArmError {
                            status: 200,
                            code: error
                                .get("code")
                                .and_then(Json::as_str)
                                .unwrap_or(&format!("Operation{status}"))
                                .to_string(),
                            message: error
                                .get("message")
                                .and_then(Json::as_str)
                                .unwrap_or("the long-running operation did not succeed")
                                .to_string(),
                            request_id: header(&poll.headers, "x-ms-request-id"),
                        });
                    }
                    _ => delay = retry_after(&poll.headers).unwrap_or(self.poll_interval),
                }
            }
        }
        if response.status == 202 {
            if let Some(location) = header(&response.headers, "location") {
                let mut delay = retry_after(&response.headers).unwrap_or(self.poll_interval);
                loop {
                    tokio::time::sleep(delay).await;
                    let poll = self.send(Method::GET, &location, None, None, &[]).await?;
                    if poll.status != 202 {
                        return Ok(Some(poll.body));
                    }
                    delay = retry_after(&poll.headers).unwrap_or(self.poll_interval);
                }
            }
        }
        Ok(None)
    }

    /// Pages of a list (`value` items), following `nextLink`; one read per page.
    pub fn list<'a>(
        &'a self,
        path: String,
        api_version: &'a str,
    ) -> BoxStream<'a, Result<Vec<Json>, ArmError>> {
        Box::pin(futures::stream::unfold(
            Some((path, true)),
            move |next| async move {
                let (url, first) = next?;
                let version = if first { Some(api_version) } else { None };
                match self.send(Method::GET, &url, version, None, &[]).await {
                    Ok(response) => {
                        let items = response
                            .body
                            .get("value")
                            .and_then(Json::as_array)
                            .cloned()
                            .unwrap_or_default();
                        let next = response
                            .body
                            .get("nextLink")
                            .and_then(Json::as_str)
                            .filter(|link| !link.is_empty())
                            .map(|link| (link.to_string(), false));
                        Some((Ok(items), next))
                    }
                    Err(error) => Some((Err(error), None)),
                }
            },
        ))
    }

    /// Every item of a list.
    pub async fn list_all(&self, path: String, api_version: &str) -> Result<Vec<Json>, ArmError> {
        use futures::StreamExt;
        let mut pages = self.list(path, api_version);
        let mut items = Vec::new();
        while let Some(page) = pages.next().await {
            items.extend(page?);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn arm_error_bodies_become_errors_with_code_message_and_request_id() {
        let error = ArmError::from_response(
            409,
            &headers(&[("x-ms-request-id", "req-1")]),
            br#"{"error":{"code":"ScopeLocked","message":"The scope is locked."}}"#,
        );
        assert_eq!(error.code, "ScopeLocked");
        assert_eq!(
            error.to_string(),
            "ScopeLocked: The scope is locked. (HTTP 409, request id req-1)"
        );
        let plain = ArmError::from_response(502, &HeaderMap::new(), b"Bad Gateway");
        assert_eq!(
            (plain.code.as_str(), plain.message.as_str()),
            ("HTTP502", "Bad Gateway")
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(
            retry_after(&headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        let past = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy::default();
        assert!(policy.backoff(0) >= Duration::from_millis(400));
        assert!(policy.backoff(3) >= Duration::from_millis(3200));
        assert!(policy.backoff(20) <= Duration::from_secs(75));
    }
}
