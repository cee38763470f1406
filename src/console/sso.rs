//! SSO: connections (Okta over SAML, Entra ID over OIDC) with the values to copy into the
//! IdP, verified domains, access grants, group-to-team mappings, and the explain tool.

use askama::Template;
use axum::{
    extract::{Path, RawForm, State},
    http::{HeaderMap, Uri},
    response::Response,
};
use serde_json::{Map, Value};

use super::{done, org_ctx, Chrome, Confirm, Ctx};
use crate::{
    admin,
    browser::{csrf, CheckedForm, CsrfForm},
    connections::{self as settings, oidc, saml},
    provisioning::{self, Decision, ExternalIdentity, IdpGroup},
    state::AppState,
    store::{
        connections::{self, Changes, Connection, Kind},
        domains::{self, Domain},
        grants::{self, Grant, GroupRef, Mapping, Match},
        teams::{self, Team},
    },
};

/// A posted form as name/value pairs, after its CSRF check: several fields repeat (`team`).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn checked(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Option<Fields> {
        let fields = Fields(url::form_urlencoded::parse(body).into_owned().collect());
        csrf::check(state, headers, fields.get("csrf")).then_some(fields)
    }

    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .unwrap_or_default()
    }

    fn opt(&self, name: &str) -> Option<String> {
        Some(self.get(name).to_string()).filter(|v| !v.is_empty())
    }

    fn ids(&self, name: &str) -> Vec<i64> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .filter_map(|(_, v)| v.parse().ok())
            .collect()
    }
}

#[derive(Template)]
#[template(path = "console/sso.html")]
struct Overview {
    c: Chrome,
    connections: Vec<Connection>,
    domains: Vec<Domain>,
}

pub async fn overview(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "sso").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let loaded = async {
        let mut tx = state.store.read().await?;
        let list = connections::list(&mut tx, ctx.org.id).await?;
        let domains = domains::list(&mut tx, ctx.org.id).await?;
        Ok::<_, crate::store::Error>((list, domains))
    }
    .await;
    match loaded {
        Ok((connections, domains)) => ctx.page(|c| Overview {
            connections,
            domains,
            c,
        }),
        Err(err) => crate::browser::internal(err, &ctx.request),
    }
}

/// The settings a new-connection form describes, as the connection settings take them.
fn new_settings(kind: Kind, fields: &Fields) -> Value {
    let mut object = Map::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            object.insert(key.into(), Value::String(value));
        }
    };
    match kind {
        Kind::Saml => {
            put("idp_metadata_url", fields.opt("idp_metadata_url"));
            put("idp_metadata_xml", fields.opt("idp_metadata_xml"));
        }
        Kind::Oidc => {
            put("preset", fields.opt("preset").or(Some("entra".into())));
            put(
                "tenant_id",
                fields.opt("tenant_id").map(|t| t.to_lowercase()),
            );
            put("issuer", fields.opt("issuer"));
            put("client_id", fields.opt("client_id"));
            put("client_secret", fields.opt("client_secret"));
        }
    }
    Value::Object(object)
}

pub async fn create_connection(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "sso").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let Some(fields) = Fields::checked(&state, &headers, &body) else {
        return csrf::refused();
    };
    let kind = match fields.get("kind") {
        "oidc" => Kind::Oidc,
        _ => Kind::Saml,
    };
    let created = async {
        // Metadata is fetched before the transaction: it can take seconds.
        let prepared = settings::prepare(&state, kind, new_settings(kind, &fields), None)
            .await
            .map_err(admin::Error::Invalid)?;
        let (mut tx, org) = ctx.begin(&state).await?;
        let name = fields.get("name");
        let created =
            admin::connections::create(&mut tx, &ctx.admin, &org, kind, name, true, prepared)
                .await?;
        tx.commit().await?;
        Ok::<_, admin::Error>(created)
    }
    .await;
    match created {
        Ok(c) => done(
            &state,
            &ctx.request,
            &format!("/orgs/{slug}/sso/connections/{}", c.id),
            Ok(format!("Connection {} added.", c.name)),
        ),
        Err(err) => done(&state, &ctx.request, &format!("/orgs/{slug}/sso"), Err(err)),
    }
}

/// What the IdP metadata says, as the connection page shows it.
#[derive(Default)]
struct IdpStatus {
    entity_id: String,
    sso_url: String,
    certificates: Vec<(String, String)>,
    warnings: Vec<String>,
    error: Option<String>,
}

fn idp_status(status: &Value) -> IdpStatus {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    IdpStatus {
        entity_id: text(&status["entity_id"]),
        sso_url: text(&status["sso_url"]),
        certificates: status["certificates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (text(&c["subject"]), text(&c["not_after"])))
            .collect(),
        warnings: status["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect(),
        error: status["error"].as_str().map(str::to_string),
    }
}

#[derive(Template)]
#[template(path = "console/connection.html")]
struct ConnectionPage {
    c: Chrome,
    connection: Connection,
    endpoints: saml::Endpoints,
    redirect_uri: String,
    idp: IdpStatus,
    settings: Value,
    grants: Vec<Grant>,
    mappings: Vec<Mapping>,
    teams: Vec<Team>,
    domains: Vec<Domain>,
    explained: Option<(String, String, Decision)>,
}

impl ConnectionPage {
    fn setting(&self, key: &str) -> String {
        match &self.settings[key] {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            _ => String::new(),
        }
    }

    fn is_saml(&self) -> bool {
        self.connection.kind == Kind::Saml
    }

    fn describe(&self, matches: &Match) -> String {
        match matches {
            Match::Everyone => "everyone the identity provider signs in".into(),
            Match::EmailDomain { domain } => format!("email addresses at {domain}"),
            Match::Group { id, name } => format!(
                "members of the group {}",
                name.clone().or(id.clone()).unwrap_or_default()
            ),
            Match::User { subject, email } => format!(
                "the person {}",
                email.clone().or(subject.clone()).unwrap_or_default()
            ),
        }
    }

    fn group_label(&self, group: &GroupRef) -> String {
        match (&group.name, &group.id) {
            (Some(name), Some(id)) => format!("{name} ({id})"),
            (Some(name), None) => name.clone(),
            (None, Some(id)) => id.clone(),
            (None, None) => String::new(),
        }
    }
}

async fn render_connection(
    state: &AppState,
    ctx: Ctx,
    id: i64,
    explained: Option<(String, String, Decision)>,
) -> Response {
    let loaded = async {
        let mut tx = state.store.read().await?;
        let connection = settings::shown(connections::require(&mut tx, ctx.org.id, id).await?);
        let grants = grants::list_grants(&mut tx, ctx.org.id, id).await?;
        let mappings = grants::list_mappings(&mut tx, ctx.org.id, id).await?;
        let teams = teams::list(&mut tx, ctx.org.id).await?;
        let domains = domains::list(&mut tx, ctx.org.id).await?;
        Ok::<_, admin::Error>((connection, grants, mappings, teams, domains))
    }
    .await;
    let (connection, grants, mappings, teams, domains) = match loaded {
        Ok(loaded) => loaded,
        Err(err) => return super::refusal_page(err, &ctx.request),
    };
    let endpoints = saml::Endpoints::of(&state.config.public_base_url, &ctx.org.slug);
    let redirect_uri = oidc::redirect_uri(&state.config.public_base_url);
    let idp = idp_status(&connection.settings.0["idp"]);
    let shown_settings = connection.settings.0.clone();
    ctx.page(|c| ConnectionPage {
        connection,
        endpoints,
        redirect_uri,
        idp,
        settings: shown_settings,
        grants,
        mappings,
        teams,
        domains,
        explained,
        c,
    })
}

pub async fn connection(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match org_ctx(&state, &headers, &uri, &slug, "sso").await {
        Ok(ctx) => render_connection(&state, ctx, id, None).await,
        Err(page) => page,
    }
}

/// The connection's name, whether it is on, and its protocol settings. Empty secret and
/// metadata fields keep what is stored.
pub async fn update_connection(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "sso").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let Some(fields) = Fields::checked(&state, &headers, &body) else {
        return csrf::refused();
    };
    let outcome = async {
        let current = {
            let mut tx = state.store.read().await?;
            connections::require(&mut tx, ctx.org.id, id).await?
        };
        let mut input = current.settings.0.clone();
        if let Some(object) = input.as_object_mut() {
            // Sealed credentials are never sent back in: a new one replaces them, none keeps
            // them (the stored copy is `previous`).
            object.remove("client_secret");
            object.remove("client_key");
            let new = new_settings(current.kind, &fields);
            for (key, value) in new.as_object().into_iter().flatten() {
                object.insert(key.clone(), value.clone());
            }
        }
        let prepared = settings::prepare(&state, current.kind, input, Some(&current.settings.0))
            .await
            .map_err(admin::Error::Invalid)?;
        let (mut tx, org) = ctx.begin(&state).await?;
        let changes = Changes {
            name: fields.opt("name"),
            enabled: Some(fields.get("enabled") == "1"),
            settings: Some(prepared),
        };
        let after = admin::connections::update(&mut tx, &ctx.admin, &org, id, changes).await?;
        tx.commit().await?;
        Ok(format!("Connection {} saved.", after.name))
    }
    .await;
    done(
        &state,
        &ctx.request,
        &format!("/orgs/{slug}/sso/connections/{id}"),
        outcome,
    )
}

pub async fn confirm_delete_connection(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "sso").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let connection = async {
        let mut tx = state.store.read().await?;
        Ok::<_, admin::Error>(connections::require(&mut tx, ctx.org.id, id).await?)
    }
    .await;
    match connection {
        Ok(connection) => ctx.page(|c| Confirm {
            title: format!("Delete the connection {}?", connection.name),
            text: "Its access grants, group mappings and SCIM tokens go with it, and nobody can sign in through it any more. Members it brought in stay members.".into(),
            action: format!("/orgs/{slug}/sso/connections/{id}/delete"),
            button: "Delete connection".into(),
            cancel: format!("/orgs/{slug}/sso/connections/{id}"),
            c,
        }),
        Err(err) => super::refusal_page(err, &ctx.request),
    }
}

pub async fn delete_connection(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(_): CheckedForm<CsrfForm>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "sso").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    ctx.command(
        &state,
        &format!("/orgs/{slug}/sso"),
        async |tx, admin, org| {
            let gone = admin::connections::delete(tx, admin, org, id).await?;
            Ok(format!("Connection {} deleted.", gone.name))
        },
    )
    .await
}

/// The grant form: who (`match`: everyone, email_domain, group, user, with `value`), which
/// teams (`team`), and whether it makes admins (`is_admin`).
pub async fn create_grant(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "sso").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let Some(fields) = Fields::checked(&state, &headers, &body) else {
        return csrf::refused();
    };
    let value = fields.opt("value");
    let matches = match fields.get("match") {
        "email_domain" => Match::EmailDomain {
            domain: value.unwrap_or_default(),
        },
        "group" => Match::Group {
            id: None,
            name: value,
        },
        "group_id" => Match::Group {
            id: value.map(|v| v.to_lowercase()),
            name: None,
        },
        "user" => Match::User {
            subject: None,
            email: value,
        },
        _ => Match::Everyone,
    };
    ctx.command(
        &state,
        &format!("/orgs/{slug}/sso/connections/{id}"),
        async |tx, admin, org| {
            admin::connections::create_grant(
                tx,
                admin,
                org,
                id,
                &matches,
                &fields.ids("team"),
                fields.get("is_admin") == "1",
            )
            .await?;
            Ok("Access grant added.".to_string())
        },
    )
    .await
}

pub async fn delete_grant(
    State(state): State<AppState>,
    Path((slug, id, grant_id)): Path<(String, i64, i64)>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(_): CheckedForm<CsrfForm>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "sso").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    ctx.command(
        &state,
        &format!("/orgs/{slug}/sso/connections/{id}"),
        async |tx, admin, org| {
            admin::connections::delete_grant(tx, admin, org, id, grant_id).await?;
            Ok("Access grant removed.".to_string())
        },
    )
    .await
}

/// The mapping form: the group by `group_name` (Okta) or `group_id` (Entra's object ID),
/// and its teams, picked by name (`team`).
pub async fn create_mapping(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "sso").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let Some(fields) = Fields::checked(&state, &headers, &body) else {
        return csrf::refused();
    };
    let group = GroupRef {
        id: fields.opt("group_id").map(|g| g.to_lowercase()),
        name: fields.opt("group_name"),
    };
    ctx.command(&state, &format!("/orgs/{slug}/sso/connections/{id}"), async |tx, admin, org| {
        let mapping = admin::connections::create_mapping(
            tx,
            admin,
            org,
            id,
            &group,
            &fields.ids("team"),
        )
        .await?;
        let teams: Vec<String> = mapping.teams.iter().map(|t| t.name.clone()).collect();
        Ok(format!(
            "The group now maps to {}; people already pushed into it have it now, people signing in get it at their next sign-in.",
            teams.join(", ")
        ))
    })
    .await
}

pub async fn delete_mapping(
    State(state): State<AppState>,
    Path((slug, id, mapping_id)): Path<(String, i64, i64)>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(_): CheckedForm<CsrfForm>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "sso").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    ctx.command(
        &state,
        &format!("/orgs/{slug}/sso/connections/{id}"),
        async |tx, admin, org| {
            admin::connections::delete_mapping(tx, admin, org, id, mapping_id).await?;
            Ok("Group mapping removed.".to_string())
        },
    )
    .await
}

/// The explain tool: would this person get in, and into which teams? Answered on the page
/// by the core's own `decide`, which only reads.
pub async fn explain(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "sso").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let Some(fields) = Fields::checked(&state, &headers, &body) else {
        return csrf::refused();
    };
    let email = fields.get("email").to_string();
    let groups_text = fields.get("groups").to_string();
    let groups: Vec<IdpGroup> = groups_text
        .split([',', '\n'])
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(|g| IdpGroup {
            id: Some(g.to_lowercase()),
            name: Some(g.to_string()),
        })
        .collect();
    let decided = async {
        let mut tx = state.store.read().await?;
        connections::require(&mut tx, ctx.org.id, id).await?;
        let identity = ExternalIdentity {
            connection_id: id,
            email: Some(email.clone()).filter(|e| !e.is_empty()),
            groups,
            ..Default::default()
        };
        Ok::<_, admin::Error>(provisioning::decide(&mut tx, &identity).await?)
    }
    .await;
    match decided {
        Ok(decision) => {
            render_connection(&state, ctx, id, Some((email, groups_text, decision))).await
        }
        Err(err) => done(
            &state,
            &ctx.request,
            &format!("/orgs/{slug}/sso/connections/{id}"),
            Err(err),
        ),
    }
}

pub async fn claim_domain(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "sso").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let Some(fields) = Fields::checked(&state, &headers, &body) else {
        return csrf::refused();
    };
    ctx.command(
        &state,
        &format!("/orgs/{slug}/sso"),
        async |tx, admin, org| {
            let domain = admin::domains::claim(tx, admin, org, fields.get("domain")).await?;
            Ok(format!(
                "{} added. Publish its TXT record, then check it.",
                domain.domain
            ))
        },
    )
    .await
}

pub async fn verify_domain(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(_): CheckedForm<CsrfForm>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "sso").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let outcome = admin::domains::verify(&state.store, &state.dns, &ctx.admin, &slug, id)
        .await
        .map(|d| format!("{} is verified.", d.domain));
    done(&state, &ctx.request, &format!("/orgs/{slug}/sso"), outcome)
}

pub async fn delete_domain(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(_): CheckedForm<CsrfForm>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "sso").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    ctx.command(
        &state,
        &format!("/orgs/{slug}/sso"),
        async |tx, admin, org| {
            let domain = admin::domains::delete(tx, admin, org, id).await?;
            Ok(format!("{} removed.", domain.domain))
        },
    )
    .await
}
