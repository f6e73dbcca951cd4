//! What a provider implements: the provider itself, and its managed resources, data sources,
//! functions, actions and list resources. Requests and responses carry decoded `Value`s;
//! nothing here knows about gRPC or msgpack.

use std::sync::Arc;

use async_trait::async_trait;

use crate::diagnostics::{AttributePath, Diagnostics};
use crate::schema::{IdentitySchema, Schema};
use crate::types::Type;
use crate::value::Value;

/// What Terraform says it can handle.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientCapabilities {
    pub deferral_allowed: bool,
    pub write_only_attributes_allowed: bool,
    /// Protocol 6.11 (Terraform 1.16+): the `planned_private` of the first plan of a change
    /// comes back as `PlanRequest::planned_private` in the second one.
    pub store_planned_private: bool,
    /// Protocol 6.11 (Terraform 1.16+): `Block::computed` is honoured.
    pub computed_blocks_allowed: bool,
}

/// Why a change is deferred to a later plan (only when `deferral_allowed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferredReason {
    ResourceConfigUnknown,
    ProviderConfigUnknown,
    AbsentPrerequisite,
}

#[derive(Debug, Clone, Default)]
pub struct ConfigureRequest {
    pub terraform_version: String,
    pub config: Value,
    pub client_capabilities: ClientCapabilities,
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider's local name, the prefix of its resource types: `mig`.
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    async fn validate_config(&self, _config: &Value) -> Diagnostics {
        Diagnostics::default()
    }
    async fn configure(&self, request: ConfigureRequest) -> Diagnostics;
    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        Vec::new()
    }
    fn data_sources(&self) -> Vec<Arc<dyn DataSource>> {
        Vec::new()
    }
    fn functions(&self) -> Vec<Arc<dyn Function>> {
        Vec::new()
    }
    fn actions(&self) -> Vec<Arc<dyn Action>> {
        Vec::new()
    }
    fn list_resources(&self) -> Vec<Arc<dyn ListResource>> {
        Vec::new()
    }
    /// Terraform asked the provider to stop (Ctrl-C): cancel what is in flight.
    async fn stop(&self) {}
}

// ------------------------------------------------------------------------------------------
// Managed resources
// ------------------------------------------------------------------------------------------

/// What a resource plans from.
///
/// Before `Resource::plan` runs, the server adjusts Terraform's proposed new state by what
/// the schema declares (see `crate::planning`): defaults are filled in where the
/// *configuration* is null (also on update, so removing an argument goes back to its
/// default); computed-only attributes are unknown on create, unknown on update unless
/// declared `use_state_for_unknown`, and their prior value when nothing settable changed.
/// The resource may refine the planned state further. After it returns, the server adds the
/// paths of changed `requires_replace` attributes to the response's own `requires_replace`.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    /// Null when creating.
    pub prior_state: Value,
    /// Null when destroying. Already adjusted by the schema's declarations (see above).
    pub proposed_new_state: Value,
    pub config: Value,
    pub prior_private: Vec<u8>,
    /// Protocol 6.11 (Terraform 1.16+, with `store_planned_private`): the `planned_private`
    /// this resource answered in the first plan of the same change, so a value planned then
    /// (a generated name, say) can be planned again identically. Empty in the first plan and
    /// from older Terraform.
    pub planned_private: Vec<u8>,
    pub prior_identity: Option<Value>,
    pub client_capabilities: ClientCapabilities,
    /// The attributes declared `requires_replace` that the adjusted proposed state changes.
    /// The server reports them whatever the resource answers; a resource may add its own.
    pub requires_replace: Vec<AttributePath>,
}

#[derive(Debug, Clone, Default)]
pub struct PlanResponse {
    pub planned_state: Value,
    /// Paths whose change replaces the resource, besides those the schema declares (the
    /// server adds those; duplicates are removed).
    pub requires_replace: Vec<AttributePath>,
    pub planned_private: Vec<u8>,
    pub diagnostics: Diagnostics,
    pub planned_identity: Option<Value>,
    pub deferred: Option<DeferredReason>,
}

#[derive(Debug, Clone, Default)]
pub struct ApplyRequest {
    pub prior_state: Value,
    /// Null when destroying.
    pub planned_state: Value,
    pub config: Value,
    pub planned_private: Vec<u8>,
    pub planned_identity: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct ApplyResponse {
    /// What exists now, even when the apply failed half way (Null when gone).
    pub new_state: Value,
    pub private: Vec<u8>,
    pub diagnostics: Diagnostics,
    pub new_identity: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct ReadRequest {
    pub current_state: Value,
    pub private: Vec<u8>,
    pub current_identity: Option<Value>,
    pub client_capabilities: ClientCapabilities,
}

#[derive(Debug, Clone, Default)]
pub struct ReadResponse {
    /// Null when the resource no longer exists.
    pub new_state: Value,
    pub private: Vec<u8>,
    pub diagnostics: Diagnostics,
    pub new_identity: Option<Value>,
    pub deferred: Option<DeferredReason>,
}

#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    /// The `id` of an import block or `terraform import`; empty when importing by identity.
    pub id: String,
    pub identity: Option<Value>,
    pub client_capabilities: ClientCapabilities,
}

#[derive(Debug, Clone, Default)]
pub struct ImportedResource {
    pub state: Value,
    pub private: Vec<u8>,
    pub identity: Option<Value>,
}

#[derive(Debug, Clone, Default)]
pub struct ImportResponse {
    pub imported: Vec<ImportedResource>,
    pub diagnostics: Diagnostics,
    pub deferred: Option<DeferredReason>,
}

#[async_trait]
pub trait Resource: Send + Sync {
    /// The full type name: `mig_identity_assignment`.
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    /// Resource identity (Terraform 1.12+), for import by identity and list resources.
    fn identity_schema(&self) -> Option<IdentitySchema> {
        None
    }
    /// The identity of the object `state` describes (a resource with an identity schema),
    /// `None` while part of it is unknown. The server keeps an object's identity for its
    /// whole life from this (see `crate::identity`): plan, apply, read and import report it,
    /// and a resource sets `planned_identity` / `new_identity` itself only to override.
    fn identity_of(&self, _state: &Value) -> Option<Value> {
        None
    }
    /// Checks beyond the validators declared on the schema (the server runs those first).
    async fn validate_config(&self, _config: &Value) -> Diagnostics {
        Diagnostics::default()
    }
    /// Plans from the proposed new state the server already adjusted (see `PlanRequest`).
    async fn plan(&self, request: PlanRequest) -> PlanResponse {
        PlanResponse {
            planned_state: request.proposed_new_state,
            planned_private: request.prior_private,
            planned_identity: request.prior_identity,
            ..PlanResponse::default()
        }
    }
    async fn apply(&self, request: ApplyRequest) -> ApplyResponse;
    async fn read(&self, request: ReadRequest) -> ReadResponse;
    async fn import(&self, _request: ImportRequest) -> ImportResponse {
        ImportResponse {
            diagnostics: Diagnostics::from_error(
                "Import not supported",
                &format!("{} cannot be imported.", self.type_name()),
            ),
            ..ImportResponse::default()
        }
    }
    /// State written by an older schema version, already decoded against the current
    /// schema (attributes the current schema lacks are dropped).
    async fn upgrade_state(&self, _version: i64, state: Value) -> Result<Value, Diagnostics> {
        Ok(state)
    }
}

// ------------------------------------------------------------------------------------------
// Data sources
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub struct DataReadRequest {
    pub config: Value,
    pub client_capabilities: ClientCapabilities,
}

#[derive(Debug, Clone, Default)]
pub struct DataReadResponse {
    pub state: Value,
    pub diagnostics: Diagnostics,
    pub deferred: Option<DeferredReason>,
}

#[async_trait]
pub trait DataSource: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    /// Checks beyond the validators declared on the schema (the server runs those first).
    async fn validate_config(&self, _config: &Value) -> Diagnostics {
        Diagnostics::default()
    }
    /// `request.config` has the schema's declared defaults filled in where it is null.
    async fn read(&self, request: DataReadRequest) -> DataReadResponse;
}

// ------------------------------------------------------------------------------------------
// Functions
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: String,
    pub r#type: Type,
    pub allow_null: bool,
    pub allow_unknown: bool,
    /// Markdown.
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct FunctionDefinition {
    pub parameters: Vec<Parameter>,
    pub variadic: Option<Parameter>,
    pub return_type: Type,
    pub summary: String,
    /// Markdown.
    pub description: String,
}

/// A function error; `argument` is the index of the argument at fault, if one is.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionError {
    pub text: String,
    pub argument: Option<i64>,
}

#[async_trait]
pub trait Function: Send + Sync {
    fn name(&self) -> &'static str;
    fn definition(&self) -> FunctionDefinition;
    async fn call(&self, args: Vec<Value>) -> Result<Value, FunctionError>;
}

// ------------------------------------------------------------------------------------------
// Actions (protocol 6.10, Terraform 1.14+)
// ------------------------------------------------------------------------------------------

/// Sends progress lines to Terraform while an action runs.
#[derive(Clone)]
pub struct Progress {
    pub(crate) sender: tokio::sync::mpsc::Sender<String>,
}

impl Progress {
    pub async fn report(&self, message: impl Into<String>) {
        // A closed channel means Terraform went away; the action's result is lost either way.
        let _ = self.sender.send(message.into()).await;
    }

    /// A progress sink and the receiving end, for tests.
    pub fn channel(capacity: usize) -> (Progress, tokio::sync::mpsc::Receiver<String>) {
        let (sender, receiver) = tokio::sync::mpsc::channel(capacity);
        (Progress { sender }, receiver)
    }
}

#[async_trait]
pub trait Action: Send + Sync {
    fn type_name(&self) -> &'static str;
    fn schema(&self) -> Schema;
    /// Checks beyond the validators declared on the schema (the server runs those first).
    async fn validate_config(&self, _config: &Value) -> Diagnostics {
        Diagnostics::default()
    }
    /// Checks before apply; the action does nothing yet. The server has run the declared
    /// validators again (values unknown at validation may be known now) and filled in the
    /// declared defaults.
    async fn plan(&self, _config: &Value) -> Diagnostics {
        Diagnostics::default()
    }
    /// `config` has the schema's declared defaults filled in where it is null.
    async fn invoke(&self, config: Value, progress: Progress) -> Diagnostics;
}

// ------------------------------------------------------------------------------------------
// List resources (protocol 6.10, `terraform query`)
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub config: Value,
    pub include_resource_object: bool,
    pub limit: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ListResult {
    /// An identity value of the managed resource's identity schema.
    pub identity: Value,
    pub display_name: String,
    /// The full resource state, when asked for.
    pub resource_object: Option<Value>,
    pub diagnostics: Diagnostics,
}

/// Where a list resource sends its results, one at a time.
pub struct ListSink {
    pub(crate) sender: tokio::sync::mpsc::Sender<ListResult>,
}

impl ListSink {
    /// False when Terraform stopped listening (limit reached): stop listing.
    pub async fn push(&self, result: ListResult) -> bool {
        self.sender.send(result).await.is_ok()
    }

    pub fn channel(capacity: usize) -> (ListSink, tokio::sync::mpsc::Receiver<ListResult>) {
        let (sender, receiver) = tokio::sync::mpsc::channel(capacity);
        (ListSink { sender }, receiver)
    }
}

#[async_trait]
pub trait ListResource: Send + Sync {
    /// The managed resource type this lists (it must have an identity schema).
    fn type_name(&self) -> &'static str;
    /// The schema of the `list` block's `config`.
    fn schema(&self) -> Schema;
    async fn validate_config(&self, _config: &Value) -> Diagnostics {
        Diagnostics::default()
    }
    async fn list(&self, request: ListRequest, sink: ListSink) -> Diagnostics;
}
