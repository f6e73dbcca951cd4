//! Runs the Terraform CLI in a temporary working directory against the locally built provider.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value as Json;

use crate::{process_scratch, workspace_binary, workspace_root};

const PROVIDER_ADDRESS: &str = "registry.terraform.io/azure-mig/mig";

/// The provider's version as Terraform sees it in the filesystem mirror.
pub fn provider_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The Terraform binary under test and the CLI configuration pointing it at our provider.
struct Toolchain {
    terraform: PathBuf,
    cli_config: PathBuf,
}

fn toolchain() -> &'static Toolchain {
    static TOOLCHAIN: OnceLock<Toolchain> = OnceLock::new();
    TOOLCHAIN.get_or_init(|| {
        let terraform = find_terraform();
        let scratch = process_scratch("terraform");
        let mirror = scratch.join("mirror");
        let platform_dir = mirror
            .join(PROVIDER_ADDRESS)
            .join(provider_version())
            .join(platform());
        std::fs::create_dir_all(&platform_dir).expect("create mirror dir");
        let provider = workspace_binary("MIG_PROVIDER_BIN", "terraform-provider-mig");
        let installed =
            platform_dir.join(format!("terraform-provider-mig_v{}", provider_version()));
        // A hard link or a copy, not a symlink: Terraform hashes the mirror's contents and
        // rejects links out of it.
        if std::fs::hard_link(&provider, &installed).is_err() {
            std::fs::copy(&provider, &installed).expect("copy provider into mirror");
        }
        let cli_config = scratch.join("terraform.rc");
        std::fs::write(
            &cli_config,
            format!(
                r#"provider_installation {{
  filesystem_mirror {{
    path    = "{mirror}"
    include = ["{PROVIDER_ADDRESS}"]
  }}
  direct {{
    exclude = ["{PROVIDER_ADDRESS}"]
  }}
}}
"#,
                mirror = mirror.display()
            ),
        )
        .expect("write CLI config");
        Toolchain {
            terraform,
            cli_config,
        }
    })
}

fn platform() -> String {
    let os = std::env::consts::OS;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{os}_{arch}")
}

/// The minor version of the Terraform under test (`15` for 1.15.5).
pub fn terraform_minor() -> u64 {
    static MINOR: OnceLock<u64> = OnceLock::new();
    *MINOR.get_or_init(|| {
        let output = Command::new(&toolchain().terraform)
            .args(["version", "-json"])
            .env("TF_CLI_CONFIG_FILE", &toolchain().cli_config)
            .output()
            .expect("terraform version");
        let version: Json = serde_json::from_slice(&output.stdout).unwrap_or(Json::Null);
        version["terraform_version"]
            .as_str()
            .and_then(|v| v.split('.').nth(1))
            .and_then(|minor| minor.parse().ok())
            .unwrap_or(0)
    })
}

/// True when the Terraform under test (1.x) has `feature`, which arrived in 1.`since`;
/// otherwise says on stderr that the test is skipped on this line. Each test that needs a
/// feature newer than 1.6 starts with `if !terraform_has(8, "provider functions") { return; }`.
pub fn terraform_has(since: u64, feature: &str) -> bool {
    let minor = terraform_minor();
    if minor >= since {
        return true;
    }
    eprintln!("skipped on Terraform 1.{minor}: {feature} need Terraform 1.{since}+");
    false
}

fn find_terraform() -> PathBuf {
    if let Ok(bin) = std::env::var("MIG_TF_BIN") {
        return PathBuf::from(bin);
    }
    let script = workspace_root().join("scripts/install-terraform");
    let output = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "scripts/install-terraform failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

/// What one Terraform command printed.
#[derive(Debug)]
pub struct CommandOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// Stdout parsed as a single JSON document.
    pub fn json(&self) -> Json {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// Stdout parsed as Terraform's machine-readable UI stream (one JSON object per line).
    pub fn json_lines(&self) -> Vec<Json> {
        self.stdout
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The diagnostics in a `-json` UI stream or in `validate -json` output.
    pub fn diagnostics(&self) -> Vec<Json> {
        if let Ok(doc) = serde_json::from_str::<Json>(&self.stdout) {
            if let Some(list) = doc.get("diagnostics").and_then(Json::as_array) {
                return list.clone();
            }
        }
        self.json_lines()
            .into_iter()
            .filter(|line| line["type"] == "diagnostic")
            .map(|line| line["diagnostic"].clone())
            .collect()
    }

    /// Everything printed, for assertion messages.
    pub fn all(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

/// A temporary Terraform working directory.
pub struct Workdir {
    dir: tempfile::TempDir,
    env: BTreeMap<String, String>,
}

impl Workdir {
    /// A new working directory holding `main.tf` with `config`.
    pub fn new(config: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("mig-tf-")
            .tempdir()
            .expect("create working dir");
        let workdir = Workdir {
            dir,
            env: BTreeMap::new(),
        };
        workdir.write("main.tf", config);
        workdir
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes (or replaces) a file in the working directory.
    pub fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.dir.path().join(name), contents).expect("write config file");
    }

    /// Sets an environment variable for every later command (e.g. `ARM_*`).
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    /// The `terraform <args>` command with this working directory's environment.
    fn command(&self, args: &[&str]) -> Command {
        let toolchain = toolchain();
        let mut command = Command::new(&toolchain.terraform);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("TF_CLI_CONFIG_FILE", &toolchain.cli_config)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env_remove("TF_PLUGIN_CACHE_DIR")
            .env_remove("TF_LOG");
        // The tests' own Azure settings must not leak in from the developer's shell.
        for (key, _) in std::env::vars() {
            if key.starts_with("ARM_") {
                command.env_remove(key);
            }
        }
        command.envs(&self.env);
        command
    }

    /// Runs `terraform <args>` and returns what it printed, successful or not.
    pub fn run(&self, args: &[&str]) -> CommandOutput {
        let output = self
            .command(args)
            .output()
            .unwrap_or_else(|e| panic!("running terraform {}: {e}", args.join(" ")));
        CommandOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Starts `terraform <args>` without waiting for it; its output is piped.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting terraform {}: {e}", args.join(" ")))
    }

    /// Runs a command that must succeed.
    pub fn run_ok(&self, args: &[&str]) -> CommandOutput {
        let output = self.run(args);
        assert!(
            output.success,
            "terraform {} failed:\n{}",
            args.join(" "),
            output.all()
        );
        output
    }

    pub fn init(&self) -> CommandOutput {
        self.run_ok(&["init", "-input=false", "-no-color"])
    }

    /// `terraform apply -auto-approve`, succeeding.
    pub fn apply(&self) -> CommandOutput {
        self.run_ok(&["apply", "-auto-approve", "-input=false", "-no-color"])
    }

    /// `terraform apply -auto-approve -json`, successful or not.
    pub fn try_apply(&self) -> CommandOutput {
        self.run(&[
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            "-json",
        ])
    }

    pub fn destroy(&self) -> CommandOutput {
        self.run_ok(&["destroy", "-auto-approve", "-input=false", "-no-color"])
    }

    /// Plans into a file and returns `terraform show -json` of that plan.
    pub fn plan_json(&self) -> Json {
        self.run_ok(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
        self.run_ok(&["show", "-json", "tfplan"]).json()
    }

    /// Exit code semantics of `plan -detailed-exitcode`: true when the plan has changes.
    pub fn plan_has_changes(&self) -> bool {
        let output = self
            .command(&["plan", "-input=false", "-no-color", "-detailed-exitcode"])
            .output()
            .expect("run terraform plan");
        match output.status.code() {
            Some(0) => false,
            Some(2) => true,
            _ => panic!(
                "plan failed:\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }

    /// The root module outputs, as `terraform output -json` prints them (name -> value).
    pub fn outputs(&self) -> BTreeMap<String, Json> {
        let doc = self.run_ok(&["output", "-json"]).json();
        doc.as_object()
            .expect("outputs object")
            .iter()
            .map(|(name, output)| (name.clone(), output["value"].clone()))
            .collect()
    }

    /// The current state as `terraform show -json` prints it.
    pub fn state_json(&self) -> Json {
        self.run_ok(&["show", "-json"]).json()
    }

    /// One resource instance as `terraform show -json` prints it (its `values`, `identity`,
    /// ...); panics when it is not in state.
    pub fn state_resource(&self, address: &str) -> Json {
        let state = self.state_json();
        state["values"]["root_module"]["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["address"] == address)
            .cloned()
            .unwrap_or_else(|| panic!("{address} is not in state: {state}"))
    }

    /// Every resource instance in state, by address, with its attribute values.
    pub fn state_resources(&self) -> BTreeMap<String, Json> {
        let state = self.state_json();
        let mut resources = BTreeMap::new();
        if let Some(list) = state["values"]["root_module"]["resources"].as_array() {
            for resource in list {
                resources.insert(
                    resource["address"].as_str().unwrap_or_default().to_string(),
                    resource["values"].clone(),
                );
            }
        }
        resources
    }
}
