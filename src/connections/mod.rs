//! SSO connections as both the admin API and the sign-in front doors need them: each
//! protocol's settings (checked, with secrets sealed), client credentials, and IdP
//! metadata. Front doors read settings from here; they never reach into each other.

pub mod oidc;
pub mod oidc_credential;
pub mod saml;
pub mod saml_metadata;

use serde_json::Value;

use crate::{
    state::AppState,
    store::connections::{Connection, Kind},
};

/// Checks an admin's settings for a connection of `kind` and makes them ready to store:
/// secrets sealed, SAML metadata fetched when its URL is new. `previous` is what is stored
/// now, when the connection exists.
pub async fn prepare(
    state: &AppState,
    kind: Kind,
    mut input: Value,
    previous: Option<&Value>,
) -> Result<Value, String> {
    match kind {
        Kind::Saml => {
            saml_metadata::fill(state, &mut input, previous).await?;
            saml::prepare(input)
        }
        Kind::Oidc => oidc::prepare(
            kind,
            input,
            previous,
            &state.sealer,
            state.config.oidc.allow_private_addresses,
        ),
    }
}

/// A connection as admins see it: secrets in its settings are never shown, and a SAML
/// connection carries the status of its IdP metadata and certificates.
pub fn shown(mut connection: Connection) -> Connection {
    connection.settings = sqlx::types::Json(oidc::redact(connection.kind, &connection.settings.0));
    if connection.kind == Kind::Saml {
        let status = saml::status(&connection.settings.0);
        if let Some(settings) = connection.settings.0.as_object_mut() {
            settings.insert("idp".into(), status);
        }
    }
    connection
}
