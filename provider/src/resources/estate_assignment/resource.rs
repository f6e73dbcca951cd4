//! The Terraform resource `mig_estate_assignment`: plan, apply, read and import.

use super::*;

#[async_trait]
impl Resource for EstateAssignment {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        validate_arguments(config)
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(identity_schema())
    }

    fn identity_of(&self, state: &Value) -> Option<Value> {
        identity_of(state)
    }

    async fn plan(&self, mut request: PlanRequest) -> PlanResponse {
        if request.proposed_new_state.is_null() {
            // Destroyed: nothing to plan.
            return PlanResponse {
                planned_private: request.prior_private,
                ..PlanResponse::default()
            };
        }
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                return PlanResponse {
                    planned_state: request.proposed_new_state,
                    planned_private: request.prior_private,
                    diagnostics,
                    ..PlanResponse::default()
                }
            }
        };
        // Every slice is planned afresh: the slices of before move out of the request (the
        // proposal carries them too), so that the estate is not copied with them.
        request.proposed_new_state.take("buckets");
        let prior_slices = take_slices(&mut request.prior_state);
        let planned = request
            .proposed_new_state
            .with("id", estate_id(&request.proposed_new_state));
        let prior_private = Private::from_bytes(&request.prior_private);
        let first_plan = Private::from_bytes(&request.planned_private);
        let mut response = PlanResponse::default();
        match self
            .plan_slices(
                &clients,
                &planned,
                &request.prior_state,
                prior_slices,
                &prior_private,
                first_plan.every_slice_shown.then_some(&first_plan),
                &request.client_capabilities,
            )
            .await
        {
            // Known at apply only: the slices are planned then.
            None => {
                response.planned_state = planned.with("buckets", Value::unknown());
                response.planned_private = prior_private.to_bytes();
            }
            Some(result) => {
                response.diagnostics = result.diagnostics;
                response.planned_state = planned.with("buckets", Value::Map(result.slices));
                let mut private = result.private;
                private.every_slice_shown = request.client_capabilities.store_planned_private;
                response.planned_private = private.to_bytes();
            }
        }
        response
    }

    async fn apply(&self, mut request: ApplyRequest) -> ApplyResponse {
        let prior = &request.prior_state;
        let planned = &request.planned_state;
        // The deadline of the whole operation, for the confirmation after the slices' writes
        // (each slice keeps its own, counted from the same start).
        let (operation, timed) = if planned.is_null() {
            (Operation::Delete, prior)
        } else if prior.is_null() {
            (Operation::Create, planned)
        } else {
            (Operation::Update, planned)
        };
        let halt = Halt::new(
            self.data.stop_signal(),
            timeouts::get(timed, operation, assignment::TIMEOUTS),
        );
        let mut planned_private = Private::from_bytes(&request.planned_private);
        let mut diagnostics = Diagnostics::default();
        let planned_slices;
        if !planned.is_null() && planned.get("buckets").is_unknown() {
            let clients = match self.data.clients() {
                Ok(clients) => clients,
                Err(diagnostics) => {
                    return ApplyResponse {
                        new_state: prior.clone(),
                        private: request.planned_private.clone(),
                        diagnostics,
                        ..ApplyResponse::default()
                    }
                }
            };
            let prior_private = Private::from_bytes(&request.planned_private);
            let mut prior_arguments = prior.clone();
            let prior_slices = take_slices(&mut prior_arguments);
            match self
                .plan_slices(
                    &clients,
                    planned,
                    &prior_arguments,
                    prior_slices,
                    &prior_private,
                    None,
                    &ClientCapabilities::default(),
                )
                .await
            {
                Some(result) if !result.diagnostics.has_errors() => {
                    diagnostics.extend(result.diagnostics);
                    planned_slices = result.slices;
                    planned_private = result.private;
                }
                Some(result) => {
                    return ApplyResponse {
                        new_state: prior.clone(),
                        private: request.planned_private.clone(),
                        diagnostics: result.diagnostics,
                        ..ApplyResponse::default()
                    }
                }
                None => {
                    return ApplyResponse {
                        new_state: prior.clone(),
                        private: request.planned_private.clone(),
                        diagnostics: Diagnostics::from_error(
                            "Arguments still unknown at apply",
                            "Terraform passed unknown arguments to apply; this is a bug in Terraform or the provider.",
                        ),
                        ..ApplyResponse::default()
                    }
                }
            }
        } else {
            planned_slices = take_slices(&mut request.planned_state);
        }
        // The slices move into their objects: what is left of the estate is its arguments.
        let mut prior_slices = take_slices(&mut request.prior_state);
        let (prior, planned) = (&request.prior_state, &request.planned_state);
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
            let prior_object = prior_slices
                .remove(&key)
                .map_or(Value::Null, |b| slice_object(prior, &key, b));
            let work = by_subscription
                .entry(subscription_of_key(&key).to_string())
                .or_default();
            work.slices.push(self.apply_slice(
                &key,
                prior_object,
                slice_object(planned, &key, slice),
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
            let object = slice_object(prior, &key, slice);
            if planned.is_null() {
                // What it hands over to the object replacing the estate, should another
                // slice's destroy fail (see below).
                if let Some(kept) =
                    assignment::handed_over_state(&object, &planned_private.of(&key))
                {
                    handing_over.insert(key.clone(), kept);
                }
            }
            work.slices.push(self.apply_slice(
                &key,
                object,
                Value::Null,
                planned_private.of(&key),
                work.later.clone(),
            ));
        }
        let halt = &halt;
        let per_subscription = join_all(by_subscription.into_values().map(|work| async move {
            let results = each_on_its_own_task(work.slices).await;
            let written = std::mem::take(&mut *work.later.lock().expect("settle_later lock"));
            (results, self.settle(written, halt).await)
        }))
        .await;
        let mut results = Vec::new();
        for (subscription_results, confirmed) in per_subscription {
            results.extend(subscription_results);
            diagnostics.extend(confirmed);
        }
        let mut slices = BTreeMap::new();
        let mut private = Private::default();
        for (key, slice) in kept {
            private.set(&key, &planned_private.of(&key));
            slices.insert(key, slice);
        }
        let mut destroyed = Vec::new();
        for (key, response) in results {
            diagnostics.extend(slice_diagnostics(&key, response.diagnostics));
            if !response.new_state.is_null() {
                private.set(&key, &response.private);
                slices.insert(key, slice_of(response.new_state));
            } else {
                destroyed.push(key);
            }
        }
        if planned.is_null() && diagnostics.has_errors() {
            // Terraform creates no replacement after a failed destroy: the machines a slice
            // left holding its identity for it are still that slice's.
            for key in destroyed {
                if let Some((state, kept_private)) = handing_over.remove(&key) {
                    private.set(&key, &kept_private);
                    slices.insert(key, slice_of(state));
                }
            }
        }
        if planned.is_null() {
            // Destroyed, unless a slice could not give everything back: it stays, with exactly
            // what it still holds, and the next destroy finishes.
            let new_state = if slices.is_empty() {
                Value::Null
            } else {
                prior.with("buckets", Value::Map(slices))
            };
            return ApplyResponse {
                new_state,
                private: private.to_bytes(),
                diagnostics,
                ..ApplyResponse::default()
            };
        }
        ApplyResponse {
            new_state: planned.with("buckets", Value::Map(slices)),
            private: private.to_bytes(),
            diagnostics,
            ..ApplyResponse::default()
        }
    }

    async fn read(&self, request: ReadRequest) -> ReadResponse {
        let private = Private::from_bytes(&request.private);
        let mut response = ReadResponse::default();
        // Slices the machines call for that the state lacks (after an import, or a region's
        // first machine) are read as new objects: machines holding their identity are
        // compliant, nothing is ours. Warnings about the estate are the plan's to give.
        let mut wanted = BTreeMap::new();
        let mut kept = BTreeMap::new();
        if let (Some(estate), Ok(clients)) =
            (Estate::from(&request.current_state), self.data.clients())
        {
            let mut discovery = Diagnostics::default();
            let recorded = match request.current_state.get("buckets") {
                Value::Map(slices) => recorded_of(slices),
                _ => Recorded::new(),
            };
            match wanted_slices(&clients, &estate, &recorded, false, &mut discovery).await {
                Some(found) => {
                    wanted = found.wanted;
                    kept = found.kept;
                }
                None => {
                    response.new_state = request.current_state;
                    response.private = request.private;
                    response.diagnostics = discovery;
                    return response;
                }
            }
        }
        // The slices move into their objects: what is left of the estate is its arguments.
        let mut state = request.current_state;
        let mut recorded = take_slices(&mut state);
        // The slices of subscriptions that cannot be planned now are not read: as recorded.
        let kept_slices = take_kept(&mut recorded, &kept);
        let mut objects: BTreeMap<String, Value> = recorded
            .into_iter()
            .map(|(key, slice)| {
                let object = slice_object(&state, &key, slice);
                (key, object)
            })
            .collect();
        for (key, wanted) in wanted {
            objects.entry(key.clone()).or_insert_with(|| {
                let fresh = Value::object([
                    ("identity_id", Value::string(&wanted.identity_id)),
                    ("scope", Value::string(wanted.scope.to_string())),
                    ("assigned_ids", Value::List(Vec::new())),
                    ("compliant_ids", Value::List(Vec::new())),
                    ("skipped", Value::Map(BTreeMap::new())),
                    ("noncompliant_ids", Value::List(Vec::new())),
                ]);
                slice_object(&state, &key, fresh)
            });
        }
        let reads = each_on_its_own_task(objects.into_iter().map(|(key, object)| {
            let read = ReadRequest {
                current_state: object,
                private: private.of(&key),
                ..ReadRequest::default()
            };
            let slices = self.slices.clone();
            async move { (key, slices.read(read).await) }
        }))
        .await;
        let mut slices = BTreeMap::new();
        let mut refreshed_private = Private::default();
        for (key, slice) in kept_slices {
            refreshed_private.set(&key, &private.of(&key));
            slices.insert(key, slice);
        }
        for (key, read) in reads {
            response
                .diagnostics
                .extend(slice_diagnostics(&key, read.diagnostics));
            if !read.new_state.is_null() {
                refreshed_private.set(&key, &read.private);
                slices.insert(key, slice_of(read.new_state));
            }
        }
        response.new_state = state.with("buckets", Value::Map(slices));
        response.private = refreshed_private.to_bytes();
        response
    }

    async fn import(&self, request: ImportRequest) -> ImportResponse {
        let mut response = ImportResponse::default();
        // By identity: `import { to = ..., identity = { scope = ... } }`.
        let given = request
            .identity
            .as_ref()
            .and_then(|identity| identity.get("scope").as_str().map(str::to_string));
        let text = given.unwrap_or_else(|| request.id.clone());
        let id = arguments::trim_arm_id(text.trim());
        let scope = if id.eq_ignore_ascii_case(EVERY_VISIBLE_SUBSCRIPTION) {
            Value::Null
        } else {
            if let Err(reason) = check_estate_scope(id) {
                response.diagnostics.error(
                    "Invalid import ID",
                    &format!("{reason} The import ID is the estate's `scope`, or `/subscriptions` for every subscription the principal can see."),
                );
                return response;
            }
            Value::string(id)
        };
        let mut fields: BTreeMap<String, Value> = schema()
            .block
            .attributes
            .iter()
            .map(|a| (a.name.clone(), Value::Null))
            .collect();
        fields.insert("timeouts".into(), Value::Null);
        fields.insert("scope".into(), scope);
        let skeleton = schema().block.apply_defaults(&Value::Object(fields));
        // Nothing is recorded as ours: every slice is planned afresh, machines holding their
        // identity now are compliant, and destroy leaves them alone.
        let state = skeleton
            .with("id", estate_id(&skeleton))
            .with("buckets", Value::Map(BTreeMap::new()));
        response.imported.push(ImportedResource {
            identity: identity_of(&state),
            state,
            private: Vec::new(),
        });
        response
    }
}
