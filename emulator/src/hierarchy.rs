//! The management group hierarchy as the emulator's world holds it: the tenant root group,
//! each group's parent and children, the group a subscription hangs under, and whether a
//! role assignment at one scope reaches another (a management group's assignments reach its
//! groups, their subscriptions and everything in them). Pure functions over [`World`]: the
//! ARM handlers (`arm::management`) and authorization (`authz`) both read it, and it needs
//! neither.

use crate::model::World;
use crate::util::scope_contains;

pub const GROUP_TYPE: &str = "Microsoft.Management/managementGroups";

/// The tenant root group's name (the tenant ID), lower case.
pub fn root(world: &World) -> String {
    world.tenant_id.to_ascii_lowercase()
}

/// The ARM ID of a group.
pub fn group_id(name: &str) -> String {
    format!("/providers/{GROUP_TYPE}/{name}")
}

/// The lower-cased key of an existing group named `name` (any casing).
pub fn group_key(world: &World, name: &str) -> Option<String> {
    let k = name.to_ascii_lowercase();
    (k == root(world) || world.management_groups.contains_key(&k)).then_some(k)
}

/// A group's name as declared and its display name.
pub fn names(world: &World, key: &str) -> (String, String) {
    match world.management_groups.get(key) {
        Some(g) => (g.name.clone(), g.display_name.clone()),
        None => (root(world), "Tenant Root Group".to_string()),
    }
}

/// The parent group of a group (`None` for the root).
pub fn parent(world: &World, key: &str) -> Option<String> {
    if key == root(world) {
        return None;
    }
    Some(
        world
            .management_groups
            .get(key)
            .and_then(|g| g.parent.clone())
            .filter(|p| group_key(world, p).is_some())
            .unwrap_or_else(|| root(world)),
    )
}

/// The group, its parent, ... up to the root.
pub fn chain(world: &World, key: &str) -> Vec<String> {
    let mut out = vec![key.to_string()];
    let mut current = key.to_string();
    while let Some(p) = parent(world, &current) {
        if out.contains(&p) {
            break;
        }
        out.push(p.clone());
        current = p;
    }
    out
}

/// The group a subscription is placed in (the root unless the scenario placed it).
pub fn subscription_group(world: &World, sub: &str) -> String {
    world
        .subscription_groups
        .get(&sub.to_ascii_lowercase())
        .filter(|g| group_key(world, g).is_some())
        .cloned()
        .unwrap_or_else(|| root(world))
}

/// The group named by a management group scope (`/providers/Microsoft.Management/managementGroups/{g}`).
pub fn scope_group(scope: &str) -> Option<String> {
    let segs: Vec<&str> = scope.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [p, ns, t, g, ..]
            if p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case("Microsoft.Management")
                && t.eq_ignore_ascii_case("managementGroups") =>
        {
            Some(g.to_ascii_lowercase())
        }
        _ => None,
    }
}

/// The groups above (and at) `scope`: for a group scope its chain, for a subscription (or
/// anything in one) its group's chain, else none.
pub fn groups_above(world: &World, scope: &str) -> Vec<String> {
    if let Some(g) = scope_group(scope) {
        return group_key(world, &g)
            .map(|k| chain(world, &k))
            .unwrap_or_default();
    }
    let first = scope.split('/').find(|s| !s.is_empty()).unwrap_or_default();
    if first.eq_ignore_ascii_case("subscriptions") {
        if let Some(sub) = crate::util::subscription_of(scope) {
            return chain(world, &subscription_group(world, &sub));
        }
    }
    Vec::new()
}

/// Whether a role assignment at `assignment_scope` applies at `scope`: the scope itself or
/// below it, where a management group's assignments reach its groups, their subscriptions
/// and everything in them.
pub fn scope_covers(world: &World, assignment_scope: &str, scope: &str) -> bool {
    if scope_contains(assignment_scope, scope) {
        return true;
    }
    match scope_group(assignment_scope) {
        Some(g)
            if !assignment_scope
                .trim_end_matches('/')
                .contains("/subscriptions/") =>
        {
            groups_above(world, scope).contains(&g)
        }
        _ => false,
    }
}

/// Direct children of a group: groups then subscriptions (lower-cased keys / IDs), sorted.
pub fn children(world: &World, key: &str) -> (Vec<String>, Vec<String>) {
    let groups = world
        .management_groups
        .keys()
        .filter(|k| parent(world, k).as_deref() == Some(key))
        .cloned()
        .collect();
    let subs = world
        .subscriptions
        .keys()
        .filter(|s| subscription_group(world, s) == key)
        .cloned()
        .collect();
    (groups, subs)
}
