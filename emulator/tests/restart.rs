//! A restarted emulator: stopped with SIGTERM and started again with the same `--state-file`
//! on the same ports, it serves the same world (machines and their identities, locks, role
//! assignments) under the same TLS identity, and the tokens it issued before still work,
//! so a client that was talking to it carries on as it would after an outage of Azure.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const V_VM: &str = "2024-07-01";

fn port_of(url: &str) -> String {
    url.trim_end_matches('/')
        .rsplit(':')
        .next()
        .expect("a port")
        .to_string()
}

#[test]
fn a_restart_with_the_state_file_keeps_the_world_the_port_the_certificate_and_the_tokens() {
    let keep = tempfile::tempdir().unwrap();
    let state = keep.path().join("state.json");
    let mut emu = Emu::start_with(&basic_scenario(), "fast", Some(state.clone()));

    // The world changes: an identity attached, a lock placed, a role assigned.
    let vm = vm_path("rg-app", "vm-none", V_VM);
    let id_a = uami_id("rg-app", "id-a");
    let r = emu.patch(
        &vm,
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {id_a.clone(): {}}}}),
    );
    assert!(r.status < 300, "{}", r.text);
    let lock = format!(
        "{}/providers/Microsoft.Authorization/locks/CanNotDeleteLock-id-c?api-version=2020-05-01",
        uami_id("rg-app", "id-c").trim_start_matches('/')
    );
    let r = emu.put(&lock, json!({"properties": {"level": "CanNotDelete"}}));
    assert_eq!(r.status, 201, "{}", r.text);
    let principal = emu
        .get(&format!(
            "{}?api-version=2023-01-31",
            id_a.trim_start_matches('/')
        ))
        .body["properties"]["principalId"]
        .as_str()
        .unwrap()
        .to_string();
    let assignment = format!("subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Authorization/roleAssignments/3f2b2c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d?api-version=2022-04-01");
    let reader = format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7");
    let r = emu.put(
        &assignment,
        json!({"properties": {"roleDefinitionId": reader, "principalId": principal, "principalType": "ServicePrincipal"}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let world = emu.admin(Method::GET, "state", None).body;
    let machine = emu.get(&vm).body;
    let ca = std::fs::read(emu.ready["ca_cert_file"].as_str().unwrap()).unwrap();
    let (arm, graph) = (
        emu.ready["arm_endpoint"].as_str().unwrap().to_string(),
        emu.ready["graph_host_endpoint"]
            .as_str()
            .unwrap()
            .to_string(),
    );

    // Stopped: the port refuses connections.
    emu.stop();
    assert!(state.exists(), "the world is saved on SIGTERM");
    assert!(
        emu.http.get(emu.url("_emulator/health")).send().is_err(),
        "a stopped emulator answers nothing"
    );

    // Started again on the same ports, from the state file (a scenario that says otherwise
    // loses: the file wins).
    let ready = emu.dir.path().join("ready-again.json");
    let empty = emu.dir.path().join("empty.json");
    std::fs::write(&empty, b"{}").unwrap();
    emu.child = Command::new(env!("CARGO_BIN_EXE_azure-emulator"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", port_of(&arm)))
        .arg("--graph-listen")
        .arg(format!("127.0.0.1:{}", port_of(&graph)))
        .arg("--ready-file")
        .arg(&ready)
        .arg("--scenario")
        .arg(&empty)
        .arg("--state-file")
        .arg(&state)
        .env("AZURE_EMULATOR_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn emulator again");
    let deadline = Instant::now() + Duration::from_secs(30);
    let again: Value = loop {
        if let Ok(bytes) = std::fs::read(&ready) {
            break serde_json::from_slice(&bytes).expect("ready JSON");
        }
        assert!(Instant::now() < deadline, "no ready file after the restart");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(again["arm_endpoint"].as_str(), Some(arm.as_str()));
    assert_eq!(again["graph_host_endpoint"].as_str(), Some(graph.as_str()));
    assert_eq!(
        std::fs::read(again["ca_cert_file"].as_str().unwrap()).unwrap(),
        ca,
        "the same CA"
    );

    // The same client (trusting the first CA, holding a token from before) reads the same
    // world.
    assert_eq!(
        emu.admin(Method::GET, "state", None).body,
        world,
        "the whole world is as it was"
    );
    let after = emu.get(&vm);
    assert_eq!(after.status, 200, "{}", after.text);
    assert_eq!(after.body["identity"], machine["identity"]);
    assert_eq!(
        after.body["properties"]["vmId"], machine["properties"]["vmId"],
        "the same machine"
    );
    assert_eq!(emu.get(&lock).status, 200, "the lock is kept");
    assert_eq!(
        emu.get(&assignment).status,
        200,
        "the role assignment is kept"
    );
    // The lock still does its job.
    let delete = emu.delete(&format!(
        "{}?api-version=2023-01-31",
        uami_id("rg-app", "id-c").trim_start_matches('/')
    ));
    assert_eq!(delete.status, 409, "{}", delete.text);
}
