//! `mig_builtin_identity` and `mig_identity_assignment` with real Terraform against the
//! emulator: the policy's rule over every identity permutation, drift, new machines,
//! destroy, import, a concurrent writer, and a failure half way.

use std::collections::{BTreeMap, BTreeSet};

use acceptance_tests::{Emulator, Workdir};
use serde_json::{json, Value as Json};

const SUB: &str = "00000000-0000-0000-0000-000000000001";

fn rg_id(group: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{group}")
}

fn identity_id(group: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
        rg_id(group)
    )
}

fn builtin(location: &str) -> String {
    identity_id(
        "Built-In-Identity-RG",
        &format!("Built-In-Identity-{location}"),
    )
}

fn vm_id(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Compute/virtualMachines/{name}",
        rg_id("rg-app")
    )
}

fn ss_id(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}",
        rg_id("rg-app")
    )
}

/// What the policy's rule says happens to a machine (policy-semantics.md).
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    /// Gets the target: its new type and user-assigned identities (old ones kept).
    Assigned(&'static str, Vec<String>),
    Skipped(&'static str),
    /// Already holds the target from someone else.
    Compliant,
    /// Outside `locations`: not looked at.
    Untouched,
}

struct Row {
    name: &'static str,
    scale_set: bool,
    location: &'static str,
    identity: Json,
    tags: Json,
    provisioning_state: &'static str,
    expected: Expected,
}

fn rows() -> Vec<Row> {
    let app = identity_id("rg-app", "id-app");
    let legacy = identity_id("rg-app", "id-legacy");
    let target = builtin("eastus");
    let row = |name, scale_set, identity: Json, expected| Row {
        name,
        scale_set,
        location: "eastus",
        identity,
        tags: json!({}),
        provisioning_state: "Succeeded",
        expected,
    };
    vec![
        row(
            "vm-none",
            false,
            json!(null),
            Expected::Assigned("UserAssigned", vec![target.clone()]),
        ),
        row(
            "vm-system",
            false,
            json!({"type": "SystemAssigned"}),
            Expected::Assigned("SystemAssigned, UserAssigned", vec![target.clone()]),
        ),
        // Exactly UserAssigned with exactly one identity: IMDS depends on it being alone.
        row(
            "vm-single",
            false,
            json!({"type": "UserAssigned", "user_assigned": [app]}),
            Expected::Skipped("single_user_assigned"),
        ),
        // The edge: with SystemAssigned as well, IMDS defaults to the system identity.
        row(
            "vm-system-single",
            false,
            json!({"type": "SystemAssigned, UserAssigned", "user_assigned": [app]}),
            Expected::Assigned(
                "SystemAssigned, UserAssigned",
                vec![app.clone(), target.clone()],
            ),
        ),
        row(
            "vm-two",
            false,
            json!({"type": "UserAssigned", "user_assigned": [app, legacy]}),
            Expected::Assigned(
                "UserAssigned",
                vec![app.clone(), legacy.clone(), target.clone()],
            ),
        ),
        // Holding the target alone is condition 1 (compliant), before the single-UAMI skip.
        row(
            "vm-holding",
            false,
            json!({"type": "UserAssigned", "user_assigned": [target]}),
            Expected::Compliant,
        ),
        row(
            "vm-holding-plus",
            false,
            json!({"type": "UserAssigned", "user_assigned": [target, app]}),
            Expected::Compliant,
        ),
        Row {
            tags: json!({"mig-exclude": "true"}),
            ..row(
                "vm-tagged",
                false,
                json!(null),
                Expected::Skipped("excluded_by_tag"),
            )
        },
        Row {
            provisioning_state: "Failed",
            ..row(
                "vm-failed",
                false,
                json!({"type": "SystemAssigned"}),
                Expected::Skipped("not_provisioned"),
            )
        },
        Row {
            location: "westeurope",
            ..row("vm-elsewhere", false, json!(null), Expected::Untouched)
        },
        row(
            "ss-none",
            true,
            json!(null),
            Expected::Assigned("UserAssigned", vec![target.clone()]),
        ),
        row(
            "ss-single",
            true,
            json!({"type": "UserAssigned", "user_assigned": [app]}),
            Expected::Skipped("single_user_assigned"),
        ),
        row(
            "ss-system",
            true,
            json!({"type": "SystemAssigned"}),
            Expected::Assigned("SystemAssigned, UserAssigned", vec![target.clone()]),
        ),
    ]
}

fn machine_id(row: &Row) -> String {
    if row.scale_set {
        ss_id(row.name)
    } else {
        vm_id(row.name)
    }
}

fn scenario(rows: &[Row]) -> Json {
    let machine = |row: &Row| {
        let mut m = json!({
            "name": row.name,
            "resource_group": "rg-app",
            "location": row.location,
            "tags": row.tags,
            "provisioning_state": row.provisioning_state,
        });
        if !row.identity.is_null() {
            m["identity"] = row.identity.clone();
        }
        m
    };
    json!({
        "subscriptions": [{
            "id": SUB,
            "regions": ["eastus", "westeurope"],
            "resource_groups": [{"name": "rg-app", "location": "eastus"}],
            "user_assigned_identities": [
                {"name": "id-app", "resource_group": "rg-app", "location": "eastus"},
                {"name": "id-legacy", "resource_group": "rg-app", "location": "eastus"},
                {"name": "id-other", "resource_group": "rg-app", "location": "eastus"}
            ],
            "virtual_machines": rows.iter().filter(|r| !r.scale_set).map(machine).collect::<Vec<_>>(),
            "scale_sets": rows.iter().filter(|r| r.scale_set).map(machine).collect::<Vec<_>>(),
        }]
    })
}

/// The configuration: the eastus identity (imported when the scenario already has it) and
/// its assignment over the subscription, in eastus only.
fn configuration(emulator: &Emulator, import_existing: bool) -> String {
    let import = if import_existing {
        format!(
            "import {{\n  to = mig_builtin_identity.eastus\n  id = \"{}\"\n}}\n",
            builtin("eastus")
        )
    } else {
        String::new()
    };
    format!(
        r#"
terraform {{
  required_providers {{
    mig = {{ source = "azure-mig/mig" }}
  }}
}}

{provider}

{import}

resource "mig_builtin_identity" "eastus" {{
  location = "eastus"
}}

resource "mig_identity_assignment" "eastus" {{
  identity_id  = mig_builtin_identity.eastus.id
  scope        = "/subscriptions/{SUB}"
  locations    = ["eastus"]
  exclude_tags = {{ "mig-exclude" = "true" }}
}}
"#,
        provider = emulator.provider_block(),
    )
}

fn lower(ids: &[String]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_ascii_lowercase()).collect()
}

fn assignment_state(work: &Workdir) -> Json {
    work.state_resources()
        .remove("mig_identity_assignment.eastus")
        .expect("assignment in state")
}

fn strings(value: &Json) -> BTreeSet<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(|s| s.to_ascii_lowercase()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_policy_rule_over_every_identity_permutation_then_destroy_restores_everything() {
    let rows = rows();
    let emulator = Emulator::start(&scenario(&rows));
    let before: BTreeMap<String, (String, BTreeSet<String>)> = rows
        .iter()
        .map(|r| (machine_id(r), emulator.identity_of(&machine_id(r))))
        .collect();

    let work = Workdir::new(&configuration(&emulator, true));
    work.init();
    work.apply();

    let state = assignment_state(&work);
    let assigned = strings(&state["assigned_ids"]);
    let compliant = strings(&state["compliant_ids"]);
    let skipped: BTreeMap<String, String> = state["skipped"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default();
    for row in &rows {
        let id = machine_id(row);
        let key = id.to_ascii_lowercase();
        let (kind, identities) = emulator.identity_of(&id);
        match &row.expected {
            Expected::Assigned(new_kind, new_ids) => {
                assert_eq!(&kind, new_kind, "{}: identity type", row.name);
                assert_eq!(
                    identities,
                    lower(new_ids),
                    "{}: user-assigned identities",
                    row.name
                );
                assert!(
                    assigned.contains(&key),
                    "{} missing from assigned_ids",
                    row.name
                );
            }
            Expected::Skipped(reason) => {
                assert_eq!(
                    skipped.get(&key).map(String::as_str),
                    Some(*reason),
                    "{}: skip reason",
                    row.name
                );
                assert_eq!(
                    (kind, identities),
                    before[&id],
                    "{}: a skipped machine is not written",
                    row.name
                );
            }
            Expected::Compliant => {
                assert!(
                    compliant.contains(&key),
                    "{} missing from compliant_ids",
                    row.name
                );
                assert_eq!(
                    (kind, identities),
                    before[&id],
                    "{}: a compliant machine is not written",
                    row.name
                );
            }
            Expected::Untouched => {
                assert!(
                    !assigned.contains(&key)
                        && !compliant.contains(&key)
                        && !skipped.contains_key(&key)
                );
                assert_eq!(
                    (kind, identities),
                    before[&id],
                    "{}: outside the locations",
                    row.name
                );
            }
        }
    }
    let writes = emulator
        .requests()
        .iter()
        .filter(|r| {
            r["method"] == "PATCH"
                && r["path"]
                    .as_str()
                    .unwrap_or("")
                    .contains("Microsoft.Compute")
        })
        .count();
    let expected_writes = rows
        .iter()
        .filter(|r| matches!(r.expected, Expected::Assigned(..)))
        .count();
    assert_eq!(
        writes, expected_writes,
        "exactly one write per machine that needs the identity"
    );

    assert!(!work.plan_has_changes(), "apply then plan: no changes");

    work.destroy();
    for row in &rows {
        let id = machine_id(row);
        assert_eq!(
            emulator.identity_of(&id),
            before[&id],
            "{}: destroy restores the identity block",
            row.name
        );
    }
}

#[test]
fn new_machines_show_in_the_plan_and_hand_removed_identities_come_back() {
    let emulator = Emulator::start(&scenario(&[]));
    let work = Workdir::new(&configuration(&emulator, false));
    work.init();
    work.apply();
    assert!(!work.plan_has_changes());

    emulator.load_merge(&json!({"subscriptions": [{"id": SUB, "virtual_machines": [
        {"name": "vm-late", "resource_group": "rg-app", "location": "eastus", "identity": {"type": "SystemAssigned"}}
    ]}]}));
    let plan = work.plan_json();
    let change = plan["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "mig_identity_assignment.eastus")
        .expect("the assignment changes");
    assert_eq!(change["change"]["actions"], json!(["update"]));
    assert!(
        strings(&change["change"]["after"]["assigned_ids"])
            .contains(&vm_id("vm-late").to_ascii_lowercase()),
        "the plan names the new VM: {change}"
    );
    work.run_ok(&["apply", "-input=false", "-no-color", "tfplan"]);
    assert!(emulator
        .identity_of(&vm_id("vm-late"))
        .1
        .contains(&builtin("eastus").to_ascii_lowercase()));
    assert!(!work.plan_has_changes());

    // Someone strips the identity by hand: drift, and apply puts it back.
    let (status, _) = emulator.arm_send(
        reqwest::Method::PATCH,
        &vm_id("vm-late"),
        "2024-07-01",
        Some(&json!({"identity": {"type": "SystemAssigned"}})),
    );
    assert_eq!(status, 200);
    assert!(work.plan_has_changes(), "a hand-removed identity is drift");
    work.apply();
    assert!(emulator
        .identity_of(&vm_id("vm-late"))
        .1
        .contains(&builtin("eastus").to_ascii_lowercase()));
    assert!(!work.plan_has_changes());
}

#[test]
fn a_policy_created_identity_is_imported_with_a_clean_plan() {
    let target = builtin("eastus");
    let emulator = Emulator::start(&json!({
        "subscriptions": [{
            "id": SUB,
            "resource_groups": [{"name": "Built-In-Identity-RG", "location": "eastus"}],
            "user_assigned_identities": [{"name": "Built-In-Identity-eastus", "resource_group": "Built-In-Identity-RG", "location": "eastus"}],
            "locks": [{"scope": target, "name": "CanNotDeleteLock-Built-In-Identity-eastus", "level": "CanNotDelete",
                       "notes": "Please do not delete this User-Assigned Identity since extensions enabled by Azure Policy are relying on their existence."}]
        }]
    }));
    let work = Workdir::new(&format!(
        r#"
terraform {{
  required_providers {{
    mig = {{ source = "azure-mig/mig" }}
  }}
}}

{provider}

import {{
  to = mig_builtin_identity.eastus
  id = "{target}"
}}

resource "mig_builtin_identity" "eastus" {{
  location = "eastus"
}}
"#,
        provider = emulator.provider_block()
    ));
    work.init();
    let plan = work.plan_json();
    let change = &plan["resource_changes"][0];
    assert_eq!(change["address"], "mig_builtin_identity.eastus");
    assert_eq!(
        change["change"]["actions"],
        json!(["no-op"]),
        "import only, no changes: {change}"
    );
    assert!(change["change"]["importing"].is_object());
    work.run_ok(&["apply", "-input=false", "-no-color", "tfplan"]);
    assert!(!work.plan_has_changes());
    let state = work
        .state_resources()
        .remove("mig_builtin_identity.eastus")
        .unwrap();
    assert!(state["lock_id"]
        .as_str()
        .unwrap()
        .ends_with("CanNotDeleteLock-Built-In-Identity-eastus"));
}

#[test]
fn a_concurrent_writer_loses_nothing() {
    let rows: Vec<Row> = rows().into_iter().filter(|r| r.name == "vm-two").collect();
    let emulator = Emulator::start(&scenario(&rows));
    // Between the provider's read and its write, someone else attaches id-other.
    emulator.inject_fault(&json!({
        "kind": "concurrent_write", "count": 1, "method": "PATCH", "path_contains": "virtualMachines/vm-two",
        "add_identity": identity_id("rg-app", "id-other")
    }));
    let work = Workdir::new(&configuration(&emulator, false));
    work.init();
    work.apply();
    let (_, identities) = emulator.identity_of(&vm_id("vm-two"));
    for id in [
        identity_id("rg-app", "id-app"),
        identity_id("rg-app", "id-legacy"),
        identity_id("rg-app", "id-other"),
        builtin("eastus"),
    ] {
        assert!(
            identities.contains(&id.to_ascii_lowercase()),
            "{id} lost: {identities:?}"
        );
    }
    let conflicts = emulator
        .requests()
        .iter()
        .filter(|r| r["status"] == 412)
        .count();
    assert_eq!(conflicts, 1, "the stale write was refused once and redone");
}

#[test]
fn a_failure_half_way_records_what_changed_and_the_next_apply_finishes() {
    let rows: Vec<Row> = rows()
        .into_iter()
        .filter(|r| matches!(r.name, "vm-none" | "vm-system" | "vm-two"))
        .collect();
    let emulator = Emulator::start(&scenario(&rows));
    let original: Vec<_> = rows
        .iter()
        .map(|row| (machine_id(row), emulator.identity_of(&machine_id(row))))
        .collect();
    emulator.inject_fault(&json!({
        "kind": "status", "status": 409, "code": "OperationNotAllowed",
        "message": "Operation not allowed on this VM right now", "method": "PATCH", "path_contains": "virtualMachines/vm-system"
    }));
    let work = Workdir::new(&configuration(&emulator, false));
    work.init();
    let failed = work.try_apply();
    assert!(!failed.success, "the apply reports the failure");
    assert!(
        failed.all().contains("vm-system"),
        "the error names the machine: {}",
        failed.all()
    );
    let state = assignment_state(&work);
    let assigned = strings(&state["assigned_ids"]);
    assert_eq!(
        assigned,
        lower(&[vm_id("vm-none"), vm_id("vm-two")]),
        "state records exactly the machines changed"
    );

    emulator.clear_faults();
    work.apply();
    for name in ["vm-none", "vm-system", "vm-two"] {
        assert!(
            emulator
                .identity_of(&vm_id(name))
                .1
                .contains(&builtin("eastus").to_ascii_lowercase()),
            "{name} holds the identity after the second apply"
        );
    }
    assert!(!work.plan_has_changes());
    // The failed create left a tainted object; its replacement takes over the machines it
    // reached (the old object's destroy leaves them alone), so everything is ours and destroy
    // restores every machine exactly.
    let state = assignment_state(&work);
    assert_eq!(
        strings(&state["assigned_ids"]),
        lower(&[vm_id("vm-none"), vm_id("vm-system"), vm_id("vm-two")])
    );
    assert!(strings(&state["compliant_ids"]).is_empty());
    work.destroy();
    for (id, identity) in &original {
        assert_eq!(&emulator.identity_of(id), identity, "{id} is as it was");
    }
}

#[test]
fn audit_mode_reports_without_writing() {
    let rows: Vec<Row> = rows()
        .into_iter()
        .filter(|r| matches!(r.name, "vm-none" | "vm-single"))
        .collect();
    let emulator = Emulator::start(&scenario(&rows));
    let config = configuration(&emulator, false).replace(
        "exclude_tags = { \"mig-exclude\" = \"true\" }",
        "exclude_tags = { \"mig-exclude\" = \"true\" }\n  mode         = \"audit\"",
    );
    let work = Workdir::new(&config);
    work.init();
    work.apply();
    let state = assignment_state(&work);
    assert_eq!(
        strings(&state["noncompliant_ids"]),
        lower(&[vm_id("vm-none")])
    );
    assert!(strings(&state["assigned_ids"]).is_empty());
    assert_eq!(emulator.identity_of(&vm_id("vm-none")).0, "None");
}

/// One resource per region over one subscription, the way the quickstart writes it: each
/// changed machine costs exactly one write, and a no-op plan lists the machines once for
/// all the resources together (one read per page), not once per resource.
#[test]
fn writes_once_per_changed_machine_and_a_no_op_plan_reads_each_page_once() {
    const REGIONS: [&str; 3] = ["eastus", "westeurope", "northeurope"];
    const PER_REGION: usize = 40;
    const PAGE_SIZE: usize = 25;
    let machines: Vec<Json> = (0..PER_REGION * REGIONS.len())
        .map(|i| {
            let region = REGIONS[i % REGIONS.len()];
            let mut machine =
                json!({"name": format!("vm-{i:03}"), "resource_group": "rg-app", "location": region});
            // Every fifth machine already holds its region's identity: nothing to write.
            if i % 5 == 0 {
                machine["identity"] =
                    json!({"type": "UserAssigned", "user_assigned": [builtin(region)]});
            }
            machine
        })
        .collect();
    let already_compliant = machines
        .iter()
        .filter(|m| m.get("identity").is_some())
        .count();
    let emulator = Emulator::start(&json!({
        "subscriptions": [{
            "id": SUB,
            "regions": REGIONS,
            "resource_groups": [{"name": "rg-app", "location": "eastus"}],
            "user_assigned_identities": REGIONS.iter().map(|r| json!({
                "name": format!("Built-In-Identity-{r}"), "resource_group": "Built-In-Identity-RG", "location": r
            })).collect::<Vec<_>>(),
            "virtual_machines": machines,
        }],
        "realism": {"page_size": PAGE_SIZE}
    }));
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"resource "mig_identity_assignment" "region" {{
  for_each       = toset({regions:?})
  identity_id    = "/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-${{each.key}}"
  scope          = "/subscriptions/{SUB}"
  locations      = [each.key]
  resource_types = ["virtualMachines"]
}}
"#,
        regions = REGIONS,
    )));
    work.init();
    emulator.clear_requests();
    work.apply();
    let requests = emulator.requests();
    let writes = requests
        .iter()
        .filter(|r| r["method"] == "PATCH" || r["method"] == "PUT")
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("/virtualMachines/"))
        })
        .count();
    assert_eq!(
        writes,
        PER_REGION * REGIONS.len() - already_compliant,
        "one write per machine that needed the identity"
    );

    emulator.clear_requests();
    assert!(!work.plan_has_changes());
    let list_pages = emulator
        .requests()
        .iter()
        .filter(|r| r["method"] == "GET")
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/virtualMachines"))
        })
        .count();
    let pages = (PER_REGION * REGIONS.len()).div_ceil(PAGE_SIZE);
    assert_eq!(
        list_pages, pages,
        "three resources, one listing of {pages} pages between them"
    );
}

/// Ctrl-C half way through a throttled apply: Terraform asks the provider to stop, no new
/// write starts, and state records exactly the machines changed; the next apply finishes.
#[test]
fn an_interrupted_apply_records_exactly_what_changed_and_the_next_one_finishes() {
    const MACHINES: usize = 300;
    let machines: Vec<Json> = (0..MACHINES)
        .map(|i| json!({"name": format!("vm-{i:03}"), "resource_group": "rg-app", "location": "eastus"}))
        .collect();
    // Realistic throttling: the first 200 writes go at once, then 10 a second.
    let emulator = Emulator::start_with(
        &json!({
            "subscriptions": [{
                "id": SUB,
                "resource_groups": [{"name": "rg-app", "location": "eastus"}],
                "user_assigned_identities": [{
                    "name": "Built-In-Identity-eastus", "resource_group": "Built-In-Identity-RG", "location": "eastus"
                }],
                "virtual_machines": machines,
            }],
            "realism": {"vm_update_seconds": 0, "principal_replication_seconds": 0}
        }),
        "realistic",
    );
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"resource "mig_identity_assignment" "eastus" {{
  identity_id    = "{identity}"
  scope          = "/subscriptions/{SUB}"
  resource_types = ["virtualMachines"]
}}
"#,
        identity = builtin("eastus"),
    )));
    work.init();
    let apply = work.spawn(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    // Interrupt once the burst is spent and writes trickle at the refill rate.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let written = emulator
            .requests()
            .iter()
            .filter(|r| r["method"] == "PATCH" && r["status"] == 200)
            .count();
        if written >= 210 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {written} writes within a minute"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &apply.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let finished = apply.wait_with_output().expect("terraform apply ends");
    assert!(
        !finished.status.success(),
        "an interrupted apply reports failure"
    );
    // The checks below read every machine: not through the throttled buckets.
    emulator.set_throttling(false);

    let holding: BTreeSet<String> = (0..MACHINES)
        .map(|i| vm_id(&format!("vm-{i:03}")))
        .filter(|id| {
            emulator
                .identity_of(id)
                .1
                .contains(&builtin("eastus").to_ascii_lowercase())
        })
        .map(|id| id.to_ascii_lowercase())
        .collect();
    assert!(
        holding.len() < MACHINES,
        "the stop came before every write: {}",
        holding.len()
    );
    assert_eq!(
        strings(&assignment_state(&work)["assigned_ids"]),
        holding,
        "state records exactly the machines that hold the identity"
    );

    work.apply();
    assert!(!work.plan_has_changes());
    let all_hold = (0..MACHINES).all(|i| {
        emulator
            .identity_of(&vm_id(&format!("vm-{i:03}")))
            .1
            .contains(&builtin("eastus").to_ascii_lowercase())
    });
    assert!(all_hold, "the next apply finished the job");
}
