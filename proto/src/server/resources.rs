//! Managed resources' RPCs: validation, state and identity upgrades, read, plan, apply,
//! import and config generation, each decoded against the resource's schema.

use super::*;

impl<P: Provider> ProviderService<P> {
    pub(super) async fn handle_validate_resource_config(
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

    pub(super) async fn handle_upgrade_resource_state(
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

    pub(super) async fn handle_get_resource_identity_schemas(
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

    pub(super) async fn handle_upgrade_resource_identity(
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

    pub(super) async fn handle_read_resource(
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

    pub(super) async fn handle_plan_resource_change(
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

    pub(super) async fn handle_apply_resource_change(
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

    pub(super) async fn handle_import_resource_state(
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

    pub(super) async fn handle_move_resource_state(
        &self,
        _request: Request<wire::move_resource_state::Request>,
    ) -> Result<Response<wire::move_resource_state::Response>, Status> {
        Ok(Response::new(wire::move_resource_state::Response {
            diagnostics: unsupported("moving state from another resource type"),
            ..Default::default()
        }))
    }

    pub(super) async fn handle_generate_resource_config(
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
}
