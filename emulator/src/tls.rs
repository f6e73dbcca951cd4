//! A throw-away CA and a server certificate for 127.0.0.1 / localhost; with `--state-file`,
//! kept next to the state so a restarted emulator presents the same certificate (a client
//! that trusted the first CA keeps working across the restart, as it would against Azure).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub struct Tls {
    pub ca_pem: String,
    pub config: Arc<rustls::ServerConfig>,
}

/// The key material of a TLS identity: what [`load_or_generate`] keeps on disk.
#[derive(serde::Serialize, serde::Deserialize)]
struct Material {
    ca_pem: String,
    /// DER of the server certificate then the CA's, base64url.
    chain: Vec<String>,
    /// PKCS#8 DER of the server key, base64url.
    key: String,
}

/// The TLS identity kept at `path` (written there when it does not exist yet, or is
/// unreadable): the same CA and server certificate at every start.
pub fn load_or_generate(path: &Path) -> anyhow::Result<Tls> {
    if let Ok(bytes) = std::fs::read(path) {
        match serde_json::from_slice::<Material>(&bytes) {
            Ok(material) => return configured(&material),
            Err(e) => tracing::warn!(
                "TLS identity {} unreadable ({e}); making a new one",
                path.display()
            ),
        }
    }
    let material = generate_material()?;
    crate::write_atomically(path, &serde_json::to_vec(&material)?)?;
    configured(&material)
}

pub fn generate() -> anyhow::Result<Tls> {
    configured(&generate_material()?)
}

fn generate_material() -> anyhow::Result<Material> {
    let ca_key = KeyPair::generate().context("CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "azure-emulator local CA");
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "azure-emulator");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).context("CA certificate")?;

    let leaf_key = KeyPair::generate().context("server key")?;
    let mut leaf = CertificateParams::new(Vec::<String>::new())?;
    leaf.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into()?),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    leaf.distinguished_name
        .push(DnType::CommonName, "azure-emulator");
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf
        .signed_by(&leaf_key, &ca)
        .context("server certificate")?;

    Ok(Material {
        ca_pem: ca.pem(),
        chain: vec![
            crate::util::base64url(leaf_cert.der()),
            crate::util::base64url(ca.der()),
        ],
        key: crate::util::base64url(&leaf_key.serialize_der()),
    })
}

fn configured(material: &Material) -> anyhow::Result<Tls> {
    let der = |text: &str| {
        crate::util::base64url_decode(text).context("TLS identity: DER is not base64url")
    };
    let chain = material
        .chain
        .iter()
        .map(|c| der(c).map(CertificateDer::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der(&material.key)?));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        ca_pem: material.ca_pem.clone(),
        config: Arc::new(config),
    })
}
