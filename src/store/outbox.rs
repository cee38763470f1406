//! The mail outbox: messages written in the transaction of what they announce, delivered
//! later by the worker in `crate::mail`, at least once.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{now, on, Result, Tx};

pub struct NewMessage<'a> {
    pub org_id: Option<i64>,
    pub invitation_id: Option<i64>,
    pub to: &'a str,
    pub subject: &'a str,
    pub text_body: &'a str,
    pub html_body: &'a str,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    pub id: i64,
    pub to_address: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub attempts: i64,
}

/// Where a message stands, as an admin sees it next to an invitation.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Delivery {
    /// `queued`, `sent` or `failed` (gave up after the configured attempts).
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

pub async fn enqueue(tx: &mut Tx, message: NewMessage<'_>) -> Result<i64> {
    let now = now();
    Ok(on!(tx, c => sqlx::query_scalar(
        "INSERT INTO outbox (org_id, invitation_id, to_address, subject, text_body, html_body, status, \
         next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'queued', $7, $7) RETURNING id",
    )
    .bind(message.org_id)
    .bind(message.invitation_id)
    .bind(message.to)
    .bind(message.subject)
    .bind(message.text_body)
    .bind(message.html_body)
    .bind(now)
    .fetch_one(&mut *c)
    .await)?)
}

macro_rules! claim {
    () => {
        concat!(
            "UPDATE outbox SET locked_until = $2, attempts = attempts + 1 WHERE id IN (",
            "SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at <= $1 ",
            "AND (locked_until IS NULL OR locked_until <= $1) ORDER BY id LIMIT $3"
        )
    };
}

macro_rules! returning {
    () => {
        ") RETURNING id, to_address, subject, text_body, html_body, attempts"
    };
}

/// Takes up to `limit` due messages for this worker for `lock` and counts the attempt. A
/// worker that dies holding them only delays them until the lock runs out. On PostgreSQL,
/// SKIP LOCKED lets instances claim disjoint batches; SQLite's write lock serialises claims.
pub async fn claim_due(tx: &mut Tx, limit: i64, lock: Duration) -> Result<Vec<Message>> {
    let now = now();
    let messages = match tx {
        Tx::Postgres(t) => {
            let sql = concat!(claim!(), " FOR UPDATE SKIP LOCKED", returning!());
            sqlx::query_as::<_, Message>(sql)
                .bind(now)
                .bind(now + lock)
                .bind(limit)
                .fetch_all(&mut **t)
                .await?
        }
        Tx::Sqlite(t) => {
            let sql = concat!(claim!(), returning!());
            sqlx::query_as::<_, Message>(sql)
                .bind(now)
                .bind(now + lock)
                .bind(limit)
                .fetch_all(&mut **t)
                .await?
        }
    };
    Ok(messages)
}

pub async fn mark_sent(tx: &mut Tx, id: i64) -> Result<()> {
    on!(tx, c => sqlx::query(
        "UPDATE outbox SET status = 'sent', sent_at = $2, locked_until = NULL, last_error = NULL WHERE id = $1",
    )
    .bind(id)
    .bind(now())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Records a failed attempt: retried at `retry_at`, or given up on when `retry_at` is None.
pub async fn mark_failed(
    tx: &mut Tx,
    id: i64,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<()> {
    let status = if retry_at.is_some() {
        "queued"
    } else {
        "failed"
    };
    on!(tx, c => sqlx::query(
        "UPDATE outbox SET status = $2, last_error = $3, next_attempt_at = COALESCE($4, next_attempt_at), \
         locked_until = NULL WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(error)
    .bind(retry_at)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Messages waiting to be sent (queued, including those waiting for a retry), for the
/// operator's metrics: counted in the database, so every instance reports the same depth.
pub async fn depth(tx: &mut Tx) -> Result<i64> {
    Ok(on!(tx, c => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM outbox WHERE status = 'queued'"
    )
    .fetch_one(&mut *c)
    .await)?)
}
