//! `mig_subscriptions` when one subscription's machines cannot be listed (403), with real
//! Terraform against the emulator: the data source reads what it can, reports the
//! subscription it could not read (`readable`, `read_error`, `unreadable_subscription_ids`)
//! with a warning naming it and the cause, and does not fail. `examples/estate` then plans and
//! applies with one unreadable subscription: its identities and buckets are kept (no write to
//! it), the rest of the estate is applied. Every machine is read back from the emulator.

use std::collections::BTreeSet;

use acceptance_tests::scenario::estate::{
    add_machine, assert_bare, assert_holds, assert_warns_about, example, writes_to, SUB_A, SUB_B,
    SUB_C,
};
use acceptance_tests::{Emulator, Workdir};
use serde_json::{json, Value as Json};

/// (subscription, name, region) of the machines the scenario starts with.
fn machines() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (SUB_A, "vm-a-east", "eastus"),
        (SUB_B, "vm-b-east", "eastus"),
        (SUB_C, "vm-c-east", "eastus"),
        (SUB_C, "vm-c-west", "westeurope"),
    ]
}

/// root ─ mg-platform (SUB_A) ─ mg-corp (SUB_B, SUB_C); no identity made yet.
fn scenario() -> Json {
    acceptance_tests::scenario::estate::scenario(&machines(), false)
}

/// Every listing of `sub`'s machines answers 403, as when Reader on the subscription was
/// narrowed to some resource groups: the machines and identities stay readable by ID.
fn deny_listings(emulator: &Emulator, sub: &str) {
    emulator.inject_fault(&json!({
        "kind": "status", "status": 403, "code": "AuthorizationFailed",
        "message": "The client does not have authorization to perform action 'Microsoft.Compute/virtualMachines/read' over scope '/subscriptions/c0000000-0000-4000-8000-00000000000c'.",
        "method": "GET", "path_contains": format!("/subscriptions/{sub}/providers/Microsoft.Compute/")
    }));
}

fn keys(value: &Json) -> BTreeSet<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn the_data_source_reads_what_it_can_and_reports_an_unreadable_subscription() {
    let emulator = Emulator::start(&scenario());
    deny_listings(&emulator, SUB_C);
    let work = Workdir::new(&emulator.configuration(
        r#"
data "mig_subscriptions" "s" {
  management_group_id = "mg-platform"
}

output "unreadable" {
  value = data.mig_subscriptions.s.unreadable_subscription_ids
}

output "subscriptions" {
  value = { for s in data.mig_subscriptions.s.subscriptions : s.subscription_id => s }
}

output "pairs" {
  value = data.mig_subscriptions.s.subscription_locations
}

output "by_subscription" {
  value = data.mig_subscriptions.s.locations_by_subscription
}
"#,
    ));
    work.init();
    let applied = work.apply();
    assert_warns_about(&applied.all(), SUB_C, "AuthorizationFailed");
    let outputs = work.outputs();
    assert_eq!(outputs["unreadable"], json!([SUB_C]));
    let subscriptions = &outputs["subscriptions"];
    assert_eq!(
        keys(subscriptions),
        BTreeSet::from([SUB_A.to_string(), SUB_B.to_string(), SUB_C.to_string()]),
        "an unreadable subscription is still listed"
    );
    for readable in [SUB_A, SUB_B] {
        assert_eq!(
            subscriptions[readable]["readable"],
            json!(true),
            "{readable}"
        );
        assert_eq!(subscriptions[readable]["read_error"], Json::Null);
        assert_eq!(subscriptions[readable]["locations"], json!(["eastus"]));
    }
    let unreadable = &subscriptions[SUB_C];
    assert_eq!(unreadable["readable"], json!(false));
    assert_eq!(
        unreadable["locations"],
        Json::Null,
        "its regions are unknown, not none"
    );
    assert!(
        unreadable["read_error"]
            .as_str()
            .is_some_and(|e| e.contains("AuthorizationFailed") && e.contains("403")),
        "{unreadable}"
    );
    assert_eq!(
        keys(&outputs["pairs"]),
        BTreeSet::from([format!("{SUB_A}/eastus"), format!("{SUB_B}/eastus")])
    );
    assert_eq!(
        keys(&outputs["by_subscription"]),
        BTreeSet::from([SUB_A.to_string(), SUB_B.to_string()])
    );

    // Readable again: the same configuration reads it, and the warning is gone.
    emulator.clear_faults();
    let applied = work.apply();
    assert!(!applied.all().contains("Warning:"), "{}", applied.all());
    let outputs = work.outputs();
    assert_eq!(outputs["unreadable"], json!([]));
    assert_eq!(outputs["subscriptions"][SUB_C]["readable"], json!(true));
    assert_eq!(
        outputs["subscriptions"][SUB_C]["locations"],
        json!(["eastus", "westeurope"])
    );
}

#[test]
fn a_failure_other_than_a_refusal_still_fails_the_read() {
    // Not a refusal to read: a passing failure (a 5xx after retries) fails the same way; a 400
    // is not retried, so the test is quick.
    let emulator = Emulator::start(&scenario());
    emulator.inject_fault(&json!({
        "kind": "status", "status": 400, "code": "InvalidRequest",
        "method": "GET", "path_contains": format!("/subscriptions/{SUB_C}/providers/Microsoft.Compute/")
    }));
    let work = Workdir::new(&emulator.configuration(
        "data \"mig_subscriptions\" \"s\" {\n  management_group_id = \"mg-platform\"\n}\n",
    ));
    work.init();
    let planned = work.run(&["plan", "-input=false", "-no-color"]);
    assert!(!planned.success, "{}", planned.all());
    let text = planned.all().replace('\n', " ");
    assert!(
        text.contains("Cannot list the machines of a subscription") && text.contains(SUB_C),
        "{text}"
    );
}

#[test]
fn the_estate_example_plans_and_applies_with_one_unreadable_subscription() {
    let emulator = Emulator::start(&scenario());
    let mut work = example(&emulator);
    work.env("TF_VAR_management_group_id", "mg-platform");
    work.init();
    work.apply();
    for (sub, name, region) in machines() {
        assert_holds(&emulator, sub, name, region, "first apply");
    }
    add_machine(&emulator, SUB_A, "vm-a-new");
    deny_listings(&emulator, SUB_C);

    // Its regions are unknown now: without them, the plan stops before it would destroy its
    // identities, and says how to keep them.
    let stopped = work.run(&["plan", "-input=false", "-no-color"]);
    assert!(!stopped.success, "{}", stopped.all());
    let text = stopped.all().replace('\n', " ");
    assert!(
        text.contains(SUB_C) && text.contains("unreadable_locations"),
        "the error names the subscription and the fix: {text}"
    );

    work.env(
        "TF_VAR_unreadable_locations",
        &format!(r#"{{ "{SUB_C}" = ["eastus", "westeurope"] }}"#),
    );
    let plan = work.plan_json();
    let changes: Vec<(String, Json)> = plan["resource_changes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["address"].as_str().unwrap().to_string(),
                c["change"]["actions"].clone(),
            )
        })
        .filter(|(_, actions)| actions != &json!(["no-op"]) && actions != &json!(["read"]))
        .collect();
    assert!(
        changes
            .iter()
            .all(|(_, actions)| !actions.to_string().contains("delete")),
        "nothing is destroyed: {changes:?}"
    );
    emulator.clear_requests();
    let applied = work.apply();
    assert_warns_about(&applied.all(), SUB_C, "AuthorizationFailed");
    assert_eq!(writes_to(&emulator, SUB_C), Vec::<Json>::new());
    assert_holds(&emulator, SUB_A, "vm-a-new", "eastus", "during the 403");
    for (sub, name, region) in machines() {
        assert_holds(&emulator, sub, name, region, "during the 403");
    }
    let outputs = work.outputs();
    assert_eq!(
        keys(&outputs["identities"]),
        BTreeSet::from([
            format!("{SUB_A}/eastus"),
            format!("{SUB_B}/eastus"),
            format!("{SUB_C}/eastus"),
            format!("{SUB_C}/westeurope"),
        ])
    );

    // Readable again: the plan reads it and has nothing to do.
    emulator.clear_faults();
    assert!(!work.plan_has_changes(), "the next plan is clean");
    work.destroy();
    for (sub, name, _) in machines() {
        assert_bare(&emulator, sub, name, "after destroy");
    }
}
