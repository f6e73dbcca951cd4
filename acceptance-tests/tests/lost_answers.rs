//! Writes whose answer was lost after Azure applied them (a 5xx or a dropped connection from
//! the emulator's `after_commit` faults), with real Terraform: the retry with the same
//! `If-Match` gets 412 and the machine shows our identity. The machine is ours when the
//! evidence says our write did it, and destroy takes the identity back; where another writer
//! changed the machine in the same moment, it is recorded as uncertain, named in a warning at
//! apply, at every plan and at destroy, and left holding the identity.
//!
//! And no write without `If-Match`: a machine listed without an etag (the emulator's
//! `strip_etag` fault) is read by ID first, and one with no etag at all is not written.

use acceptance_tests::scenario::{id_set as strings, lower, refresh, SUB};
use acceptance_tests::{Emulator, Workdir};
use serde_json::{json, Value as Json};

fn identity_id(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}")
}

fn vm_id(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}")
}

/// Two VMs without identities (vm-a gets the fault, vm-b is the control), and the identity
/// the assignment attaches.
fn scenario() -> Json {
    json!({
        "subscriptions": [{
            "id": SUB,
            "regions": ["eastus"],
            "resource_groups": [{"name": "rg-app", "location": "eastus"}],
            "user_assigned_identities": [
                {"name": "id-ours", "resource_group": "rg-app", "location": "eastus"}
            ],
            "virtual_machines": [
                {"name": "vm-a", "resource_group": "rg-app", "location": "eastus"},
                {"name": "vm-b", "resource_group": "rg-app", "location": "eastus"}
            ],
        }]
    })
}

fn configuration(emulator: &Emulator) -> String {
    emulator.configuration(&format!(
        r#"resource "mig_identity_assignment" "ours" {{
  identity_id = "{identity}"
  scope       = "/subscriptions/{SUB}"
  locations   = ["eastus"]
}}
"#,
        identity = identity_id("id-ours"),
    ))
}

fn assignment_state(work: &Workdir) -> Json {
    work.state_resources()
        .remove("mig_identity_assignment.ours")
        .expect("assignment in state")
}

fn holds_ours(emulator: &Emulator, vm: &str) -> bool {
    emulator
        .identity_of(&vm_id(vm))
        .1
        .contains(&identity_id("id-ours").to_ascii_lowercase())
}

/// The statuses ARM's log shows for PATCHes of `vm`, in order (0: connection dropped).
fn patch_statuses(emulator: &Emulator, vm: &str) -> Vec<u64> {
    emulator
        .requests()
        .iter()
        .filter(|r| r["method"] == "PATCH" && r["path"].as_str().unwrap_or("").ends_with(vm))
        .map(|r| r["status"].as_u64().unwrap_or(0))
        .collect()
}

/// Apply with `fault` on vm-a's first PATCH: the apply succeeds, the lost answer's retry was
/// answered 412, state records both machines as ours (after a refresh too), and destroy takes
/// the identity back from both.
fn a_lost_answer_is_still_ours(fault: Json, first_status: u64) {
    let emulator = Emulator::start(&scenario());
    emulator.inject_fault(&fault);
    let work = Workdir::new(&configuration(&emulator));
    work.init();
    work.apply();
    assert_eq!(
        patch_statuses(&emulator, "vm-a"),
        [first_status, 412],
        "the write was applied, its answer lost, and the retry refused"
    );
    assert!(holds_ours(&emulator, "vm-a") && holds_ours(&emulator, "vm-b"));
    let both = lower(&[vm_id("vm-a"), vm_id("vm-b")]);
    assert_eq!(strings(&assignment_state(&work)["assigned_ids"]), both);

    // A refresh reads the machines again: still ours, nothing to change.
    refresh(&work);
    let state = assignment_state(&work);
    assert_eq!(strings(&state["assigned_ids"]), both, "{state}");
    assert!(strings(&state["compliant_ids"]).is_empty(), "{state}");
    assert!(!work.plan_has_changes());

    work.destroy();
    for vm in ["vm-a", "vm-b"] {
        assert!(
            !holds_ours(&emulator, vm),
            "destroy took the identity back from {vm}: {:?}",
            emulator.identity_of(&vm_id(vm))
        );
    }
}

#[test]
fn a_patch_answered_500_after_azure_applied_it_is_ours_and_destroy_takes_it_back() {
    a_lost_answer_is_still_ours(
        json!({
            "kind": "status", "status": 500, "after_commit": true, "count": 1,
            "method": "PATCH", "path_contains": "virtualMachines/vm-a"
        }),
        500,
    );
}

#[test]
fn a_patch_whose_connection_dropped_after_azure_applied_it_is_ours_and_destroy_takes_it_back() {
    a_lost_answer_is_still_ours(
        json!({
            "kind": "drop_connection", "after_commit": true, "count": 1,
            "method": "PATCH", "path_contains": "virtualMachines/vm-a"
        }),
        0,
    );
}

/// The answer is lost and another writer changes the machine in the same moment (a tag,
/// right after our write): the machine shows our identity, but two writes happened and
/// either could have put it there. It is recorded as uncertain: the apply succeeds with a
/// warning naming it, every plan names it, and destroy leaves it holding the identity (with
/// a warning) while it takes the identity back from the machine that is surely ours.
/// The faults that make vm-a's first PATCH an uncertain lost answer: served, then another
/// writer's tag change, then a 500 to the client.
fn inject_uncertain(emulator: &Emulator) {
    emulator.inject_fault(&json!({
        "kind": "status", "status": 500, "after_commit": true, "count": 1,
        "method": "PATCH", "path_contains": "virtualMachines/vm-a"
    }));
    emulator.inject_fault(&json!({
        "kind": "concurrent_write", "after_commit": true, "count": 1, "tag": "other-writer",
        "method": "PATCH", "path_contains": "virtualMachines/vm-a"
    }));
}

fn warned(output: &str) -> bool {
    output.contains("uncertain") && output.contains(&vm_id("vm-a"))
}

#[test]
fn a_lost_answer_with_another_writer_in_the_same_moment_is_uncertain_and_left_holding() {
    let emulator = Emulator::start(&scenario());
    inject_uncertain(&emulator);
    let work = Workdir::new(&configuration(&emulator));
    work.init();
    let applied = work.apply();
    assert_eq!(patch_statuses(&emulator, "vm-a"), [500, 412]);
    assert!(holds_ours(&emulator, "vm-a") && holds_ours(&emulator, "vm-b"));
    assert!(
        warned(&applied.all()),
        "the apply names the uncertain machine:\n{}",
        applied.all()
    );

    // A refresh kept in state records it as not ours; the record of its uncertainty survives.
    refresh(&work);
    let state = assignment_state(&work);
    assert_eq!(
        strings(&state["assigned_ids"]),
        lower(&[vm_id("vm-b")]),
        "refreshed, the uncertain machine is not recorded as ours: {state}"
    );
    assert_eq!(strings(&state["compliant_ids"]), lower(&[vm_id("vm-a")]));
    // Every plan names it.
    for _ in 0..2 {
        let plan = work.run_ok(&["plan", "-input=false", "-no-color"]);
        assert!(warned(&plan.all()), "every plan names it:\n{}", plan.all());
        assert!(!plan.all().contains("will be updated"), "{}", plan.all());
    }

    let destroyed = work.destroy();
    assert!(
        warned(&destroyed.all()),
        "destroy names the machine it leaves holding:\n{}",
        destroyed.all()
    );
    assert!(
        holds_ours(&emulator, "vm-a"),
        "the uncertain machine keeps the identity"
    );
    assert!(
        !holds_ours(&emulator, "vm-b"),
        "the machine surely ours is released"
    );
}

/// An uncertain machine settles once its identity is removed by hand (the documented way to
/// claim it): the next apply attaches it again, as ours, no plan warns any more, and destroy
/// takes the identity back.
#[test]
fn an_uncertain_machine_stripped_by_hand_is_attached_again_as_ours() {
    let emulator = Emulator::start(&scenario());
    inject_uncertain(&emulator);
    let work = Workdir::new(&configuration(&emulator));
    work.init();
    assert!(warned(&work.apply().all()));

    let (status, body) = emulator.arm_send(
        reqwest::Method::PATCH,
        &vm_id("vm-a"),
        "2024-07-01",
        Some(&json!({"identity": {"type": "None"}})),
    );
    assert!(status < 300, "{status} {body}");
    assert!(!holds_ours(&emulator, "vm-a"));

    let applied = work.apply();
    assert!(!warned(&applied.all()), "{}", applied.all());
    assert!(holds_ours(&emulator, "vm-a"));
    let both = lower(&[vm_id("vm-a"), vm_id("vm-b")]);
    assert_eq!(strings(&assignment_state(&work)["assigned_ids"]), both);
    let plan = work.run_ok(&["plan", "-input=false", "-no-color"]);
    assert!(!warned(&plan.all()), "{}", plan.all());

    work.destroy();
    for vm in ["vm-a", "vm-b"] {
        assert!(!holds_ours(&emulator, vm), "{vm} released");
    }
}

/// `(method, path)` of every request ARM's log shows for `vm`, in order.
fn requests_for(emulator: &Emulator, vm: &str) -> Vec<(String, u64)> {
    emulator
        .requests()
        .iter()
        .filter(|r| r["path"].as_str().unwrap_or("").ends_with(vm))
        .map(|r| {
            (
                r["method"].as_str().unwrap_or("").to_string(),
                r["status"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// Listings carry no etag (as an api-version without etags would list them): each machine is
/// read by ID, which gives the etag, and written with `If-Match`. Another writer changing
/// vm-a between that read and our write makes ARM refuse ours with 412 (a blind write would
/// have gone through, with the `type` it read before); we read again and write again.
#[test]
fn a_machine_listed_without_an_etag_is_read_by_id_and_written_with_if_match() {
    let emulator = Emulator::start(&scenario());
    emulator.inject_fault(&json!({
        "kind": "strip_etag", "method": "GET", "path_contains": "virtualMachines?api-version"
    }));
    emulator.inject_fault(&json!({
        "kind": "concurrent_write", "count": 1, "tag": "other-writer",
        "method": "PATCH", "path_contains": "virtualMachines/vm-a"
    }));
    let work = Workdir::new(&configuration(&emulator));
    work.init();
    work.apply();
    let vm_a = requests_for(&emulator, "vm-a");
    let patches: Vec<u64> = vm_a
        .iter()
        .filter(|(method, _)| method == "PATCH")
        .map(|(_, status)| *status)
        .collect();
    assert_eq!(
        patches,
        [412, 200],
        "written with If-Match, refused once: {vm_a:?}"
    );
    assert_eq!(
        vm_a.first().map(|(method, _)| method.as_str()),
        Some("GET"),
        "read by ID before the first write: {vm_a:?}"
    );
    assert!(holds_ours(&emulator, "vm-a") && holds_ours(&emulator, "vm-b"));
    let both = lower(&[vm_id("vm-a"), vm_id("vm-b")]);
    assert_eq!(strings(&assignment_state(&work)["assigned_ids"]), both);
    work.destroy();
    for vm in ["vm-a", "vm-b"] {
        assert!(!holds_ours(&emulator, vm), "{vm} released");
    }
}

/// No etag anywhere, neither listed nor read by ID: nothing is written, the apply fails naming
/// the machines and saying why, and state records nothing as ours.
#[test]
fn a_machine_without_any_etag_is_never_written() {
    let emulator = Emulator::start(&scenario());
    emulator.inject_fault(&json!({
        "kind": "strip_etag", "method": "GET", "path_contains": "Microsoft.Compute/virtualMachines"
    }));
    let work = Workdir::new(&configuration(&emulator));
    work.init();
    let failed = work.try_apply();
    assert!(!failed.success, "{}", failed.all());
    let output = failed.all();
    assert!(
        output.contains(&vm_id("vm-a")) && output.contains("If-Match"),
        "the error names the machine and why: {output}"
    );
    for vm in ["vm-a", "vm-b"] {
        assert!(
            !requests_for(&emulator, vm)
                .iter()
                .any(|(m, _)| m == "PATCH"),
            "no write reached {vm}"
        );
        assert!(!holds_ours(&emulator, vm));
    }
    assert!(strings(&assignment_state(&work)["assigned_ids"]).is_empty());
}
