//! `POST /.search` at the root (RFC 7644 §3.4.3): one query over Users and Groups.
//!
//! The filter is compiled for each resource type; a type it names no attribute of simply
//! contributes nothing, and a filter that fits neither is `invalidFilter`. Results are the
//! matching Users, then the matching Groups, paged across both.

use axum::{extract::State, response::Response};
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

pub async fn search(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let mut tx = state.store.read().await?;
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
