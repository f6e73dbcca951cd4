//! Unit tests of the adapter: the model, the record in private state, validation.

use tfplugin::typed::Maybe;

use super::*;
use crate::azure::compute::{Machine, MachineKind};
use crate::engine::assignment::handed_over;
use crate::engine::ownership::Write;
use crate::engine::record::Record;
use crate::engine::record::{forget_recreated, job_for, kept_for_successor, unique_ids_of};
use crate::engine::unique_ids::Digest;
use crate::ownership::{Mode, Outcome};

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
    let planned: Model = values::decode(&planned).unwrap();
    let settings = planned.with_id().settings().unwrap();
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
    let held = decode(&state)
        .recorded()
        .held(&Record::from_bytes(&private.to_bytes()));
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
    let state = decode(&state).recorded();
    let (kept, _) = handed_over(&state, &successor).expect("kept");
    assert_eq!(
        kept.assigned_ids,
        BTreeSet::from(["/VM/a".to_string(), "/vm/b".to_string()])
    );
    let unrelated = Record {
        keeps: BTreeMap::from([("/vm/z".to_string(), "/new".to_string())]),
        ..Record::default()
    };
    assert!(handed_over(&state, &unrelated).is_none());
    assert!(handed_over(&state, &Record::default()).is_none());
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
        unique_ids: [("/vm/a", "vmid-a")].into_iter().collect(),
        ..Record::default()
    };
    let held = decode(&state)
        .recorded()
        .held(&Record::from_bytes(&private.to_bytes()));
    assert_eq!(held.identity_on("/vm/b"), Some("/new"), "adopted is ours");
    assert_eq!(held.unique_id_of("/vm/a"), Some(Digest::of("vmid-a")));
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
        [("/vm/a", "vmid-a"), ("/vm/b", "vmid-b")]
            .into_iter()
            .collect()
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
    let state = decode(&Value::object([(
        "id",
        Value::from("/subscriptions/s|/i|incomplete"),
    )]));
    assert_eq!(
        state.without_incomplete_marker().id.as_str(),
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
    let mut diagnostics = schema().block.validate(&config);
    diagnostics.extend(
        values::decode_lenient::<Model>(&config)
            .unwrap()
            .selection()
            .check(),
    );
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

fn decode(state: &Value) -> Model {
    // The lists a state holds, as a state holds them (all four, or the outcome reads empty).
    let mut state = state.clone();
    for name in ["assigned_ids", "compliant_ids", "noncompliant_ids"] {
        if state.get(name).is_null() {
            state = state.with(name, Value::List(Vec::new()));
        }
    }
    if state.get("skipped").is_null() {
        state = state.with("skipped", Value::Map(BTreeMap::new()));
    }
    values::decode(&state).expect("a state decodes")
}

fn default_resource_types() -> Value {
    Value::string_set([RESOURCE_TYPE_VMS, RESOURCE_TYPE_SCALE_SETS])
}

#[test]
fn settings_wait_for_every_argument_and_element_to_be_known() {
    let model = Model {
        identity_id: Maybe::Known("/i".into()),
        scope: Maybe::Known("/subscriptions/00000000-0000-0000-0000-000000000001/".into()),
        locations: Maybe::Known(vec![Maybe::Known("East US".into())]),
        ..Model::default()
    };
    let settings = model.settings().expect("known");
    assert_eq!(settings.identity_id, "/i");
    assert_eq!(
        settings.locations,
        Some(BTreeSet::from(["eastus".to_string()]))
    );
    assert_eq!(settings.kinds.len(), 2, "null means the default");
    assert!(settings.rules.skip_single_user_assigned);
    let unknown_element = Model {
        locations: Maybe::Known(vec![Maybe::Known("eastus".into()), Maybe::Unknown]),
        ..model.clone()
    };
    assert!(unknown_element.settings().is_none());
    let unknown_tag = Model {
        exclude_tags: Maybe::Known(BTreeMap::from([("k".to_string(), Maybe::Unknown)])),
        ..model.clone()
    };
    assert!(unknown_tag.settings().is_none());
    assert!(Model {
        mode: Maybe::Unknown,
        ..model.clone()
    }
    .settings()
    .is_none());
    // The lists: all four known, or none recorded; unknown only in a plan.
    let planned = model.with_id().with_unknown_outcome();
    assert_eq!(
        planned.id.as_str(),
        Some("/subscriptions/00000000-0000-0000-0000-000000000001/|/i")
    );
    assert_eq!(planned.outcome(), Outcome::default());
    let outcome = Outcome {
        assigned_ids: BTreeSet::from(["/vm/a".to_string()]),
        ..Outcome::default()
    };
    assert_eq!(planned.with_outcome(outcome.clone()).outcome(), outcome);
}

#[test]
fn the_selection_checks_name_the_attribute() {
    let selection = Selection {
        locations: Maybe::Known(Vec::new()),
        resource_types: Maybe::Known(Vec::new()),
        exclude_tags: Maybe::Known(BTreeMap::from([("bad<name".to_string(), Maybe::Unknown)])),
        ..Selection::default()
    };
    let paths: Vec<String> = selection
        .check()
        .iter()
        .filter_map(|d| d.attribute.as_ref().map(|p| format!("{p:?}")))
        .collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(Selection::default().check().is_empty());
}

#[test]
fn an_imported_object_has_the_defaults_and_records_nothing_as_ours() {
    let state = fresh(Model {
        identity_id: Maybe::Known("/i".into()),
        scope: Maybe::Known("/subscriptions/00000000-0000-0000-0000-000000000001".into()),
        ..Model::default()
    });
    assert_eq!(state.mode.as_str(), Some("enforce"));
    assert_eq!(state.skip_single_user_assigned, Maybe::Known(true));
    assert_eq!(state.assigned_ids, Maybe::Known(BTreeSet::new()));
    assert_eq!(
        state.id.as_str(),
        Some("/subscriptions/00000000-0000-0000-0000-000000000001|/i")
    );
    let quickstart = quickstart_state("/subscriptions/s", "/i", "eastus");
    assert_eq!(
        quickstart.get("exclude_tags").get("mig-exclude").as_str(),
        Some("true")
    );
    assert_eq!(quickstart.get("id").as_str(), Some("/subscriptions/s|/i"));
}
