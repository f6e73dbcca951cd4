//! Microsoft Graph v1.0: which directory objects still exist, and in which tenant Graph
//! answers.

use std::collections::BTreeSet;
use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value as Json};

use super::arm::{ArmClient, ArmError, Request};

/// `getByIds` takes at most this many IDs a call.
const IDS_PER_CALL: usize = 1000;

pub struct GraphClient {
    /// The same retrying client, pointed at Graph with a Graph token.
    graph: Arc<ArmClient>,
}

/// The IDs (lower-case) of the objects in a `getByIds` answer. An answer that cannot be read
/// (not JSON, no `value` array, an item without an `id`) is an error: read as "nobody
/// exists", it would make every principal look deleted.
pub fn ids_in_get_by_ids(body: &Json) -> Result<BTreeSet<String>, String> {
    let Some(items) = body.get("value").and_then(Json::as_array) else {
        let shape = match body {
            Json::Null => "an empty or non-JSON body".to_string(),
            Json::Object(_) => "a JSON object without a `value` array".to_string(),
            other => format!("JSON that is not an object ({})", kind_of(other)),
        };
        return Err(format!(
            "Microsoft Graph answered directoryObjects/getByIds with {shape}; it cannot say which principals exist"
        ));
    };
    items
        .iter()
        .map(|item| {
            item.get("id")
                .and_then(Json::as_str)
                .map(str::to_ascii_lowercase)
                .ok_or_else(|| {
                    "Microsoft Graph answered directoryObjects/getByIds with an object that has no `id`; it cannot say which principals exist".to_string()
                })
        })
        .collect()
}

fn kind_of(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// The `tid` claim of a JWT access token (the tenant it was issued in), unverified: the token
/// came from Entra ID over TLS and is only read to compare tenants.
pub fn tenant_of_token(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Json = serde_json::from_slice(&bytes).ok()?;
    claims
        .get("tid")
        .and_then(Json::as_str)
        .map(str::to_ascii_lowercase)
}

impl GraphClient {
    pub fn new(graph: Arc<ArmClient>) -> Self {
        GraphClient { graph }
    }

    /// The tenant whose directory Graph answers for: the `tid` of the Graph token. `None`
    /// when the token carries none.
    pub async fn tenant_id(&self) -> Result<Option<String>, ArmError> {
        Ok(tenant_of_token(&self.graph.token().await?))
    }

    /// The subset of `ids` that exist in the directory (deleted principals are absent).
    pub async fn existing_object_ids(&self, ids: &[String]) -> Result<BTreeSet<String>, ArmError> {
        let mut found = BTreeSet::new();
        for chunk in ids.chunks(IDS_PER_CALL) {
            let body = json!({"ids": chunk});
            let response = self
                .graph
                .send(
                    Request::new(Method::POST, "/v1.0/directoryObjects/getByIds", None).body(&body),
                )
                .await?;
            let ids = ids_in_get_by_ids(&response.body).map_err(|message| ArmError {
                status: response.status,
                code: ArmError::INVALID_RESPONSE.into(),
                message,
                request_id: response
                    .headers
                    .get("request-id")
                    .or_else(|| response.headers.get("x-ms-request-id"))
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_string),
                after_unanswered_attempt: false,
            })?;
            found.extend(ids);
        }
        Ok(found)
    }

    /// A directory object (service principal, user, group), or `None` when Graph answers
    /// 404 for it. Any other failure is an error, never "gone".
    pub async fn directory_object(&self, id: &str) -> Result<Option<Json>, ArmError> {
        let path = format!("/v1.0/directoryObjects/{id}");
        match self
            .graph
            .send(Request::new(Method::GET, &path, None))
            .await
        {
            Ok(response) => Ok(Some(response.body)),
            Err(error) if error.status == 404 => Ok(None),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::arm::test_support::{client, ok};

    #[test]
    fn an_unreadable_get_by_ids_answer_is_an_error_never_nobody() {
        for body in [
            Json::Null,
            json!({}),
            json!({"value": null}),
            json!([]),
            json!("<html>"),
            json!({"value": [{"displayName": "no id"}]}),
        ] {
            assert!(ids_in_get_by_ids(&body).is_err(), "{body}");
        }
        assert_eq!(
            ids_in_get_by_ids(&json!({"value": []})),
            Ok(BTreeSet::new())
        );
        assert_eq!(
            ids_in_get_by_ids(&json!({"value": [{"id": "AB"}]})),
            Ok(BTreeSet::from(["ab".to_string()]))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_2xx_answer_that_is_not_json_fails_the_lookup() {
        for body in ["<html>maintenance</html>", "", "{}"] {
            let (graph, _) = client(move |_, _| ok(body));
            let error = GraphClient::new(graph)
                .existing_object_ids(&["a".to_string()])
                .await
                .unwrap_err();
            assert_eq!(error.code, ArmError::INVALID_RESPONSE, "{body:?}: {error}");
            assert!(error.message.contains("getByIds"), "{error}");
        }
        let (graph, _) = client(|_, _| ok(r#"{"value": [{"id": "A"}]}"#));
        assert_eq!(
            GraphClient::new(graph)
                .existing_object_ids(&["a".to_string(), "b".to_string()])
                .await
                .unwrap(),
            BTreeSet::from(["a".to_string()])
        );
    }

    #[test]
    fn the_tenant_is_read_from_the_token() {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"tid":"AAAA-BB","oid":"x"}"#);
        assert_eq!(
            tenant_of_token(&format!("h.{payload}.s")).as_deref(),
            Some("aaaa-bb")
        );
        assert_eq!(tenant_of_token("garbage"), None);
    }
}
