//! Client authentication at the token endpoint: a client secret, or a certificate credential
//! (`private_key_jwt`, RFC 7523): a short-lived assertion signed with the app's private key,
//! naming its certificate by thumbprint as Entra requires.

use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine,
};
use openidconnect::{
    core::{CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey},
    PrivateSigningKey,
};
use serde_json::json;
use sha2::{Digest, Sha256};

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The DER bytes of a PEM certificate, checked to be a certificate.
pub fn certificate_der(pem: &str) -> Result<Vec<u8>, String> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END CERTIFICATE-----"))
        .collect();
    let der = STANDARD
        .decode(body.trim())
        .map_err(|_| "not a PEM certificate".to_string())?;
    x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(der)
}

/// When the certificate stops being valid (RFC 3339).
pub fn certificate_expiry(pem: &str) -> Result<String, String> {
    let der = certificate_der(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| e.to_string())?;
    let expires = cert.validity().not_after.timestamp();
    chrono::DateTime::from_timestamp(expires, 0)
        .map(|t| t.to_rfc3339())
        .ok_or_else(|| "expiry out of range".into())
}

/// A client assertion for `token_endpoint`, valid five minutes, signed RS256.
pub fn assertion(
    client_id: &str,
    token_endpoint: &str,
    key_pem: &str,
    certificate_pem: &str,
) -> Result<String, String> {
    let der = certificate_der(certificate_pem)?;
    let key = CoreRsaPrivateSigningKey::from_pem(key_pem, None)?;
    let now = chrono::Utc::now().timestamp();
    let header = json!({
        "alg": "RS256",
        "typ": "JWT",
        "x5t": URL_SAFE_NO_PAD.encode(<sha1::Sha1 as sha1::Digest>::digest(&der)),
        "x5t#S256": URL_SAFE_NO_PAD.encode(Sha256::digest(&der)),
    });
    let claims = json!({
        "aud": token_endpoint,
        "iss": client_id,
        "sub": client_id,
        "jti": crate::secrets::generate("").plaintext,
        "nbf": now,
        "iat": now,
        "exp": now + 300,
    });
    let encode = |v: &serde_json::Value| {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("JSON values serialise"))
    };
    let input = format!("{}.{}", encode(&header), encode(&claims));
    let signature = key
        .sign(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            input.as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}
