//! Typed actions (Terraform 1.14+ `action` blocks): the configuration decoded into a model
//! and the clients handed over ready, as [`super::TypedDataSource`] does for data sources.
//!
//! What the adapter, [`ActionAdapter`], does once for every action:
//! - at validation and again at plan (values unknown at validation may be known then), runs
//!   [`TypedAction::validate`] on the configuration decoded leniently (unknowns read as
//!   null); the server runs the declared validators and fills in the declared defaults;
//! - at invoke, asks [`ProviderData::ready`] for the clients and answers its diagnostics when
//!   there are none (not configured), then decodes the configuration and invokes.

use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;

use super::ProviderData;
use crate::diagnostics::Diagnostics;
use crate::model;
use crate::provider::{Action, Progress};
use crate::schema::Schema;
use crate::value::Value;

/// An action as a typed configuration.
#[async_trait]
pub trait TypedAction: Send + Sync + 'static {
    type Data: ProviderData;
    /// The action's arguments, each named once. Those a configuration can hold unknown
    /// (until plan) are [`super::Maybe`]s.
    type Config: DeserializeOwned + Send + Sync;

    const TYPE_NAME: &'static str;

    fn data(&self) -> &Self::Data;
    /// An action's schema has no computed attributes.
    fn schema(&self) -> Schema;
    /// Checks beyond the declared validators, at validation and again at plan, of a
    /// configuration that may hold unknowns.
    fn validate(&self, _config: &Self::Config) -> Diagnostics {
        Diagnostics::default()
    }
    /// Runs the action, reporting progress; `config` has the declared defaults filled in.
    async fn invoke(
        &self,
        clients: &<Self::Data as ProviderData>::Clients,
        config: Self::Config,
        progress: Progress,
    ) -> Diagnostics;
}

/// The adapter: a [`TypedAction`] as an untyped [`Action`].
pub struct ActionAdapter<A> {
    action: A,
}

impl<A: TypedAction> ActionAdapter<A> {
    pub fn new(action: A) -> Self {
        ActionAdapter { action }
    }

    pub fn inner(&self) -> &A {
        &self.action
    }

    fn check(&self, config: &Value) -> Diagnostics {
        match model::decode_lenient::<A::Config>(config) {
            Ok(config) => self.action.validate(&config),
            Err(diagnostics) => diagnostics,
        }
    }
}

#[async_trait]
impl<A: TypedAction> Action for ActionAdapter<A> {
    fn type_name(&self) -> &'static str {
        A::TYPE_NAME
    }

    fn schema(&self) -> Schema {
        self.action.schema()
    }

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        self.check(config)
    }

    async fn plan(&self, config: &Value) -> Diagnostics {
        self.check(config)
    }

    async fn invoke(&self, config: Value, progress: Progress) -> Diagnostics {
        let clients = match self.action.data().ready() {
            Ok(clients) => clients,
            Err(diagnostics) => return diagnostics,
        };
        match model::decode::<A::Config>(&config) {
            Ok(config) => self.action.invoke(&clients, config, progress).await,
            Err(diagnostics) => diagnostics,
        }
    }
}

/// A typed action as the provider registers it.
pub fn action<A: TypedAction>(action: A) -> Arc<dyn Action> {
    Arc::new(ActionAdapter::new(action))
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

    #[derive(Deserialize)]
    struct Config {
        count: Maybe<i64>,
        label: Option<String>,
    }

    /// Reports `count` times `clients`.
    struct Multiply(Data);

    #[async_trait]
    impl TypedAction for Multiply {
        type Data = Data;
        type Config = Config;
        const TYPE_NAME: &'static str = "test_multiply";

        fn data(&self) -> &Data {
            &self.0
        }

        fn schema(&self) -> Schema {
            Schema::new(
                0,
                Block {
                    attributes: vec![
                        Attribute::required("count", Type::Number),
                        Attribute::optional("label", Type::String),
                    ],
                    ..Block::default()
                },
            )
        }

        fn validate(&self, config: &Config) -> Diagnostics {
            let mut diagnostics = Diagnostics::default();
            if config.count.known().is_some_and(|count| *count < 0) {
                diagnostics.error_at(AttributePath::root("count"), "Negative", "0 or more");
            }
            diagnostics
        }

        async fn invoke(&self, factor: &i64, config: Config, progress: Progress) -> Diagnostics {
            let Some(count) = config.count.known() else {
                return Diagnostics::from_error("Unknown count", "know it");
            };
            let label = config.label.unwrap_or_default();
            progress.report(format!("{label}{}", count * factor)).await;
            Diagnostics::default()
        }
    }

    fn config(count: Value, label: Value) -> Value {
        Value::object([("count", count), ("label", label)])
    }

    async fn invoked(
        action: &ActionAdapter<Multiply>,
        config: Value,
    ) -> (Vec<String>, Diagnostics) {
        let (progress, mut receiver) = Progress::channel(4);
        let diagnostics = action.invoke(config, progress).await;
        let mut lines = Vec::new();
        while let Ok(line) = receiver.try_recv() {
            lines.push(line);
        }
        (lines, diagnostics)
    }

    #[tokio::test]
    async fn an_invocation_gets_the_decoded_configuration_and_the_clients() {
        let action = ActionAdapter::new(Multiply(Data(Some(3))));
        let (lines, diagnostics) = invoked(&action, config(Value::int(4), Value::from("n="))).await;
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert_eq!(lines, ["n=12"]);
    }

    #[tokio::test]
    async fn validation_and_plan_run_the_actions_checks_with_unknowns_allowed() {
        let action = ActionAdapter::new(Multiply(Data(Some(3))));
        let negative = config(Value::int(-1), Value::Null);
        for problems in [
            action.validate_config(&negative).await,
            action.plan(&negative).await,
        ] {
            assert_eq!(
                problems.items[0].attribute,
                Some(AttributePath::root("count"))
            );
        }
        let unknown = config(Value::unknown(), Value::unknown());
        assert!(action.validate_config(&unknown).await.is_empty());
        assert!(action.plan(&unknown).await.is_empty());
    }

    #[tokio::test]
    async fn an_unconfigured_provider_or_an_undecodable_configuration_does_nothing() {
        let unconfigured = ActionAdapter::new(Multiply(Data(None)));
        let (lines, diagnostics) = invoked(&unconfigured, config(Value::int(1), Value::Null)).await;
        assert!(lines.is_empty());
        assert_eq!(diagnostics.items[0].summary, "Provider not configured");

        let action = ActionAdapter::new(Multiply(Data(Some(1))));
        let (lines, diagnostics) = invoked(&action, config(Value::int(1), Value::unknown())).await;
        assert!(lines.is_empty());
        assert_eq!(
            diagnostics.items[0].attribute,
            Some(AttributePath::root("label")),
            "a plain field cannot hold an unknown: {diagnostics:?}"
        );
    }
}
