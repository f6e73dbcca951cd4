//! Lists followed page by page through `nextLink`, and the reading of 2xx bodies.

use futures::stream::BoxStream;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use super::stop::ambient_stop;
use super::{ArmClient, ArmError, Request};

impl ArmClient {
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
pub(super) fn parse_success(
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
