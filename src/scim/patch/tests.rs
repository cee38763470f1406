use serde_json::json;

use super::*;
use crate::scim::filter::as_bool;

fn request(operations: Value) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": operations})
}

fn paths(ops: &[Operation]) -> Vec<String> {
    ops.iter()
        .map(|o| {
            let p = o.path.as_ref().unwrap();
            let mut s = p.attr.to_string();
            if let Some(f) = &p.filter {
                s.push_str(&format!("[{f}]"));
            }
            if let Some(sub) = &p.sub {
                s.push_str(&format!(".{sub}"));
            }
            s
        })
        .collect()
}

#[test]
fn rfc_7644_examples() {
    let ops = parse_request(&request(json!([
        {"op": "add", "path": "members", "value": [{"display": "Babs Jensen", "$ref": "https://example.com/v2/Users/2819c223", "value": "2819c223"}]},
        {"op": "remove", "path": "members[value eq \"2819c223-7f76-453a-919d-413861904646\"]"},
        {"op": "remove", "path": "emails[type eq \"work\" and value ew \"example.com\"]"},
        {"op": "replace", "path": "addresses[type eq \"work\"].streetAddress", "value": "1111 Broadway Ave"},
        {"op": "remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}
    ])))
    .unwrap();
    assert_eq!(
        ops.iter().map(|o| o.op).collect::<Vec<_>>(),
        [Op::Add, Op::Remove, Op::Remove, Op::Replace, Op::Remove]
    );
    assert_eq!(
        paths(&ops),
        [
            "members",
            "members[value eq \"2819c223-7f76-453a-919d-413861904646\"]",
            "emails[(type eq \"work\" and value ew \"example.com\")]",
            "addresses[type eq \"work\"].streetAddress",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        ]
    );
    assert_eq!(
        member_ids(ops[0].value.as_ref().unwrap()).unwrap(),
        ["2819c223"]
    );
}

#[test]
fn entra_shapes() {
    // Capitalised ops and a string boolean (no aadOptscim062020 flag).
    let ops = parse_request(&request(
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
    ))
    .unwrap();
    assert_eq!(ops[0].op, Op::Replace);
    assert_eq!(as_bool(ops[0].value.as_ref().unwrap()), Some(false));
    assert_eq!(as_bool(&json!("True")), Some(true));
    assert_eq!(as_bool(&json!(true)), Some(true));
    assert_eq!(as_bool(&json!("yes")), None);

    // Removing one member: a remove WITH a value, which must remove only that member.
    let ops = parse_request(&request(
        json!([{"op": "Remove", "path": "members", "value": [{"value": "u-1"}]}]),
    ))
    .unwrap();
    assert_eq!(ops[0].op, Op::Remove);
    assert_eq!(member_ids(ops[0].value.as_ref().unwrap()).unwrap(), ["u-1"]);

    // With the flag: a path-less replace with dotted keys and extension URNs.
    let ops = parse_request(&request(json!([{"op": "replace", "value": {
        "name.givenName": "Ann",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D",
        "active": false
    }}])))
    .unwrap();
    let mut got = paths(&ops);
    got.sort();
    assert_eq!(
        got,
        [
            "active",
            "name.givenName",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
        ]
    );
    assert!(ops.iter().all(|o| o.op == Op::Replace));
}

#[test]
fn okta_shapes() {
    // Member changes by value filter, and "push now" on an empty group.
    let ops = parse_request(&request(json!([
        {"op": "remove", "path": "members[value eq \"00u1\"]"},
        {"op": "add", "path": "members", "value": [{"value": "00u2", "display": "b@acme.com"}]},
        {"op": "replace", "path": "members", "value": []}
    ])))
    .unwrap();
    assert_eq!(
        member_ids(ops[2].value.as_ref().unwrap()).unwrap(),
        Vec::<String>::new()
    );
    // Right after creating a group: a path-less replace of {id, displayName}.
    let ops = parse_request(&request(
        json!([{"op": "replace", "value": {"id": "g-1", "displayName": "Engineering"}}]),
    ))
    .unwrap();
    let mut got = paths(&ops);
    got.sort();
    assert_eq!(got, ["displayName", "id"]);
    // OIN apps deactivate with a path-less replace of active.
    let ops = parse_request(&request(
        json!([{"op": "replace", "value": {"active": false}}]),
    ))
    .unwrap();
    assert_eq!(paths(&ops), ["active"]);
    // An extension given as a nested object expands to its attributes.
    let ops = parse_request(&request(json!([{"op": "add", "value": {
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "42", "manager": {"value": "00u9"}}
    }}])))
    .unwrap();
    let mut got = paths(&ops);
    got.sort();
    assert_eq!(
        got,
        [
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        ]
    );
}

#[test]
fn bad_requests_get_their_scim_type() {
    let cases = [
        (json!({"Operations": []}), "invalidSyntax"),
        (
            json!({"schemas": ["urn:other"], "Operations": []}),
            "invalidSyntax",
        ),
        (request(json!({"op": "add"})), "invalidSyntax"),
        (
            request(json!([{"op": "move", "path": "a", "value": 1}])),
            "invalidSyntax",
        ),
        (request(json!([{"op": "remove"}])), "noTarget"),
        (
            request(json!([{"op": "add", "path": "title"}])),
            "invalidValue",
        ),
        (
            request(json!([{"op": "replace", "value": "x"}])),
            "invalidValue",
        ),
        (
            request(json!([{"op": "add", "path": "emails[type eq"}])),
            "invalidPath",
        ),
        (
            request(json!([{"op": "add", "path": "emails[type eq \"w\"]x", "value": 1}])),
            "invalidPath",
        ),
        (
            request(json!([{"op": "add", "path": "name.givenName[a eq 1]", "value": 1}])),
            "invalidPath",
        ),
        (
            request(json!([{"op": "add", "path": 7, "value": 1}])),
            "invalidPath",
        ),
        (
            request(
                json!([{"op": "add", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": "x"}}]),
            ),
            "invalidValue",
        ),
    ];
    for (body, scim_type) in cases {
        let err = parse_request(&body).expect_err(&body.to_string());
        assert_eq!(err.scim_type, scim_type, "{body}: {err}");
    }
    let many: Vec<Value> = (0..=MAX_OPERATIONS)
        .map(|_| json!({"op": "remove", "path": "title"}))
        .collect();
    assert_eq!(
        parse_request(&request(Value::Array(many)))
            .unwrap_err()
            .scim_type,
        "tooMany"
    );
    assert!(member_ids(&json!([{"display": "no value"}])).is_err());
    // The lower-case spelling of "Operations" is accepted.
    assert!(parse_request(&json!({"schemas": [PATCH_SCHEMA], "operations": []})).is_ok());
}
