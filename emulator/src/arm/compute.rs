//! Microsoft.Compute virtual machines and scale sets: CRUD with Compute's
//! PATCH-style updates, identity semantics, etags, long-running operations.

use std::sync::Arc;

use hyper::Method;
use serde_json::{json, Map, Value};

use super::{
    authorize, check_locks, check_provider_version, method_not_allowed, paged, resource_not_found,
    rg_not_found, subscription_not_found, COMPUTE_VERSIONS,
};
use crate::app::{App, Ctx};
use crate::http::{Req, Resp};
use crate::model::{
    AssignedIdentity, Compute, ComputeKind, OpKind, Operation, ResourceIdentity, SystemIdentity,
    World,
};
use crate::util::{guid, key, normalize_location, now_ms, rfc3339_ms};

/// Whether a Compute api-version returns `etag` (2023-09-01 and later).
fn has_etag(version: &str) -> bool {
    version >= "2023-09-01"
}

pub fn render(c: &Compute, version: &str, now: u64, expand_instance_view: bool) -> Value {
    serde_json::to_value(Rendered::new(c, version, now, expand_instance_view))
        .unwrap_or(Value::Null)
}

/// A machine as ARM answers for it, written straight into the response: a listing renders
/// thousands, and building each as a JSON tree first (copying its maps) was most of a page's
/// cost, on cores the benchmarks share with the provider and Terraform.
pub struct Rendered<'a> {
    c: &'a Compute,
    with_etag: bool,
    state: String,
    instance_view: Option<Value>,
}

impl<'a> Rendered<'a> {
    pub fn new(c: &'a Compute, version: &str, now: u64, expand_instance_view: bool) -> Self {
        Rendered {
            c,
            with_etag: has_etag(version),
            state: c.effective_state(now),
            instance_view: (expand_instance_view && c.kind == ComputeKind::Vm)
                .then(|| instance_view_json(c, now)),
        }
    }
}

/// Top-level members the emulator writes itself; `extra` never overrides them.
const RENDERED_MEMBERS: [&str; 8] = [
    "name",
    "id",
    "type",
    "location",
    "tags",
    "identity",
    "etag",
    "properties",
];

impl serde::Serialize for Rendered<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let c = self.c;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("name", &c.name)?;
        map.serialize_entry("id", &c.id)?;
        map.serialize_entry("type", c.kind.full_type())?;
        map.serialize_entry("location", &c.location)?;
        if !c.tags.is_empty() {
            map.serialize_entry("tags", &c.tags)?;
        }
        if let Some(identity) = c.identity.to_json() {
            map.serialize_entry("identity", &identity)?;
        }
        for (k, v) in &c.extra {
            if !RENDERED_MEMBERS.contains(&k.as_str()) {
                map.serialize_entry(k, v)?;
            }
        }
        if self.with_etag {
            map.serialize_entry("etag", &etag_str(c.etag))?;
        }
        map.serialize_entry("properties", &RenderedProperties(self))?;
        map.end()
    }
}

/// `properties` as stored, with the members ARM computes.
struct RenderedProperties<'r, 'a>(&'r Rendered<'a>);

impl serde::Serialize for RenderedProperties<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Rendered {
            c,
            state,
            instance_view,
            ..
        } = self.0;
        let unique_id_member = match c.kind {
            ComputeKind::Vm => "vmId",
            ComputeKind::Vmss => "uniqueId",
        };
        let computed = [
            unique_id_member,
            "provisioningState",
            "timeCreated",
            "instanceView",
        ];
        let mut map = serializer.serialize_map(None)?;
        if let Value::Object(stored) = &c.properties {
            for (k, v) in stored {
                let replaced = computed.contains(&k.as_str())
                    && (k != "instanceView" || instance_view.is_some());
                if !replaced {
                    map.serialize_entry(k, v)?;
                }
            }
        }
        map.serialize_entry(unique_id_member, &c.unique_id)?;
        map.serialize_entry("provisioningState", state)?;
        map.serialize_entry("timeCreated", &rfc3339_ms(c.time_created_ms))?;
        if let Some(view) = instance_view {
            map.serialize_entry("instanceView", view)?;
        }
        map.end()
    }
}

fn etag_str(n: u64) -> String {
    format!("\"{n}\"")
}

fn instance_view_json(c: &Compute, now: u64) -> Value {
    let state = c.effective_state(now);
    json!({
        "computerName": c.name,
        "osName": "ubuntu",
        "osVersion": "22.04",
        "vmAgent": {"vmAgentVersion": "2.11.1.12", "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready"}]},
        "statuses": [
            {"code": format!("ProvisioningState/{}", state.to_ascii_lowercase()), "level": "Info", "displayStatus": format!("Provisioning {}", state.to_ascii_lowercase()), "time": rfc3339_ms(c.time_created_ms)},
            {"code": "PowerState/running", "level": "Info", "displayStatus": "VM running"}
        ]
    })
}

fn compute_id(sub: &str, rg: &str, name: &str, kind: ComputeKind) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{rg}/providers/{}/{name}",
        sub.to_ascii_lowercase(),
        kind.full_type()
    )
}

pub fn list(
    app: &Arc<App>,
    req: &Req,
    ctx: &Ctx,
    sub: &str,
    rg: Option<&str>,
    kind: ComputeKind,
) -> Resp {
    let world = app.world.read();
    let version = match check_provider_version(
        req,
        &world,
        Some(sub),
        kind.type_name(),
        COMPUTE_VERSIONS,
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
    if let Err(r) = authorize(&world, ctx, &format!("{}/read", kind.full_type()), &scope) {
        return r;
    }
    let now = now_ms();
    let prefix = format!("{}/", key(&scope));
    let location_filter = req.q("location").map(normalize_location);
    let hidden = app.faults.hidden_from_listing();
    // Start after the continuation token rather than skipping to it, so a page costs the
    // same wherever it is in a large list.
    let start = match req.q("$skiptoken") {
        Some(token) if token >= prefix.as_str() => std::ops::Bound::Excluded(token.to_string()),
        _ => std::ops::Bound::Included(prefix.clone()),
    };
    let items = world
        .compute_map(kind)
        .range((start, std::ops::Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(&prefix))
        .filter(|(_, c)| location_filter.as_ref().is_none_or(|l| &c.location == l))
        .filter(|(k, _)| !hidden.iter().any(|h| k.contains(h.as_str())))
        .map(|(k, c)| (k.clone(), Rendered::new(c, &version, now, false)));
    paged(app, req, world.realism.page_size, items)
}

/// The `If-Match` / `If-None-Match` checks against the current etag.
fn check_preconditions(req: &Req, existing: Option<&Compute>) -> Result<(), Resp> {
    let norm = |s: &str| s.trim().trim_start_matches("W/").replace(['"', '\\'], "");
    if let Some(im) = req.header("if-match") {
        let ok = match existing {
            None => false,
            Some(c) => im.trim() == "*" || im.split(',').any(|t| norm(t) == c.etag.to_string()),
        };
        if !ok {
            let current = existing.map(|c| etag_str(c.etag)).unwrap_or_default();
            return Err(Resp::arm_error(
                412,
                "PreconditionFailed",
                &format!("The etag '{}' provided in the If-Match header does not match the current etag '{current}' of the resource.", im.trim()),
            ));
        }
    }
    if let Some(inm) = req.header("if-none-match") {
        if existing.is_some()
            && (inm.trim() == "*"
                || existing.is_some_and(|c| inm.split(',').any(|t| norm(t) == c.etag.to_string())))
        {
            return Err(Resp::arm_error(
                412,
                "PreconditionFailed",
                "The resource already exists and the If-None-Match header precondition failed.",
            ));
        }
    }
    Ok(())
}

fn parse_type(t: &str) -> Option<(bool, bool)> {
    let n: String = t
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    match n.as_str() {
        "none" => Some((false, false)),
        "systemassigned" => Some((true, false)),
        "userassigned" => Some((false, true)),
        "systemassigned,userassigned" => Some((true, true)),
        _ => None,
    }
}

/// The outcome of applying a request's `identity` block.
pub struct IdentityChange {
    pub identity: ResourceIdentity,
    pub added_users: Vec<String>,
    pub new_system: bool,
    pub removed_system: Option<String>,
}

/// Applies an `identity` block with ARM's semantics (merge; `null` removes; type transitions).
pub fn apply_identity(
    world: &World,
    existing: &ResourceIdentity,
    patch: &Value,
    kind: ComputeKind,
    resource_id: &str,
) -> Result<IdentityChange, Resp> {
    let unchanged = || IdentityChange {
        identity: existing.clone(),
        added_users: vec![],
        new_system: false,
        removed_system: None,
    };
    let obj = match patch {
        Value::Null => return Ok(unchanged()),
        Value::Object(o) => o,
        _ => {
            return Err(Resp::arm_error_target(
                400,
                "InvalidParameter",
                "The value of parameter 'identity' is invalid.",
                "identity",
            ))
        }
    };
    let uai: Option<&Map<String, Value>> = match obj.get("userAssignedIdentities") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => {
            return Err(Resp::arm_error_target(
                400,
                "InvalidParameter",
                "The value of parameter 'identity.userAssignedIdentities' is invalid.",
                "identity.userAssignedIdentities",
            ))
        }
    };
    let type_text = obj.get("type").and_then(|t| t.as_str());
    let (want_system, want_user, type_label) = match type_text {
        Some(t) => match parse_type(t) {
            Some((s, u)) => (s, u, t.to_string()),
            None => {
                return Err(Resp::arm_error_target(
                    400,
                    "InvalidParameter",
                    &format!("The value '{t}' of parameter 'identity.type' is not valid. Allowed values are 'SystemAssigned', 'UserAssigned', 'SystemAssigned, UserAssigned', 'None'."),
                    "identity.type",
                ))
            }
        },
        None => {
            let adds = uai.is_some_and(|m| m.values().any(|v| !v.is_null()));
            let s = existing.system.is_some();
            let u = !existing.user.is_empty() || adds;
            let label = ResourceIdentity {
                system: s.then(SystemIdentity::default),
                user: if u {
                    vec![AssignedIdentity { id: String::new(), principal_id: String::new(), client_id: String::new() }]
                } else {
                    vec![]
                },
            }
            .type_str()
            .to_string();
            (s, u, label)
        }
    };
    // Values must be {} or null, or echo the identity's own read-only values.
    if let Some(m) = uai {
        for (id, v) in m {
            let ok = match v {
                Value::Null => true,
                Value::Object(o) if o.is_empty() => true,
                Value::Object(o) => {
                    let current = existing.user.iter().find(|a| key(&a.id) == key(id));
                    current.is_some_and(|a| {
                        o.iter().all(|(k, val)| match (k.as_str(), val) {
                            ("principalId", Value::String(s)) => {
                                s.eq_ignore_ascii_case(&a.principal_id)
                            }
                            ("clientId", Value::String(s)) => s.eq_ignore_ascii_case(&a.client_id),
                            (_, Value::Null) => true,
                            _ => false,
                        })
                    })
                }
                _ => false,
            };
            if !ok {
                return Err(Resp::arm_error(
                    400,
                    "InvalidIdentityValues",
                    &format!("Invalid value for the identities '{id}'. The 'UserAssignedIdentities' property keys should only be empty json objects, null or the resource exisiting property."),
                ));
            }
        }
    }
    if !want_user {
        if let Some(m) = uai {
            if m.values().any(|v| !v.is_null()) {
                return Err(Resp::arm_error_target(
                    400,
                    "InvalidParameter",
                    &format!("ResourceIdentity identityIds should not be provided if the type is \"{type_label}\"."),
                    "resourceIdentity.identityIds",
                ));
            }
        }
    }
    let mut user: Vec<AssignedIdentity> = Vec::new();
    let mut added = Vec::new();
    if want_user {
        user = existing.user.clone();
        if let Some(m) = uai {
            let mut missing = Vec::new();
            for (id, v) in m {
                let k = key(id);
                if v.is_null() {
                    user.retain(|a| key(&a.id) != k);
                    continue;
                }
                if user.iter().any(|a| key(&a.id) == k) {
                    continue;
                }
                match world.identity(id) {
                    Some(i) => {
                        user.push(AssignedIdentity {
                            id: id.clone(),
                            principal_id: i.principal_id.clone(),
                            client_id: i.client_id.clone(),
                        });
                        added.push(id.clone());
                    }
                    None => missing.push(id.clone()),
                }
            }
            if !missing.is_empty() {
                let inner = missing
                    .iter()
                    .map(|m| format!("Resource '{}' was not found.", m.to_ascii_lowercase()))
                    .collect::<Vec<_>>()
                    .join(" ");
                let what = match kind {
                    ComputeKind::Vm => "virtualMachines",
                    ComputeKind::Vmss => "virtualMachineScaleSets",
                };
                let _ = what;
                return Err(Resp::arm_error(
                    400,
                    "FailedIdentityOperation",
                    &format!("Identity operation for resource '{resource_id}' failed with error 'Failed to perform resource identity operation. Status: 'BadRequest'. Response: '{{\"error\":{{\"code\":\"BadRequest\",\"message\":\"{inner}\"}}}}'.'."),
                ));
            }
        }
        if user.is_empty() {
            return Err(Resp::arm_error_target(
                400,
                "InvalidParameter",
                &format!("ResourceIdentity identityIds must be provided if the type is \"{type_label}\"."),
                "resourceIdentity.identityIds",
            ));
        }
    }
    let mut new_system = false;
    let mut removed_system = None;
    let system = if want_system {
        match &existing.system {
            Some(s) => Some(s.clone()),
            None => {
                new_system = true;
                Some(SystemIdentity {
                    principal_id: guid(),
                    tenant_id: world.tenant_id.clone(),
                })
            }
        }
    } else {
        removed_system = existing.system.as_ref().map(|s| s.principal_id.clone());
        None
    };
    Ok(IdentityChange {
        identity: ResourceIdentity { system, user },
        added_users: added,
        new_system,
        removed_system,
    })
}

/// Copies `patch` into `target`, objects merged recursively; `null` leaves things unchanged.
fn merge_compute(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    continue;
                }
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        merge_compute(existing, v)
                    }
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, p) => {
            if !p.is_null() {
                *t = p.clone()
            }
        }
    }
}

/// Strips read-only and secret members from client-sent properties.
fn clean_properties(props: &Value) -> Value {
    let mut p = props.clone();
    if let Value::Object(m) = &mut p {
        for k in [
            "vmId",
            "uniqueId",
            "provisioningState",
            "timeCreated",
            "instanceView",
        ] {
            m.remove(k);
        }
        for path in ["osProfile", "virtualMachineProfile"] {
            if let Some(Value::Object(os)) = m.get_mut(path) {
                os.remove("adminPassword");
                os.remove("customData");
                if let Some(Value::Object(inner)) = os.get_mut("osProfile") {
                    inner.remove("adminPassword");
                    inner.remove("customData");
                }
            }
        }
    }
    p
}

const TOP_LEVEL_KNOWN: &[&str] = &[
    "id",
    "name",
    "type",
    "location",
    "tags",
    "identity",
    "properties",
    "etag",
    "resources",
    "managedBy",
];

fn lro_headers(
    app: &App,
    resp: &mut Resp,
    sub: &str,
    location: &str,
    op: &Operation,
    version: &str,
    delete: bool,
) {
    let status_url = format!(
        "{}/subscriptions/{}/providers/Microsoft.Compute/locations/{location}/operations/{}?p={}&api-version={version}",
        app.base,
        sub.to_ascii_lowercase(),
        op.id,
        guid()
    );
    resp.set_header("azure-asyncoperation", &status_url);
    resp.set_header("azure-asyncnotification", "Enabled");
    if delete {
        resp.set_header("location", format!("{status_url}&monitor=true"));
    }
    let retry = op.until_ms.saturating_sub(op.start_ms).div_ceil(1000);
    resp.set_header("retry-after", retry.to_string());
}

fn new_operation(world: &mut World, resource_id: &str) -> Operation {
    let now = now_ms();
    let op = Operation {
        id: guid(),
        kind: OpKind::Compute,
        resource_id: resource_id.to_string(),
        start_ms: now,
        until_ms: now + world.realism.scaled_ms(world.realism.vm_update_seconds),
    };
    world.operations.insert(op.id.clone(), op.clone());
    op
}

/// Registers the directory side of identity changes (system-assigned principals).
fn commit_identity_principals(world: &mut World, change: &IdentityChange, c: &Compute) {
    if change.new_system {
        if let Some(s) = &change.identity.system {
            let app_id = guid();
            world.add_mi_principal(&s.principal_id, &app_id, &c.name, &c.id, false, false);
        }
    }
    if let Some(pid) = &change.removed_system {
        world.remove_principal(pid);
    }
}

fn linked_authorization(
    world: &World,
    ctx: &Ctx,
    kind: ComputeKind,
    resource_id: &str,
    added: &[String],
) -> Result<(), Resp> {
    if !world.realism.enforce_rbac || added.is_empty() {
        return Ok(());
    }
    let Some(oid) = ctx.caller() else {
        return Ok(());
    };
    let action = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action";
    let denied: Vec<&String> = added
        .iter()
        .filter(|id| !crate::authz::allowed(world, oid, action, id))
        .collect();
    if denied.is_empty() {
        return Ok(());
    }
    let appid = ctx
        .claims
        .as_ref()
        .and_then(|c| c.appid.clone())
        .unwrap_or_else(|| oid.to_string());
    Err(Resp::arm_error(
        403,
        "LinkedAuthorizationFailed",
        &format!(
            "The client '{appid}' with object id '{oid}' has permission to perform action '{}/write' on scope '{resource_id}'; however, it does not have permission to perform action(s) '{action}' on the linked scope(s) '{}' (respectively) or the linked scope(s) are invalid.",
            kind.full_type(),
            denied.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
        ),
    ))
}

fn compute_throttled(app: &App, world: &World, sub: &str, vm_key: &str) -> Result<String, Resp> {
    let (vm, sb) = app
        .limiter
        .charge_compute_update(&world.realism, sub, vm_key);
    let header = format!(
        "Microsoft.Compute/PutVMSubscriptionMaximum;{},Microsoft.Compute/PutVMResource1Min;{}",
        sb.remaining, vm.remaining
    );
    if vm.allowed && sb.allowed {
        return Ok(header);
    }
    let (group, allowed, retry) = if !vm.allowed {
        (
            "PutVMResource1Min",
            world.realism.compute_per_vm_updates_per_min as u64,
            vm.retry_after,
        )
    } else {
        (
            "PutVMSubscriptionMaximum",
            world.realism.compute_vm_updates_per_subscription_per_min as u64,
            sb.retry_after,
        )
    };
    let now = now_ms();
    let detail = json!({
        "operationGroup": group,
        "startTime": rfc3339_ms(now.saturating_sub(60_000)),
        "endTime": rfc3339_ms(now),
        "allowedRequestCount": allowed,
        "measuredRequestCount": allowed + 1
    })
    .to_string();
    let mut r = Resp::json(
        429,
        &json!({"error": {
            "code": "OperationNotAllowed",
            "message": "The server rejected the request because too many requests have been received for this subscription.",
            "details": [{"code": "TooManyRequests", "target": group, "message": detail}]
        }}),
    );
    r.set_header("retry-after", retry.max(1).to_string());
    r.set_header("x-ms-ratelimit-remaining-resource", header);
    Err(r)
}

#[allow(clippy::too_many_arguments)]
pub fn item(
    app: &Arc<App>,
    req: &Req,
    ctx: &Ctx,
    sub: &str,
    rg: &str,
    name: &str,
    kind: ComputeKind,
) -> Resp {
    let id = compute_id(sub, rg, name, kind);
    let k = key(&id);
    let now = now_ms();
    match req.method {
        Method::GET => {
            let world = app.world.read();
            let loc = world.compute_map(kind).get(&k).map(|c| c.location.clone());
            let version = match check_provider_version(
                req,
                &world,
                Some(sub),
                kind.type_name(),
                COMPUTE_VERSIONS,
                loc.as_deref(),
            ) {
                Ok(v) => v,
                Err(r) => return r,
            };
            if world.subscription(sub).is_none() {
                return subscription_not_found(sub);
            }
            if let Err(r) = authorize(&world, ctx, &format!("{}/read", kind.full_type()), &id) {
                return r;
            }
            match world.compute_map(kind).get(&k) {
                Some(c) => {
                    let expand = req
                        .q("$expand")
                        .is_some_and(|e| e.eq_ignore_ascii_case("instanceView"));
                    let mut r = Resp::json(200, &render(c, &version, now, expand));
                    if has_etag(&version) {
                        r.set_header("etag", etag_str(c.etag));
                    }
                    r
                }
                None if world.rg(sub, rg).is_none() => rg_not_found(rg),
                None => resource_not_found(kind.full_type(), rg, name),
            }
        }
        Method::PUT | Method::PATCH => {
            let body = match req.json() {
                Ok(Value::Object(b)) => Value::Object(b),
                Ok(_) => {
                    return Resp::arm_error(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized: the body must be a JSON object.")
                }
                Err(r) => return r,
            };
            let mut world = app.world.write();
            let existing = world.compute_map(kind).get(&k).cloned();
            let body_loc = body
                .get("location")
                .and_then(|l| l.as_str())
                .map(normalize_location);
            let loc_hint = existing
                .as_ref()
                .map(|c| c.location.clone())
                .or(body_loc.clone());
            let version = match check_provider_version(
                req,
                &world,
                Some(sub),
                kind.type_name(),
                COMPUTE_VERSIONS,
                loc_hint.as_deref(),
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
            if let Err(r) = authorize(&world, ctx, &format!("{}/write", kind.full_type()), &id) {
                return r;
            }
            if let Err(r) = check_locks(&world, &id, "write", false) {
                return r;
            }
            if let Err(r) = check_preconditions(req, existing.as_ref()) {
                return r;
            }
            match existing {
                None if req.method == Method::PATCH => {
                    resource_not_found(kind.full_type(), rg, name)
                }
                None => {
                    let Some(loc) = body_loc else {
                        return Resp::arm_error(
                            400,
                            "LocationRequired",
                            "The location property is required for this definition.",
                        );
                    };
                    let id = compute_id(sub, &rg_name, name, kind);
                    let change = match apply_identity(
                        &world,
                        &ResourceIdentity::default(),
                        body.get("identity").unwrap_or(&Value::Null),
                        kind,
                        &id,
                    ) {
                        Ok(c) => c,
                        Err(r) => return r,
                    };
                    if let Err(r) =
                        linked_authorization(&world, ctx, kind, &id, &change.added_users)
                    {
                        return r;
                    }
                    let mut extra = Map::new();
                    if let Value::Object(b) = &body {
                        for (kk, v) in b {
                            if !TOP_LEVEL_KNOWN.contains(&kk.as_str()) && !v.is_null() {
                                extra.insert(kk.clone(), v.clone());
                            }
                        }
                    }
                    let mut c = Compute {
                        kind,
                        id: id.clone(),
                        subscription: sub.to_ascii_lowercase(),
                        resource_group: rg_name.clone(),
                        name: name.to_string(),
                        location: loc.clone(),
                        tags: body
                            .get("tags")
                            .and_then(|t| t.as_object())
                            .cloned()
                            .unwrap_or_default(),
                        identity: ResourceIdentity::default(),
                        properties: clean_properties(body.get("properties").unwrap_or(&json!({}))),
                        extra,
                        etag: 1,
                        provisioning_state: "Creating".into(),
                        busy_until_ms: 0,
                        unique_id: guid(),
                        time_created_ms: now,
                        changed_ms: 0,
                    };
                    c.identity = change.identity.clone();
                    commit_identity_principals(&mut world, &change, &c);
                    let op = new_operation(&mut world, &id);
                    c.busy_until_ms = op.until_ms;
                    world.compute_map_mut(kind).insert(k, c.clone());
                    // The response shows the operation's state (`Creating`), not its outcome.
                    let mut r = Resp::json(201, &render(&c, &version, 0, false));
                    lro_headers(app, &mut r, sub, &loc, &op, &version, false);
                    if has_etag(&version) {
                        r.set_header("etag", etag_str(c.etag));
                    }
                    r
                }
                Some(mut c) => {
                    if let Some(l) = &body_loc {
                        if req.method == Method::PUT && l != &c.location {
                            return Resp::arm_error(
                                409,
                                "InvalidResourceLocation",
                                &format!("The resource '{name}' already exists in location '{}' in resource group '{rg}'. A resource with the same name cannot be created in location '{l}'. Please select a new resource name.", c.location),
                            );
                        }
                    }
                    let throttle_header = match compute_throttled(app, &world, sub, &k) {
                        Ok(h) => h,
                        Err(r) => return r,
                    };
                    let change = match apply_identity(
                        &world,
                        &c.identity,
                        body.get("identity").unwrap_or(&Value::Null),
                        kind,
                        &c.id,
                    ) {
                        Ok(ch) => ch,
                        Err(r) => return r,
                    };
                    if let Err(r) =
                        linked_authorization(&world, ctx, kind, &c.id, &change.added_users)
                    {
                        return r;
                    }
                    if let Some(props) = body.get("properties") {
                        let cleaned = clean_properties(props);
                        merge_compute(&mut c.properties, &cleaned);
                    }
                    if let Some(tags) = body.get("tags").and_then(|t| t.as_object()) {
                        c.tags = tags.clone();
                    }
                    if let Value::Object(b) = &body {
                        for (kk, v) in b {
                            if !TOP_LEVEL_KNOWN.contains(&kk.as_str()) && !v.is_null() {
                                c.extra.insert(kk.clone(), v.clone());
                            }
                        }
                    }
                    c.identity = change.identity.clone();
                    commit_identity_principals(&mut world, &change, &c);
                    c.etag += 1;
                    c.changed_ms = now_ms();
                    let op = new_operation(&mut world, &c.id);
                    c.provisioning_state = "Updating".into();
                    c.busy_until_ms = op.until_ms;
                    world.compute_map_mut(kind).insert(k, c.clone());
                    let mut r = Resp::json(200, &render(&c, &version, 0, false));
                    let loc = c.location.clone();
                    lro_headers(app, &mut r, sub, &loc, &op, &version, false);
                    if has_etag(&version) {
                        r.set_header("etag", etag_str(c.etag));
                    }
                    r.set_header("x-ms-ratelimit-remaining-resource", throttle_header);
                    r
                }
            }
        }
        Method::DELETE => {
            let mut world = app.world.write();
            let loc = world.compute_map(kind).get(&k).map(|c| c.location.clone());
            let version = match check_provider_version(
                req,
                &world,
                Some(sub),
                kind.type_name(),
                COMPUTE_VERSIONS,
                loc.as_deref(),
            ) {
                Ok(v) => v,
                Err(r) => return r,
            };
            if world.subscription(sub).is_none() {
                return subscription_not_found(sub);
            }
            if let Err(r) = authorize(&world, ctx, &format!("{}/delete", kind.full_type()), &id) {
                return r;
            }
            let Some(c) = world.compute_map(kind).get(&k).cloned() else {
                return Resp::empty(204);
            };
            if let Err(r) = check_locks(&world, &c.id, "delete", true) {
                return r;
            }
            world.compute_map_mut(kind).remove(&k);
            if let Some(s) = &c.identity.system {
                world.remove_principal(&s.principal_id);
            }
            let prefix = format!("{k}/");
            world.locks.retain(|lk, _| !lk.starts_with(&prefix));
            world.role_assignments.retain(|_, ra| {
                let s = key(&ra.scope);
                s != k && !s.starts_with(&prefix)
            });
            if world.host.vm.as_deref().is_some_and(|h| key(h) == k) {
                // The host keeps pointing at a VM that no longer exists: no identities.
            }
            let op = new_operation(&mut world, &c.id);
            let mut r = Resp::empty(202);
            lro_headers(app, &mut r, sub, &c.location, &op, &version, true);
            r
        }
        _ => method_not_allowed(req),
    }
}

pub fn operation_status(app: &Arc<App>, req: &Req, _sub: &str, op_id: &str) -> Resp {
    let world = app.world.read();
    let Some(op) = world.operations.get(op_id) else {
        return Resp::arm_error(
            404,
            "NotFound",
            &format!("The operation '{op_id}' could not be found."),
        );
    };
    let now = now_ms();
    let done = now >= op.until_ms;
    if req.q("monitor").is_some_and(|m| m == "true") {
        if done {
            return Resp::empty(200);
        }
        let retry = op.until_ms.saturating_sub(now).div_ceil(1000).max(1);
        return Resp::empty(202).with_header("retry-after", retry.to_string());
    }
    let mut body = json!({
        "startTime": rfc3339_ms(op.start_ms),
        "status": if done { "Succeeded" } else { "InProgress" },
        "name": op.id
    });
    if done {
        body["endTime"] = json!(rfc3339_ms(op.until_ms));
    }
    let mut r = Resp::json(200, &body);
    if !done {
        let retry = op.until_ms.saturating_sub(now).div_ceil(1000).max(1);
        r.set_header("retry-after", retry.to_string());
    }
    r
}

pub fn instance_view(
    app: &Arc<App>,
    req: &Req,
    ctx: &Ctx,
    sub: &str,
    rg: &str,
    name: &str,
) -> Resp {
    if req.method != Method::GET {
        return method_not_allowed(req);
    }
    let world = app.world.read();
    if let Err(r) = check_provider_version(
        req,
        &world,
        Some(sub),
        "virtualMachines",
        COMPUTE_VERSIONS,
        None,
    ) {
        return r;
    }
    let id = compute_id(sub, rg, name, ComputeKind::Vm);
    if let Err(r) = authorize(
        &world,
        ctx,
        "Microsoft.Compute/virtualMachines/instanceView/read",
        &id,
    ) {
        return r;
    }
    match world.vms.get(&key(&id)) {
        Some(c) => Resp::json(200, &instance_view_json(c, now_ms())),
        None => resource_not_found("Microsoft.Compute/virtualMachines", rg, name),
    }
}

/// The `concurrent_write` fault: another writer changes the VM first.
pub fn concurrent_write(app: &App, path: &str, tag: Option<&str>, add_identity: Option<&str>) {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segs.len() < 8
        || !segs[4].eq_ignore_ascii_case("providers")
        || !segs[5].eq_ignore_ascii_case("Microsoft.Compute")
    {
        return;
    }
    let kind = if segs[6].eq_ignore_ascii_case("virtualMachines") {
        ComputeKind::Vm
    } else if segs[6].eq_ignore_ascii_case("virtualMachineScaleSets") {
        ComputeKind::Vmss
    } else {
        return;
    };
    let k = key(&format!("/{}", segs[..8].join("/")));
    let mut world = app.world.write();
    let ident = add_identity.and_then(|i| world.identity(i).cloned());
    if let Some(c) = world.compute_map_mut(kind).get_mut(&k) {
        c.etag += 1;
        c.changed_ms = now_ms();
        c.tags.insert(
            tag.unwrap_or("concurrentWriter").to_string(),
            json!(format!("write-{}", c.etag)),
        );
        if let Some(i) = ident {
            if !c.identity.has_user(&i.id) {
                c.identity.user.push(AssignedIdentity {
                    id: i.id.clone(),
                    principal_id: i.principal_id.clone(),
                    client_id: i.client_id.clone(),
                });
            }
        }
        tracing::info!("fault: concurrent write to {} (etag now {})", c.id, c.etag);
    }
}
