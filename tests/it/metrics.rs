//! The operator's view: `/metrics` in Prometheus' text format, closed by default.
//!
//! The recorder is the process's, shared by every test server in this binary, so counters
//! are checked as "at least what this test did", on label sets only this test produces
//! where it matters; gauges are read from this test's own database at scrape time.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, Browser, TestApp};

const TOKEN: &str = "metrics-token-0123456789abcdef0123456789";

/// The value of the sample of `name` whose labels include every pair in `labels`.
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn scrape(app: &TestApp, token: Option<&str>) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().get(app.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn metrics_are_closed_by_default_and_count_what_happened(backend: Backend) {
    // Without a token configured there is no such page.
    let app = TestApp::spawn(&backend).await;
    assert_eq!(scrape(&app, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(scrape(&app, Some(TOKEN)).await.0, StatusCode::NOT_FOUND);
    app.stop().await;

    let app = TestApp::spawn_with(&backend, |c| c.metrics.token = Some(TOKEN.into())).await;
    assert_eq!(scrape(&app, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        scrape(&app, Some("metrics-token-wrong-0000000000000000000"))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    // Requests by route: the pattern, not the path with its ids.
    let members = format!("/api/v1/orgs/acme/members/{}", admin.id);
    assert_eq!(app.get(&members, &admin.token).await.status, StatusCode::OK);
    // Two invitations wait in the outbox (no mail worker runs in the test server).
    let r = app
        .post(
            "/api/v1/orgs/acme/invitations",
            &admin.token,
            json!({"emails": ["a@acme.test", "b@acme.test"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // A refused password sign-in.
    app.set_password("admin@acme.test", "correct horse battery staple")
        .await;
    let r = Browser::new(&app).sign_in("admin@acme.test", "wrong").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A SCIM request.
    let (_, secret) = crate::scim::scim_token(&app, "acme", &admin.token).await;
    assert_eq!(
        app.get("/scim/v2/acme/Users", &secret).await.status,
        StatusCode::OK
    );

    let (status, page) = scrape(&app, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let route = [
        ("method", "GET"),
        ("route", "/api/v1/orgs/{org}/members/{user_id}"),
        ("status", "200"),
    ];
    assert!(
        sample(&page, "http_requests_total", &route).is_some_and(|n| n >= 1.0),
        "{page}"
    );
    assert!(
        !page.contains(&members),
        "a raw path became a label: {page}"
    );
    assert!(
        sample(
            &page,
            "http_request_duration_seconds_count",
            &[("route", "/api/v1/orgs/{org}/members/{user_id}")]
        )
        .is_some_and(|n| n >= 1.0),
        "{page}"
    );
    assert!(
        page.contains("http_request_duration_seconds_bucket{"),
        "{page}"
    );
    assert!(
        sample(
            &page,
            "rollcall_sign_ins_total",
            &[
                ("front_door", "password"),
                ("outcome", "refused"),
                ("kind", "credentials")
            ]
        )
        .is_some_and(|n| n >= 1.0),
        "{page}"
    );
    assert!(
        sample(
            &page,
            "rollcall_scim_operations_total",
            &[("resource", "Users"), ("method", "GET"), ("status", "200")]
        )
        .is_some_and(|n| n >= 1.0),
        "{page}"
    );
    // Gauges read from this server's own database and pool at scrape time.
    assert_eq!(
        sample(&page, "rollcall_outbox_depth", &[]),
        Some(2.0),
        "{page}"
    );
    assert!(
        sample(&page, "rollcall_db_pool_connections", &[("state", "idle")]).is_some(),
        "{page}"
    );
    // The mail worker's pass is counted.
    assert_eq!(app.deliver_mail().await, 2);
    let (_, page) = scrape(&app, Some(TOKEN)).await;
    assert_eq!(
        sample(&page, "rollcall_outbox_depth", &[]),
        Some(0.0),
        "{page}"
    );
    assert!(
        sample(
            &page,
            "rollcall_outbox_deliveries_total",
            &[("outcome", "sent")]
        )
        .is_some_and(|n| n >= 2.0),
        "{page}"
    );

    // On its own address, the page needs no token, and the address serves nothing else.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = rollcall::state::AppState::new(app.store.clone(), app.config.clone()).unwrap();
    let server = tokio::spawn(rollcall::server::serve_metrics(listener, state));
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("rollcall_outbox_depth"));
    let r = reqwest::get(format!("http://{addr}/api/v1/me"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    server.abort();
    app.stop().await;
}

async fn a_short_metrics_token_is_a_configuration_error(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let mut config = app.config.clone();
    config.metrics.token = Some("short".into());
    let err = rollcall::state::AppState::new(app.store.clone(), config)
        .err()
        .expect("a short token is refused");
    assert!(err.contains("metrics.token"), "{err}");
    app.stop().await;
}

crate::backend_tests!(
    metrics_are_closed_by_default_and_count_what_happened,
    a_short_metrics_token_is_a_configuration_error,
);
