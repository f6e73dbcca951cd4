//! `mig_builtin_identity` with real Terraform against the emulator: what create makes (group,
//! identity, the policy's lock), drift in the lock, destroy undoing only what it did, a
//! bring-your-own identity, bad input at validate, and principal replication delay; a lock
//! the principal may not place (a warning, then an in-place update, never a replacement),
//! imports that adopt and never delete, regions swapped in one apply keeping their group, and
//! optional arguments going back to their defaults when removed.

use acceptance_tests::{configuration, Emulator, Workdir};
use serde_json::{json, Value as Json};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const SUB2: &str = "00000000-0000-0000-0000-000000000002";
const ROLE_API: &str = "2022-04-01";
/// A service principal that is Contributor on the subscription: it may create groups and
/// identities but not write locks (Contributor's notActions hold Microsoft.Authorization/*/Write).
const CONTRIBUTOR_OBJECT: &str = "c0271b00-0000-4000-8000-000000000001";
const CONTRIBUTOR_APP: &str = "c0271b00-0000-4000-8000-0000000000a1";
const CONTRIBUTOR_SECRET: &str = "contributor-secret";
const GROUP: &str =
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/Built-In-Identity-RG";
const IDENTITY_API: &str = "2023-01-31";
const LOCK_API: &str = "2020-05-01";
const GROUP_API: &str = "2022-09-01";

fn identity(name: &str) -> String {
    format!("{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}")
}

fn lock_of(identity_id: &str, identity_name: &str) -> String {
    format!(
        "{identity_id}/providers/Microsoft.Authorization/locks/CanNotDeleteLock-{identity_name}"
    )
}

fn state_of(work: &Workdir, address: &str) -> Json {
    work.state_resources()
        .remove(address)
        .unwrap_or_else(|| panic!("{address} in state"))
}

#[test]
fn create_makes_group_identity_and_lock_a_removed_lock_comes_back_and_destroy_undoes_it_all() {
    let emulator = Emulator::start(&json!({"subscriptions": [{"id": SUB}]}));
    let work = Workdir::new(&emulator.configuration(
        r#"resource "mig_builtin_identity" "eastus" {
  location = "East US"
}"#,
    ));
    work.init();
    work.apply();

    let id = identity("Built-In-Identity-eastus");
    let state = state_of(&work, "mig_builtin_identity.eastus");
    assert_eq!(
        state["location"], "East US",
        "state keeps the configured spelling"
    );
    assert_eq!(
        state["id"].as_str().unwrap().to_lowercase(),
        id.to_lowercase()
    );
    let created = emulator
        .arm_get(&id, IDENTITY_API)
        .expect("identity created");
    assert_eq!(created["location"], "eastus", "ARM gets its own spelling");
    assert_eq!(state["principal_id"], created["properties"]["principalId"]);
    assert_eq!(state["client_id"], created["properties"]["clientId"]);
    let lock_id = lock_of(&id, "Built-In-Identity-eastus");
    let lock = emulator.arm_get(&lock_id, LOCK_API).expect("lock placed");
    assert_eq!(lock["properties"]["level"], "CanNotDelete");
    assert_eq!(
        state["lock_id"].as_str().unwrap().to_lowercase(),
        lock_id.to_lowercase()
    );
    assert!(!work.plan_has_changes(), "converged");

    // Someone removes the lock by hand: the next plan shows it, apply puts it back.
    let (status, body) = emulator.arm_send(reqwest::Method::DELETE, &lock_id, LOCK_API, None);
    assert!(status == 200 || status == 204, "{status} {body}");
    assert!(work.plan_has_changes(), "a removed lock is drift");
    work.apply();
    assert!(
        emulator.arm_get(&lock_id, LOCK_API).is_some(),
        "the lock is back"
    );

    work.destroy();
    assert!(
        emulator.arm_get(&lock_id, LOCK_API).is_none(),
        "lock removed"
    );
    assert!(
        emulator.arm_get(&id, IDENTITY_API).is_none(),
        "identity deleted"
    );
    assert!(
        emulator.arm_get(GROUP, GROUP_API).is_none(),
        "the group this resource created, now empty, is deleted"
    );
}

#[test]
fn destroy_keeps_a_group_it_did_not_create_and_what_else_is_in_it() {
    let emulator = Emulator::start(&json!({"subscriptions": [{
        "id": SUB,
        "resource_groups": [{"name": "Built-In-Identity-RG", "location": "eastus"}],
        "user_assigned_identities": [{"name": "someone-else", "resource_group": "Built-In-Identity-RG", "location": "eastus"}]
    }]}));
    let work = Workdir::new(&emulator.configuration(
        r#"resource "mig_builtin_identity" "westeurope" {
  location = "westeurope"
}"#,
    ));
    work.init();
    work.apply();
    assert!(emulator
        .arm_get(&identity("Built-In-Identity-westeurope"), IDENTITY_API)
        .is_some());
    work.destroy();
    assert!(emulator
        .arm_get(&identity("Built-In-Identity-westeurope"), IDENTITY_API)
        .is_none());
    assert!(
        emulator.arm_get(GROUP, GROUP_API).is_some(),
        "not ours: kept"
    );
    assert!(emulator
        .arm_get(&identity("someone-else"), IDENTITY_API)
        .is_some());
}

#[test]
fn a_bring_your_own_identity_gets_our_lock_and_keeps_living_after_destroy() {
    let emulator = Emulator::start(&json!({"subscriptions": [{
        "id": SUB,
        "resource_groups": [{"name": "rg-app", "location": "eastus"}],
        "user_assigned_identities": [{"name": "id-mine", "resource_group": "rg-app", "location": "eastus"}]
    }]}));
    let mine = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-mine"
    );
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"resource "mig_builtin_identity" "eastus" {{
  location             = "eastus"
  existing_identity_id = "{mine}"
}}"#
    )));
    work.init();
    work.apply();
    let lock_id = lock_of(&mine, "id-mine");
    assert!(
        emulator.arm_get(&lock_id, LOCK_API).is_some(),
        "adopted and locked"
    );
    assert!(!work.plan_has_changes());
    work.destroy();
    assert!(
        emulator.arm_get(&lock_id, LOCK_API).is_none(),
        "our lock is gone"
    );
    assert!(
        emulator.arm_get(&mine, IDENTITY_API).is_some(),
        "a bring-your-own identity is never deleted"
    );
}

#[test]
fn bad_arguments_fail_at_validate_naming_the_attribute() {
    let emulator = Emulator::start(&json!({}));
    let cases = [
        (r#"location = "east-us!""#, "location"),
        (
            r#"location = "eastus"
  subscription_id = "not-a-guid""#,
            "subscription_id",
        ),
        (
            r#"location = "eastus"
  existing_identity_id = "/subscriptions/x/resourceGroups/rg""#,
            "existing_identity_id",
        ),
        (
            r#"location = "eastus"
  name = "mine"
  existing_identity_id = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x""#,
            "name",
        ),
    ];
    for (arguments, attribute) in cases {
        let work = Workdir::new(&emulator.configuration(&format!(
            "resource \"mig_builtin_identity\" \"x\" {{\n  {arguments}\n}}"
        )));
        work.init();
        let validate = work.run(&["validate", "-json", "-no-color"]);
        assert!(!validate.success, "{arguments} must not validate");
        let diagnostics = validate.diagnostics();
        assert!(
            diagnostics.iter().any(|d| {
                d["severity"] == "error"
                    && d["snippet"]["code"]
                        .as_str()
                        .is_some_and(|code| code.contains(attribute))
            }),
            "an error pointing at `{attribute}`: {diagnostics:#?}"
        );
    }
}

#[test]
fn a_region_the_subscription_does_not_have_fails_at_plan_naming_the_attribute() {
    let emulator = Emulator::start(&json!({}));
    let work = Workdir::new(&emulator.configuration(
        r#"resource "mig_builtin_identity" "x" {
  location = "atlantis"
}"#,
    ));
    work.init();
    let plan = work.run(&["plan", "-json", "-input=false", "-no-color"]);
    assert!(!plan.success);
    let diagnostics = plan.diagnostics();
    assert!(
        diagnostics.iter().any(|d| d["summary"] == "Unknown region"
            && d["snippet"]["code"]
                .as_str()
                .is_some_and(|code| code.contains("location"))
            && d["detail"]
                .as_str()
                .is_some_and(|detail| detail.contains("westeurope"))),
        "{diagnostics:#?}"
    );
}

#[test]
fn principal_replication_delay_does_not_break_create_or_assignment() {
    let emulator = Emulator::start(&json!({
        "subscriptions": [{
            "id": SUB,
            "resource_groups": [{"name": "rg-app", "location": "eastus"}],
            "virtual_machines": [{"name": "vm-1", "resource_group": "rg-app", "location": "eastus"}]
        }],
        "realism": {"principal_replication_seconds": 3}
    }));
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"resource "mig_builtin_identity" "eastus" {{
  location = "eastus"
}}

resource "mig_identity_assignment" "eastus" {{
  identity_id = mig_builtin_identity.eastus.id
  scope       = "/subscriptions/{SUB}"
  locations   = ["eastus"]
}}"#
    )));
    work.init();
    work.apply();
    let vm = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-1"
    );
    let (_, held) = emulator.identity_of(&vm);
    assert!(held.contains(&identity("Built-In-Identity-eastus").to_lowercase()));
    assert!(!work.plan_has_changes());
}

/// The planned change of one resource instance in `terraform show -json` of a plan.
fn change_of(plan: &Json, address: &str) -> Json {
    plan["resource_changes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|change| change["address"] == address)
        .unwrap_or_else(|| panic!("{address} in the plan: {plan:#}"))["change"]
        .clone()
}

fn actions(change: &Json) -> Vec<String> {
    change["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn principal_of(emulator: &Emulator, id: &str) -> String {
    emulator
        .arm_get(id, IDENTITY_API)
        .unwrap_or_else(|| panic!("{id} exists"))["properties"]["principalId"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_lock_that_cannot_be_placed_is_a_warning_then_an_in_place_update_never_a_replace() {
    let emulator = Emulator::start(&json!({
        "subscriptions": [{
            "id": SUB,
            "role_assignments": [
                {"scope": format!("/subscriptions/{SUB}"), "role": "Contributor", "principal_id": CONTRIBUTOR_OBJECT, "principal_type": "ServicePrincipal"}
            ]
        }],
        "principals": [{"id": CONTRIBUTOR_OBJECT, "app_id": CONTRIBUTOR_APP, "secret": CONTRIBUTOR_SECRET, "display_name": "contributor"}]
    }));
    let contributor = emulator
        .provider_block()
        .replace(&emulator.ready.client_id, CONTRIBUTOR_APP)
        .replace(&emulator.ready.client_secret, CONTRIBUTOR_SECRET);
    let work = Workdir::new(&configuration(
        &contributor,
        r#"resource "mig_builtin_identity" "eastus" {
  location = "eastus"
}"#,
    ));
    work.init();
    let id = identity("Built-In-Identity-eastus");
    let lock_id = lock_of(&id, "Built-In-Identity-eastus");

    // Create: the identity exists, the lock cannot be placed: a warning, not an error (an
    // error would taint the identity and the next apply would replace it).
    let apply = work.try_apply();
    assert!(
        apply.success,
        "create succeeds with a warning:\n{}",
        apply.all()
    );
    let diagnostics = apply.diagnostics();
    assert!(
        diagnostics.iter().any(|d| d["severity"] == "warning"
            && d["detail"]
                .as_str()
                .is_some_and(|t| t.contains("Microsoft.Authorization/locks/write"))),
        "a warning naming the missing permission: {diagnostics:#?}"
    );
    assert!(
        !diagnostics.iter().any(|d| d["severity"] == "error"),
        "{diagnostics:#?}"
    );
    let principal = principal_of(&emulator, &id);
    assert!(
        emulator.arm_get(&lock_id, LOCK_API).is_none(),
        "no lock in Azure"
    );
    let state = state_of(&work, "mig_builtin_identity.eastus");
    assert!(state["lock_id"].is_null(), "state says the lock is missing");
    assert_eq!(state["principal_id"], principal.as_str());

    // The next plan: no change while the principal may not lock, never a failing apply
    // (least_privilege.rs shows more applies and the warning).
    let change = change_of(&work.plan_json(), "mig_builtin_identity.eastus");
    assert_eq!(actions(&change), ["no-op"], "{change:#}");

    // Grant the permission: the lock is placed, the identity is the same throughout.
    let (status, body) = emulator.arm_send(
        reqwest::Method::PUT,
        &format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/7a1e0000-0000-4000-8000-000000000001"),
        ROLE_API,
        Some(&json!({"properties": {
            "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"),
            "principalId": CONTRIBUTOR_OBJECT,
            "principalType": "ServicePrincipal"
        }})),
    );
    assert_eq!(status, 201, "{body}");
    // The next plan: an in-place update that places the lock, never a replacement.
    let change = change_of(&work.plan_json(), "mig_builtin_identity.eastus");
    assert_eq!(actions(&change), ["update"], "{change:#}");
    assert!(change["before"]["lock_id"].is_null());
    assert_eq!(change["after_unknown"]["lock_id"], true, "{change:#}");
    work.apply();
    let lock = emulator.arm_get(&lock_id, LOCK_API).expect("lock placed");
    assert_eq!(lock["properties"]["level"], "CanNotDelete");
    assert_eq!(principal_of(&emulator, &id), principal, "same principal ID");
    let state = state_of(&work, "mig_builtin_identity.eastus");
    assert_eq!(
        state["lock_id"].as_str().unwrap().to_lowercase(),
        lock_id.to_lowercase()
    );
    assert!(!work.plan_has_changes(), "converged");
}

#[test]
fn an_imported_policy_identity_is_adopted_and_destroy_leaves_it_its_lock_and_group() {
    let id = identity("Built-In-Identity-eastus");
    let lock_id = lock_of(&id, "Built-In-Identity-eastus");
    // westeurope's identity has lost its lock: the import plans to place it, in place.
    let west = identity("Built-In-Identity-westeurope");
    let west_lock = lock_of(&west, "Built-In-Identity-westeurope");
    let emulator = Emulator::start(&json!({"subscriptions": [{
        "id": SUB,
        "resource_groups": [{"name": "Built-In-Identity-RG", "location": "eastus"}],
        "user_assigned_identities": [
            {"name": "Built-In-Identity-eastus", "resource_group": "Built-In-Identity-RG", "location": "eastus"},
            {"name": "Built-In-Identity-westeurope", "resource_group": "Built-In-Identity-RG", "location": "westeurope"}
        ],
        "locks": [{"scope": id, "name": "CanNotDeleteLock-Built-In-Identity-eastus", "level": "CanNotDelete",
                   "notes": "Please do not delete this User-Assigned Identity since extensions enabled by Azure Policy are relying on their existence."}]
    }]}));
    let (principal, west_principal) =
        (principal_of(&emulator, &id), principal_of(&emulator, &west));
    let resources = r#"resource "mig_builtin_identity" "eastus" {
  location = "eastus"
}

resource "mig_builtin_identity" "westeurope" {
  location = "westeurope"
}"#;
    // As the policy's docs spell the group: ARM names compare case-insensitively.
    let import_id = id.replace("Built-In-Identity-RG", "built-in-identity-rg");
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"import {{
  to = mig_builtin_identity.eastus
  id = "{import_id}"
}}

import {{
  to = mig_builtin_identity.westeurope
  id = "{west}"
}}

{resources}"#
    )));
    work.init();
    let plan = work.plan_json();
    let change = change_of(&plan, "mig_builtin_identity.eastus");
    assert_eq!(
        actions(&change),
        ["no-op"],
        "import only, nothing to change: {change:#}"
    );
    let change = change_of(&plan, "mig_builtin_identity.westeurope");
    assert_eq!(
        actions(&change),
        ["update"],
        "the missing lock, placed in place: {change:#}"
    );
    work.apply();
    assert!(!work.plan_has_changes(), "adopted with no changes");
    let state = state_of(&work, "mig_builtin_identity.eastus");
    assert_eq!(state["principal_id"], principal.as_str());
    assert_eq!(
        state["lock_id"].as_str().unwrap().to_lowercase(),
        lock_id.to_lowercase()
    );
    assert!(emulator.arm_get(&west_lock, LOCK_API).is_some());

    work.write("main.tf", &emulator.configuration(resources));
    work.destroy();
    assert_eq!(
        principal_of(&emulator, &id),
        principal,
        "an imported identity is adopted: destroy never deletes it"
    );
    assert_eq!(principal_of(&emulator, &west), west_principal);
    assert!(
        emulator.arm_get(&lock_id, LOCK_API).is_some(),
        "its lock was not ours"
    );
    assert!(
        emulator.arm_get(&west_lock, LOCK_API).is_none(),
        "the lock we placed comes off"
    );
    assert!(
        emulator.arm_get(GROUP, GROUP_API).is_some(),
        "nor the group"
    );
}

#[test]
fn your_own_identity_imported_from_any_subscription_is_adopted_and_survives_destroy() {
    let mine = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-mine"
    );
    let shared = format!(
        "/subscriptions/{SUB2}/resourceGroups/rg-shared/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-shared"
    );
    let mine_lock = lock_of(&mine, "id-mine");
    let emulator = Emulator::start(&json!({"subscriptions": [
        {
            "id": SUB,
            "resource_groups": [{"name": "rg-app", "location": "eastus"}],
            "user_assigned_identities": [{"name": "id-mine", "resource_group": "rg-app", "location": "eastus"}],
            "locks": [{"scope": mine, "name": "CanNotDeleteLock-id-mine", "level": "CanNotDelete"}]
        },
        {
            "id": SUB2,
            "resource_groups": [{"name": "rg-shared", "location": "westeurope"}],
            "user_assigned_identities": [{"name": "id-shared", "resource_group": "rg-shared", "location": "westeurope"}]
        }
    ]}));
    let (mine_principal, shared_principal) = (
        principal_of(&emulator, &mine),
        principal_of(&emulator, &shared),
    );
    let resources = format!(
        r#"resource "mig_builtin_identity" "mine" {{
  location             = "eastus"
  existing_identity_id = "{mine}"
}}

resource "mig_builtin_identity" "shared" {{
  location             = "eastus"
  existing_identity_id = "{shared}"
}}"#
    );
    let work = Workdir::new(&emulator.configuration(&resources));
    work.init();
    // The CLI for one, an import block for the other.
    work.run_ok(&[
        "import",
        "-input=false",
        "-no-color",
        "mig_builtin_identity.mine",
        &format!("existing:{mine}"),
    ]);
    work.write(
        "main.tf",
        &emulator.configuration(&format!(
            "{resources}\n\nimport {{\n  to = mig_builtin_identity.shared\n  id = \"existing:{shared}?location=eastus\"\n}}\n"
        )),
    );
    let plan = work.plan_json();
    for address in ["mig_builtin_identity.mine", "mig_builtin_identity.shared"] {
        assert_eq!(
            actions(&change_of(&plan, address)),
            ["no-op"],
            "{address}: {plan:#}"
        );
    }
    work.apply();
    assert!(!work.plan_has_changes(), "adopted with no changes");
    let state = state_of(&work, "mig_builtin_identity.shared");
    assert_eq!(state["subscription_id"], SUB, "the VMs' subscription");
    assert_eq!(
        state["lock"], false,
        "no lock outside the VMs' subscription"
    );
    assert_eq!(
        state_of(&work, "mig_builtin_identity.mine")["lock"],
        true,
        "the policy locks your own identity in the VMs' subscription"
    );

    work.write("main.tf", &emulator.configuration(&resources));
    work.destroy();
    assert_eq!(principal_of(&emulator, &mine), mine_principal);
    assert_eq!(principal_of(&emulator, &shared), shared_principal);
    assert!(
        emulator.arm_get(&mine_lock, LOCK_API).is_some(),
        "the lock was there before the import: not ours to remove"
    );
}

#[test]
fn regions_removed_and_added_in_one_apply_keep_the_group_and_their_siblings() {
    let emulator = Emulator::start(&json!({"subscriptions": [{"id": SUB}]}));
    let config = |regions: &[&str]| {
        let list = regions
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ");
        emulator.configuration(&format!(
            r#"resource "mig_builtin_identity" "region" {{
  for_each = toset([{list}])
  location = each.key
}}"#
        ))
    };
    let exists = |region: &str| {
        emulator
            .arm_get(
                &identity(&format!("Built-In-Identity-{region}")),
                IDENTITY_API,
            )
            .is_some()
    };
    let work = Workdir::new(&config(&["eastus"]));
    work.init();
    // eastus creates the group, so its destroy is the one that may delete it.
    work.apply();
    assert!(exists("eastus"));

    // The group's creator is destroyed while two siblings are created in it.
    work.write("main.tf", &config(&["westeurope", "northeurope"]));
    work.apply();
    assert!(!exists("eastus"));
    assert!(
        emulator.arm_get(GROUP, GROUP_API).is_some(),
        "the group survives"
    );
    assert!(exists("westeurope") && exists("northeurope"));

    // Two regions: one removed while another is added.
    work.write("main.tf", &config(&["northeurope", "francecentral"]));
    work.apply();
    assert!(!exists("westeurope"));
    assert!(
        emulator.arm_get(GROUP, GROUP_API).is_some(),
        "the group survives"
    );
    assert!(
        exists("northeurope") && exists("francecentral"),
        "the sibling survives"
    );
    for region in ["northeurope", "francecentral"] {
        let id = identity(&format!("Built-In-Identity-{region}"));
        assert!(emulator
            .arm_get(
                &lock_of(&id, &format!("Built-In-Identity-{region}")),
                LOCK_API
            )
            .is_some());
    }
    assert!(!work.plan_has_changes());
}

#[test]
fn optional_arguments_removed_from_the_configuration_go_back_to_their_defaults() {
    let mine = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-mine"
    );
    let emulator = Emulator::start(&json!({"subscriptions": [
        {
            "id": SUB,
            "resource_groups": [{"name": "rg-app", "location": "eastus"}],
            "user_assigned_identities": [{"name": "id-mine", "resource_group": "rg-app", "location": "eastus"}]
        },
        {"id": SUB2}
    ]}));
    // (resource, location, argument set to something else than its default)
    let cases = [
        ("lock", "eastus", "lock = false".to_string()),
        (
            "resource_group_name",
            "westeurope",
            r#"resource_group_name = "rg-custom""#.to_string(),
        ),
        (
            "resource_group_location",
            "northeurope",
            r#"resource_group_location = "westeurope""#.to_string(),
        ),
        (
            "name",
            "francecentral",
            r#"name = "custom-identity""#.to_string(),
        ),
        (
            "subscription_id",
            "uksouth",
            format!(r#"subscription_id = "{SUB2}""#),
        ),
        (
            "tags",
            "westus",
            r#"tags = { owner = "platform" }"#.to_string(),
        ),
        (
            "existing_identity_id",
            "eastus2",
            format!(r#"existing_identity_id = "{mine}""#),
        ),
        (
            "timeouts",
            "centralus",
            "timeouts {\n    create = \"10m\"\n  }".to_string(),
        ),
    ];
    let config = |with_arguments: bool| {
        let body = cases
            .iter()
            .map(|(name, location, argument)| {
                format!(
                    "resource \"mig_builtin_identity\" \"{name}\" {{\n  location = \"{location}\"\n  {}\n}}\n",
                    if with_arguments { argument.as_str() } else { "" }
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        emulator.configuration(&body)
    };
    let work = Workdir::new(&config(true));
    work.init();
    work.apply();
    assert!(!work.plan_has_changes());

    work.write("main.tf", &config(false));
    let plan = work.plan_json();
    let after = |name: &str| change_of(&plan, &format!("mig_builtin_identity.{name}"));
    let expect = |name: &str, attribute: &str, value: Json, replaced: bool| {
        let change = after(name);
        assert_eq!(
            change["after"][attribute], value,
            "{name}: `{attribute}` back to its default: {change:#}"
        );
        let wanted: &[&str] = if replaced {
            &["delete", "create"]
        } else {
            &["update"]
        };
        assert_eq!(actions(&change), wanted, "{name}: {change:#}");
    };
    expect("lock", "lock", json!(true), false);
    expect(
        "resource_group_name",
        "resource_group_name",
        json!("Built-In-Identity-RG"),
        true,
    );
    expect(
        "resource_group_location",
        "resource_group_location",
        json!("eastus"),
        false,
    );
    expect(
        "name",
        "name",
        json!("Built-In-Identity-francecentral"),
        true,
    );
    expect("subscription_id", "subscription_id", json!(SUB), true);
    expect("tags", "tags", Json::Null, false);
    expect(
        "existing_identity_id",
        "existing_identity_id",
        Json::Null,
        true,
    );
    expect(
        "existing_identity_id",
        "name",
        json!("Built-In-Identity-eastus2"),
        true,
    );
    expect("timeouts", "timeouts", Json::Null, false);

    work.apply();
    assert!(!work.plan_has_changes(), "converged on the defaults");
    let lock_id = lock_of(
        &identity("Built-In-Identity-eastus"),
        "Built-In-Identity-eastus",
    );
    assert!(
        emulator.arm_get(&lock_id, LOCK_API).is_some(),
        "`lock` back to true places the lock"
    );
    assert!(emulator
        .arm_get(&identity("Built-In-Identity-eastus2"), IDENTITY_API)
        .is_some());
    assert!(
        emulator.arm_get(&mine, IDENTITY_API).is_some(),
        "your own identity is never deleted"
    );
}

#[test]
fn your_own_identity_unknown_at_plan_is_not_planned_as_the_policys() {
    let mine = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-mine"
    );
    let emulator = Emulator::start(&json!({"subscriptions": [{
        "id": SUB,
        "resource_groups": [{"name": "rg-app", "location": "eastus"}],
        "user_assigned_identities": [{"name": "id-mine", "resource_group": "rg-app", "location": "eastus"}]
    }]}));
    // `terraform_data.output` is unknown until apply, as the ID of an identity created in the
    // same configuration would be.
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"resource "terraform_data" "identity" {{
  input = "{mine}"
}}

resource "mig_builtin_identity" "eastus" {{
  location             = "eastus"
  existing_identity_id = terraform_data.identity.output
}}"#
    )));
    work.init();
    work.apply();
    let state = state_of(&work, "mig_builtin_identity.eastus");
    assert_eq!(
        state["id"].as_str().unwrap().to_lowercase(),
        mine.to_lowercase()
    );
    assert!(
        emulator
            .arm_get(&identity("Built-In-Identity-eastus"), IDENTITY_API)
            .is_none(),
        "no policy identity was created"
    );
    assert!(!work.plan_has_changes());
}

#[test]
fn a_create_that_times_out_once_the_identity_exists_records_it_and_the_next_apply_locks_it() {
    let emulator = Emulator::start(&json!({"subscriptions": [{"id": SUB}]}));
    let id = identity("Built-In-Identity-eastus");
    let lock_id = lock_of(&id, "Built-In-Identity-eastus");
    // ARM answers the lock's PUT "busy, retry in 30s": the client waits, the create's
    // deadline passes meanwhile, and nothing more is sent.
    emulator.inject_fault(&json!({
        "kind": "status", "status": 503, "retry_after": 30, "count": 10,
        "method": "PUT", "path_contains": "/locks/CanNotDeleteLock-Built-In-Identity-eastus"
    }));
    let work = Workdir::new(&emulator.configuration(
        r#"resource "mig_builtin_identity" "eastus" {
  location = "eastus"
  timeouts {
    create = "3s"
  }
}"#,
    ));
    work.init();
    let started = std::time::Instant::now();
    let apply = work.try_apply();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(25),
        "the deadline ends the wait: {:?}",
        started.elapsed()
    );
    assert!(
        apply.success,
        "the identity exists: a warning, never a create error (it would be tainted):\n{}",
        apply.all()
    );
    assert!(
        apply
            .diagnostics()
            .iter()
            .any(|d| d["severity"] == "warning"
                && d["detail"]
                    .as_str()
                    .is_some_and(|t| t.contains("timeout") && t.contains("was not placed"))),
        "{}",
        apply.all()
    );
    let principal = principal_of(&emulator, &id);
    let state = state_of(&work, "mig_builtin_identity.eastus");
    assert_eq!(
        state["principal_id"],
        principal.as_str(),
        "state says what exists"
    );
    assert!(state["lock_id"].is_null(), "and that the lock is missing");
    assert!(emulator.arm_get(&lock_id, LOCK_API).is_none());

    emulator.clear_faults();
    let change = change_of(&work.plan_json(), "mig_builtin_identity.eastus");
    assert_eq!(actions(&change), ["update"], "in place: {change:#}");
    work.apply();
    assert!(emulator.arm_get(&lock_id, LOCK_API).is_some(), "locked");
    assert_eq!(principal_of(&emulator, &id), principal, "the same identity");
    assert!(!work.plan_has_changes());
}
