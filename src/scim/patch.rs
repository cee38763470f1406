//! SCIM PATCH requests (RFC 7644 §3.5.2) normalised into typed operations.
//!
//! Identity providers send PATCH in more shapes than the RFC shows; this is where they all
//! become one list of [`Operation`]s, so the resource code applies one form:
//!
//! - ops in any case (`Replace`, Entra);
//! - path-less `add`/`replace` whose value holds several attributes, with dotted keys
//!   (`name.givenName`) or schema URNs (Entra with `aadOptscim062020`, Okta's `{id,
//!   displayName}` after creating a group): one operation per key;
//! - `remove` of members with a value list (Entra without the flag): kept as a remove *with*
//!   a value, which removes only the listed members, never all of them;
//! - value-filter paths: `members[value eq "…"]`, `emails[type eq "work"].value`.
//!
//! Booleans sent as strings ("True", Entra) are read by [`filter::as_bool`].

use serde_json::Value;

use super::filter::{self, AttrPath, Filter};

pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// More operations in one request are refused with `tooMany`.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Replace,
    Remove,
}

/// `attr`, `attr[filter]` or `attr[filter].sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// A sub-attribute after a value filter (`emails[type eq "work"].value`).
    pub sub: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: Op,
    pub path: Option<Path>,
    pub value: Option<Value>,
}

/// A refusal, with the `scimType` it is reported under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchError {
    /// `invalidSyntax`, `invalidPath`, `invalidValue`, `noTarget` or `tooMany`.
    pub scim_type: &'static str,
    pub detail: String,
}

fn refuse(scim_type: &'static str, detail: impl Into<String>) -> PatchError {
    PatchError {
        scim_type,
        detail: detail.into(),
    }
}

impl std::fmt::Display for PatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.scim_type, self.detail)
    }
}

/// Parses a PATCH path.
pub fn parse_path(text: &str) -> Result<Path, PatchError> {
    let bad = |why: &str| refuse("invalidPath", format!("path {text:?}: {why}"));
    let text = text.trim();
    let Some(open) = text.find('[') else {
        let attr = AttrPath::parse(text).ok_or_else(|| bad("not an attribute path"))?;
        return Ok(Path {
            attr,
            filter: None,
            sub: None,
        });
    };
    let close = text.rfind(']').ok_or_else(|| bad("\"[\" without \"]\""))?;
    if close < open {
        return Err(bad("\"]\" before \"[\""));
    }
    let attr =
        AttrPath::parse(&text[..open]).ok_or_else(|| bad("not an attribute path before \"[\""))?;
    if attr.sub.is_some() {
        return Err(bad(
            "a value filter applies to an attribute, not a sub-attribute",
        ));
    }
    let inner = filter::parse(&text[open + 1..close]).map_err(|e| bad(&e.to_string()))?;
    if contains_value_path(&inner) {
        return Err(bad("value filters cannot nest"));
    }
    let sub = match &text[close + 1..] {
        "" => None,
        rest => {
            let name = rest
                .strip_prefix('.')
                .ok_or_else(|| bad("only \".subAttribute\" may follow \"]\""))?;
            AttrPath::parse(name)
                .filter(|p| p.uri.is_none() && p.sub.is_none())
                .ok_or_else(|| bad("not a sub-attribute after \"]\""))?;
            Some(name.to_string())
        }
    };
    Ok(Path {
        attr,
        filter: Some(inner),
        sub,
    })
}

fn contains_value_path(filter: &Filter) -> bool {
    match filter {
        Filter::ValuePath { .. } => true,
        Filter::And(a, b) | Filter::Or(a, b) => contains_value_path(a) || contains_value_path(b),
        Filter::Not(inner) => contains_value_path(inner),
        Filter::Compare { .. } | Filter::Present(_) => false,
    }
}

/// Turns a PATCH request body into operations, in order.
pub fn parse_request(body: &Value) -> Result<Vec<Operation>, PatchError> {
    let object = body
        .as_object()
        .ok_or_else(|| refuse("invalidSyntax", "a PATCH body is a JSON object"))?;
    let schemas_ok = object
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|v| v.as_str() == Some(PATCH_SCHEMA)));
    if !schemas_ok {
        return Err(refuse(
            "invalidSyntax",
            format!("\"schemas\" must list {PATCH_SCHEMA}"),
        ));
    }
    // The RFC spells it "Operations"; some clients write "operations".
    let list = object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("operations"))
        .and_then(|(_, v)| v.as_array())
        .ok_or_else(|| refuse("invalidSyntax", "\"Operations\" must be an array"))?;
    if list.len() > MAX_OPERATIONS {
        return Err(refuse(
            "tooMany",
            format!(
                "at most {MAX_OPERATIONS} operations per request, got {}",
                list.len()
            ),
        ));
    }
    let mut operations = Vec::with_capacity(list.len());
    for (index, raw) in list.iter().enumerate() {
        let at = |why: String| format!("operation {}: {why}", index + 1);
        let raw = raw
            .as_object()
            .ok_or_else(|| refuse("invalidSyntax", at("not an object".into())))?;
        let op = match raw
            .get("op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("add") => Op::Add,
            Some("replace") => Op::Replace,
            Some("remove") => Op::Remove,
            other => {
                return Err(refuse(
                    "invalidSyntax",
                    at(format!(
                        "\"op\" must be add, replace or remove, not {other:?}"
                    )),
                ))
            }
        };
        let path = match raw.get("path") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if p.trim().is_empty() => None,
            Some(Value::String(p)) => {
                Some(parse_path(p).map_err(|e| refuse(e.scim_type, at(e.detail)))?)
            }
            Some(_) => {
                return Err(refuse(
                    "invalidPath",
                    at("\"path\" must be a string".into()),
                ))
            }
        };
        let value = raw.get("value").cloned();
        match (op, path, value) {
            (Op::Remove, None, _) => {
                return Err(refuse("noTarget", at("remove needs a \"path\"".into())))
            }
            (Op::Add | Op::Replace, _, None) => {
                return Err(refuse(
                    "invalidValue",
                    at("add and replace need a \"value\"".into()),
                ))
            }
            (op, Some(path), value) => operations.push(Operation {
                op,
                path: Some(path),
                value,
            }),
            (op, None, Some(Value::Object(attributes))) => {
                // One operation per attribute, keys being paths themselves.
                for (key, value) in attributes {
                    expand(op, &key, &value, &mut operations)
                        .map_err(|e| refuse(e.scim_type, at(e.detail)))?;
                }
            }
            (_, None, Some(_)) => {
                return Err(refuse(
                    "invalidValue",
                    at("without a \"path\", the value must be an object of attributes".into()),
                ))
            }
        }
    }
    Ok(operations)
}

/// A key of a path-less value: a schema URN whose object holds that extension's attributes,
/// or a path (dotted or URN-prefixed) on its own.
fn expand(op: Op, key: &str, value: &Value, out: &mut Vec<Operation>) -> Result<(), PatchError> {
    if is_schema_urn(key) {
        let Value::Object(attributes) = value else {
            return Err(refuse(
                "invalidValue",
                format!("{key:?} must hold an object of its attributes"),
            ));
        };
        for (name, value) in attributes {
            expand(op, &format!("{key}:{name}"), value, out)?;
        }
        return Ok(());
    }
    out.push(Operation {
        op,
        path: Some(parse_path(key)?),
        value: Some(value.clone()),
    });
    Ok(())
}

/// Whether a key names a schema (`urn:…:enterprise:2.0:User`) rather than an attribute in
/// one (`urn:…:User:department`): schema URNs end in a resource type, which is capitalised,
/// attribute names are not.
fn is_schema_urn(key: &str) -> bool {
    key.len() > 4
        && key[..4].eq_ignore_ascii_case("urn:")
        && key
            .rsplit(':')
            .next()
            .is_some_and(|last| last.starts_with(|c: char| c.is_ascii_uppercase()))
}

/// The `value`s of a member list: `[{"value": "id"}, …]` or one `{"value": "id"}`.
pub fn member_ids(value: &Value) -> Result<Vec<String>, PatchError> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![value],
        _ => {
            return Err(refuse(
                "invalidValue",
                "members are given as [{\"value\": \"id\"}, …]",
            ))
        }
    };
    items
        .into_iter()
        .map(|item| {
            item.get("value")
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| refuse("invalidValue", "every member needs a string \"value\""))
        })
        .collect()
}

#[cfg(test)]
mod tests;
