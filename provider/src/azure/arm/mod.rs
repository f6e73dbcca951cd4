//! The ARM client every Azure call shares: bearer tokens, bounded retries with backoff on
//! 429 (honouring `Retry-After`), 5xx and connection errors, pacing by ARM's remaining-quota
//! headers, long-running operations, `nextLink` paging, and ARM error bodies turned into
//! `ArmError`s with code, message and request id.
//!
//! Every call can be given a [`CancellationToken`] (the `*_cancellable` methods; the others
//! are never cancelled). A stop request and a deadline combine as a child of the stop token
//! that a timer also cancels at the deadline. A cancelled token stops whatever has not been sent yet, wherever it
//! waits: in the pacer, for a token, in a retry backoff, between polls of a long-running
//! operation. Such a call ends at once with [`ArmError::is_not_sent`] when nothing of it
//! can have reached ARM, or [`ArmError::is_cancelled`] when something was sent and its
//! outcome is not known. A request already on the wire is allowed to finish (its answer is
//! the truth the caller records) for at most [`ArmClient::in_flight_grace`].

mod error;
mod operations;
mod paging;
mod stop;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use super::credentials::TokenProvider;
use super::pacing::{retry_after, subscription_of, Bucket, Pacer};

pub use super::retry::RetryPolicy;
pub use error::ArmError;
pub use operations::put_created;
pub use stop::with_stop;
pub use transport::{ArmResponse, Transport};

use error::header;
use paging::parse_success;
use stop::ambient_stop;

/// One request as its caller describes it; the client adds the token, the pacing and the
/// retries.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    method: Method,
    path_or_url: &'a str,
    api_version: Option<&'a str>,
    body: Option<&'a Json>,
    headers: &'a [(&'a str, &'a str)],
}

impl<'a> Request<'a> {
    /// `method` on a path under the endpoint or a full URL (a `nextLink`, an operation's
    /// status). `api_version` is added to the query unless the URL already has one.
    pub fn new(method: Method, path_or_url: &'a str, api_version: Option<&'a str>) -> Self {
        Request {
            method,
            path_or_url,
            api_version,
            body: None,
            headers: &[],
        }
    }

    /// Sent as JSON.
    pub fn body(self, body: &'a Json) -> Self {
        Request {
            body: Some(body),
            ..self
        }
    }

    pub fn headers(self, headers: &'a [(&'a str, &'a str)]) -> Self {
        Request { headers, ..self }
    }
}

pub struct ArmClient {
    http: reqwest::Client,
    transport: Arc<dyn Transport>,
    endpoint: url::Url,
    tokens: Arc<TokenProvider>,
    scope: String,
    pub retry: RetryPolicy,
    pacer: Pacer,
    /// How often to poll a long-running operation when ARM gives no `Retry-After`.
    pub poll_interval: Duration,
    /// How long a request already sent may still take once its call is cancelled; after
    /// that its answer is abandoned and the call ends as [`ArmError::is_cancelled`].
    pub in_flight_grace: Duration,
    /// Requests on the wire at once, across every subscription (see [`MAX_IN_FLIGHT`]).
    in_flight: tokio::sync::Semaphore,
}

/// How many requests may be on the wire at once. ARM's buckets let an estate's first
/// seconds release thousands of writes together (a burst of 200 per subscription); sent all
/// at once they would each open a connection, with its TLS handshake and buffers. This many
/// keeps the fastest rate ARM allows busy at any realistic latency (at 100 ms, 2,500 a
/// second, far above 10 a second per subscription) and bounds sockets and memory.
pub const MAX_IN_FLIGHT: usize = 256;

impl ArmClient {
    pub fn new(
        http: reqwest::Client,
        endpoint: url::Url,
        tokens: Arc<TokenProvider>,
        scope: String,
    ) -> Self {
        let transport = Arc::new(http.clone());
        Self::with_transport(http, transport, endpoint, tokens, scope)
    }

    /// A client whose exchanges go through `transport`; `http` only builds the requests.
    pub fn with_transport(
        http: reqwest::Client,
        transport: Arc<dyn Transport>,
        endpoint: url::Url,
        tokens: Arc<TokenProvider>,
        scope: String,
    ) -> Self {
        ArmClient {
            http,
            transport,
            endpoint,
            tokens,
            scope,
            retry: RetryPolicy::default(),
            pacer: Pacer::default(),
            poll_interval: Duration::from_secs(2),
            in_flight_grace: Duration::from_secs(20),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
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
                after_unanswered_attempt: false,
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
    /// Cancelled only by the ambient stop of [`with_stop`], if any: see
    /// [`ArmClient::send_cancellable`].
    pub async fn send(&self, request: Request<'_>) -> Result<ArmResponse, ArmError> {
        self.send_cancellable(request, &ambient_stop()).await
    }

    /// One request with retries; `Ok` for 2xx, `Err` for anything else after retries.
    ///
    /// Once `cancel` is cancelled nothing more is sent: a request waiting in the pacer, for a
    /// token or in a retry backoff ends at once, with [`ArmError::is_not_sent`] when no
    /// attempt can have had an effect (none was sent, or every one was answered 429), else
    /// [`ArmError::is_cancelled`]. An attempt on the wire is waited for, at most
    /// [`ArmClient::in_flight_grace`] after the cancellation.
    pub async fn send_cancellable(
        &self,
        request: Request<'_>,
        cancel: &CancellationToken,
    ) -> Result<ArmResponse, ArmError> {
        let (status, headers, body) = self.send_decoding(request, cancel, parse_success).await?;
        Ok(ArmResponse {
            status,
            headers,
            body: body.unwrap_or(Json::Null),
        })
    }

    /// [`ArmClient::send_cancellable`], the 2xx body read by `decode`. `None` for a write ARM
    /// accepted whose body `decode` refused: the write is done, whatever happened to its body,
    /// and reporting it failed would hide a change.
    async fn send_decoding<T>(
        &self,
        request: Request<'_>,
        cancel: &CancellationToken,
        decode: impl Fn(u16, &HeaderMap, Result<Vec<u8>, String>) -> Result<T, ArmError>,
    ) -> Result<(u16, HeaderMap, Option<T>), ArmError> {
        let Request {
            method,
            path_or_url,
            api_version,
            body,
            headers,
        } = request;
        let url = self.url(path_or_url, api_version)?;
        let bucket = Bucket::of(&method);
        let subscription = subscription_of(&url).to_string();
        let is_read = matches!(method, Method::GET | Method::HEAD);
        // The latest answer to an attempt that ARM may have acted on (anything but a 429).
        let mut may_have_acted: Option<ArmError> = None;
        let stopped = |may_have_acted: Option<ArmError>| {
            match may_have_acted {
            None => ArmError::not_sent(format!("{method} {url} was not sent: stopped")),
            Some(error) => ArmError::cancelled(format!(
                "{method} {url}: stopped before retrying; the last attempt's outcome is unknown ({error})"
            )),
        }
        };
        let mut attempt = 0;
        loop {
            let ticket = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(stopped(may_have_acted)),
                ticket = self.pacer.acquire(&subscription, bucket) => ticket,
            };
            let token = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(stopped(may_have_acted)),
                token = self.token() => token?,
            };
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
            let request = request
                .build()
                .map_err(|e| ArmError::transport(super::http::describe_error(&e)))?;
            let _on_the_wire = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(stopped(may_have_acted)),
                permit = self.in_flight.acquire() => permit.expect("the in-flight semaphore is never closed"),
            };
            if cancel.is_cancelled() {
                return Err(stopped(may_have_acted));
            }
            let started = std::time::Instant::now();
            // From here the request is on the wire: let it finish, within the grace.
            let exchange = self.transport.execute(request);
            let grace = async {
                cancel.cancelled().await;
                tokio::time::sleep(self.in_flight_grace).await;
            };
            let outcome = tokio::select! {
                outcome = exchange => outcome,
                _ = grace => {
                    return Err(ArmError::cancelled(format!(
                        "{method} {url} was sent but its answer did not come within {:?} of the stop; its outcome is unknown",
                        self.in_flight_grace
                    )));
                }
            };
            let last_attempt = attempt + 1 >= self.retry.max_attempts;
            let retry_in = match outcome {
                Ok(response) => {
                    let status = response.status;
                    let response_headers = response.headers;
                    self.pacer.observe(ticket, status, &response_headers);
                    tracing::debug!(
                        method = %method,
                        url = %url,
                        status,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        request_id = header(&response_headers, "x-ms-request-id").unwrap_or_default(),
                        "ARM request"
                    );
                    if (200..300).contains(&status) {
                        match decode(status, &response_headers, response.body) {
                            Ok(body) => return Ok((status, response_headers, Some(body))),
                            Err(error) if !is_read => {
                                tracing::warn!(%error, "write accepted; its response body is unusable");
                                return Ok((status, response_headers, None));
                            }
                            Err(error) => {
                                // A body cut short may read whole next time; one that is not
                                // JSON will not.
                                let truncated = error.message.starts_with("cannot read");
                                if !truncated || last_attempt {
                                    return Err(error);
                                }
                                tracing::debug!(%error, attempt, "retrying");
                                self.retry.backoff(attempt)
                            }
                        }
                    } else {
                        let bytes = response.body.unwrap_or_default();
                        let error = ArmError::from_response(status, &response_headers, &bytes);
                        let retryable = status == 429
                            || status == 408
                            || (500..600).contains(&status) && status != 501;
                        if !retryable {
                            return Err(ArmError {
                                after_unanswered_attempt: may_have_acted.is_some(),
                                ..error
                            });
                        }
                        if last_attempt {
                            return Err(ArmError {
                                message: format!(
                                    "{} (gave up after {} attempts)",
                                    error.message, self.retry.max_attempts
                                ),
                                ..error
                            });
                        }
                        tracing::debug!(%error, attempt, "retrying");
                        let wait = retry_after(&response_headers)
                            .map(|d| d.min(self.retry.max_delay))
                            .unwrap_or_else(|| self.retry.backoff(attempt));
                        // ARM refuses a throttled request before acting on it.
                        if status != 429 {
                            may_have_acted = Some(error);
                        }
                        wait
                    }
                }
                Err(message) => {
                    drop(ticket);
                    if last_attempt {
                        return Err(ArmError::transport(format!(
                            "{method} {url}: {message} (gave up after {} attempts)",
                            self.retry.max_attempts
                        )));
                    }
                    tracing::debug!(error = %message, attempt, "connection error; retrying");
                    may_have_acted = Some(ArmError::transport(message));
                    self.retry.backoff(attempt)
                }
            };
            attempt += 1;
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(stopped(may_have_acted)),
                _ = tokio::time::sleep(retry_in) => {}
            }
        }
    }
}
