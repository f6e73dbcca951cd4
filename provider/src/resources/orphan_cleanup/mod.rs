//! `mig_orphan_cleanup`: role assignments left behind by deleted identities, found at plan
//! time and removed at apply, safely (see `crate::orphans` for the rules).
//!
//! A refresh records the orphans found in `orphaned`. In `delete` mode the plan shows them
//! leaving `orphaned` and entering `removed_ids`; apply confirms and removes exactly those.
//! Destroy forgets the resource and deletes nothing. The argument handling here is shared
//! with the `mig_orphan_cleanup` action and the `mig_orphaned_role_assignments` data source.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tfplugin::typed::Maybe;
use tfplugin::{model, Attribute, Diagnostics, Type, Validator, Value};

use crate::arguments;
use crate::orphans::{Orphan, Rules};

mod resource;
#[cfg(test)]
mod tests;

pub use resource::OrphanCleanup;

pub const TYPE_NAME: &str = "mig_orphan_cleanup";

const DEFAULT_MIN_AGE: &str = "24h";
const DEFAULT_MAX_DELETIONS: i64 = 50;
const DEFAULT_PRINCIPAL_TYPE: &str = "ServicePrincipal";
const DEFAULT_MODE: &str = "delete";
const PRINCIPAL_TYPES: [&str; 4] = ["ServicePrincipal", "User", "Group", "ForeignGroup"];

// ---------------------------------------------------------------------------------------------
// Arguments, shared with the action and the data source
// ---------------------------------------------------------------------------------------------

/// The search arguments: `scope`, `principal_types`, `min_age`, `exclude_role_definition_ids`.
pub fn search_arguments() -> Vec<Attribute> {
    vec![
        Attribute::required("scope", Type::String)
            .validator(arguments::role_assignment_scope())
            .description(
            "A subscription, resource group or management group ID. Assignments at it and below it are candidates; those inherited from above are reported, never removed. A trailing `/` is ignored; a query string is refused.",
        ),
        Attribute::optional("principal_types", Type::set(Type::String))
            .default_value(Value::string_set([DEFAULT_PRINCIPAL_TYPE]))
            .validator(Validator::string("Unknown principal type", |kind| {
                if PRINCIPAL_TYPES.iter().any(|known| known.eq_ignore_ascii_case(kind)) {
                    Ok(())
                } else {
                    Err(format!(
                        "`{kind}` is not a principal type; use {}.",
                        PRINCIPAL_TYPES.join(", ")
                    ))
                }
            }))
            .description("Principal types to consider: `ServicePrincipal` (default), `User`, `Group`, `ForeignGroup`, in any casing. An empty set is refused: leave the argument out for the default."),
        Attribute::optional("min_age", Type::String)
            .default_value(DEFAULT_MIN_AGE)
            // Zero is meaningful: no age limit. Each candidate is still confirmed absent
            // from Graph right before it is deleted.
            .validator(arguments::duration())
            .description(
            "An assignment younger than this is never treated as orphaned: a new principal may not have replicated to Microsoft Graph yet. Default `24h`. `0s` means no age limit (every candidate is still confirmed absent from Graph right before it is deleted, but a principal created moments ago may not have replicated yet).",
        ),
        Attribute::optional("exclude_role_definition_ids", Type::set(Type::String))
            .validator(arguments::role_definition())
            .description("Role definitions whose assignments are never touched: full role definition IDs (at any scope) or bare GUIDs, compared by GUID. A role *name* such as `Contributor` is refused at validate: it would match nothing and protect nothing."),
    ]
}

/// The removal arguments: `max_deletions` and `mode`.
pub fn removal_arguments(with_mode: bool) -> Vec<Attribute> {
    let mut attributes = vec![Attribute::optional("max_deletions", Type::Number)
        .default_value(DEFAULT_MAX_DELETIONS)
        .validator(Validator::new("Invalid limit", |value| {
            match value.as_number().map(|n| n.as_i64()) {
                Some(Some(max)) if max < 0 => Err("`max_deletions` must be 0 or more.".into()),
                Some(None) => Err("`max_deletions` must be a whole number.".into()),
                _ => Ok(()),
            }
        }))
        .description(
        "When more orphans than this are found, nothing is deleted and apply fails: a mass of \"orphans\" more likely means Microsoft Graph is wrong than that so many identities died. Default 50.",
    )];
    if with_mode {
        attributes.push(
            Attribute::optional("mode", Type::String)
                .default_value(DEFAULT_MODE)
                .validator(Validator::string("Invalid mode", |mode| {
                    if mode == "delete" || mode == "report" {
                        Ok(())
                    } else {
                        Err(format!("`{mode}` is not a mode; use `delete` or `report`."))
                    }
                }))
                .description(
                    "`delete` (default): remove the orphans at apply. `report`: only list them.",
                ),
        );
    }
    attributes
}

fn orphan_attributes() -> Vec<Attribute> {
    let text = |name: &str, description: &str| {
        Attribute::computed(name, Type::String).description(description)
    };
    vec![
        text("id", "Role assignment ID."),
        text(
            "principal_id",
            "Object ID of the principal that no longer exists.",
        ),
        text("principal_type", "`ServicePrincipal`, `User`, ..."),
        text("role_definition_id", "Role definition ID."),
        text("role_name", "Role name, like `Contributor`, when known."),
        text("scope", "Where the role is granted."),
        text("created_on", "When the assignment was created."),
        Attribute::computed("inherited", Type::Bool)
            .description("Granted above the scope given: reported, never removed."),
    ]
}

pub fn orphaned_attribute(description: &str) -> Attribute {
    Attribute::computed("orphaned", Type::Dynamic)
        .nested(tfplugin::NestingMode::List, orphan_attributes())
        .description(description)
}

/// One element of `orphaned`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrphanModel {
    id: String,
    principal_id: Option<String>,
    principal_type: Option<String>,
    role_definition_id: Option<String>,
    role_name: Option<String>,
    scope: Option<String>,
    created_on: Option<String>,
    inherited: Option<bool>,
}

impl From<&Orphan> for OrphanModel {
    fn from(orphan: &Orphan) -> Self {
        OrphanModel {
            id: orphan.id.clone(),
            principal_id: Some(orphan.principal_id.clone()),
            principal_type: Some(orphan.principal_type.clone()),
            role_definition_id: Some(orphan.role_definition_id.clone()),
            role_name: orphan.role_name.clone(),
            scope: Some(orphan.scope.clone()),
            created_on: orphan.created_on.clone(),
            inherited: Some(orphan.inherited),
        }
    }
}

impl From<OrphanModel> for Orphan {
    fn from(model: OrphanModel) -> Self {
        Orphan {
            id: model.id,
            principal_id: model.principal_id.unwrap_or_default(),
            principal_type: model.principal_type.unwrap_or_default(),
            role_definition_id: model.role_definition_id.unwrap_or_default(),
            role_name: model.role_name,
            scope: model.scope.unwrap_or_default(),
            created_on: model.created_on,
            inherited: model.inherited.unwrap_or(false),
        }
    }
}

/// What the declared validators cannot see alone: an empty `principal_types` (`None`: not
/// set, or unknown). Run at validate by the resource, the action (and again at its plan)
/// and the data source.
pub fn validate_principal_types<T>(principal_types: Option<&[T]>) -> Diagnostics {
    arguments::check_listed(principal_types, "principal_types", NO_TYPES, NO_TYPES_FIX)
}

const NO_TYPES: &str = "No principal types";
const NO_TYPES_FIX: &str = "An empty set considers no assignment at all. Name at least one of `ServicePrincipal`, `User`, `Group`, `ForeignGroup`, or leave `principal_types` out for `ServicePrincipal`.";

/// The search arguments, declared defaults applied (the server applies them to the
/// resource's plan, the data source's read and the action's config).
#[derive(Debug, Clone, Deserialize)]
pub struct SearchArguments {
    pub scope: String,
    pub principal_types: BTreeSet<String>,
    pub min_age: String,
    pub exclude_role_definition_ids: Option<BTreeSet<String>>,
}

impl SearchArguments {
    pub fn rules(&self) -> Option<Rules> {
        Some(Rules {
            principal_types: self
                .principal_types
                .iter()
                .map(|t| t.to_ascii_lowercase())
                .collect(),
            min_age: humantime::parse_duration(&self.min_age).ok()?,
            excluded_roles: self
                .exclude_role_definition_ids
                .iter()
                .flatten()
                .map(|id| arguments::role_definition_guid(id))
                .collect(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Delete,
    Report,
}

/// The removal arguments; `None` where not known yet (or not in the schema: the action has
/// no `mode`).
#[derive(Debug, Clone, Deserialize)]
pub struct RemovalArguments {
    pub max_deletions: Option<i64>,
    pub mode: Option<Mode>,
}

impl RemovalArguments {
    pub fn from(config: &Value) -> RemovalArguments {
        model::decode_lenient(config).unwrap_or(RemovalArguments {
            max_deletions: None,
            mode: None,
        })
    }

    pub fn max_deletions(&self) -> usize {
        self.max_deletions.unwrap_or(DEFAULT_MAX_DELETIONS).max(0) as usize
    }
}

/// [`search_of`] of a configuration value with the declared defaults applied: the tests
/// check that the typed path finds what the schema declares.
#[cfg(test)]
pub fn search_from(config: &Value) -> Option<(String, Rules)> {
    let arguments: SearchArguments = model::decode(config).ok()?;
    let rules = arguments.rules()?;
    Some((arguments::trim_arm_id(&arguments.scope).to_string(), rules))
}

/// The scope and rules, from a typed model's search arguments: `None` unless every one is
/// known (an unset `exclude_role_definition_ids` is known: nothing is excluded).
pub fn search_of(
    scope: &Maybe<String>,
    principal_types: &Maybe<Vec<Maybe<String>>>,
    min_age: &Maybe<String>,
    exclude_role_definition_ids: &Maybe<Vec<Maybe<String>>>,
) -> Option<(String, Rules)> {
    let known = |set: &Maybe<Vec<Maybe<String>>>| -> Option<BTreeSet<String>> {
        set.known()?
            .iter()
            .map(|item| item.known().cloned())
            .collect()
    };
    let arguments = SearchArguments {
        scope: scope.known()?.clone(),
        principal_types: known(principal_types)?,
        min_age: min_age.known()?.clone(),
        exclude_role_definition_ids: match exclude_role_definition_ids {
            Maybe::Null => None,
            ids => Some(known(ids)?),
        },
    };
    let rules = arguments.rules()?;
    Some((arguments::trim_arm_id(&arguments.scope).to_string(), rules))
}

#[cfg(test)]
pub fn max_deletions(config: &Value) -> usize {
    RemovalArguments::from(config).max_deletions()
}

pub fn too_many(count: usize, max: usize) -> String {
    format!(
        "{count} orphaned role assignments were found, more than `max_deletions` = {max}. Nothing was deleted: that many at once more likely means Microsoft Graph is answering wrongly than that so many identities were deleted. Review them (mode = \"report\", or the mig_orphaned_role_assignments data source) and raise `max_deletions` if they are real."
    )
}
