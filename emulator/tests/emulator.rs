//! End-to-end tests: the real binary over HTTPS.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const V_VM: &str = "2024-07-01";

#[test]
fn ready_file_has_the_documented_keys_and_metadata_endpoint_answers() {
    let emu = Emu::start(&json!({}));
    let keys: Vec<&String> = emu.ready.as_object().unwrap().keys().collect();
    let mut want = vec![
        "arm_endpoint",
        "authority_host",
        "graph_endpoint",
        "graph_host_endpoint",
        "metadata_host",
        "ca_cert_file",
        "tenant_id",
        "subscription_ids",
        "client_id",
        "client_secret",
        "managed_identity_endpoint",
        "managed_identity_header",
    ];
    want.sort();
    let mut got: Vec<&str> = keys.iter().map(|s| s.as_str()).collect();
    got.sort();
    assert_eq!(got, want);
    let base = emu.base();
    assert!(base.starts_with("https://127.0.0.1:") && base.ends_with('/'));
    assert_eq!(
        emu.ready["metadata_host"],
        base.trim_start_matches("https://").trim_end_matches('/')
    );
    assert_eq!(
        emu.ready["managed_identity_endpoint"],
        format!("{base}msi/token")
    );
    assert!(std::path::Path::new(emu.ready["ca_cert_file"].as_str().unwrap()).is_absolute());
    assert_eq!(emu.ready["subscription_ids"], json!([SUB]));

    let r = emu.call_with(
        Method::GET,
        "metadata/endpoints?api-version=2022-09-01",
        None,
        None,
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body["resourceManager"], base);
    assert_eq!(r.body["authentication"]["loginEndpoint"], base);
    assert_eq!(
        r.body["authentication"]["audiences"][1],
        "https://management.azure.com/"
    );
    // Graph has its own listener and host name, announced both as its address and as
    // its audience, so a client that picks the audience from the URL gets Graph's.
    let graph = emu.ready["graph_host_endpoint"].as_str().unwrap();
    assert!(graph.starts_with("https://localhost:") && graph.ends_with('/'));
    assert_eq!(r.body["microsoftGraphResourceId"], graph);
    assert_eq!(r.body["graph"], graph);
    let tenant = emu.ready["tenant_id"].as_str().unwrap();
    let oidc = emu.call_with(
        Method::GET,
        &format!("{tenant}/v2.0/.well-known/openid-configuration"),
        None,
        None,
        &[],
    );
    assert_eq!(oidc.status, 200);
    assert_eq!(
        oidc.body["token_endpoint"],
        format!("{base}{tenant}/oauth2/v2.0/token")
    );
    let disc = emu.call_with(
        Method::GET,
        "common/discovery/instance?api-version=1.1&authorization_endpoint=x",
        None,
        None,
        &[],
    );
    assert_eq!(disc.status, 200);
    assert!(disc.body["tenant_discovery_endpoint"]
        .as_str()
        .unwrap()
        .starts_with(&base));
}

#[test]
fn tokens_are_issued_and_bad_ones_get_arms_401s() {
    let emu = Emu::start(&json!({}));
    let list = format!("subscriptions/{SUB}/resourcegroups?api-version=2022-09-01");
    // Missing header.
    let r = emu.call_with(Method::GET, &list, None, None, &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["code"], "AuthenticationFailed");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("error=\"invalid_token\""));
    // Garbage token.
    let r = emu.call_with(Method::GET, &list, None, Some("not.a.jwt"), &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["code"], "InvalidAuthenticationToken");
    // Wrong audience (a Graph token).
    let graph = emu.token("https://graph.microsoft.com/.default");
    let r = emu.call_with(Method::GET, &list, None, Some(&graph), &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body["error"]["code"],
        "InvalidAuthenticationTokenAudience"
    );
    // Expired.
    let expired = emu.admin(Method::POST, "tokens", Some(&json!({"expires_in": -60})));
    let t = expired.body["access_token"].as_str().unwrap();
    let r = emu.call_with(Method::GET, &list, None, Some(t), &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["code"], "ExpiredAuthenticationToken");
    // The old audience works too.
    let core = emu.token("https://management.core.windows.net//.default");
    assert_eq!(
        emu.call_with(Method::GET, &list, None, Some(&core), &[])
            .status,
        200
    );
    // The token carries tid/oid/appid.
    let arm = emu.arm_token();
    let payload = arm.split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["tid"], emu.ready["tenant_id"]);
    assert_eq!(claims["appid"], emu.ready["client_id"]);
    assert!(claims["oid"].is_string() && claims["exp"].is_u64());
    // Bad secret / unknown client.
    let r = emu.token_for(
        emu.ready["client_id"].as_str().unwrap(),
        "wrong",
        "https://management.azure.com/.default",
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"], "invalid_client");
    assert!(r.body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215"));
    let r = emu.token_for(
        "6a2f6a43-0000-0000-0000-000000000000",
        "x",
        "https://management.azure.com/.default",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"], "unauthorized_client");
    // Graph refuses an ARM token.
    let r = emu.call_with(
        Method::GET,
        "v1.0/servicePrincipals?$filter=appId eq 'x'",
        None,
        Some(&arm),
        &[],
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.body["error"]["code"], "InvalidAuthenticationToken");
}

#[test]
fn api_version_errors_follow_arm() {
    let emu = Emu::start(&basic_scenario());
    let r = emu.get(&format!("subscriptions/{SUB}/resourcegroups/rg-app"));
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "MissingApiVersionParameter");
    let r = emu.get(&format!(
        "subscriptions/{SUB}/resourcegroups/rg-app?api-version=2099-01-01"
    ));
    assert_eq!(r.body["error"]["code"], "InvalidApiVersionParameter");
    let r = emu.get(&vm_path("rg-app", "vm-none", "2099-01-01"));
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "NoRegisteredProviderFound");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("2024-07-01"));
    for v in ["2024-07-01", "2024-11-01", "2025-04-01"] {
        assert_eq!(emu.get(&vm_path("rg-app", "vm-none", v)).status, 200, "{v}");
    }
    // Common headers.
    let r = emu.get(&rg_path("rg-app"));
    assert!(r.header("x-ms-request-id").is_some());
    assert!(r.header("x-ms-correlation-request-id").is_some());
    assert!(r
        .header("x-ms-ratelimit-remaining-subscription-reads")
        .is_some());
}

#[test]
fn resource_groups_crud_and_delete_is_long_running() {
    let emu = Emu::start(&json!({}));
    let r = emu.put(
        &rg_path("rg-new"),
        json!({"location": "westeurope", "tags": {"a": "b"}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["type"], "Microsoft.Resources/resourceGroups");
    assert_eq!(r.body["properties"]["provisioningState"], "Succeeded");
    assert_eq!(
        emu.put(&rg_path("rg-new"), json!({"location": "westeurope"}))
            .status,
        200
    );
    let head = emu.arm(Method::HEAD, &rg_path("rg-new"), None);
    assert_eq!(head.status, 204);
    let r = emu.get(&format!(
        "subscriptions/{SUB}/resourcegroups?api-version=2022-09-01"
    ));
    assert_eq!(r.body["value"].as_array().unwrap().len(), 1);
    let del = emu.delete(&rg_path("rg-new"));
    assert_eq!(del.status, 202);
    let loc = del.header("location").unwrap();
    let poll = emu.arm(Method::GET, &loc, None);
    assert_eq!(poll.status, 200);
    let r = emu.get(&rg_path("rg-new"));
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], "ResourceGroupNotFound");
    assert_eq!(emu.arm(Method::HEAD, &rg_path("rg-new"), None).status, 404);
}

#[test]
fn identities_create_service_principals_and_delete_removes_them() {
    let emu = Emu::start(&basic_scenario());
    let path = format!("subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-new?api-version=2023-01-31");
    let r = emu.put(&path, json!({"location": "eastus", "tags": {"k": "v"}}));
    assert_eq!(r.status, 201, "{}", r.text);
    let pid = r.body["properties"]["principalId"]
        .as_str()
        .unwrap()
        .to_string();
    let cid = r.body["properties"]["clientId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(r.body["properties"]["tenantId"], emu.ready["tenant_id"]);
    assert_eq!(emu.put(&path, json!({"location": "eastus"})).status, 200);
    let graph = emu.token("https://graph.microsoft.com/.default");
    let g = emu.call_with(Method::POST, "v1.0/directoryObjects/getByIds", Some(&json!({"ids": [pid, "00000000-1111-2222-3333-444444444444"], "types": ["servicePrincipal"]})), Some(&graph), &[]);
    assert_eq!(g.status, 200, "{}", g.text);
    let vals = g.body["value"].as_array().unwrap();
    assert_eq!(vals.len(), 1);
    assert_eq!(vals[0]["@odata.type"], "#microsoft.graph.servicePrincipal");
    assert_eq!(vals[0]["appId"], cid.as_str());
    assert_eq!(vals[0]["servicePrincipalType"], "ManagedIdentity");
    let byapp = emu.call_with(
        Method::GET,
        &format!("v1.0/servicePrincipals?$filter=appId eq '{cid}'"),
        None,
        Some(&graph),
        &[],
    );
    assert_eq!(byapp.body["value"][0]["id"], pid.as_str());
    // Lists.
    let l = emu.get(&format!("subscriptions/{SUB}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2024-11-30"));
    assert_eq!(l.body["value"].as_array().unwrap().len(), 4);
    assert_eq!(l.body["value"][0]["properties"]["isolationScope"], "None");
    let l = emu.get(&format!("subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2018-11-30"));
    assert_eq!(l.body["value"].as_array().unwrap().len(), 4);
    // Delete: 200, then 204, and the principal is gone from Graph.
    assert_eq!(emu.delete(&path).status, 200);
    assert_eq!(emu.delete(&path).status, 204);
    let sp = emu.call_with(
        Method::GET,
        &format!("v1.0/servicePrincipals/{pid}"),
        None,
        Some(&graph),
        &[],
    );
    assert_eq!(sp.status, 404);
    assert_eq!(sp.body["error"]["code"], "Request_ResourceNotFound");
    let r = emu.get(&path);
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], "ResourceNotFound");
}

#[test]
fn locks_block_deletes_and_read_only_blocks_writes() {
    let emu = Emu::start(&basic_scenario());
    let ident = uami_id("rg-app", "id-c");
    let lock = format!(
        "{}/providers/Microsoft.Authorization/locks/CanNotDeleteLock-id-c?api-version=2020-05-01",
        ident.trim_start_matches('/')
    );
    let r = emu.put(
        &lock,
        json!({"properties": {"level": "CanNotDelete", "notes": "keep"}}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["type"], "Microsoft.Authorization/locks");
    assert_eq!(r.body["properties"]["level"], "CanNotDelete");
    assert_eq!(emu.get(&lock).body["properties"]["notes"], "keep");
    let del = emu.delete(&format!(
        "{}?api-version=2023-01-31",
        ident.trim_start_matches('/')
    ));
    assert_eq!(del.status, 409);
    assert_eq!(del.body["error"]["code"], "ScopeLocked");
    let del = emu.delete(&rg_path("rg-app"));
    assert_eq!(del.status, 409);
    assert_eq!(del.body["error"]["code"], "ScopeLocked");
    // Writes still allowed under CanNotDelete.
    assert_eq!(
        emu.patch(
            &format!("{}?api-version=2023-01-31", ident.trim_start_matches('/')),
            json!({"tags": {"x": "y"}})
        )
        .status,
        200
    );
    // ReadOnly on a VM blocks PATCH.
    let vm_lock = format!("subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-none/providers/Microsoft.Authorization/locks/ro?api-version=2016-09-01");
    assert_eq!(
        emu.put(&vm_lock, json!({"properties": {"level": "ReadOnly"}}))
            .status,
        201
    );
    let p = emu.patch(
        &vm_path("rg-app", "vm-none", V_VM),
        json!({"tags": {"a": "b"}}),
    );
    assert_eq!(p.status, 409);
    assert_eq!(p.body["error"]["code"], "ScopeLocked");
    // Listing at the RG shows both locks; at subscription too.
    let l = emu.get(&format!(
        "subscriptions/{SUB}/providers/Microsoft.Authorization/locks?api-version=2020-05-01"
    ));
    assert_eq!(l.body["value"].as_array().unwrap().len(), 2);
    // Remove the locks and delete works.
    assert_eq!(emu.delete(&lock).status, 200);
    assert_eq!(emu.delete(&vm_lock).status, 200);
    assert_eq!(
        emu.delete(&format!(
            "{}?api-version=2023-01-31",
            ident.trim_start_matches('/')
        ))
        .status,
        200
    );
}

fn uai_keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v["identity"]["userAssignedIdentities"]
        .as_object()
        .map(|m| m.keys().map(|s| s.to_ascii_lowercase()).collect())
        .unwrap_or_default();
    k.sort();
    k
}

#[test]
fn vm_identity_patch_merges_removes_and_rejects_invalid_transitions() {
    let emu = Emu::start(&basic_scenario());
    let a = uami_id("rg-app", "id-a");
    let b = uami_id("rg-app", "id-b");
    let c = uami_id("rg-app", "id-c");
    // Merge: vm-one has A; PATCH adds B -> A, B.
    let p = emu.patch(
        &vm_path("rg-app", "vm-one", V_VM),
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {b.clone(): {}}}}),
    );
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.body["properties"]["provisioningState"], "Updating");
    assert!(p.header("azure-asyncoperation").is_some());
    assert_eq!(
        uai_keys(&p.body),
        vec![a.to_ascii_lowercase(), b.to_ascii_lowercase()]
    );
    assert!(p.body["identity"]["userAssignedIdentities"][&b]["principalId"].is_string());
    // null removes.
    let p = emu.patch(
        &vm_path("rg-app", "vm-one", V_VM),
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {a.clone(): null}}}),
    );
    assert_eq!(p.status, 200);
    assert_eq!(uai_keys(&p.body), vec![b.to_ascii_lowercase()]);
    // Removing the last one while staying UserAssigned is invalid.
    let p = emu.patch(
        &vm_path("rg-app", "vm-one", V_VM),
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {b.clone(): null}}}),
    );
    assert_eq!(p.status, 400);
    assert_eq!(p.body["error"]["code"], "InvalidParameter");
    // UserAssigned with no identities at all.
    let p = emu.patch(
        &vm_path("rg-app", "vm-none", V_VM),
        json!({"identity": {"type": "UserAssigned"}}),
    );
    assert_eq!(p.status, 400);
    // SystemAssigned with identities given.
    let p = emu.patch(
        &vm_path("rg-app", "vm-none", V_VM),
        json!({"identity": {"type": "SystemAssigned", "userAssignedIdentities": {a.clone(): {}}}}),
    );
    assert_eq!(p.status, 400);
    assert!(p.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("should not be provided"));
    // Values other than {} / null.
    let p = emu.patch(&vm_path("rg-app", "vm-none", V_VM), json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {a.clone(): {"principalId": "x"}}}}));
    assert_eq!(p.body["error"]["code"], "InvalidIdentityValues");
    // An identity that does not exist.
    let missing = uami_id("rg-app", "nope");
    let p = emu.patch(
        &vm_path("rg-app", "vm-none", V_VM),
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {missing: {}}}}),
    );
    assert_eq!(p.body["error"]["code"], "FailedIdentityOperation");
    // System + user: switching to UserAssigned drops the system identity, keeps users.
    let before = emu.get(&vm_path("rg-app", "vm-both", V_VM));
    assert!(before.body["identity"]["principalId"].is_string());
    let p = emu.patch(
        &vm_path("rg-app", "vm-both", V_VM),
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {c.clone(): {}}}}),
    );
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.body["identity"]["type"], "UserAssigned");
    assert!(p.body["identity"].get("principalId").is_none());
    assert_eq!(uai_keys(&p.body).len(), 2);
    // SystemAssigned -> SystemAssigned, UserAssigned keeps the same principal.
    let sys = emu.get(&vm_path("rg-app", "vm-sys", V_VM));
    let pid = sys.body["identity"]["principalId"].clone();
    let p = emu.patch(&vm_path("rg-app", "vm-sys", V_VM), json!({"identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {a.clone(): {}}}}));
    assert_eq!(p.body["identity"]["principalId"], pid);
    assert_eq!(p.body["identity"]["type"], "SystemAssigned, UserAssigned");
    // None removes everything.
    let p = emu.patch(
        &vm_path("rg-app", "vm-sys", V_VM),
        json!({"identity": {"type": "None"}}),
    );
    assert_eq!(p.status, 200);
    assert!(p.body.get("identity").is_none());
    // PUT uses the same merge semantics and keeps properties.
    let p = emu.put(&vm_path("rg-app", "vm-two", V_VM), json!({"location": "eastus", "identity": {"type": "UserAssigned", "userAssignedIdentities": {c.clone(): {}}}}));
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(uai_keys(&p.body).len(), 3);
    assert!(p.body["properties"]["hardwareProfile"].is_object());
    // Scale sets follow the same rules.
    let ss = format!("subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachineScaleSets/ss-1?api-version={V_VM}");
    let p = emu.patch(
        &ss,
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {a.clone(): {}}}}),
    );
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(uai_keys(&p.body), vec![a.to_ascii_lowercase()]);
}

#[test]
fn etag_and_if_match_give_412_and_concurrent_writer_fault_bumps_it() {
    let emu = Emu::start(&basic_scenario());
    let path = vm_path("rg-app", "vm-none", V_VM);
    let g = emu.get(&path);
    let etag = g.body["etag"].as_str().unwrap().to_string();
    assert_eq!(etag, "\"1\"");
    let t = emu.arm_token();
    let ok = emu.call_with(
        Method::PATCH,
        &path,
        Some(&json!({"tags": {"x": "1"}})),
        Some(&t),
        &[("If-Match", &etag)],
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.body["etag"], "\"2\"");
    let stale = emu.call_with(
        Method::PATCH,
        &path,
        Some(&json!({"tags": {"x": "2"}})),
        Some(&t),
        &[("If-Match", &etag)],
    );
    assert_eq!(stale.status, 412);
    assert_eq!(stale.body["error"]["code"], "PreconditionFailed");
    // Older api-versions carry no etag.
    assert!(emu
        .get(&vm_path("rg-app", "vm-none", "2023-03-01"))
        .body
        .get("etag")
        .is_none());
    // A concurrent writer sneaks in between our read and write.
    emu.admin(Method::POST, "faults", Some(&json!({"kind": "concurrent_write", "count": 1, "path_contains": "virtualMachines/vm-none"})));
    let g = emu.get(&path);
    let etag = g.body["etag"].as_str().unwrap().to_string();
    let r = emu.call_with(
        Method::PATCH,
        &path,
        Some(&json!({"tags": {"x": "3"}})),
        Some(&t),
        &[("If-Match", &etag)],
    );
    assert_eq!(r.status, 412);
    let g2 = emu.get(&path);
    assert!(g2.body["tags"]["concurrentWriter"]
        .as_str()
        .unwrap()
        .starts_with("write-"));
}

#[test]
fn updates_are_long_running_with_a_status_endpoint() {
    let emu = Emu::start(&basic_scenario());
    emu.admin(
        Method::POST,
        "realism",
        Some(&json!({"vm_update_seconds": 1.0})),
    );
    let path = vm_path("rg-app", "vm-none", V_VM);
    let p = emu.patch(&path, json!({"tags": {"a": "1"}}));
    assert_eq!(p.status, 200);
    assert_eq!(p.body["properties"]["provisioningState"], "Updating");
    let status_url = p.header("azure-asyncoperation").unwrap();
    assert!(status_url.contains("/providers/Microsoft.Compute/locations/eastus/operations/"));
    let s = emu.arm(Method::GET, &status_url, None);
    assert_eq!(s.body["status"], "InProgress");
    assert_eq!(
        emu.get(&path).body["properties"]["provisioningState"],
        "Updating"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let s = emu.arm(Method::GET, &status_url, None);
    assert_eq!(s.body["status"], "Succeeded");
    assert!(s.body["endTime"].is_string());
    assert_eq!(
        emu.get(&path).body["properties"]["provisioningState"],
        "Succeeded"
    );
    // Create by PUT and delete are long-running too.
    let c = emu.put(&vm_path("rg-app", "vm-created", V_VM), json!({
        "location": "eastus",
        "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"}, "osProfile": {"computerName": "c", "adminUsername": "u", "adminPassword": "Secret123!"}}
    }));
    assert_eq!(c.status, 201, "{}", c.text);
    assert_eq!(c.body["properties"]["provisioningState"], "Creating");
    assert!(c.body["properties"]["osProfile"]
        .get("adminPassword")
        .is_none());
    let d = emu.delete(&vm_path("rg-app", "vm-created", V_VM));
    assert_eq!(d.status, 202);
    assert!(d.header("location").is_some());
}

#[test]
fn vm_lists_page_with_next_link() {
    let vms: Vec<Value> = (0..120)
        .map(|i| json!({"name": format!("vm-{i:03}"), "resource_group": format!("rg-{}", i % 3)}))
        .collect();
    let emu = Emu::start(
        &json!({"subscriptions": [{"id": SUB, "virtual_machines": vms}], "realism": {"page_size": 50}}),
    );
    let mut url = format!(
        "subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines?api-version={V_VM}"
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = emu.get(&url);
        assert_eq!(r.status, 200, "{}", r.text);
        pages += 1;
        for v in r.body["value"].as_array().unwrap() {
            seen.push(v["id"].as_str().unwrap().to_string());
        }
        match r.body["nextLink"].as_str() {
            Some(n) => url = n.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 120);
    let r = emu.get(&format!("subscriptions/{SUB}/resourceGroups/rg-0/providers/Microsoft.Compute/virtualMachines?api-version={V_VM}"));
    assert_eq!(r.body["value"].as_array().unwrap().len(), 40);
}

#[test]
fn role_assignments_definitions_and_permissions() {
    let emu = Emu::start(&basic_scenario());
    let ident = emu.get(&format!(
        "{}?api-version=2023-01-31",
        uami_id("rg-app", "id-a").trim_start_matches('/')
    ));
    let pid = ident.body["properties"]["principalId"]
        .as_str()
        .unwrap()
        .to_string();
    let scope = format!("subscriptions/{SUB}/resourceGroups/rg-app");
    let name = "3f2b2c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d";
    let path = format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignments/{name}?api-version=2022-04-01"
    );
    let rd = format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7");
    let r = emu.put(&path, json!({"properties": {"roleDefinitionId": rd, "principalId": pid, "principalType": "ServicePrincipal"}}));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["properties"]["roleDefinitionId"], rd.as_str());
    assert_eq!(r.body["properties"]["scope"], format!("/{scope}"));
    assert!(r.body["properties"]["createdOn"].is_string());
    // Same triple under another name.
    let dup = emu.put(&format!("{scope}/providers/Microsoft.Authorization/roleAssignments/0f2b2c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d?api-version=2022-04-01"), json!({"properties": {"roleDefinitionId": rd, "principalId": pid}}));
    assert_eq!(dup.status, 409);
    assert_eq!(dup.body["error"]["code"], "RoleAssignmentExists");
    // Unknown principal.
    let bad = emu.put(&format!("{scope}/providers/Microsoft.Authorization/roleAssignments/1f2b2c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d?api-version=2022-04-01"), json!({"properties": {"roleDefinitionId": rd, "principalId": "9a9a9a9a-0000-0000-0000-000000000000"}}));
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["error"]["code"], "PrincipalNotFound");
    // Lists: atScope at the RG shows the sub-level Owner and ours; principal filter finds ours from the subscription.
    let l = emu.get(&format!("{scope}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()"));
    assert_eq!(l.body["value"].as_array().unwrap().len(), 2);
    let l = emu.get(&format!("subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=principalId eq '{pid}'"));
    assert_eq!(l.body["value"].as_array().unwrap().len(), 1);
    let l = emu.get(&format!("subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()"));
    assert_eq!(l.body["value"].as_array().unwrap().len(), 1);
    assert_eq!(emu.get(&path).status, 200);
    let d = emu.delete(&path);
    assert_eq!(d.status, 200);
    assert_eq!(
        emu.get(&path).body["error"]["code"],
        "RoleAssignmentNotFound"
    );
    assert_eq!(emu.delete(&path).status, 204);
    // Definitions with real GUIDs.
    for (id, n) in [
        ("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner"),
        ("b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor"),
        (
            "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
            "User Access Administrator",
        ),
        (
            "f1a07417-d97a-45cb-824c-7a7467783830",
            "Managed Identity Operator",
        ),
        (
            "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59",
            "Managed Identity Contributor",
        ),
        (
            "9980e02c-c2be-4d73-94e8-173b1dc7cf3c",
            "Virtual Machine Contributor",
        ),
    ] {
        let r = emu.get(&format!("subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{id}?api-version=2022-04-01"));
        assert_eq!(r.body["properties"]["roleName"], n);
    }
    let r = emu.get(&format!("subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01&$filter=roleName eq 'Contributor'"));
    assert_eq!(r.body["value"].as_array().unwrap().len(), 1);
    let p = emu.get(&format!(
        "{scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01"
    ));
    assert_eq!(p.body["value"][0]["actions"], json!(["*"]));
}

#[test]
fn new_principals_replicate_with_a_delay() {
    let emu = Emu::start(&json!({
        "subscriptions": [{"id": SUB, "resource_groups": [{"name": "rg", "location": "eastus"}]}],
        "realism": {"principal_replication_seconds": 1.5}
    }));
    let path = format!("subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/fresh?api-version=2023-01-31");
    let r = emu.put(&path, json!({"location": "eastus"}));
    let pid = r.body["properties"]["principalId"]
        .as_str()
        .unwrap()
        .to_string();
    let graph = emu.token("https://graph.microsoft.com/.default");
    let g = emu.call_with(
        Method::POST,
        "v1.0/directoryObjects/getByIds",
        Some(&json!({"ids": [pid]})),
        Some(&graph),
        &[],
    );
    assert_eq!(g.body["value"].as_array().unwrap().len(), 0);
    let ra = format!("subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Authorization/roleAssignments/7d2b2c4d-5e6f-4a1b-8c9d-0e1f2a3b4c5d?api-version=2022-04-01");
    let body = json!({"properties": {"roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"), "principalId": pid, "principalType": "ServicePrincipal"}});
    let r = emu.put(&ra, body.clone());
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "PrincipalNotFound");
    std::thread::sleep(Duration::from_millis(1700));
    let g = emu.call_with(
        Method::POST,
        "v1.0/directoryObjects/getByIds",
        Some(&json!({"ids": [pid]})),
        Some(&graph),
        &[],
    );
    assert_eq!(g.body["value"].as_array().unwrap().len(), 1);
    assert_eq!(emu.put(&ra, body).status, 201);
}

#[test]
fn managed_identity_endpoints_follow_imds_default_rules() {
    let mut sc = basic_scenario();
    let vm_one = format!("/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-one");
    sc["managed_identities_on_host"] = json!({"vm": vm_one});
    let emu = Emu::start(&sc);
    let url = "metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/";
    let r = emu.call_with(Method::GET, url, None, None, &[]);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["error_description"],
        "Required metadata header not specified"
    );
    let r = emu.call_with(Method::GET, url, None, None, &[("Metadata", "true")]);
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["access_token"].as_str().unwrap().to_string();
    // The MI token works against ARM (no role: 403 on a read, not 401).
    let g = emu.call_with(Method::GET, &rg_path("rg-app"), None, Some(&token), &[]);
    assert_eq!(g.status, 403, "{}", g.text);
    // Give the VM a second identity: IMDS now needs a client id.
    let b = uami_id("rg-app", "id-b");
    emu.patch(
        &vm_path("rg-app", "vm-one", V_VM),
        json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {b.clone(): {}}}}),
    );
    let r = emu.call_with(Method::GET, url, None, None, &[("Metadata", "true")]);
    assert_eq!(r.status, 400);
    assert!(r.body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("Multiple user assigned identities exist"));
    let ib = emu.get(&format!(
        "{}?api-version=2023-01-31",
        b.trim_start_matches('/')
    ));
    let cid = ib.body["properties"]["clientId"].as_str().unwrap();
    let r = emu.call_with(
        Method::GET,
        &format!("{url}&client_id={cid}"),
        None,
        None,
        &[("Metadata", "true")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body["client_id"], cid);
    let r = emu.call_with(
        Method::GET,
        &format!("{url}&client_id=00000000-0000-0000-0000-00000000dead"),
        None,
        None,
        &[("Metadata", "true")],
    );
    assert_eq!(r.body["error_description"], "Identity not found");
    // App Service style.
    let ms = emu.ready["managed_identity_endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    let hdr = emu.ready["managed_identity_header"]
        .as_str()
        .unwrap()
        .to_string();
    let r = emu.call_with(
        Method::GET,
        &format!(
            "{ms}?api-version=2019-08-01&resource=https://management.azure.com&client_id={cid}"
        ),
        None,
        None,
        &[("X-IDENTITY-HEADER", &hdr)],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["expires_on"].is_string());
    let r = emu.call_with(
        Method::GET,
        &format!("{ms}?api-version=2019-08-01&resource=https://management.azure.com"),
        None,
        None,
        &[],
    );
    assert_eq!(r.status, 401);
}

#[test]
fn realistic_profile_throttles_with_429_and_retry_after() {
    let emu = Emu::start_with(
        &json!({"realism": {"read_bucket": 5, "read_refill_per_sec": 1}}),
        "realistic",
        None,
    );
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..7 {
        let r = emu.get(&format!(
            "subscriptions/{SUB}/resourcegroups?api-version=2022-09-01"
        ));
        statuses.push(r.status);
        last = Some(r);
    }
    assert_eq!(&statuses[..5], &[200; 5]);
    let last = last.unwrap();
    assert_eq!(last.status, 429);
    assert_eq!(last.body["error"]["code"], "SubscriptionRequestsThrottled");
    assert!(last.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(
        last.header("x-ms-ratelimit-remaining-subscription-reads")
            .unwrap(),
        "0"
    );
}

#[test]
fn faults_inject_statuses_drops_and_delays() {
    let emu = Emu::start(&basic_scenario());
    let r = emu.admin(Method::POST, "faults", Some(&json!({"kind": "status", "status": 503, "retry_after": 2, "count": 2, "method": "GET", "path_contains": "resourcegroups/rg-app"})));
    assert_eq!(r.status, 201);
    let a = emu.get(&rg_path("rg-app"));
    assert_eq!(a.status, 503);
    assert_eq!(a.header("retry-after").unwrap(), "2");
    assert_eq!(emu.get(&rg_path("rg-app")).status, 503);
    assert_eq!(emu.get(&rg_path("rg-app")).status, 200);
    emu.admin(
        Method::POST,
        "faults",
        Some(&json!({"kind": "drop_connection", "count": 1, "path_contains": "rg-app"})),
    );
    let t = emu.arm_token();
    let dropped = emu
        .http
        .get(emu.url(&rg_path("rg-app")))
        .bearer_auth(&t)
        .send();
    assert!(dropped.is_err(), "connection should drop");
    emu.admin(
        Method::POST,
        "faults",
        Some(&json!({"kind": "delay", "ms": 300, "count": 1})),
    );
    let start = std::time::Instant::now();
    assert_eq!(emu.get(&rg_path("rg-app")).status, 200);
    assert!(start.elapsed() >= Duration::from_millis(290));
    emu.admin(Method::DELETE, "faults", None);
    // The request log counts calls.
    let log = emu.admin(Method::GET, "requests", None);
    let entries = log.body.as_array().unwrap();
    assert!(entries
        .iter()
        .any(|e| e["status"] == 503 && e["api_version"] == "2022-09-01"));
    assert!(entries
        .iter()
        .filter(|e| e["method"] == "GET")
        .all(|e| e.get("caller").is_some()));
    emu.admin(Method::DELETE, "requests", None);
    assert_eq!(
        emu.admin(Method::GET, "requests", None)
            .body
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn state_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let keep = tempfile::tempdir().unwrap();
    let mut emu = Emu::start_in(keep, &json!({}), "fast", Some(state.clone()));
    assert_eq!(
        emu.put(&rg_path("rg-persist"), json!({"location": "eastus"}))
            .status,
        201
    );
    let client = emu.ready["client_id"].clone();
    emu.stop();
    assert!(state.exists());
    let emu2 = Emu::start_with(&json!({}), "fast", Some(state));
    assert_eq!(emu2.ready["client_id"], client);
    assert_eq!(emu2.get(&rg_path("rg-persist")).status, 200);
}

#[test]
fn scenario_can_be_replaced_through_the_admin_api() {
    let emu = Emu::start(&json!({}));
    let r = emu.admin(Method::POST, "scenario", Some(&basic_scenario()));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["virtual_machines"], 5);
    // The client still works (its credentials are kept).
    let l = emu.get(&format!(
        "subscriptions/{SUB}/providers/Microsoft.Compute/virtualMachines?api-version={V_VM}"
    ));
    assert_eq!(l.body["value"].as_array().unwrap().len(), 5);
    let st = emu.admin(Method::GET, "state", None);
    assert!(st.body["vms"].is_object());
}

#[test]
fn generator_writes_a_loadable_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("big.json");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_azure-emulator"))
        .args([
            "generate",
            "--vms",
            "300",
            "--regions",
            "4",
            "--scale-sets",
            "10",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        doc["subscriptions"][0]["virtual_machines"]
            .as_array()
            .unwrap()
            .len(),
        300
    );
    let emu = Emu::start(&doc);
    let r = emu.get(&format!(
        "subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG?api-version=2022-09-01"
    ));
    assert_eq!(r.status, 200, "{}", r.text);
}
