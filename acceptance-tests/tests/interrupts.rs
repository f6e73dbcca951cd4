//! Ctrl-C with real Terraform: once the provider is told to stop, no write that was not
//! already sent goes out (queued in the pacer, in a retry backoff or not started), and state
//! records exactly what ARM holds.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use acceptance_tests::{Emulator, Workdir};
use serde_json::{json, Value as Json};

const SUB: &str = "00000000-0000-0000-0000-000000000001";

/// How long after StopProvider a write may still reach ARM: one already on the wire.
const STOP_BUDGET_MS: u64 = 1_000;

fn builtin(location: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-{location}"
    )
}

fn vm_id(name: &str) -> String {
    format!("/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/{name}")
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Milliseconds since the Unix epoch of an hclog timestamp at the start of `line`
/// (`2026-11-26T13:45:01.123Z` or `...123+0100`).
fn hclog_unix_ms(line: &str) -> Option<u64> {
    let stamp = line.split_whitespace().next()?;
    let (date, time) = stamp.split_once('T')?;
    let mut ymd = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, d) = (ymd.next()?.ok()?, ymd.next()?.ok()?, ymd.next()?.ok()?);
    let (clock, offset_minutes) = match time.find(['Z', '+', '-']) {
        Some(i) if &time[i..] == "Z" => (&time[..i], 0),
        Some(i) => {
            let zone = &time[i..];
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let digits: String = zone[1..].chars().filter(char::is_ascii_digit).collect();
            let hours: i64 = digits.get(..2)?.parse().ok()?;
            let minutes: i64 = digits.get(2..4).unwrap_or("0").parse().ok()?;
            (&time[..i], sign * (hours * 60 + minutes))
        }
        None => (time, 0),
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    let mut parts = hms.split(':').map(|p| p.parse::<i64>());
    let (hh, mm, ss) = (
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    );
    let millis: i64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hh * 3_600 + mm * 60 + ss - offset_minutes * 60;
    u64::try_from(seconds * 1_000 + millis).ok()
}

/// When Terraform asked the provider to stop, from its core log: it logs this line, then
/// calls StopProvider on every provider.
fn stop_requested_at(log: &str) -> Option<u64> {
    log.lines()
        .find(|line| line.contains("requesting providers and provisioners to gracefully stop"))
        .and_then(hclog_unix_ms)
}

/// Sends Terraform one SIGINT (Ctrl-C) and waits for it to end. Returns when the signal went
/// (ms since the epoch), when Terraform ended, and its output; it must have failed.
fn interrupt_once(apply: std::process::Child) -> (u64, u64, String) {
    let sigint_at = now_unix_ms();
    send_sigint(&apply);
    let finished = apply.wait_with_output().expect("terraform apply ends");
    let ended_at = now_unix_ms();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&finished.stdout),
        String::from_utf8_lossy(&finished.stderr)
    );
    assert!(
        !finished.status.success(),
        "an interrupted apply reports failure:\n{output}"
    );
    (sigint_at, ended_at, output)
}

fn send_sigint(process: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &process.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(status.success());
}

fn strings(value: &Json) -> BTreeSet<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(|s| s.to_ascii_lowercase()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn hclog_timestamps_are_read() {
    assert_eq!(
        hclog_unix_ms("1970-01-01T00:00:01.250Z [TRACE] x"),
        Some(1_250)
    );
    assert_eq!(
        hclog_unix_ms("2026-11-26T13:45:01.123Z [TRACE] x"),
        Some(1_795_700_701_123)
    );
    assert_eq!(
        hclog_unix_ms("2026-11-26T14:45:01.123+0100 [TRACE] x"),
        Some(1_795_700_701_123)
    );
}

/// One Ctrl-C half way through a throttled apply: Terraform sends StopProvider, and within a
/// second no further PATCH reaches ARM, although dozens were queued in the pacer and ten
/// waited in a 30 s retry backoff. State then holds exactly the machines that hold the
/// identity.
#[test]
fn after_one_sigint_no_write_reaches_arm_a_second_after_the_stop_and_state_matches_arm() {
    // Realistic throttling: the first 200 writes go at once, then 10 a second, so the writes
    // after the burst wait in the pacer (and the odd one in a 429's backoff).
    let emulator = throttled_estate(0);
    let mut work =
        Workdir::new(&emulator.configuration(&assignment(&format!("/subscriptions/{SUB}"), "")));
    work.init();
    // Ten machines' first writes fail with a 503 asking to retry in 30 s: at the stop they
    // sit in a retry backoff, and their retries must never go.
    emulator.inject_fault(&json!({
        "kind": "status", "status": 503, "retry_after": 30, "count": 10,
        "method": "PATCH", "path_contains": "/virtualMachines/vm-00"
    }));
    let log_path = work.path().join("terraform-core.log");
    work.env("TF_LOG_CORE", "trace")
        .env("TF_LOG_PATH", &log_path.display().to_string());
    let apply = work.spawn(&["apply", "-auto-approve", "-input=false", "-no-color"]);

    // Interrupt once the burst is spent and writes trickle at the refill rate.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let written = emulator
            .requests()
            .iter()
            .filter(|r| r["method"] == "PATCH" && r["status"] == 200)
            .count();
        if written >= 210 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {written} writes within 90 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (sigint_at, ended_at, output) = interrupt_once(apply);
    assert!(
        output.contains("Stopped before"),
        "the machines not written are reported as stopped:\n{output}"
    );

    // StopProvider's time: Terraform logs that it asks providers to stop, then asks them.
    let core_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let stop_at = stop_requested_at(&core_log).unwrap_or_else(|| {
        eprintln!("no stop line in Terraform's core log; using the SIGINT time");
        sigint_at
    });
    assert!(
        stop_at + 2_000 >= sigint_at && stop_at <= ended_at,
        "the stop ({stop_at}) came with the SIGINT ({sigint_at})"
    );

    let requests = emulator.requests();
    let patches: Vec<&Json> = requests.iter().filter(|r| r["method"] == "PATCH").collect();
    let received = |r: &Json| r["received_unix_ms"].as_u64().expect("received_unix_ms");
    let late: Vec<(u64, &Json)> = patches
        .iter()
        .map(|r| (received(r), *r))
        .filter(|(at, _)| *at > stop_at + STOP_BUDGET_MS)
        .collect();
    let after_stop = patches.iter().filter(|r| received(r) > stop_at).count();
    let last = patches.iter().map(|r| received(r)).max().unwrap_or(0);
    eprintln!(
        "{} PATCHes in all, {after_stop} arrived after the stop, the last {} ms after it; the apply ended {} ms after it",
        patches.len(),
        last as i64 - stop_at as i64,
        ended_at as i64 - stop_at as i64,
    );
    assert!(
        late.is_empty(),
        "{} PATCH(es) reached ARM more than {STOP_BUDGET_MS} ms after StopProvider, the last {} ms after:\n{:#?}",
        late.len(),
        last - stop_at,
        late.iter().take(5).map(|(_, r)| r).collect::<Vec<_>>()
    );
    let retried = patches
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("/virtualMachines/vm-00"))
        })
        .count();
    assert_eq!(
        retried, 10,
        "the writes in a 503 backoff were not retried after the stop"
    );
    assert!(
        ended_at - stop_at < 10_000,
        "the apply ended {} ms after the stop",
        ended_at - stop_at
    );

    let (_, holding) = holding(&emulator, 0);
    assert!(
        (0..10).all(|i| !holding.contains(&vm_id(&format!("vm-{i:03}")).to_ascii_lowercase())),
        "the machines whose writes were refused and never retried are unchanged"
    );
    assert!(
        holding.len() < MACHINES_UPDATE,
        "the stop came before every write: {} hold the identity",
        holding.len()
    );
    let assigned = assigned_in_state(&work);
    let claimed_not_held: Vec<_> = assigned.difference(&holding).collect();
    let held_not_recorded: Vec<_> = holding.difference(&assigned).collect();
    assert!(
        claimed_not_held.is_empty(),
        "state claims machines that do not hold the identity: {claimed_not_held:?}"
    );
    assert!(
        held_not_recorded.is_empty(),
        "machines changed by this apply are missing from state: {held_not_recorded:?}"
    );
}

/// A throttled estate: `small` machines in `rg-first`, `MACHINES_UPDATE` in `rg-app`.
fn throttled_estate(small: usize) -> Emulator {
    let machines: Vec<Json> = (0..MACHINES_UPDATE)
        .map(|i| json!({"name": format!("vm-{i:03}"), "resource_group": "rg-app", "location": "eastus"}))
        .chain((0..small).map(|i| {
            json!({"name": format!("first-{i}"), "resource_group": "rg-first", "location": "eastus"})
        }))
        .collect();
    Emulator::start_with(
        &json!({
            "subscriptions": [{
                "id": SUB,
                "resource_groups": [
                    {"name": "rg-app", "location": "eastus"},
                    {"name": "rg-first", "location": "eastus"}
                ],
                "user_assigned_identities": [{
                    "name": "Built-In-Identity-eastus", "resource_group": "Built-In-Identity-RG", "location": "eastus"
                }],
                "virtual_machines": machines,
            }],
            "realism": {"vm_update_seconds": 0, "principal_replication_seconds": 0}
        }),
        "realistic",
    )
}

const MACHINES_UPDATE: usize = 300;

fn assignment(scope: &str, timeouts: &str) -> String {
    format!(
        r#"resource "mig_identity_assignment" "eastus" {{
  identity_id    = "{identity}"
  scope          = "{scope}"
  resource_types = ["virtualMachines"]
  {timeouts}
}}
"#,
        identity = builtin("eastus"),
    )
}

/// Every machine of the estate's ID, and the ones holding the identity now.
fn holding(emulator: &Emulator, small: usize) -> (Vec<String>, BTreeSet<String>) {
    emulator.set_throttling(false);
    let target = builtin("eastus").to_ascii_lowercase();
    let all: Vec<String> = (0..MACHINES_UPDATE)
        .map(|i| vm_id(&format!("vm-{i:03}")))
        .chain((0..small).map(|i| {
            format!("/subscriptions/{SUB}/resourceGroups/rg-first/providers/Microsoft.Compute/virtualMachines/first-{i}")
        }))
        .collect();
    let holding = all
        .iter()
        .filter(|id| emulator.identity_of(id).1.contains(&target))
        .map(|id| id.to_ascii_lowercase())
        .collect();
    (all, holding)
}

fn assigned_in_state(work: &Workdir) -> BTreeSet<String> {
    let state = work
        .state_resources()
        .remove("mig_identity_assignment.eastus")
        .expect("the assignment is in state");
    strings(&state["assigned_ids"])
}

/// Waits until `count` PATCHes were accepted.
fn wait_for_writes(emulator: &Emulator, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let written = emulator
            .requests()
            .iter()
            .filter(|r| r["method"] == "PATCH" && r["status"] == 200)
            .count();
        if written >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {written} writes within 90 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How an update is cut short.
enum Cut {
    Timeout,
    OneSigint,
}

/// Widening the scope (an update) of a throttled assignment is cut short; state records
/// exactly the machines holding the identity, the next apply finishes, destroy restores.
fn an_update_cut_short_records_exactly_what_changed(cut: Cut) {
    const SMALL: usize = 5;
    let emulator = throttled_estate(SMALL);
    let group = format!("/subscriptions/{SUB}/resourceGroups/rg-first");
    let whole = format!("/subscriptions/{SUB}");
    let work = Workdir::new(&emulator.configuration(&assignment(&group, "")));
    work.init();
    work.apply();
    let widened = match cut {
        Cut::Timeout => assignment(&whole, "timeouts {\n    update = \"4s\"\n  }"),
        Cut::OneSigint => assignment(&whole, ""),
    };
    work.write("main.tf", &emulator.configuration(&widened));
    match cut {
        Cut::Timeout => {
            let failed = work.try_apply();
            assert!(!failed.success, "the update times out");
            assert!(
                failed.all().contains("timeout"),
                "the error names the timeout: {}",
                failed.all()
            );
        }
        Cut::OneSigint => {
            let apply = work.spawn(&["apply", "-auto-approve", "-input=false", "-no-color"]);
            wait_for_writes(&emulator, 210);
            interrupt_once(apply);
        }
    }
    let (all, held) = holding(&emulator, SMALL);
    assert!(
        held.len() > SMALL && held.len() < all.len(),
        "the update was cut part way: {} of {} hold the identity",
        held.len(),
        all.len()
    );
    assert_eq!(
        assigned_in_state(&work),
        held,
        "state records exactly the machines that hold the identity"
    );

    work.write("main.tf", &emulator.configuration(&assignment(&whole, "")));
    work.apply();
    let (all, held) = holding(&emulator, SMALL);
    assert_eq!(held.len(), all.len(), "the next apply finished the job");
    assert!(!work.plan_has_changes());
    work.destroy();
    let (_, held) = holding(&emulator, SMALL);
    assert!(held.is_empty(), "destroy took back everything: {held:?}");
}

#[test]
fn an_update_that_times_out_records_exactly_what_changed_and_the_next_apply_finishes() {
    an_update_cut_short_records_exactly_what_changed(Cut::Timeout);
}

#[test]
fn an_update_stopped_by_one_sigint_records_exactly_what_changed_and_the_next_apply_finishes() {
    an_update_cut_short_records_exactly_what_changed(Cut::OneSigint);
}

/// Two Ctrl-C: Terraform exits at once and warns that data may be lost. Whatever the
/// provider had written is not in state, but no machine loses an identity it held, and the
/// next apply converges.
#[test]
fn after_two_sigints_no_machine_loses_an_identity_and_the_next_apply_converges() {
    let emulator = throttled_estate(0);
    let other = format!(
        "/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app"
    );
    // A machine that held another identity, and one that held ours from someone else.
    emulator.arm_send(
        reqwest::Method::PUT,
        &other,
        "2023-01-31",
        Some(&json!({"location": "eastus"})),
    );
    for (name, identities) in [
        ("vm-000", vec![other.clone()]),
        ("vm-001", vec![builtin("eastus")]),
    ] {
        let map: serde_json::Map<String, Json> = identities
            .iter()
            .map(|id| (id.clone(), json!({})))
            .collect();
        emulator.arm_send(
            reqwest::Method::PATCH,
            &vm_id(name),
            "2024-07-01",
            Some(&json!({"identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": map}})),
        );
    }
    let before: Vec<_> = (0..2)
        .map(|i| emulator.identity_of(&vm_id(&format!("vm-{i:03}"))))
        .collect();
    let work =
        Workdir::new(&emulator.configuration(&assignment(&format!("/subscriptions/{SUB}"), "")));
    work.init();
    emulator.clear_requests();
    let apply = work.spawn(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    wait_for_writes(&emulator, 210);
    for _ in 0..2 {
        send_sigint(&apply);
        std::thread::sleep(Duration::from_millis(100));
    }
    let finished = apply.wait_with_output().expect("terraform apply ends");
    assert!(!finished.status.success(), "a killed apply fails");

    let other_lower = other.to_ascii_lowercase();
    for (i, (kind, identities)) in before.iter().enumerate() {
        let (now_kind, now) = emulator.identity_of(&vm_id(&format!("vm-{i:03}")));
        assert!(
            identities.is_subset(&now),
            "vm-{i:03} kept every identity it held ({kind} {identities:?} -> {now_kind} {now:?})"
        );
    }
    assert!(emulator
        .identity_of(&vm_id("vm-000"))
        .1
        .contains(&other_lower));

    work.apply();
    let (all, held) = holding(&emulator, 0);
    assert_eq!(held.len(), all.len(), "the next apply converged");
    assert!(held.contains(&vm_id("vm-001").to_ascii_lowercase()));
    assert!(!work.plan_has_changes());
}

/// `mig_builtin_identity` under one Ctrl-C: its identity's PUT was answered 503 with a 30 s
/// `Retry-After`, and the create waits in that backoff when Terraform stops the provider. The
/// retry is never sent, the apply ends within a second or two instead of at the end of the
/// backoff, what the first attempt did is read back (nothing), nothing is recorded that does
/// not exist, and the next apply creates the identity and its lock.
#[test]
fn a_builtin_identity_waiting_in_a_retry_backoff_stops_at_once_and_the_next_apply_creates_it() {
    let emulator = Emulator::start(&json!({
        "subscriptions": [{"id": SUB, "regions": ["eastus"]}]
    }));
    let identity = builtin("eastus");
    let mut work = Workdir::new(&emulator.configuration(
        r#"resource "mig_builtin_identity" "eastus" {
  location = "eastus"
}
"#,
    ));
    work.init();
    emulator.inject_fault(&json!({
        "kind": "status", "status": 503, "retry_after": 30, "count": 1,
        "method": "PUT", "path_contains": "/userAssignedIdentities/Built-In-Identity-eastus"
    }));
    let log_path = work.path().join("terraform-core.log");
    work.env("TF_LOG_CORE", "trace")
        .env("TF_LOG_PATH", &log_path.display().to_string());
    let apply = work.spawn(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    let identity_puts = || {
        emulator
            .requests()
            .into_iter()
            .filter(|r| r["method"] == "PUT")
            .filter(|r| {
                r["path"]
                    .as_str()
                    .is_some_and(|p| p.eq_ignore_ascii_case(&identity))
            })
            .collect::<Vec<Json>>()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while identity_puts().is_empty() {
        assert!(Instant::now() < deadline, "the identity's PUT never came");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (sigint_at, ended_at, output) = interrupt_once(apply);
    let core_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let stop_at = stop_requested_at(&core_log).unwrap_or(sigint_at);
    assert!(
        ended_at < stop_at + 5_000,
        "the apply ended {} ms after the stop, not at the end of the 30 s backoff:\n{output}",
        ended_at as i64 - stop_at as i64
    );
    let puts = identity_puts();
    assert_eq!(puts.len(), 1, "the retry was never sent: {puts:#?}");
    assert_eq!(puts[0]["status"], 503);
    assert!(
        emulator.arm_get(&identity, "2023-01-31").is_none(),
        "no identity exists"
    );
    assert!(
        !work
            .state_resources()
            .contains_key("mig_builtin_identity.eastus"),
        "nothing is recorded that does not exist"
    );

    work.apply();
    let created = emulator
        .arm_get(&identity, "2023-01-31")
        .expect("the next apply creates the identity");
    assert!(created["properties"]["principalId"].is_string());
    assert!(
        emulator
            .arm_get(
                &format!("{identity}/providers/Microsoft.Authorization/locks/CanNotDeleteLock-Built-In-Identity-eastus"),
                "2020-05-01"
            )
            .is_some(),
        "and its lock"
    );
    assert!(!work.plan_has_changes());
}

/// `mig_estate_assignment` cut short by its create timeout, over two throttled subscriptions
/// of two regions each: state records, bucket by bucket, exactly the machines that hold their
/// identity; the next apply (a replacement of the tainted object) takes them over and
/// finishes the job without writing them again; destroy gives everything back.
#[test]
fn an_estate_create_that_times_out_records_each_bucket_exactly_and_the_next_apply_finishes() {
    const PER_REGION: usize = 150;
    const SUB2: &str = "00000000-0000-0000-0000-000000000002";
    const REGIONS: [&str; 2] = ["eastus", "westus"];
    let machine = |sub: &str, region: &str, i: usize| {
        format!("/subscriptions/{sub}/resourceGroups/rg-{region}/providers/Microsoft.Compute/virtualMachines/vm-{region}-{i:03}")
    };
    let identity = |sub: &str, region: &str| {
        format!("/subscriptions/{sub}/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-{region}")
    };
    let subscription = |sub: &str| {
        json!({
            "id": sub,
            "regions": REGIONS,
            "resource_groups": [
                {"name": "rg-eastus", "location": "eastus"},
                {"name": "rg-westus", "location": "westus"},
                {"name": "Built-In-Identity-RG", "location": "eastus"}
            ],
            "user_assigned_identities": REGIONS.iter().map(|r| json!({
                "name": format!("Built-In-Identity-{r}"), "resource_group": "Built-In-Identity-RG", "location": r
            })).collect::<Vec<_>>(),
            "virtual_machines": REGIONS.iter().flat_map(|r| (0..PER_REGION).map(move |i| json!({
                "name": format!("vm-{r}-{i:03}"), "resource_group": format!("rg-{r}"), "location": r
            }))).collect::<Vec<_>>(),
        })
    };
    let emulator = Emulator::start_with(
        &json!({
            "subscriptions": [subscription(SUB), subscription(SUB2)],
            "realism": {"vm_update_seconds": 0, "principal_replication_seconds": 0}
        }),
        "realistic",
    );
    let estate = |timeouts: &str| {
        emulator.configuration(&format!(
            "resource \"mig_estate_assignment\" \"e\" {{\n  resource_types = [\"virtualMachines\"]\n  {timeouts}\n}}\n"
        ))
    };
    // (bucket key, machine) of every machine holding its own bucket's identity now.
    let holding = || -> BTreeSet<(String, String)> {
        emulator.set_throttling(false);
        let mut found = BTreeSet::new();
        for sub in [SUB, SUB2] {
            for region in REGIONS {
                let target = identity(sub, region).to_ascii_lowercase();
                for i in 0..PER_REGION {
                    let id = machine(sub, region, i);
                    if emulator.identity_of(&id).1.contains(&target) {
                        found.insert((format!("{sub}/{region}"), id.to_ascii_lowercase()));
                    }
                }
            }
        }
        emulator.set_throttling(true);
        found
    };
    let recorded = |work: &Workdir| -> BTreeSet<(String, String)> {
        let state = work
            .state_resources()
            .remove("mig_estate_assignment.e")
            .expect("the estate is in state");
        let mut found = BTreeSet::new();
        for (key, bucket) in state["buckets"].as_object().unwrap() {
            for id in strings(&bucket["assigned_ids"]) {
                found.insert((key.clone(), id));
            }
        }
        found
    };

    let work = Workdir::new(&estate("timeouts {\n    create = \"4s\"\n  }"));
    work.init();
    let failed = work.try_apply();
    assert!(!failed.success, "the create times out");
    assert!(failed.all().contains("timeout"), "{}", failed.all());
    let held = holding();
    let total = 2 * REGIONS.len() * PER_REGION;
    assert!(
        held.len() > 200 && held.len() < total,
        "the create was cut part way: {} of {total} hold their identity",
        held.len()
    );
    assert_eq!(
        recorded(&work),
        held,
        "state records, bucket by bucket, exactly the machines that hold their identity"
    );

    work.write("main.tf", &estate(""));
    emulator.clear_requests();
    work.apply();
    assert_eq!(holding().len(), total, "the next apply finished the job");
    let rewritten: Vec<String> = emulator
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "PATCH")
        .filter_map(|r| r["path"].as_str().map(str::to_ascii_lowercase))
        .filter(|path| held.iter().any(|(_, id)| id == path))
        .collect();
    assert!(
        rewritten.is_empty(),
        "machines that held their identity were not written again: {rewritten:?}"
    );
    work.run_ok(&["apply", "-refresh-only", "-auto-approve", "-input=false"]);
    assert_eq!(recorded(&work).len(), total, "and they are all owned");
    assert!(!work.plan_has_changes());
    work.destroy();
    assert!(holding().is_empty(), "destroy took back everything");
}
