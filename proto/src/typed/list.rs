//! Typed list resources (`terraform query`): the `list` block's configuration decoded into a
//! model, the clients handed over ready, and the results counted against the limit, as
//! [`super::TypedDataSource`] does for data sources.
//!
//! What the adapter, [`ListAdapter`], does once for every list resource:
//! - checks the configuration against the schema's declared validators and
//!   [`TypedListResource::validate`], at validation (unknowns allowed: decoded leniently) and
//!   again before listing (the server runs neither for a list);
//! - asks [`ProviderData::ready`] for the clients, and answers its diagnostics when there are
//!   none (not configured);
//! - decodes the configuration (it must be wholly known to be listed);
//! - hands the list [`Results`], which stop at `limit` and when Terraform stops listening.

use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;

use super::ProviderData;
use crate::diagnostics::Diagnostics;
use crate::model;
use crate::provider::{ListRequest, ListResource, ListResult, ListSink};
use crate::schema::Schema;
use crate::value::Value;

/// What a listing is asked for.
#[derive(Debug, Clone)]
pub struct Listing<C> {
    /// The `list` block's `config`, checked and known.
    pub config: C,
    /// Whether each result should carry the full resource object.
    pub include_resource_object: bool,
}

/// Where a listing sends its results: counted against the limit (0: none), and closed when
/// the limit is reached or Terraform stopped listening.
pub struct Results {
    sink: ListSink,
    sent: i64,
    limit: i64,
}

impl Results {
    pub fn new(sink: ListSink, limit: i64) -> Results {
        Results {
            sink,
            sent: 0,
            limit,
        }
    }

    /// True once `limit` results were sent.
    pub fn full(&self) -> bool {
        self.limit > 0 && self.sent >= self.limit
    }

    /// Sends one result; false when no more should be sent (stop listing).
    pub async fn send(&mut self, result: ListResult) -> bool {
        if self.full() || !self.sink.push(result).await {
            return false;
        }
        self.sent += 1;
        !self.full()
    }
}

/// A list resource as a typed configuration.
#[async_trait]
pub trait TypedListResource: Send + Sync + 'static {
    type Data: ProviderData;
    /// The `list` block's `config`, each argument named once. Arguments whose elements may
    /// be unknown at validation are [`super::Maybe`]s.
    type Config: DeserializeOwned + Send + Sync;

    /// The managed resource type this lists (it must have an identity schema).
    const TYPE_NAME: &'static str;

    fn data(&self) -> &Self::Data;
    /// The schema of the `list` block's `config`.
    fn schema(&self) -> Schema;
    /// Checks beyond the declared validators, of a configuration that may hold unknowns.
    fn validate(&self, _config: &Self::Config) -> Diagnostics {
        Diagnostics::default()
    }
    /// Lists, sending each result as it is found; answers the errors the listing ends with.
    async fn list(
        &self,
        clients: &<Self::Data as ProviderData>::Clients,
        request: Listing<Self::Config>,
        results: &mut Results,
    ) -> Diagnostics;
}

/// The adapter: a [`TypedListResource`] as an untyped [`ListResource`].
pub struct ListAdapter<L> {
    list: L,
    schema: Schema,
}

impl<L: TypedListResource> ListAdapter<L> {
    pub fn new(list: L) -> Self {
        let schema = list.schema();
        ListAdapter { list, schema }
    }

    pub fn inner(&self) -> &L {
        &self.list
    }

    /// The declared validators and the list's own checks; unknowns read as null.
    fn check(&self, config: &Value) -> Diagnostics {
        let mut diagnostics = self.schema.block.validate(config);
        match model::decode_lenient::<L::Config>(config) {
            Ok(config) => diagnostics.extend(self.list.validate(&config)),
            Err(problems) => diagnostics.extend(problems),
        }
        diagnostics
    }
}

#[async_trait]
impl<L: TypedListResource> ListResource for ListAdapter<L> {
    fn type_name(&self) -> &'static str {
        L::TYPE_NAME
    }

    fn schema(&self) -> Schema {
        self.list.schema()
    }

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        self.check(config)
    }

    async fn list(&self, request: ListRequest, sink: ListSink) -> Diagnostics {
        let clients = match self.list.data().ready() {
            Ok(clients) => clients,
            Err(diagnostics) => return diagnostics,
        };
        let problems = self.check(&request.config);
        if problems.has_errors() {
            return problems;
        }
        if !request.config.is_fully_known() {
            return Diagnostics::from_error(
                "Unknown list configuration",
                "Every argument of a `list` block must be known when it is listed.",
            );
        }
        let config = match model::decode::<L::Config>(&request.config) {
            Ok(config) => config,
            Err(diagnostics) => return diagnostics,
        };
        let mut results = Results::new(sink, request.limit);
        let listing = Listing {
            config,
            include_resource_object: request.include_resource_object,
        };
        self.list.list(&clients, listing, &mut results).await
    }
}

/// A typed list resource as the provider registers it.
pub fn list_resource<L: TypedListResource>(list: L) -> Arc<dyn ListResource> {
    Arc::new(ListAdapter::new(list))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::diagnostics::AttributePath;
    use crate::schema::{Attribute, Block};
    use crate::typed::data_source::tests::Data;
    use crate::typed::Maybe;
    use crate::types::Type;
    use crate::validators::Validator;

    #[derive(Deserialize)]
    struct Config {
        names: Option<Vec<Maybe<String>>>,
    }

    /// Lists each name `clients` times.
    struct Names(Data);

    #[async_trait]
    impl TypedListResource for Names {
        type Data = Data;
        type Config = Config;
        const TYPE_NAME: &'static str = "test_names";

        fn data(&self) -> &Data {
            &self.0
        }

        fn schema(&self) -> Schema {
            Schema::new(
                0,
                Block {
                    attributes: vec![Attribute::optional("names", Type::list(Type::String))
                        .validator(Validator::string("Bad name", |name| {
                            if name.contains(' ') {
                                Err(format!("`{name}` has a space."))
                            } else {
                                Ok(())
                            }
                        }))],
                    ..Block::default()
                },
            )
        }

        fn validate(&self, config: &Config) -> Diagnostics {
            let mut diagnostics = Diagnostics::default();
            if config.names.as_ref().is_some_and(Vec::is_empty) {
                diagnostics.error_at(AttributePath::root("names"), "No names", "name one");
            }
            diagnostics
        }

        async fn list(
            &self,
            times: &i64,
            request: Listing<Config>,
            results: &mut Results,
        ) -> Diagnostics {
            for name in request.config.names.unwrap_or_default() {
                for _ in 0..*times {
                    let result = ListResult {
                        display_name: name.known().cloned().unwrap_or_default(),
                        resource_object: request
                            .include_resource_object
                            .then(|| Value::from("object")),
                        ..ListResult::default()
                    };
                    if !results.send(result).await {
                        return Diagnostics::default();
                    }
                }
            }
            Diagnostics::from_error("Listed everything", "no limit stopped it")
        }
    }

    fn config(names: Value) -> Value {
        Value::object([("names", names)])
    }

    fn names(names: &[&str]) -> Value {
        Value::List(names.iter().map(|n| Value::from(*n)).collect())
    }

    async fn listed(
        list: &ListAdapter<Names>,
        config: Value,
        limit: i64,
    ) -> (Vec<ListResult>, Diagnostics) {
        let (sink, mut receiver) = ListSink::channel(16);
        let diagnostics = list
            .list(
                ListRequest {
                    config,
                    include_resource_object: true,
                    limit,
                },
                sink,
            )
            .await;
        let mut results = Vec::new();
        while let Ok(result) = receiver.try_recv() {
            results.push(result);
        }
        (results, diagnostics)
    }

    #[tokio::test]
    async fn a_listing_gets_the_decoded_configuration_and_stops_at_the_limit() {
        let list = ListAdapter::new(Names(Data(Some(2))));
        let (results, diagnostics) = listed(&list, config(names(&["a", "b"])), 3).await;
        let shown: Vec<_> = results.iter().map(|r| r.display_name.as_str()).collect();
        assert_eq!(shown, ["a", "a", "b"]);
        assert_eq!(results[0].resource_object, Some(Value::from("object")));
        assert!(
            diagnostics.is_empty(),
            "stopped by the limit: {diagnostics:?}"
        );

        let (results, diagnostics) = listed(&list, config(names(&["a"])), 0).await;
        assert_eq!(results.len(), 2, "no limit");
        assert_eq!(diagnostics.items[0].summary, "Listed everything");
    }

    #[tokio::test]
    async fn a_listing_stops_when_terraform_stops_listening() {
        let (sink, receiver) = ListSink::channel(1);
        drop(receiver);
        let mut results = Results::new(sink, 0);
        assert!(!results.send(ListResult::default()).await);
        assert!(!results.full());
    }

    #[tokio::test]
    async fn bad_configuration_names_the_attribute_at_validation_and_at_listing() {
        let list = ListAdapter::new(Names(Data(Some(1))));
        for (bad, summary) in [(names(&[]), "No names"), (names(&["a b"]), "Bad name")] {
            let problems = list.validate_config(&config(bad.clone())).await;
            assert_eq!(problems.items[0].summary, summary, "{problems:?}");
            let at = problems.items[0].attribute.clone().unwrap();
            assert_eq!(at.steps[0], AttributePath::root("names").steps[0]);
            let (results, diagnostics) = listed(&list, config(bad), 0).await;
            assert!(results.is_empty());
            assert_eq!(diagnostics.items[0].attribute, Some(at));
        }
        let unknown = config(Value::List(vec![Value::from("a"), Value::unknown()]));
        assert!(list.validate_config(&unknown).await.is_empty());
        let (results, diagnostics) = listed(&list, unknown, 0).await;
        assert!(results.is_empty());
        assert_eq!(diagnostics.items[0].summary, "Unknown list configuration");
    }

    #[tokio::test]
    async fn an_unconfigured_provider_lists_nothing_and_says_so() {
        let list = ListAdapter::new(Names(Data(None)));
        let (results, diagnostics) = listed(&list, config(names(&["a"])), 0).await;
        assert!(results.is_empty());
        assert_eq!(diagnostics.items[0].summary, "Provider not configured");
        assert!(list
            .validate_config(&config(names(&["a"])))
            .await
            .is_empty());
    }
}
