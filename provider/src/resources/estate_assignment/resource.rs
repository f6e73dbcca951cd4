//! The Terraform resource `mig_estate_assignment` on the typed trait ([`tfplugin::typed`]):
//! plan, apply, read and import, each slice through `mig_identity_assignment`'s typed
//! functions.

use async_trait::async_trait;
use serde::Deserialize;
use tfplugin::typed::{
    Applied, Create, Existing, ImportKey, Imported, Plan, Planned, TypedResource, Update,
};

use super::*;

/// A value of [`identity_schema`].
#[derive(Debug, Deserialize)]
struct IdentityModel {
    scope: Option<String>,
}

#[async_trait]
impl TypedResource for EstateAssignment {
    type Data = ProviderData;
    type Model = Model;
    type Private = Private;
    const TYPE_NAME: &'static str = TYPE_NAME;

    fn data(&self) -> &ProviderData {
        &self.data
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(identity_schema())
    }

    fn identity_of(&self, state: &Model) -> Option<Value> {
        identity_of(state)
    }

    fn validate(&self, config: &Model) -> Diagnostics {
        validate_arguments(config)
    }

    /// Each slice's destroy plan, as a `mig_identity_assignment`'s (an estate's destroy is
    /// its slices' destroys): its warnings, and the record its apply gets in `private`.
    fn plan_destroy(&self, prior: Option<&Model>, private: &mut Private) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        let Some(prior) = prior else {
            return diagnostics;
        };
        let Maybe::Known(slices) = &prior.buckets else {
            return diagnostics;
        };
        for (key, slice) in slices {
            let object = prior.slice_object(key, slice.clone());
            let mut record = private.of(key);
            diagnostics.extend(slice_diagnostics(
                key,
                assignment::plan_destroy(
                    self.data.handover(),
                    object.settings().as_ref(),
                    &object.recorded(),
                    &mut record,
                ),
            ));
            private.set(key, &record);
        }
        diagnostics
    }

    async fn plan(
        &self,
        clients: Option<&Arc<AzureClients>>,
        request: Plan<Model, Private>,
    ) -> Planned<Model, Private> {
        let Some(clients) = clients else {
            let mut response = Planned::new(request.proposed, request.prior_private);
            response.diagnostics = self.data.clients().err().unwrap_or_default();
            return response;
        };
        // Every slice is planned afresh: the slices of before move out of the prior state
        // (the proposal carries them too, and is dropped with them).
        let mut prior = request.prior;
        let prior_slices = prior.as_mut().map(Model::take_slices).unwrap_or_default();
        let mut planned = request.proposed;
        planned.buckets = Maybe::Null;
        planned.id = planned.estate_id();
        let first_plan = request.first_plan;
        let store_planned_private = request.client_capabilities.store_planned_private;
        match self
            .plan_slices(
                clients,
                &planned,
                prior.as_ref(),
                prior_slices,
                &request.prior_private,
                first_plan.every_slice_shown.then_some(&first_plan),
                store_planned_private,
            )
            .await
        {
            // Known at apply only: the slices are planned then.
            None => {
                planned.buckets = Maybe::Unknown;
                Planned::new(planned, request.prior_private)
            }
            Some(result) => {
                planned.buckets = Maybe::Known(result.slices);
                let mut private = result.private;
                private.every_slice_shown = store_planned_private;
                let mut response = Planned::new(planned, private);
                response.diagnostics = result.diagnostics;
                response
            }
        }
    }

    async fn create(
        &self,
        clients: &Arc<AzureClients>,
        request: Create<Model, Private>,
    ) -> Applied<Model, Private> {
        self.apply(clients, None, Some(request.planned), request.private)
            .await
    }

    async fn update(
        &self,
        clients: &Arc<AzureClients>,
        request: Update<Model, Private>,
    ) -> Applied<Model, Private> {
        self.apply(
            clients,
            Some(request.prior),
            Some(request.planned),
            request.private,
        )
        .await
    }

    async fn delete(
        &self,
        clients: &Arc<AzureClients>,
        request: Existing<Model, Private>,
    ) -> Applied<Model, Private> {
        self.apply(clients, Some(request.state), None, request.private)
            .await
    }

    async fn read(
        &self,
        clients: &Arc<AzureClients>,
        request: Existing<Model, Private>,
    ) -> Applied<Model, Private> {
        let private = request.private;
        // Slices the machines call for that the state lacks (after an import, or a region's
        // first machine) are read as new objects: machines holding their identity are
        // compliant, nothing is ours. Warnings about the estate are the plan's to give.
        let mut wanted = BTreeMap::new();
        let mut kept = BTreeMap::new();
        let mut state = request.state;
        if let Some(estate) = Estate::from(&state) {
            let mut discovery = Diagnostics::default();
            let recorded = recorded_of(state.buckets.known().into_iter().flatten());
            match wanted_slices(clients, &estate, &recorded, false, &mut discovery).await {
                Some(found) => {
                    wanted = found.wanted;
                    kept = found.kept;
                }
                None => {
                    let mut unchanged = Applied::new(Some(state), private);
                    unchanged.diagnostics = discovery;
                    return unchanged;
                }
            }
        }
        // The slices move into their objects: what is left of the estate is its arguments.
        let mut recorded = state.take_slices();
        // The slices of subscriptions that cannot be planned now are not read: as recorded.
        let kept_slices = take_kept(&mut recorded, &kept);
        let mut objects: BTreeMap<String, assignment::Model> = recorded
            .into_iter()
            .map(|(key, slice)| {
                let object = state.slice_object(&key, slice);
                (key, object)
            })
            .collect();
        for (key, wanted) in wanted {
            objects
                .entry(key.clone())
                .or_insert_with(|| state.slice_object(&key, fresh_slice(&wanted)));
        }
        let reads = each_on_its_own_task(objects.into_iter().map(|(key, object)| {
            let record = private.of(&key);
            let (slices, clients) = (self.slices.clone(), clients.clone());
            async move { (key, slices.refresh_model(&clients, object, record).await) }
        }))
        .await;
        let mut slices = BTreeMap::new();
        let mut refreshed_private = Private::default();
        let mut diagnostics = Diagnostics::default();
        for (key, slice) in kept_slices {
            refreshed_private.set(&key, &private.of(&key));
            slices.insert(key, slice);
        }
        for (key, read) in reads {
            diagnostics.extend(slice_diagnostics(&key, read.diagnostics));
            if let Some(object) = read.state {
                refreshed_private.set(&key, &read.private);
                slices.insert(key, slice_of(object));
            }
        }
        state.buckets = Maybe::Known(slices);
        Applied {
            state: Some(state),
            private: refreshed_private,
            diagnostics,
        }
    }

    async fn import(
        &self,
        _clients: &Arc<AzureClients>,
        key: ImportKey,
    ) -> Result<Vec<Imported<Model, Private>>, Diagnostics> {
        let text = match key {
            // By identity: `import { to = ..., identity = { scope = ... } }`.
            ImportKey::Identity(identity) => tfplugin::model::decode::<IdentityModel>(&identity)
                .ok()
                .and_then(|identity| identity.scope)
                .unwrap_or_default(),
            ImportKey::Id(id) => id,
        };
        let id = arguments::trim_arm_id(text.trim());
        let scope = if id.eq_ignore_ascii_case(EVERY_VISIBLE_SUBSCRIPTION) {
            Maybe::Null
        } else {
            if let Err(reason) = check_estate_scope(id) {
                return Err(Diagnostics::from_error(
                    "Invalid import ID",
                    &format!("{reason} The import ID is the estate's `scope`, or `/subscriptions` for every subscription the principal can see."),
                ));
            }
            Maybe::Known(id.to_string())
        };
        let ty = schema().value_type();
        let skeleton = Model {
            scope,
            ..Model::default()
        };
        let defaulted = schema()
            .block
            .apply_defaults(&tfplugin::model::encode(&skeleton, &ty));
        let mut state: Model = tfplugin::model::decode(&defaulted).unwrap_or(skeleton);
        // Nothing is recorded as ours: every slice is planned afresh, machines holding their
        // identity now are compliant, and destroy leaves them alone.
        state.id = state.estate_id();
        state.buckets = Maybe::Known(BTreeMap::new());
        Ok(vec![Imported {
            state,
            private: Private::default(),
        }])
    }
}

impl EstateAssignment {
    /// A create (`prior` none), an update, or a destroy (`planned` none): every slice at
    /// once, each through `mig_identity_assignment`'s typed functions.
    async fn apply(
        &self,
        clients: &Arc<AzureClients>,
        mut prior: Option<Model>,
        mut planned: Option<Model>,
        private: Private,
    ) -> Applied<Model, Private> {
        // The deadline of the whole operation, for the confirmation after the slices' writes
        // (each slice keeps its own, counted from the same start).
        let (operation, timed) = match (&prior, &planned) {
            (_, None) => (Operation::Delete, prior.as_ref()),
            (None, Some(planned)) => (Operation::Create, Some(planned)),
            (Some(_), Some(planned)) => (Operation::Update, Some(planned)),
        };
        let timeouts = timed.map_or(Maybe::Null, |model| model.timeouts.clone());
        let halt = Halt::new(
            self.data.stop_signal(),
            Timeouts::duration(&timeouts, operation, assignment::TIMEOUTS),
        );
        let mut planned_private = private.clone();
        let mut diagnostics = Diagnostics::default();
        let planned_slices = match &mut planned {
            Some(planned) if planned.buckets.is_unknown() => {
                let mut prior_arguments = prior.clone();
                let prior_slices = prior_arguments
                    .as_mut()
                    .map(Model::take_slices)
                    .unwrap_or_default();
                let replanned = self
                    .plan_slices(
                        clients,
                        planned,
                        prior_arguments.as_ref(),
                        prior_slices,
                        &private,
                        None,
                        false,
                    )
                    .await;
                match replanned {
                    Some(result) if !result.diagnostics.has_errors() => {
                        diagnostics.extend(result.diagnostics);
                        planned_private = result.private;
                        result.slices
                    }
                    Some(result) => {
                        let mut unchanged = Applied::new(prior, private);
                        unchanged.diagnostics = result.diagnostics;
                        return unchanged;
                    }
                    None => {
                        return Applied::failed(
                            prior,
                            private,
                            "Arguments still unknown at apply",
                            "Terraform passed unknown arguments to apply; this is a bug in Terraform or the provider.",
                        )
                    }
                }
            }
            Some(planned) => planned.take_slices(),
            None => BTreeMap::new(),
        };
        // The slices move into their objects: what is left of the estate is its arguments.
        let mut prior_slices = prior.as_mut().map(Model::take_slices).unwrap_or_default();
        let destroying = planned.is_none();
        // Every slice at once: ARM paces each subscription on its own, and so does the client.
        // Each subscription's writes are confirmed as soon as its own slices are done, while
        // busier subscriptions still write: only the busiest one's confirmation follows the
        // last write.
        let mut by_subscription: BTreeMap<String, SubscriptionWork> = BTreeMap::new();
        let mut kept = BTreeMap::new();
        for (key, slice) in planned_slices {
            if planned_private.kept.contains(&key) && prior_slices.remove(&key).is_some() {
                // Not planned this time (its subscription cannot be read or written): as
                // recorded, untouched.
                kept.insert(key, slice);
                continue;
            }
            let prior_object = prior_slices.remove(&key).map(|slice| {
                prior
                    .as_ref()
                    .expect("prior slices")
                    .slice_object(&key, slice)
            });
            let planned_object = planned.as_ref().map(|p| p.slice_object(&key, slice));
            let work = by_subscription
                .entry(subscription_of_key(&key).to_string())
                .or_default();
            work.slices.push(self.apply_slice(
                clients,
                &key,
                prior_object,
                planned_object,
                planned_private.of(&key),
                work.later.clone(),
            ));
        }
        // The prior slices left are those that leave.
        let mut handing_over = BTreeMap::new();
        for (key, slice) in prior_slices {
            let work = by_subscription
                .entry(subscription_of_key(&key).to_string())
                .or_default();
            let object = prior
                .as_ref()
                .expect("prior slices")
                .slice_object(&key, slice);
            if destroying {
                // What it hands over to the object replacing the estate, should another
                // slice's destroy fail (see below).
                if let Some(kept) = assignment::handed_over(&object, &planned_private.of(&key)) {
                    handing_over.insert(key.clone(), kept);
                }
            }
            work.slices.push(self.apply_slice(
                clients,
                &key,
                Some(object),
                None,
                planned_private.of(&key),
                work.later.clone(),
            ));
        }
        let halt = &halt;
        let per_subscription = join_all(by_subscription.into_values().map(|work| async move {
            let results = each_on_its_own_task(work.slices).await;
            let written = std::mem::take(&mut *work.later.lock().expect("settle_later lock"));
            (results, self.settle(clients, written, halt).await)
        }))
        .await;
        let mut results = Vec::new();
        for (subscription_results, confirmed) in per_subscription {
            results.extend(subscription_results);
            diagnostics.extend(confirmed);
        }
        let mut slices = BTreeMap::new();
        let mut new_private = Private::default();
        for (key, slice) in kept {
            new_private.set(&key, &planned_private.of(&key));
            slices.insert(key, slice);
        }
        let mut destroyed = Vec::new();
        for (key, applied) in results {
            diagnostics.extend(slice_diagnostics(&key, applied.diagnostics));
            match applied.state {
                Some(object) => {
                    new_private.set(&key, &applied.private);
                    slices.insert(key, slice_of(object));
                }
                None => destroyed.push(key),
            }
        }
        if destroying && diagnostics.has_errors() {
            // Terraform creates no replacement after a failed destroy: the machines a slice
            // left holding its identity for it are still that slice's.
            for key in destroyed {
                if let Some((object, kept_record)) = handing_over.remove(&key) {
                    new_private.set(&key, &kept_record);
                    slices.insert(key, slice_of(object));
                }
            }
        }
        let state = match planned {
            // Destroyed, unless a slice could not give everything back: it stays, with
            // exactly what it still holds, and the next destroy finishes.
            None if slices.is_empty() => None,
            None => prior,
            Some(planned) => Some(planned),
        }
        .map(|mut state| {
            state.buckets = Maybe::Known(slices);
            state
        });
        Applied {
            state,
            private: new_private,
            diagnostics,
        }
    }
}
