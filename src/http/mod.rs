//! The HTTP front door: the admin API under /api/v1, health probes, and the server itself.
//! Later front doors (SAML, OIDC, SCIM, invitation pages, the web console) mount here too.

pub(crate) mod auth;
mod connections;
mod domains;
pub mod error;
mod extract;
mod health;
mod invitations;
mod me;
mod members;
mod orgs;
mod scim_tokens;
mod teams;

use std::{future::Future, sync::Arc, time::Duration};

use axum::{
    extract::DefaultBodyLimit,
    http::{HeaderName, Request},
    response::IntoResponse,
    routing::get,
    Extension, Json, Router,
};
use tokio::net::TcpListener;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnResponse, TraceLayer},
};
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};
use utoipa_axum::router::OpenApiRouter;

pub use auth::SESSION_COOKIE;

use crate::{config::Config, dns, store::Store};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub dns: dns::Resolver,
    /// Encrypts stored client secrets.
    pub sealer: crate::secrets::Sealer,
    /// Providers' signing keys, per JWKS URL: each instance keeps its own copy.
    pub jwks: crate::oidc::KeyCache,
}

impl AppState {
    pub fn new(store: Store, config: Config) -> Result<Self, String> {
        Ok(AppState {
            dns: dns::Resolver::new(&config.dns)?,
            sealer: crate::secrets::Sealer::from_config(&config.secrets)?,
            jwks: crate::oidc::KeyCache::default(),
            store,
            config: Arc::new(config),
        })
    }
}

/// The configured body limit, for error messages.
#[derive(Clone, Copy, Default)]
struct BodyLimit(usize);

#[derive(OpenApi)]
#[openapi(
    info(title = "rollcall admin API", description = "Organizations, members, teams, API tokens and the audit trail."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(error::ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The admin API routes and the OpenAPI document that describes exactly them: both come
/// from the same `routes!` calls, so they cannot drift apart.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let v1 = OpenApiRouter::new()
        .merge(me::router())
        .merge(orgs::router())
        .merge(members::router())
        .merge(teams::router())
        .merge(connections::router())
        .merge(domains::router())
        .merge(invitations::router())
        .merge(scim_tokens::router());
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .split_for_parts()
}

pub fn router(state: AppState) -> Router {
    let (api, doc) = api();
    let doc = Arc::new(doc);
    let x_request_id = HeaderName::from_static("x-request-id");
    let limit = state.config.http.max_body_bytes;
    api.route(
        "/api/v1/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { Json(doc).into_response() }
        }),
    )
    .merge(health::router())
        .merge(crate::web::router())
    .merge(crate::oidc::router())
    .merge(crate::saml::router())
    .merge(crate::scim::router())
    .fallback(error::not_found)
    .method_not_allowed_fallback(error::method_not_allowed)
    .layer(DefaultBodyLimit::max(limit))
    .layer(Extension(BodyLimit(limit)))
    .layer(CatchPanicLayer::custom(|_| {
        error::Error::Internal("handler panicked".into()).into_response()
    }))
    .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
    .layer(
        TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let request_id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id)
        })
        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
    )
    .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
    .with_state(state)
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
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
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
