//! Microsoft.Authorization/locks at any scope.

use std::sync::Arc;

use hyper::Method;
use serde_json::{json, Value};

use super::{
    authorize, check_provider_version, method_not_allowed, paged, rg_not_found,
    subscription_not_found, LOCK_VERSIONS,
};
use crate::app::{App, Ctx};
use crate::http::{Req, Resp};
use crate::model::{Lock, World};
use crate::util::{key, scope_contains};

pub fn lock_json(l: &Lock) -> Value {
    let mut props = json!({"level": l.level});
    if let Some(n) = &l.notes {
        props["notes"] = json!(n);
    }
    if let Some(o) = &l.owners {
        props["owners"] = o.clone();
    }
    json!({
        "properties": props,
        "id": l.id,
        "type": "Microsoft.Authorization/locks",
        "name": l.name
    })
}

/// Checks that a scope (subscription, group, or a resource we know) exists.
pub fn scope_exists(world: &World, scope: &str) -> Result<(), Resp> {
    let segs: Vec<&str> = scope.split('/').filter(|s| !s.is_empty()).collect();
    if segs.is_empty() {
        return Ok(());
    }
    if segs.len() >= 2 && segs[0].eq_ignore_ascii_case("subscriptions") {
        if world.subscription(segs[1]).is_none() {
            return Err(subscription_not_found(segs[1]));
        }
        if segs.len() == 2 {
            return Ok(());
        }
        if segs.len() >= 4 && segs[2].eq_ignore_ascii_case("resourceGroups") {
            if world.rg(segs[1], segs[3]).is_none() {
                return Err(rg_not_found(segs[3]));
            }
            if segs.len() == 4 {
                return Ok(());
            }
            if segs.len() >= 8 && segs[4].eq_ignore_ascii_case("providers") {
                let base: String = format!("/{}", segs[..8].join("/"));
                let k = key(&base);
                let found = world.identities.contains_key(&k)
                    || world.vms.contains_key(&k)
                    || world.vmss.contains_key(&k);
                if found {
                    return Ok(());
                }
                return Err(Resp::arm_error(
                    404,
                    "ResourceNotFound",
                    &format!(
                        "The Resource '{}/{}/{}' under resource group '{}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                        segs[5], segs[6], segs[7], segs[3]
                    ),
                ));
            }
        }
    }
    Err(Resp::arm_error(
        400,
        "InvalidScope",
        &format!("The scope '{scope}' is not valid."),
    ))
}

pub fn handle(app: &Arc<App>, req: &Req, ctx: &Ctx, scope: &str, name: Option<&str>) -> Resp {
    let sub = crate::util::subscription_of(scope);
    match (req.method.clone(), name) {
        (Method::GET, None) => {
            let world = app.world.read();
            if let Err(r) =
                check_provider_version(req, &world, sub.as_deref(), "locks", LOCK_VERSIONS, None)
            {
                return r;
            }
            if let Err(r) = scope_exists(&world, scope) {
                return r;
            }
            if let Err(r) = authorize(&world, ctx, "Microsoft.Authorization/locks/read", scope) {
                return r;
            }
            let at_scope = req
                .q("$filter")
                .is_some_and(|f| f.to_ascii_lowercase().contains("atscope()"));
            let items = world.locks.iter().filter(|(_, l)| {
                scope_contains(&l.scope, scope) || (!at_scope && scope_contains(scope, &l.scope))
            });
            let items: Vec<(String, Value)> =
                items.map(|(k, l)| (k.clone(), lock_json(l))).collect();
            paged(
                app,
                req,
                world.realism.page_size.max(1000),
                items.into_iter(),
            )
        }
        (Method::GET, Some(name)) => {
            let world = app.world.read();
            if let Err(r) =
                check_provider_version(req, &world, sub.as_deref(), "locks", LOCK_VERSIONS, None)
            {
                return r;
            }
            if let Err(r) = scope_exists(&world, scope) {
                return r;
            }
            let id = lock_id(scope, name);
            if let Err(r) = authorize(&world, ctx, "Microsoft.Authorization/locks/read", scope) {
                return r;
            }
            match world.locks.get(&key(&id)) {
                Some(l) => Resp::json(200, &lock_json(l)),
                None => Resp::arm_error(404, "LockNotFound", "The lock could not be found."),
            }
        }
        (Method::PUT, Some(name)) => {
            let body = match req.json() {
                Ok(b) => b,
                Err(r) => return r,
            };
            let mut world = app.world.write();
            if let Err(r) =
                check_provider_version(req, &world, sub.as_deref(), "locks", LOCK_VERSIONS, None)
            {
                return r;
            }
            if let Err(r) = scope_exists(&world, scope) {
                return r;
            }
            if let Err(r) = authorize(&world, ctx, "Microsoft.Authorization/locks/write", scope) {
                return r;
            }
            let level = body
                .pointer("/properties/level")
                .and_then(|l| l.as_str())
                .unwrap_or("");
            let level = if level.eq_ignore_ascii_case("CanNotDelete") {
                "CanNotDelete"
            } else if level.eq_ignore_ascii_case("ReadOnly") {
                "ReadOnly"
            } else {
                return Resp::arm_error(
                    400,
                    "LockLevelInvalid",
                    &format!("The lock level '{level}' is invalid. Valid lock levels are 'CanNotDelete' and 'ReadOnly'."),
                );
            };
            let notes = body
                .pointer("/properties/notes")
                .and_then(|n| n.as_str())
                .map(|s| s.to_string());
            if notes.as_ref().is_some_and(|n| n.chars().count() > 512) {
                return Resp::arm_error(
                    400,
                    "LockNotesTooLong",
                    "The lock notes must be 512 characters or fewer.",
                );
            }
            let owners = body
                .pointer("/properties/owners")
                .cloned()
                .filter(|o| !o.is_null());
            let id = lock_id(scope, name);
            let k = key(&id);
            let created = !world.locks.contains_key(&k);
            let l = Lock {
                id: world.locks.get(&k).map(|l| l.id.clone()).unwrap_or(id),
                scope: scope.trim_end_matches('/').to_string(),
                name: world
                    .locks
                    .get(&k)
                    .map(|l| l.name.clone())
                    .unwrap_or_else(|| name.to_string()),
                level: level.to_string(),
                notes,
                owners,
            };
            world.locks.insert(k, l.clone());
            Resp::json(if created { 201 } else { 200 }, &lock_json(&l))
        }
        (Method::DELETE, Some(name)) => {
            let mut world = app.world.write();
            if let Err(r) =
                check_provider_version(req, &world, sub.as_deref(), "locks", LOCK_VERSIONS, None)
            {
                return r;
            }
            if let Err(r) = scope_exists(&world, scope) {
                return r;
            }
            if let Err(r) = authorize(&world, ctx, "Microsoft.Authorization/locks/delete", scope) {
                return r;
            }
            match world.locks.remove(&key(&lock_id(scope, name))) {
                Some(_) => Resp::empty(200),
                None => Resp::empty(204),
            }
        }
        _ => method_not_allowed(req),
    }
}

fn lock_id(scope: &str, name: &str) -> String {
    let s = scope.trim_end_matches('/');
    format!("{s}/providers/Microsoft.Authorization/locks/{name}")
}
