//! `mig_estate_assignment` when one of its subscriptions cannot be planned, with real
//! Terraform against the emulator: a subscription whose listings answer 403, one that is
//! disabled, one missing from `GET /subscriptions`, and one truly moved out of the management
//! group. Only the last one's buckets are released; the others keep exactly what they
//! recorded (no write to them, a warning naming them) while the rest of the estate plans and
//! applies. Every machine is read back from the emulator.

use std::collections::BTreeMap;

use acceptance_tests::scenario::estate::{
    add_machine, assert_bare, assert_holds, assert_warns_about, writes_to, REGIONS, SUB_A, SUB_B,
    SUB_C,
};
use acceptance_tests::{Emulator, Workdir};
use serde_json::{json, Value as Json};

const ESTATE: &str = "mig_estate_assignment.e";

fn group_id(name: &str) -> String {
    format!("/providers/Microsoft.Management/managementGroups/{name}")
}

/// (subscription, name, region) of the machines the scenario starts with.
fn machines() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (SUB_A, "vm-a-east", "eastus"),
        (SUB_B, "vm-b-east", "eastus"),
        (SUB_B, "vm-b-west", "westeurope"),
        (SUB_C, "vm-c-east", "eastus"),
        (SUB_C, "vm-c-west", "westeurope"),
    ]
}

/// root ─ mg-platform (SUB_A) ─ mg-corp (SUB_B, SUB_C); the policy's identities made in every
/// subscription and region.
fn scenario() -> Json {
    acceptance_tests::scenario::estate::scenario(&machines(), true)
}

fn estate(emulator: &Emulator, arguments: &str) -> String {
    emulator.configuration(&format!(
        "resource \"mig_estate_assignment\" \"e\" {{\n{arguments}\n}}"
    ))
}

/// An estate over mg-platform (`scope` given) or every visible subscription (`None`),
/// applied: every machine holds its subscription's identity for its region.
fn applied(emulator: &Emulator, scope: Option<&str>) -> Workdir {
    let arguments = scope
        .map(|group| format!("scope = \"{}\"", group_id(group)))
        .unwrap_or_default();
    let work = Workdir::new(&estate(emulator, &arguments));
    work.init();
    work.apply();
    for (sub, name, region) in machines() {
        assert_holds(emulator, sub, name, region, "first apply");
    }
    work
}

/// The estate's buckets in state, by key.
fn buckets(work: &Workdir) -> BTreeMap<String, Json> {
    let state = &work.state_resources()[ESTATE];
    state["buckets"]
        .as_object()
        .map(|b| b.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn buckets_of(work: &Workdir, sub: &str) -> BTreeMap<String, Json> {
    buckets(work)
        .into_iter()
        .filter(|(key, _)| key.starts_with(sub))
        .collect()
}

/// A plan's output, succeeding, with its exit code for changes.
fn plan(work: &Workdir) -> (String, bool) {
    let output = work.run(&["plan", "-input=false", "-no-color", "-detailed-exitcode"]);
    let text = output.all();
    assert!(
        !text.contains("Error:"),
        "the plan succeeds with a warning: {text}"
    );
    (text.clone(), text.contains("Plan:"))
}

fn assert_all_bare_after_destroy(emulator: &Emulator, work: &Workdir, extra: &[(&str, &str)]) {
    work.destroy();
    for (sub, name, _) in machines() {
        assert_bare(emulator, sub, name, "after destroy");
    }
    for (sub, name) in extra {
        assert_bare(emulator, sub, name, "after destroy");
    }
}

#[test]
fn an_unreadable_subscription_keeps_what_it_recorded_while_the_rest_applies() {
    let emulator = Emulator::start(&scenario());
    let work = applied(&emulator, Some("mg-platform"));
    let recorded = buckets_of(&work, SUB_C);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    add_machine(&emulator, SUB_A, "vm-a-new");
    add_machine(&emulator, SUB_C, "vm-c-new");
    // Every read of SUB_C answers 403, as when access was narrowed.
    emulator.inject_fault(&json!({
        "kind": "status", "status": 403, "code": "AuthorizationFailed",
        "message": "The client does not have authorization to read this subscription.",
        "method": "GET", "path_contains": format!("/subscriptions/{SUB_C}/")
    }));

    let (text, _) = plan(&work);
    assert_warns_about(&text, SUB_C, "AuthorizationFailed");
    emulator.clear_requests();
    let applied = work.apply();
    assert_warns_about(&applied.all(), SUB_C, "AuthorizationFailed");
    assert_holds(&emulator, SUB_A, "vm-a-new", "eastus", "during the 403");
    assert_eq!(writes_to(&emulator, SUB_C), Vec::<Json>::new());
    assert_eq!(
        buckets_of(&work, SUB_C),
        recorded,
        "the unreadable subscription's buckets are as recorded"
    );

    // Readable again (the machines are read back only now): they kept the identity, the new
    // one was not written, and the next plan picks it up normally.
    emulator.clear_faults();
    for (sub, name, region) in machines() {
        assert_holds(&emulator, sub, name, region, "after the 403");
    }
    assert_bare(&emulator, SUB_C, "vm-c-new", "after the 403");
    work.apply();
    assert_holds(&emulator, SUB_C, "vm-c-new", "eastus", "readable again");
    let (text, changes) = plan(&work);
    assert!(!changes, "the next plan is clean: {text}");
    assert_all_bare_after_destroy(
        &emulator,
        &work,
        &[(SUB_A, "vm-a-new"), (SUB_C, "vm-c-new")],
    );
}

#[test]
fn a_disabled_subscription_keeps_its_buckets_and_is_not_written() {
    let emulator = Emulator::start(&scenario());
    let work = applied(&emulator, Some("mg-platform"));
    let recorded = buckets_of(&work, SUB_C);
    add_machine(&emulator, SUB_A, "vm-a-new");
    emulator.load_merge(
        &json!({"subscriptions": [{"id": SUB_C, "regions": REGIONS, "state": "Disabled"}]}),
    );

    let (text, changes) = plan(&work);
    assert_warns_about(&text, SUB_C, "Disabled");
    assert!(changes, "vm-a-new is planned: {text}");
    emulator.clear_requests();
    let applied = work.apply();
    assert_warns_about(&applied.all(), SUB_C, "Disabled");
    assert_eq!(writes_to(&emulator, SUB_C), Vec::<Json>::new());
    assert_holds(&emulator, SUB_A, "vm-a-new", "eastus", "disabled");
    for (sub, name, region) in machines() {
        assert_holds(&emulator, sub, name, region, "disabled");
    }
    assert_eq!(buckets_of(&work, SUB_C), recorded, "kept as recorded");
    let (text, changes) = plan(&work);
    assert!(!changes, "nothing to do while it is disabled: {text}");

    // Warned and PastDue subscriptions still take writes: planned as usual.
    emulator.load_merge(
        &json!({"subscriptions": [{"id": SUB_C, "regions": REGIONS, "state": "PastDue"}]}),
    );
    let (text, changes) = plan(&work);
    assert!(!changes && !text.contains(SUB_C), "{text}");
    assert_all_bare_after_destroy(&emulator, &work, &[(SUB_A, "vm-a-new")]);
}

#[test]
fn a_subscription_missing_from_the_listing_of_subscriptions_keeps_its_buckets() {
    let emulator = Emulator::start(&scenario());
    // Every subscription the principal can see.
    let work = applied(&emulator, None);
    let recorded = buckets_of(&work, SUB_C);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    emulator.load_merge(
        &json!({"subscriptions": [{"id": SUB_C, "regions": REGIONS, "listed": false}]}),
    );

    let (text, changes) = plan(&work);
    assert_warns_about(&text, SUB_C, "GET /subscriptions");
    assert!(!changes, "nothing released: {text}");
    emulator.clear_requests();
    work.apply();
    assert_eq!(writes_to(&emulator, SUB_C), Vec::<Json>::new());
    for (sub, name, region) in machines() {
        assert_holds(&emulator, sub, name, region, "missing from the listing");
    }
    assert_eq!(buckets_of(&work, SUB_C), recorded, "kept as recorded");

    // Over mg-platform the group's descendants still list it, and its machines can be read:
    // planned as usual, nothing to do, nothing to warn about.
    let group = Workdir::new(&estate(
        &emulator,
        &format!("scope = \"{}\"", group_id("mg-platform")),
    ));
    group.init();
    emulator.clear_requests();
    let created = group.apply();
    assert!(!created.all().contains("Warning:"), "{}", created.all());
    assert_eq!(
        buckets_of(&group, SUB_C).keys().collect::<Vec<_>>(),
        recorded.keys().collect::<Vec<_>>(),
        "still under the group: planned"
    );
    group.run_ok(&["state", "rm", ESTATE]);

    // Listed again: planned as usual, nothing to do.
    emulator
        .load_merge(&json!({"subscriptions": [{"id": SUB_C, "regions": REGIONS, "listed": true}]}));
    let (text, changes) = plan(&work);
    assert!(!changes && !text.contains("Warning:"), "{text}");
    assert_all_bare_after_destroy(&emulator, &work, &[]);
}

#[test]
fn a_subscription_moved_out_of_the_management_group_is_released() {
    let emulator = Emulator::start(&scenario());
    let work = applied(&emulator, Some("mg-platform"));
    // SUB_C moves to a group outside mg-platform: the descendants listing no longer has it.
    emulator.load_merge(
        &json!({"management_groups": [{"id": "mg-elsewhere", "subscriptions": [SUB_C]}]}),
    );
    let recorded = buckets_of(&work, SUB_C);

    // While it cannot be read, what its buckets attached cannot be given back: kept, warned.
    emulator.inject_fault(&json!({
        "kind": "status", "status": 403, "code": "AuthorizationFailed",
        "method": "GET", "path_contains": format!("/subscriptions/{SUB_C}/")
    }));
    let (text, changes) = plan(&work);
    assert_warns_about(&text, SUB_C, "it left the scope");
    assert!(!changes, "{text}");
    emulator.clear_requests();
    work.apply();
    assert_eq!(writes_to(&emulator, SUB_C), Vec::<Json>::new());
    assert_eq!(buckets_of(&work, SUB_C), recorded, "kept while unreadable");
    emulator.clear_faults();

    // Readable: released.
    let (text, changes) = plan(&work);
    assert!(changes, "{text}");
    work.apply();
    for (sub, name, region) in machines() {
        if sub == SUB_C {
            assert_bare(&emulator, sub, name, "moved out");
        } else {
            assert_holds(&emulator, sub, name, region, "moved out");
        }
    }
    assert_eq!(buckets_of(&work, SUB_C), BTreeMap::new(), "released");
    let (text, changes) = plan(&work);
    assert!(!changes, "{text}");
    assert_all_bare_after_destroy(&emulator, &work, &[]);
}

#[test]
fn an_estate_of_one_disabled_subscription_keeps_its_buckets_and_is_not_written() {
    let emulator = Emulator::start(&scenario());
    let work = Workdir::new(&estate(
        &emulator,
        &format!("scope = \"/subscriptions/{SUB_C}\""),
    ));
    work.init();
    work.apply();
    let recorded = buckets_of(&work, SUB_C);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    add_machine(&emulator, SUB_C, "vm-c-new");
    emulator.load_merge(
        &json!({"subscriptions": [{"id": SUB_C, "regions": REGIONS, "state": "Disabled"}]}),
    );

    let (text, changes) = plan(&work);
    assert_warns_about(&text, SUB_C, "Disabled");
    assert!(
        !changes,
        "nothing planned in a disabled subscription: {text}"
    );
    emulator.clear_requests();
    work.apply();
    assert_eq!(writes_to(&emulator, SUB_C), Vec::<Json>::new());
    assert_eq!(buckets_of(&work, SUB_C), recorded, "kept as recorded");
    assert_bare(&emulator, SUB_C, "vm-c-new", "disabled");

    // Enabled again: the new machine is attached.
    emulator.load_merge(
        &json!({"subscriptions": [{"id": SUB_C, "regions": REGIONS, "state": "Enabled"}]}),
    );
    work.apply();
    assert_holds(&emulator, SUB_C, "vm-c-new", "eastus", "enabled again");
    work.destroy();
    assert_bare(&emulator, SUB_C, "vm-c-new", "after destroy");
    assert_bare(&emulator, SUB_C, "vm-c-east", "after destroy");
}
