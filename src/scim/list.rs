//! List requests (query string or `.search` body), projection with `attributes` and
//! `excludedAttributes`, and the ListResponse.

use std::collections::HashMap;

use axum::{http::StatusCode, response::Response};
use serde_json::{json, Map, Value};

use super::{
    error::{scim_json, ScimError},
    filter::{self, AttrPath, Filter},
};
use crate::store::{
    self,
    scim_query::{self, Resource},
};

/// The page size when `count` is absent, and the largest honoured (Okta asks for 100).
pub const DEFAULT_PAGE: i64 = 100;
pub const MAX_PAGE: i64 = 1000;

/// A list request, from the query string or a `.search` body.
pub struct ListRequest {
    pub filter: Option<Filter>,
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
        ListRequest::from_query(&kept, resource)
    }

    pub fn from_search(body: &Value, resource: Resource) -> Result<Self, ScimError> {
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
    ) -> Result<Self, ScimError> {
        let filter = match filter.map(str::trim).filter(|f| !f.is_empty()) {
            None => None,
            Some(text) => {
                let tree = filter::parse(text)
                    .map_err(|e| ScimError::bad("invalidFilter", format!("{text:?}: {e}")))?;
                // Checked against the allow-list now, so the store is handed only
                // filters it can compile.
                scim_query::check(&tree, resource)
                    .map_err(|e| ScimError::bad("invalidFilter", e.0))?;
                Some(tree)
            }
        };
        let sort_column = match sort_by.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(name) => Some(scim_query::sort_column(resource, name).ok_or_else(|| {
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
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
    });
    // Moved in, not through `json!`, which serializes what it is given into a copy: a page
    // of 100 Users was copied whole once more before it was written.
    body["Resources"] = Value::Array(resources);
    scim_json(StatusCode::OK, body)
}
