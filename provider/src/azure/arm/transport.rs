//! The answers the client returns, and the HTTP exchange it goes through.

use reqwest::header::HeaderMap;
use serde_json::Value as Json;

/// A successful response.
#[derive(Debug, Clone)]
pub struct ArmResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Json,
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
            .map_err(|e| crate::azure::http::describe_error(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map(|bytes| bytes.to_vec())
            .map_err(|e| crate::azure::http::describe_error(&e));
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }
}
