//! The Terraform side of `mig_identity_assignment` on the typed trait
//! ([`tfplugin::typed`]): its model in, one assignment's engine calls (`one.rs`), its model
//! out.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use tfplugin::typed::{
    Applied, Create, Existing, ImportKey, Imported, Plan, Planned, TypedResource, Update,
};
use tfplugin::{Diagnostics, IdentitySchema, Schema, Value};

use super::one::{plan_destroy, Checks};
use super::*;
use crate::engine::converge::{ConvergeInput, Converged};
use crate::engine::destroy::Destroyed;
use crate::engine::plan::{self, PlanInput};
use crate::engine::record::Record;
use crate::handover;
use crate::ownership::Settings;
use crate::timeouts::{Halt, Operation, Timeouts};

/// A value of [`identity_schema`].
#[derive(Debug, Deserialize)]
struct IdentityModel {
    scope: Option<String>,
    identity_id: Option<String>,
}

#[async_trait]
impl TypedResource for IdentityAssignment {
    type Data = ProviderData;
    type Model = Model;
    type Private = Record;
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

    // Defaults and validators are declared on the schema (`super::arguments`).
    fn validate(&self, config: &Model) -> Diagnostics {
        config.selection().check()
    }

    fn plan_destroy(&self, prior: Option<&Model>, private: &mut Record) -> Diagnostics {
        let settings = prior.and_then(Model::settings);
        let recorded = prior.map(Model::recorded).unwrap_or_default();
        plan_destroy(self.data.handover(), settings.as_ref(), &recorded, private)
    }

    async fn plan(
        &self,
        clients: Option<&Arc<AzureClients>>,
        request: Plan<Model, Record>,
    ) -> Planned<Model, Record> {
        let planned = request.proposed.with_id();
        let Some(settings) = planned.settings() else {
            return Planned::new(planned.with_unknown_outcome(), request.prior_private);
        };
        let Some(clients) = clients else {
            let mut response = Planned::new(planned, request.prior_private);
            response.diagnostics = self.data.clients().err().unwrap_or_default();
            return response;
        };
        self.plan_model(
            clients,
            &request.config,
            request.prior.as_ref(),
            planned,
            settings,
            (request.prior_private, request.first_plan),
            request.client_capabilities.store_planned_private,
        )
        .await
    }

    async fn create(
        &self,
        clients: &Arc<AzureClients>,
        request: Create<Model, Record>,
    ) -> Applied<Model, Record> {
        self.apply_model(clients, None, request.planned, request.private)
            .await
    }

    async fn update(
        &self,
        clients: &Arc<AzureClients>,
        request: Update<Model, Record>,
    ) -> Applied<Model, Record> {
        self.apply_model(
            clients,
            Some(request.prior),
            request.planned,
            request.private,
        )
        .await
    }

    async fn delete(
        &self,
        clients: &Arc<AzureClients>,
        request: Existing<Model, Record>,
    ) -> Applied<Model, Record> {
        self.destroy_model(clients, request.state, request.private)
            .await
    }

    async fn read(
        &self,
        clients: &Arc<AzureClients>,
        request: Existing<Model, Record>,
    ) -> Applied<Model, Record> {
        self.refresh_model(clients, request.state, request.private)
            .await
    }

    async fn import(
        &self,
        _clients: &Arc<AzureClients>,
        key: ImportKey,
    ) -> Result<Vec<Imported<Model, Record>>, Diagnostics> {
        let named = match &key {
            // By identity: `import { to = ..., identity = { scope = ..., identity_id = ... } }`.
            ImportKey::Identity(given) => match tfplugin::model::decode::<IdentityModel>(given) {
                Ok(IdentityModel {
                    scope: Some(scope),
                    identity_id: Some(identity_id),
                }) => Some((scope, identity_id)),
                _ => None,
            },
            ImportKey::Id(id) => id
                .split_once('|')
                .map(|(scope, identity)| (scope.to_string(), identity.to_string())),
        };
        let Some((scope, identity_id)) = named else {
            let detail = match &key {
                ImportKey::Identity(_) => {
                    "Import by identity needs both `scope` and `identity_id`.".to_string()
                }
                ImportKey::Id(id) => format!("`{id}` is not `{{scope}}|{{identity_id}}`."),
            };
            return Err(Diagnostics::from_error("Invalid import ID", &detail));
        };
        let skeleton = Model {
            identity_id: Maybe::Known(identity_id),
            scope: Maybe::Known(scope),
            ..Model::default()
        };
        let mut problems = schema()
            .block
            .validate(&values::encode(&skeleton, state_type()));
        problems.extend(skeleton.selection().check());
        if problems.has_errors() {
            return Err(problems);
        }
        // Nothing is recorded as ours: machines holding the identity now are compliant, and
        // destroy will leave them alone.
        Ok(vec![Imported {
            state: fresh(skeleton),
            private: Record::default(),
        }])
    }
}

/// One assignment's plan, apply, destroy and refresh as typed models, for this resource's
/// object and for each slice of `mig_estate_assignment`.
impl IdentityAssignment {
    /// Plans a create (`prior` none) or an update of the object `config` declares.
    /// `planned` is the proposed state with its `id`, and `settings` its arguments;
    /// `records` are the prior record and what the first plan answered (Terraform 1.16+).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn plan_model(
        &self,
        clients: &AzureClients,
        config: &Model,
        prior: Option<&Model>,
        planned: Model,
        settings: Settings,
        records: (Record, Record),
        store_planned_private: bool,
    ) -> Planned<Model, Record> {
        let (prior_record, first_plan) = records;
        let checks = Checks {
            identity_changed: prior.map(|p| &p.identity_id) != Some(&config.identity_id),
            regions: (prior.map(|p| &p.locations) != Some(&config.locations))
                .then(|| config.regions()),
        };
        let recorded = prior.map(Model::recorded);
        let previous = prior.and_then(Model::settings);
        let input = PlanInput {
            settings: &settings,
            prior: recorded.as_ref(),
            previous: previous.as_ref(),
            prior_record: prior_record.clone(),
            first_plan,
            object_key: handover::object_key(self.kind, config),
            store_planned_private,
        };
        let (planned_lists, diagnostics) = self.plan_one(clients, checks, input).await;
        let mut response = match planned_lists {
            Some(plan::Planned { outcome, record }) => Planned::new(
                match outcome {
                    Some(outcome) => planned.with_outcome(outcome),
                    None => planned.with_unknown_outcome(),
                },
                record,
            ),
            // Not planned: as proposed.
            None => Planned::new(planned, prior_record),
        };
        response.diagnostics = diagnostics;
        response
    }

    /// Destroys the object `prior` with `record` (in a replacement, the new object's).
    pub(crate) async fn destroy_model(
        &self,
        clients: &AzureClients,
        prior: Model,
        record: Record,
    ) -> Applied<Model, Record> {
        let prior = prior.without_incomplete_marker();
        let Some(settings) = prior.settings() else {
            return Applied::new(None, Record::default());
        };
        let halt = self.halt(&prior, Operation::Delete);
        // In a replacement, Terraform hands this destroy the new object's planned private
        // state: the machines it takes over keep the identity. Otherwise it is our own.
        let (destroyed, diagnostics) = self
            .destroy_one(clients, &settings, &prior.recorded(), record.clone(), &halt)
            .await;
        let mut applied = match destroyed {
            Destroyed::NothingWritten => Applied::new(Some(prior), record),
            Destroyed::Gone => Applied::new(None, Record::default()),
            Destroyed::Kept { outcome, record } => {
                Applied::new(Some(prior.with_outcome(outcome)), record)
            }
        };
        applied.diagnostics = diagnostics;
        applied
    }

    /// Refreshes the object `state` with its `record`.
    pub(crate) async fn refresh_model(
        &self,
        clients: &AzureClients,
        state: Model,
        record: Record,
    ) -> Applied<Model, Record> {
        let state = state.without_incomplete_marker();
        let Some(settings) = state.settings() else {
            return Applied::new(Some(state), record);
        };
        let refreshed = self
            .refresh_one(clients, &settings, &state.recorded(), record.clone())
            .await;
        match refreshed {
            Ok((refreshed, diagnostics)) => Applied {
                state: Some(state.with_outcome(refreshed.outcome)),
                private: refreshed.record,
                diagnostics,
            },
            Err(diagnostics) => Applied {
                state: Some(state),
                private: record,
                diagnostics,
            },
        }
    }

    /// The operation's deadline and Terraform's stop request.
    fn halt(&self, state: &Model, operation: Operation) -> Halt {
        let deadline = Timeouts::duration(&state.timeouts, operation, TIMEOUTS);
        Halt::new(self.data.stop_signal(), deadline)
    }

    /// A create (`prior` none) or an update: exactly the writes the plan showed.
    pub(crate) async fn apply_model(
        &self,
        clients: &AzureClients,
        prior: Option<Model>,
        planned: Model,
        record: Record,
    ) -> Applied<Model, Record> {
        let Some(settings) = planned.settings() else {
            // The planned record carries the prior one forward: what we attached stays
            // recorded even on this path.
            return Applied::failed(
                prior,
                record,
                "Arguments still unknown at apply",
                "Terraform passed unknown arguments to apply; this is a bug in Terraform or the provider.",
            );
        };
        let operation = match prior {
            None => Operation::Create,
            Some(_) => Operation::Update,
        };
        let halt = self.halt(&planned, operation);
        let previous = prior.as_ref().and_then(Model::settings);
        let recorded = prior.as_ref().map(Model::recorded);
        let input = ConvergeInput {
            settings: &settings,
            planned: &planned.recorded(),
            planned_outcome: (!planned.assigned_ids.is_unknown()).then(|| planned.outcome()),
            prior: recorded.as_ref(),
            previous: previous.as_ref(),
            planned_record: record.clone(),
        };
        let (converged, diagnostics) = self.apply_one(clients, input, &halt).await;
        let mut applied = match converged {
            Converged::NothingWritten { created } if prior.is_none() => Applied::new(
                created.map(|outcome| planned.with_outcome(outcome)),
                Record::default(),
            ),
            Converged::NothingWritten { .. } => Applied::new(prior, record),
            Converged::Done { outcome, record } => {
                Applied::new(Some(planned.with_outcome(outcome)), record)
            }
        };
        applied.diagnostics = diagnostics;
        applied
    }
}

/// For an estate whose destroy failed in another slice: a slice whose destroy went through
/// but left machines holding the identity for the object replacing it (see
/// [`crate::engine::assignment::handed_over`]) with what it still holds: `None` when it
/// handed nothing over.
pub(crate) fn handed_over(prior: &Model, planned: &Record) -> Option<(Model, Record)> {
    let prior = prior.clone().without_incomplete_marker();
    let (outcome, record) = crate::engine::assignment::handed_over(&prior.recorded(), planned)?;
    Some((prior.with_outcome(outcome), record))
}
