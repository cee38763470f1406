//! A SAML connection's settings, as an org admin gives them.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use samael::{
    crypto::CertificateDer, metadata::EntityDescriptor, service_provider::ServiceProvider,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

fn default_skew() -> i64 {
    180
}

/// Attribute names to read, first found wins. Okta's defaults built in; each overridable.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributeNames {
    pub email: Vec<String>,
    pub given_name: Vec<String>,
    pub family_name: Vec<String>,
    pub groups: Vec<String>,
}

impl Default for AttributeNames {
    fn default() -> Self {
        AttributeNames {
            email: vec!["urn:oid:1.2.840.113549.1.9.1".into(), "email".into()],
            given_name: vec!["urn:oid:2.5.4.42".into(), "firstName".into()],
            family_name: vec!["urn:oid:2.5.4.4".into(), "lastName".into()],
            groups: vec!["groups".into()],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The IdP's metadata XML, pasted by the admin. Without it the connection cannot sign
    /// anyone in yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_metadata_xml: Option<String>,
    /// Where to fetch the metadata instead (https); rollcall fetches it when it is set and
    /// again every `saml.metadata_refresh_minutes`, keeping the last good copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_metadata_url: Option<String>,
    /// When the metadata was last fetched from the URL (set by rollcall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_metadata_fetched_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why the last refresh failed, while the last good copy stays in use (set by rollcall).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_metadata_refresh_error: Option<String>,
    #[serde(default)]
    pub attributes: AttributeNames,
    /// Leeway for the assertion's time windows against clock differences.
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: i64,
    /// RSA-SHA1 signatures are refused unless an admin explicitly accepts them for an IdP
    /// that cannot do better.
    #[serde(default)]
    pub allow_sha1: bool,
    /// Sign-ins Okta starts (from its dashboard) without a request from rollcall. Off by
    /// default: such a response answers nothing rollcall asked for, so only its own
    /// signature, audience, recipient and the replay record stand against a stolen one.
    #[serde(default)]
    pub allow_idp_initiated: bool,
    /// Sign AuthnRequests with the org's SP key (its certificate is in the SP metadata);
    /// for IdPs configured to require signed requests.
    #[serde(default)]
    pub sign_requests: bool,
}

/// What the admin's metadata says, checked.
pub struct Idp {
    pub metadata: EntityDescriptor,
    pub entity_id: String,
    pub sso_url: String,
    pub certificates: Vec<CertificateDer>,
}

impl Settings {
    pub fn from_value(value: &Value) -> Result<Settings, String> {
        serde_json::from_value(value.clone()).map_err(|e| format!("SAML settings: {e}"))
    }

    /// The IdP, when metadata was given; metadata without a signing certificate is refused,
    /// since samael would then accept responses without checking any signature.
    ///
    /// Parsed once per process for each metadata text, not at every sign-in: the cache is
    /// keyed by the text's SHA-256, so changed metadata is parsed anew the moment it is
    /// stored, on every instance (nothing is cached that the database does not say).
    pub fn idp(&self) -> Result<Option<Arc<Idp>>, String> {
        let Some(xml) = self.idp_metadata_xml.as_deref() else {
            return Ok(None);
        };
        /// Distinct metadata texts kept; past it the cache starts again (it only saves
        /// parsing).
        const KEPT: usize = 1024;
        static PARSED: OnceLock<Mutex<HashMap<[u8; 32], Arc<Idp>>>> = OnceLock::new();
        let key: [u8; 32] = Sha256::digest(xml.as_bytes()).into();
        let cache = PARSED.get_or_init(Default::default);
        if let Some(idp) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(Some(idp.clone()));
        }
        let idp = Arc::new(parse_idp(xml)?);
        let mut parsed = cache.lock().unwrap_or_else(|p| p.into_inner());
        if parsed.len() >= KEPT {
            parsed.clear();
        }
        parsed.insert(key, idp.clone());
        Ok(Some(idp))
    }
}

/// [`Settings::idp`], uncached.
fn parse_idp(xml: &str) -> Result<Idp, String> {
    if has_doctype(xml) {
        return Err("IdP metadata: a DOCTYPE is not accepted".into());
    }
    let metadata: EntityDescriptor = xml
        .parse()
        .map_err(|e| format!("IdP metadata is not SAML metadata: {e}"))?;
    let entity_id = metadata
        .entity_id
        .clone()
        .filter(|e| !e.trim().is_empty())
        .ok_or("IdP metadata has no entityID")?;
    let sp = ServiceProvider {
        idp_metadata: metadata.clone(),
        ..ServiceProvider::default()
    };
    let certificates = sp
        .idp_signing_certs()
        .map_err(|e| format!("IdP metadata: {e}"))?
        .filter(|c| !c.is_empty())
        .ok_or(
            "IdP metadata has no signing certificate; rollcall never accepts unsigned sign-ins",
        )?;
    for cert in &certificates {
        x509_parser::parse_x509_certificate(cert.der_data())
            .map_err(|e| format!("IdP metadata: a signing certificate does not parse: {e}"))?;
    }
    let sso_url = sp
        .sso_binding_location(REDIRECT_BINDING)
        .ok_or("IdP metadata has no SingleSignOnService with the HTTP-Redirect binding")?;
    Ok(Idp {
        metadata,
        entity_id,
        sso_url,
        certificates,
    })
}

/// Checks the settings of a `saml` connection and returns what to store.
pub fn prepare(mut input: Value) -> Result<Value, String> {
    // `idp` is what rollcall shows about the metadata (see [`status`]); an admin sending a
    // connection back as read is not refused for it.
    if let Some(object) = input.as_object_mut() {
        object.remove("idp");
    }
    let settings = Settings::from_value(&input)?;
    if !(0..=600).contains(&settings.clock_skew_seconds) {
        return Err("SAML settings: clock_skew_seconds must be between 0 and 600".into());
    }
    settings.idp()?;
    serde_json::to_value(&settings).map_err(|e| e.to_string())
}

/// What an admin sees about the metadata: the IdP, its SSO URL, each signing certificate
/// with its expiry, and warnings (a certificate that expires within 30 days, or already has).
pub fn status(stored: &Value) -> Value {
    let settings = match Settings::from_value(stored) {
        Ok(s) => s,
        Err(e) => return serde_json::json!({"error": e}),
    };
    let idp = match settings.idp() {
        Ok(Some(idp)) => idp,
        Ok(None) => {
            return serde_json::json!({"warnings": ["no IdP metadata yet: paste Okta's metadata into idp_metadata_xml"]})
        }
        Err(e) => return serde_json::json!({"error": e}),
    };
    let now = chrono::Utc::now().timestamp();
    let mut warnings = Vec::new();
    let certificates: Vec<Value> = idp
        .certificates
        .iter()
        .filter_map(|c| x509_parser::parse_x509_certificate(c.der_data()).ok())
        .map(|(_, cert)| {
            let not_after = cert.validity().not_after.timestamp();
            let subject = cert.subject().to_string();
            if not_after < now {
                warnings.push(format!("the signing certificate {subject:?} has expired"));
            } else if not_after < now + 30 * 24 * 3600 {
                warnings.push(format!(
                    "the signing certificate {subject:?} expires within 30 days: add the IdP's new certificate to the metadata"
                ));
            }
            serde_json::json!({
                "subject": subject,
                "not_after": chrono::DateTime::from_timestamp(not_after, 0)
                    .map(|t| t.to_rfc3339()),
            })
        })
        .collect();
    if let Some(error) = &settings.idp_metadata_refresh_error {
        warnings.push(format!(
            "the last refresh of the metadata from its URL failed ({error}); the copy fetched at {} is in use",
            settings
                .idp_metadata_fetched_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default()
        ));
    }
    serde_json::json!({
        "entity_id": idp.entity_id,
        "sso_url": idp.sso_url,
        "certificates": certificates,
        "warnings": warnings,
    })
}

/// Any DOCTYPE, which is where XXE and entity-expansion attacks live, is refused before
/// anything parses the document.
pub fn has_doctype(xml: &str) -> bool {
    let lower = xml.to_ascii_lowercase();
    lower.contains("<!doctype") || lower.contains("<!entity")
}

/// rollcall's SAML endpoints for an org, as the SP metadata, the ACS and the console name
/// them: its entity ID (the audience), ACS URL (destination, recipient), metadata URL and
/// Single Logout return.
pub struct Endpoints {
    pub entity_id: String,
    pub acs_url: String,
    pub slo_url: String,
}

impl Endpoints {
    pub fn of(public_base_url: &str, org_slug: &str) -> Endpoints {
        let base = public_base_url.trim_end_matches('/');
        Endpoints {
            // The metadata URL is the entity ID: Okta's "Audience URI".
            entity_id: format!("{base}/saml/{org_slug}/metadata"),
            acs_url: format!("{base}/saml/{org_slug}/acs"),
            slo_url: format!("{base}/saml/{org_slug}/slo"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(xml: &str) -> Settings {
        Settings {
            idp_metadata_xml: Some(xml.into()),
            ..Settings::from_value(&serde_json::json!({})).unwrap()
        }
    }

    /// The ACS parses an IdP's metadata once per process, and changed metadata at once.
    #[test]
    fn metadata_is_parsed_once_per_text() {
        let xml = include_str!("../../idp-fixtures/okta/metadata.xml");
        let first = settings(xml).idp().unwrap().unwrap();
        let again = settings(xml).idp().unwrap().unwrap();
        assert!(
            Arc::ptr_eq(&first, &again),
            "the same text: the parsed copy"
        );
        let changed = xml.replace("exk1rollcall0test", "exk1rollcall0other");
        let other = settings(&changed).idp().unwrap().unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert!(
            other.entity_id.ends_with("exk1rollcall0other"),
            "{}",
            other.entity_id
        );
        assert!(
            settings("<not metadata").idp().is_err(),
            "errors are not cached as IdPs"
        );
    }
}
