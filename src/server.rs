//! The server: every front door's router under one set of layers, serving and graceful
//! shutdown. The only module that knows every front door.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    extract::DefaultBodyLimit,
    http::{HeaderName, Request},
    response::IntoResponse,
    Extension, Router,
};
use tokio::net::TcpListener;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};

use crate::{
    console, http, oidc,
    request::{BodyLimit, REQUEST_ID},
    saml, scim,
    state::AppState,
    web,
};

pub fn router(state: AppState) -> Router {
    let x_request_id = HeaderName::from_static(REQUEST_ID);
    let limit = state.config.http.max_body_bytes;
    http::router()
        .merge(web::router())
        .merge(console::router())
        .merge(oidc::router())
        .merge(saml::router())
        .merge(scim::router())
        .fallback(http::error::not_found)
        .method_not_allowed_fallback(http::error::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(Extension(BodyLimit(limit)))
        .layer(CatchPanicLayer::custom(|_| {
            http::error::Error::Internal("handler panicked".into()).into_response()
        }))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request<_>| {
                    let request_id = request
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    let uri = crate::request::loggable(request.uri());
                    tracing::info_span!("request", method = %request.method(), %uri, request_id)
                })
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .with_state(state)
}

/// SCIM paths as IdPs send them when an admin pasted the base URL with a trailing slash
/// (`…/scim/v2/acme//Users`, `…/Users/`): repeated slashes collapse and a trailing slash
/// goes. Only under /scim/; everywhere else a path is matched exactly.
pub fn tidy_scim_path(mut request: axum::extract::Request) -> axum::extract::Request {
    let path = request.uri().path();
    if !path.starts_with("/scim/") || (!path.contains("//") && !path.ends_with('/')) {
        return request;
    }
    let mut tidy = String::with_capacity(path.len());
    for ch in path.chars() {
        if !(ch == '/' && tidy.ends_with('/')) {
            tidy.push(ch);
        }
    }
    while tidy.len() > 1 && tidy.ends_with('/') {
        tidy.pop();
    }
    if let Some(query) = request.uri().query() {
        tidy = format!("{tidy}?{query}");
    }
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = tidy.parse().ok();
    if let Ok(uri) = axum::http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}

/// Serves until `shutdown` completes, then stops accepting and lets in-flight requests
/// finish for up to the configured grace period.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = Duration::from_secs(state.config.http.shutdown_grace_seconds);
    let stopping = Arc::new(tokio::sync::Notify::new());
    let notify = stopping.clone();
    // Path tidying runs before routing, so it wraps the router rather than being a layer.
    let app = axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<
        std::net::SocketAddr,
    >(tower::ServiceExt::map_request(
        router(state),
        tidy_scim_path,
    ));
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        notify.notify_one();
    });
    tokio::select! {
        result = server => result,
        () = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(seconds = grace.as_secs(), "grace period over; dropping unfinished requests");
            Ok(())
        }
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::tidy_scim_path;

    fn tidied(uri: &str) -> String {
        let request = axum::extract::Request::builder()
            .uri(uri)
            .body(axum::body::Body::empty())
            .unwrap();
        tidy_scim_path(request).uri().to_string()
    }

    #[test]
    fn scim_paths_lose_doubled_and_trailing_slashes() {
        assert_eq!(tidied("/scim/v2/acme//Users"), "/scim/v2/acme/Users");
        assert_eq!(tidied("/scim/v2/acme/Users/"), "/scim/v2/acme/Users");
        assert_eq!(
            tidied("/scim/v2/acme//Users/?filter=userName%20eq%20%22a%22"),
            "/scim/v2/acme/Users?filter=userName%20eq%20%22a%22"
        );
        assert_eq!(tidied("/scim/v2/acme/Users"), "/scim/v2/acme/Users");
        // Other paths are matched exactly.
        assert_eq!(tidied("/api/v1/orgs/"), "/api/v1/orgs/");
        assert_eq!(tidied("/invite//x"), "/invite//x");
    }
}
