//! An estate in one configuration, with real Terraform: examples/estate applied to a management
//! group of the emulator (two groups, three subscriptions, machines in several regions, one
//! subscription outside the group). Every machine under the group gets its own subscription's
//! identity for its region, the outside subscription is not touched, the next plan is clean,
//! and destroy gives every machine back its identities as they were.
//! `mig_subscriptions` alone: every visible subscription without a group, what a Reader at a
//! group sees, and a group the principal cannot read.

use std::collections::{BTreeMap, BTreeSet};

use acceptance_tests::{configuration, workspace_root, Emulator, Workdir};
use serde_json::{json, Value as Json};

const SUB_A: &str = "a0000000-0000-4000-8000-00000000000a";
const SUB_B: &str = "b0000000-0000-4000-8000-00000000000b";
const SUB_C: &str = "c0000000-0000-4000-8000-00000000000c";
const SUB_OUT: &str = "d0000000-0000-4000-8000-00000000000d";
const READER_OBJECT: &str = "5eade000-0000-4000-8000-000000000001";
const READER_APP: &str = "5eade000-0000-4000-8000-0000000000a1";
const READER_SECRET: &str = "reader-secret";

fn machine_id(sub: &str, kind: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/rg-app/providers/Microsoft.Compute/{kind}/{name}")
}

fn builtin_id(sub: &str, region: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-{region}")
        .to_ascii_lowercase()
}

/// (subscription, kind, name, region, identity block) of every machine.
fn machines() -> Vec<(&'static str, &'static str, &'static str, &'static str, Json)> {
    vec![
        (SUB_A, "virtualMachines", "vm-a-east", "eastus", Json::Null),
        (
            SUB_A,
            "virtualMachines",
            "vm-a-west",
            "westeurope",
            json!({"type": "SystemAssigned"}),
        ),
        (SUB_B, "virtualMachines", "vm-b-east", "eastus", Json::Null),
        (
            SUB_B,
            "virtualMachineScaleSets",
            "ss-b-north",
            "northeurope",
            Json::Null,
        ),
        (
            SUB_C,
            "virtualMachines",
            "vm-c-west",
            "westeurope",
            json!({"type": "SystemAssigned"}),
        ),
        (SUB_C, "virtualMachines", "vm-c-east", "eastus", Json::Null),
        (SUB_OUT, "virtualMachines", "vm-out", "eastus", Json::Null),
    ]
}

/// root ─ mg-platform (SUB_A) ─ mg-corp (SUB_B, SUB_C); SUB_OUT directly under the root.
/// READER is Reader at mg-corp only.
fn scenario() -> Json {
    let subscription = |id: &str, name: &str| {
        let mut vms = Vec::new();
        let mut scale_sets = Vec::new();
        for (sub, kind, machine, region, identity) in machines() {
            if sub != id {
                continue;
            }
            let mut m = json!({"name": machine, "resource_group": "rg-app", "location": region});
            if !identity.is_null() {
                m["identity"] = identity;
            }
            if kind == "virtualMachines" {
                vms.push(m);
            } else {
                scale_sets.push(m);
            }
        }
        json!({
            "id": id,
            "display_name": name,
            "regions": ["eastus", "westeurope", "northeurope"],
            "resource_groups": [{"name": "rg-app", "location": "eastus"}],
            "virtual_machines": vms,
            "scale_sets": scale_sets
        })
    };
    json!({
        "subscriptions": [
            subscription(SUB_A, "Platform A"),
            subscription(SUB_B, "Corp B"),
            subscription(SUB_C, "Corp C"),
            subscription(SUB_OUT, "Outside")
        ],
        "management_groups": [
            {"id": "mg-platform", "display_name": "Platform", "subscriptions": [SUB_A]},
            {"id": "mg-corp", "display_name": "Corp", "parent": "mg-platform",
             "subscriptions": [SUB_B, SUB_C],
             "role_assignments": [{"role": "Reader", "principal_id": READER_OBJECT}]}
        ],
        "principals": [{"id": READER_OBJECT, "app_id": READER_APP, "secret": READER_SECRET, "display_name": "reader"}]
    })
}

/// A working directory holding examples/estate's `.tf` files, credentials from `ARM_*`.
fn estate(emulator: &Emulator) -> Workdir {
    let source = workspace_root().join("examples/estate");
    let mut work = Workdir::new("");
    std::fs::remove_file(work.path().join("main.tf")).unwrap();
    for entry in std::fs::read_dir(&source).expect("examples/estate") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "tf") {
            std::fs::copy(&path, work.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    for (key, value) in emulator.arm_env() {
        work.env(key, &value);
    }
    work
}

fn identities(emulator: &Emulator) -> BTreeMap<String, (String, BTreeSet<String>)> {
    machines()
        .into_iter()
        .map(|(sub, kind, name, _, _)| {
            let id = machine_id(sub, kind, name);
            (name.to_string(), emulator.identity_of(&id))
        })
        .collect()
}

#[test]
fn one_configuration_covers_every_subscription_and_region_under_a_management_group() {
    let emulator = Emulator::start(&scenario());
    let before = identities(&emulator);
    let mut work = estate(&emulator);
    work.env("TF_VAR_management_group_id", "mg-platform");
    work.init();
    emulator.clear_requests();
    work.apply();

    let outputs = work.outputs();
    let covered: BTreeSet<&str> = outputs["subscriptions"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(covered, BTreeSet::from([SUB_A, SUB_B, SUB_C]));
    let pairs: BTreeSet<&str> = outputs["identities"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let want: BTreeSet<String> = machines()
        .into_iter()
        .filter(|(sub, ..)| *sub != SUB_OUT)
        .map(|(sub, _, _, region, _)| format!("{sub}/{region}"))
        .collect();
    assert_eq!(
        pairs,
        want.iter().map(String::as_str).collect(),
        "one identity per subscription and region that holds machines"
    );

    // Every machine under the group holds its own subscription's identity for its region,
    // and keeps what it had.
    let after = identities(&emulator);
    for (sub, _, name, region, identity) in machines() {
        let (kind, ids) = &after[name];
        if sub == SUB_OUT {
            assert_eq!(&after[name], &before[name], "{name} is outside the group");
            continue;
        }
        assert_eq!(
            ids,
            &BTreeSet::from([builtin_id(sub, region)]),
            "{name} in {sub}/{region}"
        );
        let expected = if identity.is_null() {
            "UserAssigned"
        } else {
            "SystemAssigned, UserAssigned"
        };
        assert_eq!(kind, expected, "{name}");
    }
    // Nothing was created in, or written to, the subscription outside the group.
    assert!(emulator
        .arm_get(
            &format!("/subscriptions/{SUB_OUT}/resourceGroups/Built-In-Identity-RG"),
            "2022-09-01"
        )
        .is_none());
    let writes_outside: Vec<Json> = emulator
        .requests()
        .into_iter()
        .filter(|r| r["method"] != "GET")
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase()
                .contains(SUB_OUT)
        })
        .collect();
    assert!(writes_outside.is_empty(), "{writes_outside:?}");

    emulator.clear_requests();
    assert!(!work.plan_has_changes(), "the next plan is clean");
    // One listing of each subscription's machines per plan, shared by the data source and
    // the subscription's assignments (one per region).
    for sub in [SUB_A, SUB_B, SUB_C] {
        let listings = emulator
            .requests()
            .into_iter()
            .filter(|r| r["method"] == "GET")
            .filter(|r| {
                r["path"].as_str().unwrap_or_default().to_ascii_lowercase()
                    == format!("/subscriptions/{sub}/providers/microsoft.compute/virtualmachines")
            })
            .count();
        assert_eq!(listings, 1, "{sub}: machines listed once per plan");
    }

    work.destroy();
    assert_eq!(
        identities(&emulator),
        before,
        "destroy gives every machine back its identities"
    );
    for sub in [SUB_A, SUB_B, SUB_C] {
        for region in ["eastus", "westeurope", "northeurope"] {
            assert!(
                emulator
                    .arm_get(&builtin_id(sub, region), "2023-01-31")
                    .is_none(),
                "{sub}/{region} identity deleted"
            );
        }
    }
}

fn subscriptions_config(provider: &str, group: Option<&str>) -> String {
    let argument = group
        .map(|g| format!("management_group_id = \"{g}\""))
        .unwrap_or_default();
    configuration(
        provider,
        &format!(
            r#"data "mig_subscriptions" "x" {{
  {argument}
}}

output "ids"       {{ value = sort(data.mig_subscriptions.x.subscription_ids) }}
output "by_sub"    {{ value = data.mig_subscriptions.x.locations_by_subscription }}
output "pairs"     {{ value = sort(keys(data.mig_subscriptions.x.subscription_locations)) }}
output "states"    {{ value = [for s in data.mig_subscriptions.x.subscriptions : s.state] }}
output "id"        {{ value = data.mig_subscriptions.x.id }}"#
        ),
    )
}

fn read(config: &str) -> BTreeMap<String, Json> {
    let work = Workdir::new(config);
    work.init();
    work.apply();
    work.outputs()
}

#[test]
fn subscriptions_are_every_visible_one_or_those_under_a_readable_group() {
    let emulator = Emulator::start(&scenario());
    let owner = emulator.provider_block();

    let all = read(&subscriptions_config(&owner, None));
    assert_eq!(all["ids"], json!([SUB_A, SUB_B, SUB_C, SUB_OUT]));
    assert_eq!(all["id"], "/subscriptions");
    assert_eq!(
        all["by_sub"][SUB_B],
        json!(["eastus", "northeurope"]),
        "a scale set's region counts"
    );
    assert_eq!(
        all["states"],
        json!(["Enabled", "Enabled", "Enabled", "Enabled"])
    );
    assert_eq!(
        all["pairs"].as_array().unwrap().len(),
        7,
        "SUB_A, SUB_B and SUB_C two regions each, SUB_OUT one"
    );

    // By ID, the tenant root group holds everything.
    let root = read(&subscriptions_config(
        &owner,
        Some(&format!(
            "/providers/Microsoft.Management/managementGroups/{}",
            emulator.ready.tenant_id
        )),
    ));
    assert_eq!(root["ids"], all["ids"]);
    let corp = read(&subscriptions_config(&owner, Some("mg-corp")));
    assert_eq!(corp["ids"], json!([SUB_B, SUB_C]));
    assert_eq!(
        corp["id"],
        "/providers/Microsoft.Management/managementGroups/mg-corp"
    );

    // A Reader at mg-corp sees its subscriptions through the group's role, and no other group.
    let reader = owner
        .replace(&emulator.ready.client_id, READER_APP)
        .replace(&emulator.ready.client_secret, READER_SECRET)
        .replace(emulator.subscription_id(), SUB_B);
    let visible = read(&subscriptions_config(&reader, None));
    assert_eq!(visible["ids"], json!([SUB_B, SUB_C]));
    let denied = Workdir::new(&subscriptions_config(&reader, Some("mg-platform")));
    denied.init();
    let output = denied.try_apply();
    assert!(!output.success, "{}", output.all());
    assert!(
        output
            .all()
            .contains("Cannot list the subscriptions of the management group"),
        "{}",
        output.all()
    );

    // A subscription where a group belongs is refused at validate.
    let invalid = Workdir::new(&subscriptions_config(
        &owner,
        Some(&format!("/subscriptions/{SUB_A}")),
    ));
    invalid.init();
    let output = invalid.run(&["validate", "-no-color"]);
    assert!(!output.success);
    assert!(
        output.all().contains("Invalid management group")
            && output
                .all()
                .replace('\n', " ")
                .contains("is a subscription, not a"),
        "{}",
        output.all()
    );
}
