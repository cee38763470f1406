//! SAML state shared by every instance: the AuthnRequests rollcall sent, and the
//! assertions already used.

use chrono::{DateTime, Utc};

use super::{now, on, Result, Tx};
use crate::secrets;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingRequest {
    pub org_id: i64,
    pub connection_id: i64,
    pub request_id: String,
    pub return_to: String,
    pub expires_at: DateTime<Utc>,
    pub consumed_at: Option<DateTime<Utc>>,
    /// The session the browser had when it started the sign-in, ended by the new one.
    pub replaces_session_id: Option<i64>,
    /// SHA-256 of the binding cookie of the browser that started the sign-in (none for
    /// requests made before bindings existed).
    pub binding_hash: Option<String>,
}

/// A verified response waiting for the browser that started its sign-in.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Finishing {
    pub org_id: i64,
    pub connection_id: i64,
    pub request_id: String,
    pub return_to: String,
    pub replaces_session_id: Option<i64>,
    pub binding_hash: Option<String>,
    /// The verified identity and SAML session, as JSON.
    pub finish_data: Option<String>,
}

/// Records an AuthnRequest, usable until its `expires_at`; the browser carries
/// `relay_state` back.
pub async fn create_request(
    tx: &mut Tx,
    request: &PendingRequest,
    relay_state: &str,
) -> Result<()> {
    on!(tx, c => sqlx::query(
        "INSERT INTO saml_requests (org_id, connection_id, request_id, relay_hash, return_to, created_at, expires_at, \
         replaces_session_id, binding_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(request.org_id)
    .bind(request.connection_id)
    .bind(&request.request_id)
    .bind(secrets::hash(relay_state))
    .bind(&request.return_to)
    .bind(now())
    .bind(request.expires_at)
    .bind(request.replaces_session_id)
    .bind(&request.binding_hash)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The request a RelayState names, whatever its state, so a refusal can say precisely why
/// (expired, used, another org's).
pub async fn request_by_relay(tx: &mut Tx, relay_state: &str) -> Result<Option<PendingRequest>> {
    Ok(on!(tx, c => sqlx::query_as::<_, PendingRequest>(
        "SELECT org_id, connection_id, request_id, return_to, expires_at, consumed_at, replaces_session_id, \
         binding_hash FROM saml_requests WHERE relay_hash = $1",
    )
    .bind(secrets::hash(relay_state))
    .fetch_optional(&mut *c)
    .await)?)
}

/// Uses the request, once: of two responses to it (or two instances racing) one wins.
pub async fn consume_request(tx: &mut Tx, request_id: &str) -> Result<bool> {
    let n = on!(tx, c => sqlx::query(
        "UPDATE saml_requests SET consumed_at = $2 WHERE request_id = $1 AND consumed_at IS NULL AND expires_at > $2",
    )
    .bind(request_id)
    .bind(now())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Keeps a consumed request's verified outcome for its browser to collect with `token`.
pub async fn await_finish(tx: &mut Tx, request_id: &str, token: &str, data: &str) -> Result<()> {
    on!(tx, c => sqlx::query(
        "UPDATE saml_requests SET finish_hash = $2, finish_data = $3 WHERE request_id = $1",
    )
    .bind(request_id)
    .bind(secrets::hash(token))
    .bind(data)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Takes the outcome a finish token names, once and before the request expires; the kept
/// identity is cleared as it is taken.
pub async fn take_finish(tx: &mut Tx, token: &str) -> Result<Option<Finishing>> {
    let taken = on!(tx, c => sqlx::query_as::<_, Finishing>(
        "UPDATE saml_requests SET finished_at = $2 \
         WHERE finish_hash = $1 AND finished_at IS NULL AND expires_at > $2 \
         RETURNING org_id, connection_id, request_id, return_to, replaces_session_id, binding_hash, finish_data",
    )
    .bind(secrets::hash(token))
    .bind(now())
    .fetch_optional(&mut *c)
    .await)?;
    if let Some(taken) = &taken {
        on!(tx, c => sqlx::query("UPDATE saml_requests SET finish_data = NULL WHERE request_id = $1")
            .bind(&taken.request_id)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
    }
    Ok(taken)
}

/// Records an assertion as used until `expires_at`; `false` when it was used already (a
/// replay), on this instance or another.
pub async fn record_assertion(
    tx: &mut Tx,
    connection_id: i64,
    assertion_id: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool> {
    let n = on!(tx, c => sqlx::query(
        "INSERT INTO saml_assertions (connection_id, assertion_id, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (connection_id, assertion_id) DO NOTHING",
    )
    .bind(connection_id)
    .bind(assertion_id)
    .bind(expires_at)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Forgets requests and assertions that can no longer be used.
pub async fn prune(tx: &mut Tx, before: DateTime<Utc>) -> Result<u64> {
    let a = on!(tx, c => sqlx::query("DELETE FROM saml_requests WHERE expires_at < $1")
        .bind(before)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    let b = on!(tx, c => sqlx::query("DELETE FROM saml_assertions WHERE expires_at < $1")
        .bind(before)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    let c = on!(tx, c => sqlx::query("DELETE FROM saml_sessions WHERE expires_at < $1")
        .bind(before)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(a + b + c)
}

/// The org's sealed SP private key and its certificate (base64 DER), if made yet.
pub async fn sp_key(tx: &mut Tx, org_id: i64) -> Result<Option<(String, String)>> {
    Ok(on!(tx, c => sqlx::query_as::<_, (String, String)>(
        "SELECT private_key_sealed, certificate FROM saml_sp_keys WHERE org_id = $1",
    )
    .bind(org_id)
    .fetch_optional(&mut *c)
    .await)?)
}

/// Stores a key pair unless the org has one already (two instances making one at once
/// keep the first).
pub async fn insert_sp_key(
    tx: &mut Tx,
    org_id: i64,
    sealed: &str,
    certificate: &str,
) -> Result<()> {
    on!(tx, c => sqlx::query(
        "INSERT INTO saml_sp_keys (org_id, private_key_sealed, certificate, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (org_id) DO NOTHING",
    )
    .bind(org_id)
    .bind(sealed)
    .bind(certificate)
    .bind(now())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// What Single Logout needs of a SAML sign-in.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct SamlSession {
    pub org_id: i64,
    pub connection_id: i64,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_index: Option<String>,
}

pub async fn record_session(
    tx: &mut Tx,
    session_secret: &str,
    session: &SamlSession,
    expires_at: DateTime<Utc>,
) -> Result<()> {
    on!(tx, c => sqlx::query(
        "INSERT INTO saml_sessions (session_hash, org_id, connection_id, name_id, name_id_format, session_index, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(secrets::hash(session_secret))
    .bind(session.org_id)
    .bind(session.connection_id)
    .bind(&session.name_id)
    .bind(&session.name_id_format)
    .bind(&session.session_index)
    .bind(expires_at)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Takes the SAML side of a session as it ends.
pub async fn take_session(tx: &mut Tx, session_secret: &str) -> Result<Option<SamlSession>> {
    Ok(on!(tx, c => sqlx::query_as::<_, SamlSession>(
        "DELETE FROM saml_sessions WHERE session_hash = $1 \
         RETURNING org_id, connection_id, name_id, name_id_format, session_index",
    )
    .bind(secrets::hash(session_secret))
    .fetch_optional(&mut *c)
    .await)?)
}
