//! The settings of an `oidc` connection, as admins give them and as they are stored: the
//! client secret is sealed (encrypted) before storage and never shown again.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    secrets::Sealer,
    store::{connections::Kind, grants::is_guid},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Microsoft Entra ID: issuer `{authority}/{tenant_id}/v2.0`, subject `tid:oid`, the
    /// token's `tid` must be the tenant. `tenant_id: "organizations"` makes a multi-tenant
    /// connection, which needs `allowed_tenants`.
    Entra,
    /// Any OpenID provider, by issuer URL; subject `sub`.
    Generic,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub preset: Preset,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// For a multi-tenant Entra connection: the tenant IDs whose people may sign in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_tenants: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    pub client_id: String,
    /// Plain text from the admin; sealed in storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Instead of a secret, a certificate credential (`private_key_jwt`): the private key in
    /// PEM (sealed in storage) …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// … and its certificate in PEM, as uploaded to the app registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Entra: when a person is in too many groups for the token, ask Microsoft Graph for
    /// them. Needs the delegated permission GroupMember.Read.All with admin consent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub graph_overage: bool,
    /// Generic preset: which ID token claims hold the email, name and groups (defaults
    /// `email` then `preferred_username`, `name`, `groups`). Groups are taken as names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimNames>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimNames {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<String>,
}

/// The delegated permission to read a person's group memberships in Graph.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/GroupMember.Read.All";

/// Entra's tenant-independent endpoint, for apps used by several tenants.
pub const MULTI_TENANT: &str = "organizations";

impl Settings {
    /// Whether this is a multi-tenant Entra connection.
    pub fn multi_tenant(&self) -> bool {
        self.preset == Preset::Entra && self.tenant_id.as_deref() == Some(MULTI_TENANT)
    }

    /// The tenants whose tokens are accepted.
    pub fn accepts_tenant(&self, tid: &str) -> bool {
        if self.multi_tenant() {
            self.allowed_tenants.iter().flatten().any(|t| t == tid)
        } else {
            self.tenant_id.as_deref() == Some(tid)
        }
    }

    /// Where discovery is fetched from (`…/organizations/v2.0` for multi-tenant Entra).
    pub fn issuer(&self, entra_authority: &str) -> String {
        match self.preset {
            Preset::Entra => format!(
                "{}/{}/v2.0",
                entra_authority.trim_end_matches('/'),
                self.tenant_id.as_deref().unwrap_or_default()
            ),
            Preset::Generic => self.issuer.clone().unwrap_or_default(),
        }
    }

    pub fn scopes(&self) -> Vec<String> {
        let mut scopes = self
            .scopes
            .clone()
            .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        if self.graph_overage && !scopes.iter().any(|s| s == GRAPH_SCOPE) {
            scopes.push(GRAPH_SCOPE.into());
        }
        scopes
    }

    /// The client secret in plain text, if stored and sealed with this key.
    pub fn client_secret(&self, sealer: &Sealer) -> Option<String> {
        sealer.open(self.client_secret.as_deref()?)
    }

    /// The certificate credential's private key in PEM, if stored and sealed with this key.
    pub fn client_key(&self, sealer: &Sealer) -> Option<String> {
        sealer.open(self.client_key.as_deref()?)
    }
}

/// Checks the settings an admin gives a connection of `kind` and returns what to store: for
/// `oidc`, with the client secret sealed (and the stored one kept when none is given).
/// Other kinds' settings are their front doors' to check.
pub fn prepare(
    kind: Kind,
    input: Value,
    previous: Option<&Value>,
    sealer: &Sealer,
    allow_http: bool,
) -> Result<Value, String> {
    if kind != Kind::Oidc {
        return Ok(input);
    }
    let mut settings: Settings =
        serde_json::from_value(input).map_err(|e| format!("OIDC settings: {e}"))?;
    // Entra writes GUIDs in lower case in its tokens; an ID pasted in upper case would
    // never match them.
    settings.tenant_id = settings.tenant_id.map(|t| t.trim().to_ascii_lowercase());
    if let Some(tenants) = &mut settings.allowed_tenants {
        for tenant in tenants.iter_mut() {
            *tenant = tenant.trim().to_ascii_lowercase();
        }
    }
    if settings.client_id.trim().is_empty() {
        return Err("OIDC settings: client_id is required".into());
    }
    match settings.preset {
        Preset::Entra => {
            let tenant = settings.tenant_id.as_deref().unwrap_or_default();
            if tenant == MULTI_TENANT {
                let allowed = settings.allowed_tenants.as_deref().unwrap_or_default();
                if allowed.is_empty() || !allowed.iter().all(|t| is_guid(t)) {
                    return Err("OIDC settings: a multi-tenant connection (tenant_id \"organizations\") needs allowed_tenants, a list of tenant ID GUIDs".into());
                }
            } else if !is_guid(tenant) {
                return Err(format!(
                    "OIDC settings: tenant_id must be the directory (tenant) ID, a GUID, or \"organizations\", not {tenant:?}"
                ));
            }
        }
        Preset::Generic => {
            let issuer = settings.issuer.as_deref().unwrap_or_default();
            let ok = reqwest::Url::parse(issuer)
                .is_ok_and(|u| u.scheme() == "https" || (allow_http && u.scheme() == "http"));
            if !ok {
                return Err(format!(
                    "OIDC settings: issuer must be an https URL, not {issuer:?}"
                ));
            }
        }
    }
    // A new secret or key replaces the stored credential; none given keeps it.
    let stored = |field: &str| {
        previous
            .and_then(|p| p.get(field))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let new_secret = settings.client_secret.take().filter(|s| !s.is_empty());
    let new_key = settings.client_key.take().filter(|k| !k.is_empty());
    match (new_secret, new_key) {
        (Some(_), Some(_)) => {
            return Err(
                "OIDC settings: give client_secret or client_key with client_certificate, not both"
                    .into(),
            )
        }
        (Some(secret), None) => {
            settings.client_secret = Some(sealer.seal(&secret));
            settings.client_certificate = None;
        }
        (None, Some(key)) => {
            openidconnect::core::CoreRsaPrivateSigningKey::from_pem(&key, None).map_err(|e| {
                format!("OIDC settings: client_key is not an RSA private key in PEM (PKCS#1): {e}")
            })?;
            settings.client_key = Some(sealer.seal(&key));
        }
        (None, None) => {
            settings.client_secret = stored("client_secret");
            settings.client_key = stored("client_key");
            if settings.client_certificate.is_none() {
                settings.client_certificate = stored("client_certificate");
            }
        }
    }
    if settings.client_key.is_some() {
        let pem = settings
            .client_certificate
            .as_deref()
            .ok_or("OIDC settings: client_key needs its client_certificate")?;
        super::oidc_credential::certificate_der(pem)
            .map_err(|e| format!("OIDC settings: client_certificate: {e}"))?;
    } else if settings.client_secret.is_none() {
        return Err(
            "OIDC settings: client_secret is required (or client_key with client_certificate)"
                .into(),
        );
    }
    serde_json::to_value(settings).map_err(|e| e.to_string())
}

/// Stored settings as admins see them: never the client secret, only whether one is set.
pub fn redact(kind: Kind, stored: &Value) -> Value {
    let mut shown = stored.clone();
    if kind == Kind::Oidc {
        if let Some(object) = shown.as_object_mut() {
            let secret = object.remove("client_secret").is_some();
            object.insert("client_secret_set".into(), Value::Bool(secret));
            let key = object.remove("client_key").is_some();
            object.insert("client_key_set".into(), Value::Bool(key));
            // The certificate is public: show when it expires instead of the PEM.
            if let Some(pem) = object
                .remove("client_certificate")
                .and_then(|v| v.as_str().map(str::to_string))
            {
                if let Ok(expires) = super::oidc_credential::certificate_expiry(&pem) {
                    object.insert("client_certificate_expires".into(), Value::String(expires));
                }
            }
        }
    }
    shown
}

/// The redirect URI to register with the provider (one for every org and connection: the
/// state says which sign-in it is).
pub fn redirect_uri(public_base_url: &str) -> String {
    format!("{}/oidc/callback", public_base_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    #[test]
    fn secrets_are_sealed_kept_and_never_shown() {
        let sealer = Sealer::new(&[1u8; 32]);
        let input = json!({"preset": "entra", "tenant_id": TENANT, "client_id": "app", "client_secret": "s3cret"});
        let stored = prepare(Kind::Oidc, input, None, &sealer, false).unwrap();
        let sealed = stored["client_secret"].as_str().unwrap();
        assert!(sealed.starts_with("v1:") && !sealed.contains("s3cret"));
        let settings: Settings = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(settings.client_secret(&sealer).as_deref(), Some("s3cret"));
        assert_eq!(
            settings.issuer("https://login.microsoftonline.com"),
            format!("https://login.microsoftonline.com/{TENANT}/v2.0")
        );
        // An update without a secret keeps the stored one.
        let update = json!({"preset": "entra", "tenant_id": TENANT, "client_id": "app2"});
        let kept = prepare(Kind::Oidc, update, Some(&stored), &sealer, false).unwrap();
        assert_eq!(kept["client_secret"], stored["client_secret"]);
        let shown = redact(Kind::Oidc, &kept);
        assert!(shown.get("client_secret").is_none());
        assert_eq!(shown["client_secret_set"], true);
        assert!(!shown.to_string().contains("v1:"));
    }

    const KEY: &str = include_str!("../../idp-fixtures/azure/client-key.pem");
    const CERT: &str = include_str!("../../idp-fixtures/azure/client-cert.pem");

    #[test]
    fn certificate_credentials_are_sealed_and_shown_by_expiry() {
        let sealer = Sealer::new(&[2u8; 32]);
        let input = json!({"preset": "entra", "tenant_id": TENANT, "client_id": "app", "client_key": KEY, "client_certificate": CERT});
        let stored = prepare(Kind::Oidc, input, None, &sealer, false).unwrap();
        assert!(stored["client_key"].as_str().unwrap().starts_with("v1:"));
        let settings: Settings = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(settings.client_key(&sealer).as_deref(), Some(KEY));
        let shown = redact(Kind::Oidc, &stored);
        assert_eq!(shown["client_key_set"], true);
        assert_eq!(shown["client_secret_set"], false);
        assert!(shown["client_certificate_expires"]
            .as_str()
            .unwrap()
            .starts_with("20"));
        assert!(!shown.to_string().contains("BEGIN"), "no PEM shown");
        // Switching to a secret drops the key and certificate.
        let update = json!({"preset": "entra", "tenant_id": TENANT, "client_id": "app", "client_secret": "s"});
        let switched = prepare(Kind::Oidc, update, Some(&stored), &sealer, false).unwrap();
        assert!(
            switched.get("client_key").is_none() && switched.get("client_certificate").is_none()
        );
        // The assertion is a three-part JWT naming the certificate.
        let jwt = super::super::oidc_credential::assertion("app", "https://idp/token", KEY, CERT)
            .unwrap();
        let header: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                jwt.split('.').next().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "RS256");
        assert!(header["x5t"].is_string() && header["x5t#S256"].is_string());
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let sealer = Sealer::new(&[1u8; 32]);
        let cases = [
            (
                json!({"preset": "entra", "tenant_id": "contoso", "client_id": "a", "client_secret": "s"}),
                "GUID",
            ),
            (
                json!({"preset": "generic", "issuer": "http://idp.example", "client_id": "a", "client_secret": "s"}),
                "https",
            ),
            (
                json!({"preset": "entra", "tenant_id": TENANT, "client_id": "", "client_secret": "s"}),
                "client_id",
            ),
            (
                json!({"preset": "entra", "tenant_id": TENANT, "client_id": "a"}),
                "client_secret is required",
            ),
            (
                json!({"preset": "okta", "client_id": "a"}),
                "unknown variant `okta`",
            ),
            (
                json!({"preset": "entra", "tenant_id": TENANT, "client_id": "a", "client_secret": "s", "client_key": KEY, "client_certificate": CERT}),
                "not both",
            ),
            (
                json!({"preset": "entra", "tenant_id": TENANT, "client_id": "a", "client_key": KEY}),
                "needs its client_certificate",
            ),
            (
                json!({"preset": "entra", "tenant_id": TENANT, "client_id": "a", "client_key": "nope", "client_certificate": CERT}),
                "not an RSA private key",
            ),
            (
                json!({"preset": "entra", "tenant_id": TENANT, "client_id": "a", "client_key": KEY, "client_certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}),
                "client_certificate",
            ),
            (
                json!({"preset": "entra", "tenant_id": "organizations", "client_id": "a", "client_secret": "s"}),
                "allowed_tenants",
            ),
            (
                json!({"preset": "entra", "tenant_id": "organizations", "allowed_tenants": ["x"], "client_id": "a", "client_secret": "s"}),
                "allowed_tenants",
            ),
            (
                json!({"preset": "entra", "tenant_id": TENANT, "client_id": "a", "client_secret": "s", "extra": 1}),
                "extra",
            ),
        ];
        for (input, needle) in cases {
            let err = prepare(Kind::Oidc, input.clone(), None, &sealer, false).unwrap_err();
            assert!(err.contains(needle), "{input}: {err}");
        }
        assert_eq!(
            prepare(Kind::Saml, json!({"anything": 1}), None, &sealer, false).unwrap(),
            json!({"anything": 1})
        );
    }
}
