//! The operator's view: metrics through the `metrics` facade, rendered in Prometheus' text
//! format by `metrics-exporter-prometheus` at `/metrics`.
//!
//! What is measured: every request by route (the matched pattern, never the raw path, so
//! ids do not make new series), method and status, with a latency histogram; SCIM
//! operations by resource, method and status; sign-ins by front door, outcome and refusal
//! kind; outbox deliveries by outcome and, at each scrape, the outbox depth (counted in the
//! database, so every instance reports the same), the database pool's use, and the
//! statements and transactions this process has sent to the database.

use std::{sync::OnceLock, time::Instant};

use axum::{
    extract::{MatchedPath, Request},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics::{counter, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store;

/// Latency buckets in seconds: a sign-in or SCIM write takes milliseconds; argon2 and IdP
/// round trips take tenths.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed at the first call. Every server in the process (the
/// tests start many) records into it.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &BUCKETS,
                )
                .ok()?;
            builder
                .install_recorder()
                .map_err(|err| tracing::warn!(%err, "metrics recorder not installed"))
                .ok()
        })
        .as_ref()
}

/// Checks the metrics settings at start-up.
pub fn check_config(config: &crate::config::MetricsConfig) -> Result<(), String> {
    match &config.token {
        Some(token) if token.len() < 32 => {
            Err("metrics.token must be at least 32 characters (e.g. openssl rand -hex 32)".into())
        }
        _ => Ok(()),
    }
}

/// Records each request: count by route, method and status, and its latency. A layer on
/// the router, so the matched route is known.
pub async fn measure(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    histogram!("http_request_duration_seconds", "method" => method.clone(), "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    if let Some(resource) = scim_resource(&route) {
        counter!("rollcall_scim_operations_total", "resource" => resource, "method" => method.clone(), "status" => status.clone())
            .increment(1);
    }
    counter!("http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}

/// `Users`, `Groups`, `Bulk`, … of a SCIM route pattern (`/scim/v2/{org}/Users/{id}`).
fn scim_resource(route: &str) -> Option<&'static str> {
    let rest = route.strip_prefix("/scim/v2/{org}/")?;
    Some(match rest.split('/').next()? {
        "Users" => "Users",
        "Groups" => "Groups",
        "Bulk" => "Bulk",
        "Me" => "Me",
        _ => "discovery",
    })
}

/// A sign-in that ended: `front_door` is `saml`, `oidc` or `password`; `outcome` is
/// `success` or `refused`; `kind` says why not in a word (`refused`, `misconfigured`,
/// `unreachable`, `unavailable`, …; the precise reason is in the audit trail, where its
/// detail does not multiply series).
pub fn sign_in(front_door: &'static str, outcome: &'static str, kind: &'static str) {
    counter!("rollcall_sign_ins_total", "front_door" => front_door, "outcome" => outcome, "kind" => kind)
        .increment(1);
}

/// One attempt to deliver an outbox message: `sent`, `retry` (failed, will be retried) or
/// `failed` (given up).
pub fn delivery(outcome: &'static str) {
    counter!("rollcall_outbox_deliveries_total", "outcome" => outcome).increment(1);
}

/// The metrics page. The gauges are read at scrape time from this instance's own pool and
/// database, and written after the recorder's page rather than into the process-wide
/// recorder, so two servers in one process (as in the tests) never report each other's.
pub async fn render(store: &store::Store) -> Response {
    let Some(handle) = install() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not recorded\n",
        )
            .into_response();
    };
    handle.run_upkeep();
    let mut page = handle.render();
    let (size, idle) = store.pool_use();
    let in_use = (size as usize).saturating_sub(idle);
    page.push_str(&format!(
        "# HELP rollcall_db_pool_connections Database connections this instance holds.\n\
         # TYPE rollcall_db_pool_connections gauge\n\
         rollcall_db_pool_connections{{state=\"idle\"}} {idle}\n\
         rollcall_db_pool_connections{{state=\"in_use\"}} {in_use}\n"
    ));
    let (statements, transactions) = store::statement_counts();
    page.push_str(&format!(
        "# HELP rollcall_db_statements_total Statements this process sent to the database.\n\
         # TYPE rollcall_db_statements_total counter\n\
         rollcall_db_statements_total {statements}\n\
         # HELP rollcall_db_transactions_total Transactions this process began.\n\
         # TYPE rollcall_db_transactions_total counter\n\
         rollcall_db_transactions_total {transactions}\n"
    ));
    match depth(store).await {
        Ok(depth) => page.push_str(&format!(
            "# HELP rollcall_outbox_depth Messages waiting in the outbox (all instances).\n\
             # TYPE rollcall_outbox_depth gauge\n\
             rollcall_outbox_depth {depth}\n"
        )),
        Err(err) => tracing::warn!(%err, "outbox depth not measured"),
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], page).into_response()
}

async fn depth(store: &store::Store) -> store::Result<i64> {
    let mut tx = store.read().await?;
    store::outbox::depth(&mut tx).await
}

#[cfg(test)]
mod tests {
    use super::scim_resource;

    #[test]
    fn scim_routes_name_their_resource() {
        assert_eq!(scim_resource("/scim/v2/{org}/Users/{id}"), Some("Users"));
        assert_eq!(scim_resource("/scim/v2/{org}/Bulk"), Some("Bulk"));
        assert_eq!(
            scim_resource("/scim/v2/{org}/ServiceProviderConfig"),
            Some("discovery")
        );
        assert_eq!(scim_resource("/api/v1/orgs/{org}/members"), None);
    }
}
