//! The `concurrent_write` fault on resource groups and user-assigned identities: another
//! writer creates what a PUT names just before the PUT is served, so ARM answers 200 (it
//! existed), not 201 (created).

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[test]
fn concurrent_write_creates_the_group_and_identity_a_put_names_so_the_put_answers_200() {
    let emu = Emu::start(&json!({"subscriptions": [{"id": SUB}]}));
    let identity = format!(
        "subscriptions/{SUB}/resourceGroups/rg-race/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-race?api-version=2023-01-31"
    );
    // Nothing exists yet; a fault for the next two PUTs under the group.
    assert_eq!(emu.get(&rg_path("rg-race")).status, 404);
    let r = emu.admin(
        Method::POST,
        "faults",
        Some(&json!({"kind": "concurrent_write", "count": 2, "method": "PUT", "path_contains": "resourceGroups/rg-race"})),
    );
    assert!(r.status < 300, "{}", r.text);

    // The group's PUT finds it created by the other writer, in the location asked for.
    let r = emu.put(&rg_path("rg-race"), json!({"location": "westeurope"}));
    assert_eq!(r.status, 200, "the group existed: {}", r.text);
    assert_eq!(r.body["location"], "westeurope");

    // The identity's PUT finds it too: same principal as the other writer's.
    let r = emu.put(&identity, json!({"location": "eastus"}));
    assert_eq!(r.status, 200, "the identity existed: {}", r.text);
    let principal = r.body["properties"]["principalId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!principal.is_empty());

    // The fault is used up: a new identity is created by its PUT (201).
    let other = identity.replace("id-race", "id-mine");
    assert_eq!(emu.put(&other, json!({"location": "eastus"})).status, 201);
    // And a second PUT of the raced identity is an update of the same one.
    let again = emu.put(&identity, json!({"location": "eastus"}));
    assert_eq!(again.status, 200);
    assert_eq!(again.body["properties"]["principalId"], principal.as_str());
}

#[test]
fn concurrent_write_on_an_identity_put_creates_its_group_too_and_leaves_others_alone() {
    let emu = Emu::start(&json!({"subscriptions": [{"id": SUB}]}));
    emu.admin(
        Method::POST,
        "faults",
        Some(&json!({"kind": "concurrent_write", "count": 1, "method": "PUT", "path_contains": "userAssignedIdentities/id-x"})),
    );
    let identity = format!(
        "subscriptions/{SUB}/resourceGroups/rg-x/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-x?api-version=2023-01-31"
    );
    let r = emu.put(
        &identity,
        json!({"location": "eastus", "tags": {"mine": "yes"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["tags"]["mine"], "yes",
        "the PUT itself is served as usual"
    );
    assert_eq!(
        emu.get(&rg_path("rg-x")).status,
        200,
        "the group was created with it"
    );
    // A PUT with no location in its body makes the other writer do nothing.
    emu.admin(
        Method::POST,
        "faults",
        Some(&json!({"kind": "concurrent_write", "count": 1, "method": "PUT", "path_contains": "rg-y"})),
    );
    assert_eq!(emu.put(&rg_path("rg-y"), json!({})).status, 400);
    assert_eq!(emu.get(&rg_path("rg-y")).status, 404);
}
