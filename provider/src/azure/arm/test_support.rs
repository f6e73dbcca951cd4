//! A client whose network is a script, for tests on tokio's paused clock.

use super::transport::RawResponse;
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
