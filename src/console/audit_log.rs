//! The audit log: filter by actor, action and date, newest first, in keyset pages.

use askama::Template;
use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, Uri},
    response::Response,
};
use chrono::{NaiveDate, TimeZone, Utc};
use serde::Deserialize;

use super::{org_ctx, Chrome};
use crate::{
    state::AppState,
    store::audit::{self, AuditEvent},
};

#[derive(Template)]
#[template(path = "console/audit.html")]
struct Page {
    c: Chrome,
    events: Vec<AuditEvent>,
    actor: String,
    action: String,
    from: String,
    to: String,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct Params {
    actor: Option<String>,
    action: Option<String>,
    /// `YYYY-MM-DD`, inclusive.
    from: Option<String>,
    /// `YYYY-MM-DD`, inclusive.
    to: Option<String>,
    before: Option<i64>,
}

const PAGE: i64 = 50;

fn day(text: Option<&str>) -> Option<NaiveDate> {
    text.and_then(|t| NaiveDate::parse_from_str(t, "%Y-%m-%d").ok())
}

pub async fn page(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    Query(params): Query<Params>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ctx = match org_ctx(&state, &headers, &uri, &slug, "audit").await {
        Ok(ctx) => ctx,
        Err(page) => return page,
    };
    let from = day(params.from.as_deref());
    let to = day(params.to.as_deref());
    let start = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t));
    let filter = audit::Filter {
        actor: params.actor.clone(),
        action: params.action.clone(),
        since: from.and_then(start),
        until: to.and_then(|d| d.succ_opt()).and_then(start),
    };
    let loaded = async {
        let mut tx = state.store.read().await?;
        audit::list(&mut tx, ctx.org.id, &filter, params.before, PAGE + 1).await
    }
    .await;
    let mut events = match loaded {
        Ok(events) => events,
        Err(err) => return crate::browser::internal(err, &ctx.request),
    };
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let (actor, action) = (text(&params.actor), text(&params.action));
    let (from, to) = (
        from.map(|d| d.to_string()).unwrap_or_default(),
        to.map(|d| d.to_string()).unwrap_or_default(),
    );
    let next = if events.len() as i64 > PAGE {
        events.truncate(PAGE as usize);
        events.last().map(|e| {
            let encode = |v: &str| -> String {
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
            };
            format!(
                "actor={}&action={}&from={from}&to={to}&before={}",
                encode(&actor),
                encode(&action),
                e.id
            )
        })
    } else {
        None
    };
    ctx.page(|c| Page {
        events,
        actor,
        action,
        from,
        to,
        next,
        c,
    })
}
