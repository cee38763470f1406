//! Settings: the org's name, required 2FA, enforced single sign-on.

use askama::Template;
use axum::{
    extract::{Path, State},
    http::{HeaderMap, Uri},
    response::Response,
};
use serde::Deserialize;

use super::{org_ctx, Chrome};
use crate::{
    admin,
    browser::{csrf::with_csrf, CheckedForm},
    state::AppState,
    store::orgs::{Org, OrgChanges},
};

#[derive(Template)]
#[template(path = "console/settings.html")]
struct Settings {
    c: Chrome,
    org: Org,
}

#[derive(Deserialize)]
pub struct SettingsForm {
    csrf: String,
    name: String,
    /// Checkboxes: present when checked.
    require_2fa: Option<String>,
    sso_enforced: Option<String>,
}

with_csrf!(SettingsForm);

pub async fn page(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match org_ctx(&state, &headers, &uri, &slug, "settings").await {
        Ok(ctx) => {
            let org = ctx.org.clone();
            ctx.page(|c| Settings { org, c })
        }
        Err(page) => page,
    }
}

pub async fn save(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    CheckedForm(form): CheckedForm<SettingsForm>,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "settings").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    ctx.command(
        &state,
        &format!("/orgs/{slug}/settings"),
        async |tx, admin, org| {
            let changes = OrgChanges {
                name: Some(form.name),
                require_2fa: Some(form.require_2fa.is_some()),
                sso_enforced: Some(form.sso_enforced.is_some()),
            };
            admin::orgs::update(tx, admin, org, changes).await?;
            Ok("Settings saved.".to_string())
        },
    )
    .await
}
