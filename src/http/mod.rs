//! The admin API front door: organizations, members, teams, connections, domains,
//! invitations and SCIM tokens under /api/v1, its OpenAPI document, and the health probes.
//! `crate::server` mounts it beside the other front doors.

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

use std::sync::Arc;

use axum::{response::IntoResponse, routing::get, Json, Router};
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

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

/// The admin API, its OpenAPI document at /api/v1/openapi.json, and the health probes.
pub fn router() -> Router<AppState> {
    let (api, doc) = api();
    let doc = Arc::new(doc);
    api.route(
        "/api/v1/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { Json(doc).into_response() }
        }),
    )
    .merge(health::router())
}
