//! Lists and searches: `GET /Users` and `/Groups` with a query string, `POST …/.search`
//! with a body (RFC 7644 §3.4.3), and the root `/.search`, one query over Users and Groups.
//! Each resource renders its own page (`users::page`, `groups::page`); everything else about
//! a list is shared here.
//!
//! At the root the filter is checked for each resource type; a type it names no attribute
//! of simply contributes nothing, and a filter that fits neither is `invalidFilter`. Results
//! are the matching Users, then the matching Groups, paged across both.

use std::collections::HashMap;

use axum::{
    extract::{Query, State},
    response::Response,
};
use serde_json::Value;

use super::{
    client::ScimClient,
    error::ScimError,
    groups,
    list::{list_response, ListRequest},
    protocol::{base_url, ScimBody},
    users,
};
use crate::{
    state::AppState,
    store::{scim::ListQuery, scim_query::Resource},
};

/// One page of one resource type, answered as a ListResponse.
async fn respond(
    state: &AppState,
    client: &ScimClient,
    resource: Resource,
    request: ListRequest,
) -> Result<Response, ScimError> {
    // Reads without a transaction: a page and its total, or a resource and its groups,
    // need no single snapshot (PostgreSQL's read committed never gave one either).
    let mut tx = state.store.autocommit().await?;
    let base = base_url(state, client);
    let query = request.store_query();
    let org_id = client.org.id;
    let (total, resources) = match resource {
        Resource::User => users::page(&mut tx, &base, org_id, &request, &query).await?,
        Resource::Group => groups::page(&mut tx, &base, org_id, &request, &query).await?,
    };
    Ok(list_response(total, request.start_index, resources))
}

pub async fn list_users(
    State(state): State<AppState>,
    client: ScimClient,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let request = ListRequest::from_query(&query, Resource::User)?;
    respond(&state, &client, Resource::User, request).await
}

pub async fn list_groups(
    State(state): State<AppState>,
    client: ScimClient,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let request = ListRequest::from_query(&query, Resource::Group)?;
    respond(&state, &client, Resource::Group, request).await
}

pub async fn search_users(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let request = ListRequest::from_search(&body, Resource::User)?;
    respond(&state, &client, Resource::User, request).await
}

pub async fn search_groups(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let request = ListRequest::from_search(&body, Resource::Group)?;
    respond(&state, &client, Resource::Group, request).await
}

/// The root `/.search`, over both resource types.
pub async fn search(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    // Reads without a transaction: a page and its total, or a resource and its groups,
    // need no single snapshot (PostgreSQL's read committed never gave one either).
    let mut tx = state.store.autocommit().await?;
    let (for_users, for_groups) = match (
        ListRequest::from_search(&body, Resource::User),
        ListRequest::from_search(&body, Resource::Group),
    ) {
        (Err(e), Err(_)) => return Err(e),
        (u, g) => (u.ok(), g.ok()),
    };
    let shape = for_users
        .as_ref()
        .or(for_groups.as_ref())
        .expect("one of the two compiled");
    let (start_index, count) = (shape.start_index, shape.count);
    let base = base_url(&state, &client);
    let mut total = 0;
    let mut resources: Vec<Value> = Vec::new();
    let mut skip = start_index - 1;
    if let Some(request) = &for_users {
        let query = ListQuery {
            offset: skip,
            limit: count,
            ..request.store_query()
        };
        let (users_total, page) =
            users::page(&mut tx, &base, client.org.id, request, &query).await?;
        total += users_total;
        skip = (skip - users_total).max(0);
        resources.extend(page);
    }
    if let Some(request) = &for_groups {
        let query = ListQuery {
            offset: skip,
            limit: (count - resources.len() as i64).max(0),
            ..request.store_query()
        };
        let (groups_total, page) =
            groups::page(&mut tx, &base, client.org.id, request, &query).await?;
        total += groups_total;
        resources.extend(page);
    }
    Ok(list_response(total, start_index, resources))
}
