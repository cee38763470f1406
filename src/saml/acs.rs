//! What happens when Okta posts to the ACS: every check a SAML response must pass before
//! the person it names becomes an [`ExternalIdentity`], in the order they run.
//!
//! 1. Size cap, base64, UTF-8; any DOCTYPE or comment refused before XML parsing
//!    (XXE, entity expansion, comment-truncated NameIDs).
//! 2. Exactly one assertion, plaintext or encrypted: several (signature wrapping) or none
//!    are refused with their reason.
//! 3. RelayState names a request rollcall made, for this org, unexpired, unused; without
//!    one, only a connection that opted into IdP-initiated sign-in, found by the issuer,
//!    may verify it (and then no InResponseTo is accepted).
//! 4. The IdP's Status must be Success (its status is shown); Destination must be our ACS.
//! 5. samael with xmlsec: the assertion's signature by a metadata certificate, with an
//!    algorithm allow-list (SHA-1 only by opt-in); issuer; time windows with skew; bearer
//!    subject confirmation with our ACS as Recipient and our request as InResponseTo;
//!    audience when Conditions carry one. An encrypted assertion is decrypted with the org's
//!    SP key only inside a response whose own signature verified first; encrypted but
//!    unsigned is refused.
//! 6. What samael leaves out: an audience must be present at all and be ours.
//! 7. The request is used once, and the assertion ID is recorded until it expires, in the
//!    database: a replay is refused on every instance.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use samael::{
    crypto::AllowedSignatureAlgorithm,
    schema::{Assertion, Response},
    service_provider::{Error as SpError, ServiceProvider},
};

use crate::{browser::SignInFailure, connections::saml::Settings};
use crate::{
    provisioning::{ExternalIdentity, IdpGroup},
    store::{connections::Connection, orgs::Org, saml, saml::PendingRequest, Store, Tx},
};

/// Larger SAMLResponse fields are refused unread: an Okta response is a few kilobytes.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;
const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

pub use crate::connections::saml::Endpoints;

fn refused(reason: impl Into<String>) -> SignInFailure {
    SignInFailure::forbidden(
        "Your sign-in could not be verified. Please start again.",
        reason,
    )
}

fn expired(reason: impl Into<String>) -> SignInFailure {
    SignInFailure::forbidden("This sign-in link has expired. Please start again.", reason)
}

/// Steps 1 and 2: the XML text, once it is safe to hand to a parser.
pub fn decode(encoded: &str) -> Result<String, SignInFailure> {
    if encoded.len() > MAX_RESPONSE_BYTES {
        return Err(SignInFailure::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "Your sign-in could not be verified. Please start again.",
            format!("SAMLResponse of {} bytes is over the cap", encoded.len()),
        ));
    }
    let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| refused(format!("SAMLResponse is not base64: {e}")))?;
    let xml = String::from_utf8(bytes).map_err(|_| refused("SAMLResponse is not UTF-8 XML"))?;
    if crate::connections::saml::has_doctype(&xml) {
        return Err(refused(
            "the response carries a DOCTYPE or entity declaration",
        ));
    }
    if xml.contains("<!--") {
        return Err(refused(
            "the response carries an XML comment (comment injection into NameID or attributes)",
        ));
    }
    // The IdP's own refusal first: an error response (Okta's "user not assigned to the
    // app") carries no assertion and is no attack.
    if let Some(failure) = idp_refusal(&xml) {
        return Err(failure);
    }
    let assertions = count_elements(&xml, "Assertion") + count_elements(&xml, "EncryptedAssertion");
    if assertions != 1 {
        return Err(refused(format!(
            "the response carries {assertions} assertions; exactly one is accepted (signature wrapping or assertion injection)"
        )));
    }
    Ok(xml)
}

/// Whether the one assertion is encrypted (to the org's SP certificate). RSA PKCS#1 v1.5
/// key transport (Bleichenbacher's oracle) is refused before anything decrypts.
pub fn check_encryption(xml: &str) -> Result<(), SignInFailure> {
    if xml.contains("xmlenc#rsa-1_5") {
        return Err(refused(
            "the assertion's key is encrypted with RSA PKCS#1 v1.5; only RSA-OAEP is accepted",
        ));
    }
    Ok(())
}

/// Whether the one assertion is encrypted (to the org's SP certificate).
pub fn is_encrypted(xml: &str) -> bool {
    count_elements(xml, "EncryptedAssertion") == 1
}

/// Start tags named `name` in any namespace prefix. A plain scan, deliberately independent
/// of the parser that verifies signatures, so a document that parsers read differently
/// (CVE-2025-25291/25292) is still seen to hold two assertions.
/// The text content of each element named `name` (any prefix), in order; for reporting
/// what an unverified document says, never for trusting it.
fn texts_of(xml: &str, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let tag_end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let tag = &rest[..tag_end];
        if tag.starts_with('/') || tag.rsplit(':').next() != Some(name) {
            continue;
        }
        let Some(open_end) = rest.find('>') else {
            break;
        };
        let body = &rest[open_end + 1..];
        let text = body.split('<').next().unwrap_or_default().trim();
        found.push(text.chars().take(300).collect());
    }
    found
}

/// The `Value` attributes of the elements named `name`, in document order (a top-level
/// StatusCode, then the second-level one inside it).
fn values_of(xml: &str, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let tag_end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        if rest[..tag_end].rsplit(':').next() != Some(name) {
            continue;
        }
        let open = &rest[..rest.find('>').unwrap_or(rest.len())];
        if let Some(at) = open.find("Value=\"") {
            let value = &open[at + 7..];
            found.push(value.split('"').next().unwrap_or_default().to_string());
        }
    }
    found
}

/// The IdP's own refusal, when the response's status is not Success: the second-level
/// code and the StatusMessage are what an admin needs (e.g. Okta's "user not assigned").
fn idp_refusal(xml: &str) -> Option<SignInFailure> {
    let codes = values_of(xml, "StatusCode");
    let top = codes.first()?;
    if top == SUCCESS {
        return None;
    }
    let short = |code: &str| code.rsplit(':').next().unwrap_or(code).to_string();
    let message = texts_of(xml, "StatusMessage")
        .into_iter()
        .next()
        .filter(|m| !m.is_empty());
    let second = codes.get(1).map(|c| short(c));
    let said = match (&message, &second) {
        (Some(message), _) => message.clone(),
        (None, Some(second)) => format!("{} / {second}", short(top)),
        (None, None) => short(top),
    };
    Some(SignInFailure::forbidden(
        format!("Your identity provider did not sign you in: {said}. Ask your administrator."),
        format!(
            "IdP status {}{}{} (an IdP error, not a forged response)",
            short(top),
            second
                .map(|s| format!(", second-level {s}"))
                .unwrap_or_default(),
            message
                .map(|m| format!(", message {m:?}"))
                .unwrap_or_default()
        ),
    ))
}

/// Why a response's signature did not verify, one cause at a time: unsigned, a refused
/// algorithm, a certificate the metadata does not hold, or content changed after signing.
/// Read from the document only after the verification failed, to explain it.
fn signature_failure(
    xml: &str,
    settings: &Settings,
    idp_certificates: &[Vec<u8>],
) -> SignInFailure {
    if count_elements(xml, "Signature") == 0 && count_elements(xml, "EncryptedAssertion") > 0 {
        return refused("the response carries no signature of its own, and an encrypted one needs a signed response (the assertion's own signature cannot be checked before decryption): in Okta, sign the Response");
    }
    if count_elements(xml, "Signature") == 0 {
        return refused("the response and its assertion carry no signature; rollcall accepts only signed sign-ins");
    }
    let methods = xml.split("SignatureMethod").skip(1).filter_map(|s| {
        let at = s.find("Algorithm=\"")?;
        s[at + 11..].split('"').next().map(str::to_string)
    });
    for method in methods {
        if !settings.allow_sha1 && method.ends_with("sha1") {
            return refused(format!(
                "the signature uses {method} (SHA-1), which is refused: in Okta, set the app's signature algorithm to RSA-SHA256, or allow SHA-1 on this connection (allow_sha1)"
            ));
        }
    }
    let fingerprint = |der: &[u8]| -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(der)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    // Keys, not certificates, decide: an IdP may re-issue a certificate for the same key.
    let key_of = |der: &[u8]| {
        x509_parser::parse_x509_certificate(der)
            .ok()
            .map(|(_, cert)| cert.public_key().raw.to_vec())
    };
    let known_keys: Vec<Vec<u8>> = idp_certificates.iter().filter_map(|c| key_of(c)).collect();
    let expected: Vec<String> = idp_certificates.iter().map(|c| fingerprint(c)).collect();
    let received: Vec<Vec<u8>> = texts_of(xml, "X509Certificate")
        .iter()
        .filter_map(|b64| {
            // Signers may break the base64 with carriage-return character references.
            let compact: String = b64
                .replace("&#13;", "")
                .replace("&#xD;", "")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .ok()
        })
        .filter(|der| key_of(der).is_some())
        .collect();
    let unknown = received
        .iter()
        .find(|der| key_of(der).is_some_and(|key| !known_keys.contains(&key)))
        .map(|der| fingerprint(der));
    if let Some(unknown) = unknown {
        return refused(format!(
            "the signature is made with a key that is not in the IdP metadata: certificate SHA-256 {unknown} received, {} expected; the metadata is stale or the IdP rotated its certificate, so refresh the metadata",
            expected.join(", ")
        ));
    }
    refused("the signature does not verify: the signed content was changed after signing (digest or signature mismatch), or the signature covers no assertion (an encrypted one needs a signed response)")
}

fn count_elements(xml: &str, name: &str) -> usize {
    let bytes = xml.as_bytes();
    let mut count = 0;
    let mut i = 0;
    while let Some(offset) = xml[i..].find('<') {
        let start = i + offset + 1;
        let tag_end = xml[start..]
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .map(|n| start + n)
            .unwrap_or(xml.len());
        let tag = &xml[start..tag_end];
        let local = tag.rsplit(':').next().unwrap_or(tag);
        if local == name && !tag.starts_with('/') && bytes.get(start) != Some(&b'?') {
            count += 1;
        }
        i = start;
    }
    count
}

/// Step 3: the request this response answers; `None` when the RelayState names none (an
/// IdP-initiated sign-in, accepted only where a connection opts in).
pub async fn request_for(
    store: &Store,
    org: &Org,
    found: Option<PendingRequest>,
) -> Result<Option<PendingRequest>, SignInFailure> {
    let Some(request) = found else {
        return Ok(None);
    };
    if request.org_id != org.id {
        let mut tx = store.autocommit().await?;
        let started = crate::store::orgs::by_id(&mut tx, request.org_id)
            .await?
            .map(|o| o.slug)
            .unwrap_or_else(|| "(deleted)".into());
        return Err(refused(format!(
            "the sign-in was started for org {started} and answered at org {}'s ACS",
            org.slug
        )));
    }
    if request.consumed_at.is_some() {
        return Err(expired(format!(
            "request {} was already used",
            request.request_id
        )));
    }
    if request.expires_at <= Utc::now() {
        return Err(expired(format!("request {} expired", request.request_id)));
    }
    Ok(Some(request))
}

/// The refusal of a response that answers no request of rollcall's, where no connection
/// accepts IdP-initiated sign-ins from its issuer.
pub fn unsolicited(issuer: Option<&str>) -> SignInFailure {
    refused(format!(
        "unsolicited response (no RelayState of a sign-in rollcall started) from issuer {}, and no connection of this org accepts IdP-initiated sign-ins from it",
        issuer.unwrap_or("(none named)")
    ))
}

/// The issuer the (unverified) response claims: only to find which connection's
/// certificates must verify it.
pub fn claimed_issuer(xml: &str) -> Option<String> {
    let envelope: Response = xml.parse().ok()?;
    envelope
        .issuer
        .and_then(|i| i.value)
        .or_else(|| envelope.assertion.and_then(|a| a.issuer.value))
}

/// Steps 4 to 6: the verified assertion.
pub fn verify(
    xml: &str,
    settings: &Settings,
    endpoints: &Endpoints,
    request: Option<&PendingRequest>,
    decryption_key: Option<openssl::pkey::PKey<openssl::pkey::Private>>,
) -> Result<Assertion, SignInFailure> {
    let idp = settings
        .idp()
        .map_err(|e| SignInFailure::misconfigured(format!("connection settings: {e}")))?
        .ok_or_else(|| SignInFailure::misconfigured("the connection has no IdP metadata yet"))?;

    // Unsigned parts of the wrapper, read only to refuse a misdirected response early;
    // nothing from them is trusted. (The IdP's own status was read in `decode`.)
    let envelope: Response = xml
        .parse()
        .map_err(|e| refused(format!("the response does not parse: {e}")))?;
    if let (None, Some(answers)) = (request, envelope.in_response_to.as_deref()) {
        return Err(refused(format!(
            "the response answers request {answers}, but its RelayState names no sign-in rollcall started"
        )));
    }
    if let Some(destination) = envelope.destination.as_deref() {
        if destination != endpoints.acs_url {
            return Err(refused(format!(
                "Destination {destination:?} is not this ACS {:?}",
                endpoints.acs_url
            )));
        }
    }

    let encrypted = decryption_key.is_some();
    let skew = Duration::seconds(settings.clock_skew_seconds);
    let algorithms = (!settings.allow_sha1).then(|| {
        vec![
            AllowedSignatureAlgorithm::RsaSha256,
            AllowedSignatureAlgorithm::RsaSha384,
            AllowedSignatureAlgorithm::RsaSha512,
            AllowedSignatureAlgorithm::EcdsaSha256,
            AllowedSignatureAlgorithm::EcdsaSha384,
            AllowedSignatureAlgorithm::EcdsaSha512,
        ]
    });
    let sp = ServiceProvider {
        entity_id: Some(endpoints.entity_id.clone()),
        acs_url: Some(endpoints.acs_url.clone()),
        idp_metadata: idp.metadata.clone(),
        allow_idp_initiated: request.is_none(),
        max_clock_skew: skew,
        // IssueInstant may trail by the skew plus a slow user at the IdP's page.
        max_issue_delay: skew + Duration::seconds(300),
        allowed_signature_algorithms: algorithms,
        key: decryption_key,
        ..ServiceProvider::default()
    };
    let certificates: Vec<Vec<u8>> = idp
        .certificates
        .iter()
        .map(|c| c.der_data().to_vec())
        .collect();
    let expected: Vec<&str> = request.iter().map(|r| r.request_id.as_str()).collect();
    let assertion = sp
        .parse_xml_response(xml, Some(&expected))
        .map_err(|e| match e {
            SpError::AssertionExpired { .. }
            | SpError::AssertionConditionExpired { .. }
            | SpError::AssertionSubjectConfirmationExpired { .. }
            | SpError::ResponseExpired { .. } => expired(format!("{e}")),
            SpError::FailedToValidateSignature => signature_failure(xml, settings, &certificates),
            SpError::AssertionConditionAudienceRestrictionFailed { requirement } => refused(format!(
                "the assertion's audience is {} but this org's SP entity ID is {requirement:?}: set Okta's Audience URI (SP Entity ID) to it",
                texts_of(xml, "Audience")
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            SpError::FailedToDecryptAssertion | SpError::MissingPrivateKeySP => refused(format!(
                "the encrypted assertion does not decrypt with this org's SP key ({e})"
            )),
            // What samael's decryption reports when the key or cipher does not fit.
            SpError::CryptoProviderError(_) if encrypted => refused(format!(
                "the encrypted assertion does not decrypt with this org's SP key, or uses a cipher other than AES-128-CBC/GCM ({e})"
            )),
            // The envelope parsed above; what does not parse now is what the signature
            // left after reduction to the signed part.
            SpError::FailedToParseSamlResponse(_) | SpError::FailedToParseSamlAssertion(_) => {
                refused(format!(
                    "the signed part of the response is not its assertion (the signature covers another element): {e}"
                ))
            }
            other => refused(format!("{other}")),
        })?;

    // samael checks the audience only when Conditions carry one: require it.
    let audiences: Vec<&str> = assertion
        .conditions
        .iter()
        .flat_map(|c| c.audience_restrictions.iter().flatten())
        .flat_map(|r| r.audience.iter().map(String::as_str))
        .collect();
    if audiences.is_empty() {
        return Err(refused("the assertion names no audience"));
    }
    if !audiences.contains(&endpoints.entity_id.as_str()) {
        return Err(refused(format!(
            "the assertion's audience {audiences:?} is not {:?}",
            endpoints.entity_id
        )));
    }
    Ok(assertion)
}

/// Step 7: the request used once and the assertion recorded against replay, in `tx`.
pub async fn use_once(
    tx: &mut Tx,
    connection: &Connection,
    request: Option<&PendingRequest>,
    assertion: &Assertion,
    skew: Duration,
) -> Result<(), SignInFailure> {
    if let Some(request) = request {
        if !saml::consume_request(tx, &request.request_id).await? {
            return Err(expired(format!(
                "request {} was used or expired meanwhile",
                request.request_id
            )));
        }
    }
    let until =
        latest_validity(assertion).unwrap_or_else(|| Utc::now() + Duration::hours(1)) + skew;
    if !saml::record_assertion(tx, connection.id, &assertion.id, until).await? {
        return Err(refused(format!(
            "assertion {} was already used (replay)",
            assertion.id
        )));
    }
    Ok(())
}

fn latest_validity(assertion: &Assertion) -> Option<DateTime<Utc>> {
    let conditions = assertion
        .conditions
        .as_ref()
        .and_then(|c| c.not_on_or_after);
    let confirmations = assertion
        .subject
        .iter()
        .flat_map(|s| s.subject_confirmations.iter().flatten())
        .filter_map(|c| c.subject_confirmation_data.as_ref())
        .filter_map(|d| d.not_on_or_after);
    conditions.into_iter().chain(confirmations).max()
}

/// The person the assertion names, with the connection's attribute names.
pub fn identity(
    assertion: &Assertion,
    settings: &Settings,
    connection_id: i64,
) -> Result<ExternalIdentity, SignInFailure> {
    let name_id = assertion
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .ok_or_else(|| refused("the assertion has no NameID"))?;
    let subject = name_id.value.trim().to_string();
    if subject.is_empty() {
        return Err(refused("the assertion's NameID is empty"));
    }
    let values = |names: &[String]| -> Vec<String> {
        for name in names {
            let found: Vec<String> = assertion
                .attribute_statements
                .iter()
                .flatten()
                .flat_map(|s| s.attributes.iter())
                .filter(|a| a.name.as_deref() == Some(name.as_str()))
                .flat_map(|a| a.values.iter().filter_map(|v| v.value.clone()))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            if !found.is_empty() {
                return found;
            }
        }
        Vec::new()
    };
    let first = |names: &[String]| values(names).into_iter().next();
    let email_format = name_id
        .format
        .as_deref()
        .is_some_and(|f| f.ends_with(":emailAddress"));
    let email = first(&settings.attributes.email).or_else(|| email_format.then(|| subject.clone()));
    Ok(ExternalIdentity {
        connection_id,
        subject,
        email,
        email_verified: false,
        display_name: None,
        given_name: first(&settings.attributes.given_name),
        family_name: first(&settings.attributes.family_name),
        groups: values(&settings.attributes.groups)
            .into_iter()
            .map(|name| IdpGroup {
                id: None,
                name: Some(name),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assertions_are_counted_in_any_prefix_and_not_closing_tags() {
        let xml = r#"<?xml version="1.0"?><p:Response xmlns:p="x"><a:Assertion ID="1"><a:Issuer/></a:Assertion><Assertion/></p:Response>"#;
        assert_eq!(count_elements(xml, "Assertion"), 2);
        assert_eq!(count_elements(xml, "EncryptedAssertion"), 0);
        assert_eq!(
            count_elements("<x:EncryptedAssertion>", "EncryptedAssertion"),
            1
        );
    }

    #[test]
    fn doctypes_comments_and_oversize_bodies_are_refused_before_parsing() {
        let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let doctype = encode(r#"<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#);
        assert!(decode(&doctype).unwrap_err().reason.contains("DOCTYPE"));
        let comment = encode("<Response><Assertion><NameID>admin@evil.com<!---->.example.com</NameID></Assertion></Response>");
        assert!(decode(&comment).unwrap_err().reason.contains("comment"));
        let big = "A".repeat(MAX_RESPONSE_BYTES + 4);
        assert_eq!(
            decode(&big).unwrap_err().status,
            axum::http::StatusCode::PAYLOAD_TOO_LARGE
        );
        assert!(decode("%%%").unwrap_err().reason.contains("base64"));
    }
}
