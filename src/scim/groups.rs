//! `/Groups`: an IdP group of the org. Its members' teams follow the connection's group
//! mappings at once (team source `scim`), through `provisioning::push`.
//!
//! Members are rows, never a list rewritten whole: adding or removing one member of a
//! group of 50,000 writes one row and re-evaluates one person's teams, and lists that
//! exclude `members` never read them.

use std::collections::{BTreeSet, HashMap};

use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{json, Map, Value};

use super::{
    client::ScimClient,
    error::ScimError,
    filter::{CompareOp, Filter, Value as FilterValue},
    list::{project, ListRequest},
    patch::{self, Op},
    protocol::{
        base_url, check_if_match, check_length, etag, meta, resource_response, ScimBody,
        MAX_KEY_LENGTH,
    },
};
use crate::{
    provisioning::{
        push::{self, PushOutcome},
        IdpGroup, Rules,
    },
    state::AppState,
    store::{
        audit,
        scim::{self as stored, ScimGroup},
        scim_query::{Resource, GROUP_SCHEMA},
        Tx,
    },
};

fn invalid(detail: impl Into<String>) -> ScimError {
    ScimError::bad("invalidValue", detail)
}

struct Parsed {
    display_name: String,
    external_id: Option<String>,
    /// The members' SCIM ids.
    members: Vec<String>,
}

/// The one check of a Group's own fields, for POST, PUT and PATCH alike.
fn check_group(display_name: &str, external_id: Option<&str>) -> Result<(), ScimError> {
    check_length("displayName", display_name, MAX_KEY_LENGTH)?;
    if let Some(external_id) = external_id {
        check_length("externalId", external_id, MAX_KEY_LENGTH)?;
    }
    Ok(())
}

/// The internal keys of the Users a request names by their SCIM ids. `strict` (adding): an
/// id that is not a User of this org is refused. Otherwise (removing) it is skipped.
async fn keys_of(
    tx: &mut Tx,
    org_id: i64,
    ids: Vec<String>,
    strict: bool,
) -> Result<Vec<i64>, ScimError> {
    let found: HashMap<String, i64> = stored::user_keys(tx, org_id, &ids)
        .await?
        .into_iter()
        .collect();
    let mut keys = Vec::with_capacity(ids.len());
    for id in &ids {
        match found.get(id) {
            Some(key) => keys.push(*key),
            None if strict => {
                return Err(invalid(format!(
                    "member {id:?} is not a User of this organization"
                )))
            }
            None => {}
        }
    }
    Ok(keys)
}

/// The member ids of a member list. Only Users are members here: a member typed `Group`
/// is refused rather than taken for the User that happens to have the same id.
fn member_ids(value: &Value) -> Result<Vec<String>, ScimError> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    if items.iter().any(|m| {
        m.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case("group"))
    }) {
        return Err(invalid(
            "groups cannot be members of groups here: nested groups are not supported",
        ));
    }
    Ok(patch::member_ids(value)?)
}

fn parse(body: &Value) -> Result<Parsed, ScimError> {
    let object = body
        .as_object()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "a Group is a JSON object"))?;
    let mut display_name = None;
    let mut external_id = None;
    let mut members = Vec::new();
    for (key, value) in object {
        match key.to_ascii_lowercase().as_str() {
            // Entra lists a Microsoft schema beside the core one, with no attributes of it:
            // a declaration is harmless; attributes of an unknown schema are refused below.
            "schemas" => {
                let ok = value.as_array().is_some_and(|list| {
                    list.iter().any(|s| {
                        s.as_str()
                            .is_some_and(|s| s.eq_ignore_ascii_case(GROUP_SCHEMA))
                    })
                });
                if !ok {
                    return Err(invalid(format!("schemas must list {GROUP_SCHEMA:?}")));
                }
            }
            "id" | "meta" => {}
            "displayname" => {
                display_name = value
                    .as_str()
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            }
            "externalid" => match value {
                Value::Null => {}
                Value::String(s) => external_id = Some(s.clone()).filter(|s| !s.is_empty()),
                _ => return Err(invalid("externalId must be a string")),
            },
            "members" => {
                if !value.is_null() {
                    members.extend(member_ids(value)?);
                }
            }
            _ => {
                return Err(invalid(format!(
                    "attribute {key:?} is not in the Group schema"
                )))
            }
        }
    }
    let display_name = display_name.ok_or_else(|| invalid("displayName is required"))?;
    check_group(&display_name, external_id.as_deref())?;
    Ok(Parsed {
        display_name,
        external_id,
        members,
    })
}

fn render(base: &str, group: &ScimGroup, members: Option<&[stored::GroupMember]>) -> Value {
    let mut body = Map::new();
    body.insert("schemas".into(), json!([GROUP_SCHEMA]));
    body.insert("id".into(), Value::String(group.scim_id.clone()));
    body.insert(
        "displayName".into(),
        Value::String(group.display_name.clone()),
    );
    if let Some(external_id) = &group.external_id {
        body.insert("externalId".into(), Value::String(external_id.clone()));
    }
    if let Some(members) = members {
        let list: Vec<Value> = members
            .iter()
            .filter(|m| m.group_id == group.id)
            // No `display`: it is optional, and a client comparing the members it sent with
            // the members it reads back (scim2-tester does) must find the same objects.
            .map(|m| {
                json!({
                    "value": m.user_scim_id,
                    "$ref": format!("{base}/Users/{}", m.user_scim_id),
                    "type": "User",
                })
            })
            .collect();
        body.insert("members".into(), Value::Array(list));
    }
    body.insert(
        "meta".into(),
        meta(
            "Group",
            format!("{base}/Groups/{}", group.scim_id),
            group.created_at,
            group.updated_at,
            group.version,
        ),
    );
    Value::Object(body)
}

async fn load(
    tx: &mut Tx,
    client: &ScimClient,
    id: &str,
    lock: bool,
) -> Result<ScimGroup, ScimError> {
    stored::group_by_scim_id(tx, client.org.id, id, lock)
        .await?
        .ok_or_else(|| ScimError::not_found("Group", id))
}

/// Whose teams a change may have moved: the members added or removed, and every member
/// when the group's name or externalId changed (mappings match on those).
async fn affected(
    tx: &mut Tx,
    before: &ScimGroup,
    after: &ScimGroup,
    touched: &BTreeSet<i64>,
) -> Result<BTreeSet<i64>, ScimError> {
    let renamed =
        before.display_name != after.display_name || before.external_id != after.external_id;
    let mut ids = touched.clone();
    if renamed {
        ids.extend(stored::member_ids(tx, after.id).await?);
    }
    Ok(ids)
}

fn as_idp_group(group: &ScimGroup) -> IdpGroup {
    IdpGroup {
        id: group.external_id.clone(),
        name: Some(group.display_name.clone()),
    }
}

/// Re-applies the teams of people whose membership of `groups` (the group as it was and
/// as it is) changed. Returns what changed, per User. Nothing to do when no mapping or
/// grant of the connection names the group.
async fn sync(
    tx: &mut Tx,
    org_id: i64,
    groups: &[&ScimGroup],
    scim_user_ids: &BTreeSet<i64>,
) -> Result<Vec<(i64, PushOutcome)>, ScimError> {
    let Some(connection_id) = groups.first().map(|g| g.connection_id) else {
        return Ok(Vec::new());
    };
    if scim_user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let named: Vec<IdpGroup> = groups.iter().map(|g| as_idp_group(g)).collect();
    let rules = Rules::load(tx, org_id, connection_id).await?;
    if !rules.name_any(&named) {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = scim_user_ids.iter().copied().collect();
    let people = stored::user_links(tx, org_id, &ids).await?;
    Ok(push::resync_people(tx, org_id, connection_id, &rules, &people).await?)
}

/// What a group change did to people's memberships, for its audit event: how many people
/// changed, and the changes of the first [`LISTED`] of them. A renamed group of 50,000 would
/// otherwise write one audit row of megabytes that no one reads whole.
fn sync_summary(changes: &[(i64, PushOutcome)]) -> Value {
    let listed: Vec<Value> = changes
        .iter()
        .take(LISTED)
        .map(|(id, outcome)| json!({"scim_user_id": id, "changes": outcome}))
        .collect();
    json!({
        "people_changed": changes.len(),
        "listed": listed,
        "not_listed": changes.len().saturating_sub(LISTED),
    })
}

/// People whose changes a group change's audit event lists one by one.
const LISTED: usize = 100;

/// One page of Groups, rendered and projected as `request` asks; also the count of all
/// matches. `query` says which page (the root `/.search` pages across resource types).
pub async fn page(
    tx: &mut Tx,
    base: &str,
    org_id: i64,
    request: &ListRequest,
    query: &stored::ListQuery<'_>,
) -> Result<(i64, Vec<Value>), ScimError> {
    let page = stored::list_groups(tx, org_id, query).await?;
    // Entra asks with excludedAttributes=members: then no member is read at all.
    let members = if request.returns("members") {
        let ids: Vec<i64> = page.rows.iter().map(|g| g.id).collect();
        Some(stored::members(tx, &ids).await?)
    } else {
        None
    };
    let resources = page
        .rows
        .iter()
        .map(|g| {
            project(
                render(base, g, members.as_deref()),
                &request.attributes,
                &request.excluded,
            )
        })
        .collect();
    Ok((page.total, resources))
}

pub async fn get(
    State(state): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    // Reads without a transaction: a page and its total, or a resource and its groups,
    // need no single snapshot (PostgreSQL's read committed never gave one either).
    let mut tx = state.store.autocommit().await?;
    let group = load(&mut tx, &client, &id, false).await?;
    let request = ListRequest::projection(&query, Resource::Group)?;
    let members = if request.returns("members") {
        Some(stored::members(&mut tx, &[group.id]).await?)
    } else {
        None
    };
    let body = render(&base_url(&state, &client), &group, members.as_deref());
    Ok(resource_response(
        StatusCode::OK,
        project(body, &request.attributes, &request.excluded),
        group.version,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let parsed = parse(&body)?;
    let org_id = client.org.id;
    let mut tx = state.store.begin().await?;
    let group = stored::insert_group(
        &mut tx,
        org_id,
        client.token.connection_id,
        &parsed.display_name,
        parsed.external_id.as_deref(),
    )
    .await?;
    let mut added = BTreeSet::new();
    for member in keys_of(&mut tx, org_id, parsed.members, true).await? {
        if stored::add_member(&mut tx, org_id, group.id, member).await? {
            added.insert(member);
        }
    }
    let changes = sync(&mut tx, org_id, &[&group], &added).await?;
    let members = stored::members(&mut tx, &[group.id]).await?;
    let body = render(&base_url(&state, &client), &group, Some(&members));
    audit::record(
        &mut tx,
        &client.actor(),
        audit::Event::new(org_id, "scim.group.created", "scim_group", group.id)
            .after(&json!({"group": body, "memberships": sync_summary(&changes)})),
    )
    .await?;
    tx.commit().await?;
    Ok(resource_response(StatusCode::CREATED, body, group.version))
}

/// Sets the group's members to exactly `wanted`: only the difference is written.
async fn replace_members(
    tx: &mut Tx,
    org_id: i64,
    group_id: i64,
    wanted: &BTreeSet<i64>,
    touched: &mut BTreeSet<i64>,
) -> Result<(), ScimError> {
    let current: BTreeSet<i64> = stored::member_ids(tx, group_id)
        .await?
        .into_iter()
        .collect();
    for id in current.difference(wanted) {
        if stored::remove_member(tx, group_id, *id).await? {
            touched.insert(*id);
        }
    }
    for id in wanted.difference(&current) {
        if stored::add_member(tx, org_id, group_id, *id).await? {
            touched.insert(*id);
        }
    }
    Ok(())
}

pub async fn replace(
    State(state): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let parsed = parse(&body)?;
    let org_id = client.org.id;
    let mut tx = state.store.begin().await?;
    let before = load(&mut tx, &client, &id, true).await?;
    check_if_match(&headers, before.version)?;
    let mut touched = BTreeSet::new();
    let wanted: BTreeSet<i64> = keys_of(&mut tx, org_id, parsed.members, true)
        .await?
        .into_iter()
        .collect();
    replace_members(&mut tx, org_id, before.id, &wanted, &mut touched).await?;
    let after = stored::update_group(
        &mut tx,
        org_id,
        before.id,
        &parsed.display_name,
        parsed.external_id.as_deref(),
    )
    .await?;
    let affected = affected(&mut tx, &before, &after, &touched).await?;
    let changes = sync(&mut tx, org_id, &[&before, &after], &affected).await?;
    let members = stored::members(&mut tx, &[after.id]).await?;
    let base = base_url(&state, &client);
    let body = render(&base, &after, Some(&members));
    audit::record(
        &mut tx,
        &client.actor(),
        audit::Event::new(org_id, "scim.group.replaced", "scim_group", after.id)
            .before(&render(&base, &before, None))
            .after(&json!({"group": render(&base, &after, None), "members_changed": touched, "memberships": sync_summary(&changes)})),
    )
    .await?;
    tx.commit().await?;
    Ok(resource_response(StatusCode::OK, body, after.version))
}

/// `members[value eq "id"]`: the one member such a path names.
fn named_member(filter: &Filter) -> Option<&str> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value: FilterValue::String(id),
        } if path.name.eq_ignore_ascii_case("value") && path.sub.is_none() => Some(id),
        _ => None,
    }
}

pub async fn patch(
    State(state): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let operations = patch::parse_request(&body)?;
    // A client that names attributes wants the resource back (RFC 7644 §3.5.2).
    let wants_body = query.keys().any(|k| {
        k.eq_ignore_ascii_case("attributes") || k.eq_ignore_ascii_case("excludedAttributes")
    });
    let projection = ListRequest::projection(&query, Resource::Group)?;
    let org_id = client.org.id;
    let mut tx = state.store.begin().await?;
    let before = load(&mut tx, &client, &id, true).await?;
    check_if_match(&headers, before.version)?;
    let mut display_name = before.display_name.clone();
    let mut external_id = before.external_id.clone();
    let mut touched = BTreeSet::new();
    for operation in &operations {
        let Some(path) = &operation.path else {
            return Err(ScimError::bad("noTarget", "an operation without a path"));
        };
        if path
            .attr
            .uri
            .as_deref()
            .is_some_and(|u| !u.eq_ignore_ascii_case(GROUP_SCHEMA))
        {
            return Err(ScimError::bad(
                "invalidPath",
                format!("Groups have no attribute {}", path.attr),
            ));
        }
        let value = operation.value.as_ref();
        let text = || -> Result<String, ScimError> {
            value
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| invalid(format!("{} takes a string", path.attr.name)))
        };
        match (path.attr.name.to_ascii_lowercase().as_str(), operation.op) {
            ("members", op) if path.attr.sub.is_none() || path.filter.is_some() => {
                match (&path.filter, op, value) {
                    (Some(filter), Op::Remove, _) => {
                        let ids: Vec<i64> = match named_member(filter) {
                            // One named member: no need to read the others.
                            Some(id) => {
                                keys_of(&mut tx, org_id, vec![id.to_string()], false).await?
                            }
                            None => {
                                return Err(ScimError::bad(
                                    "invalidFilter",
                                    "members are selected by value eq \"id\"",
                                ))
                            }
                        };
                        for id in ids {
                            if stored::remove_member(&mut tx, before.id, id).await? {
                                touched.insert(id);
                            }
                        }
                    }
                    (Some(_), _, _) => {
                        return Err(ScimError::bad(
                            "invalidPath",
                            "a member filter is only for remove; add members with path \"members\"",
                        ))
                    }
                    (None, Op::Add, Some(value)) => {
                        for id in keys_of(&mut tx, org_id, member_ids(value)?, true).await? {
                            if stored::add_member(&mut tx, org_id, before.id, id).await? {
                                touched.insert(id);
                            }
                        }
                    }
                    // Entra's removal of listed members: only those go.
                    (None, Op::Remove, Some(value)) => {
                        for id in keys_of(&mut tx, org_id, member_ids(value)?, false).await? {
                            if stored::remove_member(&mut tx, before.id, id).await? {
                                touched.insert(id);
                            }
                        }
                    }
                    (None, Op::Remove, None) => {
                        replace_members(&mut tx, org_id, before.id, &BTreeSet::new(), &mut touched)
                            .await?
                    }
                    // Okta's "push now" on an empty group: `replace members []`.
                    (None, Op::Replace, Some(value)) => {
                        let wanted: BTreeSet<i64> =
                            keys_of(&mut tx, org_id, member_ids(value)?, true)
                                .await?
                                .into_iter()
                                .collect();
                        replace_members(&mut tx, org_id, before.id, &wanted, &mut touched).await?
                    }
                    (None, _, None) => return Err(invalid("members: a value is needed")),
                }
            }
            ("displayname", Op::Add | Op::Replace) if path.attr.sub.is_none() => {
                let name = text()?;
                if name.trim().is_empty() {
                    return Err(invalid("displayName cannot be empty"));
                }
                display_name = name;
            }
            ("displayname", Op::Remove) => {
                return Err(ScimError::bad("mutability", "displayName is required"))
            }
            ("externalid", Op::Add | Op::Replace) => external_id = Some(text()?),
            ("externalid", Op::Remove) => external_id = None,
            // Okta repeats the id in a path-less replace right after creating a group.
            ("id", Op::Add | Op::Replace) if text().ok().as_ref() == Some(&before.scim_id) => {}
            ("id" | "meta", _) => {
                return Err(ScimError::bad(
                    "mutability",
                    format!("{} is read-only", path.attr.name),
                ))
            }
            _ => {
                return Err(ScimError::bad(
                    "invalidPath",
                    format!("Groups have no attribute {} to change", path.attr),
                ))
            }
        }
    }
    let renamed = display_name != before.display_name || external_id != before.external_id;
    let after = if renamed {
        check_group(&display_name, external_id.as_deref())?;
        stored::update_group(
            &mut tx,
            org_id,
            before.id,
            &display_name,
            external_id.as_deref(),
        )
        .await?
    } else {
        if !touched.is_empty() {
            stored::touch_group(&mut tx, org_id, before.id).await?;
        }
        load(&mut tx, &client, &id, false).await?
    };
    let affected = affected(&mut tx, &before, &after, &touched).await?;
    let changes = sync(&mut tx, org_id, &[&before, &after], &affected).await?;
    let base = base_url(&state, &client);
    audit::record(
        &mut tx,
        &client.actor(),
        audit::Event::new(org_id, "scim.group.patched", "scim_group", after.id)
            .before(&render(&base, &before, None))
            .after(&json!({
                "group": render(&base, &after, None),
                "members_changed": touched,
                "memberships": sync_summary(&changes),
            })),
    )
    .await?;
    let shown = if wants_body {
        let members = if projection.returns("members") {
            Some(stored::members(&mut tx, &[after.id]).await?)
        } else {
            None
        };
        Some(project(
            render(&base, &after, members.as_deref()),
            &projection.attributes,
            &projection.excluded,
        ))
    } else {
        None
    };
    tx.commit().await?;
    if let Some(body) = shown {
        return Ok(resource_response(StatusCode::OK, body, after.version));
    }
    // 204 rather than the whole group: a 50,000-member list is not sent back for each
    // one-member change (RFC 7644 §3.5.2 allows either).
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(tag) = HeaderValue::from_str(&etag(after.version)) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    Ok(response)
}

pub async fn delete(
    State(state): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let org_id = client.org.id;
    let mut tx = state.store.begin().await?;
    let before = load(&mut tx, &client, &id, true).await?;
    check_if_match(&headers, before.version)?;
    let former: BTreeSet<i64> = stored::member_ids(&mut tx, before.id)
        .await?
        .into_iter()
        .collect();
    stored::delete_group(&mut tx, org_id, before.id).await?;
    let changes = sync(&mut tx, org_id, &[&before], &former).await?;
    let base = base_url(&state, &client);
    audit::record(
        &mut tx,
        &client.actor(),
        audit::Event::new(org_id, "scim.group.deleted", "scim_group", before.id)
            .before(&render(&base, &before, None))
            .after(&json!({"memberships": sync_summary(&changes)})),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
