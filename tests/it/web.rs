//! The invitation pages and password sign-in, driven like a browser (cookies kept,
//! redirects inspected), on both backends.

use reqwest::StatusCode;
use rollcall::{
    operator,
    store::{self, Store},
};
use serde_json::json;

use crate::harness::{Backend, Browser, Person, TestApp};

pub(crate) const GOOD_PASSWORD: &str = "tangerine-viaduct-41-mollusc";

/// Invites `email` into acme (with a team, optionally as admin) and returns the link from
/// the delivered email.
pub(crate) async fn invite(
    app: &TestApp,
    admin: &Person,
    email: &str,
    is_admin: bool,
    team: Option<i64>,
) -> String {
    let teams: Vec<i64> = team.into_iter().collect();
    let r = app
        .post(
            "/api/v1/orgs/acme/invitations",
            &admin.token,
            json!({"emails": [email], "team_ids": teams, "is_admin": is_admin}),
        )
        .await;
    assert_eq!(r.body["results"][0]["result"], "invited", "{:?}", r.body);
    app.deliver_mail().await;
    let data = app
        .smtp
        .received()
        .last()
        .unwrap()
        .data
        .replace("=\r\n", "")
        .replace("=\n", "");
    data.split_whitespace()
        .find(|w| w.contains("/invite/rc_inv_"))
        .unwrap()
        .to_string()
}

pub(crate) fn path_of(link: &str) -> String {
    link[link.find("/invite/").unwrap()..].to_string()
}

async fn member(app: &TestApp, admin: &Person, email: &str) -> serde_json::Value {
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/members?q={email}"),
            &admin.token,
        )
        .await;
    r.body["data"][0].clone()
}

async fn new_user_signs_up_through_the_invitation(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let team = app.create_team("acme", &admin.token, "Research").await;
    let link = invite(&app, &admin, "newbie@example.com", true, Some(team)).await;
    let browser = Browser::new(&app);

    let page = browser.get(&link).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Join acme"));
    assert!(
        page.body
            .contains("admin@acme.test invited <strong>newbie@example.com</strong>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("as an administrator") && page.body.contains("Research"));
    assert!(page.body.contains("Create your account"));
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    assert_eq!(page.headers["cache-control"], "no-store");
    let csrf = page.csrf();
    let signup = format!("{}/signup", path_of(&link));

    let weak = browser
        .post(
            &signup,
            &[
                ("csrf", &csrf),
                ("name", "New Bie"),
                ("password", "password123"),
            ],
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(
        weak.body.contains("Choose a harder password"),
        "{}",
        weak.body
    );
    assert!(
        member(&app, &admin, "newbie@example.com").await.is_null(),
        "nothing created"
    );

    let done = browser
        .post(
            &signup,
            &[
                ("csrf", &csrf),
                ("name", "New Bie"),
                ("password", GOOD_PASSWORD),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/");
    let set_cookie = done
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>();
    let session = set_cookie
        .iter()
        .find(|c| c.starts_with("rollcall_session="))
        .expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );

    let home = browser.get("/").await;
    assert!(
        home.body.contains("Signed in as newbie@example.com"),
        "{}",
        home.body
    );
    assert!(
        home.body.contains("acme")
            && home.body.contains("(admin)")
            && home.body.contains("Research")
    );

    let m = member(&app, &admin, "newbie@example.com").await;
    assert_eq!(m["source"], "invitation");
    assert_eq!(m["is_admin"], true);
    assert_eq!(m["admin_source"], "manual");
    assert_eq!(m["user"]["display_name"], "New Bie");
    assert_eq!(
        m["teams"],
        json!([{"id": team, "name": "Research", "source": "invitation"}])
    );
    let r = app
        .get(
            "/api/v1/orgs/acme/invitations?status=accepted",
            &admin.token,
        )
        .await;
    assert_eq!(r.body["data"][0]["email"], "newbie@example.com");

    // The link is used up.
    let again = Browser::new(&app).get(&link).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert!(again.body.contains("no longer valid"));
    app.stop().await;
}

async fn existing_user_signs_in_then_accepts(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    app.bootstrap("globex", "kim@example.com").await;
    app.set_password("kim@example.com", GOOD_PASSWORD).await;
    let link = invite(&app, &admin, "Kim@Example.com", false, None).await;
    let browser = Browser::new(&app);
    let page = browser.get(&link).await;
    assert!(
        page.body.contains("You already have an account"),
        "{}",
        page.body
    );

    // Sign-in failures read the same whether the account exists or not.
    let login = browser
        .get(&format!("/login?return_to={}", path_of(&link)))
        .await;
    let csrf = login.csrf();
    let wrong = browser
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", "kim@example.com"),
                ("password", "nope-nope-nope"),
                ("return_to", &path_of(&link)),
            ],
        )
        .await;
    let unknown = browser
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", "nobody@example.com"),
                ("password", "nope-nope-nope"),
                ("return_to", "/"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.body.contains("do not match an account")
            && unknown.body.contains("do not match an account")
    );

    let ok = browser
        .post(
            "/login",
            &[
                ("csrf", &csrf),
                ("email", "KIM@example.com"),
                ("password", GOOD_PASSWORD),
                ("return_to", &path_of(&link)),
            ],
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.location(), path_of(&link));
    let page = browser.get(&link).await;
    assert!(page.body.contains("Accept and join acme"), "{}", page.body);
    let accepted = browser
        .post(
            &format!("{}/accept", path_of(&link)),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(accepted.status, StatusCode::SEE_OTHER, "{}", accepted.body);
    let home = browser.get("/").await;
    assert!(
        home.body.contains("acme") && home.body.contains("globex"),
        "{}",
        home.body
    );
    assert_eq!(
        member(&app, &admin, "kim@example.com").await["source"],
        "invitation"
    );
    app.stop().await;
}

async fn the_wrong_account_cannot_accept(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    app.bootstrap("globex", "other@example.com").await;
    app.set_password("other@example.com", GOOD_PASSWORD).await;
    let link = invite(&app, &admin, "invited@example.com", false, None).await;
    let browser = Browser::new(&app);
    browser.sign_in("other@example.com", GOOD_PASSWORD).await;
    let page = browser.get(&link).await;
    assert!(
        page.body.contains(
            "signed in as other@example.com, but this invitation is for invited@example.com"
        ),
        "{}",
        page.body
    );
    let r = browser
        .post(
            &format!("{}/accept", path_of(&link)),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("This invitation is for invited@example.com, but you are signed in as other@example.com"), "{}", r.body);
    assert!(member(&app, &admin, "other@example.com").await.is_null());
    let r = app
        .get("/api/v1/orgs/acme/invitations?status=pending", &admin.token)
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1, "still pending");
    app.stop().await;
}

async fn sso_users_are_sent_to_their_sso_login(backend: Backend) {
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
    let sso_link = invite(&app, &admin, "emp@acme.test", false, None).await;
    let local_link = invite(&app, &admin, "contractor@example.com", false, None).await;
    let browser = Browser::new(&app);

    let page = browser.get(&sso_link).await;
    assert!(
        page.body.contains("Continue with SSO")
            && page.body.contains("signs its members in with Okta"),
        "{}",
        page.body
    );
    let expected = format!(
        "/saml/acme/login?connection={okta}&amp;return_to={}",
        path_of(&sso_link).replace('/', "%2F")
    );
    assert!(page.body.contains(&expected), "{expected} in {}", page.body);
    assert!(!page.body.contains("Create your account"));
    // A hand-made sign-up post is refused too (the page offers no form; the token comes from
    // the sign-in page, which shares the cookie).
    let csrf = browser.get("/login").await.csrf();
    let r = browser
        .post(
            &format!("{}/signup", path_of(&sso_link)),
            &[("csrf", &csrf), ("name", "E"), ("password", GOOD_PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("single sign-on"));

    // An address outside the verified domain may still use a local account...
    assert!(browser
        .get(&local_link)
        .await
        .body
        .contains("Create your account"));
    // ...until the org enforces SSO for everyone.
    app.patch(
        "/api/v1/orgs/acme",
        &admin.token,
        json!({"sso_enforced": true}),
    )
    .await;
    assert!(browser
        .get(&local_link)
        .await
        .body
        .contains("Continue with SSO"));
    app.patch(
        &format!("/api/v1/orgs/acme/connections/{okta}"),
        &admin.token,
        json!({"enabled": false}),
    )
    .await;
    let r = browser.get(&local_link).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r
        .body
        .contains("requires single sign-on, but no sign-in method is set up"));
    app.stop().await;
}

async fn forms_need_their_csrf_token_and_our_origin(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let link = invite(&app, &admin, "victim@example.com", false, None).await;
    let signup = format!("{}/signup", path_of(&link));
    let browser = Browser::new(&app);
    // No token at all, a made-up token, the right token from another origin.
    let fresh = Browser::new(&app);
    let r = fresh
        .post(
            &signup,
            &[("csrf", "x"), ("name", "V"), ("password", GOOD_PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("This form has expired"));
    let page = browser.get(&link).await;
    let forged = "A".repeat(43);
    let r = browser
        .post(
            &signup,
            &[
                ("csrf", &forged),
                ("name", "V"),
                ("password", GOOD_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = browser
        .post_from(
            &signup,
            "https://evil.example",
            &[
                ("csrf", &page.csrf()),
                ("name", "V"),
                ("password", GOOD_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(member(&app, &admin, "victim@example.com").await.is_null());
    // The same request from our own origin works.
    let own = format!("http://{}", app.addr);
    let r = browser
        .post_from(
            &signup,
            &own,
            &[
                ("csrf", &page.csrf()),
                ("name", "V"),
                ("password", GOOD_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    app.stop().await;
}

async fn broken_links_all_look_the_same(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let revoked = invite(&app, &admin, "r@example.com", false, None).await;
    let expired = invite(&app, &admin, "e@example.com", false, None).await;
    let r = app.get("/api/v1/orgs/acme/invitations", &admin.token).await;
    for inv in r.body["data"].as_array().unwrap() {
        let id = inv["id"].as_i64().unwrap();
        if inv["email"] == "r@example.com" {
            app.delete(&format!("/api/v1/orgs/acme/invitations/{id}"), &admin.token)
                .await;
        } else {
            let sql = format!("UPDATE invitations SET expires_at = created_at WHERE id = {id}");
            match &app.store {
                Store::Sqlite(pool) => sqlx::query(&sql).execute(pool).await.map(drop).unwrap(),
                Store::Postgres(pool) => sqlx::query(&sql).execute(pool).await.map(drop).unwrap(),
            }
        }
    }
    let browser = Browser::new(&app);
    let unknown = format!("http://{}/invite/rc_inv_{}", app.addr, "x".repeat(43));
    let pages = [
        browser.get(&revoked).await,
        browser.get(&expired).await,
        browser.get(&unknown).await,
        browser.get("/invite/garbage").await,
    ];
    for page in &pages {
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert_eq!(page.body, pages[0].body);
    }
    assert!(pages[0].body.contains("Ask the person who invited you"));
    app.stop().await;
}

async fn two_accepts_of_one_link_make_one_membership(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    app.bootstrap("globex", "dup@example.com").await;
    app.set_password("dup@example.com", GOOD_PASSWORD).await;
    let link = invite(&app, &admin, "dup@example.com", false, None).await;
    let accept = format!("{}/accept", path_of(&link));
    let (a, b) = (Browser::new(&app), Browser::new(&app));
    for browser in [&a, &b] {
        browser.sign_in("dup@example.com", GOOD_PASSWORD).await;
    }
    let (pa, pb) = (a.get(&link).await, b.get(&link).await);
    let (ca, cb) = (pa.csrf(), pb.csrf());
    let (fa, fb) = ([("csrf", ca.as_str())], [("csrf", cb.as_str())]);
    let (ra, rb) = tokio::join!(a.post(&accept, &fa), b.post(&accept, &fb));
    let mut statuses = [ra.status, rb.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::SEE_OTHER, StatusCode::NOT_FOUND],
        "{} / {}",
        ra.body,
        rb.body
    );
    let r = app.get("/api/v1/orgs/acme/members", &admin.token).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    app.stop().await;
}

async fn sign_in_rotates_the_session_and_sign_out_ends_it(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    app.bootstrap("acme", "ann@acme.test").await;
    app.set_password("ann@acme.test", GOOD_PASSWORD).await;
    let browser = Browser::new(&app);
    let login = browser.get("/login").await;
    let first = browser
        .post(
            "/login",
            &[
                ("csrf", &login.csrf()),
                ("email", "ann@acme.test"),
                ("password", GOOD_PASSWORD),
            ],
        )
        .await;
    let cookie_of = |r: &crate::harness::PageResponse| {
        r.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .find(|c| c.starts_with("rollcall_session="))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("rollcall_session=")
            .to_string()
    };
    let old = cookie_of(&first);
    let second = browser
        .post(
            "/login",
            &[
                ("csrf", &login.csrf()),
                ("email", "ann@acme.test"),
                ("password", GOOD_PASSWORD),
            ],
        )
        .await;
    let new = cookie_of(&second);
    assert_ne!(old, new);
    let me = |secret: String| {
        let client = app.client.clone();
        let url = app.url("/api/v1/me");
        async move {
            client
                .get(url)
                .header("cookie", format!("rollcall_session={secret}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        me(old.clone()).await,
        StatusCode::UNAUTHORIZED,
        "the old session ended at the new sign-in"
    );
    assert_eq!(me(new.clone()).await, StatusCode::OK);
    let home = browser.get("/").await;
    let out = browser.post("/logout", &[("csrf", &home.csrf())]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/login");
    assert_eq!(me(new).await, StatusCode::UNAUTHORIZED);
    assert_eq!(browser.get("/").await.location(), "/login");
    // Open redirects are not possible through return_to: browsers strip a tab or newline
    // and read a backslash as a slash, so each of these would leave for evil.example.
    for evil in [
        "//evil.example/x",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\\evil.example",
        "/\\/evil.example",
        "https://evil.example/",
    ] {
        let r = browser
            .post(
                "/login",
                &[
                    ("csrf", &login.csrf()),
                    ("email", "ann@acme.test"),
                    ("password", GOOD_PASSWORD),
                    ("return_to", evil),
                ],
            )
            .await;
        assert_eq!(r.location(), "/", "return_to {evil:?}");
    }
    let page = browser.get("/login?return_to=/%09/evil.example").await;
    assert!(
        page.body.contains(r#"name="return_to" value="/""#),
        "{}",
        page.body
    );
    app.stop().await;
}

crate::backend_tests!(
    new_user_signs_up_through_the_invitation,
    existing_user_signs_in_then_accepts,
    the_wrong_account_cannot_accept,
    sso_users_are_sent_to_their_sso_login,
    forms_need_their_csrf_token_and_our_origin,
    broken_links_all_look_the_same,
    two_accepts_of_one_link_make_one_membership,
    sign_in_rotates_the_session_and_sign_out_ends_it,
    the_operator_gives_a_bootstrap_admin_a_password,
);

/// A bootstrap admin has only an API token until the operator sets a password
/// (`rollcall user set-password`), under the same policy as the pages.
async fn the_operator_gives_a_bootstrap_admin_a_password(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "ann@acme.test").await;
    let browser = Browser::new(&app);
    browser.sign_in("ann@acme.test", GOOD_PASSWORD).await;
    assert_eq!(
        browser.get("/").await.location(),
        "/login",
        "no password yet"
    );

    let weak = operator::set_password(&app.store, "ann@acme.test", "password123").await;
    assert!(matches!(weak, Err(store::Error::Invalid(_))), "{weak:?}");
    let nobody = operator::set_password(&app.store, "nobody@acme.test", GOOD_PASSWORD).await;
    assert!(
        matches!(nobody, Err(store::Error::NotFound("user"))),
        "{nobody:?}"
    );

    operator::set_password(&app.store, "ANN@acme.test", GOOD_PASSWORD)
        .await
        .unwrap();
    browser.sign_in("ann@acme.test", GOOD_PASSWORD).await;
    assert_eq!(browser.get("/").await.status, StatusCode::OK, "signed in");

    // Setting it again ends that session; the API token is not a session and keeps working.
    operator::set_password(&app.store, "ann@acme.test", "another-marmalade-gazebo-93")
        .await
        .unwrap();
    assert_eq!(browser.get("/").await.location(), "/login");
    let r = app
        .get("/api/v1/orgs/acme/audit?limit=1", &admin.token)
        .await;
    assert_eq!(
        r.body["data"][0]["action"], "user.password_set",
        "{}",
        r.body
    );
    assert_eq!(
        r.body["data"][0]["actor"],
        "operator (rollcall user set-password)"
    );
    app.stop().await;
}
