//! What an identity provider pushes through SCIM, applied by the provisioning core.
//!
//! The SCIM front door keeps the pushed resources (`store::scim`); everything that touches a
//! membership — creating it, suspending it for `active=false`, removing it, and the teams its
//! groups map to — happens here, with the same grants and group mappings a sign-in through
//! the same connection uses. The IdP's push is itself the assignment, so no grant is needed
//! to let a pushed person in; grants still add their teams and admin flag.

use serde::Serialize;
use utoipa::ToSchema;

use std::collections::{HashMap, HashSet};

use super::{
    domain_verified, linkable, match_loaded, reconcile_grant_admin, reconcile_teams, refusal,
    team_changes, Error, ExternalIdentity, IdpGroup, LinkedBy, MatchedMapping, Rules, Via,
};
use crate::store::{
    self, domains,
    grants::{self, TeamRef},
    members::{self, Source, Status, SuspendedBy},
    scim, teams, users, Tx,
};

/// A pushed person as the core needs them.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub org_id: i64,
    pub connection_id: i64,
    pub user_id: i64,
    pub scim_user_id: i64,
    pub email: Option<String>,
    /// What the IdP said of `active` when it pushed the User itself; `None` when only a
    /// group changed. Only a push of the User creates or re-activates a membership, so a
    /// group change never undoes an admin's removal or suspension.
    pub active: Option<bool>,
    /// The push created the SCIM User just now, so it is in no group yet.
    pub new: bool,
}

/// What a push changed.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct PushOutcome {
    pub user_id: i64,
    pub membership_created: bool,
    /// `active` or `suspended`, when it changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_changed_to: Option<Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_changed_to: Option<bool>,
    pub teams_added: Vec<TeamRef>,
    pub teams_removed: Vec<TeamRef>,
    pub matched_mappings: Vec<MatchedMapping>,
    /// The IdP said active, but an admin suspended the member: they stay suspended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub suspension_kept: bool,
}

impl PushOutcome {
    pub fn changed(&self) -> bool {
        self.membership_created
            || self.status_changed_to.is_some()
            || self.admin_changed_to.is_some()
            || !self.teams_added.is_empty()
            || !self.teams_removed.is_empty()
    }
}

/// The account for a pushed email: a new one made from the pushed profile, or the existing
/// one when the core's linking rule ([`linkable`]) lets this org take it. Returns the user
/// and how it was found (`NewUser` when this push created it).
pub async fn account_for(
    tx: &mut Tx,
    org_id: i64,
    connection_id: i64,
    profile: &users::NewUser,
) -> Result<(i64, LinkedBy), Error> {
    if let Some(user) = users::insert_if_absent(tx, profile).await? {
        return Ok((user.id, LinkedBy::NewUser));
    }
    let email = users::normalize_email(&profile.email)?;
    let existing = users::by_email(tx, &email).await?.ok_or_else(|| {
        store::Error::conflict("concurrent", "the account changed concurrently; retry")
    })?;
    let verified = domain_verified(tx, org_id, &email).await?;
    match linkable(tx, org_id, connection_id, existing.id, verified, Via::Scim).await? {
        Some(by) => Ok((existing.id, by)),
        None => Err(Error::Refused(refusal(
            "email_unverified_link",
            format!(
                "an account for {email} already exists, is not a member of this organization, and its domain is not verified for this organization, so it cannot be linked",
            ),
            format!(
                "connection {connection_id} pushed {email}, which belongs to user {}, and the domain is not verified for org {org_id}",
                existing.id
            ),
        ))),
    }
}

/// What a pushed profile changed on the person's account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProfileOutcome {
    /// Display, given and family name.
    pub names: bool,
    pub email: bool,
    /// Why not all of it applied: `shared` (the account also belongs to another org) or
    /// `not_created_by_push` (the email of an account this IdP did not create).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_because: Option<&'static str>,
}

/// A pushed profile (names, email) for the account a SCIM User is linked to. One org's IdP
/// never rewrites an account that other orgs share: then nothing applies. The names apply
/// to an account that belongs to this org alone. The email, which is how the person signs
/// in with a password and where their reset links go, applies only to an account this org's
/// push created. `active` is not here: it only ever touches this org's membership.
pub async fn update_profile(
    tx: &mut Tx,
    org_id: i64,
    user_id: i64,
    created_by_push: bool,
    profile: &users::NewUser,
) -> Result<ProfileOutcome, Error> {
    if scim::shared_with_other_orgs(tx, org_id, user_id).await? {
        return Ok(ProfileOutcome {
            kept_because: Some("shared"),
            ..Default::default()
        });
    }
    users::update_names(tx, user_id, profile).await?;
    if !created_by_push {
        return Ok(ProfileOutcome {
            names: true,
            email: false,
            kept_because: Some("not_created_by_push"),
        });
    }
    users::update_email(tx, user_id, &profile.email).await?;
    Ok(ProfileOutcome {
        names: true,
        email: true,
        kept_because: None,
    })
}

/// Makes the membership match the push: present, active or suspended as the IdP says, and
/// with exactly the `scim` teams its groups and the connection's grants give.
pub async fn sync(tx: &mut Tx, pushed: &Pushed) -> Result<PushOutcome, Error> {
    let rules = Rules::load(tx, pushed.org_id, pushed.connection_id).await?;
    sync_with(tx, pushed, &rules).await
}

/// [`sync`] with the connection's rules already read.
async fn sync_with(tx: &mut Tx, pushed: &Pushed, rules: &Rules) -> Result<PushOutcome, Error> {
    let groups = if pushed.new {
        Vec::new()
    } else {
        scim::groups_of_users(tx, &[pushed.scim_user_id])
            .await?
            .into_iter()
            .map(|g| IdpGroup {
                // Entra's externalId is the group's object ID, as its tokens carry it.
                id: g.external_id,
                name: Some(g.display_name),
            })
            .collect()
    };
    let email = pushed
        .email
        .as_deref()
        .map(users::normalize_email)
        .transpose()?;
    let domain_verified = match email.as_deref() {
        Some(email) if rules.ask_domain() => domain_verified(tx, pushed.org_id, email).await?,
        _ => false,
    };
    let identity = ExternalIdentity {
        connection_id: pushed.connection_id,
        subject: format!("scim:{}", pushed.scim_user_id),
        email: email.clone(),
        groups,
        ..Default::default()
    };
    let matched = match_loaded(rules, &identity, email.as_deref(), domain_verified);

    let (org_id, user_id) = (pushed.org_id, pushed.user_id);
    let created = match pushed.active {
        Some(_) => members::insert_if_absent(tx, org_id, user_id, Source::Scim).await?,
        None => None,
    };
    let membership_created = created.is_some();
    let member = match created {
        Some(member) => Some(member),
        None => members::get(tx, org_id, user_id).await?,
    };
    let Some(mut member) = member else {
        return Ok(PushOutcome {
            user_id,
            ..Default::default()
        });
    };
    let mut status_changed_to = None;
    let wanted = pushed.active.map(|active| {
        if active {
            Status::Active
        } else {
            Status::Suspended
        }
    });
    let mut suspension_kept = false;
    if let Some(wanted) = wanted.filter(|w| member.status != *w) {
        if wanted == Status::Active && member.suspended_by != Some(SuspendedBy::Scim) {
            // An admin suspended them: the IdP's active=true (sent with every update) does
            // not undo that. Only an admin reactivates.
            suspension_kept = true;
        } else {
            // Suspension revokes the person's sessions and tokens when no other org is left.
            let (_, after) =
                members::set_status(tx, org_id, user_id, wanted, SuspendedBy::Scim).await?;
            member = after;
            status_changed_to = Some(wanted);
        }
    }
    let grant_admin = matched.grants.iter().any(|g| g.is_admin);
    let admin_changed_to = reconcile_grant_admin(tx, org_id, user_id, &member, grant_admin).await?;
    let (teams_added, teams_removed) =
        reconcile_teams(tx, org_id, user_id, &member, &matched.idp_teams, Via::Scim).await?;
    Ok(PushOutcome {
        user_id,
        membership_created,
        status_changed_to,
        admin_changed_to,
        teams_added,
        teams_removed,
        matched_mappings: matched.mappings,
        suspension_kept,
    })
}

/// Re-applies the teams of pushed people after a group they are (or were) in changed, with
/// the connection's rules read once for all of them. Returns what changed, per SCIM User.
/// People pushed without an email are no one yet, and are skipped; so are people who are
/// not (or no longer) members.
///
/// A renamed group of 50,000 members must not cost a round trip per member: people are
/// read, matched and written in chunks ([`PEOPLE_PER_CHUNK`]), with set-based reads and
/// writes, and the same rule per person ([`match_loaded`], [`team_changes`]) as
/// [`sync`] applies to one. Only an admin flag a grant gives or takes is written per
/// person, as it must guard the last admin.
pub async fn resync_people(
    tx: &mut Tx,
    org_id: i64,
    connection_id: i64,
    rules: &Rules,
    people: &[scim::UserLink],
) -> Result<Vec<(i64, PushOutcome)>, Error> {
    if people.is_empty() {
        return Ok(Vec::new());
    }
    let verified = domains::verified(tx, org_id).await?;
    let mut changed = Vec::new();
    for chunk in people.chunks(PEOPLE_PER_CHUNK) {
        let user_ids: Vec<i64> = chunk.iter().filter_map(|p| p.user_id).collect();
        let mut members: HashMap<i64, members::Member> = members::get_many(tx, org_id, &user_ids)
            .await?
            .into_iter()
            .map(|m| (m.user.id, m))
            .collect();
        let scim_ids: Vec<i64> = chunk.iter().map(|p| p.id).collect();
        let mut groups: HashMap<i64, Vec<IdpGroup>> = HashMap::new();
        for g in scim::groups_of_users(tx, &scim_ids).await? {
            groups.entry(g.scim_user_id).or_default().push(IdpGroup {
                id: g.external_id,
                name: Some(g.display_name),
            });
        }

        let mut planned = Vec::new();
        let (mut adds, mut removes) = (Vec::new(), Vec::new());
        for person in chunk {
            let Some(member) = person.user_id.and_then(|id| members.remove(&id)) else {
                continue;
            };
            let user_id = member.user.id;
            let email = users::normalize_email(&member.user.email)?;
            let domain_verified = domains::of_email(&email).is_some_and(|d| verified.contains(&d));
            let identity = ExternalIdentity {
                connection_id,
                subject: format!("scim:{}", person.id),
                email: Some(email.clone()),
                groups: groups.remove(&person.id).unwrap_or_default(),
                ..Default::default()
            };
            let matched = match_loaded(rules, &identity, Some(&email), domain_verified);
            let grant_admin = matched.grants.iter().any(|g| g.is_admin);
            let admin_changed_to =
                reconcile_grant_admin(tx, org_id, user_id, &member, grant_admin).await?;
            let (add, remove) = team_changes(&member, &matched.idp_teams, Via::Scim);
            adds.extend(add.iter().map(|t| (t.id, user_id)));
            removes.extend(remove.iter().map(|t| (t.id, user_id)));
            planned.push((person.id, user_id, admin_changed_to, add, remove, matched));
        }
        let added: HashSet<(i64, i64)> =
            teams::add_members(tx, org_id, &adds, Via::Scim.team_source())
                .await?
                .into_iter()
                .collect();
        let removed: HashSet<(i64, i64)> = teams::remove_members(tx, org_id, &removes)
            .await?
            .into_iter()
            .collect();
        for (scim_id, user_id, admin_changed_to, add, remove, matched) in planned {
            let outcome = PushOutcome {
                user_id,
                admin_changed_to,
                teams_added: add
                    .into_iter()
                    .filter(|t| added.contains(&(t.id, user_id)))
                    .collect(),
                teams_removed: remove
                    .into_iter()
                    .filter(|t| removed.contains(&(t.id, user_id)))
                    .collect(),
                matched_mappings: matched.mappings,
                ..Default::default()
            };
            if outcome.changed() {
                changed.push((scim_id, outcome));
            }
        }
    }
    Ok(changed)
}

/// People read and written per round of [`resync_people`].
const PEOPLE_PER_CHUNK: usize = 500;

/// Re-applies the teams of the pushed members of the group a mapping names, after the
/// mapping was made or removed: mappings apply to what the IdP pushed at once, not at each
/// person's next push or sign-in. Returns how many people's teams or admin flag changed.
pub async fn resync_group(
    tx: &mut Tx,
    org_id: i64,
    connection_id: i64,
    group: &grants::GroupRef,
) -> Result<usize, Error> {
    let people = scim::members_of_named_groups(
        tx,
        org_id,
        connection_id,
        group.id.as_deref(),
        group.name.as_deref(),
    )
    .await?;
    let rules = Rules::load(tx, org_id, connection_id).await?;
    Ok(resync_people(tx, org_id, connection_id, &rules, &people)
        .await?
        .len())
}

/// The IdP deleted the User: the membership goes (with its teams), at once. The global user
/// stays; it may belong to other orgs. A membership an admin already removed is no error.
pub async fn remove(tx: &mut Tx, org_id: i64, user_id: i64) -> Result<bool, Error> {
    if members::get(tx, org_id, user_id).await?.is_none() {
        return Ok(false);
    }
    members::remove(tx, org_id, user_id).await?;
    Ok(true)
}
