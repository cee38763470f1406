//! SCIM switched on for an org that already has members, honest 409s, opaque ids and the
//! path variants IdPs send: on both backends.

use reqwest::StatusCode;
use rollcall::{
    provisioning::{self, ExternalIdentity, IdpGroup, Via},
    store::Store,
};
use serde_json::{json, Value};

use crate::{
    harness::{Backend, Browser, TestApp},
    scim::{assert_scim_error, member, scim_token, url_escape},
    web::{invite, path_of, GOOD_PASSWORD},
};

crate::backend_tests!(
    scim_switched_on_links_the_members_already_there,
    every_conflict_says_what_conflicts,
    ids_are_opaque_and_paths_forgiving,
);

fn pushed(email: &str, given: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": email,
        "name": {"givenName": given, "familyName": "Pushed"},
        "emails": [{"value": email, "type": "work", "primary": true}],
        "active": true,
    })
}

async fn execute(store: &Store, sql: &str) {
    match store {
        Store::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        Store::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
    }
    .unwrap();
}

async fn user_count(store: &Store) -> i64 {
    let sql = "SELECT COUNT(*) FROM users";
    match store {
        Store::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

fn teams(member: &Value) -> Vec<(String, String)> {
    let mut teams: Vec<(String, String)> = member["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    teams.sort();
    teams
}

/// The usual adoption path: a bootstrap admin, people who joined by invitation and through
/// SSO, no verified domain; then the org's IdP pushes the same people over SCIM. Each push
/// links to the member already there: no 409, no second account, teams and admin flag kept.
async fn scim_switched_on_links_the_members_already_there(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "ann@acme.test").await;
    let t = &admin.token;

    // Bob joins by invitation, into Support, with a password.
    let support = app.create_team("acme", t, "Support").await;
    let link = invite(&app, &admin, "bob@acme.test", false, Some(support)).await;
    let browser = Browser::new(&app);
    let page = browser.get(&link).await;
    let signup = format!("{}/signup", path_of(&link));
    let done = browser
        .post(
            &signup,
            &[
                ("csrf", &page.csrf()),
                ("name", "Bob Local"),
                ("password", GOOD_PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);

    // Carl joins through SSO (Okta), whose "Engineering" group puts him in Engineering.
    let (_, secret) = scim_token(&app, "acme", t).await;
    let r = app.get("/api/v1/orgs/acme/scim-tokens", t).await;
    let connection = r.body[0]["connection_id"].as_i64().unwrap();
    let engineering = app.create_team("acme", t, "Engineering").await;
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/connections/{connection}/grants"),
            t,
            json!({"match": {"kind": "everyone"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/connections/{connection}/group-mappings"),
            t,
            json!({"group": {"name": "Engineering"}, "team_ids": [engineering]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let carl = ExternalIdentity {
        connection_id: connection,
        subject: "00u-carl".into(),
        email: Some("carl@acme.test".into()),
        display_name: Some("Carl Sso".into()),
        groups: vec![IdpGroup {
            id: None,
            name: Some("Engineering".into()),
        }],
        ..Default::default()
    };
    provisioning::provision(&app.store, &carl, Via::Sso, None)
        .await
        .unwrap();

    // Dee is a member here and in another org; Eve only in the other org.
    app.add_member("acme", "dee@acme.test", false).await;
    app.bootstrap("other", "eve@acme.test").await;
    app.add_member("other", "dee@acme.test", false).await;
    let accounts = user_count(&app.store).await;

    // Okta pushes everyone assigned to the app: the members link, whatever the domain.
    for (email, given) in [
        ("ann@acme.test", "Ann"),
        ("bob@acme.test", "Bob"),
        ("carl@acme.test", "Carl"),
        ("dee@acme.test", "Dee"),
    ] {
        let r = app
            .post("/scim/v2/acme/Users", &secret, pushed(email, given))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{email}: {}", r.body);
    }
    assert_eq!(
        user_count(&app.store).await,
        accounts,
        "no second account for anyone"
    );
    let ann = member(&app, "acme", t, "ann@acme.test").await.unwrap();
    assert_eq!(ann["is_admin"], true, "the bootstrap admin stays admin");
    assert_eq!(ann["source"], "bootstrap");
    let bob = member(&app, "acme", t, "bob@acme.test").await.unwrap();
    assert_eq!(bob["source"], "invitation");
    assert_eq!(teams(&bob), [("Support".into(), "invitation".into())]);
    let carl = member(&app, "acme", t, "carl@acme.test").await.unwrap();
    assert_eq!(carl["source"], "sso");
    assert_eq!(teams(&carl), [("Engineering".into(), "sso".into())]);

    // The push governs names of accounts that belong to this org alone, never the sign-in
    // address of an account it did not create, and nothing of an account other orgs share.
    assert_eq!(ann["user"]["display_name"], Value::Null);
    assert_eq!(ann["user"]["given_name"], "Ann");
    let dee = member(&app, "acme", t, "dee@acme.test").await.unwrap();
    assert_ne!(dee["user"]["given_name"], "Dee", "{dee}");
    let r = app
        .get(
            &format!(
                "/scim/v2/acme/Users?filter={}",
                url_escape(r#"userName eq "bob@acme.test""#)
            ),
            &secret,
        )
        .await;
    let bob_id = r.body["Resources"][0]["id"].as_str().unwrap().to_string();
    let mut renamed = pushed("bob.new@acme.test", "Robert");
    renamed["userName"] = json!("bob@acme.test");
    let r = app
        .put(
            &format!("/scim/v2/acme/Users/{bob_id}"),
            &secret,
            Some(renamed),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let bob = member(&app, "acme", t, "bob@acme.test")
        .await
        .expect("Bob keeps the address he signs in with");
    assert_eq!(bob["user"]["given_name"], "Robert");
    let r = app.get("/api/v1/orgs/acme/audit?limit=1", t).await;
    assert_eq!(
        r.body["data"][0]["action"], "scim.user.replaced",
        "{}",
        r.body
    );
    assert_eq!(
        r.body["data"][0]["after"]["profile"],
        json!({"names": true, "email": false, "kept_because": "not_created_by_push"}),
        "{}",
        r.body
    );

    // A group push maps to teams for the linked members, beside what they had.
    let platform = app.create_team("acme", t, "Platform").await;
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/connections/{connection}/group-mappings"),
            t,
            json!({"group": {"name": "Platform"}, "team_ids": [platform]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app
        .post(
            "/scim/v2/acme/Groups",
            &secret,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Platform",
                   "members": [{"value": bob_id}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let bob = member(&app, "acme", t, "bob@acme.test").await.unwrap();
    assert_eq!(
        teams(&bob),
        [
            ("Platform".into(), "scim".into()),
            ("Support".into(), "invitation".into())
        ]
    );

    // Someone who is not a member here still needs a verified domain.
    let r = app
        .post(
            "/scim/v2/acme/Users",
            &secret,
            pushed("eve@acme.test", "Eve"),
        )
        .await;
    assert_scim_error(&r, StatusCode::CONFLICT);
    assert_eq!(r.body["scimType"], "uniqueness");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("not a member of this organization"),
        "{}",
        r.body
    );
    app.stop().await;
}

/// A 409 names what really conflicts, on both backends.
async fn every_conflict_says_what_conflicts(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let (_, secret) = scim_token(&app, "acme", &admin.token).await;
    let r = app
        .post(
            "/scim/v2/acme/Users",
            &secret,
            pushed("alice@example.test", "Alice"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let alice = r.body["id"].as_str().unwrap().to_string();

    // Okta's "recreate user" and Entra's retry after a timeout: the userName exists, in an
    // org that has verified no domain. That is the conflict, not the domain.
    let r = app
        .post(
            "/scim/v2/acme/Users",
            &secret,
            pushed("alice@example.test", "Alice"),
        )
        .await;
    assert_scim_error(&r, StatusCode::CONFLICT);
    assert_eq!(r.body["scimType"], "uniqueness");
    let detail = r.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("userName \"alice@example.test\" already exists")
            && detail.contains(&alice),
        "{detail}"
    );

    // The same person under another userName: the email is what conflicts (SQLite's error
    // names no constraint, only columns).
    let mut again = pushed("alice@example.test", "Alice");
    again["userName"] = json!("alice.other");
    let r = app.post("/scim/v2/acme/Users", &secret, again).await;
    assert_scim_error(&r, StatusCode::CONFLICT);
    assert_eq!(r.body["scimType"], "uniqueness");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("already a SCIM User of this organization under another userName"),
        "{}",
        r.body
    );
    app.stop().await;
}

/// Ids are time-ordered UUIDs, unique across Users and Groups; ids the IdPs already hold
/// keep answering; a base URL pasted with a trailing slash works; a Group PATCH that names
/// attributes gets the Group back.
async fn ids_are_opaque_and_paths_forgiving(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let (_, secret) = scim_token(&app, "acme", &admin.token).await;
    let r = app
        .post(
            "/scim/v2/acme/Users",
            &secret,
            pushed("ida@example.test", "Ida"),
        )
        .await;
    let user = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/scim/v2/acme/Groups",
            &secret,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Ops",
                   "members": [{"value": user}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let group = r.body["id"].as_str().unwrap().to_string();
    for id in [&user, &group] {
        let uuid = uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("{id} is a UUID"));
        assert_eq!(uuid.get_version_num(), 7, "{id}");
    }
    assert_ne!(user, group);
    assert_eq!(r.body["members"][0]["value"], user.as_str());
    let r = app
        .get(&format!("/scim/v2/acme/Users/{user}"), &secret)
        .await;
    assert_eq!(r.body["groups"][0]["value"], group.as_str());
    let r = app
        .get(
            &format!(
                "/scim/v2/acme/Users?filter={}",
                url_escape(&format!(r#"id eq "{user}""#))
            ),
            &secret,
        )
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);

    // Paths as a base URL with a trailing slash makes them.
    for path in [
        format!("/scim/v2/acme//Users/{user}"),
        format!("/scim/v2/acme/Users/{user}/"),
        "/scim/v2/acme//Users".to_string(),
        "/scim/v2/acme/Users/".to_string(),
        "/scim/v2/acme//ServiceProviderConfig".to_string(),
    ] {
        let r = app.get(&path, &secret).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }

    // A Group PATCH: 204, or the Group when the request names attributes.
    let rename = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Operations"}],
    });
    let r = app
        .patch(
            &format!("/scim/v2/acme/Groups/{group}"),
            &secret,
            rename.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .patch(
            &format!("/scim/v2/acme/Groups/{group}?excludedAttributes=members"),
            &secret,
            rename,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["displayName"], "Operations");
    assert!(r.body.get("members").is_none(), "{}", r.body);

    // A member id that is no User of this org is refused, not silently dropped.
    let r = app
        .patch(
            &format!("/scim/v2/acme/Groups/{group}"),
            &secret,
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "add", "path": "members", "value": [{"value": "not-yet-pushed"}]}]}),
        )
        .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["scimType"], "invalidValue");

    // Resources made before ids were opaque keep the ids their IdPs hold: their integer key.
    execute(
        &app.store,
        "UPDATE scim_users SET scim_id = CAST(id AS TEXT)",
    )
    .await;
    execute(
        &app.store,
        "UPDATE scim_groups SET scim_id = CAST(id AS TEXT)",
    )
    .await;
    let r = app
        .get(
            &format!(
                "/scim/v2/acme/Users?filter={}",
                url_escape(r#"userName eq "ida@example.test""#)
            ),
            &secret,
        )
        .await;
    let legacy = r.body["Resources"][0]["id"].as_str().unwrap().to_string();
    assert!(legacy.parse::<i64>().is_ok(), "{legacy}");
    let r = app
        .get(&format!("/scim/v2/acme/Users/{legacy}"), &secret)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.stop().await;
}
