//! `mig_builtin_identity` in a subscription the principal can no longer read at all (issue 21,
//! "Estates survive unreadable subscriptions"), with real Terraform against the emulator.
//!
//! The principal Terraform runs as ("the operator") is Management Group Reader on mg-platform
//! and Owner on each subscription; its Owner role on SUB_C is then removed, as when access is
//! narrowed, so every read and write of SUB_C answers 403 AuthorizationFailed (the identity,
//! its resource group, its lock, the listings). A refresh keeps the identity as recorded with
//! a warning naming the subscription, the cause and the fix; a plan of an unchanged
//! configuration has nothing to do for it; the rest of the configuration plans and applies;
//! an apply or destroy that must write there fails naming the subscription and keeps the
//! state; a `removed` block forgets it and leaves it in Azure. Every outcome is read back from
//! the emulator as its Owner client.

use std::collections::BTreeMap;

use acceptance_tests::scenario::estate::{
    add_machine, assert_bare, assert_holds, builtin_id, example, writes_to, SUB_A, SUB_B, SUB_C,
};
use acceptance_tests::{configuration, terraform_has, Emulator, Workdir};
use serde_json::{json, Value as Json};

const OPERATOR: &str = "0be2a700-0000-4000-8000-000000000001";
const OPERATOR_APP: &str = "0be2a700-0000-4000-8000-0000000000a1";
const OPERATOR_SECRET: &str = "operator-secret";
const ROLE_API: &str = "2022-04-01";
const IDENTITY_API: &str = "2023-01-31";
const LOCK_API: &str = "2020-05-01";
const OWNER_ROLE: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";

/// (subscription, name, region) of the machines the scenario starts with.
fn machines() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (SUB_A, "vm-a-east", "eastus"),
        (SUB_B, "vm-b-east", "eastus"),
        (SUB_C, "vm-c-east", "eastus"),
        (SUB_C, "vm-c-west", "westeurope"),
    ]
}

/// The operator's Owner role assignment on `sub`.
fn owner_assignment(sub: &str) -> String {
    format!(
        "/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/0be2a700-0000-4000-8000-{}",
        &sub[sub.len() - 12..]
    )
}

/// root ─ mg-platform (SUB_A) ─ mg-corp (SUB_B, SUB_C), no identity made yet; the operator is
/// Management Group Reader on mg-platform and Owner on each subscription.
fn scenario() -> Json {
    let mut scenario = acceptance_tests::scenario::estate::scenario(&machines(), false);
    for subscription in scenario["subscriptions"].as_array_mut().unwrap() {
        let sub = subscription["id"].as_str().unwrap().to_string();
        subscription["role_assignments"] = json!([{
            "id": owner_assignment(&sub), "scope": format!("/subscriptions/{sub}"),
            "role": "Owner", "principal_id": OPERATOR
        }]);
    }
    scenario["management_groups"][0]["role_assignments"] =
        json!([{"role": "Management Group Reader", "principal_id": OPERATOR}]);
    scenario["principals"] = json!([{
        "id": OPERATOR, "app_id": OPERATOR_APP, "secret": OPERATOR_SECRET, "display_name": "operator"
    }]);
    scenario
}

/// The operator loses its role on `sub` (removed by an Owner above it): every read and write
/// of `sub` answers 403 from now on.
fn narrow(emulator: &Emulator, sub: &str) {
    let (status, body) = emulator.arm_send(
        reqwest::Method::DELETE,
        &owner_assignment(sub),
        ROLE_API,
        None,
    );
    assert_eq!(status, 200, "{body}");
}

/// The operator's role on `sub` is given back.
fn restore(emulator: &Emulator, sub: &str) {
    let (status, body) = emulator.arm_send(
        reqwest::Method::PUT,
        &owner_assignment(sub),
        ROLE_API,
        Some(&json!({"properties": {
            "roleDefinitionId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{OWNER_ROLE}"),
            "principalId": OPERATOR, "principalType": "ServicePrincipal"
        }})),
    );
    assert!(status == 200 || status == 201, "{status}: {body}");
}

fn lock_of(identity: &str, region: &str) -> String {
    format!("{identity}/providers/Microsoft.Authorization/locks/CanNotDeleteLock-Built-In-Identity-{region}")
}

/// The identity of `sub` in `region` and its lock both exist in Azure (read as the Owner).
fn assert_identity_and_lock(emulator: &Emulator, sub: &str, region: &str, step: &str) {
    let identity = builtin_id(sub, region);
    assert!(
        emulator.arm_get(&identity, IDENTITY_API).is_some(),
        "{step}: {identity} exists"
    );
    assert!(
        emulator
            .arm_get(&lock_of(&identity, region), LOCK_API)
            .is_some(),
        "{step}: the lock of {identity} exists"
    );
}

/// Warnings (or errors) of a run whose text names every one of `words`.
fn assert_says(text: &str, severity: &str, words: &[&str]) {
    let flat = text.replace('\n', " ");
    let blocks: Vec<&str> = flat.split(&format!("{severity}:")).skip(1).collect();
    assert!(
        blocks.iter().any(|b| words.iter().all(|w| b.contains(w))),
        "a {severity} names {words:?}: {text}"
    );
}

fn operator_provider(emulator: &Emulator) -> String {
    emulator
        .provider_block()
        .replace(&emulator.ready.client_id, OPERATOR_APP)
        .replace(&emulator.ready.client_secret, OPERATOR_SECRET)
        .replace(emulator.subscription_id(), SUB_A)
}

/// `terraform plan -detailed-exitcode`: (output, has changes); panics when it fails.
fn plan(work: &Workdir) -> (String, bool) {
    let output = work.run(&["plan", "-input=false", "-no-color", "-detailed-exitcode"]);
    let text = output.all();
    assert!(!text.contains("Error:"), "the plan succeeds: {text}");
    (text.clone(), text.contains("Plan:"))
}

/// The SUB_C entries of `mig_builtin_identity.estate` in state.
fn identities_of(work: &Workdir, sub: &str) -> BTreeMap<String, Json> {
    work.state_resources()
        .into_iter()
        .filter(|(address, _)| {
            address.starts_with("mig_builtin_identity.") && address.contains(sub)
        })
        .collect()
}

#[test]
fn the_estate_example_plans_and_applies_with_one_subscription_wholly_unreadable() {
    let emulator = Emulator::start(&scenario());
    let mut work = example(&emulator);
    work.env("TF_VAR_management_group_id", "mg-platform");
    work.env("ARM_CLIENT_ID", OPERATOR_APP);
    work.env("ARM_CLIENT_SECRET", OPERATOR_SECRET);
    work.env("ARM_SUBSCRIPTION_ID", SUB_A);
    work.init();
    work.apply();
    for (sub, name, region) in machines() {
        assert_holds(&emulator, sub, name, region, "first apply");
    }
    let recorded = identities_of(&work, SUB_C);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    add_machine(&emulator, SUB_A, "vm-a-new");
    narrow(&emulator, SUB_C);

    // Its regions are unknown now: the plan stops at the example's precondition, which names
    // the subscription and the variable that keeps it; reading the identities does not fail.
    let stopped = work.run(&["plan", "-input=false", "-no-color"]);
    assert!(!stopped.success, "{}", stopped.all());
    let text = stopped.all().replace('\n', " ");
    assert!(
        text.contains(SUB_C) && text.contains("unreadable_locations"),
        "the error names the subscription and the fix: {text}"
    );
    assert!(!text.contains("Cannot read the identity"), "{text}");

    work.env(
        "TF_VAR_unreadable_locations",
        &format!(r#"{{ "{SUB_C}" = ["eastus", "westeurope"] }}"#),
    );
    let plan = work.plan_json();
    for change in plan["resource_changes"].as_array().into_iter().flatten() {
        let address = change["address"].as_str().unwrap_or_default();
        let actions = &change["change"]["actions"];
        assert!(
            !actions.to_string().contains("delete"),
            "nothing is destroyed: {address} {actions}"
        );
        if address.starts_with("mig_builtin_identity.") && address.contains(SUB_C) {
            assert_eq!(actions, &json!(["no-op"]), "{address} is kept as it is");
        }
    }
    emulator.clear_requests();
    let applied = work.apply();
    assert_says(
        &applied.all(),
        "Warning",
        &[SUB_C, "AuthorizationFailed", "Reader", "removed"],
    );
    assert_eq!(writes_to(&emulator, SUB_C), Vec::<Json>::new());
    assert_holds(&emulator, SUB_A, "vm-a-new", "eastus", "during the 403");
    for (sub, name, region) in machines() {
        assert_holds(&emulator, sub, name, region, "during the 403");
    }
    assert_eq!(
        identities_of(&work, SUB_C),
        recorded,
        "the unreadable subscription's identities are as recorded"
    );
    for region in ["eastus", "westeurope"] {
        assert_identity_and_lock(&emulator, SUB_C, region, "during the 403");
    }

    // Readable again: the plan reads it and has nothing to do; destroy takes everything back.
    restore(&emulator, SUB_C);
    let (text, changes) = self::plan(&work);
    assert!(!changes, "the next plan is clean: {text}");
    assert!(!text.contains("Warning:"), "{text}");
    work.destroy();
    for (sub, name, _) in machines() {
        assert_bare(&emulator, sub, name, "after destroy");
    }
    for region in ["eastus", "westeurope"] {
        assert!(emulator
            .arm_get(&builtin_id(SUB_C, region), IDENTITY_API)
            .is_none());
    }
}

const TWO: &str = r#"resource "mig_builtin_identity" "a" {
  subscription_id = "a0000000-0000-4000-8000-00000000000a"
  location        = "eastus"
}

resource "mig_builtin_identity" "c" {
  subscription_id = "c0000000-0000-4000-8000-00000000000c"
  location        = "eastus"
  TAGS
}
"#;

fn two(emulator: &Emulator, tags: &str) -> String {
    configuration(&operator_provider(emulator), &TWO.replace("TAGS", tags))
}

#[test]
fn writes_to_an_unreadable_subscription_fail_naming_it_and_keep_the_state() {
    let emulator = Emulator::start(&scenario());
    let work = Workdir::new(&two(&emulator, ""));
    work.init();
    work.apply();
    let recorded = work.state_resource("mig_builtin_identity.c");
    narrow(&emulator, SUB_C);

    // Refresh keeps it, with a warning naming the subscription, the resource, the cause and
    // the fix; nothing to do.
    let (text, changes) = plan(&work);
    assert!(!changes, "no change for an unreadable identity: {text}");
    assert_says(
        &text,
        "Warning",
        &[
            SUB_C,
            "Built-In-Identity-eastus",
            "AuthorizationFailed",
            "Reader",
            "removed",
        ],
    );
    work.apply();
    assert_eq!(work.state_resource("mig_builtin_identity.c"), recorded);

    // A change that must write there fails, naming the subscription; the rest applies and
    // the state keeps what exists.
    work.write("main.tf", &two(&emulator, r#"tags = { team = "x" }"#));
    emulator.clear_requests();
    let failed = work.try_apply();
    assert!(!failed.success, "{}", failed.all());
    assert_says(
        &failed.all(),
        "Error",
        &[SUB_C, "AuthorizationFailed", "removed"],
    );
    assert_eq!(work.state_resource("mig_builtin_identity.c"), recorded);
    let identity = emulator
        .arm_get(&builtin_id(SUB_C, "eastus"), IDENTITY_API)
        .unwrap();
    assert_eq!(identity["tags"].get("team"), None, "{identity}");

    // Destroy fails for it, naming the subscription, and never forgets what it could not
    // confirm gone; the identity in SUB_A is destroyed.
    work.write("main.tf", &two(&emulator, ""));
    let destroyed = work.run(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
    assert!(!destroyed.success, "{}", destroyed.all());
    assert_says(
        &destroyed.all(),
        "Error",
        &[SUB_C, "AuthorizationFailed", "removed"],
    );
    let left = work.state_resources();
    assert!(left.contains_key("mig_builtin_identity.c"), "{left:?}");
    assert!(!left.contains_key("mig_builtin_identity.a"), "{left:?}");
    assert_identity_and_lock(&emulator, SUB_C, "eastus", "after the refused destroy");
    assert!(emulator
        .arm_get(&builtin_id(SUB_A, "eastus"), IDENTITY_API)
        .is_none());

    // The fix the messages name: a `removed` block forgets it and leaves it in Azure.
    if !terraform_has(7, "removed blocks") {
        return;
    }
    work.write(
        "main.tf",
        &configuration(
            &operator_provider(&emulator),
            "removed {\n  from = mig_builtin_identity.c\n  lifecycle {\n    destroy = false\n  }\n}\n",
        ),
    );
    let applied = work.apply();
    assert!(applied.success, "{}", applied.all());
    assert!(work.state_resources().is_empty());
    assert_identity_and_lock(&emulator, SUB_C, "eastus", "after removed");
}

#[test]
fn the_estate_example_keeps_a_disabled_subscriptions_identities() {
    // Disabled: reads answer, writes are refused (409 ReadOnlyDisabledSubscription). Its
    // identities are kept, not destroyed, and nothing is written to it while the rest of the
    // estate applies.
    let emulator = Emulator::start(&scenario());
    let mut work = example(&emulator);
    work.env("TF_VAR_management_group_id", "mg-platform");
    work.init();
    work.apply();
    let recorded = identities_of(&work, SUB_C);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    add_machine(&emulator, SUB_A, "vm-a-new");
    emulator.load_merge(&json!({"subscriptions": [{
        "id": SUB_C, "regions": acceptance_tests::scenario::estate::REGIONS, "state": "Disabled"
    }]}));

    let plan = work.plan_json();
    assert_destroys_nothing(&plan);
    emulator.clear_requests();
    let applied = work.apply();
    assert!(applied.success, "{}", applied.all());
    assert_eq!(writes_to(&emulator, SUB_C), Vec::<Json>::new());
    assert_holds(&emulator, SUB_A, "vm-a-new", "eastus", "while disabled");
    for (sub, name, region) in machines() {
        assert_holds(&emulator, sub, name, region, "while disabled");
    }
    assert_eq!(identities_of(&work, SUB_C), recorded);
    for region in ["eastus", "westeurope"] {
        assert_identity_and_lock(&emulator, SUB_C, region, "while disabled");
    }
    let (text, changes) = self::plan(&work);
    assert!(!changes, "nothing to do while it is disabled: {text}");

    emulator.load_merge(&json!({"subscriptions": [{
        "id": SUB_C, "regions": acceptance_tests::scenario::estate::REGIONS, "state": "Enabled"
    }]}));
    let (text, changes) = self::plan(&work);
    assert!(!changes, "enabled again: nothing to do: {text}");
    work.destroy();
    for (sub, name, _) in machines() {
        assert_bare(&emulator, sub, name, "after destroy");
    }
}

#[test]
fn the_estate_example_without_a_group_keeps_a_subscription_it_no_longer_sees() {
    // Without `management_group_id` the subscriptions are what `GET /subscriptions` shows the
    // operator: with its role on SUB_C removed, SUB_C is not listed at all, so only
    // `unreadable_locations` can say its identities are still there (given here in upper
    // case). The operator has no role on the management group here.
    let mut scenario = scenario();
    scenario["management_groups"][0]["role_assignments"] = json!([]);
    let emulator = Emulator::start(&scenario);
    let mut work = example(&emulator);
    work.env("ARM_CLIENT_ID", OPERATOR_APP);
    work.env("ARM_CLIENT_SECRET", OPERATOR_SECRET);
    work.env("ARM_SUBSCRIPTION_ID", SUB_A);
    work.init();
    work.apply();
    for (sub, name, region) in machines() {
        assert_holds(&emulator, sub, name, region, "first apply");
    }
    let recorded = identities_of(&work, SUB_C);
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    narrow(&emulator, SUB_C);
    add_machine(&emulator, SUB_A, "vm-a-new");

    work.env(
        "TF_VAR_unreadable_locations",
        &format!(
            r#"{{ "{}" = ["eastus", "westeurope"] }}"#,
            SUB_C.to_uppercase()
        ),
    );
    let plan = work.plan_json();
    assert_destroys_nothing(&plan);
    emulator.clear_requests();
    let applied = work.apply();
    assert_says(
        &applied.all(),
        "Warning",
        &[SUB_C, "AuthorizationFailed", "removed"],
    );
    assert_eq!(writes_to(&emulator, SUB_C), Vec::<Json>::new());
    assert_holds(&emulator, SUB_A, "vm-a-new", "eastus", "while unseen");
    for (sub, name, region) in machines() {
        assert_holds(&emulator, sub, name, region, "while unseen");
    }
    assert_eq!(identities_of(&work, SUB_C), recorded);

    // Seen again: the variable is ignored for it, and nothing is left to do.
    restore(&emulator, SUB_C);
    let (text, changes) = self::plan(&work);
    assert!(!changes, "the next plan is clean: {text}");
    work.destroy();
    for (sub, name, _) in machines() {
        assert_bare(&emulator, sub, name, "after destroy");
    }
}

/// The saved plan `plan` (as `terraform show -json` prints it) deletes no object.
fn assert_destroys_nothing(plan: &Json) {
    for change in plan["resource_changes"].as_array().into_iter().flatten() {
        let address = change["address"].as_str().unwrap_or_default();
        let actions = &change["change"]["actions"];
        assert!(
            !actions.to_string().contains("delete"),
            "nothing is destroyed: {address} {actions}"
        );
    }
}
