//! Unit tests of the estate.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slice_operations_run_side_by_side_and_keep_the_input_order() {
    // The first operation holds its thread until the last one has run. Polled together
    // in one task (as `join_all` does), the last could not run until the first gave the
    // thread back, and the wait would end at its timeout; as tasks of their own, the
    // other worker runs the last at once.
    let (ran, wait_for_it) = std::sync::mpsc::channel::<()>();
    let first = async move {
        match wait_for_it.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => "first",
            Err(_) => "the last operation did not run beside the first",
        }
    };
    let last = async move {
        let _ = ran.send(());
        "last"
    };
    let operations: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = &str> + Send>>> = vec![
        Box::pin(first),
        Box::pin(async { "middle" }),
        Box::pin(last),
    ];
    assert_eq!(
        each_on_its_own_task(operations).await,
        ["first", "middle", "last"]
    );
}

#[tokio::test]
#[should_panic(expected = "a slice's bug")]
async fn a_panicking_slice_task_panics_the_operation() {
    let operations: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> = vec![
        Box::pin(async {}),
        Box::pin(async { panic!("a slice's bug") }),
    ];
    each_on_its_own_task(operations).await;
}

const SUB: &str = "00000000-0000-0000-0000-0000000000a1";

fn subscription(state: Option<&str>) -> SubscriptionInfo {
    SubscriptionInfo {
        subscription_id: SUB.into(),
        display_name: String::new(),
        state: state.map(str::to_string),
    }
}

#[test]
fn only_the_management_group_api_releases_a_missing_subscription() {
    for confirmed in [true, false] {
        assert_eq!(
            standing(Some(&subscription(Some("Enabled"))), confirmed),
            Standing::Planned
        );
        // Found under a group but not in `GET /subscriptions`: its listing decides.
        assert_eq!(
            standing(Some(&subscription(None)), confirmed),
            Standing::Planned
        );
    }
    // Not among a group's descendants: it left the group.
    assert_eq!(standing(None, true), Standing::Released);
    // Not in `GET /subscriptions`: read rights, or a gap in the listing.
    match standing(None, false) {
        Standing::Kept(cause) => assert!(cause.contains("GET /subscriptions"), "{cause}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn subscriptions_that_refuse_writes_are_kept_whoever_lists_them() {
    for state in ["Disabled", "Deleted", "deleted", "Expired"] {
        for confirmed in [true, false] {
            match standing(Some(&subscription(Some(state))), confirmed) {
                Standing::Kept(cause) => assert!(cause.contains(state), "{cause}"),
                other => panic!("{state}: {other:?}"),
            }
        }
    }
    for state in ["Warned", "PastDue", "Active"] {
        assert_eq!(
            standing(Some(&subscription(Some(state))), true),
            Standing::Planned,
            "{state} still takes writes"
        );
    }
}

#[test]
fn a_listing_refused_or_not_found_is_unreadable_a_passing_failure_is_not() {
    let error = |status: u16| ArmError {
        status,
        code: "X".into(),
        message: String::new(),
        request_id: None,
        after_unanswered_attempt: false,
    };
    for status in [401, 403, 404, 409] {
        assert!(unreadable(&error(status)), "{status}");
    }
    for status in [0, 429, 500, 503] {
        assert!(!unreadable(&error(status)), "{status}");
    }
}

#[test]
fn kept_slices_are_those_of_kept_subscriptions_and_the_warning_names_each() {
    let other = "00000000-0000-0000-0000-0000000000b2";
    let mut slices: BTreeMap<String, SliceState> = [
        slice::key(SUB, "eastus"),
        slice::key(SUB, "westus"),
        slice::key(other, "eastus"),
    ]
    .into_iter()
    .map(|key| (key, SliceState::default()))
    .collect();
    let kept = BTreeMap::from([(SUB.to_string(), "its state is `Disabled`".to_string())]);
    let taken = take_kept(&mut slices, &kept);
    assert_eq!(
        taken.keys().cloned().collect::<Vec<_>>(),
        [slice::key(SUB, "eastus"), slice::key(SUB, "westus")]
    );
    assert_eq!(
        slices.keys().cloned().collect::<Vec<_>>(),
        [slice::key(other, "eastus")]
    );
    let recorded = recorded_of(&taken);
    let warning = kept_warning(&kept, &recorded).unwrap();
    assert!(
        warning.contains(&format!(
            "{SUB}: its state is `Disabled`; its buckets keep what they recorded"
        )),
        "{warning}"
    );
    assert_eq!(kept_warning(&BTreeMap::new(), &recorded), None);
}

#[test]
fn recorded_subscriptions_carry_the_scopes_their_slices_cover() {
    let group = format!("/subscriptions/{SUB}/resourceGroups/rg");
    let slice = |scope: &str| SliceState {
        scope: Maybe::Known(scope.to_string()),
        ..SliceState::default()
    };
    let slices = BTreeMap::from([
        (slice::key(SUB, "eastus"), slice(&group)),
        (slice::key(SUB, "westus"), slice(&group)),
        (
            slice::key("00000000-0000-0000-0000-0000000000B2", "eastus"),
            slice("/subscriptions/00000000-0000-0000-0000-0000000000b2"),
        ),
    ]);
    assert_eq!(
        recorded_of(&slices),
        Recorded::from([
            (SUB.to_string(), BTreeSet::from([group.clone()])),
            (
                "00000000-0000-0000-0000-0000000000b2".to_string(),
                BTreeSet::from(["/subscriptions/00000000-0000-0000-0000-0000000000b2".to_string()])
            ),
        ])
    );
}

#[test]
fn the_kept_slices_travel_in_the_plans_private_state() {
    let mut private = Private::default();
    let record = Record {
        taken_over: BTreeSet::from(["/vm/a".to_string()]),
        ..Record::default()
    };
    private.set(&slice::key(SUB, "eastus"), &record);
    private.set(&slice::key(SUB, "westus"), &Record::default());
    private.kept.insert(slice::key(SUB, "eastus"));
    let back: Private =
        tfplugin::model::private_from_bytes(&tfplugin::model::private_to_bytes(&private));
    assert_eq!(back.of(&slice::key(SUB, "eastus")), record);
    assert_eq!(back, private);
    assert_eq!(back.slices.len(), 1, "the marker is not a slice");
    // Without kept slices the private state is as before.
    let plain = Private::default();
    assert!(
        !String::from_utf8(tfplugin::model::private_to_bytes(&plain))
            .unwrap()
            .contains("#kept")
    );
}

/// The private state as earlier releases wrote it (literal bytes): a plan or state saved by
/// them must read back the same records and markers.
#[test]
fn private_state_written_by_earlier_releases_reads_back() {
    let east = slice::key(SUB, "eastus");
    let west = slice::key(SUB, "westus");
    let bytes = format!(
        r##"{{"{east}":{{"taken_over":["/vm/a"],"pending_release":{{"/vm/b":"/id/old"}},"unique_ids":{{"/vm/b":"u-1"}}}},"{west}":{{"not_ours":["/vm/c"],"adopted":["/vm/d"]}},"#kept":["{east}"],"#every_bucket_shown":true}}"##
    );
    let private: Private = tfplugin::model::private_from_bytes(bytes.as_bytes());
    assert!(private.every_slice_shown);
    assert_eq!(private.kept, BTreeSet::from([east.clone()]));
    assert_eq!(
        private.of(&east),
        Record {
            taken_over: BTreeSet::from(["/vm/a".to_string()]),
            pending_release: BTreeMap::from([("/vm/b".to_string(), "/id/old".to_string())]),
            unique_ids: [("/vm/b", "u-1")].into_iter().collect(),
            ..Record::default()
        }
    );
    assert_eq!(
        private.of(&west),
        Record {
            not_ours: BTreeSet::from(["/vm/c".to_string()]),
            adopted: BTreeSet::from(["/vm/d".to_string()]),
            ..Record::default()
        }
    );
    assert_eq!(
        tfplugin::model::private_from_bytes::<Private>(&tfplugin::model::private_to_bytes(
            &private
        )),
        private,
        "and writes them back the same"
    );
}

#[test]
fn scopes_are_groups_subscriptions_or_resource_groups() {
    for good in [
        "/providers/Microsoft.Management/managementGroups/estate",
        "/subscriptions/00000000-0000-0000-0000-0000000000a1",
        "/subscriptions/00000000-0000-0000-0000-0000000000a1/resourceGroups/rg",
    ] {
        assert!(check_estate_scope(good).is_ok(), "{good}");
    }
    for bad in [
        "estate",
        "/providers/Microsoft.Compute/virtualMachines/x",
        "/subscriptions/not-a-guid",
    ] {
        assert!(check_estate_scope(bad).is_err(), "{bad}");
    }
}

#[test]
fn identity_keys_are_regions_or_subscription_and_region() {
    assert!(check_identity_key("eastus").is_ok());
    assert!(check_identity_key(&format!("{SUB}/eastus")).is_ok());
    assert!(check_identity_key("not-a-guid/eastus").is_err());
    assert!(check_identity_key(&format!("{SUB}/east us!")).is_err());
}

#[test]
fn a_subscription_key_wins_over_a_region_key_and_the_default_is_the_policys_naming() {
    let named = Estate {
        scope: None,
        identity_ids: Some(BTreeMap::from([
            ("eastus".to_string(), "/all".to_string()),
            (slice::key(SUB, "East US"), "/this".to_string()),
        ])),
        locations: None,
        kinds: vec![MachineKind::VirtualMachine],
    };
    assert_eq!(named.identity_for(SUB, "eastus").as_deref(), Some("/this"));
    assert_eq!(
        named
            .identity_for("00000000-0000-0000-0000-0000000000b2", "eastus")
            .as_deref(),
        Some("/all")
    );
    assert_eq!(named.identity_for(SUB, "westus"), None);
    let policy = Estate {
        identity_ids: None,
        ..named
    };
    assert_eq!(
        policy.identity_for(SUB, "westus").unwrap(),
        format!("/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-westus")
    );
}

#[test]
fn a_slice_is_the_assignment_object_it_stands_for_and_back() {
    let defaulted = schema().block.apply_defaults(&tfplugin::model::encode(
        &Model::default(),
        &schema().value_type(),
    ));
    let estate: Model = tfplugin::model::decode(&defaulted).unwrap();
    let key = slice::key(SUB, "eastus");
    let slice = SliceState {
        identity_id: Maybe::Known("/i".into()),
        scope: Maybe::Known(format!("/subscriptions/{SUB}")),
        assigned_ids: Maybe::Known(BTreeSet::from(["/m1".to_string()])),
        compliant_ids: Maybe::Known(BTreeSet::new()),
        skipped: Maybe::Known(BTreeMap::new()),
        noncompliant_ids: Maybe::Known(BTreeSet::new()),
    };
    let object = estate.slice_object(&key, slice.clone());
    assert_eq!(
        object.locations,
        Maybe::Known(vec![Maybe::Known("eastus".to_string())])
    );
    assert_eq!(object.mode.as_str(), Some("enforce"));
    assert_eq!(
        object.id.as_str(),
        Some(format!("/subscriptions/{SUB}|/i").as_str())
    );
    assert_eq!(slice_of(object.clone()), slice);
    let settings = object.settings().expect("known");
    assert_eq!(
        settings.locations,
        Some(BTreeSet::from(["eastus".to_string()]))
    );
}

#[test]
fn a_destroy_plan_warns_for_each_slice_that_an_object_created_in_this_plan_reaches() {
    use crate::engine::handover::Change;
    use tfplugin::typed::TypedResource;

    let defaulted = schema().block.apply_defaults(&tfplugin::model::encode(
        &Model::default(),
        &schema().value_type(),
    ));
    let mut estate: Model = tfplugin::model::decode(&defaulted).unwrap();
    let identity = format!("/subscriptions/{SUB}/resourceGroups/ids/providers/Microsoft.ManagedIdentity/userAssignedIdentities/one");
    let machine = |region: &str| {
        format!("/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm-{region}")
    };
    let slice = |region: &str| {
        let state = SliceState {
            identity_id: Maybe::Known(identity.clone()),
            scope: Maybe::Known(format!("/subscriptions/{SUB}")),
            assigned_ids: Maybe::Known(BTreeSet::from([machine(region)])),
            compliant_ids: Maybe::Known(BTreeSet::new()),
            skipped: Maybe::Known(BTreeMap::new()),
            noncompliant_ids: Maybe::Known(BTreeSet::new()),
        };
        (slice::key(SUB, region), state)
    };
    estate.buckets = Maybe::Known(BTreeMap::from([slice("eastus"), slice("westus")]));
    let resource = EstateAssignment::new(Arc::new(ProviderData::default()));

    // An assignment of the same identity over eastus, created in the same plan.
    let eastus = estate
        .slice_arguments(
            &format!("/subscriptions/{SUB}"),
            "eastus",
            Maybe::Known(identity.clone()),
        )
        .settings()
        .unwrap();
    let handover = resource.data.handover();
    assert!(handover
        .reaches
        .note_change(Change::Create, &eastus)
        .is_empty());

    // That assignment keeps eastus's machine holding the identity: its destroy, planned
    // after it, leaves the machine for it (see `engine::destroy::plan_destroy`).
    handover
        .reaches
        .note_kept_by_change(&identity, [&machine("eastus")]);

    let mut private = Private::default();
    let warnings = resource.plan_destroy(Some(&estate), &mut private);
    assert_eq!(
        private.of(&slice::key(SUB, "eastus")).keeps,
        BTreeMap::from([(machine("eastus").to_ascii_lowercase(), identity.clone())]),
        "the eastus slice's destroy leaves its machine to the create"
    );
    assert_eq!(
        private.of(&slice::key(SUB, "westus")),
        Record::default(),
        "the westus slice's destroy takes its machine's identity back"
    );
    let summaries: Vec<&str> = warnings.items.iter().map(|d| d.summary.as_str()).collect();
    assert_eq!(
        summaries,
        [format!("{}: An object with the same identity over the same machines is destroyed and another created", slice::key(SUB, "eastus"))],
        "only the eastus slice is reached"
    );
    assert!(!warnings.has_errors());
    // Without a prior state it can read, a destroy plans without these warnings.
    assert!(resource
        .plan_destroy(None, &mut Private::default())
        .items
        .is_empty());
}
