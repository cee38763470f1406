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
            {"slug": "acme", "name": "acme", "is_admin": false,
             "teams": [{"id": team, "name": "Platform", "source": "manual"}]},
            {"slug": "globex", "name": "globex", "is_admin": true, "teams": []}
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
    let (_, secret) =
        rollcall::store::credentials::create_token(&mut tx, admin.id, "old", Some(past))
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

crate::backend_tests!(
    me_shows_orgs_teams_and_admin_flags,
    personal_tokens,
    expired_tokens_do_not_authenticate,
);
