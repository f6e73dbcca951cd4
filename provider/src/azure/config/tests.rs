use super::cloud::{discover_endpoints_with, discovery_retryable, discovery_wait};
use super::*;
use std::collections::HashMap;

const SUB: &str = "00000000-0000-0000-0000-000000000001";
const TENANT: &str = "00000000-0000-0000-0000-0000000000aa";
const CLIENT: &str = "00000000-0000-0000-0000-0000000000c1";

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Sync {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn resolve(
    settings: ProviderSettings,
    pairs: &[(&str, &str)],
) -> Result<ResolvedConfig, Vec<ConfigError>> {
    let env = env(pairs);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(settings.resolve_with(&env))
}

#[test]
fn the_block_wins_over_the_environment() {
    let settings = ProviderSettings {
        subscription_id: Some(SUB.into()),
        use_cli: Some(false),
        client_secret: Some("from-block".into()),
        ..Default::default()
    };
    let resolved = resolve(
        settings,
        &[
            (
                "ARM_SUBSCRIPTION_ID",
                "11111111-1111-1111-1111-111111111111",
            ),
            ("ARM_TENANT_ID", TENANT),
            ("ARM_CLIENT_ID", CLIENT),
            ("ARM_CLIENT_SECRET", "from-env"),
        ],
    )
    .unwrap();
    assert_eq!(resolved.subscription_id, SUB);
    assert_eq!(resolved.tenant_id.as_deref(), Some(TENANT));
    assert_eq!(
        resolved.auth,
        AuthMethod::ClientSecret {
            secret: "from-block".into()
        }
    );
    assert_eq!(resolved.cloud, CloudEndpoints::public());
}

#[test]
fn environment_alone_configures_a_client_secret() {
    let resolved = resolve(
        ProviderSettings::default(),
        &[
            ("ARM_SUBSCRIPTION_ID", SUB),
            ("ARM_TENANT_ID", TENANT),
            ("ARM_CLIENT_ID", CLIENT),
            ("ARM_CLIENT_SECRET", "s"),
            ("ARM_ENVIRONMENT", "usgovernment"),
        ],
    )
    .unwrap();
    assert!(matches!(resolved.auth, AuthMethod::ClientSecret { .. }));
    assert_eq!(resolved.cloud.name, "usgovernment");
}

#[test]
fn missing_subscription_names_the_argument_and_the_variable() {
    let errors = resolve(ProviderSettings::default(), &[]).unwrap_err();
    let error = errors
        .iter()
        .find(|e| e.attribute == "subscription_id")
        .unwrap();
    assert!(error.detail.contains("ARM_SUBSCRIPTION_ID"));
}

#[test]
fn two_methods_in_the_block_are_refused() {
    let settings = ProviderSettings {
        client_secret: Some("s".into()),
        use_msi: Some(true),
        ..Default::default()
    };
    let errors = settings.static_errors();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].detail.contains("`client_secret`") && errors[0].detail.contains("`use_msi`"));
}

#[test]
fn msi_in_the_block_is_not_contradicted_by_a_secret_in_the_environment() {
    let settings = ProviderSettings {
        subscription_id: Some(SUB.into()),
        use_msi: Some(true),
        ..Default::default()
    };
    let resolved = resolve(
        settings,
        &[
            ("ARM_CLIENT_SECRET", "left over"),
            ("ARM_CLIENT_ID", CLIENT),
        ],
    )
    .unwrap();
    assert!(matches!(resolved.auth, AuthMethod::ManagedIdentity { .. }));
}

#[test]
fn bad_values_are_caught_before_any_call() {
    let settings = ProviderSettings {
        environment: Some("mars".into()),
        metadata_host: Some("https://example.com".into()),
        subscription_id: Some("nope".into()),
        msi_endpoint: Some("http://example.com/token".into()),
        ..Default::default()
    };
    let attributes: Vec<String> = settings
        .static_errors()
        .into_iter()
        .map(|e| e.attribute)
        .collect();
    for name in [
        "environment",
        "metadata_host",
        "subscription_id",
        "msi_endpoint",
    ] {
        assert!(
            attributes.contains(&name.to_string()),
            "{name} not reported: {attributes:?}"
        );
    }
}

#[test]
fn unreadable_certificate_and_ca_are_reported() {
    let settings = ProviderSettings {
        subscription_id: Some(SUB.into()),
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT.into()),
        client_certificate_path: Some("/nonexistent/cert.pfx".into()),
        ..Default::default()
    };
    let errors = resolve(settings.clone(), &[]).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.attribute == "client_certificate_path"),
        "{errors:?}"
    );
    let with_ca = ProviderSettings {
        ca_certificate_file: Some("/nonexistent/ca.pem".into()),
        ..settings
    };
    let errors = resolve(with_ca, &[]).unwrap_err();
    assert!(
        errors.iter().any(|e| e.attribute == "ca_certificate_file"),
        "{errors:?}"
    );
}

#[test]
fn empty_values_and_truncated_ca_files_name_their_argument() {
    let settings = ProviderSettings {
        subscription_id: Some(SUB.into()),
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT.into()),
        client_secret: Some(String::new()),
        ..Default::default()
    };
    let errors = settings.static_errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].attribute, "client_secret");
    assert!(errors[0].detail.contains("ARM_CLIENT_SECRET"), "{errors:?}");
    let not_guid = ProviderSettings {
        client_id: Some("my-app".into()),
        ..Default::default()
    };
    assert_eq!(not_guid.static_errors()[0].attribute, "client_id");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n").unwrap();
    let settings = ProviderSettings {
        subscription_id: Some(SUB.into()),
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT.into()),
        client_secret: Some("s".into()),
        metadata_host: Some("127.0.0.1:1".into()),
        ca_certificate_file: Some(path.display().to_string()),
        ..Default::default()
    };
    let errors = resolve(settings, &[]).unwrap_err();
    assert_eq!(errors[0].attribute, "ca_certificate_file", "{errors:?}");
    assert!(errors[0].detail.contains("truncated"), "{errors:?}");
}

#[test]
fn oidc_needs_a_token_source() {
    let settings = ProviderSettings {
        subscription_id: Some(SUB.into()),
        tenant_id: Some(TENANT.into()),
        client_id: Some(CLIENT.into()),
        use_oidc: Some(true),
        ..Default::default()
    };
    let errors = resolve(settings.clone(), &[]).unwrap_err();
    assert!(errors.iter().any(|e| e.attribute == "use_oidc"));
    let resolved = resolve(
        settings,
        &[
            (
                "ACTIONS_ID_TOKEN_REQUEST_URL",
                "https://token.actions/x?a=1",
            ),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "t"),
        ],
    )
    .unwrap();
    assert!(matches!(
        resolved.auth,
        AuthMethod::Oidc(OidcSource::Request { .. })
    ));
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let settings = ProviderSettings {
        client_secret: Some("hunter2".into()),
        oidc_token: Some("eyJ-token".into()),
        ..Default::default()
    };
    let text = format!("{settings:?}");
    assert!(
        !text.contains("hunter2") && !text.contains("eyJ-token"),
        "{text}"
    );
    assert!(!format!(
        "{:?}",
        AuthMethod::ClientSecret {
            secret: "hunter2".into()
        }
    )
    .contains("hunter2"));
}

#[test]
fn metadata_is_read_in_the_single_cloud_shape() {
    let json = serde_json::json!({
        "name": "AzureCloud",
        "resourceManager": "https://127.0.0.1:8443/",
        "authentication": {"loginEndpoint": "https://127.0.0.1:8443/", "audiences": ["https://management.core.windows.net/"]},
        "microsoftGraphResourceId": "https://graph.microsoft.com/"
    });
    let cloud = CloudEndpoints::from_metadata(&json).unwrap();
    assert_eq!(cloud.resource_manager.as_str(), "https://127.0.0.1:8443/");
    assert_eq!(
        CloudEndpoints::scope_for(&cloud.resource_manager_audience),
        "https://management.core.windows.net/.default"
    );
    let insecure = serde_json::json!({
        "resourceManager": "http://example.com/",
        "authentication": {"loginEndpoint": "https://x/", "audiences": ["a"]},
        "microsoftGraphResourceId": "https://g/"
    });
    assert!(CloudEndpoints::from_metadata(&insecure)
        .unwrap_err()
        .contains("https"));
}

#[test]
fn graph_is_called_at_its_endpoint_with_its_own_audience() {
    let json = serde_json::json!({
        "resourceManager": "https://127.0.0.1:8443/",
        "authentication": {"loginEndpoint": "https://127.0.0.1:8443/", "audiences": ["https://management.core.windows.net/"]},
        "microsoftGraphResourceId": "https://graph.microsoft.com/",
        "graph": "https://127.0.0.1:8443/"
    });
    let cloud = CloudEndpoints::from_metadata(&json).unwrap();
    assert_eq!(cloud.graph.as_str(), "https://127.0.0.1:8443/");
    assert_eq!(cloud.graph_audience, "https://graph.microsoft.com/");
}

#[test]
fn discovery_retries_what_an_arm_read_retries() {
    for status in [408, 429, 500, 502, 503, 504] {
        assert!(discovery_retryable(Some(status)), "{status}");
    }
    assert!(discovery_retryable(None), "a dropped connection");
    for status in [400, 401, 403, 404, 501] {
        assert!(!discovery_retryable(Some(status)), "{status}");
    }
    let policy = crate::azure::retry::RetryPolicy::default();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("retry-after", "3".parse().unwrap());
    assert_eq!(
        discovery_wait(&policy, Some(&headers), 0),
        std::time::Duration::from_secs(3),
        "Retry-After is honoured"
    );
    headers.insert("retry-after", "100000".parse().unwrap());
    assert_eq!(
        discovery_wait(&policy, Some(&headers), 0),
        policy.max_delay,
        "and capped"
    );
    let first = discovery_wait(&policy, None, 0);
    assert!(first >= policy.base_delay && first <= policy.base_delay.mul_f64(1.25));
    assert!(
        discovery_wait(&policy, None, 3) >= policy.base_delay * 8,
        "it backs off"
    );
}

#[test]
fn discovery_gives_up_after_the_bounded_attempts() {
    // Nothing listens on port 1: every attempt is a connection error.
    let policy = crate::azure::retry::RetryPolicy {
        max_attempts: 3,
        base_delay: std::time::Duration::from_millis(1),
        max_delay: std::time::Duration::from_millis(5),
    };
    let error = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(discover_endpoints_with("127.0.0.1:1", &[], policy))
        .unwrap_err();
    assert_eq!(error.attribute, "metadata_host");
    assert!(
        error.detail.contains("gave up after 3 attempts"),
        "{error:?}"
    );
}
