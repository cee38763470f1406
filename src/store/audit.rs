//! The audit trail: who changed what, with the state before and after.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use utoipa::ToSchema;

use super::{now, on, Result, Tx};

/// Who is acting. Front doors build one per request (a user through a token or session;
/// later an IdP through SCIM, or the operator through the CLI).
#[derive(Debug, Clone)]
pub struct Actor {
    pub user_id: Option<i64>,
    /// Human-readable, e.g. `alice@example.com (token "laptop")`.
    pub label: String,
    pub request_id: Option<String>,
}

pub struct Event<'a> {
    pub org_id: Option<i64>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct AuditEvent {
    pub id: i64,
    pub actor: String,
    pub actor_user_id: Option<i64>,
    /// e.g. `member.removed`, `team.created`.
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub before: Option<Json<Value>>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<Json<Value>>,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl<'a> Event<'a> {
    /// An org event about `target_type` `target_id`; add state with [`Event::before`] and
    /// [`Event::after`].
    pub fn new(
        org_id: i64,
        action: &'a str,
        target_type: &'a str,
        target_id: impl ToString,
    ) -> Self {
        Event {
            org_id: Some(org_id),
            action,
            target_type,
            target_id: Some(target_id.to_string()),
            before: None,
            after: None,
        }
    }

    /// An event about the actor's own things (their API tokens), in no org's trail.
    pub fn personal(action: &'a str, target_type: &'a str, target_id: impl ToString) -> Self {
        Event {
            org_id: None,
            ..Event::new(0, action, target_type, target_id)
        }
    }

    pub fn before<T: Serialize>(mut self, state: &T) -> Self {
        self.before = snapshot(state);
        self
    }

    pub fn after<T: Serialize>(mut self, state: &T) -> Self {
        self.after = snapshot(state);
        self
    }
}

/// Serialises a state snapshot for the trail.
pub fn snapshot<T: Serialize>(value: &T) -> Option<Value> {
    serde_json::to_value(value).ok()
}

pub async fn record(tx: &mut Tx, actor: &Actor, event: Event<'_>) -> Result<()> {
    on!(tx, c => sqlx::query(
        "INSERT INTO audit_events (org_id, actor_user_id, actor, action, target_type, target_id, \
         before_state, after_state, request_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(event.org_id)
    .bind(actor.user_id)
    .bind(&actor.label)
    .bind(event.action)
    .bind(event.target_type)
    .bind(&event.target_id)
    .bind(event.before.map(Json))
    .bind(event.after.map(Json))
    .bind(&actor.request_id)
    .bind(now())
    .execute(&mut *c)
    .await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Which events to list: each part narrows the list when set.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Part of the actor's label (an email, a token or connection name), any case.
    pub actor: Option<String>,
    /// Part of the action, e.g. `scim.` or `member.removed`.
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// The org's events, newest first; `before` is the id cursor from the previous page.
pub async fn list(
    tx: &mut Tx,
    org_id: i64,
    filter: &Filter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<AuditEvent>> {
    let actor = filter
        .actor
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(|a| super::like_pattern(&a.to_lowercase()));
    let action = filter
        .action
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(super::like_pattern);
    Ok(on!(tx, c => sqlx::query_as::<_, AuditEvent>(
        "SELECT id, actor, actor_user_id, action, target_type, target_id, before_state AS before, \
         after_state AS after, request_id, created_at FROM audit_events \
         WHERE org_id = $1 AND ($2 IS NULL OR id < $2) \
         AND ($4 IS NULL OR LOWER(actor) LIKE $4 ESCAPE '\\') \
         AND ($5 IS NULL OR action LIKE $5 ESCAPE '\\') \
         AND ($6 IS NULL OR created_at >= $6) AND ($7 IS NULL OR created_at < $7) \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(org_id)
    .bind(before)
    .bind(limit)
    .bind(actor)
    .bind(action)
    .bind(filter.since)
    .bind(filter.until)
    .fetch_all(&mut *c)
    .await)?)
}
