//! Teams: create, rename, delete, and who is in each (and through what).

use askama::Template;
use axum::{
    extract::{Path, State},
    http::{HeaderMap, Uri},
    response::Response,
};
use serde::Deserialize;

use super::{org_ctx, Chrome, Confirm};
use crate::{
    admin,
    browser::{csrf::with_csrf, CheckedForm, CsrfForm},
    state::AppState,
    store::teams::{self, Team, TeamMember},
};

#[derive(Template)]
#[template(path = "console/teams.html")]
struct List {
    c: Chrome,
    teams: Vec<Team>,
}

#[derive(Template)]
#[template(path = "console/team.html")]
struct Detail {
    c: Chrome,
    team: Team,
    members: Vec<TeamMember>,
}

#[derive(Deserialize)]
pub struct NameForm {
    csrf: String,
    name: String,
}

with_csrf!(NameForm);

pub async fn list(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "teams").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let loaded = async {
        let mut tx = state.store.read().await?;
        teams::list(&mut tx, ctx.org.id).await
    }
    .await;
    match loaded {
        Ok(teams) => ctx.page(|c| List { teams, c }),
        Err(err) => crate::browser::internal(err, &ctx.request),
    }
}

pub async fn detail(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "teams").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let loaded = async {
        let mut tx = state.store.read().await?;
        let team = teams::require(&mut tx, ctx.org.id, id).await?;
        let members = teams::members(&mut tx, ctx.org.id, id).await?;
        Ok::<_, admin::Error>((team, members))
    }
    .await;
    match loaded {
        Ok((team, members)) => ctx.page(|c| Detail { team, members, c }),
        Err(err) => super::refusal_page(err, &ctx.request),
    }
}

pub async fn create(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm<NameForm>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "teams").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    ctx.command(
        &state,
        &format!("/orgs/{slug}/teams"),
        async |tx, admin, org| {
            let team = admin::teams::create(tx, admin, org, &form.name).await?;
            Ok(format!("Team {} created.", team.name))
        },
    )
    .await
}

pub async fn rename(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm<NameForm>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "teams").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    ctx.command(
        &state,
        &format!("/orgs/{slug}/teams/{id}"),
        async |tx, admin, org| {
            let team = admin::teams::rename(tx, admin, org, id, &form.name).await?;
            Ok(format!("Team renamed to {}.", team.name))
        },
    )
    .await
}

pub async fn confirm_delete(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "teams").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let team = async {
        let mut tx = state.store.read().await?;
        Ok::<_, admin::Error>(teams::require(&mut tx, ctx.org.id, id).await?)
    }
    .await;
    match team {
        Ok(team) => ctx.page(|c| Confirm {
            title: format!("Delete the team {}?", team.name),
            text: format!(
                "Its {} member(s) stay in the organization; only the team and its mappings go.",
                team.member_count
            ),
            action: format!("/orgs/{slug}/teams/{id}/delete"),
            button: "Delete team".into(),
            cancel: format!("/orgs/{slug}/teams/{id}"),
            c,
        }),
        Err(err) => super::refusal_page(err, &ctx.request),
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, i64)>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(_): CheckedForm<CsrfForm>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "teams").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    ctx.command(
        &state,
        &format!("/orgs/{slug}/teams"),
        async |tx, admin, org| {
            let team = admin::teams::delete(tx, admin, org, id).await?;
            Ok(format!("Team {} deleted.", team.name))
        },
    )
    .await
}
