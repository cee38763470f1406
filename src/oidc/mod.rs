//! The OpenID Connect front door: Microsoft Entra ID (Azure AD) and any OIDC provider.
//!
//! `GET /oidc/{org}/login` sends the browser to the provider (authorization code flow with
//! PKCE S256; state and nonce stored server-side, single use); `GET /oidc/callback` takes the
//! code, exchanges it, validates the ID token (signature against the provider's JWKS with
//! asymmetric algorithms only, issuer, audience, azp, exp/iat with leeway, nonce, and for
//! Entra the tenant), turns it into an `ExternalIdentity` and hands it to the provisioning
//! core; then a session, and back to `return_to`.

use std::{net::SocketAddr, time::Duration};

use axum::{
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use openidconnect::{
    core::{
        CoreGenderClaim, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    },
    AdditionalClaims, ClaimsVerificationError, ClientId, IdToken, IdTokenVerifier, IssuerUrl,
    Nonce, SignatureVerificationError,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    browser::{self, limiter, message, see_other, session, SignInFailure},
    connections::{
        oidc::{Preset, Settings},
        oidc_credential as credential,
    },
    outbound::{self, Outbound},
    provisioning::{self, ExternalIdentity, IdpGroup, Via},
    request::RequestId,
    secrets,
    state::AppState,
    store::{self, audit, connections, oidc_logins, orgs},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/oidc/{org}/login", get(login))
        .route("/oidc/callback", get(callback))
}

/// Claims Entra adds (and others may): tenant, object ID, groups, app roles, overage.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExtraClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Present when the user is in more groups than fit in a token (Entra "overage").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub _claim_names: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hasgroups: Option<serde_json::Value>,
}

impl AdditionalClaims for ExtraClaims {}

pub type ProviderIdToken = IdToken<
    ExtraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// Only asymmetric signatures: `none` and HMAC (whose key would be the client secret) never
/// verify.
pub const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EcdsaP521Sha512,
    CoreJwsSigningAlgorithm::EdDsa,
];

const KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// Discovery documents change rarely; a cached copy saves a round trip on every sign-in.
const DISCOVERY_MAX_AGE: Duration = Duration::from_secs(900);

/// The provider's keys: cached up to an hour; `refresh` asks for a fresh copy, granted at most
/// once per `oidc.jwks_refresh_min_seconds`.
async fn keys(
    state: &AppState,
    uri: &str,
    refresh: bool,
) -> Result<CoreJsonWebKeySet, SignInFailure> {
    if refresh {
        // A token signed with a key not in the set: fetch at once, unless a forced fetch
        // happened within `oidc.jwks_refresh_min_seconds` (a stream of tokens with made-up
        // key IDs must not turn into a stream of fetches). Routine fetches do not count.
        let limit = Duration::from_secs(state.config.oidc.jwks_refresh_min_seconds);
        if state.jwks_forced.get(uri, limit).await.is_some() {
            if let Some(keys) = state.jwks.get(uri, KEYS_MAX_AGE).await {
                return Ok(keys);
            }
        }
        state.jwks_forced.put(uri, ()).await;
    } else if let Some(keys) = state.jwks.get(uri, KEYS_MAX_AGE).await {
        return Ok(keys);
    }
    let fresh: CoreJsonWebKeySet = fetch_json(state, uri).await?;
    state.jwks.put(uri, fresh.clone()).await;
    Ok(fresh)
}

/// What discovery tells us about a provider.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    /// RFC 9207: the provider names itself (`iss`) in every authorization response.
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
}

/// RFC 9207's check, against mix-up attacks (a response from one provider presented as
/// another's): an `iss` in the callback must be the provider's issuer, and one that
/// advertises the parameter must send it. A templated multi-tenant issuer
/// (`…/{tenantid}/v2.0`) matches any tenant id in its place.
fn check_response_issuer(discovery: &Discovery, iss: Option<&str>) -> Result<(), String> {
    match iss {
        None if discovery.authorization_response_iss_parameter_supported => Err(format!(
            "the provider advertises the RFC 9207 iss parameter but the callback has none (expected {:?}); a response from another provider?",
            discovery.issuer
        )),
        None => Ok(()),
        Some(iss) if issuer_matches(&discovery.issuer, iss) => Ok(()),
        Some(iss) => Err(format!(
            "the callback's iss is {iss:?}, expected {:?}: a response from another provider (mix-up)",
            discovery.issuer
        )),
    }
}

fn issuer_matches(expected: &str, got: &str) -> bool {
    match expected.split_once("{tenantid}") {
        Some((head, tail)) => got
            .strip_prefix(head)
            .and_then(|rest| rest.strip_suffix(tail))
            .is_some_and(|tenant| !tenant.is_empty() && !tenant.contains('/')),
        None => expected == got,
    }
}

fn fail(status: StatusCode, message: &str, reason: impl Into<String>) -> SignInFailure {
    SignInFailure::new(status, message, reason)
}

fn failure_page(failure: SignInFailure, headers: &HeaderMap) -> Response {
    crate::meter::sign_in("oidc", "refused", failure.kind);
    failure.page("OIDC sign-in", &RequestId::of(headers))
}

/// Refuses URLs an admin could use to reach rollcall's own network (SSRF), unless the
/// operator allowed private addresses; host names are judged again where the client
/// connects.
fn check_destination(state: &AppState, url: &str) -> Result<reqwest::Url, SignInFailure> {
    Ok(Outbound::check(
        url,
        state.config.oidc.allow_private_addresses,
    )?)
}

fn client(state: &AppState) -> &reqwest::Client {
    state
        .outbound
        .client(state.config.oidc.allow_private_addresses)
}

async fn fetch_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    url: &str,
) -> Result<T, SignInFailure> {
    Ok(state
        .outbound
        .get_json(url, state.config.oidc.allow_private_addresses)
        .await?)
}

/// The provider's endpoints; its `issuer` must be exactly the one configured (OIDC Discovery §4.3).
async fn discover(state: &AppState, settings: &Settings) -> Result<Discovery, SignInFailure> {
    let authority = &state.config.oidc.entra_authority;
    let issuer = settings.issuer(authority);
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let cached = state.discovery.get(&url, DISCOVERY_MAX_AGE).await;
    let fetched = cached.is_none();
    let document = match cached {
        Some(document) => document,
        None => fetch_json::<Value>(state, &url).await?,
    };
    let discovery: Discovery = serde_json::from_value(document.clone())
        .map_err(|e| SignInFailure::misconfigured(format!("discovery document at {url}: {e}")))?;
    // Entra's multi-tenant document publishes the template `…/{tenantid}/v2.0` instead.
    let expected = if settings.multi_tenant() {
        format!("{}/{{tenantid}}/v2.0", authority.trim_end_matches('/'))
    } else {
        issuer
    };
    if discovery.issuer != expected {
        return Err(fail(
            StatusCode::BAD_GATEWAY,
            "The sign-in provider is misconfigured.",
            format!(
                "discovery issuer {:?} is not {expected:?}",
                discovery.issuer
            ),
        ));
    }
    // Only a document that checked out is kept: a fixed provider works at once.
    if fetched {
        state.discovery.put(&url, document).await;
    }
    Ok(discovery)
}

/// A page to choose among the org's OIDC connections when the link names none.
fn choose_page(
    org: &orgs::Org,
    list: &[connections::Connection],
    return_to: Option<&str>,
) -> Response {
    let return_to: String =
        url::form_urlencoded::byte_serialize(return_to.unwrap_or("/").as_bytes()).collect();
    let links: Vec<String> = list
        .iter()
        .map(|c| {
            format!(
                "/oidc/{}/login?connection={}&return_to={return_to}",
                org.slug, c.id
            )
        })
        .collect();
    let names: Vec<String> = list.iter().map(|c| c.name.clone()).collect();
    let page = Choose {
        org: org.name.clone(),
        choices: names.into_iter().zip(links).collect(),
    };
    browser::Page::new(StatusCode::OK, page).into_response()
}

#[derive(askama::Template)]
#[template(path = "pages/choose.html")]
struct Choose {
    org: String,
    choices: Vec<(String, String)>,
}

fn redirect_uri(state: &AppState) -> String {
    crate::connections::oidc::redirect_uri(&state.config.public_base_url)
}

#[derive(Deserialize)]
struct LoginParams {
    /// Optional when the org has one enabled OIDC connection.
    connection: Option<i64>,
    return_to: Option<String>,
}

/// The org's enabled OIDC connections, when the sign-in link names none.
async fn enabled_connections(
    state: &AppState,
    slug: &str,
) -> Result<(orgs::Org, Vec<connections::Connection>), SignInFailure> {
    let mut tx = state.store.autocommit().await?;
    let org = orgs::by_slug(&mut tx, slug).await?.ok_or_else(|| {
        fail(
            StatusCode::NOT_FOUND,
            "This sign-in link is not valid.",
            format!("no org {slug:?}"),
        )
    })?;
    let list = connections::list(&mut tx, org.id)
        .await?
        .into_iter()
        .filter(|c| c.kind == connections::Kind::Oidc && c.enabled)
        .collect();
    Ok((org, list))
}

/// The one cookie that binds a sign-in to the browser that started it: a response obtained
/// in one browser cannot finish a sign-in in another (login CSRF).
fn binding_cookie(
    state: &AppState,
    state_token: &str,
) -> axum_extra::extract::cookie::Cookie<'static> {
    browser::cookies::make(
        &state.config,
        browser::cookies::SSO_BINDING,
        state_token.to_string(),
        Some(600),
        axum_extra::extract::cookie::SameSite::Lax,
    )
}

/// Audits a sign-in failure in the org's trail, with its precise reason.
async fn audit_failure(
    state: &AppState,
    org: &orgs::Org,
    connection: &connections::Connection,
    failure: &SignInFailure,
    request_id: Option<String>,
) -> Result<(), SignInFailure> {
    let actor = audit::Actor {
        user_id: None,
        label: format!("oidc connection {:?}", connection.name),
        request_id,
    };
    let event = audit::Event::new(org.id, "sso.login_failed", "connection", connection.id)
        .after(&serde_json::json!({ "reason": failure.reason, "protocol": "oidc" }));
    let mut tx = state.store.begin().await?;
    audit::record(&mut tx, &actor, event).await?;
    tx.commit().await?;
    Ok(())
}

async fn connection_of(
    state: &AppState,
    slug: &str,
    id: i64,
) -> Result<(orgs::Org, connections::Connection, Settings), SignInFailure> {
    let missing = || {
        fail(
            StatusCode::NOT_FOUND,
            "This sign-in link is not valid.",
            format!("no enabled OIDC connection {id} in org {slug:?}"),
        )
    };
    let mut tx = state.store.autocommit().await?;
    let org = orgs::by_slug(&mut tx, slug).await?.ok_or_else(missing)?;
    let connection = connections::require(&mut tx, org.id, id)
        .await
        .map_err(|_| missing())?;
    drop(tx);
    checked(org, connection)
}

/// An org's connection, as read, if it is an enabled OIDC connection; with its settings.
fn checked(
    org: orgs::Org,
    connection: connections::Connection,
) -> Result<(orgs::Org, connections::Connection, Settings), SignInFailure> {
    let id = connection.id;
    if connection.kind != connections::Kind::Oidc || !connection.enabled {
        return Err(fail(
            StatusCode::NOT_FOUND,
            "This sign-in link is not valid.",
            format!("no enabled OIDC connection {id} in org {:?}", org.slug),
        ));
    }
    let settings: Settings =
        serde_json::from_value(connection.settings.0.clone()).map_err(|e| {
            fail(
                StatusCode::BAD_GATEWAY,
                "The sign-in provider is misconfigured.",
                format!("connection {id} settings: {e}"),
            )
        })?;
    Ok((org, connection, settings))
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Query(params): Query<LoginParams>,
) -> Response {
    let result = async {
        if let Some(refused) = limiter::sign_in_start(&state, &headers, peer).await? {
            return Ok(refused);
        }
        let id = match params.connection {
            Some(id) => id,
            None => match enabled_connections(&state, &slug).await? {
                (_, list) if list.len() == 1 => list[0].id,
                (org, list) if list.is_empty() => {
                    return Err(fail(
                        StatusCode::NOT_FOUND,
                        "This organization does not sign in with OpenID Connect.",
                        format!("org {} has no enabled OIDC connection", org.slug),
                    ))
                }
                (org, list) => return Ok(choose_page(&org, &list, params.return_to.as_deref())),
            },
        };
        let (org, connection, settings) = connection_of(&state, &slug, id).await?;
        // From here the org is known: failures go to its audit trail too.
        let discovery = match discover(&state, &settings).await {
            Ok(discovery) => discovery,
            Err(failure) => {
                audit_failure(
                    &state,
                    &org,
                    &connection,
                    &failure,
                    RequestId::of(&headers).0,
                )
                .await?;
                return Err(failure);
            }
        };
        let state_token = secrets::generate("").plaintext;
        let nonce = secrets::generate("").plaintext;
        let verifier = secrets::generate("").plaintext;
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let pending = oidc_logins::PendingLogin {
            connection_id: connection.id,
            nonce: nonce.clone(),
            pkce_verifier: verifier,
            return_to: browser::safe_return(
                &state.config.public_base_url,
                params.return_to.as_deref(),
            ),
        };
        let mut tx = state.store.write_alone().await?;
        oidc_logins::create(
            &mut tx,
            &state_token,
            &pending,
            chrono::Duration::minutes(10),
        )
        .await?;
        tx.commit().await?;
        let mut url = check_destination(&state, &discovery.authorization_endpoint)?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &settings.client_id)
            .append_pair("redirect_uri", &redirect_uri(&state))
            .append_pair("scope", &settings.scopes().join(" "))
            .append_pair("state", &state_token)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("response_mode", "query");
        let binding = binding_cookie(&state, &state_token);
        Ok::<_, SignInFailure>(see_other(url.as_str(), vec![binding]))
    };
    result.await.unwrap_or_else(|f| failure_page(f, &headers))
}

#[derive(Deserialize)]
struct CallbackParams {
    state: Option<String>,
    code: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
    access_token: Option<String>,
}

async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    let request_id = RequestId::of(&headers).0;
    let result = async {
        let expired = || {
            fail(
                StatusCode::BAD_REQUEST,
                "This sign-in link has expired or was already used. Please start again.",
                "unknown, used or expired state",
            )
        };
        let state_token = params.state.as_deref().ok_or_else(expired)?;
        let mut tx = state.store.write_alone().await?;
        let pending = oidc_logins::consume(&mut tx, state_token).await?;
        tx.commit().await?;
        let pending = pending.ok_or_else(expired)?;
        let (org, connection, settings) = {
            let mut tx = state.store.autocommit().await?;
            let connection = connections::by_id(&mut tx, pending.connection_id)
                .await?
                .ok_or_else(expired)?;
            let org = orgs::by_id(&mut tx, connection.org_id)
                .await?
                .ok_or_else(expired)?;
            drop(tx);
            checked(org, connection)?
        };
        let finished = async {
            // The browser that started the sign-in must be the one finishing it.
            let bound = browser::cookies::read(&state.config, &headers, browser::cookies::SSO_BINDING)
                .is_some_and(|b| secrets::hash(&b) == secrets::hash(state_token));
            if !bound {
                return Err(fail(
                    StatusCode::FORBIDDEN,
                    "This sign-in was started in another browser. Please start again here.",
                    "the callback's state was not issued to this browser (no matching binding cookie): a sign-in started elsewhere, or login CSRF",
                ));
            }
            if let Some(error) = &params.error {
                // The provider's own refusal, e.g. Entra's AADSTS50105 (user not assigned).
                let described = params.error_description.as_deref().unwrap_or("no description");
                return Err(fail(
                    StatusCode::FORBIDDEN,
                    "Your identity provider did not sign you in. Ask your administrator.",
                    format!("the provider answered {error}: {described}"),
                ));
            }
            let code = params.code.as_deref().ok_or_else(|| {
                fail(
                    StatusCode::BAD_REQUEST,
                    "The sign-in answer was incomplete. Please start again.",
                    "callback without code",
                )
            })?;
            finish(
                &state,
                &org,
                &connection,
                &settings,
                Answer {
                    code,
                    iss: params.iss.as_deref(),
                },
                &pending,
                &headers,
            )
            .await
        }
        .await;
        if let Err(failure) = &finished {
            // The precise reason goes to the org's audit trail too, not only to the log.
            audit_failure(&state, &org, &connection, failure, request_id).await?;
        }
        finished
    };
    result.await.unwrap_or_else(|f| failure_page(f, &headers))
}

/// What the provider sent the browser back with: the code, and its name (RFC 9207).
struct Answer<'a> {
    code: &'a str,
    iss: Option<&'a str>,
}

/// Exchanges the code, validates the ID token, provisions, and starts the session.
async fn finish(
    state: &AppState,
    org: &orgs::Org,
    connection: &connections::Connection,
    settings: &Settings,
    answer: Answer<'_>,
    pending: &oidc_logins::PendingLogin,
    headers: &HeaderMap,
) -> Result<Response, SignInFailure> {
    let request_id = RequestId::of(headers).0;
    let discovery = discover(state, settings).await?;
    let code = answer.code;
    check_response_issuer(&discovery, answer.iss).map_err(|reason| {
        fail(
            StatusCode::FORBIDDEN,
            "The sign-in answer did not come from your organization's identity provider. Please start again.",
            reason,
        )
    })?;
    let misconfigured = |reason: String| {
        fail(
            StatusCode::BAD_GATEWAY,
            "The sign-in provider is misconfigured.",
            reason,
        )
    };
    let token_url = check_destination(state, &discovery.token_endpoint)?;
    let redirect = redirect_uri(state);
    let mut form: Vec<(&str, String)> = vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.into()),
        ("redirect_uri", redirect),
        ("client_id", settings.client_id.clone()),
        ("code_verifier", pending.pkce_verifier.clone()),
    ];
    // The client proves itself with its certificate when it has one, else with its secret.
    match (
        settings.client_key(&state.sealer),
        &settings.client_certificate,
    ) {
        (Some(key), Some(certificate)) => {
            let assertion = credential::assertion(
                &settings.client_id,
                &discovery.token_endpoint,
                &key,
                certificate,
            )
            .map_err(|e| misconfigured(format!("client assertion: {e}")))?;
            form.push(("client_assertion_type", credential::ASSERTION_TYPE.into()));
            form.push(("client_assertion", assertion));
        }
        _ => {
            let secret = settings.client_secret(&state.sealer).ok_or_else(|| {
                misconfigured("client credential missing or not readable with this key".into())
            })?;
            form.push(("client_secret", secret));
        }
    }
    let response = client(state)
        .post(token_url)
        .form(&form)
        .send()
        .await
        .map_err(|e| SignInFailure::from(outbound::explain("the token endpoint", &e)))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(fail(
            StatusCode::BAD_GATEWAY,
            "Your identity provider refused to complete the sign-in. Please start again.",
            format!("token endpoint answered {status}: {body}"),
        ));
    }
    let tokens: TokenResponse = response.json().await.map_err(|e| {
        fail(
            StatusCode::BAD_GATEWAY,
            "Your identity provider's answer could not be read.",
            format!("token response: {e}"),
        )
    })?;
    let raw = tokens.id_token.ok_or_else(|| {
        fail(
            StatusCode::BAD_GATEWAY,
            "Your identity provider's answer could not be read.",
            "no id_token in the token response",
        )
    })?;
    let (mut identity, overage) = validate(
        state,
        settings,
        &discovery,
        connection.id,
        &raw,
        &pending.nonce,
    )
    .await?;
    if overage {
        // Without its groups, reconciliation would strip this person's IdP-given teams.
        if !settings.graph_overage {
            return Err(fail(
                StatusCode::FORBIDDEN,
                "You are in too many groups for this sign-in to read them. Ask your administrator.",
                "group overage signalled and the connection does not ask Microsoft Graph (graph_overage)",
            ));
        }
        let access_token = tokens.access_token.as_deref().ok_or_else(|| {
            fail(
                StatusCode::BAD_GATEWAY,
                "Your groups could not be read. Please try again.",
                "group overage but no access token for Graph",
            )
        })?;
        let roles: Vec<IdpGroup> = identity
            .groups
            .drain(..)
            .filter(|g| g.id.is_none())
            .collect();
        identity.groups = graph_groups(state, access_token).await?;
        identity.groups.extend(roles);
    }

    let reference = request_id.clone().unwrap_or_else(|| "-".into());
    // A new sign-in replaces the browser's previous session. Read before the write
    // transaction; the session starts in the one that provisioned: one commit per sign-in.
    let previous = session::signed_in(state, headers)
        .await?
        .map(|s| s.session_id);
    match provisioning::provision_open(&state.store, &identity, Via::Sso, request_id).await {
        Ok(mut provisioned) => {
            let (cookie, _) = session::start(
                state,
                &mut provisioned.tx,
                provisioned.outcome.user_id,
                previous,
                store::credentials::Method::Sso,
            )
            .await?;
            let outcome = provisioned.commit().await?;
            crate::meter::sign_in("oidc", "success", "none");
            tracing::info!(org = %org.slug, user_id = outcome.user_id, "OIDC sign-in");
            let unbind = browser::cookies::removal(&state.config, browser::cookies::SSO_BINDING);
            Ok(see_other(&pending.return_to, vec![cookie, unbind]))
        }
        // The core has logged and audited its own refusal.
        Err(provisioning::Error::Refused(r)) => {
            crate::meter::sign_in("oidc", "refused", "policy");
            let text = format!("{} Reference: {reference}.", r.message);
            Ok(message(StatusCode::FORBIDDEN, "Sign-in refused", &text).into_response())
        }
        Err(provisioning::Error::Store(e)) => Err(e.into()),
    }
}

/// Validates an ID token and turns it into an external identity; also says whether the
/// token signals more groups than it carries (Entra "overage").
async fn validate(
    state: &AppState,
    settings: &Settings,
    discovery: &Discovery,
    connection_id: i64,
    raw: &str,
    nonce: &str,
) -> Result<(ExternalIdentity, bool), SignInFailure> {
    let refused = |reason: String| {
        fail(
            StatusCode::FORBIDDEN,
            "Your sign-in could not be verified. Please start again.",
            reason,
        )
    };
    let token: ProviderIdToken = raw.parse().map_err(|e| refused(unparsable(raw, &e)))?;
    let skew = chrono::Duration::seconds(state.config.oidc.clock_skew_seconds);
    let issuer =
        IssuerUrl::new(discovery.issuer.clone()).map_err(|e| refused(format!("issuer: {e}")))?;
    let verifier = |jwks: CoreJsonWebKeySet| {
        // A public-client verifier: with no client secret, an HMAC-signed token cannot verify.
        IdTokenVerifier::<openidconnect::core::CoreJsonWebKey>::new_public_client(
            ClientId::new(settings.client_id.clone()),
            issuer.clone(),
            jwks,
        )
        .set_allowed_algs(ALLOWED_ALGS)
        // A multi-tenant issuer depends on the token's tenant: checked below, once the
        // signature has made that tenant trustworthy.
        .require_issuer_match(!settings.multi_tenant())
        // Leeway for `exp`: judge it as if it were `skew` earlier.
        .set_time_fn(move || chrono::Utc::now() - skew)
        .set_issue_time_verifier_fn(move |iat| {
            if iat > chrono::Utc::now() + skew {
                Err(format!("issued in the future ({iat})"))
            } else {
                Ok(())
            }
        })
    };
    let expected_nonce = Nonce::new(nonce.to_string());
    let explain = |e: ClaimsVerificationError| {
        if let ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::DisallowedAlg(_),
        ) = &e
        {
            // The crate prints its allow-list in hash order; this says it in a fixed one.
            return refused(format!(
                "id_token refused: algorithm `{}` is not one of {}",
                header_alg(raw),
                allowed_algs()
            ));
        }
        // The precise cause (wrong key, …) is in the error's source.
        let cause = std::error::Error::source(&e)
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        refused(format!("id_token refused: {e}{cause}"))
    };
    let cached = keys(state, &discovery.jwks_uri, false).await?;
    let claims = match token.claims(&verifier(cached), &expected_nonce) {
        // Signed with a key we have not seen: the provider may have rolled its keys.
        Err(ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        )) => {
            let fresh = keys(state, &discovery.jwks_uri, true).await?;
            token
                .claims(&verifier(fresh), &expected_nonce)
                .map_err(explain)?
        }
        other => other.map_err(explain)?,
    };
    // `nbf`, which the crate does not read: a token is not accepted before its time.
    let payload = payload_of(raw).map_err(refused)?;
    if let Some(nbf) = payload.get("nbf").and_then(Value::as_i64) {
        let now = chrono::Utc::now();
        if nbf > (now + skew).timestamp() {
            let at = chrono::DateTime::from_timestamp(nbf, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| nbf.to_string());
            return Err(refused(format!(
                "id_token is not valid before {at} (nbf), {} s after this server's clock, which allows {} s of skew",
                nbf - now.timestamp(),
                skew.num_seconds()
            )));
        }
    }
    if let Some(azp) = claims.authorized_party() {
        if azp.as_str() != settings.client_id {
            return Err(refused(format!(
                "azp {:?} is not this client",
                azp.as_str()
            )));
        }
    }
    let extra = claims.additional_claims();
    let subject = match settings.preset {
        Preset::Entra => {
            let tid = extra.tid.as_deref().unwrap_or_default();
            if !settings.accepts_tenant(tid) {
                return Err(refused(format!(
                    "tenant {tid:?} is not the configured tenant or on the allow-list"
                )));
            }
            if settings.multi_tenant() {
                let expected = discovery.issuer.replace("{tenantid}", tid);
                if claims.issuer().as_str() != expected {
                    return Err(refused(format!(
                        "issuer {:?} is not {expected:?} for tenant {tid}",
                        claims.issuer().as_str()
                    )));
                }
            }
            let oid = extra
                .oid
                .as_deref()
                .filter(|o| !o.is_empty())
                .ok_or_else(|| refused("Entra token without oid".into()))?;
            format!("{tid}:{oid}")
        }
        Preset::Generic => claims.subject().as_str().to_string(),
    };
    // `_claim_sources` may point anywhere (even the retired graph.windows.net): it is never
    // followed; Graph is asked at the configured address instead.
    let overage = extra._claim_names.is_some() || extra.hasgroups.is_some();
    let mut email = claims
        .email()
        .map(|e| e.as_str().to_string())
        .or_else(|| claims.preferred_username().map(|u| u.as_str().to_string()));
    let mut display_name = claims
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_string());
    let mut groups: Vec<IdpGroup> = extra
        .groups
        .iter()
        .flatten()
        .map(|g| IdpGroup {
            id: Some(g.clone()),
            name: None,
        })
        .collect();
    if let (Preset::Generic, Some(names)) = (settings.preset, &settings.claims) {
        // The signature has verified the payload: read the configured claims from it.
        let text = |claim: &str| {
            payload
                .get(claim)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        if let Some(claim) = &names.email {
            email = text(claim);
        }
        if let Some(claim) = &names.name {
            display_name = text(claim);
        }
        if let Some(claim) = &names.groups {
            groups = payload
                .get(claim)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|g| IdpGroup {
                    id: None,
                    name: Some(g.to_string()),
                })
                .collect();
        }
    } else if settings.preset == Preset::Generic {
        // Generic providers send group names (Okta, Keycloak, Google).
        for group in &mut groups {
            group.name = group.id.take();
        }
    }
    // App roles map to teams like groups, by name.
    groups.extend(extra.roles.iter().flatten().map(|r| IdpGroup {
        id: None,
        name: Some(r.clone()),
    }));
    Ok((
        ExternalIdentity {
            connection_id,
            subject,
            email,
            email_verified: claims.email_verified().unwrap_or(false),
            display_name,
            given_name: claims
                .given_name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_string()),
            family_name: claims
                .family_name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_string()),
            groups,
        },
        overage,
    ))
}

/// Why a token that does not parse as an ID token is refused: a missing required claim by
/// name, else the parser's words. Read from the unverified payload, only to explain.
fn unparsable(raw: &str, err: &impl std::fmt::Display) -> String {
    if let Ok(payload) = payload_of(raw) {
        for claim in ["iss", "sub", "aud", "exp", "iat"] {
            if !payload.contains_key(claim) {
                return format!("id_token lacks the required claim `{claim}`");
            }
        }
    }
    format!("id_token is not a JWT: {err}")
}

/// The `alg` of a JWT's header, or `?`.
fn header_alg(raw: &str) -> String {
    raw.split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')).ok())
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .and_then(|h| h["alg"].as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// [`ALLOWED_ALGS`] by name, in their fixed order.
fn allowed_algs() -> String {
    let names: Vec<String> = ALLOWED_ALGS
        .iter()
        .map(|a| {
            serde_json::to_value(a)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
        .collect();
    names.join(", ")
}

/// The claims of a JWT, decoded. Trusted only once the signature has been verified.
fn payload_of(raw: &str) -> Result<serde_json::Map<String, Value>, String> {
    let payload = raw.split('.').nth(1).ok_or("id_token has no payload")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|e| format!("id_token payload: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("id_token payload: {e}"))
}

/// The person's groups (transitive, with names) from Microsoft Graph, page by page. Paging
/// links must stay under the configured Graph address.
async fn graph_groups(
    state: &AppState,
    access_token: &str,
) -> Result<Vec<IdpGroup>, SignInFailure> {
    #[derive(Deserialize)]
    struct Group {
        id: String,
        #[serde(rename = "displayName")]
        display_name: Option<String>,
    }
    #[derive(Deserialize)]
    struct Page {
        value: Vec<Group>,
        #[serde(rename = "@odata.nextLink")]
        next: Option<String>,
    }
    let unreadable = |reason: String| {
        fail(
            StatusCode::BAD_GATEWAY,
            "Your groups could not be read. Please try again.",
            reason,
        )
    };
    let base = state
        .config
        .oidc
        .graph_base
        .trim_end_matches('/')
        .to_string();
    let mut url = format!(
        "{base}/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id,displayName&$top=999"
    );
    let mut groups = Vec::new();
    // 100 pages of 999: far beyond any real directory, and a bound on a looping server.
    for _ in 0..100 {
        let target = check_destination(state, &url)?;
        let response = client(state)
            .get(target)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| unreadable(format!("Graph: {e}")))?;
        if !response.status().is_success() {
            return Err(unreadable(format!("Graph answered {}", response.status())));
        }
        let page: Page = response
            .json()
            .await
            .map_err(|e| unreadable(format!("Graph page: {e}")))?;
        groups.extend(page.value.into_iter().map(|g| IdpGroup {
            id: Some(g.id),
            name: g.display_name,
        }));
        match page.next {
            None => return Ok(groups),
            Some(next) if next.starts_with(&format!("{base}/")) => url = next,
            Some(next) => {
                return Err(unreadable(format!(
                    "Graph paging link {next:?} leaves {base}"
                )))
            }
        }
    }
    Err(unreadable("Graph paging did not end".into()))
}

#[cfg(test)]
mod tests {
    use super::{check_response_issuer, Discovery};

    fn discovery(issuer: &str, advertised: bool) -> Discovery {
        Discovery {
            issuer: issuer.into(),
            authorization_endpoint: String::new(),
            token_endpoint: String::new(),
            jwks_uri: String::new(),
            authorization_response_iss_parameter_supported: advertised,
        }
    }

    #[test]
    fn response_issuers_follow_rfc_9207() {
        let entra = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0";
        assert!(check_response_issuer(&discovery(entra, false), None).is_ok());
        assert!(check_response_issuer(&discovery(entra, true), None).is_err());
        assert!(check_response_issuer(&discovery(entra, true), Some(entra)).is_ok());
        let err = check_response_issuer(&discovery(entra, false), Some("https://evil.example"))
            .unwrap_err();
        assert!(err.contains("evil.example") && err.contains(entra), "{err}");
        let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
        assert!(check_response_issuer(&discovery(template, true), Some(entra)).is_ok());
        for wrong in [
            "https://login.microsoftonline.com//v2.0",
            "https://login.microsoftonline.com/a/b/v2.0",
            "https://evil.example/9188040d/v2.0",
        ] {
            assert!(
                check_response_issuer(&discovery(template, true), Some(wrong)).is_err(),
                "{wrong}"
            );
        }
    }
}
