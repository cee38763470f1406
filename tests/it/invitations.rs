//! The Invitations tab over HTTP, with mail delivered to a real SMTP listener.

use reqwest::StatusCode;
use rollcall::{
    provisioning::{self, ExternalIdentity, Via},
    secrets,
    store::{invitations as store_invitations, Store},
};
use serde_json::{json, Value};

use crate::{
    harness::{link_in, Backend, TestApp},
    smtp_server::Mode,
};

async fn exec(store: &Store, sql: &str) {
    match store {
        Store::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        Store::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
    }
    .unwrap();
}

async fn outbox_statuses(store: &Store) -> Vec<(String, i64)> {
    let sql = "SELECT status, attempts FROM outbox ORDER BY id";
    match store {
        Store::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        Store::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
    }
}

/// The invitation link in a received message's plain-text part. The body is
/// quoted-printable, so long lines carry soft breaks (`=` at the end) to undo first.
fn results(body: &Value) -> Vec<(String, String)> {
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let outcome = match r["result"].as_str().unwrap() {
                "error" => format!("error:{}", r["error"]["code"].as_str().unwrap()),
                other => other.to_string(),
            };
            (r["email"].as_str().unwrap().to_string(), outcome)
        })
        .collect()
}

async fn ids_with_status(app: &TestApp, token: &str, status: &str) -> Vec<i64> {
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/invitations?status={status}"),
            token,
        )
        .await;
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect()
}

async fn bulk_send_reports_each_address_and_mails_the_valid_ones(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    app.add_member("acme", "member@acme.test", false).await;
    let ml = app.create_team("acme", &admin.token, "ML Platform").await;
    let r = app
        .post("/api/v1/orgs/acme/invitations", &admin.token, json!({
            "emails": [" New.Person@Example.com ", "not-an-email", "new.person@example.com", "MEMBER@acme.test", "second@example.com"],
            "team_ids": [ml],
            "is_admin": true
        }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        results(&r.body),
        [
            (
                " New.Person@Example.com ".to_string(),
                "invited".to_string()
            ),
            ("not-an-email".into(), "error:invalid_email".into()),
            ("new.person@example.com".into(), "error:duplicate".into()),
            ("MEMBER@acme.test".into(), "error:already_member".into()),
            ("second@example.com".into(), "invited".into()),
        ]
    );
    let first = &r.body["results"][0]["invitation"];
    assert_eq!(first["email"], "New.Person@Example.com");
    assert_eq!(first["status"], "pending");
    assert_eq!(first["is_admin"], true);
    assert_eq!(first["teams"], json!([{"id": ml, "name": "ML Platform"}]));
    assert_eq!(first["invited_by"], "admin@acme.test");
    assert_eq!(first["delivery"]["status"], "queued");

    assert_eq!(app.deliver_mail().await, 2);
    let mail = app.smtp.received();
    assert_eq!(mail.len(), 2);
    assert_eq!(mail[0].to, ["New.Person@Example.com"]);
    let data = &mail[0].data;
    assert!(
        data.contains("Subject: admin@acme.test invited you to acme"),
        "{data}"
    );
    assert!(
        data.contains("From: \"Acme Access\" <access@acme.test>")
            || data.contains("From: Acme Access <access@acme.test>"),
        "{data}"
    );
    assert!(data.contains("multipart/alternative"), "{data}");
    assert!(data.contains("text/plain") && data.contains("text/html"));
    assert!(data.contains("ML Platform"));
    assert!(link_in(data).starts_with(&format!("http://{}/invite/rc_inv_", app.addr)));
    assert_ne!(
        link_in(data),
        link_in(&mail[1].data),
        "each invitation has its own link"
    );

    let r = app.get("/api/v1/orgs/acme/invitations", &admin.token).await;
    let data = r.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert!(data
        .iter()
        .all(|i| i["delivery"]["status"] == "sent" && i["delivery"]["attempts"] == 1));

    // The token in the link is stored only as a hash.
    let token = link_in(&mail[0].data)
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let mut tx = app.store.read().await.unwrap();
    let found = store_invitations::by_token_hash(&mut tx, &secrets::hash(&token))
        .await
        .unwrap();
    assert_eq!(
        found.map(|i| i.email),
        Some("New.Person@Example.com".into())
    );
    assert!(store_invitations::by_token_hash(&mut tx, &token)
        .await
        .unwrap()
        .is_none());
    drop(tx);
    app.stop().await;
}

async fn statuses_resend_revoke_and_clean_up(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let t = &admin.token;
    let send = |emails: Value| {
        app.post(
            "/api/v1/orgs/acme/invitations",
            t,
            json!({ "emails": emails }),
        )
    };
    let r = send(json!([
        "pending@example.com",
        "revoke@example.com",
        "expire@example.com",
        "sso@example.com"
    ]))
    .await;
    let ids: Vec<i64> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["invitation"]["id"].as_i64().unwrap())
        .collect();
    app.deliver_mail().await;
    let old_link = link_in(&app.smtp.received()[0].data);

    // Resend: a new link, the old one dead, a second email.
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/invitations/{}/resend", ids[0]),
            t,
            json!(null),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["sent_count"], 2);
    app.deliver_mail().await;
    let new_link = link_in(&app.smtp.received().last().unwrap().data);
    assert_ne!(old_link, new_link);
    let old_token = old_link.rsplit('/').next().unwrap();
    let mut tx = app.store.read().await.unwrap();
    assert!(
        store_invitations::by_token_hash(&mut tx, &secrets::hash(old_token))
            .await
            .unwrap()
            .is_none()
    );
    drop(tx);

    // Inviting the same address again resends instead of duplicating.
    let r = send(json!(["PENDING@example.com"])).await;
    assert_eq!(results(&r.body)[0].1, "resent");
    assert_eq!(r.body["results"][0]["invitation"]["id"], ids[0]);

    // Revoke; revoke again is a conflict.
    let path = format!("/api/v1/orgs/acme/invitations/{}", ids[1]);
    assert_eq!(app.delete(&path, t).await.status, StatusCode::NO_CONTENT);
    let r = app.delete(&path, t).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.code(), "invitation_closed");
    assert_eq!(app.get(&path, t).await.body["status"], "revoked");

    // Expire one by moving its clock; accept one through SSO.
    exec(
        &app.store,
        &format!(
            "UPDATE invitations SET expires_at = created_at WHERE id = {}",
            ids[2]
        ),
    )
    .await;
    let r = app
        .post(
            "/api/v1/orgs/acme/connections",
            t,
            json!({"kind": "saml", "name": "Okta"}),
        )
        .await;
    let okta = r.body["id"].as_i64().unwrap();
    let who = ExternalIdentity {
        connection_id: okta,
        subject: "00u-sso".into(),
        email: Some("sso@example.com".into()),
        ..Default::default()
    };
    let out = provisioning::provision(&app.store, &who, Via::Sso, None)
        .await
        .unwrap();
    assert_eq!(out.invitation_accepted, Some(ids[3]));

    assert_eq!(ids_with_status(&app, t, "pending").await, [ids[0]]);
    assert_eq!(ids_with_status(&app, t, "revoked").await, [ids[1]]);
    assert_eq!(ids_with_status(&app, t, "expired").await, [ids[2]]);
    assert_eq!(ids_with_status(&app, t, "accepted").await, [ids[3]]);

    // Accepted and revoked invitations cannot be resent; expired ones can.
    for id in [ids[1], ids[3]] {
        let r = app
            .post(
                &format!("/api/v1/orgs/acme/invitations/{id}/resend"),
                t,
                json!(null),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
    }
    exec(
        &app.store,
        &format!(
            "UPDATE invitations SET expires_at = created_at WHERE id = {}",
            ids[0]
        ),
    )
    .await;
    let r = app
        .delete("/api/v1/orgs/acme/invitations?status=expired", t)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["deleted"], 2);
    assert_eq!(ids_with_status(&app, t, "expired").await, Vec::<i64>::new());
    let r = app
        .delete("/api/v1/orgs/acme/invitations?status=pending", t)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = app.get("/api/v1/orgs/acme/audit?limit=50", t).await;
    let actions: Vec<_> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "invitation.sent",
        "invitation.resent",
        "invitation.revoked",
        "invitation.expired_deleted",
        "sso.login",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    app.stop().await;
}

async fn bad_requests_send_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let other = app.bootstrap("other", "root@other.test").await;
    let foreign = app.create_team("other", &other.token, "Theirs").await;
    let many: Vec<String> = (0..101).map(|i| format!("p{i}@example.com")).collect();
    for body in [
        json!({"emails": []}),
        json!({"emails": many}),
        json!({"emails": ["a@example.com"], "team_ids": [foreign]}),
        json!({"emails": ["a@example.com"], "role": "admin"}),
    ] {
        let r = app
            .post("/api/v1/orgs/acme/invitations", &admin.token, body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    }
    assert!(outbox_statuses(&app.store).await.is_empty());
    let member = app.add_member("acme", "bob@acme.test", false).await;
    let r = app
        .post(
            "/api/v1/orgs/acme/invitations",
            &member.token,
            json!({"emails": ["x@example.com"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    app.stop().await;
}

async fn failed_deliveries_are_retried_then_given_up(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    app.smtp.set_mode(Mode::TempFail(2));
    app.post(
        "/api/v1/orgs/acme/invitations",
        &admin.token,
        json!({"emails": ["retry@example.com"]}),
    )
    .await;
    app.deliver_mail().await;
    let r = app.get("/api/v1/orgs/acme/invitations", &admin.token).await;
    let delivery = &r.body["data"][0]["delivery"];
    assert_eq!(delivery["status"], "queued");
    assert!(
        delivery["last_error"].as_str().unwrap().contains("451"),
        "{delivery}"
    );
    app.deliver_mail().await;
    app.deliver_mail().await;
    assert_eq!(outbox_statuses(&app.store).await, [("sent".to_string(), 3)]);
    assert_eq!(app.smtp.received().len(), 1);

    // A server that keeps refusing: after max_attempts (3 here) the message is marked failed.
    app.smtp.set_mode(Mode::TempFail(10));
    app.post(
        "/api/v1/orgs/acme/invitations",
        &admin.token,
        json!({"emails": ["never@example.com"]}),
    )
    .await;
    for _ in 0..4 {
        app.deliver_mail().await;
    }
    assert_eq!(
        outbox_statuses(&app.store).await[1],
        ("failed".to_string(), 3)
    );
    let r = app.get("/api/v1/orgs/acme/invitations", &admin.token).await;
    assert_eq!(r.body["data"][0]["delivery"]["status"], "failed");
    app.stop().await;
}

/// The worker dies mid-delivery (after claiming, before the server confirms): once its lock
/// runs out, a new worker delivers every message. At least once, never zero times.
async fn a_crashed_worker_loses_no_message(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    app.post(
        "/api/v1/orgs/acme/invitations",
        &admin.token,
        json!({"emails": ["a@example.com", "b@example.com", "c@example.com"]}),
    )
    .await;
    app.smtp.set_mode(Mode::Hang);
    let store = app.store.clone();
    let config = app.config.mail.clone();
    let crashed = tokio::spawn(async move {
        let sender = rollcall::mail::Sender::new(&config).unwrap();
        rollcall::mail::deliver_due(&store, &sender, &config).await
    });
    // Wait until the worker has claimed the batch and is stuck in the first delivery.
    for _ in 0..100 {
        if outbox_statuses(&app.store)
            .await
            .iter()
            .all(|(_, attempts)| *attempts == 1)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    crashed.abort();
    assert!(crashed.await.unwrap_err().is_cancelled());
    assert!(outbox_statuses(&app.store)
        .await
        .iter()
        .all(|(s, _)| s == "queued"));
    assert_eq!(
        app.deliver_mail().await,
        0,
        "still locked by the dead worker"
    );

    app.smtp.set_mode(Mode::Accept);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.deliver_mail().await, 3);
    assert!(outbox_statuses(&app.store)
        .await
        .iter()
        .all(|(s, _)| s == "sent"));
    let mut to: Vec<String> = app.smtp.received().into_iter().flat_map(|m| m.to).collect();
    to.sort();
    to.dedup();
    assert_eq!(to, ["a@example.com", "b@example.com", "c@example.com"]);
    app.stop().await;
}

crate::backend_tests!(
    bulk_send_reports_each_address_and_mails_the_valid_ones,
    statuses_resend_revoke_and_clean_up,
    bad_requests_send_nothing,
    failed_deliveries_are_retried_then_given_up,
    a_crashed_worker_loses_no_message,
);
