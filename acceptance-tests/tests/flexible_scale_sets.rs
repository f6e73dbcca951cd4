//! Flexible scale sets under `mig_identity_assignment`, with real Terraform against the
//! emulator. A Flexible scale set's instances are ordinary virtual machines
//! (`Microsoft.Compute/virtualMachines`, with a `virtualMachineScaleSet` reference), so the
//! built-in policy for virtual machines covers them (its rule matches on the type alone and
//! does not leave out VMs of a scale set), and the scale-set policy covers the scale set
//! itself (its rule does not look at `orchestrationMode`). Each is judged on its own identity
//! block; excluding one excludes only that one. Every outcome is read back from the emulator.

use std::collections::BTreeSet;

use acceptance_tests::{Emulator, Workdir};
use serde_json::{json, Value as Json};

const SUB: &str = "00000000-0000-0000-0000-000000000001";

fn rg_id() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-app")
}

fn identity(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
        rg_id()
    )
}

fn vm(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Compute/virtualMachines/{name}",
        rg_id()
    )
}

fn scale_set(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}",
        rg_id()
    )
}

/// An instance of the Flexible scale set `vmss-flex`, as ARM lists it among the VMs.
fn instance(name: &str, identity: Json) -> Json {
    json!({
        "name": name,
        "resource_group": "rg-app",
        "location": "eastus",
        "identity": identity,
        "properties": {
            "virtualMachineScaleSet": {"id": scale_set("vmss-flex")},
            "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
            "storageProfile": {"osDisk": {"osType": "Linux", "createOption": "FromImage"}}
        }
    })
}

fn scenario() -> Json {
    json!({
        "subscriptions": [{
            "id": SUB,
            "resource_groups": [{"name": "rg-app", "location": "eastus"}],
            "user_assigned_identities": [
                {"name": "id-target", "resource_group": "rg-app", "location": "eastus"},
                {"name": "id-app", "resource_group": "rg-app", "location": "eastus"}
            ],
            "scale_sets": [{
                "name": "vmss-flex",
                "resource_group": "rg-app",
                "location": "eastus",
                "properties": {"orchestrationMode": "Flexible", "platformFaultDomainCount": 1}
            }],
            "virtual_machines": [
                instance("vmss-flex_a1", Json::Null),
                instance("vmss-flex_a2", json!({"type": "UserAssigned", "user_assigned": [identity("id-app")]})),
                instance("vmss-flex_a3", json!({"type": "SystemAssigned"}))
            ]
        }]
    })
}

fn config(emulator: &Emulator, extra: &str) -> String {
    emulator.configuration(&format!(
        r#"resource "mig_identity_assignment" "rg" {{
  identity_id = "{target}"
  scope       = "{scope}"
  {extra}
}}
"#,
        target = identity("id-target"),
        scope = rg_id(),
    ))
}

fn ids(value: &Json) -> BTreeSet<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .map(str::to_ascii_lowercase)
        .collect()
}

fn lower(ids: &[String]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_ascii_lowercase()).collect()
}

#[test]
fn a_flexible_scale_set_and_its_instances_are_each_judged_by_their_own_policy() {
    let emulator = Emulator::start(&scenario());
    let target = identity("id-target").to_ascii_lowercase();
    let app = identity("id-app").to_ascii_lowercase();
    let work = Workdir::new(&config(&emulator, ""));
    work.init();

    let plan = work.plan_json();
    let after = &plan["resource_changes"][0]["change"]["after"];
    assert_eq!(
        after["skipped"],
        json!({ vm("vmss-flex_a2"): "single_user_assigned" }),
        "an instance is judged on its own identity block, like any VM: {after}"
    );
    work.run_ok(&["apply", "-input=false", "-no-color", "tfplan"]);

    // The instances are VMs: the VM policy's rule gives them the identity, merged.
    assert_eq!(
        emulator.identity_of(&vm("vmss-flex_a1")),
        ("UserAssigned".to_string(), BTreeSet::from([target.clone()]))
    );
    assert_eq!(
        emulator.identity_of(&vm("vmss-flex_a3")),
        (
            "SystemAssigned, UserAssigned".to_string(),
            BTreeSet::from([target.clone()])
        )
    );
    // ... and an instance with exactly one user-assigned identity is skipped, as a VM is.
    assert_eq!(
        emulator.identity_of(&vm("vmss-flex_a2")),
        ("UserAssigned".to_string(), BTreeSet::from([app.clone()]))
    );
    // The scale set is a scale set: the scale-set policy gives it the identity too, whatever
    // its orchestration mode.
    assert_eq!(
        emulator.identity_of(&scale_set("vmss-flex")),
        ("UserAssigned".to_string(), BTreeSet::from([target.clone()]))
    );
    // The instances are still the scale set's (the write touched the identity only).
    let a1 = emulator.arm_get(&vm("vmss-flex_a1"), "2024-07-01").unwrap();
    assert_eq!(
        a1["properties"]["virtualMachineScaleSet"]["id"]
            .as_str()
            .map(str::to_ascii_lowercase),
        Some(scale_set("vmss-flex").to_ascii_lowercase())
    );
    let state = work
        .state_resources()
        .remove("mig_identity_assignment.rg")
        .unwrap();
    assert_eq!(
        ids(&state["assigned_ids"]),
        lower(&[
            vm("vmss-flex_a1"),
            vm("vmss-flex_a3"),
            scale_set("vmss-flex")
        ]),
        "{state}"
    );
    assert!(!work.plan_has_changes(), "converged");

    // Excluding the scale set excludes the scale set: its instances are other resources, as
    // they are to the policy (leave them out by ID or by tag).
    work.write(
        "main.tf",
        &config(
            &emulator,
            &format!(r#"exclude_ids = ["{}"]"#, scale_set("vmss-flex")),
        ),
    );
    work.apply();
    assert_eq!(
        emulator.identity_of(&scale_set("vmss-flex")),
        ("None".to_string(), BTreeSet::new()),
        "taken back from the excluded scale set"
    );
    assert_eq!(
        emulator.identity_of(&vm("vmss-flex_a1")),
        ("UserAssigned".to_string(), BTreeSet::from([target.clone()])),
        "its instances keep it"
    );
    let state = work
        .state_resources()
        .remove("mig_identity_assignment.rg")
        .unwrap();
    assert_eq!(
        ids(&state["assigned_ids"]),
        lower(&[vm("vmss-flex_a1"), vm("vmss-flex_a3")])
    );

    // `resource_types = ["virtualMachineScaleSets"]` leaves the instances out: they are VMs.
    work.write(
        "main.tf",
        &config(&emulator, r#"resource_types = ["virtualMachineScaleSets"]"#),
    );
    work.apply();
    assert_eq!(
        emulator.identity_of(&vm("vmss-flex_a1")),
        ("None".to_string(), BTreeSet::new())
    );
    assert_eq!(
        emulator.identity_of(&vm("vmss-flex_a3")),
        ("SystemAssigned".to_string(), BTreeSet::new())
    );
    assert_eq!(
        emulator.identity_of(&scale_set("vmss-flex")),
        ("UserAssigned".to_string(), BTreeSet::from([target.clone()]))
    );

    // Destroy takes back only what this resource attached.
    work.destroy();
    assert_eq!(
        emulator.identity_of(&scale_set("vmss-flex")),
        ("None".to_string(), BTreeSet::new())
    );
    assert_eq!(
        emulator.identity_of(&vm("vmss-flex_a2")),
        ("UserAssigned".to_string(), BTreeSet::from([app]))
    );
}
