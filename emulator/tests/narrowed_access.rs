//! A subscription wholly unreadable to one principal, as when its access to it was narrowed:
//! the principal keeps Management Group Reader on the group (it still sees the subscription
//! among the group's descendants) but its role on the subscription is removed, and then every
//! read and write there answers 403 AuthorizationFailed, while its other subscriptions answer
//! as before.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const SUB_A: &str = "0000000a-0000-4000-8000-000000000001";
const SUB_C: &str = "0000000c-0000-4000-8000-000000000001";
const OPERATOR: &str = "0be2a700-0000-4000-8000-000000000001";
const OPERATOR_APP: &str = "0be2a700-0000-4000-8000-0000000000a1";
const ROLE_API: &str = "2022-04-01";

fn owner_assignment(sub: &str) -> String {
    format!(
        "/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/{}",
        if sub == SUB_A {
            "0be2a700-0000-4000-8000-00000000000a"
        } else {
            "0be2a700-0000-4000-8000-00000000000c"
        }
    )
}

/// root ─ mg-platform (SUB_A, SUB_C); OPERATOR is Management Group Reader at mg-platform and
/// Owner on each subscription.
fn scenario() -> Value {
    let sub = |id: &str| {
        json!({"id": id, "regions": ["eastus"],
               "resource_groups": [{"name": "rg", "location": "eastus"}],
               "user_assigned_identities": [{"name": "id", "resource_group": "rg", "location": "eastus"}],
               "role_assignments": [{"id": owner_assignment(id), "scope": format!("/subscriptions/{id}"),
                                     "role": "Owner", "principal_id": OPERATOR}]})
    };
    json!({
        "subscriptions": [sub(SUB_A), sub(SUB_C)],
        "management_groups": [
            {"id": "mg-platform", "subscriptions": [SUB_A, SUB_C],
             "role_assignments": [{"role": "Management Group Reader", "principal_id": OPERATOR}]}
        ],
        "principals": [{"id": OPERATOR, "app_id": OPERATOR_APP, "secret": "s", "display_name": "operator"}]
    })
}

#[test]
fn a_principal_whose_role_on_a_subscription_is_removed_can_read_nothing_there() {
    let emu = Emu::start(&scenario());
    let r = emu.token_for(OPERATOR_APP, "s", "https://management.azure.com/.default");
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["access_token"].as_str().unwrap().to_string();
    let call = |method: Method, path: &str, body: Option<&Value>| {
        emu.call_with(method, path, body, Some(&token), &[])
    };
    let identity = |sub: &str| {
        format!("subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id")
    };
    let lock = |sub: &str| {
        format!(
            "{}/providers/Microsoft.Authorization/locks/l?api-version=2020-05-01",
            identity(sub)
        )
    };
    let reads = |sub: &str| -> Vec<u16> {
        vec![
            call(
                Method::GET,
                &format!("{}?api-version=2023-01-31", identity(sub)),
                None,
            )
            .status,
            call(
                Method::GET,
                &format!("subscriptions/{sub}/resourcegroups/rg?api-version=2022-09-01"),
                None,
            )
            .status,
            call(Method::GET, &lock(sub), None).status,
            call(
                Method::GET,
                &format!(
                    "subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01"
                ),
                None,
            )
            .status,
        ]
    };
    // The lock does not exist: 404 once the read is allowed.
    assert_eq!(reads(SUB_C), vec![200, 200, 404, 200]);

    // Its role on SUB_C removed (by an Owner above it).
    let removed = emu.delete(&format!(
        "{}?api-version={ROLE_API}",
        owner_assignment(SUB_C).trim_start_matches('/')
    ));
    assert_eq!(removed.status, 200, "{}", removed.text);

    assert_eq!(reads(SUB_C), vec![403, 403, 403, 403]);
    let denied = call(
        Method::GET,
        &format!("{}?api-version=2023-01-31", identity(SUB_C)),
        None,
    );
    assert_eq!(denied.body["error"]["code"], "AuthorizationFailed");
    assert!(denied.text.contains(SUB_C), "{}", denied.text);
    let write = call(
        Method::PUT,
        &lock(SUB_C),
        Some(&json!({"properties": {"level": "CanNotDelete"}})),
    );
    assert_eq!(write.status, 403, "{}", write.text);
    let delete = call(
        Method::DELETE,
        &format!("{}?api-version=2023-01-31", identity(SUB_C)),
        None,
    );
    assert_eq!(delete.status, 403, "{}", delete.text);
    // The identity is untouched (read as the scenario's client).
    assert_eq!(
        emu.get(&format!("{}?api-version=2023-01-31", identity(SUB_C)))
            .status,
        200
    );

    // Its other subscription answers as before, and the group still lists both.
    assert_eq!(reads(SUB_A), vec![200, 200, 404, 200]);
    let descendants = call(
        Method::GET,
        "providers/Microsoft.Management/managementGroups/mg-platform/descendants?api-version=2023-04-01",
        None,
    );
    assert_eq!(descendants.status, 200, "{}", descendants.text);
    let names: BTreeSet<&str> = descendants.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from([SUB_A, SUB_C]));
}
