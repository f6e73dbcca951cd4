//! Starts the real `azure-emulator` binary over HTTPS for a test.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use reqwest::Method;
use serde_json::{json, Value};

pub struct Emu {
    pub child: Child,
    pub ready: Value,
    pub http: Client,
    pub dir: tempfile::TempDir,
    token: std::cell::RefCell<Option<String>>,
}

pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.to_string())
    }
}

fn reply(r: Response) -> Reply {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

pub const SUB: &str = "00000000-0000-0000-0000-000000000001";

impl Emu {
    pub fn start(scenario: &Value) -> Emu {
        Emu::start_with(scenario, "fast", None)
    }

    pub fn start_with(scenario: &Value, profile: &str, state_file: Option<PathBuf>) -> Emu {
        let dir = tempfile::tempdir().unwrap();
        Emu::start_in(dir, scenario, profile, state_file)
    }

    pub fn start_in(
        dir: tempfile::TempDir,
        scenario: &Value,
        profile: &str,
        state_file: Option<PathBuf>,
    ) -> Emu {
        let sc = dir.path().join("scenario.json");
        std::fs::write(&sc, serde_json::to_vec(scenario).unwrap()).unwrap();
        let ready = dir.path().join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_azure-emulator"));
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--ready-file")
            .arg(&ready)
            .arg("--scenario")
            .arg(&sc)
            .arg("--profile")
            .arg(profile)
            .env("AZURE_EMULATOR_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(s) = &state_file {
            cmd.arg("--state-file").arg(s);
        }
        let mut child = cmd.spawn().expect("spawn emulator");
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready_doc: Value = loop {
            if let Ok(b) = std::fs::read(&ready) {
                break serde_json::from_slice(&b).expect("ready JSON");
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("emulator exited: {st}");
            }
            assert!(Instant::now() < deadline, "no ready file");
            std::thread::sleep(Duration::from_millis(20));
        };
        let ca = std::fs::read(ready_doc["ca_cert_file"].as_str().unwrap()).unwrap();
        let http = Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Emu {
            child,
            ready: ready_doc,
            http,
            dir,
            token: Default::default(),
        }
    }

    pub fn base(&self) -> String {
        self.ready["arm_endpoint"].as_str().unwrap().to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base(), path.trim_start_matches('/'))
    }

    pub fn token_for(&self, client_id: &str, secret: &str, scope: &str) -> Reply {
        let url = self.url(&format!(
            "{}/oauth2/v2.0/token",
            self.ready["tenant_id"].as_str().unwrap()
        ));
        reply(
            self.http
                .post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_secret", secret),
                    ("scope", scope),
                ])
                .send()
                .unwrap(),
        )
    }

    pub fn token(&self, scope: &str) -> String {
        let r = self.token_for(
            self.ready["client_id"].as_str().unwrap(),
            self.ready["client_secret"].as_str().unwrap(),
            scope,
        );
        assert_eq!(r.status, 200, "{}", r.text);
        r.body["access_token"].as_str().unwrap().to_string()
    }

    pub fn arm_token(&self) -> String {
        if let Some(t) = self.token.borrow().clone() {
            return t;
        }
        let t = self.token("https://management.azure.com/.default");
        *self.token.borrow_mut() = Some(t.clone());
        t
    }

    pub fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = if path.starts_with("https://") {
            path.to_string()
        } else {
            self.url(path)
        };
        let mut rb = self.http.request(method, url);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        reply(rb.send().unwrap())
    }

    pub fn arm(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let t = self.arm_token();
        self.call_with(method, path, body, Some(&t), &[])
    }

    pub fn get(&self, path: &str) -> Reply {
        self.arm(Method::GET, path, None)
    }
    pub fn put(&self, path: &str, body: Value) -> Reply {
        self.arm(Method::PUT, path, Some(&body))
    }
    pub fn patch(&self, path: &str, body: Value) -> Reply {
        self.arm(Method::PATCH, path, Some(&body))
    }
    pub fn delete(&self, path: &str) -> Reply {
        self.arm(Method::DELETE, path, None)
    }

    pub fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.call_with(method, &format!("_emulator/{path}"), body, None, &[])
    }

    pub fn stop(&mut self) {
        unsafe {
            libc_kill(self.child.id() as i32, 15);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

impl Drop for Emu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn rg_path(rg: &str) -> String {
    format!("subscriptions/{SUB}/resourcegroups/{rg}?api-version=2022-09-01")
}

pub fn uami_id(rg: &str, name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}")
}

pub fn vm_path(rg: &str, name: &str, v: &str) -> String {
    format!("subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}?api-version={v}")
}

/// A small scenario: one RG with three identities and VMs of several shapes.
pub fn basic_scenario() -> Value {
    json!({
        "subscriptions": [{
            "id": SUB,
            "regions": ["eastus", "westeurope"],
            "resource_groups": [{"name": "rg-app", "location": "eastus"}],
            "user_assigned_identities": [
                {"name": "id-a", "resource_group": "rg-app", "location": "eastus"},
                {"name": "id-b", "resource_group": "rg-app", "location": "eastus"},
                {"name": "id-c", "resource_group": "rg-app", "location": "westeurope"}
            ],
            "virtual_machines": [
                {"name": "vm-none", "resource_group": "rg-app", "location": "eastus"},
                {"name": "vm-sys", "resource_group": "rg-app", "location": "eastus", "identity": {"type": "SystemAssigned"}},
                {"name": "vm-one", "resource_group": "rg-app", "location": "eastus", "identity": {"type": "UserAssigned", "user_assigned": [uami_id("rg-app", "id-a")]}},
                {"name": "vm-two", "resource_group": "rg-app", "location": "eastus", "identity": {"type": "UserAssigned", "user_assigned": [uami_id("rg-app", "id-a"), uami_id("rg-app", "id-b")]}},
                {"name": "vm-both", "resource_group": "rg-app", "location": "eastus", "identity": {"type": "SystemAssigned, UserAssigned", "user_assigned": [uami_id("rg-app", "id-a")]}}
            ],
            "scale_sets": [
                {"name": "ss-1", "resource_group": "rg-app", "location": "eastus"}
            ]
        }]
    })
}
