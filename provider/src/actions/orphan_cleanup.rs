//! Action `mig_orphan_cleanup`: a one-off clean-up of orphaned role assignments
//! (`terraform apply -invoke=action.mig_orphan_cleanup.x`), with no resource in state.
//! Same arguments and safeguards as the resource.

use std::sync::Arc;

use async_trait::async_trait;
use tfplugin::{Action, AttributePath, Block, Diagnostics, Progress, Schema, Value};

use crate::orphans;
use crate::provider_data::ProviderData;
use crate::resources::orphan_cleanup::{
    removal_arguments, search_arguments, search_from, too_many, validate_search, RemovalArguments,
};

pub struct OrphanCleanupAction {
    data: Arc<ProviderData>,
}

impl OrphanCleanupAction {
    pub fn new(data: Arc<ProviderData>) -> Self {
        OrphanCleanupAction { data }
    }
}

#[async_trait]
impl Action for OrphanCleanupAction {
    fn type_name(&self) -> &'static str {
        "mig_orphan_cleanup"
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

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        validate_search(config)
    }

    async fn plan(&self, config: &Value) -> Diagnostics {
        validate_search(config)
    }

    async fn invoke(&self, config: Value, progress: Progress) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => return diagnostics,
        };
        let Some((scope, rules)) = search_from(&config) else {
            diagnostics.error(
                "Arguments unknown",
                "Every argument of the action must be known when it runs.",
            );
            return diagnostics;
        };
        progress
            .report(format!("looking for orphaned role assignments at {scope}"))
            .await;
        let found = match orphans::find(&clients, &scope, &rules).await {
            Ok(found) => found,
            Err(error) => {
                diagnostics.error_at(AttributePath::root("scope"), "Nothing was deleted", &error);
                return diagnostics;
            }
        };
        let candidates: Vec<_> = found.iter().filter(|o| !o.inherited).cloned().collect();
        let max = RemovalArguments::from(&config).max_deletions();
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
        let removal = orphans::remove(&clients, &candidates, &report).await;
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
    }
}
