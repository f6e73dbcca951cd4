//! Scenario builders the acceptance tests share: the emulator's default subscription with its
//! resource groups, identities and machines, the resource IDs in it, the configurations most
//! tests apply, and reading ID lists back from state. [`estate`] holds those of the tests over
//! several subscriptions under management groups.
//!
//! Each builder makes exactly what the tests wrote out before (the same scenario documents and
//! configurations), so moving a test onto them changes none of its assertions.

use std::collections::BTreeSet;

use serde_json::{json, Value as Json};

use crate::{Emulator, Workdir};

/// The emulator's default subscription (the provider's `subscription_id`).
pub const SUB: &str = "00000000-0000-0000-0000-000000000001";

/// `/subscriptions/{SUB}`.
pub fn subscription() -> String {
    format!("/subscriptions/{SUB}")
}

/// A resource group of [`SUB`].
pub fn group(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/{name}")
}

/// A user-assigned identity of the scenario (all live in `rg-ids`).
pub fn identity(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
        group("rg-ids")
    )
}

/// A VM of [`SUB`] in `group_name`.
pub fn vm_id(group_name: &str, name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Compute/virtualMachines/{name}",
        group(group_name)
    )
}

/// A VM spec of the scenario in eastus, holding the scenario identities `holding` (names) and
/// a system-assigned identity when `system`; no identity block when it holds neither.
pub fn vm(group_name: &str, name: &str, holding: &[&str], system: bool) -> Json {
    let mut spec = json!({"name": name, "resource_group": group_name, "location": "eastus"});
    let ids: Vec<String> = holding.iter().map(|n| identity(n)).collect();
    let kind = match (system, ids.is_empty()) {
        (true, true) => Some("SystemAssigned"),
        (true, false) => Some("SystemAssigned, UserAssigned"),
        (false, false) => Some("UserAssigned"),
        (false, true) => None,
    };
    if let Some(kind) = kind {
        spec["identity"] = json!({"type": kind, "user_assigned": ids});
    }
    spec
}

/// What goes into [`one_subscription`]: the scenario's parts of [`SUB`].
pub struct Parts<'a> {
    /// Resource groups, in eastus.
    pub groups: &'a [&'a str],
    /// User-assigned identities, in `rg-ids`, eastus.
    pub identities: &'a [&'a str],
    pub vms: Vec<Json>,
    /// `None`: the document has no `scale_sets` at all.
    pub scale_sets: Option<Vec<Json>>,
    /// The document's `realism`; `None`: none.
    pub realism: Option<Json>,
}

/// A scenario document of [`SUB`] alone, in eastus and westeurope.
pub fn one_subscription(parts: Parts) -> Json {
    let identities: Vec<Json> = parts
        .identities
        .iter()
        .map(|name| json!({"name": name, "resource_group": "rg-ids", "location": "eastus"}))
        .collect();
    let groups: Vec<Json> = parts
        .groups
        .iter()
        .map(|name| json!({"name": name, "location": "eastus"}))
        .collect();
    let mut subscription = json!({
        "id": SUB,
        "regions": ["eastus", "westeurope"],
        "resource_groups": groups,
        "user_assigned_identities": identities,
        "virtual_machines": parts.vms,
    });
    if let Some(scale_sets) = parts.scale_sets {
        subscription["scale_sets"] = Json::Array(scale_sets);
    }
    let mut scenario = json!({ "subscriptions": [subscription] });
    if let Some(realism) = parts.realism {
        scenario["realism"] = realism;
    }
    scenario
}

/// The realism that makes VM updates and principal replication instant.
pub fn instant() -> Json {
    json!({"vm_update_seconds": 0, "principal_replication_seconds": 0})
}

/// A `mig_identity_assignment` named `name` attaching the scenario's `id-one` over `scope`,
/// with `extra` arguments.
pub fn assignment(name: &str, scope: &str, extra: &str) -> String {
    format!(
        "resource \"mig_identity_assignment\" \"{name}\" {{\n  identity_id = \"{}\"\n  scope       = \"{scope}\"\n  {extra}\n}}\n",
        identity("id-one")
    )
}

/// A working directory with `body` against `emulator`, initialised.
pub fn workdir(emulator: &Emulator, body: &str) -> Workdir {
    let work = Workdir::new(&emulator.configuration(body));
    work.init();
    work
}

/// IDs, lower-cased.
pub fn lower<S: AsRef<str>>(ids: impl IntoIterator<Item = S>) -> BTreeSet<String> {
    ids.into_iter()
        .map(|id| id.as_ref().to_ascii_lowercase())
        .collect()
}

/// A state's list of IDs (`assigned_ids`, ...), lower-cased; empty when null.
pub fn id_set(value: &Json) -> BTreeSet<String> {
    value
        .as_array()
        .map(|items| lower(items.iter().filter_map(Json::as_str)))
        .unwrap_or_default()
}

/// A resource instance's attribute values in state; panics when it is not there.
pub fn state_of(work: &Workdir, address: &str) -> Json {
    work.state_resources()
        .remove(address)
        .unwrap_or_else(|| panic!("{address} not in state"))
}

/// `terraform apply -refresh-only -auto-approve`, succeeding: state records what Azure has.
pub fn refresh(work: &Workdir) -> crate::CommandOutput {
    work.run_ok(&[
        "apply",
        "-refresh-only",
        "-auto-approve",
        "-input=false",
        "-no-color",
    ])
}

/// The warnings of `terraform plan -json` (run with `extra` arguments), as (summary, detail).
pub fn plan_warnings(work: &Workdir, extra: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["plan", "-input=false", "-no-color", "-json"];
    args.extend_from_slice(extra);
    let output = work.run_ok(&args);
    output
        .diagnostics()
        .into_iter()
        .filter(|d| d["severity"] == "warning")
        .map(|d| {
            (
                d["summary"].as_str().unwrap_or_default().to_string(),
                d["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The actions of a `resource_changes` entry of `terraform show -json` (`["update"]`, ...).
pub fn actions(change: &Json) -> Vec<String> {
    change["change"]["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Json::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Ctrl-C to a running `terraform` (SIGINT, as a terminal sends it), then its end: whether it
/// succeeded, and everything it printed.
pub fn interrupt(process: std::process::Child) -> (bool, String) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &process.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let finished = process.wait_with_output().expect("terraform ends");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&finished.stdout),
        String::from_utf8_lossy(&finished.stderr)
    );
    (finished.status.success(), output)
}

/// A machine's identity block as [`Emulator::identity_of`] reads it: its `type` and
/// lower-cased user-assigned identity IDs.
pub type Block = (String, BTreeSet<String>);

/// The [`Block`] of type `kind` holding the scenario identities `names`.
pub fn block(kind: &str, names: &[&str]) -> Block {
    (
        kind.to_string(),
        names
            .iter()
            .map(|n| identity(n).to_ascii_lowercase())
            .collect(),
    )
}

/// An emulator ("fast" mode) on [`SUB`] with `rg-a`, `rg-b` and `rg-ids`, the identities
/// `id-one`, `id-app` and `id-legacy`, the VMs `vms`, and [`instant`] realism.
pub fn start(vms: Vec<Json>) -> Emulator {
    Emulator::start_with(
        &one_subscription(Parts {
            groups: &["rg-a", "rg-b", "rg-ids"],
            identities: &["id-one", "id-app", "id-legacy"],
            vms,
            scale_sets: None,
            realism: Some(instant()),
        }),
        "fast",
    )
}

/// Requests other than GET whose lower-cased path contains `fragment`, since the log was last
/// cleared (the log has no bodies).
pub fn writes_to_path(emulator: &Emulator, fragment: &str) -> Vec<Json> {
    emulator
        .requests()
        .into_iter()
        .filter(|r| r["method"] != "GET")
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or_default()
                .to_ascii_lowercase()
                .contains(fragment)
        })
        .collect()
}

/// Estates: three subscriptions under management groups, each with the same resource groups,
/// and the policy's built-in identities.
pub mod estate {
    use std::collections::BTreeSet;

    use serde_json::{json, Value as Json};

    use crate::{workspace_root, Emulator, Workdir};

    pub const SUB_A: &str = "a0000000-0000-4000-8000-00000000000a";
    pub const SUB_B: &str = "b0000000-0000-4000-8000-00000000000b";
    pub const SUB_C: &str = "c0000000-0000-4000-8000-00000000000c";
    pub const REGIONS: [&str; 2] = ["eastus", "westeurope"];

    /// A VM of `sub` in `rg-app`.
    pub fn machine_id(sub: &str, name: &str) -> String {
        format!("/subscriptions/{sub}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}")
    }

    /// The policy's identity of `sub` for `region`, lower-cased.
    pub fn builtin_id(sub: &str, region: &str) -> String {
        format!("/subscriptions/{sub}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-{region}")
            .to_ascii_lowercase()
    }

    /// root ─ mg-platform (SUB_A) ─ mg-corp (SUB_B, SUB_C), each subscription in [`REGIONS`]
    /// with `rg-app` and the VMs of `machines` (subscription, name, region) in it; with
    /// `builtin_identities`, also `Built-In-Identity-RG` and the policy's identity of every
    /// region, made already.
    pub fn scenario(machines: &[(&str, &str, &str)], builtin_identities: bool) -> Json {
        let subscription = |id: &str| {
            let vms: Vec<Json> = machines
                .iter()
                .filter(|(sub, ..)| *sub == id)
                .map(|(_, name, region)| {
                    json!({"name": name, "resource_group": "rg-app", "location": region})
                })
                .collect();
            let mut groups = vec![json!({"name": "rg-app", "location": "eastus"})];
            let mut subscription = json!({"id": id, "regions": REGIONS});
            if builtin_identities {
                groups.push(json!({"name": "Built-In-Identity-RG", "location": "eastus"}));
            }
            subscription["resource_groups"] = Json::Array(groups);
            if builtin_identities {
                subscription["user_assigned_identities"] = REGIONS
                    .iter()
                    .map(|r| json!({"name": format!("Built-In-Identity-{r}"), "resource_group": "Built-In-Identity-RG", "location": r}))
                    .collect();
            }
            subscription["virtual_machines"] = Json::Array(vms);
            subscription
        };
        json!({
            "subscriptions": [subscription(SUB_A), subscription(SUB_B), subscription(SUB_C)],
            "management_groups": [
                {"id": "mg-platform", "subscriptions": [SUB_A]},
                {"id": "mg-corp", "parent": "mg-platform", "subscriptions": [SUB_B, SUB_C]}
            ]
        })
    }

    /// A machine added to `sub` in eastus.
    pub fn add_machine(emulator: &Emulator, sub: &str, name: &str) {
        emulator.load_merge(&json!({"subscriptions": [{
            "id": sub,
            "regions": REGIONS,
            "virtual_machines": [{"name": name, "resource_group": "rg-app", "location": "eastus"}]
        }]}));
    }

    /// Requests other than GET to anything of `sub` since the log was last cleared.
    pub fn writes_to(emulator: &Emulator, sub: &str) -> Vec<Json> {
        super::writes_to_path(emulator, sub)
    }

    /// `text` has a warning naming `sub` and `cause`.
    pub fn assert_warns_about(text: &str, sub: &str, cause: &str) {
        let flat = text.replace('\n', " ");
        assert!(
            flat.contains("Warning:") && flat.contains(sub) && flat.contains(cause),
            "a warning names {sub} and the cause ({cause}): {text}"
        );
    }

    /// `name` of `sub` holds exactly the policy's identity of its region.
    pub fn assert_holds(emulator: &Emulator, sub: &str, name: &str, region: &str, step: &str) {
        assert_eq!(
            emulator.identity_of(&machine_id(sub, name)),
            (
                "UserAssigned".to_string(),
                BTreeSet::from([builtin_id(sub, region)])
            ),
            "{step}: {name} holds its identity"
        );
    }

    /// `name` of `sub` holds no identity.
    pub fn assert_bare(emulator: &Emulator, sub: &str, name: &str, step: &str) {
        assert_eq!(
            emulator.identity_of(&machine_id(sub, name)),
            ("None".to_string(), BTreeSet::new()),
            "{step}: {name} holds no identity"
        );
    }

    /// A working directory holding examples/estate's `.tf` files, credentials from `ARM_*`.
    pub fn example(emulator: &Emulator) -> Workdir {
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
}
