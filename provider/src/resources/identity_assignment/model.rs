//! The typed model of `mig_identity_assignment` (each attribute named once) and what the
//! engine reads of it: the arguments as [`Settings`], an existing object as [`Recorded`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tfplugin::typed::Maybe;
use tfplugin::Diagnostics;

use super::{
    resource_id, DEFAULT_MODE, DEFAULT_SKIP_SINGLE_USER_ASSIGNED, LEGACY_INCOMPLETE_SUFFIX,
};
use crate::arguments;
use crate::azure::compute::MachineKind;
use crate::azure::ids::{self, Scope};
use crate::engine::assignment::Recorded;
use crate::ownership::{Mode, Outcome, Settings};
use crate::policy::Rules;
use crate::timeouts::Timeouts;

/// A set or list of strings whose elements may be unknown in a plan.
pub(crate) type Strings = Maybe<Vec<Maybe<String>>>;
/// A map of strings whose values may be unknown in a plan.
pub(crate) type StringMap = Maybe<BTreeMap<String, Maybe<String>>>;

/// The resource's configuration, plan or state. Sets are lists here, in the order Terraform
/// holds them; the computed machine lists are sorted. Defaults are declared on the schema
/// (`super::arguments`) and filled in by the server before the resource sees a plan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Model {
    // Arguments
    pub identity_id: Maybe<String>,
    pub scope: Maybe<String>,
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
    pub assigned_ids: Maybe<BTreeSet<String>>,
    pub compliant_ids: Maybe<BTreeSet<String>>,
    pub skipped: Maybe<BTreeMap<String, String>>,
    pub noncompliant_ids: Maybe<BTreeSet<String>>,
}

/// The arguments that choose and treat machines, which `mig_estate_assignment` takes as
/// they are for each of its slices: a view of either resource's model.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Selection {
    pub locations: Strings,
    pub resource_types: Strings,
    pub skip_single_user_assigned: Maybe<bool>,
    pub exclude_ids: Strings,
    pub exclude_tags: StringMap,
    pub mode: Maybe<String>,
    pub adopt: Maybe<String>,
}

/// The [`Selection`] of a model that names its arguments as this resource does (this
/// resource's model and `mig_estate_assignment`'s).
macro_rules! selection_of {
    ($model:expr) => {
        $crate::resources::identity_assignment::Selection {
            locations: $model.locations.clone(),
            resource_types: $model.resource_types.clone(),
            skip_single_user_assigned: $model.skip_single_user_assigned,
            exclude_ids: $model.exclude_ids.clone(),
            exclude_tags: $model.exclude_tags.clone(),
            mode: $model.mode.clone(),
            adopt: $model.adopt.clone(),
        }
    };
}
pub(crate) use selection_of;

/// A list of strings: `Some(None)` when null, `Some(Some(..))` when known, `None` while
/// unknown (in part).
pub(crate) fn known_strings(list: &Strings) -> Option<Option<Vec<String>>> {
    match list {
        Maybe::Null => Some(None),
        Maybe::Unknown => None,
        Maybe::Known(items) => items
            .iter()
            .map(|item| item.known().cloned())
            .collect::<Option<Vec<_>>>()
            .map(Some),
    }
}

fn known_map(map: &StringMap) -> Option<Option<BTreeMap<String, String>>> {
    match map {
        Maybe::Null => Some(None),
        Maybe::Unknown => None,
        Maybe::Known(entries) => entries
            .iter()
            .map(|(k, v)| Some((k.clone(), v.known()?.clone())))
            .collect::<Option<BTreeMap<_, _>>>()
            .map(Some),
    }
}

fn known<T: Clone>(value: &Maybe<T>) -> Option<Option<T>> {
    match value {
        Maybe::Null => Some(None),
        Maybe::Unknown => None,
        Maybe::Known(value) => Some(Some(value.clone())),
    }
}

impl Selection {
    /// The settings of an object over `scope` with `identity_id`, or `None` while an
    /// argument is unknown. A null argument means its default (a state written before the
    /// default was declared).
    pub(crate) fn settings(&self, scope: &str, identity_id: &str) -> Option<Settings> {
        let locations = known_strings(&self.locations)?;
        let resource_types = known_strings(&self.resource_types)?;
        let exclude_ids = known_strings(&self.exclude_ids)?;
        let exclude_tags = known_map(&self.exclude_tags)?;
        let skip_single_user_assigned = known(&self.skip_single_user_assigned)?;
        let mode = known(&self.mode)?;
        let adopt = known(&self.adopt)?;
        Some(Settings {
            scope: Scope::parse(arguments::trim_arm_id(scope)).ok()?,
            identity_id: arguments::trim_arm_id(identity_id).to_string(),
            locations: locations.map(|list| {
                list.iter()
                    .filter_map(|l| ids::normalize_location(l).ok())
                    .collect()
            }),
            kinds: match resource_types {
                Some(list) => list
                    .iter()
                    .filter_map(|k| arguments::parse_machine_kind(k))
                    .collect(),
                None => vec![MachineKind::VirtualMachine, MachineKind::ScaleSet],
            },
            rules: Rules {
                skip_single_user_assigned: skip_single_user_assigned
                    .unwrap_or(DEFAULT_SKIP_SINGLE_USER_ASSIGNED),
                exclude_ids: exclude_ids
                    .unwrap_or_default()
                    .iter()
                    .map(|id| arguments::normalize_arm_id(id))
                    .collect(),
                exclude_tags: exclude_tags.unwrap_or_default(),
            },
            mode: match mode.as_deref().unwrap_or(DEFAULT_MODE) {
                "audit" => Mode::Audit,
                _ => Mode::Enforce,
            },
            adopt: adopt.as_deref() == Some("compliant"),
        })
    }

    /// The checks the declared validators cannot make alone: empty filters, tag names.
    /// `mig_estate_assignment` shares them.
    pub(crate) fn check(&self) -> Diagnostics {
        let mut diagnostics = arguments::check_listed(
            self.locations.known().map(Vec::as_slice),
            "locations",
            "No regions",
            "An empty list matches no machine. Name at least one region, or leave `locations` out for every region.",
        );
        diagnostics.extend(arguments::check_resource_types_listed(
            self.resource_types.known().map(Vec::as_slice),
        ));
        let tags = self.exclude_tags.known().into_iter().flat_map(|m| m.keys());
        diagnostics.extend(arguments::check_tag_names(tags, "exclude_tags"));
        diagnostics
    }
}

impl Model {
    /// The arguments of an object over `scope` with `identity_id` that `selection` and
    /// `timeouts` choose and treat machines by (an estate's slice); computed values null.
    pub(crate) fn arguments(
        identity_id: Maybe<String>,
        scope: Maybe<String>,
        selection: Selection,
        timeouts: Maybe<Timeouts>,
    ) -> Model {
        let Selection {
            locations,
            resource_types,
            skip_single_user_assigned,
            exclude_ids,
            exclude_tags,
            mode,
            adopt,
        } = selection;
        Model {
            identity_id,
            scope,
            locations,
            resource_types,
            skip_single_user_assigned,
            exclude_ids,
            exclude_tags,
            mode,
            adopt,
            timeouts,
            ..Model::default()
        }
    }

    pub(crate) fn selection(&self) -> Selection {
        selection_of!(self)
    }

    /// The settings, or `None` while something they depend on is unknown.
    pub(crate) fn settings(&self) -> Option<Settings> {
        self.selection()
            .settings(self.scope.as_str()?, self.identity_id.as_str()?)
    }

    /// The computed lists (empty unless all four are known, as a state holds them).
    pub(crate) fn outcome(&self) -> Outcome {
        match (
            self.assigned_ids.known(),
            self.compliant_ids.known(),
            self.skipped.known(),
            self.noncompliant_ids.known(),
        ) {
            (Some(assigned), Some(compliant), Some(skipped), Some(noncompliant)) => Outcome {
                assigned_ids: assigned.clone(),
                compliant_ids: compliant.clone(),
                skipped: skipped.clone(),
                noncompliant_ids: noncompliant.clone(),
            },
            _ => Outcome::default(),
        }
    }

    /// The same object with `outcome` as its lists.
    pub(crate) fn with_outcome(self, outcome: Outcome) -> Model {
        Model {
            assigned_ids: Maybe::Known(outcome.assigned_ids),
            compliant_ids: Maybe::Known(outcome.compliant_ids),
            skipped: Maybe::Known(outcome.skipped),
            noncompliant_ids: Maybe::Known(outcome.noncompliant_ids),
            ..self
        }
    }

    /// The same object with its lists decided at apply.
    pub(crate) fn with_unknown_outcome(self) -> Model {
        Model {
            assigned_ids: Maybe::Unknown,
            compliant_ids: Maybe::Unknown,
            skipped: Maybe::Unknown,
            noncompliant_ids: Maybe::Unknown,
            ..self
        }
    }

    /// The same object with its `id`, `{scope}|{identity_id}` (unknown while they are).
    pub(crate) fn with_id(self) -> Model {
        let id = match (self.scope.as_str(), self.identity_id.as_str()) {
            (Some(scope), Some(identity)) => Maybe::Known(resource_id(scope, identity)),
            _ => Maybe::Unknown,
        };
        Model { id, ..self }
    }

    /// States written before ownership was handed over between objects marked a failed
    /// create with a suffix on `id`; it means nothing any more.
    pub(crate) fn without_incomplete_marker(self) -> Model {
        match self.id.as_str() {
            Some(id) if id.ends_with(LEGACY_INCOMPLETE_SUFFIX) => Model {
                id: Maybe::Known(id.trim_end_matches(LEGACY_INCOMPLETE_SUFFIX).to_string()),
                ..self
            },
            _ => self,
        }
    }

    /// An existing object as the engine sees it.
    pub(crate) fn recorded(&self) -> Recorded {
        Recorded {
            scope: self.scope.as_str().map(str::to_string),
            identity_id: self.identity_id.as_str().map(str::to_string),
            outcome: self.outcome(),
        }
    }

    /// The configured regions, as written (for the check that they exist).
    pub(crate) fn regions(&self) -> Vec<String> {
        known_strings(&self.locations).flatten().unwrap_or_default()
    }
}
