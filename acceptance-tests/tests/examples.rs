//! Every example in `examples/` that the docs show is valid configuration for the provider as
//! built: `terraform validate` passes on each, with real Terraform and the real schema.

use std::path::{Path, PathBuf};

use acceptance_tests::{terraform_has, workspace_root, Workdir};

const REQUIRED_PROVIDERS: &str = r#"terraform {
  required_providers {
    mig = { source = "azure-mig/mig" }
  }
}
"#;

/// The example folders: one per resource, data source, action and list resource, plus the
/// provider block and the whole configurations.
fn example_folders() -> Vec<PathBuf> {
    let root = workspace_root().join("examples");
    let mut folders = vec![
        root.join("provider"),
        root.join("quickstart"),
        root.join("estate"),
    ];
    for kind in ["resources", "data-sources", "actions", "list-resources"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(root.join(kind))
            .unwrap_or_else(|e| panic!("examples/{kind}: {e}"))
            .map(|entry| entry.expect("read examples").path())
            .filter(|path| path.is_dir())
            .collect();
        found.sort();
        folders.extend(found);
    }
    folders
}

/// Which Terraform an example needs: actions and list resources arrived in 1.14, import by
/// identity in 1.12, functions in 1.8.
fn needs(folder: &Path, text: &str) -> (u64, &'static str) {
    let path = folder.to_string_lossy();
    if path.contains("/actions/") || path.contains("/list-resources/") {
        (14, "actions and list resources")
    } else if text.contains("identity = {") {
        (12, "import by identity")
    } else if text.contains("provider::mig::") {
        (8, "provider functions")
    } else {
        (6, "")
    }
}

/// One configuration to validate: a whole folder, or one standalone file of the registry
/// examples (each file there is shown on its own).
fn validate(files: &[PathBuf], folder: &Path) -> bool {
    let text: String = files
        .iter()
        .map(|path| std::fs::read_to_string(path).expect("read example file"))
        .collect::<Vec<_>>()
        .join("\n");
    let (since, feature) = needs(folder, &text);
    if !terraform_has(since, feature) {
        return false;
    }
    let work = Workdir::new("");
    if !text.contains("required_providers") {
        work.write("versions.tf", REQUIRED_PROVIDERS);
    }
    for path in files {
        let name = path.file_name().expect("file name").to_string_lossy();
        work.write(
            &name,
            &std::fs::read_to_string(path).expect("read example file"),
        );
    }
    work.init();
    let validated = work.run(&["validate", "-no-color"]);
    assert!(
        validated.success,
        "{:?} does not validate:\n{}",
        files,
        validated.all()
    );
    true
}

#[test]
fn every_example_validates() {
    let whole = ["quickstart", "estate"];
    let mut checked = 0;
    for folder in example_folders() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
            .expect("read example folder")
            .map(|entry| entry.expect("read example").path())
            .filter(|path| {
                let name = path.to_string_lossy();
                name.ends_with(".tf") || name.ends_with(".tfquery.hcl")
            })
            .collect();
        files.sort();
        let is_whole = whole.iter().any(|name| folder.ends_with(name));
        if is_whole {
            checked += usize::from(validate(&files, &folder));
        } else {
            for file in &files {
                checked += usize::from(validate(std::slice::from_ref(file), &folder));
            }
        }
    }
    assert!(checked >= 10, "only {checked} examples were validated");
}
