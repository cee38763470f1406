//! Who is calling: an API token (`Authorization: Bearer rc_pat_…`) or a browser session.

use axum::{extract::FromRequestParts, http::request::Parts};

use super::error::Error;
use crate::state::AppState;
use crate::{
    admin::Admin,
    browser, request,
    store::{
        audit::Actor,
        credentials::{self, Credential},
        orgs,
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

    /// The caller as the admin commands take them.
    pub fn admin(&self) -> Admin {
        Admin {
            user: self.user.clone(),
            method: self.credential.method(),
            actor: self.actor(),
        }
    }

    /// The org, if the caller is an active admin of it ([`Admin::org`]).
    pub async fn admin_of(&self, tx: &mut Tx, slug: &str) -> Result<orgs::Org, Error> {
        Ok(self.admin().org(tx, slug).await?)
    }
}
