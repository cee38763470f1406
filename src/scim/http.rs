//! The SCIM endpoint's HTTP edge: bearer-token authentication tied to the org in the URL,
//! the RFC 7644 §3.12 error body, and the discovery documents.

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Request, State},
    http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{any, get, post},
    Json, Router,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use super::{
    filter::{self, AttrPath},
    groups,
    patch::PatchError,
    sql::{self, Resource},
    users,
};
use crate::{
    http::{auth::bearer, error::INTERNAL_MESSAGE, AppState},
    provisioning,
    store::{self, audit, credentials, orgs, scim_tokens, scim_tokens::ScimToken},
};

/// Larger request bodies are refused with 413 before they are parsed: SCIM's own cap, or
/// the server's (`http.max_body_bytes`) when that is lower.
pub const MAX_PAYLOAD: usize = 1024 * 1024;

pub fn max_payload(state: &AppState) -> usize {
    MAX_PAYLOAD.min(state.config.http.max_body_bytes)
}
/// The page size when `count` is absent, and the largest honoured (Okta asks for 100).
pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1000;

pub const CONTENT_TYPE: &str = "application/scim+json";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/scim/v2/{org}/ServiceProviderConfig",
            get(service_provider_config).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/ResourceTypes",
            get(super::discovery::resource_types).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/ResourceTypes/{id}",
            get(super::discovery::resource_type).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Schemas",
            get(super::discovery::schemas).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Schemas/{id}",
            get(super::discovery::schema).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/.search",
            post(super::search::search).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Bulk",
            post(super::bulk::bulk).fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Users",
            get(users::list)
                .post(users::create)
                .fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Users/.search",
            post(users::search).fallback(method_not_allowed),
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
            get(groups::list)
                .post(groups::create)
                .fallback(method_not_allowed),
        )
        .route(
            "/scim/v2/{org}/Groups/.search",
            post(groups::search).fallback(method_not_allowed),
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

/// A SCIM failure: the HTTP status, an RFC 7644 `scimType` where one applies, and a detail.
#[derive(Debug)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
    /// Seconds for `Retry-After` on a 429.
    pub retry_after: Option<i64>,
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        ScimError {
            status,
            scim_type,
            detail: detail.into(),
            retry_after: None,
        }
    }

    fn rate_limited(seconds: i64) -> Self {
        ScimError {
            retry_after: Some(seconds),
            ..ScimError::new(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                format!("too many requests with this token; retry in {seconds} s"),
            )
        }
    }

    fn unauthorized(detail: &str) -> Self {
        ScimError::new(StatusCode::UNAUTHORIZED, None, detail)
    }

    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimError::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        ScimError::new(
            StatusCode::NOT_FOUND,
            None,
            format!("{what} {id:?} not found"),
        )
    }
}

impl From<PatchError> for ScimError {
    fn from(err: PatchError) -> Self {
        ScimError::bad(err.scim_type, err.detail)
    }
}

impl From<provisioning::Error> for ScimError {
    fn from(err: provisioning::Error) -> Self {
        match err {
            provisioning::Error::Store(e) => e.into(),
            provisioning::Error::Refused(r) => {
                ScimError::new(StatusCode::CONFLICT, None, r.message)
            }
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            // RFC 7644 §3.12: the status is a string.
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(scim_type) = self.scim_type {
            body["scimType"] = scim_type.into();
        }
        let mut response = scim_json(self.status, body);
        if let Some(seconds) = self.retry_after {
            // An integer, which Okta honours (it waits minutes otherwise).
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rollcall SCIM\""),
            );
        }
        response
    }
}

impl From<store::Error> for ScimError {
    fn from(err: store::Error) -> Self {
        match err {
            store::Error::NotFound(what) => {
                ScimError::new(StatusCode::NOT_FOUND, None, format!("{what} not found"))
            }
            store::Error::Conflict { code, message } => {
                // Only a duplicate is `uniqueness`; other conflicts (the last admin) are not.
                let scim_type =
                    matches!(code, "uniqueness" | "email_taken").then_some("uniqueness");
                ScimError::new(StatusCode::CONFLICT, scim_type, message)
            }
            store::Error::Invalid(message) => {
                ScimError::new(StatusCode::BAD_REQUEST, Some("invalidValue"), message)
            }
            other => {
                tracing::error!(detail = %other, "SCIM request failed");
                ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, None, INTERNAL_MESSAGE)
            }
        }
    }
}

pub fn scim_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// The identity provider calling: a SCIM token of the org named in the URL.
pub struct ScimClient {
    pub org: orgs::Org,
    pub token: ScimToken,
    pub request_id: Option<String>,
}

impl ScimClient {
    /// Audit events name the token, so an admin can tell which IdP integration acted.
    pub fn actor(&self) -> audit::Actor {
        audit::Actor {
            user_id: None,
            label: format!("SCIM token {:?}", self.token.name),
            request_id: self.request_id.clone(),
        }
    }
}

impl FromRequestParts<AppState> for ScimClient {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ScimError> {
        let secret = bearer(parts).map(str::to_string).ok_or_else(|| {
            ScimError::unauthorized(
                "authentication required: send Authorization: Bearer <SCIM token>",
            )
        })?;
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ScimError::new(StatusCode::NOT_FOUND, None, "no such SCIM endpoint"))?;
        let slug = params
            .iter()
            .find(|(name, _)| name == "org")
            .map(|(_, value)| value.as_str())
            .unwrap_or_default();
        let mut tx = state.store.read().await?;
        let found = scim_tokens::authenticate(&mut tx, &secret).await?;
        let org = match &found {
            Some((org_id, _)) => orgs::by_id(&mut tx, *org_id).await?,
            None => None,
        };
        drop(tx);
        // One answer for a bad token and for a good token used on another org's URL, so a
        // token reveals nothing about which other orgs exist.
        let (token, org) = match (found, org) {
            (Some((_, token)), Some(org)) if org.slug == slug => (token, org),
            _ => {
                return Err(ScimError::unauthorized(
                    "invalid or revoked SCIM token, or a token of another organization",
                ))
            }
        };
        let limit = state.config.scim.requests_per_minute;
        if limit > 0 {
            // Counted per token in the database, so instances behind a load balancer agree.
            let mut tx = state.store.begin().await?;
            let verdict =
                store::limits::hit(&mut tx, &format!("scim:{}", token.id), limit, 1).await?;
            tx.commit().await?;
            if let Err(until) = verdict {
                let seconds = (until - Utc::now()).num_seconds().max(1);
                return Err(ScimError::rate_limited(seconds));
            }
        }
        if credentials::is_stale(token.last_used_at, chrono::Utc::now()) {
            // Best effort: a failed last-used update must not fail the IdP's request.
            let touched = async {
                let mut tx = state.store.begin().await?;
                scim_tokens::touch(&mut tx, token.id).await?;
                tx.commit().await
            };
            if let Err(err) = touched.await {
                tracing::warn!(%err, "could not record SCIM token use");
            }
        }
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(ScimClient {
            org,
            token,
            request_id,
        })
    }
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

/// RFC 7643 §5. It states what this build serves, and nothing more: features flip to
/// `supported: true` as their endpoints land, so an IdP never relies on one that is missing.
async fn service_provider_config(State(state): State<AppState>, client: ScimClient) -> Response {
    let location = format!(
        "{}/scim/v2/{}/ServiceProviderConfig",
        state.config.public_base_url.trim_end_matches('/'),
        client.org.slug
    );
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "documentationUri": "https://github.com/rollcall/rollcall/blob/main/docs/scim.md",
            "patch": {"supported": true},
            "bulk": {
                "supported": true,
                "maxOperations": super::bulk::MAX_OPERATIONS,
                "maxPayloadSize": max_payload(&state),
            },
            "filter": {"supported": true, "maxResults": MAX_PAGE},
            "changePassword": {"supported": false},
            "sort": {"supported": true},
            "etag": {"supported": true},
            "authenticationSchemes": [{
                "type": "oauthbearertoken",
                "name": "OAuth Bearer Token",
                "description": "A SCIM token created for this organization in rollcall's admin API",
                "primary": true,
            }],
            "meta": {"resourceType": "ServiceProviderConfig", "location": location},
        }),
    )
}

/// A SCIM request body: `application/scim+json` or `application/json`, at most
/// [`max_payload`] bytes (413 beyond), a JSON object (400 `invalidSyntax` otherwise).
pub struct ScimBody(pub Value);

impl FromRequest<AppState> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ScimError> {
        let max = max_payload(state);
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        if let Some(ct) = &content_type {
            if ct != CONTENT_TYPE && ct != "application/json" {
                return Err(ScimError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    None,
                    format!("send {CONTENT_TYPE} or application/json, not {ct}"),
                ));
            }
        }
        let too_large = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|n| n > max);
        let payload_too_large = || {
            ScimError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                format!("request bodies are limited to {max} bytes"),
            )
        };
        if too_large {
            return Err(payload_too_large());
        }
        let body = axum::body::to_bytes(request.into_body(), max)
            .await
            .map_err(|_| payload_too_large())?;
        parse_json(&body).map(ScimBody)
    }
}

fn parse_json(body: &Bytes) -> Result<Value, ScimError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ScimError::bad("invalidSyntax", format!("the body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(ScimError::bad(
            "invalidSyntax",
            "the body must be a JSON object",
        ));
    }
    Ok(value)
}

/// `W/"3"`: a weak ETag from the resource's version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Honours `If-Match`: the write goes ahead only when the resource is still at a version
/// the client names (or `*`); otherwise 412.
pub fn check_if_match(headers: &HeaderMap, version: i64) -> Result<(), ScimError> {
    let Some(wanted) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let wanted = wanted.to_str().unwrap_or_default();
    let current = version.to_string();
    let matches = wanted
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/").trim_matches('"') == current);
    if matches {
        Ok(())
    } else {
        Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!(
                "the resource has changed: it is at version {}, not {wanted}",
                etag(version)
            ),
        ))
    }
}

/// A resource response with its `ETag` and, for a create, `Location`.
pub fn resource_response(status: StatusCode, body: Value, version: i64) -> Response {
    let location = body["meta"]["location"].as_str().map(str::to_string);
    let mut response = scim_json(status, body);
    if let Ok(tag) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    if status == StatusCode::CREATED {
        if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            response.headers_mut().insert(header::LOCATION, location);
        }
    }
    response
}

pub fn base_url(state: &AppState, client: &ScimClient) -> String {
    format!(
        "{}/scim/v2/{}",
        state.config.public_base_url.trim_end_matches('/'),
        client.org.slug
    )
}

pub fn meta(
    resource_type: &str,
    location: String,
    created: DateTime<Utc>,
    modified: DateTime<Utc>,
    version: i64,
) -> Value {
    json!({
        "resourceType": resource_type,
        "created": created.to_rfc3339_opts(SecondsFormat::Millis, true),
        "lastModified": modified.to_rfc3339_opts(SecondsFormat::Millis, true),
        "location": location,
        "version": etag(version),
    })
}

/// The id in a URL: rollcall's ids are integers; anything else is simply not found.
pub fn parse_id(what: &str, id: &str) -> Result<i64, ScimError> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ScimError::not_found(what, id))
}

/// A list request, from the query string or a `.search` body.
pub struct ListRequest {
    pub filter: Option<sql::Sql>,
    pub sort_column: Option<&'static str>,
    pub descending: bool,
    /// 1-based, as SCIM counts.
    pub start_index: i64,
    pub count: i64,
    pub attributes: Vec<AttrPath>,
    pub excluded: Vec<AttrPath>,
}

impl ListRequest {
    pub fn from_query(
        query: &HashMap<String, String>,
        resource: Resource,
        dialect: sql::Dialect,
    ) -> Result<Self, ScimError> {
        let get = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let number = |name: &str| -> Result<Option<i64>, ScimError> {
            get(name)
                .map(|v| {
                    v.trim().parse::<i64>().map_err(|_| {
                        ScimError::bad("invalidValue", format!("{name} must be an integer"))
                    })
                })
                .transpose()
        };
        ListRequest::build(
            get("filter"),
            get("sortBy"),
            get("sortOrder"),
            number("startIndex")?,
            number("count")?,
            get("attributes").map(split_list).unwrap_or_default(),
            get("excludedAttributes")
                .map(split_list)
                .unwrap_or_default(),
            resource,
            dialect,
        )
    }

    /// Only `attributes` and `excludedAttributes`, for a GET of one resource; anything else
    /// in the query is not a list's to apply there.
    pub fn projection(
        query: &HashMap<String, String>,
        resource: Resource,
    ) -> Result<Self, ScimError> {
        let kept: HashMap<String, String> = query
            .iter()
            .filter(|(k, _)| {
                k.eq_ignore_ascii_case("attributes") || k.eq_ignore_ascii_case("excludedAttributes")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Without a filter the dialect is never used.
        ListRequest::from_query(&kept, resource, sql::Dialect::Sqlite)
    }

    pub fn from_search(
        body: &Value,
        resource: Resource,
        dialect: sql::Dialect,
    ) -> Result<Self, ScimError> {
        const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
        let listed = body["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|v| v.as_str() == Some(SEARCH)));
        if !listed {
            return Err(ScimError::bad(
                "invalidSyntax",
                format!("\"schemas\" must list {SEARCH}"),
            ));
        }
        let text = |name: &str| body.get(name).and_then(Value::as_str);
        let number = |name: &str| -> Result<Option<i64>, ScimError> {
            match body.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                    ScimError::bad("invalidValue", format!("{name} must be an integer"))
                }),
            }
        };
        let names = |name: &str| -> Vec<String> {
            match body.get(name) {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                Some(Value::String(s)) => split_list(s),
                _ => Vec::new(),
            }
        };
        ListRequest::build(
            text("filter"),
            text("sortBy"),
            text("sortOrder"),
            number("startIndex")?,
            number("count")?,
            names("attributes"),
            names("excludedAttributes"),
            resource,
            dialect,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        filter: Option<&str>,
        sort_by: Option<&str>,
        sort_order: Option<&str>,
        start_index: Option<i64>,
        count: Option<i64>,
        attributes: Vec<String>,
        excluded: Vec<String>,
        resource: Resource,
        dialect: sql::Dialect,
    ) -> Result<Self, ScimError> {
        let filter = match filter.map(str::trim).filter(|f| !f.is_empty()) {
            None => None,
            Some(text) => {
                let tree = filter::parse(text)
                    .map_err(|e| ScimError::bad("invalidFilter", format!("{text:?}: {e}")))?;
                Some(
                    sql::compile(&tree, resource, dialect, "r")
                        .map_err(|e| ScimError::bad("invalidFilter", e.0))?,
                )
            }
        };
        let sort_column = match sort_by.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(name) => Some(sql::sort_column(resource, name).ok_or_else(|| {
                ScimError::bad("invalidValue", format!("cannot sort by {name:?}"))
            })?),
        };
        let descending = match sort_order.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("ascending") => false,
            Some("descending") => true,
            Some(other) => {
                return Err(ScimError::bad(
                    "invalidValue",
                    format!("sortOrder must be ascending or descending, not {other:?}"),
                ))
            }
        };
        let paths = |names: Vec<String>| -> Result<Vec<AttrPath>, ScimError> {
            names
                .iter()
                .map(|n| {
                    AttrPath::parse(n.trim()).ok_or_else(|| {
                        ScimError::bad("invalidValue", format!("{n:?} is not an attribute"))
                    })
                })
                .collect()
        };
        Ok(ListRequest {
            filter,
            sort_column,
            descending,
            // RFC 7644 §3.4.2.4: below 1 is read as 1, a negative count as 0.
            start_index: start_index.unwrap_or(1).max(1),
            count: count.unwrap_or(DEFAULT_PAGE).clamp(0, MAX_PAGE),
            attributes: paths(attributes)?,
            excluded: paths(excluded)?,
        })
    }

    pub fn store_query(&self) -> store::scim::ListQuery<'_> {
        store::scim::ListQuery {
            filter: self.filter.as_ref(),
            sort_column: self.sort_column,
            descending: self.descending,
            offset: self.start_index - 1,
            limit: self.count,
        }
    }

    /// Whether a response will carry the attribute `name` (to skip loading it).
    pub fn returns(&self, name: &str) -> bool {
        wants(&self.attributes, &self.excluded, name)
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn wants(attributes: &[AttrPath], excluded: &[AttrPath], name: &str) -> bool {
    if !attributes.is_empty() {
        return attributes.iter().any(|a| a.name.eq_ignore_ascii_case(name));
    }
    !excluded
        .iter()
        .any(|a| a.sub.is_none() && a.name.eq_ignore_ascii_case(name))
}

/// Applies `attributes` / `excludedAttributes` (RFC 7644 §3.9). `id`, `schemas` and
/// `meta` are always returned.
pub fn project(resource: Value, attributes: &[AttrPath], excluded: &[AttrPath]) -> Value {
    let Value::Object(mut object) = resource else {
        return resource;
    };
    let always = |k: &str| {
        ["id", "schemas", "meta"]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(k))
    };
    if !attributes.is_empty() {
        let mut kept = Map::new();
        for (key, value) in object {
            if always(&key) {
                kept.insert(key, value);
                continue;
            }
            if key.contains(':') {
                // An extension: keep the listed attributes of it.
                let picked: Map<String, Value> = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| {
                        attributes.iter().any(|a| {
                            a.uri
                                .as_deref()
                                .is_some_and(|u| u.eq_ignore_ascii_case(&key))
                                && a.name.eq_ignore_ascii_case(k)
                        })
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let whole = attributes.iter().any(|a| {
                    format!("{}:{}", a.uri.as_deref().unwrap_or(""), a.name)
                        .eq_ignore_ascii_case(&key)
                });
                if whole {
                    kept.insert(key, value);
                } else if !picked.is_empty() {
                    kept.insert(key, Value::Object(picked));
                }
                continue;
            }
            let listed: Vec<&AttrPath> = attributes
                .iter()
                .filter(|a| a.uri.as_deref().is_none_or(|u| !u.contains("extension")))
                .filter(|a| a.name.eq_ignore_ascii_case(&key))
                .collect();
            if listed.is_empty() {
                continue;
            }
            if listed.iter().any(|a| a.sub.is_none()) {
                kept.insert(key, value);
            } else if let Value::Object(sub) = value {
                let picked: Map<String, Value> = sub
                    .into_iter()
                    .filter(|(k, _)| {
                        listed
                            .iter()
                            .any(|a| a.sub.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(k)))
                    })
                    .collect();
                kept.insert(key, Value::Object(picked));
            } else {
                kept.insert(key, value);
            }
        }
        return Value::Object(kept);
    }
    for path in excluded {
        let key = object
            .keys()
            .find(|k| k.eq_ignore_ascii_case(&path.name))
            .cloned();
        if let Some(key) = key.filter(|k| !always(k)) {
            match (&path.sub, object.get_mut(&key)) {
                (None, _) => {
                    object.remove(&key);
                }
                (Some(sub), Some(Value::Object(inner))) => {
                    let sub_key = inner.keys().find(|k| k.eq_ignore_ascii_case(sub)).cloned();
                    if let Some(sub_key) = sub_key {
                        inner.remove(&sub_key);
                    }
                }
                _ => {}
            }
        }
    }
    Value::Object(object)
}

/// RFC 7644 §3.4.2: a ListResponse, also for zero results.
pub fn list_response(total: i64, start_index: i64, resources: Vec<Value>) -> Response {
    scim_json(
        StatusCode::OK,
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": total,
            "startIndex": start_index,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    )
}
