//! The invitation front door: admins invite people by email; the person follows the link,
//! and the provisioning rules decide the rest.
//!
//! An invitation and its email are written in one transaction (the email to the outbox), so
//! neither exists without the other.

use std::collections::BTreeSet;

use chrono::Duration;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    config::Config,
    mail, secrets,
    store::{
        self, audit,
        connections::{self, Connection},
        domains,
        invitations::{self, Invitation, NewInvitation},
        members,
        orgs::Org,
        outbox, teams, users, Tx,
    },
};

pub const TOKEN_PREFIX: &str = "rc_inv_";

/// What happened to one address of a send request.
#[derive(Debug, Serialize, ToSchema)]
pub struct AddressResult {
    pub email: String,
    /// `invited`, `resent` (an open invitation existed: it got a new link and expiry), or
    /// `error`.
    pub result: &'static str,
    pub invitation: Option<Invitation>,
    pub error: Option<AddressError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AddressError {
    /// `invalid_email`, `duplicate` or `already_member`.
    pub code: &'static str,
    pub message: String,
}

fn failed(email: &str, code: &'static str, message: String) -> AddressResult {
    AddressResult {
        email: email.to_string(),
        result: "error",
        invitation: None,
        error: Some(AddressError { code, message }),
    }
}

pub struct Request<'a> {
    pub emails: &'a [String],
    pub team_ids: &'a [i64],
    pub is_admin: bool,
}

/// Invites each address; one bad address does not stop the others. Teams are checked once
/// up front: a team that is not the org's fails the whole request.
pub async fn send(
    tx: &mut Tx,
    config: &Config,
    org: &Org,
    actor: &audit::Actor,
    inviter: &users::User,
    request: Request<'_>,
) -> store::Result<Vec<AddressResult>> {
    let wanted: BTreeSet<i64> = request.team_ids.iter().copied().collect();
    let known = teams::existing_ids(tx, org.id, &wanted).await?;
    if known != wanted {
        let missing: Vec<String> = wanted.difference(&known).map(i64::to_string).collect();
        return Err(store::Error::Invalid(format!(
            "no team with id {} in this organization; no invitation was sent",
            missing.join(", ")
        )));
    }
    let ttl = Duration::days(config.invitations.ttl_days);
    let mut seen = BTreeSet::new();
    let mut results = Vec::with_capacity(request.emails.len());
    for email in request.emails {
        let normalized = match users::normalize_email(email) {
            Ok(n) => n,
            Err(err) => {
                results.push(failed(email, "invalid_email", err.to_string()));
                continue;
            }
        };
        if !seen.insert(normalized.clone()) {
            results.push(failed(
                email,
                "duplicate",
                format!("{normalized} is listed more than once"),
            ));
            continue;
        }
        if let Some(user) = users::by_email(tx, &normalized).await? {
            if members::get(tx, org.id, user.id).await?.is_some() {
                results.push(failed(
                    email,
                    "already_member",
                    format!("{normalized} is already a member of {}", org.name),
                ));
                continue;
            }
        }
        let token = secrets::generate(TOKEN_PREFIX);
        let (invitation, result) = match invitations::open_for(tx, org.id, &normalized).await? {
            Some(open) => {
                let changes = Some((request.is_admin, request.team_ids));
                let renewed =
                    invitations::renew(tx, org.id, open.id, changes, ttl, &token.hash).await?;
                (renewed, "resent")
            }
            None => {
                let new = NewInvitation {
                    email: email.trim(),
                    is_admin: request.is_admin,
                    team_ids: request.team_ids,
                    invited_by: Some(inviter.id),
                    ttl,
                    token_hash: &token.hash,
                };
                (invitations::create(tx, org.id, new).await?, "invited")
            }
        };
        queue_email(tx, config, org, inviter, &invitation, &token.plaintext).await?;
        // Read again so the answer shows the queued email.
        let invitation = invitations::require(tx, org.id, invitation.id).await?;
        let action = if result == "invited" {
            "invitation.sent"
        } else {
            "invitation.resent"
        };
        let event =
            audit::Event::new(org.id, action, "invitation", invitation.id).after(&invitation);
        audit::record(tx, actor, event).await?;
        results.push(AddressResult {
            email: email.to_string(),
            result,
            invitation: Some(invitation),
            error: None,
        });
    }
    Ok(results)
}

/// Sends an open invitation again with a new link and expiry; the old link stops working.
pub async fn resend(
    tx: &mut Tx,
    config: &Config,
    org: &Org,
    actor: &audit::Actor,
    inviter: &users::User,
    id: i64,
) -> store::Result<Invitation> {
    let token = secrets::generate(TOKEN_PREFIX);
    let ttl = Duration::days(config.invitations.ttl_days);
    let invitation = invitations::renew(tx, org.id, id, None, ttl, &token.hash).await?;
    queue_email(tx, config, org, inviter, &invitation, &token.plaintext).await?;
    let invitation = invitations::require(tx, org.id, id).await?;
    let event = audit::Event::new(org.id, "invitation.resent", "invitation", id).after(&invitation);
    audit::record(tx, actor, event).await?;
    Ok(invitation)
}

/// The SSO connection an invitee must accept through, if any: when the org enforces SSO, or
/// when the invited email's domain is verified for the org and it has a connection enabled.
/// `Err` when SSO is enforced but no connection is enabled (no way in at all).
pub async fn sso_connection(
    tx: &mut Tx,
    org: &Org,
    email: &str,
) -> store::Result<Result<Option<Connection>, ()>> {
    let enabled: Vec<Connection> = connections::list(tx, org.id)
        .await?
        .into_iter()
        .filter(|c| c.enabled)
        .collect();
    let domain_verified = match domains::of_email(email) {
        Some(domain) => domains::is_verified(tx, org.id, &domain).await?,
        None => false,
    };
    Ok(match enabled.into_iter().next() {
        None if org.sso_enforced => Err(()),
        Some(connection) if org.sso_enforced || domain_verified => Ok(Some(connection)),
        _ => Ok(None),
    })
}

/// Where a browser starts the SSO sign-in of a connection (served by the SAML and OIDC
/// front doors), coming back to `return_to`.
pub fn sso_login_url(org: &Org, connection: &Connection, return_to: &str) -> String {
    let return_to: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
    format!(
        "/{}/{}/login?connection={}&return_to={return_to}",
        connection.kind, org.slug, connection.id
    )
}

/// The link in the email.
pub fn link(config: &Config, token: &str) -> String {
    format!(
        "{}/invite/{token}",
        config.public_base_url.trim_end_matches('/')
    )
}

async fn queue_email(
    tx: &mut Tx,
    config: &Config,
    org: &Org,
    inviter: &users::User,
    invitation: &Invitation,
    token: &str,
) -> store::Result<()> {
    let link = link(config, token);
    let inviter_name = match &inviter.display_name {
        Some(name) => format!("{name} ({})", inviter.email),
        None => inviter.email.clone(),
    };
    let rendered = mail::Invitation {
        org_name: &org.name,
        inviter: &inviter_name,
        teams: invitation.teams.iter().map(|t| t.name.clone()).collect(),
        is_admin: invitation.is_admin,
        link: &link,
        expires: invitation
            .expires_at
            .format("%Y-%m-%d %H:%M UTC")
            .to_string(),
    }
    .render()
    .map_err(|e| store::Error::Internal(format!("invitation email template failed: {e}")))?;
    outbox::enqueue(
        tx,
        outbox::NewMessage {
            org_id: Some(org.id),
            invitation_id: Some(invitation.id),
            to: &invitation.email,
            subject: &rendered.subject,
            text_body: &rendered.text,
            html_body: &rendered.html,
        },
    )
    .await?;
    Ok(())
}
