//! A local stand-in for Microsoft Entra ID, and the OIDC sign-in tests that use it.
//!
//! The stand-in serves Entra's discovery document, a JWKS and a token endpoint (checking the
//! client secret and the PKCE verifier), and signs real RS256 ID tokens with the keys in
//! idp-fixtures/azure. Tests play the browser and the person at the authorize step, and can
//! tell the stand-in to misbehave the way attackers and broken providers do.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Path, State},
    routing::{get, post},
    Form, Json, Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use openidconnect::{
    core::{CoreHmacKey, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey},
    Audience, EndUserEmail, EndUserUsername, IdTokenClaims, IssuerUrl, JsonWebKeyId, Nonce,
    PrivateSigningKey, StandardClaims, SubjectIdentifier,
};
use reqwest::StatusCode;
use rollcall::oidc::{ExtraClaims, ProviderIdToken};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::{Backend, Browser, PageResponse, TestApp};

pub const TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
pub const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
pub const CLIENT_SECRET: &str = "stand-in-client-secret";
const ENG_GROUP: &str = "0b6bd1d4-2c43-4f8e-9c8e-3a3c5b0f7e21";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/idp-fixtures/azure/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// Who signs in at the stand-in, and how the token about them should (mis)behave.
#[derive(Clone)]
pub struct Person {
    /// The person's tenant; None is the test tenant.
    pub tenant: Option<String>,
    pub oid: String,
    pub email: Option<String>,
    pub preferred_username: Option<String>,
    pub groups: Vec<String>,
    pub tamper: Tamper,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tamper {
    None,
    AttackerKey,
    AlgNone,
    Hs256WithClientSecret,
    WrongIssuer,
    WrongAudience,
    Expired,
    WrongNonce,
    OtherTenant,
    OtherAzp,
    GroupOverage,
    /// Overage, and Graph's paging link points at another host.
    GraphLeavesGraph,
    /// Signed without a `kid` in the header.
    NoKid,
    /// Properly signed, but without the `aud` / `iat` / `sub` claim.
    MissingAud,
    MissingIat,
    MissingSub,
    /// Not valid before an hour from now (`nbf`).
    FutureNbf,
    /// Issued an hour from now.
    FutureIat,
    /// Signed ES256 with the published EC key: valid.
    Es256,
    /// Signed ES256, with the signature corrupted.
    Es256BadSignature,
}

struct Issued {
    nonce: String,
    challenge: String,
    person: Person,
}

#[derive(Default)]
struct Inner {
    codes: HashMap<String, Issued>,
    /// The kid and fixture the stand-in signs with now; only this key is published, so a
    /// rotation is seen only by refreshing the keys.
    current: (String, String),
    /// Serve discovery with another issuer than the one the document is for.
    wrong_discovery_issuer: bool,
    /// Access token → (the person's groups, whether Graph's paging should leave Graph).
    access_tokens: HashMap<String, (Vec<String>, bool)>,
    /// Publish both keys, not only the current one.
    publish_both_keys: bool,
    /// Answer discovery with a redirect elsewhere.
    redirect_discovery: bool,
    /// Who signs in at the next authorize request.
    next_person: Option<Person>,
    /// How many times discovery was asked for.
    discovery_fetches: usize,
    /// RFC 9207: advertise the `iss` response parameter, and what to send as it.
    iss: IssMode,
}

/// How the stand-in does RFC 9207's `iss` (Entra itself does not send it yet).
#[derive(Default, Clone, Copy, PartialEq)]
pub enum IssMode {
    #[default]
    NotSupported,
    Sent,
    /// Advertised, and then not sent.
    Missing,
    /// Another provider's issuer, as in a mix-up attack.
    Wrong,
}

#[derive(Clone)]
pub struct EntraStandIn {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl EntraStandIn {
    pub async fn start() -> EntraStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Mutex::new(Inner {
            current: ("key-1".into(), "signing-key.pem".into()),
            ..Inner::default()
        }));
        let stand_in = EntraStandIn { addr, inner };
        let app = Router::new()
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(discovery),
            )
            .route("/{tenant}/discovery/v2.0/keys", get(keys))
            .route("/{tenant}/oauth2/v2.0/authorize", get(authorize))
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route(
                "/v1.0/me/transitiveMemberOf/microsoft.graph.group",
                get(graph_groups),
            )
            .with_state(stand_in.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        stand_in
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The person signs in at the authorize endpoint: returns the code for the callback.
    /// The person who will sign in at the next authorize request, as if typing their
    /// password at Entra.
    pub fn sign_in_next(&self, person: Person) {
        self.inner.lock().unwrap().next_person = Some(person);
    }

    /// Starts signing with the second key (as Entra rolls its keys).
    pub fn rotate(&self) {
        self.inner.lock().unwrap().current = ("key-2".into(), "rotated-key.pem".into());
    }

    pub fn serve_wrong_discovery_issuer(&self) {
        self.inner.lock().unwrap().wrong_discovery_issuer = true;
    }

    pub fn serve_right_discovery_issuer(&self) {
        self.inner.lock().unwrap().wrong_discovery_issuer = false;
    }

    pub fn publish_both_keys(&self) {
        self.inner.lock().unwrap().publish_both_keys = true;
    }

    pub fn set_iss(&self, mode: IssMode) {
        self.inner.lock().unwrap().iss = mode;
    }

    pub fn discovery_fetches(&self) -> usize {
        self.inner.lock().unwrap().discovery_fetches
    }

    pub fn redirect_discovery(&self) {
        self.inner.lock().unwrap().redirect_discovery = true;
    }

    fn issuer(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.url())
    }
}

fn rand_code() -> String {
    let id = uuid::Uuid::new_v4();
    id.simple().to_string()
}

async fn discovery(
    State(s): State<EntraStandIn>,
    Path(tenant): Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    s.inner.lock().unwrap().discovery_fetches += 1;
    if s.inner.lock().unwrap().redirect_discovery {
        return axum::response::Redirect::temporary("http://169.254.169.254/latest/meta-data/")
            .into_response();
    }
    let base = s.url();
    let issuer = if s.inner.lock().unwrap().wrong_discovery_issuer {
        "https://login.microsoftonline.com/someone-else/v2.0".to_string()
    } else if tenant == "organizations" {
        // As Entra's multi-tenant document does: a template, not an issuer.
        format!("{base}/{{tenantid}}/v2.0")
    } else {
        s.issuer(&tenant)
    };
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_types_supported": ["code", "id_token", "code id_token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "authorization_response_iss_parameter_supported": s.inner.lock().unwrap().iss != IssMode::NotSupported,
    }))
    .into_response()
}

fn signing_key(kid: &str, file: &str) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(&fixture(file), Some(JsonWebKeyId::new(kid.into()))).unwrap()
}

async fn keys(State(s): State<EntraStandIn>) -> Json<Value> {
    let (kid, file, both) = {
        let inner = s.inner.lock().unwrap();
        (
            inner.current.0.clone(),
            inner.current.1.clone(),
            inner.publish_both_keys,
        )
    };
    let mut published = vec![(kid, file)];
    if both {
        published = vec![
            ("key-1".into(), "signing-key.pem".into()),
            ("key-2".into(), "rotated-key.pem".into()),
        ];
    }
    let mut keys: Vec<Value> = published
        .iter()
        .map(|(kid, file)| {
            serde_json::to_value(signing_key(kid, file).as_verification_key()).unwrap()
        })
        .collect();
    keys.push(ec_jwk());
    Json(json!({ "keys": keys }))
}

async fn token(
    State(s): State<EntraStandIn>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> (axum::http::StatusCode, Json<Value>) {
    let bad = |why: &str| {
        (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": why})),
        )
    };
    let Some(issued) = s
        .inner
        .lock()
        .unwrap()
        .codes
        .remove(form.get("code").map(String::as_str).unwrap_or_default())
    else {
        return bad("unknown or used code");
    };
    let token_endpoint = format!("{}/{tenant}/oauth2/v2.0/token", s.url());
    let authenticated = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && match form.get("client_assertion") {
            Some(assertion) => {
                form.get("client_assertion_type").map(String::as_str)
                    == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                    && client_assertion_ok(assertion, &token_endpoint)
            }
            None => form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET),
        };
    if !authenticated {
        return bad("client authentication failed");
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != issued.challenge {
        return bad("PKCE verification failed");
    }
    let (kid, file) = s.inner.lock().unwrap().current.clone();
    let person_tenant = issued
        .person
        .tenant
        .clone()
        .unwrap_or_else(|| TENANT.to_string());
    let tenant = if tenant == "organizations" {
        person_tenant
    } else {
        tenant
    };
    let id_token = make_token(&s.issuer(&tenant), &tenant, &issued, &kid, &file);
    let access_token = format!("at-{}", rand_code());
    let leaves = issued.person.tamper == Tamper::GraphLeavesGraph;
    s.inner
        .lock()
        .unwrap()
        .access_tokens
        .insert(access_token.clone(), (issued.person.groups.clone(), leaves));
    (
        axum::http::StatusCode::OK,
        Json(
            json!({"token_type": "Bearer", "access_token": access_token, "expires_in": 3600, "id_token": id_token}),
        ),
    )
}

/// The authorize endpoint: checks the request as Entra does, signs the next person in, and
/// sends the browser back to the redirect URI with a code and the state.
async fn authorize(
    State(s): State<EntraStandIn>,
    Path(tenant): Path<String>,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let param = |name: &str| q.get(name).cloned().unwrap_or_default();
    let refuse = |why: &str| {
        (
            axum::http::StatusCode::BAD_REQUEST,
            format!("AADSTS: {why}"),
        )
            .into_response()
    };
    if param("response_type") != "code" {
        return refuse("response_type must be code");
    }
    if param("client_id") != CLIENT_ID {
        return refuse("unknown client");
    }
    if !param("redirect_uri").ends_with("/oidc/callback") {
        return refuse("redirect URI not registered");
    }
    if param("code_challenge_method") != "S256" || param("code_challenge").len() < 43 {
        return refuse("PKCE S256 required");
    }
    if param("state").is_empty() || param("nonce").is_empty() {
        return refuse("state and nonce required");
    }
    let Some(person) = s.inner.lock().unwrap().next_person.take() else {
        return refuse("nobody signed in");
    };
    let code = format!("code-{}", rand_code());
    let issued = Issued {
        nonce: param("nonce"),
        challenge: param("code_challenge"),
        person,
    };
    s.inner.lock().unwrap().codes.insert(code.clone(), issued);
    let mut back = format!(
        "{}?code={code}&state={}",
        param("redirect_uri"),
        urlencode(&param("state"))
    );
    match s.inner.lock().unwrap().iss {
        IssMode::Sent => back.push_str(&format!("&iss={}", urlencode(&s.issuer(&tenant)))),
        IssMode::Wrong => back.push_str("&iss=https%3A%2F%2Fidp.attacker.example%2Fv2.0"),
        IssMode::NotSupported | IssMode::Missing => {}
    }
    axum::response::Redirect::to(&back).into_response()
}

fn urlencode(value: &str) -> String {
    reqwest::Url::parse_with_params("http://x/", &[("v", value)])
        .unwrap()
        .query()
        .unwrap()
        .trim_start_matches("v=")
        .to_string()
}

/// Checks a client assertion as Entra does: signed by the registered certificate's key,
/// naming that certificate, for this client and this token endpoint, not expired.
fn client_assertion_ok(assertion: &str, token_endpoint: &str) -> bool {
    use openidconnect::JsonWebKey;
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return false;
    };
    let decode = |p: &str| {
        URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    let (Some(header), Some(payload), Ok(signature)) = (
        decode(header),
        decode(payload),
        URL_SAFE_NO_PAD.decode(signature),
    ) else {
        return false;
    };
    let cert = fixture("client-cert.pem");
    let body: String = cert.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let key = signing_key("client", "client-key.pem");
    let message = format!("{}.{}", parts[0], parts[1]);
    key.as_verification_key()
        .verify_signature(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            message.as_bytes(),
            &signature,
        )
        .is_ok()
        && header["x5t#S256"] == json!(URL_SAFE_NO_PAD.encode(Sha256::digest(&der)))
        && payload["iss"] == json!(CLIENT_ID)
        && payload["sub"] == json!(CLIENT_ID)
        && payload["aud"] == json!(token_endpoint)
        && payload["exp"]
            .as_i64()
            .is_some_and(|exp| exp > chrono::Utc::now().timestamp())
}

fn overage(t: Tamper) -> bool {
    matches!(t, Tamper::GroupOverage | Tamper::GraphLeavesGraph)
}

/// Microsoft Graph's transitiveMemberOf, 100 groups a page.
async fn graph_groups(
    State(s): State<EntraStandIn>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> (axum::http::StatusCode, Json<Value>) {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("Bearer ")
        .to_string();
    let Some((groups, leaves)) = s.inner.lock().unwrap().access_tokens.get(&token).cloned() else {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "InvalidAuthenticationToken"}})),
        );
    };
    let page: usize = query
        .get("$skiptoken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let value: Vec<Value> = groups
        .iter()
        .skip(page * 100)
        .take(100)
        .map(|g| json!({"id": g, "displayName": format!("Group {g}")}))
        .collect();
    let mut body = json!({ "value": value });
    if (page + 1) * 100 < groups.len() {
        let host = if leaves {
            "https://graph.attacker.example".to_string()
        } else {
            s.url()
        };
        body["@odata.nextLink"] = json!(format!(
            "{host}/v1.0/me/transitiveMemberOf/microsoft.graph.group?$skiptoken={}",
            page + 1
        ));
    }
    (axum::http::StatusCode::OK, Json(body))
}

fn ec_key() -> p256::ecdsa::SigningKey {
    use p256::pkcs8::DecodePrivateKey;
    p256::ecdsa::SigningKey::from_pkcs8_pem(&fixture("ec-signing-key.pem")).unwrap()
}

/// The EC key as a JWK, as Entra would publish a P-256 key.
fn ec_jwk() -> Value {
    let point = ec_key().verifying_key().to_encoded_point(false);
    json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "ec-1",
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    })
}

/// Signs a payload ES256 with the EC key; `corrupt` flips a bit of the signature.
fn sign_es256(payload: &Value, corrupt: bool) -> String {
    use p256::ecdsa::signature::Signer;
    let header = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!({"alg": "ES256", "typ": "JWT", "kid": "ec-1"})).unwrap());
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap());
    let signature: p256::ecdsa::Signature = ec_key().sign(format!("{header}.{body}").as_bytes());
    let mut bytes = signature.to_bytes().to_vec();
    if corrupt {
        bytes[10] ^= 0x01;
    }
    format!("{header}.{body}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Signs an arbitrary payload with a fixture key, for tokens the typed builder refuses to make.
fn sign_raw(payload: &Value, kid: &str, file: &str) -> String {
    let header = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&json!({"alg": "RS256", "typ": "JWT", "kid": kid})).unwrap());
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap());
    let signature = signing_key(kid, file)
        .sign(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            format!("{header}.{body}").as_bytes(),
        )
        .unwrap();
    format!("{header}.{body}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn make_token(issuer: &str, tenant: &str, issued: &Issued, kid: &str, file: &str) -> String {
    let p = &issued.person;
    let now = chrono::Utc::now();
    let t = p.tamper;
    let iss = if t == Tamper::WrongIssuer {
        "https://login.microsoftonline.com/evil/v2.0".to_string()
    } else {
        issuer.to_string()
    };
    let aud = if t == Tamper::WrongAudience {
        "someone-else".to_string()
    } else {
        CLIENT_ID.to_string()
    };
    let exp = if t == Tamper::Expired {
        now - chrono::Duration::minutes(30)
    } else {
        now + chrono::Duration::hours(1)
    };
    let nonce = if t == Tamper::WrongNonce {
        "not-the-nonce".to_string()
    } else {
        issued.nonce.clone()
    };
    let tid = if t == Tamper::OtherTenant {
        "00000000-0000-0000-0000-000000000001".to_string()
    } else {
        tenant.to_string()
    };
    let mut standard = StandardClaims::new(SubjectIdentifier::new(format!("pairwise-{}", p.oid)));
    if let Some(email) = &p.email {
        standard = standard.set_email(Some(EndUserEmail::new(email.clone())));
    }
    if let Some(upn) = &p.preferred_username {
        standard = standard.set_preferred_username(Some(EndUserUsername::new(upn.clone())));
    }
    let extra = ExtraClaims {
        tid: Some(tid),
        oid: Some(p.oid.clone()),
        groups: if overage(t) {
            None
        } else {
            Some(p.groups.clone())
        },
        roles: None,
        _claim_names: overage(t).then(|| json!({"groups": "src1"})),
        hasgroups: None,
    };
    let iat = if t == Tamper::FutureIat {
        now + chrono::Duration::hours(1)
    } else {
        now
    };
    let mut claims = IdTokenClaims::new(
        IssuerUrl::new(iss).unwrap(),
        vec![Audience::new(aud)],
        exp,
        iat,
        standard,
        extra,
    )
    .set_nonce(Some(Nonce::new(nonce)));
    if t == Tamper::OtherAzp {
        claims =
            claims.set_authorized_party(Some(openidconnect::ClientId::new("another-app".into())));
    }
    match t {
        Tamper::AlgNone => {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
            let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
            format!("{header}.{body}.")
        }
        Tamper::Hs256WithClientSecret => {
            let key = CoreHmacKey::new(CLIENT_SECRET.as_bytes());
            ProviderIdToken::new(
                claims,
                &key,
                CoreJwsSigningAlgorithm::HmacSha256,
                None,
                None,
            )
            .unwrap()
            .to_string()
        }
        Tamper::AttackerKey => {
            // Same kid as the real key: only the signature can tell them apart.
            ProviderIdToken::new(
                claims,
                &signing_key(kid, "attacker-key.pem"),
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                None,
                None,
            )
            .unwrap()
            .to_string()
        }
        Tamper::FutureNbf => {
            let mut payload = serde_json::to_value(&claims).unwrap();
            payload["nbf"] = (now + chrono::Duration::hours(1)).timestamp().into();
            sign_raw(&payload, kid, file)
        }
        Tamper::MissingAud | Tamper::MissingIat | Tamper::MissingSub => {
            let mut payload = serde_json::to_value(&claims).unwrap();
            let claim = match t {
                Tamper::MissingAud => "aud",
                Tamper::MissingIat => "iat",
                _ => "sub",
            };
            payload.as_object_mut().unwrap().remove(claim);
            sign_raw(&payload, kid, file)
        }
        Tamper::Es256 | Tamper::Es256BadSignature => sign_es256(
            &serde_json::to_value(&claims).unwrap(),
            t == Tamper::Es256BadSignature,
        ),
        Tamper::NoKid => {
            let key = CoreRsaPrivateSigningKey::from_pem(&fixture(file), None).unwrap();
            ProviderIdToken::new(
                claims,
                &key,
                CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                None,
                None,
            )
            .unwrap()
            .to_string()
        }
        _ => ProviderIdToken::new(
            claims,
            &signing_key(kid, file),
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            None,
            None,
        )
        .unwrap()
        .to_string(),
    }
}

// ---- the tests ----

/// The reason recorded by the newest audit event (a failed sign-in's).
async fn last_failure(app: &TestApp, token: &str) -> String {
    let r = app.get("/api/v1/orgs/acme/audit?limit=1", token).await;
    let event = &r.body["data"][0];
    assert_eq!(event["action"], "sso.login_failed", "{event}");
    event["after"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub(crate) async fn member_count(app: &TestApp, token: &str) -> usize {
    let r = app.get("/api/v1/orgs/acme/members", token).await;
    r.body["data"].as_array().unwrap().len()
}

fn query_param(url: &str, name: &str) -> String {
    let parsed = reqwest::Url::parse(url).unwrap();
    parsed
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

pub(crate) fn person(oid: &str, email: &str, groups: &[&str]) -> Person {
    Person {
        tenant: None,
        oid: oid.into(),
        email: None,
        preferred_username: Some(email.into()),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        tamper: Tamper::None,
    }
}

/// An org with an Entra connection (everyone allowed, the Engineering group → a team).
pub(crate) async fn setup(app: &TestApp) -> (crate::harness::Person, i64, i64) {
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let r = app
        .post("/api/v1/orgs/acme/connections", &admin.token, json!({
            "kind": "oidc", "name": "Entra ID",
            "settings": {"preset": "entra", "tenant_id": TENANT, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let connection = r.body["id"].as_i64().unwrap();
    let team = app.create_team("acme", &admin.token, "Engineering").await;
    let base = format!("/api/v1/orgs/acme/connections/{connection}");
    app.post(
        &format!("{base}/grants"),
        &admin.token,
        json!({"match": {"kind": "everyone"}}),
    )
    .await;
    app.post(
        &format!("{base}/group-mappings"),
        &admin.token,
        json!({"group": {"id": ENG_GROUP}, "team_ids": [team]}),
    )
    .await;
    (admin, connection, team)
}

/// The whole browser round trip: rollcall's login redirect, the person at Entra, the callback.
pub(crate) async fn sign_in(
    app: &TestApp,
    browser: &Browser,
    connection: i64,
    return_to: &str,
    who: Person,
) -> (PageResponse, String) {
    let start = browser
        .get(&format!(
            "/oidc/acme/login?connection={connection}&return_to={return_to}"
        ))
        .await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let authorize = start.location().to_string();
    assert!(
        authorize.starts_with(&app.entra.url()) && authorize.contains("/oauth2/v2.0/authorize?"),
        "{authorize}"
    );
    assert_eq!(query_param(&authorize, "code_challenge_method"), "S256");
    assert_eq!(query_param(&authorize, "client_id"), CLIENT_ID);
    // The person signs in at Entra, which sends the browser back with a code.
    app.entra.sign_in_next(who);
    let at_entra = browser.get(&authorize).await;
    assert!(at_entra.status.is_redirection(), "{}", at_entra.body);
    let callback = at_entra.location().to_string();
    (browser.get(&callback).await, callback)
}

async fn entra_sign_in_provisions_and_signs_in(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection, team) = setup(&app).await;

    // The client secret is stored sealed and never shown.
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/connections/{connection}"),
            &admin.token,
        )
        .await;
    assert_eq!(r.body["settings"]["client_secret_set"], true);
    assert!(!r.body.to_string().contains(CLIENT_SECRET));

    let browser = Browser::new(&app);
    let (done, _) = sign_in(
        &app,
        &browser,
        connection,
        "/",
        person("oid-ann", "ann@acme.test", &[ENG_GROUP, "unmapped-guid"]),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/");
    assert!(browser
        .get("/")
        .await
        .body
        .contains("Signed in as ann@acme.test"));
    let r = app
        .get("/api/v1/orgs/acme/members?q=ann@acme.test", &admin.token)
        .await;
    let member = &r.body["data"][0];
    assert_eq!(member["source"], "sso");
    assert_eq!(
        member["teams"],
        json!([{"id": team, "name": "Engineering", "source": "sso"}])
    );

    // The same person again (same tid+oid) is the same member; a rotated signing key is
    // picked up from the JWKS.
    app.entra.rotate();
    let second = Browser::new(&app);
    let (done, _) = sign_in(
        &app,
        &second,
        connection,
        "/",
        person("oid-ann", "ann@acme.test", &[]),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        member_count(&app, &admin.token).await,
        2,
        "admin and ann, no duplicate"
    );
    // Two sign-ins (each a login and a callback) asked for discovery once: it is cached.
    assert_eq!(app.entra.discovery_fetches(), 1);
    let r = app
        .get("/api/v1/orgs/acme/members?q=ann@acme.test", &admin.token)
        .await;
    assert_eq!(
        r.body["data"][0]["teams"],
        json!([]),
        "left the group: team removed"
    );
    app.stop().await;
}

async fn forged_and_broken_tokens_are_refused(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection, _) = setup(&app).await;
    // Each is refused for its own reason, which the audit trail records.
    for (tamper, reason) in [
        (Tamper::AttackerKey, "bad signature"),
        (Tamper::AlgNone, "No signature found"),
        (
            Tamper::Hs256WithClientSecret,
            "algorithm `HS256` is not one of",
        ),
        (Tamper::WrongIssuer, "Invalid issuer"),
        (Tamper::WrongAudience, "Invalid audiences"),
        (Tamper::Expired, "Expired"),
        (Tamper::WrongNonce, "Invalid nonce"),
        (Tamper::OtherTenant, "is not the configured tenant"),
        (Tamper::OtherAzp, "azp \"another-app\" is not this client"),
        (Tamper::GroupOverage, "group overage"),
        (Tamper::MissingAud, "Invalid audiences"),
        (Tamper::MissingIat, "lacks the required claim `iat`"),
        (Tamper::MissingSub, "lacks the required claim `sub`"),
        (Tamper::FutureNbf, "is not valid before"),
        (Tamper::FutureIat, "issued in the future"),
        (Tamper::Es256BadSignature, "Signature verification failed"),
    ] {
        let browser = Browser::new(&app);
        let mut who = person(
            &format!("oid-{tamper:?}"),
            &format!("{tamper:?}@acme.test").to_lowercase(),
            &[ENG_GROUP],
        );
        who.tamper = tamper;
        let (done, _) = sign_in(&app, &browser, connection, "/", who).await;
        assert_eq!(
            done.status,
            StatusCode::FORBIDDEN,
            "{tamper:?}: {}",
            done.body
        );
        assert!(
            done.body.contains("Sign-in failed"),
            "{tamper:?}: {}",
            done.body
        );
        assert!(
            done.body.contains("reference"),
            "{tamper:?}: a reference code"
        );
        assert_eq!(
            browser.get("/").await.location(),
            "/login",
            "{tamper:?}: no session"
        );
        let logged = last_failure(&app, &admin.token).await;
        assert!(logged.contains(reason), "{tamper:?}: {logged}");
    }
    assert_eq!(
        member_count(&app, &admin.token).await,
        1,
        "nobody was provisioned"
    );
    app.stop().await;
}

async fn state_is_single_use(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (_, connection, _) = setup(&app).await;
    let browser = Browser::new(&app);
    let (done, callback) = sign_in(
        &app,
        &browser,
        connection,
        "/",
        person("oid-bo", "bo@acme.test", &[]),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let replay = Browser::new(&app).get(&callback).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(replay.body.contains("expired or was already used"));
    let forged = Browser::new(&app)
        .get(&format!("/oidc/callback?code=x&state={}", "y".repeat(43)))
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    let missing = Browser::new(&app)
        .get("/oidc/acme/login?connection=999")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// More than 200 groups: Entra sends an overage marker instead; a connection that may ask
/// Graph reads them there (all pages, with names), and never follows a link out of Graph.
async fn group_overage_is_read_from_graph(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection, team) = setup(&app).await;
    let path = format!("/api/v1/orgs/acme/connections/{connection}");
    let r = app
        .patch(&path, &admin.token, json!({"settings": {"preset": "entra", "tenant_id": TENANT, "client_id": CLIENT_ID, "graph_overage": true}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.body["settings"]["client_secret_set"], true,
        "the secret was kept"
    );

    let mut groups: Vec<String> = (0..249)
        .map(|i| format!("00000000-0000-0000-0000-{i:012}"))
        .collect();
    groups.push(ENG_GROUP.to_string());
    let mut many = person("oid-many", "many@acme.test", &[]);
    many.groups = groups;
    many.tamper = Tamper::GroupOverage;
    let browser = Browser::new(&app);
    let start = browser
        .get(&format!("/oidc/acme/login?connection={connection}"))
        .await;
    assert!(query_param(start.location(), "scope").contains("GroupMember.Read.All"));
    let (done, _) = sign_in(&app, &browser, connection, "/", many.clone()).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let r = app
        .get("/api/v1/orgs/acme/members?q=many@acme.test", &admin.token)
        .await;
    assert_eq!(
        r.body["data"][0]["teams"],
        json!([{"id": team, "name": "Engineering", "source": "sso"}]),
        "the group on page 3 counted"
    );

    let mut led_away = many;
    led_away.oid = "oid-led-away".into();
    led_away.email = Some("away@acme.test".into());
    led_away.tamper = Tamper::GraphLeavesGraph;
    let (done, _) = sign_in(&app, &Browser::new(&app), connection, "/", led_away).await;
    assert_eq!(done.status, StatusCode::BAD_GATEWAY, "{}", done.body);
    let r = app
        .get("/api/v1/orgs/acme/audit?limit=1", &admin.token)
        .await;
    eprintln!("EVENT {}", r.body["data"][0]);
    let reason = r.body["data"][0]["after"]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("leaves"), "{reason}");
    app.stop().await;
}

/// A verified person the org's rules do not admit sees why, with a reference to quote.
async fn refusals_by_the_rules_show_a_reference(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection, _) = setup(&app).await;
    let grants = app
        .get(
            &format!("/api/v1/orgs/acme/connections/{connection}/grants"),
            &admin.token,
        )
        .await;
    let grant = grants.body[0]["id"].as_i64().unwrap();
    app.delete(
        &format!("/api/v1/orgs/acme/connections/{connection}/grants/{grant}"),
        &admin.token,
    )
    .await;
    let (done, _) = sign_in(
        &app,
        &Browser::new(&app),
        connection,
        "/",
        person("oid-no", "no@acme.test", &[]),
    )
    .await;
    assert_eq!(done.status, StatusCode::FORBIDDEN);
    assert!(
        done.body
            .contains("not allowed to sign in to this organization"),
        "{}",
        done.body
    );
    assert!(done.body.contains("Reference: "), "{}", done.body);
    let r = app
        .get("/api/v1/orgs/acme/audit?limit=1", &admin.token)
        .await;
    assert_eq!(r.body["data"][0]["action"], "sso.login_refused");
    assert_eq!(r.body["data"][0]["after"]["code"], "not_granted");
    app.stop().await;
}

/// A certificate credential (private_key_jwt) instead of a secret; a key that does not
/// belong to the registered certificate is refused by the provider.
async fn certificate_credential_authenticates_the_client(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection, _) = setup(&app).await;
    let path = format!("/api/v1/orgs/acme/connections/{connection}");
    let settings = |key: &str| {
        json!({"settings": {"preset": "entra", "tenant_id": TENANT, "client_id": CLIENT_ID,
        "client_key": fixture(key), "client_certificate": fixture("client-cert.pem")}})
    };
    let r = app
        .patch(&path, &admin.token, settings("client-key.pem"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["settings"]["client_key_set"], true);
    assert_eq!(r.body["settings"]["client_secret_set"], false);
    let (done, _) = sign_in(
        &app,
        &Browser::new(&app),
        connection,
        "/",
        person("oid-cert", "cert@acme.test", &[]),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);

    app.patch(&path, &admin.token, settings("attacker-key.pem"))
        .await;
    let (done, _) = sign_in(
        &app,
        &Browser::new(&app),
        connection,
        "/",
        person("oid-cert2", "cert2@acme.test", &[]),
    )
    .await;
    assert_eq!(done.status, StatusCode::BAD_GATEWAY, "{}", done.body);
    let reason = last_failure(&app, &admin.token).await;
    assert!(reason.contains("client authentication failed"), "{reason}");
    app.stop().await;
}

/// Any OpenID provider by issuer URL, with the claims it uses named in the settings.
async fn generic_provider_with_claim_names(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let team = app.create_team("acme", &admin.token, "Engineering").await;
    let issuer = format!("{}/{TENANT}/v2.0", app.entra.url());
    let r = app
        .post("/api/v1/orgs/acme/connections", &admin.token, json!({
            "kind": "oidc", "name": "Keycloak",
            "settings": {"preset": "generic", "issuer": issuer, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                         "claims": {"email": "preferred_username", "groups": "groups"}}
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let connection = r.body["id"].as_i64().unwrap();
    let base = format!("/api/v1/orgs/acme/connections/{connection}");
    app.post(
        &format!("{base}/grants"),
        &admin.token,
        json!({"match": {"kind": "everyone"}}),
    )
    .await;
    app.post(
        &format!("{base}/group-mappings"),
        &admin.token,
        json!({"group": {"name": "engineering"}, "team_ids": [team]}),
    )
    .await;

    let mut who = person("oid-kc", "kc.user@acme.test", &["Engineering", "Staff"]);
    who.email = Some("other.address@acme.test".into());
    let (done, _) = sign_in(&app, &Browser::new(&app), connection, "/", who).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    // The configured claim named the email; groups matched by name.
    let r = app
        .get(
            "/api/v1/orgs/acme/members?q=kc.user@acme.test",
            &admin.token,
        )
        .await;
    assert_eq!(
        r.body["data"][0]["teams"],
        json!([{"id": team, "name": "Engineering", "source": "sso"}])
    );
    let r = app
        .get("/api/v1/orgs/acme/members?q=other.address", &admin.token)
        .await;
    assert_eq!(r.body["data"], json!([]));
    app.stop().await;
}

/// A multi-tenant app: people of allowed tenants only, and each token's issuer must be its
/// own tenant's.
async fn multi_tenant_connections_admit_listed_tenants_only(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, _, _) = setup(&app).await;
    let r = app
        .post("/api/v1/orgs/acme/connections", &admin.token, json!({
            "kind": "oidc", "name": "Entra (several tenants)",
            "settings": {"preset": "entra", "tenant_id": "organizations", "allowed_tenants": [TENANT],
                         "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let multi = r.body["id"].as_i64().unwrap();
    app.post(
        &format!("/api/v1/orgs/acme/connections/{multi}/grants"),
        &admin.token,
        json!({"match": {"kind": "everyone"}}),
    )
    .await;

    let (done, _) = sign_in(
        &app,
        &Browser::new(&app),
        multi,
        "/",
        person("oid-in", "in@acme.test", &[]),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);

    let mut outsider = person("oid-out", "out@other.test", &[]);
    outsider.tenant = Some("11111111-2222-3333-4444-555555555555".into());
    let mut forged = person("oid-forged", "forged@acme.test", &[]);
    forged.tamper = Tamper::WrongIssuer;
    for (who, reason) in [
        (outsider, "not the configured tenant or on the allow-list"),
        (forged, "for tenant"),
    ] {
        let (done, _) = sign_in(&app, &Browser::new(&app), multi, "/", who).await;
        assert_eq!(done.status, StatusCode::FORBIDDEN, "{}", done.body);
        let logged = last_failure(&app, &admin.token).await;
        assert!(logged.contains(reason), "{logged}");
    }
    assert_eq!(
        member_count(&app, &admin.token).await,
        2,
        "admin and the allowed tenant's person"
    );
    app.stop().await;
}

/// Entra signs RS256, but the verifier is not tied to RSA: an ES256 token from a published EC
/// key verifies too.
async fn es256_tokens_verify(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (_, connection, _) = setup(&app).await;
    let mut who = person("oid-ec", "ec@acme.test", &[]);
    who.tamper = Tamper::Es256;
    let (done, _) = sign_in(&app, &Browser::new(&app), connection, "/", who).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    app.stop().await;
}

/// Conformance: a token without `kid` verifies against a single published key, and is refused
/// when several keys could have signed it.
async fn tokens_without_kid(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (_, connection, _) = setup(&app).await;
    let mut who = person("oid-nokid", "nokid@acme.test", &[]);
    who.tamper = Tamper::NoKid;
    let (done, _) = sign_in(&app, &Browser::new(&app), connection, "/", who).await;
    assert_eq!(
        done.status,
        StatusCode::SEE_OTHER,
        "single key: {}",
        done.body
    );
    app.stop().await;

    // A provider publishing several keys from the start: which one signed is ambiguous.
    let app = TestApp::spawn(&backend).await;
    let (admin, connection, _) = setup(&app).await;
    app.entra.publish_both_keys();
    let mut who = person("oid-nokid-2", "nokid2@acme.test", &[]);
    who.tamper = Tamper::NoKid;
    let (done, _) = sign_in(&app, &Browser::new(&app), connection, "/", who).await;
    assert_eq!(
        done.status,
        StatusCode::FORBIDDEN,
        "several keys: {}",
        done.body
    );
    let reason = last_failure(&app, &admin.token).await;
    assert!(reason.contains("eligible public key"), "{reason}");
    app.stop().await;
}

/// Discovery never follows a redirect (it could lead to an internal address).
async fn discovery_redirects_are_not_followed(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (_, connection, _) = setup(&app).await;
    app.entra.redirect_discovery();
    let r = Browser::new(&app)
        .get(&format!("/oidc/acme/login?connection={connection}"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert!(r.body.contains("cannot be reached"), "{}", r.body);
    app.stop().await;
}

/// OpenID Discovery §4.3: the document's issuer must be the one it was fetched for.
async fn discovery_issuer_mismatch_is_refused(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (_, connection, _) = setup(&app).await;
    app.entra.serve_wrong_discovery_issuer();
    let r = Browser::new(&app)
        .get(&format!("/oidc/acme/login?connection={connection}"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    assert!(r.body.contains("misconfigured"));
    app.stop().await;
}

async fn invitation_continues_with_sso(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection, _) = setup(&app).await;
    rollcall::operator::verify_domain(&app.store, "acme", "acme.test")
        .await
        .unwrap();
    let r = app
        .post(
            "/api/v1/orgs/acme/invitations",
            &admin.token,
            json!({"emails": ["emp@acme.test"], "is_admin": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    app.deliver_mail().await;
    let link = crate::harness::link_in(&app.smtp.received()[0].data);
    let invite_path = &link[link.find("/invite/").unwrap()..];

    let browser = Browser::new(&app);
    let page = browser.get(&link).await;
    assert!(page.body.contains("Continue with SSO"), "{}", page.body);
    let (done, _) = sign_in(
        &app,
        &browser,
        connection,
        invite_path,
        person("oid-emp", "emp@acme.test", &[]),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), invite_path);
    let page = browser.get(invite_path).await;
    assert!(
        page.body.contains("You are a member of acme now"),
        "{}",
        page.body
    );
    let r = app
        .get("/api/v1/orgs/acme/members?q=emp@acme.test", &admin.token)
        .await;
    assert_eq!(
        r.body["data"][0]["is_admin"], true,
        "the invitation's admin flag applied"
    );
    app.stop().await;
}

/// RFC 9207: a provider that advertises `iss` in authorization responses must send its own
/// issuer there; another's (a mix-up attack) or none is refused, with the reason audited.
async fn the_response_issuer_is_checked_when_the_provider_sends_it(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    app.entra.set_iss(IssMode::Sent);
    let (admin, connection, _) = setup(&app).await;
    let (done, callback) = sign_in(
        &app,
        &Browser::new(&app),
        connection,
        "/",
        person("oid-iss", "iss@acme.test", &[]),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(callback.contains("iss="), "{callback}");
    for (mode, reason) in [
        (IssMode::Wrong, "idp.attacker.example"),
        (IssMode::Missing, "advertises the RFC 9207 iss parameter"),
    ] {
        app.entra.set_iss(mode);
        let (done, _) = sign_in(
            &app,
            &Browser::new(&app),
            connection,
            "/",
            person("oid-mixed", "mixed@acme.test", &[]),
        )
        .await;
        assert_eq!(done.status, StatusCode::FORBIDDEN, "{}", done.body);
        let logged = last_failure(&app, &admin.token).await;
        assert!(logged.contains(reason), "{logged}");
    }
    assert_eq!(member_count(&app, &admin.token).await, 2, "admin and iss@");
    app.stop().await;
}

crate::backend_tests!(
    the_response_issuer_is_checked_when_the_provider_sends_it,
    rotated_keys_are_fetched_at_once,
    provider_errors_and_login_failures_are_audited,
    a_sign_in_finishes_in_the_browser_that_started_it,
    entra_ids_in_upper_case_are_stored_as_entra_sends_them,
    entra_sign_in_provisions_and_signs_in,
    forged_and_broken_tokens_are_refused,
    state_is_single_use,
    discovery_issuer_mismatch_is_refused,
    multi_tenant_connections_admit_listed_tenants_only,
    group_overage_is_read_from_graph,
    generic_provider_with_claim_names,
    certificate_credential_authenticates_the_client,
    refusals_by_the_rules_show_a_reference,
    tokens_without_kid,
    es256_tokens_verify,
    discovery_redirects_are_not_followed,
    invitation_continues_with_sso,
);

/// With the default refetch limit, a token signed with a rotated key gets in at once: the
/// limit counts forced fetches only, not the routine one of the first sign-in.
async fn rotated_keys_are_fetched_at_once(backend: Backend) {
    let app = TestApp::spawn_with(&backend, |c| c.oidc.jwks_refresh_min_seconds = 60).await;
    let (_, connection, _) = setup(&app).await;
    let (done, _) = sign_in(
        &app,
        &Browser::new(&app),
        connection,
        "/",
        person("oid-1", "one@acme.test", &[]),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    app.entra.rotate();
    let (done, _) = sign_in(
        &app,
        &Browser::new(&app),
        connection,
        "/",
        person("oid-2", "two@acme.test", &[]),
    )
    .await;
    assert_eq!(
        done.status,
        StatusCode::SEE_OTHER,
        "rotated key picked up: {}",
        done.body
    );
    app.stop().await;
}

/// The provider's own refusal at the callback, and a failure at the login step (here a
/// discovery document for another issuer), reach the org's audit trail; a link without
/// `?connection=` uses the org's only OIDC connection.
async fn provider_errors_and_login_failures_are_audited(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, _, _) = setup(&app).await;
    // Before any discovery document is cached: one for another issuer.
    app.entra.serve_wrong_discovery_issuer();
    let r = Browser::new(&app).get("/oidc/acme/login").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.body);
    let logged = last_failure(&app, &admin.token).await;
    assert!(logged.contains("discovery issuer"), "{logged}");
    app.entra.serve_right_discovery_issuer();

    let browser = Browser::new(&app);
    let start = browser.get("/oidc/acme/login?return_to=/").await;
    assert_eq!(start.status, StatusCode::SEE_OTHER, "{}", start.body);
    let state = query_param(start.location(), "state");
    let r = browser
        .get(&format!(
            "/oidc/callback?state={state}&error=access_denied&error_description=AADSTS50105%3A+The+signed+in+user+is+not+assigned+to+a+role+for+the+application"
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let logged = last_failure(&app, &admin.token).await;
    assert!(
        logged.contains("access_denied") && logged.contains("AADSTS50105"),
        "{logged}"
    );
    app.stop().await;
}

/// Login CSRF: a callback carried to another browser (an attacker's code for the attacker's
/// account) does not sign that browser in.
async fn a_sign_in_finishes_in_the_browser_that_started_it(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection, _) = setup(&app).await;
    let attacker = Browser::new(&app);
    let start = attacker
        .get(&format!(
            "/oidc/acme/login?connection={connection}&return_to=/"
        ))
        .await;
    app.entra
        .sign_in_next(person("oid-mallory", "mallory@acme.test", &[]));
    let at_entra = attacker.get(start.location()).await;
    let callback = at_entra.location().to_string();
    let victim = Browser::new(&app);
    let r = victim.get(&callback).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("started in another browser"), "{}", r.body);
    assert_eq!(victim.get("/").await.location(), "/login", "no session");
    let logged = last_failure(&app, &admin.token).await;
    assert!(logged.contains("login CSRF"), "{logged}");
    app.stop().await;
}

/// Entra writes GUIDs in lower case; an admin may paste them in upper case. Tenant IDs and
/// group object IDs are saved as Entra sends them, so they match, and cannot be mapped twice.
async fn entra_ids_in_upper_case_are_stored_as_entra_sends_them(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let r = app
        .post("/api/v1/orgs/acme/connections", &admin.token, json!({
            "kind": "oidc", "name": "Entra ID",
            "settings": {"preset": "entra", "tenant_id": TENANT.to_uppercase(), "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["settings"]["tenant_id"], TENANT);
    let connection = r.body["id"].as_i64().unwrap();
    let team = app.create_team("acme", &admin.token, "Engineering").await;
    let base = format!("/api/v1/orgs/acme/connections/{connection}");
    app.post(
        &format!("{base}/grants"),
        &admin.token,
        json!({"match": {"kind": "everyone"}}),
    )
    .await;
    let r = app
        .post(
            &format!("{base}/group-mappings"),
            &admin.token,
            json!({"group": {"id": ENG_GROUP.to_uppercase()}, "team_ids": [team]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["group"]["id"], ENG_GROUP);
    let r = app
        .post(
            &format!("{base}/group-mappings"),
            &admin.token,
            json!({"group": {"id": ENG_GROUP}, "team_ids": [team]}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "the same group, once: {}",
        r.body
    );
    let (done, _) = sign_in(
        &app,
        &Browser::new(&app),
        connection,
        "/",
        person("oid-ann", "ann@acme.test", &[ENG_GROUP]),
    )
    .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let r = app
        .get("/api/v1/orgs/acme/members?q=ann@acme.test", &admin.token)
        .await;
    assert_eq!(r.body["data"][0]["teams"][0]["name"], "Engineering");
    app.stop().await;
}
