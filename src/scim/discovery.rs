//! `/ResourceTypes` and `/Schemas` (RFC 7643 §6, §7): what rollcall accepts, exactly. The
//! attribute lists are the ones the User and Group parsers accept, so an IdP that reads
//! them never maps an attribute rollcall would refuse.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use serde_json::{json, Value};

use super::{
    client::ScimClient,
    error::{scim_json, ScimError},
    list::list_response,
    protocol::{base_url, max_payload},
};
use crate::{
    state::AppState,
    store::scim_query::{
        ENTERPRISE_SCALARS, ENTERPRISE_SCHEMA, GROUP_SCHEMA, NAME_SUBS, USER_JSON_SCALARS,
        USER_MULTI, USER_SCHEMA,
    },
};

const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";

fn resource_types_list(base: &str) -> Vec<Value> {
    vec![
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "description": "A person's membership of the organization",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": false}],
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")},
        }),
        json!({
            "schemas": [RESOURCE_TYPE_SCHEMA],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "description": "An identity-provider group; group mappings turn it into teams",
            "schema": GROUP_SCHEMA,
            "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group")},
        }),
    ]
}

pub async fn resource_types(State(state): State<AppState>, client: ScimClient) -> Response {
    let list = resource_types_list(&base_url(&state, &client));
    list_response(list.len() as i64, 1, list)
}

pub async fn resource_type(
    State(state): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ScimError> {
    by_id(
        resource_types_list(&base_url(&state, &client)),
        "ResourceType",
        &id,
    )
}

/// The document of `list` whose `id` is `id` (ignoring case), or 404.
fn by_id(list: Vec<Value>, what: &str, id: &str) -> Result<Response, ScimError> {
    list.into_iter()
        .find(|r| r["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(id)))
        .map(|r| scim_json(StatusCode::OK, r))
        .ok_or_else(|| ScimError::not_found(what, id))
}

/// One attribute definition. `flags`: (multiValued, required, caseExact).
fn attr(
    name: &str,
    kind: &str,
    flags: (bool, bool, bool),
    mutability: &str,
    uniqueness: &str,
) -> Value {
    json!({
        "name": name,
        "type": kind,
        "multiValued": flags.0,
        "required": flags.1,
        "caseExact": flags.2,
        "mutability": mutability,
        "returned": if name == "password" { "never" } else { "default" },
        "uniqueness": uniqueness,
    })
}

/// A reference attribute, with what it may point at: scim2-tester (and IdPs) fill
/// `members.value` with a real User's id only when the schema says it refers to Users.
fn reference(name: &str, mutability: &str, types: &[&str]) -> Value {
    let mut a = attr(name, "reference", (false, false, true), mutability, "none");
    a["referenceTypes"] = json!(types);
    a
}

fn string(name: &str) -> Value {
    attr(name, "string", (false, false, false), "readWrite", "none")
}

fn complex(name: &str, multi: bool, subs: Vec<Value>) -> Value {
    let mut a = attr(name, "complex", (multi, false, false), "readWrite", "none");
    a["subAttributes"] = Value::Array(subs);
    a
}

fn multi_valued(name: &str) -> Value {
    complex(
        name,
        true,
        vec![
            string("value"),
            string("display"),
            string("type"),
            attr(
                "primary",
                "boolean",
                (false, false, false),
                "readWrite",
                "none",
            ),
        ],
    )
}

fn user_schema() -> Value {
    let mut attributes = vec![
        attr(
            "userName",
            "string",
            (false, true, false),
            "readWrite",
            "server",
        ),
        complex(
            "name",
            false,
            NAME_SUBS.iter().copied().map(string).collect(),
        ),
    ];
    attributes.push(string("displayName"));
    for &name in USER_JSON_SCALARS {
        attributes.push(if name == "profileUrl" {
            reference(name, "readWrite", &["external"])
        } else {
            string(name)
        });
    }
    attributes.push(attr(
        "active",
        "boolean",
        (false, false, false),
        "readWrite",
        "none",
    ));
    attributes.push(attr(
        "password",
        "string",
        (false, false, false),
        "writeOnly",
        "none",
    ));
    for &name in USER_MULTI.iter().filter(|n| **n != "addresses") {
        attributes.push(multi_valued(name));
    }
    attributes.push(complex(
        "addresses",
        true,
        [
            "formatted",
            "streetAddress",
            "locality",
            "region",
            "postalCode",
            "country",
            "type",
        ]
        .into_iter()
        .map(string)
        .chain([attr(
            "primary",
            "boolean",
            (false, false, false),
            "readWrite",
            "none",
        )])
        .collect(),
    ));
    let mut groups = complex(
        "groups",
        true,
        vec![
            attr("value", "string", (false, false, true), "readOnly", "none"),
            reference("$ref", "readOnly", &["Group"]),
            attr(
                "display",
                "string",
                (false, false, false),
                "readOnly",
                "none",
            ),
            attr("type", "string", (false, false, false), "readOnly", "none"),
        ],
    );
    groups["mutability"] = "readOnly".into();
    attributes.push(groups);
    schema_document(USER_SCHEMA, "User", "User Account", attributes)
}

fn enterprise_schema() -> Value {
    let mut attributes: Vec<Value> = ENTERPRISE_SCALARS.iter().copied().map(string).collect();
    attributes.push(complex(
        "manager",
        false,
        vec![
            string("value"),
            reference("$ref", "readWrite", &["User"]),
            attr(
                "displayName",
                "string",
                (false, false, false),
                "readOnly",
                "none",
            ),
        ],
    ));
    schema_document(
        ENTERPRISE_SCHEMA,
        "EnterpriseUser",
        "Enterprise User",
        attributes,
    )
}

fn group_schema() -> Value {
    let attributes = vec![
        attr(
            "displayName",
            "string",
            (false, true, false),
            "readWrite",
            "server",
        ),
        complex(
            "members",
            true,
            vec![
                attr("value", "string", (false, false, true), "immutable", "none"),
                reference("$ref", "immutable", &["User"]),
                attr(
                    "display",
                    "string",
                    (false, false, false),
                    "readOnly",
                    "none",
                ),
                // Only Users are members here, so the type is the server's to say.
                {
                    let mut t = attr("type", "string", (false, false, false), "readOnly", "none");
                    t["canonicalValues"] = json!(["User"]);
                    t
                },
            ],
        ),
    ];
    schema_document(GROUP_SCHEMA, "Group", "Group", attributes)
}

fn schema_document(id: &str, name: &str, description: &str, attributes: Vec<Value>) -> Value {
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attributes,
    })
}

fn all_schemas(base: &str) -> Vec<Value> {
    [user_schema(), enterprise_schema(), group_schema()]
        .into_iter()
        .map(|mut s| {
            let id = s["id"].as_str().unwrap_or_default().to_string();
            s["meta"] =
                json!({"resourceType": "Schema", "location": format!("{base}/Schemas/{id}")});
            s
        })
        .collect()
}

pub async fn schemas(State(state): State<AppState>, client: ScimClient) -> Response {
    let list = all_schemas(&base_url(&state, &client));
    list_response(list.len() as i64, 1, list)
}

pub async fn schema(
    State(state): State<AppState>,
    client: ScimClient,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, ScimError> {
    by_id(all_schemas(&base_url(&state, &client)), "Schema", &id)
}

/// RFC 7643 §5. It states what this build serves, and nothing more: features flip to
/// `supported: true` as their endpoints land, so an IdP never relies on one that is missing.
pub async fn service_provider_config(
    State(state): State<AppState>,
    client: ScimClient,
) -> Response {
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
            "filter": {"supported": true, "maxResults": super::list::MAX_PAGE},
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
