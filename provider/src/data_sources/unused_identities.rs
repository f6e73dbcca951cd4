//! `mig_unused_identities`: user-assigned identities attached to no VM or scale set and
//! granted no role, which Azure's best-practice docs leave for manual deletion.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use tfplugin::{
    Attribute, AttributePath, Block, DataReadRequest, DataReadResponse, DataSource, Diagnostics,
    NestingMode, Schema, Type, Value,
};

use crate::arguments;
use crate::azure::compute::MachineKind;
use crate::azure::ids::Scope;
use crate::provider_data::ProviderData;

pub struct UnusedIdentities {
    data: Arc<ProviderData>,
}

impl UnusedIdentities {
    pub fn new(data: Arc<ProviderData>) -> Self {
        UnusedIdentities { data }
    }
}

#[async_trait]
impl DataSource for UnusedIdentities {
    fn type_name(&self) -> &'static str {
        "mig_unused_identities"
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

    async fn read(&self, request: DataReadRequest) -> DataReadResponse {
        let mut response = DataReadResponse::default();
        let scope = match Scope::parse(arguments::trim_arm_id(
            request.config.get("scope").as_str().unwrap_or_default(),
        )) {
            Ok(scope) => scope,
            Err(reason) => {
                response.diagnostics.error_at(
                    AttributePath::root("scope"),
                    "Invalid scope",
                    &reason,
                );
                return response;
            }
        };
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                response.diagnostics = diagnostics;
                return response;
            }
        };
        let failed = |what: &str, error: String| {
            let mut diagnostics = Diagnostics::default();
            diagnostics.error(&format!("Cannot list {what}"), &error);
            DataReadResponse {
                diagnostics,
                ..DataReadResponse::default()
            }
        };
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
        response.state = Value::object([
            // The configuration's own spelling: a data source's arguments come back as given.
            ("scope", request.config.get("scope").clone()),
            ("id", Value::from(scope.to_string())),
            (
                "identities",
                Value::List(
                    unused
                        .iter()
                        .map(|i| {
                            Value::object([
                                ("id", Value::from(i.id.as_str())),
                                ("name", Value::from(i.name.as_str())),
                                ("location", Value::from(i.location.as_str())),
                                ("principal_id", Value::from(i.principal_id.as_str())),
                                ("client_id", Value::from(i.client_id.as_str())),
                            ])
                        })
                        .collect(),
                ),
            ),
            (
                "ids",
                Value::string_set(unused.iter().map(|i| i.id.clone())),
            ),
        ]);
        response
    }
}
