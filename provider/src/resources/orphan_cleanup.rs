//! `mig_orphan_cleanup`: role assignments left behind by deleted identities, found at plan
//! time and removed at apply, safely (see `crate::orphans` for the rules).
//!
//! A refresh records the orphans found in `orphaned`. In `delete` mode the plan shows them
//! leaving `orphaned` and entering `removed_ids`; apply confirms and removes exactly those.
//! Destroy forgets the resource and deletes nothing. The argument handling here is shared
//! with the `mig_orphan_cleanup` action and the `mig_orphaned_role_assignments` data source.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tfplugin::{
    model, ApplyRequest, ApplyResponse, Attribute, AttributePath, Block, Diagnostics,
    IdentitySchema, ImportRequest, ImportResponse, ImportedResource, PlanRequest, PlanResponse,
    ReadRequest, ReadResponse, Resource, Schema, Type, Validator, Value,
};

use crate::arguments;
use crate::orphans::{self, Orphan, Rules};
use crate::provider_data::ProviderData;
use crate::resources::identity;

pub const TYPE_NAME: &str = "mig_orphan_cleanup";

const DEFAULT_MIN_AGE: &str = "24h";
const DEFAULT_MAX_DELETIONS: i64 = 50;
const DEFAULT_PRINCIPAL_TYPE: &str = "ServicePrincipal";
const DEFAULT_MODE: &str = "delete";
const PRINCIPAL_TYPES: [&str; 4] = ["ServicePrincipal", "User", "Group", "ForeignGroup"];

pub struct OrphanCleanup {
    data: Arc<ProviderData>,
}

impl OrphanCleanup {
    pub fn new(data: Arc<ProviderData>) -> Self {
        OrphanCleanup { data }
    }
}

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
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// What the declared validators cannot see alone: empty sets. Run at validate by the
/// resource, the action (and again at its plan) and the data source.
pub fn validate_search(config: &Value) -> Diagnostics {
    arguments::check_not_empty(
        config,
        "principal_types",
        "No principal types",
        "An empty set considers no assignment at all. Name at least one of `ServicePrincipal`, `User`, `Group`, `ForeignGroup`, or leave `principal_types` out for `ServicePrincipal`.",
    )
}

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

/// The scope and rules, once every search argument is known.
pub fn search_from(config: &Value) -> Option<(String, Rules)> {
    let arguments: SearchArguments = model::decode(config).ok()?;
    let rules = arguments.rules()?;
    Some((arguments::trim_arm_id(&arguments.scope).to_string(), rules))
}

pub fn max_deletions(config: &Value) -> usize {
    RemovalArguments::from(config).max_deletions()
}

pub fn too_many(count: usize, max: usize) -> String {
    format!(
        "{count} orphaned role assignments were found, more than `max_deletions` = {max}. Nothing was deleted: that many at once more likely means Microsoft Graph is answering wrongly than that so many identities were deleted. Review them (mode = \"report\", or the mig_orphaned_role_assignments data source) and raise `max_deletions` if they are real."
    )
}

// ---------------------------------------------------------------------------------------------
// The resource
// ---------------------------------------------------------------------------------------------

fn schema() -> Schema {
    let mut attributes: Vec<Attribute> = search_arguments()
        .into_iter()
        .map(|a| match a.name.as_str() {
            // Another scope is another resource (ARM IDs compare without case).
            "scope" => a.requires_replace_ignoring_case(),
            _ => a,
        })
        .collect();
    attributes.extend(removal_arguments(true));
    attributes.push(Attribute::computed("id", Type::String).description("The scope."));
    attributes.push(orphaned_attribute(
        "Orphaned role assignments found by the last refresh that are still in place.",
    ));
    attributes.push(
        Attribute::computed("removed_ids", Type::set(Type::String))
            .description("Every role assignment this resource removed."),
    );
    Schema::new(
        0,
        Block {
            attributes,
            description: "Finds role assignments whose principal no longer exists (\"Identity not found\") and removes them, with a plan, safeguards against Microsoft Graph being wrong, and a record of what was removed.".into(),
            ..Block::default()
        },
    )
}

fn state_type() -> &'static Type {
    static TYPE: LazyLock<Type> = LazyLock::new(|| schema().value_type());
    &TYPE
}

/// The identity is the scope (as `id` records it: without a trailing `/`). Another scope is
/// another object (`scope` replaces), so it never changes; a change of letter case only is
/// kept from the prior identity (see `crate::resources::identity`).
pub fn identity_schema() -> IdentitySchema {
    IdentitySchema {
        version: 0,
        attributes: vec![identity::attribute(
            "scope",
            true,
            "The scope searched: a management group, subscription or resource group ID.",
        )],
    }
}

fn identity_of(state: &Value) -> Option<Value> {
    let scope = state.get("id").as_str()?;
    identity::known(Value::object([("scope", Value::string(scope))]))
}

/// What the resource computes and records: `id`, `orphaned`, `removed_ids`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Outcome {
    id: Option<String>,
    orphaned: Option<Vec<OrphanModel>>,
    removed_ids: Option<BTreeSet<String>>,
}

impl Outcome {
    /// The outcome recorded in a state (empty where unknown or absent).
    fn of(state: &Value) -> Outcome {
        model::decode_lenient(state).unwrap_or_default()
    }

    fn orphans(self) -> Vec<Orphan> {
        self.orphaned
            .unwrap_or_default()
            .into_iter()
            .map(Orphan::from)
            .collect()
    }
}

fn orphans_in(state: &Value) -> Vec<Orphan> {
    Outcome::of(state).orphans()
}

fn removed_in(state: &Value) -> BTreeSet<String> {
    Outcome::of(state).removed_ids.unwrap_or_default()
}

/// The arguments of `config` (defaults applied) with the outcome.
fn with_outcome(config: &Value, orphaned: &[Orphan], removed: &BTreeSet<String>) -> Value {
    let outcome = Outcome {
        id: config
            .get("scope")
            .as_str()
            .map(|scope| arguments::trim_arm_id(scope).to_string()),
        orphaned: Some(orphaned.iter().map(OrphanModel::from).collect()),
        removed_ids: Some(removed.clone()),
    };
    model::update(config, &outcome, state_type())
}

#[async_trait]
impl Resource for OrphanCleanup {
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

    // Arguments are checked by the validators declared in `search_arguments` and
    // `removal_arguments` (and `validate_search`); defaults and replacement (`scope`) are
    // declared there too.

    async fn validate_config(&self, config: &Value) -> Diagnostics {
        validate_search(config)
    }

    async fn plan(&self, request: PlanRequest) -> PlanResponse {
        async move {
            let mut response = PlanResponse {
                planned_state: request.proposed_new_state.clone(),
                planned_private: request.prior_private.clone(),
                ..PlanResponse::default()
            };
            let proposed = &request.proposed_new_state;
            if proposed.is_null() {
                return response;
            }
            let Some((scope, rules)) = search_from(proposed) else {
                // Arguments not known yet: so is the outcome (the server already planned these
                // unknown, as the arguments changed; said here for the reader).
                response.planned_state = proposed
                    .with("id", Value::unknown())
                    .with("orphaned", Value::unknown())
                    .with("removed_ids", Value::unknown());
                return response;
            };
            let clients = match self.data.clients() {
                Ok(clients) => clients,
                Err(diagnostics) => {
                    response.diagnostics = diagnostics;
                    return response;
                }
            };
            let prior_removed = if request.requires_replace.is_empty() {
                removed_in(&request.prior_state)
            } else {
                BTreeSet::new()
            };
            let found = match orphans::find(&clients, &scope, &rules).await {
                Ok(found) => found,
                Err(error) => {
                    response.diagnostics.error_at(
                        AttributePath::root("scope"),
                        "Cannot look for orphaned role assignments",
                        &error,
                    );
                    return response;
                }
            };
            let removal = RemovalArguments::from(proposed);
            let deleting = removal.mode == Some(Mode::Delete);
            let (removable, remaining): (Vec<Orphan>, Vec<Orphan>) = found
                .into_iter()
                .partition(|orphan| deleting && !orphan.inherited);
            let max = removal.max_deletions();
            if removable.len() > max {
                response.diagnostics.warning_at(
                    AttributePath::root("max_deletions"),
                    "Apply will refuse to delete",
                    &too_many(removable.len(), max),
                );
            }
            let mut removed = prior_removed;
            removed.extend(removable.iter().map(|o| o.id.clone()));
            response.planned_state = with_outcome(proposed, &remaining, &removed);
            response
        }
        .await
    }

    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
        async move {
            if request.planned_state.is_null() {
                // Destroy forgets; it never deletes anything.
                return ApplyResponse::default();
            }
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
            let planned = &request.planned_state;
            let prior_removed = if request.prior_state.get("scope") == planned.get("scope") {
                removed_in(&request.prior_state)
            } else {
                BTreeSet::new()
            };
            let planned_removed = removed_in(planned);
            let to_remove: BTreeSet<String> = planned_removed
                .difference(&prior_removed)
                .cloned()
                .collect();
            let remaining = orphans_in(planned);
            let mut diagnostics = Diagnostics::default();
            let failed_state = |diagnostics: Diagnostics, removed: &BTreeSet<String>| ApplyResponse {
                new_state: with_outcome(planned, &remaining, removed),
                diagnostics,
                ..ApplyResponse::default()
            };
            if to_remove.is_empty() {
                return failed_state(diagnostics, &prior_removed);
            }
            let max = max_deletions(planned);
            if to_remove.len() > max {
                diagnostics.error_at(
                    AttributePath::root("max_deletions"),
                    "Too many orphaned role assignments",
                    &too_many(to_remove.len(), max),
                );
                return failed_state(diagnostics, &prior_removed);
            }
            // Re-find to get each candidate's principal; anything no longer an orphan is kept.
            let Some((scope, rules)) = search_from(planned) else {
                diagnostics.error(
                    "Arguments unknown at apply",
                    "This is a bug in Terraform or the provider.",
                );
                return failed_state(diagnostics, &prior_removed);
            };
            let current = match orphans::find(&clients, &scope, &rules).await {
                Ok(current) => current,
                Err(error) => {
                    diagnostics.error_at(AttributePath::root("scope"), "Nothing was deleted", &error);
                    return failed_state(diagnostics, &prior_removed);
                }
            };
            let candidates: Vec<Orphan> = current
                .into_iter()
                .filter(|o| to_remove.iter().any(|id| id.eq_ignore_ascii_case(&o.id)))
                .collect();
            let log = |line: String| tracing::info!("{line}");
            let removal = orphans::remove(&clients, &candidates, &log).await;
            let mut removed = prior_removed;
            removed.extend(removal.removed.iter().cloned());
            let found_ids: BTreeSet<String> = candidates
                .iter()
                .map(|o| o.id.to_ascii_lowercase())
                .collect();
            let vanished: Vec<&String> = to_remove
                .iter()
                .filter(|id| !found_ids.contains(&id.to_ascii_lowercase()))
                .collect();
            // Planned removals that are no longer orphans (deleted by someone else, or the
            // principal is back) are not ours to record.
            let mut kept: BTreeMap<String, String> = removal.kept.clone();
            for id in vanished {
                kept.insert(
                    id.clone(),
                    "no longer an orphaned assignment (gone already, or its principal exists)".into(),
                );
            }
            if let Some(reason) = &removal.stopped {
                diagnostics.error("Clean-up stopped", reason);
            }
            if !kept.is_empty() {
                let lines: Vec<String> = kept
                    .iter()
                    .map(|(id, why)| format!("- {id}: {why}"))
                    .collect();
                diagnostics.error(
                    &format!("{} planned removal(s) not done", kept.len()),
                    &format!(
                        "State records exactly what was removed; plan again to see the current orphans.\n{}",
                        lines.join("\n")
                    ),
                );
            }
            let mut remaining_now = remaining;
            for orphan in &candidates {
                if !removal.removed.contains(&orphan.id) && removal.kept.contains_key(&orphan.id) {
                    remaining_now.push(orphan.clone());
                }
            }
            remaining_now.sort();
            ApplyResponse {
                new_state: with_outcome(planned, &remaining_now, &removed),
                diagnostics,
                ..ApplyResponse::default()
            }
        }
        .await
    }

    async fn read(&self, request: ReadRequest) -> ReadResponse {
        async move {
            let state = request.current_state;
            let mut response = ReadResponse {
                new_state: state.clone(),
                private: request.private,
                ..ReadResponse::default()
            };
            let Some((scope, rules)) = search_from(&state) else {
                return response;
            };
            let clients = match self.data.clients() {
                Ok(clients) => clients,
                Err(diagnostics) => {
                    response.diagnostics = diagnostics;
                    return response;
                }
            };
            // A scope in another tenant is refused at plan and apply; a refresh only warns, so
            // that a resource in state from before the check can still be destroyed (destroy
            // forgets; it deletes nothing). Nothing is listed as orphaned.
            if let Err(error) = orphans::check_scope_tenant(&clients, &scope).await {
                response.diagnostics.warning_at(
                    AttributePath::root("scope"),
                    "Orphaned role assignments cannot be told at this scope",
                    &error,
                );
                response.new_state = with_outcome(&state, &[], &removed_in(&state));
                return response;
            }
            match orphans::search(&clients, &scope, &rules).await {
                Ok(found) => response.new_state = with_outcome(&state, &found, &removed_in(&state)),
                Err(error) => response.diagnostics.error_at(
                    AttributePath::root("scope"),
                    "Cannot look for orphaned role assignments",
                    &error,
                ),
            }
            response
        }
        .await
    }

    /// By ID (the scope) or by identity (`{ scope = ... }`). Nothing is removed by an import:
    /// the next plan shows, as for any configuration, what `mode` would remove.
    async fn import(&self, request: ImportRequest) -> ImportResponse {
        let mut response = ImportResponse::default();
        let scope = match &request.identity {
            Some(given) => given.get("scope").as_str().unwrap_or_default().to_string(),
            None => request.id.clone(),
        };
        let scope = arguments::trim_arm_id(scope.trim()).to_string();
        // Every attribute null but `scope`, then the declared defaults.
        let skeleton = model::encode(&serde_json::json!({ "scope": scope }), state_type());
        let skeleton = schema().block.apply_defaults(&skeleton);
        let mut problems = schema().block.validate(&skeleton);
        problems.extend(validate_search(&skeleton));
        if scope.is_empty() || problems.has_errors() {
            if scope.is_empty() {
                problems.error(
                    "Invalid import ID",
                    "Import mig_orphan_cleanup by its scope: a management group, subscription or resource group ID.",
                );
            }
            response.diagnostics = problems;
            return response;
        }
        let state = with_outcome(&skeleton, &[], &BTreeSet::new());
        response.imported.push(ImportedResource {
            identity: identity_of(&state),
            state,
            private: Vec::new(),
        });
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(fields: &[(&str, Value)]) -> Value {
        let mut all: BTreeMap<String, Value> = schema()
            .block
            .attributes
            .iter()
            .map(|a| (a.name.clone(), Value::Null))
            .collect();
        for (name, value) in fields {
            all.insert(name.to_string(), value.clone());
        }
        Value::Object(all)
    }

    const SCOPE: &str = "/subscriptions/00000000-0000-0000-0000-000000000001";

    #[test]
    fn defaults_are_safe() {
        let block = schema().block;
        let (scope, rules) =
            search_from(&block.apply_defaults(&config(&[("scope", Value::from(SCOPE))]))).unwrap();
        assert!(scope.starts_with("/subscriptions/"));
        assert_eq!(
            rules.principal_types,
            BTreeSet::from(["serviceprincipal".to_string()])
        );
        assert_eq!(rules.min_age, Duration::from_secs(24 * 3600));
        let defaulted = block.apply_defaults(&config(&[]));
        assert_eq!(max_deletions(&defaulted), 50);
        assert_eq!(RemovalArguments::from(&defaulted).mode, Some(Mode::Delete));
    }

    /// Terraform's proposed new state keeps the prior value of an optional+computed
    /// argument whose configuration is null: the declared default must win over it.
    #[test]
    fn removing_an_argument_plans_its_default_again() {
        let block = schema().block;
        let prior = with_outcome(
            &block.apply_defaults(&config(&[
                ("scope", Value::from(SCOPE)),
                ("mode", Value::from("report")),
                ("max_deletions", Value::int(5)),
                ("min_age", Value::from("1h")),
                ("principal_types", Value::string_set(["User"])),
            ])),
            &[],
            &BTreeSet::new(),
        );
        let config = config(&[("scope", Value::from(SCOPE))]);
        let mut proposed = prior.clone();
        for name in ["scope", "exclude_role_definition_ids"] {
            proposed = proposed.with(name, config.get(name).clone());
        }
        let planned = tfplugin::planning::plan_proposed(&block, &config, &prior, &proposed);
        assert_eq!(planned.get("mode"), &Value::from("delete"));
        assert_eq!(planned.get("max_deletions"), &Value::int(50));
        assert_eq!(planned.get("min_age"), &Value::from("24h"));
        assert_eq!(
            planned.get("principal_types"),
            &Value::string_set(["ServicePrincipal"])
        );
        assert!(
            planned.get("removed_ids").is_unknown(),
            "the outcome is replanned"
        );
        assert!(tfplugin::planning::requires_replace(&block, &prior, &planned).is_empty());
        let moved = planned.with("scope", Value::from(SCOPE.to_uppercase()));
        assert!(
            tfplugin::planning::requires_replace(&block, &prior, &moved).is_empty(),
            "ARM IDs compare without case"
        );
        let moved = planned.with("scope", Value::from(format!("{SCOPE}/resourceGroups/rg")));
        assert_eq!(
            tfplugin::planning::requires_replace(&block, &prior, &moved),
            vec![AttributePath::root("scope")]
        );
    }

    #[test]
    fn bad_arguments_name_the_attribute() {
        let diagnostics = schema().block.validate(&config(&[
            ("scope", Value::from("/subscriptions/x/resourceGroups")),
            ("principal_types", Value::string_set(["Robot"])),
            ("min_age", Value::from("yesterday")),
            ("max_deletions", Value::int(-1)),
            ("mode", Value::from("purge")),
        ]));
        let named: Vec<String> = diagnostics
            .iter()
            .filter_map(|d| d.attribute.as_ref())
            .map(|p| format!("{:?}", p.steps[0]))
            .collect();
        for name in [
            "scope",
            "principal_types",
            "min_age",
            "max_deletions",
            "mode",
        ] {
            assert!(
                named.iter().any(|n| n.contains(name)),
                "{name} not named: {named:?}"
            );
        }
    }

    #[test]
    fn unknown_arguments_are_not_validated_and_good_ones_pass() {
        let diagnostics = schema().block.validate(&config(&[
            ("scope", Value::unknown()),
            ("principal_types", Value::Set(vec![Value::unknown()])),
            ("mode", Value::from("report")),
            ("max_deletions", Value::int(0)),
            ("min_age", Value::from("7d")),
        ]));
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let whole = schema().block.validate(&config(&[(
            "max_deletions",
            Value::Number(tfplugin::Number::Float(1.5)),
        )]));
        assert_eq!(
            whole.items[0].detail,
            "`max_deletions` must be a whole number."
        );
    }

    #[test]
    fn management_groups_are_scopes() {
        let scope = |text: &str| {
            schema()
                .block
                .validate(&config(&[("scope", Value::from(text))]))
        };
        assert!(scope("/providers/Microsoft.Management/managementGroups/root").is_empty());
        assert!(!scope("/providers/Microsoft.Management/managementGroups/").is_empty());
        assert!(
            scope(&format!("{SCOPE}/")).is_empty(),
            "a trailing / is trimmed"
        );
        assert!(!scope(&format!("{SCOPE}?api-version=1")).is_empty());
    }

    #[test]
    fn role_names_are_refused_and_ids_compare_by_guid() {
        let diagnostics = schema().block.validate(&config(&[(
            "exclude_role_definition_ids",
            Value::string_set(["Contributor"]),
        )]));
        assert_eq!(
            diagnostics.items[0].attribute,
            Some(AttributePath::root("exclude_role_definition_ids"))
        );
        let block = schema().block;
        let (scope, rules) = search_from(&block.apply_defaults(&config(&[
            ("scope", Value::from(format!("{SCOPE}/"))),
            (
                "exclude_role_definition_ids",
                Value::string_set([
                    "B24988AC-6180-42A0-AB88-20F7382DD24C",
                    "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7/",
                ]),
            ),
        ])))
        .unwrap();
        assert_eq!(scope, SCOPE);
        assert_eq!(
            rules.excluded_roles,
            BTreeSet::from([
                "acdd72a7-3385-48ef-bd42-f606fba81ae7".to_string(),
                "b24988ac-6180-42a0-ab88-20f7382dd24c".to_string(),
            ])
        );
        let empty = validate_search(&config(&[("principal_types", Value::Set(vec![]))]));
        assert_eq!(
            empty.items[0].attribute,
            Some(AttributePath::root("principal_types"))
        );
    }

    fn orphan_type() -> &'static Type {
        static TYPE: LazyLock<Type> = LazyLock::new(|| {
            orphaned_attribute("")
                .nested
                .map(|nested| {
                    Type::Object(
                        nested
                            .attributes
                            .iter()
                            .map(|a| (a.name.clone(), a.value_type()))
                            .collect(),
                    )
                })
                .expect("orphaned has nested attributes")
        });
        &TYPE
    }

    pub fn orphan_value(orphan: &Orphan) -> Value {
        model::encode(&OrphanModel::from(orphan), orphan_type())
    }

    fn orphan_from_value(value: &Value) -> Option<Orphan> {
        model::decode::<OrphanModel>(value).ok().map(Orphan::from)
    }

    #[test]
    fn orphans_survive_a_round_trip_through_values() {
        let orphan = Orphan {
            id: "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/1".into(),
            principal_id: "p".into(),
            principal_type: "ServicePrincipal".into(),
            role_definition_id: "/r/x".into(),
            role_name: None,
            scope: "/subscriptions/s".into(),
            created_on: Some("2026-01-01T00:00:00Z".into()),
            inherited: true,
        };
        assert_eq!(orphan_from_value(&orphan_value(&orphan)), Some(orphan));
    }
}
