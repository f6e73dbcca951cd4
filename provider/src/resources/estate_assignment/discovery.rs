//! The estate's discovery: which subscriptions it covers, which of them can be planned, and
//! the slices (subscription and region) the machines call for, each with its identity.

use super::*;

// ---------------------------------------------------------------------------------------------
// The estate: which subscriptions, which slices, which identity each
// ---------------------------------------------------------------------------------------------

/// What the estate's arguments say, once they are known.
pub(super) struct Estate {
    pub(super) scope: Option<String>,
    /// Normalised `identity_ids` keys (`{subscription}/{region}` or `{region}`) to identities;
    /// `None` for the policy's naming.
    pub(super) identity_ids: Option<BTreeMap<String, String>>,
    pub(super) locations: Option<BTreeSet<String>>,
    pub(super) kinds: Vec<MachineKind>,
}

impl Estate {
    /// `None` while an argument it depends on is unknown.
    pub(super) fn from(resource: &Model) -> Option<Estate> {
        let scope = match &resource.scope {
            Maybe::Unknown => return None,
            scope => scope
                .as_str()
                .map(|s| arguments::trim_arm_id(s).to_string()),
        };
        let identity_ids = match &resource.identity_ids {
            Maybe::Null => None,
            Maybe::Unknown => return None,
            Maybe::Known(map) => Some(
                map.iter()
                    .map(|(key, id)| {
                        let id = arguments::trim_arm_id(id.as_str()?).to_string();
                        Some((normalize_key(key), id))
                    })
                    .collect::<Option<BTreeMap<_, _>>>()?,
            ),
        };
        let known = assignment::known_strings;
        let locations = known(&resource.locations)?.map(|list| {
            list.iter()
                .filter_map(|l| ids::normalize_location(l).ok())
                .collect()
        });
        let mut kinds = match known(&resource.resource_types)? {
            Some(list) => list
                .iter()
                .filter_map(|k| arguments::parse_machine_kind(k))
                .collect(),
            None => vec![MachineKind::VirtualMachine, MachineKind::ScaleSet],
        };
        // Sorted as `mig_identity_assignment` sorts them: listings are shared by scope and kinds.
        kinds.sort();
        kinds.dedup();
        Some(Estate {
            scope,
            identity_ids,
            locations,
            kinds,
        })
    }

    /// The identity the machines of `subscription` in `region` get, if any.
    pub(super) fn identity_for(&self, subscription: &str, region: &str) -> Option<String> {
        match &self.identity_ids {
            None => SubscriptionId::parse_guid(subscription)
                .ok()
                .map(|subscription| ids::builtin_identity_id(&subscription, region).to_string()),
            Some(map) => map
                .get(&slice::key(subscription, region))
                .or_else(|| map.get(region))
                .cloned(),
        }
    }
}

pub(super) fn normalize_key(key: &str) -> String {
    match key.split_once('/') {
        Some((subscription, region)) => slice::key(subscription, region),
        None => ids::normalize_location(key).unwrap_or_else(|_| key.to_string()),
    }
}

/// How one subscription's slices fare in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Standing {
    /// Its machines are listed and its slices planned.
    Planned,
    /// Its slices keep exactly what they recorded, with no write to it, for this cause.
    Kept(String),
    /// Its slices are released: the configuration leaves it out, or the management group
    /// API shows it is not below the group.
    Released,
}

/// The standing of a subscription the estate's scope may cover: `found` is what the
/// listing of the scope's subscriptions said of it (`None`: not in it), `confirmed` whether
/// that listing is the management group API's (a group's descendants), which alone can say
/// that a subscription left the scope. `GET /subscriptions` shows only what the principal may
/// read, and a subscription can be missing from one answer: absence there releases nothing.
pub(super) fn standing(found: Option<&SubscriptionInfo>, confirmed: bool) -> Standing {
    match found {
        Some(subscription) if subscription.refuses_writes() => Standing::Kept(format!(
            "its state is `{}`, in which ARM refuses writes (re-enable it, or leave it out of `scope`)",
            subscription.state.as_deref().unwrap_or_default()
        )),
        Some(_) => Standing::Planned,
        None if confirmed => Standing::Released,
        None => Standing::Kept(
            "it is missing from the subscriptions the principal can see (GET /subscriptions): read rights narrowed, or a gap in ARM's listing (check the principal's roles on it)".to_string(),
        ),
    }
}

/// Whether a failed listing of a subscription's machines means that it cannot be read now
/// (access narrowed, the subscription moved, cancelled or disabled) rather than a passing
/// failure: its slices are then kept as recorded, not the plan failed.
pub(super) fn unreadable(error: &ArmError) -> bool {
    matches!(error.status, 401 | 403 | 404 | 409)
}

/// What the estate covers now: the scopes to list and plan, and the subscriptions whose
/// slices keep what they recorded (with why).
#[derive(Default)]
pub(super) struct Covered {
    pub(super) scopes: Vec<Scope>,
    pub(super) kept: BTreeMap<String, String>,
}

/// The scopes whose machines the estate covers (one per subscription, or the resource
/// group). `recorded` are the subscriptions the state holds slices of: those neither
/// covered nor confirmed gone are kept.
pub(super) async fn covered_scopes(
    clients: &AzureClients,
    scope: Option<&str>,
    recorded: &Recorded,
    diagnostics: &mut Diagnostics,
) -> Option<Covered> {
    let (found, confirmed) = match scope {
        Some(text) if text.to_ascii_lowercase().starts_with("/subscriptions/") => {
            let scope = match Scope::parse(text) {
                Ok(scope) => scope,
                Err(reason) => {
                    diagnostics.error_at(AttributePath::root("scope"), "Invalid scope", &reason);
                    return None;
                }
            };
            // The configuration names it: only its state can keep it from being planned
            // (not known when it cannot be read: its listing says).
            let subscription = scope.subscription_id().to_ascii_lowercase();
            let state = clients.management_groups.subscription(&subscription).await;
            let mut covered = Covered::default();
            match state {
                Ok(Some(info)) if info.refuses_writes() => {
                    if let Standing::Kept(cause) = standing(Some(&info), true) {
                        covered.kept.insert(subscription, cause);
                    }
                }
                _ => covered.scopes.push(scope),
            }
            return Some(covered);
        }
        Some(group) => (
            clients
                .management_groups
                .subscriptions_under(management_groups::group_name(group))
                .await,
            true,
        ),
        None => (
            clients.management_groups.visible_subscriptions().await,
            false,
        ),
    };
    let subscriptions = match found {
        Ok(subscriptions) => subscriptions,
        Err(error) => {
            diagnostics.error_at(
                AttributePath::root("scope"),
                "Cannot list the subscriptions of the estate",
                &error.to_string(),
            );
            return None;
        }
    };
    let mut covered = Covered::default();
    for subscription in &subscriptions {
        match standing(Some(subscription), confirmed) {
            Standing::Planned => covered
                .scopes
                .push(Scope::subscription(&subscription.subscription_id)),
            Standing::Kept(cause) => {
                covered
                    .kept
                    .insert(subscription.subscription_id.clone(), cause);
            }
            Standing::Released => {}
        }
    }
    for subscription in recorded.keys() {
        if subscriptions
            .iter()
            .any(|s| s.subscription_id.eq_ignore_ascii_case(subscription))
        {
            continue;
        }
        if let Standing::Kept(cause) = standing(None, confirmed) {
            covered.kept.insert(subscription.clone(), cause);
        }
    }
    Some(covered)
}

/// The warning for subscriptions whose slices keep what they recorded; `None` when there are
/// none.
pub(super) fn kept_warning(kept: &BTreeMap<String, String>, recorded: &Recorded) -> Option<String> {
    if kept.is_empty() {
        return None;
    }
    let lines: Vec<String> = kept
        .iter()
        .map(|(subscription, cause)| {
            let slices = if recorded.contains_key(subscription) {
                "its buckets keep what they recorded"
            } else {
                "it has no bucket yet"
            };
            format!("{subscription}: {cause}; {slices}")
        })
        .collect();
    Some(format!(
        "These subscriptions are not planned this time, and nothing is written to them: {}. The rest of the estate is planned as usual, and the next plan picks them up once they can be read and written again. A bucket is released only when the configuration leaves its subscription out, or the management group API shows that it left the group of `scope`.",
        lines.join("; ")
    ))
}

/// An error at `locations` for each region that no subscription of the estate has (a typo
/// would otherwise match no machine, silently).
pub(super) async fn check_regions_exist(
    clients: &AzureClients,
    scopes: &[Scope],
    locations: &BTreeSet<String>,
) -> Diagnostics {
    let subscriptions: BTreeSet<String> = scopes
        .iter()
        .map(|scope| scope.subscription_id().to_ascii_lowercase())
        .collect();
    let mut known = BTreeSet::new();
    for regions in join_all(
        subscriptions
            .iter()
            .map(|s| clients.subscriptions.regions(s)),
    )
    .await
    {
        match regions {
            Ok(regions) => known.extend(regions.iter().cloned()),
            // Not checkable: the regions are taken as given.
            Err(error) => {
                tracing::debug!(%error, "cannot list a subscription's regions; not checking them");
                return Diagnostics::default();
            }
        }
    }
    let mut diagnostics = Diagnostics::default();
    for region in locations.difference(&known) {
        diagnostics.error_at(
            AttributePath::root("locations"),
            "Unknown region",
            &format!(
                "No subscription of the estate has a region `{region}`. Regions they have: {}.",
                known.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
    }
    diagnostics
}

/// What discovery found: the slices the machines call for, and the subscriptions whose
/// slices keep what they recorded (subscription to cause).
pub(super) struct Discovery {
    pub(super) wanted: BTreeMap<String, Slice>,
    pub(super) kept: BTreeMap<String, String>,
}

/// The subscriptions (lower case) the state holds slices of, each with the scopes its
/// slices cover.
pub(super) type Recorded = BTreeMap<String, BTreeSet<String>>;

pub(super) fn recorded_of<'a>(
    slices: impl IntoIterator<Item = (&'a String, &'a SliceState)>,
) -> Recorded {
    let mut recorded = Recorded::new();
    for (key, slice) in slices {
        let scopes = recorded
            .entry(subscription_of_key(key).to_ascii_lowercase())
            .or_default();
        if let Some(scope) = slice.scope.as_str() {
            scopes.insert(scope.to_string());
        }
    }
    recorded
}

/// The slices the machines call for now: every subscription and region (within
/// `locations`) holding a machine of the estate's kinds, with its identity. Subscriptions and
/// regions without an identity in `identity_ids` are reported in `diagnostics`, and so are
/// subscriptions that cannot be planned now (kept): `recorded` are those the state holds
/// slices of.
pub(super) async fn wanted_slices(
    clients: &AzureClients,
    estate: &Estate,
    recorded: &Recorded,
    check_locations: bool,
    diagnostics: &mut Diagnostics,
) -> Option<Discovery> {
    let Covered { scopes, mut kept } =
        covered_scopes(clients, estate.scope.as_deref(), recorded, diagnostics).await?;
    if check_locations {
        if let Some(locations) = &estate.locations {
            diagnostics.extend(check_regions_exist(clients, &scopes, locations).await);
            if diagnostics.has_errors() {
                return None;
            }
        }
    }
    // The slices that leave give back what they attached, which needs their machines: a
    // subscription that left but cannot be read is kept, not left to fail every apply.
    let leaving: Vec<Scope> = recorded
        .iter()
        .filter(|(subscription, _)| {
            !kept.contains_key(*subscription)
                && !scopes
                    .iter()
                    .any(|scope| scope.subscription_id().eq_ignore_ascii_case(subscription))
        })
        .flat_map(|(_, scopes)| scopes.iter().filter_map(|scope| Scope::parse(scope).ok()))
        .collect();
    let now = tokio::time::Instant::now();
    let not_before = now.checked_sub(DISCOVERY_MAX_AGE).unwrap_or(now);
    let listings = join_all(
        scopes
            .iter()
            .map(|scope| (scope, false))
            .chain(leaving.iter().map(|scope| (scope, true)))
            .map(|(scope, leaves)| async move {
                // Where the machines are does not change with our writes: the listing as ARM
                // gave it.
                let listing = clients
                    .compute
                    .shared_listing(scope, &estate.kinds, not_before)
                    .await
                    .map(|(machines, _)| machines);
                (scope, leaves, listing)
            }),
    )
    .await;
    let mut wanted = BTreeMap::new();
    let mut without_identity = Vec::new();
    for (scope, leaves, listing) in listings {
        let machines = match listing {
            Ok(_) if leaves => continue,
            Ok(machines) => machines,
            Err(error) if unreadable(&error) && leaves => {
                tracing::warn!(%scope, %error, "a subscription that left cannot be read; its slices are kept");
                kept.insert(
                    scope.subscription_id().to_ascii_lowercase(),
                    format!("it left the scope, but its machines cannot be listed to give back what its buckets attached ({scope}: {error}; give the principal read access to it)"),
                );
                continue;
            }
            Err(error) if unreadable(&error) => {
                tracing::warn!(%scope, %error, "cannot list a subscription's machines; its slices are kept");
                kept.insert(
                    scope.subscription_id().to_ascii_lowercase(),
                    format!("its machines cannot be listed ({scope}: {error}; give the principal read access to it, or leave it out of `scope`)"),
                );
                continue;
            }
            Err(error) => {
                diagnostics.error_at(
                    AttributePath::root("scope"),
                    "Cannot list the machines of the estate",
                    &format!("{scope}: {error}"),
                );
                return None;
            }
        };
        let regions: BTreeSet<std::borrow::Cow<str>> = machines
            .iter()
            .filter_map(|m| ids::normalized_location(&m.location))
            .filter(|region| {
                estate
                    .locations
                    .as_ref()
                    .is_none_or(|l| l.contains(region.as_ref()))
            })
            .collect();
        let subscription = scope.subscription_id().to_ascii_lowercase();
        for region in regions {
            let key = slice::key(&subscription, &region);
            match estate.identity_for(&subscription, &region) {
                Some(identity_id) => {
                    wanted.insert(
                        key,
                        Slice {
                            scope: scope.clone(),
                            identity_id,
                        },
                    );
                }
                None => without_identity.push(key),
            }
        }
    }
    if !without_identity.is_empty() {
        diagnostics.warning_at(
            AttributePath::root("identity_ids"),
            "Machines with no identity named for their region",
            &format!(
                "`identity_ids` names no identity for these subscriptions and regions, so their machines are left alone: {}. Add `{{region}}` or `{{subscription_id}}/{{region}}` keys for them.",
                without_identity.join(", ")
            ),
        );
    }
    if let Some(detail) = kept_warning(&kept, recorded) {
        diagnostics.warning_at(
            AttributePath::root("scope"),
            "Subscriptions kept as recorded",
            &detail,
        );
    }
    Some(Discovery { wanted, kept })
}
