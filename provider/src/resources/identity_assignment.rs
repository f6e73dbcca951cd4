//! `mig_identity_assignment`: attach one user-assigned identity to every VM and scale set in a
//! scope, by the built-in policy's rules (see `crate::policy`).
//!
//! Plan lists the machines in scope (one read per page, shared with the refresh that ran just
//! before in the same process) and decides each one. Apply writes exactly the planned machines,
//! one PATCH each with `If-Match`, concurrently and paced by the ARM client; completion is
//! confirmed from list pages rather than by polling every machine. Destroy takes the identity
//! back only from the machines this resource attached it to.
//!
//! Every argument changes in place (see `crate::ownership`): a new scope, identity, region
//! list, resource type list or exclusion converges in one apply without stripping a machine
//! that should keep an identity. When Terraform replaces the object anyway (`-replace`,
//! taint), the new object takes over what the old one owned (see `crate::handover`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::{FutureExt, StreamExt};
use tfplugin::{
    model, ApplyRequest, ApplyResponse, Attribute, AttributePath, Block, Diagnostics,
    IdentitySchema, ImportRequest, ImportResponse, ImportedResource, PlanRequest, PlanResponse,
    ReadRequest, ReadResponse, Resource, Schema, Type, Validator, Value,
};

use tokio_util::sync::CancellationToken;

use crate::arguments;
use crate::azure::arm::ArmError;
use crate::azure::compute::{self, ComputeClient, Machine, MachineKind};
use crate::azure::ids::{self, Scope};
use crate::azure::AzureClients;
use crate::handover;
use crate::ownership::{self, Held, Mode, Outcome, Settings, Write};
use crate::policy::{self, Decision, Rules};
use crate::provider::ProviderData;
use crate::resources::identity;
use crate::timeouts::{self, Halt, Operation};

pub const TYPE_NAME: &str = "mig_identity_assignment";

pub(crate) const TIMEOUTS: timeouts::Defaults = timeouts::Defaults {
    create: Duration::from_secs(60 * 60),
    read: Duration::from_secs(5 * 60),
    update: Duration::from_secs(60 * 60),
    delete: Duration::from_secs(60 * 60),
};

/// Attempts per machine when its etag keeps changing under us (HTTP 412).
const MAX_CONFLICT_RETRIES: usize = 5;

/// Suffix that earlier releases put on the `id` of a failed create.
const LEGACY_INCOMPLETE_SUFFIX: &str = "|incomplete";

const RESOURCE_TYPE_VMS: &str = "virtualMachines";
const RESOURCE_TYPE_SCALE_SETS: &str = "virtualMachineScaleSets";

pub struct IdentityAssignment {
    data: Arc<ProviderData>,
    /// What its objects are, for the keys of their hand-over records (`crate::handover`):
    /// `mig_identity_assignment`, or an estate's bucket.
    kind: &'static str,
}

impl IdentityAssignment {
    pub fn new(data: Arc<ProviderData>) -> Self {
        IdentityAssignment {
            data,
            kind: "mig_identity_assignment",
        }
    }

    /// The buckets of `mig_estate_assignment`: their hand-over records are their own.
    pub fn estate_buckets(data: Arc<ProviderData>) -> Self {
        IdentityAssignment {
            data,
            kind: "mig_estate_assignment bucket",
        }
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

pub(crate) fn set_of_strings() -> Type {
    Type::Set(Box::new(Type::String))
}

/// The computed machine lists are sorted lists rather than sets: Terraform compares planned
/// and applied sets pairwise, element by element, which costs seconds to minutes at ten
/// thousand machines; lists compare in one pass.
pub(crate) fn sorted_list_of_strings() -> Type {
    Type::List(Box::new(Type::String))
}

const DEFAULT_MODE: &str = "enforce";
const DEFAULT_SKIP_SINGLE_USER_ASSIGNED: bool = true;

fn default_resource_types() -> Value {
    Value::string_set([RESOURCE_TYPE_VMS, RESOURCE_TYPE_SCALE_SETS])
}

pub(crate) fn arguments() -> Vec<Attribute> {
    vec![
        Attribute::required("identity_id", Type::String)
            .description(
                "Resource ID of the user-assigned identity to attach. Changing it swaps the identity in place, one write per machine: machines this resource owns lose the old identity and gain the new one together.",
            )
            .validator(arguments::identity_id()),
        Attribute::required("scope", Type::String)
            .description(
                "A subscription (`/subscriptions/{id}`) or resource group (`/subscriptions/{id}/resourceGroups/{name}`) ID. Changing it converges in place: machines of the new scope get the identity, and machines this resource owns outside it are given back.",
            )
            .validator(arguments::scope()),
        Attribute::optional("locations", set_of_strings())
            .description("Only machines in these regions. Null means every region.")
            .validator(arguments::region()),
        Attribute::optional("resource_types", set_of_strings())
            .default_value(default_resource_types())
            .description("`virtualMachines`, `virtualMachineScaleSets`, or both (the default).")
            .validator(arguments::resource_type()),
        Attribute::optional("skip_single_user_assigned", Type::Bool)
            .default_value(DEFAULT_SKIP_SINGLE_USER_ASSIGNED)
            .description(
                "Skip machines whose identity `type` is exactly `UserAssigned` with exactly one identity, as the policy does (a second identity breaks IMDS token requests that name none). Default `true`.",
            ),
        Attribute::optional("exclude_ids", set_of_strings())
            .description("Machines (resource IDs, any casing) to leave alone.")
            .validator(arguments::machine_id()),
        Attribute::optional("exclude_tags", Type::Map(Box::new(Type::String)))
            .description("A machine carrying any one of these tag key/value pairs is left alone.")
            .validator(arguments::tag_value()),
        Attribute::optional("mode", Type::String)
            .default_value(DEFAULT_MODE)
            .description(
                "`enforce` (default): attach the identity. `audit`: change nothing and report in `noncompliant_ids` what enforce would change.",
            )
            .validator(Validator::one_of("Unknown mode", &["enforce", "audit"])),
        Attribute::optional("adopt", Type::String)
            .description(
                "`compliant`: machines in reach that already hold the identity from someone else (another object, the portal, a removed object) become this resource's own, without a write: listed in `assigned_ids`, and given back on destroy. For moving machines between objects without a moment without the identity (see the guide \"Machines managed by azurerm or modules\" and the estates guide). Null or `none` (default): they stay in `compliant_ids`, left alone. Removing it keeps what was adopted.",
            )
            .validator(Validator::one_of("Unknown adopt", &["none", "compliant"])),
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

pub(crate) fn schema() -> Schema {
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

fn state_type() -> &'static Type {
    static TYPE: std::sync::OnceLock<Type> = std::sync::OnceLock::new();
    TYPE.get_or_init(|| schema().value_type())
}

/// The arguments as configuration, plan or state hold them (defaults filled in).
#[derive(Debug, serde::Deserialize)]
struct Arguments {
    identity_id: String,
    scope: String,
    locations: Option<Vec<String>>,
    resource_types: Option<Vec<String>>,
    skip_single_user_assigned: Option<bool>,
    exclude_ids: Option<Vec<String>>,
    exclude_tags: Option<BTreeMap<String, String>>,
    mode: Option<String>,
    #[serde(default)]
    adopt: Option<String>,
}

impl Arguments {
    fn settings(self) -> Option<Settings> {
        Some(Settings {
            scope: Scope::parse(arguments::trim_arm_id(&self.scope)).ok()?,
            identity_id: arguments::trim_arm_id(&self.identity_id).to_string(),
            locations: self.locations.map(|list| {
                list.iter()
                    .filter_map(|l| ids::normalize_location(l).ok())
                    .collect()
            }),
            kinds: match self.resource_types {
                Some(list) => list
                    .iter()
                    .filter_map(|k| arguments::parse_machine_kind(k))
                    .collect(),
                None => vec![MachineKind::VirtualMachine, MachineKind::ScaleSet],
            },
            rules: Rules {
                skip_single_user_assigned: self
                    .skip_single_user_assigned
                    .unwrap_or(DEFAULT_SKIP_SINGLE_USER_ASSIGNED),
                exclude_ids: self
                    .exclude_ids
                    .unwrap_or_default()
                    .iter()
                    .map(|id| arguments::normalize_arm_id(id))
                    .collect(),
                exclude_tags: self.exclude_tags.unwrap_or_default(),
            },
            mode: match self.mode.as_deref().unwrap_or(DEFAULT_MODE) {
                "audit" => Mode::Audit,
                _ => Mode::Enforce,
            },
            adopt: self.adopt.as_deref() == Some("compliant"),
        })
    }
}

/// Every problem with the arguments that the declared validators cannot see alone.
fn validate_arguments(config: &Value) -> Diagnostics {
    let mut diagnostics = schema().block.validate(config);
    diagnostics.extend(check_machine_selection(config));
    diagnostics
}

/// The checks of the arguments that select machines (`locations`, `resource_types`,
/// `exclude_tags`) beyond their declared validators; `mig_estate_assignment` shares them.
pub(crate) fn check_machine_selection(config: &Value) -> Diagnostics {
    let mut diagnostics = arguments::check_not_empty(
        config,
        "locations",
        "No regions",
        "An empty list matches no machine. Name at least one region, or leave `locations` out for every region.",
    );
    diagnostics.extend(arguments::check_resource_types_listed(config));
    diagnostics.extend(arguments::check_tag_names(config, "exclude_tags"));
    diagnostics
}

/// Settings from a planned or prior state object, or `None` when something they depend on
/// is still unknown (or the object is null).
fn settings_from(resource: &Value) -> Option<Settings> {
    if resource.is_null() {
        return None;
    }
    model::decode::<Arguments>(resource).ok()?.settings()
}

fn outcome_from(resource: &Value) -> Outcome {
    model::decode_lenient(resource).unwrap_or_default()
}

/// `resource` with the computed attributes replaced by `outcome`.
fn with_outcome(resource: &Value, outcome: &Outcome) -> Value {
    model::update(resource, outcome, state_type())
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

pub(crate) fn resource_id(scope: &str, identity_id: &str) -> String {
    format!("{scope}|{identity_id}")
}

// ---------------------------------------------------------------------------------------------
// Resource identity (Terraform 1.12+)
// ---------------------------------------------------------------------------------------------

/// The identity is the `scope` and `identity_id` the object was created (or imported) with.
/// Both change in place (see the module comment), and Terraform refuses an identity that
/// changes on update: so an object keeps the identity it started with, on every plan, apply
/// and read, whatever `scope` and `identity_id` say now (see `crate::resources::identity`).
/// A replacement (`-replace`, taint) starts with the new arguments.
pub fn identity_schema() -> IdentitySchema {
    IdentitySchema {
        version: 0,
        attributes: vec![
            identity::attribute(
                "scope",
                true,
                "The subscription or resource group ID the object was created (or imported) with.",
            ),
            identity::attribute(
                "identity_id",
                true,
                "The user-assigned identity's resource ID the object was created (or imported) with.",
            ),
        ],
    }
}

pub fn identity_value(scope: &str, identity_id: &str) -> Value {
    Value::object([
        ("scope", Value::string(scope)),
        ("identity_id", Value::string(identity_id)),
    ])
}

/// The tag the quickstart (examples/quickstart) excludes machines by.
pub const QUICKSTART_EXCLUDE_TAG: (&str, &str) = ("mig-exclude", "true");

/// The object the quickstart (examples/quickstart) declares for one identity: the identity
/// over `scope` in its `location`, machines tagged `mig-exclude = "true"` left alone, every
/// other argument its default. What `terraform query` lists, before a refresh fills in the
/// outcome (nothing recorded as ours, as after an import).
pub(crate) fn quickstart_state(scope: &str, identity_id: &str, location: &str) -> Value {
    let (tag, value) = QUICKSTART_EXCLUDE_TAG;
    let skeleton = Value::object([
        ("identity_id", Value::string(identity_id)),
        ("scope", Value::string(scope)),
        ("locations", Value::string_set([location])),
        ("exclude_ids", Value::Null),
        (
            "exclude_tags",
            Value::Map(BTreeMap::from([(tag.to_string(), Value::string(value))])),
        ),
        ("resource_types", Value::Null),
        ("skip_single_user_assigned", Value::Null),
        ("mode", Value::Null),
        ("adopt", Value::Null),
        ("timeouts", Value::Null),
    ]);
    with_outcome(
        &with_id(&schema().block.apply_defaults(&skeleton)),
        &Outcome::default(),
    )
}

/// The identity of a new object, from its `scope` and `identity_id` (`None` while unknown).
fn identity_of(state: &Value) -> Option<Value> {
    let (scope, identity_id) = (
        state.get("scope").as_str()?,
        state.get("identity_id").as_str()?,
    );
    identity::known(identity_value(scope, identity_id))
}

// ---------------------------------------------------------------------------------------------
// Ownership across plan and apply: the private state
// ---------------------------------------------------------------------------------------------

/// What travels in Terraform's private state next to the attributes.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Private {
    /// In the plan of an object that replaces another: the machines it takes over. The old
    /// object's destroy (which Terraform hands this same private state) leaves them alone,
    /// and the new one records them as its own.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    taken_over: BTreeSet<String>,
    /// Listed in `assigned_ids` because the plan said so, but another writer attached the
    /// identity between plan and apply: not ours. The next refresh moves them to
    /// `compliant_ids`; destroy never takes the identity back from them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    not_ours: BTreeSet<String>,
    /// Listed in `compliant_ids` because the plan said so, but ours: the object that had
    /// attached the identity handed them over in this apply, or they had lost it and we
    /// attached it again. The next refresh moves them to `assigned_ids`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    adopted: BTreeSet<String>,
    /// Machines still carrying an identity this object attached, whose release (or swap
    /// after `identity_id` changed) did not happen: machine to that identity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pending_release: BTreeMap<String, String>,
    /// Lower-cased machine ID to the unique ID (`vmId`, a scale set's `uniqueId`) of each
    /// machine holding an identity from us, recorded when we attach it (and, for states
    /// written before, at the next refresh or apply). A machine listed under the same ID
    /// with another unique ID was deleted and created again: not ours.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    unique_ids: BTreeMap<String, String>,
    /// In a plan, for Terraform 1.16+ (which hands it back to the plan it makes during
    /// apply): the lists this plan showed. Planned again from a fresh listing, a machine
    /// changed since (attached by someone else, created, deleted) would change them, and
    /// Terraform would refuse to apply ("inconsistent final plan"). Never kept in state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shown: Option<Outcome>,
    /// Machines holding the identity where an attach's answer was lost while another change
    /// reached them: maybe ours, maybe not. Never taken as ours (kept out of what we hold, so
    /// destroy leaves them holding), named in a warning at every plan and at destroy, and kept
    /// while they hold the identity.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    uncertain: BTreeSet<String>,
    /// In the plan of a create: the key of its hand-over records (`crate::handover`). The
    /// destroy of the object it replaces, which Terraform hands this private state, records
    /// there what it left holding the identity, for the create's plan made during apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    successor: Option<String>,
    /// In the plan of a create: the machines it plans `compliant` (holding its identity, not
    /// its own), with that identity. After a taint, Terraform plans the create alone, and a
    /// changed `scope` hides the old object's records from it: the old object's destroy,
    /// handed this private state, leaves these machines holding the identity (the create
    /// adopts them) instead of stripping what the plan showed as kept.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    keeps: BTreeMap<String, String>,
    /// Lower-cased machine ID to how many of our applies in a row it lost the identity we
    /// attached: another writer (azurerm, a module) takes it off after each of them. Counted
    /// at refresh (see `ownership::lost_streaks`); the plan names them and warns from two.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    lost_streak: BTreeMap<String, u32>,
}

impl Private {
    fn from_bytes(bytes: &[u8]) -> Private {
        model::private_from_bytes(bytes)
    }

    fn to_bytes(&self) -> Vec<u8> {
        model::private_to_bytes(self)
    }
}

/// What an existing object owns: its `assigned_ids` less those another writer attached,
/// plus releases still owed.
fn held_from(state: &Value, private: &Private) -> Held {
    let identity_id = state.get("identity_id").as_str().unwrap_or_default();
    let assigned: Vec<String> = outcome_from(state)
        .assigned_ids
        .into_iter()
        .chain(private.adopted.iter().cloned())
        .filter(|id| !contains_ignoring_case(&private.not_ours, id))
        .collect();
    let mut held = Held::new(identity_id, &assigned);
    for (machine, identity) in &private.pending_release {
        held.add(identity, [machine]);
    }
    held.record_unique_ids(&private.unique_ids);
    held
}

/// The unique ID of every machine `now` holds: as `inventory` lists it, else as `before`
/// recorded it (a machine missing from the listing keeps its record).
fn unique_ids_of(now: &Held, before: &Held, inventory: &[Machine]) -> BTreeMap<String, String> {
    let listed: HashMap<String, &Machine> = inventory
        .iter()
        .map(|m| (m.id.to_ascii_lowercase(), m))
        .collect();
    now.iter()
        .filter_map(|(machine, _)| {
            let unique_id = listed
                .get(machine)
                .and_then(|m| m.unique_id.as_deref())
                .or_else(|| before.unique_id_of(machine))?;
            Some((machine.clone(), unique_id.to_string()))
        })
        .collect()
}

/// Machines holding an identity from us that neither a listing nor a read by their ID shows
/// (lower-cased ID to why the read failed). They stay recorded as they were.
type Unreadable = BTreeMap<String, String>;

/// Keeps in `outcome.assigned_ids` the `unreadable` machines that hold `identity_id` from
/// us, spelled as `before` had them, and warns naming them.
fn keep_unreadable(
    outcome: &mut Outcome,
    unreadable: &Unreadable,
    held: &Held,
    identity_id: &str,
    before: &Outcome,
    diagnostics: &mut Diagnostics,
) {
    if unreadable.is_empty() {
        return;
    }
    for machine in unreadable.keys() {
        if held
            .identity_on(machine)
            .is_some_and(|identity| identity.eq_ignore_ascii_case(identity_id))
        {
            let spelled = before
                .assigned_ids
                .iter()
                .find(|id| id.eq_ignore_ascii_case(machine))
                .cloned()
                .unwrap_or_else(|| machine.clone());
            outcome.assigned_ids.insert(spelled);
        }
    }
    diagnostics.warning(
        "Machines holding the identity from this resource could not be read",
        &format!(
            "They are missing from the listing, and reading them by ID failed; they stay recorded as ours (`assigned_ids`) until a read says they are gone (404). Grant the provider's principal read access to them (Microsoft.Compute/virtualMachines/read, virtualMachineScaleSets/read).\n{}",
            unreadable
                .iter()
                .take(20)
                .map(|(machine, error)| format!("- {machine}: {error}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    );
}

/// Forgets in `held` the machines `inventory` shows deleted and created again.
fn forget_recreated(held: &mut Held, inventory: &[Machine]) {
    let recreated = held.forget_recreated(inventory);
    if !recreated.is_empty() {
        tracing::info!(
            count = recreated.len(),
            "machines deleted and created again under the same ID since we attached the identity: no longer ours"
        );
    }
}

/// Warns that objects planned before this one in the same run reach some of its machines
/// with the same identity.
fn warn_overlap(settings: &Settings, overlapping: &[Settings], diagnostics: &mut Diagnostics) {
    if overlapping.is_empty() {
        return;
    }
    let describe = |reach: &Settings| {
        let regions = match &reach.locations {
            Some(regions) => regions.iter().cloned().collect::<Vec<_>>().join(", "),
            None => "every region".to_string(),
        };
        format!("scope `{}` ({regions})", reach.scope)
    };
    let others = overlapping
        .iter()
        .map(|other| format!("- {}", describe(other)))
        .collect::<Vec<_>>()
        .join("\n");
    diagnostics.warning_at(
        AttributePath::root("scope"),
        "Two objects attach the same identity to the same machines",
        &format!(
            "This object, over {}, and another object in this configuration attach `{}` to machines both reach:\n{others}\nEach records only what it attached, so removing one (or narrowing it) takes the identity back from machines the other still wants, and the other attaches it again at its next apply. Give each machine one object: narrow `scope`, `locations` or `resource_types`, or list the machines in one object's `exclude_ids`. To move machines from one object to another, remove the old one with `removed {{ lifecycle {{ destroy = false }} }}` and set `adopt = \"compliant\"` on the new one (see the estates guide).",
            describe(settings),
            settings.identity_id,
        ),
    );
}

/// Machines that were planned the identity again after losing it, as `streaks` counts them:
/// the plan names them, and warns louder when one lost it at two of our applies in a row.
fn warn_lost(
    streaks: &BTreeMap<String, u32>,
    writes: &BTreeMap<String, Write>,
    diagnostics: &mut Diagnostics,
) {
    let mut once = Vec::new();
    let mut again = Vec::new();
    for (machine, write) in writes {
        if !matches!(write, Write::Attach | Write::Swap { .. }) {
            continue;
        }
        match streaks.get(&machine.to_ascii_lowercase()) {
            Some(count) if *count >= 2 => {
                again.push(format!("- {machine} ({count} applies in a row)"))
            }
            Some(_) => once.push(format!("- {machine}")),
            None => {}
        }
    }
    let list = |machines: &[String]| {
        let mut text = machines
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        if machines.len() > 20 {
            text.push_str(&format!("\n- ... and {} more", machines.len() - 20));
        }
        text
    };
    if !again.is_empty() {
        diagnostics.warning(
            "Machines keep losing the identity this resource attaches",
            &format!(
                "Another writer took the identity off these machines after each of the last applies, and this plan attaches it again: the two fight at every apply. The likely cause is a tool that lists a machine's identities authoritatively, such as azurerm's `azurerm_linux_virtual_machine`/`azurerm_windows_virtual_machine` with an `identity` block, or a module wrapping one. Fix it on that side: add `lifecycle {{ ignore_changes = [identity] }}` to the machine, or include the identity in its `identity_ids` (`provider::mig::builtin_identity_id`); or leave the machine out here with `exclude_ids`. See the guide \"Machines managed by azurerm or modules\".\n{}",
                list(&again)
            ),
        );
    }
    if !once.is_empty() {
        diagnostics.warning(
            "Machines lost the identity this resource attached",
            &format!(
                "Someone else took the identity off these machines since this resource's last apply; this plan attaches it again. If they lose it again, another tool manages their identities (see the guide \"Machines managed by azurerm or modules\").\n{}",
                list(&once)
            ),
        );
    }
}

/// The write planned for `id`: releases are keyed by the lower-cased ID ownership records,
/// while a batch reports each machine as ARM spells it.
/// For an estate whose destroy failed in another bucket: the state of a bucket whose destroy
/// went through but left machines holding the identity for the object replacing it. That
/// object is not created after a failed destroy, so they are still this one's: `None` when
/// it handed nothing over.
pub(crate) fn handed_over_state(prior: &Value, planned_private: &[u8]) -> Option<(Value, Vec<u8>)> {
    let private = Private::from_bytes(planned_private);
    if private.taken_over.is_empty() && private.keeps.is_empty() {
        return None;
    }
    let prior = without_incomplete_marker(prior.clone());
    let identity_id = prior.get("identity_id").as_str()?.to_string();
    let held = held_from(&prior, &private);
    let mut outcome = outcome_from(&prior);
    let before = outcome.assigned_ids.clone();
    outcome.assigned_ids.clear();
    let mut remaining = Private::default();
    for (machine, identity) in held.iter() {
        if !contains_ignoring_case(&private.taken_over, machine)
            && !kept_for_successor(&private, machine, identity)
        {
            continue;
        }
        if identity.eq_ignore_ascii_case(&identity_id) {
            let spelled = before
                .iter()
                .find(|id| id.eq_ignore_ascii_case(machine))
                .cloned()
                .unwrap_or_else(|| machine.clone());
            outcome.assigned_ids.insert(spelled);
        } else {
            remaining
                .pending_release
                .insert(machine.clone(), identity.clone());
        }
    }
    if outcome.assigned_ids.is_empty() && remaining.pending_release.is_empty() {
        return None;
    }
    let state = with_outcome(&prior, &outcome);
    remaining.unique_ids = unique_ids_of(&held_from(&state, &remaining), &held, &[]);
    Some((state, remaining.to_bytes()))
}

/// True when the create replacing this object planned `machine` to keep `identity_id`
/// (see `Private::keeps`).
fn kept_for_successor(private: &Private, machine: &str, identity_id: &str) -> bool {
    private
        .keeps
        .get(&machine.to_ascii_lowercase())
        .is_some_and(|identity| identity.eq_ignore_ascii_case(identity_id))
}

/// `machine` as the listing spells it (else as given).
fn listed_spelling(inventory: &[Machine], machine: &str) -> String {
    inventory
        .iter()
        .find(|m| m.id.eq_ignore_ascii_case(machine))
        .map_or_else(|| machine.to_string(), |m| m.id.clone())
}

fn job_for<'a>(jobs: &'a BTreeMap<String, Write>, id: &str) -> Option<&'a Write> {
    jobs.get(id).or_else(|| jobs.get(&id.to_ascii_lowercase()))
}

fn contains_ignoring_case(set: &BTreeSet<String>, id: &str) -> bool {
    set.iter().any(|item| item.eq_ignore_ascii_case(id))
}

// ---------------------------------------------------------------------------------------------
// The inventory: the machines of the new scope, and of the old one while it changes
// ---------------------------------------------------------------------------------------------

impl IdentityAssignment {
    /// The machines `settings` reach, plus those `previous` reached and those `held`: owned
    /// machines that left the scope (or a removed resource type or region) must be seen to be
    /// released. Machines of other regions are left out of the copy: a listing is shared by
    /// every object of the subscription (an estate's buckets, one per region), and each keeps
    /// only its own region's machines.
    async fn inventory(
        &self,
        clients: &AzureClients,
        settings: &Settings,
        previous: Option<&Settings>,
        held: &Held,
        max_age: Duration,
    ) -> Result<(Vec<Machine>, Unreadable), String> {
        let regions: Option<BTreeSet<String>> = match (&settings.locations, previous) {
            (None, _)
            | (
                _,
                Some(Settings {
                    locations: None, ..
                }),
            ) => None,
            (Some(now), None) => Some(now.clone()),
            (
                Some(now),
                Some(Settings {
                    locations: Some(before),
                    ..
                }),
            ) => Some(now.union(before).cloned().collect()),
        };
        let wanted = &|machine: &Machine| {
            regions.as_ref().is_none_or(|regions| {
                ids::normalized_location(&machine.location)
                    .is_some_and(|region| regions.contains(region.as_ref()))
            }) || held.identity_on(&machine.id).is_some()
        };
        let now = tokio::time::Instant::now();
        let not_before = now.checked_sub(max_age).unwrap_or(now);
        let mut kinds = settings.kinds.clone();
        if let Some(previous) = previous {
            kinds.extend(previous.kinds.iter().copied());
        }
        kinds.sort();
        kinds.dedup();
        let mut scopes = vec![settings.scope.clone()];
        if let Some(previous) = previous {
            if !ownership::scope_contains(&settings.scope, &format!("{}/", previous.scope))
                && previous.scope != settings.scope
            {
                scopes.push(previous.scope.clone());
            }
        }
        let mut machines = Vec::new();
        for scope in &scopes {
            let listing = clients
                .compute
                .inventory_where(scope, &kinds, not_before, wanted)
                .await
                .map_err(|e| e.to_string())?;
            machines.extend(listing);
        }
        let (found, unreadable) = self.unlisted_held(clients, &machines, held).await;
        machines.extend(found);
        Ok((machines, unreadable))
    }

    /// The machines `held` that `listed` lacks, read one by one: a listing shows only what
    /// the principal may read, and leaves out machines of a scope or kind no longer
    /// selected. Only a 404 on the machine's own ID says it is gone; one that cannot be read
    /// either is returned as unreadable, with the reason, and stays recorded.
    async fn unlisted_held(
        &self,
        clients: &AzureClients,
        listed: &[Machine],
        held: &Held,
    ) -> (Vec<Machine>, Unreadable) {
        let seen: BTreeSet<String> = listed.iter().map(|m| m.id.to_ascii_lowercase()).collect();
        // Owned, not borrowed: a stream of borrowed items trips the compiler's proof that the
        // plan's future is `Send`.
        let missing: Vec<String> = held
            .iter()
            .map(|(machine, _)| machine)
            .filter(|machine| !seen.contains(*machine))
            .cloned()
            .collect();
        if missing.is_empty() {
            return (Vec::new(), Unreadable::new());
        }
        tracing::debug!(
            count = missing.len(),
            "machines holding an identity from us are missing from the listing; reading them"
        );
        let answers: Vec<(String, Result<Option<Machine>, String>)> =
            futures::stream::iter(missing)
                .map(|machine| async move {
                    let kind = if machine.contains("/virtualmachinescalesets/") {
                        MachineKind::ScaleSet
                    } else {
                        MachineKind::VirtualMachine
                    };
                    let answer = clients
                        .compute
                        .get_machine(&machine, kind)
                        .await
                        .map_err(|e| e.to_string());
                    (machine, answer)
                })
                .buffer_unordered(compute::WRITES_PER_SUBSCRIPTION)
                .collect()
                .await;
        let mut found = Vec::new();
        let mut unreadable = Unreadable::new();
        for (machine, answer) in answers {
            match answer {
                Ok(Some(read)) => found.push(read),
                Ok(None) => {
                    tracing::info!(machine = %machine, "a machine that held our identity is gone (404)")
                }
                Err(error) => {
                    unreadable.insert(machine, error);
                }
            }
        }
        (found, unreadable)
    }
}

// ---------------------------------------------------------------------------------------------
// Applying: one PATCH per machine, with If-Match, concurrently
// ---------------------------------------------------------------------------------------------

/// The result of one machine's write.
#[derive(Debug, PartialEq)]
enum WriteResult {
    /// The machine now holds (attach, swap) or no longer holds (detach) the identity.
    Done,
    /// Nothing to do any more: the identity was already there (attach, swap) or already
    /// gone (detach). For a swap, the old identity was still taken back.
    AlreadyDone,
    Failed(String),
    /// Not attempted: the provider was asked to stop, or the operation timed out.
    NotStarted,
    /// The answer to an attach or swap was lost, and the machine holds the identity, but
    /// another change reached it in the same moment: whether our write put the identity
    /// there cannot be told (see [`compute::is_exactly_our_write`]). Never taken as ours.
    Uncertain,
}

/// Whether `error` leaves a write's outcome unknown: ARM may have applied it although the
/// answer said otherwise or never came (a 5xx, a timeout, a dropped connection, or any
/// refusal of a retry after such an attempt, a 412 above all).
fn outcome_unknown(error: &ArmError) -> bool {
    error.after_unanswered_attempt
        || error.status >= 500
        || error.status == 408
        || (error.status == 0 && !error.is_not_sent() && error.code != compute::NO_ETAG)
}

/// What `fresh`, read after a write whose answer was lost, says about the write that sent
/// `patch` onto `before`: `None` when it does not show the write applied; otherwise
/// [`WriteResult::Done`] when the evidence says our write did it, or, for an attach or swap
/// whose evidence cannot decide, [`WriteResult::Uncertain`]. A release that shows applied is
/// done whoever made it: the machine no longer holds our identity.
fn judge_lost_answer(
    before: &Machine,
    patch: &serde_json::Value,
    fresh: &Machine,
    target: &str,
    write: &Write,
) -> Option<WriteResult> {
    let block = ownership::identity_block(fresh);
    let shows_applied = match write {
        Write::Attach => block.holds(target),
        Write::Swap { from } => block.holds(target) && !block.holds(from),
        Write::Detach { identity_id } => !block.holds(identity_id),
    };
    if !shows_applied {
        return None;
    }
    if matches!(write, Write::Detach { .. }) || compute::is_exactly_our_write(before, patch, fresh)
    {
        return Some(WriteResult::Done);
    }
    tracing::warn!(
        machine = %fresh.id,
        etag_before = before.etag.as_deref().unwrap_or(""),
        etag_now = fresh.etag.as_deref().unwrap_or(""),
        "the answer to our write was lost and another change reached the machine too: whether the identity there is ours is uncertain"
    );
    Some(WriteResult::Uncertain)
}

/// Writes one machine: decide again against its freshest etag and identity, PATCH with
/// If-Match, and on 412 read it again and redo the merge. A machine read without an etag is
/// read again by ID first, and never written blind (see
/// [`compute::ComputeClient::patch_identity_cancellable`]). When the answer to a write is lost
/// (the retry of a write ARM applied gets 412, or every attempt failed without an answer),
/// the machine is read and [`judge_lost_answer`] decides.
async fn write_machine(
    compute: &ComputeClient,
    mut machine: Machine,
    target: &str,
    rules: &policy::Rules,
    write: &Write,
    halt: &CancellationToken,
) -> WriteResult {
    for _attempt in 0..MAX_CONFLICT_RETRIES {
        if machine.etag.is_none() {
            // A listing may carry no etag where a read by ID does.
            match compute
                .get_machine_cancellable(&machine.id, machine.kind, halt)
                .await
            {
                Err(error) if error.is_stopped() => return WriteResult::NotStarted,
                Ok(Some(fresh)) => machine = fresh,
                Ok(None) => {
                    return match write {
                        Write::Detach { .. } => WriteResult::AlreadyDone,
                        _ => WriteResult::Failed("deleted since plan".into()),
                    }
                }
                Err(error) => return WriteResult::Failed(error.to_string()),
            }
        }
        let identity = ownership::identity_block(&machine);
        let patch = match write {
            Write::Attach | Write::Swap { .. } => {
                let from = match write {
                    Write::Swap { from } if identity.holds(from) => Some(from.as_str()),
                    _ => None,
                };
                if identity.kind.has_user_assigned() && identity.holds(target) {
                    match from.and_then(|from| policy::removal_patch(&identity, from)) {
                        // Someone else gave it the new identity; ours still goes.
                        Some(removal) => removal,
                        None => return WriteResult::AlreadyDone,
                    }
                } else {
                    if from.is_none() {
                        let decision = policy::decide(
                            &policy::Machine {
                                id: &machine.id,
                                identity: &identity,
                                tags: &machine.tags,
                                provisioning_state: machine.provisioning_state.as_deref(),
                            },
                            target,
                            rules,
                        );
                        if let Decision::Skip(reason) = decision {
                            return WriteResult::Failed(format!(
                                "changed since plan and is now skipped ({}); plan again",
                                reason.as_str()
                            ));
                        }
                    }
                    match from {
                        Some(from) => ownership::swap_patch(&identity, from, target),
                        None => policy::assignment_patch(&identity, target),
                    }
                }
            }
            Write::Detach { identity_id } => match policy::removal_patch(&identity, identity_id) {
                Some(patch) => patch,
                None => return WriteResult::AlreadyDone,
            },
        };
        if machine.etag.is_none() {
            return WriteResult::Failed(
                "ARM returns no etag for it, even read by ID, and a write without If-Match could drop an identity another writer added meanwhile (the PATCH sends `type`); not written. Check that the machine's API serves etags, then apply again".into(),
            );
        }
        match compute
            .patch_identity_cancellable(
                &machine.id,
                machine.kind,
                patch.clone(),
                machine.etag.as_deref(),
                halt,
            )
            .await
        {
            Ok(()) => return WriteResult::Done,
            Err(error) if error.is_not_sent() => return WriteResult::NotStarted,
            Err(error) if error.is_cancelled() => {
                return outcome_after_stop(compute, &machine, &patch, target, write).await
            }
            Err(error) if error.status == 404 && !error.after_unanswered_attempt => {
                return match write {
                    Write::Detach { .. } => WriteResult::AlreadyDone,
                    _ => WriteResult::Failed("deleted since plan".into()),
                }
            }
            Err(error) if error.status == 412 || outcome_unknown(&error) => {
                if error.status == 412 && !error.after_unanswered_attempt {
                    tracing::debug!(machine = %machine.id, "etag changed under us; reading again");
                } else {
                    tracing::info!(machine = %machine.id, %error, "the answer to our write was lost; reading the machine to learn its outcome");
                }
                let fresh = match compute
                    .get_machine_cancellable(&machine.id, machine.kind, halt)
                    .await
                {
                    Err(read) if read.is_stopped() && outcome_unknown(&error) => {
                        return outcome_after_stop(compute, &machine, &patch, target, write)
                            .await
                    }
                    Err(read) if read.is_stopped() => return WriteResult::NotStarted,
                    Ok(Some(fresh)) => fresh,
                    Ok(None) if matches!(write, Write::Detach { .. }) => {
                        return WriteResult::AlreadyDone
                    }
                    Ok(None) => return WriteResult::Failed("deleted since plan".into()),
                    Err(read) if outcome_unknown(&error) => {
                        return WriteResult::Failed(format!(
                            "{error}; the write may have been applied, and reading the machine back failed ({read}): the next refresh reads it"
                        ))
                    }
                    Err(read) => return WriteResult::Failed(read.to_string()),
                };
                if outcome_unknown(&error) {
                    if let Some(result) = judge_lost_answer(&machine, &patch, &fresh, target, write)
                    {
                        return result;
                    }
                    if error.status != 412 {
                        // Not applied: the failure stands.
                        return WriteResult::Failed(error.to_string());
                    }
                }
                machine = fresh;
            }
            Err(error) => return WriteResult::Failed(error.to_string()),
        }
    }
    WriteResult::Failed(format!(
        "changed by someone else {MAX_CONFLICT_RETRIES} times in a row while we wrote it; apply again"
    ))
}

/// A write was stopped after it was sent: read the machine once to learn whether it took,
/// and if it shows so, whether it was ours (see [`judge_lost_answer`]).
async fn outcome_after_stop(
    compute: &ComputeClient,
    machine: &Machine,
    patch: &serde_json::Value,
    target: &str,
    write: &Write,
) -> WriteResult {
    let fresh = match compute.get_machine(&machine.id, machine.kind).await {
        Ok(Some(fresh)) => fresh,
        Ok(None) => return WriteResult::Failed("deleted while we wrote it".into()),
        Err(error) => {
            return WriteResult::Failed(format!(
                "stopped while the write was in flight, and reading the machine back failed ({error}); the next refresh reads it"
            ))
        }
    };
    judge_lost_answer(machine, patch, &fresh, target, write).unwrap_or(WriteResult::NotStarted)
}

/// What a batch of writes achieved, machine by machine.
#[derive(Default)]
struct BatchReport {
    succeeded: BTreeSet<String>,
    already_done: BTreeSet<String>,
    failed: BTreeMap<String, String>,
    not_started: BTreeSet<String>,
    /// Attaches and swaps whose answer was lost while another change reached the machine:
    /// it holds the identity, from us or not (see [`WriteResult::Uncertain`]).
    uncertain: BTreeSet<String>,
}

impl BatchReport {
    fn reached(&self, id: &str) -> bool {
        // Writes are keyed by the planned spelling: the exact lookup almost always answers.
        self.succeeded.contains(id)
            || self.already_done.contains(id)
            || contains_ignoring_case(&self.succeeded, id)
            || contains_ignoring_case(&self.already_done, id)
    }

    fn failed_or_not_started(&self) -> impl Iterator<Item = &String> {
        self.failed.keys().chain(self.not_started.iter())
    }
}

/// The machines whose ownership is uncertain after an apply: those carried from before that
/// still hold the identity from someone (`compliant_ids`) and were not adopted, plus those
/// this apply's lost answers left uncertain.
fn uncertain_after_apply(
    carried: &BTreeSet<String>,
    outcome: &Outcome,
    adopted: &BTreeSet<String>,
    new: &BTreeSet<String>,
) -> BTreeSet<String> {
    carried
        .iter()
        .filter(|id| {
            contains_ignoring_case(&outcome.compliant_ids, id)
                && !contains_ignoring_case(adopted, id)
        })
        .chain(new.iter())
        .cloned()
        .collect()
}

/// The uncertain machines a refresh keeps: those it found holding the identity from someone
/// (`compliant_ids`). One that lost the identity, or was deleted, is uncertain no more.
fn uncertain_after_refresh(carried: &BTreeSet<String>, refreshed: &Outcome) -> BTreeSet<String> {
    carried
        .iter()
        .filter(|id| contains_ignoring_case(&refreshed.compliant_ids, id))
        .cloned()
        .collect()
}

/// A warning naming the machines whose ownership is uncertain, if any; `now` says what
/// happens to them at this step.
fn warn_uncertain(diagnostics: &mut Diagnostics, uncertain: &BTreeSet<String>, now: &str) {
    if uncertain.is_empty() {
        return;
    }
    let mut lines: Vec<String> = uncertain
        .iter()
        .take(50)
        .map(|id| format!("- {id}"))
        .collect();
    if uncertain.len() > 50 {
        lines.push(format!("- ... and {} more", uncertain.len() - 50));
    }
    diagnostics.warning(
        &format!(
            "Ownership of the identity on {} machine(s) is uncertain",
            uncertain.len()
        ),
        &format!(
            "Azure's answer to the write that attached the identity was lost, and another change reached the machine in the same moment: the identity there may be this resource's or another writer's. It is recorded as compliant, not as this resource's, so destroy never takes it back.{now} To settle it, remove the identity from the machine by hand if it is this resource's (the next apply attaches it again as its own), or leave it if another writer put it there.\n{}",
            lines.join("\n")
        ),
    );
}

/// One machine's write against a scripted ARM: lost answers judged by the evidence, and no
/// write without `If-Match`.
#[cfg(test)]
mod write_machine_tests {
    use super::*;
    use crate::azure::arm::test_support::{client, ok, Step};
    use std::sync::Mutex;

    const VM: &str =
        "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";
    const OURS: &str = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ours";

    fn machine(etag: Option<u64>, holds_ours: bool, other_tag: bool) -> serde_json::Value {
        let mut json = serde_json::json!({
            "id": VM, "location": "eastus", "tags": {"env": "prod"},
            "properties": {"provisioningState": "Succeeded"},
            "identity": {"type": "SystemAssigned"},
        });
        if let Some(etag) = etag {
            json["etag"] = format!("\"{etag}\"").into();
        }
        if holds_ours {
            json["identity"] = serde_json::json!({
                "type": "SystemAssigned, UserAssigned",
                "userAssignedIdentities": {OURS: {"principalId": "p", "clientId": "c"}},
            });
        }
        if other_tag {
            json["tags"]["other"] = "x".into();
        }
        json
    }

    fn status(code: u16) -> Step {
        Step::Answer(
            code,
            Vec::new(),
            Ok(format!(r#"{{"error":{{"code":"E{code}","message":"m"}}}}"#).into_bytes()),
        )
    }

    /// Writes an attach of OURS to the machine `listed` with ARM answering each PATCH by its
    /// number (from 0) and each GET with `read`; returns the result and the `If-Match` of
    /// every PATCH sent.
    async fn attach(
        listed: serde_json::Value,
        patch: impl Fn(usize) -> Step + Send + Sync + 'static,
        read: serde_json::Value,
    ) -> (WriteResult, Vec<Option<String>>) {
        let if_matches = std::sync::Arc::new(Mutex::new(Vec::new()));
        let seen = if_matches.clone();
        let patches = std::sync::atomic::AtomicUsize::new(0);
        let read = read.to_string();
        let (arm, _) = client(move |request, _| {
            if request.method() == reqwest::Method::PATCH {
                seen.lock().unwrap().push(
                    request
                        .headers()
                        .get("If-Match")
                        .map(|v| v.to_str().unwrap().to_string()),
                );
                patch(patches.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
            } else {
                ok(&read)
            }
        });
        let compute = ComputeClient::new(arm);
        let listed = Machine::from_json(&listed, MachineKind::VirtualMachine).unwrap();
        let result = write_machine(
            &compute,
            listed,
            OURS,
            &policy::Rules::default(),
            &Write::Attach,
            &CancellationToken::new(),
        )
        .await;
        let sent = if_matches.lock().unwrap().clone();
        (result, sent)
    }

    /// Our PATCH took, its answer was a 500, the retry with the same If-Match got 412: the
    /// machine is exactly as our write leaves it, one write on. Ours.
    #[tokio::test(start_paused = true)]
    async fn a_lost_answer_whose_machine_shows_exactly_our_write_is_ours() {
        let (result, sent) = attach(
            machine(Some(3), false, false),
            |n| if n == 0 { status(500) } else { status(412) },
            machine(Some(4), true, false),
        )
        .await;
        assert_eq!(result, WriteResult::Done);
        assert_eq!(sent, [Some("\"3\"".into()), Some("\"3\"".into())]);
    }

    /// The same, but another writer changed the machine too (two writes, a tag): either write
    /// may have put our identity there. Uncertain, never ours by guess.
    #[tokio::test(start_paused = true)]
    async fn a_lost_answer_with_another_change_in_the_same_moment_is_uncertain() {
        let (result, _) = attach(
            machine(Some(3), false, false),
            |n| if n == 0 { status(500) } else { status(412) },
            machine(Some(5), true, true),
        )
        .await;
        assert_eq!(result, WriteResult::Uncertain);
    }

    /// A 412 at the first attempt: ours never took, whatever the machine shows. Someone
    /// else's.
    #[tokio::test(start_paused = true)]
    async fn a_412_at_once_leaves_the_identity_someone_elses() {
        let (result, sent) = attach(
            machine(Some(3), false, false),
            |_| status(412),
            machine(Some(4), true, false),
        )
        .await;
        assert_eq!(result, WriteResult::AlreadyDone);
        assert_eq!(sent.len(), 1);
    }

    /// Every attempt answered 500: the machine decides. Applied by our write, it is ours;
    /// not applied, the failure stands.
    #[tokio::test(start_paused = true)]
    async fn when_every_answer_is_lost_the_machine_decides() {
        let (result, _) = attach(
            machine(Some(3), false, false),
            |_| status(500),
            machine(Some(4), true, false),
        )
        .await;
        assert_eq!(result, WriteResult::Done);
        let (result, _) = attach(
            machine(Some(3), false, false),
            |_| status(500),
            machine(Some(3), false, false),
        )
        .await;
        assert!(
            matches!(&result, WriteResult::Failed(reason) if reason.contains("E500")),
            "{result:?}"
        );
    }

    /// A machine listed without an etag is read by ID first and written with the etag the
    /// read returns; when the read has none either, nothing is written.
    #[tokio::test(start_paused = true)]
    async fn a_machine_without_an_etag_is_never_written_blind() {
        let (result, sent) = attach(
            machine(None, false, false),
            |_| ok("{}"),
            machine(Some(7), false, false),
        )
        .await;
        assert_eq!(result, WriteResult::Done);
        assert_eq!(sent, [Some("\"7\"".into())]);

        let (result, sent) = attach(
            machine(None, false, false),
            |_| ok("{}"),
            machine(None, false, false),
        )
        .await;
        assert!(
            matches!(&result, WriteResult::Failed(reason) if reason.contains("If-Match")),
            "{result:?}"
        );
        assert!(sent.is_empty(), "no PATCH without If-Match: {sent:?}");
    }
}

impl IdentityAssignment {
    /// Writes `jobs` (machine ID, any casing, to its write) concurrently. Machines missing
    /// from the inventory were deleted since plan. Once `halt` fires, no new write starts.
    async fn write_batch(
        &self,
        clients: &AzureClients,
        inventory: &[Machine],
        jobs: &BTreeMap<String, Write>,
        settings: &Settings,
        halt: &CancellationToken,
    ) -> BatchReport {
        let by_id: HashMap<String, &Machine> = inventory
            .iter()
            .map(|m| (m.id.to_ascii_lowercase(), m))
            .collect();
        let mut report = BatchReport::default();
        let mut work = Vec::new();
        for (id, write) in jobs {
            match by_id.get(&id.to_ascii_lowercase()) {
                Some(machine) => work.push((*machine, write)),
                None if matches!(write, Write::Detach { .. }) => {
                    report.already_done.insert(id.clone());
                }
                None => {
                    report
                        .failed
                        .insert(id.clone(), "deleted since plan".into());
                }
            }
        }
        // Indices, not the pairs: a stream of borrowed items trips the compiler's proof that
        // the apply's future is `Send`.
        let work = &work;
        let results: Vec<(String, WriteResult)> = futures::stream::iter(0..work.len())
            // A write starts (and is built) only once its subscription has a turn free: the
            // subscription's buckets and resources share its turns, so the writes waiting on
            // ARM's pacing stay few however many buckets write at once.
            .then(|index| {
                clients
                    .compute
                    .write_slot(&work[index].0.id, halt.clone())
                    .map(move |slot| (index, slot))
            })
            .map(|(index, slot)| {
                let halt = halt.clone();
                let (machine, write) = work[index];
                async move {
                    let id = machine.id.clone();
                    let Some(_slot) = slot.filter(|_| !halt.is_cancelled()) else {
                        return (id, WriteResult::NotStarted);
                    };
                    // Copied here, when the write starts: only the writes in flight hold a
                    // copy, not every machine of a large batch at once.
                    let result = write_machine(
                        &clients.compute,
                        machine.clone(),
                        &settings.identity_id,
                        &settings.rules,
                        write,
                        &halt,
                    )
                    .await;
                    (id, result)
                }
            })
            .buffer_unordered(compute::WRITES_PER_SUBSCRIPTION)
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
                WriteResult::Uncertain => {
                    report.uncertain.insert(id);
                }
            }
        }
        report
    }

    /// Waits until ARM reports the written machines settled, unless `halt` fires first; or,
    /// inside [`settle_later`], leaves that to the caller.
    async fn settle(
        &self,
        clients: &AzureClients,
        settings: &Settings,
        written: &BTreeSet<String>,
        halt: &CancellationToken,
        diagnostics: &mut Diagnostics,
    ) {
        if written.is_empty() {
            return;
        }
        let deferred = SETTLE_LATER.try_with(|later| {
            later.lock().expect("settle_later lock").push(Written {
                scope: settings.scope.clone(),
                kinds: settings.kinds.clone(),
                machines: written.clone(),
            })
        });
        if deferred.is_ok() {
            return;
        }
        settle_written(
            clients,
            &settings.scope,
            &settings.kinds,
            written,
            halt,
            diagnostics,
        )
        .await;
    }
}

/// Machines written in one scope, whose update is still to be confirmed.
pub(crate) struct Written {
    pub scope: Scope,
    pub kinds: Vec<MachineKind>,
    pub machines: BTreeSet<String>,
}

tokio::task_local! {
    static SETTLE_LATER: Arc<std::sync::Mutex<Vec<Written>>>;
}

/// Runs `apply` (applies of this resource) collecting into `later` what their writes leave to
/// confirm instead of waiting for it: a caller applying many objects over one scope (an
/// estate's buckets of one subscription) then waits once, with one listing per round, rather
/// than once per object.
pub(crate) async fn settle_later<F: std::future::Future>(
    later: Arc<std::sync::Mutex<Vec<Written>>>,
    apply: F,
) -> F::Output {
    SETTLE_LATER.scope(later, apply).await
}

/// Waits until ARM reports `written` settled, unless `halt` fires first; a warning when it
/// cannot tell.
pub(crate) async fn settle_written(
    clients: &AzureClients,
    scope: &Scope,
    kinds: &[MachineKind],
    written: &BTreeSet<String>,
    halt: &CancellationToken,
    diagnostics: &mut Diagnostics,
) {
    let result = clients
        .compute
        .wait_until_settled_cancellable(scope, kinds, written, halt)
        .await;
    match result {
        Err(error) if !error.is_stopped() => diagnostics.warning(
            "Could not confirm that every update finished",
            &format!("The writes were accepted; the next refresh confirms them. {error}"),
        ),
        _ => {}
    }
}

fn report_failures(
    diagnostics: &mut Diagnostics,
    verb: &str,
    report: &BatchReport,
    halted_by: &str,
) {
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
            &format!("{halted_by} Writes already sent were finished and are recorded in state; apply again to finish the rest."),
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

/// The planned state with its `id` (the framework already filled in the defaults).
fn with_id(planned: &Value) -> Value {
    let id = match (
        planned.get("scope").as_str(),
        planned.get("identity_id").as_str(),
    ) {
        (Some(scope), Some(identity)) => Value::String(resource_id(scope, identity)),
        _ => Value::unknown(),
    };
    planned.with("id", id)
}

#[async_trait]
impl Resource for IdentityAssignment {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn schema(&self) -> Schema {
        schema()
    }

    fn identity_schema(&self) -> Option<IdentitySchema> {
        Some(identity_schema())
    }

    fn identity_of(&self, state: &Value) -> Option<Value> {
        identity_of(state)
    }

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        validate_arguments(config)
    }

    async fn plan(&self, request: PlanRequest) -> PlanResponse {
        async move {
            let mut response = PlanResponse {
                planned_state: request.proposed_new_state.clone(),
                planned_private: request.prior_private.clone(),
                ..PlanResponse::default()
            };
            if request.proposed_new_state.is_null() {
                let uncertain = Private::from_bytes(&request.prior_private).uncertain;
                warn_uncertain(
                    &mut response.diagnostics,
                    &uncertain,
                    " Destroy leaves them holding it.",
                );
                return response;
            }
            let planned = with_id(&request.proposed_new_state);
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
            let prior_private = Private::from_bytes(&request.prior_private);
            let previous = settings_from(&request.prior_state);
            response.diagnostics = self
                .check_against_azure(&clients, &request, &settings)
                .await;
            let overlapping = self.data.handover().reaches.note(&settings);
            warn_overlap(&settings, &overlapping, &mut response.diagnostics);
            if response.diagnostics.has_errors() {
                return response;
            }
            let mut private = Private::default();
            let first_plan = Private::from_bytes(&request.planned_private);
            let mut held = if request.prior_state.is_null() {
                // A create. If it replaces an object with the same scope and identity (taint,
                // `-replace`, a changed address), that object was refreshed or planned just
                // before in this process: take over what it owns. Terraform 1.16+ also hands
                // the plan in the apply what the first plan answered: with
                // create_before_destroy the object replaced is not refreshed in the apply's
                // process, and this is how the create learns what it takes over there.
                // Found by object first (a changed `scope` or another object of this scope
                // and identity cannot hide it), then by scope and identity (a taint, a
                // changed address).
                let object = handover::object_key(self.kind, &request.config);
                let mut taken_over = self.data.handover().owned_by_object(&object);
                if taken_over.is_empty() {
                    taken_over = self.data.handover().owned_by_predecessor(
                        self.kind,
                        &settings.scope.to_string(),
                        &settings.identity_id,
                    );
                }
                taken_over.extend(first_plan.taken_over);
                private.successor = Some(object);
                private.taken_over = taken_over.clone();
                Held::new(&settings.identity_id, &taken_over)
            } else {
                let held = held_from(&request.prior_state, &prior_private);
                self.record_owned(&request.prior_state, &held);
                // Replaced (`-replace`), this object is planned again right after as a create
                // with this same configuration: it takes over what this one owns with the
                // identity it will have, whatever its scope.
                let mine: BTreeSet<String> = held
                    .iter()
                    .filter(|(_, identity)| identity.eq_ignore_ascii_case(&settings.identity_id))
                    .map(|(machine, _)| machine.clone())
                    .collect();
                self.data
                    .handover()
                    .record_owned_by(&handover::object_key(self.kind, &request.config), &mine);
                private.not_ours = prior_private.not_ours;
                private.pending_release = prior_private.pending_release;
                // Without a refresh (`-refresh=false`) the prior state still lists adopted
                // machines as compliant: they stay ours only if the plan carries them.
                private.adopted = prior_private.adopted;
                private.unique_ids = prior_private.unique_ids;
                private.uncertain = prior_private.uncertain;
                private.lost_streak = prior_private.lost_streak;
                held
            };
            let (inventory, unreadable) = match self
                .inventory(
                    &clients,
                    &settings,
                    previous.as_ref(),
                    &held,
                    PLAN_LISTING_MAX_AGE,
                )
                .await
            {
                Ok(found) => found,
                Err(error) if !private.taken_over.is_empty() => {
                    // A create taking over what the object it replaces left holding the
                    // identity (that object may be destroyed already): failing here would
                    // leave those machines recorded nowhere. Its apply lists again, and
                    // records them even if that fails too.
                    response.diagnostics.warning(
                        "Cannot list the machines in scope",
                        &format!(
                            "{error}\nThe lists are decided at apply, against the machines as they are then."
                        ),
                    );
                    response.planned_state = with_unknown_outcome(&planned);
                    response.planned_private = private.to_bytes();
                    return response;
                }
                Err(error) => {
                    response.diagnostics.error_at(
                        AttributePath::root("scope"),
                        "Cannot list the machines in scope",
                        &error,
                    );
                    return response;
                }
            };
            forget_recreated(&mut held, &inventory);
            let mut transition = ownership::transition(&inventory, &settings, Some(&held));
            keep_unreadable(
                &mut transition.outcome,
                &unreadable,
                &held,
                &settings.identity_id,
                &outcome_from(&request.prior_state),
                &mut response.diagnostics,
            );
            warn_lost(
                &private.lost_streak,
                &transition.writes,
                &mut response.diagnostics,
            );
            // The plan Terraform 1.16+ makes during apply shows again what the first plan
            // showed, whatever changed since: the apply then does what was shown, and records
            // the truth (see `apply`). Older Terraform plans again from the listing.
            let outcome = first_plan.shown.unwrap_or(transition.outcome);
            tracing::debug!(
                creating = request.prior_state.is_null(),
                taken_over = private.taken_over.len(),
                assigned = outcome.assigned_ids.len(),
                compliant = outcome.compliant_ids.len(),
                writes = transition.writes.len(),
                "planned"
            );
            // Terraform plans every object again in the apply process just before applying it:
            // from then on, a destroy running alongside leaves these machines alone.
            self.data
                .handover()
                .claim(&settings.identity_id, outcome.kept());
            private
                .taken_over
                .retain(|id| contains_ignoring_case(&outcome.assigned_ids, id));
            if request.prior_state.is_null() {
                private.keeps = outcome
                    .compliant_ids
                    .iter()
                    .map(|id| (id.to_ascii_lowercase(), settings.identity_id.clone()))
                    .collect();
            }
            response.planned_state = if private.taken_over.is_empty() {
                if request.client_capabilities.store_planned_private {
                    private.shown = Some(outcome.clone());
                }
                with_outcome(&planned, &outcome)
            } else {
                // Terraform plans this create again during apply, in another process, where the
                // object it replaces may already be gone (or, with create_before_destroy, not yet
                // refreshed): the lists then come out differently, so they stay unknown here.
                tracing::info!(
                    machines = private.taken_over.len(),
                    "taking over the machines of the object this one replaces"
                );
                with_unknown_outcome(&planned)
            };
            private.uncertain = uncertain_after_refresh(&private.uncertain, &outcome);
            warn_uncertain(&mut response.diagnostics, &private.uncertain, "");
            response.planned_private = private.to_bytes();
            response
        }
        .await
    }

    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        async move {
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
                return self.destroy(&clients, &request).await;
            }
            let operation = if request.prior_state.is_null() {
                Operation::Create
            } else {
                Operation::Update
            };
            let deadline = timeouts::get(&request.planned_state, operation, TIMEOUTS);
            let halt = Halt::new(self.data.stop_signal(), deadline);
            self.converge(&clients, &request, &halt).await
        }
        .await
    }

    async fn read(&self, request: ReadRequest) -> ReadResponse {
        async move {
            let state = without_incomplete_marker(request.current_state);
            let mut response = ReadResponse {
                new_state: state.clone(),
                private: request.private.clone(),
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
            let private = Private::from_bytes(&request.private);
            let mut held = held_from(&state, &private);
            let (inventory, unreadable) = match self
                .inventory(&clients, &settings, None, &held, PLAN_LISTING_MAX_AGE)
                .await
            {
                Ok(found) => found,
                Err(error) => {
                    response.diagnostics =
                        error_diagnostics("Cannot list the machines in scope", &error);
                    return response;
                }
            };
            forget_recreated(&mut held, &inventory);
            // What we attached and is still there stays ours; anything else is decided afresh,
            // so a machine someone stripped by hand, or a new one, shows up in the next plan,
            // and a machine another writer attached during our apply becomes compliant.
            let mut refreshed = ownership::transition(&inventory, &settings, Some(&held)).outcome;
            let holding: BTreeSet<String> = inventory
                .iter()
                .filter(|m| ownership::identity_block(m).holds(&settings.identity_id))
                .map(|m| m.id.to_ascii_lowercase())
                .collect();
            let lost = ownership::lost_since_last_apply(&held, &inventory, &settings.identity_id);
            let kept_ours: BTreeSet<String> = held
                .iter()
                .filter(|(machine, identity)| {
                    identity.eq_ignore_ascii_case(&settings.identity_id)
                        && holding.contains(*machine)
                })
                .map(|(machine, _)| machine.clone())
                .collect();
            let lost_streak = ownership::lost_streaks(&private.lost_streak, &lost, &kept_ours);
            refreshed.assigned_ids.retain(|id| {
                holding.contains(&id.to_ascii_lowercase())
                    && held.identity_on(id).is_some_and(|identity| {
                        identity.eq_ignore_ascii_case(&settings.identity_id)
                    })
            });
            // A machine of ours that changed on its side (tagged for exclusion, left with a
            // single identity of its owner's, moved out of reach) still holds the identity
            // from us: it stays recorded as ours, and the next plan shows it given back.
            let kept: BTreeSet<String> = refreshed
                .assigned_ids
                .iter()
                .map(|id| id.to_ascii_lowercase())
                .collect();
            for machine in &inventory {
                let ours = held
                    .identity_on(&machine.id)
                    .is_some_and(|identity| identity.eq_ignore_ascii_case(&settings.identity_id));
                let id = machine.id.to_ascii_lowercase();
                if ours && holding.contains(&id) && !kept.contains(&id) {
                    refreshed.skipped.remove(&machine.id);
                    refreshed.compliant_ids.remove(&machine.id);
                    refreshed.noncompliant_ids.remove(&machine.id);
                    refreshed.assigned_ids.insert(machine.id.clone());
                }
            }
            let still_pending: BTreeMap<String, String> = private
                .pending_release
                .into_iter()
                .filter(|(machine, identity)| {
                    inventory
                        .iter()
                        .find(|m| m.id.eq_ignore_ascii_case(machine))
                        .is_none_or(|m| ownership::identity_block(m).holds(identity))
                })
                .collect();
            keep_unreadable(
                &mut refreshed,
                &unreadable,
                &held,
                &settings.identity_id,
                &outcome_from(&state),
                &mut response.diagnostics,
            );
            let new_state = with_outcome(&state, &refreshed);
            self.record_owned(&new_state, &held_from(&new_state, &Private::default()));
            let mut new_private = Private {
                pending_release: still_pending,
                uncertain: uncertain_after_refresh(&private.uncertain, &refreshed),
                lost_streak,
                ..Private::default()
            };
            // Recorded from the listing where the state had none yet (states written before
            // unique IDs were kept): from here on, a machine created again is told apart.
            new_private.unique_ids =
                unique_ids_of(&held_from(&new_state, &new_private), &held, &inventory);
            response.new_state = new_state;
            response.private = new_private.to_bytes();
            response
        }
        .await
    }

    async fn import(&self, request: ImportRequest) -> ImportResponse {
        let mut response = ImportResponse::default();
        let named = match &request.identity {
            // By identity: `import { to = ..., identity = { scope = ..., identity_id = ... } }`.
            Some(given) => match (
                given.get("scope").as_str(),
                given.get("identity_id").as_str(),
            ) {
                (Some(scope), Some(identity_id)) => Some((scope, identity_id)),
                _ => None,
            },
            None => request.id.split_once('|'),
        };
        let Some((scope, identity_id)) = named else {
            let detail = if request.identity.is_some() {
                "Import by identity needs both `scope` and `identity_id`.".to_string()
            } else {
                format!("`{}` is not `{{scope}}|{{identity_id}}`.", request.id)
            };
            response.diagnostics.error("Invalid import ID", &detail);
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
            ("adopt", Value::Null),
            ("timeouts", Value::Null),
        ]);
        let problems = validate_arguments(&skeleton);
        if problems.has_errors() {
            response.diagnostics = problems;
            return response;
        }
        // Nothing is recorded as ours: machines holding the identity now are compliant, and
        // destroy will leave them alone.
        let state = with_outcome(
            &with_id(&schema().block.apply_defaults(&skeleton)),
            &Outcome::default(),
        );
        response.imported.push(ImportedResource {
            identity: identity_of(&state),
            state,
            private: Vec::new(),
        });
        response
    }
}

/// States written before ownership was handed over between objects marked a failed create
/// with this suffix on `id`; it means nothing any more.
fn without_incomplete_marker(state: Value) -> Value {
    match state.get("id").as_str() {
        Some(id) if id.ends_with(LEGACY_INCOMPLETE_SUFFIX) => {
            let id = id.trim_end_matches(LEGACY_INCOMPLETE_SUFFIX).to_string();
            state.with("id", Value::String(id))
        }
        _ => state,
    }
}

impl IdentityAssignment {
    /// This process's turn to change who holds `identity_id`, or `None` when stopped first.
    async fn wait_for_turn(
        &self,
        identity_id: &str,
        halt: &Halt,
    ) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        tokio::select! {
            turn = self.data.handover().writing(identity_id) => Some(turn),
            () = halt.token().cancelled() => None,
        }
    }

    /// What only Azure can tell about the arguments, checked when they are new or changed
    /// (a no-op plan makes no extra reads): the identity exists, the regions do.
    async fn check_against_azure(
        &self,
        clients: &AzureClients,
        request: &PlanRequest,
        settings: &Settings,
    ) -> Diagnostics {
        let changed = |name: &str| request.prior_state.get(name) != request.config.get(name);
        let mut diagnostics = Diagnostics::default();
        if changed("identity_id")
            && !self
                .data
                .handover()
                .is_planned_identity(&settings.identity_id)
        {
            diagnostics.extend(
                arguments::check_identity_exists(clients, "identity_id", &settings.identity_id)
                    .await,
            );
        }
        if changed("locations") {
            let regions = request
                .config
                .get("locations")
                .as_string_list()
                .unwrap_or_default();
            diagnostics.extend(
                arguments::check_regions_exist(
                    clients,
                    settings.scope.subscription_id(),
                    "locations",
                    &regions,
                )
                .await,
            );
        }
        diagnostics
    }

    /// Leaves what an existing object owns for a replacement planned in this process.
    fn record_owned(&self, state: &Value, held: &Held) {
        let (Some(scope), Some(identity_id)) = (
            state.get("scope").as_str(),
            state.get("identity_id").as_str(),
        ) else {
            return;
        };
        let machines: BTreeSet<String> = held
            .iter()
            .filter(|(_, identity)| identity.eq_ignore_ascii_case(identity_id))
            .map(|(machine, _)| machine.clone())
            .collect();
        let scope = Scope::parse(scope)
            .map(|s| s.to_string())
            .unwrap_or_default();
        self.data
            .handover()
            .record_owned(self.kind, &scope, identity_id, &machines);
    }

    async fn converge(
        &self,
        clients: &AzureClients,
        request: &ApplyRequest,
        halt: &Halt,
    ) -> ApplyResponse {
        let planned = &request.planned_state;
        let creating = request.prior_state.is_null();
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
        let planned_private = Private::from_bytes(&request.planned_private);
        let mut held = if creating {
            Held::new(&settings.identity_id, &planned_private.taken_over)
        } else {
            held_from(&request.prior_state, &planned_private)
        };
        let previous = settings_from(&request.prior_state);
        // Our turn with this identity: a destroy of another object of it (the one this replaces,
        // say) finishes its writes first, or waits for ours.
        let Some(turn) = self.wait_for_turn(&settings.identity_id, halt).await else {
            return ApplyResponse {
                // A create keeps what it took over from the object it replaces (whose destroy
                // left those machines holding the identity for it).
                new_state: if creating && planned_private.taken_over.is_empty() {
                    Value::Null
                } else if creating {
                    with_outcome(
                        planned,
                        &Outcome {
                            assigned_ids: planned_private.taken_over.clone(),
                            ..Outcome::default()
                        },
                    )
                } else {
                    request.prior_state.clone()
                },
                private: if creating {
                    Vec::new()
                } else {
                    request.planned_private.clone()
                },
                diagnostics: error_diagnostics("Stopped before any write", &halt.reason()),
                ..ApplyResponse::default()
            };
        };
        self.data
            .handover()
            .claim(&settings.identity_id, outcome_from(planned).kept());
        let (inventory, unreadable) = match self
            .inventory(
                clients,
                &settings,
                previous.as_ref(),
                &held,
                APPLY_LISTING_MAX_AGE,
            )
            .await
        {
            Ok(found) => found,
            Err(error) => {
                // Nothing was written. A create keeps what it took over from the object it
                // replaces (which left those machines alone), so nothing is lost.
                let new_state = if creating {
                    let outcome = Outcome {
                        assigned_ids: planned_private.taken_over.clone(),
                        ..Outcome::default()
                    };
                    with_outcome(planned, &outcome)
                } else {
                    request.prior_state.clone()
                };
                return ApplyResponse {
                    new_state,
                    private: if creating {
                        Vec::new()
                    } else {
                        request.planned_private.clone()
                    },
                    diagnostics: error_diagnostics("Cannot list the machines in scope", &error),
                    ..ApplyResponse::default()
                };
            }
        };
        forget_recreated(&mut held, &inventory);
        // A create that takes over another object's machines left its lists unknown in the
        // plan (see `plan`): it decides them now, against the machines as they are.
        let planned_outcome = if planned.get("assigned_ids").is_unknown() {
            ownership::transition(&inventory, &settings, Some(&held)).outcome
        } else {
            outcome_from(planned)
        };
        let by_id: HashMap<String, &Machine> = inventory
            .iter()
            .map(|m| (m.id.to_ascii_lowercase(), m))
            .collect();
        let listed = |machine_id: &str| by_id.get(&machine_id.to_ascii_lowercase()).copied();
        let holds = |machine_id: &str, identity_id: &str| {
            listed(machine_id).is_some_and(|m| ownership::identity_block(m).holds(identity_id))
        };
        let planned_assigned: BTreeSet<String> = planned_outcome
            .assigned_ids
            .iter()
            .map(|id| id.to_ascii_lowercase())
            .collect();

        // Exactly what the plan showed: planned machines that do not hold our identity from
        // us yet, and our machines that leave (unless another object in this apply wants
        // them to keep the identity).
        let mut jobs: BTreeMap<String, Write> = BTreeMap::new();
        for id in &planned_outcome.assigned_ids {
            if unreadable.contains_key(&id.to_ascii_lowercase()) {
                // Cannot be read: it stays as recorded.
                continue;
            }
            match held.identity_on(id).filter(|identity| holds(id, identity)) {
                Some(identity) if identity.eq_ignore_ascii_case(&settings.identity_id) => {}
                Some(old) => {
                    jobs.insert(
                        id.clone(),
                        Write::Swap {
                            from: old.to_string(),
                        },
                    );
                }
                // `adopt`: holding the identity already, it becomes ours without a write.
                None if settings.adopt && holds(id, &settings.identity_id) => {}
                None => {
                    jobs.insert(id.clone(), Write::Attach);
                }
            }
        }
        // Machines planned compliant that another object of this apply handed over, or that
        // lost the identity since the plan (stripped by a destroy that ran first): ours now.
        let mut adopted = BTreeSet::new();
        for id in &planned_outcome.compliant_ids {
            if self
                .data
                .handover()
                .take_handed_over(&settings.identity_id, id)
            {
                adopted.insert(id.clone());
            } else if listed(id).is_some() && !holds(id, &settings.identity_id) {
                jobs.insert(id.clone(), Write::Attach);
            }
        }
        let mut handed_over = BTreeSet::new();
        for (machine, identity) in held.iter() {
            if planned_assigned.contains(&machine.to_ascii_lowercase()) {
                continue;
            }
            if !holds(machine, identity) {
                continue;
            }
            if self.data.handover().is_claimed(identity, machine) {
                self.data.handover().hand_over(identity, machine);
                handed_over.insert(machine.clone());
                continue;
            }
            jobs.insert(
                machine.clone(),
                Write::Detach {
                    identity_id: identity.clone(),
                },
            );
        }

        tracing::debug!(
            writes = jobs.len(),
            adopted = adopted.len(),
            handed_over = handed_over.len(),
            planned_assigned = planned_outcome.assigned_ids.len(),
            planned_compliant = planned_outcome.compliant_ids.len(),
            "applying"
        );
        let report = self
            .write_batch(clients, &inventory, &jobs, &settings, halt.token())
            .await;
        drop(turn);
        let mut diagnostics = Diagnostics::default();
        let attaching: BTreeMap<String, Write> = jobs
            .iter()
            .filter(|(_, w)| !matches!(w, Write::Detach { .. }))
            .map(|(id, w)| (id.clone(), w.clone()))
            .collect();
        let (attach_report, release_report) = report.split(&attaching);
        report_failures(
            &mut diagnostics,
            "attach the identity to",
            &attach_report,
            &halt.reason(),
        );
        report_failures(
            &mut diagnostics,
            "take the identity back from",
            &release_report,
            &halt.reason(),
        );
        let written: BTreeSet<String> = attach_report
            .succeeded
            .union(&release_report.succeeded)
            .cloned()
            .collect();
        self.settle(clients, &settings, &written, halt.token(), &mut diagnostics)
            .await;

        // The truth, machine by machine.
        let mut outcome = planned_outcome.clone();
        let mut private = Private::default();
        for id in &planned_outcome.assigned_ids {
            let Some(write) = jobs.get(id) else { continue };
            if attach_report.already_done.contains(id)
                && !contains_ignoring_case(&planned_private.taken_over, id)
            {
                // Another writer attached it between plan and apply.
                private.not_ours.insert(id.clone());
            }
            if attach_report.uncertain.contains(id) {
                private.not_ours.insert(id.clone());
            }
            if !attach_report.reached(id) && !attach_report.uncertain.contains(id) {
                outcome.assigned_ids.remove(id);
                if let Write::Swap { from } = write {
                    private.pending_release.insert(id.clone(), from.clone());
                }
            }
        }
        for id in &planned_outcome.compliant_ids {
            if jobs.contains_key(id) && attach_report.reached(id) {
                adopted.insert(id.clone());
            }
        }
        private.adopted = adopted;
        for id in release_report.failed_or_not_started() {
            match job_for(&jobs, id) {
                // Still holds the identity from us: it stays in `assigned_ids`, where the
                // next plan shows it given back (a scope narrowed by Ctrl-C, say).
                Some(Write::Detach { identity_id })
                    if identity_id.eq_ignore_ascii_case(&settings.identity_id) =>
                {
                    let spelled = listed(id).map_or_else(|| id.clone(), |m| m.id.clone());
                    outcome.assigned_ids.insert(spelled);
                }
                Some(Write::Detach { identity_id }) => {
                    private
                        .pending_release
                        .insert(id.clone(), identity_id.clone());
                }
                _ => {}
            }
        }
        if diagnostics.has_errors() {
            // Terraform keeps a failed apply's state as returned, unchecked against the plan:
            // say exactly what holds.
            let not_ours = std::mem::take(&mut private.not_ours);
            outcome
                .assigned_ids
                .retain(|id| !contains_ignoring_case(&not_ours, id));
            outcome.compliant_ids.extend(not_ours);
            let adopted = std::mem::take(&mut private.adopted);
            outcome
                .compliant_ids
                .retain(|id| !contains_ignoring_case(&adopted, id));
            outcome.assigned_ids.extend(adopted);
        }
        // Machines that could not be read stay recorded as they were.
        keep_unreadable(
            &mut outcome,
            &unreadable,
            &held,
            &settings.identity_id,
            &planned_outcome,
            &mut diagnostics,
        );
        for machine in unreadable.keys() {
            if let Some(identity) = held.identity_on(machine) {
                if !identity.eq_ignore_ascii_case(&settings.identity_id) {
                    private
                        .pending_release
                        .insert(machine.clone(), identity.to_string());
                }
            }
        }
        private.uncertain = uncertain_after_apply(
            &planned_private.uncertain,
            &outcome,
            &private.adopted,
            &attach_report.uncertain,
        );
        warn_uncertain(&mut diagnostics, &attach_report.uncertain, "");
        let new_state = with_outcome(planned, &outcome);
        private.unique_ids = unique_ids_of(&held_from(&new_state, &private), &held, &inventory);
        private.lost_streak = planned_private.lost_streak.clone();
        let claimed: Vec<&String> = outcome
            .assigned_ids
            .iter()
            .chain(outcome.compliant_ids.iter())
            .collect();
        self.data.handover().claim(&settings.identity_id, claimed);
        if !handed_over.is_empty() {
            tracing::info!(
                count = handed_over.len(),
                "machines left holding the identity for another object in this apply"
            );
        }
        ApplyResponse {
            new_state,
            private: private.to_bytes(),
            diagnostics,
            ..ApplyResponse::default()
        }
    }

    async fn destroy(&self, clients: &AzureClients, request: &ApplyRequest) -> ApplyResponse {
        let prior = without_incomplete_marker(request.prior_state.clone());
        let Some(settings) = settings_from(&prior) else {
            return ApplyResponse::default();
        };
        // In a replacement, Terraform hands this destroy the new object's planned private
        // state: the machines it takes over keep the identity. Otherwise it is our own.
        let private = Private::from_bytes(&request.planned_private);
        let mut held = held_from(&prior, &private);
        let deadline = timeouts::get(&prior, Operation::Delete, TIMEOUTS);
        let halt = Halt::new(self.data.stop_signal(), deadline);
        let mut turns = Vec::new();
        for identity in held.identities() {
            match self.wait_for_turn(&identity, &halt).await {
                Some(turn) => turns.push(turn),
                None => {
                    return ApplyResponse {
                        new_state: prior,
                        private: request.planned_private.clone(),
                        diagnostics: error_diagnostics("Stopped before any write", &halt.reason()),
                        ..ApplyResponse::default()
                    }
                }
            }
        }
        let (inventory, unreadable) = match self
            .inventory(clients, &settings, None, &held, APPLY_LISTING_MAX_AGE)
            .await
        {
            Ok(found) => found,
            // Destroy needs only the machines it holds, not the scope's listing: when the
            // listing fails (read rights narrowed to resource groups; an estate's subscription
            // that left its scope while it could not be listed, kept until now), each is read
            // by its own ID, as a machine missing from a listing is. One that cannot be read
            // either fails the destroy below, naming it, and stays in state. (Soak seeds
            // 1023, 1025, 1111, 1113: a replacement's destroy failed on the listing alone.)
            Err(error) => {
                tracing::warn!(scope = %settings.scope, %error, "cannot list the machines in scope; reading those holding an identity from us by their ID");
                self.unlisted_held(clients, &[], &held).await
            }
        };
        forget_recreated(&mut held, &inventory);
        let mut jobs = BTreeMap::new();
        // Machines holding an identity from us that cannot be read: not written, kept.
        let mut not_read: BTreeMap<String, String> = BTreeMap::new();
        let mut kept = 0usize;
        for (machine, identity) in held.iter() {
            let taken_over = contains_ignoring_case(&private.taken_over, machine);
            let claimed = self.data.handover().is_claimed(identity, machine)
                || kept_for_successor(&private, machine, identity);
            if claimed {
                self.data.handover().hand_over(identity, machine);
            }
            if taken_over || claimed {
                kept += 1;
                continue;
            }
            if unreadable.contains_key(machine) {
                not_read.insert(machine.clone(), identity.clone());
                continue;
            }
            jobs.insert(
                machine.clone(),
                Write::Detach {
                    identity_id: identity.clone(),
                },
            );
        }
        tracing::debug!(releases = jobs.len(), kept, "destroying");
        let report = self
            .write_batch(clients, &inventory, &jobs, &settings, halt.token())
            .await;
        drop(turns);
        let mut diagnostics = Diagnostics::default();
        warn_uncertain(
            &mut diagnostics,
            &private.uncertain,
            " Destroy left them holding it.",
        );
        report_failures(
            &mut diagnostics,
            "take the identity back from",
            &report,
            &halt.reason(),
        );
        if !not_read.is_empty() {
            diagnostics.error(
                &format!(
                    "Could not take the identity back from {} machine(s)",
                    not_read.len()
                ),
                &format!(
                    "They are missing from the listing and reading them by ID failed; state keeps them. Grant the provider's principal read and write access to them, then destroy again.\n{}",
                    not_read
                        .keys()
                        .take(50)
                        .map(|machine| format!("- {machine}: {}", unreadable[machine]))
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            );
        }
        self.settle(
            clients,
            &settings,
            &report.succeeded,
            halt.token(),
            &mut diagnostics,
        )
        .await;
        // Machines left holding an identity from us for the object replacing this one.
        let handed: Vec<(String, String)> = held
            .iter()
            .filter(|(machine, identity)| {
                contains_ignoring_case(&private.taken_over, machine)
                    || kept_for_successor(&private, machine, identity)
            })
            .map(|(machine, identity)| (machine.clone(), identity.clone()))
            .collect();
        if !handed.is_empty() && halt.is_halted() && !diagnostics.has_errors() {
            // Stopped (Ctrl-C, the deadline): Terraform does not start the create, which
            // would record them. They stay ours until it does.
            diagnostics.error(
                &format!(
                    "Stopped before the replacement took over {} machine(s)",
                    handed.len()
                ),
                &format!(
                    "{} They keep the identity and stay recorded in this object; apply again to finish the replacement.",
                    halt.reason()
                ),
            );
        }
        if kept > 0 && !diagnostics.has_errors() {
            tracing::info!(
                kept,
                "machines handed over to the object replacing this one"
            );
            // The replacement is planned again in this process before it is applied: it
            // finds here what it takes over, under its own key (whatever its scope).
            match &private.successor {
                Some(successor) => self
                    .data
                    .handover()
                    .record_owned_by(successor, &private.taken_over),
                None => self.data.handover().record_owned(
                    self.kind,
                    &settings.scope.to_string(),
                    &settings.identity_id,
                    &private.taken_over,
                ),
            }
        }
        if !diagnostics.has_errors() {
            return ApplyResponse {
                new_state: Value::Null,
                diagnostics,
                ..ApplyResponse::default()
            };
        }
        // Terraform creates no replacement after a failed destroy: what this destroy meant to
        // hand over is still ours.
        if let Some(successor) = &private.successor {
            self.data
                .handover()
                .record_owned_by(successor, &BTreeSet::new());
        }
        // Keep in state exactly the machines that still hold an identity from us.
        let mut outcome = outcome_from(&prior);
        let mut remaining = Private {
            uncertain: private.uncertain.clone(),
            ..Private::default()
        };
        outcome.assigned_ids.clear();
        for (machine, identity) in &handed {
            if identity.eq_ignore_ascii_case(&settings.identity_id) {
                let spelled = listed_spelling(&inventory, machine);
                outcome.assigned_ids.insert(spelled);
            } else {
                remaining
                    .pending_release
                    .insert(machine.clone(), identity.clone());
            }
        }
        for id in report.failed_or_not_started() {
            match job_for(&jobs, id) {
                Some(Write::Detach { identity_id })
                    if identity_id.eq_ignore_ascii_case(&settings.identity_id) =>
                {
                    outcome.assigned_ids.insert(id.clone());
                }
                Some(Write::Detach { identity_id }) => {
                    remaining
                        .pending_release
                        .insert(id.clone(), identity_id.clone());
                }
                _ => {}
            }
        }
        let before = outcome_from(&prior);
        for (machine, identity) in &not_read {
            if identity.eq_ignore_ascii_case(&settings.identity_id) {
                let spelled = before
                    .assigned_ids
                    .iter()
                    .find(|id| id.eq_ignore_ascii_case(machine))
                    .cloned()
                    .unwrap_or_else(|| machine.clone());
                outcome.assigned_ids.insert(spelled);
            } else {
                remaining
                    .pending_release
                    .insert(machine.clone(), identity.clone());
            }
        }
        let new_state = with_outcome(&prior, &outcome);
        remaining.unique_ids = unique_ids_of(&held_from(&new_state, &remaining), &held, &inventory);
        ApplyResponse {
            new_state,
            private: remaining.to_bytes(),
            diagnostics,
            ..ApplyResponse::default()
        }
    }
}

impl BatchReport {
    /// This report split into the attaches and swaps (`attaching`) and the releases.
    fn split(self, attaching: &BTreeMap<String, Write>) -> (BatchReport, BatchReport) {
        let mut attach = BatchReport::default();
        let mut release = BatchReport::default();
        let side = |id: &String| {
            if attaching.contains_key(id) {
                0
            } else {
                1
            }
        };
        for id in self.succeeded {
            [&mut attach, &mut release][side(&id)].succeeded.insert(id);
        }
        for id in self.already_done {
            [&mut attach, &mut release][side(&id)]
                .already_done
                .insert(id);
        }
        for (id, reason) in self.failed {
            [&mut attach, &mut release][side(&id)]
                .failed
                .insert(id, reason);
        }
        for id in self.not_started {
            [&mut attach, &mut release][side(&id)]
                .not_started
                .insert(id);
        }
        for id in self.uncertain {
            [&mut attach, &mut release][side(&id)].uncertain.insert(id);
        }
        (attach, release)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_arguments_plan_their_defaults() {
        // Terraform proposes the prior `audit` when the argument is removed from config.
        let prior = schema().block.apply_defaults(&Value::object([
            (
                "scope",
                Value::from("/subscriptions/00000000-0000-0000-0000-000000000001"),
            ),
            ("identity_id", Value::from("/i")),
            ("mode", Value::from("audit")),
            ("skip_single_user_assigned", Value::Bool(false)),
            ("resource_types", Value::string_set(["virtualMachines"])),
        ]));
        let config = prior
            .with("mode", Value::Null)
            .with("skip_single_user_assigned", Value::Null)
            .with("resource_types", Value::Null);
        let planned = tfplugin::planning::plan_proposed(&schema().block, &config, &prior, &prior);
        assert_eq!(planned.get("mode").as_str(), Some("enforce"));
        assert_eq!(
            planned.get("skip_single_user_assigned").as_bool(),
            Some(true)
        );
        assert_eq!(planned.get("resource_types"), &default_resource_types());
        let settings = settings_from(&with_id(&planned)).unwrap();
        assert_eq!(settings.mode, Mode::Enforce);
        assert_eq!(settings.kinds.len(), 2);
    }

    #[test]
    fn ownership_reads_assigned_less_not_ours_plus_pending_releases() {
        let state = Value::object([
            ("identity_id", Value::from("/new")),
            (
                "assigned_ids",
                Value::List(vec![Value::from("/vm/a"), Value::from("/vm/b")]),
            ),
        ]);
        let private = Private {
            not_ours: BTreeSet::from(["/VM/B".to_string()]),
            pending_release: BTreeMap::from([("/vm/c".to_string(), "/old".to_string())]),
            ..Private::default()
        };
        let held = held_from(&state, &Private::from_bytes(&private.to_bytes()));
        assert_eq!(held.identity_on("/vm/a"), Some("/new"));
        assert_eq!(held.identity_on("/vm/b"), None);
        assert_eq!(held.identity_on("/vm/c"), Some("/old"));
        assert!(Private::default().to_bytes().is_empty());
    }

    #[test]
    fn a_failed_replacement_keeps_what_it_meant_to_hand_over_and_nothing_else() {
        let state = Value::object([
            ("identity_id", Value::from("/new")),
            ("scope", Value::from("/subscriptions/s")),
            (
                "assigned_ids",
                Value::List(vec![
                    Value::from("/VM/a"),
                    Value::from("/vm/b"),
                    Value::from("/vm/c"),
                ]),
            ),
        ]);
        // The create took `a` over by object and plans `b` compliant: both stay ours.
        let successor = Private {
            taken_over: BTreeSet::from(["/vm/a".to_string()]),
            keeps: BTreeMap::from([("/vm/b".to_string(), "/NEW".to_string())]),
            ..Private::default()
        };
        assert!(kept_for_successor(&successor, "/VM/B", "/new"));
        assert!(!kept_for_successor(&successor, "/vm/b", "/other"));
        assert!(!kept_for_successor(&successor, "/vm/c", "/new"));
        let (kept, _) = handed_over_state(&state, &successor.to_bytes()).expect("kept");
        assert_eq!(
            outcome_from(&kept).assigned_ids,
            BTreeSet::from(["/VM/a".to_string(), "/vm/b".to_string()])
        );
        let unrelated = Private {
            keeps: BTreeMap::from([("/vm/z".to_string(), "/new".to_string())]),
            ..Private::default()
        };
        assert!(handed_over_state(&state, &unrelated.to_bytes()).is_none());
        assert!(handed_over_state(&state, &[]).is_none());
    }

    #[test]
    fn ownership_carries_the_recorded_unique_ids_and_the_adopted_machines() {
        let state = Value::object([
            ("identity_id", Value::from("/new")),
            ("assigned_ids", Value::List(vec![Value::from("/VM/A")])),
            ("compliant_ids", Value::List(vec![Value::from("/vm/b")])),
        ]);
        let private = Private {
            adopted: BTreeSet::from(["/vm/b".to_string()]),
            unique_ids: BTreeMap::from([("/vm/a".to_string(), "vmid-a".to_string())]),
            ..Private::default()
        };
        let held = held_from(&state, &Private::from_bytes(&private.to_bytes()));
        assert_eq!(held.identity_on("/vm/b"), Some("/new"), "adopted is ours");
        assert_eq!(held.unique_id_of("/vm/a"), Some("vmid-a"));
        // Listed with another unique ID: recreated, forgotten; the listing's IDs are kept
        // for the machines still ours, the old record for one missing from the listing.
        let listed = |id: &str, unique_id: &str| Machine {
            id: id.into(),
            kind: MachineKind::VirtualMachine,
            location: "eastus".into(),
            tags: BTreeMap::new(),
            provisioning_state: None,
            identity_type: Some("UserAssigned".into()),
            user_assigned_identity_ids: vec!["/new".into()],
            etag: None,
            unique_id: Some(unique_id.into()),
        };
        let mut now = held.clone();
        forget_recreated(&mut now, &[listed("/VM/A", "vmid-a-again")]);
        assert_eq!(now.identity_on("/vm/a"), None);
        let unique_ids = unique_ids_of(&held, &held, &[listed("/vm/B", "vmid-b")]);
        assert_eq!(
            unique_ids,
            BTreeMap::from([
                ("/vm/a".to_string(), "vmid-a".to_string()),
                ("/vm/b".to_string(), "vmid-b".to_string()),
            ])
        );
    }

    #[test]
    fn a_release_is_found_whatever_the_casing_the_batch_reports() {
        let jobs = BTreeMap::from([(
            "/vm/a".to_string(),
            Write::Detach {
                identity_id: "/i".into(),
            },
        )]);
        assert!(job_for(&jobs, "/VM/A").is_some());
        assert!(job_for(&jobs, "/vm/b").is_none());
    }

    #[test]
    fn legacy_incomplete_marker_is_dropped() {
        let state = Value::object([("id", Value::from("/subscriptions/s|/i|incomplete"))]);
        assert_eq!(
            without_incomplete_marker(state).get("id").as_str(),
            Some("/subscriptions/s|/i")
        );
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
