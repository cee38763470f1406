//! Two-factor authentication, password reset, rate limits, and the way back from SSO to an
//! invitation, over HTTP on both backends.

use reqwest::StatusCode;
use rollcall::{
    accounts,
    provisioning::{self, ExternalIdentity, Via},
};
use serde_json::json;

use crate::harness::{Backend, Browser, TestApp};

const PASSWORD: &str = "tangerine-viaduct-41-mollusc";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let i = body
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} not in {body}"))
        + start.len();
    let j = body[i..].find(end).unwrap() + i;
    &body[i..j]
}

async fn orgs_that_require_2fa_make_members_enrol(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "ann@acme.test").await;
    app.set_password("ann@acme.test", PASSWORD).await;
    app.patch(
        "/api/v1/orgs/acme",
        &admin.token,
        json!({"require_2fa": true}),
    )
    .await;

    let browser = Browser::new(&app);
    let r = browser.sign_in("ann@acme.test", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login/2fa");
    assert_eq!(
        browser.get("/").await.location(),
        "/login",
        "no session before the second factor"
    );
    let page = browser.get("/login/2fa").await;
    assert!(
        page.body
            .contains("acme requires two-factor authentication"),
        "{}",
        page.body
    );
    let secret = between(&page.body, "Key to type in: <code>", "</code>").to_string();
    // The seed is sealed at rest: the database never holds what the page showed.
    let stored = {
        let mut tx = app.store.read().await.unwrap();
        rollcall::store::mfa::totp(&mut tx, admin.id)
            .await
            .unwrap()
            .expect("enrolment started")
            .secret
    };
    assert!(stored.starts_with("v1:"), "{stored}");
    assert!(!stored.contains(&secret), "{stored}");
    assert!(page
        .body
        .contains("otpauth://totp/rollcall:ann%40acme.test"));

    let wrong = browser
        .post("/login/2fa", &[("csrf", &page.csrf()), ("code", "000000")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("That code is not right"));
    let code = accounts::totp_code(&secret, unix_now()).unwrap();
    let done = browser
        .post("/login/2fa", &[("csrf", &page.csrf()), ("code", &code)])
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Save your recovery codes"));
    let codes: Vec<String> = done
        .body
        .match_indices("<li><code>")
        .map(|(i, _)| done.body[i + 10..i + 21].to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    assert!(browser
        .get("/")
        .await
        .body
        .contains("Signed in as ann@acme.test"));

    // From now on every password sign-in asks for a code; a used code does not work twice.
    let second = Browser::new(&app);
    assert_eq!(
        second.sign_in("ann@acme.test", PASSWORD).await.location(),
        "/login/2fa"
    );
    let page = second.get("/login/2fa").await;
    assert!(page.body.contains("Enter your code"));
    let replay = second
        .post("/login/2fa", &[("csrf", &page.csrf()), ("code", &code)])
        .await;
    assert_eq!(
        replay.status,
        StatusCode::UNAUTHORIZED,
        "a TOTP code is good once"
    );
    let ok = second
        .post(
            "/login/2fa",
            &[("csrf", &page.csrf()), ("code", &codes[0].to_uppercase())],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.location(), "/");
    let third = Browser::new(&app);
    third.sign_in("ann@acme.test", PASSWORD).await;
    let page = third.get("/login/2fa").await;
    let reused = third
        .post("/login/2fa", &[("csrf", &page.csrf()), ("code", &codes[0])])
        .await;
    assert_eq!(
        reused.status,
        StatusCode::UNAUTHORIZED,
        "a recovery code is good once"
    );
    app.stop().await;
}

async fn password_reset_by_email(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    app.bootstrap("acme", "bo@acme.test").await;
    app.set_password("bo@acme.test", PASSWORD).await;
    let old_session = Browser::new(&app);
    old_session.sign_in("bo@acme.test", PASSWORD).await;
    assert!(old_session.get("/").await.body.contains("Signed in as"));

    let browser = Browser::new(&app);
    let page = browser.get("/password/forgot").await;
    let known = browser
        .post(
            "/password/forgot",
            &[("csrf", &page.csrf()), ("email", "BO@acme.test")],
        )
        .await;
    let unknown = browser
        .post(
            "/password/forgot",
            &[("csrf", &page.csrf()), ("email", "ghost@acme.test")],
        )
        .await;
    assert_eq!(known.status, StatusCode::OK);
    assert_eq!(unknown.status, StatusCode::OK);
    assert_eq!(
        known.body.replace("bo@acme.test", "X"),
        unknown.body.replace("ghost@acme.test", "X"),
        "the answer does not reveal whether the account exists"
    );
    assert_eq!(
        app.deliver_mail().await,
        1,
        "one email, to the real account"
    );
    let mail = app.smtp.received().pop().unwrap();
    assert_eq!(mail.to, ["bo@acme.test"]);
    let data = mail.data.replace("=\r\n", "").replace("=\n", "");
    let link = data
        .split_whitespace()
        .find(|w| w.contains("/password/reset/rc_pwr_"))
        .unwrap()
        .to_string();
    let path = &link[link.find("/password/").unwrap()..];

    let form = browser.get(path).await;
    assert_eq!(form.status, StatusCode::OK);
    let weak = browser
        .post(
            path,
            &[("csrf", &form.csrf()), ("password", "password1234")],
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    let new_password = "quiet-harbour-lantern-88";
    let done = browser
        .post(path, &[("csrf", &form.csrf()), ("password", new_password)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), "/login?reset=1");
    assert!(browser
        .get("/login?reset=1")
        .await
        .body
        .contains("Your password was changed"));
    assert_eq!(
        browser.get(path).await.status,
        StatusCode::NOT_FOUND,
        "the link works once"
    );
    assert_eq!(
        old_session.get("/").await.location(),
        "/login",
        "old sessions ended"
    );
    assert_eq!(
        Browser::new(&app)
            .sign_in("bo@acme.test", PASSWORD)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        Browser::new(&app)
            .sign_in("bo@acme.test", new_password)
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    app.stop().await;
}

async fn sign_in_attempts_are_rate_limited(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    app.bootstrap("acme", "cy@acme.test").await;
    app.set_password("cy@acme.test", PASSWORD).await;
    let browser = Browser::new(&app);
    for attempt in 0..10 {
        let r = browser.sign_in("cy@acme.test", "wrong-password-here").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    // The account is locked for the window, even with the right password.
    let r = browser.sign_in("cy@acme.test", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("Too many attempts"));
    let retry: i64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Other accounts are unaffected until this address reaches its own limit (30).
    app.bootstrap("globex", "di@globex.test").await;
    app.set_password("di@globex.test", PASSWORD).await;
    assert_eq!(
        browser.sign_in("di@globex.test", PASSWORD).await.status,
        StatusCode::SEE_OTHER
    );
    for _ in 0..18 {
        browser.sign_in("nobody@example.com", "x").await;
    }
    let r = Browser::new(&app).sign_in("di@globex.test", PASSWORD).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the address is over 30 attempts"
    );
    app.stop().await;
}

async fn back_from_sso_the_invitation_is_done(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/connections",
            &admin.token,
            json!({"kind": "saml", "name": "Okta"}),
        )
        .await;
    let okta = r.body["id"].as_i64().unwrap();
    rollcall::operator::verify_domain(&app.store, "acme", "acme.test")
        .await
        .unwrap();
    let r = app
        .post(
            "/api/v1/orgs/acme/invitations",
            &admin.token,
            json!({"emails": ["emp@acme.test", "other@acme.test"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    app.deliver_mail().await;
    let links: Vec<String> = app
        .smtp
        .received()
        .iter()
        .map(|m| {
            let data = m.data.replace("=\r\n", "").replace("=\n", "");
            data.split_whitespace()
                .find(|w| w.contains("/invite/rc_inv_"))
                .unwrap()
                .to_string()
        })
        .collect();

    // The SSO front door provisions emp@acme.test: the pending invitation is accepted on the
    // way, and the browser comes back to the invitation link signed in.
    let who = ExternalIdentity {
        connection_id: okta,
        subject: "00u-emp".into(),
        email: Some("emp@acme.test".into()),
        ..Default::default()
    };
    let out = provisioning::provision(&app.store, &who, Via::Sso, None)
        .await
        .unwrap();
    assert!(out.invitation_accepted.is_some());
    let browser = Browser::new(&app);
    browser.set_cookie("rollcall_session", &app.session_for(out.user_id).await);
    let page = browser.get(&links[0]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("You are a member of acme now"));

    // Signed in through SSO as emp@, following other@'s invitation: told, with both names.
    let page = browser.get(&links[1]).await;
    assert!(
        page.body.contains(
            "You are signed in as emp@acme.test, but this invitation is for other@acme.test"
        ),
        "{}",
        page.body
    );
    // Someone else with the accepted link sees only that it is no longer valid.
    assert_eq!(
        Browser::new(&app).get(&links[0]).await.status,
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

/// Seeds that versions before sealing stored in plaintext are sealed at start-up, and still
/// verify afterwards.
async fn plaintext_totp_seeds_are_sealed_at_start(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "ann@acme.test").await;
    let seed = accounts::new_totp_secret();
    let mut tx = app.store.begin().await.unwrap();
    rollcall::store::mfa::begin_totp(&mut tx, admin.id, &seed)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let sealer = rollcall::secrets::Sealer::from_config(&app.config.secrets).unwrap();
    assert_eq!(
        rollcall::operator::seal_stored_secrets(&app.store, &sealer)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        rollcall::operator::seal_stored_secrets(&app.store, &sealer)
            .await
            .unwrap(),
        0,
        "a sealed seed is left alone"
    );
    let mut tx = app.store.read().await.unwrap();
    let stored = rollcall::store::mfa::totp(&mut tx, admin.id)
        .await
        .unwrap()
        .unwrap()
        .secret;
    drop(tx);
    assert!(
        stored.starts_with("v1:") && !stored.contains(&seed),
        "{stored}"
    );
    assert_eq!(sealer.open(&stored).as_deref(), Some(seed.as_str()));
    app.stop().await;
}

crate::backend_tests!(
    plaintext_totp_seeds_are_sealed_at_start,
    orgs_that_require_2fa_make_members_enrol,
    password_reset_by_email,
    sign_in_attempts_are_rate_limited,
    back_from_sso_the_invitation_is_done,
);
