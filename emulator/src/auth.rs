//! Entra ID (token endpoint, discovery), the managed-identity endpoints, the
//! cloud metadata endpoint, and the bearer-token checks ARM and Graph apply.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::app::App;
use crate::http::{Req, Resp};
use crate::jwt::{decode_unverified, verify_with_certificates, Claims, VerifyError};
use crate::model::{Principal, World};
use crate::util::{arm_clock, guid, key, now_ms, now_secs, rfc3339_z};

pub const ARM_AUDIENCES: &[&str] = &[
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
];
pub const GRAPH_AUDIENCES: &[&str] = &[
    "https://graph.microsoft.com",
    "https://graph.microsoft.com/",
    "00000003-0000-0000-c000-000000000000",
];

const TOKEN_LIFETIME: u64 = 3599;
const MI_TOKEN_LIFETIME: u64 = 86399;

/// `GET /metadata/endpoints?api-version=...`: the single-cloud shape.
pub fn metadata_endpoints(app: &App) -> Resp {
    let base = app.arm_endpoint();
    let host = &app.host;
    Resp::json(
        200,
        &json!({
            "portal": "https://portal.azure.com",
            "authentication": {
                "loginEndpoint": base,
                "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
                "tenant": "common",
                "identityProvider": "AAD"
            },
            "media": "https://rest.media.azure.net",
            "graphAudience": "https://graph.windows.net/",
            "graph": app.graph_endpoint(),
            "name": "AzureCloud",
            "suffixes": {
                "azureDataLakeStoreFileSystem": "azuredatalakestore.net",
                "acrLoginServer": "azurecr.io",
                "sqlServerHostname": "database.windows.net",
                "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
                "keyVaultDns": "vault.azure.net",
                "storage": "core.windows.net",
                "azureFrontDoorEndpointSuffix": "azurefd.net",
                "storageSyncEndpointSuffix": "afs.azure.net",
                "mhsmDns": "managedhsm.azure.net",
                "mysqlServerEndpoint": "mysql.database.azure.com",
                "postgresqlServerEndpoint": "postgres.database.azure.com",
                "mariadbServerEndpoint": "mariadb.database.azure.com",
                "synapseAnalytics": "dev.azuresynapse.net",
                "attestationEndpoint": "attest.azure.net"
            },
            "batch": "https://batch.core.windows.net/",
            "resourceManager": base,
            "vmImageAliasDoc": "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/main/arm-compute/quickstart-templates/aliases.json",
            "activeDirectoryDataLake": "https://datalake.azure.net/",
            "sqlManagement": "https://management.core.windows.net:8443/",
            "microsoftGraphResourceId": app.graph_endpoint(),
            "appInsightsResourceId": "https://api.applicationinsights.io",
            "appInsightsTelemetryChannelResourceId": "https://dc.applicationinsights.azure.com/v2/track",
            "attestationResourceId": "https://attest.azure.net",
            "synapseAnalyticsResourceId": "https://dev.azuresynapse.net",
            "logAnalyticsResourceId": "https://api.loganalytics.io",
            "ossrDbmsResourceId": "https://ossrdbms-aad.database.windows.net",
            "emulatorHost": host
        }),
    )
}

/// Entra's OAuth error body.
fn aad_error(status: u16, error: &str, code: u32, description: &str) -> Resp {
    let trace = guid();
    let corr = guid();
    let ts = rfc3339_z(now_ms());
    Resp::json(
        status,
        &json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {corr} Timestamp: {ts}"),
            "error_codes": [code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}")
        }),
    )
}

fn tenant_matches(world: &World, tenant: &str) -> bool {
    tenant.eq_ignore_ascii_case(&world.tenant_id)
        || tenant.eq_ignore_ascii_case("emulator.onmicrosoft.com")
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration` (and the v1 variant).
pub fn openid_configuration(app: &App, tenant: &str, v2: bool) -> Resp {
    let world = app.world.read();
    let tid = if tenant_matches(&world, tenant) {
        world.tenant_id.clone()
    } else if matches!(
        tenant.to_ascii_lowercase().as_str(),
        "common" | "organizations" | "consumers"
    ) {
        "{tenantid}".to_string()
    } else {
        return aad_error(
            400,
            "invalid_tenant",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
        );
    };
    let b = &app.base;
    let (suffix, issuer) = if v2 {
        ("/v2.0", format!("{b}/{tid}/v2.0"))
    } else {
        ("", format!("https://sts.windows.net/{tid}/"))
    };
    let oauth = if v2 { "oauth2/v2.0" } else { "oauth2" };
    Resp::json(
        200,
        &json!({
            "token_endpoint": format!("{b}/{tid}/{oauth}/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{b}/{tid}/discovery{suffix}/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": issuer,
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": format!("{b}/{tid}/{oauth}/authorize"),
            "device_authorization_endpoint": format!("{b}/{tid}/{oauth}/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{b}/{tid}/{oauth}/logout"),
            "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "kerberos_endpoint": format!("{b}/{tid}/kerberos"),
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net"
        }),
    )
}

/// `GET /common/discovery/instance`: MSAL's instance discovery.
pub fn instance_discovery(app: &App, req: &Req) -> Resp {
    let host = &app.host;
    let tenant = req
        .q("authorization_endpoint")
        .and_then(|e| e.split('/').nth(3).map(|s| s.to_string()))
        .unwrap_or_else(|| app.world.read().tenant_id.clone());
    Resp::json(
        200,
        &json!({
            "tenant_discovery_endpoint": format!("{}/{tenant}/v2.0/.well-known/openid-configuration", app.base),
            "api-version": "1.1",
            "metadata": [{
                "preferred_network": host,
                "preferred_cache": host,
                "aliases": [host]
            }]
        }),
    )
}

pub fn jwks(app: &App) -> Resp {
    Resp::json(200, &app.signer.jwks())
}

/// Mints a token for a principal.
#[allow(clippy::too_many_arguments)]
pub fn mint(
    app: &App,
    tenant: &str,
    aud: &str,
    oid: &str,
    appid: Option<&str>,
    acr: &str,
    mirid: Option<&str>,
    lifetime: u64,
) -> (String, u64) {
    let now = now_secs();
    let claims = Claims {
        aud: aud.to_string(),
        iss: format!("https://sts.windows.net/{tenant}/"),
        iat: now,
        nbf: now,
        exp: now + lifetime,
        aio: Some(crate::util::base64url(guid().as_bytes())),
        appid: appid.map(|s| s.to_string()),
        appidacr: Some(acr.to_string()),
        idp: Some(format!("https://sts.windows.net/{tenant}/")),
        idtyp: Some("app".into()),
        oid: Some(oid.to_string()),
        rh: Some("0.AAAA".into()),
        sub: Some(oid.to_string()),
        tid: Some(tenant.to_string()),
        uti: Some(crate::util::base64url(
            &uuid::Uuid::new_v4().as_bytes()[..12],
        )),
        ver: Some("1.0".into()),
        xms_mirid: mirid.map(|s| s.to_string()),
        xms_tcdt: Some(1_600_000_000),
    };
    (app.signer.sign(&claims), now + lifetime)
}

/// The resource (audience) a token is requested for.
fn resource_from_scope(scope: &str) -> Option<String> {
    scope
        .split_whitespace()
        .find(|s| s.ends_with("/.default"))
        .map(|s| s.trim_end_matches("/.default").to_string())
}

/// `POST /{tenant}/oauth2/v2.0/token` and the v1 `POST /{tenant}/oauth2/token`.
pub fn token_endpoint(app: &App, req: &Req, tenant: &str, v2: bool) -> Resp {
    let form = req.form();
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let world = app.world.read();
    if !tenant_matches(&world, tenant) {
        return aad_error(
            400,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."),
        );
    }
    let grant = get("grant_type").unwrap_or_default();
    if grant != "client_credentials" {
        return aad_error(
            400,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{grant}'."),
        );
    }
    // Basic auth carries client_id:client_secret too.
    let mut basic: Option<(String, String)> = None;
    if let Some(h) = req.header("authorization") {
        if let Some(b64) = h.strip_prefix("Basic ") {
            use base64::Engine;
            if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
                if let Ok(text) = String::from_utf8(raw) {
                    if let Some((u, p)) = text.split_once(':') {
                        let dec = |s: &str| {
                            percent_encoding::percent_decode_str(s)
                                .decode_utf8_lossy()
                                .into_owned()
                        };
                        basic = Some((dec(u), dec(p)));
                    }
                }
            }
        }
    }
    let Some(client_id) = get("client_id").or_else(|| basic.as_ref().map(|b| b.0.clone())) else {
        return aad_error(
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let resource = if v2 {
        let Some(scope) = get("scope") else {
            return aad_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            );
        };
        match resource_from_scope(&scope) {
            Some(r) => r,
            None => {
                return aad_error(
                    400,
                    "invalid_scope",
                    1002012,
                    &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
                )
            }
        }
    } else {
        match get("resource") {
            Some(r) => r,
            None => {
                return aad_error(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'resource'.",
                )
            }
        }
    };
    let principal: Option<&Principal> = world.principals.values().find(|p| {
        p.app_id
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(&client_id))
            && !p.credentials.is_empty()
            && !world.deleted_principals.contains(&p.id)
    });
    let Some(principal) = principal else {
        return aad_error(
            400,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", world.tenant_id),
        );
    };
    let secret = get("client_secret").or_else(|| basic.as_ref().map(|b| b.1.clone()));
    let assertion = get("client_assertion");
    let acr;
    if let Some(secret) = secret {
        if !principal.credentials.secrets.iter().any(|s| s == &secret) {
            return aad_error(
                401,
                "invalid_client",
                7000215,
                &format!("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."),
            );
        }
        acr = "1";
    } else if let Some(assertion) = assertion {
        if let Err(resp) =
            check_assertion(&world, principal, &assertion, &client_id, &app.base, tenant)
        {
            return resp;
        }
        acr = "2";
    } else {
        return aad_error(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    }
    let tenant_id = world.tenant_id.clone();
    let oid = principal.id.clone();
    drop(world);
    let (token, exp) = mint(
        app,
        &tenant_id,
        &resource,
        &oid,
        Some(&client_id),
        acr,
        None,
        TOKEN_LIFETIME,
    );
    if v2 {
        Resp::json(
            200,
            &json!({"token_type": "Bearer", "expires_in": TOKEN_LIFETIME, "ext_expires_in": TOKEN_LIFETIME, "access_token": token}),
        )
    } else {
        let now = now_secs();
        Resp::json(
            200,
            &json!({
                "token_type": "Bearer", "expires_in": TOKEN_LIFETIME.to_string(), "ext_expires_in": TOKEN_LIFETIME.to_string(),
                "expires_on": exp.to_string(), "not_before": now.to_string(), "resource": resource, "access_token": token
            }),
        )
    }
}

fn check_assertion(
    world: &World,
    p: &Principal,
    assertion: &str,
    client_id: &str,
    base: &str,
    tenant: &str,
) -> Result<(), Resp> {
    let Some(jwt) = decode_unverified(assertion) else {
        return Err(aad_error(
            400,
            "invalid_request",
            50027,
            "JWT token is invalid or malformed.",
        ));
    };
    let iss = jwt.claims["iss"].as_str().unwrap_or("");
    let sub = jwt.claims["sub"].as_str().unwrap_or("");
    let now = now_secs();
    if let Some(exp) = jwt.claims["exp"].as_u64() {
        if exp + 300 < now {
            return Err(aad_error(
                400,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            ));
        }
    }
    // A federated credential matches on issuer and subject (the assertion is
    // from an external IdP: its signature is not ours to check).
    if !p.credentials.federated.is_empty() {
        if let Some(f) = p
            .credentials
            .federated
            .iter()
            .find(|f| f.issuer == iss && f.subject == sub)
        {
            if !f.audiences.is_empty() {
                let auds: Vec<String> = match &jwt.claims["aud"] {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|v| v.as_str().map(|s| s.to_string()))
                        .collect(),
                    _ => vec![],
                };
                if !auds.iter().any(|a| f.audiences.contains(a)) {
                    return Err(aad_error(
                        400,
                        "invalid_client",
                        700212,
                        "No matching federated identity record found for presented assertion audience.",
                    ));
                }
            }
            return Ok(());
        }
    }
    if !p.credentials.certificates.is_empty() {
        // A certificate assertion: iss = sub = client id, aud = our token endpoint.
        if iss == client_id && sub == client_id {
            if verify_with_certificates(&jwt, &p.credentials.certificates) {
                let _ = (base, tenant);
                return Ok(());
            }
            return Err(aad_error(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation.",
            ));
        }
    }
    if !p.credentials.federated.is_empty() {
        return Err(aad_error(
            400,
            "invalid_request",
            70021,
            &format!("No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'.", jwt.claims["aud"]),
        ));
    }
    if p.credentials.certificates.is_empty() {
        // Nothing configured: any well-formed JWT is accepted.
        let _ = world;
        return Ok(());
    }
    Err(aad_error(
        401,
        "invalid_client",
        700027,
        "Client assertion failed signature validation.",
    ))
}

/// Which audience family a service checks.
#[derive(Clone, Copy, PartialEq)]
pub enum Audience {
    Arm,
    Graph,
}

fn arm_www_authenticate(desc: &str) -> String {
    format!(
        "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", error_description=\"{desc}\""
    )
}

/// Checks the bearer token for ARM or Graph; returns the claims or a 401.
pub fn authenticate(app: &App, req: &Req, aud: Audience) -> Result<Arc<Claims>, Resp> {
    let header = req.header("authorization");
    let fail_arm = |code: &str, msg: &str, desc: &str| {
        Resp::arm_error(401, code, msg).with_header("www-authenticate", arm_www_authenticate(desc))
    };
    let fail_graph = |code: &str, msg: &str| {
        let now = rfc3339_z(now_ms());
        Resp::json(
            401,
            &json!({"error": {"code": code, "message": msg, "innerError": {"date": now.trim_end_matches('Z').split('.').next().unwrap_or(&now), "request-id": guid(), "client-request-id": req.header("client-request-id").map(|s| s.to_string()).unwrap_or_else(guid)}}}),
        )
        .with_header(
            "www-authenticate",
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
        )
    };
    let Some(header) = header else {
        return Err(match aud {
            Audience::Arm => fail_arm(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                "The authentication failed because of missing 'Authorization' header.",
            ),
            Audience::Graph => fail_graph("InvalidAuthenticationToken", "Access token is empty."),
        });
    };
    let token = match header.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") && !t.trim().is_empty() => t.trim(),
        _ => {
            return Err(match aud {
                Audience::Arm => fail_arm(
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                    "The authentication failed because of invalid 'Authorization' header.",
                ),
                Audience::Graph => fail_graph("InvalidAuthenticationToken", "Access token is empty."),
            })
        }
    };
    let claims = match app.verify_token(token) {
        Ok(c) => c,
        Err(VerifyError::Malformed) => {
            return Err(match aud {
                Audience::Arm => fail_arm(
                    "InvalidAuthenticationToken",
                    "The access token is invalid.",
                    "The access token is invalid.",
                ),
                Audience::Graph => fail_graph(
                    "InvalidAuthenticationToken",
                    "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or JWE Compact Serialization Format.",
                ),
            })
        }
        Err(VerifyError::BadSignature) => {
            return Err(match aud {
                Audience::Arm => fail_arm(
                    "InvalidAuthenticationToken",
                    "The access token is invalid.",
                    "The access token signature is invalid.",
                ),
                Audience::Graph => fail_graph("InvalidAuthenticationToken", "Invalid signature."),
            })
        }
    };
    let ok_aud = match aud {
        Audience::Arm => {
            ARM_AUDIENCES.contains(&claims.aud.as_str())
                || claims.aud.trim_end_matches('/') == app.base
        }
        Audience::Graph => {
            GRAPH_AUDIENCES.contains(&claims.aud.as_str())
                || claims.aud.trim_end_matches('/') == app.base
                || claims.aud.trim_end_matches('/') == app.graph_base
        }
    };
    if !ok_aud {
        return Err(match aud {
            Audience::Arm => fail_arm(
                "InvalidAuthenticationTokenAudience",
                &format!("The access token has been obtained for wrong audience or resource '{}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.", claims.aud),
                "The access token has been obtained from wrong audience or resource.",
            ),
            Audience::Graph => fail_graph("InvalidAuthenticationToken", "Invalid audience."),
        });
    }
    let now = now_secs();
    if claims.exp <= now {
        return Err(match aud {
            Audience::Arm => fail_arm(
                "ExpiredAuthenticationToken",
                &format!(
                    "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                    arm_clock(claims.exp),
                    arm_clock(now)
                ),
                "The access token has expired.",
            ),
            Audience::Graph => fail_graph(
                "InvalidAuthenticationToken",
                "Lifetime validation failed, the token is expired.",
            ),
        });
    }
    let tenant = app.world.read().tenant_id.clone();
    if claims
        .tid
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case(&tenant))
    {
        return Err(match aud {
            Audience::Arm => fail_arm(
                "InvalidAuthenticationTokenTenant",
                &format!("The access token is from the wrong issuer '{}'. It must match the tenant 'https://sts.windows.net/{tenant}/' associated with this subscription. Please use the authority (URL) 'https://login.windows.net/{tenant}' to get the token. Note, if the subscription is transferred to another tenant there is no impact to the services, but information about new tenant could take time to propagate (up to an hour). If you just transferred your subscription and see this error message, please try back later.", claims.iss),
                "The access token is from the wrong issuer.",
            ),
            Audience::Graph => fail_graph("InvalidAuthenticationToken", "Access token validation failure. Invalid audience."),
        });
    }
    Ok(claims)
}

/// The identities the emulated host has: (system principal, [(user id, principal, client)]).
type HostView = (Option<String>, Vec<(String, String, String)>);

fn host_identities(world: &World) -> HostView {
    if let Some(vm) = &world.host.vm {
        let k = key(vm);
        let c = world.vms.get(&k).or_else(|| world.vmss.get(&k));
        if let Some(c) = c {
            let users = c
                .identity
                .user
                .iter()
                .filter_map(|a| {
                    world
                        .identity(&a.id)
                        .map(|i| (i.id.clone(), i.principal_id.clone(), i.client_id.clone()))
                })
                .collect();
            return (
                c.identity.system.as_ref().map(|s| s.principal_id.clone()),
                users,
            );
        }
        return (None, vec![]);
    }
    let users = world
        .host
        .user
        .iter()
        .filter_map(|id| {
            world
                .identity(id)
                .map(|i| (i.id.clone(), i.principal_id.clone(), i.client_id.clone()))
        })
        .collect();
    (
        world.host.system.as_ref().map(|s| s.principal_id.clone()),
        users,
    )
}

/// Picks the identity for a managed-identity token request (IMDS rules).
fn pick_identity(
    world: &World,
    client_id: Option<&str>,
    object_id: Option<&str>,
    res_id: Option<&str>,
) -> Result<(String, Option<String>, Option<String>), &'static str> {
    let (system, users) = host_identities(world);
    if let Some(cid) = client_id {
        return users
            .iter()
            .find(|u| u.2.eq_ignore_ascii_case(cid))
            .map(|u| (u.1.clone(), Some(u.2.clone()), Some(u.0.clone())))
            .ok_or("Identity not found");
    }
    if let Some(oid) = object_id {
        if system
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case(oid))
        {
            return Ok((system.unwrap_or_default(), None, None));
        }
        return users
            .iter()
            .find(|u| u.1.eq_ignore_ascii_case(oid))
            .map(|u| (u.1.clone(), Some(u.2.clone()), Some(u.0.clone())))
            .ok_or("Identity not found");
    }
    if let Some(rid) = res_id {
        let k = key(rid);
        return users
            .iter()
            .find(|u| key(&u.0) == k)
            .map(|u| (u.1.clone(), Some(u.2.clone()), Some(u.0.clone())))
            .ok_or("Identity not found");
    }
    if let Some(s) = system {
        return Ok((s, None, None));
    }
    match users.len() {
        0 => Err("Identity not found"),
        1 => Ok((users[0].1.clone(), Some(users[0].2.clone()), Some(users[0].0.clone()))),
        _ => Err("Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request"),
    }
}

fn mi_token(
    app: &App,
    world: &World,
    resource: &str,
    oid: &str,
    client_id: Option<&str>,
    res_id: Option<&str>,
) -> (String, u64, String) {
    let cid = client_id
        .map(|s| s.to_string())
        .or_else(|| {
            world
                .principals
                .get(&oid.to_ascii_lowercase())
                .and_then(|p| p.app_id.clone())
        })
        .unwrap_or_default();
    let aud = resource.trim_end_matches("/.default").to_string();
    let (t, exp) = mint(
        app,
        &world.tenant_id,
        &aud,
        oid,
        Some(&cid),
        "2",
        res_id,
        MI_TOKEN_LIFETIME,
    );
    (t, exp, cid)
}

/// IMDS: `GET /metadata/identity/oauth2/token`.
pub fn imds_token(app: &App, req: &Req) -> Resp {
    let err = |status: u16, desc: &str| {
        Resp::json(
            status,
            &json!({"error": "invalid_request", "error_description": desc}),
        )
        .with_header("server", "IMDS/150.870.65.1544")
    };
    if !req
        .header("metadata")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return err(400, "Required metadata header not specified");
    }
    if req.api_version().is_none() {
        return err(400, "Required query variable 'api-version' is missing");
    }
    let Some(resource) = req.q("resource") else {
        return err(400, "Required audience parameter not specified");
    };
    let world = app.world.read();
    let picked = pick_identity(
        &world,
        req.q("client_id"),
        req.q("object_id").or(req.q("principal_id")),
        req.q("msi_res_id").or(req.q("mi_res_id")),
    );
    match picked {
        Err(msg) => err(400, msg),
        Ok((oid, cid, rid)) => {
            let (token, exp, cid) =
                mi_token(app, &world, resource, &oid, cid.as_deref(), rid.as_deref());
            let now = now_secs();
            Resp::json(
                200,
                &json!({
                    "access_token": token, "client_id": cid, "expires_in": MI_TOKEN_LIFETIME.to_string(),
                    "expires_on": exp.to_string(), "ext_expires_in": MI_TOKEN_LIFETIME.to_string(),
                    "not_before": now.to_string(), "resource": resource, "token_type": "Bearer"
                }),
            )
        }
    }
}

/// App Service style: `GET /msi/token?api-version=2019-08-01` with `X-IDENTITY-HEADER`.
pub fn app_service_token(app: &App, req: &Req) -> Resp {
    let err = |status: u16, msg: &str| {
        Resp::json(
            status,
            &json!({"statusCode": status, "message": msg, "correlationId": guid()}),
        )
    };
    match req.header("x-identity-header") {
        Some(h) if h == app.msi_secret => {}
        Some(_) => {
            return err(
                401,
                "Unauthorized: the X-IDENTITY-HEADER value is not valid.",
            )
        }
        None => {
            return err(
                401,
                "Unauthorized: the X-IDENTITY-HEADER header is missing.",
            )
        }
    }
    match req.api_version() {
        Some("2019-08-01") => {}
        Some(v) => {
            return err(
                400,
                &format!("The api-version '{v}' is not supported. Supported versions: 2019-08-01."),
            )
        }
        None => return err(400, "The api-version query parameter is required."),
    }
    let Some(resource) = req.q("resource") else {
        return err(400, "The resource query parameter is required.");
    };
    let world = app.world.read();
    match pick_identity(
        &world,
        req.q("client_id"),
        req.q("principal_id").or(req.q("object_id")),
        req.q("mi_res_id").or(req.q("msi_res_id")),
    ) {
        Err(msg) => err(400, msg),
        Ok((oid, cid, rid)) => {
            let (token, exp, cid) =
                mi_token(app, &world, resource, &oid, cid.as_deref(), rid.as_deref());
            Resp::json(
                200,
                &json!({"access_token": token, "expires_on": exp.to_string(), "resource": resource, "token_type": "Bearer", "client_id": cid}),
            )
        }
    }
}
