//! An estate in one configuration, with real Terraform: examples/estate applied to a management
//! group of the emulator (two groups, three subscriptions, machines in several regions, one
//! subscription outside the group). Every machine under the group gets its own subscription's
//! identity for its region, the outside subscription is not touched, the next plan is clean,
//! and destroy gives every machine back its identities as they were.
//! `mig_subscriptions` alone: every visible subscription without a group, what a Reader at a
//! group sees, and a group the principal cannot read.

use std::collections::{BTreeMap, BTreeSet};

use acceptance_tests::{configuration, terraform_has, Emulator, Workdir};
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
    acceptance_tests::scenario::estate::example(emulator)
}

/// Machine name to its identity `type` and user-assigned identities.
type Identities = BTreeMap<String, (String, BTreeSet<String>)>;

fn identities(emulator: &Emulator) -> Identities {
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
    let writes_outside: Vec<Json> =
        acceptance_tests::scenario::estate::writes_to(&emulator, SUB_OUT);
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

// ---------------------------------------------------------------------------------------------
// mig_estate_assignment over the same estate, with the policy's identities already made (as
// the policy itself makes them), so the resource is tried alone.
// ---------------------------------------------------------------------------------------------

const REGIONS: [&str; 3] = ["eastus", "westeurope", "northeurope"];
const APP_B: &str = "app-b";
const ESTATE: &str = "mig_estate_assignment.e";

fn group_id(name: &str) -> String {
    format!("/providers/Microsoft.Management/managementGroups/{name}")
}

fn app_identity() -> String {
    format!("/subscriptions/{SUB_B}/resourceGroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{APP_B}")
}

fn scenario_with_identities() -> Json {
    let mut document = scenario();
    for subscription in document["subscriptions"].as_array_mut().unwrap() {
        subscription["resource_groups"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "Built-In-Identity-RG", "location": "eastus"}));
        let mut identities: Vec<Json> = REGIONS
            .iter()
            .map(|r| json!({"name": format!("Built-In-Identity-{r}"), "resource_group": "Built-In-Identity-RG", "location": r}))
            .collect();
        if subscription["id"] == SUB_B {
            identities
                .push(json!({"name": APP_B, "resource_group": "rg-app", "location": "eastus"}));
        }
        subscription["user_assigned_identities"] = Json::Array(identities);
    }
    document
}

fn estate_resource(emulator: &Emulator, arguments: &str) -> String {
    emulator.configuration(&format!(
        "resource \"mig_estate_assignment\" \"e\" {{\n{arguments}\n}}"
    ))
}

/// Writes to machines since the log was last cleared, by machine name.
fn machine_writes(emulator: &Emulator) -> BTreeSet<String> {
    emulator
        .requests()
        .into_iter()
        .filter(|r| r["method"] != "GET")
        .filter_map(|r| {
            let path = r["path"].as_str().unwrap_or_default().to_ascii_lowercase();
            path.contains("/microsoft.compute/")
                .then(|| path.rsplit('/').next().unwrap_or_default().to_string())
        })
        .collect()
}

/// Every machine of `covered` subscriptions holds, besides what it had, its own
/// subscription's identity for its region (or `identity` when given); the others are as they
/// were. `excluded` machines are as they were too.
fn assert_estate(
    emulator: &Emulator,
    before: &Identities,
    covered: &[&str],
    excluded: &[&str],
    identity: &dyn Fn(&str, &str) -> Option<String>,
    step: &str,
) {
    let after = identities(emulator);
    for (sub, _, name, region, had) in machines() {
        let want =
            identity(sub, region).filter(|_| covered.contains(&sub) && !excluded.contains(&name));
        match want {
            None => assert_eq!(after[name], before[name], "{step}: {name} is as it was"),
            Some(id) => {
                let kind = if had.is_null() {
                    "UserAssigned"
                } else {
                    "SystemAssigned, UserAssigned"
                };
                assert_eq!(
                    after[name],
                    (kind.to_string(), BTreeSet::from([id.to_ascii_lowercase()])),
                    "{step}: {name} in {sub}/{region}"
                );
            }
        }
    }
}

fn policy_naming(sub: &str, region: &str) -> Option<String> {
    Some(builtin_id(sub, region))
}

#[test]
fn the_estate_resource_converges_every_change_in_place_and_destroy_restores() {
    let emulator = Emulator::start(&scenario_with_identities());
    let before = identities(&emulator);
    let platform = format!("scope = \"{}\"", group_id("mg-platform"));
    let work = Workdir::new(&estate_resource(&emulator, &platform));
    work.init();
    // Applies the estate with `arguments`, checks every machine against what they ask for,
    // and that the next plan is clean. The emulator's request log then holds that apply's.
    let converge_to = |arguments: &str,
                       covered: &[&str],
                       excluded: &[&str],
                       identity: &dyn Fn(&str, &str) -> Option<String>,
                       step: &str| {
        work.write("main.tf", &estate_resource(&emulator, arguments));
        emulator.clear_requests();
        work.apply();
        assert_estate(&emulator, &before, covered, excluded, identity, step);
        assert!(!work.plan_has_changes(), "{step}: the next plan is clean");
    };

    converge_to(
        &platform,
        &[SUB_A, SUB_B, SUB_C],
        &[],
        &policy_naming,
        "whole group",
    );
    let state = &work.state_resources()[ESTATE];
    let keys: BTreeSet<String> = state["buckets"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let want: BTreeSet<String> = machines()
        .into_iter()
        .filter(|(sub, ..)| *sub != SUB_OUT)
        .map(|(sub, _, _, region, _)| format!("{sub}/{region}"))
        .collect();
    assert_eq!(
        keys, want,
        "one bucket per subscription and region holding machines"
    );
    let east_a = &state["buckets"][format!("{SUB_A}/eastus")];
    assert_eq!(
        east_a["assigned_ids"],
        json!([machine_id(SUB_A, "virtualMachines", "vm-a-east")]),
        "the bucket owns what it attached"
    );

    // A narrower group: the subscription that left gets its machines back, the others are not
    // written.
    let corp = format!("scope = \"{}\"", group_id("mg-corp"));
    converge_to(&corp, &[SUB_B, SUB_C], &[], &policy_naming, "mg-corp");
    assert_eq!(
        machine_writes(&emulator),
        BTreeSet::from(["vm-a-east".to_string(), "vm-a-west".to_string()]),
        "only the machines that left are written"
    );

    // An exclusion, then removed: the machine is given back, then attached again.
    let vm_c_east = machine_id(SUB_C, "virtualMachines", "vm-c-east");
    converge_to(
        &format!("{corp}\nexclude_ids = [\"{vm_c_east}\"]"),
        &[SUB_B, SUB_C],
        &["vm-c-east"],
        &policy_naming,
        "excluded",
    );
    converge_to(
        &corp,
        &[SUB_B, SUB_C],
        &[],
        &policy_naming,
        "exclusion removed",
    );

    // A map naming one region's identity: that bucket swaps to it in place, the buckets it does
    // not name give their machines back, and the plan says which are left alone.
    let app = app_identity();
    let only_north = |sub: &str, region: &str| {
        (region == "northeurope")
            .then(|| app.clone())
            .filter(|_| sub == SUB_B)
    };
    converge_to(
        &format!("{corp}\nidentity_ids = {{ northeurope = \"{app}\" }}"),
        &[SUB_B, SUB_C],
        &[],
        &only_north,
        "identity_ids",
    );
    assert!(
        machine_writes(&emulator).contains("ss-b-north"),
        "the scale set was swapped"
    );
    let plan = work.run_ok(&["plan", "-input=false", "-no-color", "-detailed-exitcode"]);
    assert!(
        plan.all()
            .contains("Machines with no identity named for their region")
            && plan.all().contains(&format!("{SUB_C}/westeurope")),
        "the plan says which machines have no identity: {}",
        plan.all()
    );
    // The map removed: the policy's naming again.
    converge_to(&corp, &[SUB_B, SUB_C], &[], &policy_naming, "map removed");

    work.destroy();
    assert_eq!(
        identities(&emulator),
        before,
        "destroy gives every machine back what it had"
    );
}

#[test]
fn an_imported_estate_owns_nothing_and_its_destroy_writes_nothing() {
    let emulator = Emulator::start(&scenario_with_identities());
    let before = identities(&emulator);
    let corp = format!("scope = \"{}\"", group_id("mg-corp"));
    let work = Workdir::new(&estate_resource(&emulator, &corp));
    work.init();
    work.apply();
    work.run_ok(&["state", "rm", ESTATE]);
    work.run_ok(&[
        "import",
        "-input=false",
        "-no-color",
        ESTATE,
        &group_id("mg-corp"),
    ]);
    let state = &work.state_resources()[ESTATE];
    for (key, bucket) in state["buckets"].as_object().unwrap() {
        assert_eq!(
            bucket["assigned_ids"],
            json!([]),
            "{key}: nothing owned after import"
        );
        assert!(
            !bucket["compliant_ids"].as_array().unwrap().is_empty(),
            "{key}"
        );
    }
    assert_eq!(
        state["buckets"].as_object().unwrap().len(),
        4,
        "every bucket of mg-corp"
    );
    assert!(
        !work.plan_has_changes(),
        "the import matches the configuration"
    );
    emulator.clear_requests();
    work.destroy();
    assert_eq!(
        machine_writes(&emulator),
        BTreeSet::new(),
        "destroy wrote nothing"
    );
    assert_estate(
        &emulator,
        &before,
        &[SUB_B, SUB_C],
        &[],
        &policy_naming,
        "kept after destroy",
    );
}

/// One `mig_identity_assignment` per subscription and region of mg-corp, applied, then
/// replaced in the configuration by one `mig_estate_assignment` over mg-corp (with `extra`
/// beside it) and applied again: the machines hold their identities throughout. Returns the
/// emulator, the machines' identities before it all, and the working directory.
fn moved_to_the_estate(extra: &str) -> (Emulator, Identities, Workdir) {
    let emulator = Emulator::start(&scenario_with_identities());
    let before = identities(&emulator);
    let per_region = emulator.configuration(&format!(
        r#"locals {{
  pairs = toset(["{SUB_B}/eastus", "{SUB_B}/northeurope", "{SUB_C}/eastus", "{SUB_C}/westeurope"])
}}

resource "mig_identity_assignment" "region" {{
  for_each    = local.pairs
  identity_id = provider::mig::builtin_identity_id(split("/", each.key)[0], split("/", each.key)[1])
  scope       = "/subscriptions/${{split("/", each.key)[0]}}"
  locations   = [split("/", each.key)[1]]
}}"#
    ));
    let work = Workdir::new(&per_region);
    work.init();
    work.apply();
    assert_estate(
        &emulator,
        &before,
        &[SUB_B, SUB_C],
        &[],
        &policy_naming,
        "per region",
    );
    let estate = estate_resource(&emulator, &format!("scope = \"{}\"", group_id("mg-corp")));
    work.write("main.tf", &format!("{estate}\n{extra}"));
    emulator.clear_requests();
    work.apply();
    assert_estate(
        &emulator,
        &before,
        &[SUB_B, SUB_C],
        &[],
        &policy_naming,
        "estate",
    );
    work.run_ok(&["apply", "-refresh-only", "-auto-approve", "-input=false"]);
    (emulator, before, work)
}

/// Each bucket's (owned, compliant) machine counts.
fn owned_and_compliant(work: &Workdir) -> BTreeMap<String, (usize, usize)> {
    let state = &work.state_resources()[ESTATE];
    state["buckets"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, bucket)| {
            let count = |name: &str| bucket[name].as_array().map_or(0, Vec::len);
            (key.clone(), (count("assigned_ids"), count("compliant_ids")))
        })
        .collect()
}

/// Without a `removed` block Terraform destroys the old objects alongside the estate's create,
/// with nothing ordering them: a machine may be given back and attached again within the apply
/// (docs/resources/estate_assignment.md says so). The end is exact: every machine holds its
/// identity, the estate owns it, and the estate's destroy restores.
#[test]
fn one_assignment_per_region_moves_to_the_estate_resource_and_ends_owned() {
    if !terraform_has(8, "provider functions") {
        return;
    }
    let (emulator, before, work) = moved_to_the_estate("");
    for (key, counts) in owned_and_compliant(&work) {
        assert_eq!(counts, (1, 0), "{key}: ours, handed over");
    }
    assert!(!work.plan_has_changes());
    work.destroy();
    assert_eq!(
        identities(&emulator),
        before,
        "the estate's destroy restores"
    );
}

/// With `removed { destroy = false }` the old objects are forgotten, not destroyed: no machine
/// is written at all, and the estate records the machines as compliant (held from someone
/// else), so its destroy leaves them holding the identity.
#[test]
fn one_assignment_per_region_moves_to_the_estate_resource_with_a_removed_block_writing_nothing() {
    if !terraform_has(8, "provider functions and removed blocks") {
        return;
    }
    let removed = "removed {\n  from = mig_identity_assignment.region\n  lifecycle {\n    destroy = false\n  }\n}\n";
    let (emulator, before, work) = moved_to_the_estate(removed);
    assert_eq!(
        machine_writes(&emulator),
        BTreeSet::new(),
        "no machine was stripped and attached again"
    );
    for (key, counts) in owned_and_compliant(&work) {
        assert_eq!(counts, (0, 1), "{key}: forgotten, so not ours");
    }
    assert!(!work.plan_has_changes());
    emulator.clear_requests();
    work.destroy();
    assert_eq!(
        machine_writes(&emulator),
        BTreeSet::new(),
        "nothing of the estate's to give back"
    );
    assert_estate(
        &emulator,
        &before,
        &[SUB_B, SUB_C],
        &[],
        &policy_naming,
        "kept after destroy",
    );
}

/// Terraform 1.12+: an `import` block naming the estate by its resource identity. The plan
/// imports it with no change, nothing is owned, and the identity stays the one imported when
/// the scope then changes in place.
#[test]
fn an_estate_imported_by_identity_plans_no_change_and_keeps_its_identity() {
    if !terraform_has(12, "import by resource identity") {
        return;
    }
    let emulator = Emulator::start(&scenario_with_identities());
    let corp = group_id("mg-corp");
    let work = Workdir::new(&estate_resource(&emulator, &format!("scope = \"{corp}\"")));
    work.init();
    work.apply();
    work.run_ok(&["state", "rm", ESTATE]);
    let import =
        format!("import {{\n  to = {ESTATE}\n  identity = {{\n    scope = \"{corp}\"\n  }}\n}}\n");
    work.write(
        "main.tf",
        &format!(
            "{}{import}",
            estate_resource(&emulator, &format!("scope = \"{corp}\""))
        ),
    );
    let plan = work.run_ok(&["plan", "-input=false", "-no-color"]);
    assert!(
        plan.all()
            .contains("1 to import, 0 to add, 0 to change, 0 to destroy"),
        "{}",
        plan.all()
    );
    work.apply();
    let resource = work.state_resource(ESTATE);
    for (key, bucket) in resource["values"]["buckets"].as_object().unwrap() {
        assert_eq!(bucket["assigned_ids"], json!([]), "{key}: nothing owned");
    }
    // The scope changes in place; the identity stays the imported one.
    work.write(
        "main.tf",
        &estate_resource(&emulator, &format!("scope = \"/subscriptions/{SUB_B}\"")),
    );
    work.apply();
    let resource = work.state_resource(ESTATE);
    assert_eq!(resource["identity"], json!({"scope": corp}), "{resource}");
    assert!(!work.plan_has_changes());
}

/// Each subscription's writes are confirmed as soon as its own buckets are done: a small
/// subscription's confirming reads go out while a big one still waits on its write bucket
/// (600 machines: 400 past the burst of 200, at 100 per second at this time scale, so at
/// least 4 s; the small one's updates settle after 0.3 s).
#[test]
fn a_small_subscription_is_confirmed_while_a_big_one_still_writes() {
    let subscription = |id: &str, machines: usize| {
        json!({
            "id": id,
            "resource_groups": [
                {"name": "rg-app", "location": "eastus"},
                {"name": "Built-In-Identity-RG", "location": "eastus"},
            ],
            "user_assigned_identities": [{
                "name": "Built-In-Identity-eastus",
                "resource_group": "Built-In-Identity-RG",
                "location": "eastus",
            }],
            "virtual_machines": (0..machines)
                .map(|i| json!({"name": format!("vm-{i:03}"), "resource_group": "rg-app", "location": "eastus"}))
                .collect::<Vec<Json>>(),
        })
    };
    let emulator = Emulator::start_with(
        &json!({
            "subscriptions": [subscription(SUB_A, 5), subscription(SUB_B, 600)],
            "realism": {"time_scale": 10, "principal_replication_seconds": 0},
        }),
        "realistic",
    );
    let work = Workdir::new(&estate_resource(&emulator, ""));
    work.init();
    emulator.clear_requests();
    work.apply();

    let requests = emulator.requests();
    // A request of `method` on the subscription's machines (one, or the listing).
    let in_subscription = |r: &Json, sub: &str, method: &str| {
        let path = r["path"].as_str().unwrap_or_default().to_ascii_lowercase();
        r["method"] == method
            && path.starts_with(&format!("/subscriptions/{sub}/"))
            && path.contains("/microsoft.compute/virtualmachines")
    };
    let last_write = |sub: &str| {
        requests
            .iter()
            .rposition(|r| in_subscription(r, sub, "PATCH"))
            .unwrap_or_else(|| panic!("no machine written in {sub}"))
    };
    let small_written = last_write(SUB_A);
    let big_written = last_write(SUB_B);
    let small_confirmed = requests
        .iter()
        .enumerate()
        .skip(small_written + 1)
        .find(|(_, r)| in_subscription(r, SUB_A, "GET"))
        .map(|(index, _)| index)
        .expect("the small subscription's writes are confirmed");
    assert!(
        small_confirmed < big_written,
        "the small subscription was confirmed (request {small_confirmed}) only after the big \
         one's last write (request {big_written})"
    );
    for sub in [SUB_A, SUB_B] {
        assert!(
            emulator
                .identity_of(&machine_id(sub, "virtualMachines", "vm-004"))
                .1
                .contains(&builtin_id(sub, "eastus")),
            "{sub} written"
        );
    }
}
