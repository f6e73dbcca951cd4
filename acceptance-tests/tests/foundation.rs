//! The plugin protocol end to end: init, schema, validate, functions, unknown values.

use acceptance_tests::Workdir;

const REQUIRED_PROVIDERS: &str = r#"
terraform {
  required_providers {
    mig = { source = "azure-mig/mig" }
  }
}
"#;

fn config(body: &str) -> String {
    format!("{REQUIRED_PROVIDERS}\n{body}")
}

const SUB: &str = "00000000-0000-0000-0000-000000000001";

#[test]
fn init_finds_the_provider_and_schema_lists_provider_block_and_functions() {
    let work = Workdir::new(&config(""));
    work.init();
    let schema = work.run_ok(&["providers", "schema", "-json"]).json();
    let provider = &schema["provider_schemas"]["registry.terraform.io/azure-mig/mig"];
    let provider_attrs = &provider["provider"]["block"]["attributes"];
    for name in [
        "subscription_id",
        "tenant_id",
        "client_id",
        "client_secret",
        "client_certificate_path",
        "use_oidc",
        "use_msi",
        "use_cli",
        "environment",
        "metadata_host",
        "ca_certificate_file",
    ] {
        assert!(
            provider_attrs.get(name).is_some(),
            "provider block lacks {name}: {provider_attrs}"
        );
    }
    assert_eq!(provider_attrs["client_secret"]["sensitive"], true);
    if !acceptance_tests::terraform_has(8, "provider functions") {
        return;
    }
    let functions = &provider["functions"];
    for name in [
        "builtin_identity_id",
        "builtin_identity_name",
        "parse_resource_id",
    ] {
        assert!(
            functions.get(name).is_some(),
            "function {name} missing: {functions}"
        );
    }
}

#[test]
fn validate_accepts_a_good_provider_block() {
    let work = Workdir::new(&config(&format!(
        r#"
provider "mig" {{
  subscription_id = "{SUB}"
  environment     = "public"
}}

data "mig_client_config" "current" {{}}
"#
    )));
    work.init();
    let output = work.run(&["validate", "-json", "-no-color"]);
    assert!(output.success, "{}", output.all());
    assert_eq!(output.json()["valid"], true);
}

#[test]
fn validate_rejects_a_bad_provider_block_naming_the_attribute() {
    // A provider no resource or data source uses is pruned before validation.
    let text = config(
        r#"
provider "mig" {
  environment             = "mars"
  client_secret           = "s3cr3t-value"
  client_certificate_path = "/nonexistent/cert.pfx"
}

data "mig_client_config" "current" {}
"#,
    );
    let environment_line = text
        .lines()
        .position(|l| l.contains("environment"))
        .unwrap() as u64
        + 1;
    let work = Workdir::new(&text);
    work.init();
    let output = work.run(&["validate", "-json", "-no-color"]);
    assert!(!output.success, "validate should fail:\n{}", output.all());
    let diagnostics = output.diagnostics();
    let mentions = |needle: &str| {
        diagnostics.iter().any(|d| {
            d["severity"] == "error"
                && (d["summary"].as_str().unwrap_or("").contains(needle)
                    || d["detail"].as_str().unwrap_or("").contains(needle))
        })
    };
    assert!(
        mentions("environment"),
        "no diagnostic names `environment`: {diagnostics:#?}"
    );
    assert!(
        mentions("client_certificate_path"),
        "no diagnostic names the conflict: {diagnostics:#?}"
    );
    let pointed = diagnostics
        .iter()
        .any(|d| d["range"]["start"]["line"].as_u64() == Some(environment_line));
    assert!(
        pointed,
        "no diagnostic points at line {environment_line} (`environment`): {diagnostics:#?}"
    );
    assert!(
        !output.all().contains("s3cr3t-value"),
        "the secret leaked into output"
    );
}

#[test]
fn functions_compute_outputs_in_apply() {
    if !acceptance_tests::terraform_has(8, "provider functions") {
        return;
    }
    let work = Workdir::new(&config(&format!(
        r#"
output "id" {{
  value = provider::mig::builtin_identity_id("{SUB}", "westeurope")
}}
output "name" {{
  value = provider::mig::builtin_identity_name("eastus2")
}}
output "parsed" {{
  value = provider::mig::parse_resource_id("/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-01")
}}
"#
    )));
    work.init();
    work.apply();
    let outputs = work.outputs();
    assert_eq!(
        outputs["id"],
        format!("/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-westeurope")
    );
    assert_eq!(outputs["name"], "Built-In-Identity-eastus2");
    let parsed = &outputs["parsed"];
    assert_eq!(parsed["subscription_id"], SUB);
    assert_eq!(parsed["resource_group_name"], "rg-app");
    assert_eq!(parsed["provider_namespace"], "Microsoft.Compute");
    assert_eq!(parsed["resource_type"], "virtualMachines");
    assert_eq!(parsed["name"], "vm-01");
}

#[test]
fn function_errors_name_the_argument() {
    if !acceptance_tests::terraform_has(8, "provider functions") {
        return;
    }
    let work = Workdir::new(&config(
        r#"
output "bad" {
  value = provider::mig::parse_resource_id("not-a-resource-id")
}
"#,
    ));
    work.init();
    let output = work.run(&["plan", "-no-color", "-input=false"]);
    assert!(!output.success, "plan should fail:\n{}", output.all());
    let text = output.all();
    assert!(
        text.contains("Invalid function argument") || text.contains("id"),
        "{text}"
    );
    assert!(text.contains("parse_resource_id"), "{text}");

    let work = Workdir::new(&config(
        r#"
output "bad" {
  value = provider::mig::builtin_identity_id("not-a-guid", "eastus")
}
"#,
    ));
    work.init();
    let output = work.run(&["plan", "-no-color", "-input=false"]);
    assert!(!output.success, "plan should fail:\n{}", output.all());
    assert!(output.all().contains("subscription_id"), "{}", output.all());
}

#[test]
fn unknown_values_flow_through_functions_at_plan() {
    if !acceptance_tests::terraform_has(8, "provider functions") {
        return;
    }
    let work = Workdir::new(&config(&format!(
        r#"
resource "terraform_data" "region" {{
  input = "northeurope"
}}
output "id" {{
  value = provider::mig::builtin_identity_id("{SUB}", terraform_data.region.output)
}}
"#
    )));
    work.init();
    let plan = work.plan_json();
    let change = &plan["output_changes"]["id"];
    assert_eq!(
        change["after_unknown"], true,
        "output should be unknown at plan: {change}"
    );
    work.apply();
    assert_eq!(
        work.outputs()["id"],
        format!("/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-northeurope")
    );
}
