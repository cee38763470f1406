//! UI tests in a real browser: headless Chromium (Debian's package) driven over WebDriver
//! by chromedriver. Like the PostgreSQL tests, they are skipped on a machine without the
//! browser but fail in CI, which installs it (`scripts/deps.sh --test`).

use std::{
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
        let port = crate::harness::free_port();
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
    let orgs = text_of(browser, "#orgs").await;
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
    let orgs = text_of(browser, "#orgs").await;
    assert!(
        orgs.contains("acme") && orgs.contains("Engineering"),
        "{orgs}"
    );
    chrome.stop().await;
    app.stop().await;
}

crate::backend_tests!(
    invitee_signs_up_in_a_real_browser,
    okta_sign_in_in_a_real_browser,
    an_admin_runs_the_org_from_the_console,
);

/// axe-core, vendored (tests/fixtures/axe), run in the page.
const AXE: &str = include_str!("../fixtures/axe/axe.min.js");

/// A browser test's view of the console: the client, where screenshots go, and the pages
/// checked so far.
struct Tour<'a> {
    client: &'a Client,
    base: String,
    shots: std::path::PathBuf,
    checked: Vec<String>,
}

impl Tour<'_> {
    async fn goto(&mut self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Clicks the link or button whose text is `text`.
    async fn click_text(&self, text: &str) {
        let xpath = format!("//*[(self::a or self::button) and normalize-space(.)='{text}']");
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("nothing named {text:?}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Waits until the page shows `text` (in its main content) and returns that content.
    async fn sees(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let body = self.client.find(Locator::Css("body")).await.ok();
            let shown = match body {
                Some(body) => body.text().await.unwrap_or_default(),
                None => String::new(),
            };
            if shown.contains(text) {
                return shown;
            }
            if std::time::Instant::now() > deadline {
                panic!("the page never showed {text:?}; it shows: {shown}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs axe-core on the page (no violation of serious or critical impact allowed) and
    /// saves a screenshot named `name`.
    async fn check(&mut self, name: &str) {
        self.client
            .execute(AXE, vec![])
            .await
            .expect("axe-core loads");
        let found = self
            .client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                axe.run(document).then(r => done(JSON.stringify(r.violations
                    .filter(v => v.impact === "serious" || v.impact === "critical")
                    .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" "))})))))
                  .catch(e => done("axe failed: " + e));"#,
                vec![],
            )
            .await
            .unwrap();
        let found = found.as_str().unwrap_or_default().to_string();
        assert_eq!(found, "[]", "accessibility violations on {name}: {found}");
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
        self.checked.push(name.to_string());
    }

    /// Signs out from a page without the console menu: the home page has the button.
    async fn sign_out_from_home(&mut self) {
        self.goto("/").await;
        self.click_text("Sign out").await;
        self.sees("Sign in").await;
    }

    async fn sign_out(&self) {
        self.click("details summary").await;
        self.click_text("Sign out").await;
        self.sees("Sign in").await;
    }

    /// The email-first sign-in with a password.
    async fn sign_in_with_password(&self, email: &str, password: &str) {
        self.client
            .goto(&format!("{}/login", self.base))
            .await
            .unwrap();
        self.fill("#email", email).await;
        self.click_text("Continue").await;
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Id("password"))
            .await
            .unwrap();
        self.fill("#password", password).await;
        self.click_text("Sign in").await;
        self.sees("Signed in as").await;
    }
}

/// Where a test saves its screenshots: `ROLLCALL_SCREENSHOTS` (docs/console.md says how the
/// tour's pictures are made), else the build's temporary directory.
fn screenshot_dir(backend: &Backend) -> std::path::PathBuf {
    let dir = match std::env::var_os("ROLLCALL_SCREENSHOTS") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(match backend {
            Backend::Sqlite => "console-sqlite",
            Backend::Postgres(_) => "console-postgres",
        }),
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The source page's story in a real browser: an admin signs in, sets up Okta and a
/// verified domain, invites two people into a team (one joins with a password and 2FA, the
/// other through Okta), maps an Okta group to a team and sees it take effect at that
/// person's next sign-in, who signs in from the email-first page; then promotes, demotes,
/// removes and revokes. Every page is checked with axe-core and photographed.
async fn an_admin_runs_the_org_from_the_console(backend: Backend) {
    let Some(chrome) = Chrome::start().await else {
        return;
    };
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "root@acme-it.example").await;
    app.set_password("root@acme-it.example", crate::web::GOOD_PASSWORD)
        .await;
    let okta = okta_stand_in(app.config.public_base_url.clone()).await;
    chrome.client.set_window_size(1280, 900).await.unwrap();
    let mut tour = Tour {
        client: &chrome.client,
        base: app.config.public_base_url.clone(),
        shots: screenshot_dir(&backend),
        checked: Vec::new(),
    };

    // 1. The admin signs in from the email-first page and opens the console from the menu.
    tour.goto("/login").await;
    tour.check("sign-in").await;
    tour.sign_in_with_password("root@acme-it.example", crate::web::GOOD_PASSWORD)
        .await;
    tour.check("home").await;
    tour.click("details summary").await;
    tour.click_text("Manage acme").await;
    tour.sees("Manage organization").await;
    tour.check("members").await;

    // Teams.
    tour.click_text("Teams").await;
    for name in ["Engineering", "Support"] {
        tour.fill("#name", name).await;
        tour.click_text("Create team").await;
        tour.sees(&format!("Team {name} created.")).await;
    }
    tour.check("teams").await;

    // SSO: Okta by pasted metadata, and the domain verified by its TXT record.
    tour.click_text("SSO").await;
    tour.fill("#saml-xml", &crate::saml::okta_metadata_with_sso(&okta))
        .await;
    tour.click_text("Add SAML connection").await;
    tour.sees("Connection Okta added.").await;
    tour.check("sso-connection").await;
    tour.click_text("← SSO").await;
    tour.fill("#domain", "acme.test").await;
    tour.click_text("Add domain").await;
    tour.sees("Publish its TXT record").await;
    // The record exactly as the page tells the admin to publish it.
    let codes = tour.client.find_all(Locator::Css("td code")).await.unwrap();
    let mut texts = Vec::new();
    for code in codes {
        texts.push(code.text().await.unwrap());
    }
    let [name, value] = <[String; 2]>::try_from(texts).expect("a TXT name and value");
    app.dns.set_txt(&name, &[&value]);
    tour.click_text("Check now").await;
    tour.sees("acme.test is verified.").await;
    tour.check("sso").await;

    // 2. Two invitations into Engineering.
    tour.click_text("Invitations").await;
    let teams = app.get("/api/v1/orgs/acme/teams", &admin.token).await.body;
    let team_id = |name: &str| {
        teams
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()["id"]
            .to_string()
    };
    tour.fill("#emails", "pat@example.com\nada@acme.test").await;
    tour.click(&format!(
        "input[name=team][value='{}']",
        team_id("Engineering")
    ))
    .await;
    tour.click_text("Send Invitation").await;
    tour.sees("Results").await;
    tour.check("invitations").await;
    app.deliver_mail().await;
    let link_for = |email: &str| {
        let mail = app
            .smtp
            .received()
            .into_iter()
            .find(|m| m.data.contains(email))
            .unwrap();
        crate::harness::link_in(&mail.data)
    };
    let (pat_link, ada_link) = (link_for("pat@example.com"), link_for("ada@acme.test"));
    tour.sign_out().await;

    // Pat joins with a password, then turns on 2FA from the profile.
    chrome.client.goto(&pat_link).await.unwrap();
    sign_up(tour.client, "Pat Example", crate::web::GOOD_PASSWORD).await;
    tour.sees("Signed in as pat@example.com").await;
    tour.goto("/profile").await;
    tour.check("profile").await;
    tour.click_text("Set up two-factor authentication").await;
    let shown = tour.sees("Scan this code").await;
    tour.check("profile-2fa").await;
    let key = shown
        .lines()
        .find_map(|l| l.strip_prefix("Or type this key in: "))
        .unwrap()
        .trim()
        .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    tour.fill("#code", &rollcall::accounts::totp_code(&key, now).unwrap())
        .await;
    tour.click_text("Turn on").await;
    tour.sees("Save your recovery codes").await;
    tour.sign_out().await;

    // Ada joins through Okta: the invitation continues there and comes back accepted.
    chrome.client.goto(&ada_link).await.unwrap();
    tour.sees("Continue with SSO").await;
    tour.check("invitation-sso").await;
    tour.click_text("Continue with SSO").await;
    tour.sees("You are a member of acme now.").await;
    tour.sign_out_from_home().await;

    // 3. The admin maps Okta's "Everyone" group to Support.
    tour.sign_in_with_password("root@acme-it.example", crate::web::GOOD_PASSWORD)
        .await;
    tour.goto("/orgs/acme/sso").await;
    tour.click_text("Okta").await;
    tour.fill("#map-name", "Everyone").await;
    tour.click(&format!(
        "form[action$='/mappings'] input[name=team][value='{}']",
        team_id("Support")
    ))
    .await;
    tour.click_text("Add mapping").await;
    tour.sees("The group now maps to Support").await;
    tour.fill("#explain-email", "ada@acme.test").await;
    tour.fill("#explain-groups", "Everyone").await;
    tour.click_text("Explain").await;
    tour.sees("ada@acme.test would get in").await;
    tour.check("sso-explain").await;
    tour.sign_out().await;

    // 5. Ada signs in from the email-first page, through Okta, and lands in acme with the
    // team the mapping gives.
    tour.goto("/login").await;
    tour.fill("#email", "ada@acme.test").await;
    tour.click_text("Continue").await;
    let home = tour.sees("Signed in as ada@acme.test").await;
    assert!(
        home.contains("acme") && home.contains("Support") && home.contains("Engineering"),
        "{home}"
    );
    tour.sign_out_from_home().await;

    // 4. The admin sees it, promotes and demotes Ada, removes Pat, revokes an invitation.
    tour.sign_in_with_password("root@acme-it.example", crate::web::GOOD_PASSWORD)
        .await;
    tour.goto("/orgs/acme/members?q=ada").await;
    tour.click_text("ada@acme.test").await;
    let page = tour.sees("Teams of ada@acme.test").await;
    assert!(page.contains("Support"), "{page}");
    tour.check("member").await;
    tour.click_text("Make admin").await;
    tour.sees("Make ada@acme.test an admin?").await;
    tour.check("confirm").await;
    tour.click("form button.danger").await;
    tour.sees("ada@acme.test is an admin now.").await;
    tour.click_text("Remove admin rights").await;
    tour.click("form button.danger").await;
    tour.sees("ada@acme.test is no longer an admin.").await;
    tour.goto("/orgs/acme/members?q=pat").await;
    tour.click_text("pat@example.com").await;
    tour.click_text("Remove from organization").await;
    tour.click("form button.danger").await;
    tour.sees("pat@example.com was removed from acme.").await;
    tour.click_text("Invitations").await;
    tour.fill("#emails", "lee@example.com").await;
    tour.click_text("Send Invitation").await;
    tour.sees("Results").await;
    tour.click_text("Revoke").await;
    tour.click("form button.danger").await;
    tour.sees("The invitation of lee@example.com is revoked.")
        .await;
    for (tab, shows, name) in [
        ("Teams", "New team", "teams-after"),
        ("SCIM", "Connect your identity provider", "scim"),
        ("Audit log", "Newest first", "audit"),
        ("Settings", "Organization name", "settings"),
    ] {
        tour.click_text(tab).await;
        tour.sees(shows).await;
        tour.check(name).await;
    }

    // What the pages show is what the database holds.
    let t = &admin.token;
    let ada = app
        .get("/api/v1/orgs/acme/members?q=ada@acme.test", t)
        .await
        .body["data"][0]
        .clone();
    assert_eq!(ada["is_admin"], false);
    let mut teams: Vec<(String, String)> = ada["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().into(),
                t["source"].as_str().unwrap().into(),
            )
        })
        .collect();
    teams.sort();
    assert_eq!(
        teams,
        [
            ("Engineering".into(), "invitation".into()),
            ("Support".into(), "sso".into())
        ]
    );
    assert_eq!(
        app.get("/api/v1/orgs/acme/members?q=pat@example.com", t)
            .await
            .body["data"],
        serde_json::json!([])
    );
    let revoked = app
        .get("/api/v1/orgs/acme/invitations?status=revoked", t)
        .await;
    assert_eq!(revoked.body["data"][0]["email"], "lee@example.com");
    let mut tx = app.store.read().await.unwrap();
    let pat = rollcall::store::users::by_email(&mut tx, "pat@example.com")
        .await
        .unwrap()
        .unwrap();
    let totp = rollcall::store::mfa::totp(&mut tx, pat.id)
        .await
        .unwrap()
        .unwrap();
    assert!(totp.confirmed_at.is_some(), "Pat's 2FA is on");
    drop(tx);
    assert!(tour.checked.len() >= 16, "{:?}", tour.checked);
    chrome.stop().await;
    app.stop().await;
}
