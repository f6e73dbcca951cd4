//! The HTTPS listener and the request pipeline: faults, routing, common headers, the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::app::{App, Ctx, LogEntry};
use crate::auth::{self, Audience};
use crate::http::{Req, Resp};
use crate::realism::Category;
use crate::util::{guid, http_date, now_ms, rfc3339_z};

/// Returned by the service to make hyper drop the connection without answering.
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DropConnection {}

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Everything: ARM, Entra ID, Graph, managed identity, admin.
    Main,
    /// Microsoft Graph only (`/v1.0`, `/beta`), on its own host name.
    Graph,
}

pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    which: Listener,
) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, _peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!("TLS handshake failed: {e}");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { handle(app, req, which).await }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder.serve_connection(TokioIo::new(tls), service).await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

fn to_response(resp: Resp) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(resp.body));
    *r.status_mut() = resp.status;
    let h = r.headers_mut();
    for (k, v) in resp.headers {
        h.append(k, v);
    }
    r
}

async fn read_request(req: Request<Incoming>) -> Result<Req, Resp> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(Resp::arm_error(
                400,
                "InvalidRequestContent",
                "The request body could not be read.",
            ))
        }
    };
    let raw_path = parts.uri.path();
    let decoded = percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy();
    // ARM treats `//subscriptions/...` as `/subscriptions/...`; the SDKs send it whenever a
    // `{scope}` parameter that starts with `/` is put into a `/{scope}/...` template.
    let path = collapse_slashes(&decoded);
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let query = form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Ok(Req {
        method: parts.method,
        path,
        raw_query,
        query,
        headers: parts.headers,
        body,
    })
}

pub async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
    which: Listener,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let started = Instant::now();
    let received_unix_ms = now_ms();
    let req = match read_request(req).await {
        Ok(r) => r,
        Err(resp) => return Ok(to_response(resp)),
    };
    if which == Listener::Graph && !is_graph_path(&req.path) {
        // graph.microsoft.com answers an unknown version segment so.
        let version = req.path.split('/').find(|s| !s.is_empty()).unwrap_or("");
        let mut resp = Resp::json(
            400,
            &serde_json::json!({"error": {"code": "BadRequest", "message": format!("Invalid version: {version}")}}),
        );
        resp.set_header("date", http_date(now_ms()));
        return Ok(to_response(resp));
    }
    if req.path.starts_with("/_emulator") {
        return Ok(to_response(crate::admin::handle(&app, &req)));
    }
    let method = req.method.as_str().to_string();
    let path_and_query = if req.raw_query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.raw_query)
    };
    // Injected faults: delays first, then dropped connections, then statuses. Those marked
    // `after_commit` act once the request was served: the write is made, its answer lost.
    let mut fault_resp: Option<Resp> = None;
    let mut drop_after_commit = false;
    let mut status_after_commit: Option<Resp> = None;
    let mut writes_after_commit = Vec::new();
    let mut strip_etag = false;
    if !app.faults.is_empty() {
        strip_etag = !app
            .faults
            .take_first(&method, &path_and_query, "strip_etag")
            .is_empty();
        for f in app.faults.take(&method, &path_and_query, &["delay"]) {
            tokio::time::sleep(Duration::from_millis(f.ms.unwrap_or(0))).await;
        }
        if let Some(f) = app
            .faults
            .take_first(&method, &path_and_query, "drop_connection")
            .into_iter()
            .next()
        {
            if f.after_commit {
                drop_after_commit = true;
            } else {
                tracing::info!("fault: dropping connection for {method} {}", req.path);
                app.record(dropped_entry(&req, method, started, received_unix_ms));
                return Err(DropConnection);
            }
        }
        if !drop_after_commit {
            if let Some(f) = app
                .faults
                .take_first(&method, &path_and_query, "status")
                .into_iter()
                .next()
            {
                let r = status_fault_response(&f);
                if f.after_commit {
                    status_after_commit = Some(r);
                } else {
                    fault_resp = Some(r);
                }
            }
        }
        if matches!(req.method, Method::PUT | Method::PATCH) {
            for f in app
                .faults
                .take_first(&method, &path_and_query, "concurrent_write")
            {
                if f.after_commit {
                    writes_after_commit.push(f);
                } else {
                    crate::arm::compute::concurrent_write(
                        &app,
                        &req.path,
                        f.tag.as_deref(),
                        f.add_identity.as_deref(),
                    );
                    let body = req.json().unwrap_or_default();
                    crate::arm::identity::concurrent_create(
                        &app,
                        &req.path,
                        &body,
                        f.tag.as_deref(),
                    );
                }
            }
        }
    }
    let mut ctx = Ctx {
        claims: None,
        request_id: guid(),
    };
    let mut resp = match fault_resp {
        Some(r) => r,
        None => route(&app, &req, &mut ctx),
    };
    if strip_etag {
        without_etags(&mut resp);
    }
    for f in writes_after_commit {
        crate::arm::compute::concurrent_write(
            &app,
            &req.path,
            f.tag.as_deref(),
            f.add_identity.as_deref(),
        );
    }
    if drop_after_commit {
        tracing::info!(
            "fault: served {method} {} ({}), then dropping the connection",
            req.path,
            resp.status_u16()
        );
        app.record(dropped_entry(&req, method, started, received_unix_ms));
        return Err(DropConnection);
    }
    if let Some(r) = status_after_commit {
        tracing::info!(
            "fault: served {method} {} ({}), then answering {}",
            req.path,
            resp.status_u16(),
            r.status_u16()
        );
        resp = r;
    }
    finish_headers(&req, &ctx, &mut resp);
    let claims = ctx.claims.as_ref();
    app.record(LogEntry {
        method,
        path: req.path.clone(),
        query: req.raw_query.clone(),
        api_version: req.api_version().map(|s| s.to_string()),
        status: resp.status_u16(),
        caller: claims.and_then(|c| c.oid.clone()),
        caller_appid: claims.and_then(|c| c.appid.clone()),
        time: rfc3339_z(now_ms()),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        received_unix_ms,
    });
    tracing::debug!("{} {} -> {}", req.method, req.path, resp.status_u16());
    Ok(to_response(resp))
}

/// The `strip_etag` fault: the answer as an api-version without etags gives it, no `etag`
/// header and no `etag` member, on the resource or on each item of a page.
fn without_etags(resp: &mut Resp) {
    resp.headers
        .retain(|(name, _)| !name.as_str().eq_ignore_ascii_case("etag"));
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&resp.body) else {
        return;
    };
    if let Some(object) = body.as_object_mut() {
        object.remove("etag");
        if let Some(items) = object.get_mut("value").and_then(|v| v.as_array_mut()) {
            for item in items {
                if let Some(item) = item.as_object_mut() {
                    item.remove("etag");
                }
            }
        }
    }
    if let Ok(bytes) = serde_json::to_vec(&body) {
        resp.body = bytes.into();
    }
}

/// The log entry of a request whose connection a fault dropped (status 0).
fn dropped_entry(req: &Req, method: String, started: Instant, received_unix_ms: u64) -> LogEntry {
    LogEntry {
        method,
        path: req.path.clone(),
        query: req.raw_query.clone(),
        api_version: req.api_version().map(|s| s.to_string()),
        status: 0,
        caller: None,
        caller_appid: None,
        time: rfc3339_z(now_ms()),
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
        received_unix_ms,
    }
}

/// The answer of a `status` fault: its status and an ARM error body.
fn status_fault_response(f: &crate::realism::Fault) -> Resp {
    let status = f.status.unwrap_or(500);
    let (code, message) = match status {
        429 => ("TooManyRequests", "The request is being throttled (injected fault)."),
        500 => ("InternalServerError", "Encountered internal server error. Diagnostic information: timestamp '', subscription id '', tracking id '', request correlation id ''."),
        502 => ("BadGateway", "The gateway did not receive a response in time."),
        503 => ("ServiceUnavailable", "The service is temporarily unavailable. Please try again later."),
        504 => ("GatewayTimeout", "The gateway did not receive a response within the specified time period."),
        409 => ("Conflict", "The request conflicts with the current state of the resource."),
        _ => ("InjectedFault", "An injected fault."),
    };
    let mut r = match &f.body {
        Some(body) => {
            let mut r =
                Resp::new(status).with_header("content-type", "application/json; charset=utf-8");
            r.body = Bytes::from(body.clone());
            r
        }
        None => Resp::arm_error(
            status,
            f.code.as_deref().unwrap_or(code),
            f.message.as_deref().unwrap_or(message),
        ),
    };
    if let Some(s) = f.retry_after {
        r.set_header("retry-after", s.to_string());
    }
    r
}

fn is_graph_path(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    l.starts_with("/v1.0/") || l.starts_with("/beta/") || l == "/v1.0" || l == "/beta"
}

fn is_arm_path(p: &str) -> bool {
    let l = p.to_ascii_lowercase();
    l == "/subscriptions"
        || l.starts_with("/subscriptions/")
        || l.starts_with("/providers/")
        || l == "/providers"
        || l == "/tenants"
}

fn route(app: &Arc<App>, req: &Req, ctx: &mut Ctx) -> Resp {
    let path = req.path.as_str();
    let lower = path.to_ascii_lowercase();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if lower == "/metadata/endpoints" {
        return auth::metadata_endpoints(app);
    }
    if lower == "/metadata/identity/oauth2/token" {
        return auth::imds_token(app, req);
    }
    if lower == "/msi/token" {
        return auth::app_service_token(app, req);
    }
    if is_arm_path(path) {
        return arm_entry(app, req, ctx);
    }
    if is_graph_path(path) {
        match auth::authenticate(app, req, Audience::Graph) {
            Ok(c) => ctx.claims = Some(c),
            Err(r) => return r,
        }
        return crate::graph::handle(app, req, ctx);
    }
    // Entra ID.
    match (req.method.clone(), segs.as_slice()) {
        (Method::POST, [tenant, "oauth2", "v2.0", "token"]) => {
            auth::token_endpoint(app, req, tenant, true)
        }
        (Method::POST, [tenant, "oauth2", "token"]) => {
            auth::token_endpoint(app, req, tenant, false)
        }
        (Method::GET, [tenant, "v2.0", ".well-known", "openid-configuration"]) => {
            auth::openid_configuration(app, tenant, true)
        }
        (Method::GET, [tenant, ".well-known", "openid-configuration"]) => {
            auth::openid_configuration(app, tenant, false)
        }
        (Method::GET, [_, "discovery", "instance"]) => auth::instance_discovery(app, req),
        (Method::GET, [_, "discovery", "v2.0", "keys"])
        | (Method::GET, [_, "discovery", "keys"]) => auth::jwks(app),
        _ => Resp::json(
            404,
            &serde_json::json!({"error": {"code": "NotFound", "message": format!("No route for {} {}", req.method, req.path)}}),
        ),
    }
}

fn arm_entry(app: &Arc<App>, req: &Req, ctx: &mut Ctx) -> Resp {
    let claims = match auth::authenticate(app, req, Audience::Arm) {
        Ok(c) => c,
        Err(r) => return r,
    };
    ctx.claims = Some(claims.clone());
    let cat = Category::of(&req.method);
    let sub = crate::util::subscription_of(&req.path).unwrap_or_else(|| "tenant".into());
    let principal = claims.oid.clone().unwrap_or_default();
    let realism = app.world.read().realism.clone();
    let charge = app.limiter.charge_arm(&realism, &sub, &principal, cat);
    if !charge.allowed {
        let mut r = Resp::arm_error(
            429,
            "SubscriptionRequestsThrottled",
            &format!(
                "Number of '{}' requests for subscription '{sub}' actor '{principal}' exceeded. Please try again after '{}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling",
                cat.word(),
                charge.retry_after
            ),
        );
        r.set_header("retry-after", charge.retry_after.to_string());
        r.set_header(cat.header(), "0");
        return r;
    }
    let mut resp = crate::arm::handle(app, req, ctx);
    if !resp.has_header(cat.header()) {
        resp.set_header(cat.header(), charge.remaining.to_string());
    }
    resp
}

fn finish_headers(req: &Req, ctx: &Ctx, resp: &mut Resp) {
    let correlation = req
        .header("x-ms-correlation-request-id")
        .map(|s| s.to_string())
        .unwrap_or_else(|| ctx.request_id.clone());
    if is_arm_path(&req.path) {
        resp.set_header("x-ms-request-id", &ctx.request_id);
        resp.set_header("x-ms-correlation-request-id", &correlation);
        resp.set_header(
            "x-ms-routing-request-id",
            format!("EASTUS:{}:{}", now_ms() / 1000, ctx.request_id),
        );
        resp.set_header("cache-control", "no-cache");
        resp.set_header("pragma", "no-cache");
        resp.set_header("expires", "-1");
        resp.set_header(
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        );
        resp.set_header("x-content-type-options", "nosniff");
        if let Some(c) = req.header("x-ms-client-request-id") {
            resp.set_header("x-ms-client-request-id", c);
        }
    } else if req.path.starts_with("/v1.0") || req.path.starts_with("/beta") {
        resp.set_header("request-id", &ctx.request_id);
        resp.set_header(
            "client-request-id",
            req.header("client-request-id").unwrap_or(&ctx.request_id),
        );
        resp.set_header("odata-version", "4.0");
    } else {
        resp.set_header("x-ms-request-id", &ctx.request_id);
    }
    resp.set_header("date", http_date(now_ms()));
    if !resp.has_header("content-type") && !resp.body.is_empty() {
        resp.set_header("content-type", "application/json; charset=utf-8");
    }
}

fn collapse_slashes(path: &str) -> String {
    let mut collapsed = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && collapsed.ends_with('/')) {
            collapsed.push(c);
        }
    }
    collapsed
}

#[cfg(test)]
mod tests {
    use super::collapse_slashes;

    #[test]
    fn repeated_slashes_collapse() {
        assert_eq!(
            collapse_slashes("//subscriptions/s//resourceGroups/rg/"),
            "/subscriptions/s/resourceGroups/rg/"
        );
        assert_eq!(collapse_slashes("/v1.0/me"), "/v1.0/me");
    }
}
