//! The tfplugin6 gRPC service: decodes each request against the schema it concerns, calls
//! the provider, encodes the answer. Every RPC of protocol 6.11 answers; features the
//! provider does not use answer with an empty response or a clear diagnostic, never a gRPC
//! error, so every Terraform and OpenTofu version that speaks protocol 6 works.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::codec;
use crate::diagnostics::Diagnostics;
use crate::identity::Kept;
use crate::planning;
use crate::provider::{
    Action, ApplyRequest, ClientCapabilities, ConfigureRequest, DataReadRequest, DataSource,
    DeferredReason, Function, ImportRequest, ListRequest, ListResource, ListSink, PlanRequest,
    Progress, Provider, ReadRequest, Resource,
};
use crate::schema::Schema;
use crate::types::Type;
use crate::value::Value;
use crate::wire::tfplugin6 as wire;

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

struct ResourceEntry {
    resource: Arc<dyn Resource>,
    schema: Schema,
    ty: Type,
    identity_type: Option<Type>,
}

struct DataSourceEntry {
    data_source: Arc<dyn DataSource>,
    schema: Schema,
    ty: Type,
}

struct ActionEntry {
    action: Arc<dyn Action>,
    schema: Schema,
    ty: Type,
}

struct ListEntry {
    list: Arc<dyn ListResource>,
    ty: Type,
}

/// The provider with its schemas computed once: Terraform asks for them many times. Maps
/// are ordered, so every listing (metadata, schemas) comes out the same on every call.
pub struct ProviderService<P: Provider> {
    provider: Arc<P>,
    provider_schema: Schema,
    provider_type: Type,
    resources: BTreeMap<String, ResourceEntry>,
    data_sources: BTreeMap<String, DataSourceEntry>,
    functions: BTreeMap<String, Arc<dyn Function>>,
    actions: BTreeMap<String, ActionEntry>,
    lists: BTreeMap<String, ListEntry>,
    schema_response: wire::get_provider_schema::Response,
    functions_response: BTreeMap<String, wire::Function>,
}

fn server_capabilities() -> wire::ServerCapabilities {
    wire::ServerCapabilities {
        plan_destroy: true,
        get_provider_schema_optional: true,
        move_resource_state: false,
        generate_resource_config: true,
    }
}

impl<P: Provider> ProviderService<P> {
    pub fn new(provider: Arc<P>) -> Self {
        let provider_schema = provider.schema();
        let resources: BTreeMap<String, ResourceEntry> = provider
            .resources()
            .into_iter()
            .map(|resource| {
                let schema = resource.schema();
                let entry = ResourceEntry {
                    ty: schema.value_type(),
                    identity_type: resource.identity_schema().map(|s| s.value_type()),
                    schema,
                    resource,
                };
                (entry.resource.type_name().to_string(), entry)
            })
            .collect();
        let data_sources: BTreeMap<String, DataSourceEntry> = provider
            .data_sources()
            .into_iter()
            .map(|data_source| {
                let schema = data_source.schema();
                (
                    data_source.type_name().to_string(),
                    DataSourceEntry {
                        data_source,
                        ty: schema.value_type(),
                        schema,
                    },
                )
            })
            .collect();
        let functions: BTreeMap<String, Arc<dyn Function>> = provider
            .functions()
            .into_iter()
            .map(|f| (f.name().to_string(), f))
            .collect();
        let actions: BTreeMap<String, ActionEntry> = provider
            .actions()
            .into_iter()
            .map(|action| {
                let schema = action.schema();
                (
                    action.type_name().to_string(),
                    ActionEntry {
                        action,
                        ty: schema.value_type(),
                        schema,
                    },
                )
            })
            .collect();
        let lists: BTreeMap<String, ListEntry> = provider
            .list_resources()
            .into_iter()
            .map(|list| {
                let ty = list.schema().value_type();
                (list.type_name().to_string(), ListEntry { list, ty })
            })
            .collect();
        let functions_response: BTreeMap<String, wire::Function> = functions
            .iter()
            .map(|(name, f)| (name.clone(), function_to_wire(f.as_ref())))
            .collect();
        let schema_response = wire::get_provider_schema::Response {
            provider: Some(provider_schema.to_wire()),
            resource_schemas: resources
                .iter()
                .map(|(name, entry)| (name.clone(), entry.schema.to_wire()))
                .collect(),
            data_source_schemas: data_sources
                .iter()
                .map(|(name, entry)| (name.clone(), entry.schema.to_wire()))
                .collect(),
            functions: functions_response.clone(),
            ephemeral_resource_schemas: BTreeMap::new(),
            list_resource_schemas: lists
                .iter()
                .map(|(name, entry)| (name.clone(), entry.list.schema().to_wire()))
                .collect(),
            state_store_schemas: BTreeMap::new(),
            action_schemas: actions
                .iter()
                .map(|(name, entry)| {
                    (
                        name.clone(),
                        wire::ActionSchema {
                            schema: Some(entry.schema.to_wire()),
                        },
                    )
                })
                .collect(),
            diagnostics: Vec::new(),
            provider_meta: None,
            server_capabilities: Some(server_capabilities()),
        };
        ProviderService {
            provider_type: provider_schema.value_type(),
            provider_schema,
            provider,
            resources,
            data_sources,
            functions,
            actions,
            lists,
            schema_response,
            functions_response,
        }
    }

    fn resource(&self, type_name: &str) -> Result<&ResourceEntry, Vec<wire::Diagnostic>> {
        self.resources
            .get(type_name)
            .ok_or_else(|| unknown_type("resource", type_name))
    }
}

macro_rules! try_decode {
    ($expr:expr, $response:expr) => {
        match $expr {
            Ok(value) => value,
            Err(diagnostics) => {
                let mut response = $response;
                response.diagnostics = diagnostics;
                return Ok(Response::new(response));
            }
        }
    };
}

mod convert;
mod others;
mod resources;

use convert::*;

#[tonic::async_trait]
impl<P: Provider> wire::provider_server::Provider for ProviderService<P> {
    async fn get_metadata(
        &self,
        _request: Request<wire::get_metadata::Request>,
    ) -> Result<Response<wire::get_metadata::Response>, Status> {
        use wire::get_metadata as m;
        Ok(Response::new(m::Response {
            server_capabilities: Some(server_capabilities()),
            diagnostics: Vec::new(),
            data_sources: self
                .data_sources
                .keys()
                .map(|name| m::DataSourceMetadata {
                    type_name: name.clone(),
                })
                .collect(),
            resources: self
                .resources
                .keys()
                .map(|name| m::ResourceMetadata {
                    type_name: name.clone(),
                })
                .collect(),
            functions: self
                .functions
                .keys()
                .map(|name| m::FunctionMetadata { name: name.clone() })
                .collect(),
            ephemeral_resources: Vec::new(),
            list_resources: self
                .lists
                .keys()
                .map(|name| m::ListResourceMetadata {
                    type_name: name.clone(),
                })
                .collect(),
            state_stores: Vec::new(),
            actions: self
                .actions
                .keys()
                .map(|name| m::ActionMetadata {
                    type_name: name.clone(),
                })
                .collect(),
        }))
    }

    async fn get_provider_schema(
        &self,
        _request: Request<wire::get_provider_schema::Request>,
    ) -> Result<Response<wire::get_provider_schema::Response>, Status> {
        Ok(Response::new(self.schema_response.clone()))
    }

    async fn validate_provider_config(
        &self,
        request: Request<wire::validate_provider_config::Request>,
    ) -> Result<Response<wire::validate_provider_config::Response>, Status> {
        let request = request.into_inner();
        let empty = wire::validate_provider_config::Response::default();
        let config = try_decode!(decode(request.config.as_ref(), &self.provider_type), empty);
        // Only the deprecation warnings of the declarative layer: the provider block's
        // own checks are the provider's (they run again at configure).
        let mut diagnostics = planning::deprecations(&self.provider_schema.block, &config);
        merge(
            &mut diagnostics,
            self.provider.validate_config(&config).await,
        );
        Ok(Response::new(wire::validate_provider_config::Response {
            diagnostics: diagnostics.to_wire(),
        }))
    }

    async fn validate_resource_config(
        &self,
        request: Request<wire::validate_resource_config::Request>,
    ) -> Result<Response<wire::validate_resource_config::Response>, Status> {
        self.handle_validate_resource_config(request).await
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<wire::validate_data_resource_config::Request>,
    ) -> Result<Response<wire::validate_data_resource_config::Response>, Status> {
        self.handle_validate_data_resource_config(request).await
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<wire::upgrade_resource_state::Request>,
    ) -> Result<Response<wire::upgrade_resource_state::Response>, Status> {
        self.handle_upgrade_resource_state(request).await
    }

    async fn get_resource_identity_schemas(
        &self,
        request: Request<wire::get_resource_identity_schemas::Request>,
    ) -> Result<Response<wire::get_resource_identity_schemas::Response>, Status> {
        self.handle_get_resource_identity_schemas(request).await
    }

    async fn upgrade_resource_identity(
        &self,
        request: Request<wire::upgrade_resource_identity::Request>,
    ) -> Result<Response<wire::upgrade_resource_identity::Response>, Status> {
        self.handle_upgrade_resource_identity(request).await
    }

    async fn configure_provider(
        &self,
        request: Request<wire::configure_provider::Request>,
    ) -> Result<Response<wire::configure_provider::Response>, Status> {
        let request = request.into_inner();
        let empty = wire::configure_provider::Response::default();
        let config = try_decode!(decode(request.config.as_ref(), &self.provider_type), empty);
        let diagnostics = self
            .provider
            .configure(ConfigureRequest {
                terraform_version: request.terraform_version,
                config,
                client_capabilities: capabilities(request.client_capabilities.as_ref()),
            })
            .await;
        Ok(Response::new(wire::configure_provider::Response {
            diagnostics: diagnostics.to_wire(),
        }))
    }

    async fn read_resource(
        &self,
        request: Request<wire::read_resource::Request>,
    ) -> Result<Response<wire::read_resource::Response>, Status> {
        self.handle_read_resource(request).await
    }

    async fn plan_resource_change(
        &self,
        request: Request<wire::plan_resource_change::Request>,
    ) -> Result<Response<wire::plan_resource_change::Response>, Status> {
        self.handle_plan_resource_change(request).await
    }

    async fn apply_resource_change(
        &self,
        request: Request<wire::apply_resource_change::Request>,
    ) -> Result<Response<wire::apply_resource_change::Response>, Status> {
        self.handle_apply_resource_change(request).await
    }

    async fn import_resource_state(
        &self,
        request: Request<wire::import_resource_state::Request>,
    ) -> Result<Response<wire::import_resource_state::Response>, Status> {
        self.handle_import_resource_state(request).await
    }

    async fn move_resource_state(
        &self,
        request: Request<wire::move_resource_state::Request>,
    ) -> Result<Response<wire::move_resource_state::Response>, Status> {
        self.handle_move_resource_state(request).await
    }

    async fn read_data_source(
        &self,
        request: Request<wire::read_data_source::Request>,
    ) -> Result<Response<wire::read_data_source::Response>, Status> {
        self.handle_read_data_source(request).await
    }

    async fn generate_resource_config(
        &self,
        request: Request<wire::generate_resource_config::Request>,
    ) -> Result<Response<wire::generate_resource_config::Response>, Status> {
        self.handle_generate_resource_config(request).await
    }

    async fn validate_ephemeral_resource_config(
        &self,
        request: Request<wire::validate_ephemeral_resource_config::Request>,
    ) -> Result<Response<wire::validate_ephemeral_resource_config::Response>, Status> {
        Ok(Response::new(
            wire::validate_ephemeral_resource_config::Response {
                diagnostics: unknown_type("ephemeral resource", &request.into_inner().type_name),
            },
        ))
    }

    async fn open_ephemeral_resource(
        &self,
        request: Request<wire::open_ephemeral_resource::Request>,
    ) -> Result<Response<wire::open_ephemeral_resource::Response>, Status> {
        Ok(Response::new(wire::open_ephemeral_resource::Response {
            diagnostics: unknown_type("ephemeral resource", &request.into_inner().type_name),
            ..Default::default()
        }))
    }

    async fn renew_ephemeral_resource(
        &self,
        request: Request<wire::renew_ephemeral_resource::Request>,
    ) -> Result<Response<wire::renew_ephemeral_resource::Response>, Status> {
        Ok(Response::new(wire::renew_ephemeral_resource::Response {
            diagnostics: unknown_type("ephemeral resource", &request.into_inner().type_name),
            ..Default::default()
        }))
    }

    async fn close_ephemeral_resource(
        &self,
        request: Request<wire::close_ephemeral_resource::Request>,
    ) -> Result<Response<wire::close_ephemeral_resource::Response>, Status> {
        Ok(Response::new(wire::close_ephemeral_resource::Response {
            diagnostics: unknown_type("ephemeral resource", &request.into_inner().type_name),
        }))
    }

    type ListResourceStream = Stream_<wire::list_resource::Event>;

    async fn list_resource(
        &self,
        request: Request<wire::list_resource::Request>,
    ) -> Result<Response<Self::ListResourceStream>, Status> {
        self.handle_list_resource(request).await
    }

    async fn validate_list_resource_config(
        &self,
        request: Request<wire::validate_list_resource_config::Request>,
    ) -> Result<Response<wire::validate_list_resource_config::Response>, Status> {
        self.handle_validate_list_resource_config(request).await
    }

    async fn get_functions(
        &self,
        request: Request<wire::get_functions::Request>,
    ) -> Result<Response<wire::get_functions::Response>, Status> {
        self.handle_get_functions(request).await
    }

    async fn call_function(
        &self,
        request: Request<wire::call_function::Request>,
    ) -> Result<Response<wire::call_function::Response>, Status> {
        self.handle_call_function(request).await
    }

    async fn validate_state_store_config(
        &self,
        request: Request<wire::validate_state_store::Request>,
    ) -> Result<Response<wire::validate_state_store::Response>, Status> {
        Ok(Response::new(wire::validate_state_store::Response {
            diagnostics: unknown_type("state store", &request.into_inner().type_name),
        }))
    }

    async fn configure_state_store(
        &self,
        request: Request<wire::configure_state_store::Request>,
    ) -> Result<Response<wire::configure_state_store::Response>, Status> {
        Ok(Response::new(wire::configure_state_store::Response {
            diagnostics: unknown_type("state store", &request.into_inner().type_name),
            capabilities: None,
        }))
    }

    type ReadStateBytesStream = Stream_<wire::read_state_bytes::Response>;

    async fn read_state_bytes(
        &self,
        request: Request<wire::read_state_bytes::Request>,
    ) -> Result<Response<Self::ReadStateBytesStream>, Status> {
        let diagnostics = unknown_type("state store", &request.into_inner().type_name);
        Ok(Response::new(Box::pin(futures::stream::once(async move {
            Ok(wire::read_state_bytes::Response {
                diagnostics,
                ..Default::default()
            })
        }))))
    }

    async fn write_state_bytes(
        &self,
        request: Request<Streaming<wire::write_state_bytes::RequestChunk>>,
    ) -> Result<Response<wire::write_state_bytes::Response>, Status> {
        let mut chunks = request.into_inner();
        let mut type_name = String::new();
        while let Some(chunk) = chunks.next().await {
            if let Some(meta) = chunk.ok().and_then(|chunk| chunk.meta) {
                if type_name.is_empty() {
                    type_name = meta.type_name;
                }
            }
        }
        Ok(Response::new(wire::write_state_bytes::Response {
            diagnostics: unknown_type("state store", &type_name),
        }))
    }

    async fn get_states(
        &self,
        request: Request<wire::get_states::Request>,
    ) -> Result<Response<wire::get_states::Response>, Status> {
        Ok(Response::new(wire::get_states::Response {
            state_id: Vec::new(),
            diagnostics: unknown_type("state store", &request.into_inner().type_name),
        }))
    }

    async fn delete_state(
        &self,
        request: Request<wire::delete_state::Request>,
    ) -> Result<Response<wire::delete_state::Response>, Status> {
        Ok(Response::new(wire::delete_state::Response {
            diagnostics: unknown_type("state store", &request.into_inner().type_name),
        }))
    }

    async fn lock_state(
        &self,
        request: Request<wire::lock_state::Request>,
    ) -> Result<Response<wire::lock_state::Response>, Status> {
        Ok(Response::new(wire::lock_state::Response {
            lock_id: String::new(),
            diagnostics: unknown_type("state store", &request.into_inner().type_name),
        }))
    }

    async fn unlock_state(
        &self,
        request: Request<wire::unlock_state::Request>,
    ) -> Result<Response<wire::unlock_state::Response>, Status> {
        Ok(Response::new(wire::unlock_state::Response {
            diagnostics: unknown_type("state store", &request.into_inner().type_name),
        }))
    }

    async fn plan_action(
        &self,
        request: Request<wire::plan_action::Request>,
    ) -> Result<Response<wire::plan_action::Response>, Status> {
        self.handle_plan_action(request).await
    }

    type InvokeActionStream = Stream_<wire::invoke_action::Event>;

    async fn invoke_action(
        &self,
        request: Request<wire::invoke_action::Request>,
    ) -> Result<Response<Self::InvokeActionStream>, Status> {
        self.handle_invoke_action(request).await
    }

    async fn validate_action_config(
        &self,
        request: Request<wire::validate_action_config::Request>,
    ) -> Result<Response<wire::validate_action_config::Response>, Status> {
        self.handle_validate_action_config(request).await
    }

    async fn stop_provider(
        &self,
        _request: Request<wire::stop_provider::Request>,
    ) -> Result<Response<wire::stop_provider::Response>, Status> {
        self.provider.stop().await;
        Ok(Response::new(wire::stop_provider::Response {
            error: String::new(),
        }))
    }
}
