//! The inventory and check data sources with real Terraform against the emulator:
//! `mig_virtual_machines`, `mig_unused_identities` and `mig_permissions`.

use acceptance_tests::{configuration, Emulator, Workdir};
use serde_json::{json, Value as Json};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const READER_OBJECT: &str = "5eade000-0000-4000-8000-000000000001";
const READER_APP: &str = "5eade000-0000-4000-8000-0000000000a1";
const READER_SECRET: &str = "reader-secret";

fn identity(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}")
}

fn scenario() -> Json {
    json!({
        "subscriptions": [{
            "id": SUB,
            "regions": ["eastus", "westeurope"],
            "resource_groups": [{"name": "rg-app", "location": "eastus"}],
            "user_assigned_identities": [
                {"name": "id-unused", "resource_group": "rg-app", "location": "eastus"},
                {"name": "id-attached", "resource_group": "rg-app", "location": "eastus"},
                {"name": "id-granted", "resource_group": "rg-app", "location": "eastus"}
            ],
            "virtual_machines": [
                {"name": "vm-east", "resource_group": "rg-app", "location": "eastus",
                 "identity": {"type": "SystemAssigned, UserAssigned", "user_assigned": ["id-attached"]}},
                {"name": "vm-west", "resource_group": "rg-app", "location": "westeurope"}
            ],
            "scale_sets": [{"name": "ss-west", "resource_group": "rg-app", "location": "westeurope"}],
            "role_assignments": [
                {"scope": format!("/subscriptions/{SUB}"), "role": "Reader", "principal_id": READER_OBJECT}
            ]
        }],
        "principals": [{"id": READER_OBJECT, "app_id": READER_APP, "secret": READER_SECRET, "display_name": "reader"}]
    })
}

#[test]
fn virtual_machines_lists_machines_and_their_regions() {
    let emulator = Emulator::start(&scenario());
    let work = Workdir::new(&configuration(
        &emulator.provider_block(),
        &format!(
            r#"data "mig_virtual_machines" "all" {{
  scope = "/subscriptions/{SUB}"
}}

data "mig_virtual_machines" "vms_only" {{
  scope          = "/subscriptions/{SUB}/resourceGroups/rg-app"
  resource_types = ["virtualMachines"]
}}

output "locations" {{ value = sort(data.mig_virtual_machines.all.locations) }}
output "count"     {{ value = length(data.mig_virtual_machines.all.machines) }}
output "vm_count"  {{ value = length(data.mig_virtual_machines.vms_only.machines) }}
output "east"      {{ value = [for m in data.mig_virtual_machines.all.machines : m if m.name == "vm-east"][0] }}"#
        ),
    ));
    work.init();
    work.apply();
    let outputs = work.outputs();
    assert_eq!(outputs["locations"], json!(["eastus", "westeurope"]));
    assert_eq!(outputs["count"], json!(3), "two VMs and a scale set");
    assert_eq!(outputs["vm_count"], json!(2));
    let east = &outputs["east"];
    assert_eq!(east["identity_type"], "SystemAssigned, UserAssigned");
    assert_eq!(east["resource_type"], "virtualMachines");
    let attached: Vec<String> = east["user_assigned_identity_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_lowercase())
        .collect();
    assert_eq!(attached, vec![identity("id-attached").to_lowercase()]);
}

#[test]
fn unused_identities_are_those_attached_nowhere_and_granted_nothing() {
    let emulator = Emulator::start(&scenario());
    // id-granted holds a role: give it one through ARM, as a user would.
    let granted = emulator
        .arm_get(&identity("id-granted"), "2023-01-31")
        .unwrap();
    let (status, body) = emulator.arm_send(
        reqwest::Method::PUT,
        &format!("/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Authorization/roleAssignments/0f0e0d0c-0b0a-4909-8807-060504030201"),
        "2022-04-01",
        Some(&json!({"properties": {
            "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"),
            "principalId": granted["properties"]["principalId"],
            "principalType": "ServicePrincipal"
        }})),
    );
    assert!(status == 200 || status == 201, "{status} {body}");
    let work = Workdir::new(&configuration(
        &emulator.provider_block(),
        &format!(
            r#"data "mig_unused_identities" "rg" {{
  scope = "/subscriptions/{SUB}/resourceGroups/rg-app"
}}

output "unused" {{ value = [for i in data.mig_unused_identities.rg.identities : i.name] }}"#
        ),
    ));
    work.init();
    work.apply();
    assert_eq!(work.outputs()["unused"], json!(["id-unused"]));
}

#[test]
fn permissions_report_what_a_reader_lacks_and_nothing_for_an_owner() {
    let emulator = Emulator::start(&scenario());
    let body = format!(
        r#"data "mig_permissions" "sub" {{
  scope = "/subscriptions/{SUB}"
}}

output "sufficient" {{ value = data.mig_permissions.sub.sufficient }}
output "missing"    {{ value = sort(data.mig_permissions.sub.missing_actions) }}
output "by_resource" {{ value = data.mig_permissions.sub.missing_by_resource }}"#
    );

    let owner = Workdir::new(&configuration(&emulator.provider_block(), &body));
    owner.init();
    owner.apply();
    let outputs = owner.outputs();
    assert_eq!(outputs["sufficient"], json!(true));
    assert_eq!(outputs["missing"], json!([]));

    let reader_provider = emulator
        .provider_block()
        .replace(&emulator.ready.client_id, READER_APP)
        .replace(&emulator.ready.client_secret, READER_SECRET);
    let reader = Workdir::new(&configuration(&reader_provider, &body));
    reader.init();
    reader.apply();
    let outputs = reader.outputs();
    assert_eq!(outputs["sufficient"], json!(false));
    let missing: Vec<&str> = outputs["missing"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .collect();
    for needed in [
        "Microsoft.Compute/virtualMachines/write",
        "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
        "Microsoft.Authorization/locks/write",
        "Microsoft.Authorization/roleAssignments/delete",
    ] {
        assert!(
            missing.contains(&needed),
            "{needed} missing for a Reader: {missing:?}"
        );
    }
    assert!(
        !missing.iter().any(|action| action.ends_with("/read")),
        "a Reader may read: {missing:?}"
    );
    for resource in [
        "mig_builtin_identity",
        "mig_identity_assignment",
        "mig_orphan_cleanup",
    ] {
        assert!(
            outputs["by_resource"].get(resource).is_some(),
            "{resource} lacks something: {}",
            outputs["by_resource"]
        );
    }
}
