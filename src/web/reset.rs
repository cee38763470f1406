//! Password reset by email: a single-use link that works for an hour.

use std::net::SocketAddr;

use askama::Template;
use axum::{
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::failure;
use crate::{
    accounts,
    browser::{
        csrf::{self, with_csrf},
        limiter::limited,
        message, see_other, CheckedForm, Page,
    },
    mail,
    request::client_ip,
    secrets,
    state::AppState,
    store::{self, credentials, outbox, passwords, resets, users},
};

const TOKEN_PREFIX: &str = "rc_pwr_";

#[derive(Template)]
#[template(path = "pages/forgot.html")]
struct Forgot {
    csrf: String,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/reset.html")]
struct Reset {
    csrf: String,
    token: String,
    error: Option<String>,
}

pub async fn forgot_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (csrf, set) = csrf::token(&state, &headers);
    Page::new(StatusCode::OK, Forgot { csrf, notice: None })
        .cookie(set)
        .into_response()
}

#[derive(Deserialize)]
pub struct ForgotForm {
    csrf: String,
    email: String,
}

pub async fn forgot(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm<ForgotForm>,
) -> Response {
    let result = async {
        let email = form.email.trim().to_lowercase();
        let keys = [
            (
                format!("reset:ip:{}", client_ip(&state.config.http, &headers, peer)),
                10,
            ),
            (format!("reset:account:{email}"), 3),
        ];
        if let Some(refused) = limited(&state, &keys, 15).await? {
            return Ok(refused);
        }
        let mut tx = state.store.begin().await?;
        let user = match users::normalize_email(&email) {
            Ok(email) => users::by_email(&mut tx, &email).await?,
            Err(_) => None,
        };
        // Only accounts with a password can reset one; SSO-only people sign in at their IdP.
        if let Some(user) = user {
            if passwords::hash_of(&mut tx, user.id).await?.is_some() {
                let token = secrets::generate(TOKEN_PREFIX);
                resets::create(&mut tx, user.id, &token.hash, chrono::Duration::hours(1)).await?;
                let link = format!(
                    "{}/password/reset/{}",
                    state.config.public_base_url.trim_end_matches('/'),
                    token.plaintext
                );
                let rendered = mail::password_reset(&user.email, &link).map_err(|e| {
                    store::Error::Internal(format!("reset email template failed: {e}"))
                })?;
                let message = outbox::NewMessage {
                    org_id: None,
                    invitation_id: None,
                    to: &user.email,
                    subject: &rendered.subject,
                    text_body: &rendered.text,
                    html_body: &rendered.html,
                };
                outbox::enqueue(&mut tx, message).await?;
            }
        }
        tx.commit().await?;
        // The same answer whether or not the account exists.
        let notice = format!("If {email} belongs to an account with a password, we sent it a link to choose a new one. The link works for one hour.");
        let (csrf, set) = csrf::token(&state, &headers);
        store::Result::Ok(
            Page::new(
                StatusCode::OK,
                Forgot {
                    csrf,
                    notice: Some(notice),
                },
            )
            .cookie(set)
            .into_response(),
        )
    };
    result
        .await
        .unwrap_or_else(|err: store::Error| failure(err, &headers))
}

fn dead_link() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "This link no longer works",
        "Password reset links work once, for one hour. Ask for a new one from the sign-in page.",
    )
    .into_response()
}

async fn usable(state: &AppState, token: &str) -> store::Result<Option<i64>> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let mut tx = state.store.read().await?;
    resets::user_of(&mut tx, &secrets::hash(token)).await
}

pub async fn reset_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let result = async {
        if usable(&state, &token).await?.is_none() {
            return Ok(dead_link());
        }
        let (csrf, set) = csrf::token(&state, &headers);
        store::Result::Ok(
            Page::new(
                StatusCode::OK,
                Reset {
                    csrf,
                    token,
                    error: None,
                },
            )
            .cookie(set)
            .into_response(),
        )
    };
    result
        .await
        .unwrap_or_else(|err: store::Error| failure(err, &headers))
}

#[derive(Deserialize)]
pub struct ResetForm {
    csrf: String,
    password: String,
}

pub async fn reset(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    CheckedForm(form): CheckedForm<ResetForm>,
) -> Response {
    let result = async {
        if let Some(refused) = limited(
            &state,
            &[(
                format!("reset:ip:{}", client_ip(&state.config.http, &headers, peer)),
                10,
            )],
            15,
        )
        .await?
        {
            return Ok(refused);
        }
        let Some(user_id) = usable(&state, &token).await? else {
            return Ok(dead_link());
        };
        let mut tx = state.store.read().await?;
        let Some(user) = users::get(&mut tx, user_id).await? else {
            return Ok(dead_link());
        };
        drop(tx);
        if let Err(reason) =
            accounts::check_policy(&form.password, &user.email, user.display_name.as_deref())
        {
            let (csrf, set) = csrf::token(&state, &headers);
            let page = Reset {
                csrf,
                token,
                error: Some(reason),
            };
            return Ok(Page::new(StatusCode::BAD_REQUEST, page)
                .cookie(set)
                .into_response());
        }
        // Hashed before the write transaction, so no connection waits on Argon2.
        let password_hash = accounts::hash(&form.password).await;
        let mut tx = state.store.begin().await?;
        // Consumed in this transaction: a second use of the link, even at the same moment, fails.
        if resets::consume(&mut tx, &secrets::hash(&token)).await? != Some(user_id) {
            return Ok(dead_link());
        }
        passwords::set(&mut tx, user_id, &password_hash).await?;
        // Whoever knew the old password is signed out everywhere.
        credentials::revoke_sessions(&mut tx, user_id).await?;
        tx.commit().await?;
        tracing::info!(user_id, "password reset");
        store::Result::Ok(see_other("/login?reset=1", Vec::new()))
    };
    result
        .await
        .unwrap_or_else(|err: store::Error| failure(err, &headers))
}

with_csrf!(ForgotForm, ResetForm);
