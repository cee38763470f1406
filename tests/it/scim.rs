//! The SCIM endpoint: who may call it, the error shape, the discovery documents, and
//! Okta's and Entra's request sequences replayed from `idp-fixtures/scim/`.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{Backend, Response, TestApp};

crate::backend_tests!(
    scim_tokens_open_their_own_org_only,
    okta_sequences_provision_suspend_and_map_groups,
    entra_sequences_provision_update_and_delete,
    lists_filter_sort_page_and_project,
    writes_honour_etags_and_refuse_bad_input,
    tenants_never_see_each_other,
    a_busy_token_is_told_when_to_retry,
    bulk_links_operations_by_bulk_id,
    mappings_made_later_apply_to_pushed_groups_at_once,
    what_okta_and_entra_repeat_costs_few_statements,
    list_totals_are_kept_by_the_database_through_every_delete,
);

/// Runs one request through the real router in this task, and says how many statements it
/// sent (`store::counting` sees only its own task's; the test server's would be lost).
async fn statements_of(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, u64) {
    use tower::ServiceExt;
    let state = rollcall::state::AppState::new(app.store.clone(), app.config.clone()).unwrap();
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/scim+json")
        .body(axum::body::Body::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        ))
        .unwrap();
    let (response, statements) =
        rollcall::store::counting(rollcall::server::router(state).oneshot(request)).await;
    let status = response.unwrap().status();
    (StatusCode::from_u16(status.as_u16()).unwrap(), statements)
}

/// The requests an IdP's sync repeats a hundred thousand times are few statements each (issue
/// 14): a create is the token, the account, the SCIM User, the rules (grants, mappings), the
/// membership with its person, and the audit event; a lookup the token, the page and its
/// Users' groups. A create read back each row it wrote (10 statements), and a taken userName
/// is still found, by its own statement, only when a create fails.
async fn what_okta_and_entra_repeat_costs_few_statements(backend: Backend) {
    let app = TestApp::spawn_with(&backend, |c| c.scim.requests_per_minute = 0).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let (_, secret) = scim_token(&app, "acme", &admin.token).await;
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "kim@example.test",
        "name": {"givenName": "Kim", "familyName": "Lee"},
        "emails": [{"value": "kim@example.test", "primary": true}],
        "active": true,
    });
    // The token's first use records when it was used (at most once a minute); what a sync
    // repeats comes after.
    assert_eq!(
        app.get("/scim/v2/acme/Users", &secret).await.status,
        StatusCode::OK
    );
    let (status, create) = statements_of(
        &app,
        "POST",
        "/scim/v2/acme/Users",
        &secret,
        Some(user.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(create <= 7, "{create} statements for a create");
    let lookup_path = "/scim/v2/acme/Users?filter=userName%20eq%20%22kim@example.test%22";
    let (status, lookup) = statements_of(&app, "GET", lookup_path, &secret, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(lookup <= 3, "{lookup} statements for a lookup");
    // The same again is refused as before, naming the User that has the userName.
    let r = app.post("/scim/v2/acme/Users", &secret, user).await;
    assert_scim_error(&r, StatusCode::CONFLICT);
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("userName \"kim@example.test\" already exists"),
        "{}",
        r.body
    );
    app.stop().await;
}

pub(crate) fn assert_scim_error(r: &Response, status: StatusCode) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/scim+json");
    assert_eq!(
        r.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(r.body["status"], status.as_u16().to_string());
    assert!(!r.body["detail"].as_str().unwrap().is_empty());
}

pub(crate) async fn scim_token(app: &TestApp, slug: &str, admin_token: &str) -> (i64, String) {
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
    // What is served is advertised, and nothing more.
    for feature in ["patch", "bulk", "filter", "sort", "etag"] {
        assert_eq!(r.body[feature]["supported"], true, "{feature}");
    }
    assert_eq!(r.body["changePassword"]["supported"], false);
    assert_eq!(r.body["filter"]["maxResults"], 1000);
    assert_eq!(r.body["bulk"]["maxOperations"], 1000);
    // The server's own body limit (16 KiB in tests) caps what a bulk request may carry.
    assert_eq!(r.body["bulk"]["maxPayloadSize"], 16 * 1024);

    let r = app
        .request(Method::DELETE, config, Some(&secret), None)
        .await;
    assert_scim_error(&r, StatusCode::METHOD_NOT_ALLOWED);
    let r = app.get("/scim/v2/acme/Bulk", &secret).await;
    assert_scim_error(&r, StatusCode::METHOD_NOT_ALLOWED);
    let r = app.get("/scim/v2/acme/Widgets", &secret).await;
    assert_scim_error(&r, StatusCode::NOT_FOUND);

    let r = app.get("/api/v1/orgs/acme/scim-tokens", &admin.token).await;
    assert!(r.body[0]["last_used_at"].is_string(), "{}", r.body);

    app.delete(&format!("/api/v1/orgs/acme/scim-tokens/{id}"), &admin.token)
        .await;
    let r = app.get(config, &secret).await;
    assert_scim_error(&r, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// Replays a request sequence from `idp-fixtures/scim/`, checking every answer and keeping
/// the values later steps refer to as `${name}`.
async fn replay(
    app: &TestApp,
    slug: &str,
    secret: &str,
    file: &str,
    vars: &mut HashMap<String, String>,
) {
    let path = format!("{}/idp-fixtures/scim/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let fixture: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    for step in fixture["steps"].as_array().expect("steps") {
        let name = step["name"].as_str().expect("step name");
        let substitute = |text: &str| {
            let mut out = text.to_string();
            for (k, v) in vars.iter() {
                out = out.replace(&format!("${{{k}}}"), v);
            }
            assert!(
                !out.contains("${"),
                "{file}: {name}: unknown variable in {out}"
            );
            out
        };
        let method = Method::from_bytes(step["method"].as_str().unwrap().as_bytes()).unwrap();
        let url = format!(
            "/scim/v2/{slug}{}",
            substitute(step["path"].as_str().unwrap())
        );
        let body = step
            .get("body")
            .map(|b| serde_json::from_str(&substitute(&b.to_string())).unwrap());
        let r = app.request(method, &url, Some(secret), body).await;
        let expect = &step["expect"];
        assert_eq!(
            r.status.as_u16() as u64,
            expect["status"].as_u64().unwrap(),
            "{file}: {name}: {}",
            r.body
        );
        if r.status != StatusCode::NO_CONTENT {
            assert_eq!(
                r.headers["content-type"], "application/scim+json",
                "{file}: {name}"
            );
        }
        if let Some(wanted) = expect.get("body") {
            let wanted: Value = serde_json::from_str(&substitute(&wanted.to_string())).unwrap();
            if let Err(at) = matches(&wanted, &r.body, String::new()) {
                panic!(
                    "{file}: {name}: mismatch at {at}\nwanted {wanted:#}\ngot {:#}",
                    r.body
                );
            }
        }
        if let Some(save) = step.get("save").and_then(Value::as_object) {
            for (var, pointer) in save {
                let value = r
                    .body
                    .pointer(pointer.as_str().unwrap())
                    .unwrap_or_else(|| panic!("{file}: {name}: no {pointer} in {}", r.body));
                vars.insert(var.clone(), value.as_str().unwrap().to_string());
            }
        }
    }
}

/// Partial match: every key `wanted` names, with that value; `"*"` is any present value.
fn matches(wanted: &Value, got: &Value, at: String) -> Result<(), String> {
    match (wanted, got) {
        (Value::String(w), _) if w == "*" => Ok(()),
        (Value::Object(w), Value::Object(g)) => {
            for (k, v) in w {
                let found = g.get(k).ok_or_else(|| format!("{at}/{k} (missing)"))?;
                matches(v, found, format!("{at}/{k}"))?;
            }
            Ok(())
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (w, g)) in w.iter().zip(g).enumerate() {
                matches(w, g, format!("{at}/{i}"))?;
            }
            Ok(())
        }
        (w, g) if w == g => Ok(()),
        _ => Err(at),
    }
}

/// The member with this email, as the admin API lists them.
pub(crate) async fn member(app: &TestApp, slug: &str, token: &str, email: &str) -> Option<Value> {
    let r = app
        .get(
            &format!("/api/v1/orgs/{slug}/members?q={}", url_escape(email)),
            token,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list = r.body["data"].as_array().cloned().unwrap_or_default();
    list.into_iter().find(|m| {
        m["user"]["email"]
            .as_str()
            .is_some_and(|e| e.eq_ignore_ascii_case(email))
    })
}

fn team_names(member: &Value, source: &str) -> Vec<String> {
    member["teams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["source"] == source)
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// An org with a connection, a SCIM token for it, and a team mapped from a group.
async fn provisioned_org(
    app: &TestApp,
    slug: &str,
    admin: &str,
    team: &str,
    group: Value,
) -> (i64, String) {
    let (_, secret) = scim_token(app, slug, admin).await;
    let r = app
        .get(&format!("/api/v1/orgs/{slug}/scim-tokens"), admin)
        .await;
    let connection = r.body[0]["connection_id"].as_i64().unwrap();
    let team_id = app.create_team(slug, admin, team).await;
    let r = app
        .post(
            &format!("/api/v1/orgs/{slug}/connections/{connection}/group-mappings"),
            admin,
            json!({"group": group, "team_ids": [team_id]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (connection, secret)
}

async fn okta_sequences_provision_suspend_and_map_groups(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let (_, secret) = provisioned_org(
        &app,
        "acme",
        &admin.token,
        "Engineering",
        json!({"name": "engineering"}),
    )
    .await;
    let mut vars = HashMap::new();
    let email = "test.user@okta.local";

    replay(&app, "acme", &secret, "okta/users.json", &mut vars).await;
    // The push made one membership, now suspended; the audit names the token.
    let m = member(&app, "acme", &admin.token, email)
        .await
        .expect("member");
    assert_eq!(m["status"], "suspended");
    assert_eq!(m["source"], "scim");
    let r = app.get("/api/v1/orgs/acme/audit", &admin.token).await;
    let events = r.body["data"].as_array().cloned().unwrap();
    assert!(
        events.iter().any(|e| e["action"] == "scim.user.created"
            && e["actor"] == "SCIM token \"Okta provisioning\""),
        "{}",
        r.body
    );

    replay(&app, "acme", &secret, "okta/reactivate.json", &mut vars).await;
    let m = member(&app, "acme", &admin.token, email).await.unwrap();
    assert_eq!(m["status"], "active");
    // The IdP's account, shared with no other org: its profile follows the push.
    assert_eq!(m["user"]["family_name"], "Userson");

    // Suspension cuts a live session at once.
    let user_id = m["user"]["id"].as_i64().unwrap();
    let session = app.session_for(user_id).await;
    assert_eq!(app.get("/api/v1/me", &session).await.status, StatusCode::OK);
    let deactivate = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}],
    });
    let user_path = format!("/scim/v2/acme/Users/{}", vars["user"]);
    let r = app.patch(&user_path, &secret, deactivate).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.get("/api/v1/me", &session).await.status,
        StatusCode::UNAUTHORIZED
    );
    let reactivate = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": true}],
    });
    assert_eq!(
        app.patch(&user_path, &secret, reactivate).await.status,
        StatusCode::OK
    );

    // Group push: the mapped team follows membership at once, as source `scim`.
    replay(&app, "acme", &secret, "okta/groups.json", &mut vars).await;
    let m = member(&app, "acme", &admin.token, email).await.unwrap();
    assert_eq!(team_names(&m, "scim"), vec!["Engineering"]);
    replay(&app, "acme", &secret, "okta/groups-remove.json", &mut vars).await;
    let m = member(&app, "acme", &admin.token, email).await.unwrap();
    assert!(team_names(&m, "scim").is_empty(), "{m}");
    app.stop().await;
}

async fn entra_sequences_provision_update_and_delete(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("contoso", "admin@contoso.test").await;
    // Entra's groups are mapped by object ID, which it sends as the group's externalId.
    let (_, secret) = provisioned_org(
        &app,
        "contoso",
        &admin.token,
        "Sales",
        json!({"id": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159"}),
    )
    .await;
    let mut vars = HashMap::new();
    replay(
        &app,
        "contoso",
        &secret,
        "entra/test-connection.json",
        &mut vars,
    )
    .await;
    replay(&app, "contoso", &secret, "entra/users.json", &mut vars).await;
    let email = "updatedemail@testuser.com";
    let m = member(&app, "contoso", &admin.token, email)
        .await
        .expect("member, under the patched email");
    assert_eq!(m["status"], "suspended");

    // A second person, for the group sequence.
    let r = app
        .post(
            "/scim/v2/contoso/Users",
            &secret,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "second@testuser.com",
                "active": true,
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    vars.insert("other".into(), r.body["id"].as_str().unwrap().to_string());
    replay(&app, "contoso", &secret, "entra/groups.json", &mut vars).await;
    let first = member(&app, "contoso", &admin.token, email).await.unwrap();
    assert_eq!(team_names(&first, "scim"), vec!["Sales"]);
    let second = member(&app, "contoso", &admin.token, "second@testuser.com")
        .await
        .unwrap();
    assert!(team_names(&second, "scim").is_empty(), "{second}");

    replay(&app, "contoso", &secret, "entra/delete.json", &mut vars).await;
    assert!(member(&app, "contoso", &admin.token, email).await.is_none());
    // The group no longer lists the deleted User.
    let r = app
        .get(
            &format!("/scim/v2/contoso/Groups/{}", vars["group"]),
            &secret,
        )
        .await;
    assert_eq!(r.body["members"], json!([]));
    app.stop().await;
}

fn user(name: &str, extra: Value) -> Value {
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": format!("{name}@example.test"),
        "name": {"givenName": name, "familyName": "Tester"},
        "emails": [{"value": format!("{name}@example.test"), "type": "work", "primary": true}],
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

async fn lists_filter_sort_page_and_project(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let (_, secret) = scim_token(&app, "acme", &admin.token).await;
    for (name, extra) in [
        ("alice", json!({"title": "Engineer", "externalId": "ext-A"})),
        ("bob", json!({"title": "Manager", "active": false})),
        (
            "carol",
            json!({"emails": [{"value": "carol@example.test", "type": "home"}], "title": "Engineer"}),
        ),
        (
            "dave",
            json!({"phoneNumbers": [{"value": "+1 555 0100", "type": "work"}]}),
        ),
        (
            "erin",
            json!({"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701", "department": "R&D"}}),
        ),
    ] {
        let r = app
            .post("/scim/v2/acme/Users", &secret, user(name, extra))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let names = |r: &Response| -> Vec<String> {
        r.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                u["userName"]
                    .as_str()
                    .unwrap()
                    .split('@')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let list = |query: &str| {
        let app = &app;
        let secret = &secret;
        let query = query.to_string();
        async move {
            let r = app
                .get(&format!("/scim/v2/acme/Users?{query}"), secret)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
            r
        }
    };
    let enc = |f: &str| url_escape(f);

    for (filter, expected) in [
        (r#"title eq "engineer""#, vec!["alice", "carol"]),
        (
            r#"title eq "Engineer" and not (externalId eq "ext-A")"#,
            vec!["carol"],
        ),
        (r#"externalId eq "ext-a""#, vec![]), // externalId is case-exact
        (
            r#"userName sw "B" or userName ew "n@example.test""#,
            vec!["bob", "erin"],
        ),
        (r#"name.givenName co "AR""#, vec!["carol"]),
        (r#"active eq false"#, vec!["bob"]),
        (
            r#"emails[type eq "home" and value co "carol"]"#,
            vec!["carol"],
        ),
        (
            r#"emails.type eq "work""#,
            vec!["alice", "bob", "dave", "erin"],
        ),
        (r#"phoneNumbers pr"#, vec!["dave"]),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701""#,
            vec!["erin"],
        ),
        (
            r#"meta.lastModified gt "2000-01-01T00:00:00Z" and title pr"#,
            vec!["alice", "bob", "carol"],
        ),
        (r#"meta.created lt "2000-01-01T00:00:00Z""#, vec![]),
        (r#"displayName eq "x' OR '1'='1""#, vec![]),
    ] {
        let r = list(&format!("filter={}", enc(filter))).await;
        assert_eq!(names(&r), expected, "{filter}");
        assert_eq!(r.body["totalResults"], expected.len(), "{filter}");
    }

    // Paging is 1-based and stable; totals count every match.
    let r = list("startIndex=2&count=2").await;
    assert_eq!(names(&r), vec!["bob", "carol"]);
    assert_eq!(r.body["totalResults"], 5);
    assert_eq!(r.body["startIndex"], 2);
    assert_eq!(r.body["itemsPerPage"], 2);
    // The last page says its total without a COUNT; a full page, or one past the end,
    // still counts every match.
    for (query, expected, total) in [
        ("startIndex=4&count=2", vec!["dave", "erin"], 5),
        ("startIndex=5&count=2", vec!["erin"], 5),
        (
            "startIndex=1&count=5",
            vec!["alice", "bob", "carol", "dave", "erin"],
            5,
        ),
        ("startIndex=9&count=2", vec![], 5),
        (
            "sortBy=userName&sortOrder=descending&startIndex=2&count=2",
            vec!["dave", "carol"],
            5,
        ),
        (
            "filter=userName%20sw%20%22b%22%20or%20userName%20sw%20%22d%22&startIndex=2&count=1",
            vec!["dave"],
            2,
        ),
        (
            "startIndex=9&count=2&filter=userName%20sw%20%22bob%22",
            vec![],
            1,
        ),
        ("filter=userName%20sw%20%22nobody%22", vec![], 0),
    ] {
        let r = list(query).await;
        assert_eq!(names(&r), expected, "{query}");
        assert_eq!(r.body["totalResults"], total, "{query}");
    }
    let r = list("count=0").await;
    assert_eq!(r.body["totalResults"], 5);
    assert_eq!(r.body["Resources"], json!([]));
    let r = list("sortBy=userName&sortOrder=descending&count=3").await;
    assert_eq!(names(&r), vec!["erin", "dave", "carol"]);
    let r = list("sortBy=meta.created&sortOrder=descending&count=1").await;
    assert_eq!(names(&r), vec!["erin"]);

    // Projection: id and schemas always; excluded attributes never.
    let r = list("attributes=userName,name.givenName&count=1").await;
    let first = &r.body["Resources"][0];
    assert_eq!(first["name"], json!({"givenName": "alice"}));
    assert!(
        first.get("emails").is_none() && first.get("id").is_some(),
        "{first}"
    );
    let r = list("excludedAttributes=emails,name&count=1").await;
    let first = &r.body["Resources"][0];
    assert!(
        first.get("emails").is_none() && first.get("name").is_none(),
        "{first}"
    );
    assert!(first.get("userName").is_some());

    // POST .search takes the same query in a body.
    let r = app
        .post(
            "/scim/v2/acme/Users/.search",
            &secret,
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "title eq \"Engineer\"",
                "attributes": ["userName"],
                "sortBy": "userName",
                "sortOrder": "descending",
                "startIndex": 1,
                "count": 10,
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(names(&r), vec!["carol", "alice"]);

    for (query, scim_type) in [
        ("filter=userName%20eq", "invalidFilter"),
        ("filter=password%20eq%20%22x%22", "invalidFilter"),
        ("filter=title%20gt%20true", "invalidFilter"),
        ("sortBy=emails", "invalidValue"),
        ("sortBy=title", "invalidValue"),
        ("count=ten", "invalidValue"),
    ] {
        let r = app
            .get(&format!("/scim/v2/acme/Users?{query}"), &secret)
            .await;
        assert_scim_error(&r, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["scimType"], scim_type, "{query}");
    }

    // Groups listed without members never carry them; ResourceTypes and Schemas describe both.
    let r = app
        .post(
            "/scim/v2/acme/Groups",
            &secret,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Everyone"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app
        .get("/scim/v2/acme/Groups?excludedAttributes=members", &secret)
        .await;
    assert!(
        r.body["Resources"][0].get("members").is_none(),
        "{}",
        r.body
    );
    let r = app.get("/scim/v2/acme/ResourceTypes", &secret).await;
    assert_eq!(r.body["totalResults"], 2);
    let r = app
        .get(
            "/scim/v2/acme/Schemas/urn:ietf:params:scim:schemas:core:2.0:User",
            &secret,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let attributes: Vec<&str> = r.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(
        attributes.contains(&"userName") && attributes.contains(&"emails"),
        "{attributes:?}"
    );
    let r = app.get("/scim/v2/acme/Schemas", &secret).await;
    assert_eq!(r.body["totalResults"], 3);
    app.stop().await;
}

pub(crate) fn url_escape(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn writes_honour_etags_and_refuse_bad_input(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let (_, secret) = scim_token(&app, "acme", &admin.token).await;
    let r = app
        .post("/scim/v2/acme/Users", &secret, user("alice", json!({})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.headers["location"]
        .to_str()
        .unwrap()
        .ends_with(&format!("/Users/{}", r.body["id"].as_str().unwrap())));
    let path = format!("/scim/v2/acme/Users/{}", r.body["id"].as_str().unwrap());
    let etag = r.headers["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, r.body["meta"]["version"]);
    assert!(etag.starts_with("W/\""));

    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "Lead"}],
    });
    let send = |method: Method, if_match: &str, body: Value| {
        let client = reqwest::Client::new();
        let url = app.url(&path);
        let secret = secret.clone();
        let if_match = if_match.to_string();
        async move {
            client
                .request(method, url)
                .bearer_auth(secret)
                .header("if-match", if_match)
                .header("content-type", "application/scim+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
        }
    };
    let r = send(Method::PATCH, "W/\"999\"", patch.clone()).await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = send(Method::PATCH, &etag, patch.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    let new_etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    // The old version no longer matches; the new one does.
    let r = send(Method::DELETE, &etag, json!({})).await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let r = app.get(&path, &secret).await;
    assert_eq!(r.body["title"], "Lead");

    for (body, scim_type) in [
        (
            user("bad", json!({"favouriteColour": "blue"})),
            "invalidValue",
        ),
        (
            user("bad", json!({"urn:example:extension:1.0:User": {"x": 1}})),
            "invalidValue",
        ),
        (
            user(
                "bad",
                json!({"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"shoeSize": "9"}}),
            ),
            "invalidValue",
        ),
        (
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "userName": "x@example.test"}),
            "invalidValue",
        ),
        (user("bad", json!({"active": "maybe"})), "invalidValue"),
    ] {
        let r = app.post("/scim/v2/acme/Users", &secret, body.clone()).await;
        assert_scim_error(&r, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["scimType"], scim_type, "{body}");
    }
    for (ops, scim_type) in [
        (
            json!([{"op": "replace", "path": "shoeSize", "value": "9"}]),
            "invalidValue",
        ),
        (
            json!([{"op": "replace", "path": "emails[type eq", "value": "x"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "id", "value": "12345"}]),
            "mutability",
        ),
        (json!([{"op": "jump", "path": "title"}]), "invalidSyntax"),
        (
            json!([{"op": "remove", "path": "userName"}]),
            "invalidValue",
        ),
    ] {
        let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
        let r = app.patch(&path, &secret, body).await;
        assert_scim_error(&r, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["scimType"], scim_type, "{ops}");
    }
    // A failed PATCH changed nothing.
    assert_eq!(
        app.get(&path, &secret).await.body["meta"]["version"],
        new_etag
    );

    let client = reqwest::Client::new();
    // Its own connection: the server answers 413 before reading the body and closes the
    // connection, which a pooled client would otherwise reuse for the next request.
    let r = reqwest::Client::new()
        .post(app.url("/scim/v2/acme/Users"))
        .bearer_auth(&secret)
        .header("content-type", "application/scim+json")
        .body(vec![b' '; 1024 * 1024 + 10])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = client
        .post(app.url("/scim/v2/acme/Users"))
        .bearer_auth(&secret)
        .header("content-type", "text/plain")
        .body("userName=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = client
        .post(app.url("/scim/v2/acme/Users"))
        .bearer_auth(&secret)
        .header("content-type", "application/scim+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["scimType"], "invalidSyntax");

    // A User without any email address is kept, but is no one yet: no membership until an
    // address arrives.
    let r = app
        .post(
            "/scim/v2/acme/Users",
            &secret,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "jdoe"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let jdoe = format!("/scim/v2/acme/Users/{}", r.body["id"].as_str().unwrap());
    assert!(member(&app, "acme", &admin.token, "jdoe@example.test")
        .await
        .is_none());
    let add_email = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "emails", "value": [{"value": "jdoe@example.test", "type": "work"}]}],
    });
    assert_eq!(
        app.patch(&jdoe, &secret, add_email).await.status,
        StatusCode::OK
    );
    let m = member(&app, "acme", &admin.token, "jdoe@example.test")
        .await
        .expect("a member once an address arrived");
    assert_eq!(m["source"], "scim");

    // Someone else's account (a member of another org only), in a domain this org has not
    // verified, is not taken over.
    app.bootstrap("elsewhere", "admin2@elsewhere.test").await;
    let r = app
        .post(
            "/scim/v2/acme/Users",
            &secret,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "admin2@elsewhere.test"}),
        )
        .await;
    assert_scim_error(&r, StatusCode::CONFLICT);
    assert_eq!(r.body["scimType"], "uniqueness");
    app.stop().await;
}

async fn tenants_never_see_each_other(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let a = app.bootstrap("acme", "admin@acme.test").await;
    let b = app.bootstrap("other", "admin@other.test").await;
    let (_, secret_a) = scim_token(&app, "acme", &a.token).await;
    let (_, secret_b) = scim_token(&app, "other", &b.token).await;
    let r = app
        .post("/scim/v2/acme/Users", &secret_a, user("alice", json!({})))
        .await;
    let alice = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/scim/v2/acme/Groups",
            &secret_a,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "A", "members": [{"value": alice}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let group = r.body["id"].as_str().unwrap().to_string();

    // Org B's token, on B's URL, with A's ids: not found, and nothing changes.
    for path in [
        format!("/scim/v2/other/Users/{alice}"),
        format!("/scim/v2/other/Groups/{group}"),
    ] {
        assert_scim_error(&app.get(&path, &secret_b).await, StatusCode::NOT_FOUND);
        assert_scim_error(&app.delete(&path, &secret_b).await, StatusCode::NOT_FOUND);
    }
    let r = app.get("/scim/v2/other/Users", &secret_b).await;
    assert_eq!(r.body["totalResults"], 0);
    // B cannot add A's User to a group of its own.
    let r = app
        .post(
            "/scim/v2/other/Groups",
            &secret_b,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "B", "members": [{"value": alice}]}),
        )
        .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST);
    // Nested groups are refused, not mistaken for the User with the same id.
    let r = app
        .post(
            "/scim/v2/acme/Groups",
            &secret_a,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Nested", "members": [{"value": group, "type": "Group"}]}),
        )
        .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["scimType"], "invalidValue");
    // And a group of the same name in another org is no conflict.
    let r = app
        .post(
            "/scim/v2/other/Groups",
            &secret_b,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "A"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        app.get(&format!("/scim/v2/acme/Users/{alice}"), &secret_a)
            .await
            .status,
        StatusCode::OK
    );
    app.stop().await;
}

async fn a_busy_token_is_told_when_to_retry(backend: Backend) {
    let app = TestApp::spawn_with(&backend, |c| c.scim.requests_per_minute = 3).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let (_, secret) = scim_token(&app, "acme", &admin.token).await;
    // Three a minute: within seven requests one is refused, even if a minute turns over.
    let mut refused = None;
    for _ in 0..7 {
        let r = app.get("/scim/v2/acme/Users", &secret).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = refused.expect("a 429 within seven requests");
    assert_scim_error(&r, StatusCode::TOO_MANY_REQUESTS);
    let seconds: i64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&seconds), "{seconds}");
    // Another org's token has its own allowance.
    let other = app.bootstrap("other", "admin@other.test").await;
    let (_, other_secret) = scim_token(&app, "other", &other.token).await;
    assert_eq!(
        app.get("/scim/v2/other/Users", &other_secret).await.status,
        StatusCode::OK
    );
    app.stop().await;
}

async fn bulk_links_operations_by_bulk_id(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let (_, secret) = provisioned_org(
        &app,
        "acme",
        &admin.token,
        "Engineering",
        json!({"name": "Engineering"}),
    )
    .await;
    let bulk = |operations: Value, fail_on_errors: Option<u64>| {
        let mut body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": operations,
        });
        if let Some(n) = fail_on_errors {
            body["failOnErrors"] = n.into();
        }
        body
    };
    // The group comes first and refers forward to a user made later in the same request.
    let r = app
        .post(
            "/scim/v2/acme/Bulk",
            &secret,
            bulk(
                json!([
                    {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {
                        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                        "displayName": "Engineering",
                        "members": [{"type": "User", "value": "bulkId:u"}],
                    }},
                    {"method": "POST", "path": "/Users", "bulkId": "u", "data": user("ada", json!({}))},
                    {"method": "POST", "path": "/Users", "bulkId": "bad", "data": {"userName": 5}},
                    {"method": "PATCH", "path": "/Users/bulkId:u", "data": {
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "title", "value": "Analyst"}],
                    }},
                    {"method": "DELETE", "path": "/Users/bulkId:nobody"},
                ]),
                None,
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:BulkResponse"])
    );
    let ops = r.body["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        vec!["201", "201", "400", "200", "409"],
        "{}",
        r.body
    );
    assert_eq!(ops[2]["response"]["scimType"], "invalidValue");
    assert_eq!(ops[2]["bulkId"], "bad");
    assert!(ops[0]["location"].as_str().unwrap().contains("/Groups/"));
    assert!(ops[1]["version"].as_str().unwrap().starts_with("W/"));
    let m = member(&app, "acme", &admin.token, "ada@example.test")
        .await
        .unwrap();
    assert_eq!(team_names(&m, "scim"), vec!["Engineering"]);
    let r = app
        .get(
            "/scim/v2/acme/Users?filter=title%20eq%20%22Analyst%22",
            &secret,
        )
        .await;
    assert_eq!(r.body["totalResults"], 1);

    // failOnErrors stops at the first failure: what came after it is not run.
    let r = app
        .post(
            "/scim/v2/acme/Bulk",
            &secret,
            bulk(
                json!([
                    {"method": "POST", "path": "/Users", "bulkId": "dup", "data": user("ada", json!({}))},
                    {"method": "POST", "path": "/Users", "bulkId": "new", "data": user("bea", json!({}))},
                ]),
                Some(1),
            ),
        )
        .await;
    let ops = r.body["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "{}", r.body);
    assert_eq!(ops[0]["status"], "409");
    assert_eq!(ops[0]["response"]["scimType"], "uniqueness");
    assert!(member(&app, "acme", &admin.token, "bea@example.test")
        .await
        .is_none());

    // Each operation's outcome is its own: one that cannot even be made into a request (a
    // path with a space, a version with a line break) or is malformed fails alone, after
    // the ones before it were applied, and the ones after it still run.
    let r = app
        .post(
            "/scim/v2/acme/Bulk",
            &secret,
            bulk(
                json!([
                    {"method": "POST", "path": "/Users", "bulkId": "c", "data": user("cleo", json!({}))},
                    {"method": "DELETE", "path": "/Users/not an id"},
                    {"method": "PATCH", "path": "/Users/bulkId:c", "version": "W/\"1\"\n", "data": {
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "replace", "path": "title", "value": "x"}],
                    }},
                    {"method": "GET", "path": "/Users"},
                    {"method": "POST", "path": "/Users", "bulkId": "d", "data": user("dina", json!({}))},
                ]),
                None,
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ops = r.body["Operations"].as_array().unwrap();
    let statuses: Vec<&str> = ops.iter().map(|o| o["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses,
        vec!["201", "400", "400", "400", "201"],
        "{}",
        r.body
    );
    assert_eq!(ops[3]["response"]["scimType"], "invalidSyntax");
    assert!(member(&app, "acme", &admin.token, "dina@example.test")
        .await
        .is_some());

    // A bulkId used twice would make references ambiguous: the request is refused whole,
    // before anything runs.
    let r = app
        .post(
            "/scim/v2/acme/Bulk",
            &secret,
            bulk(
                json!([
                    {"method": "POST", "path": "/Users", "bulkId": "e", "data": user("emil", json!({}))},
                    {"method": "POST", "path": "/Users", "bulkId": "e", "data": user("ezra", json!({}))},
                ]),
                None,
            ),
        )
        .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST);
    assert!(
        r.body["detail"].as_str().unwrap().contains("\"e\""),
        "{}",
        r.body
    );
    assert!(member(&app, "acme", &admin.token, "emil@example.test")
        .await
        .is_none());

    let r = app
        .post("/scim/v2/acme/Bulk", &secret, json!({"Operations": []}))
        .await;
    assert_scim_error(&r, StatusCode::BAD_REQUEST);
    app.stop().await;
}

async fn mappings_made_later_apply_to_pushed_groups_at_once(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let (_, secret) = scim_token(&app, "acme", &admin.token).await;
    let r = app.get("/api/v1/orgs/acme/scim-tokens", &admin.token).await;
    let connection = r.body[0]["connection_id"].as_i64().unwrap();
    let r = app
        .post("/scim/v2/acme/Users", &secret, user("ada", json!({})))
        .await;
    let ada = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            "/scim/v2/acme/Groups",
            &secret,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Designers",
                "externalId": "5f2c1a9e-entra-object-id",
                "members": [{"value": ada}],
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let group = r.body["id"].as_str().unwrap().to_string();
    let m = member(&app, "acme", &admin.token, "ada@example.test")
        .await
        .unwrap();
    assert!(team_names(&m, "scim").is_empty());

    // A mapping made afterwards (by the group's object ID, as for Entra) applies at once.
    let team = app.create_team("acme", &admin.token, "Design").await;
    let mappings = format!("/api/v1/orgs/acme/connections/{connection}/group-mappings");
    let r = app
        .post(
            &mappings,
            &admin.token,
            json!({"group": {"id": "5f2c1a9e-entra-object-id"}, "team_ids": [team]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let mapping = r.body["id"].as_i64().unwrap();
    let m = member(&app, "acme", &admin.token, "ada@example.test")
        .await
        .unwrap();
    assert_eq!(team_names(&m, "scim"), vec!["Design"]);

    // Renaming the group keeps a mapping by object ID matching.
    let r = app
        .patch(
            &format!("/scim/v2/acme/Groups/{group}"),
            &secret,
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "displayName", "value": "Product Design"}],
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let m = member(&app, "acme", &admin.token, "ada@example.test")
        .await
        .unwrap();
    assert_eq!(team_names(&m, "scim"), vec!["Design"]);

    // Removing the mapping takes the team away at once.
    app.delete(&format!("{mappings}/{mapping}"), &admin.token)
        .await;
    let m = member(&app, "acme", &admin.token, "ada@example.test")
        .await
        .unwrap();
    assert!(team_names(&m, "scim").is_empty(), "{m}");
    app.stop().await;
}

/// The size of an org's lists, read from the database's triggers instead of counting 100,000
/// rows a page (issue 14). The kept count must equal the rows after every kind of write:
/// creates, deletes, Bulk, the deletes a removed connection cascades to, and another org's
/// writes beside it; and an org deleted by hand takes its counts with it.
async fn list_totals_are_kept_by_the_database_through_every_delete(backend: Backend) {
    use rollcall::store::Store;
    async fn kept_and_real(store: &Store, org: &str) -> [(i64, i64); 2] {
        let sql = |column: &str, table: &str| {
            format!(
                "SELECT CAST((SELECT COALESCE(SUM(c.{column}), 0) FROM scim_counts c \
                 JOIN organizations o ON o.id = c.org_id WHERE o.slug = $1) AS BIGINT), \
                 (SELECT COUNT(*) FROM {table} t JOIN organizations o ON o.id = t.org_id \
                 WHERE o.slug = $1)"
            )
        };
        let mut out = [(0, 0); 2];
        for (i, (column, table)) in [("users", "scim_users"), ("groups", "scim_groups")]
            .into_iter()
            .enumerate()
        {
            let q = sql(column, table);
            out[i] = match store {
                Store::Sqlite(pool) => sqlx::query_as(&q).bind(org).fetch_one(pool).await,
                Store::Postgres(pool) => sqlx::query_as(&q).bind(org).fetch_one(pool).await,
            }
            .unwrap();
        }
        out
    }
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let other = app.bootstrap("other", "admin@other.test").await;
    let (_, secret) = scim_token(&app, "acme", &admin.token).await;
    let (_, other_secret) = scim_token(&app, "other", &other.token).await;
    let total = |resource: &'static str| {
        let (app, secret) = (&app, &secret);
        async move {
            // count=0 always asks for the total (no page tells it).
            let r = app
                .get(&format!("/scim/v2/acme/{resource}?count=0"), secret)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body["totalResults"].as_i64().unwrap()
        }
    };
    let mut ids = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let r = app
            .post("/scim/v2/acme/Users", &secret, user(name, json!({})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    let r = app
        .post(
            "/scim/v2/other/Users",
            &other_secret,
            user("zed", json!({})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let mut groups = Vec::new();
    for name in ["Engineering", "Sales"] {
        let r = app
            .post(
                "/scim/v2/acme/Groups",
                &secret,
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": name,
                    "members": [{"value": ids[0]}],
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        groups.push(r.body["id"].as_str().unwrap().to_string());
    }
    assert_eq!((total("Users").await, total("Groups").await), (3, 2));
    assert_eq!(kept_and_real(&app.store, "acme").await, [(3, 3), (2, 2)]);

    let r = app
        .delete(&format!("/scim/v2/acme/Users/{}", ids[1]), &secret)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = app
        .delete(&format!("/scim/v2/acme/Groups/{}", groups[1]), &secret)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = app
        .post(
            "/scim/v2/acme/Bulk",
            &secret,
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [
                    {"method": "POST", "path": "/Users", "bulkId": "d", "data": user("dave", json!({}))},
                    {"method": "DELETE", "path": format!("/Users/{}", ids[2])},
                ],
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((total("Users").await, total("Groups").await), (2, 1));
    assert_eq!(kept_and_real(&app.store, "acme").await, [(2, 2), (1, 1)]);
    assert_eq!(kept_and_real(&app.store, "other").await, [(1, 1), (0, 0)]);

    // The connection goes, and with it (by cascade) every User and Group it pushed.
    let r = app.get("/api/v1/orgs/acme/scim-tokens", &admin.token).await;
    let connection = r.body[0]["connection_id"].as_i64().unwrap();
    let r = app
        .delete(
            &format!("/api/v1/orgs/acme/connections/{connection}"),
            &admin.token,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(kept_and_real(&app.store, "acme").await, [(0, 0), (0, 0)]);
    let (_, secret) = scim_token(&app, "acme", &admin.token).await;
    let r = app.get("/scim/v2/acme/Users?count=0", &secret).await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);

    // An operator deleting an org by hand: its counts go with it, and nothing fails.
    let sql = "DELETE FROM organizations WHERE slug = 'other'";
    match &app.store {
        Store::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        Store::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
    }
    .unwrap();
    let left: i64 = match &app.store {
        Store::Sqlite(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM scim_counts c WHERE NOT EXISTS (SELECT 1 FROM organizations o WHERE o.id = c.org_id)").fetch_one(pool).await,
        Store::Postgres(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM scim_counts c WHERE NOT EXISTS (SELECT 1 FROM organizations o WHERE o.id = c.org_id)").fetch_one(pool).await,
    }
    .unwrap();
    assert_eq!(left, 0);
    app.stop().await;
}
