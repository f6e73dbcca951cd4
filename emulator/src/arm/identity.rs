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
