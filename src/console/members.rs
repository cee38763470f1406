//! Members: search and filter, a member's page with the admin toggle, teams editor,
//! suspension and removal, each destructive step confirmed.

use std::collections::BTreeSet;

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
    browser::csrf,
    state::AppState,
    store::{
        members::{self, ListQuery, Member, Status},
        teams::{self, Team},
    },
};

#[derive(Template)]
#[template(path = "console/members.html")]
struct List {
    c: Chrome,
    members: Vec<Member>,
    q: String,
    status: String,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct ListParams {
    q: Option<String>,
    status: Option<String>,
    after: Option<String>,
}

const PAGE: i64 = 50;

pub async fn list(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(params): Query<ListParams>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "members").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let status = match params.status.as_deref() {
        Some("active") => Some(Status::Active),
        Some("suspended") => Some(Status::Suspended),
        _ => None,
    };
    let query = ListQuery {
        search: params.q.clone().filter(|q| !q.trim().is_empty()),
        status,
        after: params.after.clone().filter(|a| !a.is_empty()),
        limit: PAGE,
    };
    let listed = async {
        let mut tx = state.store.read().await?;
        members::list(&mut tx, ctx.org.id, &query).await
    }
    .await;
    match listed {
        Ok((members, next)) => ctx.page(|c| List {
            members,
            q: params.q.unwrap_or_default(),
            status: status.map(|s| s.to_string()).unwrap_or_default(),
            next,
            c,
        }),
        Err(err) => crate::browser::internal(err, &ctx.request),
    }
}

#[derive(Template)]
#[template(path = "console/member.html")]
struct Detail {
    c: Chrome,
    member: Member,
    teams: Vec<Team>,
}

impl Detail {
    /// The member's team membership of `team`, if any: its source says who manages it.
    fn membership(&self, team: &Team) -> Option<&members::MemberTeam> {
        self.member.teams.iter().find(|t| t.id == team.id)
    }
}

pub async fn detail(
    State(state): State<AppState>,
    Path((slug, user_id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "members").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let loaded = async {
        let mut tx = state.store.read().await?;
        let member = members::require(&mut tx, ctx.org.id, user_id).await?;
        let teams = teams::list(&mut tx, ctx.org.id).await?;
        Ok::<_, admin::Error>((member, teams))
    }
    .await;
    match loaded {
        Ok((member, teams)) => ctx.page(|c| Detail { member, teams, c }),
        Err(err) => super::refusal_page(err, &ctx.request),
    }
}

/// What each action does, for its confirmation page and its result.
fn describe(action: &str, who: &str) -> Option<(String, String, &'static str)> {
    Some(match action {
        "promote" => (
            format!("Make {who} an admin?"),
            format!("{who} will be able to manage members, invitations, teams, single sign-on and SCIM of this organization."),
            "Make admin",
        ),
        "demote" => (
            format!("Remove admin rights from {who}?"),
            format!("{who} stays a member but can no longer manage this organization."),
            "Remove admin rights",
        ),
        "suspend" => (
            format!("Suspend {who}?"),
            format!("{who} loses access at once. The membership, its teams and its history are kept, so you can reactivate it."),
            "Suspend",
        ),
        "reactivate" => (
            format!("Reactivate {who}?"),
            format!("{who} gets access again, with the teams they had."),
            "Reactivate",
        ),
        "remove" => (
            format!("Remove {who} from this organization?"),
            format!("{who} loses access at once, with their teams here. Their account stays if they belong to other organizations."),
            "Remove",
        ),
        _ => return None,
    })
}

pub async fn confirm(
    State(state): State<AppState>,
    Path((slug, user_id, action)): Path<(String, i64, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "members").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let member = async {
        let mut tx = state.store.read().await?;
        Ok::<_, admin::Error>(members::require(&mut tx, ctx.org.id, user_id).await?)
    }
    .await;
    let member = match member {
        Ok(member) => member,
        Err(err) => return super::refusal_page(err, &ctx.request),
    };
    let Some((title, text, button)) = describe(&action, &member.user.email) else {
        return super::refusal_page(
            admin::Error::NotFound(format!("no action {action:?}")),
            &ctx.request,
        );
    };
    let back = format!("/orgs/{slug}/members/{user_id}");
    ctx.page(|c| Confirm {
        title,
        text,
        action: format!("{back}/{action}"),
        button: button.to_string(),
        cancel: back,
        c,
    })
}

pub async fn act(
    State(state): State<AppState>,
    Path((slug, user_id, action)): Path<(String, i64, String)>,
    uri: Uri,
    headers: HeaderMap,
    csrf::CheckedForm(_): csrf::CheckedForm<crate::browser::CsrfForm>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "members").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let back = format!("/orgs/{slug}/members/{user_id}");
    let outcome = async {
        let (mut tx, org) = ctx.begin(&state).await?;
        let (is_admin, status) = match action.as_str() {
            "promote" => (Some(true), None),
            "demote" => (Some(false), None),
            "suspend" => (None, Some(Status::Suspended)),
            "reactivate" => (None, Some(Status::Active)),
            "remove" => {
                let removed = admin::members::remove(&mut tx, &ctx.admin, &org, user_id).await?;
                tx.commit().await?;
                return Ok((
                    format!("{} was removed from {}.", removed.user.email, org.name),
                    true,
                ));
            }
            other => return Err(admin::Error::NotFound(format!("no action {other:?}"))),
        };
        let member =
            admin::members::update(&mut tx, &ctx.admin, &org, user_id, is_admin, status).await?;
        tx.commit().await?;
        let text = match action.as_str() {
            "promote" => format!("{} is an admin now.", member.user.email),
            "demote" => format!("{} is no longer an admin.", member.user.email),
            "suspend" => format!("{} is suspended.", member.user.email),
            _ => format!("{} is active again.", member.user.email),
        };
        Ok((text, false))
    }
    .await;
    let to = match &outcome {
        Ok((_, true)) => format!("/orgs/{slug}/members"),
        _ => back,
    };
    done(&state, &ctx.request, &to, outcome.map(|(text, _)| text))
}

/// The teams editor: checkboxes named `team`, one per team the member should be in.
pub async fn set_teams(
    State(state): State<AppState>,
    Path((slug, user_id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
    RawForm(body): RawForm,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "members").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let token = fields
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if !csrf::check(&state, &headers, token) {
        return csrf::refused();
    }
    let wanted: BTreeSet<i64> = fields
        .iter()
        .filter(|(k, _)| k == "team")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let wanted: Vec<i64> = wanted.into_iter().collect();
    ctx.command(
        &state,
        &format!("/orgs/{slug}/members/{user_id}"),
        async |tx, admin, org| {
            let member = admin::members::set_teams(tx, admin, org, user_id, &wanted).await?;
            Ok(format!("Teams of {} saved.", member.user.email))
        },
    )
    .await
}
