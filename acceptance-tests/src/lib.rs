//! Real-Terraform acceptance harness.
//!
//! Every test here runs the real `terraform` (or `tofu`) CLI, which launches the real
//! `terraform-provider-mig` binary over gRPC with AutoMTLS, which talks HTTPS to the real
//! `azure-emulator` process. Nothing is faked in-process.
//!
//! Binaries are taken from `target/debug` (or `MIG_PROVIDER_BIN` / `MIG_EMULATOR_BIN`);
//! `make testacc` builds them first. The Terraform binary comes from `MIG_TF_BIN`, else
//! `scripts/install-terraform` (which prefers `terraform`/`tofu` on PATH).

mod emulator;
pub mod plugin_client;
pub mod scenario;
mod terraform;

pub use emulator::{configuration, Emulator, ReadyInfo};
pub use terraform::{provider_version, terraform_has, terraform_minor, CommandOutput, Workdir};

use std::path::{Path, PathBuf};

/// The workspace root (the folder holding the workspace `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("acceptance-tests lives inside the workspace")
        .to_path_buf()
}

/// Path of a binary built by this workspace, overridable through `env_var`.
pub fn workspace_binary(env_var: &str, name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(env_var) {
        return PathBuf::from(path);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} not found at {}; run `make build` (or `cargo build --bins`) first, or set {env_var}",
        name,
        path.display()
    );
    path
}

/// A scratch directory for what lives as long as this test process (the filesystem mirror
/// or a signed release a `static` holds). Rust never drops a `static`, so a `TempDir` there
/// was never removed: each test binary of each run left its copy of the provider behind,
/// until a CI machine's disk was full. This one is `{temp}/mig-acceptance/{prefix}-{pid}`,
/// and making one removes those of processes that are gone, so nothing piles up however a
/// run ended (a failure, Ctrl-C, a kill). (Under the temp folder, not `target/`: a GnuPG
/// home's socket path must stay short.)
///
/// Asked twice for one prefix, it gives the same folder, as it was.
pub fn process_scratch(prefix: &str) -> PathBuf {
    static MADE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let parent = std::env::temp_dir().join("mig-acceptance");
    let dir = parent.join(format!("{prefix}-{}", std::process::id()));
    let mut made = MADE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if made.iter().any(|made| made == prefix) {
        return dir;
    }
    std::fs::create_dir_all(&parent).expect("create the acceptance scratch folder");
    remove_scratch_of_ended_processes(&parent);
    // A stale folder of an earlier process that had this pid is not ours to reuse.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create process scratch dir");
    made.push(prefix.to_string());
    dir
}

fn remove_scratch_of_ended_processes(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.rsplit_once('-'))
            .and_then(|(_, pid)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !process_runs(pid) {
            // Another process may be pruning the same folder at once: losing that race is fine.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether process `pid` still runs: `/proc` where there is one, else `kill -0` (macOS).
fn process_runs(pid: u32) -> bool {
    if Path::new("/proc/self").exists() {
        return Path::new("/proc").join(pid.to_string()).exists();
    }
    answers_signal_zero(pid)
}

/// `kill -0 pid` succeeds: the process exists (and is ours to signal, as a test's are).
fn answers_signal_zero(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .map_or(true, |status| status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_scratch_removes_those_of_ended_processes_and_keeps_the_living() {
        let mut ended = std::process::Command::new("true")
            .spawn()
            .expect("run true");
        let ended_pid = ended.id();
        ended.wait().expect("true ends");
        let parent = std::env::temp_dir().join("mig-acceptance");
        std::fs::create_dir_all(&parent).unwrap();
        let left_behind = parent.join(format!("terraform-{ended_pid}"));
        std::fs::create_dir_all(left_behind.join("mirror")).unwrap();
        // Pid 1 runs as long as the machine: its folder must stay.
        let living = parent.join("terraform-1");
        std::fs::create_dir_all(&living).unwrap();

        let ours = process_scratch("unit");
        std::fs::write(ours.join("kept"), "").unwrap();
        assert_eq!(process_scratch("unit"), ours);
        assert!(
            ours.join("kept").exists(),
            "asked again, it emptied the folder"
        );

        assert!(!answers_signal_zero(ended_pid), "where there is no /proc");
        assert!(answers_signal_zero(std::process::id()));
        assert!(!left_behind.exists(), "the ended process's scratch stays");
        assert!(living.exists(), "a running process's scratch was removed");
        assert!(ours.ends_with(format!("unit-{}", std::process::id())));
        assert!(ours.is_dir());
        std::fs::remove_dir_all(&living).unwrap();
        std::fs::remove_dir_all(&ours).unwrap();
    }
}
