//! Finding role assignments whose principal no longer exists, and removing them safely.
//!
//! Shared by the `mig_orphan_cleanup` resource and action and the
//! `mig_orphaned_role_assignments` data source. The rules that keep it safe:
//! - a principal counts as gone only when Graph does not return it; a failed Graph call, or
//!   an answer that cannot be read, stops everything (it never means "gone");
//! - a scope in another tenant than the one Graph answers for (a customer's subscription
//!   reached through Azure Lighthouse) is refused: Graph cannot see that tenant's
//!   principals, so every one of them would look deleted;
//! - assignments younger than `min_age` are never candidates (a new principal may not have
//!   replicated to Graph yet);
//! - assignments inherited from above the scope are reported, never removed;
//! - each candidate is confirmed again (Graph answers 404 for that very object) right
//!   before it is deleted, and more candidates than `max_deletions` deletes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use time::OffsetDateTime;

use crate::azure::authorization::RoleAssignment;
use crate::azure::AzureClients;

#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Lower-case principal types, like `serviceprincipal`.
    pub principal_types: BTreeSet<String>,
    pub min_age: Duration,
    /// Lower-case role definition GUIDs.
    pub excluded_roles: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Orphan {
    pub id: String,
    pub principal_id: String,
    pub principal_type: String,
    pub role_definition_id: String,
    pub role_name: Option<String>,
    pub scope: String,
    pub created_on: Option<String>,
    /// Granted at a scope above the one given: reported, never removed.
    pub inherited: bool,
}

/// The last segment of a role definition ID (the role's GUID), lower-cased.
pub fn role_guid(role_definition_id: &str) -> String {
    role_definition_id
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Whether `inner` is `outer` or below it (ARM scopes, compared case-insensitively).
pub fn is_at_or_below(inner: &str, outer: &str) -> bool {
    let inner = inner.trim_end_matches('/').to_ascii_lowercase();
    let outer = outer.trim_end_matches('/').to_ascii_lowercase();
    inner == outer || inner.starts_with(&format!("{outer}/"))
}

fn old_enough(assignment: &RoleAssignment, min_age: Duration, now: OffsetDateTime) -> bool {
    let Some(created) = assignment.created_on.as_deref().and_then(|text| {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
    }) else {
        // No creation time: treat as old, as ARM only omits it for long-standing assignments.
        return true;
    };
    now - created >= time::Duration::try_from(min_age).unwrap_or(time::Duration::MAX)
}

/// The subscription GUID of a subscription or resource group scope; `None` for a management
/// group (or anything else).
pub fn subscription_in_scope(scope: &str) -> Option<&str> {
    let mut segments = scope.trim_matches('/').split('/');
    match (segments.next(), segments.next()) {
        (Some(first), Some(id))
            if first.eq_ignore_ascii_case("subscriptions") && !id.is_empty() =>
        {
            Some(id)
        }
        _ => None,
    }
}

/// Whether Graph can tell who exists at `scope`: the tenant that owns the scope's
/// subscription must be the one Graph answers for. `Err` says why not and what to do.
pub fn check_tenants(
    scope: &str,
    scope_tenant: Option<&str>,
    graph_tenant: Option<&str>,
) -> Result<(), String> {
    let Some(graph_tenant) = graph_tenant else {
        return Err(format!(
            "cannot tell which tenant Microsoft Graph answers for (its token names none, and the provider's `tenant_id` is not a GUID), so it cannot be checked that the principals at {scope} are in it. Nothing is treated as orphaned. Set the provider's `tenant_id` (or ARM_TENANT_ID) to the tenant's GUID."
        ));
    };
    let Some(scope_tenant) = scope_tenant else {
        return Err(format!(
            "ARM does not say which tenant the subscription of {scope} belongs to, so it cannot be checked that Microsoft Graph (tenant {graph_tenant}) sees its principals. Nothing is treated as orphaned. Check that the principal can read the subscription (`scope`)."
        ));
    };
    if scope_tenant.eq_ignore_ascii_case(graph_tenant) {
        return Ok(());
    }
    Err(format!(
        "`scope` {scope} is in a subscription of tenant {scope_tenant}, but Microsoft Graph answers for tenant {graph_tenant}, the one the provider signs in to (the subscription is reached through Azure Lighthouse, or another tenant's access). Graph cannot see tenant {scope_tenant}'s principals: it answers 404 for every one of them, live or deleted, so none can be told orphaned. Nothing is treated as orphaned and nothing is deleted. To clean up there, use a provider configured for that tenant (`tenant_id = \"{scope_tenant}\"` with a principal of that tenant, for instance as a provider alias) and set this block's `provider` to it."
    ))
}

/// The tenant the scope belongs to (its subscription's `tenantId`; a management group is
/// always the signed-in tenant's: ARM serves no other tenant's group, and Lighthouse delegates
/// subscriptions and resource groups only), and the tenant Graph answers for (the `tid` of
/// the Graph token, else the provider's `tenant_id` when it is a GUID).
pub async fn check_scope_tenant(clients: &AzureClients, scope: &str) -> Result<(), String> {
    let Some(subscription) = subscription_in_scope(scope) else {
        return Ok(());
    };
    let graph_tenant = match clients.graph.tenant_id().await {
        Ok(Some(tenant)) => Some(tenant),
        Ok(None) => Some(clients.tenant_id().to_ascii_lowercase())
            .filter(|t| crate::azure::ids::validate_guid("tenant ID", t).is_ok()),
        Err(error) => {
            return Err(format!(
                "cannot get a Microsoft Graph token, so nothing is treated as orphaned: {error}"
            ))
        }
    };
    let scope_tenant = clients
        .subscriptions
        .tenant_of(subscription)
        .await
        .map_err(|error| {
            format!("cannot read subscription {subscription} to learn its tenant, so nothing is treated as orphaned: {error}")
        })?;
    check_tenants(scope, scope_tenant.as_deref(), graph_tenant.as_deref())
}

/// The orphaned assignments visible at `scope` under `rules`, sorted by ID. Refused for a
/// scope in another tenant than Graph's (see [`check_tenants`]).
pub async fn find(
    clients: &AzureClients,
    scope: &str,
    rules: &Rules,
) -> Result<Vec<Orphan>, String> {
    check_scope_tenant(clients, scope).await?;
    search(clients, scope, rules).await
}

/// [`find`] without the tenant check: for a caller that made it already.
pub async fn search(
    clients: &AzureClients,
    scope: &str,
    rules: &Rules,
) -> Result<Vec<Orphan>, String> {
    let now = OffsetDateTime::now_utc();
    let assignments = clients
        .authorization
        .list_role_assignments_below(scope)
        .await
        .map_err(|e| format!("cannot list the role assignments at {scope}: {e}"))?;
    let considered: Vec<&RoleAssignment> = assignments
        .iter()
        .filter(|a| {
            rules
                .principal_types
                .contains(&a.principal_type.to_ascii_lowercase())
        })
        .filter(|a| {
            !rules
                .excluded_roles
                .contains(&role_guid(&a.role_definition_id))
        })
        .filter(|a| old_enough(a, rules.min_age, now))
        .collect();
    let principals: Vec<String> = considered
        .iter()
        .map(|a| a.principal_id.to_ascii_lowercase())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let existing = clients
        .graph
        .existing_object_ids(&principals)
        .await
        .map_err(|e| format!("Microsoft Graph could not say which principals exist, so nothing is treated as orphaned: {e}"))?;
    let mut role_names: HashMap<String, Option<String>> = HashMap::new();
    let mut orphans = Vec::new();
    for assignment in considered {
        if existing.contains(&assignment.principal_id.to_ascii_lowercase()) {
            continue;
        }
        let guid = role_guid(&assignment.role_definition_id);
        if !role_names.contains_key(&guid) {
            let name = clients
                .authorization
                .role_name(&assignment.role_definition_id)
                .await
                .unwrap_or_else(|error| {
                    tracing::debug!(%error, role = %assignment.role_definition_id, "role name unavailable");
                    None
                });
            role_names.insert(guid.clone(), name);
        }
        orphans.push(Orphan {
            id: assignment.id.clone(),
            principal_id: assignment.principal_id.clone(),
            principal_type: assignment.principal_type.clone(),
            role_definition_id: assignment.role_definition_id.clone(),
            role_name: role_names.get(&guid).cloned().flatten(),
            scope: assignment.scope.clone(),
            created_on: assignment.created_on.clone(),
            inherited: !is_at_or_below(&assignment.scope, scope),
        });
    }
    orphans.sort();
    Ok(orphans)
}

/// What a removal achieved.
#[derive(Debug, Default)]
pub struct Removal {
    /// Deleted now, or already gone when we came to delete it.
    pub removed: BTreeSet<String>,
    /// Not removed, with the reason (the principal exists again, a failed call, ...).
    pub kept: BTreeMap<String, String>,
    /// Set when a Graph or ARM failure stopped the removal: the rest was not attempted.
    pub stopped: Option<String>,
}

/// Removes `candidates` one by one, each confirmed just before: the assignment still
/// exists and Graph answers 404 for its principal. `progress` hears of each step.
pub async fn remove(
    clients: &AzureClients,
    candidates: &[Orphan],
    progress: &(dyn Fn(String) + Send + Sync),
) -> Removal {
    let mut removal = Removal::default();
    for (index, orphan) in candidates.iter().enumerate() {
        if orphan.inherited {
            removal
                .kept
                .insert(orphan.id.clone(), "inherited from above the scope".into());
            continue;
        }
        match clients.graph.directory_object(&orphan.principal_id).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                removal.kept.insert(
                    orphan.id.clone(),
                    format!("principal {} exists again", orphan.principal_id),
                );
                continue;
            }
            Err(error) => {
                removal.stopped = Some(format!(
                    "Microsoft Graph failed while confirming principal {}: {error}. Nothing more was deleted.",
                    orphan.principal_id
                ));
                for rest in &candidates[index..] {
                    removal.kept.insert(rest.id.clone(), "not attempted".into());
                }
                return removal;
            }
        }
        match clients
            .authorization
            .delete_role_assignment(&orphan.id)
            .await
        {
            Ok(()) => {
                progress(format!(
                    "removed {} ({} for deleted principal {})",
                    orphan.id,
                    orphan.role_name.as_deref().unwrap_or("role"),
                    orphan.principal_id
                ));
                removal.removed.insert(orphan.id.clone());
            }
            Err(error) => {
                removal.stopped = Some(format!("cannot delete {}: {error}", orphan.id));
                for rest in &candidates[index..] {
                    removal.kept.insert(rest.id.clone(), "not attempted".into());
                }
                return removal;
            }
        }
    }
    removal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_by_path_segments() {
        let sub = "/subscriptions/00000000-0000-0000-0000-000000000001";
        assert!(is_at_or_below(&format!("{sub}/resourceGroups/rg"), sub));
        assert!(is_at_or_below(&sub.to_uppercase(), sub));
        assert!(!is_at_or_below(sub, &format!("{sub}/resourceGroups/rg")));
        assert!(!is_at_or_below(
            "/subscriptions/00000000-0000-0000-0000-0000000000012",
            sub
        ));
        assert!(!is_at_or_below("/", sub));
    }

    #[test]
    fn young_assignments_are_not_candidates() {
        let now = OffsetDateTime::now_utc();
        let assignment = |created: Option<OffsetDateTime>| RoleAssignment {
            id: "x".into(),
            name: "x".into(),
            scope: "/".into(),
            role_definition_id: "/r/1".into(),
            principal_id: "p".into(),
            principal_type: "ServicePrincipal".into(),
            created_on: created.map(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap()
            }),
        };
        let day = Duration::from_secs(24 * 3600);
        assert!(!old_enough(
            &assignment(Some(now - time::Duration::minutes(5))),
            day,
            now
        ));
        assert!(old_enough(
            &assignment(Some(now - time::Duration::days(3))),
            day,
            now
        ));
        assert!(old_enough(&assignment(None), day, now));
    }

    #[test]
    fn the_scope_must_be_in_the_tenant_graph_answers_for() {
        let scope = "/subscriptions/00000000-0000-0000-0000-0000000000c2/resourceGroups/rg";
        let home = "aaaaaaaa-0000-0000-0000-000000000001";
        let customer = "cccccccc-0000-0000-0000-000000000002";
        assert_eq!(check_tenants(scope, Some(home), Some(home)), Ok(()));
        assert_eq!(
            check_tenants(scope, Some(&home.to_uppercase()), Some(home)),
            Ok(()),
            "GUIDs compare without case"
        );
        let refused = check_tenants(scope, Some(customer), Some(home)).unwrap_err();
        assert!(refused.contains("`scope`"), "{refused}");
        assert!(
            refused.contains(customer) && refused.contains(home),
            "{refused}"
        );
        assert!(refused.contains("tenant_id"), "names the fix: {refused}");
        assert!(
            refused.contains("Nothing is treated as orphaned"),
            "{refused}"
        );
        assert!(
            check_tenants(scope, None, Some(home)).is_err(),
            "unknown: refused"
        );
        assert!(
            check_tenants(scope, Some(home), None).is_err(),
            "unknown: refused"
        );
    }

    #[test]
    fn only_subscription_scopes_name_a_subscription() {
        let sub = "00000000-0000-0000-0000-000000000001";
        assert_eq!(
            subscription_in_scope(&format!("/subscriptions/{sub}")),
            Some(sub)
        );
        assert_eq!(
            subscription_in_scope(&format!("/SUBSCRIPTIONS/{sub}/resourceGroups/rg/")),
            Some(sub)
        );
        assert_eq!(
            subscription_in_scope("/providers/Microsoft.Management/managementGroups/mg"),
            None
        );
        assert_eq!(subscription_in_scope("/subscriptions/"), None);
    }

    #[test]
    fn role_guids_compare_whatever_the_prefix() {
        assert_eq!(
            role_guid("/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/B24988AC-6180-42A0-AB88-20F7382DD24C"),
            role_guid("b24988ac-6180-42a0-ab88-20f7382dd24c")
        );
    }
}
