//! `mig_orphaned_role_assignments`: the orphaned role assignments at a scope, report only.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::typed::{DataRead, Maybe, TypedDataSource};
use tfplugin::{Attribute, AttributePath, Block, Diagnostics, Schema, Type};

use crate::azure::AzureClients;
use crate::orphans;
use crate::provider_data::ProviderData;
use crate::resources::orphan_cleanup::{
    orphaned_attribute, search_arguments, search_of, validate_principal_types, OrphanModel,
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
        search_of(
            &self.scope.clone().into(),
            &self.principal_types.clone().into(),
            &self.min_age.clone().into(),
            &self.exclude_role_definition_ids.clone().into(),
        )
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
        // The rule, and its words, are the resource's and the action's.
        validate_principal_types(config.principal_types.as_deref())
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
