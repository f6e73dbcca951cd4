//! Typed data sources: the configuration decoded into a model, the state encoded from one,
//! and the clients handed over ready, as [`super::TypedResource`] does for resources.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ProviderData;
use crate::diagnostics::Diagnostics;
use crate::model;
use crate::provider::{DataReadRequest, DataReadResponse, DataSource, DeferredReason};
use crate::schema::Schema;
use crate::types::Type;
use crate::value::Value;

/// What a read answers: the state (`None`: nothing, on an error) and diagnostics.
#[derive(Debug, Clone)]
pub struct DataRead<M> {
    pub state: Option<M>,
    pub diagnostics: Diagnostics,
    pub deferred: Option<DeferredReason>,
}

impl<M> DataRead<M> {
    pub fn new(state: M) -> Self {
        DataRead {
            state: Some(state),
            diagnostics: Diagnostics::default(),
            deferred: None,
        }
    }

    /// No state, and an error.
    pub fn failed(summary: &str, detail: &str) -> Self {
        DataRead {
            state: None,
            diagnostics: Diagnostics::from_error(summary, detail),
            deferred: None,
        }
    }
}

/// A data source as typed models.
#[async_trait]
pub trait TypedDataSource: Send + Sync + 'static {
    type Data: ProviderData;
    /// Arguments and computed attributes, named once.
    type Model: Serialize + DeserializeOwned + Send + Sync;

    const TYPE_NAME: &'static str;

    fn data(&self) -> &Self::Data;
    fn schema(&self) -> Schema;
    /// Checks beyond the declared validators, of a configuration that may hold unknowns.
    fn validate(&self, _config: &Self::Model) -> Diagnostics {
        Diagnostics::default()
    }
    /// Reads, from a configuration with its declared defaults filled in.
    async fn read(
        &self,
        clients: &<Self::Data as ProviderData>::Clients,
        config: Self::Model,
    ) -> DataRead<Self::Model>;
}

/// The adapter: a [`TypedDataSource`] as an untyped [`DataSource`].
pub struct TypedData<D> {
    source: D,
    ty: Type,
}

impl<D: TypedDataSource> TypedData<D> {
    pub fn new(source: D) -> Self {
        let ty = source.schema().value_type();
        TypedData { source, ty }
    }
}

#[async_trait]
impl<D: TypedDataSource> DataSource for TypedData<D> {
    fn type_name(&self) -> &'static str {
        D::TYPE_NAME
    }

    fn schema(&self) -> Schema {
        self.source.schema()
    }

    /// Configuration may hold unknowns at validation: read as `Maybe::Unknown`, or as
    /// `None` in a plain `Option`.
    async fn validate_config(&self, config: &Value) -> Diagnostics {
        match model::decode_lenient::<D::Model>(config) {
            Ok(config) => self.source.validate(&config),
            Err(diagnostics) => diagnostics,
        }
    }

    async fn read(&self, request: DataReadRequest) -> DataReadResponse {
        let failed = |diagnostics| DataReadResponse {
            diagnostics,
            ..DataReadResponse::default()
        };
        let clients = match self.source.data().ready() {
            Ok(clients) => clients,
            Err(diagnostics) => return failed(diagnostics),
        };
        let config = match model::decode::<D::Model>(&request.config) {
            Ok(config) => config,
            Err(diagnostics) => return failed(diagnostics),
        };
        let read = self.source.read(&clients, config).await;
        DataReadResponse {
            state: read
                .state
                .map_or(Value::Null, |state| model::encode(&state, &self.ty)),
            diagnostics: read.diagnostics,
            deferred: read.deferred,
        }
    }
}

/// A typed data source as the provider registers it.
pub fn data_source<D: TypedDataSource>(source: D) -> std::sync::Arc<dyn DataSource> {
    std::sync::Arc::new(TypedData::new(source))
}

#[cfg(test)]
pub(super) mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::diagnostics::AttributePath;
    use crate::schema::{Attribute, Block};
    use crate::typed::Maybe;

    /// Clients that are a number, when configured (shared with the list and action tests).
    pub(crate) struct Data(pub(crate) Option<i64>);

    impl ProviderData for Data {
        type Clients = i64;
        fn ready(&self) -> Result<i64, Diagnostics> {
            self.0
                .ok_or_else(|| Diagnostics::from_error("Provider not configured", "configure it"))
        }
    }

    #[derive(Serialize, Deserialize)]
    struct Model {
        count: Maybe<i64>,
        doubled: Maybe<i64>,
    }

    struct Doubler(Data);

    #[async_trait]
    impl TypedDataSource for Doubler {
        type Data = Data;
        type Model = Model;
        const TYPE_NAME: &'static str = "test_doubler";

        fn data(&self) -> &Data {
            &self.0
        }

        fn schema(&self) -> Schema {
            Schema::new(
                0,
                Block {
                    attributes: vec![
                        Attribute::required("count", Type::Number),
                        Attribute::computed("doubled", Type::Number),
                    ],
                    ..Block::default()
                },
            )
        }

        async fn read(&self, factor: &i64, config: Model) -> DataRead<Model> {
            let Some(count) = config.count.known().copied() else {
                return DataRead::failed("No count", "give one");
            };
            DataRead::new(Model {
                doubled: Maybe::Known(count * factor),
                ..config
            })
        }
    }

    fn config(count: Value) -> Value {
        Value::object([("count", count), ("doubled", Value::Null)])
    }

    #[tokio::test]
    async fn a_read_decodes_the_configuration_and_encodes_the_state() {
        let source = TypedData::new(Doubler(Data(Some(2))));
        let read = source
            .read(DataReadRequest {
                config: config(Value::int(21)),
                ..DataReadRequest::default()
            })
            .await;
        assert!(!read.diagnostics.has_errors(), "{:?}", read.diagnostics);
        assert_eq!(read.state.get("doubled"), &Value::int(42));
        assert_eq!(read.state.get("count"), &Value::int(21));
    }

    #[tokio::test]
    async fn errors_name_the_attribute_and_leave_no_state() {
        let source = TypedData::new(Doubler(Data(Some(2))));
        let read = source
            .read(DataReadRequest {
                config: config(Value::from("many")),
                ..DataReadRequest::default()
            })
            .await;
        assert!(read.state.is_null());
        assert_eq!(
            read.diagnostics.items[0].attribute,
            Some(AttributePath::root("count"))
        );
        let unconfigured = TypedData::new(Doubler(Data(None)));
        let read = unconfigured
            .read(DataReadRequest {
                config: config(Value::int(1)),
                ..DataReadRequest::default()
            })
            .await;
        assert!(read.state.is_null());
        assert_eq!(read.diagnostics.items[0].summary, "Provider not configured");
        assert!(unconfigured
            .validate_config(&config(Value::unknown()))
            .await
            .is_empty());
    }
}
