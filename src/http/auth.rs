//! Who is calling: an API token (`Authorization: Bearer rc_pat_…`) or a browser session.

use axum::{extract::FromRequestParts, http::request::Parts};

use super::error::Error;
use crate::state::AppState;
use crate::{
    browser, request,
    store::{
        audit::{self, Actor},
        credentials::{self, Credential},
        members, orgs,
        users::User,
        Tx,
    },
};

pub struct Principal {
    pub user: User,
    pub credential: Credential,
    pub request_id: Option<String>,
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let secret = request::bearer(&parts.headers)
            .map(str::to_string)
            .or_else(|| browser::session::secret(&state.config, &parts.headers))
            .ok_or(Error::Unauthorized(
                "authentication required: send Authorization: Bearer <API token>",
            ))?;
        let mut tx = state.store.read().await?;
        let found = credentials::authenticate(&mut tx, &secret).await?;
        drop(tx);
        let (authenticated, stale) = found.ok_or(Error::Unauthorized(
            "invalid, expired or revoked credentials",
        ))?;
        if stale {
            // Best effort: a failed last-used update must not fail the request.
            let touched = async {
                let mut tx = state.store.begin().await?;
                credentials::touch(&mut tx, &authenticated.credential).await?;
                tx.commit().await
            };
            if let Err(err) = touched.await {
                tracing::warn!(%err, "could not record credential use");
            }
        }
        Ok(Principal {
            user: authenticated.user,
            credential: authenticated.credential,
            request_id: request::RequestId::of(&parts.headers).0,
        })
    }
}

impl Principal {
    pub fn actor(&self) -> Actor {
        let via = match &self.credential {
            Credential::Token { name, .. } => format!("token {name:?}"),
            Credential::Session { .. } => "session".to_string(),
        };
        Actor {
            user_id: Some(self.user.id),
            label: format!("{} ({via})", self.user.email),
            request_id: self.request_id.clone(),
        }
    }

    /// Records an audit event with the caller as actor, in the caller's transaction.
    pub async fn record(&self, tx: &mut Tx, event: audit::Event<'_>) -> Result<(), Error> {
        audit::record(tx, &self.actor(), event).await?;
        Ok(())
    }

    /// The org, if the caller is an active admin of it. Checked inside the caller's
    /// transaction, so a demotion or removal that commits first is always seen.
    /// Non-members get 404, so org slugs cannot be probed.
    pub async fn admin_of(&self, tx: &mut Tx, slug: &str) -> Result<orgs::Org, Error> {
        match members::access(tx, slug, self.user.id).await? {
            None => Err(Error::NotFound(format!("organization {slug:?} not found"))),
            Some((_, false)) => Err(Error::Forbidden(format!(
                "this requires admin rights in organization {slug:?}"
            ))),
                        Some((org, true)) if org.sso_enforced && !self.credential.method().satisfies_sso() => {
                Err(Error::Forbidden(format!(
                    "organization {slug:?} requires single sign-on: sign in through your identity provider \
                     (or use a token created from such a session)"
                )))
            }
            Some((org, true)) => Ok(org),
        }
    }
}
