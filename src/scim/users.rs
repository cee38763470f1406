//! `/Users`: a SCIM User is a person's membership of the org, backed by the global user.
//!
//! The handlers are thin: the resource is checked against the User schema here, kept by
//! `store::scim`, and what it means for the membership (creation, `active=false`,
//! deletion, teams from groups) is done by `provisioning::push`.

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{json, Map, Value};

use super::{
    client::ScimClient,
    document,
    error::ScimError,
    filter::as_bool,
    list::{project, ListRequest},
    patch,
    protocol::{
        base_url, check_if_match, check_length, meta, resource_response, ScimBody, MAX_KEY_LENGTH,
        MAX_TEXT_LENGTH,
    },
};
use crate::{
    provisioning::{
        push::{self, Pushed},
        LinkedBy,
    },
    state::AppState,
    store::{
        audit,
        scim::{self as stored, ScimUser, UserFields},
        scim_query::{
            canonical, Resource, ENTERPRISE_SCALARS, ENTERPRISE_SCHEMA, NAME_SUBS,
            USER_JSON_SCALARS, USER_MULTI, USER_SCHEMA,
        },
        users, Tx,
    },
};

/// Top-level string attributes kept in columns; the others are `USER_JSON_SCALARS`.
const COLUMN_STRINGS: &[&str] = &["externalId", "userName", "displayName"];

/// Sub-attributes an element of a multi-valued attribute may have.
const ELEMENT: &[&str] = &[
    "value",
    "display",
    "type",
    "primary",
    "$ref",
    // addresses
    "formatted",
    "streetAddress",
    "locality",
    "region",
    "postalCode",
    "country",
];

fn simple(key: &str) -> Option<&'static str> {
    canonical(COLUMN_STRINGS, key).or_else(|| canonical(USER_JSON_SCALARS, key))
}

fn invalid(detail: impl Into<String>) -> ScimError {
    ScimError::bad("invalidValue", detail)
}

fn string(key: &str, value: &Value) -> Result<Option<String>, ScimError> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => {
            check_length(key, s, MAX_TEXT_LENGTH)?;
            Ok(Some(s.clone()))
        }
        _ => Err(invalid(format!("{key} must be a string"))),
    }
}

/// Numbers arrive for employeeNumber and the like; kept as text.
fn string_or_number(key: &str, value: &Value) -> Result<Option<String>, ScimError> {
    match value {
        Value::Number(n) => Ok(Some(n.to_string())),
        other => string(key, other),
    }
}

/// A User resource checked against the schema.
pub struct Parsed {
    pub fields: UserFields,
    /// The address rollcall's account is keyed by; without one the User is kept as pushed
    /// and no one is made a member until an address arrives.
    pub email: Option<String>,
}

/// Checks a User (POST, PUT, or a patched document) against the schema, in the canonical
/// spelling of every attribute. Read-only attributes (`id`, `meta`, `groups`) are ignored;
/// attributes the schema does not have are refused, never dropped silently.
pub fn parse(body: &Value) -> Result<Parsed, ScimError> {
    let object = body
        .as_object()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "a User is a JSON object"))?;
    let mut document = Map::new();
    let mut active = true;
    for (key, value) in object {
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            // Declaring another schema is harmless; sending attributes of one rollcall does
            // not know is refused below, never dropped silently.
            "schemas" => {
                let ok = value.as_array().is_some_and(|list| {
                    list.iter().any(|s| {
                        s.as_str()
                            .is_some_and(|s| s.eq_ignore_ascii_case(USER_SCHEMA))
                    })
                });
                if !ok {
                    return Err(invalid(format!("schemas must list {USER_SCHEMA:?}")));
                }
            }
            // Read-only, or write-only and never kept: people sign in through SSO, so an
            // IdP's password for them would only be a liability here.
            "id" | "meta" | "groups" | "password" => {}
            "active" => {
                active = match value {
                    Value::Null => true,
                    v => as_bool(v).ok_or_else(|| invalid("active must be a boolean"))?,
                }
            }
            "name" => {
                let Value::Object(name) = value else {
                    if value.is_null() {
                        continue;
                    }
                    return Err(invalid("name must be an object"));
                };
                let mut out = Map::new();
                for (k, v) in name {
                    let sub = canonical(NAME_SUBS, k)
                        .ok_or_else(|| invalid(format!("name.{k} is not in the User schema")))?;
                    if let Some(s) = string(&format!("name.{sub}"), v)? {
                        out.insert(sub.into(), Value::String(s));
                    }
                }
                if !out.is_empty() {
                    document.insert("name".into(), Value::Object(out));
                }
            }
            _ if simple(key).is_some() => {
                let attr = simple(key).unwrap_or_default();
                if let Some(s) = string(attr, value)? {
                    document.insert(attr.into(), Value::String(s));
                }
            }
            _ if canonical(USER_MULTI, key).is_some() => {
                let attr = canonical(USER_MULTI, key).unwrap_or_default();
                let items = multi(attr, value)?;
                if !items.is_empty() {
                    document.insert(attr.into(), Value::Array(items));
                }
            }
            _ if key.eq_ignore_ascii_case(ENTERPRISE_SCHEMA) => {
                let extension = enterprise(value)?;
                if !extension.is_empty() {
                    document.insert(ENTERPRISE_SCHEMA.into(), Value::Object(extension));
                }
            }
            _ if key.contains(':') => {
                return Err(invalid(format!(
                    "the schema extension or attribute {key:?} is not supported"
                )))
            }
            _ => {
                return Err(invalid(format!(
                    "attribute {key:?} is not in the User schema"
                )))
            }
        }
    }
    let user_name = document
        .get("userName")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| invalid("userName is required"))?;
    check_length("userName", &user_name, MAX_KEY_LENGTH)?;
    let email = match primary_email(&document) {
        Some(email) => Some(
            users::normalize_email(&email)
                .map_err(|e| invalid(format!("emails: {e}")))
                .map(|_| email.trim().to_string())?,
        ),
        None => users::normalize_email(&user_name)
            .ok()
            .map(|_| user_name.trim().to_string()),
    };
    // Only an `active` the IdP sent is kept in the resource; a User without one is active.
    if object
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("active") && !v.is_null())
    {
        document.insert("active".into(), Value::Bool(active));
    }
    let text = |k: &str| document.get(k).and_then(Value::as_str).map(str::to_string);
    let name = |k: &str| {
        document
            .get("name")
            .and_then(|n| n.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    for (attribute, value) in [
        ("externalId", text("externalId")),
        ("displayName", text("displayName")),
        ("name.givenName", name("givenName")),
        ("name.familyName", name("familyName")),
    ] {
        if let Some(value) = value {
            check_length(attribute, &value, MAX_KEY_LENGTH)?;
        }
    }
    Ok(Parsed {
        fields: UserFields {
            user_name,
            external_id: text("externalId"),
            display_name: text("displayName"),
            given_name: name("givenName"),
            family_name: name("familyName"),
            active,
            attributes: Value::Object(document),
        },
        email,
    })
}

fn multi(attr: &str, value: &Value) -> Result<Vec<Value>, ScimError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(invalid(format!("{attr} must be an array"))),
    };
    let mut out = Vec::with_capacity(items.len());
    let mut primaries = 0;
    for item in items {
        let Value::Object(fields) = item else {
            return Err(invalid(format!("each of {attr} must be an object")));
        };
        let mut element = Map::new();
        for (k, v) in fields {
            let sub = canonical(ELEMENT, k)
                .ok_or_else(|| invalid(format!("{attr}.{k} is not in the User schema")))?;
            if sub == "primary" {
                let primary = as_bool(v)
                    .ok_or_else(|| invalid(format!("{attr}.primary must be a boolean")))?;
                primaries += usize::from(primary);
                element.insert(sub.into(), Value::Bool(primary));
            } else if let Some(s) = string(&format!("{attr}.{sub}"), v)? {
                element.insert(sub.into(), Value::String(s));
            }
        }
        out.push(Value::Object(element));
    }
    if primaries > 1 {
        return Err(invalid(format!("at most one of {attr} may be primary")));
    }
    Ok(out)
}

fn enterprise(value: &Value) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(fields) = value else {
        if value.is_null() {
            return Ok(Map::new());
        }
        return Err(invalid(format!("{ENTERPRISE_SCHEMA} must be an object")));
    };
    let mut out = Map::new();
    for (k, v) in fields {
        // Some clients repeat the extension's schema inside its object.
        if k.eq_ignore_ascii_case("schemas") {
            continue;
        }
        let attr = canonical(ENTERPRISE_SCALARS, k)
            .or_else(|| canonical(&["manager"], k))
            .ok_or_else(|| invalid(format!("{k:?} is not in the enterprise User extension")))?;
        if attr == "manager" {
            // Entra sends the manager's id as a bare string in PATCH; RFC 7643 an object.
            let manager = match v {
                Value::Null => continue,
                Value::String(id) if id.is_empty() => continue,
                Value::String(id) => json!({"value": id}),
                Value::Object(m) => {
                    let mut kept = Map::new();
                    for (mk, mv) in m {
                        let sub =
                            canonical(&["value", "$ref", "displayName"], mk).ok_or_else(|| {
                                invalid(format!("manager.{mk} is not in the enterprise extension"))
                            })?;
                        if let Some(s) = string(&format!("manager.{sub}"), mv)? {
                            kept.insert(sub.into(), Value::String(s));
                        }
                    }
                    if kept.is_empty() {
                        continue;
                    }
                    Value::Object(kept)
                }
                _ => return Err(invalid("manager must be an object")),
            };
            out.insert(attr.into(), manager);
        } else if let Some(s) = string_or_number(attr, v)? {
            out.insert(attr.into(), Value::String(s));
        }
    }
    Ok(out)
}

/// The primary email, else the work one, else the first.
fn primary_email(document: &Map<String, Value>) -> Option<String> {
    let emails = document.get("emails")?.as_array()?;
    let value = |e: &&Value| e.get("value").and_then(Value::as_str).map(str::to_string);
    emails
        .iter()
        .find(|e| e.get("primary") == Some(&Value::Bool(true)))
        .and_then(|e| value(&e))
        .or_else(|| {
            emails
                .iter()
                .find(|e| {
                    e.get("type")
                        .and_then(Value::as_str)
                        .is_some_and(|t| t.eq_ignore_ascii_case("work"))
                })
                .and_then(|e| value(&e))
        })
        .or_else(|| emails.first().and_then(|e| value(&e)))
}

/// The resource as the IdP reads it back.
fn render(base: &str, user: &ScimUser, groups: &[stored::UserGroup]) -> Value {
    render_from(base, user, user.attributes.0.clone(), groups)
}

/// [`render`] with the User's stored attributes taken, not copied: a page owns its rows.
fn render_from(
    base: &str,
    user: &ScimUser,
    attributes: Value,
    groups: &[stored::UserGroup],
) -> Value {
    let mut document = match attributes {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    let mut schemas = vec![Value::String(USER_SCHEMA.into())];
    if document.contains_key(ENTERPRISE_SCHEMA) {
        schemas.push(Value::String(ENTERPRISE_SCHEMA.into()));
    }
    document.insert("schemas".into(), Value::Array(schemas));
    document.insert("id".into(), Value::String(user.scim_id.clone()));
    document.insert("userName".into(), Value::String(user.user_name.clone()));
    if document.contains_key("active") || !user.active {
        document.insert("active".into(), Value::Bool(user.active));
    }
    let groups: Vec<Value> = groups
        .iter()
        .filter(|g| g.scim_user_id == user.id)
        .map(|g| {
            json!({
                "value": g.group_scim_id,
                "display": g.display_name,
                "$ref": format!("{base}/Groups/{}", g.group_scim_id),
                "type": "direct",
            })
        })
        .collect();
    if !groups.is_empty() {
        document.insert("groups".into(), Value::Array(groups));
    }
    document.insert(
        "meta".into(),
        meta(
            "User",
            format!("{base}/Users/{}", user.scim_id),
            user.created_at,
            user.updated_at,
            user.version,
        ),
    );
    Value::Object(document)
}

async fn load(
    tx: &mut Tx,
    client: &ScimClient,
    id: &str,
    lock: bool,
) -> Result<ScimUser, ScimError> {
    stored::user_by_scim_id(tx, client.org.id, id, lock)
        .await?
        .ok_or_else(|| ScimError::not_found("User", id))
}

async fn rendered(tx: &mut Tx, base: &str, user: &ScimUser) -> Result<Value, ScimError> {
    let groups = stored::groups_of_users(tx, &[user.id]).await?;
    Ok(render(base, user, &groups))
}

/// One page of Users, rendered and projected as `request` asks; also the count of all
/// matches. `query` says which page (the root `/.search` pages across resource types).
pub async fn page(
    tx: &mut Tx,
    base: &str,
    org_id: i64,
    request: &ListRequest,
    query: &stored::ListQuery<'_>,
) -> Result<(i64, Vec<Value>), ScimError> {
    let page = stored::list_users(tx, org_id, query).await?;
    let groups = if request.returns("groups") {
        let ids: Vec<i64> = page.rows.iter().map(|u| u.id).collect();
        stored::groups_of_users(tx, &ids).await?
    } else {
        Vec::new()
    };
    let resources = page
        .rows
        .into_iter()
        .map(|mut u| {
            let attributes = std::mem::take(&mut u.attributes.0);
            project(
                render_from(base, &u, attributes, &groups),
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
    let user = load(&mut tx, &client, &id, false).await?;
    let request = ListRequest::projection(&query, Resource::User)?;
    let body = rendered(&mut tx, &base_url(&state, &client), &user).await?;
    Ok(resource_response(
        StatusCode::OK,
        project(body, &request.attributes, &request.excluded),
        user.version,
    ))
}

/// The account for a pushed email, by the core's linking rule; the pushed profile applies to
/// a linked account as far as the core allows. Returns the user, whether this push created
/// it, and what the profile changed on a linked one.
async fn link(
    tx: &mut Tx,
    org_id: i64,
    connection_id: i64,
    parsed: &Parsed,
    email: &str,
) -> Result<(i64, bool, Option<push::ProfileOutcome>), ScimError> {
    let pushed = profile(parsed, email);
    let (user_id, by) = push::account_for(tx, org_id, connection_id, &pushed).await?;
    if by == LinkedBy::NewUser {
        return Ok((user_id, true, None));
    }
    let outcome = push::update_profile(tx, org_id, user_id, false, &pushed).await?;
    Ok((user_id, false, Some(outcome)))
}

/// The pushed profile, as the core takes it.
fn profile(parsed: &Parsed, email: &str) -> users::NewUser {
    users::NewUser {
        email: email.to_string(),
        display_name: parsed.fields.display_name.clone(),
        given_name: parsed.fields.given_name.clone(),
        family_name: parsed.fields.family_name.clone(),
    }
}

pub async fn create(
    State(state): State<AppState>,
    client: ScimClient,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let parsed = parse(&body)?;
    let org_id = client.org.id;
    let user_name = &parsed.fields.user_name;
    let mut tx = state.store.begin().await?;
    let linked = match &parsed.email {
        Some(email) => link(&mut tx, org_id, client.token.connection_id, &parsed, email)
            .await
            .map(|(id, created, outcome)| (Some(id), created, outcome)),
        None => Ok((None, false, None)),
    };
    let (user_id, created_user, profile_outcome) = match linked {
        Ok(linked) => linked,
        Err(err) => {
            drop(tx);
            return Err(name_taken(&state, org_id, user_name).await?.unwrap_or(err));
        }
    };
    let inserted = stored::insert_user(
        &mut tx,
        org_id,
        client.token.connection_id,
        user_id,
        created_user,
        &parsed.fields,
    )
    .await;
    let user = match inserted {
        Ok(user) => user,
        Err(err) => {
            drop(tx);
            return Err(name_taken(&state, org_id, user_name)
                .await?
                .unwrap_or_else(|| err.into()));
        }
    };
    let outcome = sync_member(&mut tx, &user, parsed.email.clone(), true).await?;
    // Just created: in no group yet.
    let body = render(&base_url(&state, &client), &user, &[]);
    audit::record(
        &mut tx,
        &client.actor(),
        audit::Event::new(org_id, "scim.user.created", "scim_user", user.id)
            .after(&json!({"user": body, "membership": outcome, "profile": profile_outcome})),
    )
    .await?;
    tx.commit().await?;
    Ok(resource_response(StatusCode::CREATED, body, user.version))
}

/// Re-posting a User the org already has (Okta's "recreate user", Entra's retry after a
/// timeout) is a uniqueness conflict naming that User, whatever else its email would have
/// met. Looked for only once a create failed (the unique index is what refuses it), on a
/// connection of its own: on PostgreSQL the failed transaction takes no more statements.
async fn name_taken(
    state: &AppState,
    org_id: i64,
    user_name: &str,
) -> Result<Option<ScimError>, ScimError> {
    let mut tx = state.store.autocommit().await?;
    Ok(stored::user_by_name(&mut tx, org_id, user_name)
        .await?
        .map(|existing| {
            ScimError::new(
                StatusCode::CONFLICT,
                Some("uniqueness"),
                format!(
                    "a User with userName {:?} already exists in this organization (id {})",
                    existing.user_name, existing.scim_id
                ),
            )
        }))
}

/// Lets the core make the membership follow the User, when the User is someone yet.
async fn sync_member(
    tx: &mut Tx,
    user: &ScimUser,
    email: Option<String>,
    new: bool,
) -> Result<Option<push::PushOutcome>, ScimError> {
    let Some(user_id) = user.user_id else {
        return Ok(None);
    };
    Ok(Some(
        push::sync(
            tx,
            &Pushed {
                org_id: user.org_id,
                connection_id: user.connection_id,
                user_id,
                scim_user_id: user.id,
                email,
                active: Some(user.active),
                new,
            },
        )
        .await?,
    ))
}

/// Writes a checked User over the stored one and lets the core follow.
async fn write(
    state: &AppState,
    client: &ScimClient,
    tx: &mut Tx,
    before: &ScimUser,
    parsed: Parsed,
    action: &str,
) -> Result<(ScimUser, Value), ScimError> {
    let org_id = client.org.id;
    let mut profile_outcome = None;
    if let (None, Some(email)) = (before.user_id, &parsed.email) {
        // The first address for a User pushed without one: now it is someone.
        let (user_id, created, outcome) =
            link(tx, org_id, before.connection_id, &parsed, email).await?;
        stored::link_user(tx, org_id, before.id, user_id, created).await?;
        profile_outcome = outcome;
    } else if let (Some(user_id), Some(email)) = (before.user_id, &parsed.email) {
        profile_outcome = Some(
            push::update_profile(
                tx,
                org_id,
                user_id,
                before.created_user,
                &profile(&parsed, email),
            )
            .await?,
        );
    }
    let after = stored::update_user(tx, org_id, before.id, &parsed.fields).await?;
    let outcome = sync_member(tx, &after, parsed.email.clone(), false).await?;
    let base = base_url(state, client);
    let before_body = rendered(tx, &base, before).await?;
    let body = rendered(tx, &base, &after).await?;
    audit::record(
        tx,
        &client.actor(),
        audit::Event::new(org_id, action, "scim_user", after.id)
            .before(&before_body)
            .after(&json!({"user": body, "membership": outcome, "profile": profile_outcome})),
    )
    .await?;
    Ok((after, body))
}

pub async fn replace(
    State(state): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let parsed = parse(&body)?;
    let mut tx = state.store.begin().await?;
    let before = load(&mut tx, &client, &id, true).await?;
    check_if_match(&headers, before.version)?;
    let (after, body) = write(
        &state,
        &client,
        &mut tx,
        &before,
        parsed,
        "scim.user.replaced",
    )
    .await?;
    tx.commit().await?;
    Ok(resource_response(StatusCode::OK, body, after.version))
}

pub async fn patch(
    State(state): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let operations = patch::parse_request(&body)?;
    let mut tx = state.store.begin().await?;
    let before = load(&mut tx, &client, &id, true).await?;
    check_if_match(&headers, before.version)?;
    let mut document = match &before.attributes.0 {
        Value::Object(o) => o.clone(),
        _ => Map::new(),
    };
    for operation in &operations {
        if let Some(path) = &operation.path {
            let name = path.attr.name.to_ascii_lowercase();
            if path.attr.uri.is_none() && matches!(name.as_str(), "id" | "meta" | "groups") {
                // Okta sends its copy of the id back; an unchanged id is no change.
                let same = name == "id"
                    && operation.value.as_ref().and_then(Value::as_str)
                        == Some(before.scim_id.as_str());
                if !same {
                    return Err(ScimError::bad(
                        "mutability",
                        format!("{} is read-only", path.attr.name),
                    ));
                }
            }
        }
    }
    let operations: Vec<_> = operations
        .into_iter()
        .filter(|o| {
            !o.path
                .as_ref()
                .is_some_and(|p| p.attr.uri.is_none() && p.attr.name.eq_ignore_ascii_case("id"))
        })
        .collect();
    document::apply(&mut document, &operations, USER_SCHEMA)?;
    let parsed = parse(&Value::Object(document))?;
    let (after, body) = write(
        &state,
        &client,
        &mut tx,
        &before,
        parsed,
        "scim.user.patched",
    )
    .await?;
    tx.commit().await?;
    Ok(resource_response(StatusCode::OK, body, after.version))
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
    let base = base_url(&state, &client);
    let before_body = rendered(&mut tx, &base, &before).await?;
    let removed = match before.user_id {
        Some(user_id) => push::remove(&mut tx, org_id, user_id).await?,
        None => false,
    };
    stored::delete_user(&mut tx, org_id, before.id).await?;
    audit::record(
        &mut tx,
        &client.actor(),
        audit::Event::new(org_id, "scim.user.deleted", "scim_user", before.id)
            .before(&before_body)
            .after(&json!({"membership_removed": removed})),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
