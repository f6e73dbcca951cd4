//! A subscription's state and its place in `GET /subscriptions`, set by the scenario (on a
//! merge too): ARM refuses writes in a `Disabled` or `Deleted` subscription and still serves
//! reads; an unlisted subscription is missing from `GET /subscriptions` yet readable.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

const VM: &str = "2024-07-01";

fn listed_ids(emu: &Emu) -> Vec<String> {
    let r = emu.get("subscriptions?api-version=2022-12-01");
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subscriptionId"].as_str().unwrap().to_string())
        .collect()
}

fn merge(emu: &Emu, subscription: serde_json::Value) {
    let r = emu.admin(
        Method::POST,
        "scenario?merge=true",
        Some(&json!({ "subscriptions": [subscription] })),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn a_disabled_subscription_refuses_writes_and_serves_reads() {
    let emu = Emu::start(&basic_scenario());
    let vm = vm_path("rg-app", "vm-none", VM);
    merge(&emu, json!({"id": SUB, "state": "Disabled"}));
    let r = emu.get(&format!("subscriptions/{SUB}?api-version=2022-12-01"));
    assert_eq!(r.body["state"], "Disabled", "{}", r.text);
    assert_eq!(emu.get(&vm).status, 200);
    let r = emu.patch(&vm, json!({"tags": {"x": "y"}}));
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "ReadOnlyDisabledSubscription");

    // PastDue still takes writes.
    merge(&emu, json!({"id": SUB, "state": "PastDue"}));
    let r = emu.patch(&vm, json!({"tags": {"x": "y"}}));
    assert!(r.status < 300, "{}", r.text);
}

#[test]
fn an_unlisted_subscription_is_missing_from_the_listing_and_still_readable() {
    let emu = Emu::start(&basic_scenario());
    assert_eq!(listed_ids(&emu), vec![SUB.to_string()]);
    merge(&emu, json!({"id": SUB, "listed": false}));
    assert!(listed_ids(&emu).is_empty());
    assert_eq!(
        emu.get(&format!("subscriptions/{SUB}?api-version=2022-12-01"))
            .status,
        200
    );
    assert_eq!(emu.get(&vm_path("rg-app", "vm-none", VM)).status, 200);
    merge(&emu, json!({"id": SUB, "listed": true}));
    assert_eq!(listed_ids(&emu), vec![SUB.to_string()]);
}
