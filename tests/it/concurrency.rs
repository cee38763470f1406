//! Races that must not break invariants, on both backends.

use reqwest::StatusCode;
use serde_json::json;

use rollcall::store::{members, orgs, Store};
use sqlx::Connection;

use crate::harness::{Backend, TestApp};

/// Two admins demote each other at the same moment: one wins, the org keeps an admin.
async fn mutual_demotion_keeps_an_admin(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    for round in 0..6 {
        let slug = format!("org{round}");
        let a = app
            .bootstrap(&slug, &format!("a{round}@example.test"))
            .await;
        let b = app
            .add_member(&slug, &format!("b{round}@example.test"), true)
            .await;
        let (path_a, path_b) = (
            format!("/api/v1/orgs/{slug}/members/{}", a.id),
            format!("/api/v1/orgs/{slug}/members/{}", b.id),
        );
        let demote_b = app.patch(&path_b, &a.token, json!({"is_admin": false}));
        let demote_a = app.patch(&path_a, &b.token, json!({"is_admin": false}));
        let (r1, r2) = tokio::join!(demote_b, demote_a);
        let mut statuses = [r1.status, r2.status];
        statuses.sort();
        // The loser is refused either as the last admin (409) or, if the winner's demotion
        // committed before the loser's request was authorised, as a non-admin (403).
        assert_eq!(statuses[0], StatusCode::OK, "round {round}: {statuses:?}");
        assert!(
            statuses[1] == StatusCode::CONFLICT || statuses[1] == StatusCode::FORBIDDEN,
            "round {round}: {statuses:?} {:?} {:?}",
            r1.body,
            r2.body
        );
        let mut tx = app.store.read().await.unwrap();
        let org = orgs::by_slug(&mut tx, &slug).await.unwrap().unwrap();
        let mut active_admins = 0;
        for id in [a.id, b.id] {
            let member = members::require(&mut tx, org.id, id).await.unwrap();
            if member.is_admin && member.status == rollcall::store::members::Status::Active {
                active_admins += 1;
            }
        }
        drop(tx);
        assert_eq!(active_admins, 1, "round {round}");
    }
    app.stop().await;
}

/// Many requests create the same team at once: one is created, the rest are told why not.
async fn concurrent_team_creation_creates_one(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let requests = (0..8).map(|i| {
        let name = if i % 2 == 0 { "Infra" } else { "INFRA" };
        app.post(
            "/api/v1/orgs/acme/teams",
            &admin.token,
            json!({ "name": name }),
        )
    });
    let responses = futures::future::join_all(requests).await;
    let created = responses
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let conflicts = responses
        .iter()
        .filter(|r| r.code() == "team_name_taken")
        .count();
    assert_eq!(
        (created, conflicts),
        (1, 7),
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let r = app.get("/api/v1/orgs/acme/teams", &admin.token).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    app.stop().await;
}

crate::backend_tests!(
    mutual_demotion_keeps_an_admin,
    concurrent_team_creation_creates_one,
    if_match_holds_under_concurrent_writes,
    concurrent_group_patches_never_fail,
    a_database_outage_is_a_503_in_every_shape,
);

/// A pooled PostgreSQL connection whose server process went away while it sat idle (a
/// restart, a proxy's idle cut) is found out and replaced before a request gets it: the
/// pool no longer pings every connection it hands out, only those idle a while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_dropped_while_idle_are_replaced() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    assert_eq!(
        app.get("/api/v1/me", &admin.token).await.status,
        StatusCode::OK
    );
    let Store::Postgres(pool) = &app.store else {
        unreachable!("a PostgreSQL backend")
    };
    // Every connection the pool holds, each asked for its server process.
    let mut held = Vec::new();
    for _ in 0..pool.size() {
        held.push(pool.acquire().await.unwrap());
    }
    let mut pids = Vec::new();
    for conn in &mut held {
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut **conn)
            .await
            .unwrap();
        pids.push(pid);
    }
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let Backend::Postgres(admin_url) = &backend else {
        unreachable!()
    };
    let mut other = sqlx::PgConnection::connect(admin_url).await.unwrap();
    for pid in &pids {
        let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut other)
            .await
            .unwrap();
        assert!(ended, "process {pid}");
    }
    other.close().await.unwrap();
    for _ in 0..3 {
        let r = app.get("/api/v1/me", &admin.token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    app.stop().await;
}

async fn scim_setup(app: &TestApp) -> (crate::harness::Person, String) {
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let (_, secret) = crate::scim::scim_token(app, "acme", &admin.token).await;
    (admin, secret)
}

fn user(name: &str) -> serde_json::Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("{name}@example.test"),
           "emails": [{"value": format!("{name}@example.test"), "primary": true}]})
}

/// Two writes carrying the same `If-Match`: one wins, the other is told its version is
/// stale (412), never silently overwritten.
async fn if_match_holds_under_concurrent_writes(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (_, secret) = scim_setup(&app).await;
    let r = app
        .post("/scim/v2/acme/Users", &secret, user("raced"))
        .await;
    let path = format!("/scim/v2/acme/Users/{}", r.body["id"].as_str().unwrap());
    for round in 0..10 {
        let etag = app.get(&path, &secret).await.headers["etag"]
            .to_str()
            .unwrap()
            .to_string();
        let patch = |title: String| {
            let app = &app;
            let (path, secret, etag) = (path.clone(), secret.clone(), etag.clone());
            async move {
                app.client
                    .patch(app.url(&path))
                    .bearer_auth(&secret)
                    .header("if-match", etag)
                    .header("content-type", "application/scim+json")
                    .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                  "Operations": [{"op": "replace", "path": "title", "value": title}]}))
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        let (a, b) = tokio::join!(patch(format!("a{round}")), patch(format!("b{round}")));
        let mut statuses = [a, b];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::PRECONDITION_FAILED],
            "round {round}"
        );
    }
    app.stop().await;
}

/// Concurrent PATCHes adding the same twenty members to a group in opposite orders: every
/// one succeeds (a lost deadlock is replayed), and each member is there once.
async fn concurrent_group_patches_never_fail(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (_, secret) = scim_setup(&app).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let r = app
            .post("/scim/v2/acme/Users", &secret, user(&format!("m{i}")))
            .await;
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    let r = app
        .post(
            "/scim/v2/acme/Groups",
            &secret,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Raced"}),
        )
        .await;
    let path = format!("/scim/v2/acme/Groups/{}", r.body["id"].as_str().unwrap());
    let patches = (0..24).map(|n| {
        let mut order = ids.clone();
        if n % 2 == 1 {
            order.reverse();
        }
        let members: Vec<_> = order.iter().map(|id| json!({"value": id})).collect();
        app.patch(
            &path,
            &secret,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "add", "path": "members", "value": members}]}),
        )
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(patches)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    assert!(
        statuses.iter().all(|s| *s == StatusCode::NO_CONTENT),
        "{statuses:?}"
    );
    let r = app.get(&path, &secret).await;
    assert_eq!(
        r.body["members"].as_array().unwrap().len(),
        20,
        "{}",
        r.body
    );
    app.stop().await;
}

/// With the database gone, every front door answers 503 with Retry-After in its own shape.
async fn a_database_outage_is_a_503_in_every_shape(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, secret) = scim_setup(&app).await;
    app.store.close().await;
    let r = app.get("/api/v1/me", &admin.token).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "unavailable");
    assert_eq!(r.headers["retry-after"], "5");
    let r = app.get("/scim/v2/acme/Users", &secret).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(
        r.body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(r.headers["retry-after"], "5");
    let browser = crate::harness::Browser::new(&app);
    browser.set_cookie("rollcall_session", "rc_ses_whatever");
    let r = browser.get("/").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert!(r.body.contains("unavailable for a moment"), "{}", r.body);
    assert_eq!(r.headers["retry-after"], "5");
}
