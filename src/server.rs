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
    let mut routes = http::router()
        .merge(web::router())
        .merge(console::router())
        .merge(oidc::router())
        .merge(saml::router())
        .merge(scim::router());
    // The metrics page exists on the main address only for a scraper with the token.
    if state.config.metrics.token.is_some() {
        routes = routes.route("/metrics", axum::routing::get(metrics_endpoint));
    }
    routes
        .fallback(http::error::not_found)
        .method_not_allowed_fallback(http::error::method_not_allowed)
        .layer(axum::middleware::from_fn(move |request, next| {
            guard_body(limit, request, next)
        }))
        .layer(axum::middleware::from_fn(crate::meter::measure))
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

/// How many times a request runs at most when it keeps losing races.
const ATTEMPTS: u32 = 3;

/// Reads a request's body once, within the limit, for the two things that need it whole:
///
/// - NUL characters are refused anywhere (path, query, form field, JSON string or key)
///   with a 400 naming the field, in the shape of the front door the request was for,
///   before any handler runs: one check for POST, PUT, PATCH and Bulk alike.
/// - A request whose transaction lost a race a second try can win (a deadlock or a
///   serialization failure on PostgreSQL, a busy SQLite; the front doors mark such answers
///   with `store::LostRace`) is replayed, up to [`ATTEMPTS`] times with a short random
///   pause. A request runs in one transaction, so a lost attempt changed nothing; what
///   still loses answers 409, never 500.
///
/// A body declared larger than the limit is passed on unread: the extractor answers 413.
async fn guard_body(
    limit: usize,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    let (mut parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return next
            .run(axum::extract::Request::from_parts(parts, body))
            .await;
    }
    let path = parts.uri.path().to_string();
    let refuse = |status: StatusCode, detail: String| -> axum::response::Response {
        if path.starts_with("/scim/") {
            let scim_type = (status == StatusCode::BAD_REQUEST).then_some("invalidValue");
            scim::error::ScimError::new(status, scim_type, detail).into_response()
        } else if path.starts_with("/api/") {
            match status {
                StatusCode::PAYLOAD_TOO_LARGE => http::error::Error::PayloadTooLarge(limit),
                _ => http::error::Error::BadRequest(detail),
            }
            .into_response()
        } else {
            crate::browser::message(status, "That request cannot be accepted", &detail)
                .into_response()
        }
    };
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) if declared.is_none() => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than the limit of {limit} bytes"),
            )
        }
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "the request body could not be read".into(),
            )
        }
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Some(field) = crate::request::nul_field(&parts.uri, content_type, &bytes) {
        tracing::info!(%field, "refused a request carrying a NUL character");
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("{field} contains a NUL character (U+0000), which is not accepted"),
        );
    }
    if declared.is_none() && !bytes.is_empty() {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, bytes.len().into());
        parts.headers.remove(header::TRANSFER_ENCODING);
    }
    let mut attempt = 1;
    loop {
        let mut again = axum::extract::Request::new(axum::body::Body::from(bytes.clone()));
        *again.method_mut() = parts.method.clone();
        *again.uri_mut() = parts.uri.clone();
        *again.version_mut() = parts.version;
        *again.headers_mut() = parts.headers.clone();
        *again.extensions_mut() = parts.extensions.clone();
        let response = next.clone().run(again).await;
        if response
            .extensions()
            .get::<crate::store::LostRace>()
            .is_none()
            || attempt == ATTEMPTS
        {
            return response;
        }
        tracing::info!(attempt, uri = %crate::request::loggable(&parts.uri), "replaying a request that lost a race");
        let pause = 5 + rand::random::<u64>() % (20 * u64::from(attempt));
        tokio::time::sleep(Duration::from_millis(pause)).await;
        attempt += 1;
    }
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
///
/// The connection loop is hyper's own rather than `axum::serve`, for three things that
/// must hold together: at most `http.max_connections` open connections (each is a file
/// descriptor; past the limit new ones wait in the kernel's queue, and the log says so
/// once), a header-read timeout (a connection that does not send a request's headers in
/// time, idle or trickling, is closed, so it cannot hold a slot), and graceful shutdown.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let http = &state.config.http;
    let grace = Duration::from_secs(http.shutdown_grace_seconds);
    let max = http.max_connections.max(1);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(http.header_read_timeout_seconds.max(1)));
    let app = router(state);
    let permits = Arc::new(tokio::sync::Semaphore::new(max));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut at_limit = false;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                if at_limit {
                    tracing::info!(max, "below the connection limit again");
                    at_limit = false;
                }
                permit
            }
            Err(_) => {
                if !at_limit {
                    tracing::warn!(
                        max,
                        "connection limit reached (http.max_connections): new connections wait until one closes"
                    );
                    at_limit = true;
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, for one: wait rather than spin.
                    tracing::warn!(%err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = tower::ServiceExt::map_request(
            app.clone(),
            move |request: Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                tidy_scim_path(request)
            },
        );
        let connection = builder.serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(%err, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(seconds = grace.as_secs(), "grace period over; dropping unfinished requests");
        }
    }
    Ok(())
}

/// `GET /metrics` on the main address, routed only when `metrics.token` is set: the
/// scraper must send it as a bearer token.
async fn metrics_endpoint(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let expected = state.config.metrics.token.as_deref().unwrap_or_default();
    let sent = crate::request::bearer(&headers).unwrap_or_default();
    if expected.is_empty()
        || !crate::secrets::constant_time_eq(sent.as_bytes(), expected.as_bytes())
    {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
            "the metrics token is required\n",
        )
            .into_response();
    }
    crate::meter::render(&state.store).await
}

/// Serves `/metrics` only, without a token, on the operator's own address
/// (`metrics.listen`), until the process ends.
pub async fn serve_metrics(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |axum::extract::State(state): axum::extract::State<AppState>| async move {
                    crate::meter::render(&state.store).await
                },
            ),
        )
        .with_state(state);
    axum::serve(listener, app).await
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
