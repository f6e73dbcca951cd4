//! From Azure Policy to Terraform in one command: list resources (`terraform query`,
//! Terraform 1.14+) and resource identity (Terraform 1.12+) with real Terraform against the
//! emulator.
//!
//! - A policy-shaped estate (two subscriptions, three regions: `Built-In-Identity-{region}` in
//!   `Built-In-Identity-RG` with the policy's lock, machines holding them, a machine the policy
//!   skips) is found by `terraform query -generate-config-out=generated.tf`; applying the
//!   generated configuration adopts everything, the next plan has no changes, and destroy
//!   removes nothing the policy made.
//! - The same with `management_group_ids`: a management group holding two of three
//!   subscriptions lists exactly those two's identities (one descendants listing per group),
//!   and the generated configuration adopts them with no change.
//! - Each resource imports by identity (`import { to = ..., identity = { ... } }`).
//! - `mig_identity_assignment` keeps the identity it was created with across an in-place
//!   change of `scope`.

use std::collections::BTreeSet;

use acceptance_tests::{terraform_has, Emulator, Workdir};
use serde_json::{json, Value as Json};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const SUB2: &str = "00000000-0000-0000-0000-000000000002";
const SUB3: &str = "00000000-0000-0000-0000-000000000003";
/// Holds SUB2 and SUB3 (in `policy_estate_with_group`); SUB, the provider's, is outside.
const GROUP: &str = "mg-policy";
const REGIONS: [&str; 3] = ["eastus", "westeurope", "northeurope"];
const IDENTITY_API: &str = "2023-01-31";
const LOCK_API: &str = "2020-05-01";

fn group(sub: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/Built-In-Identity-RG")
}

fn policy_identity(sub: &str, region: &str) -> String {
    format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-{region}",
        group(sub)
    )
}

fn policy_lock(sub: &str, region: &str) -> String {
    format!(
        "{}/providers/Microsoft.Authorization/locks/CanNotDeleteLock-Built-In-Identity-{region}",
        policy_identity(sub, region)
    )
}

fn vm(sub: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}")
}

/// What the policy leaves: per subscription and region its identity, locked, held by two
/// machines (one it gave a first identity, one next to a system-assigned identity), and a
/// machine whose single user-assigned identity made the policy skip it.
fn policy_estate() -> Json {
    json!({"subscriptions": [policy_subscription(SUB), policy_subscription(SUB2)]})
}

/// The policy's estate in three subscriptions, SUB2 and SUB3 in the management group GROUP
/// (SUB, the provider's, under the tenant root group).
fn policy_estate_with_group() -> Json {
    json!({
        "subscriptions": [policy_subscription(SUB), policy_subscription(SUB2), policy_subscription(SUB3)],
        "management_groups": [
            {"id": GROUP, "display_name": "Policy", "subscriptions": [SUB2, SUB3]}
        ]
    })
}

/// One subscription of `policy_estate`.
fn policy_subscription(sub: &str) -> Json {
    {
        let mut identities =
            vec![json!({"name": "id-app", "resource_group": "rg-app", "location": "eastus"})];
        let mut locks = Vec::new();
        let mut machines = Vec::new();
        for region in REGIONS {
            identities.push(json!({
                "name": format!("Built-In-Identity-{region}"),
                "resource_group": "Built-In-Identity-RG",
                "location": region,
            }));
            locks.push(json!({
                "scope": policy_identity(sub, region),
                "name": format!("CanNotDeleteLock-Built-In-Identity-{region}"),
                "level": "CanNotDelete",
                "notes": "Please do not delete this User-Assigned Identity since extensions enabled by Azure Policy are relying on their existence.",
            }));
            machines.push(json!({
                "name": format!("vm-{region}-1"), "resource_group": "rg-app", "location": region,
                "identity": {"type": "UserAssigned", "user_assigned": [policy_identity(sub, region)]},
            }));
            machines.push(json!({
                "name": format!("vm-{region}-2"), "resource_group": "rg-app", "location": region,
                "identity": {"type": "SystemAssigned, UserAssigned", "user_assigned": [policy_identity(sub, region)]},
            }));
            machines.push(json!({
                "name": format!("vm-{region}-single"), "resource_group": "rg-app", "location": region,
                "identity": {"type": "UserAssigned", "user_assigned": ["id-app"]},
            }));
        }
        json!({
            "id": sub,
            "regions": REGIONS,
            "resource_groups": [
                {"name": "Built-In-Identity-RG", "location": "eastus"},
                {"name": "rg-app", "location": "eastus"},
            ],
            "user_assigned_identities": identities,
            "virtual_machines": machines,
            "locks": locks,
        })
    }
}

/// Every machine's identity block, by ID.
fn machines(emulator: &Emulator) -> Vec<(String, (String, BTreeSet<String>))> {
    machines_in(emulator, &[SUB, SUB2])
}

/// Every machine's identity block in `subs`, by ID.
fn machines_in(emulator: &Emulator, subs: &[&str]) -> Vec<(String, (String, BTreeSet<String>))> {
    let mut out = Vec::new();
    for &sub in subs {
        for region in REGIONS {
            for suffix in ["1", "2", "single"] {
                let id = vm(sub, &format!("vm-{region}-{suffix}"));
                out.push((id.clone(), emulator.identity_of(&id)));
            }
        }
    }
    out
}

/// The policy's identities and locks all exist.
fn assert_policy_estate_intact(
    emulator: &Emulator,
    machines_before: &[(String, (String, BTreeSet<String>))],
) {
    assert_policy_estate_intact_in(emulator, &[SUB, SUB2], machines_before);
}

/// The policy's identities and locks in `subs` all exist, and the machines are unchanged.
fn assert_policy_estate_intact_in(
    emulator: &Emulator,
    subs: &[&str],
    machines_before: &[(String, (String, BTreeSet<String>))],
) {
    for &sub in subs {
        for region in REGIONS {
            assert!(
                emulator
                    .arm_get(&policy_identity(sub, region), IDENTITY_API)
                    .is_some(),
                "{} kept",
                policy_identity(sub, region)
            );
            let lock = emulator
                .arm_get(&policy_lock(sub, region), LOCK_API)
                .unwrap_or_else(|| panic!("{} kept", policy_lock(sub, region)));
            assert_eq!(lock["properties"]["level"], "CanNotDelete");
        }
    }
    assert_eq!(
        machines_in(emulator, subs),
        machines_before,
        "every machine keeps its identity block"
    );
}

/// `"a", "b"`.
/// Applies the generated configuration (`text`, 12 import blocks): everything is imported,
/// nothing is written (only reads and token requests reach the emulator), and the next plan
/// shows no change.
fn apply_generated_writing_nothing(emulator: &Emulator, work: &Workdir, text: &str) {
    emulator.clear_requests();
    let applied = work.run_ok(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    let writes: Vec<Json> = emulator
        .requests()
        .into_iter()
        .filter(|r| r["method"] != "GET" && !r["path"].as_str().unwrap_or("").contains("oauth2"))
        .collect();
    assert!(writes.is_empty(), "adopting writes nothing: {writes:?}");
    assert!(applied.stdout.contains("12 imported"), "{}", applied.all());
    assert!(!work.plan_has_changes(), "adopted with no change:\n{text}");
}

fn hcl_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn query_files(subscriptions: &[&str]) -> String {
    let config = format!("subscription_ids = [{}]", hcl_list(subscriptions));
    query_files_with(&config, &config)
}

/// Both list resources, with the resource, each with the lines of its `config` block given.
fn query_files_with(builtin_identity: &str, identity_assignment: &str) -> String {
    format!(
        r#"list "mig_builtin_identity" "policy" {{
  provider         = mig
  include_resource = true
  config {{
    {builtin_identity}
  }}
}}

list "mig_identity_assignment" "policy" {{
  provider         = mig
  include_resource = true
  config {{
    {identity_assignment}
  }}
}}
"#
    )
}

#[test]
fn query_generates_configuration_that_adopts_the_policy_estate_with_no_change_and_destroy_keeps_it()
{
    if !terraform_has(14, "list resources") {
        return;
    }
    let emulator = Emulator::start(&policy_estate());
    let before = machines(&emulator);
    let work = Workdir::new(&emulator.configuration(""));
    work.write("policy.tfquery.hcl", &query_files(&[SUB, SUB2]));
    work.init();

    // Listing alone: one result per identity and subscription, identities only.
    let listed = work.run_ok(&["query", "-no-color", "-json"]);
    let results: Vec<Json> = listed
        .json_lines()
        .into_iter()
        .filter(|line| line["type"] == "list_resource_found")
        .collect();
    assert_eq!(
        results.len(),
        12,
        "6 identities and 6 assignments:\n{}",
        listed.all()
    );

    emulator.clear_requests();
    let generated = work.run_ok(&["query", "-no-color", "-generate-config-out=generated.tf"]);
    let text = std::fs::read_to_string(work.path().join("generated.tf"))
        .unwrap_or_else(|e| panic!("generated.tf: {e}\n{}", generated.all()));
    assert_eq!(text.matches("import {").count(), 12, "{text}");
    assert!(
        text.contains("mig-exclude"),
        "the quickstart's assignment:\n{text}"
    );
    // Listing is cheap: no writes, and the identities are read a page at a time.
    let requests = emulator.requests();
    assert!(
        requests
            .iter()
            .all(|r| r["method"] == "GET" || r["method"] == "POST"),
        "query only reads"
    );

    // The assignments record the quickstart's arguments (`locations`, `exclude_tags`) in
    // place, as an import by identity cannot carry them; no machine, identity or lock is
    // written.
    apply_generated_writing_nothing(&emulator, &work, &text);
    assert_policy_estate_intact(&emulator, &before);

    // The identities in state are the ones listed.
    let state = work.state_json();
    let resources = state["values"]["root_module"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(resources.len(), 12);
    for resource in &resources {
        if resource["type"] == "mig_identity_assignment" {
            let values = &resource["values"];
            let locations = values["locations"].as_array().unwrap();
            assert_eq!(locations.len(), 1);
            assert!(
                values["assigned_ids"].as_array().unwrap().is_empty(),
                "nothing is ours"
            );
            assert_eq!(
                values["compliant_ids"].as_array().unwrap().len(),
                2,
                "{values}"
            );
        }
    }

    work.destroy();
    assert_policy_estate_intact(&emulator, &before);
}

#[test]
fn query_over_a_management_group_lists_and_adopts_exactly_its_subscriptions_identities() {
    if !terraform_has(14, "list resources") {
        return;
    }
    let emulator = Emulator::start(&policy_estate_with_group());
    assert_eq!(
        emulator.subscription_id(),
        SUB,
        "the provider's is outside the group"
    );
    let inside = [SUB2, SUB3];
    let before = machines_in(&emulator, &inside);
    let work = Workdir::new(&emulator.configuration(""));
    // By name, with a subscription of the group named too (listed once); by ID.
    work.write(
        "policy.tfquery.hcl",
        &query_files_with(
            &format!("management_group_ids = [\"{GROUP}\"]\n    subscription_ids     = [\"{SUB2}\"]"),
            &format!("management_group_ids = [\"/providers/Microsoft.Management/managementGroups/{GROUP}\"]"),
        ),
    );
    work.init();

    emulator.clear_requests();
    let listed = work.run_ok(&["query", "-no-color", "-json"]);
    let found: Vec<Json> = listed
        .json_lines()
        .into_iter()
        .filter(|line| line["type"] == "list_resource_found")
        .map(|line| line["list_resource_found"].clone())
        .collect();
    let of_type = |type_name: &str| -> Vec<&Json> {
        found
            .iter()
            .filter(|r| {
                r["address"]
                    .as_str()
                    .is_some_and(|a| a.contains(&format!("{type_name}.")))
            })
            .collect()
    };
    let identities: Vec<String> = of_type("mig_builtin_identity")
        .iter()
        .map(|r| {
            let identity = &r["identity"];
            assert_eq!(identity["resource_group_name"], "Built-In-Identity-RG");
            format!(
                "{}/{}",
                identity["subscription_id"].as_str().unwrap_or_default(),
                identity["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let assignments: Vec<String> = of_type("mig_identity_assignment")
        .iter()
        .map(|r| {
            r["identity"]["identity_id"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase()
        })
        .collect();
    let want_identities: BTreeSet<String> = inside
        .iter()
        .flat_map(|sub| REGIONS.map(|region| format!("{sub}/Built-In-Identity-{region}")))
        .collect();
    // ARM spells `resourcegroups` as it likes in IDs.
    let want_assignments: BTreeSet<String> = inside
        .iter()
        .flat_map(|sub| REGIONS.map(|region| policy_identity(sub, region).to_ascii_lowercase()))
        .collect();
    assert_eq!(identities.len(), 6, "each once:\n{}", listed.all());
    assert_eq!(
        identities.into_iter().collect::<BTreeSet<_>>(),
        want_identities,
        "{}",
        listed.all()
    );
    assert_eq!(assignments.len(), 6, "each once:\n{}", listed.all());
    assert_eq!(
        assignments.into_iter().collect::<BTreeSet<_>>(),
        want_assignments,
        "{}",
        listed.all()
    );
    // Cheap: one descendants listing per list block, nothing read in the subscription outside.
    let paths: Vec<String> = emulator
        .requests()
        .into_iter()
        .map(|r| r["path"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        paths.iter().filter(|p| p.ends_with("/descendants")).count(),
        2,
        "{paths:#?}"
    );
    assert!(
        !paths
            .iter()
            .any(|p| p.contains(&format!("/subscriptions/{SUB}/"))),
        "{paths:#?}"
    );
    assert_eq!(
        paths
            .iter()
            .filter(|p| p.contains(&format!("/subscriptions/{SUB2}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities")))
            .count(),
        2,
        "SUB2's identities read once per list block: {paths:#?}"
    );

    let generated = work.run_ok(&["query", "-no-color", "-generate-config-out=generated.tf"]);
    let text = std::fs::read_to_string(work.path().join("generated.tf"))
        .unwrap_or_else(|e| panic!("generated.tf: {e}\n{}", generated.all()));
    assert_eq!(text.matches("import {").count(), 12, "{text}");
    assert!(
        !text.contains(SUB),
        "nothing of the subscription outside:\n{text}"
    );

    apply_generated_writing_nothing(&emulator, &work, &text);
    assert_policy_estate_intact_in(&emulator, &inside, &before);

    work.destroy();
    assert_policy_estate_intact_in(&emulator, &inside, &before);
}

#[test]
fn query_honours_limit_and_the_group_and_region_filters() {
    if !terraform_has(14, "list resources") {
        return;
    }
    let emulator = Emulator::start(&policy_estate());
    let work = Workdir::new(&emulator.configuration(""));
    work.write(
        "policy.tfquery.hcl",
        &format!(
            r#"list "mig_builtin_identity" "two" {{
  provider = mig
  limit    = 2
  config {{
    subscription_ids = ["{SUB}", "{SUB2}"]
  }}
}}

list "mig_builtin_identity" "westeurope" {{
  provider = mig
  config {{
    subscription_ids = ["{SUB}", "{SUB2}"]
    locations        = ["West Europe"]
  }}
}}

list "mig_builtin_identity" "elsewhere" {{
  provider = mig
  config {{
    resource_group_name = "rg-app"
  }}
}}
"#
        ),
    );
    work.init();
    emulator.clear_requests();
    let listed = work.run_ok(&["query", "-no-color", "-json"]);
    // One read per page of identities: `two` stops after the first subscription's page,
    // `westeurope` reads both subscriptions, `elsewhere` the provider's; nothing else.
    let reads: Vec<String> = emulator
        .requests()
        .into_iter()
        .filter(|r| {
            let path = r["path"].as_str().unwrap_or("");
            // Configuring the provider: token and cloud endpoints.
            !path.contains("oauth2") && !path.starts_with("/metadata/")
        })
        .map(|r| format!("{} {}", r["method"], r["path"]))
        .collect();
    assert_eq!(
        reads
            .iter()
            .filter(|r| r.contains("/providers/Microsoft.ManagedIdentity/userAssignedIdentities"))
            .count(),
        4,
        "{reads:#?}"
    );
    assert!(
        reads
            .iter()
            .all(|r| r.starts_with("\"GET\"") && r.contains("userAssignedIdentities")),
        "{reads:#?}"
    );
    let found = |name: &str| -> Vec<Json> {
        listed
            .json_lines()
            .into_iter()
            .filter(|line| {
                line["type"] == "list_resource_found"
                    && line["list_resource_found"]["address"]
                        .as_str()
                        .is_some_and(|a| a.ends_with(name))
            })
            .map(|line| line["list_resource_found"].clone())
            .collect()
    };
    assert_eq!(found(".two").len(), 2, "limit:\n{}", listed.all());
    let westeurope = found(".westeurope");
    assert_eq!(westeurope.len(), 2, "{}", listed.all());
    for result in &westeurope {
        assert_eq!(
            result["identity"]["name"], "Built-In-Identity-westeurope",
            "{result}"
        );
        assert_eq!(
            result["identity"]["resource_group_name"],
            "Built-In-Identity-RG"
        );
    }
    assert!(found(".elsewhere").is_empty(), "id-app is not the policy's");
}

/// Imports by identity, one configuration per resource type.
#[test]
fn each_resource_imports_by_identity() {
    if !terraform_has(12, "resource identity") {
        return;
    }
    let emulator = Emulator::start(&policy_estate());
    let before = machines(&emulator);
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"import {{
  to       = mig_builtin_identity.eastus
  identity = {{
    subscription_id     = "{SUB}"
    resource_group_name = "Built-In-Identity-RG"
    name                = "Built-In-Identity-eastus"
  }}
}}

# subscription_id defaults to the provider's
import {{
  to       = mig_builtin_identity.westeurope
  identity = {{
    resource_group_name = "Built-In-Identity-RG"
    name                = "Built-In-Identity-westeurope"
  }}
}}

resource "mig_builtin_identity" "eastus" {{
  location = "eastus"
}}

resource "mig_builtin_identity" "westeurope" {{
  location = "westeurope"
}}

import {{
  to       = mig_identity_assignment.eastus
  identity = {{
    scope       = "/subscriptions/{SUB}"
    identity_id = "{identity}"
  }}
}}

resource "mig_identity_assignment" "eastus" {{
  scope       = "/subscriptions/{SUB}"
  identity_id = "{identity}"
  locations   = ["eastus"]
}}

import {{
  to       = mig_orphan_cleanup.subscription
  identity = {{
    scope = "/subscriptions/{SUB}"
  }}
}}

resource "mig_orphan_cleanup" "subscription" {{
  scope = "/subscriptions/{SUB}"
  mode  = "report"
}}
"#,
        identity = policy_identity(SUB, "eastus"),
    )));
    work.init();
    let applied = work.apply();
    assert!(applied.stdout.contains("4 imported"), "{}", applied.all());
    assert!(!work.plan_has_changes(), "adopted as configured");

    let state = work.state_json();
    let identity_of = |address: &str| -> Json {
        state["values"]["root_module"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"] == address)
            .map(|r| r["identity"].clone())
            .unwrap_or(Json::Null)
    };
    assert_eq!(
        identity_of("mig_builtin_identity.westeurope"),
        json!({"subscription_id": SUB, "resource_group_name": "Built-In-Identity-RG", "name": "Built-In-Identity-westeurope"})
    );
    assert_eq!(
        identity_of("mig_identity_assignment.eastus"),
        json!({"scope": format!("/subscriptions/{SUB}"), "identity_id": policy_identity(SUB, "eastus")})
    );
    assert_eq!(
        identity_of("mig_orphan_cleanup.subscription"),
        json!({"scope": format!("/subscriptions/{SUB}")})
    );

    work.destroy();
    assert_policy_estate_intact(&emulator, &before);
}

#[test]
fn an_assignment_keeps_its_identity_across_an_in_place_scope_change() {
    if !terraform_has(12, "resource identity") {
        return;
    }
    let emulator = Emulator::start(&policy_estate());
    let identity = policy_identity(SUB, "eastus");
    let config = |scope: &str| {
        emulator.configuration(&format!(
            r#"resource "mig_identity_assignment" "eastus" {{
  scope       = "{scope}"
  identity_id = "{identity}"
  locations   = ["eastus"]
}}
"#
        ))
    };
    let subscription = format!("/subscriptions/{SUB}");
    let work = Workdir::new(&config(&subscription));
    work.init();
    work.apply();
    let identity_in_state = |work: &Workdir| -> Json {
        work.state_json()["values"]["root_module"]["resources"][0]["identity"].clone()
    };
    let created = json!({"scope": subscription, "identity_id": identity});
    assert_eq!(identity_in_state(&work), created);

    // Narrowed to one group: in place, and the identity stays the one it was created with.
    work.write(
        "main.tf",
        &config(&format!("{subscription}/resourceGroups/rg-app")),
    );
    let plan = work.plan_json();
    let change = &plan["resource_changes"][0]["change"];
    assert_eq!(change["actions"], json!(["update"]), "{change}");
    work.apply();
    assert_eq!(identity_in_state(&work), created);
    assert!(!work.plan_has_changes());
    assert_eq!(identity_in_state(&work), created, "and after a refresh");
    work.destroy();
}
