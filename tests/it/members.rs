use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Backend, TestApp};

async fn list_paginates_searches_and_filters(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    for name in ["dora", "bob", "Carol", "erin"] {
        app.add_member("acme", &format!("{name}@acme.test"), false)
            .await;
    }
    let mut emails = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/orgs/acme/members?limit=2&cursor={c}"),
            None => "/api/v1/orgs/acme/members?limit=2".to_string(),
        };
        let r = app.get(&path, &admin.token).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        pages += 1;
        for m in r.body["data"].as_array().unwrap() {
            emails.push(m["user"]["email"].as_str().unwrap().to_string());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        emails,
        [
            "admin@acme.test",
            "bob@acme.test",
            "Carol@acme.test",
            "dora@acme.test",
            "erin@acme.test"
        ]
    );

    // Search is case-insensitive over email and display name; % is matched literally.
    let r = app
        .get("/api/v1/orgs/acme/members?q=CAROL", &admin.token)
        .await;
    let found: Vec<_> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user"]["email"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["Carol@acme.test"]);
    let r = app
        .get("/api/v1/orgs/acme/members?q=display%20bob", &admin.token)
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    let r = app
        .get("/api/v1/orgs/acme/members?q=%25", &admin.token)
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0);

    // Status filter.
    let bob = r_id(&app, &admin.token, "bob@acme.test").await;
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/members/{bob}"),
            &admin.token,
            json!({"status": "suspended"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let r = app
        .get("/api/v1/orgs/acme/members?status=suspended", &admin.token)
        .await;
    let data = r.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["user"]["email"], "bob@acme.test");
    assert_eq!(data[0]["status"], "suspended");

    // Bad input.
    for bad in [
        "limit=0",
        "limit=201",
        "limit=x",
        "cursor=!!!",
        "status=gone",
        "sort=email",
    ] {
        let r = app
            .get(&format!("/api/v1/orgs/acme/members?{bad}"), &admin.token)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
        assert_eq!(r.code(), "invalid_input", "{bad}");
    }
    app.stop().await;
}

async fn r_id(app: &TestApp, token: &str, email: &str) -> i64 {
    let r = app
        .get(&format!("/api/v1/orgs/acme/members?q={email}"), token)
        .await;
    r.body["data"][0]["user"]["id"].as_i64().expect("member id")
}

async fn get_member_and_errors(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let bob = app.add_member("acme", "bob@acme.test", false).await;
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/members/{}", bob.id),
            &admin.token,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["user"]["email"], "bob@acme.test");
    assert_eq!(r.body["is_admin"], false);
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["source"], "manual");
    assert_eq!(r.body["teams"], json!([]));

    let r = app
        .get("/api/v1/orgs/acme/members/99999", &admin.token)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
    let r = app.get("/api/v1/orgs/acme/members/bob", &admin.token).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // A member who is not an admin: 403. Someone outside the org: 404, as for a missing org.
    let r = app.get("/api/v1/orgs/acme/members", &bob.token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "forbidden");
    let outsider = app.bootstrap("other", "root@other.test").await;
    let r = app.get("/api/v1/orgs/acme/members", &outsider.token).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.get("/api/v1/orgs/nosuch/members", &admin.token).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Another org's member is not reachable through this org.
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/members/{}", outsider.id),
            &admin.token,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .request(Method::GET, "/api/v1/orgs/acme/members", None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn promote_demote_and_last_admin(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let bob = app.add_member("acme", "bob@acme.test", false).await;
    let bob_path = format!("/api/v1/orgs/acme/members/{}", bob.id);
    let admin_path = format!("/api/v1/orgs/acme/members/{}", admin.id);

    // The last admin can be neither demoted, suspended nor removed.
    for body in [json!({"is_admin": false}), json!({"status": "suspended"})] {
        let r = app.patch(&admin_path, &admin.token, body).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
        assert_eq!(r.code(), "last_admin");
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("last admin"));
    }
    let r = app.delete(&admin_path, &admin.token).await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    // Promote bob; he can now act as admin. Then the first admin may step down.
    let r = app
        .patch(&bob_path, &admin.token, json!({"is_admin": true}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["is_admin"], true);
    assert_eq!(
        app.get("/api/v1/orgs/acme/members", &bob.token)
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .patch(&admin_path, &admin.token, json!({"is_admin": false}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Demoted: no admin rights from the next request on.
    let r = app.get("/api/v1/orgs/acme/members", &admin.token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Bob is now the only admin.
    let r = app
        .patch(&bob_path, &bob.token, json!({"is_admin": false}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    for bad in [
        json!({}),
        json!({"is_admin": "yes"}),
        json!({"role": "admin"}),
        json!({"status": "deleted"}),
    ] {
        let r = app.patch(&bob_path, &bob.token, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
    }

    let r = app.get("/api/v1/orgs/acme/audit", &bob.token).await;
    let actions: Vec<_> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["member.demoted", "member.promoted", "org.bootstrapped"]
    );
    let demoted = &r.body["data"][0];
    assert_eq!(demoted["before"]["is_admin"], true);
    assert_eq!(demoted["after"]["is_admin"], false);
    assert_eq!(demoted["actor_user_id"], admin.id);
    app.stop().await;
}

async fn removal_cuts_access_at_once(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let eve = app.add_member("acme", "eve@acme.test", true).await;
    let eve_session = app.session_for(eve.id).await;
    let team = app.create_team("acme", &admin.token, "Research").await;
    let r = app
        .put(
            &format!("/api/v1/orgs/acme/teams/{team}/members/{}", eve.id),
            &admin.token,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        app.get("/api/v1/orgs/acme/members", &eve.token)
            .await
            .status,
        StatusCode::OK
    );

    let r = app
        .delete(
            &format!("/api/v1/orgs/acme/members/{}", eve.id),
            &admin.token,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.body, serde_json::Value::Null);

    // Eve belonged to no other org: her token and her session stopped working with that
    // response, and her team membership went with the membership.
    let r = app.get("/api/v1/me", &eve.token).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = app
        .client
        .get(app.url("/api/v1/me"))
        .header("cookie", format!("rollcall_session={eve_session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/teams/{team}/members"),
            &admin.token,
        )
        .await;
    assert_eq!(r.body, json!([]));
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/members/{}", eve.id),
            &admin.token,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .delete(
            &format!("/api/v1/orgs/acme/members/{}", eve.id),
            &admin.token,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = app
        .get("/api/v1/orgs/acme/audit?limit=1", &admin.token)
        .await;
    let event = &r.body["data"][0];
    assert_eq!(event["action"], "member.removed");
    assert_eq!(event["before"]["user"]["email"], "eve@acme.test");
    assert_eq!(event["before"]["teams"][0]["name"], "Research");
    app.stop().await;
}

async fn removal_from_one_org_keeps_the_others(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let acme = app.bootstrap("acme", "admin@acme.test").await;
    app.bootstrap("globex", "admin@globex.test").await;
    let sam = app.add_member("acme", "sam@example.test", true).await;
    app.add_member("globex", "sam@example.test", true).await;

    let r = app
        .delete(
            &format!("/api/v1/orgs/acme/members/{}", sam.id),
            &acme.token,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Acme is closed to Sam at once; Globex, where he is still an admin, is not.
    let r = app.get("/api/v1/orgs/acme/members", &sam.token).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.get("/api/v1/orgs/globex/members", &sam.token).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.get("/api/v1/me", &sam.token).await;
    let slugs: Vec<_> = r.body["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["globex"]);
    app.stop().await;
}

async fn suspension_cuts_access_and_reactivation_restores_membership(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let kim = app.add_member("acme", "kim@acme.test", true).await;
    let path = format!("/api/v1/orgs/acme/members/{}", kim.id);
    let r = app
        .patch(&path, &admin.token, json!({"status": "suspended"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "suspended");
    // Her only membership is suspended: her credentials were revoked with it.
    assert_eq!(
        app.get("/api/v1/me", &kim.token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .patch(&path, &admin.token, json!({"status": "active"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["is_admin"], true);
    let r = app
        .get("/api/v1/orgs/acme/audit?limit=2", &admin.token)
        .await;
    assert_eq!(r.body["data"][0]["action"], "member.reactivated");
    assert_eq!(r.body["data"][1]["action"], "member.suspended");
    app.stop().await;
}

async fn replace_teams_is_exact_and_all_or_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let bob = app.add_member("acme", "bob@acme.test", false).await;
    let a = app.create_team("acme", &admin.token, "Alpha").await;
    let b = app.create_team("acme", &admin.token, "Beta").await;
    let c = app.create_team("acme", &admin.token, "Gamma").await;
    let path = format!("/api/v1/orgs/acme/members/{}/teams", bob.id);

    let r = app
        .put(&path, &admin.token, Some(json!({"team_ids": [a, b]})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let names: Vec<_> = r.body["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["source"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("Alpha", "manual"), ("Beta", "manual")]);

    // A team in another org, or no team at all: refused, and nothing changes.
    app.bootstrap("other", "root@other.test").await;
    let mut tx = app.store.begin().await.unwrap();
    let other = rollcall::store::orgs::by_slug(&mut tx, "other")
        .await
        .unwrap()
        .unwrap();
    let foreign = rollcall::store::teams::create(&mut tx, other.id, "Foreign")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    for ids in [json!([c, foreign.id]), json!([c, 424242])] {
        let r = app
            .put(&path, &admin.token, Some(json!({ "team_ids": ids })))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was changed"));
    }
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/members/{}", bob.id),
            &admin.token,
        )
        .await;
    assert_eq!(r.body["teams"].as_array().unwrap().len(), 2);

    // A team an IdP manages keeps its source when the admin keeps it.
    let mut tx = app.store.begin().await.unwrap();
    let acme = rollcall::store::orgs::by_slug(&mut tx, "acme")
        .await
        .unwrap()
        .unwrap();
    rollcall::store::teams::remove_member(&mut tx, acme.id, b, bob.id)
        .await
        .unwrap();
    rollcall::store::teams::add_member(
        &mut tx,
        acme.id,
        b,
        bob.id,
        rollcall::store::teams::TeamSource::Sso,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let r = app
        .put(&path, &admin.token, Some(json!({"team_ids": [b, c]})))
        .await;
    let teams: Vec<_> = r.body["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["source"].as_str().unwrap()))
        .collect();
    assert_eq!(teams, [("Beta", "sso"), ("Gamma", "manual")]);

    let r = app
        .put(&path, &admin.token, Some(json!({"team_ids": "all"})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .put(
            "/api/v1/orgs/acme/members/777/teams",
            &admin.token,
            Some(json!({"team_ids": []})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

crate::backend_tests!(
    list_paginates_searches_and_filters,
    get_member_and_errors,
    promote_demote_and_last_admin,
    removal_cuts_access_at_once,
    removal_from_one_org_keeps_the_others,
    suspension_cuts_access_and_reactivation_restores_membership,
    replace_teams_is_exact_and_all_or_nothing,
);
