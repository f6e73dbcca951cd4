//! `mig_orphaned_role_assignments`: the orphaned role assignments at a scope, report only.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::typed::{DataRead, Maybe, TypedDataSource};
use tfplugin::{Attribute, AttributePath, Block, Diagnostics, Schema, Type, Value};

use crate::arguments;
use crate::azure::AzureClients;
use crate::orphans;
use crate::provider_data::ProviderData;
use crate::resources::orphan_cleanup::{
    orphaned_attribute, search_arguments, validate_search, OrphanModel, SearchArguments,
};

/// The search arguments (`search_arguments`, defaults applied at read) and what the read
/// finds. The sets may hold unknown elements at validation; a read's configuration is known.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Model {
    scope: Option<String>,
    principal_types: Option<Vec<Maybe<String>>>,
    min_age: Option<String>,
    exclude_role_definition_ids: Option<Vec<Maybe<String>>>,
    id: Option<String>,
    orphaned: Option<Vec<OrphanModel>>,
    ids: Option<BTreeSet<String>>,
}

impl Model {
    /// The search, as the resource and the action read it; `None` unless every argument
    /// is known and `min_age` a duration.
    fn search(&self) -> Option<(String, orphans::Rules)> {
        let known = |set: &[Maybe<String>]| -> Option<BTreeSet<String>> {
            set.iter().map(|item| item.known().cloned()).collect()
        };
        let arguments = SearchArguments {
            scope: self.scope.clone()?,
            principal_types: known(self.principal_types.as_deref()?)?,
            min_age: self.min_age.clone()?,
            exclude_role_definition_ids: match &self.exclude_role_definition_ids {
                Some(ids) => Some(known(ids)?),
                None => None,
            },
        };
        let rules = arguments.rules()?;
        Some((arguments::trim_arm_id(&arguments.scope).to_string(), rules))
    }
}

pub struct OrphanedRoleAssignments {
    data: Arc<ProviderData>,
}

impl OrphanedRoleAssignments {
    pub fn new(data: Arc<ProviderData>) -> Self {
        OrphanedRoleAssignments { data }
    }
}

#[async_trait]
impl TypedDataSource for OrphanedRoleAssignments {
    type Data = ProviderData;
    type Model = Model;
    const TYPE_NAME: &'static str = "mig_orphaned_role_assignments";

    fn data(&self) -> &ProviderData {
        &self.data
    }

    fn schema(&self) -> Schema {
        let mut attributes = search_arguments();
        attributes.push(Attribute::computed("id", Type::String).description("The scope."));
        attributes.push(orphaned_attribute(
            "Role assignments whose principal no longer exists.",
        ));
        attributes.push(
            Attribute::computed("ids", Type::set(Type::String))
                .description("Their IDs, inherited ones included."),
        );
        Schema::new(
            0,
            Block {
                attributes,
                description: "Lists role assignments whose principal no longer exists (\"Identity not found\"), without changing anything.".into(),
                ..Block::default()
            },
        )
    }

    // Arguments are validated by the validators declared on them (shared with the
    // resource and the action) and by `validate_search`; `read` gets the config with their
    // defaults.

    fn validate(&self, config: &Model) -> Diagnostics {
        match &config.principal_types {
            // The rule, and its words, are the resource's and the action's.
            Some(types) if types.is_empty() => validate_search(&Value::object([(
                "principal_types",
                Value::Set(Vec::new()),
            )])),
            _ => Diagnostics::default(),
        }
    }

    async fn read(&self, clients: &Arc<AzureClients>, config: Model) -> DataRead<Model> {
        let Some((scope, rules)) = config.search() else {
            return DataRead::failed(
                "Arguments unknown",
                "Every argument must be known to read this data source.",
            );
        };
        match orphans::find(clients, &scope, &rules).await {
            Ok(found) => DataRead::new(Model {
                id: Some(scope),
                orphaned: Some(found.iter().map(OrphanModel::from).collect()),
                ids: Some(found.iter().map(|o| o.id.clone()).collect()),
                ..config
            }),
            Err(error) => {
                let mut diagnostics = Diagnostics::default();
                diagnostics.error_at(
                    AttributePath::root("scope"),
                    "Cannot look for orphaned role assignments",
                    &error,
                );
                DataRead {
                    state: None,
                    diagnostics,
                    deferred: None,
                }
            }
        }
    }
}
