//! The plugin plumbing as Terraform's go-plugin client sees it: the magic cookie, protocol
//! negotiation, the handshake line, AutoMTLS, health, shutdown and `--debug`.

use std::process::Command;
use std::time::Duration;

use acceptance_tests::plugin_client::{connect, launch, terraform_env, ClientIdentity};
use acceptance_tests::workspace_binary;
use tfplugin::wire::plugin::grpc_controller_client::GrpcControllerClient;
use tfplugin::wire::tfplugin6::get_provider_schema;
use tfplugin::wire::tfplugin6::provider_client::ProviderClient;

fn provider_binary() -> std::path::PathBuf {
    workspace_binary("MIG_PROVIDER_BIN", "terraform-provider-mig")
}

#[test]
fn run_by_hand_it_explains_itself_and_fails() {
    let output = Command::new(provider_binary())
        .env_clear()
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout, which Terraform reads"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("Terraform"), "{stderr}");
}

#[test]
fn a_terraform_without_protocol_6_gets_a_clear_error() {
    let identity = ClientIdentity::generate();
    let mut env = terraform_env(&identity);
    env.retain(|(k, _)| *k != "PLUGIN_PROTOCOL_VERSIONS");
    env.push(("PLUGIN_PROTOCOL_VERSIONS", "4,5".into()));
    let error = launch(&provider_binary(), &env)
        .err()
        .expect("must not hand-shake");
    assert!(
        error.contains("protocol") && error.contains("4,5"),
        "{error}"
    );
}

#[tokio::test]
async fn handshake_line_and_mtls_as_go_plugin_expects() {
    let identity = ClientIdentity::generate();
    let plugin = launch(&provider_binary(), &terraform_env(&identity)).unwrap();
    let handshake = &plugin.handshake;
    assert_eq!(
        (
            handshake.core_version.as_str(),
            handshake.protocol_version.as_str(),
            handshake.network.as_str(),
            handshake.protocol.as_str()
        ),
        ("1", "6", "tcp", "grpc")
    );
    let port: u16 = handshake
        .address
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (10000..=25000).contains(&port),
        "port {port} outside PLUGIN_MIN_PORT..PLUGIN_MAX_PORT"
    );
    assert!(
        !handshake.server_certificate_der.is_empty(),
        "AutoMTLS puts our certificate in the line"
    );

    let channel = connect(handshake, &identity).await.unwrap();
    let schema = ProviderClient::new(channel.clone())
        .get_provider_schema(get_provider_schema::Request {})
        .await
        .unwrap()
        .into_inner();
    assert!(schema.provider.is_some());
    assert!(schema.functions.contains_key("builtin_identity_id"));

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "plugin".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn a_client_with_another_certificate_is_refused() {
    let identity = ClientIdentity::generate();
    let plugin = launch(&provider_binary(), &terraform_env(&identity)).unwrap();
    let stranger = ClientIdentity::generate();
    let refused = match connect(&plugin.handshake, &stranger).await {
        Err(_) => true,
        Ok(channel) => ProviderClient::new(channel)
            .get_provider_schema(get_provider_schema::Request {})
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a certificate other than PLUGIN_CLIENT_CERT must not get through"
    );
}

#[tokio::test]
async fn controller_shutdown_ends_the_process() {
    let identity = ClientIdentity::generate();
    let mut plugin = launch(&provider_binary(), &terraform_env(&identity)).unwrap();
    let channel = connect(&plugin.handshake, &identity).await.unwrap();
    GrpcControllerClient::new(channel)
        .shutdown(tfplugin::wire::plugin::Empty {})
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = plugin.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 10 s after Shutdown"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn debug_mode_prints_a_reattach_value() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(provider_binary())
        .arg("--debug")
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut reattach = None;
    for _ in 0..10 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(value) = line.trim().strip_prefix("TF_REATTACH_PROVIDERS=") {
            reattach = Some(value.trim_matches('\'').to_string());
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let value: serde_json::Value =
        serde_json::from_str(&reattach.expect("a TF_REATTACH_PROVIDERS line")).unwrap();
    let entry = &value["registry.terraform.io/azure-mig/mig"];
    assert_eq!(entry["ProtocolVersion"], 6);
    assert_eq!(entry["Addr"]["Network"], "tcp");
}
