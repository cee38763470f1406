//! Who is calling: a SCIM token of the org named in the URL, counted against its rate limit.

use axum::{
    extract::{FromRequestParts, Path},
    http::{request::Parts, StatusCode},
};
use chrono::Utc;

use super::error::ScimError;
use crate::{
    request::{bearer, RequestId},
    state::AppState,
    store::{self, audit, credentials, orgs, scim_tokens, scim_tokens::ScimToken},
};

/// The identity provider calling: a SCIM token of the org named in the URL.
pub struct ScimClient {
    pub org: orgs::Org,
    pub token: ScimToken,
    pub request_id: Option<String>,
}

impl ScimClient {
    /// Audit events name the token, so an admin can tell which IdP integration acted.
    pub fn actor(&self) -> audit::Actor {
        audit::Actor {
            user_id: None,
            label: format!("SCIM token {:?}", self.token.name),
            request_id: self.request_id.clone(),
        }
    }
}

impl FromRequestParts<AppState> for ScimClient {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ScimError> {
        let secret = bearer(&parts.headers).map(str::to_string).ok_or_else(|| {
            ScimError::unauthorized(
                "authentication required: send Authorization: Bearer <SCIM token>",
            )
        })?;
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ScimError::new(StatusCode::NOT_FOUND, None, "no such SCIM endpoint"))?;
        let slug = params
            .iter()
            .find(|(name, _)| name == "org")
            .map(|(_, value)| value.as_str())
            .unwrap_or_default();
        // One statement: no transaction around it (this runs before every SCIM request).
        let mut tx = state.store.autocommit().await?;
        let found = scim_tokens::authenticate(&mut tx, &secret).await?;
        drop(tx);
        // One answer for a bad token and for a good token used on another org's URL, so a
        // token reveals nothing about which other orgs exist.
        let (token, org) = match found {
            Some((org, token)) if org.slug == slug => (token, org),
            _ => {
                return Err(ScimError::unauthorized(
                    "invalid or revoked SCIM token, or a token of another organization",
                ))
            }
        };
        let limit = state.config.scim.requests_per_minute;
        if limit > 0 {
            // Counted per token in the database, so instances behind a load balancer agree.
            let mut tx = state.store.write_alone().await?;
            let verdict =
                store::limits::hit(&mut tx, &format!("scim:{}", token.id), limit, 1).await?;
            tx.commit().await?;
            if let Err(until) = verdict {
                let seconds = (until - Utc::now()).num_seconds().max(1);
                return Err(ScimError::rate_limited(seconds));
            }
        }
        if credentials::is_stale(token.last_used_at, chrono::Utc::now()) {
            // Best effort: a failed last-used update must not fail the IdP's request.
            let touched = async {
                let mut tx = state.store.write_alone().await?;
                scim_tokens::touch(&mut tx, token.id).await?;
                tx.commit().await
            };
            if let Err(err) = touched.await {
                tracing::warn!(%err, "could not record SCIM token use");
            }
        }
        let request_id = RequestId::of(&parts.headers).0;
        Ok(ScimClient {
            org,
            token,
            request_id,
        })
    }
}
