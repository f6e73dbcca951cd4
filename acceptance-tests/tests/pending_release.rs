//! A replaced object that still owes a release (issue: releases owed across a replacement).
//!
//! Applied with identity B, then `identity_id` changed to A and the apply stopped after the
//! first machine's swap (its `timeouts` deadline, while the second machine's write waits in
//! a 30 s retry backoff): the second machine still holds B from us, a release the object's
//! record owes. Then the object is replaced (`-replace`, or a taint). Terraform hands the
//! old object's destroy the new object's record, not its own: the release it owed must
//! still be made (or kept recorded), never dropped. Every check reads the machines' identity
//! blocks back from the emulator; each test ends with a destroy after which every machine is
//! exactly as it was.

use std::collections::BTreeSet;

use acceptance_tests::scenario::{
    group, identity, lower, one_subscription, refresh, vm_id, workdir, Parts,
};
use acceptance_tests::{Emulator, Workdir};
use serde_json::{json, Value as Json};

const X: &str = "mig_identity_assignment.x";
const VMS: [&str; 2] = ["vm-0", "vm-1"];

/// Two plain VMs in `rg-a`, and the identities `id-a` and `id-b`.
fn start() -> Emulator {
    let vms: Vec<Json> = VMS
        .iter()
        .map(|n| json!({"name": n, "resource_group": "rg-a", "location": "eastus", "tags": {}}))
        .collect();
    let scenario = one_subscription(Parts {
        groups: &["rg-a", "rg-ids"],
        identities: &["id-a", "id-b"],
        vms,
        scale_sets: Some(vec![]),
        realism: Some(json!({})),
    });
    Emulator::start_with(&scenario, "fast")
}

/// An assignment of `name` over `rg-a`, whose updates stop after 3 s.
fn config(name: &str) -> String {
    format!(
        "resource \"mig_identity_assignment\" \"x\" {{\n  identity_id = \"{}\"\n  scope       = \"{}\"\n  timeouts {{\n    update = \"3s\"\n  }}\n}}\n",
        identity(name),
        group("rg-a"),
    )
}

/// The machines (lower-cased IDs) holding the identity `name` now, read from the emulator.
fn holding(emulator: &Emulator, name: &str) -> BTreeSet<String> {
    let wanted = identity(name).to_ascii_lowercase();
    lower(
        VMS.iter()
            .map(|n| vm_id("rg-a", n))
            .filter(|id| emulator.identity_of(id).1.contains(&wanted)),
    )
}

fn apply_with(work: &Workdir, args: &[&str]) -> acceptance_tests::CommandOutput {
    let mut command = vec!["apply", "-auto-approve", "-input=false", "-no-color"];
    command.extend_from_slice(args);
    work.run(&command)
}

/// Applies B, then changes to A with the swap of `vm-1` held in a retry backoff past the
/// update's deadline: `vm-0` holds A, `vm-1` still holds B, a release the record owes.
fn interrupted_identity_change(emulator: &Emulator) -> Workdir {
    let work = workdir(emulator, &config("id-b"));
    work.apply();
    let all = lower(VMS.iter().map(|n| vm_id("rg-a", n)));
    assert_eq!(holding(emulator, "id-b"), all, "first apply attaches B");

    work.write("main.tf", &emulator.configuration(&config("id-a")));
    emulator.inject_fault(&json!({
        "kind": "status", "status": 503, "retry_after": 30, "count": 1,
        "method": "PATCH", "path_contains": "/virtualMachines/vm-1"
    }));
    let output = apply_with(&work, &[]);
    assert!(
        !output.success,
        "the update is cut short:\n{}",
        output.all()
    );
    emulator.clear_faults();
    let vm0 = lower([vm_id("rg-a", "vm-0")]);
    let vm1 = lower([vm_id("rg-a", "vm-1")]);
    assert_eq!(holding(emulator, "id-a"), vm0, "vm-0 was swapped to A");
    assert_eq!(holding(emulator, "id-b"), vm1, "vm-1 still holds B from us");
    work
}

/// After the replacement: both machines hold A and nothing else of ours, and a destroy
/// leaves every machine as it was.
fn assert_replaced_and_restored(
    emulator: &Emulator,
    work: &Workdir,
    output: &acceptance_tests::CommandOutput,
) {
    assert!(output.success, "the replacement applies:\n{}", output.all());
    let all = lower(VMS.iter().map(|n| vm_id("rg-a", n)));
    assert_eq!(
        holding(emulator, "id-a"),
        all,
        "the new object holds A everywhere:\n{}",
        output.all()
    );
    assert!(
        holding(emulator, "id-b").is_empty(),
        "the release the replaced object owed was made: B is on {:?}",
        holding(emulator, "id-b")
    );
    refresh(work);
    assert!(!work.plan_has_changes(), "clean plan");
    work.destroy();
    for n in VMS {
        let id = vm_id("rg-a", n);
        assert_eq!(
            emulator.identity_of(&id),
            ("None".to_string(), BTreeSet::new()),
            "after destroy: identity block of {id}"
        );
    }
}

#[test]
fn replace_after_an_interrupted_identity_change_releases_the_old_identity() {
    let emulator = start();
    let work = interrupted_identity_change(&emulator);
    let output = apply_with(&work, &[&format!("-replace={X}")]);
    assert_replaced_and_restored(&emulator, &work, &output);
}

#[test]
fn taint_after_an_interrupted_identity_change_releases_the_old_identity() {
    let emulator = start();
    let work = interrupted_identity_change(&emulator);
    work.run_ok(&["taint", X]);
    let output = apply_with(&work, &[]);
    assert_replaced_and_restored(&emulator, &work, &output);
}

/// The replacement's destroy is refused on `vm-1` (403 on its PATCH): Terraform creates
/// nothing, and the old object keeps the release it still owes; the next apply makes it.
#[test]
fn a_replacement_whose_destroy_fails_keeps_the_release_owed() {
    let emulator = start();
    let work = interrupted_identity_change(&emulator);
    emulator.inject_fault(&json!({
        "kind": "status", "status": 403, "code": "AuthorizationFailed",
        "method": "PATCH", "path_contains": "/virtualMachines/vm-1"
    }));
    let output = apply_with(&work, &[&format!("-replace={X}")]);
    assert!(!output.success, "the destroy fails:\n{}", output.all());
    emulator.clear_faults();
    assert_eq!(
        holding(&emulator, "id-b"),
        lower([vm_id("rg-a", "vm-1")]),
        "vm-1 still holds B"
    );
    let output = apply_with(&work, &[]);
    assert_replaced_and_restored(&emulator, &work, &output);
}
