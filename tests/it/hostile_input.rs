//! Hostile input at every front door: a NUL character or an overlong value is a 400 naming
//! the field, in the front door's own shape, and changes nothing. PostgreSQL cannot store a
//! NUL at all, so before the check these were 500s there (and stored as sent on SQLite).

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{Backend, Browser, TestApp};

const SCIM_ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

fn user(name: &str, extra: Value) -> Value {
    let mut user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{name}@acme.test"),
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": format!("{name}@acme.test"), "type": "work", "primary": true}],
        "active": true,
    });
    for (k, v) in extra.as_object().unwrap() {
        user[k] = v.clone();
    }
    user
}

/// Sends `body` as SCIM JSON with `method`, returning status and parsed body.
async fn scim(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    secret: &str,
    body: &str,
) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .request(method, app.url(path))
        .bearer_auth(secret)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn scim_requests_with_nul_or_overlong_values_are_refused(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let (_, secret) = crate::scim::scim_token(&app, "acme", &admin.token).await;
    let r = app
        .post("/scim/v2/acme/Users", &secret, user("ada", json!({})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let ada = format!("/scim/v2/acme/Users/{}", r.body["id"].as_str().unwrap());
    let r = app
        .post(
            "/scim/v2/acme/Groups",
            &secret,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ops"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let ops = format!("/scim/v2/acme/Groups/{}", r.body["id"].as_str().unwrap());
    let before_ada = app.get(&ada, &secret).await.body;
    let before_ops = app.get(&ops, &secret).await.body;

    let long = "x".repeat(257);
    let very_long = "y".repeat(2049);
    let patch = |ops: Value| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
            .to_string()
    };
    use reqwest::Method;
    // (method, path, raw body, the field the error must name)
    let attacks: Vec<(Method, &str, String, &str)> = vec![
        (
            Method::POST,
            "/scim/v2/acme/Users",
            user("bob", json!({"name": {"givenName": "Bo\u{0}b"}})).to_string(),
            "name.givenName",
        ),
        (
            Method::POST,
            "/scim/v2/acme/Users",
            user("bob", json!({"userName": "bob\u{0}@acme.test"})).to_string(),
            "userName",
        ),
        (
            Method::POST,
            "/scim/v2/acme/Users",
            user("bob", json!({"externalId": long})).to_string(),
            "externalId",
        ),
        (
            Method::POST,
            "/scim/v2/acme/Users",
            user("bob", json!({"title": very_long})).to_string(),
            "title",
        ),
        (
            Method::PUT,
            &ada,
            user("ada", json!({"displayName": "Ada\u{0}"})).to_string(),
            "displayName",
        ),
        (
            Method::PUT,
            &ada,
            user("ada", json!({"displayName": long})).to_string(),
            "displayName",
        ),
        (
            Method::PATCH,
            &ada,
            patch(json!([{"op": "replace", "path": "title", "value": "Lead\u{0}"}])),
            "Operations[0].value",
        ),
        (
            Method::PATCH,
            &ada,
            patch(json!([{"op": "replace", "value": {"name.familyName": long}}])),
            "name.familyName",
        ),
        (
            Method::PATCH,
            &ops,
            patch(json!([{"op": "replace", "path": "displayName", "value": long}])),
            "displayName",
        ),
        (
            Method::PATCH,
            &ops,
            patch(json!([{"op": "replace", "path": "externalId", "value": "e\u{0}"}])),
            "Operations[0].value",
        ),
        (
            Method::PUT,
            &ops,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "O\u{0}ps"})
                .to_string(),
            "displayName",
        ),
        (
            Method::POST,
            "/scim/v2/acme/Bulk",
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [{"method": "POST", "path": "/Users", "bulkId": "b1",
                                "data": user("carol\u{0}", json!({}))}],
            })
            .to_string(),
            "Operations[0].data.",
        ),
        (
            Method::GET,
            "/scim/v2/acme/Users?filter=userName%20eq%20%22a%00%22",
            String::new(),
            "filter",
        ),
    ];
    for (method, path, body, field) in attacks {
        let (status, error) = scim(&app, method.clone(), path, &secret, &body).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}: {error}"
        );
        assert_eq!(error["schemas"][0], SCIM_ERROR, "{error}");
        assert_eq!(error["scimType"], "invalidValue", "{error}");
        let detail = error["detail"].as_str().unwrap();
        assert!(detail.contains(field), "{detail:?} names {field}");
    }
    // Nothing changed, nothing was created.
    assert_eq!(app.get(&ada, &secret).await.body, before_ada);
    assert_eq!(app.get(&ops, &secret).await.body, before_ops);
    let r = app.get("/scim/v2/acme/Users", &secret).await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    let r = app.get("/scim/v2/acme/Groups", &secret).await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);

    // At the limit is accepted: the limits are exact.
    let at_limit = "z".repeat(256);
    let r = app
        .post(
            "/scim/v2/acme/Users",
            &secret,
            user("dora", json!({"externalId": at_limit})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    app.stop().await;
}

/// An admin API refusal: 400 `invalid_input`, whose message names `field`.
fn refused_naming(r: &crate::harness::Response, field: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.code(), "invalid_input", "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(field), "{message:?} names {field}");
}

async fn api_and_pages_refuse_nul_characters(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    // The admin API: JSON error naming the field.
    let r = app
        .post(
            "/api/v1/orgs/acme/teams",
            &admin.token,
            json!({"name": "Infra\u{0}"}),
        )
        .await;
    refused_naming(&r, "name");
    let r = app
        .post(
            "/api/v1/orgs/acme/invitations",
            &admin.token,
            json!({"emails": ["a@acme.test", "b\u{0}@acme.test"]}),
        )
        .await;
    refused_naming(&r, "emails[1]");
    let r = app.get("/api/v1/orgs/acme/teams", &admin.token).await;
    assert_eq!(r.body.as_array().unwrap().len(), 0, "{}", r.body);
    let r = app.get("/api/v1/orgs/acme/invitations", &admin.token).await;
    let listed = &r.body["data"];
    assert_eq!(listed.as_array().unwrap().len(), 0, "{}", r.body);

    // A query parameter, named as such.
    let r = app
        .get("/api/v1/orgs/acme/members?q=ad%00min", &admin.token)
        .await;
    refused_naming(&r, "query parameter q");

    // Pages: a page saying which field, not a 500 (org slugs in SSO paths too).
    for path in [
        "/saml/ac%00me/login",
        "/oidc/ac%00me/login",
        "/saml/ac%00me/metadata",
    ] {
        let r = Browser::new(&app).get(path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        assert!(
            r.body.contains("path contains a NUL character"),
            "{}",
            r.body
        );
    }
    let forgot = Browser::new(&app);
    let csrf = forgot.get("/password/forgot").await.csrf();
    let r = forgot
        .post(
            "/password/forgot",
            &[("csrf", &csrf), ("email", "admin@acme.test\u{0}")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(app.deliver_mail().await, 0, "no reset mail went out");
    app.set_password("admin@acme.test", "correct horse battery staple")
        .await;
    let browser = Browser::new(&app);
    let csrf = browser.get("/login").await.csrf();
    let r = browser
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", "admin\u{0}@acme.test"),
                ("password", "x"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body.contains("email contains a NUL character"),
        "{}",
        r.body
    );
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let r = browser
        .sign_in("admin@acme.test", "correct horse battery staple")
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let csrf = browser.get("/orgs/acme/teams").await.csrf();
    let r = browser
        .post(
            "/orgs/acme/teams",
            &[("csrf", &csrf), ("name", "Pla\u{0}tform")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body.contains("name contains a NUL character"),
        "{}",
        r.body
    );
    let r = app.get("/api/v1/orgs/acme/teams", &admin.token).await;
    assert_eq!(r.body.as_array().unwrap().len(), 0, "{}", r.body);
    app.stop().await;
}

/// A 5,000-character address on the pages anyone can reach is answered as any unknown
/// address is: it once overflowed the rate-limit key's index on PostgreSQL (500).
async fn overlong_addresses_on_public_pages_are_ordinary_failures(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    app.bootstrap("acme", "admin@acme.test").await;
    // Letters that do not repeat in a pattern: PostgreSQL compresses index entries, so a
    // run of one letter would fit where a real address of this length does not.
    let mut seed = 0x2545_f491_u64;
    let local: String = (0..5000)
        .map(|_| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            char::from(b'a' + ((seed >> 33) % 26) as u8)
        })
        .collect();
    let long = format!("{local}@acme.test");
    for page in ["/login", "/password/forgot"] {
        let browser = Browser::new(&app);
        let mut answers = Vec::new();
        for email in ["nobody@acme.test", long.as_str()] {
            let csrf = browser.get(page).await.csrf();
            let r = browser
                .post(
                    page,
                    &[("csrf", &csrf), ("email", email), ("password", "x")],
                )
                .await;
            assert_ne!(
                r.status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{page}: {}",
                r.body
            );
            answers.push(r.status);
        }
        assert_eq!(answers[0], answers[1], "{page}");
    }
    app.stop().await;
}

crate::backend_tests!(
    scim_requests_with_nul_or_overlong_values_are_refused,
    api_and_pages_refuse_nul_characters,
    overlong_addresses_on_public_pages_are_ordinary_failures,
);
