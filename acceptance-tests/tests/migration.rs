//! The estates guide's migration, with real Terraform against the emulator: four
//! `mig_identity_assignment` objects (one per subscription and region), applied with
//! `-parallelism=2`, become one `mig_estate_assignment`. The old objects leave through
//! `removed { lifecycle { destroy = false } }` and the estate takes their machines with
//! `adopt = "compliant"`: no machine is written during the move (the request log has no PATCH
//! or PUT of a machine, so none loses the identity even for a moment), every machine still
//! holds it, and the estate owns them: its destroy takes the identity back from each. Next to
//! the old objects the estate is warned about as overlapping them; alone it is not; a machine
//! another tool strips after each apply is named by its plan, then warned about.

use std::collections::{BTreeMap, BTreeSet};

use acceptance_tests::{scenario, terraform_has, Emulator, Workdir};
use serde_json::{json, Value as Json};

const SUB_A: &str = "a0000000-0000-4000-8000-00000000000a";
const SUB_B: &str = "b0000000-0000-4000-8000-00000000000b";
const REGIONS: [&str; 2] = ["eastus", "westeurope"];

fn identity(sub: &str, region: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/rg-ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-{region}")
}

fn machine(sub: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}")
}

/// (subscription, name, region, system-assigned) of every machine: two per pair.
fn machines() -> Vec<(&'static str, String, &'static str, bool)> {
    let mut all = Vec::new();
    for sub in [SUB_A, SUB_B] {
        for region in REGIONS {
            let tag = &sub[..1];
            all.push((sub, format!("vm-{tag}-{region}-bare"), region, false));
            all.push((sub, format!("vm-{tag}-{region}-sys"), region, true));
        }
    }
    all
}

fn scenario() -> Json {
    let subscription = |id: &str| {
        let vms: Vec<Json> = machines()
            .into_iter()
            .filter(|(sub, ..)| *sub == id)
            .map(|(_, name, region, system)| {
                let mut vm = json!({"name": name, "resource_group": "rg-app", "location": region});
                if system {
                    vm["identity"] = json!({"type": "SystemAssigned"});
                }
                vm
            })
            .collect();
        let identities: Vec<Json> = REGIONS
            .iter()
            .map(|region| json!({"name": format!("id-{region}"), "resource_group": "rg-ids", "location": region}))
            .collect();
        json!({
            "id": id,
            "regions": REGIONS,
            "resource_groups": [
                {"name": "rg-app", "location": "eastus"},
                {"name": "rg-ids", "location": "eastus"}
            ],
            "user_assigned_identities": identities,
            "virtual_machines": vms,
        })
    };
    json!({
        "subscriptions": [subscription(SUB_A), subscription(SUB_B)],
        "realism": {"vm_update_seconds": 0, "principal_replication_seconds": 0},
    })
}

/// The pairs as an HCL map: `"{sub}/{region}" = "{identity}"`.
fn pairs() -> String {
    let mut lines = Vec::new();
    for sub in [SUB_A, SUB_B] {
        for region in REGIONS {
            lines.push(format!(
                "    \"{sub}/{region}\" = \"{}\"",
                identity(sub, region)
            ));
        }
    }
    format!("{{\n{}\n  }}", lines.join("\n"))
}

fn old_objects() -> String {
    format!(
        r#"locals {{
  pairs = {}
}}

resource "mig_identity_assignment" "per_region" {{
  for_each    = local.pairs
  scope       = "/subscriptions/${{split("/", each.key)[0]}}"
  locations   = [split("/", each.key)[1]]
  identity_id = each.value
}}
"#,
        pairs()
    )
}

fn estate() -> String {
    format!(
        r#"removed {{
  from = mig_identity_assignment.per_region
  lifecycle {{
    destroy = false
  }}
}}

resource "mig_estate_assignment" "all" {{
  identity_ids = {}
  adopt        = "compliant"
}}
"#,
        pairs()
    )
}

/// [`estate`] without its `removed` block.
fn estate_without_removed() -> String {
    estate()
        .split_once("resource \"mig_estate_assignment\"")
        .map(|(_, rest)| format!("resource \"mig_estate_assignment\"{rest}"))
        .expect("the estate's block")
}

/// Machine ID (lower-cased) to the user-assigned identities it holds (lower-cased).
fn held(emulator: &Emulator) -> BTreeMap<String, BTreeSet<String>> {
    machines()
        .into_iter()
        .map(|(sub, name, ..)| {
            let id = machine(sub, &name);
            (id.to_ascii_lowercase(), emulator.identity_of(&id).1)
        })
        .collect()
}

fn expected_held() -> BTreeMap<String, BTreeSet<String>> {
    machines()
        .into_iter()
        .map(|(sub, name, region, _)| {
            (
                machine(sub, &name).to_ascii_lowercase(),
                BTreeSet::from([identity(sub, region).to_ascii_lowercase()]),
            )
        })
        .collect()
}

/// PATCHes and PUTs of machines in the request log.
fn machine_writes(emulator: &Emulator) -> Vec<Json> {
    emulator
        .requests()
        .into_iter()
        .filter(|r| matches!(r["method"].as_str(), Some("PATCH" | "PUT")))
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase()
                .contains("/providers/microsoft.compute/")
        })
        .collect()
}

const OVERLAP: &str = "Two objects attach the same identity to the same machines";
const MOVED_WITHOUT_BLOCK: &str =
    "An object with the same identity over the same machines is destroyed and another created";
const LOST: &str = "Machines lost the identity this resource attached";
const LOSING: &str = "Machines keep losing the identity this resource attaches";

/// Another writer takes every user-assigned identity off `id` (which held only ours).
fn strip(emulator: &Emulator, id: &str) {
    let (status, answer) = emulator.arm_send(
        reqwest::Method::PATCH,
        id,
        "2024-07-01",
        Some(&json!({"identity": {"type": "None"}})),
    );
    assert!(status < 300, "PATCH {id}: {status} {answer}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while emulator.arm_get(id, "2024-07-01").expect("the VM exists")["properties"]
        ["provisioningState"]
        != "Succeeded"
    {
        assert!(std::time::Instant::now() < deadline, "{id} settles");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(emulator.identity_of(id).1.is_empty(), "{id} stripped");
}

/// The warnings of `terraform plan -json`, as "summary: detail".
fn plan_warnings(work: &Workdir) -> Vec<String> {
    scenario::plan_warnings(work, &[])
        .into_iter()
        .map(|(summary, detail)| format!("{summary}: {detail}"))
        .collect()
}

fn apply(work: &Workdir) {
    work.run_ok(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        "-parallelism=2",
    ]);
}

#[test]
fn four_per_region_objects_move_to_one_estate_without_a_machine_losing_the_identity() {
    if !terraform_has(7, "`removed` blocks") {
        return;
    }
    let emulator = Emulator::start_with(&scenario(), "fast");
    let work = Workdir::new(&emulator.configuration(&old_objects()));
    work.init();
    apply(&work);
    assert_eq!(held(&emulator), expected_held(), "the old objects attached");
    assert_eq!(
        work.state_resources()
            .keys()
            .filter(|a| a.starts_with("mig_identity_assignment.per_region"))
            .count(),
        4,
        "more old objects than -parallelism"
    );

    // The estate next to the old objects (the blocks kept): the plan warns that both attach
    // the same identities to the same machines.
    let estate_alone = estate_without_removed();
    let both = format!("{}{estate_alone}", old_objects());
    work.write("main.tf", &emulator.configuration(&both));
    let warnings = plan_warnings(&work);
    assert!(
        warnings.iter().any(|w| w.contains(OVERLAP)),
        "the overlap is warned about: {warnings:#?}"
    );

    // The estate in place of the old objects, without the `removed` block: their destroys
    // and the estate's creates meet in one plan, which warns and names the fix.
    work.write("main.tf", &emulator.configuration(&estate_alone));
    let warnings = plan_warnings(&work);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(MOVED_WITHOUT_BLOCK) && w.contains("removed {")),
        "a move without `removed` is warned about: {warnings:#?}"
    );

    // The move: no machine is written, every machine keeps its identity.
    emulator.clear_requests();
    work.write("main.tf", &emulator.configuration(&estate()));
    let warnings = plan_warnings(&work);
    assert!(
        !warnings.iter().any(|w| w.contains(MOVED_WITHOUT_BLOCK)),
        "`removed` with `adopt` is the way: {warnings:#?}"
    );
    apply(&work);
    let writes = machine_writes(&emulator);
    assert!(writes.is_empty(), "no machine written: {writes:#?}");
    assert_eq!(held(&emulator), expected_held(), "every machine holds it");

    // The estate owns them all, and the old objects are gone from state.
    let resources = work.state_resources();
    assert!(
        !resources
            .keys()
            .any(|a| a.starts_with("mig_identity_assignment")),
        "{:?}",
        resources.keys()
    );
    let buckets = resources["mig_estate_assignment.all"]["buckets"]
        .as_object()
        .expect("buckets")
        .clone();
    let owned: BTreeSet<String> = buckets
        .values()
        .flat_map(|bucket| {
            bucket["assigned_ids"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|id| id.as_str().map(str::to_ascii_lowercase))
        .collect();
    assert_eq!(
        owned,
        expected_held().into_keys().collect(),
        "the estate owns every machine"
    );
    assert!(!work.plan_has_changes(), "the next plan is clean");
    let warnings = plan_warnings(&work);
    assert!(
        !warnings.iter().any(|w| w.contains(OVERLAP)),
        "one estate alone overlaps nothing: {warnings:#?}"
    );

    // And back: the estate destroyed and per-region objects created in one plan warns too.
    work.write("main.tf", &emulator.configuration(&old_objects()));
    let warnings = plan_warnings(&work);
    assert!(
        warnings.iter().any(|w| w.contains(MOVED_WITHOUT_BLOCK)),
        "a move back without `removed` is warned about: {warnings:#?}"
    );
    work.write("main.tf", &emulator.configuration(&estate()));

    // Another tool strips a machine after each apply: the estate's plan names it, and the
    // second time in a row warns of the fight.
    let fought = machine(SUB_A, "vm-a-eastus-bare");
    strip(&emulator, &fought);
    let warnings = plan_warnings(&work);
    let named = |summary: &str| {
        warnings.iter().any(|w| {
            w.contains(summary)
                && w.to_ascii_lowercase()
                    .contains(&fought.to_ascii_lowercase())
        })
    };
    assert!(named(LOST) && !named(LOSING), "{warnings:#?}");
    apply(&work);
    strip(&emulator, &fought);
    let warnings = plan_warnings(&work);
    let named = |summary: &str| {
        warnings.iter().any(|w| {
            w.contains(summary)
                && w.to_ascii_lowercase()
                    .contains(&fought.to_ascii_lowercase())
        })
    };
    assert!(named(LOSING), "{warnings:#?}");
    apply(&work);

    // Its destroy takes the identity back from each (system-assigned ones keep theirs).
    work.run_ok(&[
        "destroy",
        "-auto-approve",
        "-input=false",
        "-no-color",
        "-parallelism=2",
    ]);
    for (sub, name, _, system) in machines() {
        let (kind, ids) = emulator.identity_of(&machine(sub, &name));
        assert!(ids.is_empty(), "{name} given back: {ids:?}");
        let want = if system { "SystemAssigned" } else { "None" };
        assert_eq!(kind, want, "{name}");
    }
}
