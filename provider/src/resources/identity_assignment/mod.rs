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

mod model;
mod one;
mod resource;
mod store;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tfplugin::typed::Maybe;
use tfplugin::{model as values, Attribute, Block, IdentitySchema, Schema, Type, Validator, Value};
use tokio_util::sync::CancellationToken;

use crate::arguments;
use crate::azure::compute::MachineKind;
use crate::azure::ids::Scope;
use crate::azure::AzureClients;
use crate::engine::notes::Notes;
use crate::engine::write;
use crate::provider_data::ProviderData;
use crate::resources::identity;
use crate::timeouts;

pub(crate) use crate::engine::write::{settle_later, Written};
pub use model::Model;
pub(crate) use model::{known_strings, selection_of, Selection, StringMap, Strings};
pub(crate) use one::plan_destroy;
pub(crate) use resource::handed_over;

pub const TYPE_NAME: &str = "mig_identity_assignment";

pub(crate) const TIMEOUTS: timeouts::Defaults = timeouts::Defaults {
    create: Duration::from_secs(60 * 60),
    read: Duration::from_secs(5 * 60),
    update: Duration::from_secs(60 * 60),
    delete: Duration::from_secs(60 * 60),
};

/// Suffix that earlier releases put on the `id` of a failed create.
const LEGACY_INCOMPLETE_SUFFIX: &str = "|incomplete";

const RESOURCE_TYPE_VMS: &str = "virtualMachines";
const RESOURCE_TYPE_SCALE_SETS: &str = "virtualMachineScaleSets";

pub struct IdentityAssignment {
    data: Arc<ProviderData>,
    /// What its objects are, for the keys of their hand-over records (`crate::handover`):
    /// `mig_identity_assignment`, or an estate's slice.
    kind: &'static str,
}

impl IdentityAssignment {
    pub fn new(data: Arc<ProviderData>) -> Self {
        IdentityAssignment {
            data,
            kind: "mig_identity_assignment",
        }
    }

    /// The slices of `mig_estate_assignment`: their hand-over records are their own.
    pub fn estate_slices(data: Arc<ProviderData>) -> Self {
        IdentityAssignment {
            data,
            kind: "mig_estate_assignment slice",
        }
    }
}

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
    let mut arguments = target_arguments();
    arguments.extend(selection_arguments());
    arguments
}

/// `identity_id` and `scope`: what an estate decides for each of its slices.
fn target_arguments() -> Vec<Attribute> {
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
    ]
}

/// The arguments that choose and treat machines ([`Selection`]), which an estate shares
/// with each of its slices.
pub(crate) fn selection_arguments() -> Vec<Attribute> {
    vec![
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

pub(crate) fn state_type() -> &'static Type {
    static TYPE: std::sync::OnceLock<Type> = std::sync::OnceLock::new();
    TYPE.get_or_init(|| schema().value_type())
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
    let skeleton = Model {
        identity_id: Maybe::Known(identity_id.to_string()),
        scope: Maybe::Known(scope.to_string()),
        locations: Maybe::Known(vec![Maybe::Known(location.to_string())]),
        exclude_tags: Maybe::Known(BTreeMap::from([(
            tag.to_string(),
            Maybe::Known(value.to_string()),
        )])),
        ..Model::default()
    };
    values::encode(&fresh(skeleton), state_type())
}

/// A new object of `arguments` as a refresh starts from: defaults filled in, its `id`, and
/// nothing recorded as ours (as after an import).
fn fresh(arguments: Model) -> Model {
    let defaulted = schema()
        .block
        .apply_defaults(&values::encode(&arguments, state_type()));
    values::decode::<Model>(&defaulted)
        .unwrap_or(arguments)
        .with_id()
        .with_outcome(Default::default())
}

/// The identity of a new object, from its `scope` and `identity_id` (`None` while unknown).
fn identity_of(state: &Model) -> Option<Value> {
    identity::known(identity_value(
        state.scope.as_str()?,
        state.identity_id.as_str()?,
    ))
}

/// Waits until ARM reports `written` settled, unless `halt` fires first; a warning when it
/// cannot tell.
pub(crate) async fn settle_written(
    clients: &AzureClients,
    scope: &Scope,
    kinds: &[MachineKind],
    written: &BTreeSet<String>,
    halt: &CancellationToken,
    diagnostics: &mut tfplugin::Diagnostics,
) {
    let mut notes = Notes::default();
    write::settle_written(&clients.compute, scope, kinds, written, halt, &mut notes).await;
    diagnostics.extend(store::diagnostics(notes));
}
