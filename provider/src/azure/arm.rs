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

use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use super::credentials::TokenProvider;
use super::pacing::{retry_after, subscription_of, Bucket, Pacer};

/// An error from ARM (or from reaching it), as the user should see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmError {
    /// HTTP status; 0 when no response arrived.
    pub status: u16,
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
    /// An earlier attempt of this request got no answer ARM can be trusted to have refused
    /// it with (a 5xx, a 408, a dropped connection, a timeout): ARM may have acted on it.
    /// A retried write refused with 412 after such an attempt may be refused because that
    /// attempt took: read the resource to learn which.
    pub after_unanswered_attempt: bool,
}

impl ArmError {
    /// `code` of a request that was never sent: ARM was not asked, nothing changed.
    pub const NOT_SENT: &'static str = "NotSent";
    /// `code` of a call stopped after something was sent: the change may or may not be made.
    pub const CANCELLED: &'static str = "Cancelled";
    /// `code` of a successful answer whose body cannot be read or is not the JSON expected.
    pub const INVALID_RESPONSE: &'static str = "InvalidResponse";

    pub fn transport(message: impl Into<String>) -> Self {
        ArmError {
            status: 0,
            code: "ConnectionFailed".into(),
            message: message.into(),
            request_id: None,
            after_unanswered_attempt: false,
        }
    }

    /// The request was stopped before it was sent (every attempt, if any, was refused
    /// with 429, which ARM does before acting on a request).
    pub fn not_sent(message: impl Into<String>) -> Self {
        ArmError {
            status: 0,
            code: Self::NOT_SENT.into(),
            message: message.into(),
            request_id: None,
            after_unanswered_attempt: false,
        }
    }

    /// Stopped after something was sent: the change may still be made, or may be made already.
    pub fn cancelled(message: impl Into<String>) -> Self {
        ArmError {
            status: 0,
            code: Self::CANCELLED.into(),
            message: message.into(),
            request_id: None,
            after_unanswered_attempt: false,
        }
    }

    /// True when the call was stopped before anything of it reached ARM: the resource was
    /// not changed by it.
    pub fn is_not_sent(&self) -> bool {
        self.status == 0 && self.code == Self::NOT_SENT
    }

    /// True when the call was stopped after it sent something: its outcome is unknown, read
    /// the resource to learn it.
    pub fn is_cancelled(&self) -> bool {
        self.status == 0 && self.code == Self::CANCELLED
    }

    /// True for either kind of stop ([`ArmError::is_not_sent`], [`ArmError::is_cancelled`]).
    pub fn is_stopped(&self) -> bool {
        self.is_not_sent() || self.is_cancelled()
    }

    fn invalid_response(status: u16, headers: &HeaderMap, message: impl Into<String>) -> Self {
        ArmError {
            status,
            code: Self::INVALID_RESPONSE.into(),
            message: message.into(),
            request_id: header(headers, "x-ms-request-id"),
            after_unanswered_attempt: false,
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
            after_unanswered_attempt: false,
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

/// An HTTP answer as the client needs it: the body is read with the exchange, and a body that
/// could not be read is kept as the error it was.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Result<Vec<u8>, String>,
}

/// One HTTP exchange: the seam between the client's logic and the network (tests script it).
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// Sends `request` and reads the whole answer; `Err` when no answer arrived.
    async fn execute(&self, request: reqwest::Request) -> Result<RawResponse, String>;
}

#[async_trait::async_trait]
impl Transport for reqwest::Client {
    async fn execute(&self, request: reqwest::Request) -> Result<RawResponse, String> {
        let response = reqwest::Client::execute(self, request)
            .await
            .map_err(|e| super::http::describe_error(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map(|bytes| bytes.to_vec())
            .map_err(|e| super::http::describe_error(&e));
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }
}

tokio::task_local! {
    /// The stop of the operation the current task runs for, if any (see [`with_stop`]).
    static AMBIENT_STOP: CancellationToken;
}

/// Runs `call` so that every request it makes through this client without a token of its
/// own is cancellable by `stop`, as [`ArmClient::send_cancellable`] is: an operation's stop
/// reaches requests waiting in the pacer or in a retry backoff deep inside helpers that take
/// no token.
pub async fn with_stop<F: std::future::Future>(stop: CancellationToken, call: F) -> F::Output {
    AMBIENT_STOP.scope(stop, call).await
}

/// The stop a request without a token of its own obeys: the ambient one, else none.
fn ambient_stop() -> CancellationToken {
    AMBIENT_STOP
        .try_with(CancellationToken::clone)
        .unwrap_or_else(|_| never())
}

/// Whether a PUT answered `status` created its resource: only a 201 says so. A 200 is an
/// update of one that existed; a 202 (asynchronous) does not say, and neither does a 200 to
/// a retry of a PUT whose first answer was lost: both count as not created, so what may be
/// someone else's is never taken for ours.
pub fn put_created(status: u16) -> bool {
    status == 201
}

/// A token nobody cancels, for the calls that take none.
fn never() -> CancellationToken {
    CancellationToken::new()
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

    /// GET a resource; `None` when it does not exist.
    pub async fn get(&self, path: &str, api_version: &str) -> Result<Option<Json>, ArmError> {
        self.get_cancellable(path, api_version, &ambient_stop())
            .await
    }

    /// [`ArmClient::get`], stopped by `cancel` (see [`ArmClient::send_cancellable`]).
    pub async fn get_cancellable(
        &self,
        path: &str,
        api_version: &str,
        cancel: &CancellationToken,
    ) -> Result<Option<Json>, ArmError> {
        match self
            .send_cancellable(Request::new(Method::GET, path, Some(api_version)), cancel)
            .await
        {
            Ok(response) => Ok(Some(response.body)),
            Err(error) if error.status == 404 => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// PUT and wait for the operation to finish; returns the resource.
    pub async fn put(&self, path: &str, api_version: &str, body: &Json) -> Result<Json, ArmError> {
        self.put_cancellable(path, api_version, body, &ambient_stop())
            .await
    }

    /// [`ArmClient::put`], stopped by `cancel`: [`ArmError::is_not_sent`] when the PUT was
    /// not sent, [`ArmError::is_cancelled`] when it was and the wait for its end was stopped.
    pub async fn put_cancellable(
        &self,
        path: &str,
        api_version: &str,
        body: &Json,
        cancel: &CancellationToken,
    ) -> Result<Json, ArmError> {
        let response = self
            .send_cancellable(
                Request::new(Method::PUT, path, Some(api_version)).body(body),
                cancel,
            )
            .await?;
        self.finish(path, api_version, response, cancel).await
    }

    /// [`ArmClient::put`] with the status ARM answered the PUT itself with: 201 when the PUT
    /// created the resource, 200 when it existed and was updated (see [`put_created`]).
    pub async fn put_with_status(
        &self,
        path: &str,
        api_version: &str,
        body: &Json,
    ) -> Result<(u16, Json), ArmError> {
        let cancel = ambient_stop();
        let response = self
            .send_cancellable(
                Request::new(Method::PUT, path, Some(api_version)).body(body),
                &cancel,
            )
            .await?;
        let status = response.status;
        let resource = self.finish(path, api_version, response, &cancel).await?;
        Ok((status, resource))
    }

    /// DELETE and wait; a resource already gone is not an error.
    pub async fn delete(&self, path: &str, api_version: &str) -> Result<(), ArmError> {
        self.delete_cancellable(path, api_version, &ambient_stop())
            .await
    }

    /// [`ArmClient::delete`], stopped by `cancel` as [`ArmClient::put_cancellable`] is.
    pub async fn delete_cancellable(
        &self,
        path: &str,
        api_version: &str,
        cancel: &CancellationToken,
    ) -> Result<(), ArmError> {
        match self
            .send_cancellable(
                Request::new(Method::DELETE, path, Some(api_version)),
                cancel,
            )
            .await
        {
            Ok(response) => self.wait_cancellable(&response, cancel).await.map(|_| ()),
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
        cancel: &CancellationToken,
    ) -> Result<Json, ArmError> {
        let asynchronous = response.status == 202
            || header(&response.headers, "azure-asyncoperation").is_some()
            || (response.status == 201 && header(&response.headers, "location").is_some());
        if !asynchronous {
            return Ok(response.body);
        }
        self.wait_cancellable(&response, cancel).await?;
        let fresh = self
            .get_cancellable(path, api_version, cancel)
            .await
            .map_err(|error| written_then_stopped(error, "reading the written resource"))?;
        Ok(fresh.unwrap_or(response.body))
    }

    /// Polls a long-running operation until it ends (`Azure-AsyncOperation`, else
    /// `Location`); Failed and Canceled become errors with the operation's error. Stopped by
    /// `cancel`: the operation was started, so a stop is [`ArmError::is_cancelled`] (it may
    /// still succeed), never "not sent".
    pub async fn wait_cancellable(
        &self,
        response: &ArmResponse,
        cancel: &CancellationToken,
    ) -> Result<Option<Json>, ArmError> {
        let pause = |delay: Duration| async move {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => Err(ArmError::cancelled(
                    "stopped while waiting for a long-running operation; it may still finish",
                )),
                _ = tokio::time::sleep(delay) => Ok(()),
            }
        };
        let poll = |url: String| async move {
            self.send_cancellable(Request::new(Method::GET, &url, None), cancel)
                .await
                .map_err(|error| written_then_stopped(error, "polling a long-running operation"))
        };
        if let Some(status_url) = header(&response.headers, "azure-asyncoperation") {
            let mut delay = retry_after(&response.headers).unwrap_or(self.poll_interval);
            loop {
                pause(delay).await?;
                let poll = poll(status_url.clone()).await?;
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
                            after_unanswered_attempt: false,
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
                    pause(delay).await?;
                    let poll = poll(location.clone()).await?;
                    if poll.status != 202 {
                        return Ok(Some(poll.body));
                    }
                    delay = retry_after(&poll.headers).unwrap_or(self.poll_interval);
                }
            }
        }
        Ok(None)
    }

    /// Pages of a list (`value` items), following `nextLink`; one read per page. A page
    /// that is not a list (an unreadable or foreign body) is an error, never an empty page.
    pub fn list<'a>(
        &'a self,
        path: String,
        api_version: &'a str,
    ) -> BoxStream<'a, Result<Vec<Json>, ArmError>> {
        self.list_cancellable(path, api_version, ambient_stop())
    }

    /// [`ArmClient::list`], stopped by `cancel` (the page then ends the stream as an error).
    pub fn list_cancellable<'a>(
        &'a self,
        path: String,
        api_version: &'a str,
        cancel: CancellationToken,
    ) -> BoxStream<'a, Result<Vec<Json>, ArmError>> {
        self.pages(path, api_version, cancel)
    }

    /// [`ArmClient::list`] with the items read straight into `T`: a large listing then never
    /// builds a JSON tree per item (what most of its cost was). An item `T` cannot read makes
    /// its page an error, as an unreadable page does.
    pub fn list_of<'a, T: DeserializeOwned + Send + 'a>(
        &'a self,
        path: String,
        api_version: &'a str,
    ) -> BoxStream<'a, Result<Vec<T>, ArmError>> {
        self.pages(path, api_version, ambient_stop())
    }

    fn pages<'a, T: DeserializeOwned + Send + 'a>(
        &'a self,
        path: String,
        api_version: &'a str,
        cancel: CancellationToken,
    ) -> BoxStream<'a, Result<Vec<T>, ArmError>> {
        Box::pin(futures::stream::unfold(Some((path, true)), move |next| {
            let cancel = cancel.clone();
            async move {
                let (url, first) = next?;
                let version = if first { Some(api_version) } else { None };
                let page = self
                    .send_decoding(
                        Request::new(Method::GET, &url, version),
                        &cancel,
                        |status, headers, body| page_of(&url, status, headers, body),
                    )
                    .await;
                match page {
                    Ok((_, _, Some(Page { value, next_link }))) => {
                        let next = next_link.filter(|link| !link.is_empty());
                        Some((Ok(value), next.map(|link| (link, false))))
                    }
                    // A read's body is never refused silently: `send_decoding` returns its error.
                    Ok((status, headers, None)) => {
                        Some((Err(not_a_page(&url, status, &headers)), None))
                    }
                    Err(error) => Some((Err(error), None)),
                }
            }
        }))
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

/// The JSON of a 2xx answer (`Null` when empty); an unreadable body or one that is not JSON
/// is an error.
fn parse_success(
    status: u16,
    headers: &HeaderMap,
    body: Result<Vec<u8>, String>,
) -> Result<Json, ArmError> {
    let bytes = readable(status, headers, body)?;
    if bytes.is_empty() {
        return Ok(Json::Null);
    }
    serde_json::from_slice(&bytes).map_err(|error| not_json(status, headers, &bytes, error))
}

fn readable(
    status: u16,
    headers: &HeaderMap,
    body: Result<Vec<u8>, String>,
) -> Result<Vec<u8>, ArmError> {
    body.map_err(|error| {
        ArmError::invalid_response(
            status,
            headers,
            format!("cannot read the response body: {error}"),
        )
    })
}

fn not_json(status: u16, headers: &HeaderMap, bytes: &[u8], error: serde_json::Error) -> ArmError {
    let start: String = String::from_utf8_lossy(bytes).chars().take(200).collect();
    ArmError::invalid_response(
        status,
        headers,
        format!("the response body is not JSON ({error}): {start}"),
    )
}

/// A list page: its items and the link to the next page.
#[derive(serde::Deserialize)]
struct Page<T> {
    value: Vec<T>,
    #[serde(rename = "nextLink")]
    next_link: Option<String>,
}

/// The page of a 2xx answer; an answer without a `value` list is an error.
fn page_of<T: DeserializeOwned>(
    url: &str,
    status: u16,
    headers: &HeaderMap,
    body: Result<Vec<u8>, String>,
) -> Result<Page<T>, ArmError> {
    let bytes = readable(status, headers, body)?;
    let error = match serde_json::from_slice::<Page<T>>(&bytes) {
        Ok(page) => return Ok(page),
        Err(error) => error,
    };
    // Why not: no JSON at all, JSON that is no list page, or an item `T` cannot read.
    if bytes.is_empty() {
        return Err(not_a_page(url, status, headers));
    }
    match serde_json::from_slice::<Json>(&bytes) {
        Err(_) => Err(not_json(status, headers, &bytes, error)),
        Ok(json) if matches!(json.get("value"), Some(Json::Array(_))) => {
            Err(ArmError::invalid_response(
                status,
                headers,
                format!("an item of the page answering GET {url} cannot be read: {error}"),
            ))
        }
        Ok(_) => Err(not_a_page(url, status, headers)),
    }
}

fn not_a_page(url: &str, status: u16, headers: &HeaderMap) -> ArmError {
    ArmError::invalid_response(
        status,
        headers,
        format!("the answer to GET {url} is not a list page (no `value` array)"),
    )
}

/// A stop while following up a write that was sent: the write may still take effect.
fn written_then_stopped(error: ArmError, doing: &str) -> ArmError {
    if error.is_not_sent() {
        ArmError::cancelled(format!(
            "stopped while {doing}; the write was sent and may still take effect"
        ))
    } else {
        error
    }
}

/// A client whose network is a script, for tests on tokio's paused clock.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use tokio::time::Instant;

    #[derive(Debug)]
    pub struct StaticCredential;

    #[async_trait::async_trait]
    impl azure_core::credentials::TokenCredential for StaticCredential {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            Ok(azure_core::credentials::AccessToken::new(
                azure_core::credentials::Secret::new("token".to_string()),
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            ))
        }
    }

    /// What the scripted server does with the n-th request (from 0).
    pub enum Step {
        Answer(u16, Vec<(&'static str, String)>, Result<Vec<u8>, String>),
        /// Answers after a while (the request is on the wire meanwhile).
        Later(Duration, Box<Step>),
        /// Never answers.
        Hang,
        /// The connection fails without an answer.
        Fail(String),
    }

    pub type Script = Box<dyn Fn(&reqwest::Request, usize) -> Step + Send + Sync>;

    pub struct Scripted {
        pub script: Script,
        pub sent: Mutex<Vec<(Method, String, Instant)>>,
        pub count: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl Transport for Scripted {
        async fn execute(&self, request: reqwest::Request) -> Result<RawResponse, String> {
            let n = self.count.fetch_add(1, Ordering::SeqCst);
            self.sent.lock().unwrap().push((
                request.method().clone(),
                request.url().to_string(),
                Instant::now(),
            ));
            let mut step = (self.script)(&request, n);
            loop {
                match step {
                    Step::Answer(status, pairs, body) => {
                        let mut headers = HeaderMap::new();
                        for (name, value) in pairs {
                            headers.insert(name, value.parse().unwrap());
                        }
                        return Ok(RawResponse {
                            status,
                            headers,
                            body,
                        });
                    }
                    Step::Later(delay, next) => {
                        tokio::time::sleep(delay).await;
                        step = *next;
                    }
                    Step::Hang => std::future::pending::<()>().await,
                    Step::Fail(message) => return Err(message),
                }
            }
        }
    }

    pub fn client(
        script: impl Fn(&reqwest::Request, usize) -> Step + Send + Sync + 'static,
    ) -> (Arc<ArmClient>, Arc<Scripted>) {
        let transport = Arc::new(Scripted {
            script: Box::new(script),
            sent: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
        });
        let client = ArmClient::with_transport(
            reqwest::Client::new(),
            transport.clone(),
            url::Url::parse("https://management.test/").unwrap(),
            Arc::new(TokenProvider::new(Arc::new(StaticCredential))),
            "https://management.test/.default".into(),
        );
        (Arc::new(client), transport)
    }

    pub fn ok(body: &str) -> Step {
        Step::Answer(
            200,
            vec![
                ("x-ms-ratelimit-remaining-subscription-writes", "150".into()),
                ("x-ms-ratelimit-remaining-subscription-reads", "150".into()),
            ],
            Ok(body.as_bytes().to_vec()),
        )
    }

    pub fn throttled(retry_after_seconds: u64) -> Step {
        Step::Answer(
            429,
            vec![("retry-after", retry_after_seconds.to_string())],
            Ok(br#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#.to_vec()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many requests the buckets allow at once, at most [`MAX_IN_FLIGHT`] are on the
    /// wire together; the others wait their turn, unsent.
    #[tokio::test(start_paused = true)]
    async fn requests_on_the_wire_are_capped() {
        use test_support::{client, Step};
        let (arm, transport) = client(|_, n| {
            if n == 0 {
                // A roomy bucket: the pacer lets everything go.
                Step::Answer(
                    200,
                    vec![(
                        "x-ms-ratelimit-remaining-subscription-reads",
                        "20000".into(),
                    )],
                    Ok(b"{}".to_vec()),
                )
            } else {
                Step::Hang
            }
        });
        arm.get("/subscriptions/s/resourceGroups/first", "2022-09-01")
            .await
            .unwrap();
        for n in 0..(MAX_IN_FLIGHT + 100) {
            let arm = arm.clone();
            tokio::spawn(async move {
                let _ = arm
                    .get(
                        &format!("/subscriptions/s/resourceGroups/g{n}"),
                        "2022-09-01",
                    )
                    .await;
            });
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            transport.count.load(std::sync::atomic::Ordering::SeqCst),
            1 + MAX_IN_FLIGHT
        );
    }

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

    use super::test_support::*;
    use std::sync::atomic::Ordering;
    use tokio::time::Instant;

    const VM: &str =
        "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";

    fn patch(
        arm: &Arc<ArmClient>,
        cancel: &CancellationToken,
    ) -> tokio::task::JoinHandle<Result<ArmResponse, ArmError>> {
        let (arm, cancel) = (arm.clone(), cancel.clone());
        tokio::spawn(async move {
            let body = serde_json::json!({"identity": {"type": "UserAssigned"}});
            arm.send_cancellable(
                Request::new(Method::PATCH, VM, Some("2024-07-01")).body(&body),
                &cancel,
            )
            .await
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_queued_in_the_pacer_is_not_sent_once_cancelled() {
        // The first write is throttled for a minute: the bucket is blocked that long.
        let (arm, transport) = client(|_, n| if n == 0 { throttled(60) } else { ok("{}") });
        let first = patch(&arm, &CancellationToken::new());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(transport.count.load(Ordering::SeqCst), 1);

        let cancel = CancellationToken::new();
        let queued = patch(&arm, &cancel);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!queued.is_finished(), "waits in the pacer for the bucket");
        let stopped_at = Instant::now();
        cancel.cancel();
        let error = queued.await.unwrap().unwrap_err();
        assert!(error.is_not_sent(), "{error}");
        assert!(!error.is_cancelled());
        assert_eq!(stopped_at.elapsed(), Duration::ZERO, "ends at once");
        assert_eq!(
            transport.count.load(Ordering::SeqCst),
            1,
            "the queued write never reached ARM"
        );
        // The uncancelled write goes once the bucket refills.
        first.await.unwrap().unwrap();
        assert_eq!(transport.count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_backoff_ends_on_cancel() {
        // Throttled: every attempt was refused before ARM acted, so nothing was changed.
        let (arm, transport) = client(|_, _| throttled(30));
        let cancel = CancellationToken::new();
        let request = patch(&arm, &cancel);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(transport.count.load(Ordering::SeqCst), 1);
        let stopped_at = Instant::now();
        cancel.cancel();
        let error = request.await.unwrap().unwrap_err();
        assert!(error.is_not_sent(), "{error}");
        assert_eq!(stopped_at.elapsed(), Duration::ZERO);
        assert_eq!(
            transport.count.load(Ordering::SeqCst),
            1,
            "no retry went out"
        );

        // A 5xx may have been acted on: stopped, but not "not sent".
        let (arm, transport) =
            client(|_, _| Step::Answer(503, vec![("retry-after", "30".into())], Ok(Vec::new())));
        let cancel = CancellationToken::new();
        let request = patch(&arm, &cancel);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stopped_at = Instant::now();
        cancel.cancel();
        let error = request.await.unwrap().unwrap_err();
        assert!(error.is_cancelled() && !error.is_not_sent(), "{error}");
        assert_eq!(stopped_at.elapsed(), Duration::ZERO);
        assert_eq!(transport.count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_token_sends_nothing() {
        let (arm, transport) = client(|_, _| ok("{}"));
        let cancel = CancellationToken::new();
        cancel.cancel();
        let error = patch(&arm, &cancel).await.unwrap().unwrap_err();
        assert!(error.is_not_sent(), "{error}");
        assert_eq!(transport.count.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_on_the_wire_finishes_within_the_grace() {
        // Answered 3 s after it went: the answer is waited for and is the truth.
        let (arm, _) = client(|_, _| Step::Later(Duration::from_secs(3), Box::new(ok("{}"))));
        let cancel = CancellationToken::new();
        let request = patch(&arm, &cancel);
        tokio::time::sleep(Duration::from_secs(1)).await;
        cancel.cancel();
        assert_eq!(request.await.unwrap().unwrap().status, 200);

        // Never answered: abandoned at the grace, with an unknown outcome.
        let (arm, _) = client(|_, _| Step::Hang);
        let grace = arm.in_flight_grace;
        let cancel = CancellationToken::new();
        let request = patch(&arm, &cancel);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stopped_at = Instant::now();
        cancel.cancel();
        let error = request.await.unwrap().unwrap_err();
        assert!(error.is_cancelled(), "{error}");
        assert_eq!(stopped_at.elapsed(), grace);
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_for_a_long_running_operation_ends_on_cancel() {
        let (arm, transport) = client(|request, _| match *request.method() {
            Method::PUT => Step::Answer(
                201,
                vec![
                    (
                        "azure-asyncoperation",
                        "https://management.test/subscriptions/s1/operations/op1".into(),
                    ),
                    ("retry-after", "10".into()),
                ],
                Ok(b"{}".to_vec()),
            ),
            _ => ok(r#"{"status":"InProgress"}"#),
        });
        let cancel = CancellationToken::new();
        let put = {
            let (arm, cancel) = (arm.clone(), cancel.clone());
            tokio::spawn(async move {
                arm.put_cancellable(VM, "2024-07-01", &serde_json::json!({}), &cancel)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_secs(15)).await;
        // The PUT at 0 s, polls at 10 s (its Retry-After), 12 s and 14 s.
        let polls = transport.count.load(Ordering::SeqCst);
        assert_eq!(polls, 4, "the PUT and its polls");
        let stopped_at = Instant::now();
        cancel.cancel();
        let error = put.await.unwrap().unwrap_err();
        assert!(
            error.is_cancelled() && !error.is_not_sent(),
            "the PUT was sent: its outcome is unknown, {error}"
        );
        assert_eq!(stopped_at.elapsed(), Duration::ZERO);
        assert_eq!(transport.count.load(Ordering::SeqCst), polls);
    }

    #[tokio::test(start_paused = true)]
    async fn a_page_whose_body_does_not_parse_is_an_error_not_an_empty_page() {
        use futures::StreamExt;
        let (arm, _) = client(|request, _| {
            if request.url().path().ends_with("/page2") {
                Step::Answer(200, vec![], Ok(b"<html>gateway says hi".to_vec()))
            } else {
                ok(
                    r#"{"value":[{"id":"a"}],"nextLink":"https://management.test/subscriptions/s1/page2"}"#,
                )
            }
        });
        let mut pages = arm.list("/subscriptions/s1/items".into(), "1");
        assert_eq!(pages.next().await.unwrap().unwrap().len(), 1);
        let error = pages.next().await.unwrap().unwrap_err();
        assert_eq!(error.code, ArmError::INVALID_RESPONSE, "{error}");
        assert_eq!(error.status, 200);
        assert!(pages.next().await.is_none());
        assert!(arm
            .list_all("/subscriptions/s1/items".into(), "1")
            .await
            .is_err());

        // A page that is JSON but not a list, or a body that cannot be read, is no page either.
        for step in [
            || ok(r#"{"unexpected":true}"#),
            || Step::Answer(200, vec![], Err("connection reset".into())),
            || Step::Answer(200, vec![], Ok(Vec::new())),
        ] {
            let (arm, _) = client(move |_, _| step());
            let error = arm
                .list_all("/subscriptions/s1/items".into(), "1")
                .await
                .unwrap_err();
            assert_eq!(error.code, ArmError::INVALID_RESPONSE, "{error}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_get_whose_body_does_not_parse_is_an_error_not_a_missing_resource() {
        let (arm, _) = client(|_, _| Step::Answer(200, vec![], Ok(b"not json".to_vec())));
        let error = arm.get(VM, "2024-07-01").await.unwrap_err();
        assert_eq!(error.code, ArmError::INVALID_RESPONSE);
        // A write ARM accepted is done, even if its answer's body is unusable.
        let (arm, _) = client(|_, _| Step::Answer(200, vec![], Ok(b"not json".to_vec())));
        let response = patch(&arm, &CancellationToken::new())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status, 200);
    }

    #[tokio::test(start_paused = true)]
    async fn the_give_up_after_max_attempts_of_429_is_an_error() {
        let (arm, transport) = client(|_, _| throttled(1));
        let attempts = arm.retry.max_attempts;
        let error = patch(&arm, &CancellationToken::new())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(error.status, 429, "{error}");
        assert!(!error.is_stopped());
        assert!(
            error
                .message
                .contains(&format!("gave up after {attempts} attempts")),
            "{error}"
        );
        assert_eq!(transport.count.load(Ordering::SeqCst), attempts as usize);
    }

    /// A 412 answering a retry whose earlier attempt got a 5xx or lost its connection says
    /// so: that attempt may have taken, and the 412 may be its own doing. A 412 at the first
    /// attempt, or after 429s only (refused before ARM acted), does not.
    #[tokio::test(start_paused = true)]
    async fn a_412_after_an_unanswered_attempt_says_so() {
        let precondition_failed = || {
            Step::Answer(
                412,
                Vec::new(),
                Ok(br#"{"error":{"code":"PreconditionFailed","message":"etag"}}"#.to_vec()),
            )
        };
        let cases: [(&str, Script, bool); 4] = [
            (
                "500 then 412",
                Box::new(move |_, n| {
                    if n == 0 {
                        Step::Answer(500, Vec::new(), Ok(Vec::new()))
                    } else {
                        precondition_failed()
                    }
                }),
                true,
            ),
            (
                "dropped then 412",
                Box::new(move |_, n| {
                    if n == 0 {
                        Step::Fail("connection reset".into())
                    } else {
                        precondition_failed()
                    }
                }),
                true,
            ),
            (
                "429 then 412",
                Box::new(move |_, n| {
                    if n == 0 {
                        throttled(1)
                    } else {
                        precondition_failed()
                    }
                }),
                false,
            ),
            (
                "412 at once",
                Box::new(move |_, _| precondition_failed()),
                false,
            ),
        ];
        for (case, script, expected) in cases {
            let (arm, _) = client(script);
            let error = patch(&arm, &CancellationToken::new())
                .await
                .unwrap()
                .unwrap_err();
            assert_eq!(error.status, 412, "{case}: {error}");
            assert_eq!(error.after_unanswered_attempt, expected, "{case}");
        }
    }
}
