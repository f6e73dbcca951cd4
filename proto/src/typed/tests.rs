//! The adapter's own behaviour, with a resource that records what it was given.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::*;
use crate::schema::{Attribute, Block};

struct Data {
    clients: Option<String>,
}

impl ProviderData for Data {
    type Clients = String;
    fn ready(&self) -> Result<String, Diagnostics> {
        self.clients
            .clone()
            .ok_or_else(|| Diagnostics::from_error("Provider not configured", "configure it"))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Model {
    name: Maybe<String>,
    size: Maybe<i64>,
    tags: Maybe<BTreeMap<String, Maybe<String>>>,
    id: Maybe<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Owned {
    created: bool,
    /// Set by a destroy's plan of a thing named `handing over`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    handing_over: bool,
}

#[derive(Default)]
struct Calls(Mutex<Vec<String>>);

impl Calls {
    fn push(&self, call: impl Into<String>) {
        self.0.lock().unwrap().push(call.into());
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Thing {
    data: Data,
    calls: Calls,
}

fn thing(configured: bool) -> Typed<Thing> {
    Typed::new(Thing {
        data: Data {
            clients: configured.then(|| "clients".to_string()),
        },
        calls: Calls::default(),
    })
}

#[async_trait]
impl TypedResource for Thing {
    type Data = Data;
    type Model = Model;
    type Private = Owned;
    const TYPE_NAME: &'static str = "test_thing";

    fn data(&self) -> &Data {
        &self.data
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block {
                attributes: vec![
                    Attribute::required("name", Type::String),
                    Attribute::optional("size", Type::Number),
                    Attribute::optional("tags", Type::map(Type::String)),
                    Attribute::computed("id", Type::String),
                ],
                ..Block::default()
            },
        )
    }

    fn identity_of(&self, state: &Model) -> Option<Value> {
        Some(Value::object([("id", Value::string(state.id.as_str()?))]))
    }

    fn validate(&self, config: &Model) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        if config.name.as_str() == Some("bad") {
            diagnostics.error_at(AttributePath::root("name"), "Bad name", "not bad");
        }
        diagnostics
    }

    fn plan_destroy(&self, prior: Option<&Model>, private: &mut Owned) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        let name = match prior.map(|prior| &prior.name) {
            Some(Maybe::Known(name)) => name.as_str(),
            _ => "something unreadable",
        };
        if private.created {
            diagnostics.warning(&format!("Destroying {name}"), "as planned");
        }
        private.handing_over = name == "handing over";
        diagnostics
    }

    async fn plan(
        &self,
        clients: Option<&String>,
        request: Plan<Model, Owned>,
    ) -> Planned<Model, Owned> {
        if request.first_plan.created {
            // Planned again during apply: the first plan's private state is handed back.
            let mut state = request.proposed;
            state.id = Maybe::Known("/things/first".into());
            return Planned::new(state, request.first_plan);
        }
        self.calls.push(format!(
            "plan clients={} creating={}",
            clients.is_some(),
            request.prior.is_none()
        ));
        let mut state = request.proposed;
        if request.prior.is_none() {
            state.id = Maybe::Unknown;
        }
        Planned::new(state, request.prior_private)
    }

    async fn create(
        &self,
        clients: &String,
        request: Create<Model, Owned>,
    ) -> Applied<Model, Owned> {
        self.calls.push(format!("create {clients}"));
        let mut state = request.planned;
        state.id = Maybe::Known(format!("/things/{}", state.name.as_str().unwrap_or("")));
        Applied::new(
            Some(state),
            Owned {
                created: true,
                ..Owned::default()
            },
        )
    }

    async fn update(
        &self,
        _clients: &String,
        request: Update<Model, Owned>,
    ) -> Applied<Model, Owned> {
        self.calls
            .push(format!("update created={}", request.private.created));
        Applied::new(Some(request.planned), request.private)
    }

    async fn delete(
        &self,
        _clients: &String,
        request: Existing<Model, Owned>,
    ) -> Applied<Model, Owned> {
        self.calls.push(format!(
            "delete {} created={}",
            request.state.id.as_str().unwrap_or(""),
            request.private.created
        ));
        Applied::new(None, Owned::default())
    }

    async fn read(
        &self,
        _clients: &String,
        request: Existing<Model, Owned>,
    ) -> Applied<Model, Owned> {
        self.calls.push("read");
        Applied::new(Some(request.state), request.private)
    }

    async fn import(
        &self,
        _clients: &String,
        key: ImportKey,
    ) -> Result<Vec<Imported<Model, Owned>>, Diagnostics> {
        let id = match key {
            ImportKey::Id(id) => id,
            ImportKey::Identity(identity) => {
                #[derive(Deserialize)]
                struct Named {
                    id: String,
                }
                model::decode::<Named>(&identity)?.id
            }
        };
        Ok(vec![Imported {
            state: Model {
                name: Maybe::Known("imported".into()),
                id: Maybe::Known(id),
                ..Model::default()
            },
            private: Owned::default(),
        }])
    }
}

fn state(name: &str, id: Value) -> Value {
    Value::object([
        ("name", Value::from(name)),
        ("size", Value::Null),
        ("tags", Value::Null),
        ("id", id),
    ])
}

fn owned() -> Vec<u8> {
    model::private_to_bytes(&Owned {
        created: true,
        ..Owned::default()
    })
}

#[test]
fn maybe_reads_null_unknown_and_known_and_writes_them_back() {
    let ty = thing(true).ty.clone();
    let value = state("a", Value::unknown()).with(
        "tags",
        Value::Map(BTreeMap::from([
            ("known".to_string(), Value::from("x")),
            ("later".to_string(), Value::unknown()),
        ])),
    );
    let decoded: Model = model::decode(&value).unwrap();
    assert_eq!(decoded.name, Maybe::Known("a".to_string()));
    assert_eq!(decoded.size, Maybe::Null);
    assert_eq!(decoded.id, Maybe::Unknown);
    let tags = decoded.tags.known().unwrap();
    assert_eq!(tags["later"], Maybe::Unknown);
    assert_eq!(model::encode(&decoded, &ty), value, "round trip");
    // Through JSON (private state) a `Maybe` is an `Option`.
    let json: Maybe<i64> = serde_json::from_str("3").unwrap();
    assert_eq!(json, Maybe::Known(3));
    let json: Maybe<i64> = serde_json::from_str("null").unwrap();
    assert_eq!(json, Maybe::Null);
}

#[tokio::test]
async fn a_destroy_is_planned_by_the_adapter_without_the_resource() {
    let resource = thing(true);
    let response = resource
        .plan(PlanRequest {
            prior_state: state("a", Value::from("/things/a")),
            proposed_new_state: Value::Null,
            prior_private: owned(),
            ..PlanRequest::default()
        })
        .await;
    assert!(response.planned_state.is_null());
    assert_eq!(response.planned_private, owned(), "private state kept");
    assert!(resource.inner().calls.all().is_empty());
}

#[tokio::test]
async fn a_value_that_does_not_fit_the_model_is_a_diagnostic_naming_its_attribute() {
    let resource = thing(true);
    let config = state("a", Value::Null).with("size", Value::from("many"));
    let response = resource
        .plan(PlanRequest {
            proposed_new_state: config.clone(),
            config,
            ..PlanRequest::default()
        })
        .await;
    assert!(response.diagnostics.has_errors());
    assert_eq!(
        response.diagnostics.items[0].attribute,
        Some(AttributePath::root("size"))
    );
    assert!(resource.inner().calls.all().is_empty());

    let diagnostics = resource
        .validate_config(&state("a", Value::Null).with("size", Value::from("many")))
        .await;
    assert_eq!(
        diagnostics.items[0].attribute,
        Some(AttributePath::root("size"))
    );
}

#[tokio::test]
async fn plan_runs_the_checks_again_and_plans_unknowns_of_computed_attributes() {
    let resource = thing(false);
    let bad = state("bad", Value::Null);
    let response = resource
        .plan(PlanRequest {
            proposed_new_state: bad.clone(),
            config: bad,
            ..PlanRequest::default()
        })
        .await;
    assert_eq!(
        response.diagnostics.items[0].attribute,
        Some(AttributePath::root("name"))
    );

    let config = state("a", Value::Null).with("size", Value::unknown());
    let response = resource
        .plan(PlanRequest {
            proposed_new_state: config.clone().with("id", Value::unknown()),
            config,
            ..PlanRequest::default()
        })
        .await;
    assert!(
        !response.diagnostics.has_errors(),
        "{:?}",
        response.diagnostics
    );
    assert!(response.planned_state.get("id").is_unknown());
    assert!(
        response.planned_state.get("size").is_unknown(),
        "unknown arguments stay unknown"
    );
    assert_eq!(
        resource.inner().calls.all(),
        vec!["plan clients=false creating=true"],
        "an unconfigured provider still plans"
    );
}

#[tokio::test]
async fn apply_routes_create_update_and_delete_with_private_state() {
    let resource = thing(true);
    let planned = state("a", Value::unknown());
    let created = resource
        .apply(ApplyRequest {
            prior_state: Value::Null,
            config: state("a", Value::Null),
            planned_state: planned,
            ..ApplyRequest::default()
        })
        .await;
    assert_eq!(created.new_state.get("id"), &Value::from("/things/a"));
    assert_eq!(created.private, owned());

    let updated = resource
        .apply(ApplyRequest {
            prior_state: created.new_state.clone(),
            config: state("a", Value::Null),
            planned_state: created.new_state.clone(),
            planned_private: created.private.clone(),
            ..ApplyRequest::default()
        })
        .await;
    assert_eq!(updated.new_state, created.new_state);

    let deleted = resource
        .apply(ApplyRequest {
            prior_state: created.new_state.clone(),
            planned_state: Value::Null,
            planned_private: created.private,
            ..ApplyRequest::default()
        })
        .await;
    assert!(deleted.new_state.is_null());
    assert!(
        deleted.private.is_empty(),
        "the default private state is no bytes"
    );
    assert_eq!(
        resource.inner().calls.all(),
        vec![
            "create clients",
            "update created=true",
            "delete /things/a created=true"
        ]
    );
}

#[tokio::test]
async fn an_unconfigured_provider_changes_nothing_and_says_so() {
    let resource = thing(false);
    let prior = state("a", Value::from("/things/a"));
    let applied = resource
        .apply(ApplyRequest {
            prior_state: prior.clone(),
            planned_state: Value::Null,
            planned_private: owned(),
            ..ApplyRequest::default()
        })
        .await;
    assert_eq!(applied.new_state, prior);
    assert_eq!(applied.private, owned());
    assert_eq!(
        applied.diagnostics.items[0].summary,
        "Provider not configured"
    );

    let read = resource
        .read(ReadRequest {
            current_state: prior.clone(),
            private: owned(),
            ..ReadRequest::default()
        })
        .await;
    assert_eq!(read.new_state, prior);
    assert_eq!(read.private, owned());
    assert!(read.diagnostics.has_errors());

    let imported = resource
        .import(ImportRequest {
            id: "/things/x".into(),
            ..ImportRequest::default()
        })
        .await;
    assert!(imported.imported.is_empty());
    assert!(imported.diagnostics.has_errors());
    assert!(resource.inner().calls.all().is_empty());
}

#[tokio::test]
async fn import_by_id_or_identity_encodes_the_state_and_its_identity() {
    let resource = thing(true);
    let by_id = resource
        .import(ImportRequest {
            id: "/things/x".into(),
            ..ImportRequest::default()
        })
        .await;
    let object = &by_id.imported[0];
    assert_eq!(object.state.get("id"), &Value::from("/things/x"));
    assert!(object.state.get("size").is_null());
    assert_eq!(
        object.identity,
        Some(Value::object([("id", Value::from("/things/x"))]))
    );

    let by_identity = resource
        .import(ImportRequest {
            identity: Some(Value::object([("id", Value::from("/things/y"))])),
            ..ImportRequest::default()
        })
        .await;
    assert_eq!(
        by_identity.imported[0].state.get("id"),
        &Value::from("/things/y")
    );

    let bad = resource
        .import(ImportRequest {
            identity: Some(Value::object([("id", Value::int(3))])),
            ..ImportRequest::default()
        })
        .await;
    assert!(bad.diagnostics.has_errors());
}

#[tokio::test]
async fn read_hands_the_recorded_state_and_private_state_over() {
    let resource = thing(true);
    let current = state("a", Value::from("/things/a"));
    let read = resource
        .read(ReadRequest {
            current_state: current.clone(),
            private: owned(),
            ..ReadRequest::default()
        })
        .await;
    assert_eq!(read.new_state, current);
    assert_eq!(read.private, owned());
    assert_eq!(
        resource.identity_of(&current),
        Some(Value::object([("id", Value::from("/things/a"))]))
    );
}

#[tokio::test]
async fn a_destroy_plan_warns_from_the_prior_and_private_state_and_a_second_plan_gets_the_first() {
    let resource = thing(true);
    let destroy = resource
        .plan(PlanRequest {
            prior_state: state("a", Value::from("/things/a")),
            proposed_new_state: Value::Null,
            prior_private: owned(),
            ..PlanRequest::default()
        })
        .await;
    assert_eq!(destroy.diagnostics.items.len(), 1);
    assert_eq!(destroy.diagnostics.items[0].summary, "Destroying a");
    assert!(!destroy.diagnostics.has_errors());
    assert_eq!(destroy.planned_private, owned());
    // The private state the destroy's apply gets, changed by its plan.
    let handing_over = resource
        .plan(PlanRequest {
            prior_state: state("handing over", Value::from("/things/h")),
            proposed_new_state: Value::Null,
            prior_private: owned(),
            ..PlanRequest::default()
        })
        .await;
    assert_eq!(
        model::private_from_bytes::<Owned>(&handing_over.planned_private),
        Owned {
            created: true,
            handing_over: true
        }
    );
    // Left unchanged, bytes this build cannot read go through as they are.
    let unreadable_private = resource
        .plan(PlanRequest {
            prior_state: state("a", Value::from("/things/a")),
            proposed_new_state: Value::Null,
            prior_private: b"{not json".to_vec(),
            ..PlanRequest::default()
        })
        .await;
    assert_eq!(unreadable_private.planned_private, b"{not json".to_vec());
    // A prior state that is not the model still plans the destroy, without its facts.
    let unreadable = resource
        .plan(PlanRequest {
            prior_state: Value::from("not an object"),
            proposed_new_state: Value::Null,
            prior_private: owned(),
            ..PlanRequest::default()
        })
        .await;
    assert!(!unreadable.diagnostics.has_errors());
    assert_eq!(
        unreadable.diagnostics.items[0].summary,
        "Destroying something unreadable"
    );
    let again = resource
        .plan(PlanRequest {
            config: state("a", Value::Null),
            proposed_new_state: state("a", Value::unknown()),
            planned_private: owned(),
            ..PlanRequest::default()
        })
        .await;
    assert_eq!(again.planned_state.get("id"), &Value::from("/things/first"));
    assert_eq!(again.planned_private, owned());
    let first = resource
        .plan(PlanRequest {
            config: state("a", Value::Null),
            proposed_new_state: state("a", Value::unknown()),
            ..PlanRequest::default()
        })
        .await;
    assert!(first.planned_state.get("id").is_unknown());
}
