//! Browser sessions: the session cookie, who it signs in, starting and ending one.

use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, SameSite};

use super::cookies;
use crate::{
    config::Config,
    secrets,
    state::AppState,
    store::{
        self,
        credentials::{self, Credential},
        users,
    },
};

/// A signed-in browser: who, which session, and how it signed in.
pub struct SignedIn {
    pub user: users::User,
    pub session_id: i64,
    pub method: credentials::Method,
    /// The cookie's secret (SAML keeps what Single Logout needs under its hash).
    pub secret: String,
}

/// The session secret the browser sent, when it looks like one.
pub fn secret(config: &Config, headers: &HeaderMap) -> Option<String> {
    cookies::read(config, headers, cookies::SESSION)
        .filter(|s| s.starts_with(secrets::SESSION_PREFIX))
}

/// The signed-in user of this browser, if its session is valid.
pub async fn signed_in(state: &AppState, headers: &HeaderMap) -> store::Result<Option<SignedIn>> {
    let Some(secret) = secret(&state.config, headers) else {
        return Ok(None);
    };
    let mut tx = state.store.autocommit().await?;
    Ok(credentials::authenticate(&mut tx, &secret)
        .await?
        .and_then(|(auth, _)| match auth.credential {
            Credential::Session { id, method } => Some(SignedIn {
                user: auth.user,
                session_id: id,
                method,
                secret,
            }),
            Credential::Token { .. } => None,
        }))
}

/// Starts a session for the user, ending the browser's previous one (a new session ID at
/// every sign-in, so a planted cookie is worthless). Returns the cookie to set and the
/// session's secret.
pub async fn start(
    state: &AppState,
    tx: &mut store::Tx,
    user_id: i64,
    previous: Option<i64>,
    method: credentials::Method,
) -> store::Result<(Cookie<'static>, String)> {
    if let Some(id) = previous {
        credentials::revoke_session(tx, id).await?;
    }
    let ttl = chrono::Duration::hours(state.config.sessions.ttl_hours);
    let secret = credentials::create_session(tx, user_id, ttl, method).await?;
    let cookie = cookies::make(
        &state.config,
        cookies::SESSION,
        secret.clone(),
        Some(state.config.sessions.ttl_hours * 3600),
        SameSite::Lax,
    );
    Ok((cookie, secret))
}

/// The cookie that removes the session cookie.
pub fn end_cookie(config: &Config) -> Cookie<'static> {
    cookies::removal(config, cookies::SESSION)
}
