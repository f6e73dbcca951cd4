//! `mig_builtin_identity` with real Terraform against the emulator: what create makes (group,
//! identity, the policy's lock), drift in the lock, destroy undoing only what it did, a
//! bring-your-own identity, bad input at validate, and principal replication delay.

use acceptance_tests::{Emulator, Workdir};
use serde_json::{json, Value as Json};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const GROUP: &str =
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/Built-In-Identity-RG";
const IDENTITY_API: &str = "2023-01-31";
const LOCK_API: &str = "2020-05-01";
const GROUP_API: &str = "2022-09-01";

fn identity(name: &str) -> String {
    format!("{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}")
}

fn lock_of(identity_id: &str, identity_name: &str) -> String {
    format!(
        "{identity_id}/providers/Microsoft.Authorization/locks/CanNotDeleteLock-{identity_name}"
    )
}

fn state_of(work: &Workdir, address: &str) -> Json {
    work.state_resources()
        .remove(address)
        .unwrap_or_else(|| panic!("{address} in state"))
}

#[test]
fn create_makes_group_identity_and_lock_a_removed_lock_comes_back_and_destroy_undoes_it_all() {
    let emulator = Emulator::start(&json!({"subscriptions": [{"id": SUB}]}));
    let work = Workdir::new(&emulator.configuration(
        r#"resource "mig_builtin_identity" "eastus" {
  location = "East US"
}"#,
    ));
    work.init();
    work.apply();

    let id = identity("Built-In-Identity-eastus");
    let state = state_of(&work, "mig_builtin_identity.eastus");
    assert_eq!(
        state["location"], "East US",
        "state keeps the configured spelling"
    );
    assert_eq!(
        state["id"].as_str().unwrap().to_lowercase(),
        id.to_lowercase()
    );
    let created = emulator
        .arm_get(&id, IDENTITY_API)
        .expect("identity created");
    assert_eq!(created["location"], "eastus", "ARM gets its own spelling");
    assert_eq!(state["principal_id"], created["properties"]["principalId"]);
    assert_eq!(state["client_id"], created["properties"]["clientId"]);
    let lock_id = lock_of(&id, "Built-In-Identity-eastus");
    let lock = emulator.arm_get(&lock_id, LOCK_API).expect("lock placed");
    assert_eq!(lock["properties"]["level"], "CanNotDelete");
    assert_eq!(
        state["lock_id"].as_str().unwrap().to_lowercase(),
        lock_id.to_lowercase()
    );
    assert!(!work.plan_has_changes(), "converged");

    // Someone removes the lock by hand: the next plan shows it, apply puts it back.
    let (status, body) = emulator.arm_send(reqwest::Method::DELETE, &lock_id, LOCK_API, None);
    assert!(status == 200 || status == 204, "{status} {body}");
    assert!(work.plan_has_changes(), "a removed lock is drift");
    work.apply();
    assert!(
        emulator.arm_get(&lock_id, LOCK_API).is_some(),
        "the lock is back"
    );

    work.destroy();
    assert!(
        emulator.arm_get(&lock_id, LOCK_API).is_none(),
        "lock removed"
    );
    assert!(
        emulator.arm_get(&id, IDENTITY_API).is_none(),
        "identity deleted"
    );
    assert!(
        emulator.arm_get(GROUP, GROUP_API).is_none(),
        "the group this resource created, now empty, is deleted"
    );
}

#[test]
fn destroy_keeps_a_group_it_did_not_create_and_what_else_is_in_it() {
    let emulator = Emulator::start(&json!({"subscriptions": [{
        "id": SUB,
        "resource_groups": [{"name": "Built-In-Identity-RG", "location": "eastus"}],
        "user_assigned_identities": [{"name": "someone-else", "resource_group": "Built-In-Identity-RG", "location": "eastus"}]
    }]}));
    let work = Workdir::new(&emulator.configuration(
        r#"resource "mig_builtin_identity" "westeurope" {
  location = "westeurope"
}"#,
    ));
    work.init();
    work.apply();
    assert!(emulator
        .arm_get(&identity("Built-In-Identity-westeurope"), IDENTITY_API)
        .is_some());
    work.destroy();
    assert!(emulator
        .arm_get(&identity("Built-In-Identity-westeurope"), IDENTITY_API)
        .is_none());
    assert!(
        emulator.arm_get(GROUP, GROUP_API).is_some(),
        "not ours: kept"
    );
    assert!(emulator
        .arm_get(&identity("someone-else"), IDENTITY_API)
        .is_some());
}

#[test]
fn a_bring_your_own_identity_gets_our_lock_and_keeps_living_after_destroy() {
    let emulator = Emulator::start(&json!({"subscriptions": [{
        "id": SUB,
        "resource_groups": [{"name": "rg-app", "location": "eastus"}],
        "user_assigned_identities": [{"name": "id-mine", "resource_group": "rg-app", "location": "eastus"}]
    }]}));
    let mine = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-mine"
    );
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"resource "mig_builtin_identity" "eastus" {{
  location             = "eastus"
  existing_identity_id = "{mine}"
}}"#
    )));
    work.init();
    work.apply();
    let lock_id = lock_of(&mine, "id-mine");
    assert!(
        emulator.arm_get(&lock_id, LOCK_API).is_some(),
        "adopted and locked"
    );
    assert!(!work.plan_has_changes());
    work.destroy();
    assert!(
        emulator.arm_get(&lock_id, LOCK_API).is_none(),
        "our lock is gone"
    );
    assert!(
        emulator.arm_get(&mine, IDENTITY_API).is_some(),
        "a bring-your-own identity is never deleted"
    );
}

#[test]
fn bad_arguments_fail_at_validate_naming_the_attribute() {
    let emulator = Emulator::start(&json!({}));
    let cases = [
        (r#"location = "east-us!""#, "location"),
        (
            r#"location = "eastus"
  subscription_id = "not-a-guid""#,
            "subscription_id",
        ),
        (
            r#"location = "eastus"
  existing_identity_id = "/subscriptions/x/resourceGroups/rg""#,
            "existing_identity_id",
        ),
        (
            r#"location = "eastus"
  name = "mine"
  existing_identity_id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x""#,
            "name",
        ),
    ];
    for (arguments, attribute) in cases {
        let work = Workdir::new(&emulator.configuration(&format!(
            "resource \"mig_builtin_identity\" \"x\" {{\n  {arguments}\n}}"
        )));
        work.init();
        let validate = work.run(&["validate", "-json", "-no-color"]);
        assert!(!validate.success, "{arguments} must not validate");
        let diagnostics = validate.diagnostics();
        assert!(
            diagnostics.iter().any(|d| {
                d["severity"] == "error"
                    && d["snippet"]["code"]
                        .as_str()
                        .is_some_and(|code| code.contains(attribute))
            }),
            "an error pointing at `{attribute}`: {diagnostics:#?}"
        );
    }
}

#[test]
fn a_region_the_subscription_does_not_have_fails_at_plan_naming_the_attribute() {
    let emulator = Emulator::start(&json!({}));
    let work = Workdir::new(&emulator.configuration(
        r#"resource "mig_builtin_identity" "x" {
  location = "atlantis"
}"#,
    ));
    work.init();
    let plan = work.run(&["plan", "-json", "-input=false", "-no-color"]);
    assert!(!plan.success);
    let diagnostics = plan.diagnostics();
    assert!(
        diagnostics.iter().any(|d| d["summary"] == "Unknown region"
            && d["snippet"]["code"]
                .as_str()
                .is_some_and(|code| code.contains("location"))
            && d["detail"]
                .as_str()
                .is_some_and(|detail| detail.contains("westeurope"))),
        "{diagnostics:#?}"
    );
}

#[test]
fn principal_replication_delay_does_not_break_create_or_assignment() {
    let emulator = Emulator::start(&json!({
        "subscriptions": [{
            "id": SUB,
            "resource_groups": [{"name": "rg-app", "location": "eastus"}],
            "virtual_machines": [{"name": "vm-1", "resource_group": "rg-app", "location": "eastus"}]
        }],
        "realism": {"principal_replication_seconds": 3}
    }));
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"resource "mig_builtin_identity" "eastus" {{
  location = "eastus"
}}

resource "mig_identity_assignment" "eastus" {{
  identity_id = mig_builtin_identity.eastus.id
  scope       = "/subscriptions/{SUB}"
  locations   = ["eastus"]
}}"#
    )));
    work.init();
    work.apply();
    let vm = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-1"
    );
    let (_, held) = emulator.identity_of(&vm);
    assert!(held.contains(&identity("Built-In-Identity-eastus").to_lowercase()));
    assert!(!work.plan_has_changes());
}
