//! `mig_orphan_cleanup`: role assignments left behind by deleted identities, found at plan
//! time and removed at apply, safely (see `crate::orphans` for the rules).
//!
//! A refresh records the orphans found in `orphaned`. In `delete` mode the plan shows them
//! leaving `orphaned` and entering `removed_ids`; apply confirms and removes exactly those.
//! Destroy forgets the resource and deletes nothing. The argument handling here is shared
//! with the `mig_orphan_cleanup` action and the `mig_orphaned_role_assignments` data source.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use tfplugin::{
    ApplyRequest, ApplyResponse, Attribute, AttributePath, Block, Diagnostics, PlanRequest,
    PlanResponse, ReadRequest, ReadResponse, Resource, Schema, Type, Value,
};

use crate::azure::ids;
use crate::orphans::{self, Orphan, Rules};
use crate::provider::ProviderData;

pub const TYPE_NAME: &str = "mig_orphan_cleanup";

const DEFAULT_MIN_AGE: &str = "24h";
const DEFAULT_MAX_DELETIONS: i64 = 50;
const DEFAULT_PRINCIPAL_TYPE: &str = "ServicePrincipal";
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
        Attribute::required("scope", Type::String).description(
            "A subscription, resource group or management group ID. Assignments at it and below it are candidates; those inherited from above are reported, never removed.",
        ),
        Attribute::optional("principal_types", Type::set(Type::String))
            .optional_computed()
            .description("Principal types to consider: `ServicePrincipal` (default), `User`, `Group`, `ForeignGroup`."),
        Attribute::optional("min_age", Type::String).optional_computed().description(
            "An assignment younger than this is never treated as orphaned: a new principal may not have replicated to Microsoft Graph yet. Default `24h`.",
        ),
        Attribute::optional("exclude_role_definition_ids", Type::set(Type::String))
            .description("Role definitions (IDs or GUIDs) whose assignments are never touched."),
    ]
}

/// The removal arguments: `max_deletions` and `mode`.
pub fn removal_arguments(with_mode: bool) -> Vec<Attribute> {
    let mut attributes = vec![Attribute::optional("max_deletions", Type::Number).optional_computed().description(
        "When more orphans than this are found, nothing is deleted and apply fails: a mass of \"orphans\" more likely means Microsoft Graph is wrong than that so many identities died. Default 50.",
    )];
    if with_mode {
        attributes.push(
            Attribute::optional("mode", Type::String)
                .optional_computed()
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

pub fn orphan_value(orphan: &Orphan) -> Value {
    Value::object([
        ("id", Value::from(orphan.id.as_str())),
        ("principal_id", Value::from(orphan.principal_id.as_str())),
        (
            "principal_type",
            Value::from(orphan.principal_type.as_str()),
        ),
        (
            "role_definition_id",
            Value::from(orphan.role_definition_id.as_str()),
        ),
        (
            "role_name",
            Value::optional_string(orphan.role_name.clone()),
        ),
        ("scope", Value::from(orphan.scope.as_str())),
        (
            "created_on",
            Value::optional_string(orphan.created_on.clone()),
        ),
        ("inherited", Value::Bool(orphan.inherited)),
    ])
}

pub fn orphan_from_value(value: &Value) -> Option<Orphan> {
    let text = |name: &str| value.get(name).as_str().map(str::to_string);
    Some(Orphan {
        id: text("id")?,
        principal_id: text("principal_id").unwrap_or_default(),
        principal_type: text("principal_type").unwrap_or_default(),
        role_definition_id: text("role_definition_id").unwrap_or_default(),
        role_name: text("role_name"),
        scope: text("scope").unwrap_or_default(),
        created_on: text("created_on"),
        inherited: value.get("inherited").as_bool().unwrap_or(false),
    })
}

fn validate_scope(scope: &str) -> Result<(), String> {
    let management_group = scope
        .to_ascii_lowercase()
        .strip_prefix("/providers/microsoft.management/managementgroups/")
        .is_some_and(|name| !name.is_empty() && !name.contains('/'));
    if management_group {
        return Ok(());
    }
    ids::Scope::parse(scope).map(|_| ()).map_err(|_| {
        format!("{scope:?} is not a scope: use a subscription (/subscriptions/{{id}}), a resource group (/subscriptions/{{id}}/resourceGroups/{{name}}) or a management group (/providers/Microsoft.Management/managementGroups/{{name}}).")
    })
}

/// Problems with the arguments visible without Azure (unknown values are skipped).
pub fn validate_arguments(config: &Value) -> Diagnostics {
    let mut diagnostics = Diagnostics::default();
    if let Some(scope) = config.get("scope").as_str() {
        if let Err(reason) = validate_scope(scope) {
            diagnostics.error_at(AttributePath::root("scope"), "Invalid scope", &reason);
        }
    }
    if let Some(types) = config.get("principal_types").as_string_list() {
        for kind in types {
            if !PRINCIPAL_TYPES
                .iter()
                .any(|known| known.eq_ignore_ascii_case(&kind))
            {
                diagnostics.error_at(
                    AttributePath::root("principal_types"),
                    "Unknown principal type",
                    &format!(
                        "`{kind}` is not a principal type; use {}.",
                        PRINCIPAL_TYPES.join(", ")
                    ),
                );
            }
        }
    }
    if let Some(text) = config.get("min_age").as_str() {
        if let Err(error) = humantime::parse_duration(text) {
            diagnostics.error_at(
                AttributePath::root("min_age"),
                "Invalid duration",
                &format!("`{text}` is not a duration ({error}); write it like `24h` or `7d`."),
            );
        }
    }
    if let Some(max) = config.get("max_deletions").as_i64() {
        if max < 0 {
            diagnostics.error_at(
                AttributePath::root("max_deletions"),
                "Invalid limit",
                "`max_deletions` must be 0 or more.",
            );
        }
    } else if config.get("max_deletions").as_number().is_some() {
        diagnostics.error_at(
            AttributePath::root("max_deletions"),
            "Invalid limit",
            "`max_deletions` must be a whole number.",
        );
    }
    if let Some(mode) = config.get("mode").as_str() {
        if mode != "delete" && mode != "report" {
            diagnostics.error_at(
                AttributePath::root("mode"),
                "Invalid mode",
                &format!("`{mode}` is not a mode; use `delete` or `report`."),
            );
        }
    }
    diagnostics
}

/// Optional+computed arguments with their defaults.
pub fn with_defaults(config: &Value) -> Value {
    let mut fields = config.as_object().cloned().unwrap_or_default();
    let mut fill = |name: &str, default: Value| {
        if fields.get(name).is_none_or(Value::is_null) && fields.contains_key(name) {
            fields.insert(name.to_string(), default);
        }
    };
    fill(
        "principal_types",
        Value::string_set([DEFAULT_PRINCIPAL_TYPE]),
    );
    fill("min_age", Value::from(DEFAULT_MIN_AGE));
    fill("max_deletions", Value::int(DEFAULT_MAX_DELETIONS));
    fill("mode", Value::from("delete"));
    Value::Object(fields)
}

/// The scope and rules, once every argument is known (defaults applied).
pub fn search_from(config: &Value) -> Option<(String, Rules)> {
    let config = with_defaults(config);
    let scope = config.get("scope").as_str()?.to_string();
    let principal_types = config
        .get("principal_types")
        .as_string_list()?
        .into_iter()
        .map(|t| t.to_ascii_lowercase())
        .collect();
    let min_age = humantime::parse_duration(config.get("min_age").as_str()?).ok()?;
    let exclusions = config.get("exclude_role_definition_ids");
    if !exclusions.is_fully_known() {
        return None;
    }
    let excluded_roles = exclusions
        .as_string_list()
        .unwrap_or_default()
        .iter()
        .map(|id| orphans::role_guid(id))
        .collect();
    Some((
        scope,
        Rules {
            principal_types,
            min_age,
            excluded_roles,
        },
    ))
}

pub fn max_deletions(config: &Value) -> usize {
    config
        .get("max_deletions")
        .as_i64()
        .unwrap_or(DEFAULT_MAX_DELETIONS)
        .max(0) as usize
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
    let mut attributes = search_arguments();
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

fn orphans_in(state: &Value) -> Vec<Orphan> {
    state
        .get("orphaned")
        .as_list()
        .map(|items| items.iter().filter_map(orphan_from_value).collect())
        .unwrap_or_default()
}

fn with_outcome(config: &Value, orphaned: &[Orphan], removed: &BTreeSet<String>) -> Value {
    let mut fields: BTreeMap<String, Value> = with_defaults(config)
        .as_object()
        .cloned()
        .unwrap_or_default();
    fields.insert("id".into(), config.get("scope").clone());
    fields.insert(
        "orphaned".into(),
        Value::List(orphaned.iter().map(orphan_value).collect()),
    );
    fields.insert(
        "removed_ids".into(),
        Value::string_set(removed.iter().cloned()),
    );
    Value::Object(fields)
}

fn removed_in(state: &Value) -> BTreeSet<String> {
    state
        .get("removed_ids")
        .as_string_list()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

#[async_trait]
impl Resource for OrphanCleanup {
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
        if !request.prior_state.is_null()
            && !request
                .prior_state
                .get("scope")
                .as_str()
                .zip(request.config.get("scope").as_str())
                .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
        {
            response.requires_replace.push(AttributePath::root("scope"));
        }
        let proposed = with_defaults(&request.proposed_new_state);
        let Some((scope, rules)) = search_from(&proposed) else {
            let mut fields = proposed.as_object().cloned().unwrap_or_default();
            for name in ["id", "orphaned", "removed_ids"] {
                fields.insert(name.into(), Value::unknown());
            }
            response.planned_state = Value::Object(fields);
            return response;
        };
        let clients = match self.data.clients() {
            Ok(clients) => clients,
            Err(diagnostics) => {
                response.diagnostics = diagnostics;
                return response;
            }
        };
        let prior_removed = if response.requires_replace.is_empty() {
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
        let deleting = proposed.get("mode").as_str() == Some("delete");
        let (removable, remaining): (Vec<Orphan>, Vec<Orphan>) = found
            .into_iter()
            .partition(|orphan| deleting && !orphan.inherited);
        let max = max_deletions(&proposed);
        if removable.len() > max {
            response.diagnostics.warning_at(
                AttributePath::root("max_deletions"),
                "Apply will refuse to delete",
                &too_many(removable.len(), max),
            );
        }
        let mut removed = prior_removed;
        removed.extend(removable.iter().map(|o| o.id.clone()));
        response.planned_state = with_outcome(&proposed, &remaining, &removed);
        response
    }

    async fn apply(&self, request: ApplyRequest) -> ApplyResponse {
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
                diagnostics.error("Nothing was deleted", &error);
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

    async fn read(&self, request: ReadRequest) -> ReadResponse {
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
        match orphans::find(&clients, &scope, &rules).await {
            Ok(found) => response.new_state = with_outcome(&state, &found, &removed_in(&state)),
            Err(error) => response
                .diagnostics
                .error("Cannot look for orphaned role assignments", &error),
        }
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

    #[test]
    fn defaults_are_safe() {
        let (scope, rules) = search_from(&config(&[(
            "scope",
            Value::from("/subscriptions/00000000-0000-0000-0000-000000000001"),
        )]))
        .unwrap();
        assert!(scope.starts_with("/subscriptions/"));
        assert_eq!(
            rules.principal_types,
            BTreeSet::from(["serviceprincipal".to_string()])
        );
        assert_eq!(rules.min_age, Duration::from_secs(24 * 3600));
        assert_eq!(max_deletions(&with_defaults(&config(&[]))), 50);
    }

    #[test]
    fn bad_arguments_name_the_attribute() {
        let diagnostics = validate_arguments(&config(&[
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
    fn management_groups_are_scopes() {
        assert!(validate_scope("/providers/Microsoft.Management/managementGroups/root").is_ok());
        assert!(validate_scope("/providers/Microsoft.Management/managementGroups/").is_err());
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
