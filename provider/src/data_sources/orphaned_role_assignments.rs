//! `mig_orphaned_role_assignments`: the orphaned role assignments at a scope, report only.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use tfplugin::{
    model, Attribute, AttributePath, Block, DataReadRequest, DataReadResponse, DataSource,
    Diagnostics, Schema, Type, Value,
};

use crate::orphans;
use crate::provider_data::ProviderData;
use crate::resources::orphan_cleanup::{
    orphaned_attribute, search_arguments, search_from, validate_search, OrphanModel,
};

/// What the read finds.
#[derive(Serialize)]
struct Found {
    id: String,
    orphaned: Vec<OrphanModel>,
    ids: BTreeSet<String>,
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
impl DataSource for OrphanedRoleAssignments {
    fn type_name(&self) -> &'static str {
        "mig_orphaned_role_assignments"
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

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        validate_search(config)
    }

    async fn read(&self, request: DataReadRequest) -> DataReadResponse {
        let mut response = DataReadResponse::default();
        let config = request.config;
        let Some((scope, rules)) = search_from(&config) else {
            response.diagnostics.error(
                "Arguments unknown",
                "Every argument must be known to read this data source.",
            );
            return response;
        };
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                response.diagnostics = diagnostics;
                return response;
            }
        };
        match orphans::find(&clients, &scope, &rules).await {
            Ok(found) => {
                let outcome = Found {
                    id: scope,
                    orphaned: found.iter().map(OrphanModel::from).collect(),
                    ids: found.iter().map(|o| o.id.clone()).collect(),
                };
                response.state = model::update(&config, &outcome, &self.schema().value_type());
            }
            Err(error) => response.diagnostics.error_at(
                AttributePath::root("scope"),
                "Cannot look for orphaned role assignments",
                &error,
            ),
        }
        response
    }
}
