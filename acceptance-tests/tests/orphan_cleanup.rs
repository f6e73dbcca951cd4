//! `mig_orphan_cleanup` (resource and action) and `mig_orphaned_role_assignments` with real
//! Terraform against the emulator: exactly the orphans the rules allow are removed, and
//! nothing is removed when Microsoft Graph fails or too many candidates show up.

use std::collections::BTreeSet;

use acceptance_tests::{Emulator, Workdir};
use serde_json::{json, Value as Json};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const DEAD_SP: &str = "9f1e0000-0000-4000-8000-0000000000d1";
const DEAD_SP_ABOVE: &str = "9f1e0000-0000-4000-8000-0000000000d2";
const DEAD_USER: &str = "9f1e0000-0000-4000-8000-0000000000d3";
/// Deleted, but its assignment was made just now: younger than the default `min_age` (24h).
const DEAD_SP_YOUNG: &str = "9f1e0000-0000-4000-8000-0000000000d4";
/// Created seconds ago: its principal has not replicated to Graph yet, so Graph does not
/// know it, exactly as it does not know a deleted one.
const REPLICATING_SP: &str = "9f1e0000-0000-4000-8000-0000000000e5";
/// Long before any test runs, so older than the default `min_age`.
const LONG_AGO: &str = "2025-01-01T00:00:00Z";

fn sub_scope() -> String {
    format!("/subscriptions/{SUB}")
}

fn rg_scope() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-app")
}

fn scenario() -> Json {
    json!({
        "subscriptions": [{
            "id": SUB,
            "resource_groups": [{"name": "rg-app", "location": "eastus"}],
            "user_assigned_identities": [{"name": "id-live", "resource_group": "rg-app", "location": "eastus"}],
            "role_assignments": [
                {"scope": rg_scope(), "role": "Reader", "principal_id": DEAD_SP, "principal_type": "ServicePrincipal", "created_on": LONG_AGO},
                {"scope": sub_scope(), "role": "Contributor", "principal_id": DEAD_SP_ABOVE, "principal_type": "ServicePrincipal", "created_on": LONG_AGO},
                {"scope": rg_scope(), "role": "Reader", "principal_id": DEAD_USER, "principal_type": "User", "created_on": LONG_AGO},
                {"scope": rg_scope(), "role": "Reader", "principal_id": DEAD_SP_YOUNG, "principal_type": "ServicePrincipal"},
                {"scope": rg_scope(), "role": "Reader", "principal_id": REPLICATING_SP, "principal_type": "ServicePrincipal"}
            ]
        }],
        "principals": [{"id": REPLICATING_SP, "display_name": "just-created", "visible_after_seconds": 3600}],
        "deleted_principals": [DEAD_SP, DEAD_SP_ABOVE, DEAD_USER, DEAD_SP_YOUNG]
    })
}

/// Every role assignment visible at the subscription (at, above and below it).
fn role_assignments(emulator: &Emulator) -> Vec<Json> {
    let (status, body) = emulator.arm_send(
        reqwest::Method::GET,
        &format!(
            "{}/providers/Microsoft.Authorization/roleAssignments",
            sub_scope()
        ),
        "2022-04-01",
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["value"].as_array().cloned().unwrap_or_default()
}

/// Principal IDs holding a role assignment visible at the subscription (lower-case).
fn assigned_principals(emulator: &Emulator) -> BTreeSet<String> {
    role_assignments(emulator)
        .iter()
        .filter_map(|a| {
            a["properties"]["principalId"]
                .as_str()
                .map(str::to_ascii_lowercase)
        })
        .collect()
}

/// The live identity gets a role too, so there is something that must never be touched.
fn grant_live_identity(emulator: &Emulator) -> String {
    let identity = emulator
        .arm_get(
            &format!(
                "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-live",
                rg_scope()
            ),
            "2023-01-31",
        )
        .unwrap();
    let principal = identity["properties"]["principalId"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = emulator.arm_send(
        reqwest::Method::PUT,
        &format!("{}/providers/Microsoft.Authorization/roleAssignments/6f0c7b1e-1111-4c1a-9c1a-0000000000aa", rg_scope()),
        "2022-04-01",
        Some(&json!({"properties": {
            "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"),
            "principalId": principal,
            "principalType": "ServicePrincipal"
        }})),
    );
    assert!(status == 201 || status == 200, "{status} {body}");
    principal.to_ascii_lowercase()
}

fn config(emulator: &Emulator, arguments: &str) -> String {
    emulator.configuration(&format!(
        r#"resource "mig_orphan_cleanup" "rg" {{
  scope   = "{scope}"
  {arguments}
}}
"#,
        scope = rg_scope(),
    ))
}

fn orphan_principals(resource: &Json) -> Vec<(String, bool)> {
    resource["orphaned"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|o| {
                    (
                        o["principal_id"].as_str().unwrap().to_ascii_lowercase(),
                        o["inherited"].as_bool().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn plan_lists_exactly_the_orphans_and_apply_removes_exactly_those() {
    let emulator = Emulator::start(&scenario());
    let live = grant_live_identity(&emulator);
    let work = Workdir::new(&config(&emulator, ""));
    work.init();
    let plan = work.plan_json();
    let change = &plan["resource_changes"][0]["change"]["after"];
    let removed: Vec<&str> = change["removed_ids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .collect();
    assert_eq!(
        removed.len(),
        1,
        "only the service principal's assignment at the group: {change}"
    );
    assert_eq!(
        orphan_principals(change),
        vec![(DEAD_SP_ABOVE.to_string(), true)],
        "the inherited one stays listed, flagged"
    );

    work.run_ok(&["apply", "-input=false", "-no-color", "tfplan"]);
    let remaining = assigned_principals(&emulator);
    assert!(
        !remaining.contains(DEAD_SP),
        "the orphan at the scope is gone"
    );
    assert!(
        remaining.contains(DEAD_SP_ABOVE),
        "an assignment from above the scope is never removed"
    );
    assert!(
        remaining.contains(DEAD_USER),
        "users are not in principal_types"
    );
    assert!(
        remaining.contains(&live),
        "a live principal's assignment is untouched"
    );
    assert!(!work.plan_has_changes(), "nothing left to do");

    // Destroy forgets the resource and deletes nothing.
    work.destroy();
    assert_eq!(assigned_principals(&emulator), remaining);
}

#[test]
fn young_assignments_are_never_candidates() {
    let emulator = Emulator::start(&scenario());
    let work = Workdir::new(&config(&emulator, ""));
    work.init();
    let plan = work.plan_json();
    let after = &plan["resource_changes"][0]["change"]["after"];
    let removed: BTreeSet<String> = after["removed_ids"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .map(str::to_ascii_lowercase)
        .collect();
    assert_eq!(removed, assignment_ids_of(&emulator, DEAD_SP), "{after}");
    assert!(
        removed.is_disjoint(&assignment_ids_of(&emulator, DEAD_SP_YOUNG)),
        "an assignment younger than min_age may belong to a principal still replicating"
    );
    assert!(
        removed.is_disjoint(&assignment_ids_of(&emulator, REPLICATING_SP)),
        "and here one does"
    );
    work.run_ok(&["apply", "-input=false", "-no-color", "tfplan"]);
    let remaining = assigned_principals(&emulator);
    assert!(remaining.contains(DEAD_SP_YOUNG) && !remaining.contains(DEAD_SP));
    assert!(remaining.contains(REPLICATING_SP));

    // Without min_age Graph's word alone decides: the deleted principal's assignment and the
    // replicating one's both become candidates. That is what min_age is for.
    let work = Workdir::new(&config(&emulator, r#"min_age = "0s""#));
    work.init();
    let plan = work.plan_json();
    let after = &plan["resource_changes"][0]["change"]["after"];
    assert_eq!(
        after["removed_ids"].as_array().map(Vec::len),
        Some(2),
        "{after}"
    );
}

/// IDs (lower-case) of the role assignments held by `principal`, anywhere in the subscription.
fn assignment_ids_of(emulator: &Emulator, principal: &str) -> BTreeSet<String> {
    role_assignments(emulator)
        .iter()
        .filter(|a| a["properties"]["principalId"].as_str() == Some(principal))
        .filter_map(|a| a["id"].as_str().map(str::to_ascii_lowercase))
        .collect()
}

#[test]
fn graph_failing_at_plan_or_at_apply_deletes_nothing() {
    let emulator = Emulator::start(&scenario());
    let before = assigned_principals(&emulator);
    let work = Workdir::new(&config(&emulator, ""));
    work.init();

    // The commonest real failure: the principal may read ARM but not the directory.
    let graph_denied = json!({
        "kind": "status", "status": 403, "path_contains": "/v1.0/",
        "code": "Authorization_RequestDenied",
        "message": "Insufficient privileges to complete the operation."
    });
    emulator.inject_fault(&graph_denied);
    let plan = work.run(&["plan", "-input=false", "-no-color"]);
    assert!(!plan.success, "a plan that cannot ask Graph fails");
    assert!(plan.all().contains("Graph"), "and says why: {}", plan.all());
    emulator.clear_faults();

    work.run_ok(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
    // Between plan and apply Graph goes away: the candidates are checked again, and fail.
    emulator.inject_fault(&graph_denied);
    let apply = work.run(&["apply", "-input=false", "-no-color", "tfplan"]);
    assert!(!apply.success, "{}", apply.all());
    assert!(
        apply.all().contains("Nothing was deleted") || apply.all().contains("Graph"),
        "{}",
        apply.all()
    );
    assert_eq!(assigned_principals(&emulator), before, "nothing deleted");
}

#[test]
fn more_candidates_than_max_deletions_deletes_nothing() {
    let emulator = Emulator::start(&scenario());
    let before = assigned_principals(&emulator);
    let work = Workdir::new(&config(&emulator, "max_deletions = 0"));
    work.init();
    let apply = work.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert!(!apply.success);
    assert!(apply.all().contains("max_deletions"), "{}", apply.all());
    assert_eq!(assigned_principals(&emulator), before);
}

#[test]
fn report_mode_and_the_data_source_change_nothing() {
    let emulator = Emulator::start(&scenario());
    let before = assigned_principals(&emulator);
    let mut text = config(&emulator, r#"mode = "report""#);
    text.push_str(&format!(
        r#"
data "mig_orphaned_role_assignments" "sub" {{
  scope           = "/subscriptions/{SUB}"
  principal_types = ["ServicePrincipal", "User"]
}}

output "orphans" {{
  value = sort(data.mig_orphaned_role_assignments.sub.orphaned[*].principal_id)
}}
"#
    ));
    let work = Workdir::new(&text);
    work.init();
    work.apply();
    assert_eq!(assigned_principals(&emulator), before);
    let resource = work
        .state_resources()
        .remove("mig_orphan_cleanup.rg")
        .unwrap();
    let mut found: Vec<String> = orphan_principals(&resource)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    found.sort();
    assert_eq!(found, vec![DEAD_SP.to_string(), DEAD_SP_ABOVE.to_string()]);
    let mut all = vec![
        DEAD_SP.to_string(),
        DEAD_SP_ABOVE.to_string(),
        DEAD_USER.to_string(),
    ];
    all.sort();
    assert_eq!(work.outputs()["orphans"], json!(all));
}

#[test]
fn the_action_removes_the_same_set() {
    if !acceptance_tests::terraform_has(14, "actions") {
        return;
    }
    let emulator = Emulator::start(&scenario());
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"action "mig_orphan_cleanup" "once" {{
  config {{
    scope = "{scope}"
  }}
}}
"#,
        scope = rg_scope(),
    )));
    work.init();
    let output = work.run_ok(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        "-invoke=action.mig_orphan_cleanup.once",
    ]);
    assert!(
        output.all().contains("removed 1 orphaned role assignment"),
        "{}",
        output.all()
    );
    let remaining = assigned_principals(&emulator);
    assert!(!remaining.contains(DEAD_SP));
    assert!(remaining.contains(DEAD_SP_ABOVE) && remaining.contains(DEAD_USER));
}

// ---------------------------------------------------------------------------------------------
// Optional arguments with a default: removing one from the configuration plans its default
// again. Terraform's proposed new state keeps the prior value of an optional+computed
// argument whose configuration is null, so a provider defaulting from it would keep the old
// value forever; the defaults are declared on the schema and applied from the configuration.
// ---------------------------------------------------------------------------------------------

/// With `base` and `setting` (like `mode = "report"`): apply and check the state holds
/// `set`, run `after_set`; then without `setting`: the plan updates `name` in place back to
/// `default`, the apply records it, and the next plan is clean. Returns the final state.
fn removing_goes_back_to_the_default(
    emulator: &Emulator,
    base: &str,
    setting: &str,
    name: &str,
    set: Json,
    default: Json,
    after_set: impl FnOnce(&Json),
) -> Json {
    let work = Workdir::new(&config(emulator, &format!("{base}\n  {setting}")));
    work.init();
    work.apply();
    let state = work
        .state_resources()
        .remove("mig_orphan_cleanup.rg")
        .unwrap();
    assert_eq!(state[name], set, "{state}");
    after_set(&state);
    assert!(!work.plan_has_changes(), "set and applied: nothing to do");

    work.write("main.tf", &config(emulator, base));
    let plan = work.plan_json();
    let change = &plan["resource_changes"][0]["change"];
    assert_eq!(change["actions"], json!(["update"]), "in place: {change}");
    assert_eq!(change["before"][name], set);
    assert_eq!(
        change["after"][name], default,
        "removed from the configuration, {name} goes back to its default"
    );
    work.run_ok(&["apply", "-input=false", "-no-color", "tfplan"]);
    let state = work
        .state_resources()
        .remove("mig_orphan_cleanup.rg")
        .unwrap();
    assert_eq!(state[name], default, "{state}");
    assert!(
        !work.plan_has_changes(),
        "the default applied: nothing to do"
    );
    state
}

#[test]
fn removing_mode_goes_back_to_delete() {
    let emulator = Emulator::start(&scenario());
    let before = assigned_principals(&emulator);
    removing_goes_back_to_the_default(
        &emulator,
        "",
        r#"mode = "report""#,
        "mode",
        json!("report"),
        json!("delete"),
        |state| {
            assert_eq!(
                assigned_principals(&emulator),
                before,
                "report mode removes nothing"
            );
            assert_eq!(state["removed_ids"], json!([]));
        },
    );
    // Back in `delete` mode, the orphan at the scope was removed, and only it.
    let remaining = assigned_principals(&emulator);
    assert!(!remaining.contains(DEAD_SP), "{remaining:?}");
    let mut expected = before.clone();
    expected.remove(DEAD_SP);
    assert_eq!(remaining, expected);
}

#[test]
fn removing_max_deletions_goes_back_to_50() {
    let emulator = Emulator::start(&scenario());
    let state = removing_goes_back_to_the_default(
        &emulator,
        "",
        "max_deletions = 5",
        "max_deletions",
        json!(5),
        json!(50),
        |_| {
            assert!(
                !assigned_principals(&emulator).contains(DEAD_SP),
                "1 orphan, at most 5: removed"
            );
        },
    );
    assert_eq!(state["mode"], json!("delete"));
    assert_eq!(state["removed_ids"].as_array().map(Vec::len), Some(1));
}

#[test]
fn removing_min_age_goes_back_to_24h() {
    let emulator = Emulator::start(&scenario());
    let before = assigned_principals(&emulator);
    let state = removing_goes_back_to_the_default(
        &emulator,
        r#"mode = "report""#,
        r#"min_age = "0s""#,
        "min_age",
        json!("0s"),
        json!("24h"),
        |state| {
            let found: BTreeSet<String> = orphan_principals(state)
                .into_iter()
                .map(|(p, _)| p)
                .collect();
            assert!(
                found.contains(DEAD_SP_YOUNG) && found.contains(REPLICATING_SP),
                "without min_age the young ones are listed: {found:?}"
            );
        },
    );
    let found: BTreeSet<String> = orphan_principals(&state)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        found,
        BTreeSet::from([DEAD_SP.to_string(), DEAD_SP_ABOVE.to_string()]),
        "with the default min_age they are not"
    );
    assert_eq!(assigned_principals(&emulator), before, "report mode");
}

#[test]
fn removing_principal_types_goes_back_to_service_principals() {
    let emulator = Emulator::start(&scenario());
    let before = assigned_principals(&emulator);
    let state = removing_goes_back_to_the_default(
        &emulator,
        r#"mode = "report""#,
        r#"principal_types = ["ServicePrincipal", "User"]"#,
        "principal_types",
        json!(["ServicePrincipal", "User"]),
        json!(["ServicePrincipal"]),
        |state| {
            assert!(
                orphan_principals(state).iter().any(|(p, _)| p == DEAD_USER),
                "users listed while asked for"
            );
        },
    );
    assert!(
        !orphan_principals(&state)
            .iter()
            .any(|(p, _)| p == DEAD_USER),
        "and not once the default is back: {state}"
    );
    assert_eq!(assigned_principals(&emulator), before, "report mode");
}
