//! Replacement edges with real Terraform against the emulator (issue 21): `-replace` or taint
//! in the same apply as a `scope` change, a replacement whose destroy half fails, one whose
//! create fails, and an estate bucket beside a `mig_identity_assignment` of the same scope and
//! identity. Every check reads the machines' identity blocks back from the emulator; each
//! test ends with a destroy after which every machine is exactly as it was.

use std::collections::{BTreeMap, BTreeSet};

use acceptance_tests::scenario::{
    self, group, identity, interrupt, lower, one_subscription, refresh, subscription, vm_id,
    workdir, Parts,
};
use acceptance_tests::{Emulator, Workdir};
use serde_json::{json, Value as Json};

const X: &str = "mig_identity_assignment.x";
const E: &str = "mig_estate_assignment.e";

const IN_A: [&str; 3] = ["vm-a-0", "vm-a-1", "vm-a-2"];
const IN_B: [&str; 3] = ["vm-b-0", "vm-b-1", "vm-b-2"];

/// Six plain VMs in eastus: three in `rg-a`, three in `rg-b`.
fn start() -> Emulator {
    let vms: Vec<Json> = IN_A
        .iter()
        .map(|n| ("rg-a", n))
        .chain(IN_B.iter().map(|n| ("rg-b", n)))
        .map(|(g, n)| json!({"name": n, "resource_group": g, "location": "eastus", "tags": {}}))
        .collect();
    let scenario = one_subscription(Parts {
        groups: &["rg-a", "rg-b", "rg-ids"],
        identities: &["id-one"],
        vms,
        scale_sets: Some(vec![]),
        realism: Some(json!({})),
    });
    Emulator::start_with(&scenario, "fast")
}

fn all_ids() -> Vec<String> {
    IN_A.iter()
        .map(|n| vm_id("rg-a", n))
        .chain(IN_B.iter().map(|n| vm_id("rg-b", n)))
        .collect()
}

/// The machines (lower-cased IDs) holding `id-one` now, read from the emulator.
fn holding(emulator: &Emulator) -> BTreeSet<String> {
    let one = identity("id-one").to_ascii_lowercase();
    lower(
        all_ids()
            .into_iter()
            .filter(|id| emulator.identity_of(id).1.contains(&one)),
    )
}

fn in_group(group_name: &str, names: &[&str]) -> BTreeSet<String> {
    lower(names.iter().map(|n| vm_id(group_name, n)))
}

/// Every machine is exactly as the scenario made it: a plain VM with no identity.
fn assert_restored(emulator: &Emulator, when: &str) {
    for id in all_ids() {
        assert_eq!(
            emulator.identity_of(&id),
            ("None".to_string(), BTreeSet::new()),
            "{when}: identity block of {id}"
        );
    }
}

/// Machine writes since the log was last cleared, by lower-cased machine ID.
fn writes(emulator: &Emulator) -> BTreeMap<String, usize> {
    let mut writes = BTreeMap::new();
    for request in emulator.requests() {
        let path = request["path"].as_str().unwrap_or_default();
        let path = path.split('?').next().unwrap_or_default();
        if (request["method"] == "PATCH" || request["method"] == "PUT")
            && path.contains("/Microsoft.Compute/")
        {
            *writes.entry(path.to_ascii_lowercase()).or_default() += 1;
        }
    }
    writes
}

fn assignment(scope: &str) -> String {
    scenario::assignment("x", scope, "")
}

fn estate(scope: &str) -> String {
    format!(
        "resource \"mig_estate_assignment\" \"e\" {{\n  scope = \"{scope}\"\n  identity_ids = {{ eastus = \"{}\" }}\n}}\n",
        identity("id-one")
    )
}

fn apply_with(work: &Workdir, args: &[&str]) -> acceptance_tests::CommandOutput {
    let mut command = vec!["apply", "-auto-approve", "-input=false", "-no-color"];
    command.extend_from_slice(args);
    work.run(&command)
}

fn state_ids(work: &Workdir, address: &str, attribute: &str) -> BTreeSet<String> {
    let state = work.state_resources();
    let Some(resource) = state.get(address) else {
        return BTreeSet::new();
    };
    let mut ids = BTreeSet::new();
    let mut collect = |value: &Json| {
        if let Some(items) = value.as_array() {
            ids.extend(lower(items.iter().filter_map(Json::as_str)));
        }
    };
    collect(&resource[attribute]);
    if let Some(buckets) = resource["buckets"].as_object() {
        for bucket in buckets.values() {
            collect(&bucket[attribute]);
        }
    }
    ids
}

fn owned(work: &Workdir, address: &str) -> BTreeSet<String> {
    state_ids(work, address, "assigned_ids")
}

/// Applied over the whole subscription, then `scope` narrowed to `rg-a` in the same apply as
/// a replacement (`how`: `-replace` or a taint first): the machines of `rg-a` keep the
/// identity without a write, those of `rg-b` are given back, and the new object owns `rg-a`.
fn replaced_with_a_narrower_scope(config: fn(&str) -> String, address: &str, taint: bool) {
    let emulator = start();
    let work = workdir(&emulator, &config(&subscription()));
    work.apply();
    assert_eq!(holding(&emulator), lower(all_ids()), "first apply");
    work.write("main.tf", &emulator.configuration(&config(&group("rg-a"))));
    let replace = format!("-replace={address}");
    let args: Vec<&str> = if taint {
        work.run_ok(&["taint", address]);
        vec![]
    } else {
        vec![&replace]
    };
    emulator.clear_requests();
    let output = apply_with(&work, &args);
    assert!(output.success, "the replacement applies:\n{}", output.all());
    assert_eq!(
        holding(&emulator),
        in_group("rg-a", &IN_A),
        "rg-a keeps the identity, rg-b gives it back"
    );
    assert!(
        writes(&emulator).keys().all(|path| path.contains("/rg-b/")),
        "no machine of rg-a is written: {:?}",
        writes(&emulator)
    );
    // After a taint the new object adopts them (shown compliant in this apply, as planned):
    // the next refresh records them as its own.
    refresh(&work);
    assert_eq!(
        owned(&work, address),
        in_group("rg-a", &IN_A),
        "new object owns rg-a"
    );
    assert!(!work.plan_has_changes(), "clean plan");
    work.destroy();
    assert_restored(&emulator, "after destroy");
}

#[test]
fn replace_with_a_scope_change_keeps_what_the_new_scope_wants() {
    replaced_with_a_narrower_scope(assignment, X, false);
}

#[test]
fn taint_with_a_scope_change_keeps_what_the_new_scope_wants() {
    replaced_with_a_narrower_scope(assignment, X, true);
}

#[test]
fn estate_replace_with_a_scope_change_keeps_what_the_new_scope_wants() {
    replaced_with_a_narrower_scope(estate, E, false);
}

/// The old object's destroy fails on one machine of `rg-b` (403 on its PATCH): the apply
/// fails, the create does not run, and the old object keeps in state both the machine it
/// could not release and those it meant to hand over. The next apply finishes.
fn destroy_half_failing(config: fn(&str) -> String, address: &str) {
    let emulator = start();
    let work = workdir(&emulator, &config(&subscription()));
    work.apply();
    work.write("main.tf", &emulator.configuration(&config(&group("rg-a"))));
    emulator.inject_fault(&json!({
        "kind": "status", "status": 403, "code": "AuthorizationFailed",
        "method": "PATCH", "path_contains": "/virtualMachines/vm-b-0"
    }));
    let output = apply_with(&work, &[&format!("-replace={address}")]);
    assert!(!output.success, "the destroy fails:\n{}", output.all());
    emulator.clear_faults();
    let mut expected = in_group("rg-a", &IN_A);
    expected.insert(vm_id("rg-b", "vm-b-0").to_ascii_lowercase());
    assert_eq!(
        holding(&emulator),
        expected,
        "rg-a and vm-b-0 hold the identity"
    );
    assert_eq!(
        owned(&work, address),
        expected,
        "state keeps every machine that still holds the identity from us:\n{}",
        output.all()
    );
    let output = apply_with(&work, &[]);
    assert!(output.success, "the next apply finishes:\n{}", output.all());
    assert_eq!(
        holding(&emulator),
        in_group("rg-a", &IN_A),
        "after the retry"
    );
    assert_eq!(owned(&work, address), in_group("rg-a", &IN_A));
    assert!(!work.plan_has_changes(), "clean plan");
    work.destroy();
    assert_restored(&emulator, "after destroy");
}

#[test]
fn a_replacement_whose_destroy_fails_keeps_what_it_meant_to_hand_over() {
    destroy_half_failing(assignment, X);
}

#[test]
fn an_estate_replacement_whose_destroy_fails_keeps_what_it_meant_to_hand_over() {
    destroy_half_failing(estate, E);
}

/// The create half fails: after the old object's destroy handed `rg-a` over, listing `rg-a`
/// is refused (403) for the create's plan and apply. The machines stay recorded (in the new
/// object, tainted), and the next apply finishes.
#[test]
fn a_replacement_whose_create_fails_keeps_what_was_handed_over() {
    let emulator = start();
    let work = workdir(&emulator, &assignment(&subscription()));
    work.apply();
    work.write(
        "main.tf",
        &emulator.configuration(&assignment(&group("rg-a"))),
    );
    work.run_ok(&[
        "plan",
        "-input=false",
        "-no-color",
        "-out=tfplan",
        &format!("-replace={X}"),
    ]);
    emulator.inject_fault(&json!({
        "kind": "status", "status": 403, "code": "AuthorizationFailed", "method": "GET",
        "path_contains": "/resourceGroups/rg-a/providers/Microsoft.Compute/virtualMachines?"
    }));
    let output = work.run(&["apply", "-input=false", "-no-color", "tfplan"]);
    assert!(!output.success, "the create fails:\n{}", output.all());
    emulator.clear_faults();
    assert_eq!(holding(&emulator), in_group("rg-a", &IN_A), "rg-a kept it");
    assert_eq!(
        owned(&work, X),
        in_group("rg-a", &IN_A),
        "the machines handed over are recorded:\n{}",
        output.all()
    );
    let output = apply_with(&work, &[]);
    assert!(output.success, "the next apply finishes:\n{}", output.all());
    assert_eq!(holding(&emulator), in_group("rg-a", &IN_A));
    assert_eq!(owned(&work, X), in_group("rg-a", &IN_A));
    assert!(!work.plan_has_changes(), "clean plan");
    work.destroy();
    assert_restored(&emulator, "after destroy");
}

/// An estate bucket and a `mig_identity_assignment` of the same scope and identity: the estate
/// attached first and owns `rg-a`, the assignment added next finds them compliant. Each
/// replaced in turn takes over only its own; destroying the assignment writes nothing, the
/// estate's destroy gives everything back.
#[test]
fn an_estate_bucket_and_an_assignment_of_one_scope_keep_their_own_records() {
    let emulator = start();
    let work = workdir(&emulator, &estate(&group("rg-a")));
    work.apply();
    assert_eq!(holding(&emulator), in_group("rg-a", &IN_A));
    let both = format!("{}{}", estate(&group("rg-a")), assignment(&group("rg-a")));
    work.write("main.tf", &emulator.configuration(&both));
    work.apply();
    assert_eq!(
        owned(&work, E),
        in_group("rg-a", &IN_A),
        "the estate owns rg-a"
    );
    assert!(owned(&work, X).is_empty(), "the assignment owns nothing");
    for address in [X, E, X, E] {
        emulator.clear_requests();
        work.run_ok(&["taint", address]);
        let output = apply_with(&work, &[]);
        assert!(output.success, "replacing {address}:\n{}", output.all());
        assert_eq!(
            writes(&emulator),
            BTreeMap::new(),
            "replacing {address} writes nothing"
        );
        assert_eq!(
            owned(&work, E),
            in_group("rg-a", &IN_A),
            "after replacing {address}"
        );
        assert!(owned(&work, X).is_empty(), "after replacing {address}");
    }
    emulator.clear_requests();
    work.run_ok(&[
        "destroy",
        "-auto-approve",
        "-input=false",
        "-no-color",
        &format!("-target={X}"),
    ]);
    assert_eq!(
        writes(&emulator),
        BTreeMap::new(),
        "the assignment gives nothing back"
    );
    assert_eq!(holding(&emulator), in_group("rg-a", &IN_A));
    work.destroy();
    assert_restored(&emulator, "after destroy");
}

/// Ctrl-C while the old object's destroy gives `rg-b` back (its PATCHes answered 503 with a
/// 30 s `Retry-After`): the apply stops, the create does not run, and the old object keeps
/// both what it did not give back and what it meant to hand over. The next apply finishes.
#[test]
fn a_replacement_stopped_by_ctrl_c_keeps_what_it_meant_to_hand_over() {
    let emulator = start();
    let work = workdir(&emulator, &assignment(&subscription()));
    work.apply();
    work.write(
        "main.tf",
        &emulator.configuration(&assignment(&group("rg-a"))),
    );
    emulator.clear_requests();
    emulator.inject_fault(&json!({
        "kind": "status", "status": 503, "retry_after": 30, "count": 3,
        "method": "PATCH", "path_contains": "/resourceGroups/rg-b/"
    }));
    let apply = work.spawn(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        &format!("-replace={X}"),
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let refused = emulator
            .requests()
            .iter()
            .filter(|r| r["method"] == "PATCH" && r["status"] == 503)
            .count();
        if refused == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the releases never got there"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (succeeded, output) = interrupt(apply);
    assert!(!succeeded, "interrupted:\n{output}");
    emulator.clear_faults();
    assert_eq!(
        holding(&emulator),
        lower(all_ids()),
        "nothing was given back"
    );
    assert_eq!(
        owned(&work, X),
        lower(all_ids()),
        "the old object keeps every machine:\n{output}"
    );
    let output = apply_with(&work, &[]);
    assert!(output.success, "the next apply finishes:\n{}", output.all());
    assert_eq!(holding(&emulator), in_group("rg-a", &IN_A));
    assert_eq!(owned(&work, X), in_group("rg-a", &IN_A));
    assert!(!work.plan_has_changes(), "clean plan");
    work.destroy();
    assert_restored(&emulator, "after destroy");
}
