//! `mig_permissions`: which ARM actions the provider's resources need that the configured
//! principal lacks at a scope, so a pipeline can fail early with a list of what to grant.
//! The actions translate the role table of the built-in policy's docs (Managed Identity
//! Operator, Contributor, Managed Identity Contributor, User Access Administrator).

use std::sync::Arc;

use async_trait::async_trait;
use tfplugin::{
    Attribute, Block, DataReadRequest, DataReadResponse, DataSource, Diagnostics, Schema, Type,
    Validator, Value,
};

use crate::arguments;
use crate::provider_data::ProviderData;

/// An ARM action as role definitions spell it: `{Namespace}/{type}/.../{verb}`, `*`
/// wildcards allowed.
fn check_action(action: &str) -> Result<(), String> {
    let parts: Vec<&str> = action.split('/').collect();
    if parts.len() < 2
        || parts.iter().any(|p| p.is_empty())
        || action.chars().any(char::is_whitespace)
    {
        return Err(format!(
            "`{action}` is not an ARM action; write it as role definitions do, like `Microsoft.Compute/virtualMachines/write`."
        ));
    }
    Ok(())
}

/// What each resource does, as ARM actions.
pub const REQUIRED_ACTIONS: [(&str, &str); 14] = [
    (
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        "mig_builtin_identity",
    ),
    (
        "Microsoft.Resources/subscriptions/resourceGroups/write",
        "mig_builtin_identity",
    ),
    (
        "Microsoft.ManagedIdentity/userAssignedIdentities/read",
        "mig_builtin_identity",
    ),
    (
        "Microsoft.ManagedIdentity/userAssignedIdentities/write",
        "mig_builtin_identity",
    ),
    (
        "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
        "mig_builtin_identity",
    ),
    ("Microsoft.Authorization/locks/read", "mig_builtin_identity"),
    (
        "Microsoft.Authorization/locks/write",
        "mig_builtin_identity",
    ),
    (
        "Microsoft.Authorization/locks/delete",
        "mig_builtin_identity",
    ),
    (
        "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
        "mig_identity_assignment",
    ),
    (
        "Microsoft.Compute/virtualMachines/read",
        "mig_identity_assignment",
    ),
    (
        "Microsoft.Compute/virtualMachines/write",
        "mig_identity_assignment",
    ),
    (
        "Microsoft.Compute/virtualMachineScaleSets/write",
        "mig_identity_assignment",
    ),
    (
        "Microsoft.Authorization/roleAssignments/read",
        "mig_orphan_cleanup",
    ),
    (
        "Microsoft.Authorization/roleAssignments/delete",
        "mig_orphan_cleanup",
    ),
];

pub struct Permissions {
    data: Arc<ProviderData>,
}

impl Permissions {
    pub fn new(data: Arc<ProviderData>) -> Self {
        Permissions { data }
    }
}

#[async_trait]
impl DataSource for Permissions {
    fn type_name(&self) -> &'static str {
        "mig_permissions"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            0,
            Block {
                attributes: vec![
                    Attribute::required("scope", Type::String)
                        .validator(arguments::scope())
                        .description("A subscription or resource group ID. A trailing `/` is ignored; a query string is refused."),
                    Attribute::optional("actions", Type::set(Type::String))
                        .validator(Validator::string("Invalid action", check_action))
                        .description(
                        "The actions to check, like `Microsoft.Compute/virtualMachines/write`. Default (null): every action the mig resources need. An empty set is refused: it would check nothing and always report `sufficient`.",
                    ),
                    Attribute::computed("id", Type::String).description("The scope."),
                    Attribute::computed("missing_actions", Type::set(Type::String))
                        .description("Actions the configured principal may not perform at the scope."),
                    Attribute::computed("missing_by_resource", Type::map(Type::list(Type::String)))
                        .description("The missing actions, grouped by the resource type that needs them."),
                    Attribute::computed("sufficient", Type::Bool).description("True when nothing is missing."),
                ],
                description: "Checks the configured principal's permissions at a scope against what the mig resources need.".into(),
                ..Block::default()
            },
        )
    }

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        arguments::check_not_empty(
            config,
            "actions",
            "No actions",
            "An empty set checks nothing, so `sufficient` would always be true. Name the actions to check, or leave `actions` out for every action the mig resources need.",
        )
    }

    async fn read(&self, request: DataReadRequest) -> DataReadResponse {
        let mut response = DataReadResponse::default();
        let scope =
            arguments::trim_arm_id(request.config.get("scope").as_str().unwrap_or_default())
                .to_string();
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                response.diagnostics = diagnostics;
                return response;
            }
        };
        let permissions = match clients.authorization.permissions(&scope).await {
            Ok(permissions) => permissions,
            Err(error) => {
                response
                    .diagnostics
                    .error("Cannot read the permissions", &error.to_string());
                return response;
            }
        };
        let wanted: Vec<(String, String)> = match request.config.get("actions").as_string_list() {
            Some(actions) => actions
                .into_iter()
                .map(|a| (a, "requested".to_string()))
                .collect(),
            None => REQUIRED_ACTIONS
                .iter()
                .map(|(a, r)| (a.to_string(), r.to_string()))
                .collect(),
        };
        let missing: Vec<&(String, String)> = wanted
            .iter()
            .filter(|(action, _)| !crate::azure::authorization::allows(&permissions, action))
            .collect();
        let mut by_resource: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
        for (action, resource) in &missing {
            by_resource
                .entry(resource.clone())
                .or_default()
                .push(Value::from(action.as_str()));
        }
        let mut state = request.config.as_object().cloned().unwrap_or_default();
        state.insert("id".into(), Value::from(scope.as_str()));
        state.insert(
            "missing_actions".into(),
            Value::string_set(missing.iter().map(|(a, _)| a.clone())),
        );
        state.insert(
            "missing_by_resource".into(),
            Value::Map(
                by_resource
                    .into_iter()
                    .map(|(k, v)| (k, Value::List(v)))
                    .collect(),
            ),
        );
        state.insert("sufficient".into(), Value::Bool(missing.is_empty()));
        response.state = Value::Object(state);
        response
    }
}
