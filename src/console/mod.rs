//! The console: the browser pages an org admin manages the org with (Members, Invitations,
//! Teams, SSO, SCIM, Audit log, Settings) and every person's Profile. It is a front door
//! like the admin API: each form becomes an `admin` command, run in one transaction with its
//! audit event; pages never call the API over HTTP.
//!
//! Every page works without JavaScript. Forms carry CSRF tokens, destructive actions go
//! through a confirmation page, and results come back as a flash message after a redirect
//! (post/redirect/get), except secrets shown once, which are rendered in the response.

mod audit_log;
mod invitations;
mod members;
mod profile;
mod scim;
mod settings;
mod sso;
mod teams;

use askama::Template;
use axum::{
    extract::Path,
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

use crate::{
    admin::{self, Admin},
    browser::{
        cookies, csrf, internal, message, see_other,
        session::{signed_in, SignedIn},
    },
    request::RequestId,
    state::AppState,
    store::{self, audit::Actor, members as store_members, orgs::Org},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/profile", get(profile::page))
        .route("/profile/tokens", post(profile::create_token))
        .route("/profile/tokens/{id}/revoke", post(profile::revoke_token))
        .route(
            "/profile/2fa",
            get(profile::two_factor_page).post(profile::two_factor_confirm),
        )
        .route("/static/console.js", get(script))
        .route("/orgs/{org}", get(org_home))
        .route("/orgs/{org}/members", get(members::list))
        .route("/orgs/{org}/members/{user_id}", get(members::detail))
        .route(
            "/orgs/{org}/members/{user_id}/confirm/{action}",
            get(members::confirm),
        )
        .route(
            "/orgs/{org}/members/{user_id}/teams",
            post(members::set_teams),
        )
        .route("/orgs/{org}/members/{user_id}/{action}", post(members::act))
        .route(
            "/orgs/{org}/invitations",
            get(invitations::list).post(invitations::send),
        )
        .route(
            "/orgs/{org}/invitations/clean-up",
            post(invitations::clean_up),
        )
        .route(
            "/orgs/{org}/invitations/{id}/resend",
            post(invitations::resend),
        )
        .route(
            "/orgs/{org}/invitations/{id}/revoke",
            get(invitations::confirm_revoke).post(invitations::revoke),
        )
        .route("/orgs/{org}/teams", get(teams::list).post(teams::create))
        .route("/orgs/{org}/teams/{id}", get(teams::detail))
        .route("/orgs/{org}/teams/{id}/rename", post(teams::rename))
        .route(
            "/orgs/{org}/teams/{id}/delete",
            get(teams::confirm_delete).post(teams::delete),
        )
        .route("/orgs/{org}/sso", get(sso::overview))
        .route("/orgs/{org}/sso/connections", post(sso::create_connection))
        .route("/orgs/{org}/sso/connections/{id}", get(sso::connection))
        .route(
            "/orgs/{org}/sso/connections/{id}/settings",
            post(sso::update_connection),
        )
        .route(
            "/orgs/{org}/sso/connections/{id}/delete",
            get(sso::confirm_delete_connection).post(sso::delete_connection),
        )
        .route(
            "/orgs/{org}/sso/connections/{id}/grants",
            post(sso::create_grant),
        )
        .route(
            "/orgs/{org}/sso/connections/{id}/grants/{grant_id}/delete",
            post(sso::delete_grant),
        )
        .route(
            "/orgs/{org}/sso/connections/{id}/mappings",
            post(sso::create_mapping),
        )
        .route(
            "/orgs/{org}/sso/connections/{id}/mappings/{mapping_id}/delete",
            post(sso::delete_mapping),
        )
        .route(
            "/orgs/{org}/sso/connections/{id}/explain",
            post(sso::explain),
        )
        .route("/orgs/{org}/sso/domains", post(sso::claim_domain))
        .route(
            "/orgs/{org}/sso/domains/{id}/verify",
            post(sso::verify_domain),
        )
        .route(
            "/orgs/{org}/sso/domains/{id}/delete",
            post(sso::delete_domain),
        )
        .route("/orgs/{org}/scim", get(scim::page).post(scim::create_token))
        .route(
            "/orgs/{org}/scim/tokens/{id}/revoke",
            post(scim::revoke_token),
        )
        .route("/orgs/{org}/audit", get(audit_log::page))
        .route(
            "/orgs/{org}/settings",
            get(settings::page).post(settings::save),
        )
}

/// The console's one script: copy buttons. Vendored here, served from rollcall itself
/// (`script-src 'self'`), and nothing depends on it.
async fn script() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/javascript"),
            (axum::http::header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../../static/console.js"),
    )
        .into_response()
}

async fn org_home(Path(slug): Path<String>) -> Response {
    see_other(&format!("/orgs/{slug}/members"), Vec::new())
}

/// A message shown once on the next page, after a redirect.
pub struct Flash {
    pub error: bool,
    pub text: String,
}

const FLASH: &str = "rollcall_flash";

fn flash_cookie(state: &AppState, error: bool, text: &str) -> Cookie<'static> {
    let value = format!("{}{}", if error { "e" } else { "o" }, text);
    cookies::make(
        &state.config,
        FLASH,
        URL_SAFE_NO_PAD.encode(value),
        Some(60),
        SameSite::Lax,
    )
}

fn take_flash(state: &AppState, headers: &HeaderMap) -> (Option<Flash>, Option<Cookie<'static>>) {
    let Some(raw) = cookies::read(&state.config, headers, FLASH) else {
        return (None, None);
    };
    let text = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default();
    let flash = text.split_at_checked(1).map(|(kind, text)| Flash {
        error: kind == "e",
        text: text.to_string(),
    });
    (flash, Some(cookies::removal(&state.config, FLASH)))
}

/// What every console page shows around its content: who is signed in, the orgs they
/// administer, the org and tab, the CSRF token, a flash message.
pub struct Chrome {
    pub greeting: String,
    pub admin_orgs: Vec<(String, String)>,
    pub org_slug: String,
    pub org_name: String,
    pub tab: &'static str,
    pub csrf: String,
    pub flash: Option<Flash>,
}

/// The org's tabs: path and label.
const TABS: [(&str, &str); 7] = [
    ("members", "Members"),
    ("invitations", "Invitations"),
    ("teams", "Teams"),
    ("sso", "SSO"),
    ("scim", "SCIM"),
    ("audit", "Audit log"),
    ("settings", "Settings"),
];

impl Chrome {
    pub fn tabs(&self) -> &'static [(&'static str, &'static str)] {
        &TABS
    }

    /// `href` of a tab of this org.
    pub fn tab_href(&self, tab: &str) -> String {
        format!("/orgs/{}/{tab}", self.org_slug)
    }

    pub fn is_tab(&self, tab: &str) -> bool {
        self.tab == tab
    }
}

/// The signed-in admin of an org page, with what the page needs around its content.
pub struct Ctx {
    pub admin: Admin,
    pub org: Org,
    pub chrome: Chrome,
    cookies: Vec<Cookie<'static>>,
    pub request: RequestId,
}

impl Ctx {
    /// Renders the page `make` builds around this request's chrome, with the cookies the
    /// request must set (CSRF, flash removal).
    pub fn page<T: Template>(self, make: impl FnOnce(Chrome) -> T) -> Response {
        let mut page = crate::browser::Page::new(StatusCode::OK, make(self.chrome));
        for cookie in self.cookies {
            page = page.cookie(Some(cookie));
        }
        page.into_response()
    }
}

fn admin_of_session(signed: SignedIn, request: &RequestId) -> Admin {
    Admin {
        actor: Actor {
            user_id: Some(signed.user.id),
            label: format!("{} (console)", signed.user.email),
            request_id: request.0.clone(),
        },
        method: signed.method,
        user: signed.user,
    }
}

fn greeting(user: &store::users::User) -> String {
    let name = user
        .given_name
        .clone()
        .or_else(|| user.display_name.clone())
        .unwrap_or_else(|| user.email.clone());
    format!("Hi, {name}")
}

async fn chrome_for(
    state: &AppState,
    headers: &HeaderMap,
    admin: &Admin,
    tab: &'static str,
) -> store::Result<(Chrome, Vec<Cookie<'static>>)> {
    let mut tx = state.store.read().await?;
    let admin_orgs = store_members::of_user(&mut tx, admin.user.id)
        .await?
        .into_iter()
        .filter(|o| o.is_admin && (admin.method.satisfies_sso() || !o.sso_enforced))
        .map(|o| (o.slug, o.name))
        .collect();
    drop(tx);
    let (csrf, csrf_cookie) = csrf::token(state, headers);
    let (flash, flash_removal) = take_flash(state, headers);
    Ok((
        Chrome {
            greeting: greeting(&admin.user),
            admin_orgs,
            org_slug: String::new(),
            org_name: String::new(),
            tab,
            csrf,
            flash,
        },
        csrf_cookie.into_iter().chain(flash_removal).collect(),
    ))
}

/// The signed-in person, or the sign-in page to send them to.
async fn person(state: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<Admin, Response> {
    let request = RequestId::of(headers);
    match signed_in(state, headers).await {
        Ok(Some(signed)) => Ok(admin_of_session(signed, &request)),
        Ok(None) => {
            let back: String =
                url::form_urlencoded::byte_serialize(uri.to_string().as_bytes()).collect();
            Err(see_other(&format!("/login?return_to={back}"), Vec::new()))
        }
        Err(err) => Err(internal(err, &request)),
    }
}

/// The context of an org page: the person must be signed in and an admin of the org.
pub async fn org_ctx(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    slug: &str,
    tab: &'static str,
) -> Result<Ctx, Response> {
    let admin = person(state, headers, uri).await?;
    let request = RequestId::of(headers);
    let org = async {
        let mut tx = state.store.read().await?;
        admin.org(&mut tx, slug).await
    }
    .await
    .map_err(|e| refusal_page(e, &request))?;
    let (mut chrome, cookies) = chrome_for(state, headers, &admin, tab)
        .await
        .map_err(|e| internal(e, &request))?;
    chrome.org_slug = org.slug.clone();
    chrome.org_name = org.name.clone();
    Ok(Ctx {
        admin,
        org,
        chrome,
        cookies,
        request,
    })
}

/// A page for a command that could not run at all (not found, not allowed).
fn refusal_page(err: admin::Error, request: &RequestId) -> Response {
    match err {
        admin::Error::NotFound(text) => {
            message(StatusCode::NOT_FOUND, "Not found", &text).into_response()
        }
        admin::Error::Forbidden(text) => {
            message(StatusCode::FORBIDDEN, "Not allowed", &text).into_response()
        }
        admin::Error::Store(err) => internal(err, request),
        other => {
            message(StatusCode::BAD_REQUEST, "Not possible", &other.to_string()).into_response()
        }
    }
}

/// After a form: back to `to`, with the outcome as a flash message. A refusal an admin can
/// act on (the last admin, a name taken, a DNS record missing) is shown as it is; a failure
/// of rollcall's own is logged and shown with its reference.
pub fn done(
    state: &AppState,
    request: &RequestId,
    to: &str,
    outcome: Result<String, admin::Error>,
) -> Response {
    let (error, text) = match outcome {
        Ok(text) => (false, text),
        Err(admin::Error::Store(err)) => {
            tracing::error!(%err, reference = request.reference(), "console action failed");
            (
                true,
                format!(
                    "Something went wrong on our side. Please try again; reference {}.",
                    request.reference()
                ),
            )
        }
        Err(other) => (true, other.to_string()),
    };
    see_other(to, vec![flash_cookie(state, error, &text)])
}

impl Ctx {
    /// A write transaction for a command, with the org checked again inside it: a demotion
    /// that committed since the page loaded counts.
    pub async fn begin(&self, state: &AppState) -> Result<(store::Tx, Org), admin::Error> {
        let mut tx = state.store.begin().await?;
        let org = self.admin.org(&mut tx, &self.org.slug).await?;
        Ok((tx, org))
    }

    /// Runs one admin command the way every console form does: in a write transaction
    /// with the org checked again inside it, committed when `run` succeeds, and answered
    /// by a redirect to `back` whose flash says what happened (or why not).
    pub async fn command(
        &self,
        state: &AppState,
        back: &str,
        run: impl AsyncFnOnce(&mut store::Tx, &Admin, &Org) -> Result<String, admin::Error>,
    ) -> Response {
        let outcome = async {
            let (mut tx, org) = self.begin(state).await?;
            let text = run(&mut tx, &self.admin, &org).await?;
            tx.commit().await?;
            Ok(text)
        }
        .await;
        done(state, &self.request, back, outcome)
    }
}

/// A confirmation step for a destructive action: what will happen, and the button.
#[derive(Template)]
#[template(path = "console/confirm.html")]
pub struct Confirm {
    pub c: Chrome,
    pub title: String,
    pub text: String,
    pub action: String,
    pub button: String,
    pub cancel: String,
}
