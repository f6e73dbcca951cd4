//! Unit tests of the adapter: the model, the record in private state, validation.

use super::*;
use crate::azure::compute::{Machine, MachineKind};
use crate::engine::ownership::Write;
use crate::engine::record::{forget_recreated, job_for, kept_for_successor, unique_ids_of};

#[test]
fn removed_arguments_plan_their_defaults() {
    // Terraform proposes the prior `audit` when the argument is removed from config.
    let prior = schema().block.apply_defaults(&Value::object([
        (
            "scope",
            Value::from("/subscriptions/00000000-0000-0000-0000-000000000001"),
        ),
        ("identity_id", Value::from("/i")),
        ("mode", Value::from("audit")),
        ("skip_single_user_assigned", Value::Bool(false)),
        ("resource_types", Value::string_set(["virtualMachines"])),
    ]));
    let config = prior
        .with("mode", Value::Null)
        .with("skip_single_user_assigned", Value::Null)
        .with("resource_types", Value::Null);
    let planned = tfplugin::planning::plan_proposed(&schema().block, &config, &prior, &prior);
    assert_eq!(planned.get("mode").as_str(), Some("enforce"));
    assert_eq!(
        planned.get("skip_single_user_assigned").as_bool(),
        Some(true)
    );
    assert_eq!(planned.get("resource_types"), &default_resource_types());
    let settings = settings_from(&with_id(&planned)).unwrap();
    assert_eq!(settings.mode, Mode::Enforce);
    assert_eq!(settings.kinds.len(), 2);
}

#[test]
fn ownership_reads_assigned_less_not_ours_plus_pending_releases() {
    let state = Value::object([
        ("identity_id", Value::from("/new")),
        (
            "assigned_ids",
            Value::List(vec![Value::from("/vm/a"), Value::from("/vm/b")]),
        ),
    ]);
    let private = Record {
        not_ours: BTreeSet::from(["/VM/B".to_string()]),
        pending_release: BTreeMap::from([("/vm/c".to_string(), "/old".to_string())]),
        ..Record::default()
    };
    let held = recorded(&state).held(&Record::from_bytes(&private.to_bytes()));
    assert_eq!(held.identity_on("/vm/a"), Some("/new"));
    assert_eq!(held.identity_on("/vm/b"), None);
    assert_eq!(held.identity_on("/vm/c"), Some("/old"));
    assert!(Record::default().to_bytes().is_empty());
}

#[test]
fn a_failed_replacement_keeps_what_it_meant_to_hand_over_and_nothing_else() {
    let state = Value::object([
        ("identity_id", Value::from("/new")),
        ("scope", Value::from("/subscriptions/s")),
        (
            "assigned_ids",
            Value::List(vec![
                Value::from("/VM/a"),
                Value::from("/vm/b"),
                Value::from("/vm/c"),
            ]),
        ),
    ]);
    // The create took `a` over by object and plans `b` compliant: both stay ours.
    let successor = Record {
        taken_over: BTreeSet::from(["/vm/a".to_string()]),
        keeps: BTreeMap::from([("/vm/b".to_string(), "/NEW".to_string())]),
        ..Record::default()
    };
    assert!(kept_for_successor(&successor, "/VM/B", "/new"));
    assert!(!kept_for_successor(&successor, "/vm/b", "/other"));
    assert!(!kept_for_successor(&successor, "/vm/c", "/new"));
    let (kept, _) = handed_over_state(&state, &successor.to_bytes()).expect("kept");
    assert_eq!(
        outcome_from(&kept).assigned_ids,
        BTreeSet::from(["/VM/a".to_string(), "/vm/b".to_string()])
    );
    let unrelated = Record {
        keeps: BTreeMap::from([("/vm/z".to_string(), "/new".to_string())]),
        ..Record::default()
    };
    assert!(handed_over_state(&state, &unrelated.to_bytes()).is_none());
    assert!(handed_over_state(&state, &[]).is_none());
}

#[test]
fn ownership_carries_the_recorded_unique_ids_and_the_adopted_machines() {
    let state = Value::object([
        ("identity_id", Value::from("/new")),
        ("assigned_ids", Value::List(vec![Value::from("/VM/A")])),
        ("compliant_ids", Value::List(vec![Value::from("/vm/b")])),
    ]);
    let private = Record {
        adopted: BTreeSet::from(["/vm/b".to_string()]),
        unique_ids: BTreeMap::from([("/vm/a".to_string(), "vmid-a".to_string())]),
        ..Record::default()
    };
    let held = recorded(&state).held(&Record::from_bytes(&private.to_bytes()));
    assert_eq!(held.identity_on("/vm/b"), Some("/new"), "adopted is ours");
    assert_eq!(held.unique_id_of("/vm/a"), Some("vmid-a"));
    // Listed with another unique ID: recreated, forgotten; the listing's IDs are kept
    // for the machines still ours, the old record for one missing from the listing.
    let listed = |id: &str, unique_id: &str| Machine {
        id: id.into(),
        kind: MachineKind::VirtualMachine,
        location: "eastus".into(),
        tags: BTreeMap::new(),
        provisioning_state: None,
        identity_type: Some("UserAssigned".into()),
        user_assigned_identity_ids: vec!["/new".into()],
        etag: None,
        unique_id: Some(unique_id.into()),
    };
    let mut now = held.clone();
    forget_recreated(&mut now, &[listed("/VM/A", "vmid-a-again")]);
    assert_eq!(now.identity_on("/vm/a"), None);
    let unique_ids = unique_ids_of(&held, &held, &[listed("/vm/B", "vmid-b")]);
    assert_eq!(
        unique_ids,
        BTreeMap::from([
            ("/vm/a".to_string(), "vmid-a".to_string()),
            ("/vm/b".to_string(), "vmid-b".to_string()),
        ])
    );
}

#[test]
fn a_release_is_found_whatever_the_casing_the_batch_reports() {
    let jobs = BTreeMap::from([(
        "/vm/a".to_string(),
        Write::Detach {
            identity_id: "/i".into(),
        },
    )]);
    assert!(job_for(&jobs, "/VM/A").is_some());
    assert!(job_for(&jobs, "/vm/b").is_none());
}

#[test]
fn legacy_incomplete_marker_is_dropped() {
    let state = Value::object([("id", Value::from("/subscriptions/s|/i|incomplete"))]);
    assert_eq!(
        without_incomplete_marker(state).get("id").as_str(),
        Some("/subscriptions/s|/i")
    );
}

#[test]
fn validation_names_the_attribute() {
    let config = Value::object([
        ("identity_id", Value::String("not-an-id".into())),
        ("scope", Value::String("/subscriptions/x/whatever/y".into())),
        ("mode", Value::String("yolo".into())),
        (
            "resource_types",
            Value::Set(vec![Value::String("disks".into())]),
        ),
    ]);
    let diagnostics = validate_arguments(&config);
    let attributes: Vec<String> = diagnostics
        .iter()
        .filter_map(|d| d.attribute.as_ref().map(|p| format!("{p:?}")))
        .collect();
    for name in ["identity_id", "scope", "mode", "resource_types"] {
        assert!(
            attributes.iter().any(|a| a.contains(name)),
            "{name} not named: {attributes:?}"
        );
    }
}
