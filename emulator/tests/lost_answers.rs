//! Faults that act after the request was served (`after_commit`): the write is made and its
//! answer lost, the way a 5xx or a dropped connection after Azure applied a PATCH loses it.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

const V_VM: &str = "2024-07-01";

fn identity_keys(emu: &Emu, path: &str) -> Vec<String> {
    let vm = emu.get(path);
    let mut keys: Vec<String> = vm.body["identity"]["userAssignedIdentities"]
        .as_object()
        .map(|m| m.keys().map(|k| k.to_ascii_lowercase()).collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

fn etag(emu: &Emu, path: &str) -> String {
    emu.get(path).body["etag"].as_str().unwrap().to_string()
}

fn attach(id: &str) -> serde_json::Value {
    json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {id: {}}}})
}

/// A `status` fault with `after_commit` serves the PATCH, then answers the fault: the identity
/// is on the machine, the etag moved on, and a retry with the same `If-Match` gets 412. The
/// same fault without `after_commit` answers before serving: nothing changes.
#[test]
fn an_after_commit_status_fault_applies_the_write_and_loses_its_answer() {
    let emu = Emu::start(&basic_scenario());
    let path = vm_path("rg-app", "vm-none", V_VM);
    let id_a = uami_id("rg-app", "id-a");
    let token = emu.arm_token();
    let before = etag(&emu, &path);

    // Before the request is served: nothing happens.
    let r = emu.admin(Method::POST, "faults", Some(&json!({"kind": "status", "status": 500, "count": 1, "method": "PATCH", "path_contains": "virtualMachines/vm-none"})));
    assert_eq!(r.status, 201, "{}", r.text);
    let refused = emu.call_with(
        Method::PATCH,
        &path,
        Some(&attach(&id_a)),
        Some(&token),
        &[("If-Match", &before)],
    );
    assert_eq!(refused.status, 500);
    assert!(identity_keys(&emu, &path).is_empty());
    assert_eq!(etag(&emu, &path), before);

    // After it is served: the write is made, the client sees 500.
    let r = emu.admin(Method::POST, "faults", Some(&json!({"kind": "status", "status": 500, "count": 1, "after_commit": true, "method": "PATCH", "path_contains": "virtualMachines/vm-none"})));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["after_commit"], true);
    let lost = emu.call_with(
        Method::PATCH,
        &path,
        Some(&attach(&id_a)),
        Some(&token),
        &[("If-Match", &before)],
    );
    assert_eq!(lost.status, 500, "{}", lost.text);
    assert_eq!(lost.body["error"]["code"], "InternalServerError");
    assert_eq!(identity_keys(&emu, &path), [id_a.to_ascii_lowercase()]);
    assert_eq!(
        etag(&emu, &path),
        "\"2\"",
        "one write: the etag moved on by one"
    );
    // The client's retry, with the If-Match it read before: the signature of a lost answer.
    let retry = emu.call_with(
        Method::PATCH,
        &path,
        Some(&attach(&id_a)),
        Some(&token),
        &[("If-Match", &before)],
    );
    assert_eq!(retry.status, 412, "{}", retry.text);

    // The request log records what the client saw.
    let log = emu.admin(Method::GET, "requests", None);
    let patches: Vec<u64> = log
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["method"] == "PATCH")
        .map(|e| e["status"].as_u64().unwrap())
        .collect();
    assert_eq!(patches, [500, 500, 412]);
}

/// A `drop_connection` fault with `after_commit` serves the PATCH and closes the connection
/// without answering: the client sees a transport error, the identity is on the machine.
#[test]
fn an_after_commit_dropped_connection_applies_the_write() {
    let emu = Emu::start(&basic_scenario());
    let path = vm_path("rg-app", "vm-none", V_VM);
    let id_a = uami_id("rg-app", "id-a");
    let token = emu.arm_token();
    let before = etag(&emu, &path);
    emu.admin(Method::POST, "faults", Some(&json!({"kind": "drop_connection", "count": 1, "after_commit": true, "method": "PATCH", "path_contains": "virtualMachines/vm-none"})));
    let dropped = emu
        .http
        .patch(emu.url(&path))
        .bearer_auth(&token)
        .header("If-Match", &before)
        .json(&attach(&id_a))
        .send();
    assert!(dropped.is_err(), "the connection should drop");
    assert_eq!(identity_keys(&emu, &path), [id_a.to_ascii_lowercase()]);
    assert_eq!(etag(&emu, &path), "\"2\"");
    let faults = emu.admin(Method::GET, "faults", None);
    assert_eq!(faults.body[0]["hits"], 1);
    assert_eq!(faults.body[0]["count"], 0);
}

/// A `concurrent_write` fault with `after_commit` lands right after the served write: both
/// changes are on the machine and the etag moved on by two. With an `after_commit` status
/// fault on the same request, the client cannot tell which write came first.
#[test]
fn an_after_commit_concurrent_write_lands_after_the_served_write() {
    let emu = Emu::start(&basic_scenario());
    let path = vm_path("rg-app", "vm-none", V_VM);
    let id_a = uami_id("rg-app", "id-a");
    let token = emu.arm_token();
    let before = etag(&emu, &path);
    emu.admin(Method::POST, "faults", Some(&json!({"kind": "status", "status": 503, "count": 1, "after_commit": true, "method": "PATCH", "path_contains": "virtualMachines/vm-none"})));
    emu.admin(Method::POST, "faults", Some(&json!({"kind": "concurrent_write", "count": 1, "after_commit": true, "tag": "other", "path_contains": "virtualMachines/vm-none"})));
    let lost = emu.call_with(
        Method::PATCH,
        &path,
        Some(&attach(&id_a)),
        Some(&token),
        &[("If-Match", &before)],
    );
    assert_eq!(lost.status, 503, "{}", lost.text);
    let vm = emu.get(&path);
    assert_eq!(vm.body["etag"], "\"3\"");
    assert_eq!(
        vm.body["tags"]["other"], "write-3",
        "the other writer came second"
    );
    assert_eq!(identity_keys(&emu, &path), [id_a.to_ascii_lowercase()]);
}

/// `after_commit` means nothing to a delay: the rule is refused.
#[test]
fn after_commit_is_refused_on_a_delay() {
    let emu = Emu::start(&basic_scenario());
    let r = emu.admin(
        Method::POST,
        "faults",
        Some(&json!({"kind": "delay", "ms": 10, "after_commit": true})),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("after_commit"), "{}", r.text);
}

/// A `strip_etag` fault serves the request as an api-version without etags answers it: no
/// `etag` on the machine, on a page's items, or in the headers.
#[test]
fn a_strip_etag_fault_answers_without_etags() {
    let emu = Emu::start(&basic_scenario());
    let path = vm_path("rg-app", "vm-none", V_VM);
    assert!(emu.get(&path).body.get("etag").is_some());
    let list = format!(
        "subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines?api-version={V_VM}"
    );
    emu.admin(
        Method::POST,
        "faults",
        Some(&json!({"kind": "strip_etag", "method": "GET", "path_contains": "virtualMachines"})),
    );
    let vm = emu.get(&path);
    assert_eq!(vm.status, 200);
    assert!(vm.body.get("etag").is_none(), "{}", vm.text);
    assert!(vm.header("etag").is_none());
    assert!(vm.body["id"].is_string(), "the rest is served");
    let page = emu.get(&list);
    let items = page.body["value"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items.iter().all(|item| item.get("etag").is_none()),
        "{}",
        page.text
    );
    let r = emu.admin(
        Method::POST,
        "faults",
        Some(&json!({"kind": "strip_etag", "after_commit": true})),
    );
    assert_eq!(r.status, 400);
}
