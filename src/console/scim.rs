//! SCIM: the base URL to give the IdP, tokens (shown once, revocable, last use), and what
//! the IdP pushed recently.

use askama::Template;
use axum::{
    extract::{Path, State},
    http::{HeaderMap, Uri},
    response::Response,
};
use serde::Deserialize;

use super::{done, org_ctx, Chrome, Ctx};
use crate::{
    admin,
    browser::{csrf::with_csrf, CheckedForm, CsrfForm},
    state::AppState,
    store::{
        audit::{self, AuditEvent},
        connections::{self, Connection},
        scim_tokens::{self, ScimToken},
    },
};

#[derive(Template)]
#[template(path = "console/scim.html")]
struct Page {
    c: Chrome,
    base_url: String,
    tokens: Vec<ScimToken>,
    connections: Vec<Connection>,
    activity: Vec<AuditEvent>,
    /// A token just made: its secret, shown this once.
    created: Option<(String, String)>,
}

#[derive(Deserialize)]
pub struct NewToken {
    csrf: String,
    name: String,
    connection_id: i64,
}

with_csrf!(NewToken);

async fn render(state: &AppState, ctx: Ctx, created: Option<(String, String)>) -> Response {
    let loaded = async {
        let mut tx = state.store.read().await?;
        let tokens = scim_tokens::list(&mut tx, ctx.org.id).await?;
        let connections = connections::list(&mut tx, ctx.org.id).await?;
        let filter = audit::Filter {
            action: Some("scim.".into()),
            ..Default::default()
        };
        let activity = audit::list(&mut tx, ctx.org.id, &filter, None, 20).await?;
        Ok::<_, crate::store::Error>((tokens, connections, activity))
    }
    .await;
    let base_url = format!(
        "{}/scim/v2/{}",
        state.config.public_base_url.trim_end_matches('/'),
        ctx.org.slug
    );
    match loaded {
        Ok((tokens, connections, activity)) => ctx.page(|c| Page {
            base_url,
            tokens,
            connections,
            activity,
            created,
            c,
        }),
        Err(err) => crate::browser::internal(err, &ctx.request),
    }
}

pub async fn page(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match org_ctx(&state, &headers, &uri, &slug, "scim").await {
        Ok(ctx) => render(&state, ctx, None).await,
        Err(page) => page,
    }
}

/// Makes a token and shows its secret in this response only.
pub async fn create_token(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm<NewToken>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "scim").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let created = async {
        let (mut tx, org) = ctx.begin(&state).await?;
        let (token, secret) =
            admin::scim_tokens::create(&mut tx, &ctx.admin, &org, form.connection_id, &form.name)
                .await?;
        tx.commit().await?;
        Ok::<_, admin::Error>((token.name, secret))
    }
    .await;
    match created {
        Ok(created) => render(&state, ctx, Some(created)).await,
        Err(err) => done(
            &state,
            &ctx.request,
            &format!("/orgs/{slug}/scim"),
            Err(err),
        ),
    }
}

pub async fn revoke_token(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(_): CheckedForm<CsrfForm>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "scim").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    ctx.command(
        &state,
        &format!("/orgs/{slug}/scim"),
        async |tx, admin, org| {
            let token = admin::scim_tokens::revoke(tx, admin, org, id).await?;
            Ok(format!(
                "SCIM token {} revoked; the identity provider's next request with it is refused.",
                token.name
            ))
        },
    )
    .await
}
