//! Races that must not break invariants, on both backends.

use reqwest::StatusCode;
use serde_json::json;

use rollcall::store::{members, orgs};

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
    concurrent_team_creation_creates_one
);
