//! Fights made visible and machines moved between objects, with real Terraform against the
//! emulator: two objects of one identity over the same machines are warned about at plan (not
//! the two halves of a `-replace`); a machine another writer strips after each apply is named
//! by the plan, and from the second time in a row with the likely cause and the fix; and
//! `adopt = "compliant"` records machines already holding the identity as owned without a
//! write, through every transition (set, changed, removed, `-replace`, import, destroy); and
//! two overlapping objects consolidated into one in one apply leave the survivor owning the
//! machines.
//! Every check reads the machines back from the emulator.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use acceptance_tests::scenario::{
    assignment, group, id_set, identity, instant, lower, one_subscription, plan_warnings,
    subscription, vm, vm_id, workdir, Parts,
};
use acceptance_tests::{Emulator, Workdir};
use serde_json::json;

const API: &str = "2024-07-01";
const X: &str = "mig_identity_assignment.x";

const OVERLAP: &str = "Two objects attach the same identity to the same machines";
const LOST: &str = "Machines lost the identity this resource attached";
const LOSING: &str = "Machines keep losing the identity this resource attaches";

/// rg-a: vm-a (bare), vm-b (system-assigned); rg-b: vm-held (system-assigned, and id-one and
/// id-two from someone else), vm-pair (id-one and id-two only: without id-one it would be
/// skipped as single user-assigned, so it is never adopted), vm-c (bare).
fn start() -> Emulator {
    Emulator::start_with(
        &one_subscription(Parts {
            groups: &["rg-a", "rg-b", "rg-ids"],
            identities: &["id-one", "id-two"],
            vms: vec![
                vm("rg-a", "vm-a", &[], false),
                vm("rg-a", "vm-b", &[], true),
                vm("rg-b", "vm-held", &["id-one", "id-two"], true),
                vm("rg-b", "vm-pair", &["id-one", "id-two"], false),
                vm("rg-b", "vm-c", &[], false),
            ],
            scale_sets: None,
            realism: Some(instant()),
        }),
        "fast",
    )
}

fn owned_and_compliant(work: &Workdir) -> (BTreeSet<String>, BTreeSet<String>) {
    let state = work
        .state_resources()
        .remove(X)
        .unwrap_or_else(|| panic!("{X} not in state"));
    (
        id_set(&state["assigned_ids"]),
        id_set(&state["compliant_ids"]),
    )
}

fn holds(emulator: &Emulator, machine: &str, name: &str) -> bool {
    emulator
        .identity_of(machine)
        .1
        .contains(&identity(name).to_ascii_lowercase())
}

fn warning<'a>(warnings: &'a [(String, String)], summary: &str) -> Option<&'a str> {
    warnings
        .iter()
        .find(|(s, _)| s == summary)
        .map(|(_, detail)| detail.as_str())
}

/// PATCHes or PUTs the provider sent to `machine` since the last `clear_requests`.
fn writes_to(emulator: &Emulator, machine: &str) -> usize {
    let machine = machine.to_ascii_lowercase();
    emulator
        .requests()
        .iter()
        .filter(|r| {
            matches!(r["method"].as_str(), Some("PATCH" | "PUT"))
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.trim_end_matches('/').to_ascii_lowercase() == machine)
        })
        .count()
}

/// Another writer (an azurerm apply listing the machine's identities authoritatively) takes
/// every user-assigned identity off `machine`, which held only ours.
fn strip(emulator: &Emulator, machine: &str) {
    let (status, answer) = emulator.arm_send(
        reqwest::Method::PATCH,
        machine,
        API,
        Some(&json!({"identity": {"type": "None"}})),
    );
    assert!(status < 300, "PATCH {machine}: {status} {answer}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while emulator.arm_get(machine, API).expect("the VM exists")["properties"]["provisioningState"]
        != "Succeeded"
    {
        assert!(Instant::now() < deadline, "{machine} settles");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!holds(emulator, machine, "id-one"), "{machine} stripped");
}

// ---------------------------------------------------------------------------------------------
// Two objects of one identity over the same machines
// ---------------------------------------------------------------------------------------------

#[test]
fn overlapping_objects_of_one_identity_are_warned_about_but_not_a_replacement() {
    let emulator = start();
    let apart = format!(
        "{}{}",
        assignment("x", &group("rg-a"), ""),
        assignment("y", &group("rg-b"), "")
    );
    let work = workdir(&emulator, &apart);
    let overlapping = format!(
        "{}{}",
        assignment("x", &subscription(), ""),
        assignment("y", &group("rg-b"), "")
    );

    // Two new objects: the subscription contains rg-b.
    work.write("main.tf", &emulator.configuration(&overlapping));
    let warnings = plan_warnings(&work, &[]);
    let detail = warning(&warnings, OVERLAP)
        .unwrap_or_else(|| panic!("the overlap is warned about: {warnings:?}"));
    for scope in [subscription(), group("rg-b")] {
        assert!(
            detail.contains(&format!("`{scope}`")),
            "names {scope}: {detail}"
        );
    }
    assert!(
        detail.contains("adopt"),
        "says how to move machines: {detail}"
    );

    // Apart: no warning, on create, on a no-op plan, nor for the two halves of -replace.
    work.write("main.tf", &emulator.configuration(&apart));
    let warnings = plan_warnings(&work, &[]);
    assert!(warning(&warnings, OVERLAP).is_none(), "{warnings:?}");
    work.apply();
    let warnings = plan_warnings(&work, &[]);
    assert!(warning(&warnings, OVERLAP).is_none(), "{warnings:?}");
    let warnings = plan_warnings(&work, &[&format!("-replace={X}")]);
    assert!(
        warning(&warnings, OVERLAP).is_none(),
        "a replacement is one object: {warnings:?}"
    );

    // Two existing objects made to overlap (x widened to the subscription).
    work.write("main.tf", &emulator.configuration(&overlapping));
    let warnings = plan_warnings(&work, &[]);
    assert!(warning(&warnings, OVERLAP).is_some(), "{warnings:?}");
}

// ---------------------------------------------------------------------------------------------
// A machine another tool strips after each of our applies
// ---------------------------------------------------------------------------------------------

#[test]
fn a_machine_stripped_after_each_apply_is_named_and_the_second_time_warned_about() {
    let emulator = start();
    let work = workdir(&emulator, &assignment("x", &group("rg-a"), ""));
    work.apply();
    let vm_a = vm_id("rg-a", "vm-a");
    assert!(holds(&emulator, &vm_a, "id-one"));
    let warnings = plan_warnings(&work, &[]);
    assert!(warning(&warnings, LOST).is_none(), "{warnings:?}");

    // First loss: named, no fight yet.
    strip(&emulator, &vm_a);
    let warnings = plan_warnings(&work, &[]);
    let detail = warning(&warnings, LOST).unwrap_or_else(|| panic!("{warnings:?}"));
    assert!(
        detail
            .to_ascii_lowercase()
            .contains(&vm_a.to_ascii_lowercase()),
        "{detail}"
    );
    assert!(!detail.contains("vm-b"), "vm-b kept it: {detail}");
    assert!(warning(&warnings, LOSING).is_none(), "{warnings:?}");
    // A plan persists nothing: planning again says the same.
    let again = plan_warnings(&work, &[]);
    assert!(warning(&again, LOST).is_some() && warning(&again, LOSING).is_none());

    // Attached again, stripped again: the second apply in a row.
    work.apply();
    assert!(holds(&emulator, &vm_a, "id-one"), "attached again");
    strip(&emulator, &vm_a);
    let warnings = plan_warnings(&work, &[]);
    let detail = warning(&warnings, LOSING).unwrap_or_else(|| panic!("{warnings:?}"));
    assert!(
        detail
            .to_ascii_lowercase()
            .contains(&vm_a.to_ascii_lowercase()),
        "{detail}"
    );
    assert!(detail.contains("2 applies in a row"), "{detail}");
    assert!(
        detail.contains("ignore_changes = [identity]"),
        "the fix: {detail}"
    );
    assert!(detail.contains("azurerm"), "the likely cause: {detail}");

    // Attached again and kept through an apply: the count starts over.
    work.apply();
    work.apply();
    assert!(holds(&emulator, &vm_a, "id-one"));
    strip(&emulator, &vm_a);
    let warnings = plan_warnings(&work, &[]);
    assert!(warning(&warnings, LOST).is_some(), "{warnings:?}");
    assert!(
        warning(&warnings, LOSING).is_none(),
        "starts over: {warnings:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// `adopt = "compliant"` through its transitions
// ---------------------------------------------------------------------------------------------

#[test]
fn adopt_compliant_owns_holders_without_a_write_through_every_transition() {
    let emulator = start();
    let held = vm_id("rg-b", "vm-held");
    let bare = vm_id("rg-b", "vm-c");
    let pair = vm_id("rg-b", "vm-pair");
    let both = lower([held.clone(), bare.clone()]);
    let never = lower([pair.clone()]);
    let config = |extra: &str| emulator.configuration(&assignment("x", &group("rg-b"), extra));
    let work = workdir(&emulator, "");

    // Default: the holder is someone else's.
    work.write("main.tf", &config(""));
    work.apply();
    assert_eq!(
        owned_and_compliant(&work),
        (lower([bare.clone()]), lower([held.clone(), pair.clone()]))
    );

    // Set: adopted, not written.
    emulator.clear_requests();
    work.write("main.tf", &config("adopt = \"compliant\""));
    work.apply();
    assert_eq!(owned_and_compliant(&work), (both.clone(), never.clone()));
    assert_eq!(writes_to(&emulator, &held), 0, "adopted without a write");
    assert!(!work.plan_has_changes(), "the next plan is clean");

    // Changed to `none`, then removed: what was adopted stays owned, nothing is written.
    for extra in ["adopt = \"none\"", ""] {
        emulator.clear_requests();
        work.write("main.tf", &config(extra));
        work.apply();
        assert_eq!(
            owned_and_compliant(&work),
            (both.clone(), never.clone()),
            "{extra}"
        );
        assert_eq!(writes_to(&emulator, &held) + writes_to(&emulator, &bare), 0);
        assert!(!work.plan_has_changes(), "{extra}: the next plan is clean");
    }

    // Replaced: the new object owns both, and no machine was written.
    work.write("main.tf", &config("adopt = \"compliant\""));
    work.apply();
    emulator.clear_requests();
    work.run_ok(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        &format!("-replace={X}"),
    ]);
    assert_eq!(owned_and_compliant(&work), (both.clone(), never.clone()));
    assert_eq!(writes_to(&emulator, &held) + writes_to(&emulator, &bare), 0);
    assert!(holds(&emulator, &held, "id-one") && holds(&emulator, &bare, "id-one"));

    // Imported: nothing recorded as owned; the next apply adopts both, without a write.
    work.run_ok(&["state", "rm", X]);
    work.run_ok(&[
        "import",
        "-input=false",
        "-no-color",
        X,
        &format!("{}|{}", group("rg-b"), identity("id-one")),
    ]);
    emulator.clear_requests();
    work.apply();
    assert_eq!(owned_and_compliant(&work), (both.clone(), never.clone()));
    assert_eq!(writes_to(&emulator, &held) + writes_to(&emulator, &bare), 0);

    // Destroy gives back what it owns, the adopted one included (it keeps id-two).
    work.destroy();
    assert!(
        !holds(&emulator, &held, "id-one"),
        "the adopted machine is given back"
    );
    assert!(holds(&emulator, &held, "id-two"), "its own identity stays");
    assert!(!holds(&emulator, &bare, "id-one"));
    assert!(
        holds(&emulator, &pair, "id-one") && holds(&emulator, &pair, "id-two"),
        "never adopted, never touched"
    );
}

// ---------------------------------------------------------------------------------------------
// Two overlapping objects consolidated into one
// ---------------------------------------------------------------------------------------------

/// `y` (rg-a) attached the identity; `x` (the subscription, every machine) came later and
/// lists rg-a's machines as compliant. One apply removes `y` and changes `x` (a tag
/// exclusion that matches nothing): Terraform plans `x` again during apply, maybe after `y`'s
/// destroy ran, and the two plans must agree ("inconsistent final plan" otherwise).
/// Terraform orders neither `x`'s plan against `y`'s destroy plan nor the two applies: `y`'s
/// destroy planned after `x` leaves rg-a's machines holding the identity and `x` adopts them
/// (no write); planned before, `x`'s lists are decided at apply, and if the destroy runs
/// first `x` attaches the identity again. Either way `x` ends owning rg-a's machines: its
/// destroy takes the identity back from every machine it attached, and from no other.
#[test]
fn an_object_changed_while_an_overlapping_one_is_destroyed_ends_owning_its_machines() {
    let emulator = start();
    let (a, b) = (vm_id("rg-a", "vm-a"), vm_id("rg-a", "vm-b"));
    let y = assignment("y", &group("rg-a"), "");
    let work = workdir(&emulator, &y);
    work.apply();
    let x = |extra: &str| assignment("x", &subscription(), extra);
    work.write("main.tf", &emulator.configuration(&format!("{}{y}", x(""))));
    work.apply();
    let (_, compliant) = owned_and_compliant(&work);
    assert_eq!(
        compliant,
        lower([&a, &b, &vm_id("rg-b", "vm-held"), &vm_id("rg-b", "vm-pair")]),
        "rg-a's machines are y's"
    );

    work.write(
        "main.tf",
        &emulator.configuration(&x("exclude_tags = { \"nobody\" = \"uses-this\" }")),
    );
    emulator.clear_requests();
    work.apply();
    for machine in [&a, &b] {
        assert!(holds(&emulator, machine, "id-one"), "{machine}");
        let writes = writes_to(&emulator, machine);
        assert!(
            writes == 0 || writes == 2,
            "{machine}: left alone, or given back and attached again: {writes} writes"
        );
    }
    work.write("main.tf", &emulator.configuration(""));
    work.apply();
    for machine in [&a, &b, &vm_id("rg-b", "vm-c")] {
        assert!(
            !holds(&emulator, machine, "id-one"),
            "{machine}: x owned it, its destroy takes the identity back"
        );
    }
    for machine in [vm_id("rg-b", "vm-held"), vm_id("rg-b", "vm-pair")] {
        assert!(
            holds(&emulator, &machine, "id-one"),
            "{machine} is someone else's"
        );
    }
}
