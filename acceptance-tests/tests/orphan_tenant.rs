//! Where Microsoft Graph cannot tell who exists, nothing is orphaned: a scope in another
//! tenant's subscription (Azure Lighthouse, guest access) and a Graph answer whose body cannot
//! be read are refused by `mig_orphan_cleanup` (resource and action) and
//! `mig_orphaned_role_assignments`, and nothing is deleted. And one transient failure of the
//! cloud's metadata read (`GET /metadata/endpoints`) no longer fails the run. Real Terraform
//! against the emulator, every outcome read back from it.

use std::collections::BTreeSet;

use acceptance_tests::{CommandOutput, Emulator, Workdir};
use serde_json::{json, Value as Json};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
/// A customer's subscription, delegated to the emulator's tenant through Azure Lighthouse.
const CUSTOMER_SUB: &str = "00000000-0000-0000-0000-0000000000c2";
const CUSTOMER_TENANT: &str = "c0570000-0000-4000-8000-00000000c0c0";
/// Live principals of the customer's tenant: Graph (the emulator's tenant) does not know them.
const CUSTOMER_SP: &str = "c0570000-0000-4000-8000-0000000000a1";
const CUSTOMER_SP_2: &str = "c0570000-0000-4000-8000-0000000000a2";
/// Deleted from the emulator's own tenant.
const DEAD_SP: &str = "9f1e0000-0000-4000-8000-0000000000d1";
const LONG_AGO: &str = "2025-01-01T00:00:00Z";

fn customer_rg() -> String {
    format!("/subscriptions/{CUSTOMER_SUB}/resourceGroups/rg-customer")
}

fn home_rg() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-app")
}

fn scenario() -> Json {
    json!({
        "subscriptions": [
            {
                "id": SUB,
                "resource_groups": [{"name": "rg-app", "location": "eastus"}],
                "user_assigned_identities": [{"name": "id-live", "resource_group": "rg-app", "location": "eastus"}],
                "role_assignments": [
                    {"scope": home_rg(), "role": "Reader", "principal_id": DEAD_SP, "principal_type": "ServicePrincipal", "created_on": LONG_AGO}
                ]
            },
            {
                "id": CUSTOMER_SUB,
                "tenant_id": CUSTOMER_TENANT,
                "resource_groups": [{"name": "rg-customer", "location": "eastus"}],
                "role_assignments": [
                    {"scope": customer_rg(), "role": "Reader", "principal_id": CUSTOMER_SP, "principal_type": "ServicePrincipal", "created_on": LONG_AGO},
                    {"scope": customer_rg(), "role": "Contributor", "principal_id": CUSTOMER_SP_2, "principal_type": "ServicePrincipal", "created_on": LONG_AGO},
                    {"scope": format!("/subscriptions/{CUSTOMER_SUB}"), "role": "Reader", "principal_id": CUSTOMER_SP, "principal_type": "ServicePrincipal", "created_on": LONG_AGO}
                ]
            }
        ],
        "deleted_principals": [DEAD_SP]
    })
}

/// Every role assignment ID (lower case) in `subscription`, read from the emulator.
fn assignments(emulator: &Emulator, subscription: &str) -> BTreeSet<String> {
    let (status, body) = emulator.arm_send(
        reqwest::Method::GET,
        &format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleAssignments"),
        "2022-04-01",
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_ascii_lowercase))
        .collect()
}

fn principals(emulator: &Emulator, subscription: &str) -> BTreeSet<String> {
    let (_, body) = emulator.arm_send(
        reqwest::Method::GET,
        &format!("/subscriptions/{subscription}/providers/Microsoft.Authorization/roleAssignments"),
        "2022-04-01",
        None,
    );
    body["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| {
            a["properties"]["principalId"]
                .as_str()
                .map(str::to_ascii_lowercase)
        })
        .collect()
}

/// An error diagnostic on `attribute` whose text holds every one of `fragments`.
fn refused_at(output: &CommandOutput, attribute: &str, fragments: &[&str]) {
    assert!(!output.success, "refused: {}", output.all());
    let diagnostics = output.diagnostics();
    assert!(
        diagnostics.iter().any(|d| {
            let text = format!(
                "{} {}",
                d["summary"].as_str().unwrap_or_default(),
                d["detail"].as_str().unwrap_or_default()
            );
            d["severity"] == "error"
                && d["snippet"]["code"]
                    .as_str()
                    .is_some_and(|code| code.contains(attribute))
                && fragments.iter().all(|f| text.contains(f))
        }),
        "an error at `{attribute}` saying {fragments:?}: {diagnostics:#?}"
    );
}

fn cleanup(scope: &str, arguments: &str) -> String {
    format!(
        r#"resource "mig_orphan_cleanup" "rg" {{
  scope = "{scope}"
  {arguments}
}}
"#
    )
}

#[test]
fn a_scope_in_another_tenant_is_refused_and_nothing_is_deleted() {
    let emulator = Emulator::start(&scenario());
    let before = assignments(&emulator, CUSTOMER_SUB);
    assert!(principals(&emulator, CUSTOMER_SUB).contains(CUSTOMER_SP));
    let work = Workdir::new(&emulator.configuration(&cleanup(&customer_rg(), "")));
    work.init();

    // Plan: refused, naming `scope`, both tenants and the fix.
    let plan = work.run(&["plan", "-input=false", "-no-color", "-json"]);
    refused_at(
        &plan,
        "scope",
        &[
            CUSTOMER_TENANT,
            "tenant_id",
            "Nothing is treated as orphaned",
        ],
    );
    // Apply (which plans again) deletes nothing, and records nothing.
    let apply = work.try_apply();
    refused_at(&apply, "scope", &[CUSTOMER_TENANT]);
    assert_eq!(
        assignments(&emulator, CUSTOMER_SUB),
        before,
        "nothing deleted"
    );
    assert!(work.state_resources().is_empty(), "nothing recorded");

    // One already in state there (from before this check, or imported) can still be got rid
    // of by removing its block: its refresh only warns and lists nothing, and the destroy
    // forgets it and deletes nothing. (`terraform destroy` plans the configuration first,
    // and that plan is refused; `terraform destroy -refresh=false` skips it.)
    work.run_ok(&[
        "import",
        "-input=false",
        "-no-color",
        "mig_orphan_cleanup.rg",
        &customer_rg(),
    ]);
    work.write("main.tf", &emulator.configuration(""));
    let forget = work.apply();
    assert!(
        forget.all().contains("cannot be told") && forget.all().contains(CUSTOMER_TENANT),
        "{}",
        forget.all()
    );
    assert!(work.state_resources().is_empty());
    assert_eq!(
        assignments(&emulator, CUSTOMER_SUB),
        before,
        "nothing deleted"
    );
    work.write(
        "main.tf",
        &emulator.configuration(&cleanup(&customer_rg(), "")),
    );

    // In report mode too: a report listing live principals as orphans is as wrong.
    work.write(
        "main.tf",
        &emulator.configuration(&cleanup(&customer_rg(), r#"mode = "report""#)),
    );
    let plan = work.run(&["plan", "-input=false", "-no-color", "-json"]);
    refused_at(&plan, "scope", &[CUSTOMER_TENANT]);

    // The same configuration in the home tenant's subscription works: one real orphan.
    work.write("main.tf", &emulator.configuration(&cleanup(&home_rg(), "")));
    work.apply();
    assert!(
        !principals(&emulator, SUB).contains(DEAD_SP),
        "the real orphan is gone"
    );
    assert_eq!(assignments(&emulator, CUSTOMER_SUB), before);
}

#[test]
fn the_data_source_refuses_another_tenant_listing_nothing() {
    let emulator = Emulator::start(&scenario());
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"data "mig_orphaned_role_assignments" "customer" {{
  scope = "/subscriptions/{CUSTOMER_SUB}"
}}

output "orphans" {{
  value = data.mig_orphaned_role_assignments.customer.ids
}}
"#
    )));
    work.init();
    let plan = work.run(&["plan", "-input=false", "-no-color", "-json"]);
    refused_at(&plan, "scope", &[CUSTOMER_TENANT, "tenant_id"]);
    assert!(
        !plan.stdout.contains(CUSTOMER_SP),
        "no live principal is listed as orphaned: {}",
        plan.all()
    );
}

#[test]
fn the_action_refuses_another_tenant_and_deletes_nothing() {
    if !acceptance_tests::terraform_has(14, "actions") {
        return;
    }
    let emulator = Emulator::start(&scenario());
    let before = assignments(&emulator, CUSTOMER_SUB);
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"action "mig_orphan_cleanup" "once" {{
  config {{
    scope = "{scope}"
  }}
}}
"#,
        scope = customer_rg(),
    )));
    work.init();
    let output = work.run(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        "-invoke=action.mig_orphan_cleanup.once",
    ]);
    assert!(!output.success, "{}", output.all());
    assert!(
        output.all().contains(CUSTOMER_TENANT) && output.all().contains("tenant_id"),
        "{}",
        output.all()
    );
    assert_eq!(
        assignments(&emulator, CUSTOMER_SUB),
        before,
        "nothing deleted"
    );
}

#[test]
fn an_unreadable_graph_answer_is_an_error_never_nobody_exists() {
    let emulator = Emulator::start(&scenario());
    let before = assignments(&emulator, SUB);
    let work = Workdir::new(&emulator.configuration(&cleanup(&home_rg(), "min_age = \"0s\"")));
    work.init();
    for body in ["<html><body>Service maintenance</body></html>", "{}"] {
        emulator.inject_fault(&json!({
            "kind": "status", "status": 200, "path_contains": "getByIds", "body": body
        }));
        let plan = work.run(&["plan", "-input=false", "-no-color", "-json"]);
        refused_at(&plan, "scope", &["getByIds"]);
        emulator.clear_faults();
    }

    // Planned with Graph well; at apply its answer cannot be read: nothing is deleted.
    work.run_ok(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
    emulator.inject_fault(&json!({
        "kind": "status", "status": 200, "path_contains": "getByIds", "body": "not json"
    }));
    let apply = work.run(&["apply", "-input=false", "-no-color", "tfplan"]);
    assert!(!apply.success, "{}", apply.all());
    assert!(apply.all().contains("getByIds"), "{}", apply.all());
    assert_eq!(assignments(&emulator, SUB), before, "nothing deleted");
    let identity = emulator
        .arm_get(
            &format!(
                "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-live",
                home_rg()
            ),
            "2023-01-31",
        )
        .unwrap();
    assert!(identity["properties"]["principalId"].is_string());
}

#[test]
fn one_transient_failure_of_cloud_discovery_does_not_fail_the_plan() {
    let emulator = Emulator::start(&scenario());
    let work = Workdir::new(&emulator.configuration(
        r#"data "mig_client_config" "current" {}

output "subscription" {
  value = data.mig_client_config.current.subscription_id
}
"#,
    ));
    work.init();
    for fault in [
        json!({"kind": "status", "status": 429, "retry_after": 1}),
        json!({"kind": "status", "status": 503}),
        json!({"kind": "drop_connection"}),
    ] {
        let mut fault = fault;
        fault["count"] = json!(1);
        fault["method"] = json!("GET");
        fault["path_contains"] = json!("/metadata/endpoints");
        emulator.clear_faults();
        emulator.clear_requests();
        emulator.inject_fault(&fault);
        let plan = work.run(&["plan", "-input=false", "-no-color"]);
        assert!(plan.success, "{fault}: {}", plan.all());
        let faults = emulator.admin(reqwest::Method::GET, "faults", None);
        assert_eq!(faults[0]["hits"], 1, "the fault was met: {faults}");
        let reads: Vec<i64> = emulator
            .requests()
            .iter()
            .filter(|r| r["path"] == "/metadata/endpoints")
            .map(|r| r["status"].as_i64().unwrap_or(-1))
            .collect();
        let failed = fault["status"].as_i64().unwrap_or(0);
        assert!(
            reads.starts_with(&[failed, 200]),
            "{fault}: the failed read, then a retry that succeeded: {reads:?}"
        );
    }
}
