//! UI tests in a real browser: headless Chromium (Debian's package) driven over WebDriver
//! by chromedriver. Like the PostgreSQL tests, they are skipped on a machine without the
//! browser but fail in CI, which installs it (`scripts/deps.sh --test`).

use std::{
    net::TcpListener,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, TestApp};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Chrome {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Chrome {
    async fn start() -> Option<Chrome> {
        rollcall::install_crypto_provider();
        if !Path::new(CHROMEDRIVER).exists() || !Path::new(CHROMIUM).exists() {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but {CHROMIUM} / {CHROMEDRIVER} are missing: run scripts/deps.sh --test");
            }
            eprintln!("UI test skipped: Chromium and chromedriver are not installed (scripts/deps.sh --test)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = None;
        for _ in 0..50 {
            match ClientBuilder::rustls()
                .expect("TLS roots")
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Some(Chrome {
                        client,
                        driver,
                        _profile: profile,
                    })
                }
                Err(err) => last_error = Some(err),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("could not start a Chromium session: {last_error:?}");
    }

    async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn sign_up(client: &Client, name: &str, password: &str) {
    client
        .find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    client
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    client
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// An invitee opens the link from the email, is told what they join, tries a weak password,
/// is told why it is refused, chooses a good one and lands signed in, in the org.
async fn invitee_signs_up_in_a_real_browser(backend: Backend) {
    let Some(chrome) = Chrome::start().await else {
        return;
    };
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let team = app.create_team("acme", &admin.token, "Platform").await;
    let r = app
        .post(
            "/api/v1/orgs/acme/invitations",
            &admin.token,
            json!({"emails": ["pat@example.com"], "team_ids": [team]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    app.deliver_mail().await;
    let link = crate::harness::link_in(&app.smtp.received()[0].data);

    let browser = &chrome.client;
    browser.goto(&link).await.unwrap();
    assert_eq!(text_of(browser, "h1").await, "Join acme");
    let intro = text_of(browser, "main p").await;
    assert!(
        intro.contains("admin@acme.test invited pat@example.com to acme"),
        "{intro}"
    );

    sign_up(browser, "Pat Example", "password1234").await;
    // .error exists only on the answer page, so this waits for the navigation to finish.
    let error = text_of(browser, ".error").await;
    assert!(error.contains("Choose a harder password"), "{error}");

    sign_up(browser, "Pat Example", "tangerine-viaduct-41-mollusc").await;
    // Wait for the next page itself: the old page's <h1> may still be there for a moment.
    let heading = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//h1[starts-with(normalize-space(.), 'Signed in as')]",
        ))
        .await
        .expect("the home page after sign-up")
        .text()
        .await
        .unwrap();
    assert_eq!(heading, "Signed in as pat@example.com");
    assert_eq!(browser.current_url().await.unwrap().path(), "/");
    let orgs = text_of(browser, "ul").await;
    assert!(orgs.contains("acme") && orgs.contains("Platform"), "{orgs}");

    let r = app
        .get("/api/v1/orgs/acme/members?q=pat@example.com", &admin.token)
        .await;
    assert_eq!(r.body["data"][0]["teams"][0]["name"], "Platform");
    chrome.stop().await;
    app.stop().await;
}

/// An Okta stand-in: answers each AuthnRequest with a page that posts a signed response to
/// rollcall's ACS, as Okta's own page does.
async fn okta_stand_in(rollcall_base: String) -> String {
    let app = axum::Router::new().route(
        "/app/sso/saml",
        axum::routing::get(
            move |axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>| {
                let base = rollcall_base.clone();
                async move {
                    let request_id = crate::saml::request_id_of(&q["SAMLRequest"]);
                    let response = crate::saml::okta_answer(&base, "acme", &request_id);
                    let relay = q.get("RelayState").cloned().unwrap_or_default();
                    axum::response::Html(format!(
                        r#"<html><body><form method="post" action="{base}/saml/acme/acs"><input type="hidden" name="SAMLResponse" value="{response}"><input type="hidden" name="RelayState" value="{relay}"></form><script>document.forms[0].submit()</script></body></html>"#
                    ))
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/app/sso/saml")
}

/// The whole Okta flow in a real browser: rollcall's login sends it to Okta (a stand-in that
/// signs real responses), Okta's page posts to the ACS, and the person lands signed in, in
/// the org and the team their Okta group maps to.
async fn okta_sign_in_in_a_real_browser(backend: Backend) {
    let Some(chrome) = Chrome::start().await else {
        return;
    };
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let sso = okta_stand_in(app.config.public_base_url.clone()).await;
    let r = app
        .post(
            "/api/v1/orgs/acme/connections",
            &admin.token,
            json!({"kind": "saml", "name": "Okta", "settings": {"idp_metadata_xml": crate::saml::okta_metadata_with_sso(&sso)}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let connection = r.body["id"].as_i64().unwrap();
    let team = app.create_team("acme", &admin.token, "Engineering").await;
    let base = format!("/api/v1/orgs/acme/connections/{connection}");
    app.post(
        &format!("{base}/grants"),
        &admin.token,
        json!({"match": {"kind": "everyone"}}),
    )
    .await;
    app.post(
        &format!("{base}/group-mappings"),
        &admin.token,
        json!({"group": {"name": "Engineering"}, "team_ids": [team]}),
    )
    .await;

    let browser = &chrome.client;
    browser
        .goto(&format!(
            "{}/saml/acme/login?return_to=/",
            app.config.public_base_url
        ))
        .await
        .unwrap();
    let heading = browser
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::XPath(
            "//h1[starts-with(normalize-space(.), 'Signed in as')]",
        ))
        .await
        .expect("the home page after the Okta round trip")
        .text()
        .await
        .unwrap();
    assert_eq!(heading, "Signed in as ada@acme.test");
    let orgs = text_of(browser, "ul").await;
    assert!(
        orgs.contains("acme") && orgs.contains("Engineering"),
        "{orgs}"
    );
    chrome.stop().await;
    app.stop().await;
}

crate::backend_tests!(
    invitee_signs_up_in_a_real_browser,
    okta_sign_in_in_a_real_browser
);
