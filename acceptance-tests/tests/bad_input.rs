//! Bad input never reaches Azure: real Terraform against the emulator, one row per malformed
//! argument of `mig_identity_assignment`, `mig_estate_assignment`, `mig_orphan_cleanup`
//! (resource and action), the
//! data sources `mig_virtual_machines`, `mig_orphaned_role_assignments`,
//! `mig_unused_identities`, `mig_permissions`, and the provider block.
//!
//! Each row says at which stage the value is refused (`terraform validate` or `terraform
//! plan`), which attribute the diagnostic points at (its source line, as `-json` prints it
//! in `snippet.code`) and a fragment of its message; or that the value is accepted. Rows of a
//! table share one working directory, initialised once, `main.tf` rewritten per row.
//!
//! Normalised values (a trailing `/`, a role GUID in any casing) are tested by the writes
//! they cause, read back from the emulator.

use acceptance_tests::{configuration, Emulator, Workdir};
use serde_json::{json, Value as Json};

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
/// Deleted principals whose role assignments at the group are orphans.
const DEAD_CONTRIBUTOR: &str = "9f1e0000-0000-4000-8000-0000000000c1";
const DEAD_READER: &str = "9f1e0000-0000-4000-8000-0000000000c2";
const LONG_AGO: &str = "2025-01-01T00:00:00Z";

/// Rows known to fail, with why. Only rows about `mig_identity_assignment` may be listed
/// (that resource is someone else's to fix); a listed row that passes fails the test, so the
/// list stays true.
const EXPECTED_TO_FAIL: &[(&str, &str)] = &[];

fn sub_scope() -> String {
    format!("/subscriptions/{SUB}")
}

fn rg_scope() -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-app")
}

fn identity(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}",
        rg_scope()
    )
}

fn vm(name: &str) -> String {
    format!(
        "{}/providers/Microsoft.Compute/virtualMachines/{name}",
        rg_scope()
    )
}

fn role_definition(guid: &str) -> String {
    format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}")
}

fn scenario() -> Json {
    json!({
        "subscriptions": [{
            "id": SUB,
            "regions": ["eastus", "westeurope"],
            "resource_groups": [{"name": "rg-app", "location": "eastus"}],
            "user_assigned_identities": [{"name": "id-one", "resource_group": "rg-app", "location": "eastus"}],
            "virtual_machines": [
                {"name": "vm-a", "resource_group": "rg-app", "location": "eastus"},
                {"name": "vm-b", "resource_group": "rg-app", "location": "eastus"}
            ],
            "role_assignments": [
                {"scope": rg_scope(), "role": "Contributor", "principal_id": DEAD_CONTRIBUTOR, "principal_type": "ServicePrincipal", "created_on": LONG_AGO},
                {"scope": rg_scope(), "role": "Reader", "principal_id": DEAD_READER, "principal_type": "ServicePrincipal", "created_on": LONG_AGO}
            ]
        }],
        "deleted_principals": [DEAD_CONTRIBUTOR, DEAD_READER]
    })
}

// ---------------------------------------------------------------------------------------------
// The table runner
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Validate,
    Plan,
    /// Validate and plan both succeed.
    Accepted,
}

/// Where the diagnostic must point.
#[derive(Debug, Clone, Copy)]
enum Points {
    /// At the argument's own line (`snippet.code` holds the name).
    At(&'static str),
    /// The argument is absent from the configuration, so there is no line to point at: the
    /// message names it.
    Names(&'static str),
    /// Nothing (accepted rows).
    Nowhere,
}

struct Row {
    name: String,
    /// The whole configuration.
    config: String,
    stage: Stage,
    points: Points,
    /// Found (ignoring case) in the summary or detail of that diagnostic.
    fragment: &'static str,
    /// Extra `terraform plan` arguments (`-invoke=...` for the action).
    plan_args: Vec<String>,
}

fn refused(
    name: impl Into<String>,
    config: String,
    stage: Stage,
    points: Points,
    fragment: &'static str,
) -> Row {
    Row {
        name: name.into(),
        config,
        stage,
        points,
        fragment,
        plan_args: Vec::new(),
    }
}

fn accepted(name: impl Into<String>, config: String) -> Row {
    Row {
        name: name.into(),
        config,
        stage: Stage::Accepted,
        points: Points::Nowhere,
        fragment: "",
        plan_args: Vec::new(),
    }
}

fn text(diagnostic: &Json, field: &str) -> String {
    diagnostic[field].as_str().unwrap_or_default().to_string()
}

fn describe(diagnostics: &[Json]) -> String {
    diagnostics
        .iter()
        .map(|d| {
            format!(
                "  [{}] {} | {} | at: {}",
                text(d, "severity"),
                text(d, "summary"),
                text(d, "detail").replace('\n', " "),
                d["snippet"]["code"].as_str().unwrap_or("-").trim()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// What went wrong with `row`, or `None` when it behaved as the row says.
fn check_row(work: &Workdir, row: &Row) -> Option<String> {
    work.write("main.tf", &row.config);
    let validate = work.run(&["validate", "-json", "-no-color"]);
    let (stage, diagnostics) = if !validate.success {
        (Stage::Validate, validate.diagnostics())
    } else {
        let mut args = vec!["plan", "-json", "-input=false", "-no-color", "-lock=false"];
        args.extend(row.plan_args.iter().map(String::as_str));
        let plan = work.run(&args);
        if plan.success {
            (Stage::Accepted, plan.diagnostics())
        } else {
            (Stage::Plan, plan.diagnostics())
        }
    };
    let errors: Vec<Json> = diagnostics
        .into_iter()
        .filter(|d| d["severity"] == "error")
        .collect();
    if stage != row.stage {
        return Some(format!(
            "expected {:?}, got {stage:?}\n{}",
            row.stage,
            describe(&errors)
        ));
    }
    if stage == Stage::Accepted {
        return None;
    }
    let fragment = row.fragment.to_lowercase();
    let matching = errors.iter().any(|d| {
        let message = format!("{} {}", text(d, "summary"), text(d, "detail")).to_lowercase();
        let code = d["snippet"]["code"].as_str().unwrap_or_default();
        let pointed = match row.points {
            Points::At(attribute) => code.contains(attribute),
            Points::Names(attribute) => message.contains(&attribute.to_lowercase()),
            Points::Nowhere => true,
        };
        pointed && message.contains(&fragment)
    });
    if matching {
        None
    } else {
        Some(format!(
            "refused at {stage:?} as expected, but no error {:?} with {:?}:\n{}",
            row.points,
            row.fragment,
            describe(&errors)
        ))
    }
}

/// Runs every row in one working directory (initialised once) and fails with every row
/// that did not behave, except those listed in [`EXPECTED_TO_FAIL`].
fn run_table(rows: Vec<Row>) {
    let work = Workdir::new(&rows[0].config);
    work.init();
    let mut unexpected = Vec::new();
    let mut passing_but_listed = Vec::new();
    for row in &rows {
        let outcome = check_row(&work, row);
        let listed = EXPECTED_TO_FAIL.iter().find(|(name, _)| *name == row.name);
        match (outcome, listed) {
            (None, None) => eprintln!("ok      {}", row.name),
            (Some(problem), Some((_, why))) => {
                eprintln!("xfail   {}: {why}\n{problem}", row.name)
            }
            (None, Some(_)) => passing_but_listed.push(row.name.clone()),
            (Some(problem), None) => {
                eprintln!("FAILED  {}: {problem}", row.name);
                unexpected.push(format!("{}: {problem}", row.name));
            }
        }
    }
    assert!(
        unexpected.is_empty() && passing_but_listed.is_empty(),
        "{} row(s) failed:\n{}\n\nlisted in EXPECTED_TO_FAIL but passing (remove them): {passing_but_listed:?}",
        unexpected.len(),
        unexpected.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// mig_identity_assignment
// ---------------------------------------------------------------------------------------------

#[test]
fn identity_assignment_rows() {
    let emulator = Emulator::start(&scenario());
    let id = identity("id-one");
    let scope = sub_scope();
    // The resource with `arguments` replacing (or adding to) the valid base.
    let resource = |identity_id: &str, scope: &str, more: &str| {
        emulator.configuration(&format!(
            "resource \"mig_identity_assignment\" \"x\" {{\n  identity_id = \"{identity_id}\"\n  scope       = \"{scope}\"\n  {more}\n}}\n"
        ))
    };
    use Points::At;
    use Stage::{Plan, Validate};
    let rows = vec![
        accepted(
            "identity_assignment: the valid base",
            resource(&id, &scope, ""),
        ),
        refused(
            "identity_id: empty",
            resource("", &scope, ""),
            Validate,
            At("identity_id"),
            "Invalid identity ID",
        ),
        refused(
            "identity_id: a resource group",
            resource(&rg_scope(), &scope, ""),
            Validate,
            At("identity_id"),
            "userAssignedIdentities",
        ),
        refused(
            "identity_id: a machine",
            resource(&vm("vm-a"), &scope, ""),
            Validate,
            At("identity_id"),
            "Invalid identity ID",
        ),
        refused(
            "identity_id: query string",
            resource(&format!("{id}?api-version=2023-01-31"), &scope, ""),
            Validate,
            At("identity_id"),
            "query string",
        ),
        refused(
            "identity_id: white space",
            resource(&format!("{id} "), &scope, ""),
            Validate,
            At("identity_id"),
            "white space",
        ),
        refused(
            "identity_id: does not exist",
            resource(&identity("id-nope"), &scope, ""),
            Plan,
            At("identity_id"),
            "does not exist",
        ),
        accepted(
            "identity_id: trailing slash",
            resource(&format!("{id}/"), &scope, ""),
        ),
        refused(
            "scope: empty",
            resource(&id, "", ""),
            Validate,
            At("scope"),
            "Invalid scope",
        ),
        refused(
            "scope: not a GUID",
            resource(&id, "/subscriptions/not-a-guid", ""),
            Validate,
            At("scope"),
            "Invalid scope",
        ),
        refused(
            "scope: a machine",
            resource(&id, &vm("vm-a"), ""),
            Validate,
            At("scope"),
            "Invalid scope",
        ),
        refused(
            "scope: query string",
            resource(&id, &format!("{scope}?api-version=1"), ""),
            Validate,
            At("scope"),
            "query string",
        ),
        accepted(
            "scope: trailing slash",
            resource(&id, &format!("{scope}/"), ""),
        ),
        refused(
            "locations: empty",
            resource(&id, &scope, "locations = []"),
            Validate,
            At("locations"),
            "leave `locations` out",
        ),
        refused(
            "locations: malformed",
            resource(&id, &scope, "locations = [\"east-us!\"]"),
            Validate,
            At("locations"),
            "Invalid region",
        ),
        refused(
            "locations: unknown region",
            resource(&id, &scope, "locations = [\"eastus3\"]"),
            Plan,
            At("locations"),
            "westeurope",
        ),
        accepted(
            "locations: portal spelling",
            resource(&id, &scope, "locations = [\"East US\"]"),
        ),
        refused(
            "resource_types: empty",
            resource(&id, &scope, "resource_types = []"),
            Validate,
            At("resource_types"),
            "leave the argument out for both",
        ),
        refused(
            "resource_types: not a machine type",
            resource(&id, &scope, "resource_types = [\"disks\"]"),
            Validate,
            At("resource_types"),
            "virtualMachineScaleSets",
        ),
        accepted(
            "resource_types: any casing",
            resource(&id, &scope, "resource_types = [\"virtualmachines\"]"),
        ),
        refused(
            "exclude_ids: empty string",
            resource(&id, &scope, "exclude_ids = [\"\"]"),
            Validate,
            At("exclude_ids"),
            "Invalid machine ID",
        ),
        refused(
            "exclude_ids: a resource group",
            resource(&id, &scope, &format!("exclude_ids = [\"{}\"]", rg_scope())),
            Validate,
            At("exclude_ids"),
            "narrow `scope`",
        ),
        refused(
            "exclude_ids: an identity",
            resource(&id, &scope, &format!("exclude_ids = [\"{id}\"]")),
            Validate,
            At("exclude_ids"),
            "not the ID of a virtual machine",
        ),
        refused(
            "exclude_ids: query string",
            resource(
                &id,
                &scope,
                &format!("exclude_ids = [\"{}?api-version=2024-07-01\"]", vm("vm-a")),
            ),
            Validate,
            At("exclude_ids"),
            "query string",
        ),
        accepted(
            "exclude_ids: trailing slash",
            resource(&id, &scope, &format!("exclude_ids = [\"{}/\"]", vm("vm-a"))),
        ),
        refused(
            "exclude_tags: bad tag name",
            resource(&id, &scope, "exclude_tags = { \"a<b\" = \"x\" }"),
            Validate,
            At("exclude_tags"),
            "not a tag name",
        ),
        refused(
            "exclude_tags: value too long",
            resource(
                &id,
                &scope,
                &format!("exclude_tags = {{ env = \"{}\" }}", "v".repeat(257)),
            ),
            Validate,
            At("exclude_tags"),
            "256",
        ),
        refused(
            "skip_single_user_assigned: not a bool",
            resource(&id, &scope, "skip_single_user_assigned = \"maybe\""),
            Validate,
            At("skip_single_user_assigned"),
            "bool",
        ),
        refused(
            "mode: typo",
            resource(&id, &scope, "mode = \"enforced\""),
            Validate,
            At("mode"),
            "`enforce`",
        ),
        refused(
            "timeouts.create: zero",
            resource(&id, &scope, "timeouts { create = \"0s\" }"),
            Validate,
            At("create"),
            "no time at all",
        ),
        refused(
            "timeouts.update: garbage",
            resource(&id, &scope, "timeouts { update = \"soon\" }"),
            Validate,
            At("update"),
            "not a duration",
        ),
        refused(
            "timeouts.delete: negative",
            resource(&id, &scope, "timeouts { delete = \"-5m\" }"),
            Validate,
            At("delete"),
            "not a duration",
        ),
    ];
    run_table(rows);
}

// ---------------------------------------------------------------------------------------------
// mig_estate_assignment
// ---------------------------------------------------------------------------------------------

#[test]
fn estate_assignment_rows() {
    let emulator = Emulator::start(&scenario());
    let id = identity("id-one");
    let scope = sub_scope();
    let resource = |arguments: &str| {
        emulator.configuration(&format!(
            "resource \"mig_estate_assignment\" \"x\" {{\n  {arguments}\n}}\n"
        ))
    };
    let mapped = |more: &str| {
        resource(&format!(
            "scope = \"{scope}\"\n  identity_ids = {{ eastus = \"{id}\" }}\n  {more}"
        ))
    };
    use Points::{At, Names};
    use Stage::{Plan, Validate};
    let rows = vec![
        accepted("estate_assignment: the valid base", mapped("")),
        accepted(
            "identity_ids: a subscription and region key",
            resource(&format!(
                "scope = \"{scope}\"\n  identity_ids = {{ \"{SUB}/East US\" = \"{id}\" }}"
            )),
        ),
        accepted(
            "estate: a resource group scope",
            resource(&format!(
                "scope = \"{}\"\n  identity_ids = {{ eastus = \"{id}\" }}",
                rg_scope()
            )),
        ),
        refused(
            "estate scope: a name, not an ID",
            resource("scope = \"landing-zones\""),
            Validate,
            At("scope"),
            "Invalid scope",
        ),
        refused(
            "estate scope: another provider's resource",
            resource("scope = \"/providers/Microsoft.Compute/virtualMachines/x\""),
            Validate,
            At("scope"),
            "not a management group ID",
        ),
        refused(
            "estate scope: a machine",
            resource(&format!("scope = \"{}\"", vm("vm-a"))),
            Validate,
            At("scope"),
            "Invalid scope",
        ),
        refused(
            "identity_ids: a value that is not an identity",
            resource(&format!(
                "scope = \"{scope}\"\n  identity_ids = {{ eastus = \"{}\" }}",
                rg_scope()
            )),
            Validate,
            At("identity_ids"),
            "userAssignedIdentities",
        ),
        refused(
            "identity_ids: a key whose subscription is not a GUID",
            resource(&format!(
                "scope = \"{scope}\"\n  identity_ids = {{ \"not-a-guid/eastus\" = \"{id}\" }}"
            )),
            Validate,
            At("identity_ids"),
            "Invalid identity_ids key",
        ),
        refused(
            "identity_ids: an identity that does not exist",
            resource(&format!(
                "scope = \"{scope}\"\n  identity_ids = {{ eastus = \"{}\" }}",
                identity("id-nope")
            )),
            Plan,
            At("identity_ids"),
            "does not exist",
        ),
        refused(
            "identity_ids left out: the policy's identity does not exist",
            resource(&format!("scope = \"{scope}\"")),
            Plan,
            Names("identity_ids"),
            "does not exist",
        ),
        refused(
            "estate locations: empty",
            mapped("locations = []"),
            Validate,
            At("locations"),
            "No regions",
        ),
        refused(
            "estate locations: a region no subscription has",
            mapped("locations = [\"marsnorth\"]"),
            Plan,
            At("locations"),
            "Unknown region",
        ),
        refused(
            "estate resource_types: not a machine type",
            mapped("resource_types = [\"disks\"]"),
            Validate,
            At("resource_types"),
            "disks",
        ),
        refused(
            "estate mode: unknown",
            mapped("mode = \"dry-run\""),
            Validate,
            At("mode"),
            "Unknown mode",
        ),
        refused(
            "estate exclude_ids: a resource group",
            mapped(&format!("exclude_ids = [\"{}\"]", rg_scope())),
            Validate,
            At("exclude_ids"),
            "virtual machine or scale set",
        ),
    ];
    run_table(rows);
}

// ---------------------------------------------------------------------------------------------
// mig_orphan_cleanup: the resource, the action and the data source share their arguments
// ---------------------------------------------------------------------------------------------

/// The rows of the search arguments, for one of the three kinds (`wrap` builds the whole
/// configuration from the block's arguments).
fn search_rows(kind: &str, wrap: &dyn Fn(&str) -> String) -> Vec<Row> {
    use Points::At;
    use Stage::Validate;
    let scope = rg_scope();
    let with_scope = |more: &str| wrap(&format!("scope = \"{scope}\"\n  {more}"));
    let named = |what: &str| format!("{kind}: {what}");
    vec![
        accepted(named("the valid base"), with_scope("")),
        refused(
            named("scope: empty"),
            wrap("scope = \"\""),
            Validate,
            At("scope"),
            "Invalid scope",
        ),
        refused(
            named("scope: query string"),
            wrap(&format!("scope = \"{scope}?api-version=2022-04-01\"")),
            Validate,
            At("scope"),
            "query string",
        ),
        refused(
            named("scope: a machine"),
            wrap(&format!("scope = \"{}\"", vm("vm-a"))),
            Validate,
            At("scope"),
            "management group",
        ),
        refused(
            named("scope: not a GUID"),
            wrap("scope = \"/subscriptions/not-a-guid\""),
            Validate,
            At("scope"),
            "Invalid scope",
        ),
        accepted(
            named("scope: trailing slash"),
            wrap(&format!("scope = \"{scope}/\"")),
        ),
        refused(
            named("exclude_role_definition_ids: a role name"),
            with_scope("exclude_role_definition_ids = [\"Contributor\"]"),
            Validate,
            At("exclude_role_definition_ids"),
            CONTRIBUTOR,
        ),
        refused(
            named("exclude_role_definition_ids: empty string"),
            with_scope("exclude_role_definition_ids = [\"\"]"),
            Validate,
            At("exclude_role_definition_ids"),
            "Invalid role definition",
        ),
        refused(
            named("exclude_role_definition_ids: a resource group"),
            with_scope(&format!("exclude_role_definition_ids = [\"{scope}\"]")),
            Validate,
            At("exclude_role_definition_ids"),
            "not a role definition",
        ),
        refused(
            named("exclude_role_definition_ids: query string"),
            with_scope(&format!(
                "exclude_role_definition_ids = [\"{}?api-version=1\"]",
                role_definition(CONTRIBUTOR)
            )),
            Validate,
            At("exclude_role_definition_ids"),
            "query string",
        ),
        accepted(
            named("exclude_role_definition_ids: GUID and full ID"),
            with_scope(&format!(
                "exclude_role_definition_ids = [\"{}\", \"{}/\"]",
                CONTRIBUTOR.to_uppercase(),
                role_definition("acdd72a7-3385-48ef-bd42-f606fba81ae7")
            )),
        ),
        refused(
            named("principal_types: unknown"),
            with_scope("principal_types = [\"Robot\"]"),
            Validate,
            At("principal_types"),
            "not a principal type",
        ),
        refused(
            named("principal_types: empty"),
            with_scope("principal_types = []"),
            Validate,
            At("principal_types"),
            "leave `principal_types` out",
        ),
        accepted(
            named("principal_types: any casing"),
            with_scope("principal_types = [\"serviceprincipal\", \"USER\"]"),
        ),
        refused(
            named("min_age: empty"),
            with_scope("min_age = \"\""),
            Validate,
            At("min_age"),
            "not a duration",
        ),
        refused(
            named("min_age: negative"),
            with_scope("min_age = \"-1h\""),
            Validate,
            At("min_age"),
            "not a duration",
        ),
        refused(
            named("min_age: garbage"),
            with_scope("min_age = \"yesterday\""),
            Validate,
            At("min_age"),
            "not a duration",
        ),
        accepted(
            named("min_age: zero means no age limit"),
            with_scope("min_age = \"0s\""),
        ),
        refused(
            named("max_deletions: negative"),
            with_scope("max_deletions = -1"),
            Validate,
            At("max_deletions"),
            "0 or more",
        ),
        refused(
            named("max_deletions: fraction"),
            with_scope("max_deletions = 1.5"),
            Validate,
            At("max_deletions"),
            "whole number",
        ),
    ]
    .into_iter()
    // The data source has no `max_deletions`.
    .filter(|row| kind != "mig_orphaned_role_assignments" || !row.name.contains("max_deletions"))
    .collect()
}

#[test]
fn orphan_cleanup_resource_rows() {
    let emulator = Emulator::start(&scenario());
    let wrap = |arguments: &str| {
        emulator.configuration(&format!(
            "resource \"mig_orphan_cleanup\" \"x\" {{\n  {arguments}\n}}\n"
        ))
    };
    let mut rows = search_rows("mig_orphan_cleanup", &wrap);
    let scope = rg_scope();
    rows.push(refused(
        "mig_orphan_cleanup: mode: typo",
        wrap(&format!("scope = \"{scope}\"\n  mode = \"purge\"")),
        Stage::Validate,
        Points::At("mode"),
        "`report`",
    ));
    rows.push(refused(
        "mig_orphan_cleanup: mode: capitalised",
        wrap(&format!("scope = \"{scope}\"\n  mode = \"Delete\"")),
        Stage::Validate,
        Points::At("mode"),
        "`delete`",
    ));
    run_table(rows);
}

#[test]
fn orphan_cleanup_action_rows() {
    let emulator = Emulator::start(&scenario());
    let wrap = |arguments: &str| {
        emulator.configuration(&format!(
            "action \"mig_orphan_cleanup\" \"x\" {{\n  config {{\n  {arguments}\n  }}\n}}\n"
        ))
    };
    let rows = search_rows("action.mig_orphan_cleanup", &wrap)
        .into_iter()
        .map(|mut row| {
            // Plan the invocation: PlanAction runs the validators again and the action's
            // own checks; nothing is removed.
            row.plan_args = vec!["-invoke=action.mig_orphan_cleanup.x".into()];
            row
        })
        .collect();
    run_table(rows);
}

#[test]
fn orphaned_role_assignments_rows() {
    let emulator = Emulator::start(&scenario());
    let wrap = |arguments: &str| {
        emulator.configuration(&format!(
            "data \"mig_orphaned_role_assignments\" \"x\" {{\n  {arguments}\n}}\n"
        ))
    };
    run_table(search_rows("mig_orphaned_role_assignments", &wrap));
}

// ---------------------------------------------------------------------------------------------
// The inventory and check data sources
// ---------------------------------------------------------------------------------------------

#[test]
fn data_source_rows() {
    let emulator = Emulator::start(&scenario());
    let data = |kind: &str, arguments: &str| {
        emulator.configuration(&format!("data \"{kind}\" \"x\" {{\n  {arguments}\n}}\n"))
    };
    use Points::At;
    use Stage::Validate;
    let scope = sub_scope();
    let mut rows = Vec::new();
    for kind in [
        "mig_virtual_machines",
        "mig_unused_identities",
        "mig_permissions",
    ] {
        let named = |what: &str| format!("{kind}: {what}");
        rows.extend([
            accepted(
                named("the valid base"),
                data(kind, &format!("scope = \"{scope}\"")),
            ),
            refused(
                named("scope: empty"),
                data(kind, "scope = \"\""),
                Validate,
                At("scope"),
                "Invalid scope",
            ),
            refused(
                named("scope: query string"),
                data(kind, &format!("scope = \"{scope}?api-version=1\"")),
                Validate,
                At("scope"),
                "query string",
            ),
            refused(
                named("scope: a machine"),
                data(kind, &format!("scope = \"{}\"", vm("vm-a"))),
                Validate,
                At("scope"),
                "Invalid scope",
            ),
            refused(
                named("scope: not a GUID"),
                data(kind, "scope = \"/subscriptions/not-a-guid\""),
                Validate,
                At("scope"),
                "Invalid scope",
            ),
            accepted(
                named("scope: trailing slash"),
                data(kind, &format!("scope = \"{}/\"", rg_scope())),
            ),
        ]);
    }
    let vms = |more: &str| {
        data(
            "mig_virtual_machines",
            &format!("scope = \"{scope}\"\n  {more}"),
        )
    };
    rows.extend([
        accepted(
            "mig_virtual_machines: resource_types: any casing (as mig_identity_assignment)",
            vms("resource_types = [\"virtualmachines\", \"VirtualMachineScaleSets\"]"),
        ),
        refused(
            "mig_virtual_machines: resource_types: empty (as mig_identity_assignment)",
            vms("resource_types = []"),
            Validate,
            At("resource_types"),
            "leave the argument out for both",
        ),
        refused(
            "mig_virtual_machines: resource_types: not a machine type",
            vms("resource_types = [\"disks\"]"),
            Validate,
            At("resource_types"),
            "virtualMachineScaleSets",
        ),
    ]);
    let permissions =
        |more: &str| data("mig_permissions", &format!("scope = \"{scope}\"\n  {more}"));
    rows.extend([
        refused(
            "mig_permissions: actions: empty",
            permissions("actions = []"),
            Validate,
            At("actions"),
            "leave `actions` out",
        ),
        refused(
            "mig_permissions: actions: empty string",
            permissions("actions = [\"\"]"),
            Validate,
            At("actions"),
            "not an ARM action",
        ),
        refused(
            "mig_permissions: actions: a verb alone",
            permissions("actions = [\"write\"]"),
            Validate,
            At("actions"),
            "not an ARM action",
        ),
        accepted(
            "mig_permissions: actions: an action",
            permissions("actions = [\"Microsoft.Compute/virtualMachines/write\"]"),
        ),
    ]);
    run_table(rows);
}

// ---------------------------------------------------------------------------------------------
// The provider block
// ---------------------------------------------------------------------------------------------

/// The emulator's provider block with `changes` applied: `Some(expression)` sets an
/// argument, `None` removes it.
fn provider_block(emulator: &Emulator, changes: &[(&str, Option<&str>)]) -> String {
    let quoted = |s: &str| format!("\"{s}\"");
    let mut arguments: Vec<(String, String)> = vec![
        ("subscription_id".into(), quoted(emulator.subscription_id())),
        ("tenant_id".into(), quoted(&emulator.ready.tenant_id)),
        ("client_id".into(), quoted(&emulator.ready.client_id)),
        (
            "client_secret".into(),
            quoted(&emulator.ready.client_secret),
        ),
        (
            "metadata_host".into(),
            quoted(&emulator.ready.metadata_host),
        ),
        (
            "ca_certificate_file".into(),
            quoted(&emulator.ready.ca_cert_file.display().to_string()),
        ),
        ("use_cli".into(), "false".into()),
    ];
    for (name, change) in changes {
        arguments.retain(|(n, _)| n != name);
        if let Some(expression) = change {
            arguments.push((name.to_string(), expression.to_string()));
        }
    }
    let lines: Vec<String> = arguments
        .iter()
        .map(|(name, expression)| format!("  {name} = {expression}"))
        .collect();
    format!("provider \"mig\" {{\n{}\n}}", lines.join("\n"))
}

#[test]
fn provider_block_rows() {
    let emulator = Emulator::start(&scenario());
    let scratch = tempfile::tempdir().unwrap();
    let truncated = scratch.path().join("truncated.pem");
    let ca = std::fs::read_to_string(&emulator.ready.ca_cert_file).unwrap();
    std::fs::write(&truncated, &ca[..ca.len() / 2]).unwrap();
    let not_pem = scratch.path().join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let body = "data \"mig_client_config\" \"x\" {}\n";
    let with =
        |changes: &[(&str, Option<&str>)]| configuration(&provider_block(&emulator, changes), body);
    let quoted = |s: &str| format!("\"{s}\"");
    let truncated_path = quoted(&truncated.display().to_string());
    let not_pem_path = quoted(&not_pem.display().to_string());
    let subscription_path = quoted(&sub_scope());
    let http_host = quoted(&format!("http://{}", emulator.ready.metadata_host));
    use Points::{At, Names};
    use Stage::{Plan, Validate};
    let rows = vec![
        accepted("provider: the valid base", with(&[])),
        refused(
            "subscription_id: empty",
            with(&[("subscription_id", Some("\"\""))]),
            Validate,
            At("subscription_id"),
            "ARM_SUBSCRIPTION_ID",
        ),
        refused(
            "subscription_id: not a GUID",
            with(&[("subscription_id", Some("\"my-subscription\""))]),
            Validate,
            At("subscription_id"),
            "not a GUID",
        ),
        refused(
            "subscription_id: a path",
            with(&[("subscription_id", Some(&subscription_path))]),
            Validate,
            At("subscription_id"),
            "not a GUID",
        ),
        refused(
            "subscription_id: missing",
            with(&[("subscription_id", None)]),
            Plan,
            Names("subscription_id"),
            "ARM_SUBSCRIPTION_ID",
        ),
        refused(
            "tenant_id: empty",
            with(&[("tenant_id", Some("\"\""))]),
            Validate,
            At("tenant_id"),
            "ARM_TENANT_ID",
        ),
        refused(
            "tenant_id: neither GUID nor domain",
            with(&[("tenant_id", Some("\"my tenant\""))]),
            Validate,
            At("tenant_id"),
            "neither a GUID",
        ),
        refused(
            "client_id: empty",
            with(&[("client_id", Some("\"\""))]),
            Validate,
            At("client_id"),
            "ARM_CLIENT_ID",
        ),
        refused(
            "client_id: a name",
            with(&[("client_id", Some("\"my-app\""))]),
            Validate,
            At("client_id"),
            "not a GUID",
        ),
        refused(
            "client_secret: empty",
            with(&[("client_secret", Some("\"\""))]),
            Validate,
            At("client_secret"),
            "ARM_CLIENT_SECRET",
        ),
        refused(
            // Only the token endpoint can tell: refused at the first token request, by the
            // data source that needed it, with Entra's own words (no argument to point at).
            "client_secret: wrong",
            with(&[("client_secret", Some("\"wrong\""))]),
            Plan,
            Points::Nowhere,
            "Invalid client secret",
        ),
        refused(
            "client_secret and use_msi: two methods",
            with(&[("use_msi", Some("true"))]),
            Validate,
            At("use_msi"),
            "Two authentication methods",
        ),
        refused(
            "client_certificate_path: missing file",
            with(&[
                ("client_secret", None),
                ("client_certificate_path", Some("\"/nonexistent/cert.pfx\"")),
            ]),
            Plan,
            At("client_certificate_path"),
            "readable",
        ),
        refused(
            "environment: empty",
            with(&[("environment", Some("\"\""))]),
            Validate,
            At("environment"),
            "ARM_ENVIRONMENT",
        ),
        refused(
            "environment: unknown",
            with(&[("environment", Some("\"mars\""))]),
            Validate,
            At("environment"),
            "usgovernment",
        ),
        refused(
            "metadata_host: empty",
            with(&[("metadata_host", Some("\"\""))]),
            Validate,
            At("metadata_host"),
            "ARM_METADATA_HOSTNAME",
        ),
        refused(
            "metadata_host: http://",
            with(&[("metadata_host", Some(&http_host))]),
            Validate,
            At("metadata_host"),
            "host name",
        ),
        refused(
            "metadata_host: a path",
            with(&[("metadata_host", Some("\"example.com/metadata\""))]),
            Validate,
            At("metadata_host"),
            "host name",
        ),
        refused(
            "msi_endpoint: not a URL",
            with(&[("msi_endpoint", Some("\"imds\""))]),
            Validate,
            At("msi_endpoint"),
            "managed identity endpoint",
        ),
        refused(
            "msi_endpoint: plain http elsewhere",
            with(&[("msi_endpoint", Some("\"http://example.com/token\""))]),
            Validate,
            At("msi_endpoint"),
            "https://",
        ),
        refused(
            "metadata_host: unreachable",
            with(&[("metadata_host", Some("\"127.0.0.1:1\""))]),
            Plan,
            At("metadata_host"),
            "Cannot discover the cloud's endpoints",
        ),
        refused(
            "use_oidc: no token source",
            with(&[("client_secret", None), ("use_oidc", Some("true"))]),
            Plan,
            At("use_oidc"),
            "oidc_token",
        ),
        refused(
            "client_certificate_password: empty",
            with(&[("client_certificate_password", Some("\"\""))]),
            Validate,
            At("client_certificate_password"),
            "ARM_CLIENT_CERTIFICATE_PASSWORD",
        ),
        refused(
            "oidc_token: empty",
            with(&[("oidc_token", Some("\"\""))]),
            Validate,
            At("oidc_token"),
            "ARM_OIDC_TOKEN",
        ),
        refused(
            "oidc_token_file_path: empty",
            with(&[("oidc_token_file_path", Some("\"\""))]),
            Validate,
            At("oidc_token_file_path"),
            "ARM_OIDC_TOKEN_FILE_PATH",
        ),
        refused(
            "oidc_request_url: empty",
            with(&[("oidc_request_url", Some("\"\""))]),
            Validate,
            At("oidc_request_url"),
            "ARM_OIDC_REQUEST_URL",
        ),
        refused(
            "oidc_request_token: empty",
            with(&[("oidc_request_token", Some("\"\""))]),
            Validate,
            At("oidc_request_token"),
            "ARM_OIDC_REQUEST_TOKEN",
        ),
        refused(
            "msi_endpoint: empty",
            with(&[("msi_endpoint", Some("\"\""))]),
            Validate,
            At("msi_endpoint"),
            "ARM_MSI_ENDPOINT",
        ),
        refused(
            "use_cli: not a bool",
            with(&[("use_cli", Some("\"sometimes\""))]),
            Validate,
            At("use_cli"),
            "bool",
        ),
        refused(
            "ca_certificate_file: empty",
            with(&[("ca_certificate_file", Some("\"\""))]),
            Validate,
            At("ca_certificate_file"),
            "ARM_CA_CERTIFICATE_FILE",
        ),
        refused(
            "ca_certificate_file: missing file",
            with(&[("ca_certificate_file", Some("\"/nonexistent/ca.pem\""))]),
            Plan,
            At("ca_certificate_file"),
            "readable PEM file",
        ),
        refused(
            "ca_certificate_file: not PEM",
            with(&[("ca_certificate_file", Some(&not_pem_path))]),
            Plan,
            At("ca_certificate_file"),
            "BEGIN CERTIFICATE",
        ),
        refused(
            "ca_certificate_file: truncated PEM",
            with(&[("ca_certificate_file", Some(&truncated_path))]),
            Plan,
            At("ca_certificate_file"),
            "truncated",
        ),
        refused(
            "use_cli = false and no credentials",
            with(&[("client_secret", None)]),
            Plan,
            Names("client_secret"),
            "No way to authenticate",
        ),
    ];
    run_table(rows);
}

// ---------------------------------------------------------------------------------------------
// Normalised values, judged by the writes they cause
// ---------------------------------------------------------------------------------------------

fn machine_writes(emulator: &Emulator, machine: &str) -> usize {
    let machine = machine.to_ascii_lowercase();
    emulator
        .requests()
        .iter()
        .filter(|r| {
            matches!(r["method"].as_str(), Some("PATCH" | "PUT"))
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.trim_end_matches('/').to_ascii_lowercase() == machine)
        })
        .count()
}

/// `identity_id`, `scope` and `exclude_ids` with a trailing `/`: the excluded machine is
/// left alone, the other gets the identity with one write, and the plan converges.
#[test]
fn trailing_slashes_in_identity_assignment_converge_with_one_write_per_machine() {
    let emulator = Emulator::start(&scenario());
    let id = identity("id-one");
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"resource "mig_identity_assignment" "x" {{
  identity_id = "{id}/"
  scope       = "{scope}/"
  exclude_ids = ["{excluded}/"]
}}
"#,
        scope = sub_scope(),
        excluded = vm("vm-b"),
    )));
    work.init();
    emulator.clear_requests();
    work.apply();
    let (_, attached) = emulator.identity_of(&vm("vm-a"));
    assert_eq!(
        attached,
        [id.to_ascii_lowercase()].into(),
        "vm-a holds the identity, under its ID without the slash"
    );
    let (_, excluded) = emulator.identity_of(&vm("vm-b"));
    assert!(excluded.is_empty(), "vm-b stays excluded: {excluded:?}");
    assert_eq!(
        machine_writes(&emulator, &vm("vm-a")),
        1,
        "vm-a written once"
    );
    assert_eq!(
        machine_writes(&emulator, &vm("vm-b")),
        0,
        "vm-b never written"
    );
    let state = &work.state_resources()["mig_identity_assignment.x"];
    assert_eq!(
        state["skipped"][vm("vm-b")].as_str().or_else(|| {
            state["skipped"]
                .as_object()
                .and_then(|m| m.iter().find(|(k, _)| k.eq_ignore_ascii_case(&vm("vm-b"))))
                .and_then(|(_, v)| v.as_str())
        }),
        Some("excluded_by_id"),
        "{state}"
    );
    assert!(!work.plan_has_changes(), "the second plan is clean");
    assert_eq!(
        machine_writes(&emulator, &vm("vm-a")),
        1,
        "nothing written again"
    );
}

/// Principal IDs holding a role assignment at the group (lower-case).
fn assigned_principals(emulator: &Emulator) -> Vec<String> {
    let (status, body) = emulator.arm_send(
        reqwest::Method::GET,
        &format!(
            "{}/providers/Microsoft.Authorization/roleAssignments",
            rg_scope()
        ),
        "2022-04-01",
        None,
    );
    assert_eq!(status, 200, "{body}");
    let mut principals: Vec<String> = body["value"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|a| {
            a["properties"]["principalId"]
                .as_str()
                .map(str::to_ascii_lowercase)
        })
        .collect();
    principals.sort();
    principals
}

/// `exclude_role_definition_ids` given as a GUID (upper case) protects the Contributor
/// orphan: the resource removes only the Reader orphan, and a scope with a trailing `/`
/// converges.
#[test]
fn a_role_guid_protects_the_orphan_from_the_resource() {
    let emulator = Emulator::start(&scenario());
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"resource "mig_orphan_cleanup" "x" {{
  scope                       = "{scope}/"
  exclude_role_definition_ids = ["{guid}"]
}}
"#,
        scope = rg_scope(),
        guid = CONTRIBUTOR.to_uppercase(),
    )));
    work.init();
    work.apply();
    let remaining = assigned_principals(&emulator);
    assert!(
        remaining.contains(&DEAD_CONTRIBUTOR.to_string()),
        "the Contributor orphan is protected: {remaining:?}"
    );
    assert!(
        !remaining.contains(&DEAD_READER.to_string()),
        "the Reader orphan is removed: {remaining:?}"
    );
    assert!(!work.plan_has_changes(), "the second plan is clean");
}

/// The same through the action (a full role definition ID with a trailing `/`) and the data
/// source (a bare GUID): the data source does not report the protected orphan, the action
/// does not remove it.
#[test]
fn a_role_id_protects_the_orphan_from_the_action_and_the_data_source() {
    let emulator = Emulator::start(&scenario());
    let work = Workdir::new(&emulator.configuration(&format!(
        r#"data "mig_orphaned_role_assignments" "x" {{
  scope                       = "{scope}"
  exclude_role_definition_ids = ["{guid}"]
}}

action "mig_orphan_cleanup" "x" {{
  config {{
    scope                       = "{scope}"
    exclude_role_definition_ids = ["{id}/"]
  }}
}}

output "reported" {{ value = [for o in data.mig_orphaned_role_assignments.x.orphaned : o.principal_id] }}
"#,
        scope = rg_scope(),
        guid = CONTRIBUTOR,
        id = role_definition(CONTRIBUTOR),
    )));
    work.init();
    work.apply();
    assert_eq!(work.outputs()["reported"], json!([DEAD_READER]));
    work.run_ok(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        "-invoke=action.mig_orphan_cleanup.x",
    ]);
    let remaining = assigned_principals(&emulator);
    assert!(
        remaining.contains(&DEAD_CONTRIBUTOR.to_string()),
        "the Contributor orphan is protected: {remaining:?}"
    );
    assert!(
        !remaining.contains(&DEAD_READER.to_string()),
        "the Reader orphan is removed: {remaining:?}"
    );
}
