use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Backend, TestApp};

async fn health_readiness_and_request_ids(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let r = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["status"], "ok");
    let generated = r
        .headers
        .get("x-request-id")
        .expect("request id")
        .to_str()
        .unwrap();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");

    let r = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let expected = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres(_) => "postgres",
    };
    assert_eq!(r.body["database"], expected);

    // A caller's request ID is kept, so logs can be joined across services.
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-abc-123");

    // With the database gone, the process is alive but not ready.
    app.store.close().await;
    let r = app.request(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["status"], "unavailable");
    let r = app.request(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);

    // A request that needs the database is told to come back: 503 with Retry-After, a
    // message that says why, and no detail of the failure.
    let r = app.get("/api/v1/me", &admin.token).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.code(), "unavailable");
    assert!(r.headers.get("retry-after").is_some());
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("database"), "{message}");
    assert!(!message.to_lowercase().contains("pool"), "{message}");
    assert!(r.headers.get("x-request-id").is_some());
}

async fn bad_requests_get_json_errors(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;

    let r = app.get("/api/v1/nowhere", &admin.token).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
    let r = app
        .request(Method::PUT, "/api/v1/me", Some(&admin.token), None)
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "method_not_allowed");

    // Over the body limit (16 KiB in tests): 413 before any parsing, nothing created.
    let big = json!({"name": "x".repeat(20_000)});
    let r = app.post("/api/v1/orgs/acme/teams", &admin.token, big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "payload_too_large");
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("16384"));

    let r = app
        .client
        .post(app.url("/api/v1/orgs/acme/teams"))
        .bearer_auth(&admin.token)
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_media_type");

    let r = app
        .client
        .post(app.url("/api/v1/orgs/acme/teams"))
        .bearer_auth(&admin.token)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_input");

    let r = app.get("/api/v1/orgs/acme/teams", &admin.token).await;
    assert_eq!(r.body, json!([]), "no rejected request created anything");
    app.stop().await;
}

async fn openapi_document_covers_every_route(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let r = app
        .request(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["openapi"].as_str().unwrap().starts_with("3."));
    let paths = r.body["paths"].as_object().unwrap();
    let expected = [
        ("/api/v1/me", vec!["get"]),
        ("/api/v1/me/tokens", vec!["get", "post"]),
        ("/api/v1/me/tokens/{id}", vec!["delete"]),
        ("/api/v1/orgs/{org}", vec!["get", "patch"]),
        ("/api/v1/orgs/{org}/audit", vec!["get"]),
        ("/api/v1/orgs/{org}/members", vec!["get"]),
        (
            "/api/v1/orgs/{org}/members/{user_id}",
            vec!["get", "patch", "delete"],
        ),
        ("/api/v1/orgs/{org}/members/{user_id}/teams", vec!["put"]),
        ("/api/v1/orgs/{org}/teams", vec!["get", "post"]),
        (
            "/api/v1/orgs/{org}/teams/{team_id}",
            vec!["get", "patch", "delete"],
        ),
        ("/api/v1/orgs/{org}/teams/{team_id}/members", vec!["get"]),
        (
            "/api/v1/orgs/{org}/teams/{team_id}/members/{user_id}",
            vec!["put", "delete"],
        ),
        ("/api/v1/orgs/{org}/connections", vec!["get", "post"]),
        (
            "/api/v1/orgs/{org}/connections/{connection_id}",
            vec!["get", "patch", "delete"],
        ),
        (
            "/api/v1/orgs/{org}/connections/{connection_id}/grants",
            vec!["get", "post"],
        ),
        (
            "/api/v1/orgs/{org}/connections/{connection_id}/grants/{grant_id}",
            vec!["delete"],
        ),
        (
            "/api/v1/orgs/{org}/connections/{connection_id}/group-mappings",
            vec!["get", "post"],
        ),
        (
            "/api/v1/orgs/{org}/connections/{connection_id}/group-mappings/{mapping_id}",
            vec!["delete"],
        ),
        (
            "/api/v1/orgs/{org}/connections/{connection_id}/explain",
            vec!["post"],
        ),
        ("/api/v1/orgs/{org}/domains", vec!["get", "post"]),
        (
            "/api/v1/orgs/{org}/domains/{domain_id}",
            vec!["get", "delete"],
        ),
        (
            "/api/v1/orgs/{org}/domains/{domain_id}/verify",
            vec!["post"],
        ),
        (
            "/api/v1/orgs/{org}/invitations",
            vec!["get", "post", "delete"],
        ),
        (
            "/api/v1/orgs/{org}/invitations/{invitation_id}",
            vec!["get", "delete"],
        ),
        (
            "/api/v1/orgs/{org}/invitations/{invitation_id}/resend",
            vec!["post"],
        ),
        ("/api/v1/orgs/{org}/scim-tokens", vec!["get", "post"]),
        ("/api/v1/orgs/{org}/scim-tokens/{token_id}", vec!["delete"]),
    ];
    assert_eq!(
        paths.len(),
        expected.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (path, methods) in expected {
        let item = paths.get(path).unwrap_or_else(|| panic!("{path} missing"));
        for m in methods {
            assert!(item.get(m).is_some(), "{m} {path} missing");
        }
    }
    assert_eq!(
        r.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    app.stop().await;
}

/// Anyone can start an SSO sign-in, and each start writes a row and may call the IdP: one
/// client address gets `http.sign_in_starts_per_minute` of them, then 429 with Retry-After,
/// on both protocols' start endpoints alike.
async fn sso_sign_in_starts_are_limited_per_address(backend: Backend) {
    let app = TestApp::spawn_with(&backend, |c| c.http.sign_in_starts_per_minute = 3).await;
    app.bootstrap("acme", "admin@acme.test").await;
    let mut statuses = Vec::new();
    // Eight starts: even split across two one-minute windows, one window sees four.
    for path in ["/saml/acme/login", "/oidc/acme/login?connection=1"]
        .iter()
        .cycle()
        .take(8)
    {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: i64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry), "Retry-After {retry}");
        }
        statuses.push(r.status());
    }
    assert!(
        statuses[..3]
            .iter()
            .all(|s| *s != StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    app.stop().await;
}

/// The outbound client judges the addresses it connects to, in its own resolver: a name an
/// admin gives that resolves to a private address is refused, also when only one of its
/// addresses is private, and so are IPv4-mapped IPv6 literals.
#[tokio::test]
async fn outbound_requests_reach_only_public_addresses() {
    use rollcall::outbound::{Error, Outbound};
    let dns = crate::dns_server::DnsServer::start().await;
    dns.set_a("rebind.test", &["127.0.0.1"]);
    dns.set_a("metadata.test", &["169.254.169.254"]);
    dns.set_a("mixed.test", &["93.184.216.34", "10.0.0.7"]);
    let resolver = rollcall::dns::Resolver::new(&rollcall::config::DnsConfig {
        nameservers: vec![dns.addr.to_string()],
        timeout_seconds: 2,
    })
    .unwrap();
    let outbound = Outbound::new(&resolver);
    for url in [
        "https://rebind.test/.well-known/openid-configuration",
        "https://metadata.test/latest/meta-data/",
        "https://mixed.test/keys",
        "https://[::ffff:127.0.0.1]/keys",
        "https://[::ffff:169.254.169.254]/latest/meta-data/",
        "https://100.64.0.1/token",
    ] {
        match outbound.get_json::<serde_json::Value>(url, false).await {
            Err(Error::Forbidden(reason)) => assert!(
                reason.contains("private, loopback or reserved"),
                "{url}: {reason}"
            ),
            other => panic!("{url} must be refused as a destination, got {other:?}"),
        }
    }
}

/// Idle and trickling connections are closed after the header-read timeout, and at the
/// connection limit new connections wait instead of exhausting file descriptors: once the
/// idle ones are closed, a health check gets through.
async fn idle_connections_cannot_hold_the_server(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(&backend, |c| {
        c.http.max_connections = 4;
        c.http.header_read_timeout_seconds = 1;
    })
    .await;
    let started = std::time::Instant::now();
    // Four connections that say nothing, and one that trickles a request a byte at a time.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(tokio::net::TcpStream::connect(app.addr).await.unwrap());
    }
    let mut trickle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let trickling = tokio::spawn(async move {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " {
            if trickle.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        }
        let mut rest = Vec::new();
        // The server closed it: the read ends (EOF or a reset), without a response.
        let _ = trickle.read_to_end(&mut rest).await;
        rest
    });
    // The limit is reached: this request waits, and is answered once a slot frees up.
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reqwest::get(app.url("/healthz")),
    )
    .await
    .expect("the health check was answered")
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    // Every idle connection was closed by the server.
    for mut stream in idle {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("the server closed the idle connection")
            .unwrap_or(0);
        assert_eq!(n, 0, "no response on a connection that sent nothing");
    }
    let rest = tokio::time::timeout(std::time::Duration::from_secs(10), trickling)
        .await
        .expect("the trickling connection was closed")
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&rest).contains("200 OK"),
        "a request trickled past the header timeout was served"
    );
    app.stop().await;
}

crate::backend_tests!(
    idle_connections_cannot_hold_the_server,
    sso_sign_in_starts_are_limited_per_address,
    health_readiness_and_request_ids,
    bad_requests_get_json_errors,
    openapi_document_covers_every_route,
);
