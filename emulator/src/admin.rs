//! The admin API under `/_emulator/` (no token needed).

use std::sync::Arc;

use hyper::Method;
use serde_json::{json, Value};

use crate::app::App;
use crate::http::{Req, Resp};
use crate::model::RealismOverrides;
use crate::realism::Fault;
use crate::scenario::{build_world, seed, Scenario};

fn bad(msg: &str) -> Resp {
    Resp::json(
        400,
        &json!({"error": {"code": "BadRequest", "message": msg}}),
    )
}

pub fn handle(app: &Arc<App>, req: &Req) -> Resp {
    let sub = req.path.trim_start_matches("/_emulator").trim_matches('/');
    match (req.method.clone(), sub) {
        (Method::GET, "" | "health") => {
            Resp::json(200, &json!({"status": "ok", "profile": app.profile}))
        }
        (Method::POST, "scenario") => {
            let sc: Scenario = match serde_json::from_slice(&req.body) {
                Ok(s) => s,
                Err(e) => return bad(&format!("invalid scenario: {e}")),
            };
            let merge = req.q("merge").is_some_and(|m| m == "true" || m == "1");
            let mut world = app.world.write();
            if merge {
                seed(&mut world, &sc);
            } else {
                let fresh = build_world(&sc, &app.profile, Some(&world));
                *world = fresh;
            }
            app.limiter.reset();
            Resp::json(
                200,
                &json!({
                    "tenant_id": world.tenant_id,
                    "subscription_ids": world.subscriptions.keys().collect::<Vec<_>>(),
                    "virtual_machines": world.vms.len(),
                    "scale_sets": world.vmss.len(),
                    "user_assigned_identities": world.identities.len(),
                    "role_assignments": world.role_assignments.len()
                }),
            )
        }
        (Method::POST, "realism") => {
            let o: RealismOverrides = match serde_json::from_slice(&req.body) {
                Ok(o) => o,
                Err(e) => return bad(&format!("invalid realism: {e}")),
            };
            let mut world = app.world.write();
            world.realism.apply(&o);
            app.limiter.reset();
            Resp::json(
                200,
                &serde_json::to_value(&world.realism).unwrap_or(Value::Null),
            )
        }
        (Method::GET, "realism") => Resp::json(
            200,
            &serde_json::to_value(&app.world.read().realism).unwrap_or(Value::Null),
        ),
        (Method::POST, "faults") => {
            let f: Fault = match serde_json::from_slice(&req.body) {
                Ok(f) => f,
                Err(e) => return bad(&format!("invalid fault: {e}")),
            };
            match app.faults.add(f) {
                Ok(f) => Resp::json(201, &serde_json::to_value(f).unwrap_or(Value::Null)),
                Err(e) => bad(&e),
            }
        }
        (Method::GET, "faults") => Resp::json(200, &app.faults.list()),
        (Method::DELETE, "faults") => {
            app.faults.clear();
            Resp::json(200, &json!({"cleared": true}))
        }
        (Method::GET, "requests") => {
            let log = app.log.lock();
            let entries: Vec<Value> = log
                .iter()
                .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
                .collect();
            Resp::json(200, &Value::Array(entries))
        }
        (Method::DELETE, "requests") => {
            app.log.lock().clear();
            Resp::json(200, &json!({"cleared": true}))
        }
        (Method::GET, "state") => {
            let world = app.world.read();
            Resp::json(200, &serde_json::to_value(&*world).unwrap_or(Value::Null))
        }
        (Method::POST, "tokens") => {
            // Mints a token directly (tests of expired / wrong-audience tokens).
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(json!({}));
            let world = app.world.read();
            let aud = body["aud"]
                .as_str()
                .unwrap_or("https://management.azure.com")
                .to_string();
            let oid = body["oid"]
                .as_str()
                .unwrap_or(&world.client.object_id)
                .to_string();
            let appid = body["appid"]
                .as_str()
                .unwrap_or(&world.client.app_id)
                .to_string();
            let tid = body["tid"].as_str().unwrap_or(&world.tenant_id).to_string();
            drop(world);
            let expires_in = body["expires_in"].as_i64().unwrap_or(3599);
            let now = crate::util::now_secs() as i64;
            let claims = crate::jwt::Claims {
                aud,
                iss: format!("https://sts.windows.net/{tid}/"),
                iat: (now - 10).max(0) as u64,
                nbf: (now - 10).max(0) as u64,
                exp: (now + expires_in).max(0) as u64,
                appid: Some(appid),
                appidacr: Some("1".into()),
                idtyp: Some("app".into()),
                oid: Some(oid.clone()),
                sub: Some(oid),
                tid: Some(tid),
                ver: Some("1.0".into()),
                ..Default::default()
            };
            let token = app.signer.sign(&claims);
            Resp::json(
                200,
                &json!({"access_token": token, "token_type": "Bearer", "expires_on": claims.exp}),
            )
        }
        (Method::GET, "ready") => Resp::json(200, &crate::ready_json(app)),
        _ => Resp::json(
            404,
            &json!({"error": {"code": "NotFound", "message": format!("no admin route {} {}", req.method, req.path)}}),
        ),
    }
}
