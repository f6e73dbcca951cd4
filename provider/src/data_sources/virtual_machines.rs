//! `mig_virtual_machines`: the VMs and scale sets in a scope with their identity
//! configuration, and the set of regions that have any, so a module can `for_each` its
//! identities over the regions it finds rather than a hard-coded list.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tfplugin::typed::{DataRead, Maybe, TypedDataSource};
use tfplugin::{Attribute, AttributePath, Block, Diagnostics, NestingMode, Schema, Type};

use crate::arguments;
use crate::azure::compute::{Machine, MachineKind};
use crate::azure::ids::{self, Scope};
use crate::azure::AzureClients;
use crate::provider_data::ProviderData;

pub struct VirtualMachines {
    data: Arc<ProviderData>,
}

impl VirtualMachines {
    pub fn new(data: Arc<ProviderData>) -> Self {
        VirtualMachines { data }
    }
}

pub const RESOURCE_TYPE_VMS: &str = "virtualMachines";
pub const RESOURCE_TYPE_SCALE_SETS: &str = "virtualMachineScaleSets";

pub fn kind_name(kind: MachineKind) -> &'static str {
    match kind {
        MachineKind::VirtualMachine => RESOURCE_TYPE_VMS,
        MachineKind::ScaleSet => RESOURCE_TYPE_SCALE_SETS,
    }
}

fn machine_attributes() -> Vec<Attribute> {
    let text = |name: &str, description: &str| {
        Attribute::computed(name, Type::String).description(description)
    };
    vec![
        text("id", "Resource ID."),
        text("name", "Name."),
        text(
            "resource_type",
            "`virtualMachines` or `virtualMachineScaleSets`.",
        ),
        text("location", "Region, as ARM spells it."),
        text("resource_group_name", "Resource group."),
        text(
            "provisioning_state",
            "`Succeeded`, `Updating`, `Failed`, ...",
        ),
        text(
            "identity_type",
            "`None`, `SystemAssigned`, `UserAssigned` or `SystemAssigned, UserAssigned`.",
        ),
        Attribute::computed("user_assigned_identity_ids", Type::list(Type::String))
            .description("IDs of the user-assigned identities attached."),
        Attribute::computed("tags", Type::map(Type::String)).description("Tags."),
    ]
}

/// One of `machines`.
#[derive(Debug, Serialize, Deserialize)]
pub struct MachineModel {
    id: String,
    name: String,
    resource_type: String,
    location: String,
    resource_group_name: Option<String>,
    provisioning_state: Option<String>,
    identity_type: String,
    user_assigned_identity_ids: Vec<String>,
    tags: BTreeMap<String, String>,
}

impl MachineModel {
    fn new(machine: &Machine) -> Self {
        MachineModel {
            id: machine.id.clone(),
            name: machine
                .id
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            resource_type: kind_name(machine.kind).to_string(),
            location: ids::normalize_location(&machine.location)
                .unwrap_or_else(|_| machine.location.clone()),
            resource_group_name: ids::ResourceId::parse(&machine.id)
                .ok()
                .and_then(|id| id.resource_group_name),
            provisioning_state: machine.provisioning_state.clone(),
            identity_type: machine
                .identity_type
                .clone()
                .unwrap_or_else(|| "None".into()),
            user_assigned_identity_ids: machine.user_assigned_identity_ids.clone(),
            tags: machine.tags.clone(),
        }
    }
}

/// The arguments and what the read finds. `resource_types` may hold unknown elements at
/// validation; a read's configuration is known.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Model {
    scope: Option<String>,
    resource_types: Option<Vec<Maybe<String>>>,
    id: Option<String>,
    locations: Option<BTreeSet<String>>,
    ids: Option<Vec<String>>,
    machines: Option<Vec<MachineModel>>,
}

/// The machine kinds `resource_types` names (the rule is `mig_identity_assignment`'s, in
/// `arguments`: any casing; null means both; an empty set is refused at validate).
fn kinds_from(names: Option<&[Maybe<String>]>) -> Result<Vec<MachineKind>, String> {
    let Some(names) = names else {
        return Ok(vec![MachineKind::VirtualMachine, MachineKind::ScaleSet]);
    };
    let mut kinds = Vec::new();
    for name in names.iter().filter_map(Maybe::known) {
        arguments::check_resource_type(name)?;
        kinds.extend(arguments::parse_machine_kind(name));
    }
    kinds.sort();
    kinds.dedup();
    Ok(kinds)
}

#[async_trait]
impl TypedDataSource for VirtualMachines {
    type Data = ProviderData;
    type Model = Model;
    const TYPE_NAME: &'static str = "mig_virtual_machines";

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
                        .description("A subscription (`/subscriptions/{id}`) or resource group ID. A trailing `/` is ignored; a query string is refused."),
                    Attribute::optional("resource_types", Type::set(Type::String))
                        .validator(arguments::resource_type())
                        .description(
                        "`virtualMachines` and/or `virtualMachineScaleSets`, in any casing. Default (null): both. An empty set is refused: leave the argument out for both. The same rule as `mig_identity_assignment`'s.",
                    ),
                    Attribute::computed("id", Type::String).description("The scope."),
                    Attribute::computed("locations", Type::set(Type::String))
                        .description("Regions that have at least one of the machines, as ARM spells them."),
                    Attribute::computed("ids", Type::set(Type::String)).description("IDs of all machines found."),
                    Attribute::computed("machines", Type::Dynamic)
                        .nested(NestingMode::List, machine_attributes())
                        .description("Every machine with its identity configuration."),
                ],
                description: "Lists the virtual machines and scale sets in a subscription or resource group with their identity configuration.".into(),
                ..Block::default()
            },
        )
    }

    fn validate(&self, config: &Model) -> Diagnostics {
        // The rule, and its words, are `mig_identity_assignment`'s.
        arguments::check_resource_types_listed(config.resource_types.as_deref())
    }

    async fn read(&self, clients: &Arc<AzureClients>, config: Model) -> DataRead<Model> {
        let (scope, kinds) = match (
            Scope::parse(arguments::trim_arm_id(
                config.scope.as_deref().unwrap_or_default(),
            )),
            kinds_from(config.resource_types.as_deref()),
        ) {
            (Ok(scope), Ok(kinds)) => (scope, kinds),
            (Err(reason), _) | (_, Err(reason)) => {
                return DataRead::failed("Invalid arguments", &reason);
            }
        };
        let mut machines: Vec<Machine> = Vec::new();
        for kind in kinds {
            let mut pages = clients.compute.list_machines(&scope, kind);
            while let Some(page) = pages.next().await {
                match page {
                    Ok(page) => machines.extend(page),
                    Err(error) => {
                        let mut diagnostics = Diagnostics::default();
                        diagnostics.error_at(
                            AttributePath::root("scope"),
                            "Cannot list the machines in scope",
                            &error.to_string(),
                        );
                        return DataRead {
                            state: None,
                            diagnostics,
                            deferred: None,
                        };
                    }
                }
            }
        }
        machines.sort_by_key(|m| m.id.to_ascii_lowercase());
        let locations: BTreeSet<String> = machines
            .iter()
            .filter_map(|m| ids::normalize_location(&m.location).ok())
            .collect();
        DataRead::new(Model {
            id: Some(scope.to_string()),
            locations: Some(locations),
            ids: Some(machines.iter().map(|m| m.id.clone()).collect()),
            machines: Some(machines.iter().map(MachineModel::new).collect()),
            ..config
        })
    }
}
