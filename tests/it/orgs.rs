use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, TestApp};

async fn org_settings_and_audit_paging(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let bob = app.add_member("acme", "bob@acme.test", false).await;
    let t = &admin.token;

    let r = app.get("/api/v1/orgs/acme", t).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["slug"], "acme");
    assert_eq!(r.body["require_2fa"], false);
    let r = app.get("/api/v1/orgs/acme", &bob.token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = app
        .patch(
            "/api/v1/orgs/acme",
            t,
            json!({"require_2fa": true, "name": "Acme Corp"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["require_2fa"], true);
    assert_eq!(r.body["sso_enforced"], false);
    assert_eq!(r.body["name"], "Acme Corp");
    for bad in [
        json!({"slug": "new"}),
        json!({"name": " "}),
        json!({"require_2fa": 1}),
    ] {
        let r = app.patch("/api/v1/orgs/acme", t, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // Make 5 more events, then page through all 7, newest first, with no gaps or repeats.
    for i in 0..5 {
        app.create_team("acme", t, &format!("team {i}")).await;
    }
    let mut seen = Vec::new();
    let mut path = "/api/v1/orgs/acme/audit?limit=3".to_string();
    loop {
        let r = app.get(&path, t).await;
        assert_eq!(r.status, StatusCode::OK);
        for e in r.body["data"].as_array().unwrap() {
            seen.push(e["id"].as_i64().unwrap());
        }
        match r.body["next_cursor"].as_i64() {
            Some(c) => path = format!("/api/v1/orgs/acme/audit?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");

    let r = app.get("/api/v1/orgs/acme/audit?limit=1", t).await;
    let e = &r.body["data"][0];
    assert_eq!(e["action"], "team.created");
    assert_eq!(e["actor"], "admin@acme.test (token \"bootstrap\")");
    assert!(e["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(e["after"]["name"], "team 4");

    let r = app.get("/api/v1/orgs/acme/audit", &bob.token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app.get("/api/v1/orgs/acme/audit?cursor=0", t).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Another org's trail is not visible.
    let other = app.bootstrap("other", "root@other.test").await;
    let r = app.get("/api/v1/orgs/acme/audit", &other.token).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.get("/api/v1/orgs/other/audit", &other.token).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    app.stop().await;
}

crate::backend_tests!(
    org_settings_and_audit_paging,
    scim_tokens_are_shown_once_and_revocable,
);

async fn scim_tokens_are_shown_once_and_revocable(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let member = app.add_member("acme", "bob@acme.test", false).await;
    let other = app.bootstrap("other", "root@other.test").await;
    let t = &admin.token;
    let r = app
        .post(
            "/api/v1/orgs/acme/connections",
            t,
            json!({"kind": "saml", "name": "Okta"}),
        )
        .await;
    let okta = r.body["id"].as_i64().unwrap();
    let r = app
        .post(
            "/api/v1/orgs/other/connections",
            &other.token,
            json!({"kind": "saml", "name": "Their Okta"}),
        )
        .await;
    let foreign = r.body["id"].as_i64().unwrap();

    let r = app
        .post(
            "/api/v1/orgs/acme/scim-tokens",
            t,
            json!({"name": "Okta production", "connection_id": okta}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let id = r.body["id"].as_i64().unwrap();
    assert!(
        secret.starts_with("rc_scim_")
            && secret.starts_with(r.body["display_prefix"].as_str().unwrap())
    );
    assert_eq!(r.body["connection_id"], okta);
    app.post(
        "/api/v1/orgs/acme/scim-tokens",
        t,
        json!({"name": "Entra", "connection_id": okta}),
    )
    .await;
    let r = app
        .post(
            "/api/v1/orgs/acme/scim-tokens",
            t,
            json!({"name": "x", "connection_id": foreign}),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "another org's connection");

    let r = app.get("/api/v1/orgs/acme/scim-tokens", t).await;
    let names: Vec<_> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Entra", "Okta production"]);
    assert!(!r.body.to_string().contains(&secret), "never shown again");

    // A SCIM token is not an API token, and belongs to its org only.
    assert_eq!(
        app.get("/api/v1/me", &secret).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/orgs/acme/scim-tokens", &member.token)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(
            &format!("/api/v1/orgs/other/scim-tokens/{id}"),
            &other.token
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    for bad in [
        json!({"name": "", "connection_id": okta}),
        json!({"name": "x"}),
        json!({"name": "x", "connection_id": okta, "scopes": []}),
    ] {
        assert_eq!(
            app.post("/api/v1/orgs/acme/scim-tokens", t, bad)
                .await
                .status,
            StatusCode::BAD_REQUEST
        );
    }

    assert_eq!(
        app.delete(&format!("/api/v1/orgs/acme/scim-tokens/{id}"), t)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("/api/v1/orgs/acme/scim-tokens/{id}"), t)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = app.get("/api/v1/orgs/acme/scim-tokens", t).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    let mut tx = app.store.begin().await.unwrap();
    assert!(
        rollcall::store::scim_tokens::authenticate(&mut tx, &secret)
            .await
            .unwrap()
            .is_none(),
        "revoked"
    );
    drop(tx);
    let r = app.get("/api/v1/orgs/acme/audit?limit=1", t).await;
    assert_eq!(r.body["data"][0]["action"], "scim_token.revoked");
    app.stop().await;
}
