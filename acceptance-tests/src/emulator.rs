//! Starts the `azure-emulator` binary for a test and talks to its admin API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value as Json;

use crate::workspace_binary;

/// The ready file the emulator writes once it accepts connections.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadyInfo {
    pub arm_endpoint: String,
    pub authority_host: String,
    pub graph_endpoint: String,
    pub metadata_host: String,
    pub ca_cert_file: PathBuf,
    pub tenant_id: String,
    pub subscription_ids: Vec<String>,
    pub client_id: String,
    pub client_secret: String,
    pub managed_identity_endpoint: String,
    pub managed_identity_header: String,
    /// Graph's own listener (`https://localhost:PORT/`).
    #[serde(default)]
    pub graph_host_endpoint: String,
}

/// A whole configuration: `required_providers` for `azure-mig/mig`, the `provider` block,
/// then `body`.
pub fn configuration(provider: &str, body: &str) -> String {
    format!(
        r#"
terraform {{
  required_providers {{
    mig = {{ source = "azure-mig/mig" }}
  }}
}}

{provider}

{body}
"#
    )
}

/// A running emulator process, stopped when dropped.
pub struct Emulator {
    child: Child,
    pub ready: ReadyInfo,
    http: reqwest::blocking::Client,
    _dir: tempfile::TempDir,
    /// The state file [`Emulator::restart`] restarts from (`None`: not restartable).
    state_file: Option<PathBuf>,
    profile: String,
}

const READY_TIMEOUT: Duration = Duration::from_secs(30);

impl Emulator {
    /// Starts an emulator seeded with `scenario` (a scenario document), `fast` profile.
    pub fn start(scenario: &Json) -> Self {
        Self::start_with(scenario, "fast")
    }

    pub fn start_with(scenario: &Json, profile: &str) -> Self {
        Self::launch(scenario, profile, false)
    }

    /// [`Emulator::start`] with a state file, so that [`Emulator::restart`] can stop the
    /// process and bring the same world back.
    pub fn start_restartable(scenario: &Json) -> Self {
        Self::launch(scenario, "fast", true)
    }

    fn launch(scenario: &Json, profile: &str, restartable: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mig-emu-")
            .tempdir()
            .expect("create emulator dir");
        let scenario_file = dir.path().join("scenario.json");
        std::fs::write(&scenario_file, serde_json::to_vec_pretty(scenario).unwrap())
            .expect("write scenario");
        let state_file = restartable.then(|| dir.path().join("state.json"));
        let (child, ready) = spawn(dir.path(), profile, state_file.as_deref(), None);
        let http = admin_client(&ready);
        Emulator {
            child,
            ready,
            http,
            _dir: dir,
            state_file,
            profile: profile.to_string(),
        }
    }

    /// Stops the emulator (SIGTERM: it saves its world), leaves its ports closed for
    /// `downtime`, and starts it again on the same ports with the same world and TLS
    /// identity: what a client sees is an outage, then the same Azure. Faults and the request
    /// log start empty. Only for an emulator from [`Emulator::start_restartable`].
    pub fn restart(&mut self, downtime: Duration) {
        let state_file = self
            .state_file
            .clone()
            .expect("restart needs Emulator::start_restartable");
        self.stop();
        std::thread::sleep(downtime);
        let ports = (
            port_of(&self.ready.arm_endpoint),
            port_of(&self.ready.graph_host_endpoint),
        );
        let (child, ready) = spawn(
            self._dir.path(),
            &self.profile.clone(),
            Some(&state_file),
            Some(ports),
        );
        assert_eq!(
            ready.arm_endpoint, self.ready.arm_endpoint,
            "the restarted emulator listens where it did"
        );
        self.child = child;
        self.http = admin_client(&ready);
        self.ready = ready;
    }

    /// Stops the process with SIGTERM and waits for it to exit (it saves its state file).
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn subscription_id(&self) -> &str {
        &self.ready.subscription_ids[0]
    }

    /// A whole configuration against this emulator: see [`configuration`].
    pub fn configuration(&self, body: &str) -> String {
        configuration(&self.provider_block(), body)
    }

    /// The `provider "mig"` block that points the provider at this emulator.
    pub fn provider_block(&self) -> String {
        format!(
            r#"provider "mig" {{
  subscription_id     = "{sub}"
  tenant_id           = "{tenant}"
  client_id           = "{client_id}"
  client_secret       = "{secret}"
  metadata_host       = "{metadata_host}"
  ca_certificate_file = "{ca}"
  use_cli             = false
}}
"#,
            sub = self.subscription_id(),
            tenant = self.ready.tenant_id,
            client_id = self.ready.client_id,
            secret = self.ready.client_secret,
            metadata_host = self.ready.metadata_host,
            ca = self.ready.ca_cert_file.display(),
        )
    }

    /// `ARM_*` variables equivalent to [`Emulator::provider_block`].
    pub fn arm_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ARM_SUBSCRIPTION_ID", self.subscription_id().to_string()),
            ("ARM_TENANT_ID", self.ready.tenant_id.clone()),
            ("ARM_CLIENT_ID", self.ready.client_id.clone()),
            ("ARM_CLIENT_SECRET", self.ready.client_secret.clone()),
            ("ARM_METADATA_HOSTNAME", self.ready.metadata_host.clone()),
            (
                "ARM_CA_CERTIFICATE_FILE",
                self.ready.ca_cert_file.display().to_string(),
            ),
            ("ARM_USE_CLI", "false".to_string()),
        ]
    }

    fn admin_url(&self, path: &str) -> String {
        format!("{}_emulator/{path}", self.ready.arm_endpoint)
    }

    /// Calls the admin API and returns its JSON answer (panics on a non-2xx status).
    pub fn admin(&self, method: reqwest::Method, path: &str, body: Option<&Json>) -> Json {
        let mut request = self.http.request(method.clone(), self.admin_url(path));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .unwrap_or_else(|e| panic!("admin {method} {path}: {e}"));
        let status = response.status();
        let text = response.text().unwrap_or_default();
        assert!(
            status.is_success(),
            "admin {method} {path}: {status}: {text}"
        );
        serde_json::from_str(&text).unwrap_or(Json::Null)
    }

    /// Merges a scenario document into the running emulator.
    pub fn load_scenario(&self, scenario: &Json) {
        self.admin(reqwest::Method::POST, "scenario", Some(scenario));
    }

    /// Injects a fault (see emulator/README.md for the document's fields).
    /// Adds to the world (`POST /_emulator/scenario?merge=true`).
    pub fn load_merge(&self, scenario: &Json) {
        self.admin(reqwest::Method::POST, "scenario?merge=true", Some(scenario));
    }

    pub fn inject_fault(&self, fault: &Json) {
        self.admin(reqwest::Method::POST, "faults", Some(fault));
    }

    /// Turns ARM's throttling on or off (a `realistic` profile's buckets): a test reading
    /// every machine back does not wait on the buckets its apply ran under.
    pub fn set_throttling(&self, on: bool) {
        self.admin(
            reqwest::Method::POST,
            "realism",
            Some(&serde_json::json!({ "throttling": on })),
        );
    }

    pub fn clear_faults(&self) {
        self.admin(reqwest::Method::DELETE, "faults", None);
    }

    /// The request log since the last [`Emulator::clear_requests`].
    pub fn requests(&self) -> Vec<Json> {
        let log = self.admin(reqwest::Method::GET, "requests", None);
        match log {
            Json::Array(entries) => entries,
            other => other["requests"].as_array().cloned().unwrap_or_default(),
        }
    }

    pub fn clear_requests(&self) {
        self.admin(reqwest::Method::DELETE, "requests", None);
    }

    /// GETs an ARM resource by ID (with `api_version`) using the admin-free ARM surface.
    pub fn arm_get(&self, id: &str, api_version: &str) -> Option<Json> {
        let token = self.arm_token();
        let url = format!(
            "{}{}?api-version={api_version}",
            self.ready.arm_endpoint,
            id.trim_start_matches('/')
        );
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .expect("ARM GET");
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert!(
            response.status().is_success(),
            "GET {id}: {}",
            response.status()
        );
        Some(response.json().expect("ARM JSON"))
    }

    /// Sends an ARM request as the scenario's service principal: another writer than the
    /// provider. Returns the status and the JSON body (Null when empty).
    pub fn arm_send(
        &self,
        method: reqwest::Method,
        id: &str,
        api_version: &str,
        body: Option<&Json>,
    ) -> (u16, Json) {
        let url = format!(
            "{}{}?api-version={api_version}",
            self.ready.arm_endpoint,
            id.trim_start_matches('/')
        );
        let mut request = self.http.request(method, url).bearer_auth(self.arm_token());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().expect("ARM request");
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Json::Null))
    }

    /// A VM's or scale set's identity as (type, lower-cased user-assigned IDs).
    pub fn identity_of(&self, id: &str) -> (String, std::collections::BTreeSet<String>) {
        let machine = self
            .arm_get(id, "2024-07-01")
            .unwrap_or_else(|| panic!("{id} not found"));
        let kind = machine["identity"]["type"]
            .as_str()
            .unwrap_or("None")
            .to_string();
        let ids = machine["identity"]["userAssignedIdentities"]
            .as_object()
            .map(|m| m.keys().map(|k| k.to_ascii_lowercase()).collect())
            .unwrap_or_default();
        (kind, ids)
    }

    /// An ARM access token for the scenario's service principal.
    pub fn arm_token(&self) -> String {
        let url = format!(
            "{}{}/oauth2/v2.0/token",
            self.ready.authority_host, self.ready.tenant_id
        );
        let response: Json = self
            .http
            .post(url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.ready.client_id.as_str()),
                ("client_secret", self.ready.client_secret.as_str()),
                ("scope", "https://management.azure.com/.default"),
            ])
            .send()
            .expect("token request")
            .json()
            .expect("token JSON");
        response["access_token"]
            .as_str()
            .expect("access_token in token response")
            .to_string()
    }
}

/// Starts the emulator binary in `dir` (its scenario file written there already): on any
/// free ports, or on `ports` (ARM's, Graph's) when restarting.
fn spawn(
    dir: &Path,
    profile: &str,
    state_file: Option<&Path>,
    ports: Option<(u16, u16)>,
) -> (Child, ReadyInfo) {
    let ready_file = dir.join("ready.json");
    let _ = std::fs::remove_file(&ready_file);
    let binary = workspace_binary("MIG_EMULATOR_BIN", "azure-emulator");
    let mut command = Command::new(&binary);
    command
        .arg("--ready-file")
        .arg(&ready_file)
        .arg("--scenario")
        .arg(dir.join("scenario.json"))
        .arg("--profile")
        .arg(profile)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    match ports {
        Some((arm, graph)) => command
            .arg("--listen")
            .arg(format!("127.0.0.1:{arm}"))
            .arg("--graph-listen")
            .arg(format!("127.0.0.1:{graph}")),
        None => command.arg("--listen").arg("127.0.0.1:0"),
    };
    if let Some(state) = state_file {
        command.arg("--state-file").arg(state);
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
    let ready = wait_for_ready_file(&ready_file, &mut child);
    (child, ready)
}

fn admin_client(ready: &ReadyInfo) -> reqwest::blocking::Client {
    let ca = std::fs::read(&ready.ca_cert_file).expect("read emulator CA");
    reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("emulator CA is PEM"))
        // Test steps are minutes apart while Terraform runs; a pooled connection the
        // emulator has since closed would fail the next admin call.
        .pool_max_idle_per_host(0)
        .build()
        .expect("admin client")
}

/// The port of `https://host:PORT/`.
fn port_of(endpoint: &str) -> u16 {
    endpoint
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {endpoint}"))
}

fn wait_for_ready_file(path: &Path, child: &mut Child) -> ReadyInfo {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Ok(bytes) = std::fs::read(path) {
            return serde_json::from_slice(&bytes).expect("ready file is the documented JSON");
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("azure-emulator exited before it was ready: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "azure-emulator wrote no ready file within {READY_TIMEOUT:?}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
