//! Invitations: the send form (several addresses, teams, admin) with a result per address,
//! the list by status with where each email stands, resend, revoke, clean up expired.

use askama::Template;
use axum::{
    extract::{Path, Query, RawForm, State},
    http::{HeaderMap, Uri},
    response::Response,
};
use serde::Deserialize;

use super::{done, org_ctx, Chrome, Confirm};
use crate::{
    admin,
    browser::{csrf, CheckedForm, CsrfForm},
    invitations::{AddressResult, Request},
    state::AppState,
    store::{
        invitations::{self, Invitation, Status},
        teams::{self, Team},
    },
};

#[derive(Template)]
#[template(path = "console/invitations.html")]
struct List {
    c: Chrome,
    invitations: Vec<Invitation>,
    teams: Vec<Team>,
    status: String,
    results: Vec<AddressResult>,
    next: Option<i64>,
}

impl List {
    fn statuses(&self) -> [&'static str; 4] {
        ["pending", "accepted", "expired", "revoked"]
    }

    fn is_status(&self, status: &str) -> bool {
        self.status == status
    }
}

#[derive(Deserialize)]
pub struct ListParams {
    status: Option<String>,
    before: Option<i64>,
}

const PAGE: i64 = 50;

fn parse_status(text: Option<&str>) -> Option<Status> {
    text.and_then(|s| s.parse().ok())
}

async fn render(
    state: &AppState,
    ctx: super::Ctx,
    status: Option<Status>,
    before: Option<i64>,
    results: Vec<AddressResult>,
) -> Response {
    let loaded = async {
        let mut tx = state.store.read().await?;
        let mut list = invitations::list(&mut tx, ctx.org.id, status, before, PAGE + 1).await?;
        let teams = teams::list(&mut tx, ctx.org.id).await?;
        let next = if list.len() as i64 > PAGE {
            list.truncate(PAGE as usize);
            list.last().map(|i| i.id)
        } else {
            None
        };
        Ok::<_, crate::store::Error>((list, teams, next))
    }
    .await;
    match loaded {
        Ok((invitations, teams, next)) => ctx.page(|c| List {
            invitations,
            teams,
            status: status.map(|s| s.to_string()).unwrap_or_default(),
            results,
            next,
            c,
        }),
        Err(err) => crate::browser::internal(err, &ctx.request),
    }
}

pub async fn list(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(params): Query<ListParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match org_ctx(&state, &headers, &uri, &slug, "invitations").await {
        Ok(ctx) => {
            let status = parse_status(params.status.as_deref());
            render(&state, ctx, status, params.before, Vec::new()).await
        }
        Err(page) => page,
    }
}

/// The send form: `emails` (one per line, or separated by commas or spaces), `team` once
/// per chosen team, `is_admin` when checked. The answer is the page with a result per
/// address.
pub async fn send(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "invitations").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if !csrf::check(&state, &headers, field("csrf").unwrap_or_default()) {
        return csrf::refused();
    }
    let emails: Vec<String> = field("emails")
        .unwrap_or_default()
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect();
    let team_ids: Vec<i64> = fields
        .iter()
        .filter(|(k, _)| k == "team")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let is_admin = field("is_admin").is_some();
    let sent = async {
        let (mut tx, org) = ctx.begin(&state).await?;
        let request = Request {
            emails: &emails,
            team_ids: &team_ids,
            is_admin,
        };
        let results =
            admin::invitations::send(&mut tx, &state.config, &ctx.admin, &org, request).await?;
        tx.commit().await?;
        Ok::<_, admin::Error>(results)
    }
    .await;
    match sent {
        Ok(results) => render(&state, ctx, None, None, results).await,
        Err(err) => {
            let to = format!("/orgs/{slug}/invitations");
            done(&state, &ctx.request, &to, Err(err))
        }
    }
}

pub async fn resend(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(_): CheckedForm<CsrfForm>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "invitations").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    ctx.command(
        &state,
        &format!("/orgs/{slug}/invitations"),
        async |tx, admin, org| {
            let invitation = admin::invitations::resend(tx, &state.config, admin, org, id).await?;
            Ok(format!(
                "A new invitation email is on its way to {}; the earlier link no longer works.",
                invitation.email
            ))
        },
    )
    .await
}

pub async fn confirm_revoke(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "invitations").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let invitation = async {
        let mut tx = state.store.read().await?;
        Ok::<_, admin::Error>(invitations::require(&mut tx, ctx.org.id, id).await?)
    }
    .await;
    match invitation {
        Ok(invitation) => {
            let back = format!("/orgs/{slug}/invitations");
            ctx.page(|c| Confirm {
                title: format!("Revoke the invitation of {}?", invitation.email),
                text: "Its link stops working at once. You can invite the address again later."
                    .into(),
                action: format!("{back}/{id}/revoke"),
                button: "Revoke invitation".into(),
                cancel: back,
                c,
            })
        }
        Err(err) => super::refusal_page(err, &ctx.request),
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(_): CheckedForm<CsrfForm>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "invitations").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    ctx.command(
        &state,
        &format!("/orgs/{slug}/invitations"),
        async |tx, admin, org| {
            let revoked = admin::invitations::revoke(tx, admin, org, id).await?;
            Ok(format!("The invitation of {} is revoked.", revoked.email))
        },
    )
    .await
}

pub async fn clean_up(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(_): CheckedForm<CsrfForm>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "invitations").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    ctx.command(
        &state,
        &format!("/orgs/{slug}/invitations"),
        async |tx, admin, org| {
            let deleted = admin::invitations::delete_expired(tx, admin, org).await?;
            Ok(format!("{deleted} expired invitation(s) deleted."))
        },
    )
    .await
}
