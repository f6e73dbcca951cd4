//! The estate's slices as `mig_identity_assignment` objects: their arguments and state, their
//! private state, and planning and applying them.

use super::*;

// ---------------------------------------------------------------------------------------------
// Slices as `mig_identity_assignment` objects
// ---------------------------------------------------------------------------------------------

/// A slice's `mig_identity_assignment` arguments: the estate's shared ones, its scope, its
/// region and its identity.
pub(super) fn slice_arguments(
    estate: &Value,
    scope: &str,
    region: &str,
    identity_id: Value,
) -> Value {
    let mut fields = BTreeMap::from([
        ("identity_id".to_string(), identity_id),
        ("scope".to_string(), Value::string(scope)),
    ]);
    for name in SHARED_ARGUMENTS {
        fields.insert(name.to_string(), estate.get(name).clone());
    }
    fields.insert("locations".to_string(), Value::string_set([region]));
    Value::Object(fields)
}

/// A slice of the estate's state (or plan) as the `mig_identity_assignment` object it is.
/// The slice's machine lists move into the object: an estate's lists hold up to every
/// machine it covers (100,000 and more), and each copy costs as much memory as the state
/// file.
pub(super) fn slice_object(estate: &Value, key: &str, mut slice: Value) -> Value {
    let scope = slice.get("scope").as_str().unwrap_or_default().to_string();
    let identity = slice.take("identity_id");
    let id = match identity.as_str() {
        Some(identity) => Value::string(assignment::resource_id(&scope, identity)),
        None => Value::unknown(),
    };
    let mut object = slice_arguments(estate, &scope, region_of_key(key), identity);
    if let Value::Object(fields) = &mut object {
        fields.insert("id".to_string(), id);
        for name in OUTCOME_ATTRIBUTES {
            fields.insert(name.to_string(), slice.take(name));
        }
    }
    object
}

/// The estate's view of a `mig_identity_assignment` object (its lists move, as above).
pub(super) fn slice_of(mut object: Value) -> Value {
    let fields = ["identity_id", "scope"]
        .iter()
        .chain(OUTCOME_ATTRIBUTES.iter())
        .map(|name| (name.to_string(), object.take(name)))
        .collect();
    Value::Object(fields)
}

/// What Terraform's config holds for a slice object: its arguments, computed values null.
pub(super) fn config_of(object: &Value) -> Value {
    match object.as_object() {
        Some(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| {
                    let computed = name == "id" || OUTCOME_ATTRIBUTES.contains(&name.as_str());
                    let value = if computed { Value::Null } else { value.clone() };
                    (name.clone(), value)
                })
                .collect(),
        ),
        None => Value::Null,
    }
}

/// Moves the slices out of the estate's state (or plan), which keeps its arguments.
pub(super) fn take_slices(resource: &mut Value) -> BTreeMap<String, Value> {
    match resource.take("buckets") {
        Value::Map(slices) => slices,
        _ => BTreeMap::new(),
    }
}

/// Moves out of `slices` those of the `kept` subscriptions.
pub(super) fn take_kept(
    slices: &mut BTreeMap<String, Value>,
    kept: &BTreeMap<String, String>,
) -> BTreeMap<String, Value> {
    let keys: Vec<String> = slices
        .keys()
        .filter(|key| kept.contains_key(&subscription_of_key(key).to_ascii_lowercase()))
        .cloned()
        .collect();
    keys.into_iter()
        .filter_map(|key| slices.remove(&key).map(|slice| (key, slice)))
        .collect()
}

pub(super) fn estate_id(resource: &Value) -> Value {
    match resource.get("scope") {
        Value::String(scope) => Value::string(arguments::trim_arm_id(scope)),
        Value::Null => Value::string(EVERY_VISIBLE_SUBSCRIPTION),
        _ => Value::unknown(),
    }
}

/// Each slice's private state (`mig_identity_assignment`'s), by slice key.
#[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub(super) struct Private {
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
    pub(super) fn from_bytes(bytes: &[u8]) -> Private {
        model::private_from_bytes(bytes)
    }

    pub(super) fn of(&self, key: &str) -> Vec<u8> {
        self.slices
            .get(key)
            .map(|json| serde_json::to_vec(json).expect("private state serializes"))
            .unwrap_or_default()
    }

    pub(super) fn set(&mut self, key: &str, bytes: &[u8]) {
        if let Ok(json) = serde_json::from_slice(bytes) {
            self.slices.insert(key.to_string(), json);
        }
    }

    pub(super) fn to_bytes(&self) -> Vec<u8> {
        model::private_to_bytes(self)
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

pub(super) type SliceApply =
    std::pin::Pin<Box<dyn std::future::Future<Output = (String, ApplyResponse)> + Send>>;

/// What planning the slices produced.
pub(super) struct PlannedSlices {
    pub(super) slices: BTreeMap<String, Value>,
    pub(super) private: Private,
    pub(super) diagnostics: Diagnostics,
}

impl EstateAssignment {
    /// Plans every slice `planned` (the estate's arguments) calls for, against `prior` (its
    /// arguments) and `prior_slices` (moved out of it). `first_plan` is what the first plan
    /// of this change answered, when Terraform (1.16+) hands it to the plan made during
    /// apply: each slice gets its own part.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn plan_slices(
        &self,
        clients: &AzureClients,
        planned: &Value,
        prior: &Value,
        mut prior_slices: BTreeMap<String, Value>,
        prior_private: &Private,
        first_plan: Option<&Private>,
        client_capabilities: &ClientCapabilities,
    ) -> Option<PlannedSlices> {
        let estate = Estate::from(planned)?;
        let mut diagnostics = Diagnostics::default();
        let locations_changed = prior.get("locations") != planned.get("locations");
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
            let prior_slice = prior_slices.remove(key);
            let arguments = slice_arguments(
                planned,
                &wanted.scope.to_string(),
                region_of_key(key),
                Value::string(&wanted.identity_id),
            );
            let prior_object = prior_slice.map_or(Value::Null, |b| slice_object(prior, key, b));
            // As Terraform proposes it: the arguments, and the computed values of before (unknown
            // on create); the slice's plan decides them.
            let mut proposed = arguments.clone();
            if let Value::Object(fields) = &mut proposed {
                for name in OUTCOME_ATTRIBUTES.iter().chain(["id"].iter()) {
                    let value = if prior_object.is_null() {
                        Value::unknown()
                    } else {
                        prior_object.get(name).clone()
                    };
                    fields.insert(name.to_string(), value);
                }
            }
            let request = PlanRequest {
                prior_state: prior_object,
                proposed_new_state: proposed,
                config: arguments,
                prior_private: prior_private.of(key),
                planned_private: first_plan.map(|plan| plan.of(key)).unwrap_or_default(),
                client_capabilities: *client_capabilities,
                ..PlanRequest::default()
            };
            let slices = self.slices.clone();
            let key = key.clone();
            async move { (key, slices.plan(request).await) }
        }))
        .await;
        let mut result = PlannedSlices {
            slices: BTreeMap::new(),
            private: Private::default(),
            diagnostics,
        };
        for (key, response) in plans {
            result
                .diagnostics
                .extend(slice_diagnostics(&key, response.diagnostics));
            result.private.set(&key, &response.planned_private);
            result.slices.insert(key, slice_of(response.planned_state));
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
        prior_slices: &BTreeMap<String, Value>,
    ) {
        let handover = self.data.handover();
        let mut groups: BTreeMap<String, Scope> = BTreeMap::new();
        for (key, slice) in wanted {
            let unchanged = prior_slices.get(key).is_some_and(|prior| {
                prior
                    .get("identity_id")
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

    /// Applies one slice: `planned` null destroys it. What its writes leave to confirm goes
    /// to `later`.
    pub(super) fn apply_slice(
        &self,
        key: &str,
        prior: Value,
        planned: Value,
        planned_private: Vec<u8>,
        later: Arc<Mutex<Vec<Written>>>,
    ) -> SliceApply {
        let request = ApplyRequest {
            config: config_of(&planned),
            prior_state: prior,
            planned_state: planned,
            planned_private,
            planned_identity: None,
        };
        let slices = self.slices.clone();
        let key = key.to_string();
        Box::pin(async move {
            let response = assignment::settle_later(later, slices.apply(request)).await;
            (key, response)
        })
    }

    /// Waits, once per scope, until every machine the slices wrote is settled (one listing
    /// per round for a subscription, however many of its slices wrote).
    pub(super) async fn settle(&self, written: Vec<Written>, halt: &Halt) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        let Ok(clients) = self.data.clients() else {
            return diagnostics;
        };
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
