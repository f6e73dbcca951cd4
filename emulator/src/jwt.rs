//! RS256 JWT signing and verification (our own tokens), and client-assertion checks.

use ring::rand::SystemRandom;
use ring::signature::{self, KeyPair, RsaKeyPair};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::util::{base64url, base64url_decode};

const SIGNING_KEY_PEM: &str = include_str!("signing_key.pem");

/// Claims the emulator puts in (and reads from) access tokens.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Claims {
    pub aud: String,
    pub iss: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    #[serde(default)]
    pub aio: Option<String>,
    #[serde(default)]
    pub appid: Option<String>,
    #[serde(default)]
    pub appidacr: Option<String>,
    #[serde(default)]
    pub idp: Option<String>,
    #[serde(default)]
    pub idtyp: Option<String>,
    #[serde(default)]
    pub oid: Option<String>,
    #[serde(default)]
    pub rh: Option<String>,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub tid: Option<String>,
    #[serde(default)]
    pub uti: Option<String>,
    #[serde(default)]
    pub ver: Option<String>,
    #[serde(default)]
    pub xms_mirid: Option<String>,
    #[serde(default)]
    pub xms_tcdt: Option<u64>,
}

pub struct Signer {
    key: RsaKeyPair,
    pub kid: String,
    pub n: String,
    pub e: String,
    rng: SystemRandom,
}

#[derive(Debug, PartialEq)]
pub enum VerifyError {
    Malformed,
    BadSignature,
}

fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("");
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()
}

/// Every PEM block of a given label in a text.
pub fn pem_blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let Some(stop) = after.find(&end) else { break };
        let body: String = after[..stop]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(body) {
            out.push(der);
        }
        rest = &after[stop + end.len()..];
    }
    out
}

impl Signer {
    pub fn new() -> Signer {
        let der = pem_to_der(SIGNING_KEY_PEM).expect("embedded signing key is PEM");
        let key = RsaKeyPair::from_pkcs8(&der).expect("embedded signing key is PKCS#8 RSA");
        let components: signature::RsaPublicKeyComponents<Vec<u8>> = key.public_key().into();
        let n = base64url(&components.n);
        let e = base64url(&components.e);
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let kid = base64url(&digest.as_ref()[..20]);
        Signer {
            key,
            kid,
            n,
            e,
            rng: SystemRandom::new(),
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let header =
            serde_json::json!({"typ": "JWT", "alg": "RS256", "x5t": self.kid, "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(&serde_json::to_vec(claims).unwrap_or_default())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut sig,
            )
            .expect("RSA signing");
        format!("{signing_input}.{}", base64url(&sig))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(VerifyError::Malformed);
        };
        let header: Value = base64url_decode(h)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(VerifyError::Malformed)?;
        if header["alg"] != "RS256" {
            return Err(VerifyError::BadSignature);
        }
        let sig = base64url_decode(s).ok_or(VerifyError::Malformed)?;
        let public = signature::UnparsedPublicKey::new(
            &signature::RSA_PKCS1_2048_8192_SHA256,
            self.key.public_key().as_ref(),
        );
        public
            .verify(format!("{h}.{p}").as_bytes(), &sig)
            .map_err(|_| VerifyError::BadSignature)?;
        let claims: Claims = base64url_decode(p)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(VerifyError::Malformed)?;
        Ok(claims)
    }

    /// The JWKS document for the discovery `keys` endpoint.
    pub fn jwks(&self) -> Value {
        serde_json::json!({"keys": [{
            "kty": "RSA", "use": "sig", "kid": self.kid, "x5t": self.kid,
            "n": self.n, "e": self.e, "alg": "RS256"
        }]})
    }
}

impl Default for Signer {
    fn default() -> Self {
        Signer::new()
    }
}

/// A JWT split into its decoded header and claims (no signature check).
pub struct Unverified {
    pub header: Value,
    pub claims: Value,
    pub signing_input: String,
    pub signature: Vec<u8>,
}

pub fn decode_unverified(token: &str) -> Option<Unverified> {
    let mut parts = token.split('.');
    let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some(Unverified {
        header: serde_json::from_slice(&base64url_decode(h)?).ok()?,
        claims: serde_json::from_slice(&base64url_decode(p)?).ok()?,
        signing_input: format!("{h}.{p}"),
        signature: base64url_decode(s).unwrap_or_default(),
    })
}

/// Verifies a client assertion's signature against any certificate in `pems`.
pub fn verify_with_certificates(jwt: &Unverified, pems: &[String]) -> bool {
    let alg = jwt.header["alg"].as_str().unwrap_or("");
    for pem in pems {
        for der in pem_blocks(pem, "CERTIFICATE") {
            let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
                continue;
            };
            let spki = cert.public_key();
            let key_bytes: &[u8] = &spki.subject_public_key.data;
            let algs: &[&dyn signature::VerificationAlgorithm] = match alg {
                "RS256" => &[&signature::RSA_PKCS1_2048_8192_SHA256],
                "RS384" => &[&signature::RSA_PKCS1_2048_8192_SHA384],
                "RS512" => &[&signature::RSA_PKCS1_2048_8192_SHA512],
                "PS256" => &[&signature::RSA_PSS_2048_8192_SHA256],
                "PS384" => &[&signature::RSA_PSS_2048_8192_SHA384],
                "PS512" => &[&signature::RSA_PSS_2048_8192_SHA512],
                "ES256" => &[&signature::ECDSA_P256_SHA256_FIXED],
                "ES384" => &[&signature::ECDSA_P384_SHA384_FIXED],
                _ => &[],
            };
            for a in algs {
                if signature::UnparsedPublicKey::new(*a, key_bytes)
                    .verify(jwt.signing_input.as_bytes(), &jwt.signature)
                    .is_ok()
                {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        let s = Signer::new();
        let c = Claims {
            aud: "https://management.azure.com".into(),
            exp: 10,
            oid: Some("x".into()),
            ..Default::default()
        };
        let t = s.sign(&c);
        let back = s.verify(&t).unwrap();
        assert_eq!(back.oid.as_deref(), Some("x"));
        let mut tampered = t.clone();
        tampered.push('A');
        assert!(s.verify(&tampered).is_err());
        assert_eq!(s.verify("abc").unwrap_err(), VerifyError::Malformed);
    }
}
