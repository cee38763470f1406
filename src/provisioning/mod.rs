//! The provisioning core: the one place where an identity an IdP vouches for becomes a
//! member of an organization with the right teams and admin flag.
//!
//! SAML, OIDC, SCIM and invitations are front doors: each turns its input into an
//! [`ExternalIdentity`] and calls [`provision`]. None of them writes memberships itself.
//!
//! [`decide`] only reads and says what would happen and why; [`apply`] makes it so. Both
//! run in the caller's transaction, so a login either applies completely or not at all.
//! `POST …/connections/{id}/explain` runs [`decide`] alone, which is why an admin's dry run
//! and a real login can never disagree.

mod matching;
pub mod push;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::{
    self, audit,
    connections::{self, Connection},
    domains,
    grants::{self, GroupRef, Match, TeamRef},
    identities,
    invitations::{self, Invitation},
    members, orgs, scim, teams, users, Store, Tx,
};

/// An IdP group as the IdP sent it: Entra sends object IDs, Okta sends names; SCIM and the
/// Graph fallback can send both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdpGroup {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One description of a person, whichever front door they came through. Serializable: a
/// SAML sign-in keeps its verified identity between the ACS and the browser's next step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExternalIdentity {
    pub connection_id: i64,
    /// Stable and unique within the connection: SAML persistent NameID, Entra `tid`+`oid`,
    /// SCIM id. Never the email.
    pub subject: String,
    pub email: Option<String>,
    /// Whether the IdP claims the email is verified. Informational: an existing account is
    /// linked by email only when the domain is verified for the org, whatever the IdP says.
    pub email_verified: bool,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub groups: Vec<IdpGroup>,
}

/// Which front door provisions: decides the source recorded on what it creates, and so what
/// it may later take away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Sso,
    Scim,
}

impl Via {
    fn label(self) -> &'static str {
        match self {
            Via::Sso => "sso",
            Via::Scim => "scim",
        }
    }

    fn team_source(self) -> teams::TeamSource {
        match self {
            Via::Sso => teams::TeamSource::Sso,
            Via::Scim => teams::TeamSource::Scim,
        }
    }

    fn member_source(self) -> members::Source {
        match self {
            Via::Sso => members::Source::Sso,
            Via::Scim => members::Source::Scim,
        }
    }
}

/// Why a person may not in. `message` is for the person; `detail` for logs and audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Refusal {
    /// `connection_disabled`, `no_email`, `not_granted`, `suspended`, `email_unverified_link`.
    pub code: &'static str,
    pub message: String,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("sign-in refused ({}): {}", .0.code, .0.detail)]
    Refused(Refusal),
    #[error(transparent)]
    Store(#[from] store::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkedBy {
    /// This connection has seen this subject before.
    Subject,
    /// An existing account with the same email, in a domain verified for the org.
    VerifiedEmail,
    /// An account this connection's SCIM push created, found by its email.
    ScimUser,
    /// For a SCIM push: a member of this org already, found by its email.
    ExistingMember,
    /// No account yet: one is created.
    NewUser,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllowedBy {
    Grant,
    ExistingMember,
    Invitation,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MatchedGrant {
    pub grant_id: i64,
    #[serde(rename = "match")]
    pub matches: Match,
    pub is_admin: bool,
    pub teams: Vec<TeamRef>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MatchedMapping {
    pub mapping_id: i64,
    /// The group as the mapping names it.
    pub group: GroupRef,
    /// `id` or `name`: which part of the IdP's group matched.
    pub matched_by: String,
    pub teams: Vec<TeamRef>,
}

/// What a login would do, and why. Only reads were needed to make it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Decision {
    #[serde(skip)]
    pub org_id: i64,
    #[serde(skip)]
    connection: Option<Connection>,
    /// `None` when the person may sign in.
    pub refusal: Option<Refusal>,
    pub allowed_by: Option<AllowedBy>,
    pub user_id: Option<i64>,
    pub linked_by: Option<LinkedBy>,
    pub existing_member: bool,
    pub matched_grants: Vec<MatchedGrant>,
    pub matched_mappings: Vec<MatchedMapping>,
    /// The teams the IdP data gives: from matched grants and matched mappings.
    pub idp_teams: Vec<TeamRef>,
    /// Whether a matched grant makes the person admin.
    pub grant_admin: bool,
    pub invitation: Option<Invitation>,
}

/// What a login did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Outcome {
    pub org_id: i64,
    pub user_id: i64,
    pub user_created: bool,
    pub linked_by: LinkedBy,
    pub allowed_by: AllowedBy,
    pub membership_created: bool,
    pub teams_added: Vec<TeamRef>,
    pub teams_removed: Vec<TeamRef>,
    /// The new admin flag, when it changed.
    pub admin_changed_to: Option<bool>,
    pub matched_grants: Vec<i64>,
    pub matched_mappings: Vec<MatchedMapping>,
    pub invitation_accepted: Option<i64>,
}

fn refusal(code: &'static str, message: impl Into<String>, detail: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
        detail: detail.into(),
    }
}

/// The user this connection has seen with this subject. An empty subject (an explain
/// without one) links to no one.
async fn by_subject(
    tx: &mut Tx,
    connection_id: i64,
    subject: &str,
) -> Result<Option<(i64, LinkedBy)>, Error> {
    if subject.is_empty() {
        return Ok(None);
    }
    Ok(identities::find(tx, connection_id, subject)
        .await?
        .map(|id| (id, LinkedBy::Subject)))
}

/// The grants and group mappings of a connection that match an identity.
struct Matched {
    grants: Vec<MatchedGrant>,
    mappings: Vec<MatchedMapping>,
    /// The teams they give, once each.
    idp_teams: Vec<TeamRef>,
}

/// A connection's access grants and group mappings, read once and matched against as many
/// identities as need it (a group change re-applies the teams of every member).
pub struct Rules {
    grants: Vec<grants::Grant>,
    mappings: Vec<grants::Mapping>,
}

impl Rules {
    pub async fn load(tx: &mut Tx, org_id: i64, connection_id: i64) -> Result<Rules, Error> {
        Ok(Rules {
            grants: grants::list_grants(tx, org_id, connection_id).await?,
            mappings: grants::list_mappings(tx, org_id, connection_id).await?,
        })
    }

    /// Whether a grant matches on the email's domain, which only counts when the domain is
    /// verified: otherwise matching needs no domain lookup.
    fn ask_domain(&self) -> bool {
        self.grants
            .iter()
            .any(|g| matches!(g.matches, Match::EmailDomain { .. }))
    }

    /// Whether any mapping or group grant names one of `groups`: only then can a change to
    /// who is in them move anyone's teams or admin flag.
    pub fn name_any(&self, groups: &[IdpGroup]) -> bool {
        self.mappings
            .iter()
            .any(|m| matching::group_matches(&m.group, groups).is_some())
            || self.grants.iter().any(|g| match &g.matches {
                Match::Group { id, name } => matching::group_matches(
                    &GroupRef {
                        id: id.clone(),
                        name: name.clone(),
                    },
                    groups,
                )
                .is_some(),
                _ => false,
            })
    }
}

async fn match_rules(
    tx: &mut Tx,
    org_id: i64,
    connection_id: i64,
    identity: &ExternalIdentity,
    email: Option<&str>,
    domain_verified: bool,
) -> Result<Matched, Error> {
    let rules = Rules::load(tx, org_id, connection_id).await?;
    Ok(match_loaded(&rules, identity, email, domain_verified))
}

fn match_loaded(
    rules: &Rules,
    identity: &ExternalIdentity,
    email: Option<&str>,
    domain_verified: bool,
) -> Matched {
    let matched_grants: Vec<MatchedGrant> = rules
        .grants
        .iter()
        .filter(|g| matching::grant_matches(&g.matches, identity, email, domain_verified))
        .map(|g| MatchedGrant {
            grant_id: g.id,
            matches: g.matches.clone(),
            is_admin: g.is_admin,
            teams: g.teams.clone(),
        })
        .collect();
    let matched_mappings: Vec<MatchedMapping> = rules
        .mappings
        .iter()
        .filter_map(|m| {
            matching::group_matches(&m.group, &identity.groups).map(|by| MatchedMapping {
                mapping_id: m.id,
                group: m.group.clone(),
                matched_by: by.to_string(),
                teams: m.teams.clone(),
            })
        })
        .collect();
    let idp_teams: BTreeMap<i64, TeamRef> = matched_grants
        .iter()
        .flat_map(|g| g.teams.iter())
        .chain(matched_mappings.iter().flat_map(|m| m.teams.iter()))
        .map(|t| (t.id, t.clone()))
        .collect();
    Matched {
        grants: matched_grants,
        mappings: matched_mappings,
        idp_teams: idp_teams.into_values().collect(),
    }
}

/// Admin by grant: given while a matched grant gives it, taken back when none does (never
/// from the last admin). Returns the new flag when it changed.
async fn reconcile_grant_admin(
    tx: &mut Tx,
    org_id: i64,
    user_id: i64,
    member: &members::Member,
    grant_admin: bool,
) -> Result<Option<bool>, Error> {
    if grant_admin && !member.is_admin {
        members::set_admin_source(tx, org_id, user_id, Some(members::AdminSource::Grant)).await?;
        return Ok(Some(true));
    }
    if !grant_admin && member.admin_source == Some(members::AdminSource::Grant) {
        // The last admin stays admin even when the grant that made them one is gone.
        orgs::lock(tx, org_id).await?;
        if members::other_active_admins(tx, org_id, user_id).await? > 0 {
            members::set_admin_source(tx, org_id, user_id, None).await?;
            return Ok(Some(false));
        }
        tracing::warn!(
            org_id,
            user_id,
            "grant no longer gives admin, but this is the last admin: kept"
        );
    }
    Ok(None)
}

/// What setting the teams this front door manages to exactly `wanted` would change: the
/// wanted teams the member is not in, and the teams this front door gave that are no longer
/// wanted (by id). Teams from other sources (an admin, an invitation, the other front door)
/// are left alone. One rule for a single sign-in and for a large group's many members.
fn team_changes(
    member: &members::Member,
    wanted: &[TeamRef],
    via: Via,
) -> (Vec<TeamRef>, Vec<TeamRef>) {
    let current: BTreeMap<i64, (&str, teams::TeamSource)> = member
        .teams
        .iter()
        .map(|t| (t.id, (t.name.as_str(), t.source)))
        .collect();
    let wanted_ids: BTreeSet<i64> = wanted.iter().map(|t| t.id).collect();
    let add = wanted
        .iter()
        .filter(|t| !current.contains_key(&t.id))
        .cloned()
        .collect();
    let remove = current
        .iter()
        .filter(|(id, (_, source))| *source == via.team_source() && !wanted_ids.contains(id))
        .map(|(id, (name, _))| TeamRef {
            id: *id,
            name: name.to_string(),
        })
        .collect();
    (add, remove)
}

/// Sets the teams this front door manages to exactly `wanted` ([`team_changes`]).
async fn reconcile_teams(
    tx: &mut Tx,
    org_id: i64,
    user_id: i64,
    member: &members::Member,
    wanted: &[TeamRef],
    via: Via,
) -> Result<(Vec<TeamRef>, Vec<TeamRef>), Error> {
    let (add, remove) = team_changes(member, wanted, via);
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for team in add {
        if teams::add_member(tx, org_id, team.id, user_id, via.team_source()).await? {
            added.push(team);
        }
    }
    for team in remove {
        if teams::remove_member(tx, org_id, team.id, user_id).await? {
            removed.push(team);
        }
    }
    Ok((added, removed))
}

/// The one linking rule: may the existing account with an identity's email be taken as this
/// person, by this connection? Every front door that links by email asks here.
///
/// - Yes when the email's domain is verified for the org: the org vouches for the domain.
/// - For a sign-in, yes when this same connection's SCIM push created the account: the IdP
///   vouching for the sign-in is the one that made the account.
/// - For a SCIM push, yes when the account is already a member of this org: the org's own
///   IdP is pushing the org's own people (an org that turns SCIM on after invitations and
///   SSO). The push then governs only this org's membership; it cannot sign anyone in.
/// - Otherwise no: the account belongs to someone this org cannot vouch for, and linking
///   would let the org's IdP take it over.
pub(crate) async fn linkable(
    tx: &mut Tx,
    org_id: i64,
    connection_id: i64,
    user_id: i64,
    domain_verified: bool,
    via: Via,
) -> Result<Option<LinkedBy>, Error> {
    if domain_verified {
        return Ok(Some(LinkedBy::VerifiedEmail));
    }
    match via {
        Via::Sso if scim::created_by_connection(tx, connection_id, user_id).await? => {
            Ok(Some(LinkedBy::ScimUser))
        }
        Via::Scim if members::get(tx, org_id, user_id).await?.is_some() => {
            Ok(Some(LinkedBy::ExistingMember))
        }
        _ => Ok(None),
    }
}

/// Whether `email`'s domain is verified for the org.
pub(crate) async fn domain_verified(tx: &mut Tx, org_id: i64, email: &str) -> Result<bool, Error> {
    Ok(match domains::of_email(email) {
        Some(domain) => domains::is_verified(tx, org_id, &domain).await?,
        None => false,
    })
}

/// Works out, without writing anything, whether the identity may sign in and what it gets.
pub async fn decide(tx: &mut Tx, identity: &ExternalIdentity) -> Result<Decision, Error> {
    let connection = connections::by_id(tx, identity.connection_id)
        .await?
        .ok_or(store::Error::NotFound("connection"))?;
    let org_id = connection.org_id;
    let email = identity
        .email
        .as_deref()
        .map(users::normalize_email)
        .transpose()?;
    let email_domain = email.as_deref().and_then(domains::of_email);
    let domain_verified = match &email_domain {
        Some(d) => domains::is_verified(tx, org_id, d).await?,
        None => false,
    };

    let Matched {
        grants: matched_grants,
        mappings: matched_mappings,
        idp_teams,
    } = match_rules(
        tx,
        org_id,
        connection.id,
        identity,
        email.as_deref(),
        domain_verified,
    )
    .await?;

    // Who is this? The subject first; an email only within a verified domain.
    let mut linked = by_subject(tx, connection.id, &identity.subject).await?;
    let mut refused = None;
    if linked.is_none() {
        match &email {
            None => {
                refused = Some(refusal(
                    "no_email",
                    "Your identity provider did not send an email address, which is needed to create your account. Ask your administrator.",
                    format!("connection {} sent no email for new subject {:?}", connection.id, identity.subject),
                ))
            }
            Some(email) => match users::by_email(tx, email).await? {
                None => {}
                Some(user) => match linkable(
                    tx,
                    org_id,
                    connection.id,
                    user.id,
                    domain_verified,
                    Via::Sso,
                )
                .await?
                {
                    Some(by) => linked = Some((user.id, by)),
                    None => {
                    // On PostgreSQL each statement sees the latest commits: a concurrent first
                    // login of this same subject may have committed the user and its link
                    // between the subject lookup above and the email lookup. Seeing the user
                    // means seeing the link, so look again before refusing.
                        linked = by_subject(tx, connection.id, &identity.subject).await?;
                        if linked.is_none() {
                            refused = Some(refusal(
                                "email_unverified_link",
                                format!(
                                    "An account for {email} already exists, and this sign-in cannot be linked to it because {} is not a verified domain of this organization. Ask an administrator.",
                                    email_domain.as_deref().unwrap_or("its domain")
                                ),
                                format!(
                                    "subject {:?} of connection {} claims {email}, which belongs to user {}, and the domain is not verified for org {org_id}",
                                    identity.subject, connection.id, user.id
                                ),
                            ));
                        }
                    }
                },
            },
        }
    }
    let user_id = linked.map(|(id, _)| id);
    let membership = match user_id {
        Some(id) => members::get(tx, org_id, id).await?,
        None => None,
    };
    let invitation = match &email {
        Some(email) => invitations::pending_for(tx, org_id, email).await?,
        None => None,
    };

    let allowed_by = if !matched_grants.is_empty() {
        Some(AllowedBy::Grant)
    } else if membership.is_some() {
        Some(AllowedBy::ExistingMember)
    } else if invitation.is_some() {
        Some(AllowedBy::Invitation)
    } else {
        None
    };
    if refused.is_none() {
        refused = if !connection.enabled {
            Some(refusal(
                "connection_disabled",
                "This sign-in method is turned off. Ask an administrator of your organization.",
                format!("connection {} is disabled", connection.id),
            ))
        } else if membership
            .as_ref()
            .is_some_and(|m| m.status == members::Status::Suspended)
        {
            Some(refusal(
                "suspended",
                "Your membership of this organization is suspended. Ask an administrator.",
                format!("user {:?} is suspended in org {org_id}", user_id),
            ))
        } else if allowed_by.is_none() {
            let groups: Vec<String> = identity
                .groups
                .iter()
                .map(|g| g.name.clone().or(g.id.clone()).unwrap_or_default())
                .collect();
            Some(refusal(
                "not_granted",
                "Your account is not allowed to sign in to this organization. Ask an administrator to give you access.",
                format!(
                    "no access grant of connection {} matched subject {:?}, email {:?}, groups {groups:?}; not a member and no pending invitation",
                    connection.id, identity.subject, email
                ),
            ))
        } else {
            None
        };
    }

    Ok(Decision {
        org_id,
        refusal: refused,
        allowed_by,
        user_id,
        linked_by: Some(linked.map_or(LinkedBy::NewUser, |(_, by)| by)),
        existing_member: membership.is_some(),
        grant_admin: matched_grants.iter().any(|g| g.is_admin),
        matched_grants,
        matched_mappings,
        idp_teams,
        invitation,
        connection: Some(connection),
    })
}

/// Makes a decision so. Re-reads what concurrent logins may have changed since
/// [`decide`], and relies on unique constraints, not on earlier reads, for what it creates.
pub async fn apply(
    tx: &mut Tx,
    identity: &ExternalIdentity,
    decision: &Decision,
    via: Via,
) -> Result<Outcome, Error> {
    if let Some(r) = &decision.refusal {
        return Err(Error::Refused(r.clone()));
    }
    let org_id = decision.org_id;
    let allowed_by = decision.allowed_by.unwrap_or(AllowedBy::Grant);
    let profile = users::NewUser {
        email: identity.email.clone().unwrap_or_default(),
        display_name: identity.display_name.clone(),
        given_name: identity.given_name.clone(),
        family_name: identity.family_name.clone(),
    };

    // 1. The user.
    let mut user_created = false;
    let mut linked_by = decision.linked_by.unwrap_or(LinkedBy::NewUser);
    let user_id = match decision.user_id {
        Some(id) => id,
        None => match users::insert_if_absent(tx, &profile).await? {
            Some(user) => {
                user_created = true;
                user.id
            }
            // The email was taken since `decide`: most likely by a concurrent first login of
            // this same subject, which has linked it by now.
            None => match identities::find(tx, identity.connection_id, &identity.subject).await? {
                Some(id) => {
                    linked_by = LinkedBy::Subject;
                    id
                }
                None => {
                    return Err(Error::Refused(refusal(
                        "email_unverified_link",
                        "An account with this email already exists and this sign-in cannot be linked to it. Ask an administrator.",
                        format!("email {:?} was taken concurrently by another account", identity.email),
                    )))
                }
            },
        },
    };
    let user_id = identities::link(
        tx,
        identity.connection_id,
        &identity.subject,
        user_id,
        identity.email.as_deref(),
    )
    .await?;
    if !user_created {
        users::update_names(tx, user_id, &profile).await?;
    }

    // 2. The membership, created at most once even by concurrent logins.
    let invitation = decision.invitation.as_ref();
    let membership_source = if invitation.is_some() && allowed_by == AllowedBy::Invitation {
        members::Source::Invitation
    } else {
        via.member_source()
    };
    let created = members::insert_if_absent(tx, org_id, user_id, membership_source).await?;
    let membership_created = created.is_some();
    let member = match created {
        Some(member) => member,
        None => members::require(tx, org_id, user_id).await?,
    };
    if member.status == members::Status::Suspended {
        return Err(Error::Refused(refusal(
            "suspended",
            "Your membership of this organization is suspended. Ask an administrator.",
            format!("user {user_id} is suspended in org {org_id}"),
        )));
    }

    // 3. The invitation, consumed once.
    let mut invitation_accepted = None;
    if let Some(inv) = invitation {
        if invitations::mark_accepted(tx, inv.id, user_id).await? {
            invitation_accepted = Some(inv.id);
        }
    }
    let accepted = invitation.filter(|_| invitation_accepted.is_some());

    // 4. Admin: by an invitation (kept like a manual grant), by a grant (taken back with it).
    let admin_changed_to = if accepted.is_some_and(|i| i.is_admin)
        && member.admin_source != Some(members::AdminSource::Manual)
    {
        members::set_admin_source(tx, org_id, user_id, Some(members::AdminSource::Manual)).await?;
        (!member.is_admin).then_some(true)
    } else {
        reconcile_grant_admin(tx, org_id, user_id, &member, decision.grant_admin).await?
    };

    // 5. Teams: what this front door manages is set to exactly what the IdP data gives now.
    let (mut teams_added, teams_removed) =
        reconcile_teams(tx, org_id, user_id, &member, &decision.idp_teams, via).await?;
    let current: BTreeSet<i64> = member.teams.iter().map(|t| t.id).collect();
    let wanted: BTreeSet<i64> = decision.idp_teams.iter().map(|t| t.id).collect();
    if let Some(inv) = accepted {
        for team in &inv.teams {
            if !current.contains(&team.id)
                && !wanted.contains(&team.id)
                && teams::add_member(tx, org_id, team.id, user_id, teams::TeamSource::Invitation)
                    .await?
            {
                teams_added.push(team.clone());
            }
        }
    }

    Ok(Outcome {
        org_id,
        user_id,
        user_created,
        linked_by,
        allowed_by,
        membership_created,
        teams_added,
        teams_removed,
        admin_changed_to,
        matched_grants: decision.matched_grants.iter().map(|g| g.grant_id).collect(),
        matched_mappings: decision.matched_mappings.clone(),
        invitation_accepted,
    })
}

fn actor(connection: Option<&Connection>, via: Via) -> audit::Actor {
    let label = match connection {
        Some(c) => format!("{} connection {:?} ({})", c.kind, c.name, via.label()),
        None => format!("unknown connection ({})", via.label()),
    };
    audit::Actor {
        user_id: None,
        label,
        request_id: None,
    }
}

/// Provisions one identity in one transaction: decide, apply, audit, commit. A refusal is
/// logged and audited with its precise reason (in a transaction of its own, since the
/// login's is rolled back) and returned for the front door to show.
pub async fn provision(
    store: &Store,
    identity: &ExternalIdentity,
    via: Via,
    request_id: Option<String>,
) -> Result<Outcome, Error> {
    Ok(provision_open(store, identity, via, request_id)
        .await?
        .commit()
        .await?)
}

/// What [`provision_open`] applied, in its still open transaction.
pub struct Provisioned {
    pub tx: Tx,
    pub outcome: Outcome,
    connection_id: i64,
}

impl Provisioned {
    /// Commits what was provisioned, with whatever the front door wrote beside it.
    pub async fn commit(self) -> Result<Outcome, store::Error> {
        self.tx.commit().await?;
        let outcome = self.outcome;
        tracing::info!(
            org_id = outcome.org_id,
            user_id = outcome.user_id,
            connection_id = self.connection_id,
            user_created = outcome.user_created,
            membership_created = outcome.membership_created,
            "identity provisioned"
        );
        Ok(outcome)
    }
}

/// [`provision`] without its commit: the transaction comes back open, so that a sign-in
/// starts its session in it and commits once (a commit is an fsync on PostgreSQL, and on
/// SQLite a turn at the one write lock). Nothing is applied unless it is committed. A
/// refusal is audited and returned as by [`provision`].
pub async fn provision_open(
    store: &Store,
    identity: &ExternalIdentity,
    via: Via,
    request_id: Option<String>,
) -> Result<Provisioned, Error> {
    if identity.subject.trim().is_empty() {
        return Err(store::Error::Invalid("an external identity needs a subject".into()).into());
    }
    let mut tx = store.begin().await?;
    let decision = decide(&mut tx, identity).await?;
    let mut actor = actor(decision.connection.as_ref(), via);
    actor.request_id = request_id;
    match apply(&mut tx, identity, &decision, via).await {
        Ok(outcome) => {
            audit::record(
                &mut tx,
                &actor,
                audit::Event {
                    org_id: Some(outcome.org_id),
                    action: match via {
                        Via::Sso => "sso.login",
                        Via::Scim => "scim.provisioned",
                    },
                    target_type: "member",
                    target_id: Some(outcome.user_id.to_string()),
                    before: None,
                    after: audit::snapshot(&outcome),
                },
            )
            .await?;
            Ok(Provisioned {
                tx,
                outcome,
                connection_id: identity.connection_id,
            })
        }
        Err(Error::Refused(r)) => {
            drop(tx);
            tracing::warn!(
                connection_id = identity.connection_id,
                subject = %identity.subject,
                code = r.code,
                detail = %r.detail,
                "sign-in refused"
            );
            let mut tx = store.begin().await?;
            audit::record(
                &mut tx,
                &actor,
                audit::Event {
                    org_id: Some(decision.org_id),
                    action: "sso.login_refused",
                    target_type: "external_identity",
                    target_id: Some(identity.subject.clone()),
                    before: None,
                    after: Some(serde_json::json!({
                        "code": r.code,
                        "detail": r.detail,
                        "connection_id": identity.connection_id,
                        "email": identity.email,
                    })),
                },
            )
            .await?;
            tx.commit().await?;
            Err(Error::Refused(r))
        }
        Err(other) => Err(other),
    }
}

/// What accepting an invitation with a local account did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    pub org_id: i64,
    pub user_id: i64,
    pub invitation_id: i64,
    pub membership_created: bool,
    pub teams_added: Vec<TeamRef>,
}

/// Accepts an invitation for a signed-in local user: the invitation is consumed in one
/// conditional UPDATE in this transaction, so of two concurrent accepts of one link one
/// succeeds and the other is refused. The user's email must be the invited one.
pub async fn accept_invitation(
    tx: &mut Tx,
    invitation: &Invitation,
    user: &users::User,
) -> Result<Accepted, Error> {
    let invited = users::normalize_email(&invitation.email)?;
    let signed_in = users::normalize_email(&user.email)?;
    if invited != signed_in {
        return Err(Error::Refused(refusal(
            "email_mismatch",
            format!("This invitation is for {invited}, but you are signed in as {signed_in}."),
            format!(
                "user {} ({signed_in}) tried invitation {} for {invited}",
                user.id, invitation.id
            ),
        )));
    }
    // A suspended member stays out: accepting an invitation grants no more than a sign-in.
    if members::get(tx, invitation.org_id, user.id)
        .await?
        .is_some_and(|m| m.status == members::Status::Suspended)
    {
        return Err(Error::Refused(refusal(
            "suspended",
            "Your membership of this organization is suspended. Ask an administrator.",
            format!(
                "user {} is suspended in org {} and tried invitation {}",
                user.id, invitation.org_id, invitation.id
            ),
        )));
    }
    if !invitations::mark_accepted(tx, invitation.id, user.id).await? {
        return Err(Error::Refused(refusal(
            "invitation_invalid",
            "This invitation is no longer valid.",
            format!(
                "invitation {} was not pending (accepted, revoked or expired)",
                invitation.id
            ),
        )));
    }
    let org_id = invitation.org_id;
    let membership_created =
        members::insert_if_absent(tx, org_id, user.id, members::Source::Invitation)
            .await?
            .is_some();
    if invitation.is_admin {
        members::set_admin_source(tx, org_id, user.id, Some(members::AdminSource::Manual)).await?;
    }
    let mut teams_added = Vec::new();
    for team in &invitation.teams {
        if teams::add_member(tx, org_id, team.id, user.id, teams::TeamSource::Invitation).await? {
            teams_added.push(team.clone());
        }
    }
    Ok(Accepted {
        org_id,
        user_id: user.id,
        invitation_id: invitation.id,
        membership_created,
        teams_added,
    })
}

#[cfg(test)]
mod tests;
