//! `/Bulk` (RFC 7644 §3.7): several operations in one request, with `bulkId` references
//! between them (a User created and added to a Group in one go).
//!
//! Each operation is sent through the same SCIM router as a request of its own, with the
//! caller's token, so it is checked, applied and audited exactly as it would be alone, in a
//! transaction of its own. Operations run in order; one that names a `bulkId` not created
//! yet waits for a later pass, so forward references work and cycles are reported.

use std::collections::HashMap;

use axum::{
    body::Body,
    extract::{Path, State},
    http::{header, HeaderMap, Method, Request, StatusCode},
    response::Response,
};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{
    client::ScimClient,
    error::{scim_json, ScimError, CONTENT_TYPE},
    protocol::{max_payload, ScimBody},
};
use crate::state::AppState;

pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
/// Advertised in `/ServiceProviderConfig`; more operations are refused with 413.
pub const MAX_OPERATIONS: usize = 1000;

struct Pending {
    index: usize,
    method: Method,
    bulk_id: Option<String>,
    path: String,
    data: Option<Value>,
    version: Option<String>,
}

/// An operation that cannot run as sent: its own `400` result, like any failed operation.
struct Malformed {
    index: usize,
    method: String,
    bulk_id: Option<String>,
    detail: String,
}

impl Malformed {
    fn result(&self) -> Value {
        let mut result = json!({
            "method": self.method,
            "status": "400",
            "response": op_error(StatusCode::BAD_REQUEST, Some("invalidSyntax"), self.detail.clone()),
        });
        if let Some(bulk_id) = &self.bulk_id {
            result["bulkId"] = bulk_id.clone().into();
        }
        result
    }
}

/// The operations of a request, in order: each runnable or malformed.
type Operations = Vec<Result<Pending, Malformed>>;

/// Replaces `bulkId:x` strings with the id `x` was given; `Err(x)` names one not known yet.
fn resolve(value: &Value, ids: &HashMap<String, String>) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => match s.strip_prefix("bulkId:") {
            Some(id) => Value::String(ids.get(id).cloned().ok_or_else(|| id.to_string())?),
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, ids))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), resolve(v, ids)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn resolve_path(path: &str, ids: &HashMap<String, String>) -> Result<String, String> {
    match path.split_once("bulkId:") {
        Some((head, id)) => Ok(format!(
            "{head}{}",
            ids.get(id).ok_or_else(|| id.to_string())?
        )),
        None => Ok(path.to_string()),
    }
}

fn op_error(status: StatusCode, scim_type: Option<&str>, detail: String) -> Value {
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": status.as_u16().to_string(),
        "detail": detail,
    });
    if let Some(t) = scim_type {
        body["scimType"] = t.into();
    }
    body
}

/// Checks the request as a whole (what is wrong there changes nothing and is a `400` for
/// the request), then each operation on its own (what is wrong there is that operation's
/// result). `bulkId`s must be unique: a reference to a repeated one would be ambiguous.
fn parse_operations(body: &Value) -> Result<(Operations, Option<u64>), ScimError> {
    let listed = body["schemas"]
        .as_array()
        .is_some_and(|s| s.iter().any(|v| v.as_str() == Some(BULK_REQUEST)));
    if !listed {
        return Err(ScimError::bad(
            "invalidSyntax",
            format!("\"schemas\" must list {BULK_REQUEST}"),
        ));
    }
    let fail_on_errors = match body.get("failOnErrors") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            ScimError::bad("invalidValue", "failOnErrors must be a positive integer")
        })?),
    };
    let list = body
        .get("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::bad("invalidSyntax", "\"Operations\" must be an array"))?;
    if list.len() > MAX_OPERATIONS {
        return Err(ScimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
            format!(
                "at most {MAX_OPERATIONS} operations per bulk request, got {}",
                list.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for op in list {
        if let Some(bulk_id) = op.get("bulkId").and_then(Value::as_str) {
            if !seen.insert(bulk_id) {
                return Err(ScimError::bad(
                    "invalidValue",
                    format!("bulkId {bulk_id:?} is used by more than one operation"),
                ));
            }
        }
    }
    let mut operations = Vec::with_capacity(list.len());
    for (index, op) in list.iter().enumerate() {
        let bulk_id = op["bulkId"].as_str().map(str::to_string);
        let malformed = |detail: &str| {
            Err(Malformed {
                index,
                method: op["method"].as_str().unwrap_or_default().to_string(),
                bulk_id: bulk_id.clone(),
                detail: format!("operation {}: {detail}", index + 1),
            })
        };
        let method = match op["method"]
            .as_str()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("POST") => Method::POST,
            Some("PUT") => Method::PUT,
            Some("PATCH") => Method::PATCH,
            Some("DELETE") => Method::DELETE,
            _ => {
                operations.push(malformed("method must be POST, PUT, PATCH or DELETE"));
                continue;
            }
        };
        let Some(path) = op["path"].as_str().map(str::to_string) else {
            operations.push(malformed("path is required"));
            continue;
        };
        let resource = path.trim_start_matches('/').split('/').next().unwrap_or("");
        if !matches!(resource, "Users" | "Groups") {
            operations.push(malformed("path must be /Users… or /Groups…"));
            continue;
        }
        if method == Method::POST && bulk_id.is_none() {
            operations.push(malformed("a POST needs a bulkId"));
            continue;
        }
        let data = op.get("data").filter(|d| !d.is_null()).cloned();
        if method != Method::DELETE && data.is_none() {
            operations.push(malformed("data is required"));
            continue;
        }
        operations.push(Ok(Pending {
            index,
            method,
            bulk_id,
            path,
            data,
            version: op["version"].as_str().map(str::to_string),
        }));
    }
    Ok((operations, fail_on_errors))
}

pub async fn bulk(
    State(state): State<AppState>,
    client: ScimClient,
    Path(org): Path<String>,
    headers: HeaderMap,
    ScimBody(body): ScimBody,
) -> Result<Response, ScimError> {
    let (operations, fail_on_errors) = parse_operations(&body)?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .cloned()
        .ok_or_else(|| ScimError::bad("invalidSyntax", "missing Authorization"))?;
    let router = super::router().with_state(state.clone());
    let base = format!(
        "{}/scim/v2/{}",
        state.config.public_base_url.trim_end_matches('/'),
        client.org.slug
    );
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut results: Vec<(usize, Value)> = Vec::new();
    let mut errors = 0u64;
    let total = operations.len();
    let mut stopped = false;
    let mut pending = Vec::with_capacity(total);
    for op in operations {
        match op {
            Ok(op) => pending.push(op),
            Err(malformed) => {
                results.push((malformed.index, malformed.result()));
                errors += 1;
            }
        }
    }
    // Malformed operations count against failOnErrors as failures ahead of the rest.
    if fail_on_errors.is_some_and(|max| errors >= max) {
        stopped = true;
    }
    while !pending.is_empty() && !stopped {
        let mut waiting = Vec::new();
        let mut progressed = false;
        for op in pending {
            if stopped {
                break;
            }
            let resolved = resolve_path(&op.path, &ids).and_then(|path| {
                let data = op.data.as_ref().map(|d| resolve(d, &ids)).transpose()?;
                Ok((path, data))
            });
            let (path, data) = match resolved {
                Ok(x) => x,
                Err(_) => {
                    waiting.push(op);
                    continue;
                }
            };
            progressed = true;
            let mut request = Request::builder()
                .method(op.method.clone())
                .uri(format!("/scim/v2/{org}{path}"))
                .header(header::AUTHORIZATION, authorization.clone())
                .header(header::CONTENT_TYPE, CONTENT_TYPE);
            if let Some(version) = &op.version {
                request = request.header(header::IF_MATCH, version.as_str());
            }
            // A path or version that makes no HTTP request fails this operation alone.
            let request =
                match request.body(Body::from(data.map(|d| d.to_string()).unwrap_or_default())) {
                    Ok(request) => request,
                    Err(err) => {
                        let malformed = Malformed {
                            index: op.index,
                            method: op.method.to_string(),
                            bulk_id: op.bulk_id.clone(),
                            detail: format!("operation {}: {err}", op.index + 1),
                        };
                        results.push((op.index, malformed.result()));
                        errors += 1;
                        if fail_on_errors.is_some_and(|max| errors >= max) {
                            stopped = true;
                        }
                        continue;
                    }
                };
            let response = router
                .clone()
                .oneshot(request)
                .await
                .unwrap_or_else(|never| match never {});
            let status = response.status();
            let etag = response
                .headers()
                .get(header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let bytes = axum::body::to_bytes(response.into_body(), max_payload(&state))
                .await
                .unwrap_or_default();
            let reply: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let mut result = json!({
                "method": op.method.as_str(),
                "status": status.as_u16().to_string(),
            });
            if let Some(bulk_id) = &op.bulk_id {
                result["bulkId"] = bulk_id.clone().into();
            }
            if let Some(etag) = etag {
                result["version"] = etag.into();
            }
            if status.is_success() {
                let location = reply["meta"]["location"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| (op.method != Method::POST).then(|| format!("{base}{path}")));
                if let Some(location) = location {
                    result["location"] = location.into();
                }
                if let (Some(bulk_id), Some(id)) = (&op.bulk_id, reply["id"].as_str()) {
                    ids.insert(bulk_id.clone(), id.to_string());
                }
            } else {
                result["response"] = reply;
                errors += 1;
                if fail_on_errors.is_some_and(|max| errors >= max) {
                    stopped = true;
                }
            }
            results.push((op.index, result));
        }
        if !progressed {
            // What is left names bulkIds no operation creates, or that wait on each other.
            for op in waiting {
                results.push((
                    op.index,
                    json!({
                        "method": op.method.as_str(),
                        "bulkId": op.bulk_id.unwrap_or_default(),
                        "status": "409",
                        "response": op_error(
                            StatusCode::CONFLICT,
                            Some("invalidValue"),
                            "a bulkId this operation refers to was never created (unknown, failed, or circular)".into(),
                        ),
                    }),
                ));
            }
            break;
        }
        pending = waiting;
    }
    debug_assert!(results.len() <= total);
    results.sort_by_key(|(index, _)| *index);
    Ok(scim_json(
        StatusCode::OK,
        json!({
            "schemas": [BULK_RESPONSE],
            "Operations": results.into_iter().map(|(_, r)| r).collect::<Vec<_>>(),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_ids_resolve_anywhere_in_data_and_paths() {
        let ids = HashMap::from([("u1".to_string(), "42".to_string())]);
        let data = json!({"members": [{"type": "User", "value": "bulkId:u1"}], "displayName": "x"});
        assert_eq!(
            resolve(&data, &ids).unwrap(),
            json!({"members": [{"type": "User", "value": "42"}], "displayName": "x"})
        );
        assert_eq!(resolve_path("/Users/bulkId:u1", &ids).unwrap(), "/Users/42");
        assert_eq!(resolve(&json!("bulkId:nope"), &ids).unwrap_err(), "nope");
    }

    #[test]
    fn requests_are_checked_before_anything_runs() {
        let ok = json!({"schemas": [BULK_REQUEST], "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": {}},
        ]});
        assert!(parse_operations(&ok).is_ok());
        for bad in [
            json!({"Operations": []}),
            json!({"schemas": [BULK_REQUEST], "failOnErrors": 0, "Operations": []}),
            json!({"schemas": [BULK_REQUEST], "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "a", "data": {}},
                {"method": "POST", "path": "/Groups", "bulkId": "a", "data": {}},
            ]}),
        ] {
            assert!(parse_operations(&bad).is_err(), "{bad}");
        }
        // A malformed operation is that operation's failure, not the request's.
        for op in [
            json!({"method": "GET", "path": "/Users"}),
            json!({"method": "POST", "path": "/Users", "data": {}}),
            json!({"method": "POST", "path": "/Bulk", "bulkId": "a", "data": {}}),
            json!({"method": "PATCH", "path": "/Users/1"}),
        ] {
            let request = json!({"schemas": [BULK_REQUEST], "Operations": [op.clone()]});
            let (operations, _) = parse_operations(&request).unwrap();
            assert!(operations[0].is_err(), "{op}");
        }
    }
}
