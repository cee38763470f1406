//! Invitations as the provisioning core sees them: an address, an org, teams and an admin
//! flag, pending until accepted, revoked or expired.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{grants::TeamRef, now, on, on_unique, teams, users, Error, Result, Tx};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Invitation {
    pub id: i64,
    #[serde(skip)]
    pub org_id: i64,
    pub email: String,
    pub is_admin: bool,
    /// `pending`, `accepted` or `revoked`; a pending one past `expires_at` is expired.
    pub status: String,
    pub teams: Vec<TeamRef>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    org_id: i64,
    email: String,
    is_admin: bool,
    status: String,
    expires_at: DateTime<Utc>,
    accepted_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

pub async fn create(
    tx: &mut Tx,
    org_id: i64,
    email: &str,
    is_admin: bool,
    team_ids: &[i64],
    invited_by: Option<i64>,
    ttl: Duration,
) -> Result<Invitation> {
    let normalized = users::normalize_email(email)?;
    let wanted = team_ids.iter().copied().collect();
    let known = teams::existing_ids(tx, org_id, &wanted).await?;
    if known != wanted {
        return Err(Error::Invalid(
            "an invited team is not a team of this organization".into(),
        ));
    }
    let now = now();
    let id: i64 = on!(tx, c => sqlx::query_scalar(
        "INSERT INTO invitations (org_id, email, email_normalized, is_admin, status, invited_by_user_id, \
         expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $7) RETURNING id",
    )
    .bind(org_id)
    .bind(email.trim())
    .bind(&normalized)
    .bind(is_admin)
    .bind(invited_by)
    .bind(now + ttl)
    .bind(now)
    .fetch_one(&mut *c)
    .await)
    .map_err(on_unique(
        "invitation_pending",
        format!("{normalized} already has a pending invitation"),
    ))?;
    let sql = "INSERT INTO invitation_teams (invitation_id, team_id) VALUES ($1, $2)";
    teams::link(tx, sql, id, known).await?;
    get(tx, id).await?.ok_or(Error::NotFound("invitation"))
}

pub async fn get(tx: &mut Tx, id: i64) -> Result<Option<Invitation>> {
    let row = on!(tx, c => sqlx::query_as::<_, Row>(
        "SELECT id, org_id, email, is_admin, status, expires_at, accepted_at, created_at FROM invitations WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await)?;
    let Some(row) = row else { return Ok(None) };
    let teams = on!(tx, c => sqlx::query_as::<_, (i64, String)>(
        "SELECT t.id, t.name FROM invitation_teams it JOIN teams t ON t.id = it.team_id \
         WHERE it.invitation_id = $1 ORDER BY t.name_normalized",
    )
    .bind(id)
    .fetch_all(&mut *c)
    .await)?;
    Ok(Some(Invitation {
        id: row.id,
        org_id: row.org_id,
        email: row.email,
        is_admin: row.is_admin,
        status: row.status,
        teams: teams
            .into_iter()
            .map(|(id, name)| TeamRef { id, name })
            .collect(),
        expires_at: row.expires_at,
        accepted_at: row.accepted_at,
        created_at: row.created_at,
    }))
}

/// The org's pending, unexpired invitation for this (normalised) address.
pub async fn pending_for(
    tx: &mut Tx,
    org_id: i64,
    email_normalized: &str,
) -> Result<Option<Invitation>> {
    let id: Option<i64> = on!(tx, c => sqlx::query_scalar(
        "SELECT id FROM invitations WHERE org_id = $1 AND email_normalized = $2 \
         AND status = 'pending' AND expires_at > $3",
    )
    .bind(org_id)
    .bind(email_normalized)
    .bind(now())
    .fetch_optional(&mut *c)
    .await)?;
    match id {
        Some(id) => get(tx, id).await,
        None => Ok(None),
    }
}

/// Consumes a pending, unexpired invitation in one statement. Returns false when it was
/// no longer pending (accepted concurrently, revoked or expired): it can be used once.
pub async fn mark_accepted(tx: &mut Tx, id: i64, user_id: i64) -> Result<bool> {
    let now = now();
    let n = on!(tx, c => sqlx::query(
        "UPDATE invitations SET status = 'accepted', accepted_at = $3, accepted_user_id = $2, updated_at = $3 \
         WHERE id = $1 AND status = 'pending' AND expires_at > $3",
    )
    .bind(id)
    .bind(user_id)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
