//! `mig_estate_assignment`: the built-in policy's own unit. One object covers a management
//! group, a subscription, a resource group, or every subscription the principal can see, and
//! gives each machine the identity of its own subscription and region.
//!
//! The estate is cut into *slices*, one per subscription and region that holds machines
//! (`{subscription_id}/{region}`). Each slice is exactly one `mig_identity_assignment` over
//! that subscription (or resource group) and region, planned, applied, refreshed and destroyed
//! by that resource's code: ownership, hand-over, private state, timeouts and Ctrl-C behave as
//! they do there. What this resource adds is that every slice runs at once inside one
//! Terraform operation, so every subscription's ARM write bucket is busy from the first second
//! whatever `-parallelism` is (ARM paces per subscription; the client paces to it).
//!
//! Slices come and go with the machines: a region that gains its first machine gets a
//! slice in the next plan; a slice that leaves (its subscription left the scope, its region
//! left `locations`, or `identity_ids` no longer names it) is destroyed, which gives back
//! exactly what it attached.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use tfplugin::typed::Maybe;
use tfplugin::{
    Attribute, AttributePath, Block, Diagnostics, IdentitySchema, PathStep, Schema, Type,
    Validator, Value,
};
use tracing::Instrument;

use crate::arguments;
use crate::azure::arm::ArmError;
use crate::azure::compute::MachineKind;
use crate::azure::ids::{self, Scope, SubscriptionId};
use crate::azure::management_groups::{self, SubscriptionInfo};
use crate::azure::AzureClients;
use crate::engine::record::Record;
use crate::engine::slice::{self, region_of_key, subscription_of_key, Slice};
use crate::provider_data::ProviderData;
use crate::resources::identity;
use crate::resources::identity_assignment::{self as assignment, IdentityAssignment, Written};
use crate::timeouts::{self, Halt, Operation, Timeouts};

mod discovery;
mod model;
mod resource;
mod slices;
#[cfg(test)]
mod tests;

use discovery::*;
use model::{fresh_slice, slice_of};
pub use model::{Model, SliceState};
use slices::*;

pub const TYPE_NAME: &str = "mig_estate_assignment";

/// What `id` says when no scope is given.
const EVERY_VISIBLE_SUBSCRIPTION: &str = "/subscriptions";

/// How old a listing of a subscription's machines may be when the plan looks for regions:
/// the refresh that ran just before in the same process shares it.
const DISCOVERY_MAX_AGE: Duration = Duration::from_secs(60);

pub struct EstateAssignment {
    data: Arc<ProviderData>,
    /// Every slice is one object of this resource.
    slices: Arc<IdentityAssignment>,
}

impl EstateAssignment {
    pub fn new(data: Arc<ProviderData>) -> Self {
        EstateAssignment {
            slices: Arc::new(IdentityAssignment::estate_slices(data.clone())),
            data,
        }
    }
}

/// Runs each slice's operation as a task of its own and returns the results in order.
/// Polled together inside the operation's one task, an estate's slices did all their work
/// (listings decoded, writes built, answers read) on one thread while the others idled: at
/// 100,000 machines the first writes of the last subscriptions waited most of a second.
/// The tasks keep the operation's log span; dropping the operation aborts them.
async fn each_on_its_own_task<T, F>(operations: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    let mut results = Vec::new();
    for (index, operation) in operations.into_iter().enumerate() {
        tasks.spawn(async move { (index, operation.await) }.in_current_span());
        results.push(None);
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            // As if the slice had run in this task: its panic is this operation's.
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Only an abort cancels a task, and only dropping `tasks` aborts them.
            Err(error) => unreachable!("slice task cancelled: {error}"),
        }
    }
    results.into_iter().flatten().collect()
}

// ---------------------------------------------------------------------------------------------
// Resource identity (Terraform 1.12+)
// ---------------------------------------------------------------------------------------------

/// The identity is the scope the object was created (or imported) with; `scope` changes in
/// place, and an object keeps the identity it started with (see `crate::resources::identity`).
pub fn identity_schema() -> IdentitySchema {
    IdentitySchema {
        version: 0,
        attributes: vec![identity::attribute(
            "scope",
            true,
            "The management group, subscription or resource group ID the object was created (or imported) with, or `/subscriptions` for every subscription the principal can see.",
        )],
    }
}

fn identity_of(state: &Model) -> Option<Value> {
    let scope = state.estate_id().into_known()?;
    identity::known(Value::object([("scope", Value::string(scope))]))
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

fn check_estate_scope(text: &str) -> Result<(), String> {
    if text.to_ascii_lowercase().starts_with("/providers/") {
        if !text
            .to_ascii_lowercase()
            .starts_with("/providers/microsoft.management/managementgroups/")
        {
            return Err(format!(
                "`{text}` is not a management group ID (/providers/Microsoft.Management/managementGroups/{{name}})."
            ));
        }
        return arguments::check_management_group_id(text);
    }
    arguments::check_scope(text).map_err(|reason| {
        format!("{reason} A management group ID (/providers/Microsoft.Management/managementGroups/{{name}}) is accepted too, or leave `scope` out for every subscription the principal can see.")
    })
}

/// An `identity_ids` key: `{region}` (every subscription) or `{subscription_id}/{region}`.
fn check_identity_key(key: &str) -> Result<(), String> {
    let (subscription, region) = match key.split_once('/') {
        Some((subscription, region)) => (Some(subscription), region),
        None => (None, key),
    };
    if let Some(subscription) = subscription {
        arguments::check_subscription_id(subscription)
            .map_err(|reason| format!("key `{key}`: {reason}"))?;
    }
    arguments::check_region(region).map_err(|reason| {
        format!("key `{key}`: {reason} Keys are `{{region}}` or `{{subscription_id}}/{{region}}`.")
    })
}

fn slice_type() -> Type {
    Type::Object(BTreeMap::from([
        ("identity_id".to_string(), Type::String),
        ("scope".to_string(), Type::String),
        (
            "assigned_ids".to_string(),
            assignment::sorted_list_of_strings(),
        ),
        (
            "compliant_ids".to_string(),
            assignment::sorted_list_of_strings(),
        ),
        ("skipped".to_string(), Type::Map(Box::new(Type::String))),
        (
            "noncompliant_ids".to_string(),
            assignment::sorted_list_of_strings(),
        ),
    ]))
}

fn schema() -> Schema {
    let mut attributes = vec![
        Attribute::optional("scope", Type::String)
            .description(
                "What the estate covers: a management group (`/providers/Microsoft.Management/managementGroups/{name}`, every subscription anywhere below it), a subscription (`/subscriptions/{id}`) or a resource group. Left out: every subscription the principal can see. A subscription that cannot be planned (`Disabled` or `Deleted`, its machines unreadable, or missing from `GET /subscriptions`) keeps its buckets exactly as recorded and is not written, with a warning. Changing it converges in place: buckets that leave (the configuration leaves their subscription out, or the management group API shows it left the group) give back what they attached.",
            )
            .validator(Validator::string("Invalid scope", check_estate_scope)),
        Attribute::optional("identity_ids", Type::Map(Box::new(Type::String)))
            .description(
                "The identity of each region: keys are `{region}` (every subscription) or `{subscription_id}/{region}` (that one; it wins), values are user-assigned identity IDs. Machines of a subscription and region with no entry are left alone (the plan warns). Left out: the policy's own naming, `Built-In-Identity-{region}` in the machine's subscription's `Built-In-Identity-RG`, which must exist (see `mig_builtin_identity`).",
            )
            .validator(arguments::identity_id()),
    ];
    attributes.extend(assignment::selection_arguments());
    attributes.push(
        Attribute::computed("id", Type::String)
            .description("The `scope`, or `/subscriptions` when it is left out."),
    );
    attributes.push(
        Attribute::computed("buckets", Type::Map(Box::new(slice_type()))).description(
            "One entry per subscription and region holding machines, keyed `{subscription_id}/{region}`: the `identity_id` given to its machines, the `scope` it covers, and, as in `mig_identity_assignment`, `assigned_ids` (attached by this resource; only these lose it on destroy), `compliant_ids` (held it from someone else), `skipped` (machine to reason) and `noncompliant_ids` (audit mode).",
        ),
    );
    Schema::new(
        0,
        Block {
            attributes,
            block_types: vec![timeouts::block(assignment::TIMEOUTS)],
            description: "Gives every VM and scale set of an estate (a management group, a subscription, a resource group, or every subscription in view) the identity of its own subscription and region, by the rules of Azure's built-in policy \"Assign Built-In User-Assigned Managed Identity to Virtual Machines\", in one resource: the unit the policy is assigned at. Every subscription's buckets are written at once, at the speed ARM's throttling allows, whatever Terraform's `-parallelism`.".into(),
            ..Block::default()
        },
    )
}

/// What the declared validators cannot see alone: `identity_ids` keys, and the checks
/// shared with `mig_identity_assignment`.
fn validate_arguments(config: &Model) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    for key in config
        .identity_ids
        .known()
        .into_iter()
        .flat_map(|m| m.keys())
    {
        if let Err(reason) = check_identity_key(key) {
            diagnostics.error_at(
                AttributePath::root("identity_ids").key_string(key.clone()),
                "Invalid identity_ids key",
                &reason,
            );
        }
    }
    diagnostics.extend(config.selection().check());
    diagnostics
}
