//! AutoMTLS as go-plugin does it: Terraform generates a client certificate and passes it in
//! `PLUGIN_CLIENT_CERT`; the plugin generates its own and puts it in the handshake line.
//! Each side trusts exactly the other's certificate.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Why the plugin's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("PLUGIN_CLIENT_CERT is not a PEM certificate: {0}")]
    ClientCertificate(String),
    #[error("cannot create the server certificate: {0}")]
    ServerCertificate(String),
}

pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    /// DER of our certificate, for the handshake line.
    pub certificate_der: Vec<u8>,
}

pub fn server_config(client_certificate_pem: &str) -> Result<ServerTls, TlsError> {
    let client_certificate = parse_pem_certificate(client_certificate_pem)?;
    let client_key = p521_key_of(&client_certificate);
    let (certificate_der, key_der) = generate_server_certificate()?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedClientCertificate {
        expected: client_certificate,
        p521_key: client_key,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::ServerCertificate(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(certificate_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)),
        )
        .map_err(|e| TlsError::ServerCertificate(e.to_string()))?;
    // gRPC clients insist on HTTP/2 being negotiated.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(ServerTls {
        config: Arc::new(config),
        certificate_der,
    })
}

fn parse_pem_certificate(pem: &str) -> Result<CertificateDer<'static>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| TlsError::ClientCertificate(format!("{e:?}")))
}

/// A self-signed certificate for `localhost`, marked as a CA because Terraform uses it as
/// the root it verifies us against.
fn generate_server_certificate() -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let failure = |e: rcgen::Error| TlsError::ServerCertificate(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(failure)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string()]).map_err(failure)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "HashiCorp");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::seconds(30);
    params.not_after = now + time::Duration::days(1);
    let certificate = params.self_signed(&key).map_err(failure)?;
    Ok((certificate.der().to_vec(), key.serialize_der()))
}

/// go-plugin's client keys are ECDSA P-521, which ring cannot verify; those signatures are
/// checked with the RustCrypto p521 crate against the pinned certificate's key.
fn p521_key_of(certificate: &CertificateDer<'_>) -> Option<p521::ecdsa::VerifyingKey> {
    use x509_cert::der::Decode;
    let parsed = x509_cert::Certificate::from_der(certificate.as_ref()).ok()?;
    let point = parsed
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .as_bytes()?;
    p521::ecdsa::VerifyingKey::from_sec1_bytes(point).ok()
}

struct PinnedClientCertificate {
    expected: CertificateDer<'static>,
    p521_key: Option<p521::ecdsa::VerifyingKey>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for PinnedClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedClientCertificate")
            .field("p521", &self.p521_key.is_some())
            .finish_non_exhaustive()
    }
}

impl PinnedClientCertificate {
    fn verify_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if signature.scheme == SignatureScheme::ECDSA_NISTP521_SHA512 {
            use p521::ecdsa::signature::Verifier;
            let key = self
                .p521_key
                .as_ref()
                .filter(|_| certificate.as_ref() == self.expected.as_ref())
                .ok_or(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::BadSignature,
                ))?;
            let parsed = p521::ecdsa::Signature::from_der(signature.signature()).map_err(|_| {
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
            })?;
            return key
                .verify(message, &parsed)
                .map(|_| HandshakeSignatureValid::assertion())
                .map_err(|_| {
                    rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
                });
        }
        if tls13 {
            rustls::crypto::verify_tls13_signature(
                message,
                certificate,
                signature,
                &self.algorithms,
            )
        } else {
            rustls::crypto::verify_tls12_signature(
                message,
                certificate,
                signature,
                &self.algorithms,
            )
        }
    }
}

impl ClientCertVerifier for PinnedClientCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    /// Exactly the certificate Terraform gave us; it is self-signed and marked CA, which
    /// chain validation would (rightly, in general) refuse as an end-entity certificate.
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(message, certificate, signature, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(message, certificate, signature, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        let mut schemes = self.algorithms.supported_schemes();
        if self.p521_key.is_some() {
            schemes.push(SignatureScheme::ECDSA_NISTP521_SHA512);
        }
        schemes
    }
}
