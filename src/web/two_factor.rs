//! The second step of a password sign-in: a code from an authenticator app or a recovery
//! code, or, when an org requires 2FA and the person has none yet, setting one up.

use std::net::SocketAddr;

use askama::Template;
use axum::{
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use super::failure;
use crate::{
    accounts,
    browser::{
        cookies,
        csrf::{self, with_csrf},
        limiter::limited,
        see_other, session, CheckedForm, Page,
    },
    request::client_ip,
    state::AppState,
    store::{self, audit, members, mfa, users},
};

const RECOVERY_CODES: usize = 10;

pub enum TwoFactorStep {
    Verify,
    Enrol {
        secret: String,
        uri: String,
        required_by: String,
    },
    RecoveryCodes {
        codes: Vec<String>,
        continue_to: String,
    },
}

#[derive(Template)]
#[template(path = "pages/two_factor.html")]
struct TwoFactorPage {
    step: TwoFactorStep,
    error: Option<String>,
    csrf: String,
    show_form: bool,
}

async fn current(
    state: &AppState,
    headers: &HeaderMap,
) -> store::Result<Option<(mfa::Challenge, users::User)>> {
    let Some(secret) = cookies::read(&state.config, headers, cookies::TWO_FACTOR) else {
        return Ok(None);
    };
    let mut tx = state.store.read().await?;
    let Some(challenge) = mfa::challenge(&mut tx, &secret).await? else {
        return Ok(None);
    };
    let user = users::get(&mut tx, challenge.user_id).await?;
    Ok(user.map(|u| (challenge, u)))
}

/// The page for the challenge's step; for enrolment, the secret to set up (made once).
async fn render(
    state: &AppState,
    headers: &HeaderMap,
    challenge: &mfa::Challenge,
    user: &users::User,
    error: Option<String>,
    status: StatusCode,
) -> store::Result<Response> {
    let step = if challenge.purpose == "enrol" {
        let mut tx = state.store.begin().await?;
        // The seed is sealed at rest, like client secrets and SP keys.
        let pending = mfa::totp(&mut tx, user.id)
            .await?
            .filter(|t| t.confirmed_at.is_none())
            .and_then(|t| state.sealer.open(&t.secret));
        let secret = match pending {
            Some(secret) => secret,
            None => {
                let secret = accounts::new_totp_secret();
                mfa::begin_totp(&mut tx, user.id, &state.sealer.seal(&secret)).await?;
                secret
            }
        };
        let required_by = members::org_requiring_2fa(&mut tx, user.id)
            .await?
            .unwrap_or_else(|| "Your organization".into());
        tx.commit().await?;
        let uri = accounts::totp_uri(&secret, &user.email).unwrap_or_default();
        TwoFactorStep::Enrol {
            secret,
            uri,
            required_by,
        }
    } else {
        TwoFactorStep::Verify
    };
    let (csrf, set) = csrf::token(state, headers);
    Ok(Page::new(
        status,
        TwoFactorPage {
            step,
            error,
            csrf,
            show_form: true,
        },
    )
    .cookie(set)
    .into_response())
}

pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        match current(&state, &headers).await? {
            None => Ok(see_other("/login", Vec::new())),
            Some((challenge, user)) => {
                render(&state, &headers, &challenge, &user, None, StatusCode::OK).await
            }
        }
    };
    result
        .await
        .unwrap_or_else(|err: store::Error| failure(err, &headers))
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: String,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

pub async fn submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm<CodeForm>,
) -> Response {
    let result = async {
        let Some((challenge, user)) = current(&state, &headers).await? else {
            return Ok(see_other("/login", Vec::new()));
        };
        let keys = [
            (format!("mfa:user:{}", user.id), 10),
            (
                format!("mfa:ip:{}", client_ip(&state.config.http, &headers, peer)),
                30,
            ),
        ];
        if let Some(refused) = limited(&state, &keys, 15).await? {
            return Ok(refused);
        }
        let mut tx = state.store.begin().await?;
        let totp = mfa::totp(&mut tx, user.id).await?;
        let step = totp
            .as_ref()
            .and_then(|t| state.sealer.open(&t.secret))
            .and_then(|secret| accounts::totp_step(&secret, &form.code, unix_now()));
        let code_ok = match step {
            Some(step) => mfa::use_step(&mut tx, user.id, step).await?,
            None => false,
        };
        let enrolling = challenge.purpose == "enrol";
        let ok =
            code_ok || (!enrolling && mfa::use_recovery_code(&mut tx, user.id, &form.code).await?);
        if !ok {
            drop(tx);
            tracing::info!(user_id = user.id, "second factor refused");
            let error = Some(
                "That code is not right, or was used already. Enter the current code.".to_string(),
            );
            return render(
                &state,
                &headers,
                &challenge,
                &user,
                error,
                StatusCode::UNAUTHORIZED,
            )
            .await;
        }
        mfa::end_challenge(&mut tx, challenge.id).await?;
        let (session, _) = session::start(
            &state,
            &mut tx,
            user.id,
            None,
            store::credentials::Method::Password,
        )
        .await?;
        let clear = cookies::removal(&state.config, cookies::TWO_FACTOR);
        if !enrolling {
            tx.commit().await?;
            crate::meter::sign_in("password", "success", "none");
            return Ok(see_other(&challenge.return_to, vec![session, clear]));
        }
        mfa::confirm_totp(&mut tx, user.id).await?;
        let codes = mfa::new_recovery_codes(&mut tx, user.id, RECOVERY_CODES).await?;
        let actor = audit::Actor {
            user_id: Some(user.id),
            label: format!("{} (web)", user.email),
            request_id: None,
        };
        audit::record(
            &mut tx,
            &actor,
            audit::Event::personal("mfa.enrolled", "user", user.id),
        )
        .await?;
        tx.commit().await?;
        crate::meter::sign_in("password", "success", "none");
        let (csrf, set) = csrf::token(&state, &headers);
        let step = TwoFactorStep::RecoveryCodes {
            codes,
            continue_to: challenge.return_to,
        };
        let page = TwoFactorPage {
            step,
            error: None,
            csrf,
            show_form: false,
        };
        Ok(Page::new(StatusCode::OK, page)
            .cookie(set)
            .cookie(Some(session))
            .cookie(Some(clear))
            .into_response())
    };
    result
        .await
        .unwrap_or_else(|err: store::Error| failure(err, &headers))
}

with_csrf!(CodeForm);
