//! Typed resources: a resource as a model struct in and out, as terraform-plugin-framework's
//! resources and azurerm's typed resources are, instead of `Value`s walked by name.
//!
//! ```ignore
//! #[derive(Clone, Serialize, Deserialize)]
//! struct Model { name: Maybe<String>, id: Maybe<String>, timeouts: Maybe<Timeouts> }
//!
//! #[async_trait]
//! impl TypedResource for Thing {
//!     type Data = ProviderData;            // `ready()` gives the configured clients
//!     type Model = Model;                  // every attribute, named once
//!     type Private = Owned;                // private state (serde, Default)
//!     const TYPE_NAME: &'static str = "mig_thing";
//!     fn data(&self) -> &ProviderData { &self.data }
//!     fn schema(&self) -> Schema { ... }   // defaults, requires_replace, use_state_for_unknown
//!     async fn create(&self, clients: &Clients, request: Create<Model, Owned>) -> Applied<Model, Owned>;
//!     ...
//! }
//! // registration
//! Arc::new(Typed::new(Thing::new(data)))
//! ```
//!
//! What stays declared on the schema ([`crate::Attribute`], applied by the server before the
//! resource sees anything, see [`crate::planning`]): defaults, `requires_replace`,
//! `use_state_for_unknown`, validators, and the unknowns of computed attributes (unknown on
//! create, and on update unless `use_state_for_unknown`). The model's fields that a plan can
//! hold unknown are [`Maybe`]s.
//!
//! What the adapter, [`Typed`], does once for every resource:
//! - decodes configuration, prior, proposed and planned state into `Model` and private state
//!   into `Private`; a value that does not fit is an error diagnostic naming the attribute;
//!   encodes what the resource answers against the schema's type;
//! - at plan, runs the declared validators and [`TypedResource::validate`] again (values
//!   unknown at validation may be known now), and plans a destroy itself (no change);
//! - at apply, routes to `create`, `update` or `delete` (planned state null);
//! - asks [`ProviderData::ready`] for the clients before apply, read and import, and answers
//!   its diagnostics with the state unchanged when it has none (not configured).
//!
//! The untyped [`crate::Resource`] trait stays underneath: `Typed<R>` implements it, so the
//! server does not know the difference.

mod action;
mod data_source;
mod list;
pub(crate) mod maybe;

pub use action::{action, ActionAdapter, TypedAction};
pub use data_source::{data_source, DataRead, TypedData, TypedDataSource};
pub use list::{list_resource, ListAdapter, Listing, Results, TypedListResource};

use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use maybe::Maybe;

use crate::diagnostics::{AttributePath, Diagnostics};
use crate::model;
use crate::provider::{
    ApplyRequest, ApplyResponse, ClientCapabilities, DeferredReason, ImportRequest, ImportResponse,
    ImportedResource, PlanRequest, PlanResponse, ReadRequest, ReadResponse, Resource,
};
use crate::schema::{IdentitySchema, Schema};
use crate::types::Type;
use crate::value::Value;

/// What a provider shares with its resources: the hook that says whether the provider is
/// configured, and gives what resources call (the cloud's clients) when it is.
pub trait ProviderData: Send + Sync + 'static {
    /// What a configured provider gives its resources (cheap to clone, say an `Arc`).
    type Clients: Send + Sync;
    /// The clients, or the diagnostics saying why there are none (not configured).
    fn ready(&self) -> Result<Self::Clients, Diagnostics>;
}

/// A plan of a create or an update (a destroy is planned by the adapter).
#[derive(Debug, Clone)]
pub struct Plan<M, P> {
    pub config: M,
    /// `None` when creating.
    pub prior: Option<M>,
    /// Terraform's proposed new state, adjusted by the schema's declarations.
    pub proposed: M,
    pub prior_private: P,
    /// What the first plan of this change answered as private state, handed back by
    /// Terraform 1.16+ (`store_planned_private`) to the plan it makes during apply; else
    /// the default.
    pub first_plan: P,
    /// The attributes declared `requires_replace` that the proposed state changes (the
    /// server reports them whatever the plan answers).
    pub requires_replace: Vec<AttributePath>,
    pub client_capabilities: ClientCapabilities,
}

/// What a plan answers.
#[derive(Debug, Clone)]
pub struct Planned<M, P> {
    pub state: M,
    pub private: P,
    /// Paths whose change replaces the object, besides those the schema declares.
    pub requires_replace: Vec<AttributePath>,
    pub diagnostics: Diagnostics,
    pub deferred: Option<DeferredReason>,
}

impl<M, P> Planned<M, P> {
    pub fn new(state: M, private: P) -> Self {
        Planned {
            state,
            private,
            requires_replace: Vec::new(),
            diagnostics: Diagnostics::default(),
            deferred: None,
        }
    }
}

/// A create: the object does not exist yet.
#[derive(Debug, Clone)]
pub struct Create<M, P> {
    pub config: M,
    pub planned: M,
    pub private: P,
}

/// An update in place.
#[derive(Debug, Clone)]
pub struct Update<M, P> {
    pub config: M,
    pub prior: M,
    pub planned: M,
    pub private: P,
}

/// A destroy, or a read: the object as recorded.
#[derive(Debug, Clone)]
pub struct Existing<M, P> {
    pub state: M,
    pub private: P,
}

/// What exists after an apply or a read, even when it failed half way (`None`: nothing).
#[derive(Debug, Clone)]
pub struct Applied<M, P> {
    pub state: Option<M>,
    pub private: P,
    pub diagnostics: Diagnostics,
}

impl<M, P> Applied<M, P> {
    pub fn new(state: Option<M>, private: P) -> Self {
        Applied {
            state,
            private,
            diagnostics: Diagnostics::default(),
        }
    }

    /// `state` and `private` unchanged, and an error.
    pub fn failed(state: Option<M>, private: P, summary: &str, detail: &str) -> Self {
        Applied {
            state,
            private,
            diagnostics: Diagnostics::from_error(summary, detail),
        }
    }
}

/// What an import names: an import ID, or an identity (Terraform 1.12+).
#[derive(Debug, Clone)]
pub enum ImportKey {
    Id(String),
    /// A value of the resource's identity schema; decode it with [`model::decode`].
    Identity(Value),
}

/// One imported object.
#[derive(Debug, Clone)]
pub struct Imported<M, P> {
    pub state: M,
    pub private: P,
}

/// A managed resource as typed models. See the module documentation.
#[async_trait]
pub trait TypedResource: Send + Sync + 'static {
    type Data: ProviderData;
    /// Every attribute (arguments and computed attributes) and nested block, named once.
    type Model: Serialize + DeserializeOwned + Clone + Send + Sync;
    /// Private state; the default is stored as no bytes at all.
    type Private: Serialize + DeserializeOwned + Default + PartialEq + Clone + Send + Sync;

    const TYPE_NAME: &'static str;

    fn data(&self) -> &Self::Data;
    fn schema(&self) -> Schema;
    fn identity_schema(&self) -> Option<IdentitySchema> {
        None
    }
    /// The identity of the object `state` describes; `None` while part of it is unknown.
    fn identity_of(&self, _state: &Self::Model) -> Option<Value> {
        None
    }
    /// Checks beyond the declared validators, of a configuration that may hold unknowns.
    fn validate(&self, _config: &Self::Model) -> Diagnostics {
        Diagnostics::default()
    }
    /// A destroy's plan: its warnings, from the prior state (`None` when it cannot be read
    /// as the model), and the private state its apply gets, `private`, handed in as the
    /// prior private state (the adapter plans the state itself: null). Left unchanged, the
    /// prior private state's bytes go through as they are. By default: no warnings, no
    /// change.
    fn plan_destroy(
        &self,
        _prior: Option<&Self::Model>,
        _private: &mut Self::Private,
    ) -> Diagnostics {
        Diagnostics::default()
    }
    /// Plans a create or an update. `clients` is `None` when the provider is not configured
    /// (plan what is known without Azure). By default: the proposed state.
    async fn plan(
        &self,
        _clients: Option<&<Self::Data as ProviderData>::Clients>,
        request: Plan<Self::Model, Self::Private>,
    ) -> Planned<Self::Model, Self::Private> {
        Planned::new(request.proposed, request.prior_private)
    }
    async fn create(
        &self,
        clients: &<Self::Data as ProviderData>::Clients,
        request: Create<Self::Model, Self::Private>,
    ) -> Applied<Self::Model, Self::Private>;
    async fn update(
        &self,
        clients: &<Self::Data as ProviderData>::Clients,
        request: Update<Self::Model, Self::Private>,
    ) -> Applied<Self::Model, Self::Private>;
    async fn delete(
        &self,
        clients: &<Self::Data as ProviderData>::Clients,
        request: Existing<Self::Model, Self::Private>,
    ) -> Applied<Self::Model, Self::Private>;
    /// What exists now; `state: None` when the object is gone.
    async fn read(
        &self,
        clients: &<Self::Data as ProviderData>::Clients,
        request: Existing<Self::Model, Self::Private>,
    ) -> Applied<Self::Model, Self::Private>;
    async fn import(
        &self,
        _clients: &<Self::Data as ProviderData>::Clients,
        _key: ImportKey,
    ) -> Result<Vec<Imported<Self::Model, Self::Private>>, Diagnostics> {
        Err(Diagnostics::from_error(
            "Import not supported",
            &format!("{} cannot be imported.", Self::TYPE_NAME),
        ))
    }
}

/// The adapter: a [`TypedResource`] as an untyped [`Resource`].
pub struct Typed<R> {
    resource: R,
    ty: Type,
}

impl<R: TypedResource> Typed<R> {
    pub fn new(resource: R) -> Self {
        let ty = resource.schema().value_type();
        Typed { resource, ty }
    }

    pub fn inner(&self) -> &R {
        &self.resource
    }

    fn encode(&self, model: &R::Model) -> Value {
        model::encode(model, &self.ty)
    }

    fn encode_state(&self, state: &Option<R::Model>) -> Value {
        state.as_ref().map_or(Value::Null, |m| self.encode(m))
    }
}

/// Decodes a value that may be null (no object).
fn decode_optional<M: DeserializeOwned>(value: &Value) -> Result<Option<M>, Diagnostics> {
    if value.is_null() {
        return Ok(None);
    }
    model::decode(value).map(Some)
}

fn private<P: DeserializeOwned + Default>(bytes: &[u8]) -> P {
    model::private_from_bytes(bytes)
}

#[async_trait]
impl<R: TypedResource> Resource for Typed<R> {
    fn type_name(&self) -> &'static str {
        R::TYPE_NAME
    }

    fn schema(&self) -> Schema {
        self.resource.schema()
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        self.resource.identity_schema()
    }

    fn identity_of(&self, state: &Value) -> Option<Value> {
        let state: R::Model = model::decode(state).ok()?;
        self.resource.identity_of(&state)
    }

    /// Configuration may hold unknowns at validation: read as `Maybe::Unknown`, or as
    /// `None` in a plain `Option`.
    async fn validate_config(&self, config: &Value) -> Diagnostics {
        match model::decode_lenient::<R::Model>(config) {
            Ok(config) => self.resource.validate(&config),
            Err(diagnostics) => diagnostics,
        }
    }

    async fn plan(&self, request: PlanRequest) -> PlanResponse {
        // The proposed state is moved into the answer only when it is the answer: an
        // estate's state holds every machine it covers, and each copy costs as much.
        let mut response = PlanResponse {
            planned_private: request.prior_private.clone(),
            ..PlanResponse::default()
        };
        if request.proposed_new_state.is_null() {
            // Destroy: nothing to plan.
            // A prior state that does not decode only loses the warnings drawn from it: it
            // must never stop a destroy.
            let prior = decode_optional::<R::Model>(&request.prior_state)
                .ok()
                .flatten();
            let prior_private: R::Private = private(&request.prior_private);
            let mut planned_private = prior_private.clone();
            response.diagnostics = self
                .resource
                .plan_destroy(prior.as_ref(), &mut planned_private);
            // Unchanged, the bytes go through untouched: a private state this build cannot
            // read is not replaced by the default it reads as.
            if planned_private != prior_private {
                response.planned_private = model::private_to_bytes(&planned_private);
            }
            return response;
        }
        // Values unknown at validation and known now get the same checks.
        let mut problems = self.resource.schema().block.validate(&request.config);
        problems.extend(self.validate_config(&request.config).await);
        if problems.has_errors() {
            response.planned_state = request.proposed_new_state;
            response.diagnostics = problems;
            return response;
        }
        let decoded = (|| {
            Ok::<_, Diagnostics>((
                model::decode::<R::Model>(&request.config)?,
                decode_optional::<R::Model>(&request.prior_state)?,
                model::decode::<R::Model>(&request.proposed_new_state)?,
            ))
        })();
        let (config, prior, proposed) = match decoded {
            Ok(decoded) => decoded,
            Err(diagnostics) => {
                response.planned_state = request.proposed_new_state;
                response.diagnostics = diagnostics;
                return response;
            }
        };
        // Decoded: the values go before the resource plans.
        let PlanRequest {
            prior_private,
            planned_private,
            requires_replace,
            client_capabilities,
            ..
        } = request;
        let clients = self.resource.data().ready().ok();
        let planned = self
            .resource
            .plan(
                clients.as_ref(),
                Plan {
                    config,
                    prior,
                    proposed,
                    prior_private: private(&prior_private),
                    first_plan: private(&planned_private),
                    requires_replace,
                    client_capabilities,
                },
            )
            .await;
        response.planned_state = self.encode(&planned.state);
        response.planned_private = model::private_to_bytes(&planned.private);
        response.requires_replace = planned.requires_replace;
        response.diagnostics = planned.diagnostics;
        response.deferred = planned.deferred;
        response
    }

    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        // Whatever goes wrong before the resource runs leaves the object as it was.
        let unchanged = |diagnostics: Diagnostics| ApplyResponse {
            new_state: request.prior_state.clone(),
            private: request.planned_private.clone(),
            diagnostics,
            ..ApplyResponse::default()
        };
        let clients = match self.resource.data().ready() {
            Ok(clients) => clients,
            Err(diagnostics) => return unchanged(diagnostics),
        };
        let private: R::Private = private(&request.planned_private);
        let prior = match decode_optional::<R::Model>(&request.prior_state) {
            Ok(prior) => prior,
            Err(diagnostics) => return unchanged(diagnostics),
        };
        let planned = if request.planned_state.is_null() {
            None
        } else {
            let decoded = model::decode::<R::Model>(&request.config).and_then(|config| {
                model::decode::<R::Model>(&request.planned_state).map(|p| (config, p))
            });
            match decoded {
                Ok(decoded) => Some(decoded),
                Err(diagnostics) => return unchanged(diagnostics),
            }
        };
        // Decoded: the values go before the resource applies (an estate's state holds every
        // machine it covers, and each copy costs as much).
        drop(request);
        let applied = match (prior, planned) {
            (None, None) => return ApplyResponse::default(),
            (Some(state), None) => {
                self.resource
                    .delete(&clients, Existing { state, private })
                    .await
            }
            (None, Some((config, planned))) => {
                let request = Create {
                    config,
                    planned,
                    private,
                };
                self.resource.create(&clients, request).await
            }
            (Some(prior), Some((config, planned))) => {
                let request = Update {
                    config,
                    prior,
                    planned,
                    private,
                };
                self.resource.update(&clients, request).await
            }
        };
        ApplyResponse {
            new_state: self.encode_state(&applied.state),
            private: model::private_to_bytes(&applied.private),
            diagnostics: applied.diagnostics,
            ..ApplyResponse::default()
        }
    }

    async fn read(&self, request: ReadRequest) -> ReadResponse {
        let unchanged = |diagnostics: Diagnostics| ReadResponse {
            new_state: request.current_state.clone(),
            private: request.private.clone(),
            diagnostics,
            ..ReadResponse::default()
        };
        let clients = match self.resource.data().ready() {
            Ok(clients) => clients,
            Err(diagnostics) => return unchanged(diagnostics),
        };
        let state = match decode_optional::<R::Model>(&request.current_state) {
            Ok(Some(state)) => state,
            Ok(None) => return unchanged(Diagnostics::default()),
            Err(diagnostics) => return unchanged(diagnostics),
        };
        let private = private(&request.private);
        let read = self
            .resource
            .read(&clients, Existing { state, private })
            .await;
        ReadResponse {
            new_state: self.encode_state(&read.state),
            private: model::private_to_bytes(&read.private),
            diagnostics: read.diagnostics,
            ..ReadResponse::default()
        }
    }

    async fn import(&self, request: ImportRequest) -> ImportResponse {
        let clients = match self.resource.data().ready() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                return ImportResponse {
                    diagnostics,
                    ..ImportResponse::default()
                }
            }
        };
        let key = match request.identity {
            Some(identity) => ImportKey::Identity(identity),
            None => ImportKey::Id(request.id),
        };
        match self.resource.import(&clients, key).await {
            Ok(imported) => ImportResponse {
                imported: imported
                    .into_iter()
                    .map(|object| ImportedResource {
                        identity: self.resource.identity_of(&object.state),
                        state: self.encode(&object.state),
                        private: model::private_to_bytes(&object.private),
                    })
                    .collect(),
                ..ImportResponse::default()
            },
            Err(diagnostics) => ImportResponse {
                diagnostics,
                ..ImportResponse::default()
            },
        }
    }
}

/// A typed resource as the provider registers it.
pub fn resource<R: TypedResource>(resource: R) -> Arc<dyn Resource> {
    Arc::new(Typed::new(resource))
}

#[cfg(test)]
mod tests;
