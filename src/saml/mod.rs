//! The SAML 2.0 front door (Okta): rollcall as a service provider, per org.
//!
//! - `GET /saml/{org}/metadata`: the SP metadata to paste into the IdP (entity ID and ACS);
//! - `GET /saml/{org}/login?connection=…&return_to=…`: an AuthnRequest over the
//!   HTTP-Redirect binding, its ID kept in the database;
//! - `POST /saml/{org}/acs`: the response, checked in [`acs`] (read that module top to
//!   bottom for every check), then the person goes through the provisioning core and gets a
//!   session.

pub mod acs;
pub mod sp_key;

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Form, Router,
};
use serde::Deserialize;

use crate::{
    browser::{self, limiter, message, see_other, session, CheckedForm, CsrfForm, SignInFailure},
    connections::saml::{Settings, REDIRECT_BINDING},
    provisioning::{self, Via},
    request::RequestId,
    secrets,
    state::AppState,
    store::{self, audit, connections, orgs, saml},
};

/// How long a started sign-in may take at the IdP.
const REQUEST_TTL_MINUTES: i64 = 10;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/saml/{org}/metadata", get(metadata))
        .route("/saml/{org}/login", get(login))
        .route("/saml/{org}/acs", post(acs_post))
        .route("/saml/{org}/finish", get(finish))
        .route("/saml/{org}/logout", post(logout))
        .route("/saml/{org}/slo", get(slo_return))
}

fn failure_page(failure: SignInFailure, headers: &HeaderMap) -> Response {
    crate::meter::sign_in("saml", "refused", failure.kind);
    failure.page("SAML sign-in", &RequestId::of(headers))
}

/// rollcall's entity ID and ACS URL for an org.
pub fn endpoints(state: &AppState, org_slug: &str) -> acs::Endpoints {
    acs::Endpoints::of(&state.config.public_base_url, org_slug)
}

async fn org_by_slug(state: &AppState, slug: &str) -> Result<orgs::Org, SignInFailure> {
    let mut tx = state.store.autocommit().await?;
    orgs::by_slug(&mut tx, slug).await?.ok_or_else(|| {
        SignInFailure::new(
            StatusCode::NOT_FOUND,
            "This sign-in link is not valid.",
            format!("no org {slug:?}"),
        )
    })
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The SP metadata an admin pastes into Okta (or gives Okta's "upload metadata").
async fn metadata(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
) -> Response {
    let org = match org_by_slug(&state, &slug).await {
        Ok(org) => org,
        Err(f) => return failure_page(f, &headers),
    };
    let ends = endpoints(&state, &org.slug);
    let key = match sp_key::for_org(&state, org.id, &ends.entity_id).await {
        Ok(key) => key,
        Err(f) => return failure_page(f, &headers),
    };
    // The metadata is the org's; it says requests are signed when a connection signs them.
    let signs = match signs_requests(&state, &org).await {
        Ok(signs) => signs,
        Err(f) => return failure_page(f, &headers),
    };
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="{signs}" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{certificate}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:KeyDescriptor use="encryption"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>{certificate}</ds:X509Certificate></ds:X509Data></ds:KeyInfo><md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes128-gcm"/><md:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{slo}"/>
    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:persistent</md:NameIDFormat>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity = xml_escape(&ends.entity_id),
        acs = xml_escape(&ends.acs_url),
        certificate = key.certificate_base64(),
        slo = xml_escape(&ends.slo_url),
    );
    let mut response = (StatusCode::OK, xml).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/samlmetadata+xml"),
    );
    response
}

async fn signs_requests(state: &AppState, org: &orgs::Org) -> Result<bool, SignInFailure> {
    let mut tx = state.store.autocommit().await?;
    Ok(connections::list(&mut tx, org.id).await?.iter().any(|c| {
        c.kind == connections::Kind::Saml
            && Settings::from_value(&c.settings.0).is_ok_and(|s| s.sign_requests)
    }))
}

#[derive(Deserialize)]
struct LoginParams {
    connection: Option<i64>,
    return_to: Option<String>,
}

/// The org's SAML connection: the one named, or its only enabled one.
async fn saml_connection(
    state: &AppState,
    org: &orgs::Org,
    id: Option<i64>,
) -> Result<(connections::Connection, Settings), SignInFailure> {
    let missing = |why: String| {
        SignInFailure::new(
            StatusCode::NOT_FOUND,
            "This sign-in link is not valid.",
            why,
        )
    };
    let mut tx = state.store.autocommit().await?;
    let connection = match id {
        Some(id) => connections::by_id(&mut tx, id)
            .await?
            .filter(|c| c.org_id == org.id && c.kind == connections::Kind::Saml)
            .ok_or_else(|| missing(format!("no SAML connection {id} in org {}", org.slug)))?,
        None => {
            let all: Vec<_> = connections::list(&mut tx, org.id)
                .await?
                .into_iter()
                .filter(|c| c.kind == connections::Kind::Saml && c.enabled)
                .collect();
            match <[_; 1]>::try_from(all) {
                Ok([only]) => only,
                Err(all) => {
                    return Err(missing(format!(
                        "org {} has {} enabled SAML connections; name one with ?connection=",
                        org.slug,
                        all.len()
                    )))
                }
            }
        }
    };
    if !connection.enabled {
        return Err(SignInFailure::forbidden(
            "This sign-in method is turned off. Ask an administrator of your organization.",
            format!("connection {} is disabled", connection.id),
        ));
    }
    let settings =
        Settings::from_value(&connection.settings.0).map_err(SignInFailure::misconfigured)?;
    Ok((connection, settings))
}

/// SP-initiated sign-in: an AuthnRequest to the IdP over the HTTP-Redirect binding.
async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(slug): Path<String>,
    Query(params): Query<LoginParams>,
    headers: HeaderMap,
) -> Response {
    let started = async {
        if let Some(refused) = limiter::sign_in_start(&state, &headers, peer).await? {
            return Ok(refused);
        }
        let org = org_by_slug(&state, &slug).await?;
        let (connection, settings) = saml_connection(&state, &org, params.connection).await?;
        let idp = settings
            .idp()
            .map_err(SignInFailure::misconfigured)?
            .ok_or_else(|| {
                SignInFailure::misconfigured("the connection has no IdP metadata yet")
            })?;
        let ends = endpoints(&state, &org.slug);
        let sp = samael::service_provider::ServiceProvider {
            entity_id: Some(ends.entity_id.clone()),
            acs_url: Some(ends.acs_url.clone()),
            idp_metadata: idp.metadata.clone(),
            ..Default::default()
        };
        let mut request = sp
            .make_authentication_request(&idp.sso_url)
            .map_err(|e| SignInFailure::misconfigured(format!("AuthnRequest: {e}")))?;
        // samael's own IDs carry 32 random bits; the ID is what InResponseTo must echo, so
        // it gets as many as a session secret.
        request.id = format!("id-{}", secrets::generate("").hash);
        let relay_state = secrets::generate("").plaintext;
        let binding = secrets::generate("").plaintext;
        let url = if settings.sign_requests {
            let key = sp_key::for_org(&state, org.id, &ends.entity_id).await?;
            request.signed_redirect(&relay_state, &key.private_key)
        } else {
            request.redirect(&relay_state)
        }
        .map_err(|e| SignInFailure::misconfigured(format!("AuthnRequest: {e}")))?
        .ok_or_else(|| SignInFailure::misconfigured("the IdP has no SSO URL"))?;
        // Read before the write: on SQLite a writer holds the write lock.
        let replaces_session_id = session::signed_in(&state, &headers)
            .await?
            .map(|s| s.session_id);
        let mut tx = state.store.write_alone().await?;
        saml::create_request(
            &mut tx,
            &saml::PendingRequest {
                org_id: org.id,
                connection_id: connection.id,
                request_id: request.id.clone(),
                return_to: browser::safe_return(
                    &state.config.public_base_url,
                    params.return_to.as_deref(),
                ),
                expires_at: store::now() + chrono::Duration::minutes(REQUEST_TTL_MINUTES),
                consumed_at: None,
                replaces_session_id,
                binding_hash: Some(secrets::hash(&binding)),
            },
            &relay_state,
        )
        .await?;
        tx.commit().await?;
        let bind = browser::cookies::make(
            &state.config,
            browser::cookies::SAML_BINDING,
            binding,
            Some(REQUEST_TTL_MINUTES * 60),
            axum_extra::extract::cookie::SameSite::Lax,
        );
        Ok::<_, SignInFailure>(see_other(url.as_str(), vec![bind]))
    };
    started.await.unwrap_or_else(|f| failure_page(f, &headers))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: String,
    relay_state: Option<String>,
}

async fn acs_post(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    form: Result<Form<AcsForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let request_id = RequestId::of(&headers).0;
    let result = async {
        if let Some(refused) = limiter::sign_in_post(&state, &headers, peer).await? {
            return Ok(refused);
        }
        let org = org_by_slug(&state, &slug).await?;
        let Form(form) = form.map_err(|e| {
            SignInFailure::new(
                // 413 for a body over the server's limit, 400 or 415 for the rest.
                e.status(),
                "Your sign-in could not be verified. Please start again.",
                format!("ACS form: {e}"),
            )
        })?;
        let checked = consume(&state, &org, &form).await;
        let (connection, identity, return_to, saml_session, request, mut tx) = match checked {
            Ok(ok) => ok,
            Err((Some(connection), failure)) => {
                audit_failure(&state, &org, &connection, &failure, request_id.clone()).await?;
                return Err(failure);
            }
            // Neither bound nor verified: the log has it, the org's trail does not.
            Err((None, failure)) => return Err(failure),
        };
        let Some(request) = request.as_ref().filter(|r| r.binding_hash.is_some()) else {
            // IdP-initiated (an opt-in: it cannot be bound to a browser), or a request made
            // before bindings existed: signed in here.
            let replaces = request.as_ref().and_then(|r| r.replaces_session_id);
            tx.commit().await?;
            return complete(
                &state,
                &org,
                &connection,
                &identity,
                &return_to,
                &saml_session,
                replaces,
                request_id,
                Vec::new(),
            )
            .await;
        };
        // This POST comes from the IdP's page, so it carries no SameSite=Lax cookie: the
        // verified outcome waits for the browser at a same-site GET, which shows whether
        // it is the browser that started the sign-in.
        let data = serde_json::to_string(&(&identity, &saml_session))
            .map_err(|e| store::Error::Internal(format!("SAML outcome: {e}")))?;
        let token = secrets::generate("").plaintext;
        // In the transaction that used the request: it is used exactly when its outcome
        // waits for the browser, and one commit does both.
        saml::await_finish(&mut tx, &request.request_id, &token, &data).await?;
        tx.commit().await?;
        Ok(see_other(
            &format!("/saml/{}/finish?token={token}", org.slug),
            Vec::new(),
        ))
    };
    result.await.unwrap_or_else(|f| failure_page(f, &headers))
}

/// Provisions a verified identity and starts the session, ending the one the sign-in
/// replaces. The core refuses what the org's rules do not allow (and audits it).
#[allow(clippy::too_many_arguments)]
async fn complete(
    state: &AppState,
    org: &orgs::Org,
    connection: &connections::Connection,
    identity: &provisioning::ExternalIdentity,
    return_to: &str,
    saml_session: &saml::SamlSession,
    replaces: Option<i64>,
    request_id: Option<String>,
    mut cookies: Vec<axum_extra::extract::cookie::Cookie<'static>>,
) -> Result<Response, SignInFailure> {
    let reference = request_id.clone().unwrap_or_else(|| "-".into());
    // The session starts in the transaction that provisioned: one commit per sign-in.
    match provisioning::provision_open(&state.store, identity, Via::Sso, request_id).await {
        Ok(mut provisioned) => {
            let (cookie, secret) = session::start(
                state,
                &mut provisioned.tx,
                provisioned.outcome.user_id,
                replaces,
                store::credentials::Method::Sso,
            )
            .await?;
            let expires =
                chrono::Utc::now() + chrono::Duration::hours(state.config.sessions.ttl_hours);
            saml::record_session(&mut provisioned.tx, &secret, saml_session, expires).await?;
            let outcome = provisioned.commit().await?;
            crate::meter::sign_in("saml", "success", "none");
            tracing::info!(org = %org.slug, connection = connection.id, user_id = outcome.user_id, "SAML sign-in");
            cookies.push(cookie);
            Ok(see_other(return_to, cookies))
        }
        // The core has logged and audited its own refusal.
        Err(provisioning::Error::Refused(r)) => {
            crate::meter::sign_in("saml", "refused", "policy");
            let text = format!("{} Reference: {reference}.", r.message);
            Ok(message(StatusCode::FORBIDDEN, "Sign-in refused", &text).into_response())
        }
        Err(provisioning::Error::Store(e)) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct FinishParams {
    token: Option<String>,
}

/// The browser's step after the ACS: signs in only the browser whose binding cookie is the
/// one set when this sign-in started. A response carried to another browser (an attacker's
/// own sign-in, posted from the attacker's page: login CSRF) stops here.
async fn finish(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(params): Query<FinishParams>,
    headers: HeaderMap,
) -> Response {
    let request_id = RequestId::of(&headers).0;
    let result = async {
        let org = org_by_slug(&state, &slug).await?;
        let expired = || {
            SignInFailure::new(
                StatusCode::BAD_REQUEST,
                "This sign-in link has expired or was already used. Please start again.",
                "unknown, used or expired SAML finish token",
            )
        };
        let token = params
            .token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(expired)?;
        let mut tx = state.store.begin().await?;
        let taken = saml::take_finish(&mut tx, token).await?;
        tx.commit().await?;
        let taken = taken.filter(|t| t.org_id == org.id).ok_or_else(expired)?;
        let connection = {
            let mut tx = state.store.autocommit().await?;
            connections::by_id(&mut tx, taken.connection_id)
                .await?
                .ok_or_else(|| SignInFailure::misconfigured("the connection was deleted"))?
        };
        let cookie =
            browser::cookies::read(&state.config, &headers, browser::cookies::SAML_BINDING);
        let bound = match (&cookie, &taken.binding_hash) {
            (Some(cookie), Some(expected)) => {
                secrets::constant_time_eq(secrets::hash(cookie).as_bytes(), expected.as_bytes())
            }
            _ => false,
        };
        if !bound {
            let failure = SignInFailure::forbidden(
                "This sign-in was started in another browser. Please start again here.",
                format!(
                    "request {}: the response was verified, but the browser finishing the sign-in is not the one that started it ({}): a sign-in carried to another browser, or login CSRF",
                    taken.request_id,
                    if cookie.is_some() { "another sign-in's binding cookie" } else { "no binding cookie" }
                ),
            );
            audit_failure(&state, &org, &connection, &failure, request_id.clone()).await?;
            return Err(failure);
        }
        let (identity, saml_session): (provisioning::ExternalIdentity, saml::SamlSession) = taken
            .finish_data
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .ok_or_else(expired)?;
        let unbind = browser::cookies::removal(&state.config, browser::cookies::SAML_BINDING);
        complete(
            &state,
            &org,
            &connection,
            &identity,
            &taken.return_to,
            &saml_session,
            taken.replaces_session_id,
            request_id,
            vec![unbind],
        )
        .await
    };
    result.await.unwrap_or_else(|f| failure_page(f, &headers))
}

/// Every check of [`acs`], in order. A failure comes with the connection to audit it
/// against, or none: only a response bound to a sign-in rollcall started, or one whose
/// signature verified, reaches the org's audit trail. Anyone can post junk to an ACS; that
/// is logged, and never fills an org's trail. What passed comes with the open transaction
/// that used the request and recorded the assertion, for the caller to finish and commit.
async fn consume(
    state: &AppState,
    org: &orgs::Org,
    form: &AcsForm,
) -> Result<
    (
        connections::Connection,
        provisioning::ExternalIdentity,
        String,
        saml::SamlSession,
        Option<saml::PendingRequest>,
        store::Tx,
    ),
    (Option<connections::Connection>, SignInFailure),
> {
    // Read once: the sign-in the RelayState names, and its connection when it is this
    // org's. Bound: the RelayState names a sign-in of this org that rollcall started.
    let (found, bound) = async {
        let Some(relay) = form.relay_state.as_deref().filter(|r| !r.is_empty()) else {
            return Ok((None, None));
        };
        let mut tx = state.store.autocommit().await?;
        let found = saml::request_by_relay(&mut tx, relay).await?;
        let bound = match &found {
            Some(r) if r.org_id == org.id => connections::by_id(&mut tx, r.connection_id).await?,
            _ => None,
        };
        Ok((found, bound))
    }
    .await
    .map_err(|e: store::Error| (None, e.into()))?;
    let early = |f: SignInFailure| (bound.clone(), f);
    let xml = acs::decode(&form.saml_response).map_err(early)?;
    // Before the transaction: making the key pair writes in a transaction of its own.
    let key = if acs::is_encrypted(&xml) {
        acs::check_encryption(&xml).map_err(early)?;
        let entity_id = endpoints(state, &org.slug).entity_id;
        Some(
            sp_key::for_org(state, org.id, &entity_id)
                .await
                .map_err(early)?
                .private_key,
        )
    } else {
        None
    };
    // Reads first, and the signature checked outside any write transaction: on SQLite a
    // write transaction holds the database's one write lock, which no sign-in should hold
    // while it verifies XML. What must happen once (the request used, the assertion
    // recorded) is a conditional write afterwards, so two racing posts still cannot both
    // pass.
    let request = acs::request_for(&state.store, org, found)
        .await
        .map_err(early)?;
    let connection = match &request {
        // A request of this org: its connection is the one read with it.
        Some(_) => bound
            .clone()
            .ok_or_else(|| early(SignInFailure::misconfigured("the connection was deleted")))?,
        None => {
            let issuer = acs::claimed_issuer(&xml);
            let mut read = state
                .store
                .autocommit()
                .await
                .map_err(|e| early(e.into()))?;
            idp_initiated_connection(&mut read, org, issuer.as_deref())
                .await
                .map_err(|e| early(e.into()))?
                .ok_or_else(|| early(acs::unsolicited(issuer.as_deref())))?
        }
    };
    // An IdP-initiated response names its connection by an issuer nobody has verified yet:
    // its failures are audited only once the signature holds.
    let unverified = |f: SignInFailure| (bound.clone(), f);
    let with = |f: SignInFailure| (Some(connection.clone()), f);
    if !connection.enabled {
        return Err(unverified(SignInFailure::forbidden(
            "This sign-in method is turned off. Ask an administrator of your organization.",
            format!("connection {} is disabled", connection.id),
        )));
    }
    let settings = Settings::from_value(&connection.settings.0)
        .map_err(|e| unverified(SignInFailure::misconfigured(e)))?;
    let ends = endpoints(state, &org.slug);
    let assertion =
        acs::verify(&xml, &settings, &ends, request.as_ref(), key).map_err(unverified)?;
    let mut tx = state.store.begin().await.map_err(|e| with(e.into()))?;
    acs::use_once(
        &mut tx,
        &connection,
        request.as_ref(),
        &assertion,
        chrono::Duration::seconds(settings.clock_skew_seconds),
    )
    .await
    .map_err(with)?;
    let identity = acs::identity(&assertion, &settings, connection.id).map_err(with)?;
    let saml_session = saml::SamlSession {
        org_id: org.id,
        connection_id: connection.id,
        name_id: identity.subject.clone(),
        name_id_format: assertion
            .subject
            .as_ref()
            .and_then(|s| s.name_id.as_ref())
            .and_then(|n| n.format.clone()),
        session_index: assertion
            .authn_statements
            .iter()
            .flatten()
            .find_map(|s| s.session_index.clone()),
    };
    let return_to = match &request {
        Some(request) => request.return_to.clone(),
        // Okta may send a default RelayState with an IdP-initiated sign-in: a path here.
        None => browser::safe_return(&state.config.public_base_url, form.relay_state.as_deref()),
    };
    Ok((connection, identity, return_to, saml_session, request, tx))
}

/// The org's enabled SAML connection that accepts IdP-initiated sign-ins from `issuer`.
async fn idp_initiated_connection(
    tx: &mut store::Tx,
    org: &orgs::Org,
    issuer: Option<&str>,
) -> Result<Option<connections::Connection>, store::Error> {
    let Some(issuer) = issuer else {
        return Ok(None);
    };
    Ok(connections::list(tx, org.id).await?.into_iter().find(|c| {
        c.kind == connections::Kind::Saml
            && c.enabled
            && Settings::from_value(&c.settings.0).is_ok_and(|s| {
                s.allow_idp_initiated
                    && s.idp()
                        .ok()
                        .flatten()
                        .is_some_and(|idp| idp.entity_id == issuer)
            })
    }))
}

/// The precise reason goes to the org's audit trail too, not only to the log.
async fn audit_failure(
    state: &AppState,
    org: &orgs::Org,
    connection: &connections::Connection,
    failure: &SignInFailure,
    request_id: Option<String>,
) -> Result<(), SignInFailure> {
    let actor = audit::Actor {
        user_id: None,
        label: format!("saml connection {:?}", connection.name),
        request_id,
    };
    let event = audit::Event::new(org.id, "sso.login_failed", "connection", connection.id)
        .after(&serde_json::json!({ "reason": failure.reason, "protocol": "saml" }));
    let mut tx = state.store.begin().await?;
    audit::record(&mut tx, &actor, event).await?;
    tx.commit().await?;
    Ok(())
}

/// SP-initiated Single Logout: the rollcall session ends at once; when the person signed in
/// through a connection whose IdP publishes a logout endpoint, the browser goes on there
/// with a signed LogoutRequest naming the IdP's session, and comes back to `/saml/{org}/slo`.
async fn logout(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm<CsrfForm>,
) -> Response {
    let result = async {
        let org = org_by_slug(&state, &slug).await?;
        let mut to = browser::safe_return(
            &state.config.public_base_url,
            form.return_to.as_deref().or(Some("/login")),
        );
        if let Some(signed) = session::signed_in(&state, &headers).await? {
            let mut tx = state.store.begin().await?;
            store::credentials::revoke_session(&mut tx, signed.session_id).await?;
            let saml_session = saml::take_session(&mut tx, &signed.secret).await?;
            tx.commit().await?;
            if let Some(session) = saml_session.filter(|s| s.org_id == org.id) {
                if let Some(url) = logout_request(&state, &org, &session).await? {
                    to = url;
                }
            }
        }
        Ok::<_, SignInFailure>(see_other(&to, vec![session::end_cookie(&state.config)]))
    };
    result.await.unwrap_or_else(|f| failure_page(f, &headers))
}

/// The IdP's LogoutRequest URL (HTTP-Redirect binding, signed with the org's SP key), or
/// `None` when its metadata names no logout endpoint.
async fn logout_request(
    state: &AppState,
    org: &orgs::Org,
    session: &saml::SamlSession,
) -> Result<Option<String>, SignInFailure> {
    use samael::traits::ToXml;
    use std::io::Write;

    let mut tx = state.store.autocommit().await?;
    let Some(connection) = connections::by_id(&mut tx, session.connection_id).await? else {
        return Ok(None);
    };
    drop(tx);
    let settings =
        Settings::from_value(&connection.settings.0).map_err(SignInFailure::misconfigured)?;
    let Some(idp) = settings.idp().map_err(SignInFailure::misconfigured)? else {
        return Ok(None);
    };
    let sp = samael::service_provider::ServiceProvider {
        idp_metadata: idp.metadata.clone(),
        ..Default::default()
    };
    let Some(destination) = sp.slo_binding_location(REDIRECT_BINDING) else {
        return Ok(None);
    };
    let ends = endpoints(state, &org.slug);
    let request = samael::schema::LogoutRequest {
        id: Some(format!("id-{}", secrets::generate("").hash)),
        version: Some("2.0".into()),
        issue_instant: Some(chrono::Utc::now()),
        destination: Some(destination.clone()),
        issuer: Some(samael::schema::Issuer {
            value: Some(ends.entity_id.clone()),
            ..Default::default()
        }),
        signature: None,
        session_index: session.session_index.clone(),
        name_id: Some(samael::schema::NameID {
            format: session.name_id_format.clone(),
            value: session.name_id.clone(),
        }),
    };
    let xml = request
        .to_string()
        .map_err(|e| SignInFailure::misconfigured(format!("LogoutRequest: {e}")))?;
    let mut deflated = Vec::new();
    {
        let mut encoder =
            flate2::write::DeflateEncoder::new(&mut deflated, flate2::Compression::default());
        encoder
            .write_all(xml.as_bytes())
            .map_err(|e| SignInFailure::misconfigured(format!("LogoutRequest: {e}")))?;
    }
    let mut url = reqwest::Url::parse(&destination)
        .map_err(|e| SignInFailure::misconfigured(format!("SLO URL {destination:?}: {e}")))?;
    url.query_pairs_mut().append_pair(
        "SAMLRequest",
        &base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &deflated),
    );
    // IdPs that support SLO require it signed (Okta does).
    let key = sp_key::for_org(state, org.id, &ends.entity_id).await?;
    let signed = samael::crypto::sign_url(url, &key.private_key)
        .map_err(|e| SignInFailure::misconfigured(format!("signing the LogoutRequest: {e}")))?;
    Ok(Some(signed.to_string()))
}

/// Where the IdP sends the browser back after Single Logout: the rollcall session ended
/// before the browser left, so there is nothing to check here.
async fn slo_return() -> Response {
    see_other("/login", Vec::new())
}
