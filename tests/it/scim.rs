//! The SCIM endpoint's edge: who may call it, the error shape, and the discovery document.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Backend, Response, TestApp};

crate::backend_tests!(scim_tokens_open_their_own_org_only);

fn assert_scim_error(r: &Response, status: StatusCode) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/scim+json");
    assert_eq!(
        r.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(r.body["status"], status.as_u16().to_string());
    assert!(!r.body["detail"].as_str().unwrap().is_empty());
}

async fn scim_token(app: &TestApp, slug: &str, admin_token: &str) -> (i64, String) {
    let r = app
        .post(
            &format!("/api/v1/orgs/{slug}/connections"),
            admin_token,
            json!({"kind": "saml", "name": "Okta"}),
        )
        .await;
    let connection = r.body["id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/v1/orgs/{slug}/scim-tokens"),
            admin_token,
            json!({"name": "Okta provisioning", "connection_id": connection}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (
        r.body["id"].as_i64().unwrap(),
        r.body["secret"].as_str().unwrap().to_string(),
    )
}

async fn scim_tokens_open_their_own_org_only(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let other = app.bootstrap("other", "root@other.test").await;
    let (id, secret) = scim_token(&app, "acme", &admin.token).await;
    let (_, foreign) = scim_token(&app, "other", &other.token).await;
    let config = "/scim/v2/acme/ServiceProviderConfig";

    let r = app.request(Method::GET, config, None, None).await;
    assert_scim_error(&r, StatusCode::UNAUTHORIZED);
    assert!(r.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    for wrong in [
        "rc_scim_not-a-real-token",
        admin.token.as_str(), // an admin API token is not a SCIM token
        foreign.as_str(),     // another org's SCIM token
    ] {
        let r = app.get(config, wrong).await;
        assert_scim_error(&r, StatusCode::UNAUTHORIZED);
    }
    let r = app
        .get("/scim/v2/nosuchorg/ServiceProviderConfig", &secret)
        .await;
    assert_scim_error(&r, StatusCode::UNAUTHORIZED);

    let r = app.get(config, &secret).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/scim+json");
    assert_eq!(
        r.body["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"])
    );
    assert_eq!(
        r.body["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );
    assert_eq!(
        r.body["meta"]["location"],
        format!(
            "{}{config}",
            app.config.public_base_url.trim_end_matches('/')
        )
    );
    // Nothing is advertised that is not served yet.
    for feature in ["patch", "bulk", "filter", "sort", "etag", "changePassword"] {
        assert_eq!(r.body[feature]["supported"], false, "{feature}");
    }

    let r = app
        .request(Method::DELETE, config, Some(&secret), None)
        .await;
    assert_scim_error(&r, StatusCode::METHOD_NOT_ALLOWED);
    let r = app.get("/scim/v2/acme/Users", &secret).await;
    assert_scim_error(&r, StatusCode::NOT_FOUND);

    let r = app.get("/api/v1/orgs/acme/scim-tokens", &admin.token).await;
    assert!(r.body[0]["last_used_at"].is_string(), "{}", r.body);

    app.delete(&format!("/api/v1/orgs/acme/scim-tokens/{id}"), &admin.token)
        .await;
    let r = app.get(config, &secret).await;
    assert_scim_error(&r, StatusCode::UNAUTHORIZED);
    app.stop().await;
}
