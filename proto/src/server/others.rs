//! Data sources, list resources, functions and actions: each RPC decoded against the
//! schema it concerns.

use super::*;

impl<P: Provider> ProviderService<P> {
    pub(super) async fn handle_validate_data_resource_config(
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

    pub(super) async fn handle_read_data_source(
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

    pub(super) async fn handle_list_resource(
        &self,
        request: Request<wire::list_resource::Request>,
    ) -> Result<Response<Stream_<wire::list_resource::Event>>, Status> {
        let request = request.into_inner();
        let error_event =
            |diagnostics: Vec<wire::Diagnostic>| -> Stream_<wire::list_resource::Event> {
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

    pub(super) async fn handle_validate_list_resource_config(
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

    pub(super) async fn handle_get_functions(
        &self,
        _request: Request<wire::get_functions::Request>,
    ) -> Result<Response<wire::get_functions::Response>, Status> {
        Ok(Response::new(wire::get_functions::Response {
            functions: self.functions_response.clone(),
            diagnostics: Vec::new(),
        }))
    }

    pub(super) async fn handle_call_function(
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

    pub(super) async fn handle_plan_action(
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

    pub(super) async fn handle_invoke_action(
        &self,
        request: Request<wire::invoke_action::Request>,
    ) -> Result<Response<Stream_<wire::invoke_action::Event>>, Status> {
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

    pub(super) async fn handle_validate_action_config(
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
}
