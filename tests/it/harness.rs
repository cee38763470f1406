//! Test harness: a real rollcall server on a random port, on SQLite or PostgreSQL.

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use rollcall::{
    config::{Config, DnsConfig, HttpConfig, MailConfig, MailTransport},
    mail, operator, server,
    state::AppState,
    store::{self, credentials, members, users, Store},
};
use serde_json::Value;
use sqlx::Connection;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::{dns_server::DnsServer, smtp_server::SmtpServer};

/// Runs each listed `async fn name(backend: Backend)` once per backend, as
/// `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::harness::within_limit(super::$name($crate::harness::Backend::Sqlite)).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = $crate::harness::Backend::postgres() {
                        $crate::harness::within_limit(super::$name(backend)).await
                    }
                }
            )*
        }
    };
}

/// A loopback port free at the moment, for a process the test starts (chromedriver, a
/// `rollcall serve`, nginx) to bind right after.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fails a test that runs over two minutes instead of letting it hang CI.
pub async fn within_limit(test: impl std::future::Future<Output = ()>) {
    if tokio::time::timeout(std::time::Duration::from_secs(120), test)
        .await
        .is_err()
    {
        panic!("test did not finish within 120 s (a leaked transaction blocks closing the pool, for one)");
    }
}

#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite,
    /// URL of a PostgreSQL database in which each test gets a schema of its own.
    Postgres(String),
}

impl Backend {
    /// The PostgreSQL backend from `ROLLCALL_TEST_POSTGRES_URL`. Without it, PostgreSQL
    /// tests are skipped on a developer's machine, and fail in CI: a PostgreSQL test that
    /// silently skips in CI would hide every PostgreSQL defect.
    pub fn postgres() -> Option<Backend> {
        match std::env::var("ROLLCALL_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
            _ if std::env::var_os("CI").is_some() => {
                panic!("CI is set but ROLLCALL_TEST_POSTGRES_URL is not: PostgreSQL tests must run in CI")
            }
            _ => {
                eprintln!("PostgreSQL test skipped: ROLLCALL_TEST_POSTGRES_URL is not set");
                None
            }
        }
    }
}

/// A fresh, empty database for one test; removed when dropped, also after a panic.
pub struct TestDb {
    pub url: String,
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: &Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("rollcall.db").display());
                TestDb {
                    url,
                    postgres: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres(admin_url) => {
                let schema = format!("rc_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(admin_url)
                    .await
                    .expect("connect to the PostgreSQL test database");
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test schema");
                conn.close().await.ok();
                let separator = if admin_url.contains('?') { '&' } else { '?' };
                let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
                TestDb {
                    url,
                    postgres: Some((admin_url.clone(), schema)),
                    _dir: None,
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, schema)) = self.postgres.take() else {
            return;
        };
        // Drop runs inside the test's runtime, which cannot be blocked on; use a thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub store: Store,
    /// The nameserver the app asks for domain-verification records.
    pub dns: DnsServer,
    /// The SMTP server the app's mail goes to.
    pub smtp: SmtpServer,
    /// The Entra ID stand-in OIDC connections talk to.
    pub entra: crate::entra::EntraStandIn,
    pub config: Config,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    // Last: the database must outlive the server and the pool.
    _db: TestDb,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Response {
    /// The `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

/// A member with a working API token.
pub struct Person {
    pub id: i64,
    pub token: String,
}

impl TestApp {
    pub async fn spawn(backend: &Backend) -> TestApp {
        TestApp::spawn_with(backend, |_| {}).await
    }

    /// Like [`TestApp::spawn`], with the configuration adjusted first.
    pub async fn spawn_with(backend: &Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
        rollcall::install_crypto_provider();
        let db = TestDb::new(backend).await;
        let store = Store::connect(&db.url).await.expect("connect store");
        store.migrate().await.expect("migrate");
        let dns = DnsServer::start().await;
        let smtp = SmtpServer::start().await;
        let entra = crate::entra::EntraStandIn::start().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = Config {
            listen: addr,
            public_base_url: format!("http://{addr}"),
            database_url: db.url.clone(),
            http: HttpConfig {
                max_body_bytes: 16 * 1024,
                shutdown_grace_seconds: 5,
                client_ip_header: None,
                ..HttpConfig::default()
            },
            dns: DnsConfig {
                nameservers: vec![dns.addr.to_string()],
                timeout_seconds: 2,
            },
            mail: MailConfig {
                transport: MailTransport::Smtp,
                from: "Acme Access <access@acme.test>".into(),
                smtp_url: smtp.url(),
                max_attempts: 3,
                retry_base_seconds: 0,
                lock_seconds: 1,
                ..MailConfig::default()
            },
            secrets: rollcall::config::SecretsConfig {
                key: Some("dGVzdC1rZXktdGVzdC1rZXktdGVzdC1rZXktdGVzdC0".into()),
                key_file: String::new(),
            },
            oidc: rollcall::config::OidcConfig {
                entra_authority: entra.url(),
                clock_skew_seconds: 120,
                allow_private_addresses: true,
                jwks_refresh_min_seconds: 0,
                graph_base: entra.url(),
            },
            saml: rollcall::config::SamlConfig {
                metadata_refresh_minutes: 0,
                allow_private_addresses: true,
            },
            ..Config::default()
        };
        let mut config = config;
        adjust(&mut config);
        let state = AppState::new(store.clone(), config.clone()).expect("app state");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(server::serve(listener, state, async {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            store,
            dns,
            smtp,
            entra,
            config,
            client: reqwest::Client::new(),
            shutdown: Some(tx),
            server: Some(server),
            _db: db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches the server");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{path}: body is not JSON: {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Response {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: &str, body: Option<Value>) -> Response {
        self.request(Method::PUT, path, Some(token), body).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    /// Org `slug` with its first admin, as `rollcall bootstrap` makes them.
    pub async fn bootstrap(&self, slug: &str, admin_email: &str) -> Person {
        let done = operator::bootstrap(&self.store, slug, slug, admin_email, None)
            .await
            .expect("bootstrap");
        Person {
            id: done.admin.id,
            token: done.token,
        }
    }

    /// Adds a person to an org directly through the store (the invitation and SSO front
    /// doors that normally do this are tested on their own) and gives them an API token.
    pub async fn add_member(&self, slug: &str, email: &str, is_admin: bool) -> Person {
        let mut tx = self.store.begin().await.expect("tx");
        let org = store::orgs::by_slug(&mut tx, slug)
            .await
            .expect("org lookup")
            .expect("org exists");
        let user = match users::by_email(&mut tx, email).await.expect("lookup") {
            Some(user) => user,
            None => users::create(
                &mut tx,
                users::NewUser {
                    email: email.into(),
                    display_name: Some(format!("Display {email}")),
                    ..Default::default()
                },
            )
            .await
            .expect("create user"),
        };
        members::add(&mut tx, org.id, user.id, is_admin, members::Source::Manual)
            .await
            .expect("add member");
        let (_, token) = credentials::create_token(
            &mut tx,
            user.id,
            "test",
            None,
            credentials::Method::Password,
        )
        .await
        .expect("token");
        tx.commit().await.expect("commit");
        Person { id: user.id, token }
    }

    /// Gives an existing user a session, as a login front door would.
    pub async fn session_for(&self, user_id: i64) -> String {
        let mut tx = self.store.begin().await.expect("tx");
        let secret = credentials::create_session(
            &mut tx,
            user_id,
            chrono::Duration::hours(1),
            credentials::Method::Password,
        )
        .await
        .expect("session");
        tx.commit().await.expect("commit");
        secret
    }

    /// Gives an existing user a password, as if they had set one.
    pub async fn set_password(&self, email: &str, password: &str) {
        let password_hash = rollcall::accounts::hash(password).await;
        let mut tx = self.store.begin().await.expect("tx");
        let user = users::by_email(&mut tx, email)
            .await
            .expect("lookup")
            .expect("user exists");
        rollcall::store::passwords::set(&mut tx, user.id, &password_hash)
            .await
            .expect("set password");
        tx.commit().await.expect("commit");
    }

    pub async fn create_team(&self, slug: &str, token: &str, name: &str) -> i64 {
        let r = self
            .post(
                &format!("/api/v1/orgs/{slug}/teams"),
                token,
                serde_json::json!({"name": name}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["id"].as_i64().expect("team id")
    }

    /// One pass of the mail worker, as `rollcall serve` runs it every poll interval.
    pub async fn deliver_mail(&self) -> usize {
        let sender = mail::Sender::new(&self.config.mail).expect("mail sender");
        mail::deliver_due(&self.store, &sender, &self.config.mail)
            .await
            .expect("delivery pass")
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
        self.store.close().await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A client that keeps cookies and does not follow redirects: a browser, as far as the
/// server can tell, whose every step the test can inspect.
pub struct Browser {
    client: reqwest::Client,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
    base: String,
}

pub struct PageResponse {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl PageResponse {
    /// Where a redirect points.
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The CSRF token of the page's forms.
    pub fn csrf(&self) -> String {
        let start = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token")
            + 19;
        self.body[start..start + 43].to_string()
    }
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        Browser::at(&app.addr.to_string())
    }

    /// A browser of a server at `addr` (e.g. a second instance sharing the database).
    pub fn at(addr: &str) -> Browser {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        Browser {
            client: reqwest::Client::builder()
                .cookie_provider(jar.clone())
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar,
            base: format!("http://{addr}"),
        }
    }

    /// The same browser (its cookies) talking to another instance at `addr`, as behind a
    /// load balancer that sends its next request elsewhere.
    pub fn via(&self, addr: &str) -> Browser {
        Browser {
            client: self.client.clone(),
            jar: self.jar.clone(),
            base: format!("http://{addr}"),
        }
    }

    /// The cookies the browser would send to `url`, as a `Cookie` header value.
    pub fn cookies_for(&self, url: &str) -> String {
        use reqwest::cookie::CookieStore;
        let url: reqwest::Url = url.parse().unwrap();
        self.jar
            .cookies(&url)
            .and_then(|v| v.to_str().ok().map(str::to_string))
            .unwrap_or_default()
    }

    /// Puts a cookie in the browser, as a sign-in elsewhere (an SSO front door) would.
    pub fn set_cookie(&self, name: &str, value: &str) {
        let url: reqwest::Url = self.base.parse().unwrap();
        self.jar
            .add_cookie_str(&format!("{name}={value}; Path=/"), &url);
    }

    async fn read(response: reqwest::Response) -> PageResponse {
        PageResponse {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    /// `path` may be a full URL on this server, as in an email.
    pub async fn get(&self, path: &str) -> PageResponse {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        Self::read(self.client.get(url).send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> PageResponse {
        let url = format!("{}{path}", self.base);
        Self::read(self.client.post(url).form(form).send().await.unwrap()).await
    }

    /// Signs in through the sign-in page with a password.
    pub async fn sign_in(&self, email: &str, password: &str) -> PageResponse {
        let csrf = self.get("/login").await.csrf();
        self.post(
            "/login",
            &[("csrf", &csrf), ("email", email), ("password", password)],
        )
        .await
    }

    pub async fn post_from(&self, path: &str, origin: &str, form: &[(&str, &str)]) -> PageResponse {
        let url = format!("{}{path}", self.base);
        Self::read(
            self.client
                .post(url)
                .header("origin", origin)
                .form(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

/// The invitation link in a mail (quoted-printable soft line breaks undone).
pub fn link_in(data: &str) -> String {
    let unwrapped = data.replace("=\r\n", "").replace("=\n", "");
    unwrapped
        .split_whitespace()
        .find(|w| w.contains("/invite/rc_inv_"))
        .unwrap_or_else(|| panic!("no invitation link in {data}"))
        .to_string()
}
