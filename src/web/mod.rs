//! The password and invitation front door: the home page, password sign-in and sign-out,
//! the invitation pages, 2FA and password reset. Page, cookie, session and CSRF helpers are
//! the browser layer's (`crate::browser`).

mod reset;
mod two_factor;

use std::net::SocketAddr;

use askama::Template;
use axum::{
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use axum_extra::extract::cookie::SameSite;
use serde::Deserialize;

use crate::{
    accounts,
    browser::{
        self, cookies,
        csrf::{self, with_csrf},
        internal,
        limiter::limited,
        message, see_other,
        session::{self, signed_in},
        CheckedForm, CsrfForm, Message, Page,
    },
    invitations as front, provisioning,
    request::{client_ip, RequestId},
    secrets,
    state::AppState,
    store::{
        self, audit, credentials,
        invitations::{self, Invitation},
        members::{self, OrgAccess},
        orgs::{self, Org},
        passwords, users,
    },
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/invite/{token}", get(invite_page))
        .route("/invite/{token}/accept", post(accept))
        .route("/invite/{token}/signup", post(signup))
        .route("/login/2fa", get(two_factor::page).post(two_factor::submit))
        .route(
            "/password/forgot",
            get(reset::forgot_page).post(reset::forgot),
        )
        .route(
            "/password/reset/{token}",
            get(reset::reset_page).post(reset::reset),
        )
}

/// Only a path on this server.
fn safe_return(state: &AppState, to: Option<&str>) -> String {
    browser::safe_return(&state.config.public_base_url, to)
}

/// Internal failures: logged with detail, shown as a short page with the request's reference.
fn failure(err: store::Error, headers: &HeaderMap) -> Response {
    internal(err, &RequestId::of(headers))
}

fn web_actor(user: &users::User, headers: &HeaderMap) -> audit::Actor {
    audit::Actor {
        user_id: Some(user.id),
        label: format!("{} (web)", user.email),
        request_id: RequestId::of(headers).0,
    }
}

// ---- home, sign-in, sign-out ----

#[derive(Template)]
#[template(path = "pages/home.html")]
struct Home {
    /// "Hi, <name>": the account menu's label.
    greeting: String,
    email: String,
    orgs: Vec<OrgAccess>,
    /// Orgs this password session may not act in: they enforce single sign-on.
    sso_only: Vec<String>,
    csrf: String,
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let result = async {
        let Some(session::SignedIn { user, method, .. }) = signed_in(&state, &headers).await?
        else {
            return Ok(see_other("/login", Vec::new()));
        };
        let mut tx = state.store.read().await?;
        let (orgs, sso_only): (Vec<OrgAccess>, Vec<OrgAccess>) = members::of_user(&mut tx, user.id)
            .await?
            .into_iter()
            .partition(|o| method.satisfies_sso() || !o.sso_enforced);
        let sso_only = sso_only.into_iter().map(|o| o.name).collect();
        let (csrf, set) = csrf::token(&state, &headers);
        store::Result::Ok(
            Page::new(
                StatusCode::OK,
                Home {
                    greeting: format!(
                        "Hi, {}",
                        user.given_name
                            .clone()
                            .or(user.display_name.clone())
                            .unwrap_or(user.email.clone())
                    ),
                    email: user.email,
                    orgs,
                    sso_only,
                    csrf,
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

/// The sign-in page's steps: the email first; then, when no single sign-on takes the
/// person, their password; or a choice of identity providers.
enum LoginStep {
    Email,
    Password,
    Choose(Vec<SsoChoice>),
}

struct SsoChoice {
    name: String,
    url: String,
}

#[derive(Template)]
#[template(path = "pages/login.html")]
struct Login {
    csrf: String,
    return_to: String,
    email: String,
    step: LoginStep,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
struct ReturnTo {
    return_to: Option<String>,
    /// Set after a password change, to say so.
    reset: Option<String>,
}

async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReturnTo>,
) -> Response {
    let (csrf, set) = csrf::token(&state, &headers);
    let notice = q
        .reset
        .map(|_| "Your password was changed. Sign in with the new one.".to_string());
    let page = Login {
        csrf,
        return_to: safe_return(&state, q.return_to.as_deref()),
        email: String::new(),
        step: LoginStep::Email,
        error: None,
        notice,
    };
    Page::new(StatusCode::OK, page).cookie(set).into_response()
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    csrf: String,
    email: String,
    /// Absent at the first step: the email alone decides where the person signs in.
    password: Option<String>,
    return_to: Option<String>,
}

/// Where an email signs in (home-realm discovery): through its org's identity provider when
/// its domain is verified by an org with an enabled connection, else with a password. An
/// org that enforces single sign-on never offers a password.
async fn discover(state: &AppState, email: &str, return_to: &str) -> store::Result<Discovered> {
    let Some(domain) = users::normalize_email(email)
        .ok()
        .as_deref()
        .and_then(store::domains::of_email)
    else {
        return Ok(Discovered::Password);
    };
    let mut tx = state.store.read().await?;
    let Some(org_id) = store::domains::verified_owner(&mut tx, &domain).await? else {
        return Ok(Discovered::Password);
    };
    let Some(org) = orgs::by_id(&mut tx, org_id).await? else {
        return Ok(Discovered::Password);
    };
    let mut enabled: Vec<SsoChoice> = store::connections::list(&mut tx, org.id)
        .await?
        .into_iter()
        .filter(|c| c.enabled)
        .map(|c| SsoChoice {
            url: front::sso_login_url(&org, &c, return_to),
            name: c.name,
        })
        .collect();
    Ok(match enabled.len() {
        0 if org.sso_enforced => Discovered::NoWayIn(org),
        0 => Discovered::Password,
        1 => Discovered::Sso(enabled.remove(0)),
        _ => Discovered::Choose(enabled),
    })
}

#[derive(Template)]
#[template(path = "pages/continue.html")]
struct Continue {
    url: String,
    name: String,
}

enum Discovered {
    Password,
    Sso(SsoChoice),
    Choose(Vec<SsoChoice>),
    NoWayIn(Org),
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm<LoginForm>,
) -> Response {
    let return_to = safe_return(&state, form.return_to.as_deref());
    let result = async {
        let ask = |step: LoginStep, error: Option<String>, status: StatusCode| {
            let (csrf, set) = csrf::token(&state, &headers);
            let page = Login {
                csrf,
                return_to: return_to.clone(),
                email: form.email.trim().to_string(),
                step,
                error,
                notice: None,
            };
            Page::new(status, page).cookie(set).into_response()
        };
        let Some(password) = form.password.as_deref().filter(|p| !p.is_empty()) else {
            return Ok(match discover(&state, &form.email, &return_to).await? {
                // A page that moves on by itself rather than a redirect: browsers apply
                // this form's `form-action 'self'` to redirects after it, and the IdP is
                // elsewhere.
                Discovered::Sso(choice) => Page::new(
                    StatusCode::OK,
                    Continue {
                        url: choice.url,
                        name: choice.name,
                    },
                )
                .into_response(),
                Discovered::Choose(choices) => {
                    ask(LoginStep::Choose(choices), None, StatusCode::OK)
                }
                Discovered::NoWayIn(org) => no_way_in(&org),
                Discovered::Password => ask(LoginStep::Password, None, StatusCode::OK),
            });
        };
        let keys = [
            (
                format!("login:ip:{}", client_ip(&state.config.http, &headers, peer)),
                30,
            ),
            (
                format!("login:account:{}", form.email.trim().to_lowercase()),
                10,
            ),
        ];
        if let Some(refused) = limited(&state, &keys, 15).await? {
            return Ok(refused);
        }
        let user = accounts::authenticate(&state.store, &form.email, password).await?;
        let Some(user) = user else {
            tracing::info!(email = %form.email, "password sign-in refused");
            crate::meter::sign_in("password", "refused", "credentials");
            // The same words whether the account exists or not.
            let error = "That email and password do not match an account.";
            return Ok(ask(
                LoginStep::Password,
                Some(error.into()),
                StatusCode::UNAUTHORIZED,
            ));
        };
        // A second factor first, when the person has one or an org of theirs requires one.
        let mut tx = state.store.begin().await?;
        let has_totp = store::mfa::totp(&mut tx, user.id)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some());
        let purpose = if has_totp {
            Some("verify")
        } else if store::members::org_requiring_2fa(&mut tx, user.id)
            .await?
            .is_some()
        {
            Some("enrol")
        } else {
            None
        };
        if let Some(purpose) = purpose {
            let secret =
                store::mfa::create_challenge(&mut tx, user.id, purpose, &return_to).await?;
            tx.commit().await?;
            let challenge = cookies::make(
                &state.config,
                cookies::TWO_FACTOR,
                secret,
                Some(600),
                SameSite::Lax,
            );
            return Ok(see_other("/login/2fa", vec![challenge]));
        }
        let previous = signed_in(&state, &headers).await?.map(|s| s.session_id);
        let (cookie, _) = session::start(
            &state,
            &mut tx,
            user.id,
            previous,
            credentials::Method::Password,
        )
        .await?;
        tx.commit().await?;
        crate::meter::sign_in("password", "success", "none");
        store::Result::Ok(see_other(&return_to, vec![cookie]))
    };
    result
        .await
        .unwrap_or_else(|err: store::Error| failure(err, &headers))
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm<CsrfForm>,
) -> Response {
    let result = async {
        if let Some(signed) = signed_in(&state, &headers).await? {
            let mut tx = state.store.begin().await?;
            credentials::revoke_session(&mut tx, signed.session_id).await?;
            tx.commit().await?;
        }
        let to = match form.return_to.as_deref() {
            Some(_) => safe_return(&state, form.return_to.as_deref()),
            None => "/login".to_string(),
        };
        store::Result::Ok(see_other(&to, vec![session::end_cookie(&state.config)]))
    };
    result
        .await
        .unwrap_or_else(|err: store::Error| failure(err, &headers))
}

// ---- invitations ----

enum InviteStep {
    Sso {
        login_url: String,
        connection: String,
    },
    Accept,
    WrongAccount {
        signed_in: String,
    },
    SignIn,
    SignUp,
}

#[derive(Template)]
#[template(path = "pages/invite.html")]
struct InvitePage {
    token: String,
    org_name: String,
    inviter: String,
    email: String,
    is_admin: bool,
    teams: Vec<String>,
    expires: String,
    step: InviteStep,
    csrf: String,
    error: Option<String>,
}

/// One page for every link that does not work: unknown, used, revoked or expired all look
/// the same, so a link reveals nothing about invitations it is not.
fn invalid_invitation() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "This invitation is no longer valid",
        "The link has expired, has already been used, or was withdrawn. Ask the person who invited you (they are named in the invitation email) to send a new one.",
    )
    .into_response()
}

/// The open invitation behind a link, with its org and how it must be accepted.
struct Open {
    invitation: Invitation,
    org: Org,
    sso: Option<store::connections::Connection>,
}

enum Lookup {
    Open(Box<Open>),
    /// Accepted: by whom, into which org (someone back from their SSO sign-in, whose
    /// arrival accepted it, sees that they joined).
    Accepted(Option<i64>, Org),
    Invalid,
    /// SSO is enforced but the org has no connection enabled.
    NoWayIn(Org),
}

async fn open_invitation(state: &AppState, token: &str) -> store::Result<Lookup> {
    if !token.starts_with(front::TOKEN_PREFIX) {
        return Ok(Lookup::Invalid);
    }
    let mut tx = state.store.read().await?;
    let Some(invitation) = invitations::by_token_hash(&mut tx, &secrets::hash(token)).await? else {
        return Ok(Lookup::Invalid);
    };
    let Some(org) = orgs::by_id(&mut tx, invitation.org_id).await? else {
        return Ok(Lookup::Invalid);
    };
    if invitation.status == invitations::Status::Accepted {
        return Ok(Lookup::Accepted(invitation.accepted_user_id, org));
    }
    if invitation.status != invitations::Status::Pending {
        return Ok(Lookup::Invalid);
    }
    Ok(
        match front::sso_connection(&mut tx, &org, &invitation.email).await? {
            Err(()) => Lookup::NoWayIn(org),
            Ok(sso) => Lookup::Open(Box::new(Open {
                invitation,
                org,
                sso,
            })),
        },
    )
}

fn no_way_in(org: &Org) -> Response {
    let text = format!("{} requires single sign-on, but no sign-in method is set up yet. Ask an administrator of {}.", org.name, org.name);
    message(StatusCode::CONFLICT, "Single sign-on is not ready", &text).into_response()
}

async fn render_invite(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
    open: &Open,
    error: Option<String>,
    status: StatusCode,
) -> store::Result<Response> {
    let signed_in = signed_in(state, headers).await?.map(|s| s.user);
    let invited = users::normalize_email(&open.invitation.email)?;
    let step = if let (Some(connection), Some(user)) = (&open.sso, &signed_in) {
        if user.email.to_lowercase() == invited {
            InviteStep::Sso {
                login_url: front::sso_login_url(&open.org, connection, &format!("/invite/{token}")),
                connection: connection.name.clone(),
            }
        } else {
            // Back from SSO as someone else: say so, naming both addresses.
            InviteStep::WrongAccount {
                signed_in: user.email.clone(),
            }
        }
    } else if let Some(connection) = &open.sso {
        InviteStep::Sso {
            login_url: front::sso_login_url(&open.org, connection, &format!("/invite/{token}")),
            connection: connection.name.clone(),
        }
    } else {
        match signed_in {
            Some(user) if user.email.to_lowercase() == invited => InviteStep::Accept,
            Some(user) => InviteStep::WrongAccount {
                signed_in: user.email,
            },
            None => {
                let mut tx = state.store.read().await?;
                match users::by_email(&mut tx, &invited).await? {
                    Some(_) => InviteStep::SignIn,
                    None => InviteStep::SignUp,
                }
            }
        }
    };
    let (csrf, set) = csrf::token(state, headers);
    let page = InvitePage {
        token: token.to_string(),
        org_name: open.org.name.clone(),
        inviter: open
            .invitation
            .invited_by
            .clone()
            .unwrap_or_else(|| format!("An administrator of {}", open.org.name)),
        email: open.invitation.email.clone(),
        is_admin: open.invitation.is_admin,
        teams: open
            .invitation
            .teams
            .iter()
            .map(|t| t.name.clone())
            .collect(),
        expires: open
            .invitation
            .expires_at
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
        step,
        csrf,
        error,
    };
    Ok(Page::new(status, page).cookie(set).into_response())
}

async fn invite_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let result = async {
        Ok(match open_invitation(&state, &token).await? {
            Lookup::Accepted(by, org) => {
                let me = signed_in(&state, &headers).await?.map(|s| s.user.id);
                if by.is_some() && by == me {
                    let text = format!("You are a member of {} now.", org.name);
                    let page = Message {
                        title: "You joined",
                        message: &text,
                        link: Some(("/", "Continue")),
                    };
                    Page::new(StatusCode::OK, page).into_response()
                } else {
                    invalid_invitation()
                }
            }
            Lookup::Invalid => invalid_invitation(),
            Lookup::NoWayIn(org) => no_way_in(&org),
            Lookup::Open(open) => {
                render_invite(&state, &headers, &token, &open, None, StatusCode::OK).await?
            }
        })
    };
    result
        .await
        .unwrap_or_else(|err: store::Error| failure(err, &headers))
}

/// Records the acceptance and answers with the home page. Refusals from the core become
/// the invitation page with the reason; a lost race becomes the "no longer valid" page.
async fn finish_accept(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
    mut tx: store::Tx,
    open: &Open,
    user: &users::User,
    cookies: Vec<axum_extra::extract::cookie::Cookie<'static>>,
) -> store::Result<Response> {
    match provisioning::accept_invitation(&mut tx, &open.invitation, user).await {
        Ok(accepted) => {
            let event = audit::Event::new(
                accepted.org_id,
                "invitation.accepted",
                "invitation",
                accepted.invitation_id,
            )
            .after(&accepted);
            audit::record(&mut tx, &web_actor(user, headers), event).await?;
            tx.commit().await?;
            Ok(see_other("/", cookies))
        }
        Err(provisioning::Error::Refused(r)) if r.code == "invitation_invalid" => {
            Ok(invalid_invitation())
        }
        Err(provisioning::Error::Refused(r)) => {
            drop(tx);
            tracing::warn!(code = r.code, detail = %r.detail, "invitation acceptance refused");
            render_invite(
                state,
                headers,
                token,
                open,
                Some(r.message),
                StatusCode::FORBIDDEN,
            )
            .await
        }
        Err(provisioning::Error::Store(err)) => Err(err),
    }
}

/// The open invitation behind a form posted from its page, when a local account may accept
/// it; otherwise the page to answer with (rate limited, invalid, or SSO-only).
async fn for_local_account(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    token: &str,
) -> store::Result<Result<Box<Open>, Response>> {
    let ip_key = format!("invite:ip:{}", client_ip(&state.config.http, headers, peer));
    if let Some(refused) = limited(state, &[(ip_key, 30)], 15).await? {
        return Ok(Err(refused));
    }
    let open = match open_invitation(state, token).await? {
        Lookup::Invalid | Lookup::Accepted(..) => return Ok(Err(invalid_invitation())),
        Lookup::NoWayIn(org) => return Ok(Err(no_way_in(&org))),
        Lookup::Open(open) => open,
    };
    if open.sso.is_some() {
        let error = Some("Accept this invitation by signing in with single sign-on.".into());
        return Ok(Err(render_invite(
            state,
            headers,
            token,
            &open,
            error,
            StatusCode::FORBIDDEN,
        )
        .await?));
    }
    Ok(Ok(open))
}

async fn accept(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    CheckedForm(_): CheckedForm<CsrfForm>,
) -> Response {
    let result = async {
        let open = match for_local_account(&state, &headers, peer, &token).await? {
            Ok(open) => open,
            Err(page) => return Ok(page),
        };
        let Some(session::SignedIn { user, .. }) = signed_in(&state, &headers).await? else {
            return Ok(see_other(
                &format!("/login?return_to=/invite/{token}"),
                Vec::new(),
            ));
        };
        let tx = state.store.begin().await?;
        finish_accept(&state, &headers, &token, tx, &open, &user, Vec::new()).await
    };
    result
        .await
        .unwrap_or_else(|err: store::Error| failure(err, &headers))
}

#[derive(Deserialize)]
pub(crate) struct SignupForm {
    csrf: String,
    name: String,
    password: String,
}

async fn signup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    CheckedForm(form): CheckedForm<SignupForm>,
) -> Response {
    let result = async {
        let open = match for_local_account(&state, &headers, peer, &token).await? {
            Ok(open) => open,
            Err(page) => return Ok(page),
        };
        let name = form.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return render_invite(
                &state,
                &headers,
                &token,
                &open,
                Some("Enter your name (at most 200 characters).".into()),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
        if let Err(reason) =
            accounts::check_policy(&form.password, &open.invitation.email, Some(name))
        {
            return render_invite(
                &state,
                &headers,
                &token,
                &open,
                Some(reason),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
        let password_hash = accounts::hash(&form.password).await;
        let mut tx = state.store.begin().await?;
        let new = users::NewUser {
            email: open.invitation.email.clone(),
            display_name: Some(name.to_string()),
            ..Default::default()
        };
        let Some(user) = users::insert_if_absent(&mut tx, &new).await? else {
            drop(tx);
            return render_invite(
                &state,
                &headers,
                &token,
                &open,
                Some("An account with this email already exists: sign in to accept.".into()),
                StatusCode::CONFLICT,
            )
            .await;
        };
        passwords::set(&mut tx, user.id, &password_hash).await?;
        let previous = signed_in(&state, &headers).await?.map(|s| s.session_id);
        let (cookie, _) = session::start(
            &state,
            &mut tx,
            user.id,
            previous,
            credentials::Method::Password,
        )
        .await?;
        finish_accept(&state, &headers, &token, tx, &open, &user, vec![cookie]).await
    };
    result
        .await
        .unwrap_or_else(|err: store::Error| failure(err, &headers))
}

with_csrf!(LoginForm, SignupForm);
