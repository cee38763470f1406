//! The admin console and the email-first sign-in over HTTP, on both backends: who may see
//! which page, and that each form runs the same command as the admin API (store and audit
//! trail checked through the API). The same pages in a real browser: `ui.rs`.

use reqwest::StatusCode;
use serde_json::json;

use crate::{
    harness::{Backend, Browser, PageResponse, Person, TestApp},
    web::GOOD_PASSWORD,
};

crate::backend_tests!(
    console_pages_need_a_signed_in_admin,
    console_forms_run_the_admin_commands,
    console_configures_sso_and_scim,
    email_first_sign_in_finds_the_identity_provider,
);

/// The org's bootstrap admin, signed in with a password in a browser.
async fn admin_browser(app: &TestApp) -> (Person, Browser) {
    let admin = app.bootstrap("acme", "ann@acme.test").await;
    app.set_password("ann@acme.test", GOOD_PASSWORD).await;
    let browser = Browser::new(app);
    let r = browser.sign_in("ann@acme.test", GOOD_PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    (admin, browser)
}

/// Posts a console form with the page's CSRF token; answers the redirect's flash message
/// (read on the page it leads to) or the page itself when the answer is not a redirect.
async fn submit(
    browser: &Browser,
    page: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> PageResponse {
    let csrf = browser.get(page).await.csrf();
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    let r = browser.post(action, &form).await;
    if r.status == StatusCode::SEE_OTHER {
        browser.get(r.location()).await
    } else {
        r
    }
}

fn flash(page: &PageResponse) -> String {
    let Some(start) = page.body.find("class=\"flash") else {
        return String::new();
    };
    let rest = &page.body[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest.find("</p>").unwrap();
    rest[open..close].to_string()
}

async fn console_pages_need_a_signed_in_admin(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (_, browser) = admin_browser(&app).await;

    // Nobody signed in: to the sign-in page, and back here afterwards.
    let anonymous = Browser::new(&app);
    let r = anonymous.get("/orgs/acme/members").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login?return_to=%2Forgs%2Facme%2Fmembers");

    // A member who is not an admin is told so; an org one does not belong to is not found.
    app.add_member("acme", "bob@acme.test", false).await;
    app.set_password("bob@acme.test", GOOD_PASSWORD).await;
    let bob = Browser::new(&app);
    bob.sign_in("bob@acme.test", GOOD_PASSWORD).await;
    let r = bob.get("/orgs/acme/members").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("requires admin rights"), "{}", r.body);
    assert_eq!(
        bob.get("/orgs/other/members").await.status,
        StatusCode::NOT_FOUND
    );
    // Every person has a profile, which names no org they cannot manage.
    let r = bob.get("/profile").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Hi, Display bob@acme.test") && !r.body.contains("Manage acme"));

    // The admin sees every tab, and the menu offers to manage the org.
    for tab in [
        "members",
        "invitations",
        "teams",
        "sso",
        "scim",
        "audit",
        "settings",
    ] {
        let r = browser.get(&format!("/orgs/acme/{tab}")).await;
        assert_eq!(r.status, StatusCode::OK, "{tab}: {}", r.body);
        assert!(r.body.contains("Manage acme"), "{tab}");
        assert!(
            r.body
                .contains(&format!("href=\"/orgs/acme/{tab}\" aria-current=\"page\"")),
            "{tab}"
        );
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline'; script"),
            "{csp}"
        );
    }
    assert_eq!(
        browser.get("/orgs/acme").await.location(),
        "/orgs/acme/members"
    );

    // A form without its CSRF token changes nothing.
    let r = browser
        .post("/orgs/acme/teams", &[("csrf", ""), ("name", "Sneaky")])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!browser
        .get("/orgs/acme/teams")
        .await
        .body
        .contains("Sneaky"));
    app.stop().await;
}

async fn console_forms_run_the_admin_commands(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, browser) = admin_browser(&app).await;
    let t = &admin.token;

    // Teams.
    let page = submit(
        &browser,
        "/orgs/acme/teams",
        "/orgs/acme/teams",
        &[("name", "Engineering")],
    )
    .await;
    assert_eq!(flash(&page), "Team Engineering created.");
    let page = submit(
        &browser,
        "/orgs/acme/teams",
        "/orgs/acme/teams",
        &[("name", "engineering")],
    )
    .await;
    assert!(flash(&page).contains("already exists"), "{}", flash(&page));
    let eng = app.get("/api/v1/orgs/acme/teams", t).await.body[0]["id"]
        .as_i64()
        .unwrap()
        .to_string();

    // Invitations: several addresses, teams and the admin flag, a result per address.
    let page = submit(
        &browser,
        "/orgs/acme/invitations",
        "/orgs/acme/invitations",
        &[
            ("emails", "pat@example.com, not-an-address\nlee@example.com"),
            ("team", &eng),
            ("is_admin", "1"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("<strong>pat@example.com</strong>:"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Not sent"), "{}", page.body);
    let r = app
        .get("/api/v1/orgs/acme/invitations?status=pending", t)
        .await;
    let pending = r.body["data"].as_array().unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending
        .iter()
        .all(|i| i["is_admin"] == true && i["teams"][0]["name"] == "Engineering"));
    let lee = pending
        .iter()
        .find(|i| i["email"] == "lee@example.com")
        .unwrap()["id"]
        .to_string();
    let confirm = browser
        .get(&format!("/orgs/acme/invitations/{lee}/revoke"))
        .await;
    assert!(confirm
        .body
        .contains("Revoke the invitation of lee@example.com?"));
    let page = submit(
        &browser,
        "/orgs/acme/invitations",
        &format!("/orgs/acme/invitations/{lee}/revoke"),
        &[],
    )
    .await;
    assert_eq!(
        flash(&page),
        "The invitation of lee@example.com is revoked."
    );
    let r = app
        .get("/api/v1/orgs/acme/invitations?status=revoked", t)
        .await;
    assert_eq!(r.body["data"][0]["email"], "lee@example.com");

    // Members: promote and demote, the last admin protected, suspend, teams, remove.
    let bob = app.add_member("acme", "bob@acme.test", false).await;
    let member = |id: i64| {
        let app = &app;
        async move {
            app.get(&format!("/api/v1/orgs/acme/members/{id}"), t)
                .await
                .body
        }
    };
    let page_of = format!("/orgs/acme/members/{}", bob.id);
    let confirm = browser.get(&format!("{page_of}/confirm/promote")).await;
    assert!(
        confirm.body.contains("Make bob@acme.test an admin?"),
        "{}",
        confirm.body
    );
    let page = submit(&browser, &page_of, &format!("{page_of}/promote"), &[]).await;
    assert_eq!(flash(&page), "bob@acme.test is an admin now.");
    assert_eq!(member(bob.id).await["is_admin"], true);
    submit(&browser, &page_of, &format!("{page_of}/demote"), &[]).await;
    assert_eq!(member(bob.id).await["is_admin"], false);
    let me = format!("/orgs/acme/members/{}", admin.id);
    let page = submit(&browser, &me, &format!("{me}/demote"), &[]).await;
    assert!(
        flash(&page).contains("admin"),
        "the reason is shown: {}",
        flash(&page)
    );
    assert_eq!(member(admin.id).await["is_admin"], true);
    submit(&browser, &page_of, &format!("{page_of}/suspend"), &[]).await;
    let b = member(bob.id).await;
    assert_eq!(
        (b["status"].as_str(), b["suspended_by"].as_str()),
        (Some("suspended"), Some("admin"))
    );
    submit(&browser, &page_of, &format!("{page_of}/reactivate"), &[]).await;
    assert_eq!(member(bob.id).await["status"], "active");
    let page = submit(
        &browser,
        &page_of,
        &format!("{page_of}/teams"),
        &[("team", &eng)],
    )
    .await;
    assert_eq!(flash(&page), "Teams of bob@acme.test saved.");
    assert_eq!(
        member(bob.id).await["teams"],
        json!([{"id": eng.parse::<i64>().unwrap(), "name": "Engineering", "source": "manual"}])
    );
    let page = submit(&browser, &page_of, &format!("{page_of}/remove"), &[]).await;
    assert_eq!(flash(&page), "bob@acme.test was removed from acme.");
    assert_eq!(
        app.get(&format!("/api/v1/orgs/acme/members/{}", bob.id), t)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Settings.
    let page = submit(
        &browser,
        "/orgs/acme/settings",
        "/orgs/acme/settings",
        &[("name", "Acme Inc"), ("require_2fa", "1")],
    )
    .await;
    assert_eq!(flash(&page), "Settings saved.");
    let org = app.get("/api/v1/orgs/acme", t).await.body;
    assert_eq!(
        (
            org["name"].as_str(),
            org["require_2fa"].as_bool(),
            org["sso_enforced"].as_bool()
        ),
        (Some("Acme Inc"), Some(true), Some(false))
    );

    // Every change is in the audit trail, with the console as the way it came.
    let page = browser
        .get("/orgs/acme/audit?action=member.&actor=ann")
        .await;
    for action in [
        "member.promoted",
        "member.demoted",
        "member.suspended",
        "member.reactivated",
        "member.teams_changed",
        "member.removed",
    ] {
        assert!(
            page.body.contains(&format!("<code>{action}</code>")),
            "{action}"
        );
    }
    assert!(page.body.contains("ann@acme.test (console)"));
    assert!(
        !page.body.contains("<code>team.created</code>"),
        "filtered by action"
    );
    app.stop().await;
}

async fn console_configures_sso_and_scim(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, browser) = admin_browser(&app).await;
    let t = &admin.token;
    app.create_team("acme", t, "Engineering").await;

    // An Entra connection: the secret is sealed and never shown; the redirect URI to copy.
    let tenant = "9188040d-6c67-4c5b-b112-36a304b66dad";
    let page = submit(
        &browser,
        "/orgs/acme/sso",
        "/orgs/acme/sso/connections",
        &[
            ("kind", "oidc"),
            ("preset", "entra"),
            ("name", "Entra ID"),
            ("tenant_id", &tenant.to_uppercase()),
            ("client_id", "app-id"),
            ("client_secret", "s3cret-value"),
        ],
    )
    .await;
    assert_eq!(flash(&page), "Connection Entra ID added.");
    assert!(page.body.contains("/oidc/callback"), "{}", page.body);
    assert!(!page.body.contains("s3cret-value"));
    let connection = app.get("/api/v1/orgs/acme/connections", t).await.body[0].clone();
    assert_eq!(
        connection["settings"]["tenant_id"], tenant,
        "saved in lower case"
    );
    let id = connection["id"].as_i64().unwrap();
    let page_of = format!("/orgs/acme/sso/connections/{id}");

    // A grant and a group mapping, with teams picked by name; then the explain tool.
    let eng = app.get("/api/v1/orgs/acme/teams", t).await.body[0]["id"].to_string();
    submit(
        &browser,
        &page_of,
        &format!("{page_of}/grants"),
        &[("match", "everyone")],
    )
    .await;
    let page = submit(
        &browser,
        &page_of,
        &format!("{page_of}/mappings"),
        &[("group_name", "Engineers"), ("team", &eng)],
    )
    .await;
    assert!(
        flash(&page).starts_with("The group now maps to Engineering"),
        "{}",
        flash(&page)
    );
    let page = submit(
        &browser,
        &page_of,
        &format!("{page_of}/explain"),
        &[("email", "new@elsewhere.test"), ("groups", "Engineers")],
    )
    .await;
    assert!(
        page.body.contains("new@elsewhere.test would get in"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<span class=\"chip\">Engineering</span>"),
        "{}",
        page.body
    );
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/connections/{id}/group-mappings"),
            t,
        )
        .await;
    assert_eq!(r.body[0]["group"]["name"], "Engineers");

    // A domain: the TXT record to publish, then "check now".
    let page = submit(
        &browser,
        "/orgs/acme/sso",
        "/orgs/acme/sso/domains",
        &[("domain", "acme.test")],
    )
    .await;
    assert_eq!(
        flash(&page),
        "acme.test added. Publish its TXT record, then check it."
    );
    let name = between(&page.body, "TXT <code>", "</code>");
    let value = between(&page.body, "value <code>", "</code>");
    app.dns.set_txt(&name, &[&value]);
    let domain = app.get("/api/v1/orgs/acme/domains", t).await.body[0]["id"].to_string();
    let page = submit(
        &browser,
        "/orgs/acme/sso",
        &format!("/orgs/acme/sso/domains/{domain}/verify"),
        &[],
    )
    .await;
    assert_eq!(flash(&page), "acme.test is verified.");

    // SCIM: the base URL, a token shown once, then revoked.
    let page = submit(
        &browser,
        "/orgs/acme/scim",
        "/orgs/acme/scim",
        &[
            ("name", "Entra provisioning"),
            ("connection_id", &id.to_string()),
        ],
    )
    .await;
    let secret = between(
        &page.body,
        "id=\"scim-secret\" class=\"secret\" type=\"text\" readonly value=\"",
        "\"",
    );
    assert!(secret.starts_with("rc_scim_"), "{secret}");
    let again = browser.get("/orgs/acme/scim").await;
    assert!(again
        .body
        .contains(&format!("{}/scim/v2/acme", app.config.public_base_url)));
    assert!(!again.body.contains(&secret), "shown once");
    let r = app
        .client
        .get(app.url("/scim/v2/acme/Users"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let token = app.get("/api/v1/orgs/acme/scim-tokens", t).await.body[0]["id"].to_string();
    submit(
        &browser,
        "/orgs/acme/scim",
        &format!("/orgs/acme/scim/tokens/{token}/revoke"),
        &[],
    )
    .await;
    let r = app
        .client
        .get(app.url("/scim/v2/acme/Users"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

fn between(text: &str, start: &str, end: &str) -> String {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start:?} in {text}"))
        + start.len();
    let len = text[from..].find(end).unwrap();
    text[from..from + len].to_string()
}

/// Home-realm discovery: the email decides where the person signs in.
async fn email_first_sign_in_finds_the_identity_provider(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "ann@acme.test").await;
    let saml = |name: &str| json!({"kind": "saml", "name": name, "settings": {"idp_metadata_xml": crate::saml::okta_metadata_with_sso("https://acme.okta.example/app/sso/saml")}});
    let r = app
        .post("/api/v1/orgs/acme/connections", &admin.token, saml("Okta"))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let okta = r.body["id"].as_i64().unwrap();
    rollcall::operator::verify_domain(&app.store, "acme", "acme.test")
        .await
        .unwrap();
    let browser = Browser::new(&app);
    let email_step = |email: &'static str, return_to: &'static str| {
        let browser = &browser;
        async move {
            let csrf = browser.get("/login").await.csrf();
            browser
                .post(
                    "/login",
                    &[("csrf", &csrf), ("email", email), ("return_to", return_to)],
                )
                .await
        }
    };

    // The first page asks for the email only.
    let first = browser.get("/login").await;
    assert!(first.body.contains("Work email") && !first.body.contains("name=\"password\""));

    // A verified domain with one connection: on to it, keeping where to come back to.
    let r = email_step("Ray@ACME.test", "/profile").await;
    assert_eq!(r.status, StatusCode::OK);
    let to = format!("/saml/acme/login?connection={okta}&amp;return_to=%2Fprofile");
    assert!(
        r.body
            .contains(&format!("http-equiv=\"refresh\" content=\"0;url={to}\"")),
        "{}",
        r.body
    );
    assert!(r.body.contains("Continue to Okta"));

    // Another domain: the password.
    let r = email_step("someone@gmail.test", "/").await;
    assert!(
        r.body.contains("name=\"password\"") && r.body.contains("value=\"someone@gmail.test\""),
        "{}",
        r.body
    );

    // Several connections: a choice.
    app.post(
        "/api/v1/orgs/acme/connections",
        &admin.token,
        saml("Okta (backup)"),
    )
    .await;
    let r = email_step("ray@acme.test", "/").await;
    assert!(
        r.body.contains("Sign in with Okta") && r.body.contains("Sign in with Okta (backup)"),
        "{}",
        r.body
    );

    // An org that enforces SSO never offers a password, even with no connection on.
    for id in app
        .get("/api/v1/orgs/acme/connections", &admin.token)
        .await
        .body
        .as_array()
        .unwrap()
    {
        app.patch(
            &format!("/api/v1/orgs/acme/connections/{}", id["id"]),
            &admin.token,
            json!({"enabled": false}),
        )
        .await;
    }
    app.patch(
        "/api/v1/orgs/acme",
        &admin.token,
        json!({"sso_enforced": true}),
    )
    .await;
    let r = email_step("ray@acme.test", "/").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(
        r.body.contains("Single sign-on is not ready") && !r.body.contains("name=\"password\"")
    );
    app.stop().await;
}
