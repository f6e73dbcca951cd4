//! [`ArmError`]: what went wrong with a call, as the user should see it.

use std::fmt;

use reqwest::header::HeaderMap;
use serde_json::Value as Json;

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

    pub(super) fn invalid_response(
        status: u16,
        headers: &HeaderMap,
        message: impl Into<String>,
    ) -> Self {
        ArmError {
            status,
            code: Self::INVALID_RESPONSE.into(),
            message: message.into(),
            request_id: header(headers, "x-ms-request-id"),
            after_unanswered_attempt: false,
        }
    }

    pub(super) fn from_response(status: u16, headers: &HeaderMap, body: &[u8]) -> Self {
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

pub(super) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
