//! `mig_unused_identities`: user-assigned identities attached to no VM or scale set and
//! granted no role, which Azure's best-practice docs leave for manual deletion.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tfplugin::typed::{DataRead, TypedDataSource};
use tfplugin::{Attribute, AttributePath, Block, Diagnostics, NestingMode, Schema, Type};

use crate::arguments;
use crate::azure::compute::MachineKind;
use crate::azure::ids::Scope;
use crate::azure::AzureClients;
use crate::provider_data::ProviderData;

pub struct UnusedIdentities {
    data: Arc<ProviderData>,
}

impl UnusedIdentities {
    pub fn new(data: Arc<ProviderData>) -> Self {
        UnusedIdentities { data }
    }
}

/// One of `identities`.
#[derive(Debug, Serialize, Deserialize)]
pub struct IdentityModel {
    id: String,
    name: String,
    location: String,
    principal_id: String,
    client_id: String,
}

/// The argument and what the read finds; a read's configuration is known.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Model {
    scope: Option<String>,
    id: Option<String>,
    identities: Option<Vec<IdentityModel>>,
    ids: Option<Vec<String>>,
}

#[async_trait]
impl TypedDataSource for UnusedIdentities {
    type Data = ProviderData;
    type Model = Model;
    const TYPE_NAME: &'static str = "mig_unused_identities";

    fn data(&self) -> &ProviderData {
        &self.data
    }

    fn schema(&self) -> Schema {
        let text = |name: &str, description: &str| {
            Attribute::computed(name, Type::String).description(description)
        };
        Schema::new(
            0,
            Block {
                attributes: vec![
                    Attribute::required("scope", Type::String)
                        .validator(arguments::scope())
                        .description("A subscription or resource group ID. A trailing `/` is ignored; a query string is refused."),
                    text("id", "The scope."),
                    Attribute::computed("identities", Type::Dynamic)
                        .nested(
                            NestingMode::List,
                            vec![
                                text("id", "Resource ID."),
                                text("name", "Name."),
                                text("location", "Region."),
                                text("principal_id", "Object ID of its service principal."),
                                text("client_id", "Client ID."),
                            ],
                        )
                        .description("Identities attached to no machine in the scope and holding no role assignment."),
                    Attribute::computed("ids", Type::set(Type::String)).description("Their IDs."),
                ],
                description: "User-assigned identities in a scope that no VM or scale set uses and that hold no role.".into(),
                ..Block::default()
            },
        )
    }

    async fn read(&self, clients: &Arc<AzureClients>, config: Model) -> DataRead<Model> {
        let scope = match Scope::parse(arguments::trim_arm_id(
            config.scope.as_deref().unwrap_or_default(),
        )) {
            Ok(scope) => scope,
            Err(reason) => {
                let mut diagnostics = Diagnostics::default();
                diagnostics.error_at(AttributePath::root("scope"), "Invalid scope", &reason);
                return DataRead {
                    state: None,
                    diagnostics,
                    deferred: None,
                };
            }
        };
        let failed =
            |what: &str, error: String| DataRead::failed(&format!("Cannot list {what}"), &error);
        let identities = match clients.identities.list(&scope).await {
            Ok(identities) => identities,
            Err(error) => return failed("the identities", error.to_string()),
        };
        // Machines anywhere in the subscription may use an identity from this group.
        let subscription = Scope::subscription(scope.subscription_id());
        let mut attached = BTreeSet::new();
        for kind in [MachineKind::VirtualMachine, MachineKind::ScaleSet] {
            let mut pages = clients.compute.list_machines(&subscription, kind);
            while let Some(page) = pages.next().await {
                match page {
                    Ok(machines) => attached.extend(machines.iter().flat_map(|m| {
                        m.user_assigned_identity_ids
                            .iter()
                            .map(|id| id.to_ascii_lowercase())
                    })),
                    Err(error) => return failed("the machines", error.to_string()),
                }
            }
        }
        let granted: BTreeSet<String> = match clients
            .authorization
            .list_role_assignments_below(&subscription.to_string())
            .await
        {
            Ok(assignments) => assignments
                .iter()
                .map(|a| a.principal_id.to_ascii_lowercase())
                .collect(),
            Err(error) => return failed("the role assignments", error.to_string()),
        };
        let unused: Vec<_> = identities
            .iter()
            .filter(|i| !attached.contains(&i.id.to_ascii_lowercase()))
            .filter(|i| !granted.contains(&i.principal_id.to_ascii_lowercase()))
            .collect();
        DataRead::new(Model {
            id: Some(scope.to_string()),
            identities: Some(
                unused
                    .iter()
                    .map(|i| IdentityModel {
                        id: i.id.clone(),
                        name: i.name.clone(),
                        location: i.location.clone(),
                        principal_id: i.principal_id.clone(),
                        client_id: i.client_id.clone(),
                    })
                    .collect(),
            ),
            ids: Some(unused.iter().map(|i| i.id.clone()).collect()),
            // The configuration's own spelling: a data source's arguments come back as given.
            ..config
        })
    }
}
