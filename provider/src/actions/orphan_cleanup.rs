//! Action `mig_orphan_cleanup`: a one-off clean-up of orphaned role assignments
//! (`terraform apply -invoke=action.mig_orphan_cleanup.x`), with no resource in state.
//! Same arguments and safeguards as the resource.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use tfplugin::typed::{Maybe, TypedAction};
use tfplugin::{AttributePath, Block, Diagnostics, Progress, Schema};

use crate::azure::AzureClients;
use crate::orphans;
use crate::provider_data::ProviderData;
use crate::resources::orphan_cleanup::{
    removal_arguments, search_arguments, search_of, too_many, validate_principal_types,
    RemovalArguments,
};

pub struct OrphanCleanupAction {
    data: Arc<ProviderData>,
}

impl OrphanCleanupAction {
    pub fn new(data: Arc<ProviderData>) -> Self {
        OrphanCleanupAction { data }
    }
}

/// The action's arguments (`search_arguments` and `max_deletions`), defaults filled in.
/// Any may be unknown until plan.
#[derive(Debug, Default, Deserialize)]
pub struct Config {
    scope: Maybe<String>,
    principal_types: Maybe<Vec<Maybe<String>>>,
    min_age: Maybe<String>,
    exclude_role_definition_ids: Maybe<Vec<Maybe<String>>>,
    max_deletions: Maybe<serde_json::Number>,
}

impl Config {
    fn max_deletions(&self) -> usize {
        RemovalArguments {
            max_deletions: self
                .max_deletions
                .known()
                .and_then(serde_json::Number::as_i64),
            mode: None,
        }
        .max_deletions()
    }
}

#[async_trait]
impl TypedAction for OrphanCleanupAction {
    type Data = ProviderData;
    type Config = Config;
    const TYPE_NAME: &'static str = "mig_orphan_cleanup";

    fn data(&self) -> &ProviderData {
        &self.data
    }

    fn schema(&self) -> Schema {
        let mut attributes = search_arguments();
        attributes.extend(removal_arguments(false));
        // An action's schema has no computed values; optional+computed become optional.
        // Their declared defaults and validators stay: the server applies them to the config.
        for attribute in &mut attributes {
            attribute.computed = false;
        }
        Schema::new(
            0,
            Block {
                attributes,
                description: "Removes role assignments whose principal no longer exists, once, with the same safeguards as the `mig_orphan_cleanup` resource.".into(),
                ..Block::default()
            },
        )
    }

    // Validation (at ValidateActionConfig and again at PlanAction) is declared on the
    // arguments, the same as the resource's; `config` arrives with their defaults. What
    // the validators cannot see alone (empty sets) is the resource's `validate_search`,
    // run at both stages: a value unknown at validate is known at plan.
    fn validate(&self, config: &Config) -> Diagnostics {
        validate_principal_types(config.principal_types.known().map(Vec::as_slice))
    }

    async fn invoke(
        &self,
        clients: &Arc<AzureClients>,
        config: Config,
        progress: Progress,
    ) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        let search = search_of(
            &config.scope,
            &config.principal_types,
            &config.min_age,
            &config.exclude_role_definition_ids,
        );
        let Some((scope, rules)) = search else {
            diagnostics.error(
                "Arguments unknown",
                "Every argument of the action must be known when it runs.",
            );
            return diagnostics;
        };
        progress
            .report(format!("looking for orphaned role assignments at {scope}"))
            .await;
        let found = match orphans::find(clients, &scope, &rules).await {
            Ok(found) => found,
            Err(error) => {
                diagnostics.error_at(AttributePath::root("scope"), "Nothing was deleted", &error);
                return diagnostics;
            }
        };
        let candidates: Vec<_> = found.iter().filter(|o| !o.inherited).cloned().collect();
        let max = config.max_deletions();
        if candidates.len() > max {
            diagnostics.error_at(
                AttributePath::root("max_deletions"),
                "Too many orphaned role assignments",
                &too_many(candidates.len(), max),
            );
            return diagnostics;
        }
        progress
            .report(format!(
                "{} orphaned assignment(s) to remove, {} inherited from above (left alone)",
                candidates.len(),
                found.len() - candidates.len()
            ))
            .await;
        let (lines, mut receiver) = tokio::sync::mpsc::unbounded_channel::<String>();
        let report = move |line: String| {
            let _ = lines.send(line);
        };
        let removal = orphans::remove(clients, &candidates, &report).await;
        drop(report);
        while let Some(line) = receiver.recv().await {
            progress.report(line).await;
        }
        if let Some(reason) = &removal.stopped {
            diagnostics.error("Clean-up stopped", reason);
        }
        let kept: Vec<String> = removal
            .kept
            .iter()
            .filter(|(_, why)| *why != "not attempted")
            .map(|(id, why)| format!("- {id}: {why}"))
            .collect();
        if !kept.is_empty() {
            diagnostics.warning("Some assignments were kept", &kept.join("\n"));
        }
        progress
            .report(format!(
                "removed {} orphaned role assignment(s)",
                removal.removed.len()
            ))
            .await;
        diagnostics
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider_data::ProviderData;
    use crate::resources::orphan_cleanup::search_from;
    use tfplugin::{model, Value};

    #[test]
    fn the_schema_is_optional_only_and_keeps_defaults_and_validators() {
        let action = OrphanCleanupAction::new(Arc::new(ProviderData::default()));
        let block = action.schema().block;
        assert!(block.attributes.iter().all(|a| !a.computed));
        let config = Value::object([
            (
                "scope",
                Value::from("/subscriptions/00000000-0000-0000-0000-000000000001"),
            ),
            ("principal_types", Value::Null),
            ("min_age", Value::Null),
            ("exclude_role_definition_ids", Value::Null),
            ("max_deletions", Value::int(-1)),
        ]);
        let diagnostics = block.validate(&config);
        assert_eq!(
            diagnostics.items[0].attribute,
            Some(AttributePath::root("max_deletions"))
        );
        let defaulted = block.apply_defaults(&config.with("max_deletions", Value::Null));
        assert!(search_from(&defaulted).is_some());
        assert_eq!(RemovalArguments::from(&defaulted).max_deletions(), 50);

        // What the adapter hands `invoke`: the same search and limit, typed.
        let typed: Config = model::decode(&defaulted).unwrap();
        let search = search_of(
            &typed.scope,
            &typed.principal_types,
            &typed.min_age,
            &typed.exclude_role_definition_ids,
        );
        assert_eq!(
            search.map(|(scope, _)| scope),
            search_from(&defaulted).map(|(scope, _)| scope)
        );
        assert_eq!(typed.max_deletions(), 50);
        let typed: Config = model::decode(&defaulted.with("max_deletions", Value::int(7))).unwrap();
        assert_eq!(typed.max_deletions(), 7);
    }

    /// A configuration with every argument null but `principal_types`.
    fn with_principal_types(types: Value) -> Value {
        let action = OrphanCleanupAction::new(Arc::new(ProviderData::default()));
        let null = Value::object(
            action
                .schema()
                .block
                .attributes
                .iter()
                .map(|a| (a.name.as_str(), Value::Null)),
        );
        null.with("principal_types", types)
    }

    #[test]
    fn an_empty_set_of_principal_types_is_refused_and_an_unknown_one_waits() {
        let action = OrphanCleanupAction::new(Arc::new(ProviderData::default()));
        let empty: Config =
            model::decode_lenient(&with_principal_types(Value::Set(vec![]))).unwrap();
        assert_eq!(
            action.validate(&empty).items[0].attribute,
            Some(AttributePath::root("principal_types"))
        );
        let unknown: Config =
            model::decode_lenient(&with_principal_types(Value::unknown())).unwrap();
        assert!(action.validate(&unknown).is_empty());
        let unknown_scope = Config {
            scope: Maybe::Unknown,
            min_age: Maybe::Known("1h".into()),
            ..model::decode(&with_principal_types(Value::string_set(["User"]))).unwrap()
        };
        assert!(search_of(
            &unknown_scope.scope,
            &unknown_scope.principal_types,
            &unknown_scope.min_age,
            &unknown_scope.exclude_role_definition_ids
        )
        .is_none());
        let known_scope = Config {
            scope: Maybe::Known("/subscriptions/00000000-0000-0000-0000-000000000001".into()),
            ..unknown_scope
        };
        assert!(search_of(
            &known_scope.scope,
            &known_scope.principal_types,
            &known_scope.min_age,
            &known_scope.exclude_role_definition_ids
        )
        .is_some());
    }
}
