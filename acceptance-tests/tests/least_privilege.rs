//! `mig_builtin_identity` under least privilege and races (issue 21): a principal that may
//! not write locks gets one warning per plan and clean applies, never a perpetual change or a
//! failing apply, and the plan after the permission appears places the lock; a lock refused
//! for another reason is held the same way; an identity or group that appears between the
//! provider's read and its create is adopted, so destroy leaves it.

use acceptance_tests::{configuration, Emulator, Workdir};
use serde_json::{json, Value as Json};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const ROLE_API: &str = "2022-04-01";
/// A service principal that is Contributor on the subscription: it may create groups and
/// identities but not write locks (Contributor's notActions hold Microsoft.Authorization/*/Write).
const CONTRIBUTOR_OBJECT: &str = "c0271b00-0000-4000-8000-000000000001";
const CONTRIBUTOR_APP: &str = "c0271b00-0000-4000-8000-0000000000a1";
const CONTRIBUTOR_SECRET: &str = "contributor-secret";
/// User Access Administrator: grants `Microsoft.Authorization/*`.
const USER_ACCESS_ADMINISTRATOR: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
const GROUP: &str =
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/Built-In-Identity-RG";
const IDENTITY_API: &str = "2023-01-31";
const LOCK_API: &str = "2020-05-01";
const GROUP_API: &str = "2022-09-01";
const ADDRESS: &str = "mig_builtin_identity.eastus";
const CONFIG: &str = r#"resource "mig_builtin_identity" "eastus" {
  location = "eastus"
}"#;

fn identity() -> String {
    format!("{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus")
}

fn lock() -> String {
    format!(
        "{}/providers/Microsoft.Authorization/locks/CanNotDeleteLock-Built-In-Identity-eastus",
        identity()
    )
}

fn contributor_emulator() -> Emulator {
    Emulator::start(&json!({
        "subscriptions": [{
            "id": SUB,
            "role_assignments": [
                {"scope": format!("/subscriptions/{SUB}"), "role": "Contributor", "principal_id": CONTRIBUTOR_OBJECT, "principal_type": "ServicePrincipal"}
            ]
        }],
        "principals": [{"id": CONTRIBUTOR_OBJECT, "app_id": CONTRIBUTOR_APP, "secret": CONTRIBUTOR_SECRET, "display_name": "contributor"}]
    }))
}

fn contributor_workdir(emulator: &Emulator) -> Workdir {
    let contributor = emulator
        .provider_block()
        .replace(&emulator.ready.client_id, CONTRIBUTOR_APP)
        .replace(&emulator.ready.client_secret, CONTRIBUTOR_SECRET);
    Workdir::new(&configuration(&contributor, CONFIG))
}

/// Warnings (or errors) of a `-json` command whose detail mentions `text`.
fn diagnostics_naming(diagnostics: &[Json], severity: &str, text: &str) -> usize {
    diagnostics
        .iter()
        .filter(|d| d["severity"] == severity)
        .filter(|d| d["detail"].as_str().is_some_and(|t| t.contains(text)))
        .count()
}

/// `terraform plan -json -detailed-exitcode`: (has changes, diagnostics).
fn plan(work: &Workdir) -> (bool, Vec<Json>) {
    let output = work.run(&[
        "plan",
        "-input=false",
        "-no-color",
        "-json",
        "-detailed-exitcode",
    ]);
    let diagnostics = output.diagnostics();
    let changes = output
        .json_lines()
        .iter()
        .any(|line| line["type"] == "planned_change");
    assert!(
        diagnostics_naming(&diagnostics, "error", "") == 0,
        "plan failed:\n{}",
        output.all()
    );
    (changes, diagnostics)
}

/// Lock writes the emulator served since its log was last cleared.
fn lock_writes(emulator: &Emulator) -> usize {
    emulator
        .requests()
        .iter()
        .filter(|r| r["method"] == "PUT")
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("Microsoft.Authorization/locks"))
        })
        .count()
}

fn grant_user_access_administrator(emulator: &Emulator) {
    let (status, body) = emulator.arm_send(
        reqwest::Method::PUT,
        &format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/7a1e0000-0000-4000-8000-000000000021"),
        ROLE_API,
        Some(&json!({"properties": {
            "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{USER_ACCESS_ADMINISTRATOR}"),
            "principalId": CONTRIBUTOR_OBJECT,
            "principalType": "ServicePrincipal"
        }})),
    );
    assert_eq!(status, 201, "{body}");
}

#[test]
fn a_contributor_applies_cleanly_with_one_warning_per_plan_and_the_lock_comes_with_the_permission()
{
    let emulator = contributor_emulator();
    let work = contributor_workdir(&emulator);
    work.init();

    // Apply 1 creates the identity and warns that the lock is missing.
    let first = work.try_apply();
    assert!(first.success, "{}", first.all());
    assert_eq!(
        diagnostics_naming(
            &first.diagnostics(),
            "warning",
            "Microsoft.Authorization/locks/write"
        ),
        1,
        "{}",
        first.all()
    );
    let principal = emulator
        .arm_get(&identity(), IDENTITY_API)
        .expect("identity")["properties"]["principalId"]
        .clone();
    assert!(emulator.arm_get(&lock(), LOCK_API).is_none());

    // Every later plan: no change, one warning naming the permission.
    emulator.clear_requests();
    for round in 2..=3 {
        let (changes, diagnostics) = plan(&work);
        assert!(!changes, "round {round}: no perpetual change");
        assert_eq!(
            diagnostics_naming(
                &diagnostics,
                "warning",
                "Microsoft.Authorization/locks/write"
            ),
            1,
            "round {round}: one warning per plan: {diagnostics:#?}"
        );
        let apply = work.try_apply();
        assert!(apply.success, "round {round}: {}", apply.all());
        let diagnostics = apply.diagnostics();
        assert_eq!(
            diagnostics_naming(&diagnostics, "error", ""),
            0,
            "{diagnostics:#?}"
        );
        assert!(
            diagnostics_naming(
                &diagnostics,
                "warning",
                "Microsoft.Authorization/locks/write"
            ) >= 1,
            "round {round}: the warning is shown: {diagnostics:#?}"
        );
    }
    assert_eq!(
        lock_writes(&emulator),
        0,
        "no lock write attempted while denied"
    );
    let state = work.state_resource(ADDRESS)["values"].clone();
    assert!(
        state["id"].is_string() && state["lock_id"].is_null(),
        "the state has the identity and says its lock is missing: {state:#}"
    );
    assert_eq!(
        emulator.arm_get(&identity(), IDENTITY_API).unwrap()["properties"]["principalId"],
        principal,
        "the identity is the same throughout"
    );

    // The permission appears: the next plan places the lock, in place.
    grant_user_access_administrator(&emulator);
    let (changes, diagnostics) = plan(&work);
    assert!(changes, "the plan places the lock: {diagnostics:#?}");
    let planned = work.plan_json();
    let change = planned["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == ADDRESS)
        .unwrap()["change"]
        .clone();
    assert_eq!(change["actions"], json!(["update"]), "{change:#}");
    assert_eq!(change["after_unknown"]["lock_id"], true, "{change:#}");
    let apply = work.try_apply();
    assert!(apply.success, "{}", apply.all());
    let placed = emulator
        .arm_get(&lock(), LOCK_API)
        .expect("the lock is placed");
    assert_eq!(placed["properties"]["level"], "CanNotDelete");
    let state = work.state_resource(ADDRESS)["values"].clone();
    assert_eq!(
        state["lock_id"].as_str().unwrap().to_lowercase(),
        lock().to_lowercase()
    );
    let (changes, diagnostics) = plan(&work);
    assert!(!changes, "converged");
    assert_eq!(
        diagnostics_naming(&diagnostics, "warning", "lock"),
        0,
        "{diagnostics:#?}"
    );
}

#[test]
fn a_lock_refused_for_another_reason_is_held_with_a_warning_until_it_is_asked_again() {
    // The principal may write locks, but ARM refuses (a deny assignment, a policy): the
    // permissions API cannot see why, so the refusal itself is recorded.
    let emulator = Emulator::start(&json!({"subscriptions": [{"id": SUB}]}));
    let work = Workdir::new(&emulator.configuration(CONFIG));
    work.init();
    emulator.inject_fault(&json!({
        "kind": "status", "status": 403, "method": "PUT", "path_contains": "Microsoft.Authorization/locks",
        "code": "RequestDisallowedByPolicy", "message": "Resource was disallowed by policy."
    }));
    let first = work.try_apply();
    assert!(first.success, "{}", first.all());
    assert_eq!(
        diagnostics_naming(&first.diagnostics(), "warning", "RequestDisallowedByPolicy"),
        1,
        "{}",
        first.all()
    );
    emulator.clear_requests();
    for round in 2..=3 {
        let (changes, diagnostics) = plan(&work);
        assert!(!changes, "round {round}: no perpetual change");
        assert_eq!(
            diagnostics_naming(&diagnostics, "warning", "RequestDisallowedByPolicy"),
            1,
            "round {round}: {diagnostics:#?}"
        );
        let apply = work.try_apply();
        assert!(apply.success, "round {round}: {}", apply.all());
    }
    assert_eq!(
        lock_writes(&emulator),
        0,
        "no lock write attempted while refused"
    );
    assert!(emulator.arm_get(&lock(), LOCK_API).is_none());

    // The refusal is lifted; `lock = false` then `lock = true` asks again (documented).
    emulator.clear_faults();
    work.write(
        "main.tf",
        &emulator.configuration(
            r#"resource "mig_builtin_identity" "eastus" {
  location = "eastus"
  lock     = false
}"#,
        ),
    );
    work.apply();
    work.write("main.tf", &emulator.configuration(CONFIG));
    let (changes, _) = plan(&work);
    assert!(changes, "asked again, the plan places the lock");
    work.apply();
    assert!(
        emulator.arm_get(&lock(), LOCK_API).is_some(),
        "the lock is placed"
    );
    assert!(!plan(&work).0, "converged");
}

#[test]
fn an_identity_and_group_created_between_read_and_create_are_adopted_and_destroy_leaves_them() {
    let emulator = Emulator::start(&json!({"subscriptions": [{"id": SUB}]}));
    let work = Workdir::new(&emulator.configuration(CONFIG));
    work.init();
    // Another writer (the policy) creates the group, then the identity, each just before the
    // provider's PUT of it is served: both PUTs answer 200, not 201.
    emulator.inject_fault(&json!({
        "kind": "concurrent_write", "count": 2, "method": "PUT",
        "path_contains": "resourceGroups/Built-In-Identity-RG"
    }));
    let apply = work.try_apply();
    assert!(apply.success, "{}", apply.all());
    let diagnostics = apply.diagnostics();
    assert!(
        diagnostics_naming(&diagnostics, "warning", "adopted") >= 1,
        "the adoption is told: {diagnostics:#?}"
    );
    let theirs = emulator
        .arm_get(&identity(), IDENTITY_API)
        .expect("identity");
    assert!(
        emulator.arm_get(&lock(), LOCK_API).is_some(),
        "our lock is placed on it"
    );
    assert!(!plan(&work).0, "converged");

    work.destroy();
    let after = emulator
        .arm_get(&identity(), IDENTITY_API)
        .expect("the identity someone else created survives destroy");
    assert_eq!(
        after["properties"]["principalId"],
        theirs["properties"]["principalId"]
    );
    assert!(
        emulator.arm_get(GROUP, GROUP_API).is_some(),
        "the group someone else created survives destroy"
    );
    assert!(
        emulator.arm_get(&lock(), LOCK_API).is_none(),
        "the lock we placed is taken back"
    );
}

#[test]
fn a_group_created_between_read_and_create_is_left_by_destroy_our_identity_is_not() {
    let emulator = Emulator::start(&json!({"subscriptions": [{"id": SUB}]}));
    let work = Workdir::new(&emulator.configuration(CONFIG));
    work.init();
    // Only the group's PUT (its path and query: `Built-In-Identity-RG?api-version=`).
    emulator.inject_fault(&json!({
        "kind": "concurrent_write", "count": 1, "method": "PUT",
        "path_contains": "resourceGroups/Built-In-Identity-RG?"
    }));
    let apply = work.try_apply();
    assert!(apply.success, "{}", apply.all());
    assert!(emulator.arm_get(&identity(), IDENTITY_API).is_some());
    work.destroy();
    assert!(
        emulator.arm_get(&identity(), IDENTITY_API).is_none(),
        "the identity our PUT created (201) is deleted"
    );
    assert!(
        emulator.arm_get(GROUP, GROUP_API).is_some(),
        "the group someone else created is left"
    );
}
