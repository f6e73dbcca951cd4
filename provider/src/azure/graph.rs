//! Microsoft Graph v1.0: which directory objects still exist.

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

impl GraphClient {
    pub fn new(graph: Arc<ArmClient>) -> Self {
        GraphClient { graph }
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
            for object in response
                .body
                .get("value")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(id) = object.get("id").and_then(Json::as_str) {
                    found.insert(id.to_ascii_lowercase());
                }
            }
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
