//! Ownership where real estates go, with real Terraform against the emulator: a machine
//! deleted and created again under the same name, a plan without refresh after an apply that
//! adopted machines, an owned machine its owner excludes (by tag, or by leaving it a single
//! identity of its own), take-backs interrupted by Ctrl-C, and a held machine missing from
//! listings. Every check reads the machines back from the emulator.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use acceptance_tests::scenario::{
    actions, assignment, block, group, id_set, identity, interrupt, lower, refresh, start,
    state_of, subscription, vm, vm_id, workdir, SUB,
};
use acceptance_tests::{Emulator, Workdir};
use base64::Engine;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};

const API: &str = "2024-07-01";
const X: &str = "mig_identity_assignment.x";

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

/// The first 8 bytes of the SHA-256 of `text` lower-cased: how the private state keeps
/// machine and unique IDs. Written here apart from the provider's, so a change of the
/// persisted form fails these tests.
fn digest(text: &str) -> [u8; 8] {
    let hash = Sha256::digest(text.to_ascii_lowercase().as_bytes());
    hash[..8].try_into().unwrap()
}

/// Whether `private` records `unique_id` for `machine`: its `unique_id_digests` is base64 of
/// 16-byte entries, the machine ID's digest then the unique ID's.
fn records_unique_id(private: &Json, machine: &str, unique_id: &str) -> bool {
    let Some(text) = private["unique_id_digests"].as_str() else {
        return false;
    };
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text)
        .expect("unique_id_digests is base64");
    assert_eq!(bytes.len() % 16, 0, "whole entries: {text}");
    bytes
        .chunks_exact(16)
        .any(|entry| entry[..8] == digest(machine) && entry[8..] == digest(unique_id))
}

/// Replaces the private state of every instance with `private` (`None`: removes it), as a
/// state another build wrote, and pushes it.
fn push_private(work: &Workdir, private: Option<&Json>) {
    let mut state = work.run_ok(&["state", "pull"]).json();
    for resource in state["resources"].as_array_mut().unwrap() {
        for instance in resource["instances"].as_array_mut().unwrap() {
            let instance = instance.as_object_mut().unwrap();
            match private {
                Some(private) => {
                    let bytes = serde_json::to_vec(private).unwrap();
                    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
                    instance.insert("private".into(), json!(encoded));
                }
                None => {
                    instance.remove("private");
                }
            }
        }
    }
    state["serial"] = json!(state["serial"].as_u64().unwrap() + 1);
    work.write("old.tfstate", &state.to_string());
    work.run_ok(&["state", "push", "old.tfstate"]);
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
    assert!(
        records_unique_id(&recorded, &web, &vm_unique_id(&emulator, &web)),
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
    assert_ne!(emulator.identity_of(&web).1, BTreeSet::new(), "{one}");
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
    assert!(
        records_unique_id(&private_of(&work, X), &web, &new_vm_id),
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
    push_private(&work, None);
    assert_eq!(private_of(&work, X), Json::Null);
    refresh(&work);
    assert!(records_unique_id(
        &private_of(&work, X),
        &web,
        &vm_unique_id(&emulator, &web)
    ));
    recreate(&emulator, &web, &["id-one"]);
    assert!(!assigned(&work).is_empty());
    work.destroy();
    assert_eq!(
        emulator.identity_of(&web),
        block("UserAssigned", &["id-one"])
    );
}

/// A state whose unique IDs are kept as earlier builds wrote them (a map of machine ID to
/// `vmId`, as `unique_ids`) still tells a machine created again apart, and the next apply
/// writes the record in today's compact form.
#[test]
fn unique_ids_kept_as_a_map_of_strings_still_tell_a_recreated_machine_apart() {
    let emulator = start(vec![
        vm("rg-a", "vm-web", &[], false),
        vm("rg-a", "vm-db", &[], false),
    ]);
    let (web, db) = (vm_id("rg-a", "vm-web"), vm_id("rg-a", "vm-db"));
    let work = workdir(&emulator, &assignment("x", &group("rg-a"), ""));
    work.apply();
    let old_form = json!({"unique_ids": {
        web.to_ascii_lowercase(): vm_unique_id(&emulator, &web),
        db.to_ascii_lowercase(): vm_unique_id(&emulator, &db),
    }});
    push_private(&work, Some(&old_form));
    assert_eq!(private_of(&work, X), old_form);

    // Its owner rebuilds vm-web with our identity: not ours any more, kept at destroy.
    recreate(&emulator, &web, &["id-one"]);
    refresh(&work);
    assert_eq!(assigned(&work), lower([db.clone()]));
    assert_eq!(compliant(&work), lower([web.clone()]));
    let recorded = private_of(&work, X);
    assert!(recorded.get("unique_ids").is_none(), "{recorded}");
    assert!(
        records_unique_id(&recorded, &db, &vm_unique_id(&emulator, &db)),
        "{recorded}"
    );
    work.destroy();
    assert_eq!(
        emulator.identity_of(&web),
        block("UserAssigned", &["id-one"])
    );
    assert_eq!(emulator.identity_of(&db), block("None", &[]));
}

// ---------------------------------------------------------------------------------------------
// 2. A plan without refresh after an apply that adopted machines
// ---------------------------------------------------------------------------------------------

/// An apply that adopts a machine (handed over by an object destroyed in the same apply, or
/// stripped since the plan and attached again) leaves it in `compliant_ids`, recorded as
/// ours in the private state until the next refresh; a `plan -refresh=false` with a change,
/// applied, must keep it ours, and destroy then takes the identity back.
///
/// Reached as a user meets it, with no state edited: the machines move from `old` to `x` (same
/// scope and identity) in one apply, `old` removed from the configuration and `x` added; `x`
/// adopts what `old` attached. The other way in, a machine stripped between a saved plan and
/// its apply, is refused by Terraform 1.15 and older ("Provider produced inconsistent final
/// plan") before the provider can adopt anything. Terraform orders neither the plan of `x`
/// against the refresh of `old` nor the destroy of `old` against the create of `x`: whichever
/// comes first, the destroy leaves the machines holding the identity and `x` adopts them
/// (CI once saw `x` planned before the refresh and the destroy applied first, which failed
/// with "inconsistent final plan"; the engine's model tests run every such order). Only a
/// create applied whole before the destroy reaches the provider would leave them compliant,
/// not adopted: the destroy, sent without a plan of its own during apply, comes first in
/// practice, and the assertions on `adopted` below fail loudly should that ever change.
#[test]
fn a_plan_without_refresh_keeps_adopted_machines_ours() {
    let emulator = start(vec![
        vm("rg-a", "vm-a", &[], false),
        vm("rg-a", "vm-x", &[], false),
        vm("rg-a", "vm-adopted", &["id-app", "id-legacy"], false),
    ]);
    let (a, x, adopted) = (
        vm_id("rg-a", "vm-a"),
        vm_id("rg-a", "vm-x"),
        vm_id("rg-a", "vm-adopted"),
    );
    let exclude = format!("exclude_ids = [\"{x}\"]");
    let work = workdir(&emulator, &assignment("old", &group("rg-a"), &exclude));
    work.apply();
    work.write(
        "main.tf",
        &emulator.configuration(&assignment("x", &group("rg-a"), &exclude)),
    );
    work.apply();
    assert_eq!(
        compliant(&work),
        lower([a.clone(), adopted.clone()]),
        "adopted machines are in compliant_ids until the next refresh"
    );
    let recorded = private_of(&work, X)["adopted"]
        .to_string()
        .to_ascii_lowercase();
    assert!(
        recorded.contains(&adopted.to_ascii_lowercase()),
        "and recorded as ours in the private state: {recorded}"
    );

    work.write(
        "main.tf",
        &emulator.configuration(&assignment("x", &group("rg-a"), "")),
    );
    let change = planned_change(&work, &["-refresh=false"], X);
    assert_eq!(actions(&change), ["update"], "{change}");
    assert!(
        id_set(&change["change"]["after"]["assigned_ids"]).contains(&adopted.to_ascii_lowercase()),
        "the adopted machine is planned as ours: {change}"
    );
    apply_saved(&work);
    assert_eq!(
        assigned(&work),
        lower([a.clone(), x.clone(), adopted.clone()]),
        "still ours after the apply"
    );
    work.destroy();
    for id in [&a, &x] {
        assert_eq!(emulator.identity_of(id), block("None", &[]), "{id}");
    }
    assert_eq!(
        emulator.identity_of(&adopted),
        block("UserAssigned", &["id-app", "id-legacy"]),
        "the adopted machine was ours: destroy takes the identity back"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. An owned machine its owner excludes
// ---------------------------------------------------------------------------------------------

/// Its owner tags one machine `mig-exclude = "true"`; another writer takes one identity off
/// a machine that had two of its owner's, leaving one (the policy skips such a machine); a
/// third loses its system-assigned identity, so ours is its only one (not skipped: judged
/// without ours it has none). The refresh keeps all three recorded as ours; the plan shows
/// the first two given back; apply gives them back; destroy leaves every machine as its
/// owner left it.
#[test]
fn an_owned_machine_excluded_on_its_side_is_given_back_visibly() {
    let emulator = start(vec![
        vm("rg-a", "vm-tagged", &[], false),
        vm("rg-a", "vm-single", &["id-app", "id-legacy"], false),
        vm("rg-a", "vm-only-ours", &[], true),
        vm("rg-a", "vm-plain", &[], false),
    ]);
    let (tagged, single, only_ours, plain) = (
        vm_id("rg-a", "vm-tagged"),
        vm_id("rg-a", "vm-single"),
        vm_id("rg-a", "vm-only-ours"),
        vm_id("rg-a", "vm-plain"),
    );
    let one = identity("id-one");
    let config = assignment(
        "x",
        &group("rg-a"),
        "exclude_tags = { \"mig-exclude\" = \"true\" }",
    );
    let work = workdir(&emulator, &config);
    work.apply();
    let everyone = lower([
        tagged.clone(),
        single.clone(),
        only_ours.clone(),
        plain.clone(),
    ]);
    assert_eq!(assigned(&work), everyone);

    patch(&emulator, &tagged, json!({"tags": {"mig-exclude": "true"}}));
    patch(
        &emulator,
        &single,
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {identity("id-legacy"): null}}}),
    );
    patch(
        &emulator,
        &only_ours,
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {one.clone(): {}}}}),
    );
    assert_eq!(
        emulator.identity_of(&only_ours),
        block("UserAssigned", &["id-one"])
    );

    refresh(&work);
    assert_eq!(
        assigned(&work),
        everyone,
        "the refresh keeps every machine holding the identity from us recorded"
    );
    let change = planned_change(&work, &[], X);
    assert_eq!(actions(&change), ["update"], "{change}");
    let after = &change["change"]["after"];
    assert_eq!(
        id_set(&after["assigned_ids"]),
        lower([only_ours.clone(), plain.clone()])
    );
    assert_eq!(after["skipped"][&tagged], "excluded_by_tag", "{change}");
    assert_eq!(
        after["skipped"][&single], "single_user_assigned",
        "{change}"
    );
    apply_saved(&work);
    assert_eq!(emulator.identity_of(&tagged), block("None", &[]));
    assert_eq!(
        emulator.identity_of(&single),
        block("UserAssigned", &["id-app"])
    );
    assert_eq!(
        emulator.identity_of(&only_ours),
        block("UserAssigned", &["id-one"])
    );
    assert!(!work.plan_has_changes(), "clean plan");
    work.destroy();
    assert_eq!(emulator.identity_of(&tagged), block("None", &[]));
    assert_eq!(
        emulator.identity_of(&single),
        block("UserAssigned", &["id-app"])
    );
    assert_eq!(emulator.identity_of(&only_ours), block("None", &[]));
    assert_eq!(emulator.identity_of(&plain), block("None", &[]));
}

// ---------------------------------------------------------------------------------------------
// 5. A held machine missing from a listing
// ---------------------------------------------------------------------------------------------

/// One owned VM disappears from listings (as when the principal may no longer list it
/// there) but answers a GET by its ID; another is deleted (404). The first stays ours and
/// destroy gives it back; only the deleted one leaves the record.
#[test]
fn a_held_machine_missing_from_the_listing_is_read_by_id_and_kept() {
    let emulator = start(vec![
        vm("rg-a", "vm-hidden", &[], false),
        vm("rg-a", "vm-deleted", &[], false),
        vm("rg-a", "vm-plain", &[], true),
    ]);
    let (hidden, deleted, plain) = (
        vm_id("rg-a", "vm-hidden"),
        vm_id("rg-a", "vm-deleted"),
        vm_id("rg-a", "vm-plain"),
    );
    let work = workdir(&emulator, &assignment("x", &group("rg-a"), ""));
    work.apply();
    emulator.inject_fault(
        &json!({"kind": "hide_from_listing", "path_contains": "virtualMachines/vm-hidden"}),
    );
    let (status, _) = emulator.arm_send(reqwest::Method::DELETE, &deleted, API, None);
    assert!(status < 300);
    refresh(&work);
    assert_eq!(
        assigned(&work),
        lower([hidden.clone(), plain.clone()]),
        "the hidden machine stays ours; the deleted one is gone"
    );
    assert!(!work.plan_has_changes(), "clean plan");
    work.destroy();
    assert_eq!(emulator.identity_of(&hidden), block("None", &[]));
    assert_eq!(emulator.identity_of(&plain), block("SystemAssigned", &[]));
}

// ---------------------------------------------------------------------------------------------
// 4. Take-backs interrupted by Ctrl-C
// ---------------------------------------------------------------------------------------------

/// `rg-a` holds two VMs, `rg-b` four whose writes go through and four whose writes are
/// refused with a 503 asking to retry in 30 s (so they sit in a retry backoff at the stop).
fn eight_to_take_back() -> (Emulator, Vec<String>, Vec<String>, Vec<String>) {
    let a: Vec<String> = (0..2).map(|i| format!("vm-a-{i}")).collect();
    let fast: Vec<String> = (0..4).map(|i| format!("vm-b-fast-{i}")).collect();
    let slow: Vec<String> = (0..4).map(|i| format!("vm-b-slow-{i}")).collect();
    let mut vms: Vec<Json> = a.iter().map(|n| vm("rg-a", n, &[], false)).collect();
    vms.extend(fast.iter().chain(&slow).map(|n| vm("rg-b", n, &[], false)));
    let emulator = start(vms);
    let ids = |group_name: &str, names: &[String]| -> Vec<String> {
        names.iter().map(|n| vm_id(group_name, n)).collect()
    };
    (
        emulator,
        ids("rg-a", &a),
        ids("rg-b", &fast),
        ids("rg-b", &slow),
    )
}

/// Spawns `terraform apply`, waits until the four fast take-backs went through and the four
/// slow ones were refused, then sends Ctrl-C; the apply must fail.
fn interrupt_take_back(emulator: &Emulator, work: &Workdir) {
    emulator.clear_requests();
    emulator.inject_fault(&json!({
        "kind": "status", "status": 503, "retry_after": 30, "count": 4,
        "method": "PATCH", "path_contains": "/virtualMachines/vm-b-slow"
    }));
    let apply = work.spawn(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let requests = emulator.requests();
        let count = |name: &str, status: u64| {
            requests
                .iter()
                .filter(|r| {
                    r["method"] == "PATCH"
                        && r["status"] == status
                        && r["path"].as_str().is_some_and(|p| p.contains(name))
                })
                .count()
        };
        if count("vm-b-fast", 200) == 4 && count("vm-b-slow", 503) == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "the writes never got there");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (succeeded, output) = interrupt(apply);
    assert!(!succeeded, "interrupted:\n{output}");
    emulator.clear_faults();
}

/// The machines of `ids` holding our identity now.
fn holding_ours(emulator: &Emulator, ids: &[String]) -> BTreeSet<String> {
    let one = identity("id-one").to_ascii_lowercase();
    ids.iter()
        .filter(|id| emulator.identity_of(id).1.contains(&one))
        .map(|id| id.to_ascii_lowercase())
        .collect()
}

#[test]
fn a_scope_narrowing_stopped_by_ctrl_c_keeps_the_machines_not_given_back() {
    let (emulator, a, fast, slow) = eight_to_take_back();
    let all: Vec<String> = a.iter().chain(&fast).chain(&slow).cloned().collect();
    let work = workdir(&emulator, &assignment("x", &subscription(), ""));
    work.apply();
    assert_eq!(holding_ours(&emulator, &all).len(), 10);

    work.write(
        "main.tf",
        &emulator.configuration(&assignment("x", &group("rg-a"), "")),
    );
    interrupt_take_back(&emulator, &work);
    let holding = holding_ours(&emulator, &all);
    assert_eq!(holding, lower(a.iter().chain(&slow).cloned()));
    assert_eq!(
        assigned(&work),
        holding,
        "state records exactly the machines holding the identity from us"
    );
    // The next plan shows them given back, and its apply gives them back.
    let change = planned_change(&work, &[], X);
    assert_eq!(actions(&change), ["update"], "{change}");
    assert_eq!(
        id_set(&change["change"]["after"]["assigned_ids"]),
        lower(a.clone())
    );
    apply_saved(&work);
    assert_eq!(holding_ours(&emulator, &all), lower(a.clone()));
    assert!(!work.plan_has_changes(), "clean plan");
    work.destroy();
    assert!(holding_ours(&emulator, &all).is_empty());
}

#[test]
fn a_destroy_of_a_for_each_instance_stopped_by_ctrl_c_keeps_the_machines_not_given_back() {
    let (emulator, a, fast, slow) = eight_to_take_back();
    let all: Vec<String> = a.iter().chain(&fast).chain(&slow).cloned().collect();
    let per_group = |keys: &[&str]| {
        let map: Vec<String> = keys
            .iter()
            .map(|k| format!("\"{k}\" = \"{}\"", group(&format!("rg-{k}"))))
            .collect();
        format!(
            "resource \"mig_identity_assignment\" \"x\" {{\n  for_each    = {{ {} }}\n  identity_id = \"{}\"\n  scope       = each.value\n}}\n",
            map.join(", "),
            identity("id-one")
        )
    };
    let work = workdir(&emulator, &per_group(&["a", "b"]));
    work.apply();
    assert_eq!(holding_ours(&emulator, &all).len(), 10);

    work.write("main.tf", &emulator.configuration(&per_group(&["a"])));
    interrupt_take_back(&emulator, &work);
    let holding = holding_ours(&emulator, &all);
    assert_eq!(holding, lower(a.iter().chain(&slow).cloned()));
    let b = work
        .state_resources()
        .remove("mig_identity_assignment.x[\"b\"]")
        .expect("the interrupted destroy keeps the instance in state");
    assert_eq!(
        id_set(&b["assigned_ids"]),
        lower(slow.clone()),
        "state records exactly the machines still holding the identity from it"
    );
    work.apply();
    assert_eq!(holding_ours(&emulator, &all), lower(a.clone()));
    work.destroy();
    assert!(holding_ours(&emulator, &all).is_empty());
}

// ---------------------------------------------------------------------------------------------
// The estate: each bucket is a `mig_identity_assignment`
// ---------------------------------------------------------------------------------------------

#[test]
fn an_estate_leaves_a_machine_recreated_with_the_identity_to_its_owner() {
    let emulator = start(vec![
        vm("rg-a", "vm-web", &[], false),
        vm("rg-a", "vm-db", &[], true),
    ]);
    let (web, db) = (vm_id("rg-a", "vm-web"), vm_id("rg-a", "vm-db"));
    let estate = "mig_estate_assignment.e";
    let work = workdir(
        &emulator,
        &format!(
            "resource \"mig_estate_assignment\" \"e\" {{\n  scope        = \"{}\"\n  identity_ids = {{ \"eastus\" = \"{}\" }}\n}}\n",
            group("rg-a"),
            identity("id-one")
        ),
    );
    work.apply();
    let bucket =
        |work: &Workdir| state_of(work, estate)["buckets"][format!("{SUB}/eastus")].clone();
    assert_eq!(
        id_set(&bucket(&work)["assigned_ids"]),
        lower([web.clone(), db.clone()])
    );

    recreate(&emulator, &web, &["id-one"]);
    work.apply();
    assert_eq!(id_set(&bucket(&work)["assigned_ids"]), lower([db.clone()]));
    assert_eq!(
        id_set(&bucket(&work)["compliant_ids"]),
        lower([web.clone()])
    );
    assert!(!work.plan_has_changes(), "clean plan");
    work.destroy();
    assert_eq!(
        emulator.identity_of(&web),
        block("UserAssigned", &["id-one"])
    );
    assert_eq!(emulator.identity_of(&db), block("SystemAssigned", &[]));
}

/// An owned VM missing from the listing whose read by ID is refused too (403): it stays
/// recorded as ours, with a warning naming it; destroy cannot take the identity back, fails
/// naming it and keeps it in state; once it can be read again, destroy finishes.
#[test]
fn a_held_machine_that_cannot_be_read_at_all_stays_recorded() {
    let emulator = start(vec![
        vm("rg-a", "vm-locked", &[], false),
        vm("rg-a", "vm-plain", &[], false),
    ]);
    let (locked, plain) = (vm_id("rg-a", "vm-locked"), vm_id("rg-a", "vm-plain"));
    let work = workdir(&emulator, &assignment("x", &group("rg-a"), ""));
    work.apply();
    let hide = || {
        emulator.inject_fault(
            &json!({"kind": "hide_from_listing", "path_contains": "virtualMachines/vm-locked"}),
        );
        emulator.inject_fault(&json!({
            "kind": "status", "status": 403, "code": "AuthorizationFailed",
            "method": "GET", "path_contains": "virtualMachines/vm-locked"
        }));
    };
    hide();
    let refresh = refresh(&work);
    assert!(
        refresh.all().contains("could not be read"),
        "a warning names the machine:\n{}",
        refresh.all()
    );
    assert_eq!(assigned(&work), lower([locked.clone(), plain.clone()]));
    assert!(!work.plan_has_changes(), "clean plan");
    let failed = work.run(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
    assert!(!failed.success, "{}", failed.all());
    assert!(failed.all().contains("vm-locked"), "{}", failed.all());
    emulator.clear_faults();
    assert_eq!(
        emulator.identity_of(&locked),
        block("UserAssigned", &["id-one"])
    );
    assert_eq!(assigned(&work), lower([locked.clone()]), "state keeps it");
    work.destroy();
    assert_eq!(emulator.identity_of(&locked), block("None", &[]));
    assert_eq!(emulator.identity_of(&plain), block("None", &[]));
}
