//! The extra CAs to trust: `SSL_CERT_FILE` and `ca_certificate_file`.

use super::{config_error, ConfigError, ProviderSettings};

/// `SSL_CERT_FILE` (as Go programs honour it) and `ca_certificate_file`, as PEM bundles.
pub(super) fn read_ca_files(
    settings: &ProviderSettings,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Vec<Vec<u8>>, ConfigError> {
    let mut pems = Vec::new();
    if let Some(path) = env("SSL_CERT_FILE") {
        match std::fs::read(&path) {
            Ok(pem) if crate::azure::http::pem_has_certificates(&pem) => pems.push(pem),
            Ok(_) => tracing::warn!(path, "SSL_CERT_FILE holds no PEM certificate; ignored"),
            Err(error) => tracing::warn!(path, %error, "SSL_CERT_FILE unreadable; ignored"),
        }
    }
    if let Some(path) = &settings.ca_certificate_file {
        let pem = std::fs::read(path).map_err(|e| {
            config_error(
                "ca_certificate_file",
                "Cannot read the CA certificate file",
                format!("{path}: {e}. Point `ca_certificate_file` (or ARM_CA_CERTIFICATE_FILE) at a readable PEM file."),
            )
        })?;
        if !crate::azure::http::pem_has_certificates(&pem) {
            return Err(config_error(
                "ca_certificate_file",
                "Not a PEM certificate file",
                format!("{path} holds no `-----BEGIN CERTIFICATE-----` block. Point `ca_certificate_file` (or ARM_CA_CERTIFICATE_FILE) at a PEM file of CA certificates."),
            ));
        }
        // A truncated or corrupt certificate would otherwise fail the first HTTPS client
        // built with it, reported against whatever that client was for.
        if let Err(reason) = check_pem_bundle(&pem) {
            return Err(config_error(
                "ca_certificate_file",
                "Unreadable CA certificate",
                format!("{path}: {reason}. The file must hold complete PEM certificates, each from `-----BEGIN CERTIFICATE-----` to `-----END CERTIFICATE-----`; export the CA again (or fix ARM_CA_CERTIFICATE_FILE)."),
            ));
        }
        pems.push(pem);
    }
    Ok(pems)
}

/// Whether every certificate in a PEM bundle is whole: PEM framing, base64 and DER.
fn check_pem_bundle(pem: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(pem);
    let begins = text.matches("-----BEGIN CERTIFICATE-----").count();
    let ends = text.matches("-----END CERTIFICATE-----").count();
    if begins != ends {
        return Err(format!(
            "{begins} certificate(s) begin but {ends} end: the file is truncated"
        ));
    }
    let certificates = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
    if certificates.is_empty() {
        return Err("no certificate could be read".into());
    }
    for certificate in certificates {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(certificate)
            .build()
            .map_err(|e| format!("a certificate is not valid DER ({e})"))?;
    }
    Ok(())
}
