//! The shared application state every handler sees.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;

use crate::jwt::{Claims, Signer};
use crate::model::World;
use crate::realism::{Faults, Limiter};

/// One line of the request log (`GET /_emulator/requests`).
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub method: String,
    pub path: String,
    pub query: String,
    pub api_version: Option<String>,
    pub status: u16,
    /// The caller's object id (token `oid`), if authenticated.
    pub caller: Option<String>,
    pub caller_appid: Option<String>,
    /// When the answer left (RFC 3339, milliseconds).
    pub time: String,
    pub duration_ms: f64,
    /// When the request arrived, in milliseconds since the Unix epoch: what a test compares
    /// with its own clock (e.g. "no write arrived after the stop").
    pub received_unix_ms: u64,
}

pub const LOG_CAP: usize = 500_000;

pub struct App {
    pub world: RwLock<World>,
    /// `https://127.0.0.1:PORT` (no trailing slash).
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// Microsoft Graph's own listener, `https://localhost:PORT2` (no trailing slash): another
    /// host name than ARM's, so a client that picks the token audience from the URL (the
    /// CLI's `az rest`) gets Graph's. Graph is served on `base` too.
    pub graph_base: String,
    pub signer: Signer,
    pub token_cache: RwLock<HashMap<String, Arc<Claims>>>,
    pub limiter: Limiter,
    pub faults: Faults,
    pub log: Mutex<VecDeque<LogEntry>>,
    /// The secret for the App Service style managed identity endpoint.
    pub msi_secret: String,
    pub profile: String,
    /// Absolute path of the CA certificate PEM.
    pub ca_file: String,
}

impl App {
    pub fn new(
        world: World,
        base: String,
        host: String,
        graph_base: String,
        profile: &str,
        ca_file: String,
    ) -> App {
        App {
            ca_file,
            world: RwLock::new(world),
            base,
            host,
            graph_base,
            signer: Signer::new(),
            token_cache: RwLock::new(HashMap::new()),
            limiter: Limiter::default(),
            faults: Faults::default(),
            log: Mutex::new(VecDeque::new()),
            msi_secret: crate::util::guid().replace('-', ""),
            profile: profile.to_string(),
        }
    }

    /// The ARM endpoint with a trailing slash.
    pub fn arm_endpoint(&self) -> String {
        format!("{}/", self.base)
    }

    /// Microsoft Graph's endpoint (its own listener) with a trailing slash: also the
    /// audience (`microsoftGraphResourceId`) the endpoints metadata announces.
    pub fn graph_endpoint(&self) -> String {
        format!("{}/", self.graph_base)
    }

    pub fn record(&self, entry: LogEntry) {
        let mut log = self.log.lock();
        if log.len() >= LOG_CAP {
            log.pop_front();
        }
        log.push_back(entry);
    }

    /// Verifies one of our tokens, caching the result.
    pub fn verify_token(&self, token: &str) -> Result<Arc<Claims>, crate::jwt::VerifyError> {
        if let Some(c) = self.token_cache.read().get(token) {
            return Ok(c.clone());
        }
        let claims = Arc::new(self.signer.verify(token)?);
        let mut cache = self.token_cache.write();
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(token.to_string(), claims.clone());
        Ok(claims)
    }
}

/// Per-request context for ARM and Graph handlers.
pub struct Ctx {
    pub claims: Option<Arc<Claims>>,
    pub request_id: String,
}

impl Ctx {
    pub fn caller(&self) -> Option<&str> {
        self.claims.as_ref().and_then(|c| c.oid.as_deref())
    }
}
