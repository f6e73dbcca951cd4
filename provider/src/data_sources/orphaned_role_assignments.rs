//! `mig_orphaned_role_assignments`: the orphaned role assignments at a scope, report only.

use std::sync::Arc;

use async_trait::async_trait;
use tfplugin::{
    Attribute, AttributePath, Block, DataReadRequest, DataReadResponse, DataSource, Diagnostics,
    Schema, Type, Value,
};

use crate::orphans;
use crate::provider::ProviderData;
use crate::resources::orphan_cleanup::{
    orphan_value, orphaned_attribute, search_arguments, search_from, validate_arguments,
    with_defaults,
};

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

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        validate_arguments(config)
    }

    async fn read(&self, request: DataReadRequest) -> DataReadResponse {
        let mut response = DataReadResponse::default();
        let config = with_defaults(&request.config);
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
                let mut state = config.as_object().cloned().unwrap_or_default();
                state.insert("id".into(), Value::from(scope.as_str()));
                state.insert(
                    "orphaned".into(),
                    Value::List(found.iter().map(orphan_value).collect()),
                );
                state.insert(
                    "ids".into(),
                    Value::string_set(found.iter().map(|o| o.id.clone())),
                );
                response.state = Value::Object(state);
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
