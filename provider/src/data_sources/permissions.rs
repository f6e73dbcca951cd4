//! `mig_permissions`: which ARM actions the provider's resources need that the configured
//! principal lacks at a scope, so a pipeline can fail early with a list of what to grant.
//! The actions translate the role table of the built-in policy's docs (Managed Identity
//! Operator, Contributor, Managed Identity Contributor, User Access Administrator).

use std::sync::Arc;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::typed::{DataRead, Maybe, TypedDataSource};
use tfplugin::{Attribute, AttributePath, Block, Diagnostics, Schema, Type, Validator};

use crate::arguments;
use crate::azure::AzureClients;
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

/// The arguments and what the read finds. `actions` may hold unknown elements at
/// validation; a read's configuration is known.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Model {
    scope: Option<String>,
    actions: Option<Vec<Maybe<String>>>,
    id: Option<String>,
    missing_actions: Option<Vec<String>>,
    missing_by_resource: Option<BTreeMap<String, Vec<String>>>,
    sufficient: Option<bool>,
}

#[async_trait]
impl TypedDataSource for Permissions {
    type Data = ProviderData;
    type Model = Model;
    const TYPE_NAME: &'static str = "mig_permissions";

    fn data(&self) -> &ProviderData {
        &self.data
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

    fn validate(&self, config: &Model) -> Diagnostics {
        let mut diagnostics = Diagnostics::default();
        if config.actions.as_ref().is_some_and(Vec::is_empty) {
            diagnostics.error_at(
                AttributePath::root("actions"),
                "No actions",
                "An empty set checks nothing, so `sufficient` would always be true. Name the actions to check, or leave `actions` out for every action the mig resources need.",
            );
        }
        diagnostics
    }

    async fn read(&self, clients: &Arc<AzureClients>, config: Model) -> DataRead<Model> {
        let scope = arguments::trim_arm_id(config.scope.as_deref().unwrap_or_default()).to_string();
        let permissions = match clients.authorization.permissions(&scope).await {
            Ok(permissions) => permissions,
            Err(error) => {
                return DataRead::failed("Cannot read the permissions", &error.to_string())
            }
        };
        let wanted: Vec<(String, String)> = match &config.actions {
            Some(actions) => actions
                .iter()
                .filter_map(|a| a.known().cloned())
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
        let mut by_resource: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (action, resource) in &missing {
            by_resource
                .entry(resource.clone())
                .or_default()
                .push(action.clone());
        }
        DataRead::new(Model {
            id: Some(scope),
            missing_actions: Some(missing.iter().map(|(a, _)| a.clone()).collect()),
            missing_by_resource: Some(by_resource),
            sufficient: Some(missing.is_empty()),
            ..config
        })
    }
}
