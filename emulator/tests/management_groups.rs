//! Management groups (Microsoft.Management) over HTTPS: the hierarchy as ARM serves it, paging,
//! and role assignments at a group reaching its groups and subscriptions.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const V: &str = "2023-04-01";
const SUB_A: &str = "0000000a-0000-4000-8000-000000000001";
const SUB_B: &str = "0000000b-0000-4000-8000-000000000001";
const SUB_C: &str = "0000000c-0000-4000-8000-000000000001";
const SUB_OUT: &str = "0000000d-0000-4000-8000-000000000001";
const READER: &str = "5eade000-0000-4000-8000-000000000001";
const READER_APP: &str = "5eade000-0000-4000-8000-0000000000a1";

/// root ─ mg-platform (SUB_A) ─ mg-corp (SUB_B, SUB_C); SUB_OUT under the root; READER is
/// Reader at mg-corp only.
fn scenario() -> Value {
    let sub = |id: &str, name: &str| {
        json!({"id": id, "display_name": name, "regions": ["eastus"],
               "resource_groups": [{"name": "rg", "location": "eastus"}],
               "virtual_machines": [{"name": "vm", "resource_group": "rg"}]})
    };
    json!({
        "subscriptions": [sub(SUB_A, "A"), sub(SUB_B, "B"), sub(SUB_C, "C"), sub(SUB_OUT, "Outside")],
        "management_groups": [
            {"id": "mg-platform", "display_name": "Platform", "subscriptions": [SUB_A]},
            {"id": "mg-corp", "display_name": "Corp", "parent": "mg-platform",
             "subscriptions": [SUB_B, SUB_C],
             "role_assignments": [{"role": "Reader", "principal_id": READER}]}
        ],
        "principals": [{"id": READER, "app_id": READER_APP, "secret": "s", "display_name": "reader"}]
    })
}

fn group(name: &str, query: &str) -> String {
    format!("providers/Microsoft.Management/managementGroups/{name}?api-version={V}{query}")
}

/// Every item of a paged list, following the link named `link`.
fn all_pages(emu: &Emu, first: &str, link: &str, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut next = Some(first.to_string());
    let mut pages = 0;
    while let Some(url) = next {
        let r = emu.call_with(Method::GET, &url, None, Some(token), &[]);
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(r.body.get(link).is_some(), "{link} member: {}", r.text);
        items.extend(r.body["value"].as_array().unwrap().iter().cloned());
        next = r.body[link].as_str().map(str::to_string);
        pages += 1;
        assert!(pages < 50);
    }
    items
}

#[test]
fn a_group_with_expand_and_recurse_shows_the_whole_tree_in_the_specs_shape() {
    let emu = Emu::start(&scenario());
    let tenant = emu.ready["tenant_id"].as_str().unwrap().to_string();
    let r = emu.get(&group("mg-platform", "&$expand=children&$recurse=true"));
    assert_eq!(r.status, 200, "{}", r.text);
    let body = &r.body;
    assert_eq!(
        body["id"],
        "/providers/Microsoft.Management/managementGroups/mg-platform"
    );
    assert_eq!(body["type"], "Microsoft.Management/managementGroups");
    assert_eq!(body["name"], "mg-platform");
    assert_eq!(body["properties"]["displayName"], "Platform");
    assert_eq!(body["properties"]["tenantId"], tenant);
    assert_eq!(body["properties"]["details"]["parent"]["name"], tenant);
    assert_eq!(
        body["properties"]["details"]["parent"]["displayName"],
        "Tenant Root Group"
    );
    let children = body["properties"]["children"].as_array().unwrap();
    assert_eq!(children.len(), 2, "{children:?}");
    assert_eq!(children[0]["name"], "mg-corp");
    assert_eq!(children[0]["type"], "Microsoft.Management/managementGroups");
    let grandchildren: BTreeSet<&str> = children[0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(grandchildren, BTreeSet::from([SUB_B, SUB_C]));
    assert_eq!(children[1]["id"], format!("/subscriptions/{SUB_A}"));
    assert_eq!(children[1]["type"], "/subscriptions");
    assert_eq!(children[1]["displayName"], "A");

    // Without $recurse: one level; with the subscription filter: groups only.
    let r = emu.get(&group("mg-platform", "&$expand=children"));
    assert!(r.body["properties"]["children"][0]
        .get("children")
        .is_none());
    let r = emu.get(&group(
        "mg-platform",
        "&$expand=children&$recurse=true&$filter=children.childType%20ne%20Subscription",
    ));
    let children = r.body["properties"]["children"].as_array().unwrap();
    assert_eq!(children.len(), 1);
    assert!(children[0].get("children").is_none());
    // Without $expand: no children member.
    let r = emu.get(&group("mg-corp", ""));
    assert!(r.body["properties"].get("children").is_none());
    let r = emu.get(&group("mg-corp", "&$expand=ancestors"));
    assert_eq!(
        r.body["properties"]["details"]["managementGroupAncestors"],
        json!(["mg-platform", tenant])
    );
    // $recurse alone is refused; an unknown api-version too.
    assert_eq!(emu.get(&group("mg-corp", "&$recurse=true")).status, 400);
    let r =
        emu.get("providers/Microsoft.Management/managementGroups/mg-corp?api-version=2099-01-01");
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "NoRegisteredProviderFound");
}

#[test]
fn descendants_are_paged_and_name_their_parents_and_the_root_holds_the_rest() {
    let emu = Emu::start(&scenario());
    let tenant = emu.ready["tenant_id"].as_str().unwrap().to_string();
    let token = emu.arm_token();
    let items = all_pages(
        &emu,
        &format!("providers/Microsoft.Management/managementGroups/{tenant}/descendants?api-version={V}&$top=2"),
        "nextLink",
        &token,
    );
    let seen: Vec<(String, String, String)> = items
        .iter()
        .map(|i| {
            (
                i["type"].as_str().unwrap().to_string(),
                i["name"].as_str().unwrap().to_string(),
                i["properties"]["parent"]["id"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let g = "Microsoft.Management/managementGroups".to_string();
    let s = "Microsoft.Management/managementGroups/subscriptions".to_string();
    let want: BTreeSet<(String, String, String)> = [
        (g.clone(), "mg-platform".into(), tenant.clone()),
        (g, "mg-corp".into(), "mg-platform".into()),
        (s.clone(), SUB_A.into(), "mg-platform".into()),
        (s.clone(), SUB_B.into(), "mg-corp".into()),
        (s.clone(), SUB_C.into(), "mg-corp".into()),
        (s, SUB_OUT.into(), tenant.clone()),
    ]
    .into_iter()
    .collect();
    assert_eq!(seen.len(), 6, "no duplicates across pages: {seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), want);
    let sub_item = items.iter().find(|i| i["name"] == SUB_B).unwrap();
    assert_eq!(sub_item["id"], format!("/subscriptions/{SUB_B}"));
    assert_eq!(sub_item["properties"]["displayName"], "B");

    // The subscriptions directly in a group.
    let r = emu.get(&format!(
        "providers/Microsoft.Management/managementGroups/mg-corp/subscriptions?api-version={V}"
    ));
    assert_eq!(r.status, 200, "{}", r.text);
    let names: Vec<&str> = r.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec![SUB_B, SUB_C]);
    assert_eq!(r.body["value"][0]["properties"]["state"], "Active");

    // The list: every group, `@nextLink` as in the spec.
    let r = emu.get(&format!(
        "providers/Microsoft.Management/managementGroups?api-version={V}"
    ));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("@nextLink").is_some());
    let names: BTreeSet<&str> = r.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["mg-platform", "mg-corp", tenant.as_str()])
    );
    assert_eq!(r.body["value"][0]["properties"]["tenantId"], tenant);
}

#[test]
fn a_role_at_a_group_reaches_its_subscriptions_and_nothing_else() {
    let emu = Emu::start(&scenario());
    let r = emu.token_for(READER_APP, "s", "https://management.azure.com/.default");
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["access_token"].as_str().unwrap().to_string();
    let get = |path: &str| emu.call_with(Method::GET, path, None, Some(&token), &[]);

    assert_eq!(get(&group("mg-corp", "")).status, 200);
    let denied = get(&group("mg-platform", ""));
    assert_eq!(denied.status, 403, "{}", denied.text);
    assert_eq!(denied.body["error"]["code"], "AuthorizationFailed");
    // A group that does not exist answers the same as one the caller may not read.
    let unknown = get(&group("mg-nowhere", ""));
    assert_eq!(unknown.status, 403);
    assert_eq!(unknown.body["error"]["code"], "AuthorizationFailed");

    let listed = get(&format!(
        "providers/Microsoft.Management/managementGroups?api-version={V}"
    ));
    let names: Vec<&str> = listed.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["mg-corp"]);

    let subs = get("subscriptions?api-version=2022-12-01");
    let ids: BTreeSet<&str> = subs.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["subscriptionId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from([SUB_B, SUB_C]));
    let vms = |sub: &str| {
        get(&format!(
            "subscriptions/{sub}/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01"
        ))
        .status
    };
    assert_eq!(vms(SUB_B), 200);
    assert_eq!(vms(SUB_A), 403);
    assert_eq!(vms(SUB_OUT), 403);
    // Reader: no writes through the inherited role.
    let write = emu.call_with(
        Method::PUT,
        &format!("subscriptions/{SUB_B}/resourcegroups/rg-new?api-version=2022-09-01"),
        Some(&json!({"location": "eastus"})),
        Some(&token),
        &[],
    );
    assert_eq!(write.status, 403, "{}", write.text);
}

#[test]
fn without_groups_every_subscription_is_under_the_root_group() {
    // `management_groups` present but empty: the root only, the client Owner there.
    let emu = Emu::start(&json!({
        "subscriptions": [{"id": SUB_A}, {"id": SUB_B}],
        "management_groups": []
    }));
    let tenant = emu.ready["tenant_id"].as_str().unwrap().to_string();
    let r = emu.get(&group(&tenant, "&$expand=children&$recurse=true"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["properties"]["displayName"], "Tenant Root Group");
    assert_eq!(r.body["properties"]["details"]["parent"], Value::Null);
    let ids: BTreeSet<&str> = r.body["properties"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from([SUB_A, SUB_B]));
    // With no `management_groups` at all, the client is Owner on its subscriptions only:
    // the root group exists but is not readable to it.
    let emu = Emu::start(&json!({"subscriptions": [{"id": SUB_A}]}));
    let tenant = emu.ready["tenant_id"].as_str().unwrap().to_string();
    assert_eq!(emu.get(&group(&tenant, "")).status, 403);
    // Writes are not emulated.
    assert_eq!(
        emu.arm(Method::PUT, &group("mg-new", ""), Some(&json!({})))
            .status,
        405
    );
}
