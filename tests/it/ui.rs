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
    let data = app.smtp.received()[0]
        .data
        .replace("=\r\n", "")
        .replace("=\n", "");
    let link = data
        .split_whitespace()
        .find(|w| w.contains("/invite/rc_inv_"))
        .unwrap()
        .to_string();

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

crate::backend_tests!(invitee_signs_up_in_a_real_browser);
