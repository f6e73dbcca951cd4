//! The `mig_orphan_cleanup` resource on the typed trait ([`tfplugin::typed`]): its model and
//! schema, plan, apply, read and import. Destroy forgets; it never deletes anything.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::typed::{
    Applied, Create, Existing, ImportKey, Imported, Maybe, Plan, Planned, TypedResource, Update,
};
use tfplugin::{
    model, Attribute, AttributePath, Block, Diagnostics, IdentitySchema, Schema, Type, Value,
};

use super::{
    orphaned_attribute, removal_arguments, search_arguments, search_of, too_many,
    validate_principal_types, Mode, OrphanModel, RemovalArguments, TYPE_NAME,
};
use crate::arguments;
use crate::azure::AzureClients;
use crate::orphans::{self, Orphan, Rules};
use crate::provider_data::ProviderData;
use crate::resources::identity;

pub struct OrphanCleanup {
    data: Arc<ProviderData>,
}

impl OrphanCleanup {
    pub fn new(data: Arc<ProviderData>) -> Self {
        OrphanCleanup { data }
    }
}

/// The resource's configuration, plan or state. Sets are lists here, in the order Terraform
/// holds them; numbers keep their JSON form (a whole number stays whole).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Model {
    // Arguments
    scope: Maybe<String>,
    principal_types: Maybe<Vec<Maybe<String>>>,
    min_age: Maybe<String>,
    exclude_role_definition_ids: Maybe<Vec<Maybe<String>>>,
    max_deletions: Maybe<serde_json::Number>,
    mode: Maybe<String>,
    // Attributes
    id: Maybe<String>,
    orphaned: Maybe<Vec<OrphanModel>>,
    removed_ids: Maybe<Vec<String>>,
}

impl Model {
    /// As a value, for the argument helpers shared with the action and the data source.
    fn value(&self) -> Value {
        model::encode(self, state_type())
    }

    /// The scope and rules, once every search argument is known.
    fn search(&self) -> Option<(String, Rules)> {
        search_of(
            &self.scope,
            &self.principal_types,
            &self.min_age,
            &self.exclude_role_definition_ids,
        )
    }

    fn removal(&self) -> RemovalArguments {
        RemovalArguments::from(&self.value())
    }

    fn orphans(&self) -> Vec<Orphan> {
        self.orphaned
            .known()
            .into_iter()
            .flatten()
            .cloned()
            .map(Orphan::from)
            .collect()
    }

    fn removed(&self) -> BTreeSet<String> {
        self.removed_ids
            .known()
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    /// The arguments (defaults applied) with the outcome.
    fn with_outcome(&self, orphaned: &[Orphan], removed: &BTreeSet<String>) -> Model {
        Model {
            id: self
                .scope
                .as_str()
                .map(|scope| arguments::trim_arm_id(scope).to_string())
                .into(),
            orphaned: Maybe::Known(orphaned.iter().map(OrphanModel::from).collect()),
            removed_ids: Maybe::Known(removed.iter().cloned().collect()),
            ..self.clone()
        }
    }
}

pub(super) fn schema() -> Schema {
    let mut attributes: Vec<Attribute> = search_arguments()
        .into_iter()
        .map(|a| match a.name.as_str() {
            // Another scope is another resource (ARM IDs compare without case).
            "scope" => a.requires_replace_ignoring_case(),
            _ => a,
        })
        .collect();
    attributes.extend(removal_arguments(true));
    attributes.push(Attribute::computed("id", Type::String).description("The scope."));
    attributes.push(orphaned_attribute(
        "Orphaned role assignments found by the last refresh that are still in place.",
    ));
    attributes.push(
        Attribute::computed("removed_ids", Type::set(Type::String))
            .description("Every role assignment this resource removed."),
    );
    Schema::new(
        0,
        Block {
            attributes,
            description: "Finds role assignments whose principal no longer exists (\"Identity not found\") and removes them, with a plan, safeguards against Microsoft Graph being wrong, and a record of what was removed.".into(),
            ..Block::default()
        },
    )
}

pub(super) fn state_type() -> &'static Type {
    static TYPE: LazyLock<Type> = LazyLock::new(|| schema().value_type());
    &TYPE
}

/// The identity is the scope (as `id` records it: without a trailing `/`). Another scope is
/// another object (`scope` replaces), so it never changes; a change of letter case only is
/// kept from the prior identity (see `crate::resources::identity`).
pub fn identity_schema() -> IdentitySchema {
    IdentitySchema {
        version: 0,
        attributes: vec![identity::attribute(
            "scope",
            true,
            "The scope searched: a management group, subscription or resource group ID.",
        )],
    }
}

/// A value of [`identity_schema`].
#[derive(Debug, Deserialize)]
struct IdentityModel {
    scope: Option<String>,
}

#[async_trait]
impl TypedResource for OrphanCleanup {
    type Data = ProviderData;
    type Model = Model;
    type Private = ();
    const TYPE_NAME: &'static str = TYPE_NAME;

    fn data(&self) -> &ProviderData {
        &self.data
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(identity_schema())
    }

    fn identity_of(&self, state: &Model) -> Option<Value> {
        let scope = state.id.as_str()?;
        identity::known(Value::object([("scope", Value::string(scope))]))
    }

    // Arguments are checked by the validators declared in `search_arguments` and
    // `removal_arguments` (and `validate_principal_types`); defaults and replacement (`scope`) are
    // declared there too.
    fn validate(&self, config: &Model) -> Diagnostics {
        validate_principal_types(config.principal_types.known().map(Vec::as_slice))
    }

    async fn plan(
        &self,
        clients: Option<&Arc<AzureClients>>,
        request: Plan<Model, ()>,
    ) -> Planned<Model, ()> {
        let proposed = &request.proposed;
        let mut response = Planned::new(proposed.clone(), ());
        let Some((scope, rules)) = proposed.search() else {
            // Arguments not known yet: so is the outcome (the server already planned these
            // unknown, as the arguments changed; said here for the reader).
            response.state = Model {
                id: Maybe::Unknown,
                orphaned: Maybe::Unknown,
                removed_ids: Maybe::Unknown,
                ..proposed.clone()
            };
            return response;
        };
        let Some(clients) = clients else {
            response.diagnostics = self.data.clients().err().unwrap_or_default();
            return response;
        };
        let prior_removed = match &request.prior {
            Some(prior) if request.requires_replace.is_empty() => prior.removed(),
            _ => BTreeSet::new(),
        };
        let found = match orphans::find(clients, &scope, &rules).await {
            Ok(found) => found,
            Err(error) => {
                response.diagnostics.error_at(
                    AttributePath::root("scope"),
                    "Cannot look for orphaned role assignments",
                    &error,
                );
                return response;
            }
        };
        let removal = proposed.removal();
        let deleting = removal.mode == Some(Mode::Delete);
        let (removable, remaining): (Vec<Orphan>, Vec<Orphan>) = found
            .into_iter()
            .partition(|orphan| deleting && !orphan.inherited);
        let max = removal.max_deletions();
        if removable.len() > max {
            response.diagnostics.warning_at(
                AttributePath::root("max_deletions"),
                "Apply will refuse to delete",
                &too_many(removable.len(), max),
            );
        }
        let mut removed = prior_removed;
        removed.extend(removable.iter().map(|o| o.id.clone()));
        response.state = proposed.with_outcome(&remaining, &removed);
        response
    }

    async fn create(
        &self,
        clients: &Arc<AzureClients>,
        request: Create<Model, ()>,
    ) -> Applied<Model, ()> {
        remove_planned(clients, None, &request.planned).await
    }

    async fn update(
        &self,
        clients: &Arc<AzureClients>,
        request: Update<Model, ()>,
    ) -> Applied<Model, ()> {
        remove_planned(clients, Some(&request.prior), &request.planned).await
    }

    /// Destroy forgets; it never deletes anything.
    async fn delete(
        &self,
        _clients: &Arc<AzureClients>,
        _request: Existing<Model, ()>,
    ) -> Applied<Model, ()> {
        Applied::new(None, ())
    }

    async fn read(
        &self,
        clients: &Arc<AzureClients>,
        request: Existing<Model, ()>,
    ) -> Applied<Model, ()> {
        let state = request.state;
        let mut response = Applied::new(Some(state.clone()), ());
        let Some((scope, rules)) = state.search() else {
            return response;
        };
        // A scope in another tenant is refused at plan and apply; a refresh only warns, so
        // that a resource in state from before the check can still be destroyed (destroy
        // forgets; it deletes nothing). Nothing is listed as orphaned.
        if let Err(error) = orphans::check_scope_tenant(clients, &scope).await {
            response.diagnostics.warning_at(
                AttributePath::root("scope"),
                "Orphaned role assignments cannot be told at this scope",
                &error,
            );
            response.state = Some(state.with_outcome(&[], &state.removed()));
            return response;
        }
        match orphans::search(clients, &scope, &rules).await {
            Ok(found) => response.state = Some(state.with_outcome(&found, &state.removed())),
            Err(error) => response.diagnostics.error_at(
                AttributePath::root("scope"),
                "Cannot look for orphaned role assignments",
                &error,
            ),
        }
        response
    }

    /// By ID (the scope) or by identity (`{ scope = ... }`). Nothing is removed by an import:
    /// the next plan shows, as for any configuration, what `mode` would remove.
    async fn import(
        &self,
        _clients: &Arc<AzureClients>,
        key: ImportKey,
    ) -> Result<Vec<Imported<Model, ()>>, Diagnostics> {
        let scope = match key {
            ImportKey::Identity(given) => model::decode::<IdentityModel>(&given)
                .ok()
                .and_then(|identity| identity.scope)
                .unwrap_or_default(),
            ImportKey::Id(id) => id,
        };
        let scope = arguments::trim_arm_id(scope.trim()).to_string();
        // Every attribute null but `scope`, then the declared defaults.
        let skeleton = Model {
            scope: Maybe::Known(scope.clone()),
            ..Model::default()
        };
        let skeleton = schema().block.apply_defaults(&skeleton.value());
        // The declared defaults are never empty: the declared validators are all it needs.
        let mut problems = schema().block.validate(&skeleton);
        if scope.is_empty() || problems.has_errors() {
            if scope.is_empty() {
                problems.error(
                    "Invalid import ID",
                    "Import mig_orphan_cleanup by its scope: a management group, subscription or resource group ID.",
                );
            }
            return Err(problems);
        }
        let skeleton: Model = model::decode(&skeleton)?;
        Ok(vec![Imported {
            state: skeleton.with_outcome(&[], &BTreeSet::new()),
            private: (),
        }])
    }
}

/// Apply of a create or an update: removes exactly the orphans the plan moved into
/// `removed_ids`, each confirmed again right before.
async fn remove_planned(
    clients: &AzureClients,
    prior: Option<&Model>,
    planned: &Model,
) -> Applied<Model, ()> {
    let prior_removed = match prior {
        Some(prior) if prior.scope == planned.scope => prior.removed(),
        _ => BTreeSet::new(),
    };
    let planned_removed = planned.removed();
    let to_remove: BTreeSet<String> = planned_removed
        .difference(&prior_removed)
        .cloned()
        .collect();
    let remaining = planned.orphans();
    let mut diagnostics = Diagnostics::default();
    let failed_state = |diagnostics: Diagnostics, removed: &BTreeSet<String>| Applied {
        state: Some(planned.with_outcome(&remaining, removed)),
        private: (),
        diagnostics,
    };
    if to_remove.is_empty() {
        return failed_state(diagnostics, &prior_removed);
    }
    let max = planned.removal().max_deletions();
    if to_remove.len() > max {
        diagnostics.error_at(
            AttributePath::root("max_deletions"),
            "Too many orphaned role assignments",
            &too_many(to_remove.len(), max),
        );
        return failed_state(diagnostics, &prior_removed);
    }
    // Re-find to get each candidate's principal; anything no longer an orphan is kept.
    let Some((scope, rules)) = planned.search() else {
        diagnostics.error(
            "Arguments unknown at apply",
            "This is a bug in Terraform or the provider.",
        );
        return failed_state(diagnostics, &prior_removed);
    };
    let current = match orphans::find(clients, &scope, &rules).await {
        Ok(current) => current,
        Err(error) => {
            diagnostics.error_at(AttributePath::root("scope"), "Nothing was deleted", &error);
            return failed_state(diagnostics, &prior_removed);
        }
    };
    let candidates: Vec<Orphan> = current
        .into_iter()
        .filter(|o| to_remove.iter().any(|id| id.eq_ignore_ascii_case(&o.id)))
        .collect();
    let log = |line: String| tracing::info!("{line}");
    let removal = orphans::remove(clients, &candidates, &log).await;
    let mut removed = prior_removed;
    removed.extend(removal.removed.iter().cloned());
    let found_ids: BTreeSet<String> = candidates
        .iter()
        .map(|o| o.id.to_ascii_lowercase())
        .collect();
    let vanished: Vec<&String> = to_remove
        .iter()
        .filter(|id| !found_ids.contains(&id.to_ascii_lowercase()))
        .collect();
    // Planned removals that are no longer orphans (deleted by someone else, or the
    // principal is back) are not ours to record.
    let mut kept: BTreeMap<String, String> = removal.kept.clone();
    for id in vanished {
        kept.insert(
            id.clone(),
            "no longer an orphaned assignment (gone already, or its principal exists)".into(),
        );
    }
    if let Some(reason) = &removal.stopped {
        diagnostics.error("Clean-up stopped", reason);
    }
    if !kept.is_empty() {
        let lines: Vec<String> = kept
            .iter()
            .map(|(id, why)| format!("- {id}: {why}"))
            .collect();
        diagnostics.error(
            &format!("{} planned removal(s) not done", kept.len()),
            &format!(
                "State records exactly what was removed; plan again to see the current orphans.\n{}",
                lines.join("\n")
            ),
        );
    }
    let mut remaining_now = remaining;
    for orphan in &candidates {
        if !removal.removed.contains(&orphan.id) && removal.kept.contains_key(&orphan.id) {
            remaining_now.push(orphan.clone());
        }
    }
    remaining_now.sort();
    Applied {
        state: Some(planned.with_outcome(&remaining_now, &removed)),
        private: (),
        diagnostics,
    }
}

/// The arguments of a value with the outcome, for the unit tests that plan with values.
#[cfg(test)]
pub(super) fn with_outcome(
    config: &Value,
    orphaned: &[Orphan],
    removed: &BTreeSet<String>,
) -> Value {
    let config: Model = model::decode(config).expect("a value of the schema");
    config.with_outcome(orphaned, removed).value()
}
