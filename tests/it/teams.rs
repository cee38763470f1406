use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, TestApp};

async fn team_lifecycle(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let bob = app.add_member("acme", "bob@acme.test", false).await;
    let t = &admin.token;

    let r = app
        .post(
            "/api/v1/orgs/acme/teams",
            t,
            json!({"name": "  Data Science "}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["name"], "Data Science");
    assert_eq!(r.body["member_count"], 0);
    let ds = r.body["id"].as_i64().unwrap();
    let ml = app.create_team("acme", t, "ML").await;

    // Names are unique per org, case-insensitively; other orgs may reuse them.
    let r = app
        .post(
            "/api/v1/orgs/acme/teams",
            t,
            json!({"name": "data science"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "team_name_taken");
    let other = app.bootstrap("other", "root@other.test").await;
    app.create_team("other", &other.token, "Data Science").await;

    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({}),
        json!({"name": 5}),
    ] {
        let r = app.post("/api/v1/orgs/acme/teams", t, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // Members: add (201), add again (204, unchanged), list, a non-member (404).
    let members = format!("/api/v1/orgs/acme/teams/{ds}/members");
    let r = app.put(&format!("{members}/{}", bob.id), t, None).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app.put(&format!("{members}/{}", bob.id), t, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.put(&format!("{members}/{}", other.id), t, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .put(
            &format!("/api/v1/orgs/acme/teams/9999/members/{}", bob.id),
            t,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.get(&members, t).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert_eq!(r.body[0]["user"]["email"], "bob@acme.test");
    assert_eq!(r.body[0]["source"], "manual");

    let r = app.get("/api/v1/orgs/acme/teams", t).await;
    let listed: Vec<_> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                t["member_count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [("Data Science", 1), ("ML", 0)]);

    // Rename; to a taken name is a conflict.
    let path = format!("/api/v1/orgs/acme/teams/{ds}");
    let r = app
        .patch(&path, t, json!({"name": "Applied Science"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["name"], "Applied Science");
    let r = app.patch(&path, t, json!({"name": "ml"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app.get(&path, t).await;
    assert_eq!(r.body["name"], "Applied Science");

    // Remove a member; removing again is 404.
    let r = app.delete(&format!("{members}/{}", bob.id), t).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.delete(&format!("{members}/{}", bob.id), t).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Delete the team; its memberships go with it.
    app.put(
        &format!("/api/v1/orgs/acme/teams/{ml}/members/{}", bob.id),
        t,
        None,
    )
    .await;
    let r = app
        .delete(&format!("/api/v1/orgs/acme/teams/{ml}"), t)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.get(&format!("/api/v1/orgs/acme/teams/{ml}"), t).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .get(&format!("/api/v1/orgs/acme/members/{}", bob.id), t)
        .await;
    assert_eq!(r.body["teams"], json!([]));

    // Non-admins manage no teams.
    let r = app
        .post(
            "/api/v1/orgs/acme/teams",
            &bob.token,
            json!({"name": "Mine"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = app.get("/api/v1/orgs/acme/audit", t).await;
    let actions: Vec<_> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "team.deleted",
            "team.member_added",
            "team.member_removed",
            "team.renamed",
            "team.member_added",
            "team.created",
            "team.created",
            "org.bootstrapped",
        ]
    );
    app.stop().await;
}

crate::backend_tests!(team_lifecycle);
