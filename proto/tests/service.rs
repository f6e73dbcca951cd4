//! The gRPC service driven as Terraform drives it, with msgpack on the wire, against a small
//! provider defined here.

use std::sync::Arc;

use async_trait::async_trait;
use tfplugin::codec;
use tfplugin::wire::tfplugin6 as wire;
use tfplugin::wire::tfplugin6::provider_server::Provider as _;
use tfplugin::*;
use tonic::Request;

struct Widget;

fn widget_schema() -> Schema {
    Schema::new(
        1,
        Block {
            attributes: vec![
                Attribute::required("name", Type::String).description("The name."),
                Attribute::optional("tags", Type::map(Type::String)),
                Attribute::computed("id", Type::String),
                Attribute::optional("secret", Type::String).sensitive(),
            ],
            ..Block::default()
        },
    )
}

#[async_trait]
impl Resource for Widget {
    fn type_name(&self) -> &'static str {
        "test_widget"
    }
    fn schema(&self) -> Schema {
        widget_schema()
    }
    async fn validate_config(&self, config: &Value) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        if config.get("name").as_str() == Some("") {
            diagnostics.error_at(
                AttributePath::root("name"),
                "Empty name",
                "Give the widget a name.",
            );
        }
        diagnostics
    }
    async fn plan(&self, request: PlanRequest) -> PlanResponse {
        let planned = if request.proposed_new_state.is_null() {
            Value::Null
        } else if request.prior_state.is_null() {
            request.proposed_new_state.with("id", Value::unknown())
        } else {
            request.proposed_new_state.clone()
        };
        PlanResponse {
            planned_state: planned,
            ..PlanResponse::default()
        }
    }
    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        let new_state = if request.planned_state.is_null() {
            Value::Null
        } else {
            let name = request
                .planned_state
                .get("name")
                .as_str()
                .unwrap_or_default()
                .to_string();
            request
                .planned_state
                .with("id", Value::String(format!("w-{name}")))
        };
        ApplyResponse {
            new_state,
            ..ApplyResponse::default()
        }
    }
    async fn read(&self, request: ReadRequest) -> ReadResponse {
        ReadResponse {
            new_state: request.current_state,
            ..ReadResponse::default()
        }
    }
}

struct Echo;

#[async_trait]
impl Function for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn definition(&self) -> FunctionDefinition {
        FunctionDefinition {
            parameters: vec![Parameter {
                name: "text".into(),
                r#type: Type::String,
                allow_null: false,
                allow_unknown: false,
                description: String::new(),
            }],
            variadic: None,
            return_type: Type::String,
            summary: "echo".into(),
            description: String::new(),
        }
    }
    async fn call(&self, args: Vec<Value>) -> Result<Value, FunctionError> {
        match args[0].as_str() {
            Some("") => Err(FunctionError {
                text: "text: must not be empty".into(),
                argument: Some(0),
            }),
            Some(text) => Ok(Value::String(text.to_uppercase())),
            None => unreachable!("Terraform checks types"),
        }
    }
}

/// A resource that declares instead of coding: a default, replacement, a validator, a
/// computed value kept across updates; its own plan adds one replacement path by hand.
struct Gadget;

fn gadget_schema() -> Schema {
    Schema::new(
        0,
        Block {
            attributes: vec![
                Attribute::required("name", Type::String).requires_replace_ignoring_case(),
                Attribute::optional("mode", Type::String)
                    .default_value("enforce")
                    .validator(Validator::one_of("Invalid mode", &["enforce", "audit"])),
                Attribute::optional("size", Type::Number),
                Attribute::computed("id", Type::String).use_state_for_unknown(),
                Attribute::computed("revision", Type::Number),
            ],
            ..Block::default()
        },
    )
}

#[async_trait]
impl Resource for Gadget {
    fn type_name(&self) -> &'static str {
        "test_declared"
    }
    fn schema(&self) -> Schema {
        gadget_schema()
    }
    async fn plan(&self, request: PlanRequest) -> PlanResponse {
        let mut response = PlanResponse {
            planned_state: request.proposed_new_state.clone(),
            ..PlanResponse::default()
        };
        // A rule of its own: growing is fine, shrinking replaces.
        let (before, after) = (
            request.prior_state.get("size").as_i64(),
            request.proposed_new_state.get("size").as_i64(),
        );
        if matches!((before, after), (Some(b), Some(a)) if a < b) {
            response.requires_replace.push(AttributePath::root("size"));
        }
        response
    }
    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        ApplyResponse {
            new_state: request.planned_state,
            ..ApplyResponse::default()
        }
    }
    async fn read(&self, request: ReadRequest) -> ReadResponse {
        ReadResponse {
            new_state: request.current_state,
            ..ReadResponse::default()
        }
    }
}

/// A resource with deprecated arguments and blocks, and one that echoes the 6.11
/// `planned_private` of its first plan.
struct Legacy;

fn legacy_schema() -> Schema {
    Schema::new(
        0,
        Block {
            attributes: vec![
                Attribute::required("name", Type::String),
                Attribute::optional("location", Type::String)
                    .deprecated_because("Use `region` instead."),
                Attribute::optional("old_flag", Type::Bool).deprecated(),
                Attribute::optional("region", Type::String),
                Attribute::computed("token", Type::String),
            ],
            block_types: vec![
                NestedBlock::new(
                    "rule",
                    NestingMode::List,
                    Block {
                        attributes: vec![
                            Attribute::optional("name", Type::String),
                            Attribute::optional("legacy", Type::String)
                                .deprecated_because("Rules match by name only."),
                        ],
                        ..Block::default()
                    },
                ),
                NestedBlock::new(
                    "settings",
                    NestingMode::Single,
                    Block {
                        attributes: vec![Attribute::optional("level", Type::Number)],
                        ..Block::default()
                    },
                )
                .deprecated_because("Settings are read from Azure now."),
            ],
            ..Block::default()
        },
    )
}

#[async_trait]
impl Resource for Legacy {
    fn type_name(&self) -> &'static str {
        "test_legacy"
    }
    fn schema(&self) -> Schema {
        legacy_schema()
    }
    async fn plan(&self, request: PlanRequest) -> PlanResponse {
        // A token planned once: the first plan makes it up, the second (Terraform 1.16+)
        // plans the same one again from planned_private.
        let token = if request.planned_private.is_empty() {
            "t-1".to_string()
        } else {
            String::from_utf8(request.planned_private.clone()).unwrap()
        };
        PlanResponse {
            planned_state: request
                .proposed_new_state
                .with("token", Value::String(token.clone())),
            planned_private: token.into_bytes(),
            ..PlanResponse::default()
        }
    }
    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        ApplyResponse {
            new_state: request.planned_state,
            ..ApplyResponse::default()
        }
    }
    async fn read(&self, request: ReadRequest) -> ReadResponse {
        ReadResponse {
            new_state: request.current_state,
            ..ReadResponse::default()
        }
    }
}

/// A resource with a computed block (protocol 6.11).
struct Observed;

fn observed_schema() -> Schema {
    Schema::new(
        0,
        Block {
            attributes: vec![Attribute::required("name", Type::String)],
            block_types: vec![NestedBlock::new(
                "status",
                NestingMode::List,
                Block {
                    attributes: vec![Attribute::optional("state", Type::String)],
                    ..Block::default()
                },
            )
            .computed()],
            ..Block::default()
        },
    )
}

#[async_trait]
impl Resource for Observed {
    fn type_name(&self) -> &'static str {
        "test_observed"
    }
    fn schema(&self) -> Schema {
        observed_schema()
    }
    async fn plan(&self, request: PlanRequest) -> PlanResponse {
        PlanResponse {
            planned_state: request.proposed_new_state,
            ..PlanResponse::default()
        }
    }
    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        ApplyResponse {
            new_state: request.planned_state,
            ..ApplyResponse::default()
        }
    }
    async fn read(&self, request: ReadRequest) -> ReadResponse {
        ReadResponse {
            new_state: request.current_state,
            ..ReadResponse::default()
        }
    }
}

fn provider_schema() -> Schema {
    Schema::new(
        0,
        Block {
            attributes: vec![
                Attribute::optional("endpoint", Type::String),
                Attribute::optional("environment", Type::String)
                    .deprecated_because("Set `endpoint` instead."),
            ],
            ..Block::default()
        },
    )
}

struct TestProvider;

#[async_trait]
impl Provider for TestProvider {
    fn type_name(&self) -> &'static str {
        "test"
    }
    fn schema(&self) -> Schema {
        provider_schema()
    }
    async fn configure(&self, _request: ConfigureRequest) -> Diagnostics {
        Diagnostics::default()
    }
    fn resources(&self) -> Vec<Arc<dyn Resource>> {
        vec![
            Arc::new(Widget),
            Arc::new(Gadget),
            Arc::new(Legacy),
            Arc::new(Observed),
        ]
    }
    fn functions(&self) -> Vec<Arc<dyn Function>> {
        vec![Arc::new(Echo)]
    }
}

fn service() -> ProviderService<TestProvider> {
    ProviderService::new(Arc::new(TestProvider))
}

fn dynamic(value: &Value, ty: &Type) -> Option<wire::DynamicValue> {
    Some(wire::DynamicValue {
        msgpack: codec::to_msgpack(value, ty),
        json: Vec::new(),
    })
}

#[tokio::test]
async fn schema_lists_resources_and_functions_with_markdown_descriptions() {
    let response = service()
        .get_provider_schema(Request::new(wire::get_provider_schema::Request {}))
        .await
        .unwrap()
        .into_inner();
    let widget = &response.resource_schemas["test_widget"];
    assert_eq!(widget.version, 1);
    let block = widget.block.as_ref().unwrap();
    let secret = block
        .attributes
        .iter()
        .find(|a| a.name == "secret")
        .unwrap();
    assert!(secret.sensitive && secret.optional);
    let name = block.attributes.iter().find(|a| a.name == "name").unwrap();
    assert_eq!(name.r#type, br#""string""#);
    assert_eq!(name.description_kind, wire::StringKind::Markdown as i32);
    assert!(response.functions.contains_key("echo"));
    assert!(response.server_capabilities.unwrap().plan_destroy);
}

#[tokio::test]
async fn validation_errors_point_at_the_attribute() {
    let ty = widget_schema().value_type();
    let config = Value::object([("name", Value::from(""))]);
    let response = service()
        .validate_resource_config(Request::new(wire::validate_resource_config::Request {
            type_name: "test_widget".into(),
            config: dynamic(&config, &ty),
            client_capabilities: None,
        }))
        .await
        .unwrap()
        .into_inner();
    let diagnostic = &response.diagnostics[0];
    assert_eq!(
        diagnostic.severity,
        wire::diagnostic::Severity::Error as i32
    );
    let step = &diagnostic.attribute.as_ref().unwrap().steps[0];
    assert_eq!(
        step.selector,
        Some(wire::attribute_path::step::Selector::AttributeName(
            "name".into()
        ))
    );
}

#[tokio::test]
async fn plan_and_apply_round_trip_through_msgpack_with_unknowns() {
    let ty = widget_schema().value_type();
    let proposed = Value::object([
        ("name", Value::from("a")),
        (
            "tags",
            Value::Map([("env".to_string(), Value::unknown())].into()),
        ),
    ]);
    let plan = service()
        .plan_resource_change(Request::new(wire::plan_resource_change::Request {
            type_name: "test_widget".into(),
            prior_state: dynamic(&Value::Null, &ty),
            proposed_new_state: dynamic(&proposed, &ty),
            config: dynamic(&proposed, &ty),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let planned = codec::from_msgpack(&plan.planned_state.unwrap().msgpack, &ty).unwrap();
    assert!(planned.get("id").is_unknown());
    assert!(
        planned.get("tags").get("env").is_unknown(),
        "unknowns inside maps survive"
    );
    assert!(planned.get("secret").is_null());

    let known = planned.with("tags", Value::Null);
    let apply = service()
        .apply_resource_change(Request::new(wire::apply_resource_change::Request {
            type_name: "test_widget".into(),
            prior_state: dynamic(&Value::Null, &ty),
            planned_state: dynamic(&known, &ty),
            config: dynamic(&proposed, &ty),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let state = codec::from_msgpack(&apply.new_state.unwrap().msgpack, &ty).unwrap();
    assert_eq!(state.get("id").as_str(), Some("w-a"));
}

#[tokio::test]
async fn unknown_resource_types_get_a_diagnostic_not_a_grpc_error() {
    let response = service()
        .read_resource(Request::new(wire::read_resource::Request {
            type_name: "test_gadget".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(response.diagnostics[0].detail.contains("test_gadget"));
}

#[tokio::test]
async fn stored_json_state_is_upgraded_dropping_removed_attributes() {
    let ty = widget_schema().value_type();
    let response = service()
        .upgrade_resource_state(Request::new(wire::upgrade_resource_state::Request {
            type_name: "test_widget".into(),
            version: 0,
            raw_state: Some(wire::RawState {
                json: br#"{"name":"a","id":"w-a","removed_long_ago":true}"#.to_vec(),
                flatmap: Default::default(),
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(
        response.diagnostics.is_empty(),
        "{:?}",
        response.diagnostics
    );
    let state = codec::from_msgpack(&response.upgraded_state.unwrap().msgpack, &ty).unwrap();
    assert_eq!(state.get("id").as_str(), Some("w-a"));
}

#[tokio::test]
async fn functions_return_values_and_argument_errors() {
    let call = |text: &'static str| async move {
        service()
            .call_function(Request::new(wire::call_function::Request {
                name: "echo".into(),
                arguments: vec![dynamic(&Value::from(text), &Type::String).unwrap()],
            }))
            .await
            .unwrap()
            .into_inner()
    };
    let ok = call("hi").await;
    let result = codec::from_msgpack(&ok.result.unwrap().msgpack, &Type::String).unwrap();
    assert_eq!(result.as_str(), Some("HI"));
    let failed = call("").await;
    let error = failed.error.unwrap();
    assert_eq!(error.function_argument, Some(0));
    assert!(error.text.contains("must not be empty"));
}

#[tokio::test]
async fn generated_config_leaves_out_computed_attributes() {
    let ty = widget_schema().value_type();
    let state = Value::object([("name", Value::from("a")), ("id", Value::from("w-a"))]);
    let response = service()
        .generate_resource_config(Request::new(wire::generate_resource_config::Request {
            type_name: "test_widget".into(),
            state: dynamic(&state, &ty),
        }))
        .await
        .unwrap()
        .into_inner();
    let config = codec::from_msgpack(&response.config.unwrap().msgpack, &ty).unwrap();
    assert!(config.get("id").is_null());
    assert_eq!(config.get("name").as_str(), Some("a"));
}

#[tokio::test]
async fn unused_features_answer_with_valid_responses() {
    let service = service();
    let identities = service
        .get_resource_identity_schemas(Request::new(
            wire::get_resource_identity_schemas::Request {},
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(identities.identity_schemas.is_empty());
    let states = service
        .get_states(Request::new(wire::get_states::Request {
            type_name: "x".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(states.diagnostics.len(), 1);
    let metadata = service
        .get_metadata(Request::new(wire::get_metadata::Request {}))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = metadata
        .resources
        .iter()
        .map(|r| r.type_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "test_declared",
            "test_legacy",
            "test_observed",
            "test_widget"
        ],
        "sorted, the same on every call"
    );
}

/// Plans `test_declared` as Terraform would: the proposed state keeps prior values of
/// computed attributes whose config is null.
async fn plan_gadget(prior: &Value, config: &Value) -> (Value, Vec<String>, Vec<wire::Diagnostic>) {
    let ty = gadget_schema().value_type();
    let mut proposed = config.as_object().unwrap().clone();
    for name in ["mode", "id", "revision"] {
        if config.get(name).is_null() {
            proposed.insert(name.into(), prior.get(name).clone());
        }
    }
    let response = service()
        .plan_resource_change(Request::new(wire::plan_resource_change::Request {
            type_name: "test_declared".into(),
            prior_state: dynamic(prior, &ty),
            proposed_new_state: dynamic(&Value::Object(proposed), &ty),
            config: dynamic(config, &ty),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let planned = codec::from_msgpack(&response.planned_state.unwrap().msgpack, &ty).unwrap();
    let replace = response
        .requires_replace
        .iter()
        .map(|path| match &path.steps[0].selector {
            Some(wire::attribute_path::step::Selector::AttributeName(name)) => name.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    (planned, replace, response.diagnostics)
}

fn gadget(fields: &[(&str, Value)]) -> Value {
    let mut all = Value::object([
        ("name", Value::Null),
        ("mode", Value::Null),
        ("size", Value::Null),
        ("id", Value::Null),
        ("revision", Value::Null),
    ]);
    for (name, value) in fields {
        all = all.with(name, value.clone());
    }
    all
}

#[tokio::test]
async fn declared_default_comes_back_when_the_argument_is_removed() {
    // Created with mode = "audit" ...
    let (planned, replace, diagnostics) = plan_gadget(
        &Value::Null,
        &gadget(&[("name", Value::from("g")), ("mode", Value::from("audit"))]),
    )
    .await;
    assert!(diagnostics.is_empty() && replace.is_empty());
    assert_eq!(planned.get("mode"), &Value::from("audit"));
    assert!(planned.get("id").is_unknown() && planned.get("revision").is_unknown());
    let state = planned
        .with("id", Value::from("g-1"))
        .with("revision", Value::int(1));

    // ... then the argument removed: the plan goes back to the default, in place.
    let (planned, replace, _) = plan_gadget(&state, &gadget(&[("name", Value::from("g"))])).await;
    assert_eq!(planned.get("mode"), &Value::from("enforce"));
    assert_eq!(
        planned.get("id"),
        &Value::from("g-1"),
        "use_state_for_unknown"
    );
    assert!(
        planned.get("revision").is_unknown(),
        "changes with the update"
    );
    assert!(replace.is_empty(), "{replace:?}");

    // Applied; the next plan with the same config is empty.
    let state = planned.with("revision", Value::int(2));
    let (planned, replace, _) = plan_gadget(&state, &gadget(&[("name", Value::from("g"))])).await;
    assert_eq!(planned, state, "no spurious diff");
    assert!(replace.is_empty());

    // A new name (not just its case) replaces; the resource's own rule adds to that.
    let (_, replace, _) = plan_gadget(&state, &gadget(&[("name", Value::from("G"))])).await;
    assert!(replace.is_empty(), "case only: {replace:?}");
    let sized = state.with("size", Value::int(3));
    let (_, replace, _) = plan_gadget(
        &sized,
        &gadget(&[("name", Value::from("h")), ("size", Value::int(2))]),
    )
    .await;
    assert_eq!(replace, vec!["name".to_string(), "size".to_string()]);
}

#[tokio::test]
async fn declared_validators_run_at_validation_with_the_path() {
    let ty = gadget_schema().value_type();
    let validate = |config: Value| {
        let ty = ty.clone();
        async move {
            service()
                .validate_resource_config(Request::new(wire::validate_resource_config::Request {
                    type_name: "test_declared".into(),
                    config: dynamic(&config, &ty),
                    client_capabilities: None,
                }))
                .await
                .unwrap()
                .into_inner()
                .diagnostics
        }
    };
    let diagnostics = validate(gadget(&[("mode", Value::from("purge"))])).await;
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].summary, "Invalid mode");
    assert_eq!(
        diagnostics[0].attribute.as_ref().unwrap().steps[0].selector,
        Some(wire::attribute_path::step::Selector::AttributeName(
            "mode".into()
        ))
    );
    assert!(validate(gadget(&[("mode", Value::unknown())]))
        .await
        .is_empty());
}

fn attribute_name(diagnostic: &wire::Diagnostic) -> Vec<String> {
    use wire::attribute_path::step::Selector;
    diagnostic
        .attribute
        .as_ref()
        .map(|path| {
            path.steps
                .iter()
                .map(|step| match &step.selector {
                    Some(Selector::AttributeName(name)) => name.clone(),
                    Some(Selector::ElementKeyInt(i)) => format!("[{i}]"),
                    Some(Selector::ElementKeyString(k)) => format!("[{k:?}]"),
                    None => "?".into(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn legacy(fields: &[(&str, Value)]) -> Value {
    let mut all = Value::object([
        ("name", Value::from("l")),
        ("location", Value::Null),
        ("old_flag", Value::Null),
        ("region", Value::Null),
        ("token", Value::Null),
        ("rule", Value::List(Vec::new())),
        ("settings", Value::Null),
    ]);
    for (name, value) in fields {
        all = all.with(name, value.clone());
    }
    all
}

async fn validate_legacy(
    config: &Value,
    capabilities: Option<wire::ClientCapabilities>,
) -> Vec<wire::Diagnostic> {
    validate_as("test_legacy", &legacy_schema(), config, capabilities).await
}

async fn validate_as(
    type_name: &str,
    schema: &Schema,
    config: &Value,
    capabilities: Option<wire::ClientCapabilities>,
) -> Vec<wire::Diagnostic> {
    service()
        .validate_resource_config(Request::new(wire::validate_resource_config::Request {
            type_name: type_name.into(),
            config: dynamic(config, &schema.value_type()),
            client_capabilities: capabilities,
        }))
        .await
        .unwrap()
        .into_inner()
        .diagnostics
}

#[tokio::test]
async fn deprecation_messages_are_in_the_schema() {
    let response = service()
        .get_provider_schema(Request::new(wire::get_provider_schema::Request {}))
        .await
        .unwrap()
        .into_inner();
    let block = response.resource_schemas["test_legacy"]
        .block
        .clone()
        .unwrap();
    let attribute = |name: &str| {
        block
            .attributes
            .iter()
            .find(|a| a.name == name)
            .unwrap()
            .clone()
    };
    let location = attribute("location");
    assert!(location.deprecated);
    assert_eq!(location.deprecation_message, "Use `region` instead.");
    let old_flag = attribute("old_flag");
    assert!(
        old_flag.deprecated,
        "deprecated() without a message still works"
    );
    assert_eq!(old_flag.deprecation_message, "");
    assert!(!attribute("region").deprecated);

    let settings = block
        .block_types
        .iter()
        .find(|b| b.type_name == "settings")
        .unwrap();
    let settings = settings.block.as_ref().unwrap();
    assert!(settings.deprecated);
    assert_eq!(
        settings.deprecation_message,
        "Settings are read from Azure now."
    );
    let rule = block
        .block_types
        .iter()
        .find(|b| b.type_name == "rule")
        .unwrap();
    let rule = rule.block.as_ref().unwrap();
    assert!(!rule.deprecated && !rule.computed);
    assert_eq!(
        rule.attributes[1].deprecation_message, "Rules match by name only.",
        "{:?}",
        rule.attributes
    );

    let provider = response.provider.unwrap().block.unwrap();
    let environment = provider
        .attributes
        .iter()
        .find(|a| a.name == "environment")
        .unwrap();
    assert!(environment.deprecated);
    assert_eq!(environment.deprecation_message, "Set `endpoint` instead.");
}

#[tokio::test]
async fn a_deprecated_argument_that_is_set_warns_at_validation_naming_it() {
    let diagnostics =
        validate_legacy(&legacy(&[("location", Value::from("westeurope"))]), None).await;
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    let warning = &diagnostics[0];
    assert_eq!(warning.severity, wire::diagnostic::Severity::Warning as i32);
    assert_eq!(warning.summary, "Attribute Deprecated");
    assert_eq!(
        warning.detail,
        "The argument \"location\" is deprecated. Use `region` instead."
    );
    assert_eq!(attribute_name(warning), ["location"]);

    // Without a message: a generic one, still naming the argument.
    let diagnostics = validate_legacy(&legacy(&[("old_flag", Value::Bool(false))]), None).await;
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert!(
        diagnostics[0]
            .detail
            .starts_with("The argument \"old_flag\" is deprecated"),
        "{}",
        diagnostics[0].detail
    );

    // Not set, null or not yet known: no warning (as terraform-plugin-framework).
    assert!(validate_legacy(&legacy(&[]), None).await.is_empty());
    assert!(
        validate_legacy(&legacy(&[("location", Value::unknown())]), None)
            .await
            .is_empty()
    );
    assert!(
        validate_legacy(&legacy(&[("region", Value::from("westeurope"))]), None)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn deprecated_arguments_in_blocks_and_deprecated_blocks_warn_with_their_path() {
    let rules = Value::List(vec![
        Value::object([("name", Value::from("a")), ("legacy", Value::Null)]),
        Value::object([("name", Value::from("b")), ("legacy", Value::from("x"))]),
    ]);
    let diagnostics = validate_legacy(&legacy(&[("rule", rules)]), None).await;
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(attribute_name(&diagnostics[0]), ["rule", "[1]", "legacy"]);
    assert_eq!(
        diagnostics[0].detail,
        "The argument \"rule[1].legacy\" is deprecated. Rules match by name only."
    );

    let settings = Value::object([("level", Value::Null)]);
    let diagnostics = validate_legacy(&legacy(&[("settings", settings)]), None).await;
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0].summary, "Block Deprecated");
    assert_eq!(attribute_name(&diagnostics[0]), ["settings"]);
    assert!(diagnostics[0]
        .detail
        .ends_with("Settings are read from Azure now."));
}

#[tokio::test]
async fn a_deprecated_provider_argument_warns_at_validation() {
    let ty = provider_schema().value_type();
    let validate = |config: Value| {
        let ty = ty.clone();
        async move {
            service()
                .validate_provider_config(Request::new(wire::validate_provider_config::Request {
                    config: dynamic(&config, &ty),
                }))
                .await
                .unwrap()
                .into_inner()
                .diagnostics
        }
    };
    let diagnostics = validate(Value::object([
        ("endpoint", Value::Null),
        ("environment", Value::from("public")),
    ]))
    .await;
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0].summary, "Attribute Deprecated");
    assert_eq!(attribute_name(&diagnostics[0]), ["environment"]);
    assert!(validate(Value::object([
        ("endpoint", Value::from("https://x")),
        ("environment", Value::Null),
    ]))
    .await
    .is_empty());
}

#[tokio::test]
async fn computed_blocks_are_declared_and_refused_by_terraform_before_1_16() {
    let response = service()
        .get_provider_schema(Request::new(wire::get_provider_schema::Request {}))
        .await
        .unwrap()
        .into_inner();
    let block = response.resource_schemas["test_observed"]
        .block
        .clone()
        .unwrap();
    assert!(block.block_types[0].block.as_ref().unwrap().computed);

    let config = Value::object([
        ("name", Value::from("o")),
        ("status", Value::List(Vec::new())),
    ]);
    let schema = observed_schema();
    // Terraform 1.6-1.15: no computed_blocks_allowed (or no capabilities at all).
    for capabilities in [
        None,
        Some(wire::ClientCapabilities {
            deferral_allowed: true,
            write_only_attributes_allowed: true,
            ..Default::default()
        }),
    ] {
        let diagnostics = validate_as("test_observed", &schema, &config, capabilities).await;
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(
            diagnostics[0].severity,
            wire::diagnostic::Severity::Error as i32
        );
        assert!(diagnostics[0].detail.contains("Terraform 1.16"));
    }
    // Terraform 1.16.
    let allowed = Some(wire::ClientCapabilities {
        computed_blocks_allowed: true,
        ..Default::default()
    });
    assert!(validate_as("test_observed", &schema, &config, allowed)
        .await
        .is_empty());
    // Resources without computed blocks are not concerned.
    assert!(validate_legacy(&legacy(&[]), None).await.is_empty());
}

#[tokio::test]
async fn the_second_plan_sees_the_private_data_of_the_first() {
    let ty = legacy_schema().value_type();
    let config = legacy(&[]);
    let plan = |planned_private: Vec<u8>| {
        let (ty, config) = (ty.clone(), config.clone());
        async move {
            service()
                .plan_resource_change(Request::new(wire::plan_resource_change::Request {
                    type_name: "test_legacy".into(),
                    prior_state: dynamic(&Value::Null, &ty),
                    proposed_new_state: dynamic(&config, &ty),
                    config: dynamic(&config, &ty),
                    client_capabilities: Some(wire::ClientCapabilities {
                        store_planned_private: true,
                        ..Default::default()
                    }),
                    planned_private,
                    ..Default::default()
                }))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let first = plan(Vec::new()).await;
    assert_eq!(first.planned_private, b"t-1");
    let second = plan(b"t-7".to_vec()).await;
    assert_eq!(second.planned_private, b"t-7");
    let planned = codec::from_msgpack(&second.planned_state.unwrap().msgpack, &ty).unwrap();
    assert_eq!(planned.get("token"), &Value::from("t-7"));
}

#[tokio::test]
async fn state_store_rpcs_answer_with_a_diagnostic() {
    let service = service();
    let lock = service
        .lock_state(Request::new(wire::lock_state::Request {
            type_name: "test_store".into(),
            state_id: "default".into(),
            operation: "apply".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(lock.lock_id.is_empty());
    assert_eq!(lock.diagnostics.len(), 1);
    assert!(
        lock.diagnostics[0].detail.contains("test_store"),
        "{:?}",
        lock.diagnostics
    );
    let unlock = service
        .unlock_state(Request::new(wire::unlock_state::Request {
            type_name: "test_store".into(),
            state_id: "default".into(),
            lock_id: "l".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unlock.diagnostics.len(), 1);
    let configure = service
        .configure_state_store(Request::new(wire::configure_state_store::Request {
            type_name: "test_store".into(),
            config: None,
            capabilities: Some(wire::StateStoreClientCapabilities {
                chunk_size: 8 << 20,
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(configure.diagnostics.len(), 1);
    assert!(configure.capabilities.is_none());
}

#[tokio::test]
async fn get_provider_schema_is_the_same_bytes_on_every_call_and_every_instance() {
    use prost::Message as _;
    let encoded = |service: ProviderService<TestProvider>| async move {
        service
            .get_provider_schema(Request::new(wire::get_provider_schema::Request {}))
            .await
            .unwrap()
            .into_inner()
            .encode_to_vec()
    };
    let first = encoded(service()).await;
    let shared = service();
    let a = shared
        .get_provider_schema(Request::new(wire::get_provider_schema::Request {}))
        .await
        .unwrap()
        .into_inner()
        .encode_to_vec();
    let b = shared
        .get_provider_schema(Request::new(wire::get_provider_schema::Request {}))
        .await
        .unwrap()
        .into_inner()
        .encode_to_vec();
    assert_eq!(a, b, "two calls");
    assert_eq!(first, a, "two instances (maps are ordered)");
}
