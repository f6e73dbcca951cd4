//! Request and response values handed between the server loop and the handlers.

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use serde_json::Value;

/// A fully read request: handlers are synchronous functions of it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    /// The percent-decoded path, without the query.
    pub path: String,
    /// The raw query string (without `?`).
    pub raw_query: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    /// A query parameter, matched case-insensitively by name.
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn api_version(&self) -> Option<&str> {
        self.q("api-version")
    }

    /// The body as JSON; an empty body is `null`.
    pub fn json(&self) -> Result<Value, Resp> {
        if self.body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            // Json.NET's wording: "<what>. Path '', line L, position P."
            let what = e.to_string();
            let what = what.split(" at line ").next().unwrap_or(&what).to_string();
            let mut what = what;
            if let Some(first) = what.get(..1) {
                what = first.to_ascii_uppercase() + &what[1..];
            }
            Resp::arm_error(
                400,
                "InvalidRequestContent",
                &format!(
                    "The request content was invalid and could not be deserialized: '{what}. Path '', line {}, position {}.'.",
                    e.line(),
                    e.column()
                ),
            )
        })
    }

    /// The body as an `application/x-www-form-urlencoded` form.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }
}

/// A response under construction.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Resp {
    pub fn new(status: u16) -> Self {
        Resp {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn json(status: u16, value: &Value) -> Self {
        Resp::json_of(status, value)
    }

    /// [`Resp::json`] for anything serializable, written without a JSON tree in between.
    pub fn json_of(status: u16, value: &impl serde::Serialize) -> Self {
        let mut r = Resp::new(status);
        r.body = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        r.with_header("content-type", "application/json; charset=utf-8")
    }

    pub fn empty(status: u16) -> Self {
        Resp::new(status)
    }

    /// ARM's error body: `{"error":{"code","message"}}`.
    pub fn arm_error(status: u16, code: &str, message: &str) -> Self {
        Resp::json(
            status,
            &serde_json::json!({"error": {"code": code, "message": message}}),
        )
    }

    /// ARM's error body with a `target`.
    pub fn arm_error_target(status: u16, code: &str, message: &str, target: &str) -> Self {
        Resp::json(
            status,
            &serde_json::json!({"error": {"code": code, "message": message, "target": target}}),
        )
    }

    pub fn with_header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        self.set_header(name, value);
        self
    }

    pub fn set_header(&mut self, name: &str, value: impl AsRef<str>) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value.as_ref()),
        ) {
            self.headers.retain(|(k, _)| k != n);
            self.headers.push((n, v));
        }
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.as_str().eq_ignore_ascii_case(name))
    }

    pub fn status_u16(&self) -> u16 {
        self.status.as_u16()
    }
}
