//! `POST /.search` at the root (RFC 7644 §3.4.3): one query over Users and Groups.
//!
//! The filter is compiled for each resource type; a type it names no attribute of simply
//! contributes nothing, and a filter that fits neither is `invalidFilter`. Results are the
//! matching Users, then the matching Groups, paged across both.

use axum::{extract::State, response::Response};
use serde_json::Value;

use super::{
    groups,
    http::{base_url, list_response, project, ListRequest, ScimBody, ScimClient, ScimError},
    sql::Resource,
    users,
};
use crate::{
    http::AppState,
    store::scim::{self as stored, ListQuery},
};

pub async fn search(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let mut tx = state.store.read().await?;
    let dialect = stored::dialect(&tx);
    let (for_users, for_groups) = match (
        ListRequest::from_search(&body, Resource::User, dialect),
        ListRequest::from_search(&body, Resource::Group, dialect),
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
        let page = stored::list_users(
            &mut tx,
            client.org.id,
            &ListQuery {
                offset: skip,
                limit: count,
                ..request.store_query()
            },
        )
        .await?;
        total += page.total;
        skip = (skip - page.total).max(0);
        let ids: Vec<i64> = page.rows.iter().map(|u| u.id).collect();
        let memberships = stored::groups_of_users(&mut tx, &ids).await?;
        resources.extend(page.rows.iter().map(|u| {
            project(
                users::render(&base, u, &memberships),
                &request.attributes,
                &request.excluded,
            )
        }));
    }
    if let Some(request) = &for_groups {
        let room = count - resources.len() as i64;
        let page = stored::list_groups(
            &mut tx,
            client.org.id,
            &ListQuery {
                offset: skip,
                limit: room.max(0),
                ..request.store_query()
            },
        )
        .await?;
        total += page.total;
        let members = if request.returns("members") {
            let ids: Vec<i64> = page.rows.iter().map(|g| g.id).collect();
            Some(stored::members(&mut tx, &ids).await?)
        } else {
            None
        };
        resources.extend(page.rows.iter().map(|g| {
            project(
                groups::render(&base, g, members.as_deref()),
                &request.attributes,
                &request.excluded,
            )
        }));
    }
    Ok(list_response(total, start_index, resources))
}
