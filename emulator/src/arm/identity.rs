//! Microsoft.ManagedIdentity/userAssignedIdentities.

use std::sync::Arc;

use hyper::Method;
use serde_json::{json, Map, Value};

use super::{
    authorize, check_locks, check_provider_version, method_not_allowed, paged, resource_not_found,
    rg_not_found, subscription_not_found, MSI_VERSIONS,
};
use crate::app::{App, Ctx};
use crate::http::{Req, Resp};
use crate::model::UserIdentity;
use crate::util::{key, normalize_location};

const TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities";

/// ARM's JSON for an identity (MSI spells `resourcegroups` in lower case).
pub fn identity_json(i: &UserIdentity, version: &str) -> Value {
    let mut props = json!({
        "tenantId": i.tenant_id,
        "principalId": i.principal_id,
        "clientId": i.client_id,
    });
    if version >= "2023-07-31" || version.ends_with("-preview") && version >= "2022-01-31-preview" {
        props["isolationScope"] = json!(i.isolation_scope.clone().unwrap_or_else(|| "None".into()));
    }
    json!({
        "id": render_id(&i.id),
        "name": i.name,
        "type": TYPE,
        "location": i.location,
        "tags": i.tags,
        "properties": props
    })
}

fn render_id(id: &str) -> String {
    let parts: Vec<&str> = id.split('/').collect();
    parts
        .iter()
        .map(|p| {
            if p.eq_ignore_ascii_case("resourceGroups") {
                "resourcegroups"
            } else {
                p
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

pub fn known_location(world: &crate::model::World, sub: &str, loc: &str) -> bool {
    loc == "global"
        || crate::util::PUBLIC_REGIONS
            .iter()
            .any(|(name, _)| *name == loc)
        || world
            .subscription(sub)
            .is_some_and(|s| s.regions.iter().any(|r| r == loc))
}

pub fn list(app: &Arc<App>, req: &Req, ctx: &Ctx, sub: &str, rg: Option<&str>) -> Resp {
    let world = app.world.read();
    let version = match check_provider_version(
        req,
        &world,
        Some(sub),
        "userAssignedIdentities",
        MSI_VERSIONS,
        None,
    ) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if world.subscription(sub).is_none() {
        return subscription_not_found(sub);
    }
    let scope = match rg {
        Some(rg) => {
            if world.rg(sub, rg).is_none() {
                return rg_not_found(rg);
            }
            format!("/subscriptions/{sub}/resourceGroups/{rg}")
        }
        None => format!("/subscriptions/{sub}"),
    };
    if let Err(r) = authorize(
        &world,
        ctx,
        "Microsoft.ManagedIdentity/userAssignedIdentities/read",
        &scope,
    ) {
        return r;
    }
    let prefix = format!("{}/", key(&scope));
    let items = world
        .identities
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, i)| (k.clone(), identity_json(i, &version)));
    paged(app, req, world.realism.page_size, items)
}

pub fn item(app: &Arc<App>, req: &Req, ctx: &Ctx, sub: &str, rg: &str, name: &str) -> Resp {
    let id = format!(
        "/subscriptions/{}/resourceGroups/{rg}/providers/{TYPE}/{name}",
        sub.to_ascii_lowercase()
    );
    match req.method {
        Method::GET => {
            let world = app.world.read();
            let version = match check_provider_version(
                req,
                &world,
                Some(sub),
                "userAssignedIdentities",
                MSI_VERSIONS,
                None,
            ) {
                Ok(v) => v,
                Err(r) => return r,
            };
            if world.subscription(sub).is_none() {
                return subscription_not_found(sub);
            }
            if let Err(r) = authorize(
                &world,
                ctx,
                "Microsoft.ManagedIdentity/userAssignedIdentities/read",
                &id,
            ) {
                return r;
            }
            match world.identity(&id) {
                Some(i) => Resp::json(200, &identity_json(i, &version)),
                None if world.rg(sub, rg).is_none() => rg_not_found(rg),
                None => resource_not_found(TYPE, rg, name),
            }
        }
        Method::PUT | Method::PATCH => {
            let body = match req.json() {
                Ok(b) => b,
                Err(r) => return r,
            };
            let mut world = app.world.write();
            let version = match check_provider_version(
                req,
                &world,
                Some(sub),
                "userAssignedIdentities",
                MSI_VERSIONS,
                None,
            ) {
                Ok(v) => v,
                Err(r) => return r,
            };
            if world.subscription(sub).is_none() {
                return subscription_not_found(sub);
            }
            let Some(rg_name) = world.rg(sub, rg).map(|r| r.name.clone()) else {
                return rg_not_found(rg);
            };
            if let Err(r) = authorize(
                &world,
                ctx,
                "Microsoft.ManagedIdentity/userAssignedIdentities/write",
                &id,
            ) {
                return r;
            }
            if let Err(r) = check_locks(&world, &id, "write", false) {
                return r;
            }
            let existing = world.identity(&id).cloned();
            let tags: Option<Map<String, Value>> =
                body.get("tags").and_then(|t| t.as_object()).cloned();
            let isolation = body
                .pointer("/properties/isolationScope")
                .and_then(|v| v.as_str())
                .map(|s| s.to_string());
            if req.method == Method::PATCH {
                let Some(mut i) = existing else {
                    return resource_not_found(TYPE, rg, name);
                };
                if let Some(t) = tags {
                    i.tags = t;
                }
                if isolation.is_some() {
                    i.isolation_scope = isolation;
                }
                i.changed_ms = crate::util::now_ms();
                world.identities.insert(key(&id), i.clone());
                return Resp::json(200, &identity_json(&i, &version));
            }
            let Some(loc) = body.get("location").and_then(|l| l.as_str()) else {
                return Resp::arm_error(
                    400,
                    "LocationRequired",
                    "The location property is required for this definition.",
                );
            };
            let loc = normalize_location(loc);
            if !known_location(&world, sub, &loc) {
                return Resp::arm_error(
                    400,
                    "LocationNotAvailableForResourceType",
                    &format!("The provided location '{loc}' is not available for resource type '{TYPE}'. List of available regions for the resource type is 'eastus,eastus2,westus,westus2,westus3,centralus,northeurope,westeurope,uksouth,japaneast,australiaeast,southeastasia'."),
                );
            }
            match existing {
                Some(mut i) => {
                    if i.location != loc {
                        return Resp::arm_error(
                            400,
                            "InvalidResourceLocation",
                            &format!("The resource '{name}' already exists in location '{}' in resource group '{rg}'. A resource with the same name cannot be created in location '{loc}'. Please select a new resource name.", i.location),
                        );
                    }
                    i.tags = tags.unwrap_or_default();
                    if isolation.is_some() {
                        i.isolation_scope = isolation;
                    }
                    i.changed_ms = crate::util::now_ms();
                    world.identities.insert(key(&id), i.clone());
                    Resp::json(200, &identity_json(&i, &version))
                }
                None => {
                    let canonical = format!(
                        "/subscriptions/{}/resourceGroups/{rg_name}/providers/{TYPE}/{name}",
                        sub.to_ascii_lowercase()
                    );
                    let mut i = crate::scenario::create_identity(
                        &mut world,
                        &canonical,
                        &sub.to_ascii_lowercase(),
                        &rg_name,
                        name,
                        &loc,
                        tags.unwrap_or_default(),
                        None,
                        None,
                        false,
                    );
                    if isolation.is_some() {
                        i.isolation_scope = isolation;
                        world.identities.insert(key(&id), i.clone());
                    }
                    Resp::json(201, &identity_json(&i, &version))
                }
            }
        }
        Method::DELETE => {
            let mut world = app.world.write();
            if let Err(r) = check_provider_version(
                req,
                &world,
                Some(sub),
                "userAssignedIdentities",
                MSI_VERSIONS,
                None,
            ) {
                return r;
            }
            if world.subscription(sub).is_none() {
                return subscription_not_found(sub);
            }
            if let Err(r) = authorize(
                &world,
                ctx,
                "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
                &id,
            ) {
                return r;
            }
            if world.identity(&id).is_none() {
                return Resp::empty(204);
            }
            if let Err(r) = check_locks(&world, &id, "delete", true) {
                return r;
            }
            if let Some(i) = world.identities.remove(&key(&id)) {
                world.remove_principal(&i.principal_id);
                let k = key(&id);
                world
                    .locks
                    .retain(|lk, _| !lk.starts_with(&format!("{k}/")));
            }
            Resp::empty(200)
        }
        _ => method_not_allowed(req),
    }
}

/// The `concurrent_write` fault on a resource group or user-assigned identity: before the
/// matching PUT is served, another writer (the policy, another workspace) creates what it
/// names, if missing, in the location the PUT's body asks for (the group first, for an
/// identity), tagged `concurrentWriter` (or `tag`). The PUT then finds it: ARM answers 200,
/// not 201. Other paths are left to [`crate::arm::compute::concurrent_write`].
pub fn concurrent_create(app: &App, path: &str, body: &Value, tag: Option<&str>) {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is_group = segs.len() == 4;
    let is_identity = segs.len() == 8
        && segs[4].eq_ignore_ascii_case("providers")
        && segs[5].eq_ignore_ascii_case("Microsoft.ManagedIdentity")
        && segs[6].eq_ignore_ascii_case("userAssignedIdentities");
    if segs.len() < 4
        || !segs[0].eq_ignore_ascii_case("subscriptions")
        || !segs[2].eq_ignore_ascii_case("resourceGroups")
        || !(is_group || is_identity)
    {
        return;
    }
    let Some(loc) = body.get("location").and_then(Value::as_str) else {
        return;
    };
    let loc = normalize_location(loc);
    let (sub, rg) = (segs[1].to_ascii_lowercase(), segs[3]);
    let mut tags = Map::new();
    tags.insert(
        tag.unwrap_or("concurrentWriter").to_string(),
        json!("concurrent-create"),
    );
    let mut world = app.world.write();
    if world.subscription(&sub).is_none() {
        return;
    }
    let rg_key = crate::model::World::rg_key(&sub, rg);
    if let std::collections::btree_map::Entry::Vacant(slot) = world.resource_groups.entry(rg_key) {
        slot.insert(crate::model::ResourceGroup {
            id: format!("/subscriptions/{sub}/resourceGroups/{rg}"),
            subscription: sub.clone(),
            name: rg.to_string(),
            location: loc.clone(),
            tags: tags.clone(),
            managed_by: None,
            created_ms: crate::util::now_ms(),
        });
        tracing::info!("fault: concurrent create of resource group {rg}");
    }
    if is_identity {
        let rg_name = world
            .rg(&sub, rg)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        let id = format!(
            "/subscriptions/{sub}/resourceGroups/{rg_name}/providers/{TYPE}/{}",
            segs[7]
        );
        if world.identity(&id).is_none() {
            crate::scenario::create_identity(
                &mut world, &id, &sub, &rg_name, segs[7], &loc, tags, None, None, true,
            );
            tracing::info!("fault: concurrent create of identity {id}");
        }
    }
}
