//! API tokens and sessions: the two ways a request proves who it is.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{now, on, users::user_columns, users::User, Error, Result, Tx};
use crate::secrets;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    /// The first characters of the token, to tell tokens apart.
    pub display_prefix: String,
    pub created_at: DateTime<Utc>,
    /// Recorded to the minute: a busy token does not write on every request.
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// How a credential came to be: a session by the sign-in that made it, a token by the
/// credential that created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Password,
    Sso,
    /// The bootstrap token: the operator's break-glass access.
    Operator,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Password => "password",
            Method::Sso => "sso",
            Method::Operator => "operator",
        }
    }

    fn parse(text: &str) -> Method {
        match text {
            "sso" => Method::Sso,
            "operator" => Method::Operator,
            _ => Method::Password,
        }
    }

    /// Whether it may act in an org that enforces single sign-on.
    pub fn satisfies_sso(self) -> bool {
        matches!(self, Method::Sso | Method::Operator)
    }
}

impl Credential {
    pub fn method(&self) -> Method {
        match self {
            Credential::Token { method, .. } | Credential::Session { method, .. } => *method,
        }
    }
}

/// How a request authenticated.
#[derive(Debug, Clone)]
pub enum Credential {
    Token {
        id: i64,
        name: String,
        method: Method,
    },
    Session {
        id: i64,
        method: Method,
    },
}

#[derive(Debug, Clone)]
pub struct Authenticated {
    pub user: User,
    pub credential: Credential,
}

macro_rules! token_select {
    () => {
        "SELECT id, name, display_prefix, created_at, last_used_at, expires_at FROM api_tokens "
    };
}

/// How stale `last_used_at` / `last_seen_at` may get before a request writes it again.
const TOUCH_INTERVAL_SECONDS: i64 = 60;

/// Whether a secret last used at `last` should have its use recorded again now. Recording
/// every use would make each read request a write.
pub fn is_stale(last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last.is_none_or(|t| now - t > Duration::seconds(TOUCH_INTERVAL_SECONDS))
}

/// A token carrying `method`: the method of the credential that creates it.
pub async fn create_token(
    tx: &mut Tx,
    user_id: i64,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
    method: Method,
) -> Result<(ApiToken, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::Invalid("token name must be 1–100 characters".into()));
    }
    let secret = secrets::generate(secrets::API_TOKEN_PREFIX);
    let id: i64 = on!(tx, c => sqlx::query_scalar(
                "INSERT INTO api_tokens (user_id, name, display_prefix, secret_hash, created_at, expires_at, method) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(user_id)
    .bind(name)
    .bind(&secret.display_prefix)
    .bind(&secret.hash)
        .bind(now())
    .bind(expires_at)
    .bind(method.as_str())
    .fetch_one(&mut *c)
    .await)?;
    let sql = concat!(token_select!(), "WHERE id = $1");
    let token = on!(tx, c => sqlx::query_as::<_, ApiToken>(sql).bind(id).fetch_one(&mut *c).await)?;
    Ok((token, secret.plaintext))
}

/// The user's tokens that still work, newest first.
pub async fn list_tokens(tx: &mut Tx, user_id: i64) -> Result<Vec<ApiToken>> {
    let sql = concat!(
        token_select!(),
        "WHERE user_id = $1 AND revoked_at IS NULL ",
        "AND (expires_at IS NULL OR expires_at > $2) ORDER BY id DESC"
    );
    Ok(on!(tx, c => sqlx::query_as::<_, ApiToken>(sql)
        .bind(user_id)
        .bind(now())
        .fetch_all(&mut *c)
        .await)?)
}

pub async fn revoke_token(tx: &mut Tx, user_id: i64, token_id: i64) -> Result<ApiToken> {
    let sql = concat!(
        token_select!(),
        "WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL"
    );
    let token = on!(tx, c => sqlx::query_as::<_, ApiToken>(sql)
        .bind(token_id)
        .bind(user_id)
        .fetch_optional(&mut *c)
        .await)?
    .ok_or(Error::NotFound("token"))?;
    on!(tx, c => sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1")
        .bind(token_id)
        .bind(now())
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?;
    Ok(token)
}

/// Starts a server-side session; returns the cookie value, which is not stored.
pub async fn create_session(
    tx: &mut Tx,
    user_id: i64,
    ttl: Duration,
    method: Method,
) -> Result<String> {
    let secret = secrets::generate(secrets::SESSION_PREFIX);
    let now = now();
    on!(tx, c => sqlx::query(
                "INSERT INTO sessions (user_id, secret_hash, created_at, last_seen_at, expires_at, method) \
         VALUES ($1, $2, $3, $3, $4, $5)",
    )
    .bind(user_id)
    .bind(&secret.hash)
    .bind(now)
    .bind(now + ttl)
    .bind(method.as_str())
    .execute(&mut *c)
    .await.map(|r| r.rows_affected()))?;
    Ok(secret.plaintext)
}

/// Ends one session (sign-out, or replaced at sign-in).
pub async fn revoke_session(tx: &mut Tx, session_id: i64) -> Result<()> {
    on!(tx, c => sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(session_id)
        .bind(now())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Ends every session of the user (after a password change); API tokens stay.
pub async fn revoke_sessions(tx: &mut Tx, user_id: i64) -> Result<()> {
    on!(tx, c => sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user_id)
        .bind(now())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Revokes every session and API token of the user. Returns how many were revoked.
pub async fn revoke_all(tx: &mut Tx, user_id: i64) -> Result<u64> {
    let now = now();
    let sessions = on!(tx, c => sqlx::query(
        "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut *c)
    .await.map(|r| r.rows_affected()))?;
    let tokens = on!(tx, c => sqlx::query(
        "UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .execute(&mut *c)
    .await.map(|r| r.rows_affected()))?;
    Ok(sessions + tokens)
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    #[sqlx(flatten)]
    user: User,
    credential_id: i64,
    credential_name: String,
    method: String,
    last_touched: Option<DateTime<Utc>>,
}

/// Resolves a bearer secret (API token or session cookie) to its user. Unknown, revoked
/// and expired secrets all answer `None`, so a caller cannot tell them apart.
///
/// Returns whether the credential's last-used time is stale; the caller records it with
/// [`touch`] in a write transaction, so that authentication itself only reads.
pub async fn authenticate(tx: &mut Tx, secret: &str) -> Result<Option<(Authenticated, bool)>> {
    let hash = secrets::hash(secret);
    let now = now();
    let is_session = secret.starts_with(secrets::SESSION_PREFIX);
    let sql = if is_session {
        concat!(
            "SELECT ",
            user_columns!(),
            ", s.id AS credential_id, '' AS credential_name, s.method, s.last_seen_at AS last_touched ",
            "FROM sessions s JOIN users ON users.id = s.user_id ",
            "WHERE s.secret_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > $2"
        )
    } else {
        concat!(
            "SELECT ",
            user_columns!(),
            ", t.id AS credential_id, t.name AS credential_name, t.method, t.last_used_at AS last_touched ",
            "FROM api_tokens t JOIN users ON users.id = t.user_id ",
            "WHERE t.secret_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2)"
        )
    };
    let row = on!(tx, c => sqlx::query_as::<_, CredentialRow>(sql)
        .bind(&hash)
        .bind(now)
        .fetch_optional(&mut *c)
        .await)?;
    Ok(row.map(|row| {
        let stale = is_stale(row.last_touched, now);
        let method = Method::parse(&row.method);
        let credential = if is_session {
            Credential::Session {
                id: row.credential_id,
                method,
            }
        } else {
            Credential::Token {
                id: row.credential_id,
                name: row.credential_name,
                method,
            }
        };
        (
            Authenticated {
                user: row.user,
                credential,
            },
            stale,
        )
    }))
}

/// Records that a credential was just used.
pub async fn touch(tx: &mut Tx, credential: &Credential) -> Result<()> {
    let now = now();
    match credential {
        Credential::Token { id, .. } => on!(tx, c => sqlx::query(
            "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?,
        Credential::Session { id, .. } => on!(tx, c => sqlx::query(
            "UPDATE sessions SET last_seen_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *c)
        .await.map(|r| r.rows_affected()))?,
    };
    Ok(())
}
