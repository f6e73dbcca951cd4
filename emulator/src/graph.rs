//! Microsoft Graph v1.0: directory objects, service principals, users.

use std::sync::Arc;

use hyper::Method;
use serde_json::{json, Map, Value};

use crate::app::{App, Ctx};
use crate::http::{Req, Resp};
use crate::model::Principal;
use crate::util::{guid, now_ms, rfc3339_z};

const GRAPH_BASE: &str = "https://graph.microsoft.com/v1.0";

fn graph_error(req: &Req, ctx: &Ctx, status: u16, code: &str, message: &str) -> Resp {
    let now = rfc3339_z(now_ms());
    let date = now
        .split('.')
        .next()
        .unwrap_or(&now)
        .trim_end_matches('Z')
        .to_string();
    Resp::json(
        status,
        &json!({"error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": date,
                "request-id": ctx.request_id,
                "client-request-id": req.header("client-request-id").map(|s| s.to_string()).unwrap_or_else(guid)
            }
        }}),
    )
}

fn not_found(req: &Req, ctx: &Ctx, id: &str) -> Resp {
    graph_error(
        req,
        ctx,
        404,
        "Request_ResourceNotFound",
        &format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

pub fn principal_json(p: &Principal, tenant: &str) -> Value {
    if p.kind == "User" {
        return json!({
            "@odata.type": "#microsoft.graph.user",
            "id": p.id,
            "businessPhones": [],
            "displayName": p.display_name,
            "givenName": null,
            "jobTitle": null,
            "mail": null,
            "mobilePhone": null,
            "officeLocation": null,
            "preferredLanguage": null,
            "surname": null,
            "userPrincipalName": p.user_principal_name
        });
    }
    let app_id = p.app_id.clone().unwrap_or_default();
    let mut names = vec![app_id.clone()];
    if let Some(r) = &p.mi_resource_id {
        names.push(format!(
            "https://identity.azure.net/{}",
            crate::util::base64url(r.as_bytes())
        ));
    }
    json!({
        "@odata.type": "#microsoft.graph.servicePrincipal",
        "id": p.id,
        "deletedDateTime": null,
        "accountEnabled": true,
        "alternativeNames": p.alternative_names,
        "appDisplayName": if p.sp_type == "ManagedIdentity" { Value::Null } else { json!(p.display_name) },
        "appDescription": null,
        "appId": app_id,
        "applicationTemplateId": null,
        "appOwnerOrganizationId": if p.sp_type == "ManagedIdentity" { Value::Null } else { json!(tenant) },
        "appRoleAssignmentRequired": false,
        "createdDateTime": rfc3339_z(p.created_ms),
        "description": null,
        "disabledByMicrosoftStatus": null,
        "displayName": p.display_name,
        "homepage": null,
        "loginUrl": null,
        "logoutUrl": null,
        "notes": null,
        "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": null,
        "preferredTokenSigningKeyThumbprint": null,
        "replyUrls": [],
        "servicePrincipalNames": names,
        "servicePrincipalType": p.sp_type,
        "signInAudience": if p.sp_type == "ManagedIdentity" { Value::Null } else { json!("AzureADMyOrg") },
        "tags": [],
        "tokenEncryptionKeyId": null,
        "info": null,
        "samlSingleSignOnSettings": null,
        "addIns": [],
        "appRoles": [],
        "keyCredentials": [],
        "oauth2PermissionScopes": [],
        "passwordCredentials": [],
        "resourceSpecificApplicationPermissions": [],
        "verifiedPublisher": {"displayName": null, "verifiedPublisherId": null, "addedDateTime": null}
    })
}

fn select(v: Value, req: &Req) -> Value {
    let Some(sel) = req.q("$select") else {
        return v;
    };
    let keep: Vec<&str> = sel.split(',').map(|s| s.trim()).collect();
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                if k.starts_with("@odata")
                    || k == "id"
                    || keep.iter().any(|s| s.eq_ignore_ascii_case(&k))
                {
                    out.insert(k, val);
                }
            }
            Value::Object(out)
        }
        other => other,
    }
}

fn quoted_after(text: &str, marker: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let i = lower.find(marker)?;
    let rest = &text[i + marker.len()..];
    let end = rest.find('\'')?;
    Some(rest[..end].to_string())
}

pub fn handle(app: &Arc<App>, req: &Req, ctx: &Ctx) -> Resp {
    let path = req.path.trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let world = app.world.read();
    let now = now_ms();
    let tenant = world.tenant_id.clone();
    let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let l: Vec<&str> = lower.iter().map(|s| s.as_str()).collect();
    match (req.method.clone(), l.as_slice()) {
        (Method::POST, [_, "directoryobjects", "getbyids"]) => {
            let body = req.json().unwrap_or(Value::Null);
            let Some(ids) = body.get("ids").and_then(|i| i.as_array()) else {
                return graph_error(
                    req,
                    ctx,
                    400,
                    "Request_BadRequest",
                    "Invalid request: the 'ids' parameter is required.",
                );
            };
            if ids.len() > 1000 {
                return graph_error(
                    req,
                    ctx,
                    400,
                    "Request_BadRequest",
                    "The number of ids exceeds the maximum of 1000.",
                );
            }
            let types: Vec<String> = body
                .get("types")
                .and_then(|t| t.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str())
                        .map(|s| s.to_ascii_lowercase())
                        .collect()
                })
                .unwrap_or_default();
            let mut value = Vec::new();
            for id in ids.iter().filter_map(|i| i.as_str()) {
                if let Some(p) = world.principal_visible(id, now) {
                    let t = if p.kind == "User" {
                        "user"
                    } else {
                        "serviceprincipal"
                    };
                    if types.is_empty() || types.iter().any(|x| x == t) {
                        value.push(select(principal_json(p, &tenant), req));
                    }
                }
            }
            Resp::json(
                200,
                &json!({"@odata.context": format!("{GRAPH_BASE}/$metadata#directoryObjects"), "value": value}),
            )
        }
        (Method::GET, [_, "serviceprincipals"]) => {
            let f = req.q("$filter").unwrap_or("");
            let app_id = quoted_after(f, "appid eq '");
            let spn = quoted_after(f, "eq '")
                .filter(|_| f.to_ascii_lowercase().contains("serviceprincipalnames"));
            let name = quoted_after(f, "displayname eq '");
            let value: Vec<Value> = world
                .principals
                .values()
                .filter(|p| p.kind != "User" && world.principal_visible(&p.id, now).is_some())
                .filter(|p| {
                    app_id.as_ref().is_none_or(|a| {
                        p.app_id
                            .as_deref()
                            .is_some_and(|x| x.eq_ignore_ascii_case(a))
                    }) && name.as_ref().is_none_or(|n| &p.display_name == n)
                        && spn.as_ref().is_none_or(|s| {
                            p.app_id
                                .as_deref()
                                .is_some_and(|x| x.eq_ignore_ascii_case(s))
                                || p.mi_resource_id
                                    .as_deref()
                                    .is_some_and(|x| x.eq_ignore_ascii_case(s))
                        })
                })
                .take(999)
                .map(|p| select(principal_json(p, &tenant), req))
                .collect();
            Resp::json(
                200,
                &json!({"@odata.context": format!("{GRAPH_BASE}/$metadata#servicePrincipals"), "value": value}),
            )
        }
        (Method::GET, [_, "serviceprincipals", id])
        | (Method::GET, [_, "directoryobjects", id])
        | (Method::GET, [_, "users", id]) => {
            let raw_id = segs[2];
            let is_sp_path = l[1] == "serviceprincipals";
            let found = if let Some(app_id) = id
                .strip_prefix("(appid='")
                .and_then(|s| s.strip_suffix("')"))
            {
                world.principals.values().find(|p| {
                    p.app_id
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(app_id))
                        && world.principal_visible(&p.id, now).is_some()
                })
            } else if let Some(app_id) = id
                .strip_prefix("serviceprincipals(appid='")
                .and_then(|s| s.strip_suffix("')"))
            {
                world.principals.values().find(|p| {
                    p.app_id
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(app_id))
                        && world.principal_visible(&p.id, now).is_some()
                })
            } else {
                world.principal_visible(id, now)
            };
            let found = found.filter(|p| match l[1] {
                "serviceprincipals" => p.kind != "User",
                "users" => p.kind == "User",
                _ => true,
            });
            match found {
                Some(p) => {
                    let mut v = select(principal_json(p, &tenant), req);
                    let entity = if p.kind == "User" {
                        "users"
                    } else {
                        "servicePrincipals"
                    };
                    v["@odata.context"] = json!(format!("{GRAPH_BASE}/$metadata#{entity}/$entity"));
                    if is_sp_path || l[1] == "users" {
                        if let Value::Object(m) = &mut v {
                            m.remove("@odata.type");
                        }
                    }
                    Resp::json(200, &v)
                }
                None => not_found(req, ctx, raw_id),
            }
        }
        (Method::GET, [_, "organization"]) => Resp::json(
            200,
            &json!({"@odata.context": format!("{GRAPH_BASE}/$metadata#organization"), "value": [{"id": tenant, "displayName": "Azure Emulator", "verifiedDomains": [{"name": "emulator.onmicrosoft.com", "isDefault": true, "isInitial": true, "type": "Managed"}]}]}),
        ),
        _ => {
            // `servicePrincipals(appId='...')` arrives as one segment.
            if segs.len() == 2 && lower[1].starts_with("serviceprincipals(appid='") {
                let app_id = segs[1].split('\'').nth(1).unwrap_or("").to_string();
                return match world.principals.values().find(|p| {
                    p.app_id
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(&app_id))
                        && world.principal_visible(&p.id, now).is_some()
                }) {
                    Some(p) => {
                        let mut v = select(principal_json(p, &tenant), req);
                        v["@odata.context"] =
                            json!(format!("{GRAPH_BASE}/$metadata#servicePrincipals/$entity"));
                        if let Value::Object(m) = &mut v {
                            m.remove("@odata.type");
                        }
                        Resp::json(200, &v)
                    }
                    None => not_found(req, ctx, &format!("servicePrincipals(appId='{app_id}')")),
                };
            }
            graph_error(
                req,
                ctx,
                400,
                "BadRequest",
                &format!(
                    "Resource not found for the segment '{}'.",
                    segs.last().unwrap_or(&"")
                ),
            )
        }
    }
}
