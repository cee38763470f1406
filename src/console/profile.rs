//! Profile: the orgs and teams a person belongs to, two-factor authentication (set up with a
//! QR code, recovery codes), and personal API tokens.

use askama::Template;
use axum::{
    extract::{Path, State},
    http::{HeaderMap, Uri},
    response::{IntoResponse, Response},
};
use qrcode::{render::svg, QrCode};
use serde::Deserialize;

use super::{chrome_for, done, person, Chrome};
use crate::{
    accounts, admin,
    browser::{csrf::with_csrf, internal, CheckedForm, CsrfForm, Page},
    request::RequestId,
    state::AppState,
    store::{
        self, audit,
        credentials::{self, ApiToken},
        members::{self, OrgAccess},
        mfa,
    },
};

#[derive(Template)]
#[template(path = "console/profile.html")]
struct Profile {
    c: Chrome,
    email: String,
    orgs: Vec<OrgAccess>,
    has_totp: bool,
    tokens: Vec<ApiToken>,
    created: Option<(String, String)>,
}

#[derive(Deserialize)]
pub struct NewToken {
    csrf: String,
    name: String,
    /// Days until it stops working; empty for never.
    expires_in_days: Option<String>,
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: String,
}

with_csrf!(NewToken, CodeForm);

async fn render(
    state: &AppState,
    headers: &HeaderMap,
    me: &admin::Admin,
    created: Option<(String, String)>,
) -> Response {
    let request = RequestId::of(headers);
    let loaded = async {
        let (c, cookies) = chrome_for(state, headers, me, "profile").await?;
        let mut tx = state.store.read().await?;
        let orgs = members::of_user(&mut tx, me.user.id).await?;
        let has_totp = mfa::totp(&mut tx, me.user.id)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some());
        let tokens = credentials::list_tokens(&mut tx, me.user.id).await?;
        Ok::<_, store::Error>((c, cookies, orgs, has_totp, tokens))
    }
    .await;
    match loaded {
        Ok((c, cookies, orgs, has_totp, tokens)) => {
            let mut page = Page::new(
                axum::http::StatusCode::OK,
                Profile {
                    c,
                    email: me.user.email.clone(),
                    orgs,
                    has_totp,
                    tokens,
                    created,
                },
            );
            for cookie in cookies {
                page = page.cookie(Some(cookie));
            }
            page.into_response()
        }
        Err(err) => internal(err, &request),
    }
}

pub async fn page(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    match person(&state, &headers, &uri).await {
        Ok(me) => render(&state, &headers, &me, None).await,
        Err(page) => page,
    }
}

pub async fn create_token(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm<NewToken>,
) -> Response {
    let me = match person(&state, &headers, &uri).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let request = RequestId::of(&headers);
    let days = form
        .expires_in_days
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<u32>().ok().filter(|d| (1..=3650).contains(d)));
    let expires_at = match days {
        None => None,
        Some(Some(days)) => Some(store::now() + chrono::Duration::days(days.into())),
        Some(None) => {
            let error = admin::Error::Invalid(
                "Expires in: a number of days from 1 to 3650, or empty.".into(),
            );
            return done(&state, &request, "/profile", Err(error));
        }
    };
    let created = async {
        let mut tx = state.store.begin().await?;
        let (token, secret) = admin::me::create_token(&mut tx, &me, &form.name, expires_at).await?;
        tx.commit().await?;
        Ok::<_, admin::Error>((token.name, secret))
    }
    .await;
    match created {
        Ok(created) => render(&state, &headers, &me, Some(created)).await,
        Err(err) => done(&state, &request, "/profile", Err(err)),
    }
}

pub async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(_): CheckedForm<CsrfForm>,
) -> Response {
    let me = match person(&state, &headers, &uri).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let outcome = async {
        let mut tx = state.store.begin().await?;
        let token = admin::me::revoke_token(&mut tx, &me, id).await?;
        tx.commit().await?;
        Ok(format!("Token {} revoked.", token.name))
    }
    .await;
    done(&state, &RequestId::of(&headers), "/profile", outcome)
}

#[derive(Template)]
#[template(path = "console/two_factor.html")]
struct TwoFactor {
    c: Chrome,
    /// The key to type in, the otpauth URI and its QR code (SVG), while setting up.
    setup: Option<(String, String, String)>,
    codes: Vec<String>,
    error: Option<String>,
}

/// The QR code of an otpauth URI, as inline SVG.
fn qr_svg(uri: &str) -> String {
    let Ok(code) = QrCode::new(uri.as_bytes()) else {
        return String::new();
    };
    let svg = code
        .render::<svg::Color>()
        .min_dimensions(220, 220)
        .quiet_zone(true)
        .build();
    // Inline in HTML: no XML declaration; a name for assistive technology.
    let svg = svg.trim_start_matches(|c| c != '<');
    let svg = match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    };
    svg.replacen(
        "<svg",
        "<svg role=\"img\" aria-label=\"QR code for your authenticator app\"",
        1,
    )
}

async fn two_factor_render(
    state: &AppState,
    headers: &HeaderMap,
    me: &admin::Admin,
    codes: Vec<String>,
    error: Option<String>,
) -> Response {
    let request = RequestId::of(headers);
    let loaded = async {
        let (c, cookies) = chrome_for(state, headers, me, "profile").await?;
        let mut setup = None;
        if codes.is_empty() {
            let mut tx = state.store.begin().await?;
            let current = mfa::totp(&mut tx, me.user.id).await?;
            let confirmed = current.as_ref().is_some_and(|t| t.confirmed_at.is_some());
            if !confirmed {
                // Set-up keeps its seed across reloads; a fresh one only when none is pending.
                let pending = current.and_then(|t| state.sealer.open(&t.secret));
                let secret = match pending {
                    Some(secret) => secret,
                    None => {
                        let secret = accounts::new_totp_secret();
                        mfa::begin_totp(&mut tx, me.user.id, &state.sealer.seal(&secret)).await?;
                        secret
                    }
                };
                let uri = accounts::totp_uri(&secret, &me.user.email).unwrap_or_default();
                let svg = qr_svg(&uri);
                setup = Some((secret, uri, svg));
            }
            tx.commit().await?;
        }
        Ok::<_, store::Error>((c, cookies, setup))
    }
    .await;
    match loaded {
        Ok((c, cookies, setup)) => {
            let mut page = Page::new(
                axum::http::StatusCode::OK,
                TwoFactor {
                    c,
                    setup,
                    codes,
                    error,
                },
            );
            for cookie in cookies {
                page = page.cookie(Some(cookie));
            }
            page.into_response()
        }
        Err(err) => internal(err, &request),
    }
}

pub async fn two_factor_page(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match person(&state, &headers, &uri).await {
        Ok(me) => two_factor_render(&state, &headers, &me, Vec::new(), None).await,
        Err(page) => page,
    }
}

/// Confirms set-up with a code from the app; the answer shows the recovery codes once.
pub async fn two_factor_confirm(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm<CodeForm>,
) -> Response {
    let me = match person(&state, &headers, &uri).await {
        Ok(me) => me,
        Err(page) => return page,
    };
    let request = RequestId::of(&headers);
    let confirmed = async {
        let mut tx = state.store.begin().await?;
        let Some(totp) = mfa::totp(&mut tx, me.user.id).await? else {
            return Ok(None);
        };
        if totp.confirmed_at.is_some() {
            return Ok(None);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let step = state
            .sealer
            .open(&totp.secret)
            .and_then(|secret| accounts::totp_step(&secret, &form.code, now));
        let Some(step) = step else {
            return Ok(None);
        };
        if !mfa::use_step(&mut tx, me.user.id, step).await? {
            return Ok(None);
        }
        mfa::confirm_totp(&mut tx, me.user.id).await?;
        let codes = mfa::new_recovery_codes(&mut tx, me.user.id, 10).await?;
        audit::record(
            &mut tx,
            &me.actor,
            audit::Event::personal("mfa.enrolled", "user", me.user.id),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, store::Error>(Some(codes))
    }
    .await;
    match confirmed {
        Ok(Some(codes)) => two_factor_render(&state, &headers, &me, codes, None).await,
        Ok(None) => {
            let error = "That code is not right, or was used already. Enter the current code from your app.";
            two_factor_render(&state, &headers, &me, Vec::new(), Some(error.into())).await
        }
        Err(err) => internal(err, &request),
    }
}
