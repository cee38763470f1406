//! Several instances behind a real load balancer: two `rollcall serve` processes on one
//! PostgreSQL database, behind nginx (Debian's nginx-light, installed by
//! `scripts/deps.sh --test`) balancing round robin. Everything the instances share goes
//! through the database; nginx's access log says which instance served each request, so
//! the test can show that a sign-in really was split across the two.
//!
//! PostgreSQL only: SQLite is one file for one process. In CI (`CI` set) a missing
//! PostgreSQL or nginx fails the test rather than skipping it.

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{free_port, Backend, Browser, TestApp};

const NGINX: &str = "/usr/sbin/nginx";

/// A child process killed when the test ends, passed or failed.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_until_ready(url: &str, what: &str, log: &Path) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(url).send().await {
            if r.status() == StatusCode::OK {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{what} did not become ready at {url}:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// One `rollcall serve` process with the test app's configuration on its own port.
async fn instance(app: &TestApp, dir: &Path, name: &str) -> (Running, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut config = app.config.clone();
    config.listen = addr;
    // Each instance runs its mail worker; poll often so that both race for the outbox.
    config.mail.poll_interval_ms = 20;
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, toml::to_string(&config).unwrap()).unwrap();
    let log = dir.join(format!("{name}.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_rollcall"))
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .env_remove("RUST_LOG")
        .env("ROLLCALL_LOG__FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap())
        .spawn()
        .unwrap();
    let running = Running(child);
    wait_until_ready(&format!("http://{addr}/readyz"), name, &log).await;
    (running, addr)
}

struct Nginx {
    _process: Running,
    dir: PathBuf,
}

impl Nginx {
    /// nginx on `port`, round robin over `upstreams`, logging which one served each request.
    async fn start(dir: &Path, port: u16, upstreams: &[SocketAddr]) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: scripts/deps.sh --test installs nginx-light"
        );
        let dir = dir.join("nginx");
        std::fs::create_dir_all(&dir).unwrap();
        let servers: String = upstreams
            .iter()
            .map(|a| format!("        server {a};\n"))
            .collect();
        let d = dir.display();
        let conf = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format served '$upstream_addr $status $request_method $uri';
    access_log {d}/access.log served;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream rollcall {{
{servers}    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://rollcall;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            # A request is sent to one instance only: a retried POST could apply twice.
            proxy_next_upstream off;
        }}
    }}
}}
"#
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        let nginx = Nginx {
            _process: Running(child),
            dir,
        };
        wait_until_ready(
            &format!("http://127.0.0.1:{port}/healthz"),
            "nginx",
            &nginx.dir.join("stderr.log"),
        )
        .await;
        nginx
    }

    /// Like [`Nginx::served`], once at least `n` such requests are logged: nginx writes a
    /// line just after the response has gone, so the client can be a moment ahead.
    async fn served_n(&self, request: &str, n: usize) -> Vec<String> {
        for _ in 0..100 {
            let served = self.served(request);
            if served.len() >= n {
                return served;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.served(request)
    }

    /// The instance (upstream address) that served each logged request whose
    /// "METHOD path" starts with `request`, in order.
    fn served(&self, request: &str) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let (upstream, rest) = line.split_once(' ')?;
                let (_status, request_line) = rest.split_once(' ')?;
                request_line
                    .starts_with(request)
                    .then(|| upstream.to_string())
            })
            .collect()
    }
}

/// The two instances and nginx in front; `app`'s requests and browsers go through nginx.
struct Cluster {
    nginx: Nginx,
    instances: Vec<SocketAddr>,
    _processes: Vec<Running>,
    _dir: tempfile::TempDir,
}

async fn cluster(backend: &Backend) -> (TestApp, Cluster) {
    let port = free_port();
    let mut app = TestApp::spawn_with(backend, |config| {
        config.public_base_url = format!("http://127.0.0.1:{port}");
        config.http.client_ip_header = Some("x-forwarded-for".into());
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (a, addr_a) = instance(&app, dir.path(), "instance-a").await;
    let (b, addr_b) = instance(&app, dir.path(), "instance-b").await;
    let nginx = Nginx::start(dir.path(), port, &[addr_a, addr_b]).await;
    // From here on, the test speaks to nginx only (the in-process server is left idle).
    app.addr = format!("127.0.0.1:{port}").parse().unwrap();
    (
        app,
        Cluster {
            nginx,
            instances: vec![addr_a, addr_b],
            _processes: vec![a, b],
            _dir: dir,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behind_nginx() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    crate::harness::within_limit(behind_nginx(backend)).await;
}

async fn behind_nginx(backend: Backend) {
    let (app, cluster) = cluster(&backend).await;
    let instances: Vec<String> = cluster.instances.iter().map(|a| a.to_string()).collect();
    let both = |served: &[String]| instances.iter().all(|i| served.iter().any(|s| s == i));

    // --- A SAML sign-in started on one instance and finished on the other; its replay
    // refused by the other one.
    let (saml_admin, connection) = crate::saml::okta_org(&app, "okta").await;
    let browser = Browser::new(&app);
    let (relay, request_id) = crate::saml::start(&browser, "okta", connection).await;
    let spec = crate::saml::Spec::okta(&app, "okta", &request_id);
    let response = crate::saml::b64(&crate::saml::sign(&spec.xml()));
    let r = crate::saml::post_acs(&browser, "okta", &response, Some(&relay)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // The same response replayed, twice, so that round robin takes it to both instances:
    // refused by each.
    for _ in 0..2 {
        let again =
            crate::saml::post_acs(&Browser::new(&app), "okta", &response, Some(&relay)).await;
        assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.body);
    }
    let started = cluster.nginx.served_n("GET /saml/okta/login", 1).await;
    let posted = cluster.nginx.served_n("POST /saml/okta/acs", 3).await;
    assert_eq!((started.len(), posted.len()), (1, 3));
    assert_ne!(
        started[0], posted[0],
        "started and verified on one instance"
    );
    assert!(
        both(&posted[1..]),
        "replays reached both instances: {posted:?}"
    );
    let event = crate::saml::last_event(&app, "okta", &saml_admin).await;
    assert_eq!(event["action"], "sso.login_failed", "{event}");

    // --- Concurrent first sign-ins of one person through both instances: one account.
    let browsers = [Browser::new(&app), Browser::new(&app)];
    let mut posts = Vec::new();
    for browser in &browsers {
        let (relay, request_id) = crate::saml::start(browser, "okta", connection).await;
        let mut spec = crate::saml::Spec::okta(&app, "okta", &request_id);
        spec.name_id = "00u1grace0hopper".into();
        spec.email = "grace@okta.test".into();
        posts.push((relay, crate::saml::b64(&crate::saml::sign(&spec.xml()))));
    }
    let (r1, r2) = tokio::join!(
        crate::saml::post_acs(&browsers[0], "okta", &posts[0].1, Some(&posts[0].0)),
        crate::saml::post_acs(&browsers[1], "okta", &posts[1].1, Some(&posts[1].0)),
    );
    assert_eq!(r1.status, StatusCode::SEE_OTHER, "{}", r1.body);
    assert_eq!(r2.status, StatusCode::SEE_OTHER, "{}", r2.body);
    let finished = cluster.nginx.served_n("POST /saml/okta/acs", 5).await;
    assert!(both(&finished[3..]), "{finished:?}");
    // Each browser finishes its sign-in at a GET of its own; the two ran at once, one on
    // each instance, and made one account.
    let finishes = cluster.nginx.served_n("GET /saml/okta/finish", 3).await;
    assert!(both(&finishes[1..]), "{finishes:?}");
    let r = app
        .get("/api/v1/orgs/okta/members?q=grace", &saml_admin)
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1, "{}", r.body);
    let mut tx = app.store.read().await.unwrap();
    let found = rollcall::store::users::by_email(&mut tx, "grace@okta.test")
        .await
        .unwrap();
    drop(tx);
    assert!(found.is_some());

    // --- An OIDC (Entra) sign-in split the same way.
    let (entra_admin, oidc_connection, _team) = crate::entra::setup(&app).await;
    let browser = Browser::new(&app);
    let (page, callback) = crate::entra::sign_in(
        &app,
        &browser,
        oidc_connection,
        "/welcome",
        crate::entra::person(
            "5f1c8e9e-0000-4000-8000-00000000a1a1",
            "linus@acme.test",
            &[],
        ),
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let started = cluster.nginx.served_n("GET /oidc/acme/login", 1).await;
    let finished = cluster.nginx.served_n("GET /oidc/callback", 1).await;
    assert_eq!((started.len(), finished.len()), (1, 1));
    assert_ne!(
        started[0], finished[0],
        "started and finished on one instance"
    );
    // The state is single use across instances too.
    let again = browser.get(&callback).await;
    assert_ne!(again.status, StatusCode::SEE_OTHER, "{}", again.body);
    assert_eq!(
        crate::entra::member_count(&app, &entra_admin.token).await,
        2
    );

    // --- Concurrent SCIM writes through both: no 500, no lost member, 412 for a stale
    // If-Match.
    let (_, secret) = crate::scim::scim_token(&app, "acme", &entra_admin.token).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let r = app
            .post(
                "/scim/v2/acme/Users",
                &secret,
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("user{i}@acme.test"),
                    "emails": [{"value": format!("user{i}@acme.test"), "primary": true}],
                }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    let r = app
        .post(
            "/scim/v2/acme/Groups",
            &secret,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Everyone"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let group = format!("/scim/v2/acme/Groups/{}", r.body["id"].as_str().unwrap());
    let patches = ids.iter().map(|id| {
        app.patch(
            &group,
            &secret,
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}],
            }),
        )
    });
    let answers = futures::future::join_all(patches).await;
    for r in &answers {
        assert!(
            r.status == StatusCode::OK || r.status == StatusCode::NO_CONTENT,
            "{} {}",
            r.status,
            r.body
        );
    }
    let patched = cluster
        .nginx
        .served_n("PATCH /scim/v2/acme/Groups/", 12)
        .await;
    assert!(both(&patched), "{patched:?}");
    let r = app.get(&group, &secret).await;
    assert_eq!(
        r.body["members"].as_array().map(Vec::len),
        Some(12),
        "{}",
        r.body
    );
    // Two writers with the same If-Match, one through each instance: one wins, the other
    // gets 412 (the race is run a few times: a check that is not atomic loses it often).
    for round in 0..5 {
        let r = app.get(&group, &secret).await;
        let etag = r.headers["etag"].to_str().unwrap().to_string();
        let rename = |name: String| {
            let client = reqwest::Client::new();
            let url = app.url(&group);
            let (secret, etag) = (secret.clone(), etag.clone());
            async move {
                client
                    .patch(url)
                    .bearer_auth(secret)
                    .header("if-match", etag)
                    .header("content-type", "application/scim+json")
                    .body(
                        json!({
                            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "path": "displayName", "value": name}],
                        })
                        .to_string(),
                    )
                    .send()
                    .await
                    .unwrap()
                    .status()
            }
        };
        let (s1, s2) = tokio::join!(
            rename(format!("All staff {round}")),
            rename(format!("Everybody {round}"))
        );
        let mut statuses = [s1, s2];
        statuses.sort();
        assert!(
            statuses[0].is_success() && statuses[1] == StatusCode::PRECONDITION_FAILED,
            "round {round}: one of two writers with the same If-Match wins: {statuses:?}"
        );
    }

    // --- The outbox delivers each message exactly once while both workers poll it.
    let emails: Vec<String> = (0..10).map(|i| format!("invitee{i}@acme.test")).collect();
    for half in emails.chunks(5) {
        let r = app
            .post(
                "/api/v1/orgs/acme/invitations",
                &entra_admin.token,
                json!({"emails": half}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let mut delivered: HashMap<String, usize> = HashMap::new();
    for _ in 0..200 {
        delivered.clear();
        for mail in app.smtp.received() {
            for to in &mail.to {
                *delivered.entry(to.clone()).or_default() += 1;
            }
        }
        if emails.iter().all(|e| delivered.contains_key(e)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Time for a duplicate to show, if a second worker were to send one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    delivered.clear();
    for mail in app.smtp.received() {
        for to in &mail.to {
            *delivered.entry(to.clone()).or_default() += 1;
        }
    }
    for email in &emails {
        assert_eq!(delivered.get(email), Some(&1), "{email}: {delivered:?}");
    }

    // Nothing any instance answered through the balancer was a 500.
    let log = std::fs::read_to_string(cluster.nginx.dir.join("access.log")).unwrap();
    assert!(
        !log.lines().any(|l| l.split(' ').nth(1) == Some("500")),
        "{log}"
    );
}
