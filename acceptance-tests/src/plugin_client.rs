//! Launching the provider binary the way Terraform's go-plugin client does (magic cookie,
//! protocol versions, AutoMTLS client certificate) and talking gRPC to it, for tests of the
//! plugin plumbing and for the handshake benchmarks.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// A client certificate as go-plugin makes one: self-signed, `localhost`, usable as a CA.
pub struct ClientIdentity {
    pub certificate_pem: String,
    pub certificate_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl ClientIdentity {
    pub fn generate() -> ClientIdentity {
        Self::self_signed(rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained))
    }

    /// The same, but not a CA: what a TLS stack that refuses a CA as an end entity accepts.
    pub fn generate_leaf() -> ClientIdentity {
        Self::self_signed(rcgen::IsCa::ExplicitNoCa)
    }

    fn self_signed(is_ca: rcgen::IsCa) -> ClientIdentity {
        let key =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("generate key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.is_ca = is_ca;
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let certificate = params.self_signed(&key).expect("self-sign");
        ClientIdentity {
            certificate_pem: certificate.pem(),
            certificate_der: certificate.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }
}

/// The handshake line's fields: `1|6|tcp|127.0.0.1:PORT|grpc|CERT`.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub core_version: String,
    pub protocol_version: String,
    pub network: String,
    pub address: String,
    pub protocol: String,
    pub server_certificate_der: Vec<u8>,
}

impl Handshake {
    pub fn parse(line: &str) -> Result<Handshake, String> {
        let parts: Vec<&str> = line.trim_end().split('|').collect();
        if parts.len() != 6 {
            return Err(format!("handshake {line:?} does not have 6 fields"));
        }
        let certificate = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(parts[5])
            .map_err(|e| format!("certificate field is not unpadded base64: {e}"))?;
        Ok(Handshake {
            core_version: parts[0].into(),
            protocol_version: parts[1].into(),
            network: parts[2].into(),
            address: parts[3].into(),
            protocol: parts[4].into(),
            server_certificate_der: certificate,
        })
    }
}

pub struct PluginProcess {
    pub child: Child,
    pub handshake: Handshake,
    /// From spawning the process to reading its handshake line.
    pub startup: Duration,
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment Terraform gives a provider it launches.
pub fn terraform_env(identity: &ClientIdentity) -> Vec<(&'static str, String)> {
    vec![
        (
            "TF_PLUGIN_MAGIC_COOKIE",
            tfplugin::MAGIC_COOKIE_VALUE.to_string(),
        ),
        ("PLUGIN_PROTOCOL_VERSIONS", "5,6".to_string()),
        ("PLUGIN_CLIENT_CERT", identity.certificate_pem.clone()),
        ("PLUGIN_MIN_PORT", "10000".to_string()),
        ("PLUGIN_MAX_PORT", "25000".to_string()),
    ]
}

/// Starts the binary as Terraform does and reads its handshake line.
pub fn launch(binary: &Path, env: &[(&str, String)]) -> Result<PluginProcess, String> {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", binary.display()))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .map_err(|e| format!("read handshake: {e}"))?;
    let startup = started.elapsed();
    if line.is_empty() {
        let output = child.wait_with_output().map_err(|e| e.to_string())?;
        return Err(format!(
            "no handshake; exit {:?}; stderr: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let handshake = Handshake::parse(&line)?;
    Ok(PluginProcess {
        child,
        handshake,
        startup,
    })
}

/// Trusts exactly the certificate from the handshake line, as go-plugin's client does.
#[derive(Debug)]
struct PinnedServerCertificate {
    expected: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServerCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A gRPC channel to the plugin over mTLS with `identity` as the client certificate.
pub async fn connect(
    handshake: &Handshake,
    identity: &ClientIdentity,
) -> Result<tonic::transport::Channel, String> {
    connect_presenting(handshake, Some(identity)).await
}

/// A TLS channel that presents no client certificate (a plugin must refuse it).
pub async fn connect_without_certificate(
    handshake: &Handshake,
) -> Result<tonic::transport::Channel, String> {
    connect_presenting(handshake, None).await
}

async fn connect_presenting(
    handshake: &Handshake,
    identity: Option<&ClientIdentity>,
) -> Result<tonic::transport::Channel, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedServerCertificate {
        expected: handshake.server_certificate_der.clone(),
        algorithms: provider.signature_verification_algorithms,
    });
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(identity.certificate_der.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone())),
            )
            .map_err(|e| e.to_string())?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let address = handshake.address.clone();
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            let address = address.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(&address).await?;
                let name = ServerName::try_from("localhost").expect("valid name");
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| format!("connect: {e:?}"))
}
