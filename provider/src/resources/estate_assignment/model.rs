//! The typed model of `mig_estate_assignment` (each attribute named once), its slices, and
//! each slice as the `mig_identity_assignment` object it is.

use serde::{Deserialize, Serialize};
use tfplugin::typed::Maybe;

use super::*;
use crate::resources::identity_assignment::{self as assignment, Selection, StringMap, Strings};
use crate::timeouts::Timeouts;

/// The resource's configuration, plan or state. Sets are lists here, in the order Terraform
/// holds them. Defaults are declared on the schema (shared with `mig_identity_assignment`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Model {
    // Arguments
    pub scope: Maybe<String>,
    pub identity_ids: StringMap,
    pub locations: Strings,
    pub resource_types: Strings,
    pub skip_single_user_assigned: Maybe<bool>,
    pub exclude_ids: Strings,
    pub exclude_tags: StringMap,
    pub mode: Maybe<String>,
    pub adopt: Maybe<String>,
    pub timeouts: Maybe<Timeouts>,
    // Attributes
    pub id: Maybe<String>,
    /// The slices, by key `{subscription_id}/{region}` (the attribute keeps its first name).
    pub buckets: Maybe<BTreeMap<String, SliceState>>,
}

/// One slice in the estate's state or plan: its identity and scope, and its lists as
/// `mig_identity_assignment` names them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SliceState {
    pub identity_id: Maybe<String>,
    pub scope: Maybe<String>,
    pub assigned_ids: Maybe<BTreeSet<String>>,
    pub compliant_ids: Maybe<BTreeSet<String>>,
    pub skipped: Maybe<BTreeMap<String, String>>,
    pub noncompliant_ids: Maybe<BTreeSet<String>>,
}

impl Model {
    /// The arguments each slice takes as they are.
    pub(super) fn selection(&self) -> Selection {
        assignment::selection_of!(self)
    }

    /// A slice's `mig_identity_assignment` arguments: the estate's shared ones, its scope,
    /// its region and its identity.
    pub(super) fn slice_arguments(
        &self,
        scope: &str,
        region: &str,
        identity_id: Maybe<String>,
    ) -> assignment::Model {
        let selection = Selection {
            locations: Maybe::Known(vec![Maybe::Known(region.to_string())]),
            ..self.selection()
        };
        assignment::Model::arguments(
            identity_id,
            Maybe::Known(scope.to_string()),
            selection,
            self.timeouts.clone(),
        )
    }

    /// A slice of the estate's state (or plan) as the `mig_identity_assignment` object it
    /// is. The slice's machine lists move into the object: an estate's lists hold up to every
    /// machine it covers (100,000 and more), and each copy costs as much memory as the state
    /// file.
    pub(super) fn slice_object(&self, key: &str, slice: SliceState) -> assignment::Model {
        let scope = slice.scope.as_str().unwrap_or_default().to_string();
        let id = match slice.identity_id.as_str() {
            Some(identity) => Maybe::Known(assignment::resource_id(&scope, identity)),
            None => Maybe::Unknown,
        };
        assignment::Model {
            id,
            assigned_ids: slice.assigned_ids,
            compliant_ids: slice.compliant_ids,
            skipped: slice.skipped,
            noncompliant_ids: slice.noncompliant_ids,
            ..self.slice_arguments(&scope, region_of_key(key), slice.identity_id)
        }
    }

    /// Moves the slices out of the estate's state (or plan), which keeps its arguments.
    pub(super) fn take_slices(&mut self) -> BTreeMap<String, SliceState> {
        std::mem::take(&mut self.buckets)
            .into_known()
            .unwrap_or_default()
    }

    /// `id`: the `scope`, or `/subscriptions` when it is left out.
    pub(super) fn estate_id(&self) -> Maybe<String> {
        match &self.scope {
            Maybe::Known(scope) => Maybe::Known(arguments::trim_arm_id(scope).to_string()),
            Maybe::Null => Maybe::Known(EVERY_VISIBLE_SUBSCRIPTION.to_string()),
            Maybe::Unknown => Maybe::Unknown,
        }
    }
}

/// The estate's view of a `mig_identity_assignment` object (its lists move, as above).
pub(super) fn slice_of(object: assignment::Model) -> SliceState {
    SliceState {
        identity_id: object.identity_id,
        scope: object.scope,
        assigned_ids: object.assigned_ids,
        compliant_ids: object.compliant_ids,
        skipped: object.skipped,
        noncompliant_ids: object.noncompliant_ids,
    }
}

/// A slice the machines call for that the state lacks: nothing recorded as ours.
pub(super) fn fresh_slice(wanted: &Slice) -> SliceState {
    SliceState {
        identity_id: Maybe::Known(wanted.identity_id.clone()),
        scope: Maybe::Known(wanted.scope.to_string()),
        assigned_ids: Maybe::Known(BTreeSet::new()),
        compliant_ids: Maybe::Known(BTreeSet::new()),
        skipped: Maybe::Known(BTreeMap::new()),
        noncompliant_ids: Maybe::Known(BTreeSet::new()),
    }
}
