//! Ownership where real estates go, with real Terraform against the emulator: a machine
//! deleted and created again under the same name, a plan without refresh after an apply that
//! adopted machines, an owned machine its owner excludes (by tag, or by leaving it a single
//! identity of its own), take-backs interrupted by Ctrl-C, and a held machine missing from
//! listings. Every check reads the machines back from the emulator.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use acceptance_tests::{Emulator, Workdir};
use base64::Engine;
use serde_json::{json, Value as Json};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const API: &str = "2024-07-01";
const X: &str = "mig_identity_assignment.x";

fn subscription() -> String {
    format!("/subscriptions/{SUB}")
}

fn group(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{name}")
}

fn identity(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
        group("rg-ids")
    )
}

fn vm_id(group_name: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Compute/virtualMachines/{name}",
        group(group_name)
    )
}

/// A machine's identity block: its `type` and lower-cased user-assigned identity IDs.
type Block = (String, BTreeSet<String>);

fn block(kind: &str, names: &[&str]) -> Block {
    (
        kind.to_string(),
        names
            .iter()
            .map(|n| identity(n).to_ascii_lowercase())
            .collect(),
    )
}

/// A VM spec of the scenario: `(group, name, identity names, system-assigned too)`.
fn vm(group_name: &str, name: &str, holding: &[&str], system: bool) -> Json {
    let mut spec = json!({"name": name, "resource_group": group_name, "location": "eastus"});
    let ids: Vec<String> = holding.iter().map(|n| identity(n)).collect();
    let kind = match (system, ids.is_empty()) {
        (true, true) => Some("SystemAssigned"),
        (true, false) => Some("SystemAssigned, UserAssigned"),
        (false, false) => Some("UserAssigned"),
        (false, true) => None,
    };
    if let Some(kind) = kind {
        spec["identity"] = json!({"type": kind, "user_assigned": ids});
    }
    spec
}

fn start(vms: Vec<Json>) -> Emulator {
    let identities: Vec<Json> = ["id-one", "id-app", "id-legacy"]
        .iter()
        .map(|name| json!({"name": name, "resource_group": "rg-ids", "location": "eastus"}))
        .collect();
    let groups: Vec<Json> = ["rg-a", "rg-b", "rg-ids"]
        .iter()
        .map(|name| json!({"name": name, "location": "eastus"}))
        .collect();
    Emulator::start_with(
        &json!({
            "subscriptions": [{
                "id": SUB,
                "regions": ["eastus", "westeurope"],
                "resource_groups": groups,
                "user_assigned_identities": identities,
                "virtual_machines": vms,
            }],
            "realism": {"vm_update_seconds": 0, "principal_replication_seconds": 0},
        }),
        "fast",
    )
}

fn assignment(name: &str, scope: &str, extra: &str) -> String {
    format!(
        "resource \"mig_identity_assignment\" \"{name}\" {{\n  identity_id = \"{}\"\n  scope       = \"{scope}\"\n  {extra}\n}}\n",
        identity("id-one")
    )
}

fn workdir(emulator: &Emulator, body: &str) -> Workdir {
    let work = Workdir::new(&emulator.configuration(body));
    work.init();
    work
}

fn lower(ids: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    ids.into_iter().map(|id| id.to_ascii_lowercase()).collect()
}

fn id_set(value: &Json) -> BTreeSet<String> {
    value
        .as_array()
        .map(|items| lower(items.iter().filter_map(Json::as_str).map(String::from)))
        .unwrap_or_default()
}

fn state_of(work: &Workdir, address: &str) -> Json {
    work.state_resources()
        .remove(address)
        .unwrap_or_else(|| panic!("{address} not in state"))
}

fn assigned(work: &Workdir) -> BTreeSet<String> {
    id_set(&state_of(work, X)["assigned_ids"])
}

fn compliant(work: &Workdir) -> BTreeSet<String> {
    id_set(&state_of(work, X)["compliant_ids"])
}

/// The private state the provider keeps for `address` (JSON), from `terraform state pull`.
fn private_of(work: &Workdir, address: &str) -> Json {
    let state = work.run_ok(&["state", "pull"]).json();
    let (kind, name) = address.split_once('.').unwrap();
    let instance = state["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["type"] == kind && r["name"] == name)
        .and_then(|r| r["instances"].get(0).cloned())
        .unwrap_or_else(|| panic!("{address} not in state"));
    match instance["private"].as_str() {
        Some(encoded) if !encoded.is_empty() => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .expect("private is base64");
            serde_json::from_slice(&bytes).unwrap_or(Json::Null)
        }
        _ => Json::Null,
    }
}

/// `plan -out=tfplan {args}`, then `show -json` of that plan: the change of `address`.
fn planned_change(work: &Workdir, args: &[&str], address: &str) -> Json {
    let mut command = vec!["plan", "-input=false", "-no-color", "-out=tfplan"];
    command.extend_from_slice(args);
    work.run_ok(&command);
    let plan = work.run_ok(&["show", "-json", "tfplan"]).json();
    plan["resource_changes"]
        .as_array()
        .and_then(|changes| changes.iter().find(|c| c["address"] == address))
        .unwrap_or_else(|| panic!("no change for {address} in plan: {plan}"))
        .clone()
}

fn apply_saved(work: &Workdir) {
    work.run_ok(&["apply", "-input=false", "-no-color", "tfplan"]);
}

fn actions(change: &Json) -> Vec<String> {
    change["change"]["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The machine's unique ID (`properties.vmId`), read from the emulator.
fn vm_unique_id(emulator: &Emulator, id: &str) -> String {
    emulator.arm_get(id, API).expect("the VM exists")["properties"]["vmId"]
        .as_str()
        .expect("vmId")
        .to_string()
}

/// Another writer deletes the VM `id` and creates it again under the same name, with the
/// user-assigned identities `holding` (names), and waits until it is provisioned.
fn recreate(emulator: &Emulator, id: &str, holding: &[&str]) {
    let before = vm_unique_id(emulator, id);
    let (status, body) = emulator.arm_send(reqwest::Method::DELETE, id, API, None);
    assert!(status < 300, "DELETE {id}: {status} {body}");
    assert!(emulator.arm_get(id, API).is_none(), "{id} is gone");
    let mut spec = json!({"location": "eastus", "properties": {}});
    if !holding.is_empty() {
        let ids: serde_json::Map<String, Json> =
            holding.iter().map(|n| (identity(n), json!({}))).collect();
        spec["identity"] = json!({"type": "UserAssigned", "userAssignedIdentities": ids});
    }
    let (status, body) = emulator.arm_send(reqwest::Method::PUT, id, API, Some(&spec));
    assert!(status < 300, "PUT {id}: {status} {body}");
    wait_provisioned(emulator, id);
    assert_ne!(vm_unique_id(emulator, id), before, "a new vmId");
}

fn wait_provisioned(emulator: &Emulator, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let vm = emulator.arm_get(id, API).expect("the VM exists");
        if vm["properties"]["provisioningState"] == "Succeeded" {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never provisioned: {vm}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Another writer PATCHes the VM `id` with `body`, and waits until it settles.
fn patch(emulator: &Emulator, id: &str, body: Json) {
    let (status, answer) = emulator.arm_send(reqwest::Method::PATCH, id, API, Some(&body));
    assert!(status < 300, "PATCH {id}: {status} {answer}");
    wait_provisioned(emulator, id);
}

fn blocks(emulator: &Emulator, ids: &[String]) -> BTreeMap<String, Block> {
    ids.iter()
        .map(|id| (id.clone(), emulator.identity_of(id)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. A machine deleted and created again under the same name
// ---------------------------------------------------------------------------------------------

#[test]
fn a_machine_recreated_with_the_identity_by_its_owner_is_compliant_and_keeps_it() {
    let emulator = start(vec![
        vm("rg-a", "vm-web", &[], false),
        vm("rg-a", "vm-db", &[], true),
    ]);
    let (web, db) = (vm_id("rg-a", "vm-web"), vm_id("rg-a", "vm-db"));
    let one = identity("id-one");
    let work = workdir(&emulator, &assignment("x", &group("rg-a"), ""));
    work.apply();
    assert_eq!(assigned(&work), lower([web.clone(), db.clone()]));
    let recorded = private_of(&work, X);
    assert_eq!(
        recorded["unique_ids"][web.to_ascii_lowercase()],
        vm_unique_id(&emulator, &web),
        "the vmId of each machine we attached to is recorded: {recorded}"
    );

    // Its owner rebuilds vm-web under the same name and gives it our identity itself.
    recreate(&emulator, &web, &["id-one"]);
    let change = planned_change(&work, &[], X);
    let after = &change["change"]["after"];
    assert!(
        !id_set(&after["assigned_ids"]).contains(&web.to_ascii_lowercase()),
        "a new machine under an old name is not ours: {change}"
    );
    assert!(
        id_set(&after["compliant_ids"]).contains(&web.to_ascii_lowercase()),
        "it holds the identity from its owner: {change}"
    );
    apply_saved(&work);
    assert_eq!(assigned(&work), lower([db.clone()]));
    assert_eq!(compliant(&work), lower([web.clone()]));
    assert!(!work.plan_has_changes(), "clean plan");

    work.destroy();
    assert_eq!(
        emulator.identity_of(&web),
        block("UserAssigned", &["id-one"]),
        "destroy leaves the recreated machine as its owner made it"
    );
    assert_eq!(emulator.identity_of(&db), block("SystemAssigned", &[]));
    let _ = one;
}

#[test]
fn a_machine_recreated_without_the_identity_is_attached_as_ours_and_given_back() {
    let emulator = start(vec![
        vm("rg-a", "vm-web", &[], false),
        vm("rg-a", "vm-db", &[], true),
    ]);
    let (web, db) = (vm_id("rg-a", "vm-web"), vm_id("rg-a", "vm-db"));
    let work = workdir(&emulator, &assignment("x", &group("rg-a"), ""));
    work.apply();

    recreate(&emulator, &web, &[]);
    let new_vm_id = vm_unique_id(&emulator, &web);
    let change = planned_change(&work, &[], X);
    assert_eq!(actions(&change), ["update"], "{change}");
    assert!(
        id_set(&change["change"]["after"]["assigned_ids"]).contains(&web.to_ascii_lowercase()),
        "the new machine gets the identity: {change}"
    );
    apply_saved(&work);
    assert_eq!(
        emulator.identity_of(&web),
        block("UserAssigned", &["id-one"])
    );
    assert_eq!(assigned(&work), lower([web.clone(), db.clone()]));
    assert_eq!(
        private_of(&work, X)["unique_ids"][web.to_ascii_lowercase()],
        new_vm_id,
        "the new vmId is recorded"
    );
    assert!(!work.plan_has_changes(), "clean plan");
    work.destroy();
    assert_eq!(emulator.identity_of(&web), block("None", &[]));
    assert_eq!(emulator.identity_of(&db), block("SystemAssigned", &[]));
}

/// A state written before unique IDs were recorded (the private state emptied by hand, as
/// older releases left it) records them at the next refresh: from then on a machine
/// created again is told apart.
#[test]
fn a_state_without_unique_ids_records_them_at_the_next_refresh() {
    let emulator = start(vec![vm("rg-a", "vm-web", &[], false)]);
    let web = vm_id("rg-a", "vm-web");
    let work = workdir(&emulator, &assignment("x", &group("rg-a"), ""));
    work.apply();
    // Strip the private state, as an older release wrote it.
    let mut state = work.run_ok(&["state", "pull"]).json();
    for resource in state["resources"].as_array_mut().unwrap() {
        for instance in resource["instances"].as_array_mut().unwrap() {
            instance.as_object_mut().unwrap().remove("private");
        }
    }
    state["serial"] = json!(state["serial"].as_u64().unwrap() + 1);
    work.write("old.tfstate", &state.to_string());
    work.run_ok(&["state", "push", "old.tfstate"]);
    assert_eq!(private_of(&work, X), Json::Null);
    work.run_ok(&[
        "apply",
        "-refresh-only",
        "-auto-approve",
        "-input=false",
        "-no-color",
    ]);
    assert_eq!(
        private_of(&work, X)["unique_ids"][web.to_ascii_lowercase()],
        vm_unique_id(&emulator, &web)
    );
    recreate(&emulator, &web, &["id-one"]);
    assert!(!assigned(&work).is_empty());
    work.destroy();
    assert_eq!(
        emulator.identity_of(&web),
        block("UserAssigned", &["id-one"])
    );
}
