//! Reads, writes and deletes of one resource, and the wait for long-running operations.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use super::error::header;
use super::stop::ambient_stop;
use super::{ArmClient, ArmError, ArmResponse, Request};
use crate::azure::pacing::retry_after;

impl ArmClient {
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
}

/// Whether a PUT answered `status` created its resource: only a 201 says so. A 200 is an
/// update of one that existed; a 202 (asynchronous) does not say, and neither does a 200 to
/// a retry of a PUT whose first answer was lost: both count as not created, so what may be
/// someone else's is never taken for ours.
pub fn put_created(status: u16) -> bool {
    status == 201
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
