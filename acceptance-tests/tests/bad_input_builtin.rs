//! Bad input never reaches Azure: `mig_builtin_identity` (resource and data source) and the
//! functions `builtin_identity_id`, `builtin_identity_name` and `parse_resource_id`, with real
//! Terraform against the emulator.
//!
//! Each row of a table is one malformed input: the stage that refuses it (`terraform validate`
//! for what its shape shows, `terraform plan` for what only Azure knows: a region the
//! subscription lacks, an identity that does not exist), the attribute the diagnostic points
//! at, and a fragment of the message naming the fix. Inputs Azure accepts in another spelling
//! (a region's portal name, an ID's trailing `/`) are normalised where used: their rows say
//! which write they cause, and that the next plan is clean.
//!
//! One `terraform init` per working directory: the rows rewrite `main.tf` and run again.

use acceptance_tests::{CommandOutput, Emulator, Workdir};
use serde_json::{json, Value as Json};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const IDENTITY_API: &str = "2023-01-31";
const LOCK_API: &str = "2020-05-01";
const GROUP_API: &str = "2022-09-01";

fn mine() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-mine")
}

fn scenario() -> Json {
    json!({"subscriptions": [{
        "id": SUB,
        "resource_groups": [{"name": "rg-app", "location": "eastus"}],
        "user_assigned_identities": [{"name": "id-mine", "resource_group": "rg-app", "location": "eastus"}]
    }]})
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Validate,
    Plan,
}

/// One malformed input and how it must be refused.
struct Refused {
    /// The configuration (inside the provider's configuration).
    body: String,
    stage: Stage,
    /// The attribute (or function parameter) the error points at.
    attribute: &'static str,
    /// Part of the error's summary or detail: what is wrong and how to fix it.
    fragment: &'static str,
}

fn resource(arguments: &str) -> String {
    format!("resource \"mig_builtin_identity\" \"x\" {{\n  {arguments}\n}}\n")
}

fn data_source(arguments: &str) -> String {
    format!("data \"mig_builtin_identity\" \"x\" {{\n  {arguments}\n}}\n")
}

fn output(expression: &str) -> String {
    format!("output \"x\" {{\n  value = {expression}\n}}\n")
}

fn row(body: String, stage: Stage, attribute: &'static str, fragment: &'static str) -> Refused {
    Refused {
        body,
        stage,
        attribute,
        fragment,
    }
}

/// Whether `diagnostic` is an error pointing at `attribute`: the source line Terraform
/// resolved its attribute path to names it (a resource's or data source's argument), or its
/// detail does (a function's parameter).
fn points_at(diagnostic: &Json, attribute: &str, fragment: &str) -> bool {
    let text = |key: &str| diagnostic[key].as_str().unwrap_or_default().to_string();
    let code = diagnostic["snippet"]["code"].as_str().unwrap_or_default();
    diagnostic["severity"] == "error"
        && (code.contains(attribute) || text("detail").contains(attribute))
        && format!("{} {}", text("summary"), text("detail")).contains(fragment)
}

fn summary(output: &CommandOutput) -> String {
    serde_json::to_string_pretty(&output.diagnostics()).unwrap_or_default()
}

/// Runs every row in one working directory, initialised once, against the emulator; no row
/// may write anything to Azure.
fn run_table(emulator: &Emulator, rows: &[Refused]) {
    let work = Workdir::new(&emulator.configuration(""));
    work.init();
    emulator.clear_requests();
    for row in rows {
        work.write("main.tf", &emulator.configuration(&row.body));
        let validate = work.run(&["validate", "-json", "-no-color"]);
        let refusal = match row.stage {
            Stage::Validate => {
                assert!(
                    !validate.success,
                    "refused at validate:\n{}\n{}",
                    row.body,
                    validate.all()
                );
                validate
            }
            Stage::Plan => {
                assert!(
                    validate.success,
                    "valid in shape, so validate passes:\n{}\n{}",
                    row.body,
                    validate.all()
                );
                let plan = work.run(&["plan", "-json", "-input=false", "-no-color"]);
                assert!(
                    !plan.success,
                    "refused at plan:\n{}\n{}",
                    row.body,
                    plan.all()
                );
                plan
            }
        };
        assert!(
            refusal
                .diagnostics()
                .iter()
                .any(|d| points_at(d, row.attribute, row.fragment)),
            "{:?} error at `{}` saying `{}`:\n{}\n{}",
            row.stage,
            row.attribute,
            row.fragment,
            row.body,
            summary(&refusal)
        );
    }
    let writes: Vec<Json> = emulator
        .requests()
        .into_iter()
        .filter(|r| r["method"] != "GET" && !r["api_version"].is_null())
        .collect();
    assert!(writes.is_empty(), "bad input reached Azure: {writes:#?}");
}

#[test]
fn the_resource_refuses_bad_arguments_at_validate_or_plan_naming_them() {
    let emulator = Emulator::start(&scenario());
    let location = r#"location = "eastus""#;
    let with = |argument: &str| resource(&format!("{location}\n  {argument}"));
    let long_value = "v".repeat(257);
    let rows = [
        row(
            resource(r#"location = "east-us!""#),
            Stage::Validate,
            "location",
            "is not an Azure region name",
        ),
        row(
            with(&format!(r#"subscription_id = "/subscriptions/{SUB}""#)),
            Stage::Validate,
            "subscription_id",
            "Give the GUID alone",
        ),
        row(
            with(r#"resource_group_name = """#),
            Stage::Validate,
            "resource_group_name",
            "is not a resource group name",
        ),
        row(
            with(r#"resource_group_name = "rg/one""#),
            Stage::Validate,
            "resource_group_name",
            "is not a resource group name",
        ),
        row(
            with(r#"resource_group_location = "east-us!""#),
            Stage::Validate,
            "resource_group_location",
            "is not an Azure region name",
        ),
        row(
            with(r#"name = "my identity""#),
            Stage::Validate,
            "name",
            "is not a managed identity name",
        ),
        row(
            with(r#"name = "-identity""#),
            Stage::Validate,
            "name",
            "starting with a letter or digit",
        ),
        row(
            with(r#"tags = { "a<b" = "x" }"#),
            Stage::Validate,
            "tags",
            "is not a tag name",
        ),
        row(
            with(&format!(r#"tags = {{ owner = "{long_value}" }}"#)),
            Stage::Validate,
            "tags",
            "at most 256 characters",
        ),
        row(
            with(&format!(
                r#"existing_identity_id = "{}?api-version={IDENTITY_API}""#,
                mine()
            )),
            Stage::Validate,
            "existing_identity_id",
            "query string",
        ),
        row(
            with("timeouts {\n    create = \"0s\"\n  }"),
            Stage::Validate,
            "create",
            "leaves no time at all",
        ),
        row(
            resource(r#"location = "atlantis""#),
            Stage::Plan,
            "location",
            "has no region `atlantis`",
        ),
        row(
            with(r#"resource_group_location = "atlantis""#),
            Stage::Plan,
            "resource_group_location",
            "has no region `atlantis`",
        ),
        row(
            with(&format!(
                r#"existing_identity_id = "{}""#,
                mine().replace("id-mine", "id-missing")
            )),
            Stage::Plan,
            "existing_identity_id",
            "does not exist",
        ),
    ];
    run_table(&emulator, &rows);
}

#[test]
fn the_data_source_and_the_functions_refuse_bad_arguments_naming_them() {
    let emulator = Emulator::start(&scenario());
    let rows = [
        row(
            data_source(r#"location = "east-us!""#),
            Stage::Validate,
            "location",
            "is not an Azure region name",
        ),
        row(
            data_source("location = \"eastus\"\n  subscription_id = \"not-a-guid\""),
            Stage::Validate,
            "subscription_id",
            "is not a GUID",
        ),
        // Not "exists = false": a region the subscription lacks is a mistake in `location`.
        row(
            data_source(r#"location = "eastus3""#),
            Stage::Plan,
            "location",
            "has no region `eastus3`",
        ),
        row(
            output(r#"provider::mig::builtin_identity_id("not-a-guid", "eastus")"#),
            Stage::Validate,
            "subscription_id",
            "is not a GUID",
        ),
        row(
            output(&format!(
                r#"provider::mig::builtin_identity_id("/subscriptions/{SUB}", "eastus")"#
            )),
            Stage::Validate,
            "subscription_id",
            "Give the GUID alone",
        ),
        row(
            output(&format!(
                r#"provider::mig::builtin_identity_id("{SUB}", "east-us!")"#
            )),
            Stage::Validate,
            "location",
            "is not an Azure region name",
        ),
        row(
            output(r#"provider::mig::builtin_identity_name("")"#),
            Stage::Validate,
            "location",
            "is not an Azure region name",
        ),
        row(
            output(&format!(
                r#"provider::mig::parse_resource_id("/subscriptions/{SUB}/resourceGroups/rg?api-version={GROUP_API}")"#
            )),
            Stage::Validate,
            "id",
            "query string",
        ),
    ];
    run_table(&emulator, &rows);
}

/// The planned change of one resource instance in `terraform show -json` of a plan.
fn actions(plan: &Json, address: &str) -> Vec<String> {
    plan["resource_changes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|change| change["address"] == address)
        .unwrap_or_else(|| panic!("{address} in the plan: {plan:#}"))["change"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// The ARM writes (not GETs, nor token requests) the emulator received since the last clear.
fn writes(emulator: &Emulator) -> Vec<(String, String)> {
    emulator
        .requests()
        .into_iter()
        .filter(|r| r["method"] != "GET" && !r["api_version"].is_null())
        .map(|r| {
            (
                r["method"].as_str().unwrap_or_default().to_string(),
                r["path"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn other_spellings_azure_accepts_are_kept_as_written_and_normalised_where_used() {
    let emulator = Emulator::start(&scenario());
    let group = format!("/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG");
    let identity =
        format!("{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-northeurope");
    let work = Workdir::new(&emulator.configuration(""));
    work.init();

    /// (configuration, what to check once applied)
    type Check<'a> = Box<dyn Fn(&Workdir, &[(String, String)]) + 'a>;
    let rows: Vec<(String, Check)> = vec![
        (
            // Portal spellings: planned as written (no "invalid plan"), ARM gets its own.
            resource(
                "location                = \"North Europe\"\n  resource_group_location = \"West Europe\"",
            ),
            Box::new(|work: &Workdir, writes: &[(String, String)]| {
                let rg = emulator.arm_get(&group, GROUP_API).expect("group created");
                assert_eq!(rg["location"], "westeurope", "ARM gets its spelling");
                let created = emulator.arm_get(&identity, IDENTITY_API).expect("identity");
                assert_eq!(created["location"], "northeurope");
                assert!(
                    writes.iter().any(|(m, p)| m == "PUT" && p.eq_ignore_ascii_case(&identity)),
                    "{writes:?}"
                );
                let state = &work.state_resources()["mig_builtin_identity.x"];
                assert_eq!(state["location"], "North Europe", "kept as written");
                assert_eq!(state["resource_group_location"], "West Europe");
            }),
        ),
        (
            // A trailing slash: the lock goes on the identity's ID without it; the argument
            // stays as written, the identity's `id` is ARM's.
            resource(&format!(
                "location             = \"eastus\"\n  existing_identity_id = \"{}/\"",
                mine()
            )),
            Box::new(|work: &Workdir, writes: &[(String, String)]| {
                let lock = format!(
                    "{}/providers/Microsoft.Authorization/locks/CanNotDeleteLock-id-mine",
                    mine()
                );
                assert!(emulator.arm_get(&lock, LOCK_API).is_some(), "locked");
                assert!(
                    writes.iter().any(|(m, p)| m == "PUT" && p.eq_ignore_ascii_case(&lock)),
                    "the lock written at the ID without `/`: {writes:?}"
                );
                assert!(
                    !writes.iter().any(|(_, p)| p.contains("//")),
                    "{writes:?}"
                );
                let state = &work.state_resources()["mig_builtin_identity.x"];
                assert_eq!(state["existing_identity_id"], format!("{}/", mine()));
                assert_eq!(state["id"], mine());
                assert!(
                    emulator.arm_get(&mine(), IDENTITY_API).is_some(),
                    "never deleted"
                );
            }),
        ),
        (
            // The data source and the functions: the portal's spelling, read as ARM's; the
            // function checks only the shape of a region (documented).
            format!(
                "{}{}output \"shape_only\" {{\n  value = provider::mig::builtin_identity_id(\"{SUB}\", \"eastus3\")\n}}\n",
                data_source(r#"location = "East US""#),
                output(&format!(
                    "[data.mig_builtin_identity.x.id, provider::mig::builtin_identity_name(\"East US 2\"), provider::mig::parse_resource_id(\"{}/\").name]",
                    mine()
                )),
            ),
            Box::new(|work: &Workdir, writes: &[(String, String)]| {
                let outputs = work.outputs();
                assert_eq!(
                    outputs["x"],
                    json!([
                        format!("/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus"),
                        "Built-In-Identity-eastus2",
                        "id-mine"
                    ])
                );
                assert!(outputs["shape_only"]
                    .as_str()
                    .unwrap()
                    .ends_with("/Built-In-Identity-eastus3"));
                // The previous row's resource, removed from the configuration, is destroyed:
                // only our lock comes off, the identity stays.
                assert!(
                    writes.iter().all(|(m, _)| m == "DELETE"),
                    "a data source and functions write nothing: {writes:?}"
                );
            }),
        ),
    ];
    for (body, check) in rows {
        work.write("main.tf", &emulator.configuration(&body));
        emulator.clear_requests();
        work.apply();
        check(&work, &writes(&emulator));
        let plan = work.plan_json();
        for change in plan["resource_changes"].as_array().into_iter().flatten() {
            let address = change["address"].as_str().unwrap_or_default();
            assert_eq!(
                actions(&plan, address),
                ["no-op"],
                "{body}\n{address}: {change:#}"
            );
        }
        assert!(!work.plan_has_changes(), "the next plan is clean:\n{body}");
    }
}
