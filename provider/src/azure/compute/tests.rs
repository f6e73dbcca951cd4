use super::*;
use std::collections::BTreeMap;

#[tokio::test(start_paused = true)]
async fn waiting_for_updates_to_settle_ends_on_cancel() {
    use crate::azure::arm::test_support::{client, ok};
    let vm = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";
    let machine = serde_json::json!({
        "id": vm, "location": "eastus",
        "properties": {"provisioningState": "Updating"}
    });
    let page = serde_json::json!({ "value": [machine] }).to_string();
    let machine = machine.to_string();
    let (arm, transport) = client(move |request, _| {
        if request.url().path().ends_with("/virtualMachines") {
            ok(&page)
        } else {
            ok(&machine)
        }
    });
    let compute = ComputeClient::new(arm);
    let scope = Scope::subscription("s1");
    let cancel = CancellationToken::new();
    let ids = BTreeSet::from([vm.to_string()]);
    let wait = compute.wait_until_settled_cancellable(
        &scope,
        &[MachineKind::VirtualMachine],
        &ids,
        &cancel,
    );
    let stopper = async {
        tokio::time::sleep(Duration::from_secs(20)).await;
        let reads = transport.count.load(std::sync::atomic::Ordering::SeqCst);
        assert!(reads >= 2, "still waiting after {reads} reads");
        cancel.cancel();
        Instant::now()
    };
    let (result, stopped_at) = tokio::join!(wait, stopper);
    let error = result.unwrap_err();
    assert!(error.is_cancelled(), "{error}");
    assert_eq!(stopped_at.elapsed(), Duration::ZERO, "stops at once");
}

/// After a listing shows the writes settled but for a few, those few are read one by one,
/// all at once, not listed again (no more reads than a listing, and sooner).
#[tokio::test(start_paused = true)]
async fn the_last_few_updating_machines_are_read_one_by_one() {
    use crate::azure::arm::test_support::{client, ok};
    let machine = |n: usize, state: &str| {
        serde_json::json!({
            "id": format!("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{n}"),
            "location": "eastus",
            "properties": {"provisioningState": state}
        })
    };
    // Two pages of two machines; vm3 is still updating when listed, settled when read.
    let (arm, transport) = client(move |request, _| {
        let url = request.url();
        if url.path().ends_with("/virtualMachines") {
            let second = url.query().unwrap_or("").contains("skiptoken");
            let body = if second {
                serde_json::json!({"value": [machine(2, "Succeeded"), machine(3, "Updating")]})
            } else {
                serde_json::json!({
                    "value": [machine(0, "Succeeded"), machine(1, "Succeeded")],
                    "nextLink": format!("{}?api-version={API_VERSION}&$skiptoken=1", url.as_str().split('?').next().unwrap()),
                })
            };
            ok(&body.to_string())
        } else {
            ok(&machine(3, "Succeeded").to_string())
        }
    });
    let compute = ComputeClient::new(arm);
    let ids: BTreeSet<String> = (0..4)
        .map(|n| format!("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{n}"))
        .collect();
    compute
        .wait_until_settled_cancellable(
            &Scope::subscription("s1"),
            &[MachineKind::VirtualMachine],
            &ids,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let paths: Vec<String> = transport
        .sent
        .lock()
        .unwrap()
        .iter()
        .map(|(_, url, _)| {
            let path = url.split('?').next().unwrap();
            path.rsplit('/').next().unwrap().to_string()
        })
        .collect();
    assert_eq!(paths, ["virtualMachines", "virtualMachines", "vm3"]);
}

/// A page is read straight into machines: members missing or null take their defaults,
/// an item without `id` is no machine, and an item of the wrong shape fails the page.
#[tokio::test(start_paused = true)]
async fn listed_pages_are_read_into_machines() {
    use crate::azure::arm::test_support::{client, ok};
    use futures::StreamExt;
    let (arm, _) = client(|request, _| {
        if request.url().path().contains("/subscriptions/bad/") {
            return ok(
                r#"{"value": [{"id": "/x/vm9", "identity": {"userAssignedIdentities": []}}]}"#,
            );
        }
        ok(r#"{"value": [
            {"id": "/x/vm1", "location": null, "tags": {"a": "b", "n": 1},
             "identity": {"type": "UserAssigned", "userAssignedIdentities": {"/i/one": {}}},
             "properties": {"provisioningState": "Succeeded", "other": [1, 2]}},
            {"id": "/x/vm2", "extra": {"deep": {"deeper": true}}},
            {"location": "eastus"}
        ]}"#)
    });
    let compute = ComputeClient::new(arm);
    let first_page = |subscription: &'static str| {
        let mut pages = compute.list_machines(
            &Scope::subscription(subscription),
            MachineKind::VirtualMachine,
        );
        async move { pages.next().await.unwrap() }
    };
    let page = first_page("s1").await.unwrap();
    assert_eq!(page.len(), 2, "{page:?}");
    assert_eq!(page[0].location, "");
    assert_eq!(page[0].tags, BTreeMap::from([("a".into(), "b".into())]));
    assert_eq!(page[0].identity_type.as_deref(), Some("UserAssigned"));
    assert_eq!(page[0].user_assigned_identity_ids, ["/i/one"]);
    assert_eq!(page[0].provisioning_state.as_deref(), Some("Succeeded"));
    assert_eq!(page[1].identity_type, None);
    assert!(page[1].user_assigned_identity_ids.is_empty());
    let bad = first_page("bad").await.unwrap_err();
    assert!(bad.message.contains("cannot be read"), "{bad}");
}

#[test]
fn machines_are_read_from_arm_json() {
    let json = serde_json::json!({
        "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
        "location": "eastus",
        "etag": "\"3\"",
        "tags": {"env": "prod"},
        "identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {"/x/id1": {"principalId": "p"}}},
        "properties": {"provisioningState": "Succeeded"}
    });
    let machine = Machine::from_json(&json, MachineKind::VirtualMachine).unwrap();
    assert_eq!(
        machine.identity_type.as_deref(),
        Some("SystemAssigned, UserAssigned")
    );
    assert_eq!(
        machine.user_assigned_identity_ids,
        vec!["/x/id1".to_string()]
    );
    assert_eq!(machine.etag.as_deref(), Some("\"3\""));
    assert_eq!(machine.tags["env"], "prod");
    let bare = Machine::from_json(
        &serde_json::json!({"id": "/x", "location": "westus"}),
        MachineKind::ScaleSet,
    )
    .unwrap();
    assert_eq!(bare.identity_type, None);
    assert!(bare.user_assigned_identity_ids.is_empty());
}

#[test]
fn a_machines_unique_id_is_its_vm_id_or_unique_id_or_creation_time() {
    let with = |properties: serde_json::Value, kind| {
        Machine::from_json(
            &serde_json::json!({"id": "/x", "properties": properties}),
            kind,
        )
        .unwrap()
        .unique_id
    };
    let both = serde_json::json!({"vmId": "v", "uniqueId": "u", "timeCreated": "t"});
    assert_eq!(
        with(both.clone(), MachineKind::VirtualMachine).as_deref(),
        Some("v")
    );
    assert_eq!(with(both, MachineKind::ScaleSet).as_deref(), Some("u"));
    assert_eq!(
        with(
            serde_json::json!({"timeCreated": "2026-01-01T00:00:00Z"}),
            MachineKind::VirtualMachine
        )
        .as_deref(),
        Some("2026-01-01T00:00:00Z")
    );
    assert_eq!(with(serde_json::json!({}), MachineKind::ScaleSet), None);
}

/// Every writer of a subscription (an estate's slices, several resources) shares its
/// turns: once they are all taken the next write waits, in order, while another
/// subscription's writes go on; a stop ends the wait.
#[tokio::test]
async fn a_subscriptions_writers_share_its_turns() {
    use crate::azure::arm::test_support::client;
    use futures::FutureExt;
    let (arm, _) = client(|_, _| unreachable!("taking turns sends nothing"));
    let compute = ComputeClient::new(arm);
    let machine = |subscription: &str, name: usize| {
        format!("/subscriptions/{subscription}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{name}")
    };
    let cancel = CancellationToken::new();
    let mut held = Vec::new();
    for n in 0..WRITES_PER_SUBSCRIPTION {
        // Two estate slices of S1, each asking in turn.
        let subscription = if n % 2 == 0 { "S1" } else { "s1" };
        let slot = compute.write_slot(&machine(subscription, n), cancel.clone());
        held.push(slot.now_or_never().flatten().expect("a turn is free"));
    }
    let mut next = Box::pin(compute.write_slot(&machine("s1", 999), cancel.clone()));
    assert!(
        (&mut next).now_or_never().is_none(),
        "all of s1's turns are taken"
    );
    let other = compute.write_slot(&machine("s2", 0), cancel.clone());
    assert!(
        other.now_or_never().flatten().is_some(),
        "s2 has turns of its own"
    );
    held.pop();
    assert!(
        next.now_or_never().flatten().is_some(),
        "a finished write frees its turn"
    );

    let waiting = compute.write_slot(&machine("s1", 1000), cancel.clone());
    cancel.cancel();
    assert!(
        waiting.await.is_none(),
        "a stop ends the wait without a turn"
    );
}

/// A client whose every listing is `page`, answered a second after it is asked for.
fn listing_one_page_a_second(
    page: serde_json::Value,
) -> (
    ComputeClient,
    Arc<crate::azure::arm::test_support::Scripted>,
) {
    use crate::azure::arm::test_support::{client, ok, Step};
    let page = page.to_string();
    let (arm, transport) =
        client(move |_, _| Step::Later(Duration::from_secs(1), Box::new(ok(&page))));
    (ComputeClient::new(arm), transport)
}

/// Callers that need a listing newer than the one running (each confirming its own
/// writes) share one listing queued behind it, which starts when it ends; a caller that
/// the running one satisfies is not kept waiting for the queued one.
#[tokio::test(start_paused = true)]
async fn callers_needing_a_newer_listing_share_one_queued_behind_the_running_one() {
    let (compute, transport) = listing_one_page_a_second(serde_json::json!({ "value": [{
        "id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm0",
        "location": "eastus",
    }]}));
    let scope = Scope::subscription("s1");
    let kinds = [MachineKind::VirtualMachine];
    let listing = |not_before: Instant| compute.shared_listing(&scope, &kinds, not_before);

    let first_asked = Instant::now();
    let running = listing(first_asked);
    // While it runs: one caller needs newer at 0.3 s, another at 0.6 s, and one at 0.6 s
    // is content with the running listing.
    let needs_newer = |after: u64| async move {
        tokio::time::sleep(Duration::from_millis(after)).await;
        let asked = Instant::now();
        (asked, listing(asked).await.unwrap().1)
    };
    let content = async {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let started = listing(first_asked).await.unwrap().1;
        (started, Instant::now())
    };
    // While the queued one runs, what the last one to end took is still known: the
    // confirmation of writes decides from it whether to read machines one by one.
    let pages_meanwhile = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        compute.pages_of_listing(&scope, &kinds)
    };
    let (
        running,
        (a_asked, a_started),
        (b_asked, b_started),
        (content_started, content_at),
        pages_meanwhile,
    ) = tokio::join!(
        running,
        needs_newer(300),
        needs_newer(600),
        content,
        pages_meanwhile
    );
    let running_started = running.unwrap().1;
    assert_eq!(pages_meanwhile, 1);

    assert_eq!(transport.count.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(a_started, b_started, "one listing between them");
    assert!(
        a_started >= a_asked && b_started >= b_asked,
        "newer than they asked for"
    );
    assert_eq!(
        a_started,
        running_started + Duration::from_secs(1),
        "queued behind"
    );
    assert_eq!(content_started, running_started);
    assert_eq!(content_at, running_started + Duration::from_secs(1));
}

/// A caller that leaves while its queued listing waits for its turn leaves it queued: the
/// next caller starts it, and it counts as running until it ends (a caller that needs
/// newer than it then queues behind it instead of listing beside it).
#[tokio::test(start_paused = true)]
async fn a_queued_listing_its_caller_left_still_runs_once_as_the_next_callers() {
    let (compute, transport) = listing_one_page_a_second(serde_json::json!({ "value": [] }));
    let scope = Scope::subscription("s1");
    let kinds = [MachineKind::VirtualMachine];
    let listing = |not_before: Instant| compute.shared_listing(&scope, &kinds, not_before);
    let needs_newer_at = |after: u64| async move {
        tokio::time::sleep(Duration::from_millis(after)).await;
        listing(Instant::now()).await.unwrap().1
    };

    let running = listing(Instant::now());
    let leaves = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let left = tokio::time::timeout(Duration::from_millis(200), listing(Instant::now()));
        assert!(left.await.is_err(), "it left before its listing started");
    };
    let (running, (), next_started, later_started) =
        tokio::join!(running, leaves, needs_newer_at(600), needs_newer_at(1200));
    let running_started = running.unwrap().1;

    assert_eq!(next_started, running_started + Duration::from_secs(1));
    assert_eq!(
        later_started,
        next_started + Duration::from_secs(1),
        "queued behind the listing the caller who left had queued"
    );
    assert_eq!(transport.count.load(std::sync::atomic::Ordering::SeqCst), 3);
}

fn vm_before(etag: Option<&str>, kind: Option<&str>, ids: &[&str]) -> Machine {
    Machine {
        id: "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
            .into(),
        kind: MachineKind::VirtualMachine,
        location: "eastus".into(),
        tags: BTreeMap::from([("env".into(), "prod".into())]),
        provisioning_state: Some("Succeeded".into()),
        identity_type: kind.map(str::to_string),
        user_assigned_identity_ids: ids.iter().map(|s| s.to_string()).collect(),
        etag: etag.map(str::to_string),
        unique_id: None,
    }
}

#[test]
fn etags_count_writes_when_they_are_numbers() {
    assert_eq!(etag_count(Some("\"7\"")), Some(7));
    assert_eq!(etag_count(Some("W/\"7\"")), Some(7));
    assert_eq!(etag_count(Some("\"0x8DC1\"")), None);
    assert_eq!(etag_count(None), None);
}

/// The evidence that a write whose answer was lost was ours: exactly our change, in exactly
/// one write. Every other shape is not proof.
#[test]
fn only_exactly_our_change_in_one_write_is_ours() {
    let ours = "/x/ours";
    let attach = serde_json::json!({"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {ours: {}}});
    let before = vm_before(Some("\"3\""), Some("SystemAssigned"), &[]);
    let took = Machine {
        identity_type: Some("SystemAssigned, UserAssigned".into()),
        user_assigned_identity_ids: vec!["/X/OURS".into()],
        etag: Some("\"4\"".into()),
        provisioning_state: Some("Updating".into()),
        ..before.clone()
    };
    assert!(is_exactly_our_write(&before, &attach, &took));

    // Two writes: ours then another's, or another's (with our identity) and ours refused.
    let twice = Machine {
        etag: Some("\"5\"".into()),
        ..took.clone()
    };
    assert!(!is_exactly_our_write(&before, &attach, &twice));
    // One write that also changed a tag, or another identity: not our PATCH.
    let mut tagged = took.clone();
    tagged.tags.insert("other".into(), "1".into());
    assert!(!is_exactly_our_write(&before, &attach, &tagged));
    let more = Machine {
        user_assigned_identity_ids: vec![ours.into(), "/x/theirs".into()],
        ..took.clone()
    };
    assert!(!is_exactly_our_write(&before, &attach, &more));
    // The system-assigned identity dropped: not what our PATCH does.
    let dropped = Machine {
        identity_type: Some("UserAssigned".into()),
        ..took.clone()
    };
    assert!(!is_exactly_our_write(&before, &attach, &dropped));
    // Etags that do not count writes prove nothing.
    let opaque = |etag: &str| Machine {
        etag: Some(etag.into()),
        ..took.clone()
    };
    let before_opaque = Machine {
        etag: Some("\"abc\"".into()),
        ..before.clone()
    };
    assert!(!is_exactly_our_write(
        &before_opaque,
        &attach,
        &opaque("\"abd\"")
    ));
    assert!(!is_exactly_our_write(
        &Machine {
            etag: None,
            ..before.clone()
        },
        &attach,
        &took
    ));

    // A swap: the old identity goes, the new one comes, the others stay.
    let before = vm_before(Some("\"9\""), Some("UserAssigned"), &["/x/old", "/x/app"]);
    let swap = serde_json::json!({"type": "UserAssigned", "userAssignedIdentities": {"/x/old": null, ours: {}}});
    let swapped = Machine {
        user_assigned_identity_ids: vec!["/x/app".into(), ours.into()],
        etag: Some("\"10\"".into()),
        ..before.clone()
    };
    assert!(is_exactly_our_write(&before, &swap, &swapped));
    let kept_old = Machine {
        user_assigned_identity_ids: vec!["/x/old".into(), "/x/app".into(), ours.into()],
        ..swapped.clone()
    };
    assert!(!is_exactly_our_write(&before, &swap, &kept_old));
}

/// A machine without an etag is never written: nothing is sent, and the error says why.
#[tokio::test(start_paused = true)]
async fn a_write_without_an_etag_is_refused_unsent() {
    use crate::azure::arm::test_support::client;
    let (arm, transport) = client(|_, _| unreachable!("nothing is sent"));
    let compute = ComputeClient::new(arm);
    let error = compute
        .patch_identity_cancellable(
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
            MachineKind::VirtualMachine,
            serde_json::json!({"type": "UserAssigned", "userAssignedIdentities": {"/x/ours": {}}}),
            None,
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code, NO_ETAG);
    assert!(error.message.contains("If-Match"), "{error}");
    assert_eq!(transport.count.load(std::sync::atomic::Ordering::SeqCst), 0);
}
