//! The emulator's write endpoints fed arbitrary request bodies, through its real ARM router
//! (emulator/src, compiled by fuzz/emulator-shim): no body makes a handler panic or answer
//! 5xx; a bad body is a 4xx, as ARM answers. The first input byte picks the endpoint, the
//! rest is the body; each request starts from the demo estate (examples/quickstart).
#![no_main]

use std::sync::{Arc, OnceLock};

use azure_emulator_shim::app::{App, Ctx};
use azure_emulator_shim::arm;
use azure_emulator_shim::http::Req;
use azure_emulator_shim::jwt::Claims;
use azure_emulator_shim::model::World;
use azure_emulator_shim::scenario::{build_world, Scenario};
use bytes::Bytes;
use hyper::header::HeaderMap;
use hyper::Method;
use libfuzzer_sys::fuzz_target;
use terraform_provider_mig_fuzz::MAX_INPUT;

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const GROUP: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-app";

struct Fixture {
    app: Arc<App>,
    pristine: World,
    ctx: Ctx,
    endpoints: Vec<(Method, String, &'static str)>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let scenario: Scenario =
            serde_json::from_str(include_str!("../../examples/quickstart/demo-scenario.json"))
                .expect("demo scenario");
        let world = build_world(&scenario, "fast", None);
        let caller = world.client.object_id.clone();
        let app = Arc::new(App::new(
            world.clone(),
            "https://127.0.0.1:1".into(),
            "127.0.0.1:1".into(),
            "https://localhost:1".into(),
            "fast",
            String::new(),
        ));
        let ctx = Ctx {
            claims: Some(Arc::new(Claims {
                oid: Some(caller),
                ..Claims::default()
            })),
            request_id: "fuzz".into(),
        };
        let latest = |versions: &[&'static str]| *versions.last().expect("versions");
        let compute = latest(arm::COMPUTE_VERSIONS);
        let msi = latest(arm::MSI_VERSIONS);
        let endpoints = vec![
            (Method::PATCH, format!("{GROUP}/providers/Microsoft.Compute/virtualMachines/vm-system"), compute),
            (Method::PUT, format!("{GROUP}/providers/Microsoft.Compute/virtualMachines/vm-no-identity"), compute),
            (Method::PATCH, format!("/subscriptions/{SUB}/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachineScaleSets/ss-web"), compute),
            (Method::PUT, format!("{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-fuzz"), msi),
            (Method::PUT, format!("{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-app/providers/Microsoft.Authorization/locks/lock-fuzz"), latest(arm::LOCK_VERSIONS)),
            (Method::PUT, format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments/5c4f3d2e-0000-4000-8000-00000000f022"), latest(arm::ROLE_ASSIGNMENT_VERSIONS)),
            (Method::PUT, format!("/subscriptions/{SUB}/resourcegroups/rg-fuzz"), latest(arm::RESOURCES_VERSIONS)),
        ];
        Fixture { app, pristine: world, ctx, endpoints }
    })
}

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let (method, path, version) = &f.endpoints[selector as usize % f.endpoints.len()];
    *f.app.world.write() = f.pristine.clone();
    let req = Req {
        method: method.clone(),
        path: path.clone(),
        raw_query: format!("api-version={version}"),
        query: vec![("api-version".into(), version.to_string())],
        headers: HeaderMap::new(),
        body: Bytes::copy_from_slice(body),
    };
    let resp = arm::handle(&f.app, &req, &f.ctx);
    let status = resp.status.as_u16();
    assert!(
        status < 500,
        "{method} {path} answered {status} to {:?}: {}",
        String::from_utf8_lossy(body),
        String::from_utf8_lossy(&resp.body)
    );
});
