//! `mig_virtual_machines`: the VMs and scale sets in a scope with their identity
//! configuration, and the set of regions that have any, so a module can `for_each` its
//! identities over the regions it finds rather than a hard-coded list.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use tfplugin::{
    Attribute, AttributePath, Block, DataReadRequest, DataReadResponse, DataSource, Diagnostics,
    NestingMode, Schema, Type, Value,
};

use crate::arguments;
use crate::azure::compute::{Machine, MachineKind};
use crate::azure::ids::{self, Scope};
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

fn machine_value(machine: &Machine) -> Value {
    let resource_group = ids::ResourceId::parse(&machine.id)
        .ok()
        .and_then(|id| id.resource_group_name);
    Value::object([
        ("id", Value::String(machine.id.clone())),
        (
            "name",
            Value::String(
                machine
                    .id
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            ),
        ),
        (
            "resource_type",
            Value::String(kind_name(machine.kind).to_string()),
        ),
        (
            "location",
            Value::String(
                ids::normalize_location(&machine.location)
                    .unwrap_or_else(|_| machine.location.clone()),
            ),
        ),
        (
            "resource_group_name",
            Value::optional_string(resource_group),
        ),
        (
            "provisioning_state",
            Value::optional_string(machine.provisioning_state.clone()),
        ),
        (
            "identity_type",
            Value::String(
                machine
                    .identity_type
                    .clone()
                    .unwrap_or_else(|| "None".into()),
            ),
        ),
        (
            "user_assigned_identity_ids",
            Value::List(
                machine
                    .user_assigned_identity_ids
                    .iter()
                    .cloned()
                    .map(Value::String)
                    .collect(),
            ),
        ),
        (
            "tags",
            Value::Map(
                machine
                    .tags
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
        ),
    ])
}

/// The machine kinds `resource_types` names (the rule is `mig_identity_assignment`'s, in
/// `arguments`: any casing; null means both; an empty set is refused at validate).
fn kinds_from(value: &Value) -> Result<Vec<MachineKind>, String> {
    let Some(names) = value.as_string_list() else {
        return Ok(vec![MachineKind::VirtualMachine, MachineKind::ScaleSet]);
    };
    let mut kinds = Vec::new();
    for name in &names {
        arguments::check_resource_type(name)?;
        kinds.extend(arguments::parse_machine_kind(name));
    }
    kinds.sort();
    kinds.dedup();
    Ok(kinds)
}

#[async_trait]
impl DataSource for VirtualMachines {
    fn type_name(&self) -> &'static str {
        "mig_virtual_machines"
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

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        arguments::check_resource_types_listed(config)
    }

    async fn read(&self, request: DataReadRequest) -> DataReadResponse {
        let mut response = DataReadResponse::default();
        let config = &request.config;
        let (scope, kinds) = match (
            Scope::parse(arguments::trim_arm_id(
                config.get("scope").as_str().unwrap_or_default(),
            )),
            kinds_from(config.get("resource_types")),
        ) {
            (Ok(scope), Ok(kinds)) => (scope, kinds),
            (Err(reason), _) | (_, Err(reason)) => {
                response.diagnostics.error("Invalid arguments", &reason);
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
        let mut machines: Vec<Machine> = Vec::new();
        for kind in kinds {
            let mut pages = clients.compute.list_machines(&scope, kind);
            while let Some(page) = pages.next().await {
                match page {
                    Ok(page) => machines.extend(page),
                    Err(error) => {
                        response.diagnostics.error_at(
                            AttributePath::root("scope"),
                            "Cannot list the machines in scope",
                            &error.to_string(),
                        );
                        return response;
                    }
                }
            }
        }
        machines.sort_by_key(|m| m.id.to_ascii_lowercase());
        let locations: BTreeSet<String> = machines
            .iter()
            .filter_map(|m| ids::normalize_location(&m.location).ok())
            .collect();
        let mut state: BTreeMap<String, Value> = config.as_object().cloned().unwrap_or_default();
        state.insert("id".into(), Value::String(scope.to_string()));
        state.insert("locations".into(), Value::string_set(locations));
        state.insert(
            "ids".into(),
            Value::string_set(machines.iter().map(|m| m.id.clone())),
        );
        state.insert(
            "machines".into(),
            Value::List(machines.iter().map(machine_value).collect()),
        );
        response.state = Value::Object(state);
        response
    }
}
