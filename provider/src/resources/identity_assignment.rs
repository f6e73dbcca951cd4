//! `mig_identity_assignment`: attach one user-assigned identity to every VM and scale set in a
//! scope, by the built-in policy's rules (see `crate::policy`).
//!
//! Plan lists the machines in scope (one read per page, shared with the refresh that ran just
//! before in the same process) and decides each one. Apply writes exactly the planned machines,
//! one PATCH each with `If-Match`, concurrently and paced by the ARM client; completion is
//! confirmed from list pages rather than by polling every machine. Destroy takes the identity
//! back only from the machines this resource attached it to.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use tfplugin::{
    ApplyRequest, ApplyResponse, Attribute, AttributePath, Block, Diagnostics, ImportRequest,
    ImportResponse, ImportedResource, PlanRequest, PlanResponse, ReadRequest, ReadResponse,
    Resource, Schema, Type, Value,
};

use crate::azure::compute::{Machine, MachineKind};
use crate::azure::ids::{self, Scope, UserAssignedIdentityId};
use crate::azure::AzureClients;
use crate::policy::{self, Decision, IdentityBlock, IdentityType, Rules};
use crate::provider::ProviderData;
use crate::timeouts::{self, Operation};

pub const TYPE_NAME: &str = "mig_identity_assignment";

const TIMEOUTS: timeouts::Defaults = timeouts::Defaults {
    create: Duration::from_secs(60 * 60),
    read: Duration::from_secs(5 * 60),
    update: Duration::from_secs(60 * 60),
    delete: Duration::from_secs(60 * 60),
};

/// How many machine writes are in flight at once. ARM's write bucket (200, refilled 10/s) is
/// the real limit and the ARM client paces to it; this only bounds memory and sockets.
const WRITE_CONCURRENCY: usize = 64;

/// Attempts per machine when its etag keeps changing under us (HTTP 412).
const MAX_CONFLICT_RETRIES: usize = 5;

/// Suffix of the `id` of an object whose creation failed part way (see `converge`). It is
/// in the state rather than private state because Terraform hands the replacement's
/// destroy the new object's private state, not the tainted one's.
const INCOMPLETE_SUFFIX: &str = "|incomplete";

fn is_incomplete(state: &Value) -> bool {
    state
        .get("id")
        .as_str()
        .is_some_and(|id| id.ends_with(INCOMPLETE_SUFFIX))
}

const RESOURCE_TYPE_VMS: &str = "virtualMachines";
const RESOURCE_TYPE_SCALE_SETS: &str = "virtualMachineScaleSets";

pub struct IdentityAssignment {
    data: Arc<ProviderData>,
}

impl IdentityAssignment {
    pub fn new(data: Arc<ProviderData>) -> Self {
        IdentityAssignment { data }
    }
}

/// How old a listing of the machines `read` and `plan` accept: one refresh-and-plan of a
/// Terraform run shares a single listing between all resources over the same scope.
const PLAN_LISTING_MAX_AGE: Duration = Duration::from_secs(60);

/// How old a listing apply accepts. Writes carry `If-Match`, so a machine changed since
/// the listing is read again rather than overwritten; the bound only keeps the work fresh.
const APPLY_LISTING_MAX_AGE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Schema and the typed model of the configuration
// ---------------------------------------------------------------------------------------------

fn set_of_strings() -> Type {
    Type::Set(Box::new(Type::String))
}

/// The computed machine lists are sorted lists rather than sets: Terraform compares planned
/// and applied sets pairwise, element by element, which costs seconds to minutes at ten
/// thousand machines; lists compare in one pass.
fn sorted_list_of_strings() -> Type {
    Type::List(Box::new(Type::String))
}

fn arguments() -> Vec<Attribute> {
    vec![
        Attribute::required("identity_id", Type::String).description(
            "Resource ID of the user-assigned identity to attach. Changing it replaces the resource.",
        ),
        Attribute::required("scope", Type::String).description(
            "A subscription (`/subscriptions/{id}`) or resource group (`/subscriptions/{id}/resourceGroups/{name}`) ID. Changing it replaces the resource.",
        ),
        Attribute::optional("locations", set_of_strings())
            .description("Only machines in these regions. Null means every region."),
        Attribute::optional("resource_types", set_of_strings())
            .optional_computed()
            .description("`virtualMachines`, `virtualMachineScaleSets`, or both (the default)."),
        Attribute::optional("skip_single_user_assigned", Type::Bool)
            .optional_computed()
            .description(
                "Skip machines whose identity `type` is exactly `UserAssigned` with exactly one identity, as the policy does (a second identity breaks IMDS token requests that name none). Default `true`.",
            ),
        Attribute::optional("exclude_ids", set_of_strings())
            .description("Machines (resource IDs, any casing) to leave alone."),
        Attribute::optional("exclude_tags", Type::Map(Box::new(Type::String))).description(
            "A machine carrying any one of these tag key/value pairs is left alone.",
        ),
        Attribute::optional("mode", Type::String).optional_computed().description(
            "`enforce` (default): attach the identity. `audit`: change nothing and report in `noncompliant_ids` what enforce would change.",
        ),
    ]
}

fn attributes() -> Vec<Attribute> {
    vec![
        Attribute::computed("id", Type::String).description("`{scope}|{identity_id}`."),
        Attribute::computed("assigned_ids", sorted_list_of_strings()).description(
            "Machines this resource attached the identity to and that still hold it. Only these lose it on destroy.",
        ),
        Attribute::computed("compliant_ids", sorted_list_of_strings())
            .description("Machines that already held the identity from someone else."),
        Attribute::computed("skipped", Type::Map(Box::new(Type::String))).description(
            "Machine ID to the reason it is left alone: `single_user_assigned`, `excluded_by_id`, `excluded_by_tag`, `not_provisioned`.",
        ),
        Attribute::computed("noncompliant_ids", sorted_list_of_strings())
            .description("In `audit` mode, the machines `enforce` would change."),
    ]
}

fn schema() -> Schema {
    let mut attributes_all = arguments();
    attributes_all.extend(attributes());
    Schema::new(
        0,
        Block {
            attributes: attributes_all,
            block_types: vec![timeouts::block(TIMEOUTS)],
            description: "Attaches one user-assigned identity to every VM and scale set in a scope, by the rules of Azure's built-in policy \"Assign Built-In User-Assigned Managed Identity to Virtual Machines\", with a plan: exactly which machines change, and why each skipped machine is skipped.".into(),
            ..Block::default()
        },
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Enforce,
    Audit,
}

/// The arguments, decoded; built only when every one of them is known.
#[derive(Debug, Clone)]
struct Settings {
    identity_id: String,
    scope: Scope,
    locations: Option<BTreeSet<String>>,
    kinds: Vec<MachineKind>,
    rules: Rules,
    mode: Mode,
}

/// The computed attributes.
#[derive(Debug, Clone, Default, PartialEq)]
struct Outcome {
    assigned_ids: BTreeSet<String>,
    compliant_ids: BTreeSet<String>,
    skipped: BTreeMap<String, String>,
    noncompliant_ids: BTreeSet<String>,
}

fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_list().map(|items| {
        items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    })
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_map()
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Every problem with the arguments that can be seen without calling Azure. Unknown values
/// are skipped: they are checked again once known.
fn validate_arguments(config: &Value) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    if let Some(identity_id) = config.get("identity_id").as_str() {
        if let Err(reason) = UserAssignedIdentityId::parse(identity_id) {
            diagnostics.error_at(
                AttributePath::root("identity_id"),
                "Invalid identity ID",
                &format!("{reason}. Expected `/subscriptions/{{id}}/resourceGroups/{{group}}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{{name}}`, e.g. `mig_builtin_identity.x.id`."),
            );
        }
    }
    if let Some(scope) = config.get("scope").as_str() {
        if let Err(reason) = Scope::parse(scope) {
            diagnostics.error_at(
                AttributePath::root("scope"),
                "Invalid scope",
                &format!("{reason}. Expected a subscription ID (`/subscriptions/{{id}}`) or a resource group ID (`/subscriptions/{{id}}/resourceGroups/{{name}}`)."),
            );
        }
    }
    if let Some(locations) = strings(config.get("locations")) {
        for location in locations {
            if let Err(reason) = ids::normalize_location(&location) {
                diagnostics.error_at(
                    AttributePath::root("locations"),
                    "Unknown region",
                    &format!("`{location}`: {reason}"),
                );
            }
        }
    }
    if let Some(types) = strings(config.get("resource_types")) {
        if types.is_empty() {
            diagnostics.error_at(
                AttributePath::root("resource_types"),
                "No resource types",
                "Name at least one of `virtualMachines` and `virtualMachineScaleSets`, or leave the argument out for both.",
            );
        }
        for kind in types {
            if parse_kind(&kind).is_none() {
                diagnostics.error_at(
                    AttributePath::root("resource_types"),
                    "Unknown resource type",
                    &format!(
                        "`{kind}` is not one of `virtualMachines`, `virtualMachineScaleSets`."
                    ),
                );
            }
        }
    }
    if let Some(mode) = config.get("mode").as_str() {
        if parse_mode(mode).is_none() {
            diagnostics.error_at(
                AttributePath::root("mode"),
                "Unknown mode",
                &format!("`{mode}` is not one of `enforce`, `audit`."),
            );
        }
    }
    if let Some(ids) = strings(config.get("exclude_ids")) {
        for id in ids {
            if ids::ResourceId::parse(&id).is_err() {
                diagnostics.error_at(
                    AttributePath::root("exclude_ids"),
                    "Invalid resource ID",
                    &format!("`{id}` is not an ARM resource ID of a virtual machine or scale set."),
                );
            }
        }
    }
    timeouts::validate(config, &mut diagnostics);
    diagnostics
}

fn parse_kind(text: &str) -> Option<MachineKind> {
    if text.eq_ignore_ascii_case(RESOURCE_TYPE_VMS) {
        Some(MachineKind::VirtualMachine)
    } else if text.eq_ignore_ascii_case(RESOURCE_TYPE_SCALE_SETS) {
        Some(MachineKind::ScaleSet)
    } else {
        None
    }
}

fn parse_mode(text: &str) -> Option<Mode> {
    match text {
        "enforce" => Some(Mode::Enforce),
        "audit" => Some(Mode::Audit),
        _ => None,
    }
}

/// Settings from a planned or prior state object (defaults already filled in by plan), or
/// `None` when something they depend on is still unknown.
fn settings_from(resource: &Value) -> Option<Settings> {
    let argument_names = [
        "identity_id",
        "scope",
        "locations",
        "resource_types",
        "skip_single_user_assigned",
        "exclude_ids",
        "exclude_tags",
        "mode",
    ];
    if argument_names
        .iter()
        .any(|name| !resource.get(name).is_fully_known())
    {
        return None;
    }
    let identity_id = resource.get("identity_id").as_str()?.to_string();
    let scope = Scope::parse(resource.get("scope").as_str()?).ok()?;
    let locations = strings(resource.get("locations")).map(|list| {
        list.iter()
            .filter_map(|l| ids::normalize_location(l).ok())
            .collect()
    });
    let kinds = strings(resource.get("resource_types"))
        .map(|list| list.iter().filter_map(|k| parse_kind(k)).collect())
        .unwrap_or_else(|| vec![MachineKind::VirtualMachine, MachineKind::ScaleSet]);
    let rules = Rules {
        skip_single_user_assigned: resource
            .get("skip_single_user_assigned")
            .as_bool()
            .unwrap_or(true),
        exclude_ids: strings(resource.get("exclude_ids"))
            .unwrap_or_default()
            .into_iter()
            .map(|id| id.to_ascii_lowercase())
            .collect(),
        exclude_tags: string_map(resource.get("exclude_tags")),
    };
    let mode = resource
        .get("mode")
        .as_str()
        .and_then(parse_mode)
        .unwrap_or(Mode::Enforce);
    Some(Settings {
        identity_id,
        scope,
        locations,
        kinds,
        rules,
        mode,
    })
}

fn outcome_from(resource: &Value) -> Outcome {
    let set = |name: &str| -> BTreeSet<String> {
        strings(resource.get(name))
            .unwrap_or_default()
            .into_iter()
            .collect()
    };
    Outcome {
        assigned_ids: set("assigned_ids"),
        compliant_ids: set("compliant_ids"),
        skipped: string_map(resource.get("skipped")),
        noncompliant_ids: set("noncompliant_ids"),
    }
}

fn sorted_list_value(items: &BTreeSet<String>) -> Value {
    Value::List(items.iter().cloned().map(Value::String).collect())
}

/// `resource` with the computed attributes replaced by `outcome`.
fn with_outcome(resource: &Value, outcome: &Outcome) -> Value {
    let mut fields = resource.as_object().cloned().unwrap_or_default();
    fields.insert(
        "assigned_ids".into(),
        sorted_list_value(&outcome.assigned_ids),
    );
    fields.insert(
        "compliant_ids".into(),
        sorted_list_value(&outcome.compliant_ids),
    );
    fields.insert(
        "skipped".into(),
        Value::Map(
            outcome
                .skipped
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        ),
    );
    fields.insert(
        "noncompliant_ids".into(),
        sorted_list_value(&outcome.noncompliant_ids),
    );
    Value::Object(fields)
}

fn with_unknown_outcome(resource: &Value) -> Value {
    let mut fields = resource.as_object().cloned().unwrap_or_default();
    for name in [
        "assigned_ids",
        "compliant_ids",
        "skipped",
        "noncompliant_ids",
    ] {
        fields.insert(name.into(), Value::unknown());
    }
    Value::Object(fields)
}

fn resource_id(scope: &str, identity_id: &str) -> String {
    format!("{scope}|{identity_id}")
}

// ---------------------------------------------------------------------------------------------
// Deciding: the inventory and the policy's rule, machine by machine
// ---------------------------------------------------------------------------------------------

fn identity_block(machine: &Machine) -> IdentityBlock {
    IdentityBlock {
        kind: IdentityType::parse(machine.identity_type.as_deref()),
        user_assigned_ids: machine.user_assigned_identity_ids.clone(),
    }
}

fn in_locations(machine: &Machine, locations: &Option<BTreeSet<String>>) -> bool {
    match locations {
        None => true,
        Some(wanted) => ids::normalize_location(&machine.location)
            .map(|location| wanted.contains(&location))
            .unwrap_or(false),
    }
}

/// What apply will do, and the computed attributes it will leave behind.
#[derive(Debug, Default, Clone, PartialEq)]
struct Evaluation {
    outcome: Outcome,
    /// Machines to attach the identity to (IDs as ARM spells them).
    to_assign: BTreeSet<String>,
    /// Machines this resource attached it to that left the scope: it is taken back.
    to_release: BTreeSet<String>,
}

/// The policy's rule over the inventory, given which machines this resource already holds.
fn evaluate(
    inventory: &[Machine],
    settings: &Settings,
    previously_assigned: &BTreeSet<String>,
) -> Evaluation {
    let held_by_us: BTreeSet<String> = previously_assigned
        .iter()
        .map(|id| id.to_ascii_lowercase())
        .collect();
    let mut evaluation = Evaluation::default();
    for machine in inventory {
        let identity = identity_block(machine);
        let holds_target = identity.holds(&settings.identity_id);
        let ours = held_by_us.contains(&machine.id.to_ascii_lowercase());
        if !in_locations(machine, &settings.locations) {
            if ours && holds_target {
                evaluation.to_release.insert(machine.id.clone());
            }
            continue;
        }
        let decision = policy::decide(
            &policy::Machine {
                id: &machine.id,
                identity: &identity,
                tags: &machine.tags,
                provisioning_state: machine.provisioning_state.as_deref(),
            },
            &settings.identity_id,
            &settings.rules,
        );
        match decision {
            Decision::Compliant if ours => {
                evaluation.outcome.assigned_ids.insert(machine.id.clone());
            }
            Decision::Compliant => {
                evaluation.outcome.compliant_ids.insert(machine.id.clone());
            }
            Decision::Skip(reason) => {
                if ours && holds_target {
                    evaluation.to_release.insert(machine.id.clone());
                }
                evaluation
                    .outcome
                    .skipped
                    .insert(machine.id.clone(), reason.as_str().to_string());
            }
            Decision::Assign => match settings.mode {
                Mode::Enforce => {
                    evaluation.outcome.assigned_ids.insert(machine.id.clone());
                    evaluation.to_assign.insert(machine.id.clone());
                }
                Mode::Audit => {
                    evaluation
                        .outcome
                        .noncompliant_ids
                        .insert(machine.id.clone());
                }
            },
        }
    }
    evaluation
}

impl IdentityAssignment {
    /// The machines in scope from a listing at most `max_age` old (shared with other
    /// resources over the same scope).
    async fn list_inventory(
        &self,
        clients: &AzureClients,
        settings: &Settings,
        max_age: Duration,
    ) -> Result<Arc<Vec<Machine>>, String> {
        let now = tokio::time::Instant::now();
        let not_before = now.checked_sub(max_age).unwrap_or(now);
        clients
            .compute
            .inventory(&settings.scope, &settings.kinds, not_before)
            .await
            .map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Applying: one PATCH per machine, with If-Match, concurrently
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Attach,
    Detach,
}

/// The result of one machine's write.
enum WriteResult {
    /// The machine now holds (attach) or no longer holds (detach) the identity.
    Done,
    /// Nothing to do any more: someone else already made the change.
    AlreadyDone,
    Failed(String),
    /// Not attempted: the provider was asked to stop.
    NotStarted,
}

/// Writes one machine: decide again against its freshest etag and identity, PATCH with
/// If-Match, and on 412 read it again and redo the merge.
async fn write_machine(
    clients: &AzureClients,
    mut machine: Machine,
    target: &str,
    settings: &Settings,
    change: Change,
) -> WriteResult {
    for _attempt in 0..MAX_CONFLICT_RETRIES {
        let identity = identity_block(&machine);
        let patch = match change {
            Change::Attach => {
                if identity.kind.has_user_assigned() && identity.holds(target) {
                    return WriteResult::AlreadyDone;
                }
                let decision = policy::decide(
                    &policy::Machine {
                        id: &machine.id,
                        identity: &identity,
                        tags: &machine.tags,
                        provisioning_state: machine.provisioning_state.as_deref(),
                    },
                    target,
                    &settings.rules,
                );
                if let Decision::Skip(reason) = decision {
                    return WriteResult::Failed(format!(
                        "changed since plan and is now skipped ({}); plan again",
                        reason.as_str()
                    ));
                }
                policy::assignment_patch(&identity, target)
            }
            Change::Detach => match policy::removal_patch(&identity, target) {
                Some(patch) => patch,
                None => return WriteResult::AlreadyDone,
            },
        };
        match clients
            .compute
            .patch_identity(&machine.id, machine.kind, patch, machine.etag.as_deref())
            .await
        {
            Ok(()) => return WriteResult::Done,
            Err(error) if error.status == 412 => {
                tracing::debug!(machine = %machine.id, "etag changed under us; reading again");
                match clients.compute.get_machine(&machine.id, machine.kind).await {
                    Ok(Some(fresh)) => machine = fresh,
                    Ok(None) => return WriteResult::Failed("deleted since plan".into()),
                    Err(error) => return WriteResult::Failed(error.to_string()),
                }
            }
            Err(error) if error.status == 404 => {
                return match change {
                    Change::Attach => WriteResult::Failed("deleted since plan".into()),
                    Change::Detach => WriteResult::AlreadyDone,
                }
            }
            Err(error) => return WriteResult::Failed(error.to_string()),
        }
    }
    WriteResult::Failed(format!(
        "changed by someone else {MAX_CONFLICT_RETRIES} times in a row while we wrote it; apply again"
    ))
}

/// What a batch of writes achieved, machine by machine.
#[derive(Default)]
struct BatchReport {
    succeeded: BTreeSet<String>,
    already_done: BTreeSet<String>,
    failed: BTreeMap<String, String>,
    not_started: BTreeSet<String>,
}

impl IdentityAssignment {
    /// Writes `targets` (IDs, any casing) concurrently. Machines missing from the inventory
    /// were deleted since plan.
    async fn write_batch(
        &self,
        clients: &AzureClients,
        inventory: &[Machine],
        targets: &BTreeSet<String>,
        settings: &Settings,
        change: Change,
    ) -> BatchReport {
        let by_id: HashMap<String, &Machine> = inventory
            .iter()
            .map(|m| (m.id.to_ascii_lowercase(), m))
            .collect();
        let mut report = BatchReport::default();
        let mut jobs = Vec::new();
        for id in targets {
            match by_id.get(&id.to_ascii_lowercase()) {
                Some(machine) => jobs.push((*machine).clone()),
                None if change == Change::Detach => {
                    report.already_done.insert(id.clone());
                }
                None => {
                    report
                        .failed
                        .insert(id.clone(), "deleted since plan".into());
                }
            }
        }
        let stop = self.data.stop_signal().clone();
        let results: Vec<(String, WriteResult)> = futures::stream::iter(jobs)
            .map(|machine| {
                let stop = stop.clone();
                async move {
                    let id = machine.id.clone();
                    if stop.is_cancelled() {
                        return (id, WriteResult::NotStarted);
                    }
                    let result =
                        write_machine(clients, machine, &settings.identity_id, settings, change)
                            .await;
                    (id, result)
                }
            })
            .buffer_unordered(WRITE_CONCURRENCY)
            .collect()
            .await;
        for (id, result) in results {
            match result {
                WriteResult::Done => {
                    report.succeeded.insert(id);
                }
                WriteResult::AlreadyDone => {
                    report.already_done.insert(id);
                }
                WriteResult::Failed(reason) => {
                    report.failed.insert(id, reason);
                }
                WriteResult::NotStarted => {
                    report.not_started.insert(id);
                }
            }
        }
        report
    }
}

fn report_failures(diagnostics: &mut Diagnostics, verb: &str, report: &BatchReport) {
    if !report.failed.is_empty() {
        let mut lines: Vec<String> = report
            .failed
            .iter()
            .take(50)
            .map(|(id, reason)| format!("- {id}: {reason}"))
            .collect();
        if report.failed.len() > 50 {
            lines.push(format!("- ... and {} more", report.failed.len() - 50));
        }
        diagnostics.error(
            &format!("Could not {verb} {} machine(s)", report.failed.len()),
            &format!(
                "State records exactly the machines that were changed; apply again to finish the others.\n{}",
                lines.join("\n")
            ),
        );
    }
    if !report.not_started.is_empty() {
        diagnostics.error(
            &format!("Stopped before {verb} {} machine(s)", report.not_started.len()),
            "Terraform asked the provider to stop. Writes in flight were finished and are recorded in state; apply again to finish the rest.",
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The Terraform resource
// ---------------------------------------------------------------------------------------------

fn error_diagnostics(summary: &str, detail: &str) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    diagnostics.error(summary, detail);
    diagnostics
}

/// Fills optional+computed arguments with their defaults.
fn with_defaults(proposed: &Value) -> Value {
    let mut fields = proposed.as_object().cloned().unwrap_or_default();
    let fill = |fields: &mut BTreeMap<String, Value>, name: &str, default: Value| {
        if fields.get(name).is_none_or(Value::is_null) {
            fields.insert(name.to_string(), default);
        }
    };
    fill(
        &mut fields,
        "resource_types",
        Value::Set(vec![
            Value::String(RESOURCE_TYPE_VMS.into()),
            Value::String(RESOURCE_TYPE_SCALE_SETS.into()),
        ]),
    );
    fill(&mut fields, "skip_single_user_assigned", Value::Bool(true));
    fill(&mut fields, "mode", Value::String("enforce".into()));
    let id = match (
        fields.get("scope").and_then(Value::as_str),
        fields.get("identity_id").and_then(Value::as_str),
    ) {
        (Some(scope), Some(identity)) => Value::String(resource_id(scope, identity)),
        _ => Value::unknown(),
    };
    fields.insert("id".into(), id);
    Value::Object(fields)
}

fn requires_replace(prior: &Value, planned: &Value) -> Vec<AttributePath> {
    if prior.is_null() {
        return Vec::new();
    }
    ["identity_id", "scope"]
        .into_iter()
        .filter(|name| {
            let before = prior.get(name).as_str().map(str::to_ascii_lowercase);
            let after = planned.get(name);
            after.is_unknown() || before != after.as_str().map(str::to_ascii_lowercase)
        })
        .map(AttributePath::root)
        .collect()
}

#[async_trait]
impl Resource for IdentityAssignment {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        validate_arguments(config)
    }

    async fn plan(&self, request: PlanRequest) -> PlanResponse {
        let mut response = PlanResponse {
            planned_state: request.proposed_new_state.clone(),
            planned_private: request.prior_private.clone(),
            ..PlanResponse::default()
        };
        if request.proposed_new_state.is_null() {
            return response;
        }
        let mut planned = with_defaults(&request.proposed_new_state);
        response.requires_replace = requires_replace(&request.prior_state, &planned);
        let replacing = !response.requires_replace.is_empty();
        let Some(settings) = settings_from(&planned) else {
            response.planned_state = with_unknown_outcome(&planned);
            return response;
        };
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                response.diagnostics = diagnostics;
                return response;
            }
        };
        let inventory = match self
            .list_inventory(&clients, &settings, PLAN_LISTING_MAX_AGE)
            .await
        {
            Ok(inventory) => inventory,
            Err(error) => {
                response.diagnostics.error_at(
                    AttributePath::root("scope"),
                    "Cannot list the machines in scope",
                    &error,
                );
                return response;
            }
        };
        // A tainted object from a failed creation owns nothing (see `converge`).
        let previously_assigned = if replacing || is_incomplete(&request.prior_state) {
            BTreeSet::new()
        } else {
            outcome_from(&request.prior_state).assigned_ids
        };
        let evaluation = evaluate(&inventory, &settings, &previously_assigned);
        planned = with_outcome(&planned, &evaluation.outcome);
        response.planned_state = planned;
        response
    }

    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                return ApplyResponse {
                    new_state: request.prior_state,
                    diagnostics,
                    ..ApplyResponse::default()
                }
            }
        };
        if request.planned_state.is_null() {
            return self.destroy(&clients, request.prior_state).await;
        }
        let operation = if request.prior_state.is_null() {
            Operation::Create
        } else {
            Operation::Update
        };
        let deadline = timeouts::get(&request.planned_state, operation, TIMEOUTS);
        match tokio::time::timeout(deadline, self.converge(&clients, &request)).await {
            Ok(response) => response,
            Err(_) => ApplyResponse {
                new_state: request.prior_state,
                diagnostics: error_diagnostics(
                    "Timed out",
                    &format!(
                        "The apply did not finish within {}; raise `timeouts`.",
                        humantime::format_duration(deadline)
                    ),
                ),
                ..ApplyResponse::default()
            },
        }
    }

    async fn read(&self, request: ReadRequest) -> ReadResponse {
        let state = request.current_state;
        let mut response = ReadResponse {
            new_state: state.clone(),
            private: request.private,
            ..ReadResponse::default()
        };
        let Some(settings) = settings_from(&state) else {
            return response;
        };
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                response.diagnostics = diagnostics;
                return response;
            }
        };
        let inventory = match self
            .list_inventory(&clients, &settings, PLAN_LISTING_MAX_AGE)
            .await
        {
            Ok(inventory) => inventory,
            Err(error) => {
                response.diagnostics =
                    error_diagnostics("Cannot list the machines in scope", &error);
                return response;
            }
        };
        // What we attached and is still there stays ours; anything else is re-decided, so a
        // machine someone stripped by hand, or a new one, shows up in the next plan.
        let prior = outcome_from(&state);
        let mut refreshed = evaluate(&inventory, &settings, &prior.assigned_ids).outcome;
        let holding: BTreeSet<String> = inventory
            .iter()
            .filter(|m| identity_block(m).holds(&settings.identity_id))
            .map(|m| m.id.to_ascii_lowercase())
            .collect();
        refreshed
            .assigned_ids
            .retain(|id| holding.contains(&id.to_ascii_lowercase()));
        response.new_state = with_outcome(&state, &refreshed);
        response
    }

    async fn import(&self, request: ImportRequest) -> ImportResponse {
        let mut response = ImportResponse::default();
        let Some((scope, identity_id)) = request.id.split_once('|') else {
            response.diagnostics.error(
                "Invalid import ID",
                &format!("`{}` is not `{{scope}}|{{identity_id}}`.", request.id),
            );
            return response;
        };
        let skeleton = Value::object([
            ("identity_id", Value::String(identity_id.to_string())),
            ("scope", Value::String(scope.to_string())),
            ("locations", Value::Null),
            ("exclude_ids", Value::Null),
            ("exclude_tags", Value::Null),
            ("resource_types", Value::Null),
            ("skip_single_user_assigned", Value::Null),
            ("mode", Value::Null),
            ("timeouts", Value::Null),
        ]);
        let problems = validate_arguments(&skeleton);
        if problems.has_errors() {
            response.diagnostics = problems;
            return response;
        }
        // Nothing is recorded as ours: machines holding the identity now are compliant, and
        // destroy will leave them alone.
        let state = with_outcome(&with_defaults(&skeleton), &Outcome::default());
        response.imported.push(ImportedResource {
            state,
            private: Vec::new(),
            identity: None,
        });
        response
    }
}

impl IdentityAssignment {
    async fn converge(&self, clients: &AzureClients, request: &ApplyRequest) -> ApplyResponse {
        let planned = &request.planned_state;
        let mut diagnostics = Diagnostics::default();
        let Some(settings) = settings_from(planned) else {
            return ApplyResponse {
                new_state: request.prior_state.clone(),
                diagnostics: error_diagnostics(
                    "Arguments still unknown at apply",
                    "Terraform passed unknown arguments to apply; this is a bug in Terraform or the provider.",
                ),
                ..ApplyResponse::default()
            };
        };
        let prior_assigned = if is_incomplete(&request.prior_state) {
            BTreeSet::new()
        } else {
            outcome_from(&request.prior_state).assigned_ids
        };
        let replacing = request.prior_state.is_null()
            || !requires_replace(&request.prior_state, planned).is_empty();
        let previously_assigned = if replacing {
            BTreeSet::new()
        } else {
            prior_assigned.clone()
        };
        let inventory = match self
            .list_inventory(clients, &settings, APPLY_LISTING_MAX_AGE)
            .await
        {
            Ok(inventory) => inventory,
            Err(error) => {
                return ApplyResponse {
                    new_state: if request.prior_state.is_null() {
                        Value::Null
                    } else {
                        request.prior_state.clone()
                    },
                    diagnostics: error_diagnostics("Cannot list the machines in scope", &error),
                    ..ApplyResponse::default()
                }
            }
        };
        // Write exactly what the plan showed: planned assigned_ids that we do not hold yet,
        // and our machines that left the scope.
        let planned_outcome = outcome_from(planned);
        let held: BTreeSet<String> = previously_assigned
            .iter()
            .map(|id| id.to_ascii_lowercase())
            .collect();
        let to_assign: BTreeSet<String> = planned_outcome
            .assigned_ids
            .iter()
            .filter(|id| !held.contains(&id.to_ascii_lowercase()))
            .cloned()
            .collect();
        let planned_keep: BTreeSet<String> = planned_outcome
            .assigned_ids
            .iter()
            .map(|id| id.to_ascii_lowercase())
            .collect();
        let to_release: BTreeSet<String> = previously_assigned
            .iter()
            .filter(|id| !planned_keep.contains(&id.to_ascii_lowercase()))
            .cloned()
            .collect();

        let attach = self
            .write_batch(clients, &inventory, &to_assign, &settings, Change::Attach)
            .await;
        let release = self
            .write_batch(clients, &inventory, &to_release, &settings, Change::Detach)
            .await;
        report_failures(&mut diagnostics, "attach the identity to", &attach);
        report_failures(&mut diagnostics, "take the identity back from", &release);

        let written: BTreeSet<String> = attach
            .succeeded
            .union(&release.succeeded)
            .cloned()
            .collect();
        if let Err(error) = clients
            .compute
            .wait_until_settled(&settings.scope, &settings.kinds, &written)
            .await
        {
            diagnostics.warning(
                "Could not confirm that every update finished",
                &format!("The writes were accepted; the next refresh confirms them. {error}"),
            );
        }

        let mut outcome = planned_outcome.clone();
        let failed_or_pending: BTreeSet<String> = attach
            .failed
            .keys()
            .chain(attach.not_started.iter())
            .map(|id| id.to_ascii_lowercase())
            .collect();
        outcome
            .assigned_ids
            .retain(|id| !failed_or_pending.contains(&id.to_ascii_lowercase()));
        // A release that did not happen leaves the machine ours, so destroy still takes it back.
        for id in release.failed.keys().chain(release.not_started.iter()) {
            outcome.assigned_ids.insert(id.clone());
        }
        let new_state = with_outcome(planned, &outcome);
        // Terraform taints a resource whose creation reported errors and replaces it next
        // time. Marked so, the replacement's destroy leaves the machines reached so far alone
        // (they count as already compliant for the new object) instead of stripping and
        // re-attaching the identity, which would also make the new plan inconsistent.
        let new_state = if request.prior_state.is_null() && diagnostics.has_errors() {
            let id = new_state.get("id").as_str().unwrap_or_default().to_string();
            new_state.with("id", Value::String(format!("{id}{INCOMPLETE_SUFFIX}")))
        } else {
            new_state
        };
        ApplyResponse {
            new_state,
            diagnostics,
            ..ApplyResponse::default()
        }
    }

    async fn destroy(&self, clients: &AzureClients, prior: Value) -> ApplyResponse {
        let Some(settings) = settings_from(&prior) else {
            return ApplyResponse::default();
        };
        if is_incomplete(&prior) {
            let left = outcome_from(&prior).assigned_ids;
            let mut diagnostics = Diagnostics::default();
            if !left.is_empty() {
                diagnostics.warning(
                    "Identity left on machines reached by a failed first apply",
                    &format!(
                        "This resource was tainted because its creation failed part way; its {} machine(s) keep the identity and count as compliant from now on:\n{}",
                        left.len(),
                        left.iter().map(|id| format!("- {id}")).collect::<Vec<_>>().join("\n")
                    ),
                );
            }
            return ApplyResponse {
                diagnostics,
                ..ApplyResponse::default()
            };
        }
        let deadline = timeouts::get(&prior, Operation::Delete, TIMEOUTS);
        let ours = outcome_from(&prior).assigned_ids;
        let work = async {
            let inventory = self
                .list_inventory(clients, &settings, APPLY_LISTING_MAX_AGE)
                .await?;
            let report = self
                .write_batch(clients, &inventory, &ours, &settings, Change::Detach)
                .await;
            let written = report.succeeded.clone();
            let _ = clients
                .compute
                .wait_until_settled(&settings.scope, &settings.kinds, &written)
                .await;
            Ok::<BatchReport, String>(report)
        };
        let report = match tokio::time::timeout(deadline, work).await {
            Ok(Ok(report)) => report,
            Ok(Err(error)) => {
                return ApplyResponse {
                    new_state: prior,
                    diagnostics: error_diagnostics("Cannot list the machines in scope", &error),
                    ..ApplyResponse::default()
                }
            }
            Err(_) => {
                return ApplyResponse {
                    new_state: prior,
                    diagnostics: error_diagnostics(
                        "Timed out",
                        "Destroy did not finish within the delete timeout; state is unchanged, run destroy again.",
                    ),
                    ..ApplyResponse::default()
                }
            }
        };
        let mut diagnostics = Diagnostics::default();
        report_failures(&mut diagnostics, "take the identity back from", &report);
        if diagnostics.has_errors() {
            // Keep in state exactly the machines that still hold our identity.
            let mut outcome = outcome_from(&prior);
            outcome.assigned_ids = report
                .failed
                .keys()
                .chain(report.not_started.iter())
                .cloned()
                .collect();
            return ApplyResponse {
                new_state: with_outcome(&prior, &outcome),
                diagnostics,
                ..ApplyResponse::default()
            };
        }
        ApplyResponse {
            new_state: Value::Null,
            diagnostics,
            ..ApplyResponse::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/Built-In-Identity-RG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/Built-In-Identity-eastus";
    const OTHER: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app";

    fn machine(name: &str, location: &str, kind: &str, ids: &[&str]) -> Machine {
        Machine {
            id: format!("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/app/providers/Microsoft.Compute/virtualMachines/{name}"),
            kind: MachineKind::VirtualMachine,
            location: location.to_string(),
            tags: BTreeMap::new(),
            provisioning_state: Some("Succeeded".into()),
            identity_type: Some(kind.to_string()),
            user_assigned_identity_ids: ids.iter().map(|s| s.to_string()).collect(),
            etag: Some("\"1\"".into()),
        }
    }

    fn settings(mode: Mode, locations: Option<&[&str]>) -> Settings {
        Settings {
            identity_id: TARGET.into(),
            scope: Scope::parse("/subscriptions/00000000-0000-0000-0000-000000000001").unwrap(),
            locations: locations.map(|l| l.iter().map(|s| s.to_string()).collect()),
            kinds: vec![MachineKind::VirtualMachine],
            rules: Rules {
                skip_single_user_assigned: true,
                ..Rules::default()
            },
            mode,
        }
    }

    #[test]
    fn evaluation_sorts_machines_into_assign_compliant_and_skipped() {
        let inventory = vec![
            machine("none", "eastus", "None", &[]),
            machine("single", "eastus", "UserAssigned", &[OTHER]),
            machine("has-it", "eastus", "UserAssigned", &[TARGET]),
            machine("elsewhere", "westus", "None", &[]),
        ];
        let evaluation = evaluate(
            &inventory,
            &settings(Mode::Enforce, Some(&["eastus"])),
            &BTreeSet::new(),
        );
        let id = |name: &str| {
            inventory
                .iter()
                .find(|m| m.id.ends_with(name))
                .unwrap()
                .id
                .clone()
        };
        assert_eq!(evaluation.to_assign, [id("/none")].into_iter().collect());
        assert_eq!(
            evaluation.outcome.assigned_ids,
            [id("/none")].into_iter().collect()
        );
        assert_eq!(
            evaluation.outcome.compliant_ids,
            [id("/has-it")].into_iter().collect()
        );
        assert_eq!(
            evaluation.outcome.skipped,
            [(id("/single"), "single_user_assigned".to_string())]
                .into_iter()
                .collect()
        );
        assert!(evaluation.to_release.is_empty());
    }

    #[test]
    fn machines_we_attached_stay_ours_and_leave_when_out_of_scope() {
        let inventory = vec![
            machine("ours", "eastus", "UserAssigned", &[TARGET]),
            machine("moved-out", "westus", "UserAssigned", &[TARGET]),
        ];
        let ours: BTreeSet<String> = inventory
            .iter()
            .map(|m| m.id.to_ascii_uppercase())
            .collect();
        let evaluation = evaluate(
            &inventory,
            &settings(Mode::Enforce, Some(&["eastus"])),
            &ours,
        );
        assert_eq!(evaluation.outcome.assigned_ids.len(), 1);
        assert!(evaluation.outcome.compliant_ids.is_empty());
        assert_eq!(evaluation.to_release.len(), 1);
        assert!(evaluation
            .to_release
            .iter()
            .next()
            .unwrap()
            .ends_with("moved-out"));
    }

    #[test]
    fn audit_mode_reports_and_changes_nothing() {
        let inventory = vec![machine("none", "eastus", "SystemAssigned", &[])];
        let evaluation = evaluate(&inventory, &settings(Mode::Audit, None), &BTreeSet::new());
        assert!(evaluation.to_assign.is_empty());
        assert!(evaluation.outcome.assigned_ids.is_empty());
        assert_eq!(evaluation.outcome.noncompliant_ids.len(), 1);
    }

    #[test]
    fn validation_names_the_attribute() {
        let config = Value::object([
            ("identity_id", Value::String("not-an-id".into())),
            ("scope", Value::String("/subscriptions/x/whatever/y".into())),
            ("mode", Value::String("yolo".into())),
            (
                "resource_types",
                Value::Set(vec![Value::String("disks".into())]),
            ),
        ]);
        let diagnostics = validate_arguments(&config);
        let attributes: Vec<String> = diagnostics
            .iter()
            .filter_map(|d| d.attribute.as_ref().map(|p| format!("{p:?}")))
            .collect();
        for name in ["identity_id", "scope", "mode", "resource_types"] {
            assert!(
                attributes.iter().any(|a| a.contains(name)),
                "{name} not named: {attributes:?}"
            );
        }
    }
}
