//! The `hide_from_listing` fault: a machine left out of listings (as for a caller that may
//! not read it there) still answers a GET by its own ID.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[test]
fn a_machine_hidden_from_listings_still_answers_its_own_get() {
    let emu = Emu::start(&basic_scenario());
    let list = format!(
        "subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01"
    );
    let names = |emu: &Emu| -> Vec<String> {
        emu.get(&list).body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|vm| vm["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(names(&emu).contains(&"vm-one".to_string()));
    let refused = emu.admin(
        Method::POST,
        "faults",
        Some(&json!({"kind": "hide_from_listing"})),
    );
    assert_eq!(
        refused.status, 400,
        "path_contains is required: {}",
        refused.text
    );
    let added = emu.admin(
        Method::POST,
        "faults",
        Some(&json!({"kind": "hide_from_listing", "path_contains": "VirtualMachines/VM-ONE"})),
    );
    assert!(added.status < 300, "{}", added.text);
    let listed = names(&emu);
    assert!(!listed.contains(&"vm-one".to_string()), "{listed:?}");
    assert!(listed.contains(&"vm-none".to_string()), "{listed:?}");
    let own = emu.get(&vm_path("rg-app", "vm-one", "2024-07-01"));
    assert_eq!(own.status, 200, "{}", own.text);
    assert_eq!(own.body["name"], "vm-one");
    emu.admin(Method::DELETE, "faults", None);
    assert!(names(&emu).contains(&"vm-one".to_string()));
}
