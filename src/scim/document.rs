//! PATCH operations applied to a resource held as a JSON document.
//!
//! A User is patched as a whole document and then validated again exactly as a PUT would be,
//! so a PATCH can never store what a PUT would refuse, and a failed operation leaves
//! nothing changed (the document is a copy until the transaction writes it).

use serde_json::{Map, Value};

use super::{
    filter::{element_matches, CompareOp, Filter, Value as FilterValue},
    patch::{Op, Operation, PatchError, Path},
};

fn refuse(scim_type: &'static str, detail: impl Into<String>) -> PatchError {
    PatchError {
        scim_type,
        detail: detail.into(),
    }
}

/// The key of `object` equal to `name` ignoring case (attribute names are
/// case-insensitive), or `name` itself when there is none yet.
fn key_of(object: &Map<String, Value>, name: &str) -> String {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

/// The object an operation's attribute lives in: the document for core attributes, the
/// extension's object for `urn:…:enterprise:2.0:User:department`.
fn container<'a>(
    document: &'a mut Map<String, Value>,
    path: &Path,
    core_schema: &str,
) -> Result<&'a mut Map<String, Value>, PatchError> {
    match &path.attr.uri {
        None => Ok(document),
        Some(uri) if uri.eq_ignore_ascii_case(core_schema) => Ok(document),
        Some(uri) => {
            let key = key_of(document, uri);
            let slot = document
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            if slot.is_null() {
                *slot = Value::Object(Map::new());
            }
            slot.as_object_mut()
                .ok_or_else(|| refuse("invalidPath", format!("{uri} is not an object")))
        }
    }
}

/// Applies `operations` in order to `document`.
pub fn apply(
    document: &mut Map<String, Value>,
    operations: &[Operation],
    core_schema: &str,
) -> Result<(), PatchError> {
    for operation in operations {
        let path = operation
            .path
            .as_ref()
            .ok_or_else(|| refuse("noTarget", "an operation without a path"))?;
        // A whole extension (`urn:…:enterprise:2.0:User`): parsed as attribute `User` of
        // URI `urn:…:enterprise:2.0`, but it names the extension's object itself.
        if let (Some(uri), None, None) = (&path.attr.uri, &path.attr.sub, &path.filter) {
            if path.attr.name.starts_with(|c: char| c.is_ascii_uppercase())
                && !uri.eq_ignore_ascii_case(core_schema)
            {
                let full = format!("{uri}:{}", path.attr.name);
                let key = key_of(document, &full);
                apply_at(document, &key, operation.op, operation.value.as_ref())?;
                continue;
            }
        }
        let object = container(document, path, core_schema)?;
        let key = key_of(object, &path.attr.name);
        match (&path.filter, &path.attr.sub) {
            (None, None) => apply_at(object, &key, operation.op, operation.value.as_ref())?,
            (None, Some(sub)) => {
                let parent = object
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if parent.is_null() {
                    *parent = Value::Object(Map::new());
                }
                let parent = parent.as_object_mut().ok_or_else(|| {
                    refuse(
                        "invalidPath",
                        format!("{key}.{sub}: {key} has no sub-attributes; use a value filter"),
                    )
                })?;
                let sub_key = key_of(parent, sub);
                apply_at(parent, &sub_key, operation.op, operation.value.as_ref())?;
            }
            (Some(filter), _) => {
                apply_filtered(object, &key, filter, path.sub.as_deref(), operation)?
            }
        }
    }
    Ok(())
}

fn apply_at(
    object: &mut Map<String, Value>,
    key: &str,
    op: Op,
    value: Option<&Value>,
) -> Result<(), PatchError> {
    match op {
        Op::Remove => match (object.get_mut(key), value) {
            // Entra removes some items of a multi-valued attribute this way: only those go.
            (Some(Value::Array(items)), Some(listed)) => {
                let listed: Vec<&Value> = match listed {
                    Value::Array(values) => values.iter().collect(),
                    other => vec![other],
                };
                items.retain(|item| !listed.iter().any(|l| same_item(item, l)));
            }
            _ => {
                object.remove(key);
            }
        },
        Op::Add | Op::Replace => {
            let value = value
                .cloned()
                .ok_or_else(|| refuse("invalidValue", format!("{key}: a value is needed")))?;
            match (op, object.get_mut(key), value) {
                // Add to a multi-valued attribute appends what is not there yet.
                (Op::Add, Some(Value::Array(items)), new) => {
                    let new = match new {
                        Value::Array(values) => values,
                        other => vec![other],
                    };
                    for item in new {
                        if !items.iter().any(|i| same_item(i, &item)) {
                            items.push(item);
                        }
                    }
                }
                // A complex attribute takes the given sub-attributes and keeps the others.
                (_, Some(Value::Object(existing)), Value::Object(new)) => {
                    for (k, v) in new {
                        let k = key_of(existing, &k);
                        existing.insert(k, v);
                    }
                }
                (_, _, new) => {
                    object.insert(key.to_string(), new);
                }
            }
        }
    }
    Ok(())
}

/// Two elements of a multi-valued attribute are the same when their `value`s are; plain
/// values when equal.
fn same_item(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn apply_filtered(
    object: &mut Map<String, Value>,
    key: &str,
    filter: &Filter,
    sub: Option<&str>,
    operation: &Operation,
) -> Result<(), PatchError> {
    let slot = object
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if slot.is_null() {
        *slot = Value::Array(Vec::new());
    }
    let items = slot
        .as_array_mut()
        .ok_or_else(|| refuse("invalidPath", format!("{key} is not multi-valued")))?;
    let matched: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| element_matches(filter, item, false))
        .map(|(i, _)| i)
        .collect();
    match (operation.op, sub) {
        (Op::Remove, None) => {
            let mut index = 0;
            items.retain(|_| {
                let keep = !matched.contains(&index);
                index += 1;
                keep
            });
        }
        (Op::Remove, Some(sub)) => {
            for i in matched {
                if let Some(element) = items[i].as_object_mut() {
                    let k = key_of(element, sub);
                    element.remove(&k);
                }
            }
        }
        (Op::Add | Op::Replace, _) => {
            let value = operation
                .value
                .clone()
                .ok_or_else(|| refuse("invalidValue", format!("{key}: a value is needed")))?;
            if matched.is_empty() {
                // `emails[type eq "work"].value` on a user without a work email: Entra
                // expects the element to be made, as the filter describes it.
                let Some(seed) = seed_element(filter) else {
                    return Err(refuse(
                        "noTarget",
                        format!("no element of {key} matches the filter"),
                    ));
                };
                let mut element = seed;
                match (sub, value) {
                    (Some(sub), value) => {
                        element.insert(sub.to_string(), value);
                    }
                    (None, Value::Object(fields)) => element.extend(fields),
                    (None, _) => {
                        return Err(refuse(
                            "invalidValue",
                            format!("{key}[…] takes an object of sub-attributes"),
                        ))
                    }
                }
                items.push(Value::Object(element));
                return Ok(());
            }
            for i in matched {
                let element = items[i]
                    .as_object_mut()
                    .ok_or_else(|| refuse("invalidPath", format!("{key} does not hold objects")))?;
                match (sub, &value) {
                    (Some(sub), value) => {
                        let k = key_of(element, sub);
                        element.insert(k, value.clone());
                    }
                    (None, Value::Object(fields)) => {
                        if operation.op == Op::Replace {
                            element.clear();
                        }
                        for (k, v) in fields {
                            let k = key_of(element, k);
                            element.insert(k, v.clone());
                        }
                    }
                    (None, _) => {
                        return Err(refuse(
                            "invalidValue",
                            format!("{key}[…] takes an object of sub-attributes"),
                        ))
                    }
                }
            }
        }
    }
    Ok(())
}

/// The element a filter of `a eq "x"` (and `and`s of them) describes.
fn seed_element(filter: &Filter) -> Option<Map<String, Value>> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if path.sub.is_none() => {
            let value = match value {
                FilterValue::String(s) => Value::String(s.clone()),
                FilterValue::Bool(b) => Value::Bool(*b),
                FilterValue::Number(n) => Value::Number(n.clone()),
                FilterValue::Null => return None,
            };
            let mut element = Map::new();
            element.insert(path.name.clone(), value);
            Some(element)
        }
        Filter::And(a, b) => {
            let mut element = seed_element(a)?;
            element.extend(seed_element(b)?);
            Some(element)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{scim::patch::parse_request, store::scim_query::USER_SCHEMA};

    fn patched(document: Value, operations: Value) -> Result<Value, PatchError> {
        let mut document = document.as_object().unwrap().clone();
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": operations,
        });
        apply(&mut document, &parse_request(&body)?, USER_SCHEMA)?;
        Ok(Value::Object(document))
    }

    #[test]
    fn entra_dotted_keys_and_extension_urns_land_in_place() {
        let out = patched(
            json!({"userName": "a", "name": {"givenName": "A", "familyName": "B"}}),
            json!([{"op": "Replace", "value": {
                "name.givenName": "Alice",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Sales",
            }}]),
        )
        .unwrap();
        assert_eq!(
            out["name"],
            json!({"givenName": "Alice", "familyName": "B"})
        );
        assert_eq!(
            out["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"],
            "Sales"
        );
    }

    #[test]
    fn value_filter_paths_change_the_matching_element_or_make_it() {
        let doc = json!({"emails": [
            {"type": "work", "value": "a@x.test", "primary": true},
            {"type": "home", "value": "a@home.test"},
        ]});
        let out = patched(
            doc.clone(),
            json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@x.test"}]),
        )
        .unwrap();
        assert_eq!(out["emails"][0]["value"], "b@x.test");
        assert_eq!(out["emails"][1]["value"], "a@home.test");

        let out = patched(
            json!({"userName": "a"}),
            json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "c@x.test"}]),
        )
        .unwrap();
        assert_eq!(
            out["emails"],
            json!([{"type": "work", "value": "c@x.test"}])
        );

        let out = patched(
            doc,
            json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
        )
        .unwrap();
        assert_eq!(out["emails"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn remove_with_a_value_list_removes_only_those_items() {
        let out = patched(
            json!({"roles": [{"value": "a"}, {"value": "b"}, {"value": "c"}]}),
            json!([{"op": "Remove", "path": "roles", "value": [{"value": "b"}]}]),
        )
        .unwrap();
        assert_eq!(out["roles"], json!([{"value": "a"}, {"value": "c"}]));
    }

    #[test]
    fn add_appends_to_multi_valued_and_merges_complex() {
        let out = patched(
            json!({"phoneNumbers": [{"value": "1"}], "name": {"givenName": "A"}}),
            json!([
                {"op": "add", "path": "phoneNumbers", "value": [{"value": "1"}, {"value": "2"}]},
                {"op": "add", "path": "name", "value": {"familyName": "B"}},
            ]),
        )
        .unwrap();
        assert_eq!(out["phoneNumbers"], json!([{"value": "1"}, {"value": "2"}]));
        assert_eq!(out["name"], json!({"givenName": "A", "familyName": "B"}));
    }

    #[test]
    fn a_whole_extension_can_be_removed_or_replaced() {
        let urn = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let out = patched(
            json!({"userName": "a", urn: {"department": "Sales"}}),
            json!([{"op": "remove", "path": urn}]),
        )
        .unwrap();
        assert_eq!(out, json!({"userName": "a"}));
        let out = patched(
            json!({"userName": "a"}),
            json!([{"op": "add", "path": urn, "value": {"division": "EMEA"}}]),
        )
        .unwrap();
        assert_eq!(out[urn], json!({"division": "EMEA"}));
    }

    #[test]
    fn names_are_matched_case_insensitively() {
        let out = patched(
            json!({"displayName": "Old"}),
            json!([{"op": "replace", "path": "displayname", "value": "New"}]),
        )
        .unwrap();
        assert_eq!(out, json!({"displayName": "New"}));
    }

    #[test]
    fn a_filter_on_a_single_valued_attribute_is_an_invalid_path() {
        let err = patched(
            json!({"displayName": "x"}),
            json!([{"op": "replace", "path": "displayName[value eq \"x\"]", "value": "y"}]),
        )
        .unwrap_err();
        assert_eq!(err.scim_type, "invalidPath");
    }
}
