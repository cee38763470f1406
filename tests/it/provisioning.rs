//! Connections, domains, grants and mappings over the admin API, and the provisioning core
//! on both backends (including concurrent first logins, also from two "instances").

use reqwest::StatusCode;
use rollcall::{
    provisioning::{self, ExternalIdentity, IdpGroup, Via},
    store::{members, orgs, Store},
};
use serde_json::json;

use crate::harness::{Backend, Person, TestApp};

const ENTRA_ENG: &str = "0b6bd1d4-2c43-4f8e-9c8e-3a3c5b0f7e21";

async fn setup(app: &TestApp) -> (Person, i64) {
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/connections",
            &admin.token,
            json!({"kind": "saml", "name": "Okta"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    (admin, r.body["id"].as_i64().unwrap())
}

async fn count(store: &Store, sql: &str) -> i64 {
    match store {
        Store::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

async fn connections_crud(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, okta) = setup(&app).await;
    let t = &admin.token;
    let tenant = "9188040d-6c67-4c5b-b112-36a304b66dad";
    let entra_settings = json!({"preset": "entra", "tenant_id": tenant, "client_id": "app", "client_secret": "s3cret"});
    let r = app
        .post("/api/v1/orgs/acme/connections", t,
              json!({"kind": "oidc", "name": "Entra ID", "enabled": false, "settings": entra_settings}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["enabled"], false);
    assert_eq!(r.body["settings"]["tenant_id"], tenant);
    assert_eq!(r.body["settings"]["client_secret_set"], true);
    assert!(
        !r.body.to_string().contains("s3cret"),
        "the secret is never shown"
    );
    // Nor kept in the audit trail.
    let audit = app.get("/api/v1/orgs/acme/audit?limit=1", t).await;
    assert!(!audit.body.to_string().contains("s3cret") && !audit.body.to_string().contains("v1:"));
    // OIDC settings are checked: a tenant that is not a GUID is refused.
    let bad = app
        .post("/api/v1/orgs/acme/connections", t, json!({"kind": "oidc", "name": "Bad",
              "settings": {"preset": "entra", "tenant_id": "contoso", "client_id": "a", "client_secret": "s"}}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("GUID"));
    let entra = r.body["id"].as_i64().unwrap();

    let r = app
        .post(
            "/api/v1/orgs/acme/connections",
            t,
            json!({"kind": "saml", "name": "OKTA"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "connection_name_taken");
    for bad in [
        json!({"kind": "ldap", "name": "x"}),
        json!({"kind": "saml"}),
        json!({"kind": "saml", "name": "x", "settings": [1]}),
        json!({"kind": "saml", "name": ""}),
    ] {
        let r = app
            .post("/api/v1/orgs/acme/connections", t, bad.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {:?}", r.body);
    }

    let r = app.get("/api/v1/orgs/acme/connections", t).await;
    let names: Vec<_> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Entra ID", "Okta"]);
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/connections/{entra}"),
            t,
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["enabled"], true);
    assert_eq!(r.body["settings"]["tenant_id"], tenant, "settings kept");
    assert_eq!(
        r.body["settings"]["client_secret_set"], true,
        "the secret kept"
    );

    // Another org's connection is not reachable through this org.
    let other = app.bootstrap("other", "root@other.test").await;
    let r = app
        .get(
            &format!("/api/v1/orgs/other/connections/{okta}"),
            &other.token,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .get(
            &format!("/api/v1/orgs/other/connections/{okta}/grants"),
            &other.token,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let r = app
        .delete(&format!("/api/v1/orgs/acme/connections/{entra}"), t)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app
        .get(&format!("/api/v1/orgs/acme/connections/{entra}"), t)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

async fn domains_verify_by_dns(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, _) = setup(&app).await;
    let t = &admin.token;
    let r = app
        .post(
            "/api/v1/orgs/acme/domains",
            t,
            json!({"domain": "Acme.Example"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["domain"], "acme.example");
    assert_eq!(r.body["status"], "pending");
    assert_eq!(
        r.body["txt_record_name"],
        "_rollcall-challenge.acme.example"
    );
    let value = r.body["txt_record_value"].as_str().unwrap().to_string();
    assert!(value.starts_with("rollcall-domain-verification="));
    let id = r.body["id"].as_i64().unwrap();
    let verify = format!("/api/v1/orgs/acme/domains/{id}/verify");

    // Not published yet; then published with a wrong value; then right.
    let r = app.post(&verify, t, json!(null)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    assert_eq!(r.code(), "domain_not_verified");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no TXT record"));
    app.dns.set_txt(
        "_rollcall-challenge.acme.example",
        &["rollcall-domain-verification=wrong"],
    );
    let r = app.post(&verify, t, json!(null)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("wrong"));
    app.dns
        .set_txt("_rollcall-challenge.acme.example", &["v=spf1 -all", &value]);
    let r = app.post(&verify, t, json!(null)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["status"], "verified");
    assert_eq!(r.body["verified_by"], "dns");

    // Another org may claim it, but never verify it: a verified domain has one owner.
    let other = app.bootstrap("other", "root@other.test").await;
    let r = app
        .post(
            "/api/v1/orgs/other/domains",
            &other.token,
            json!({"domain": "acme.example"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let other_id = r.body["id"].as_i64().unwrap();
    let other_value = r.body["txt_record_value"].as_str().unwrap().to_string();
    app.dns
        .set_txt("_rollcall-challenge.acme.example", &[&value, &other_value]);
    let r = app
        .post(
            &format!("/api/v1/orgs/other/domains/{other_id}/verify"),
            &other.token,
            json!(null),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(r.code(), "domain_verified_elsewhere");

    // A failing DNS server is a 502, not a "not verified".
    let r = app
        .post(
            "/api/v1/orgs/acme/domains",
            t,
            json!({"domain": "broken.test"}),
        )
        .await;
    let broken = r.body["id"].as_i64().unwrap();
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/domains/{broken}/verify"),
            t,
            json!(null),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{:?}", r.body);
    assert_eq!(r.code(), "dns_lookup_failed");

    for bad in [
        json!({"domain": "not a domain"}),
        json!({"domain": "localhost"}),
        json!({}),
    ] {
        let r = app.post("/api/v1/orgs/acme/domains", t, bad.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let r = app
        .post(
            "/api/v1/orgs/acme/domains",
            t,
            json!({"domain": "acme.example"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    app.stop().await;
}

async fn grants_and_mappings_refuse_bad_input(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, okta) = setup(&app).await;
    let t = &admin.token;
    let eng = app.create_team("acme", t, "Engineering").await;
    let grants = format!("/api/v1/orgs/acme/connections/{okta}/grants");
    let mappings = format!("/api/v1/orgs/acme/connections/{okta}/group-mappings");
    let cases = [
        (
            json!({"match": {"kind": "email_domain", "domain": "acme.example"}}),
            "not a verified domain",
        ),
        (
            json!({"match": {"kind": "everyone"}, "team_ids": [eng, 9999]}),
            "no team with id 9999",
        ),
        (
            json!({"match": {"kind": "group", "id": "a", "name": "b"}}),
            "exactly one",
        ),
        (json!({"match": {"kind": "group"}}), "exactly one"),
        (
            json!({"match": {"kind": "user", "email": "not-an-email"}}),
            "not a valid email",
        ),
        (json!({"match": {"kind": "planet"}}), "planet"),
        (
            json!({"match": {"kind": "everyone"}, "admin": true}),
            "admin",
        ),
    ];
    for (body, needle) in cases {
        let r = app.post(&grants, t, body.clone()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    assert_eq!(
        app.get(&grants, t).await.body,
        json!([]),
        "nothing was created"
    );

    let r = app.post(&grants, t, json!({"match": {"kind": "group", "id": ENTRA_ENG}, "team_ids": [eng], "is_admin": true})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["match"], json!({"kind": "group", "id": ENTRA_ENG}));
    assert_eq!(r.body["teams"], json!([{"id": eng, "name": "Engineering"}]));
    let grant = r.body["id"].as_i64().unwrap();

    let r = app
        .post(
            &mappings,
            t,
            json!({"group": {"name": "Engineering"}, "team_ids": [eng]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = app
        .post(
            &mappings,
            t,
            json!({"group": {"name": "ENGINEERING"}, "team_ids": [eng]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "mapping_exists");
    let r = app
        .post(
            &mappings,
            t,
            json!({"group": {"name": "Eng"}, "team_ids": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = app
        .post(
            &mappings,
            t,
            json!({"group": {"id": ENTRA_ENG}, "team_ids": [eng]}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "the same group by ID is a different mapping"
    );
    assert_eq!(
        app.get(&mappings, t).await.body.as_array().unwrap().len(),
        2
    );

    let r = app.delete(&format!("{grants}/{grant}"), t).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = app.delete(&format!("{grants}/{grant}"), t).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A domain that a grant uses cannot be deleted from under it.
    rollcall::operator::verify_domain(&app.store, "acme", "acme.example")
        .await
        .unwrap();
    let r = app
        .post(
            &grants,
            t,
            json!({"match": {"kind": "email_domain", "domain": "acme.example"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let domain = app.get("/api/v1/orgs/acme/domains", t).await.body[0]["id"]
        .as_i64()
        .unwrap();
    let r = app
        .delete(&format!("/api/v1/orgs/acme/domains/{domain}"), t)
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "domain_in_use");
    app.stop().await;
}

async fn explain_is_a_dry_run(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, okta) = setup(&app).await;
    let t = &admin.token;
    let eng = app.create_team("acme", t, "Engineering").await;
    let admins = app.create_team("acme", t, "Admins").await;
    let base = format!("/api/v1/orgs/acme/connections/{okta}");
    app.post(
        &format!("{base}/grants"),
        t,
        json!({"match": {"kind": "group", "name": "rollcall-users"}}),
    )
    .await;
    app.post(&format!("{base}/grants"), t,
             json!({"match": {"kind": "group", "name": "rollcall-admins"}, "is_admin": true, "team_ids": [admins]})).await;
    app.post(
        &format!("{base}/group-mappings"),
        t,
        json!({"group": {"id": ENTRA_ENG}, "team_ids": [eng]}),
    )
    .await;
    let events_before = count(&app.store, "SELECT COUNT(*) FROM audit_events").await;

    let r = app.post(&format!("{base}/explain"), t, json!({
        "email": "new@acme.example",
        "groups": [{"name": "Rollcall-Users"}, {"name": "rollcall-admins"}, {"id": ENTRA_ENG, "name": "Eng"}]
    })).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["allowed"], true);
    assert_eq!(r.body["allowed_by"], "grant");
    assert_eq!(r.body["linked_by"], "new_user");
    assert_eq!(r.body["grant_admin"], true);
    assert_eq!(r.body["matched_grants"].as_array().unwrap().len(), 2);
    assert_eq!(r.body["matched_mappings"][0]["matched_by"], "id");
    let teams: Vec<_> = r.body["idp_teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(teams.len(), 2);
    assert!(teams.contains(&"Engineering") && teams.contains(&"Admins"));

    let r = app
        .post(
            &format!("{base}/explain"),
            t,
            json!({"email": "x@acme.example", "groups": [{"name": "other"}]}),
        )
        .await;
    assert_eq!(r.body["allowed"], false);
    assert_eq!(r.body["refusal"]["code"], "not_granted");
    assert!(r.body["refusal"]["message"]
        .as_str()
        .unwrap()
        .contains("not allowed"));

    assert_eq!(
        count(&app.store, "SELECT COUNT(*) FROM users").await,
        1,
        "only the admin"
    );
    assert_eq!(
        count(&app.store, "SELECT COUNT(*) FROM audit_events").await,
        events_before
    );
    let r = app
        .post(
            &format!("{base}/explain"),
            t,
            json!({"email": "x@acme.example", "roles": []}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    app.stop().await;
}

fn okta_login(connection_id: i64, subject: &str, email: &str, groups: &[&str]) -> ExternalIdentity {
    ExternalIdentity {
        connection_id,
        subject: subject.into(),
        email: Some(email.into()),
        given_name: Some("Pat".into()),
        family_name: Some("Doe".into()),
        groups: groups
            .iter()
            .map(|g| IdpGroup {
                id: None,
                name: Some(g.to_string()),
            })
            .collect(),
        ..Default::default()
    }
}

async fn sso_logins_provision_members_and_teams(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, okta) = setup(&app).await;
    let t = &admin.token;
    let eng = app.create_team("acme", t, "Engineering").await;
    let base = format!("/api/v1/orgs/acme/connections/{okta}");
    app.post(
        &format!("{base}/grants"),
        t,
        json!({"match": {"kind": "everyone"}}),
    )
    .await;
    app.post(
        &format!("{base}/group-mappings"),
        t,
        json!({"group": {"name": "Engineering"}, "team_ids": [eng]}),
    )
    .await;

    let who = okta_login(
        okta,
        "00u1pat",
        "pat@acme.example",
        &["Everyone", "Engineering"],
    );
    let out = provisioning::provision(&app.store, &who, Via::Sso, None)
        .await
        .unwrap();
    let r = app
        .get(&format!("/api/v1/orgs/acme/members/{}", out.user_id), t)
        .await;
    assert_eq!(r.body["source"], "sso");
    assert_eq!(r.body["user"]["given_name"], "Pat");
    assert_eq!(
        r.body["teams"],
        json!([{"id": eng, "name": "Engineering", "source": "sso"}])
    );
    let r = app.get("/api/v1/orgs/acme/audit?limit=1", t).await;
    assert_eq!(r.body["data"][0]["action"], "sso.login");
    assert_eq!(r.body["data"][0]["actor"], "saml connection \"Okta\" (sso)");
    assert_eq!(
        r.body["data"][0]["after"]["teams_added"][0]["name"],
        "Engineering"
    );

    // Removed from the Okta group: the next login takes the team away.
    let who = okta_login(okta, "00u1pat", "pat@acme.example", &["Everyone"]);
    provisioning::provision(&app.store, &who, Via::Sso, None)
        .await
        .unwrap();
    let r = app
        .get(&format!("/api/v1/orgs/acme/members/{}", out.user_id), t)
        .await;
    assert_eq!(r.body["teams"], json!([]));

    // Disabled connection: refused, audited, nothing changes.
    app.patch(&base, t, json!({"enabled": false})).await;
    let err = provisioning::provision(
        &app.store,
        &okta_login(okta, "00u2", "new@acme.example", &[]),
        Via::Sso,
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, provisioning::Error::Refused(r) if r.code == "connection_disabled"),
        "{err}"
    );
    let r = app.get("/api/v1/orgs/acme/audit?limit=1", t).await;
    assert_eq!(r.body["data"][0]["action"], "sso.login_refused");
    assert_eq!(r.body["data"][0]["after"]["code"], "connection_disabled");
    app.stop().await;
}

/// Many simultaneous first logins of one new person: one user, one membership, one link.
/// On PostgreSQL half of them go through a second pool, as a second rollcall instance would.
async fn concurrent_first_logins_make_one_user(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, okta) = setup(&app).await;
    let eng = app.create_team("acme", &admin.token, "Engineering").await;
    let base = format!("/api/v1/orgs/acme/connections/{okta}");
    app.post(
        &format!("{base}/grants"),
        &admin.token,
        json!({"match": {"kind": "everyone"}, "team_ids": [eng]}),
    )
    .await;
    let second_instance = match &app.store {
        Store::Postgres(pool) => Store::Postgres(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(8)
                .connect_with(pool.connect_options().as_ref().clone())
                .await
                .unwrap(),
        ),
        Store::Sqlite(_) => app.store.clone(),
    };
    let org_id = {
        let mut tx = app.store.read().await.unwrap();
        orgs::by_slug(&mut tx, "acme").await.unwrap().unwrap().id
    };
    for round in 0..4 {
        let email = format!("race{round}@acme.example");
        let who = okta_login(okta, &format!("00u-race-{round}"), &email, &[]);
        let logins = (0..16).map(|i| {
            let store = if i % 2 == 0 {
                app.store.clone()
            } else {
                second_instance.clone()
            };
            let who = who.clone();
            tokio::spawn(async move { provisioning::provision(&store, &who, Via::Sso, None).await })
        });
        let results: Vec<_> = futures::future::join_all(logins)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        let outcomes: Vec<_> = results
            .into_iter()
            .map(|r| r.expect("every login succeeds"))
            .collect();
        let user_ids: std::collections::BTreeSet<i64> =
            outcomes.iter().map(|o| o.user_id).collect();
        assert_eq!(user_ids.len(), 1, "round {round}");
        assert_eq!(
            outcomes.iter().filter(|o| o.user_created).count(),
            1,
            "round {round}"
        );
        assert_eq!(
            outcomes.iter().filter(|o| o.membership_created).count(),
            1,
            "round {round}"
        );
        let users = format!("SELECT COUNT(*) FROM users WHERE email_normalized = '{email}'");
        assert_eq!(count(&app.store, &users).await, 1);
        let mut tx = app.store.read().await.unwrap();
        let member = members::require(&mut tx, org_id, *user_ids.first().unwrap())
            .await
            .unwrap();
        assert_eq!(member.teams.len(), 1, "round {round}");
    }
    // The admin plus one membership, one link and one team membership per person.
    assert_eq!(
        count(&app.store, "SELECT COUNT(*) FROM memberships").await,
        5
    );
    assert_eq!(
        count(&app.store, "SELECT COUNT(*) FROM external_identities").await,
        4
    );
    assert_eq!(
        count(&app.store, "SELECT COUNT(*) FROM team_memberships").await,
        4
    );
    second_instance.close().await;
    app.stop().await;
}

crate::backend_tests!(
    connections_crud,
    domains_verify_by_dns,
    grants_and_mappings_refuse_bad_input,
    explain_is_a_dry_run,
    sso_logins_provision_members_and_teams,
    concurrent_first_logins_make_one_user,
    a_sign_in_writes_its_session_in_the_provisioning_transaction,
);

/// A sign-in starts its session in the transaction that provisioned it (one commit instead
/// of two, issue 14). What `provision_open` applied is nothing until committed, and a refusal
/// is still audited on its own.
async fn a_sign_in_writes_its_session_in_the_provisioning_transaction(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, okta) = setup(&app).await;
    let t = &admin.token;
    let base = format!("/api/v1/orgs/acme/connections/{okta}");
    app.post(
        &format!("{base}/grants"),
        t,
        json!({"match": {"kind": "everyone"}}),
    )
    .await;
    let members = "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id \
                   WHERE u.email = 'pat@acme.example'";
    let events = "SELECT COUNT(*) FROM audit_events WHERE action = 'sso.login'";
    let who = okta_login(okta, "00u1pat", "pat@acme.example", &[]);

    // Dropped before its commit: no member, no audit event.
    let provisioned = provisioning::provision_open(&app.store, &who, Via::Sso, None)
        .await
        .unwrap();
    assert!(provisioned.outcome.membership_created);
    drop(provisioned);
    assert_eq!(count(&app.store, members).await, 0);
    assert_eq!(count(&app.store, events).await, 0);

    // Committed with a row the front door wrote beside it (as a session is): both land.
    let mut provisioned = provisioning::provision_open(&app.store, &who, Via::Sso, None)
        .await
        .unwrap();
    let user_id = provisioned.outcome.user_id;
    let secret = rollcall::store::credentials::create_session(
        &mut provisioned.tx,
        user_id,
        chrono::Duration::hours(1),
        rollcall::store::credentials::Method::Sso,
    )
    .await
    .unwrap();
    let outcome = provisioned.commit().await.unwrap();
    assert_eq!(outcome.user_id, user_id);
    assert_eq!(count(&app.store, members).await, 1);
    assert_eq!(count(&app.store, events).await, 1);
    let sessions = format!(
        "SELECT COUNT(*) FROM sessions WHERE user_id = {user_id} AND secret_hash = '{}'",
        rollcall::secrets::hash(&secret)
    );
    assert_eq!(count(&app.store, &sessions).await, 1);

    // Refused: audited, and no transaction handed back.
    app.patch(&base, t, json!({"enabled": false})).await;
    let refused = provisioning::provision_open(
        &app.store,
        &okta_login(okta, "00u2", "new@acme.example", &[]),
        Via::Sso,
        None,
    )
    .await;
    assert!(matches!(refused, Err(provisioning::Error::Refused(_))));
    assert_eq!(
        count(
            &app.store,
            "SELECT COUNT(*) FROM audit_events WHERE action = 'sso.login_refused'"
        )
        .await,
        1
    );
    app.stop().await;
}
