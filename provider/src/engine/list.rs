//! The list step: the machines an operation needs to see, from one shared listing per scope,
//! plus the machines it holds that the listing leaves out, read one by one.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;

use crate::azure::compute::{Machine, MachineKind};
use crate::azure::ids;
use crate::engine::ownership::{self, Held, Settings};
use crate::engine::record::Unreadable;
use crate::engine::store::{MachineStore, CONCURRENCY};

/// The machines `settings` reach, plus those `previous` reached and those `held`: owned
/// machines that left the scope (or a removed resource type or region) must be seen to be
/// released. Machines of other regions are left out of the copy: a listing is shared by
/// every object of the subscription (an estate's slices, one per region), and each keeps
/// only its own region's machines.
pub async fn inventory(
    store: &dyn MachineStore,
    settings: &Settings,
    previous: Option<&Settings>,
    held: &Held,
    max_age: Duration,
) -> Result<(Vec<Machine>, Unreadable), String> {
    let regions: Option<BTreeSet<String>> = match (&settings.locations, previous) {
        (None, _)
        | (
            _,
            Some(Settings {
                locations: None, ..
            }),
        ) => None,
        (Some(now), None) => Some(now.clone()),
        (
            Some(now),
            Some(Settings {
                locations: Some(before),
                ..
            }),
        ) => Some(now.union(before).cloned().collect()),
    };
    let wanted = &|machine: &Machine| {
        regions.as_ref().is_none_or(|regions| {
            ids::normalized_location(&machine.location)
                .is_some_and(|region| regions.contains(region.as_ref()))
        }) || held.identity_on(&machine.id).is_some()
    };
    let now = tokio::time::Instant::now();
    let not_before = now.checked_sub(max_age).unwrap_or(now);
    let mut kinds = settings.kinds.clone();
    if let Some(previous) = previous {
        kinds.extend(previous.kinds.iter().copied());
    }
    kinds.sort();
    kinds.dedup();
    let mut scopes = vec![settings.scope.clone()];
    if let Some(previous) = previous {
        if !ownership::scope_contains(&settings.scope, &format!("{}/", previous.scope))
            && previous.scope != settings.scope
        {
            scopes.push(previous.scope.clone());
        }
    }
    let mut machines = Vec::new();
    for scope in &scopes {
        let listing = store
            .list(scope, &kinds, not_before, wanted)
            .await
            .map_err(|e| e.to_string())?;
        machines.extend(listing);
    }
    let (found, unreadable) = unlisted_held(store, &machines, held).await;
    machines.extend(found);
    Ok((machines, unreadable))
}

/// The machines `held` that `listed` lacks, read one by one: a listing shows only what
/// the principal may read, and leaves out machines of a scope or kind no longer
/// selected. Only a 404 on the machine's own ID says it is gone; one that cannot be read
/// either is returned as unreadable, with the reason, and stays recorded.
pub(crate) async fn unlisted_held(
    store: &dyn MachineStore,
    listed: &[Machine],
    held: &Held,
) -> (Vec<Machine>, Unreadable) {
    let seen: BTreeSet<String> = listed.iter().map(|m| m.id.to_ascii_lowercase()).collect();
    // Owned, not borrowed: a stream of borrowed items trips the compiler's proof that the
    // plan's future is `Send`.
    let missing: Vec<String> = held
        .iter()
        .map(|(machine, _)| machine)
        .filter(|machine| !seen.contains(*machine))
        .cloned()
        .collect();
    if missing.is_empty() {
        return (Vec::new(), Unreadable::new());
    }
    tracing::debug!(
        count = missing.len(),
        "machines holding an identity from us are missing from the listing; reading them"
    );
    let answers: Vec<(String, Result<Option<Machine>, String>)> = futures::stream::iter(missing)
        .map(|machine| async move {
            let kind = if machine.contains("/virtualmachinescalesets/") {
                MachineKind::ScaleSet
            } else {
                MachineKind::VirtualMachine
            };
            let answer = store
                .read(&machine, kind, None)
                .await
                .map_err(|e| e.to_string());
            (machine, answer)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut found = Vec::new();
    let mut unreadable = Unreadable::new();
    for (machine, answer) in answers {
        match answer {
            Ok(Some(read)) => found.push(read),
            Ok(None) => {
                tracing::info!(machine = %machine, "a machine that held our identity is gone (404)")
            }
            Err(error) => {
                unreadable.insert(machine, error);
            }
        }
    }
    (found, unreadable)
}
