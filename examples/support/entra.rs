//! A stand-in for Microsoft Entra ID for the sign-in benchmark: discovery, the keys and
//! the token endpoint, on 127.0.0.1. ID tokens are signed with the fixture key
//! (idp-fixtures/azure/signing-key.pem) before the clock starts, so what a callback costs
//! the provider during the run is a map lookup, a SHA-256 for PKCE, and one HTTP exchange.
// Each example includes this file and uses the part it needs.
#![allow(dead_code)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Form, Json, Router,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use openidconnect::{
    core::{CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey},
    Audience, EndUserUsername, IdTokenClaims, IssuerUrl, JsonWebKeyId, Nonce, PrivateSigningKey,
    StandardClaims, SubjectIdentifier,
};
use rollcall::oidc::{ExtraClaims, ProviderIdToken};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";
pub const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
pub const CLIENT_SECRET: &str = "stand-in-client-secret";
/// The group every signed-in person is in, mapped to a team by the benchmark.
pub const ENG_GROUP: &str = "0b6bd1d4-2c43-4f8e-9c8e-3a3c5b0f7e21";
const KID: &str = "key-1";

/// A code the stand-in will redeem once: the PKCE challenge it was issued for, and the ID
/// token it answers with.
struct Issued {
    challenge: String,
    id_token: String,
}

#[derive(Clone)]
pub struct EntraStandIn {
    pub url: String,
    key: Arc<CoreRsaPrivateSigningKey>,
    codes: Arc<Mutex<HashMap<String, Issued>>>,
}

fn key() -> CoreRsaPrivateSigningKey {
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/idp-fixtures/azure/signing-key.pem"
    ))
    .unwrap();
    CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(KID.into()))).unwrap()
}

impl EntraStandIn {
    pub async fn start() -> EntraStandIn {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stand_in = EntraStandIn {
            url,
            key: Arc::new(key()),
            codes: Arc::default(),
        };
        let app = Router::new()
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(discovery),
            )
            .route("/{tenant}/discovery/v2.0/keys", get(keys))
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .with_state(stand_in.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        stand_in
    }

    fn issuer(&self) -> String {
        format!("{}/{TENANT}/v2.0", self.url)
    }

    /// What Entra would do when person `i` signs in at its authorize endpoint, given that
    /// request's nonce and PKCE challenge: returns the code for the callback.
    pub fn sign_in(&self, i: usize, nonce: &str, challenge: &str) -> String {
        let now = chrono::Utc::now();
        let oid = format!("00000000-0000-4000-8000-{i:012}");
        let standard = StandardClaims::new(SubjectIdentifier::new(format!("pairwise-{oid}")))
            .set_preferred_username(Some(EndUserUsername::new(format!(
                "person{i}@contoso.test"
            ))));
        let extra = ExtraClaims {
            tid: Some(TENANT.into()),
            oid: Some(oid),
            groups: Some(vec![ENG_GROUP.into()]),
            ..ExtraClaims::default()
        };
        let claims = IdTokenClaims::new(
            IssuerUrl::new(self.issuer()).unwrap(),
            vec![Audience::new(CLIENT_ID.into())],
            now + chrono::Duration::hours(1),
            now,
            standard,
            extra,
        )
        .set_nonce(Some(Nonce::new(nonce.into())));
        let id_token = ProviderIdToken::new(
            claims,
            &*self.key,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            None,
            None,
        )
        .unwrap()
        .to_string();
        let code = uuid::Uuid::new_v4().simple().to_string();
        self.codes.lock().unwrap().insert(
            code.clone(),
            Issued {
                challenge: challenge.into(),
                id_token,
            },
        );
        code
    }
}

async fn discovery(State(s): State<EntraStandIn>, Path(tenant): Path<String>) -> Json<Value> {
    let base = &s.url;
    Json(json!({
        "issuer": s.issuer(),
        "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
        "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn keys(State(s): State<EntraStandIn>) -> Json<Value> {
    Json(json!({"keys": [serde_json::to_value(s.key.as_verification_key()).unwrap()]}))
}

/// The code, once, to the client that proves its secret and the PKCE verifier.
async fn token(
    State(s): State<EntraStandIn>,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let issued = s.codes.lock().unwrap().remove(field("code"));
    let verified = issued.filter(|issued| {
        field("client_id") == CLIENT_ID
            && field("client_secret") == CLIENT_SECRET
            && URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier"))) == issued.challenge
    });
    match verified {
        Some(issued) => (
            StatusCode::OK,
            Json(
                json!({"token_type": "Bearer", "access_token": "unused", "expires_in": 3600,
                        "id_token": issued.id_token}),
            ),
        ),
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        ),
    }
}
