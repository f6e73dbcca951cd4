//! Microsoft.Authorization role assignments, role definitions and permissions.

use std::sync::Arc;

use hyper::Method;
use serde_json::{json, Value};

use super::locks::scope_exists;
use super::{
    authorize, check_provider_version, method_not_allowed, paged, PERMISSION_VERSIONS,
    ROLE_ASSIGNMENT_VERSIONS, ROLE_DEFINITION_VERSIONS,
};
use crate::app::{App, Ctx};
use crate::authz::{builtin_role_by_name_or_id, roles_at, BuiltinRole, BUILTIN_ROLES};
use crate::http::{Req, Resp};
use crate::model::{RoleAssignment, World};
use crate::util::{is_guid, key, now_ms, rfc3339_z, scope_contains, subscription_of};

fn role_definition_id(scope: &str, guid: &str) -> String {
    match subscription_of(scope) {
        Some(sub) => {
            format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}")
        }
        None => format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
    }
}

pub fn assignment_json(ra: &RoleAssignment) -> Value {
    json!({
        "properties": {
            "roleDefinitionId": role_definition_id(&ra.scope, &ra.role_definition_guid),
            "principalId": ra.principal_id,
            "principalType": ra.principal_type,
            "scope": ra.scope,
            "condition": ra.condition,
            "conditionVersion": ra.condition_version,
            "createdOn": rfc3339_z(ra.created_ms),
            "updatedOn": rfc3339_z(ra.updated_ms),
            "createdBy": ra.created_by,
            "updatedBy": ra.created_by,
            "delegatedManagedIdentityResourceId": ra.delegated_managed_identity_resource_id,
            "description": ra.description
        },
        "id": ra.id,
        "type": "Microsoft.Authorization/roleAssignments",
        "name": ra.name
    })
}

pub fn principal_not_found(principal: &str, tenant: &str) -> Resp {
    Resp::arm_error(
        400,
        "PrincipalNotFound",
        &format!("Principal {} does not exist in the directory {tenant}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype", principal.replace('-', "")),
    )
}

/// `$filter` for role assignment lists.
struct Filter {
    at_scope: bool,
    principal: Option<String>,
}

fn parse_filter(req: &Req) -> Filter {
    let f = req.q("$filter").unwrap_or("");
    let lower = f.to_ascii_lowercase();
    let quoted = |marker: &str| -> Option<String> {
        let i = lower.find(marker)?;
        let rest = &f[i + marker.len()..];
        let end = rest.find('\'')?;
        Some(rest[..end].to_ascii_lowercase())
    };
    Filter {
        at_scope: lower.contains("atscope()"),
        principal: quoted("principalid eq '").or_else(|| quoted("assignedto('")),
    }
}

pub fn assignments(app: &Arc<App>, req: &Req, ctx: &Ctx, scope: &str, name: Option<&str>) -> Resp {
    let sub = subscription_of(scope);
    match (req.method.clone(), name) {
        (Method::GET, None) => {
            let world = app.world.read();
            if let Err(r) = check_provider_version(
                req,
                &world,
                sub.as_deref(),
                "roleAssignments",
                ROLE_ASSIGNMENT_VERSIONS,
                None,
            ) {
                return r;
            }
            if let Err(r) = scope_exists(&world, scope) {
                return r;
            }
            if let Err(r) = authorize(
                &world,
                ctx,
                "Microsoft.Authorization/roleAssignments/read",
                scope,
            ) {
                return r;
            }
            let f = parse_filter(req);
            let items: Vec<(String, Value)> = world
                .role_assignments
                .iter()
                .filter(|(_, ra)| {
                    let above = scope_contains(&ra.scope, scope);
                    let below = scope_contains(scope, &ra.scope);
                    let in_scope = if f.at_scope { above } else { above || below };
                    in_scope && f.principal.as_ref().is_none_or(|p| &ra.principal_id == p)
                })
                .map(|(k, ra)| (k.clone(), assignment_json(ra)))
                .collect();
            paged(
                app,
                req,
                world.realism.page_size.max(1000),
                items.into_iter(),
            )
        }
        (Method::GET, Some(name)) => {
            let world = app.world.read();
            if let Err(r) = check_provider_version(
                req,
                &world,
                sub.as_deref(),
                "roleAssignments",
                ROLE_ASSIGNMENT_VERSIONS,
                None,
            ) {
                return r;
            }
            if let Err(r) = authorize(
                &world,
                ctx,
                "Microsoft.Authorization/roleAssignments/read",
                scope,
            ) {
                return r;
            }
            match find_assignment(&world, scope, name) {
                Some(ra) => Resp::json(200, &assignment_json(ra)),
                None => Resp::arm_error(
                    404,
                    "RoleAssignmentNotFound",
                    &format!("The role assignment '{name}' is not found."),
                ),
            }
        }
        (Method::PUT, Some(name)) => create_assignment(app, req, ctx, scope, name),
        (Method::DELETE, Some(name)) => {
            let mut world = app.world.write();
            if let Err(r) = check_provider_version(
                req,
                &world,
                sub.as_deref(),
                "roleAssignments",
                ROLE_ASSIGNMENT_VERSIONS,
                None,
            ) {
                return r;
            }
            if let Err(r) = authorize(
                &world,
                ctx,
                "Microsoft.Authorization/roleAssignments/delete",
                scope,
            ) {
                return r;
            }
            let Some(k) = find_assignment(&world, scope, name).map(|ra| key(&ra.id)) else {
                return Resp::empty(204);
            };
            match world.role_assignments.remove(&k) {
                Some(ra) => Resp::json(200, &assignment_json(&ra)),
                None => Resp::empty(204),
            }
        }
        _ => method_not_allowed(req),
    }
}

fn find_assignment<'a>(world: &'a World, scope: &str, name: &str) -> Option<&'a RoleAssignment> {
    let id = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/{name}",
        scope.trim_end_matches('/')
    );
    world.role_assignments.get(&key(&id)).or_else(|| {
        // `/providers/Microsoft.Authorization/roleAssignments/{name}` finds it at any scope.
        (scope == "/").then(|| {
            world
                .role_assignments
                .values()
                .find(|ra| ra.name.eq_ignore_ascii_case(name))
        })?
    })
}

fn create_assignment(app: &Arc<App>, req: &Req, ctx: &Ctx, scope: &str, name: &str) -> Resp {
    let body = match req.json() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut world = app.world.write();
    let sub = subscription_of(scope);
    if let Err(r) = check_provider_version(
        req,
        &world,
        sub.as_deref(),
        "roleAssignments",
        ROLE_ASSIGNMENT_VERSIONS,
        None,
    ) {
        return r;
    }
    if !is_guid(name) {
        return Resp::arm_error(
            400,
            "InvalidRoleAssignmentId",
            &format!("The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."),
        );
    }
    if let Err(r) = scope_exists(&world, scope) {
        return r;
    }
    if let Err(r) = authorize(
        &world,
        ctx,
        "Microsoft.Authorization/roleAssignments/write",
        scope,
    ) {
        return r;
    }
    let props = body.get("properties").cloned().unwrap_or(Value::Null);
    let Some(role_def) = props.get("roleDefinitionId").and_then(|v| v.as_str()) else {
        return Resp::arm_error(
            400,
            "InvalidRequestContent",
            "The request content was invalid: 'properties.roleDefinitionId' is required.",
        );
    };
    let Some(principal) = props.get("principalId").and_then(|v| v.as_str()) else {
        return Resp::arm_error(
            400,
            "InvalidRequestContent",
            "The request content was invalid: 'properties.principalId' is required.",
        );
    };
    let principal = principal.to_ascii_lowercase();
    let role_guid = role_def
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let Some(role) = builtin_role_by_name_or_id(&role_guid).filter(|r| r.id == role_guid) else {
        return Resp::arm_error(
            400,
            "RoleDefinitionDoesNotExist",
            &format!("The specified role definition with ID '{role_guid}' does not exist."),
        );
    };
    let principal_type_in = props
        .get("principalType")
        .and_then(|v| v.as_str())
        .map(|s| s.to_string());
    let now = now_ms();
    let known = world.principals.get(&principal).cloned();
    let deleted = world.deleted_principals.contains(&principal);
    let visible = world.principal_visible(&principal, now).is_some();
    if !visible {
        let pending = known.is_some() && !deleted;
        let bypass = pending
            && principal_type_in.is_some()
            && world.realism.principal_type_bypasses_replication;
        if !bypass {
            return principal_not_found(&principal, &world.tenant_id);
        }
    }
    let principal_type =
        principal_type_in.unwrap_or_else(|| match known.as_ref().map(|p| p.kind.as_str()) {
            Some("User") => "User".into(),
            _ => "ServicePrincipal".into(),
        });
    let scope_norm = scope.trim_end_matches('/').to_string();
    let scope_norm = if scope_norm.is_empty() {
        "/".to_string()
    } else {
        scope_norm
    };
    let id = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/{name}",
        if scope_norm == "/" {
            ""
        } else {
            scope_norm.as_str()
        }
    );
    let k = key(&id);
    if let Some(existing) = world.role_assignments.get(&k) {
        if existing.principal_id == principal && existing.role_definition_guid == role.id {
            return Resp::json(201, &assignment_json(existing));
        }
        return Resp::arm_error(
            400,
            "RoleAssignmentUpdateNotPermitted",
            "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
        );
    }
    if world.role_assignments.values().any(|ra| {
        ra.principal_id == principal
            && ra.role_definition_guid == role.id
            && key(&ra.scope) == key(&scope_norm)
    }) {
        return Resp::arm_error(
            409,
            "RoleAssignmentExists",
            "The role assignment already exists.",
        );
    }
    let ra = RoleAssignment {
        id,
        name: name.to_ascii_lowercase(),
        scope: scope_norm,
        role_definition_guid: role.id.to_string(),
        principal_id: principal,
        principal_type,
        description: props
            .get("description")
            .and_then(|v| v.as_str())
            .map(|s| s.to_string()),
        condition: props
            .get("condition")
            .and_then(|v| v.as_str())
            .map(|s| s.to_string()),
        condition_version: props
            .get("conditionVersion")
            .and_then(|v| v.as_str())
            .map(|s| s.to_string()),
        delegated_managed_identity_resource_id: props
            .get("delegatedManagedIdentityResourceId")
            .and_then(|v| v.as_str())
            .map(|s| s.to_string()),
        created_ms: now,
        updated_ms: now,
        created_by: ctx.caller().map(|s| s.to_string()),
    };
    world.role_assignments.insert(k, ra.clone());
    Resp::json(201, &assignment_json(&ra))
}

pub fn definition_json(r: &BuiltinRole, scope: &str) -> Value {
    json!({
        "properties": {
            "roleName": r.name,
            "type": "BuiltInRole",
            "description": r.description,
            "assignableScopes": ["/"],
            "permissions": [{
                "actions": r.actions,
                "notActions": r.not_actions,
                "dataActions": r.data_actions,
                "notDataActions": []
            }],
            "createdOn": "2015-02-02T21:55:09.8806423Z",
            "updatedOn": "2024-04-16T18:00:00.0000000Z",
            "createdBy": null,
            "updatedBy": null
        },
        "id": role_definition_id(scope, r.id),
        "type": "Microsoft.Authorization/roleDefinitions",
        "name": r.id
    })
}

pub fn definitions(app: &Arc<App>, req: &Req, _ctx: &Ctx, scope: &str, name: Option<&str>) -> Resp {
    if req.method != Method::GET {
        return Resp::arm_error(
            403,
            "AuthorizationFailed",
            "Built-in role definitions cannot be modified; custom roles are not supported by the emulator.",
        );
    }
    let world = app.world.read();
    let sub = subscription_of(scope);
    if let Err(r) = check_provider_version(
        req,
        &world,
        sub.as_deref(),
        "roleDefinitions",
        ROLE_DEFINITION_VERSIONS,
        None,
    ) {
        return r;
    }
    if let Err(r) = scope_exists(&world, scope) {
        return r;
    }
    match name {
        Some(n) => match BUILTIN_ROLES.iter().find(|r| r.id.eq_ignore_ascii_case(n)) {
            Some(r) => Resp::json(200, &definition_json(r, scope)),
            None => Resp::arm_error(
                404,
                "RoleDefinitionDoesNotExist",
                &format!("The role definition '{n}' could not be found."),
            ),
        },
        None => {
            let f = req.q("$filter").unwrap_or("");
            let lower = f.to_ascii_lowercase();
            let role_name = lower.find("rolename eq '").and_then(|i| {
                let rest = &f[i + 13..];
                rest.find('\'').map(|e| rest[..e].to_string())
            });
            let custom_only = lower.contains("type eq 'customrole'");
            let value: Vec<Value> = BUILTIN_ROLES
                .iter()
                .filter(|r| {
                    !custom_only
                        && role_name
                            .as_ref()
                            .is_none_or(|n| r.name.eq_ignore_ascii_case(n))
                })
                .map(|r| definition_json(r, scope))
                .collect();
            Resp::json(200, &json!({ "value": value }))
        }
    }
}

pub fn permissions(app: &Arc<App>, req: &Req, ctx: &Ctx, scope: &str) -> Resp {
    if req.method != Method::GET {
        return method_not_allowed(req);
    }
    let world = app.world.read();
    let sub = subscription_of(scope);
    if let Err(r) = check_provider_version(
        req,
        &world,
        sub.as_deref(),
        "permissions",
        PERMISSION_VERSIONS,
        None,
    ) {
        return r;
    }
    if let Err(r) = scope_exists(&world, scope) {
        return r;
    }
    let oid = ctx.caller().unwrap_or("");
    let value: Vec<Value> = roles_at(&world, oid, scope)
        .into_iter()
        .map(|r| {
            json!({"actions": r.actions, "notActions": r.not_actions, "dataActions": r.data_actions, "notDataActions": []})
        })
        .collect();
    Resp::json(200, &json!({"value": value, "nextLink": null}))
}
