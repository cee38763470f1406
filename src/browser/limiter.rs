//! Per-key attempt limits for pages anyone can reach (sign-in, password reset, invitation
//! forms, SSO starts): counted in the database, so every instance counts together.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};

use super::message;
use crate::{state::AppState, store};

/// Counts the start of an SSO sign-in against the client address's allowance per minute
/// (`http.sign_in_starts_per_minute`). Over it: the 429 page to answer with.
pub async fn sign_in_start(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    peer: std::net::SocketAddr,
) -> store::Result<Option<Response>> {
    let max = state.config.http.sign_in_starts_per_minute;
    if max <= 0 {
        return Ok(None);
    }
    let ip = crate::request::client_ip(&state.config.http, headers, peer);
    limited(state, &[(format!("sso-start:ip:{ip}"), max)], 1).await
}

/// Counts a SAML response posted to an ACS against the client address's allowance per
/// minute (the same number as for sign-in starts): anyone can post one, and each costs a
/// signature check.
pub async fn sign_in_post(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    peer: std::net::SocketAddr,
) -> store::Result<Option<Response>> {
    let max = state.config.http.sign_in_starts_per_minute;
    if max <= 0 {
        return Ok(None);
    }
    let ip = crate::request::client_ip(&state.config.http, headers, peer);
    limited(state, &[(format!("sso-post:ip:{ip}"), max)], 1).await
}

/// Counts an attempt against each (key, max per `window_minutes`). Over any limit: the 429
/// page, with Retry-After, to show instead of doing the work.
pub async fn limited(
    state: &AppState,
    keys: &[(String, i64)],
    window_minutes: i64,
) -> store::Result<Option<Response>> {
    let mut tx = state.store.begin().await?;
    let mut over = None;
    for (key, max) in keys {
        let key = bounded(key);
        if let Err(until) = store::limits::hit(&mut tx, &key, *max, window_minutes).await? {
            over = Some(over.map_or(until, |u: chrono::DateTime<chrono::Utc>| u.max(until)));
        }
    }
    tx.commit().await?;
    Ok(over.map(|until| {
        let seconds = (until - store::now()).num_seconds().max(1);
        tracing::warn!(keys = ?keys.iter().map(|(k, _)| k).collect::<Vec<_>>(), "rate limit reached");
        let text = format!(
            "Too many attempts. For your security, wait {} minute(s) and try again.",
            (seconds + 59) / 60
        );
        let mut response =
            message(StatusCode::TOO_MANY_REQUESTS, "Too many attempts", &text).into_response();
        if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }))
}

/// Longest key stored as it is. Keys carry what a client sent (an email address), so a
/// longer one is kept as its start and a hash: the index on keys has a size limit
/// (PostgreSQL's btree refuses rows over about 2,700 bytes) and the table is not a store.
const MAX_KEY_BYTES: usize = 160;

fn bounded(key: &str) -> std::borrow::Cow<'_, str> {
    if key.len() <= MAX_KEY_BYTES {
        return key.into();
    }
    let mut end = 64;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}#{}", &key[..end], crate::secrets::hash(key)).into()
}

#[cfg(test)]
mod tests {
    use super::{bounded, MAX_KEY_BYTES};

    #[test]
    fn long_keys_are_bounded_and_stay_distinct() {
        assert_eq!(bounded("login:ip:127.0.0.1"), "login:ip:127.0.0.1");
        let a = format!("login:account:{}@x.test", "é".repeat(3000));
        let b = format!("login:account:{}@y.test", "é".repeat(3000));
        assert!(bounded(&a).len() <= MAX_KEY_BYTES);
        assert_ne!(bounded(&a), bounded(&b));
        assert_eq!(bounded(&a), bounded(&a));
    }
}
