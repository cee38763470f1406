//! Org administration: the commands an org admin runs, shared by the admin API (`http`)
//! and the console (`console`). Each front door turns its input (JSON, a form) into a
//! command; the command changes the org through the store and records its audit event, in
//! the caller's transaction, so the API and the console cannot drift apart.
//!
//! Whether the caller administers the org at all is [`Admin::org`], checked inside that same
//! transaction: a demotion or removal that commits first is always seen.

pub mod connections;
pub mod domains;
pub mod invitations;
pub mod me;
pub mod members;
pub mod orgs;
pub mod scim_tokens;
pub mod teams;

use crate::{
    provisioning,
    store::{
        self,
        audit::{self, Actor},
        credentials::Method,
        members as store_members,
        orgs::Org,
        users::User,
        Tx,
    },
};

/// Why a command did not run. Front doors render it in their own shape.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Well-formed, but the world does not allow it yet (the DNS record is not there).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// A service rollcall depends on failed (a DNS lookup).
    #[error("{message}")]
    Upstream { code: &'static str, message: String },
    #[error(transparent)]
    Store(store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<store::Error> for Error {
    fn from(err: store::Error) -> Self {
        match err {
            store::Error::NotFound(what) => Error::NotFound(format!("{what} not found")),
            store::Error::Conflict { code, message } => Error::Conflict { code, message },
            store::Error::Invalid(message) => Error::Invalid(message),
            other => Error::Store(other),
        }
    }
}

impl From<provisioning::Error> for Error {
    fn from(err: provisioning::Error) -> Self {
        match err {
            provisioning::Error::Store(e) => e.into(),
            provisioning::Error::Refused(r) => Error::Conflict {
                code: r.code,
                message: r.message,
            },
        }
    }
}

/// Who runs a command: a person, how they signed in, and the actor their audit events name.
pub struct Admin {
    pub user: User,
    pub method: Method,
    pub actor: Actor,
}

impl Admin {
    /// The org, if this person is an active admin of it (and, where the org enforces single
    /// sign-on, signed in through it). Non-members get "not found", so org slugs cannot be
    /// probed.
    pub async fn org(&self, tx: &mut Tx, slug: &str) -> Result<Org> {
        match store_members::access(tx, slug, self.user.id).await? {
            None => Err(Error::NotFound(format!("organization {slug:?} not found"))),
            Some((_, false)) => Err(Error::Forbidden(format!(
                "this requires admin rights in organization {slug:?}"
            ))),
            Some((org, true)) if org.sso_enforced && !self.method.satisfies_sso() => {
                Err(Error::Forbidden(format!(
                    "organization {slug:?} requires single sign-on: sign in through your identity provider \
                     (or use a token created from such a session)"
                )))
            }
            Some((org, true)) => Ok(org),
        }
    }

    /// Records an audit event with this admin as actor, in the command's transaction.
    pub async fn record(&self, tx: &mut Tx, event: audit::Event<'_>) -> Result<()> {
        audit::record(tx, &self.actor, event).await?;
        Ok(())
    }
}
