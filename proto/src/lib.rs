//! `tfplugin`: Terraform's plugin protocol 6 (up to 6.11) for Rust providers.
//!
//! Two layers, as in HashiCorp's Go libraries: the wire (generated gRPC types, msgpack and
//! JSON values, the go-plugin handshake with AutoMTLS) and a small framework on top
//! (`Provider`, `Resource`, `DataSource`, `Function`, `Action`, `ListResource` traits with
//! decoded `Value`s, schema builders, diagnostics). A provider only uses the framework.
//! The framework is declarative where Terraform's semantics are easy to get wrong: defaults,
//! replacement, computed values and validators are declared on `Attribute`s and applied by
//! the server (`planning`, `validators`); `model` maps values to and from serde types.
//! Nothing here knows which cloud the provider talks to.

pub mod codec;
mod diagnostics;
pub mod identity;
mod logging;
pub mod model;
pub mod planning;
mod plugin;
mod provider;
mod schema;
mod server;
mod tls;
pub mod typed;
mod types;
pub mod validators;
mod value;

/// The generated protocol types, for tests that speak gRPC to a provider.
pub mod wire {
    pub mod tfplugin6 {
        tonic::include_proto!("tfplugin6");
    }
    pub mod plugin {
        tonic::include_proto!("plugin");
    }
}

pub use diagnostics::{AttributePath, Diagnostic, Diagnostics, PathStep, Severity};
pub use logging::{init_logging, level_from_env};
pub use plugin::{
    negotiate_protocol, serve, ServeError, MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE, PROTOCOL_VERSION,
};
pub use provider::{
    Action, ApplyRequest, ApplyResponse, ClientCapabilities, ConfigureRequest, DataReadRequest,
    DataReadResponse, DataSource, DeferredReason, Function, FunctionDefinition, FunctionError,
    ImportRequest, ImportResponse, ImportedResource, ListRequest, ListResource, ListResult,
    ListSink, Parameter, PlanRequest, PlanResponse, Progress, Provider, ReadRequest, ReadResponse,
    Resource,
};
pub use schema::{
    Attribute, AttributePlan, Block, IdentityAttribute, IdentitySchema, NestedAttributes,
    NestedBlock, NestingMode, ReplaceWhen, Schema,
};
pub use server::ProviderService;
pub use types::Type;
pub use validators::Validator;
pub use value::{Number, Refinements, Value};
