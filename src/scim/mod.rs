//! The SCIM 2.0 front door (RFC 7643/7644) for Okta and Entra ID provisioning.
//!
//! - this module: the routes;
//! - `client`: token authentication tied to the org in the URL, and the rate limit;
//! - `error`: RFC 7644 error bodies; `protocol`: bodies, ETags, `meta`, ids;
//!   `list`: list requests, projection and the ListResponse;
//! - `users`, `groups`: the resources, checked against their schemas and kept by
//!   `store::scim`; what they mean for accounts, memberships and teams is
//!   `provisioning::push`;
//! - `bulk`: `/Bulk`, each operation sent through the same router;
//! - `discovery`: `/ServiceProviderConfig`, `/ResourceTypes` and `/Schemas`; `search`: the
//!   root `/.search`;
//! - `filter` parses the filter language into the store's typed filter
//!   (`store::scim_query`, which compiles it to bound SQL); `patch` normalises every PATCH
//!   shape Okta and Entra send, and `document` applies the operations to a User.

pub mod bulk;
pub mod client;
pub mod discovery;
pub mod document;
pub mod error;
pub mod filter;
pub mod groups;
pub mod list;
pub mod patch;
pub mod protocol;
pub mod search;
pub mod users;

use axum::{
    http::StatusCode,
    routing::{any, get, post},
    Router,
};

use crate::state::AppState;
use client::ScimClient;
use error::ScimError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/scim/v2/{org}/ServiceProviderConfig",
            get(discovery::service_provider_config).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/ResourceTypes",
            get(discovery::resource_types).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/ResourceTypes/{id}",
            get(discovery::resource_type).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Schemas",
            get(discovery::schemas).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Schemas/{id}",
            get(discovery::schema).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/.search",
            post(search::search).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Bulk",
            post(bulk::bulk).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Users",
            get(search::list_users)
                .post(users::create)
                .fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Users/.search",
            post(search::search_users).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Users/{id}",
            get(users::get)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete)
                .fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Groups",
            get(search::list_groups)
                .post(groups::create)
                .fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Groups/.search",
            post(search::search_groups).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Groups/{id}",
            get(groups::get)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete)
                .fallback(method_not_allowed),
        )
        // Unknown SCIM paths answer in SCIM's error shape, after authentication, so that an
        // IdP's "test connection" reports a useful reason rather than an admin-API body.
        .route("/scim/v2/{org}/{*rest}", any(no_such_resource))
}

async fn method_not_allowed() -> ScimError {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "this SCIM endpoint does not support that method",
    )
}

async fn no_such_resource(_client: ScimClient) -> ScimError {
    ScimError::new(
        StatusCode::NOT_FOUND,
        None,
        "no such SCIM resource: rollcall serves Users, Groups, Bulk, ServiceProviderConfig, ResourceTypes and Schemas",
    )
}
