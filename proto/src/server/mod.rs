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

fn function_to_wire(function: &dyn Function) -> wire::Function {
    let definition = function.definition();
    let parameter = |p: &crate::provider::Parameter| wire::function::Parameter {
        name: p.name.clone(),
        r#type: p.r#type.to_json_bytes(),
        allow_null_value: p.allow_null,
        allow_unknown_values: p.allow_unknown,
        description: p.description.clone(),
        description_kind: wire::StringKind::Markdown as i32,
    };
    wire::Function {
        parameters: definition.parameters.iter().map(parameter).collect(),
        variadic_parameter: definition.variadic.as_ref().map(parameter),
        r#return: Some(wire::function::Return {
            r#type: definition.return_type.to_json_bytes(),
        }),
        summary: definition.summary.clone(),
        description: definition.description.clone(),
        description_kind: wire::StringKind::Markdown as i32,
        deprecation_message: String::new(),
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

fn unknown_type(kind: &str, type_name: &str) -> Vec<wire::Diagnostic> {
    Diagnostics::from_error(
        &format!("Unknown {kind} type"),
        &format!("This provider has no {kind} type `{type_name}`."),
    )
    .to_wire()
}

/// Adds `extra` to `diagnostics`, leaving out any already there (a resource that still
/// checks by hand what its schema declares reports each problem once).
fn merge(diagnostics: &mut Diagnostics, extra: Diagnostics) {
    for diagnostic in extra.items {
        if !diagnostics.items.contains(&diagnostic) {
            diagnostics.items.push(diagnostic);
        }
    }
}

fn unsupported(what: &str) -> Vec<wire::Diagnostic> {
    Diagnostics::from_error(
        &format!("{what} not supported"),
        &format!("The mig provider does not implement {what}."),
    )
    .to_wire()
}

fn decode(value: Option<&wire::DynamicValue>, ty: &Type) -> Result<Value, Vec<wire::Diagnostic>> {
    let Some(value) = value else {
        return Ok(Value::Null);
    };
    let decoded = if !value.msgpack.is_empty() {
        codec::from_msgpack(&value.msgpack, ty)
    } else if !value.json.is_empty() {
        codec::from_json(&value.json, ty, false)
    } else {
        return Ok(Value::Null);
    };
    decoded.map_err(|error| {
        Diagnostics::from_error(
            "Value does not match the schema",
            &format!("Terraform sent a value the provider cannot read: {error}. This is a bug; please report it."),
        )
        .to_wire()
    })
}

fn encode(value: &Value, ty: &Type) -> Option<wire::DynamicValue> {
    Some(wire::DynamicValue {
        msgpack: codec::to_msgpack(value, ty),
        json: Vec::new(),
    })
}

fn decode_identity(
    data: Option<&wire::ResourceIdentityData>,
    ty: Option<&Type>,
) -> Result<Option<Value>, Vec<wire::Diagnostic>> {
    match (data.and_then(|d| d.identity_data.as_ref()), ty) {
        (Some(value), Some(ty)) => decode(Some(value), ty).map(|v| (!v.is_null()).then_some(v)),
        _ => Ok(None),
    }
}

fn encode_identity(value: Option<&Value>, ty: Option<&Type>) -> Option<wire::ResourceIdentityData> {
    match (value, ty) {
        (Some(value), Some(ty)) if !value.is_null() => Some(wire::ResourceIdentityData {
            identity_data: encode(value, ty),
        }),
        _ => None,
    }
}

fn capabilities(wire: Option<&wire::ClientCapabilities>) -> ClientCapabilities {
    wire.map(|c| ClientCapabilities {
        deferral_allowed: c.deferral_allowed,
        write_only_attributes_allowed: c.write_only_attributes_allowed,
        store_planned_private: c.store_planned_private,
        computed_blocks_allowed: c.computed_blocks_allowed,
    })
    .unwrap_or_default()
}

fn deferred(reason: Option<DeferredReason>) -> Option<wire::Deferred> {
    use wire::deferred::Reason;
    reason.map(|reason| wire::Deferred {
        reason: match reason {
            DeferredReason::ResourceConfigUnknown => Reason::ResourceConfigUnknown,
            DeferredReason::ProviderConfigUnknown => Reason::ProviderConfigUnknown,
            DeferredReason::AbsentPrerequisite => Reason::AbsentPrereq,
        } as i32,
    })
}

/// A copy of `state` that is valid as configuration: attributes only the provider sets
/// (computed, not optional) become null. Used by `terraform plan -generate-config-out`.
fn config_from_state(state: &Value, block: &crate::schema::Block) -> Value {
    let Some(fields) = state.as_object() else {
        return state.clone();
    };
    let mut out: BTreeMap<String, Value> = fields.clone();
    for attribute in &block.attributes {
        if attribute.computed && !attribute.optional {
            out.insert(attribute.name.clone(), Value::Null);
        }
    }
    for nested in &block.block_types {
        if let Some(value) = fields.get(&nested.type_name) {
            let converted = match value {
                Value::List(items) => Value::List(
                    items
                        .iter()
                        .map(|v| config_from_state(v, &nested.block))
                        .collect(),
                ),
                Value::Set(items) => Value::Set(
                    items
                        .iter()
                        .map(|v| config_from_state(v, &nested.block))
                        .collect(),
                ),
                Value::Map(items) => Value::Map(
                    items
                        .iter()
                        .map(|(k, v)| (k.clone(), config_from_state(v, &nested.block)))
                        .collect(),
                ),
                Value::Object(_) => config_from_state(value, &nested.block),
                other => other.clone(),
            };
            out.insert(nested.type_name.clone(), converted);
        }
    }
    Value::Object(out)
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
        let request = request.into_inner();
        let empty = wire::validate_resource_config::Response::default();
        let entry = try_decode!(self.resource(&request.type_name), empty);
        let config = try_decode!(decode(request.config.as_ref(), &entry.ty), empty);
        let mut diagnostics = entry.schema.block.validate(&config);
        let client = capabilities(request.client_capabilities.as_ref());
        if entry.schema.block.has_computed_blocks() && !client.computed_blocks_allowed {
            diagnostics.error(
                "Terraform too old for this resource",
                &format!(
                    "{} has blocks the provider sets when the configuration leaves them out \
                     (computed blocks, plugin protocol 6.11). This Terraform does not support \
                     them: use Terraform 1.16 or later.",
                    request.type_name
                ),
            );
        }
        merge(
            &mut diagnostics,
            entry.resource.validate_config(&config).await,
        );
        Ok(Response::new(wire::validate_resource_config::Response {
            diagnostics: diagnostics.to_wire(),
        }))
    }

    async fn validate_data_resource_config(
        &self,
        request: Request<wire::validate_data_resource_config::Request>,
    ) -> Result<Response<wire::validate_data_resource_config::Response>, Status> {
        let request = request.into_inner();
        let empty = wire::validate_data_resource_config::Response::default();
        let entry = try_decode!(
            self.data_sources
                .get(&request.type_name)
                .ok_or_else(|| unknown_type("data source", &request.type_name)),
            empty
        );
        let config = try_decode!(decode(request.config.as_ref(), &entry.ty), empty);
        let mut diagnostics = entry.schema.block.validate(&config);
        merge(
            &mut diagnostics,
            entry.data_source.validate_config(&config).await,
        );
        Ok(Response::new(
            wire::validate_data_resource_config::Response {
                diagnostics: diagnostics.to_wire(),
            },
        ))
    }

    async fn upgrade_resource_state(
        &self,
        request: Request<wire::upgrade_resource_state::Request>,
    ) -> Result<Response<wire::upgrade_resource_state::Response>, Status> {
        let request = request.into_inner();
        let empty = wire::upgrade_resource_state::Response::default();
        let entry = try_decode!(self.resource(&request.type_name), empty);
        let raw = request.raw_state.unwrap_or_default();
        if raw.json.is_empty() {
            let diagnostics = if raw.flatmap.is_empty() {
                Vec::new()
            } else {
                unsupported("legacy flatmap state")
            };
            return Ok(Response::new(wire::upgrade_resource_state::Response {
                upgraded_state: encode(&Value::Null, &entry.ty),
                diagnostics,
            }));
        }
        let state = try_decode!(
            codec::from_json(&raw.json, &entry.ty, true).map_err(|error| {
                Diagnostics::from_error(
                    "Cannot read stored state",
                    &format!(
                        "The state of this {} does not match its schema: {error}.",
                        request.type_name
                    ),
                )
                .to_wire()
            }),
            empty
        );
        match entry.resource.upgrade_state(request.version, state).await {
            Ok(upgraded) => Ok(Response::new(wire::upgrade_resource_state::Response {
                upgraded_state: encode(&upgraded, &entry.ty),
                diagnostics: Vec::new(),
            })),
            Err(diagnostics) => Ok(Response::new(wire::upgrade_resource_state::Response {
                upgraded_state: None,
                diagnostics: diagnostics.to_wire(),
            })),
        }
    }

    async fn get_resource_identity_schemas(
        &self,
        _request: Request<wire::get_resource_identity_schemas::Request>,
    ) -> Result<Response<wire::get_resource_identity_schemas::Response>, Status> {
        let identity_schemas = self
            .resources
            .iter()
            .filter_map(|(name, entry)| {
                entry
                    .resource
                    .identity_schema()
                    .map(|s| (name.clone(), s.to_wire()))
            })
            .collect();
        Ok(Response::new(
            wire::get_resource_identity_schemas::Response {
                identity_schemas,
                diagnostics: Vec::new(),
            },
        ))
    }

    async fn upgrade_resource_identity(
        &self,
        request: Request<wire::upgrade_resource_identity::Request>,
    ) -> Result<Response<wire::upgrade_resource_identity::Response>, Status> {
        let request = request.into_inner();
        let empty = wire::upgrade_resource_identity::Response::default();
        let entry = try_decode!(self.resource(&request.type_name), empty);
        let Some(ty) = entry.identity_type.as_ref() else {
            return Ok(Response::new(wire::upgrade_resource_identity::Response {
                upgraded_identity: None,
                diagnostics: unsupported("resource identity for this type"),
            }));
        };
        let raw = request.raw_identity.unwrap_or_default();
        let identity = try_decode!(
            codec::from_json(&raw.json, ty, true).map_err(|error| {
                Diagnostics::from_error("Cannot read stored identity", &error.to_string()).to_wire()
            }),
            empty
        );
        Ok(Response::new(wire::upgrade_resource_identity::Response {
            upgraded_identity: encode_identity(Some(&identity), Some(ty)),
            diagnostics: Vec::new(),
        }))
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
        let request = request.into_inner();
        let empty = wire::read_resource::Response::default();
        let entry = try_decode!(self.resource(&request.type_name), empty);
        let current_state = try_decode!(decode(request.current_state.as_ref(), &entry.ty), empty);
        let current_identity = try_decode!(
            decode_identity(
                request.current_identity.as_ref(),
                entry.identity_type.as_ref()
            ),
            empty
        );
        let of = |state: &Value| entry.resource.identity_of(state);
        let kept = Kept::new(current_identity.as_ref(), &current_state, &of);
        let response = entry
            .resource
            .read(ReadRequest {
                current_state,
                private: request.private,
                current_identity,
                client_capabilities: capabilities(request.client_capabilities.as_ref()),
            })
            .await;
        let new_identity = response
            .new_identity
            .or_else(|| kept.after(&response.new_state, &of));
        Ok(Response::new(wire::read_resource::Response {
            new_state: encode(&response.new_state, &entry.ty),
            diagnostics: response.diagnostics.to_wire(),
            private: response.private,
            deferred: deferred(response.deferred),
            new_identity: encode_identity(new_identity.as_ref(), entry.identity_type.as_ref()),
        }))
    }

    async fn plan_resource_change(
        &self,
        request: Request<wire::plan_resource_change::Request>,
    ) -> Result<Response<wire::plan_resource_change::Response>, Status> {
        let request = request.into_inner();
        let empty = wire::plan_resource_change::Response::default();
        let entry = try_decode!(self.resource(&request.type_name), empty);
        let prior_state = try_decode!(decode(request.prior_state.as_ref(), &entry.ty), empty);
        let proposed_new_state = try_decode!(
            decode(request.proposed_new_state.as_ref(), &entry.ty),
            empty
        );
        let config = try_decode!(decode(request.config.as_ref(), &entry.ty), empty);
        let prior_identity = try_decode!(
            decode_identity(
                request.prior_identity.as_ref(),
                entry.identity_type.as_ref()
            ),
            empty
        );
        let block = &entry.schema.block;
        // The declarative layer first: defaults, computed values, replacement.
        let proposed_new_state =
            planning::plan_proposed(block, &config, &prior_state, &proposed_new_state);
        let declared_replace = planning::requires_replace(block, &prior_state, &proposed_new_state);
        let of = |state: &Value| entry.resource.identity_of(state);
        let kept = Kept::new(prior_identity.as_ref(), &prior_state, &of);
        let response = entry
            .resource
            .plan(PlanRequest {
                prior_state: prior_state.clone(),
                proposed_new_state,
                config,
                prior_private: request.prior_private,
                planned_private: request.planned_private,
                prior_identity,
                client_capabilities: capabilities(request.client_capabilities.as_ref()),
                requires_replace: declared_replace,
            })
            .await;
        // Recomputed on what the resource planned (it may have refined values), then the
        // resource's own paths added.
        let mut requires_replace =
            planning::requires_replace(block, &prior_state, &response.planned_state);
        for path in response.requires_replace {
            if !requires_replace.contains(&path) {
                requires_replace.push(path);
            }
        }
        let planned_identity = response
            .planned_identity
            .or_else(|| kept.planned(&response.planned_state, !requires_replace.is_empty(), &of));
        Ok(Response::new(wire::plan_resource_change::Response {
            planned_state: encode(&response.planned_state, &entry.ty),
            requires_replace: requires_replace.iter().map(|p| p.to_wire()).collect(),
            planned_private: response.planned_private,
            diagnostics: response.diagnostics.to_wire(),
            legacy_type_system: false,
            deferred: deferred(response.deferred),
            planned_identity: encode_identity(
                planned_identity.as_ref(),
                entry.identity_type.as_ref(),
            ),
        }))
    }

    async fn apply_resource_change(
        &self,
        request: Request<wire::apply_resource_change::Request>,
    ) -> Result<Response<wire::apply_resource_change::Response>, Status> {
        let request = request.into_inner();
        let empty = wire::apply_resource_change::Response::default();
        let entry = try_decode!(self.resource(&request.type_name), empty);
        let prior_state = try_decode!(decode(request.prior_state.as_ref(), &entry.ty), empty);
        let planned_state = try_decode!(decode(request.planned_state.as_ref(), &entry.ty), empty);
        let config = try_decode!(decode(request.config.as_ref(), &entry.ty), empty);
        let planned_identity = try_decode!(
            decode_identity(
                request.planned_identity.as_ref(),
                entry.identity_type.as_ref()
            ),
            empty
        );
        let of = |state: &Value| entry.resource.identity_of(state);
        let kept = Kept::new(planned_identity.as_ref(), &prior_state, &of);
        let response = entry
            .resource
            .apply(ApplyRequest {
                prior_state,
                planned_state,
                config,
                planned_private: request.planned_private,
                planned_identity,
            })
            .await;
        let new_identity = response
            .new_identity
            .or_else(|| kept.after(&response.new_state, &of));
        Ok(Response::new(wire::apply_resource_change::Response {
            new_state: encode(&response.new_state, &entry.ty),
            private: response.private,
            diagnostics: response.diagnostics.to_wire(),
            legacy_type_system: false,
            new_identity: encode_identity(new_identity.as_ref(), entry.identity_type.as_ref()),
        }))
    }

    async fn import_resource_state(
        &self,
        request: Request<wire::import_resource_state::Request>,
    ) -> Result<Response<wire::import_resource_state::Response>, Status> {
        let request = request.into_inner();
        let empty = wire::import_resource_state::Response::default();
        let entry = try_decode!(self.resource(&request.type_name), empty);
        let identity = try_decode!(
            decode_identity(request.identity.as_ref(), entry.identity_type.as_ref()),
            empty
        );
        let response = entry
            .resource
            .import(ImportRequest {
                id: request.id,
                identity,
                client_capabilities: capabilities(request.client_capabilities.as_ref()),
            })
            .await;
        Ok(Response::new(wire::import_resource_state::Response {
            imported_resources: response
                .imported
                .iter()
                .map(|imported| wire::import_resource_state::ImportedResource {
                    type_name: request.type_name.clone(),
                    state: encode(&imported.state, &entry.ty),
                    private: imported.private.clone(),
                    identity: encode_identity(
                        imported
                            .identity
                            .clone()
                            .or_else(|| entry.resource.identity_of(&imported.state))
                            .as_ref(),
                        entry.identity_type.as_ref(),
                    ),
                })
                .collect(),
            diagnostics: response.diagnostics.to_wire(),
            deferred: deferred(response.deferred),
        }))
    }

    async fn move_resource_state(
        &self,
        _request: Request<wire::move_resource_state::Request>,
    ) -> Result<Response<wire::move_resource_state::Response>, Status> {
        Ok(Response::new(wire::move_resource_state::Response {
            diagnostics: unsupported("moving state from another resource type"),
            ..Default::default()
        }))
    }

    async fn read_data_source(
        &self,
        request: Request<wire::read_data_source::Request>,
    ) -> Result<Response<wire::read_data_source::Response>, Status> {
        let request = request.into_inner();
        let empty = wire::read_data_source::Response::default();
        let entry = try_decode!(
            self.data_sources
                .get(&request.type_name)
                .ok_or_else(|| unknown_type("data source", &request.type_name)),
            empty
        );
        let config = try_decode!(decode(request.config.as_ref(), &entry.ty), empty);
        let response = entry
            .data_source
            .read(DataReadRequest {
                config: entry.schema.block.apply_defaults(&config),
                client_capabilities: capabilities(request.client_capabilities.as_ref()),
            })
            .await;
        Ok(Response::new(wire::read_data_source::Response {
            state: encode(&response.state, &entry.ty),
            diagnostics: response.diagnostics.to_wire(),
            deferred: deferred(response.deferred),
        }))
    }

    async fn generate_resource_config(
        &self,
        request: Request<wire::generate_resource_config::Request>,
    ) -> Result<Response<wire::generate_resource_config::Response>, Status> {
        let request = request.into_inner();
        let empty = wire::generate_resource_config::Response::default();
        let entry = try_decode!(self.resource(&request.type_name), empty);
        let state = try_decode!(decode(request.state.as_ref(), &entry.ty), empty);
        let config = config_from_state(&state, &entry.schema.block);
        Ok(Response::new(wire::generate_resource_config::Response {
            config: encode(&config, &entry.ty),
            diagnostics: Vec::new(),
        }))
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
        let request = request.into_inner();
        let error_event = |diagnostics: Vec<wire::Diagnostic>| -> Self::ListResourceStream {
            Box::pin(futures::stream::once(async move {
                Ok(wire::list_resource::Event {
                    diagnostic: diagnostics,
                    ..Default::default()
                })
            }))
        };
        let Some(entry) = self.lists.get(&request.type_name) else {
            return Ok(Response::new(error_event(unknown_type(
                "list resource",
                &request.type_name,
            ))));
        };
        let Some(resource) = self.resources.get(&request.type_name) else {
            return Ok(Response::new(error_event(unknown_type(
                "resource",
                &request.type_name,
            ))));
        };
        let config = match decode(request.config.as_ref(), &entry.ty) {
            Ok(config) => config,
            Err(diagnostics) => return Ok(Response::new(error_event(diagnostics))),
        };
        let identity_type = resource.identity_type.clone();
        let resource_type = resource.ty.clone();
        let list = entry.list.clone();
        let (sink, results) = ListSink::channel(64);
        let (done_sender, done) = tokio::sync::oneshot::channel();
        let list_request = ListRequest {
            config,
            include_resource_object: request.include_resource_object,
            limit: request.limit,
        };
        tokio::spawn(async move {
            let diagnostics = list.list(list_request, sink).await;
            let _ = done_sender.send(diagnostics);
        });
        let limit = if request.limit > 0 {
            request.limit as usize
        } else {
            usize::MAX
        };
        let events = tokio_stream::wrappers::ReceiverStream::new(results)
            .take(limit)
            .map(move |result| {
                Ok(wire::list_resource::Event {
                    identity: encode_identity(Some(&result.identity), identity_type.as_ref()),
                    display_name: result.display_name,
                    resource_object: result
                        .resource_object
                        .as_ref()
                        .and_then(|v| encode(v, &resource_type)),
                    diagnostic: result.diagnostics.to_wire(),
                })
            });
        // Errors the listing ends with arrive as one last event.
        let tail = futures::stream::once(async move {
            let diagnostics = done.await.unwrap_or_default();
            Ok(wire::list_resource::Event {
                diagnostic: diagnostics.to_wire(),
                ..Default::default()
            })
        })
        .filter(|event: &Result<wire::list_resource::Event, Status>| {
            let keep = event
                .as_ref()
                .map(|e| !e.diagnostic.is_empty())
                .unwrap_or(true);
            futures::future::ready(keep)
        });
        Ok(Response::new(Box::pin(events.chain(tail))))
    }

    async fn validate_list_resource_config(
        &self,
        request: Request<wire::validate_list_resource_config::Request>,
    ) -> Result<Response<wire::validate_list_resource_config::Response>, Status> {
        let request = request.into_inner();
        let empty = wire::validate_list_resource_config::Response::default();
        let entry = try_decode!(
            self.lists
                .get(&request.type_name)
                .ok_or_else(|| unknown_type("list resource", &request.type_name)),
            empty
        );
        let config = try_decode!(decode(request.config.as_ref(), &entry.ty), empty);
        let mut diagnostics = planning::deprecations(&entry.list.schema().block, &config);
        merge(&mut diagnostics, entry.list.validate_config(&config).await);
        Ok(Response::new(
            wire::validate_list_resource_config::Response {
                diagnostics: diagnostics.to_wire(),
            },
        ))
    }

    async fn get_functions(
        &self,
        _request: Request<wire::get_functions::Request>,
    ) -> Result<Response<wire::get_functions::Response>, Status> {
        Ok(Response::new(wire::get_functions::Response {
            functions: self.functions_response.clone(),
            diagnostics: Vec::new(),
        }))
    }

    async fn call_function(
        &self,
        request: Request<wire::call_function::Request>,
    ) -> Result<Response<wire::call_function::Response>, Status> {
        let request = request.into_inner();
        let failure = |text: String, argument: Option<i64>| {
            Ok(Response::new(wire::call_function::Response {
                result: None,
                error: Some(wire::FunctionError {
                    text,
                    function_argument: argument,
                }),
            }))
        };
        let Some(function) = self.functions.get(&request.name) else {
            return failure(
                format!("this provider has no function {:?}", request.name),
                None,
            );
        };
        let definition = function.definition();
        let mut args = Vec::with_capacity(request.arguments.len());
        for (index, argument) in request.arguments.iter().enumerate() {
            let ty = match definition.parameters.get(index) {
                Some(parameter) => &parameter.r#type,
                None => match &definition.variadic {
                    Some(parameter) => &parameter.r#type,
                    None => {
                        return failure(
                            format!("too many arguments: takes {}", definition.parameters.len()),
                            None,
                        )
                    }
                },
            };
            match decode(Some(argument), ty) {
                Ok(value) => args.push(value),
                Err(_) => {
                    return failure(
                        format!("argument {} has the wrong type", index + 1),
                        Some(index as i64),
                    )
                }
            }
        }
        match function.call(args).await {
            Ok(result) => Ok(Response::new(wire::call_function::Response {
                result: encode(&result, &definition.return_type),
                error: None,
            })),
            Err(error) => failure(error.text, error.argument),
        }
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
        let request = request.into_inner();
        let empty = wire::plan_action::Response::default();
        let entry = try_decode!(
            self.actions
                .get(&request.action_type)
                .ok_or_else(|| unknown_type("action", &request.action_type)),
            empty
        );
        let config = try_decode!(decode(request.config.as_ref(), &entry.ty), empty);
        let mut diagnostics = entry.schema.block.validate(&config);
        if !diagnostics.has_errors() {
            let config = entry.schema.block.apply_defaults(&config);
            merge(&mut diagnostics, entry.action.plan(&config).await);
        }
        Ok(Response::new(wire::plan_action::Response {
            diagnostics: diagnostics.to_wire(),
            deferred: None,
        }))
    }

    type InvokeActionStream = Stream_<wire::invoke_action::Event>;

    async fn invoke_action(
        &self,
        request: Request<wire::invoke_action::Request>,
    ) -> Result<Response<Self::InvokeActionStream>, Status> {
        use wire::invoke_action::event::{Completed, Progress as WireProgress, Type as EventType};
        let request = request.into_inner();
        let completed = |diagnostics: Vec<wire::Diagnostic>| wire::invoke_action::Event {
            r#type: Some(EventType::Completed(Completed { diagnostics })),
        };
        let decoded = self
            .actions
            .get(&request.action_type)
            .ok_or_else(|| unknown_type("action", &request.action_type))
            .and_then(|entry| {
                decode(request.config.as_ref(), &entry.ty).map(|config| {
                    (
                        entry.action.clone(),
                        entry.schema.block.apply_defaults(&config),
                    )
                })
            });
        let (action, config) = match decoded {
            Ok(found) => found,
            Err(diagnostics) => {
                let event = completed(diagnostics);
                return Ok(Response::new(Box::pin(futures::stream::once(async move {
                    Ok(event)
                }))));
            }
        };
        let (progress, messages) = Progress::channel(64);
        let (done_sender, done) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let diagnostics = action.invoke(config, progress).await;
            let _ = done_sender.send(diagnostics);
        });
        let progress_events =
            tokio_stream::wrappers::ReceiverStream::new(messages).map(|message| {
                Ok(wire::invoke_action::Event {
                    r#type: Some(EventType::Progress(WireProgress { message })),
                })
            });
        let tail = futures::stream::once(async move {
            let diagnostics = done.await.unwrap_or_else(|_| {
                Diagnostics::from_error(
                    "Action stopped",
                    "The action ended without reporting a result.",
                )
            });
            Ok(completed(diagnostics.to_wire()))
        });
        Ok(Response::new(Box::pin(progress_events.chain(tail))))
    }

    async fn validate_action_config(
        &self,
        request: Request<wire::validate_action_config::Request>,
    ) -> Result<Response<wire::validate_action_config::Response>, Status> {
        let request = request.into_inner();
        let empty = wire::validate_action_config::Response::default();
        let entry = try_decode!(
            self.actions
                .get(&request.type_name)
                .ok_or_else(|| unknown_type("action", &request.type_name)),
            empty
        );
        let config = try_decode!(decode(request.config.as_ref(), &entry.ty), empty);
        let mut diagnostics = entry.schema.block.validate(&config);
        merge(
            &mut diagnostics,
            entry.action.validate_config(&config).await,
        );
        Ok(Response::new(wire::validate_action_config::Response {
            diagnostics: diagnostics.to_wire(),
        }))
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
