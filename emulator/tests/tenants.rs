//! Another tenant's subscription (Azure Lighthouse, guest access), and a Graph answer whose
//! body cannot be read: what the provider's orphan clean-up must refuse to act on.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const CUSTOMER_SUB: &str = "00000000-0000-0000-0000-0000000000c2";
const CUSTOMER_TENANT: &str = "c0570000-0000-4000-8000-00000000c0c0";
const V_RESOURCES: &str = "2022-12-01";

#[test]
fn a_subscription_of_another_tenant_says_so_and_graph_stays_home() {
    let emu = Emu::start(&json!({
        "subscriptions": [
            {"id": SUB},
            {"id": CUSTOMER_SUB, "tenant_id": CUSTOMER_TENANT.to_uppercase()}
        ]
    }));
    let home = emu.ready["tenant_id"].as_str().unwrap().to_string();
    let customer = emu.get(&format!(
        "subscriptions/{CUSTOMER_SUB}?api-version={V_RESOURCES}"
    ));
    assert_eq!(customer.status, 200, "{}", customer.text);
    assert_eq!(customer.body["tenantId"], CUSTOMER_TENANT);
    assert_eq!(
        customer.body["managedByTenants"],
        json!([{"tenantId": home}]),
        "seen through Lighthouse from the emulator's tenant"
    );
    let own = emu.get(&format!("subscriptions/{SUB}?api-version={V_RESOURCES}"));
    assert_eq!(own.body["tenantId"], json!(home));
    assert_eq!(own.body["managedByTenants"], json!([]));
    let listed = emu.get(&format!("subscriptions?api-version={V_RESOURCES}"));
    let tenants: Vec<(String, String)> = listed.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["subscriptionId"].as_str().unwrap().to_string(),
                s["tenantId"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        tenants.contains(&(CUSTOMER_SUB.to_string(), CUSTOMER_TENANT.to_string())),
        "{tenants:?}"
    );
    // A `tenant_id` naming the emulator's own tenant is no other tenant.
    let emu2 = Emu::start(&json!({"subscriptions": [{"id": SUB, "tenant_id": home}]}));
    let own = emu2.get(&format!("subscriptions/{SUB}?api-version={V_RESOURCES}"));
    assert_eq!(own.body["managedByTenants"], json!([]));
    // Tokens are still the emulator's tenant's: that is where Graph answers.
    let graph = emu.token("https://graph.microsoft.com/.default");
    assert_eq!(claims(&graph)["tid"], json!(home));
}

#[test]
fn a_status_fault_with_a_body_answers_that_body_as_it_is() {
    let emu = Emu::start(&json!({}));
    emu.admin(
        Method::POST,
        "faults",
        Some(&json!({"kind": "status", "status": 200, "count": 1,
            "path_contains": "getByIds", "body": "<html>maintenance</html>"})),
    );
    let graph = emu.token("https://graph.microsoft.com/.default");
    let ask = || {
        emu.call_with(
            Method::POST,
            "v1.0/directoryObjects/getByIds",
            Some(&json!({"ids": [SUB]})),
            Some(&graph),
            &[],
        )
    };
    let faulted = ask();
    assert_eq!(faulted.status, 200);
    assert_eq!(faulted.text, "<html>maintenance</html>");
    let served = ask();
    assert_eq!(served.status, 200);
    assert!(
        served.body["value"].is_array(),
        "count 1: then served again"
    );
    let listed = emu.admin(Method::GET, "faults", None);
    assert_eq!(listed.body[0]["body"], "<html>maintenance</html>");
    assert_eq!(listed.body[0]["hits"], 1);
}

/// A JWT's claims, unverified.
fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
