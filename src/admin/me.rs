//! What a person does to their own account: personal API tokens.

use chrono::{DateTime, Utc};

use super::{Admin, Result};
use crate::store::{
    audit::Event,
    credentials::{self, ApiToken},
    Tx,
};

/// A personal API token and its secret (shown once). A token is worth no more than the
/// credential that made it: it inherits its sign-in method.
pub async fn create_token(
    tx: &mut Tx,
    me: &Admin,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(ApiToken, String)> {
    let (token, secret) =
        credentials::create_token(tx, me.user.id, name, expires_at, me.method).await?;
    let event = Event::personal("api_token.created", "api_token", token.id).after(&token);
    me.record(tx, event).await?;
    Ok((token, secret))
}

pub async fn revoke_token(tx: &mut Tx, me: &Admin, id: i64) -> Result<ApiToken> {
    let token = credentials::revoke_token(tx, me.user.id, id).await?;
    let event = Event::personal("api_token.revoked", "api_token", token.id).before(&token);
    me.record(tx, event).await?;
    Ok(token)
}
