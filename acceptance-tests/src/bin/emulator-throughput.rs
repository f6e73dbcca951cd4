//! Emulator throughput benchmark: how many simple authenticated ARM GETs per second the
//! emulator serves with realism off (the `fast` profile), so that it is never what limits a
//! test or a benchmark of the provider. Target: at least 5,000 per second on 2 cores.
//!
//! Usage: `emulator-throughput [--seconds 5] [--connections 32]`. The emulator binary is the
//! one `MIG_EMULATOR_BIN` names, else the workspace's (`make bench` builds it in release).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acceptance_tests::Emulator;
use serde_json::json;

const TARGET_PER_SECOND: f64 = 5000.0;

fn argument(name: &str, default: u64) -> u64 {
    let arguments: Vec<String> = std::env::args().collect();
    arguments
        .iter()
        .position(|a| a == name)
        .and_then(|i| arguments.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seconds = argument("--seconds", 5);
    let connections = argument("--connections", 32) as usize;
    let emulator = Emulator::start(&json!({
        "subscriptions": [{"id": "00000000-0000-0000-0000-000000000001",
                           "resource_groups": [{"name": "rg-app", "location": "eastus"}]}]
    }));
    let token = emulator.arm_token();
    let url = format!(
        "{}subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-app?api-version=2022-09-01",
        emulator.ready.arm_endpoint
    );
    let ca = std::fs::read(&emulator.ready.ca_cert_file).expect("emulator CA");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (served, failed, elapsed) = runtime.block_on(async move {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA is PEM"))
            .pool_max_idle_per_host(connections)
            .build()
            .expect("client");
        let served = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(seconds);
        let workers: Vec<_> = (0..connections)
            .map(|_| {
                let (client, url, token) = (client.clone(), url.clone(), token.clone());
                let (served, failed) = (served.clone(), failed.clone());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        match client.get(&url).bearer_auth(&token).send().await {
                            Ok(response) if response.status().is_success() => {
                                let _ = response.bytes().await;
                                served.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.expect("worker");
        }
        (
            served.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            started.elapsed(),
        )
    });
    let per_second = served as f64 / elapsed.as_secs_f64();
    println!(
        "| emulator GET /resourceGroups/{{name}} | {connections} connections, {seconds} s | {per_second:.0}/s | failed: {failed} | ratio to target {TARGET_PER_SECOND:.0}/s: {:.2}x |",
        per_second / TARGET_PER_SECOND
    );
}
