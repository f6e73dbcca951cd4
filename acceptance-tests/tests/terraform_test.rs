//! `terraform test` as a module author runs it: examples/terraform-test (a small module using
//! the provider's functions and resources) with `mock_provider "mig"`. No Azure and no
//! credentials: Terraform mocks configure, plan, apply and read, but asks the real provider to
//! validate every resource and to evaluate every function, so those must work on an
//! unconfigured provider.

use std::path::Path;

use acceptance_tests::{terraform_has, workspace_root, Emulator, Workdir};
use serde_json::Value as Json;

/// A working directory holding a copy of examples/terraform-test (its `.tf` files and
/// `tests/`, nothing a previous local run left behind).
fn example() -> Workdir {
    let source = workspace_root().join("examples/terraform-test");
    let work = Workdir::new("");
    copy_dir(&source, work.path());
    work
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read example dir") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with("terraform.tfstate") {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(&*name));
        } else {
            std::fs::copy(&path, to.join(&*name)).expect("copy example file");
        }
    }
}

/// No credentials of any kind: no `ARM_*` (the harness drops the developer's), no Azure CLI
/// login, no managed identity endpoint.
fn without_credentials(work: &mut Workdir, empty: &Path) {
    work.env("AZURE_CONFIG_DIR", &empty.display().to_string())
        .env("ARM_USE_CLI", "false")
        .env("ARM_USE_MSI", "false")
        .env("IDENTITY_ENDPOINT", "")
        .env("MSI_ENDPOINT", "");
}

#[test]
fn the_example_module_tests_pass_with_a_mocked_provider_and_no_credentials() {
    if !terraform_has(7, "mock providers") || !terraform_has(8, "provider functions") {
        return;
    }
    let mut work = example();
    let empty = tempfile::tempdir().unwrap();
    without_credentials(&mut work, empty.path());
    work.init();
    let output = work.run(&["test", "-no-color"]);
    assert!(output.success, "terraform test failed:\n{}", output.all());
    for run in [
        "functions_name_the_policy_identities",
        "each_region_gets_its_own_identity",
        "a_narrower_scope",
        "an_identity_that_is_not_the_policys_is_refused",
    ] {
        assert!(
            output.stdout.contains(&format!("run \"{run}\"... pass")),
            "{run} did not pass:\n{}",
            output.all()
        );
    }
    assert!(
        output.stdout.contains(" 0 failed"),
        "summary:\n{}",
        output.all()
    );
}

#[test]
fn under_mocks_the_real_provider_still_refuses_bad_input() {
    if !terraform_has(7, "mock providers") || !terraform_has(8, "provider functions") {
        return;
    }
    let mut work = example();
    let empty = tempfile::tempdir().unwrap();
    without_credentials(&mut work, empty.path());
    work.init();
    // A scope with a query string: mig_identity_assignment's validation and
    // parse_resource_id both refuse it, naming the argument.
    let output = work.run(&[
        "test",
        "-no-color",
        "-var",
        "scope=/subscriptions/00000000-0000-0000-0000-000000000001?api-version=1",
    ]);
    assert!(!output.success, "bad scope passed:\n{}", output.all());
    let all = output.all();
    assert!(all.contains("Invalid scope"), "{all}");
    assert!(all.contains("query string"), "{all}");
    assert!(
        all.contains("mig_identity_assignment.region"),
        "the diagnostic points at the resource:\n{all}"
    );
    assert!(
        all.contains("parse_resource_id"),
        "the function's error too:\n{all}"
    );
}

/// The module author's other path: the same module and a second test file
/// (examples/terraform-test/emulator, outside the default tests/ directory) against the
/// emulator, no mocks, credentials from ARM_* variables.
#[test]
fn the_example_module_tests_pass_against_the_emulator() {
    if !terraform_has(8, "provider functions") {
        return;
    }
    const SUB: &str = "00000000-0000-0000-0000-000000000001";
    // The scenario the example documents for `scripts/emulator`.
    let scenario: Json = serde_json::from_str(
        &std::fs::read_to_string(
            workspace_root().join("examples/terraform-test/emulator/scenario.json"),
        )
        .expect("read the example's scenario"),
    )
    .expect("the example's scenario is JSON");
    let emulator = Emulator::start(&scenario);
    let mut work = example();
    for (key, value) in emulator.arm_env() {
        work.env(key, &value);
    }
    work.init();
    let output = work.run(&[
        "test",
        "-no-color",
        "-test-directory=emulator",
        "-var",
        &format!("subscription_id={SUB}"),
    ]);
    assert!(output.success, "terraform test failed:\n{}", output.all());
    for run in [
        "identity_created_and_attached",
        "a_second_apply_changes_nothing",
    ] {
        assert!(
            output.stdout.contains(&format!("run \"{run}\"... pass")),
            "{run} did not pass:\n{}",
            output.all()
        );
    }
    // Torn down at the end: the identity is gone, vm-1 holds no identity of ours.
    let identity = format!(
        "/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-westeurope"
    );
    assert!(
        emulator.arm_get(&identity, "2023-01-31").is_none(),
        "terraform test destroyed the identity"
    );
}
