//! Microsoft.Resources: tenants, subscriptions, locations, providers, resource groups.

use std::sync::Arc;

use hyper::Method;
use serde_json::{json, Map, Value};

use super::{
    authorize, check_locks, check_resources_version, method_not_allowed, paged, rg_not_found,
    subscription_not_found,
};
use crate::app::{App, Ctx};
use crate::http::Req;
use crate::http::Resp;
use crate::model::{OpKind, Operation, ResourceGroup, World};
use crate::util::{guid, key, normalize_location, now_ms, region_display_name};

pub fn list_tenants(app: &Arc<App>, req: &Req) -> Resp {
    if let Err(r) = check_resources_version(req) {
        return r;
    }
    let world = app.world.read();
    Resp::json(
        200,
        &json!({"value": [{
            "id": format!("/tenants/{}", world.tenant_id),
            "tenantId": world.tenant_id,
            "tenantCategory": "Home",
            "country": "US",
            "countryCode": "US",
            "displayName": "Azure Emulator",
            "domains": ["emulator.onmicrosoft.com"],
            "defaultDomain": "emulator.onmicrosoft.com",
            "tenantType": "AAD"
        }]}),
    )
}

fn subscription_json(world: &World, sub: &crate::model::Subscription) -> Value {
    // Another tenant's subscription is seen through Lighthouse: managed by the world's tenant.
    let (tenant, managed_by) = match &sub.tenant_id {
        Some(tenant) => (tenant.clone(), json!([{"tenantId": world.tenant_id}])),
        None => (world.tenant_id.clone(), json!([])),
    };
    json!({
        "id": format!("/subscriptions/{}", sub.id),
        "authorizationSource": "RoleBased",
        "managedByTenants": managed_by,
        "subscriptionId": sub.id,
        "tenantId": tenant,
        "displayName": sub.display_name,
        "state": sub.state,
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off"
        }
    })
}

fn caller_sees(world: &World, ctx: &Ctx, sub: &str) -> bool {
    if !world.realism.enforce_rbac {
        return true;
    }
    let Some(oid) = ctx.caller() else { return true };
    let scope = format!("/subscriptions/{sub}");
    world.role_assignments.values().any(|ra| {
        ra.principal_id == oid.to_ascii_lowercase()
            && (crate::hierarchy::scope_covers(world, &ra.scope, &scope)
                || crate::util::scope_contains(&scope, &ra.scope))
    })
}

pub fn list_subscriptions(app: &Arc<App>, req: &Req, ctx: &Ctx) -> Resp {
    if let Err(r) = check_resources_version(req) {
        return r;
    }
    let world = app.world.read();
    let value: Vec<Value> = world
        .subscriptions
        .values()
        .filter(|s| !s.unlisted && caller_sees(&world, ctx, &s.id))
        .map(|s| subscription_json(&world, s))
        .collect();
    let n = value.len();
    Resp::json(
        200,
        &json!({"value": value, "count": {"type": "Total", "value": n}}),
    )
}

pub fn get_subscription(app: &Arc<App>, req: &Req, ctx: &Ctx, sub: &str) -> Resp {
    if req.method != Method::GET {
        return method_not_allowed(req);
    }
    if let Err(r) = check_resources_version(req) {
        return r;
    }
    let world = app.world.read();
    match world.subscription(sub) {
        Some(s) if caller_sees(&world, ctx, &s.id) => {
            Resp::json(200, &subscription_json(&world, s))
        }
        _ => subscription_not_found(sub),
    }
}

pub fn list_locations(app: &Arc<App>, req: &Req, _ctx: &Ctx, sub: &str) -> Resp {
    if let Err(r) = check_resources_version(req) {
        return r;
    }
    let world = app.world.read();
    let Some(s) = world.subscription(sub) else {
        return subscription_not_found(sub);
    };
    let regions: std::collections::BTreeSet<&str> = s
        .regions
        .iter()
        .map(String::as_str)
        .chain(crate::util::PUBLIC_REGIONS.iter().map(|(name, _)| *name))
        .collect();
    let value: Vec<Value> = regions
        .into_iter()
        .map(|r| {
            let display = region_display_name(r);
            json!({
                "id": format!("/subscriptions/{}/locations/{r}", s.id),
                "name": r,
                "type": "Region",
                "displayName": display,
                "regionalDisplayName": display,
                "metadata": {
                    "regionType": "Physical",
                    "regionCategory": "Recommended",
                    "geographyGroup": "Emulated",
                    "physicalLocation": display,
                    "pairedRegion": []
                }
            })
        })
        .collect();
    Resp::json(200, &json!({ "value": value }))
}

/// (resource type, api-versions) of a provider namespace.
type ProviderTypes = &'static [(&'static str, &'static [&'static str])];

const KNOWN_PROVIDERS: &[(&str, ProviderTypes)] = &[
    (
        "Microsoft.Compute",
        &[
            ("virtualMachines", super::COMPUTE_VERSIONS),
            ("virtualMachineScaleSets", super::COMPUTE_VERSIONS),
            ("locations", super::COMPUTE_VERSIONS),
            ("locations/operations", super::COMPUTE_VERSIONS),
        ],
    ),
    (
        "Microsoft.ManagedIdentity",
        &[
            ("userAssignedIdentities", super::MSI_VERSIONS),
            ("operations", super::MSI_VERSIONS),
        ],
    ),
    (
        "Microsoft.Authorization",
        &[
            ("roleAssignments", super::ROLE_ASSIGNMENT_VERSIONS),
            ("roleDefinitions", super::ROLE_DEFINITION_VERSIONS),
            ("locks", super::LOCK_VERSIONS),
            ("permissions", super::PERMISSION_VERSIONS),
        ],
    ),
    (
        "Microsoft.Resources",
        &[
            ("resourceGroups", super::RESOURCES_VERSIONS),
            ("subscriptions", super::RESOURCES_VERSIONS),
            ("providers", super::RESOURCES_VERSIONS),
        ],
    ),
];

fn provider_json(world: &World, sub: &crate::model::Subscription, ns: &str) -> Value {
    let known = KNOWN_PROVIDERS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(ns));
    let name = known
        .map(|k| k.0.to_string())
        .unwrap_or_else(|| ns.to_string());
    let registered = known
        .is_some_and(|k| k.0 == "Microsoft.Resources" || k.0 == "Microsoft.Authorization")
        || sub
            .registered_providers
            .iter()
            .any(|p| p.eq_ignore_ascii_case(ns));
    let locations: Vec<String> = sub.regions.iter().map(|r| region_display_name(r)).collect();
    let types: Vec<Value> = known
        .map(|k| {
            k.1.iter()
                .map(|(t, versions)| {
                    json!({"resourceType": t, "locations": locations, "apiVersions": versions.iter().rev().collect::<Vec<_>>(), "capabilities": "None"})
                })
                .collect()
        })
        .unwrap_or_default();
    let _ = world;
    json!({
        "id": format!("/subscriptions/{}/providers/{name}", sub.id),
        "namespace": name,
        "registrationState": if registered { "Registered" } else { "NotRegistered" },
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": types
    })
}

pub fn list_providers(app: &Arc<App>, req: &Req, _ctx: &Ctx, sub: &str) -> Resp {
    if let Err(r) = check_resources_version(req) {
        return r;
    }
    let world = app.world.read();
    let Some(s) = world.subscription(sub) else {
        return subscription_not_found(sub);
    };
    let mut names: Vec<String> = KNOWN_PROVIDERS.iter().map(|k| k.0.to_string()).collect();
    for p in &s.registered_providers {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(p)) {
            names.push(p.clone());
        }
    }
    let value: Vec<Value> = names.iter().map(|n| provider_json(&world, s, n)).collect();
    Resp::json(200, &json!({ "value": value }))
}

pub fn get_provider(app: &Arc<App>, req: &Req, _ctx: &Ctx, sub: &str, ns: &str) -> Resp {
    if req.method != Method::GET {
        return method_not_allowed(req);
    }
    if let Err(r) = check_resources_version(req) {
        return r;
    }
    let world = app.world.read();
    let Some(s) = world.subscription(sub) else {
        return subscription_not_found(sub);
    };
    Resp::json(200, &provider_json(&world, s, ns))
}

pub fn register_provider(app: &Arc<App>, req: &Req, _ctx: &Ctx, sub: &str, ns: &str) -> Resp {
    if req.method != Method::POST {
        return method_not_allowed(req);
    }
    if let Err(r) = check_resources_version(req) {
        return r;
    }
    let mut world = app.world.write();
    let key = sub.to_ascii_lowercase();
    let Some(s) = world.subscriptions.get_mut(&key) else {
        return subscription_not_found(sub);
    };
    if !s
        .registered_providers
        .iter()
        .any(|p| p.eq_ignore_ascii_case(ns))
    {
        s.registered_providers.insert(ns.to_string());
    }
    let s = s.clone();
    Resp::json(200, &provider_json(&world, &s, ns))
}

pub fn rg_json(rg: &ResourceGroup) -> Value {
    let mut v = json!({
        "id": rg.id,
        "name": rg.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": rg.location,
        "properties": {"provisioningState": "Succeeded"}
    });
    if !rg.tags.is_empty() {
        v["tags"] = Value::Object(rg.tags.clone());
    }
    if let Some(m) = &rg.managed_by {
        v["managedBy"] = json!(m);
    }
    v
}

pub fn list_rgs(app: &Arc<App>, req: &Req, ctx: &Ctx, sub: &str) -> Resp {
    if let Err(r) = check_resources_version(req) {
        return r;
    }
    let world = app.world.read();
    if world.subscription(sub).is_none() {
        return subscription_not_found(sub);
    }
    if let Err(r) = authorize(
        &world,
        ctx,
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        &format!("/subscriptions/{sub}"),
    ) {
        return r;
    }
    let prefix = key(&format!("/subscriptions/{sub}/resourcegroups/"));
    let filter = req.q("$filter").map(parse_tag_filter);
    let page = req
        .q("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(world.realism.page_size.max(1000));
    let items = world
        .resource_groups
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter(|(_, rg)| match &filter {
            Some(Some((name, value))) => rg.tags.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case(name)
                    && value
                        .as_ref()
                        .is_none_or(|val| v.as_str() == Some(val.as_str()))
            }),
            _ => true,
        })
        .map(|(k, rg)| (k.clone(), rg_json(rg)));
    paged(app, req, page, items)
}

/// `tagName eq 'a' and tagValue eq 'b'` -> (a, Some(b)).
fn parse_tag_filter(f: &str) -> Option<(String, Option<String>)> {
    let grab = |field: &str| -> Option<String> {
        let lower = f.to_ascii_lowercase();
        let i = lower.find(&format!("{field} eq '"))?;
        let rest = &f[i + field.len() + 5..];
        let end = rest.find('\'')?;
        Some(rest[..end].to_string())
    };
    grab("tagname").map(|n| (n, grab("tagvalue")))
}

pub fn rg(app: &Arc<App>, req: &Req, ctx: &Ctx, sub: &str, name: &str) -> Resp {
    let version = match check_resources_version(req) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let id = format!(
        "/subscriptions/{}/resourceGroups/{name}",
        sub.to_ascii_lowercase()
    );
    match req.method {
        Method::GET | Method::HEAD => {
            let world = app.world.read();
            if world.subscription(sub).is_none() {
                return subscription_not_found(sub);
            }
            if let Err(r) = authorize(
                &world,
                ctx,
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                &id,
            ) {
                return r;
            }
            match world.rg(sub, name) {
                Some(rg) if req.method == Method::GET => Resp::json(200, &rg_json(rg)),
                Some(_) => Resp::empty(204),
                None if req.method == Method::HEAD => Resp::empty(404),
                None => rg_not_found(name),
            }
        }
        Method::PUT | Method::PATCH => {
            let body = match req.json() {
                Ok(b) => b,
                Err(r) => return r,
            };
            let mut world = app.world.write();
            if world.subscription(sub).is_none() {
                return subscription_not_found(sub);
            }
            if let Err(r) = authorize(
                &world,
                ctx,
                "Microsoft.Resources/subscriptions/resourceGroups/write",
                &id,
            ) {
                return r;
            }
            if let Err(r) = check_locks(&world, &id, "write", false) {
                return r;
            }
            if !valid_rg_name(name) {
                return Resp::arm_error(
                    400,
                    "InvalidResourceGroupName",
                    &format!("Resource group name '{name}' is invalid. It must be 1-90 characters of letters, digits, underscores, hyphens, periods or parentheses, and must not end in a period."),
                );
            }
            let k = World::rg_key(sub, name);
            let existing = world.resource_groups.get(&k).cloned();
            if req.method == Method::PATCH {
                let Some(mut rg) = existing else {
                    return rg_not_found(name);
                };
                if let Some(tags) = body.get("tags").and_then(|t| t.as_object()) {
                    rg.tags = tags.clone();
                }
                if let Some(m) = body.get("managedBy") {
                    rg.managed_by = m.as_str().map(|s| s.to_string());
                }
                world.resource_groups.insert(k, rg.clone());
                return Resp::json(200, &rg_json(&rg));
            }
            let Some(loc) = body.get("location").and_then(|l| l.as_str()) else {
                return Resp::arm_error(
                    400,
                    "LocationRequired",
                    "The location property is required for this definition.",
                );
            };
            let loc = normalize_location(loc);
            let tags: Map<String, Value> = body
                .get("tags")
                .and_then(|t| t.as_object())
                .cloned()
                .unwrap_or_default();
            match existing {
                Some(mut rg) => {
                    if rg.location != loc {
                        return Resp::arm_error(
                            409,
                            "InvalidResourceGroupLocation",
                            &format!("Invalid resource group location '{loc}'. The Resource group already exists in location '{}'.", rg.location),
                        );
                    }
                    rg.tags = tags;
                    rg.managed_by = body
                        .get("managedBy")
                        .and_then(|m| m.as_str())
                        .map(|s| s.to_string());
                    world.resource_groups.insert(k, rg.clone());
                    Resp::json(200, &rg_json(&rg))
                }
                None => {
                    let rg = ResourceGroup {
                        id: id.clone(),
                        subscription: sub.to_ascii_lowercase(),
                        name: name.to_string(),
                        location: loc,
                        tags,
                        managed_by: body
                            .get("managedBy")
                            .and_then(|m| m.as_str())
                            .map(|s| s.to_string()),
                        created_ms: now_ms(),
                    };
                    world.resource_groups.insert(k, rg.clone());
                    Resp::json(201, &rg_json(&rg))
                }
            }
        }
        Method::DELETE => {
            let mut world = app.world.write();
            if world.subscription(sub).is_none() {
                return subscription_not_found(sub);
            }
            if let Err(r) = authorize(
                &world,
                ctx,
                "Microsoft.Resources/subscriptions/resourceGroups/delete",
                &id,
            ) {
                return r;
            }
            let Some(rg) = world.rg(sub, name).cloned() else {
                return rg_not_found(name);
            };
            if let Err(r) = check_locks(&world, &rg.id, "delete", true) {
                return r;
            }
            delete_rg_contents(&mut world, &rg);
            let op_id = guid();
            let now = now_ms();
            let until = now + world.realism.scaled_ms(world.realism.rg_delete_seconds);
            world.operations.insert(
                op_id.clone(),
                Operation {
                    id: op_id.clone(),
                    kind: OpKind::RgDelete,
                    resource_id: rg.id.clone(),
                    start_ms: now,
                    until_ms: until,
                },
            );
            let token = crate::util::base64url(format!("RGDELETE:{op_id}").as_bytes());
            let location = format!(
                "{}/subscriptions/{}/operationresults/{token}?api-version={version}",
                app.base,
                sub.to_ascii_lowercase()
            );
            let retry = until.saturating_sub(now).div_ceil(1000);
            Resp::empty(202)
                .with_header("location", location)
                .with_header("retry-after", retry.to_string())
        }
        _ => method_not_allowed(req),
    }
}

fn valid_rg_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 90
        && !name.ends_with('.')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '(' | ')'))
}

/// Removes everything inside a resource group (the group too).
pub fn delete_rg_contents(world: &mut World, rg: &ResourceGroup) {
    let prefix = format!("{}/", key(&rg.id));
    let in_rg = |k: &String| k.starts_with(&prefix);
    let identities: Vec<String> = world
        .identities
        .keys()
        .filter(|k| in_rg(k))
        .cloned()
        .collect();
    for k in identities {
        if let Some(i) = world.identities.remove(&k) {
            world.remove_principal(&i.principal_id);
        }
    }
    for kind in [
        crate::model::ComputeKind::Vm,
        crate::model::ComputeKind::Vmss,
    ] {
        let keys: Vec<String> = world
            .compute_map(kind)
            .keys()
            .filter(|k| in_rg(k))
            .cloned()
            .collect();
        for k in keys {
            if let Some(c) = world.compute_map_mut(kind).remove(&k) {
                if let Some(s) = c.identity.system {
                    world.remove_principal(&s.principal_id);
                }
            }
        }
    }
    world.locks.retain(|k, _| {
        !k.starts_with(&prefix) && !k.starts_with(&format!("{}/providers/", key(&rg.id)))
    });
    let rg_key = key(&rg.id);
    world.role_assignments.retain(|_, ra| {
        let s = key(&ra.scope);
        s != rg_key && !s.starts_with(&prefix)
    });
    world.resource_groups.remove(&rg_key);
}

pub fn operation_result(app: &Arc<App>, req: &Req, sub: &str, token: &str) -> Resp {
    let version = req.api_version().unwrap_or("2022-09-01").to_string();
    let decoded = crate::util::base64url_decode(token)
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let op_id = decoded.strip_prefix("RGDELETE:").unwrap_or("");
    let world = app.world.read();
    let Some(op) = world.operations.get(op_id) else {
        return Resp::arm_error(
            404,
            "OperationNotFound",
            &format!("The operation '{token}' could not be found."),
        );
    };
    let now = now_ms();
    if now < op.until_ms {
        let location = format!(
            "{}/subscriptions/{}/operationresults/{token}?api-version={version}",
            app.base,
            sub.to_ascii_lowercase()
        );
        let retry = op.until_ms.saturating_sub(now).div_ceil(1000);
        return Resp::empty(202)
            .with_header("location", location)
            .with_header("retry-after", retry.to_string());
    }
    Resp::empty(200)
}

/// Generic resource listing (`/subscriptions/{s}/resources`, `.../resourceGroups/{rg}/resources`).
pub fn list_resources(app: &Arc<App>, req: &Req, ctx: &Ctx, sub: &str, rg: Option<&str>) -> Resp {
    if let Err(r) = check_resources_version(req) {
        return r;
    }
    let world = app.world.read();
    if world.subscription(sub).is_none() {
        return subscription_not_found(sub);
    }
    if let Some(rg) = rg {
        if world.rg(sub, rg).is_none() {
            return rg_not_found(rg);
        }
    }
    let scope = match rg {
        Some(rg) => format!("/subscriptions/{sub}/resourceGroups/{rg}"),
        None => format!("/subscriptions/{sub}"),
    };
    if let Err(r) = authorize(
        &world,
        ctx,
        "Microsoft.Resources/subscriptions/resources/read",
        &scope,
    ) {
        return r;
    }
    let type_filter = req.q("$filter").and_then(|f| {
        let lower = f.to_ascii_lowercase();
        let i = lower.find("resourcetype eq '")?;
        let rest = &f[i + 17..];
        rest.find('\'').map(|e| rest[..e].to_ascii_lowercase())
    });
    // `$expand=createdTime,changedTime,provisioningState` (what `az resource list` sends)
    // adds those read-only members to every item (GenericResourceExpanded).
    let expand: Vec<String> = req
        .q("$expand")
        .map(|e| {
            e.split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let expanded = |v: &mut Value, created: u64, changed: u64, state: &str| {
        if expand.iter().any(|e| e == "createdtime") {
            v["createdTime"] = json!(crate::util::rfc3339_z(created));
        }
        if expand.iter().any(|e| e == "changedtime") {
            v["changedTime"] = json!(crate::util::rfc3339_z(changed.max(created)));
        }
        if expand.iter().any(|e| e == "provisioningstate") {
            v["provisioningState"] = json!(state);
        }
    };
    let now = crate::util::now_ms();
    let prefix = format!("{}/", key(&scope));
    let mut items: Vec<(String, Value)> = Vec::new();
    let want = |t: &str| {
        type_filter
            .as_ref()
            .is_none_or(|f| f == &t.to_ascii_lowercase())
    };
    if want("Microsoft.ManagedIdentity/userAssignedIdentities") {
        for (k, i) in world
            .identities
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
        {
            let mut v = json!({"id": i.id, "name": i.name, "type": "Microsoft.ManagedIdentity/userAssignedIdentities", "location": i.location, "tags": i.tags});
            expanded(&mut v, i.created_ms, i.changed_ms, "Succeeded");
            items.push((k.clone(), v));
        }
    }
    for kind in [
        crate::model::ComputeKind::Vm,
        crate::model::ComputeKind::Vmss,
    ] {
        if !want(kind.full_type()) {
            continue;
        }
        for (k, c) in world
            .compute_map(kind)
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
        {
            let mut v = json!({"id": c.id, "name": c.name, "type": kind.full_type(), "location": c.location, "tags": c.tags});
            if let Some(idn) = c.identity.to_json() {
                v["identity"] = idn;
            }
            expanded(
                &mut v,
                c.time_created_ms,
                c.changed_ms,
                &c.effective_state(now),
            );
            items.push((k.clone(), v));
        }
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let page = world.realism.page_size.max(1000);
    paged(app, req, page, items.into_iter())
}
