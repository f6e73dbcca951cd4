//! The estate's slices as `mig_identity_assignment` objects: their private state, and
//! planning and applying them through that resource's typed functions.

use tfplugin::typed::{Applied, Planned};

use super::*;

/// Moves out of `slices` those of the `kept` subscriptions.
pub(super) fn take_kept<V>(
    slices: &mut BTreeMap<String, V>,
    kept: &BTreeMap<String, String>,
) -> BTreeMap<String, V> {
    let keys: Vec<String> = slices
        .keys()
        .filter(|key| kept.contains_key(&subscription_of_key(key).to_ascii_lowercase()))
        .cloned()
        .collect();
    keys.into_iter()
        .filter_map(|key| slices.remove(&key).map(|slice| (key, slice)))
        .collect()
}

/// Each slice's private state (`mig_identity_assignment`'s), by slice key.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Private {
    #[serde(flatten)]
    pub(super) slices: BTreeMap<String, serde_json::Value>,
    /// Set in a plan's private state that Terraform keeps for the plan it makes during apply
    /// (1.16+): the slices here are every slice that plan showed, even when there is none.
    /// Without it, a plan that showed no slice would hand back nothing, as older Terraform
    /// does.
    #[serde(
        rename = "#every_bucket_shown",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub(super) every_slice_shown: bool,
    /// Set in a plan's private state: the slices whose subscription cannot be planned now
    /// (unreadable, read-only, or missing from a listing). Apply hands them back exactly as
    /// recorded, with no call to Azure.
    #[serde(rename = "#kept", default, skip_serializing_if = "BTreeSet::is_empty")]
    pub(super) kept: BTreeSet<String>,
}

impl Private {
    /// The record of the slice `key` (none: the default). One that cannot be read counts
    /// as empty, as `Record::from_bytes` does.
    pub(super) fn of(&self, key: &str) -> Record {
        self.slices
            .get(key)
            .map(|json| Record::from_bytes(&serde_json::to_vec(json).unwrap_or_default()))
            .unwrap_or_default()
    }

    /// Keeps `record` as the slice `key`'s (the default is kept as nothing).
    pub(super) fn set(&mut self, key: &str, record: &Record) {
        if *record == Record::default() {
            return;
        }
        if let Ok(json) = serde_json::to_value(record) {
            self.slices.insert(key.to_string(), json);
        }
    }
}

/// A slice's diagnostics as the estate's: the slice named in the summary, `identity_id`
/// pointing at `identity_ids` (the other arguments have the same names in both).
pub(super) fn slice_diagnostics(key: &str, diagnostics: Diagnostics) -> Diagnostics {
    let mut out = diagnostics;
    for item in &mut out.items {
        item.summary = format!("{key}: {}", item.summary);
        if let Some(path) = &mut item.attribute {
            if path.steps.first() == Some(&PathStep::Attribute("identity_id".into())) {
                *path = AttributePath::root("identity_ids");
                item.detail.push_str(" Or name this subscription and region's identity in `identity_ids` (`{region}` or `{subscription_id}/{region}` keys).");
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// CRUD
// ---------------------------------------------------------------------------------------------

/// One subscription's slices to apply, and what their writes leave to confirm.
#[derive(Default)]
pub(super) struct SubscriptionWork {
    pub(super) slices: Vec<SliceApply>,
    pub(super) later: Arc<Mutex<Vec<Written>>>,
}

pub(super) type SliceApply = std::pin::Pin<
    Box<dyn std::future::Future<Output = (String, Applied<assignment::Model, Record>)> + Send>,
>;

/// What planning the slices produced.
pub(super) struct PlannedSlices {
    pub(super) slices: BTreeMap<String, SliceState>,
    pub(super) private: Private,
    pub(super) diagnostics: Diagnostics,
}

impl EstateAssignment {
    /// Plans every slice `planned` (the estate's arguments) calls for, against `prior` (its
    /// arguments; `None` on create) and `prior_slices` (moved out of it). `first_plan` is
    /// what the first plan of this change answered, when Terraform (1.16+) hands it to the
    /// plan made during apply: each slice gets its own part.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn plan_slices(
        &self,
        clients: &Arc<AzureClients>,
        planned: &Model,
        prior: Option<&Model>,
        mut prior_slices: BTreeMap<String, SliceState>,
        prior_private: &Private,
        first_plan: Option<&Private>,
        store_planned_private: bool,
    ) -> Option<PlannedSlices> {
        let estate = Estate::from(planned)?;
        let mut diagnostics = Diagnostics::default();
        let locations_changed = prior.map_or(&Maybe::Null, |p| &p.locations) != &planned.locations;
        let recorded = recorded_of(&prior_slices);
        let Some(Discovery { mut wanted, kept }) = wanted_slices(
            clients,
            &estate,
            &recorded,
            locations_changed,
            &mut diagnostics,
        )
        .await
        else {
            return Some(PlannedSlices {
                slices: BTreeMap::new(),
                private: Private::default(),
                diagnostics,
            });
        };
        // The slices of subscriptions that cannot be planned now stay exactly as recorded.
        let kept_slices = take_kept(&mut prior_slices, &kept);
        if let Some(first_plan) = first_plan {
            // Planned again during apply (Terraform 1.16+): a slice the first plan did not
            // show (a region that got its first machine since) waits for the next plan, as
            // each slice's new machines do.
            wanted.retain(|key, _| first_plan.slices.contains_key(key));
        }
        self.note_existing_identities(clients, &wanted, &prior_slices)
            .await;
        let plans = each_on_its_own_task(wanted.iter().map(|(key, wanted)| {
            let config = planned.slice_arguments(
                &wanted.scope.to_string(),
                region_of_key(key),
                Maybe::Known(wanted.identity_id.clone()),
            );
            let prior_object = prior_slices.remove(key).map(|slice| {
                prior
                    .expect("prior slices come from a prior state")
                    .slice_object(key, slice)
            });
            let records = (
                prior_private.of(key),
                first_plan.map(|plan| plan.of(key)).unwrap_or_default(),
            );
            let (slices, clients, key) = (self.slices.clone(), clients.clone(), key.clone());
            async move {
                let planned = plan_slice(
                    &slices,
                    &clients,
                    config,
                    prior_object,
                    records,
                    store_planned_private,
                )
                .await;
                (key, planned)
            }
        }))
        .await;
        let mut result = PlannedSlices {
            slices: BTreeMap::new(),
            private: Private::default(),
            diagnostics,
        };
        for (key, planned) in plans {
            result
                .diagnostics
                .extend(slice_diagnostics(&key, planned.diagnostics));
            result.private.set(&key, &planned.private);
            result.slices.insert(key, slice_of(planned.state));
        }
        // Slices that leave (those left once the wanted ones were taken out) are destroyed at
        // apply with what they hold now.
        for key in prior_slices.keys() {
            result.private.set(key, &prior_private.of(key));
        }
        for (key, slice) in kept_slices {
            result.private.set(&key, &prior_private.of(&key));
            result.private.kept.insert(key.clone());
            result.slices.insert(key, slice);
        }
        Some(result)
    }

    /// Each slice checks at plan that a new identity exists, with one read each. For an
    /// estate that is hundreds of reads per plan: list instead each resource group holding the
    /// new identities (one read per page) and note those found, so a slice reads only an
    /// identity that is missing, to say so.
    pub(super) async fn note_existing_identities(
        &self,
        clients: &AzureClients,
        wanted: &BTreeMap<String, Slice>,
        prior_slices: &BTreeMap<String, SliceState>,
    ) {
        let handover = self.data.handover();
        let mut groups: BTreeMap<String, Scope> = BTreeMap::new();
        for (key, slice) in wanted {
            let unchanged = prior_slices.get(key).is_some_and(|prior| {
                prior
                    .identity_id
                    .as_str()
                    .is_some_and(|id| id.eq_ignore_ascii_case(&slice.identity_id))
            });
            if unchanged || handover.is_planned_identity(&slice.identity_id) {
                continue;
            }
            if let Ok(id) = ids::UserAssignedIdentityId::parse(&slice.identity_id) {
                let group = format!(
                    "/subscriptions/{}/resourceGroups/{}",
                    id.subscription_id(),
                    id.resource_group()
                );
                if let Ok(scope) = Scope::parse(&group) {
                    groups.insert(group.to_ascii_lowercase(), scope);
                }
            }
        }
        let listings = join_all(groups.values().map(|group| clients.identities.list(group))).await;
        for identity in listings.into_iter().flatten().flatten() {
            handover.note_existing_identity(&identity.id);
        }
    }

    /// Applies one slice: `planned` none destroys it. What its writes leave to confirm goes
    /// to `later`.
    pub(super) fn apply_slice(
        &self,
        clients: &Arc<AzureClients>,
        key: &str,
        prior: Option<assignment::Model>,
        planned: Option<assignment::Model>,
        record: Record,
        later: Arc<Mutex<Vec<Written>>>,
    ) -> SliceApply {
        let (slices, clients, key) = (self.slices.clone(), clients.clone(), key.to_string());
        Box::pin(async move {
            let apply = async {
                match (prior, planned) {
                    (Some(prior), None) => slices.destroy_model(&clients, prior, record).await,
                    (None, None) => Applied::new(None, Record::default()),
                    (prior, Some(planned)) => {
                        slices.apply_model(&clients, prior, planned, record).await
                    }
                }
            };
            (key, assignment::settle_later(later, apply).await)
        })
    }

    /// Waits, once per scope, until every machine the slices wrote is settled (one listing
    /// per round for a subscription, however many of its slices wrote).
    pub(super) async fn settle(
        &self,
        clients: &Arc<AzureClients>,
        written: Vec<Written>,
        halt: &Halt,
    ) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        let mut by_scope: BTreeMap<(String, Vec<MachineKind>), Written> = BTreeMap::new();
        for entry in written {
            let key = (
                entry.scope.to_string().to_ascii_lowercase(),
                entry.kinds.clone(),
            );
            match by_scope.get_mut(&key) {
                Some(existing) => existing.machines.extend(entry.machines),
                None => {
                    by_scope.insert(key, entry);
                }
            }
        }
        let waits = join_all(by_scope.values().map(|entry| {
            let clients = clients.clone();
            async move {
                let mut found = Diagnostics::default();
                assignment::settle_written(
                    &clients,
                    &entry.scope,
                    &entry.kinds,
                    &entry.machines,
                    halt.token(),
                    &mut found,
                )
                .await;
                found
            }
        }))
        .await;
        for found in waits {
            diagnostics.extend(found);
        }
        diagnostics
    }
}

/// Plans one slice as `mig_identity_assignment` plans an object Terraform proposes with
/// `config` and the computed values of before (unknown on create).
async fn plan_slice(
    slices: &IdentityAssignment,
    clients: &AzureClients,
    config: assignment::Model,
    prior: Option<assignment::Model>,
    records: (Record, Record),
    store_planned_private: bool,
) -> Planned<assignment::Model, Record> {
    let proposed = match &prior {
        Some(prior) => assignment::Model {
            id: prior.id.clone(),
            assigned_ids: prior.assigned_ids.clone(),
            compliant_ids: prior.compliant_ids.clone(),
            skipped: prior.skipped.clone(),
            noncompliant_ids: prior.noncompliant_ids.clone(),
            ..config.clone()
        },
        None => config.clone().with_unknown_outcome(),
    }
    .with_id();
    let Some(settings) = proposed.settings() else {
        return Planned::new(proposed.with_unknown_outcome(), records.0);
    };
    slices
        .plan_model(
            clients,
            &config,
            prior.as_ref(),
            proposed,
            settings,
            records,
            store_planned_private,
        )
        .await
}
