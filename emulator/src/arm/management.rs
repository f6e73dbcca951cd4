//! Microsoft.Management: the management group hierarchy (read side), and the inheritance of
//! role assignments made at a management group down to its groups and subscriptions.
//!
//! The tenant root group is named after the tenant ID and always exists; every other group
//! and every subscription hangs below it (`World::management_groups`,
//! `World::subscription_groups`). Shapes follow the 2023-04-01 spec examples
//! (`GetManagementGroupWithExpandAndRecurse`, `GetDescendants`, `ListManagementGroups`,
//! `GetAllSubscriptionsFromManagementGroup`).

use std::sync::Arc;

use hyper::Method;
use serde_json::{json, Value};

use super::{check_provider_version, method_not_allowed};
use crate::app::{App, Ctx};
use crate::hierarchy::*;
use crate::http::{Req, Resp};
use crate::model::World;
use crate::util::rfc3339_z;

pub const MANAGEMENT_VERSIONS: &[&str] = &[
    "2017-08-31-preview",
    "2017-11-01-preview",
    "2018-01-01-preview",
    "2018-03-01-preview",
    "2019-11-01",
    "2020-02-01",
    "2020-05-01",
    "2020-10-01",
    "2021-04-01",
    "2023-04-01",
    "2024-02-01-preview",
];

const SUBSCRIPTION_CHILD_TYPE: &str = "/subscriptions";
const SUBSCRIPTION_DESCENDANT_TYPE: &str = "Microsoft.Management/managementGroups/subscriptions";
const READ_ACTION: &str = "Microsoft.Management/managementGroups/read";

fn can_read(world: &World, ctx: &Ctx, key: &str) -> bool {
    if !world.realism.enforce_rbac {
        return true;
    }
    let Some(oid) = ctx.caller() else {
        return true;
    };
    crate::authz::allowed(world, oid, READ_ACTION, &group_id(key))
}

/// What ARM answers for a group that does not exist or that the caller may not read: the
/// same 403, so a group's existence is not revealed.
fn forbidden(ctx: &Ctx, name: &str) -> Resp {
    let oid = ctx.caller().unwrap_or_default().to_string();
    let appid = ctx
        .claims
        .as_ref()
        .and_then(|c| c.appid.clone())
        .unwrap_or_else(|| oid.clone());
    Resp::arm_error(
        403,
        "AuthorizationFailed",
        &format!("The client '{appid}' with object id '{oid}' does not have authorization to perform action '{READ_ACTION}' over scope '/providers/{GROUP_TYPE}/{name}' or the scope is invalid. If access was recently granted, please refresh your credentials."),
    )
}

fn check_version(req: &Req, world: &World) -> Result<String, Resp> {
    check_provider_version(req, world, None, GROUP_TYPE, MANAGEMENT_VERSIONS, None)
}

pub fn handle(app: &Arc<App>, req: &Req, ctx: &Ctx, rest: &[&str]) -> Resp {
    if req.method != Method::GET {
        return method_not_allowed(req);
    }
    let world = app.world.read();
    if let Err(r) = check_version(req, &world) {
        return r;
    }
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(String::as_str).collect();
    match l.as_slice() {
        [] => list(app, req, ctx, &world),
        [_] => get(req, ctx, &world, rest[0]),
        [_, "descendants"] => descendants(app, req, ctx, &world, rest[0]),
        [_, "subscriptions"] => subscriptions(app, req, ctx, &world, rest[0], None),
        [_, "subscriptions", _] => subscriptions(app, req, ctx, &world, rest[0], Some(rest[2])),
        _ => Resp::arm_error(
            404,
            "InvalidResourceType",
            &format!(
                "The resource type could not be found for path '{}'.",
                req.path
            ),
        ),
    }
}

/// A page of `items` (sorted by key) after `$skiptoken`, with the next link under `link_name`.
fn page(app: &App, req: &Req, size: usize, link_name: &str, items: Vec<(String, Value)>) -> Resp {
    let token = req.q("$skiptoken").map(str::to_string);
    let mut rest = items
        .into_iter()
        .skip_while(|(k, _)| token.as_ref().is_some_and(|t| k.as_str() <= t.as_str()));
    let mut value = Vec::new();
    let mut last = None;
    for (k, v) in rest.by_ref().take(size.max(1)) {
        value.push(v);
        last = Some(k);
    }
    let next = match (rest.next(), last) {
        (Some(_), Some(last)) => {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &req.query {
                if k != "$skiptoken" {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("$skiptoken", &last);
            Value::String(format!("{}{}?{}", app.base, req.path, q.finish()))
        }
        _ => Value::Null,
    };
    let mut body = json!({ "value": value });
    body[link_name] = next;
    Resp::json(200, &body)
}

fn page_size(req: &Req, world: &World) -> usize {
    req.q("$top")
        .and_then(|t| t.parse::<usize>().ok())
        .filter(|t| *t > 0)
        .unwrap_or(world.realism.page_size)
}

/// `GET /providers/Microsoft.Management/managementGroups`: the groups the caller may read,
/// `@nextLink` paging (`$skiptoken`).
fn list(app: &App, req: &Req, ctx: &Ctx, world: &World) -> Resp {
    let mut keys = vec![root(world)];
    keys.extend(world.management_groups.keys().cloned());
    keys.sort();
    let items = keys
        .into_iter()
        .filter(|k| can_read(world, ctx, k))
        .map(|k| {
            let (name, display) = names(world, &k);
            let value = json!({
                "id": group_id(&name),
                "type": GROUP_TYPE,
                "name": name,
                "properties": {"tenantId": world.tenant_id, "displayName": display}
            });
            (k, value)
        })
        .collect();
    page(app, req, world.realism.page_size, "@nextLink", items)
}

fn child_json(world: &World, key: &str, recurse: bool, with_subscriptions: bool) -> Value {
    let (name, display) = names(world, key);
    let mut out = json!({
        "id": group_id(&name),
        "type": GROUP_TYPE,
        "name": name,
        "displayName": display,
    });
    if recurse {
        let kids = children_json(world, key, true, with_subscriptions);
        if !kids.is_empty() {
            out["children"] = Value::Array(kids);
        }
    }
    out
}

fn children_json(world: &World, key: &str, recurse: bool, with_subscriptions: bool) -> Vec<Value> {
    let (groups, subs) = children(world, key);
    let mut out: Vec<Value> = groups
        .iter()
        .map(|g| child_json(world, g, recurse, with_subscriptions))
        .collect();
    if with_subscriptions {
        out.extend(subs.iter().filter_map(|s| world.subscription(s)).map(|s| {
            json!({
                "id": format!("/subscriptions/{}", s.id),
                "type": SUBSCRIPTION_CHILD_TYPE,
                "name": s.id,
                "displayName": s.display_name,
            })
        }));
    }
    out
}

/// `GET …/managementGroups/{g}` with `$expand=children|path|ancestors`, `$recurse=true`
/// (with `$expand=children` only) and `$filter=children.childType ne Subscription`.
fn get(req: &Req, ctx: &Ctx, world: &World, name: &str) -> Resp {
    let Some(key) = group_key(world, name).filter(|k| can_read(world, ctx, k)) else {
        return forbidden(ctx, name);
    };
    let expand = req.q("$expand").unwrap_or_default().to_ascii_lowercase();
    let recurse = req
        .q("$recurse")
        .is_some_and(|r| r.eq_ignore_ascii_case("true"));
    if recurse && expand != "children" {
        return Resp::arm_error(
            400,
            "BadRequest",
            "The $recurse query string parameter can only be used together with $expand=children.",
        );
    }
    let with_subscriptions = !req.q("$filter").is_some_and(|f| {
        let f = f.to_ascii_lowercase();
        f.contains("childtype ne") && f.contains("subscription")
    });
    let (name, display) = names(world, &key);
    let updated = world
        .management_groups
        .get(&key)
        .map(|g| g.updated_ms)
        .unwrap_or(0);
    let mut details = json!({
        "version": 1,
        "updatedTime": rfc3339_z(updated),
        "updatedBy": world.client.object_id,
    });
    match parent(world, &key) {
        Some(p) => {
            let (pname, pdisplay) = names(world, &p);
            details["parent"] =
                json!({"id": group_id(&pname), "name": pname, "displayName": pdisplay});
        }
        None => details["parent"] = Value::Null,
    }
    // From the root down to the group's parent.
    let above: Vec<String> = chain(world, &key).into_iter().skip(1).collect();
    if expand == "path" {
        let path: Vec<Value> = above
            .iter()
            .rev()
            .chain(std::iter::once(&key))
            .map(|g| {
                let (n, d) = names(world, g);
                json!({"name": n, "displayName": d})
            })
            .collect();
        details["path"] = Value::Array(path);
    }
    if expand == "ancestors" {
        details["managementGroupAncestors"] =
            Value::Array(above.iter().map(|g| json!(names(world, g).0)).collect());
        details["managementGroupAncestorsChain"] = Value::Array(
            above
                .iter()
                .map(|g| {
                    let (n, d) = names(world, g);
                    json!({"name": n, "displayName": d})
                })
                .collect(),
        );
    }
    let mut properties = json!({
        "tenantId": world.tenant_id,
        "displayName": display,
        "details": details,
    });
    if expand == "children" {
        properties["children"] =
            Value::Array(children_json(world, &key, recurse, with_subscriptions));
    }
    Resp::json(
        200,
        &json!({
            "id": group_id(&name),
            "type": GROUP_TYPE,
            "name": name,
            "properties": properties,
        }),
    )
}

/// `GET …/managementGroups/{g}/descendants`: every group and subscription below, depth first,
/// each with its parent; `nextLink` paging (`$top`, `$skiptoken`).
fn descendants(app: &App, req: &Req, ctx: &Ctx, world: &World, name: &str) -> Resp {
    let Some(key) = group_key(world, name).filter(|k| can_read(world, ctx, k)) else {
        return forbidden(ctx, name);
    };
    let mut items: Vec<(String, Value)> = Vec::new();
    let mut stack = vec![key];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(g) = stack.pop() {
        if !seen.insert(g.clone()) {
            continue;
        }
        let parent_id = group_id(&names(world, &g).0);
        let (groups, subs) = children(world, &g);
        for child in &groups {
            let (n, d) = names(world, child);
            items.push((
                String::new(),
                json!({
                    "name": n,
                    "type": GROUP_TYPE,
                    "id": group_id(&n),
                    "properties": {"displayName": d, "parent": {"id": parent_id}}
                }),
            ));
        }
        for s in subs.iter().filter_map(|s| world.subscription(s)) {
            items.push((
                String::new(),
                json!({
                    "name": s.id,
                    "type": SUBSCRIPTION_DESCENDANT_TYPE,
                    "id": format!("/subscriptions/{}", s.id),
                    "properties": {"displayName": s.display_name, "parent": {"id": parent_id}}
                }),
            ));
        }
        stack.extend(groups.into_iter().rev());
    }
    // The position is the continuation token: zero-padded so that it sorts.
    let items = items
        .into_iter()
        .enumerate()
        .map(|(i, (_, v))| (format!("{i:08}"), v))
        .collect();
    page(app, req, page_size(req, world), "nextLink", items)
}

/// `GET …/managementGroups/{g}/subscriptions[/{s}]`: the subscriptions directly in a group.
fn subscriptions(
    app: &App,
    req: &Req,
    ctx: &Ctx,
    world: &World,
    name: &str,
    one: Option<&str>,
) -> Resp {
    let Some(key) = group_key(world, name).filter(|k| can_read(world, ctx, k)) else {
        return forbidden(ctx, name);
    };
    let group_name = names(world, &key).0;
    let item = |s: &crate::model::Subscription| {
        json!({
            "name": s.id,
            "id": format!("{}/subscriptions/{}", group_id(&group_name), s.id),
            "type": SUBSCRIPTION_DESCENDANT_TYPE,
            "properties": {
                "displayName": s.display_name,
                "parent": {"id": group_id(&group_name)},
                "state": if s.state.eq_ignore_ascii_case("Enabled") { "Active".to_string() } else { s.state.clone() },
                "tenant": world.tenant_id,
            }
        })
    };
    let (_, subs) = children(world, &key);
    match one {
        Some(sub) => match subs
            .iter()
            .find(|s| s.eq_ignore_ascii_case(sub))
            .and_then(|s| world.subscription(s))
        {
            Some(s) => Resp::json(200, &item(s)),
            None => Resp::arm_error(
                404,
                "NotFound",
                &format!(
                    "Subscription '{sub}' is not found under management group '{group_name}'."
                ),
            ),
        },
        None => {
            let items = subs
                .iter()
                .filter_map(|s| world.subscription(s))
                .map(|s| (s.id.clone(), item(s)))
                .collect();
            page(app, req, page_size(req, world), "nextLink", items)
        }
    }
}
