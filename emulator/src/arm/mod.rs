//! Azure Resource Manager: path routing, api-version checks, RBAC, paging.

pub mod authorization;
pub mod compute;
pub mod identity;
pub mod locks;
pub mod management;
pub mod resources;

use std::sync::Arc;

use serde_json::Value;

use crate::app::{App, Ctx};
use crate::http::{Req, Resp};
use crate::model::World;

pub const RESOURCES_VERSIONS: &[&str] = &[
    "2014-04-01",
    "2015-01-01",
    "2015-11-01",
    "2016-02-01",
    "2016-06-01",
    "2016-07-01",
    "2016-09-01",
    "2017-05-10",
    "2017-08-01",
    "2018-02-01",
    "2018-05-01",
    "2018-06-01",
    "2019-03-01",
    "2019-05-01",
    "2019-05-10",
    "2019-06-01",
    "2019-07-01",
    "2019-08-01",
    "2019-10-01",
    "2019-11-01",
    "2020-01-01",
    "2020-06-01",
    "2020-08-01",
    "2020-10-01",
    "2021-01-01",
    "2021-04-01",
    "2022-01-01",
    "2022-09-01",
    "2022-12-01",
    "2023-07-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-01-01",
    "2025-03-01",
    "2025-04-01",
];
pub const MSI_VERSIONS: &[&str] = &[
    "2015-08-31-preview",
    "2018-11-30",
    "2021-09-30-preview",
    "2022-01-31-preview",
    "2023-01-31",
    "2023-07-31-preview",
    "2024-11-30",
    "2025-01-31-preview",
    "2025-05-31-preview",
];
pub const COMPUTE_VERSIONS: &[&str] = &[
    "2019-07-01",
    "2019-12-01",
    "2020-06-01",
    "2020-12-01",
    "2021-03-01",
    "2021-04-01",
    "2021-07-01",
    "2021-11-01",
    "2022-03-01",
    "2022-08-01",
    "2022-11-01",
    "2023-03-01",
    "2023-07-01",
    "2023-09-01",
    "2024-03-01",
    "2024-07-01",
    "2024-11-01",
    "2025-02-01",
    "2025-04-01",
    "2025-11-01",
    "2026-04-01",
];
pub const LOCK_VERSIONS: &[&str] = &["2015-01-01", "2016-09-01", "2020-05-01"];
pub const ROLE_ASSIGNMENT_VERSIONS: &[&str] = &[
    "2015-07-01",
    "2017-10-01-preview",
    "2018-01-01-preview",
    "2018-09-01-preview",
    "2020-03-01-preview",
    "2020-04-01-preview",
    "2020-08-01-preview",
    "2020-10-01-preview",
    "2022-01-01-preview",
    "2022-04-01",
];
pub const ROLE_DEFINITION_VERSIONS: &[&str] = &[
    "2015-07-01",
    "2018-01-01-preview",
    "2022-04-01",
    "2022-05-01-preview",
];
pub const PERMISSION_VERSIONS: &[&str] = &[
    "2015-07-01",
    "2018-01-01-preview",
    "2022-04-01",
    "2022-05-01-preview",
];

/// Checks `api-version` for a Microsoft.Resources route.
pub fn check_resources_version(req: &Req) -> Result<String, Resp> {
    let Some(v) = req.api_version() else {
        return Err(missing_api_version());
    };
    if RESOURCES_VERSIONS.contains(&v) {
        return Ok(v.to_string());
    }
    let mut list: Vec<&str> = RESOURCES_VERSIONS.to_vec();
    list.reverse();
    Err(Resp::arm_error(
        400,
        "InvalidApiVersionParameter",
        &format!(
            "The api-version '{v}' is invalid. The supported versions are '{}'. The supported locations are ''.",
            list.join(",")
        ),
    ))
}

pub fn missing_api_version() -> Resp {
    Resp::arm_error(
        400,
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
    )
}

/// Checks `api-version` for a resource-provider type.
pub fn check_provider_version(
    req: &Req,
    world: &World,
    sub: Option<&str>,
    type_name: &str,
    versions: &[&str],
    location: Option<&str>,
) -> Result<String, Resp> {
    let Some(v) = req.api_version() else {
        return Err(missing_api_version());
    };
    if versions.iter().any(|s| s.eq_ignore_ascii_case(v)) {
        return Ok(v.to_string());
    }
    let mut list: Vec<&str> = versions.to_vec();
    list.reverse();
    let locations = sub
        .and_then(|s| world.subscription(s))
        .map(|s| {
            s.regions
                .iter()
                .map(|r| {
                    crate::util::region_display_name(r)
                        .to_ascii_lowercase()
                        .replace(' ', "")
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    Err(Resp::arm_error(
        400,
        "NoRegisteredProviderFound",
        &format!(
            "No registered resource provider found for location '{}' and API version '{v}' for type '{type_name}'. The supported api-versions are '{}'. The supported locations are '{locations}'.",
            location.unwrap_or("global"),
            list.join(", ")
        ),
    ))
}

/// 403 when RBAC is enforced and the caller may not perform `action` at `scope`.
pub fn authorize(world: &World, ctx: &Ctx, action: &str, scope: &str) -> Result<(), Resp> {
    if !world.realism.enforce_rbac {
        return Ok(());
    }
    let Some(oid) = ctx.caller() else {
        return Ok(());
    };
    if crate::authz::allowed(world, oid, action, scope) {
        return Ok(());
    }
    let appid = ctx
        .claims
        .as_ref()
        .and_then(|c| c.appid.clone())
        .unwrap_or_else(|| oid.to_string());
    Err(Resp::arm_error(
        403,
        "AuthorizationFailed",
        &format!("The client '{appid}' with object id '{oid}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."),
    ))
}

pub fn subscription_not_found(sub: &str) -> Resp {
    Resp::arm_error(
        404,
        "SubscriptionNotFound",
        &format!("The subscription '{sub}' could not be found."),
    )
}

pub fn rg_not_found(rg: &str) -> Resp {
    Resp::arm_error(
        404,
        "ResourceGroupNotFound",
        &format!("Resource group '{rg}' could not be found."),
    )
}

pub fn resource_not_found(full_type: &str, rg: &str, name: &str) -> Resp {
    Resp::arm_error(
        404,
        "ResourceNotFound",
        &format!("The Resource '{full_type}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
    )
}

pub fn method_not_allowed(req: &Req) -> Resp {
    Resp::arm_error(
        405,
        "MethodNotAllowed",
        &format!(
            "The requested resource does not support http method '{}'.",
            req.method
        ),
    )
}

/// Locks that forbid `op` ("delete" or "write") on `id` -> 409 ScopeLocked.
pub fn check_locks(
    world: &World,
    id: &str,
    op: &str,
    include_descendants: bool,
) -> Result<(), Resp> {
    let locks = if include_descendants {
        world.locks_touching(id)
    } else {
        world.locks_covering(id)
    };
    let blocking: Vec<&crate::model::Lock> = locks
        .into_iter()
        .filter(|l| op == "write" && l.level.eq_ignore_ascii_case("ReadOnly") || op == "delete")
        .collect();
    if blocking.is_empty() {
        return Ok(());
    }
    let scopes: Vec<String> = blocking
        .iter()
        .map(|l| format!("'{}'", l.scope.to_ascii_lowercase()))
        .collect();
    Err(Resp::arm_error(
        409,
        "ScopeLocked",
        &format!(
            "The scope '{id}' cannot perform {op} operation because following scope(s) are locked: {}. Please remove the lock and try again.",
            scopes.join(",")
        ),
    ))
}

/// One page of a list, with `nextLink` when more remain.
pub fn paged<I, T>(app: &App, req: &Req, page_size: usize, items: I) -> Resp
where
    I: Iterator<Item = (String, T)>,
    T: serde::Serialize,
{
    let token = req.q("$skiptoken").map(|s| s.to_string());
    let mut iter =
        items.skip_while(|(k, _)| token.as_ref().is_some_and(|t| k.as_str() <= t.as_str()));
    let mut value = Vec::with_capacity(page_size.min(1000));
    let mut last: Option<String> = None;
    for (k, v) in iter.by_ref().take(page_size) {
        value.push(v);
        last = Some(k);
    }
    let more = iter.next().is_some();
    let mut next_link = None;
    if more {
        if let Some(last) = last {
            let mut q = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &req.query {
                if k != "$skiptoken" {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("$skiptoken", &last);
            let path = percent_encoding::utf8_percent_encode(&req.path, PATH_SET).to_string();
            next_link = Some(format!("{}{}?{}", app.base, path, q.finish()));
        }
    }
    #[derive(serde::Serialize)]
    struct Page<T> {
        value: Vec<T>,
        #[serde(rename = "nextLink", skip_serializing_if = "Option::is_none")]
        next_link: Option<String>,
    }
    Resp::json_of(200, &Page { value, next_link })
}

const PATH_SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// What ARM's front door checks of every PUT/PATCH body before a resource provider sees it:
/// valid JSON, an object, and the envelope members in their declared types (`location` a
/// string, `tags` a map of strings, `properties` an object). Otherwise `400
/// InvalidRequestContent` with Json.NET's description of the first problem.
pub fn check_body_shape(req: &Req) -> Result<(), Resp> {
    let body = req.json()?;
    let invalid = |detail: String| {
        Resp::arm_error(
            400,
            "InvalidRequestContent",
            &format!("The request content was invalid and could not be deserialized: '{detail}'."),
        )
    };
    let position = |member: &str| -> usize {
        // Where the member's value ends in the raw body, as Json.NET reports it.
        let text = String::from_utf8_lossy(&req.body);
        let Some(at) = text.find(&format!("\"{member}\"")) else {
            return 0;
        };
        let Some(colon) = text[at..].find(':') else {
            return 0;
        };
        let start = at + colon + 1;
        let mut stream =
            serde_json::Deserializer::from_str(&text[start..]).into_iter::<serde_json::Value>();
        let _ = stream.next();
        start + stream.byte_offset()
    };
    let kind = |v: &Value| match v {
        Value::Array(_) => "array (e.g. [1,2,3])",
        _ => "object (e.g. {\"name\":\"value\"})",
    };
    let object = match &body {
        Value::Null => return Ok(()),
        Value::Object(o) => o,
        other => {
            return Err(invalid(format!(
                "Cannot deserialize the current JSON {} into type 'ResourceDefinition' because the type requires a JSON object (e.g. {{\"name\":\"value\"}}) to deserialize correctly. Path '', line 1, position 1.",
                if other.is_array() { "array (e.g. [1,2,3])" } else { "value" }
            )))
        }
    };
    if let Some(location) = object.get("location") {
        if location.is_object() || location.is_array() {
            return Err(invalid(format!(
                "Unexpected character encountered while parsing value: {}. Path 'location', line 1, position {}.",
                if location.is_array() { '[' } else { '{' },
                position("location")
            )));
        }
    }
    if let Some(tags) = object.get("tags") {
        match tags {
            Value::Null => {}
            Value::Object(map) => {
                if let Some((k, v)) = map.iter().find(|(_, v)| v.is_object() || v.is_array()) {
                    return Err(invalid(format!(
                        "Unexpected character encountered while parsing value: {}. Path 'tags.{k}', line 1, position {}.",
                        if v.is_array() { '[' } else { '{' },
                        position(k)
                    )));
                }
            }
            Value::Array(_) => {
                return Err(invalid(format!(
                    "Cannot deserialize the current JSON {} into type 'System.Collections.Generic.Dictionary`2[System.String,System.String]' because the type requires a JSON object (e.g. {{\"name\":\"value\"}}) to deserialize correctly. Path 'tags', line 1, position {}.",
                    kind(tags),
                    position("tags")
                )))
            }
            other => {
                return Err(invalid(format!(
                    "Error converting value {other} to type 'System.Collections.Generic.Dictionary`2[System.String,System.String]'. Path 'tags', line 1, position {}.",
                    position("tags")
                )))
            }
        }
    }
    if let Some(properties) = object.get("properties") {
        if !(properties.is_object() || properties.is_null()) {
            return Err(invalid(format!(
                "Error converting value {properties} to type 'Newtonsoft.Json.Linq.JObject'. Path 'properties', line 1, position {}.",
                position("properties")
            )));
        }
    }
    Ok(())
}

/// ARM refuses creates, updates and actions (PUT, PATCH, POST) in a `Disabled` or `Deleted`
/// subscription; reads and deletes go through.
fn read_only_subscription(app: &App, req: &Req, segs: &[&str]) -> Option<Resp> {
    if !matches!(
        req.method,
        hyper::Method::PUT | hyper::Method::PATCH | hyper::Method::POST
    ) {
        return None;
    }
    let [first, sub, _, ..] = segs else {
        return None;
    };
    if !eq(first, "subscriptions") {
        return None;
    }
    let world = app.world.read();
    let state = &world.subscription(sub)?.state;
    (state.eq_ignore_ascii_case("Disabled") || state.eq_ignore_ascii_case("Deleted")).then(|| {
        Resp::arm_error(
            409,
            "ReadOnlyDisabledSubscription",
            &format!("The subscription '{sub}' is disabled and therefore marked as read only. You cannot perform any write actions on this subscription until it is re-enabled."),
        )
    })
}

pub fn handle(app: &Arc<App>, req: &Req, ctx: &Ctx) -> Resp {
    if matches!(req.method, hyper::Method::PUT | hyper::Method::PATCH) {
        if let Err(r) = check_body_shape(req) {
            return r;
        }
    }
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(refused) = read_only_subscription(app, req, &segs) {
        return refused;
    }
    // `{scope}/providers/Microsoft.Authorization/{type}[/{name}]`
    if let Some(i) = (0..segs.len().saturating_sub(2))
        .rev()
        .find(|&i| eq(segs[i], "providers") && eq(segs[i + 1], "Microsoft.Authorization"))
    {
        let rest = &segs[i + 2..];
        let scope = if i == 0 {
            "/".to_string()
        } else {
            format!("/{}", segs[..i].join("/"))
        };
        if !rest.is_empty() {
            let kind = rest[0].to_ascii_lowercase();
            let name = rest.get(1).copied();
            let extra = rest.len() > 2;
            match (kind.as_str(), extra) {
                ("locks", false) => return locks::handle(app, req, ctx, &scope, name),
                ("roleassignments", false) => {
                    return authorization::assignments(app, req, ctx, &scope, name)
                }
                ("roledefinitions", false) => {
                    return authorization::definitions(app, req, ctx, &scope, name)
                }
                ("permissions", false) if name.is_none() => {
                    return authorization::permissions(app, req, ctx, &scope)
                }
                _ => {}
            }
        }
    }
    let l: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let ls: Vec<&str> = l.iter().map(|s| s.as_str()).collect();
    if let ["providers", "microsoft.management", "managementgroups", ..] = ls.as_slice() {
        return management::handle(app, req, ctx, &segs[3..]);
    }
    match ls.as_slice() {
        ["tenants"] => resources::list_tenants(app, req),
        ["subscriptions"] => resources::list_subscriptions(app, req, ctx),
        ["subscriptions", _] => resources::get_subscription(app, req, ctx, segs[1]),
        ["subscriptions", _, "locations"] => resources::list_locations(app, req, ctx, segs[1]),
        ["subscriptions", _, "providers"] => resources::list_providers(app, req, ctx, segs[1]),
        ["subscriptions", _, "providers", _] => {
            resources::get_provider(app, req, ctx, segs[1], segs[3])
        }
        ["subscriptions", _, "providers", _, "register"] => {
            resources::register_provider(app, req, ctx, segs[1], segs[3])
        }
        ["subscriptions", _, "resourcegroups"] => resources::list_rgs(app, req, ctx, segs[1]),
        ["subscriptions", _, "resources"] => {
            resources::list_resources(app, req, ctx, segs[1], None)
        }
        ["subscriptions", _, "resourcegroups", _] => resources::rg(app, req, ctx, segs[1], segs[3]),
        ["subscriptions", _, "resourcegroups", _, "resources"] => {
            resources::list_resources(app, req, ctx, segs[1], Some(segs[3]))
        }
        ["subscriptions", _, "operationresults", _] => {
            resources::operation_result(app, req, segs[1], segs[3])
        }
        ["subscriptions", _, "providers", "microsoft.compute", "locations", _, "operations", _] => {
            compute::operation_status(app, req, segs[1], segs[7])
        }
        ["subscriptions", _, "providers", "microsoft.compute", "virtualmachines"] => {
            compute::list(app, req, ctx, segs[1], None, crate::model::ComputeKind::Vm)
        }
        ["subscriptions", _, "providers", "microsoft.compute", "virtualmachinescalesets"] => {
            compute::list(
                app,
                req,
                ctx,
                segs[1],
                None,
                crate::model::ComputeKind::Vmss,
            )
        }
        ["subscriptions", _, "providers", "microsoft.managedidentity", "userassignedidentities"] => {
            identity::list(app, req, ctx, segs[1], None)
        }
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.compute", "virtualmachines"] => {
            compute::list(
                app,
                req,
                ctx,
                segs[1],
                Some(segs[3]),
                crate::model::ComputeKind::Vm,
            )
        }
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.compute", "virtualmachinescalesets"] => {
            compute::list(
                app,
                req,
                ctx,
                segs[1],
                Some(segs[3]),
                crate::model::ComputeKind::Vmss,
            )
        }
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.compute", "virtualmachines", _] => {
            compute::item(
                app,
                req,
                ctx,
                segs[1],
                segs[3],
                segs[7],
                crate::model::ComputeKind::Vm,
            )
        }
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.compute", "virtualmachinescalesets", _] => {
            compute::item(
                app,
                req,
                ctx,
                segs[1],
                segs[3],
                segs[7],
                crate::model::ComputeKind::Vmss,
            )
        }
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.compute", "virtualmachines", _, "instanceview"] => {
            compute::instance_view(app, req, ctx, segs[1], segs[3], segs[7])
        }
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.managedidentity", "userassignedidentities"] => {
            identity::list(app, req, ctx, segs[1], Some(segs[3]))
        }
        ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.managedidentity", "userassignedidentities", _] => {
            identity::item(app, req, ctx, segs[1], segs[3], segs[7])
        }
        ["subscriptions", _, "resourcegroups", _, "providers", ns, typ, ..] => {
            let world = app.world.read();
            if world.subscription(segs[1]).is_none() {
                return subscription_not_found(segs[1]);
            }
            if world.rg(segs[1], segs[3]).is_none() {
                return rg_not_found(segs[3]);
            }
            Resp::arm_error(
                400,
                "InvalidResourceType",
                &format!("The resource type '{}' could not be found in the namespace '{}' for api version '{}'.", typ, ns, req.api_version().unwrap_or("")),
            )
        }
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
