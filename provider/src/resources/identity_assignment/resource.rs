//! The Terraform side of `mig_identity_assignment`: requests in, the engine's answers out.

use async_trait::async_trait;
use tfplugin::{
    ApplyRequest, ApplyResponse, Diagnostics, IdentitySchema, ImportRequest, ImportResponse,
    ImportedResource, PlanRequest, PlanResponse, ReadRequest, ReadResponse, Resource, Schema,
    Value,
};

use super::store::diagnostics;
use super::*;
use crate::arguments;
use crate::azure::AzureClients;
use crate::engine::assignment::{Assignment, Refreshed};
use crate::engine::converge::{ConvergeInput, Converged};
use crate::engine::destroy::Destroyed;
use crate::engine::notes::Notes;
use crate::engine::plan::{PlanInput, Planned};
use crate::engine::record::{warn_uncertain, Record};
use crate::handover;
use crate::timeouts::{self, Halt, Operation};

fn error_diagnostics(summary: &str, detail: &str) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    diagnostics.error(summary, detail);
    diagnostics
}

/// The planned state with its `id` (the framework already filled in the defaults).
pub(super) fn with_id(planned: &Value) -> Value {
    let id = match (
        planned.get("scope").as_str(),
        planned.get("identity_id").as_str(),
    ) {
        (Some(scope), Some(identity)) => Value::String(resource_id(scope, identity)),
        _ => Value::unknown(),
    };
    planned.with("id", id)
}

#[async_trait]
impl Resource for IdentityAssignment {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(identity_schema())
    }

    fn identity_of(&self, state: &Value) -> Option<Value> {
        identity_of(state)
    }

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        validate_arguments(config)
    }

    async fn plan(&self, request: PlanRequest) -> PlanResponse {
        async move {
            let mut response = PlanResponse {
                planned_state: request.proposed_new_state.clone(),
                planned_private: request.prior_private.clone(),
                ..PlanResponse::default()
            };
            if request.proposed_new_state.is_null() {
                let uncertain = Record::from_bytes(&request.prior_private).uncertain;
                let mut notes = Notes::default();
                warn_uncertain(&mut notes, &uncertain, " Destroy leaves them holding it.");
                response.diagnostics = diagnostics(notes);
                return response;
            }
            let planned = with_id(&request.proposed_new_state);
            let Some(settings) = settings_from(&planned) else {
                response.planned_state = with_unknown_outcome(&planned);
                return response;
            };
            let clients = match self.data.clients() {
                Ok(clients) => clients,
                Err(diagnostics) => {
                    response.diagnostics = diagnostics;
                    return response;
                }
            };
            let previous = settings_from(&request.prior_state);
            response.diagnostics = self
                .check_against_azure(&clients, &request, &settings)
                .await;
            let engine = self.engine(&clients);
            let mut notes = Notes::default();
            engine.note_reach(&settings, &mut notes);
            response
                .diagnostics
                .extend(diagnostics(std::mem::take(&mut notes)));
            if response.diagnostics.has_errors() {
                return response;
            }
            let prior = (!request.prior_state.is_null()).then(|| recorded(&request.prior_state));
            let input = PlanInput {
                settings: &settings,
                prior: prior.as_ref(),
                previous: previous.as_ref(),
                prior_record: Record::from_bytes(&request.prior_private),
                first_plan: Record::from_bytes(&request.planned_private),
                object_key: handover::object_key(self.kind, &request.config),
                store_planned_private: request.client_capabilities.store_planned_private,
            };
            let planned_lists = engine.plan(input, &mut notes).await;
            response.diagnostics.extend(diagnostics(notes));
            if let Some(Planned { outcome, record }) = planned_lists {
                response.planned_state = match outcome {
                    Some(outcome) => with_outcome(&planned, &outcome),
                    None => with_unknown_outcome(&planned),
                };
                response.planned_private = record.to_bytes();
            }
            response
        }
        .await
    }

    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        async move {
            let clients = match self.data.clients() {
                Ok(clients) => clients,
                Err(diagnostics) => {
                    return ApplyResponse {
                        new_state: request.prior_state,
                        diagnostics,
                        ..ApplyResponse::default()
                    }
                }
            };
            if request.planned_state.is_null() {
                return self.destroy(&clients, &request).await;
            }
            let operation = if request.prior_state.is_null() {
                Operation::Create
            } else {
                Operation::Update
            };
            let deadline = timeouts::get(&request.planned_state, operation, TIMEOUTS);
            let halt = Halt::new(self.data.stop_signal(), deadline);
            self.converge(&clients, &request, &halt).await
        }
        .await
    }

    async fn read(&self, request: ReadRequest) -> ReadResponse {
        async move {
            let state = without_incomplete_marker(request.current_state);
            let mut response = ReadResponse {
                new_state: state.clone(),
                private: request.private.clone(),
                ..ReadResponse::default()
            };
            let Some(settings) = settings_from(&state) else {
                return response;
            };
            let clients = match self.data.clients() {
                Ok(clients) => clients,
                Err(diagnostics) => {
                    response.diagnostics = diagnostics;
                    return response;
                }
            };
            let mut notes = Notes::default();
            let refreshed = self
                .engine(&clients)
                .refresh(
                    &settings,
                    &recorded(&state),
                    Record::from_bytes(&request.private),
                    &mut notes,
                )
                .await;
            match refreshed {
                Ok(Refreshed { outcome, record }) => {
                    response.diagnostics = diagnostics(notes);
                    response.new_state = with_outcome(&state, &outcome);
                    response.private = record.to_bytes();
                }
                Err(error) => {
                    response.diagnostics =
                        error_diagnostics("Cannot list the machines in scope", &error);
                }
            }
            response
        }
        .await
    }

    async fn import(&self, request: ImportRequest) -> ImportResponse {
        let mut response = ImportResponse::default();
        let named = match &request.identity {
            // By identity: `import { to = ..., identity = { scope = ..., identity_id = ... } }`.
            Some(given) => match (
                given.get("scope").as_str(),
                given.get("identity_id").as_str(),
            ) {
                (Some(scope), Some(identity_id)) => Some((scope, identity_id)),
                _ => None,
            },
            None => request.id.split_once('|'),
        };
        let Some((scope, identity_id)) = named else {
            let detail = if request.identity.is_some() {
                "Import by identity needs both `scope` and `identity_id`.".to_string()
            } else {
                format!("`{}` is not `{{scope}}|{{identity_id}}`.", request.id)
            };
            response.diagnostics.error("Invalid import ID", &detail);
            return response;
        };
        let skeleton = Value::object([
            ("identity_id", Value::String(identity_id.to_string())),
            ("scope", Value::String(scope.to_string())),
            ("locations", Value::Null),
            ("exclude_ids", Value::Null),
            ("exclude_tags", Value::Null),
            ("resource_types", Value::Null),
            ("skip_single_user_assigned", Value::Null),
            ("mode", Value::Null),
            ("adopt", Value::Null),
            ("timeouts", Value::Null),
        ]);
        let problems = validate_arguments(&skeleton);
        if problems.has_errors() {
            response.diagnostics = problems;
            return response;
        }
        // Nothing is recorded as ours: machines holding the identity now are compliant, and
        // destroy will leave them alone.
        let state = with_outcome(
            &with_id(&schema().block.apply_defaults(&skeleton)),
            &Outcome::default(),
        );
        response.imported.push(ImportedResource {
            identity: identity_of(&state),
            state,
            private: Vec::new(),
        });
        response
    }
}

/// States written before ownership was handed over between objects marked a failed create
/// with this suffix on `id`; it means nothing any more.
pub(super) fn without_incomplete_marker(state: Value) -> Value {
    match state.get("id").as_str() {
        Some(id) if id.ends_with(LEGACY_INCOMPLETE_SUFFIX) => {
            let id = id.trim_end_matches(LEGACY_INCOMPLETE_SUFFIX).to_string();
            state.with("id", Value::String(id))
        }
        _ => state,
    }
}

impl IdentityAssignment {
    /// The engine over these clients.
    fn engine<'a>(&'a self, clients: &'a AzureClients) -> Assignment<'a> {
        Assignment {
            store: &clients.compute,
            handover: self.data.handover(),
            kind: self.kind,
        }
    }

    /// What only Azure can tell about the arguments, checked when they are new or changed
    /// (a no-op plan makes no extra reads): the identity exists, the regions do.
    async fn check_against_azure(
        &self,
        clients: &AzureClients,
        request: &PlanRequest,
        settings: &Settings,
    ) -> Diagnostics {
        let changed = |name: &str| request.prior_state.get(name) != request.config.get(name);
        let mut diagnostics = Diagnostics::default();
        if changed("identity_id")
            && !self
                .data
                .handover()
                .is_planned_identity(&settings.identity_id)
        {
            diagnostics.extend(
                arguments::check_identity_exists(clients, "identity_id", &settings.identity_id)
                    .await,
            );
        }
        if changed("locations") {
            let regions = request
                .config
                .get("locations")
                .as_string_list()
                .unwrap_or_default();
            diagnostics.extend(
                arguments::check_regions_exist(
                    clients,
                    settings.scope.subscription_id(),
                    "locations",
                    &regions,
                )
                .await,
            );
        }
        diagnostics
    }

    async fn converge(
        &self,
        clients: &AzureClients,
        request: &ApplyRequest,
        halt: &Halt,
    ) -> ApplyResponse {
        let planned = &request.planned_state;
        let creating = request.prior_state.is_null();
        let Some(settings) = settings_from(planned) else {
            return ApplyResponse {
                new_state: request.prior_state.clone(),
                diagnostics: error_diagnostics(
                    "Arguments still unknown at apply",
                    "Terraform passed unknown arguments to apply; this is a bug in Terraform or the provider.",
                ),
                ..ApplyResponse::default()
            };
        };
        let previous = settings_from(&request.prior_state);
        let prior = (!creating).then(|| recorded(&request.prior_state));
        let input = ConvergeInput {
            settings: &settings,
            planned: &recorded(planned),
            planned_outcome: (!planned.get("assigned_ids").is_unknown())
                .then(|| outcome_from(planned)),
            prior: prior.as_ref(),
            previous: previous.as_ref(),
            planned_record: Record::from_bytes(&request.planned_private),
        };
        let mut notes = Notes::default();
        let converged = self.engine(clients).converge(input, halt, &mut notes).await;
        let (new_state, private) = match converged {
            Converged::NothingWritten { created } if creating => (
                created.map_or(Value::Null, |outcome| with_outcome(planned, &outcome)),
                Vec::new(),
            ),
            Converged::NothingWritten { .. } => {
                (request.prior_state.clone(), request.planned_private.clone())
            }
            Converged::Done { outcome, record } => {
                (with_outcome(planned, &outcome), record.to_bytes())
            }
        };
        ApplyResponse {
            new_state,
            private,
            diagnostics: diagnostics(notes),
            ..ApplyResponse::default()
        }
    }

    async fn destroy(&self, clients: &AzureClients, request: &ApplyRequest) -> ApplyResponse {
        let prior = without_incomplete_marker(request.prior_state.clone());
        let Some(settings) = settings_from(&prior) else {
            return ApplyResponse::default();
        };
        let deadline = timeouts::get(&prior, Operation::Delete, TIMEOUTS);
        let halt = Halt::new(self.data.stop_signal(), deadline);
        let mut notes = Notes::default();
        // In a replacement, Terraform hands this destroy the new object's planned private
        // state: the machines it takes over keep the identity. Otherwise it is our own.
        let destroyed = self
            .engine(clients)
            .destroy(
                &settings,
                &recorded(&prior),
                Record::from_bytes(&request.planned_private),
                &halt,
                &mut notes,
            )
            .await;
        let (new_state, private) = match destroyed {
            Destroyed::NothingWritten => (prior, request.planned_private.clone()),
            Destroyed::Gone => (Value::Null, Vec::new()),
            Destroyed::Kept { outcome, record } => {
                (with_outcome(&prior, &outcome), record.to_bytes())
            }
        };
        ApplyResponse {
            new_state,
            private,
            diagnostics: diagnostics(notes),
            ..ApplyResponse::default()
        }
    }
}
