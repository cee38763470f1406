use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Backend, TestApp};

async fn me_shows_orgs_teams_and_admin_flags(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    app.bootstrap("globex", "admin@globex.test").await;
    let ana = app.add_member("acme", "ana@example.test", false).await;
    app.add_member("globex", "ana@example.test", true).await;
    let team = app.create_team("acme", &admin.token, "Platform").await;
    app.put(
        &format!("/api/v1/orgs/acme/teams/{team}/members/{}", ana.id),
        &admin.token,
        None,
    )
    .await;

    let r = app.get("/api/v1/me", &ana.token).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["user"]["email"], "ana@example.test");
    assert_eq!(
        r.body["orgs"],
        json!([
                        {"slug": "acme", "name": "acme", "is_admin": false, "sso_enforced": false,
             "teams": [{"id": team, "name": "Platform", "source": "manual"}]},
            {"slug": "globex", "name": "globex", "is_admin": true, "sso_enforced": false, "teams": []}
        ])
    );

    // Sessions authenticate like tokens.
    let session = app.session_for(ana.id).await;
    let r = app
        .client
        .get(app.url("/api/v1/me"))
        .header("cookie", format!("theme=dark; rollcall_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = app.request(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "unauthorized");
    assert!(r.headers.get("www-authenticate").is_some());
    for bad in ["rc_pat_not-a-real-token", "", "x"] {
        let r = app.get("/api/v1/me", bad).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad:?}");
    }
    let r = app
        .client
        .get(app.url("/api/v1/me"))
        .header("authorization", format!("Basic {}", admin.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn personal_tokens(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let bob = app.add_member("acme", "bob@acme.test", false).await;

    let r = app
        .post(
            "/api/v1/me/tokens",
            &bob.token,
            json!({"name": "laptop", "expires_in_days": 30}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let id = r.body["id"].as_i64().unwrap();
    assert!(secret.starts_with("rc_pat_"));
    assert!(secret.starts_with(r.body["display_prefix"].as_str().unwrap()));
    assert!(r.body["expires_at"].is_string());

    // Shown once: the listing has no secret; the new token works and its use is recorded.
    let r = app.get("/api/v1/me", &secret).await;
    assert_eq!(r.body["user"]["email"], "bob@acme.test");
    let r = app.get("/api/v1/me/tokens", &bob.token).await;
    let laptop = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap();
    assert!(laptop.get("secret").is_none());
    assert_eq!(laptop["name"], "laptop");
    assert!(laptop["last_used_at"].is_string(), "{laptop}");
    assert!(!r.body.to_string().contains(&secret));

    // Stored hashed: the database never holds the secret.
    let sql = "SELECT secret_hash FROM api_tokens WHERE id = $1";
    let stored: String = match &app.store {
        rollcall::store::Store::Sqlite(pool) => {
            sqlx::query_scalar(sql).bind(id).fetch_one(pool).await
        }
        rollcall::store::Store::Postgres(pool) => {
            sqlx::query_scalar(sql).bind(id).fetch_one(pool).await
        }
    }
    .unwrap();
    assert_eq!(stored, rollcall::secrets::hash(&secret));
    assert!(!stored.contains(&secret[7..]));

    // Someone else's token is not yours to revoke.
    let r = app
        .delete(&format!("/api/v1/me/tokens/{id}"), &admin.token)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .delete(&format!("/api/v1/me/tokens/{id}"), &bob.token)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/me", &secret).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .delete(&format!("/api/v1/me/tokens/{id}"), &bob.token)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.get("/api/v1/me/tokens", &bob.token).await;
    assert!(r.body.as_array().unwrap().iter().all(|t| t["id"] != id));

    for bad in [
        json!({"name": ""}),
        json!({"name": "x", "expires_in_days": 0}),
        json!({"name": "x", "scope": "all"}),
        json!({"name": "x", "expires_in_days": -1}),
    ] {
        let r = app.post("/api/v1/me/tokens", &bob.token, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
    }
    app.stop().await;
}

async fn expired_tokens_do_not_authenticate(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let mut tx = app.store.begin().await.unwrap();
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    let (_, secret) = rollcall::store::credentials::create_token(
        &mut tx,
        admin.id,
        "old",
        Some(past),
        rollcall::store::credentials::Method::Password,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        app.get("/api/v1/me", &secret).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app.get("/api/v1/me/tokens", &admin.token).await;
    assert!(r
        .body
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["name"] != "old"));
    app.stop().await;
}

/// An org that enforces single sign-on admits only credentials from a single sign-on (and
/// the operator's bootstrap token, to repair SSO settings); password ones, and tokens minted
/// from them, do not reach it.
async fn sso_enforcement_admits_sso_credentials_only(backend: Backend) {
    use rollcall::store::credentials::{self, Method};
    let app = TestApp::spawn(&backend).await;
    let operator = app.bootstrap("acme", "admin@acme.test").await;
    app.bootstrap("globex", "root@globex.test").await;
    let bob = app.add_member("acme", "bob@example.test", true).await;
    app.add_member("globex", "bob@example.test", false).await;
    let mut tx = app.store.begin().await.unwrap();
    let sso_session =
        credentials::create_session(&mut tx, bob.id, chrono::Duration::hours(1), Method::Sso)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    let password_session = app.session_for(bob.id).await;
    let r = app
        .patch(
            "/api/v1/orgs/acme",
            &operator.token,
            json!({"sso_enforced": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let with_cookie = |secret: String, path: &'static str| {
        let client = app.client.clone();
        let url = app.url(path);
        async move {
            let r = client
                .get(url)
                .header("cookie", format!("rollcall_session={secret}"))
                .send()
                .await
                .unwrap();
            (
                r.status(),
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let slugs = |me: &serde_json::Value| -> Vec<String> {
        me["orgs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["slug"].as_str().unwrap().to_string())
            .collect()
    };

    // Password credentials: acme is out of reach, globex is not.
    let r = app.get("/api/v1/me", &bob.token).await;
    assert_eq!(slugs(&r.body), ["globex"]);
    let r = app.get("/api/v1/orgs/acme/members", &bob.token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("requires single sign-on"));
    let (status, me) = with_cookie(password_session.clone(), "/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(slugs(&me), ["globex"]);

    // The SSO session reaches it, and says the org enforces SSO.
    let (status, me) = with_cookie(sso_session.clone(), "/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(slugs(&me), ["acme", "globex"]);
    assert_eq!(me["orgs"][0]["sso_enforced"], true);
    let (status, _) = with_cookie(sso_session.clone(), "/api/v1/orgs/acme/members").await;
    assert_eq!(status, StatusCode::OK);

    // A token is worth what the credential that made it was worth.
    let r = app
        .client
        .post(app.url("/api/v1/me/tokens"))
        .header("cookie", format!("rollcall_session={sso_session}"))
        .json(&json!({"name": "from sso"}))
        .send()
        .await
        .unwrap();
    let sso_token = r.json::<serde_json::Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.get("/api/v1/orgs/acme/members", &sso_token)
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .post(
            "/api/v1/me/tokens",
            &bob.token,
            json!({"name": "from password"}),
        )
        .await;
    let laundered = r.body["secret"].as_str().unwrap().to_string();
    assert_eq!(
        app.get("/api/v1/orgs/acme/members", &laundered)
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // The operator's bootstrap token is break-glass access.
    assert_eq!(
        app.get("/api/v1/orgs/acme/members", &operator.token)
            .await
            .status,
        StatusCode::OK
    );
    app.stop().await;
}

crate::backend_tests!(
    sso_enforcement_admits_sso_credentials_only,
    me_shows_orgs_teams_and_admin_flags,
    personal_tokens,
    expired_tokens_do_not_authenticate,
);
