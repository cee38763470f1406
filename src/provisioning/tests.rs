//! The core's rules on in-memory SQLite; the same rules run on both backends over HTTP in
//! tests/it/provisioning.rs.

use chrono::Duration;

use super::*;
use crate::store::{connections::Kind, testing::memory_store};

struct World {
    store: Store,
    org_id: i64,
    connection_id: i64,
    eng: i64,
    ops: i64,
    manual: i64,
}

async fn world() -> World {
    let store = memory_store().await;
    let mut tx = store.begin().await.unwrap();
    let org = orgs::create(&mut tx, "acme", "Acme").await.unwrap();
    let conn = connections::create(
        &mut tx,
        org.id,
        Kind::Saml,
        "Okta",
        true,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    let eng = teams::create(&mut tx, org.id, "Engineering")
        .await
        .unwrap()
        .id;
    let ops = teams::create(&mut tx, org.id, "Ops").await.unwrap().id;
    let manual = teams::create(&mut tx, org.id, "Hand-picked")
        .await
        .unwrap()
        .id;
    tx.commit().await.unwrap();
    World {
        store,
        org_id: org.id,
        connection_id: conn.id,
        eng,
        ops,
        manual,
    }
}

impl World {
    fn person(&self, subject: &str, email: &str, groups: &[&str]) -> ExternalIdentity {
        ExternalIdentity {
            connection_id: self.connection_id,
            subject: subject.into(),
            email: Some(email.into()),
            email_verified: true,
            display_name: Some(format!("Name of {subject}")),
            groups: groups
                .iter()
                .map(|g| IdpGroup {
                    id: None,
                    name: Some(g.to_string()),
                })
                .collect(),
            ..Default::default()
        }
    }

    async fn grant(&self, m: Match, teams: &[i64], is_admin: bool) -> i64 {
        let mut tx = self.store.begin().await.unwrap();
        let g = grants::create_grant(
            &mut tx,
            self.org_id,
            self.connection_id,
            &m,
            teams,
            is_admin,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        g.id
    }

    async fn map(&self, group: &str, teams: &[i64]) {
        let mut tx = self.store.begin().await.unwrap();
        let group = GroupRef {
            id: None,
            name: Some(group.into()),
        };
        grants::create_mapping(&mut tx, self.org_id, self.connection_id, &group, teams)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    async fn login(&self, who: &ExternalIdentity) -> Result<Outcome, Error> {
        provision(&self.store, who, Via::Sso, None).await
    }

    async fn member(&self, user_id: i64) -> members::Member {
        let mut tx = self.store.read().await.unwrap();
        members::require(&mut tx, self.org_id, user_id)
            .await
            .unwrap()
    }

    async fn count(&self, table: &str) -> i64 {
        let Store::Sqlite(pool) = &self.store else {
            unreachable!()
        };
        let sql = match table {
            "users" => "SELECT COUNT(*) FROM users",
            "memberships" => "SELECT COUNT(*) FROM memberships",
            "team_memberships" => "SELECT COUNT(*) FROM team_memberships",
            "external_identities" => "SELECT COUNT(*) FROM external_identities",
            _ => unreachable!(),
        };
        sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
    }

    async fn verify_domain(&self, domain: &str) {
        let mut tx = self.store.begin().await.unwrap();
        let d = domains::claim(&mut tx, self.org_id, domain).await.unwrap();
        domains::mark_verified(&mut tx, self.org_id, d.id, "operator")
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

fn refused(result: Result<Outcome, Error>) -> Refusal {
    match result {
        Err(Error::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn no_grant_no_entry_and_the_refusal_is_audited() {
    let w = world().await;
    let r = refused(w.login(&w.person("00u1", "ann@acme.com", &[])).await);
    assert_eq!(r.code, "not_granted");
    assert!(r.detail.contains("ann@acme.com"), "{}", r.detail);
    assert_eq!(w.count("users").await, 0);
    let mut tx = w.store.read().await.unwrap();
    let events = audit::list(&mut tx, w.org_id, &Default::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(events[0].action, "sso.login_refused");
    assert_eq!(events[0].after.as_ref().unwrap().0["code"], "not_granted");
}

#[tokio::test]
async fn a_grant_provisions_once_and_the_second_login_changes_nothing() {
    let w = world().await;
    w.grant(Match::Everyone, &[w.ops], false).await;
    let who = w.person("00u1", "Ann@Acme.com", &[]);
    let first = w.login(&who).await.unwrap();
    assert!(first.user_created && first.membership_created);
    assert_eq!(first.linked_by, LinkedBy::NewUser);
    assert_eq!(first.allowed_by, AllowedBy::Grant);
    assert_eq!(
        first.teams_added.iter().map(|t| t.id).collect::<Vec<_>>(),
        [w.ops]
    );
    let member = w.member(first.user_id).await;
    assert_eq!(member.source.as_str(), "sso");
    assert!(!member.is_admin);
    assert_eq!(member.teams[0].source.as_str(), "sso");

    let counts = (
        w.count("users").await,
        w.count("memberships").await,
        w.count("team_memberships").await,
    );
    let second = w.login(&who).await.unwrap();
    assert_eq!(second.user_id, first.user_id);
    assert_eq!(second.linked_by, LinkedBy::Subject);
    assert!(!second.user_created && !second.membership_created);
    assert!(second.teams_added.is_empty() && second.teams_removed.is_empty());
    assert_eq!(second.admin_changed_to, None);
    assert_eq!(
        (
            w.count("users").await,
            w.count("memberships").await,
            w.count("team_memberships").await
        ),
        counts
    );
}

#[tokio::test]
async fn groups_reconcile_teams_without_touching_manual_ones() {
    let w = world().await;
    w.grant(Match::Everyone, &[], false).await;
    w.map("Engineering", &[w.eng]).await;
    w.map("SRE", &[w.ops, w.eng]).await;
    let out = w
        .login(&w.person("00u1", "ann@acme.com", &["engineering", "Unmapped"]))
        .await
        .unwrap();
    assert_eq!(
        out.teams_added.iter().map(|t| t.id).collect::<Vec<_>>(),
        [w.eng]
    );
    assert_eq!(out.matched_mappings.len(), 1);
    assert_eq!(out.matched_mappings[0].matched_by, "name");

    // An admin adds a team by hand; the IdP then moves Ann from Engineering to SRE.
    let mut tx = w.store.begin().await.unwrap();
    teams::add_member(
        &mut tx,
        w.org_id,
        w.manual,
        out.user_id,
        teams::TeamSource::Manual,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let out = w
        .login(&w.person("00u1", "ann@acme.com", &["SRE"]))
        .await
        .unwrap();
    assert_eq!(
        out.teams_added.iter().map(|t| t.id).collect::<Vec<_>>(),
        [w.ops]
    );
    assert!(
        out.teams_removed.is_empty(),
        "Engineering still comes from SRE"
    );
    // Out of every group: the IdP-made teams go, the hand-made one stays.
    let out = w
        .login(&w.person("00u1", "ann@acme.com", &[]))
        .await
        .unwrap();
    let mut removed: Vec<_> = out.teams_removed.iter().map(|t| t.id).collect();
    removed.sort();
    assert_eq!(removed, [w.eng, w.ops]);
    let teams: Vec<_> = w
        .member(out.user_id)
        .await
        .teams
        .into_iter()
        .map(|t| (t.id, t.source.to_string()))
        .collect();
    assert_eq!(teams, [(w.manual, "manual".to_string())]);
}

#[tokio::test]
async fn admin_comes_and_goes_with_its_grant_but_not_by_hand_or_as_last_admin() {
    let w = world().await;
    w.grant(Match::Everyone, &[], false).await;
    let admins = w
        .grant(
            Match::Group {
                id: None,
                name: Some("rollcall-admins".into()),
            },
            &[],
            true,
        )
        .await;
    let ann = w
        .login(&w.person("a", "ann@acme.com", &["rollcall-admins"]))
        .await
        .unwrap();
    assert_eq!(ann.admin_changed_to, Some(true));
    assert_eq!(
        w.member(ann.user_id).await.admin_source,
        Some(members::AdminSource::Grant)
    );
    let bob = w
        .login(&w.person("b", "bob@acme.com", &["rollcall-admins"]))
        .await
        .unwrap();

    // Bob leaves the group: his grant-made admin goes.
    let out = w.login(&w.person("b", "bob@acme.com", &[])).await.unwrap();
    assert_eq!(out.admin_changed_to, Some(false));
    assert!(!w.member(bob.user_id).await.is_admin);
    // Ann is now the last admin: leaving the group does not strand the org.
    let out = w.login(&w.person("a", "ann@acme.com", &[])).await.unwrap();
    assert_eq!(out.admin_changed_to, None);
    assert!(w.member(ann.user_id).await.is_admin);

    // Made admin by hand, Bob stays admin whatever the grants say.
    let mut tx = w.store.begin().await.unwrap();
    members::set_admin(&mut tx, w.org_id, bob.user_id, true)
        .await
        .unwrap();
    grants::delete_grant(&mut tx, w.org_id, w.connection_id, admins)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let out = w.login(&w.person("b", "bob@acme.com", &[])).await.unwrap();
    assert_eq!(out.admin_changed_to, None);
    assert_eq!(
        w.member(bob.user_id).await.admin_source,
        Some(members::AdminSource::Manual)
    );
}

#[tokio::test]
async fn existing_accounts_link_by_email_only_in_a_verified_domain() {
    let w = world().await;
    w.grant(Match::Everyone, &[], false).await;
    let mut tx = w.store.begin().await.unwrap();
    let existing = users::create(
        &mut tx,
        users::NewUser {
            email: "cfo@acme.com".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    // nOAuth: the IdP's email claim alone must not take over the account.
    let r = refused(w.login(&w.person("attacker", "CFO@acme.com", &[])).await);
    assert_eq!(r.code, "email_unverified_link");
    assert_eq!(w.count("memberships").await, 0);

    w.verify_domain("acme.com").await;
    let out = w
        .login(&w.person("cfo-subject", "cfo@acme.com", &[]))
        .await
        .unwrap();
    assert_eq!(out.user_id, existing.id);
    assert_eq!(out.linked_by, LinkedBy::VerifiedEmail);
    assert!(!out.user_created);
    let again = w
        .login(&w.person("cfo-subject", "cfo@acme.com", &[]))
        .await
        .unwrap();
    assert_eq!(again.linked_by, LinkedBy::Subject);
}

#[tokio::test]
async fn a_pending_invitation_is_accepted_by_the_sso_arrival() {
    let w = world().await;
    w.map("Engineering", &[w.eng]).await;
    let mut tx = w.store.begin().await.unwrap();
    let new = invitations::NewInvitation {
        email: "Dee@Acme.com",
        is_admin: true,
        team_ids: &[w.ops],
        invited_by: None,
        ttl: Duration::days(7),
        token_hash: "test-token-hash-dee",
    };
    let inv = invitations::create(&mut tx, w.org_id, new).await.unwrap();
    tx.commit().await.unwrap();

    // No grant matches Dee, but her invitation lets her in and gives what it promised.
    let out = w
        .login(&w.person("dee", "dee@acme.com", &["Engineering"]))
        .await
        .unwrap();
    assert_eq!(out.allowed_by, AllowedBy::Invitation);
    assert_eq!(out.invitation_accepted, Some(inv.id));
    let member = w.member(out.user_id).await;
    assert_eq!(member.source.as_str(), "invitation");
    assert!(member.is_admin);
    assert_eq!(member.admin_source, Some(members::AdminSource::Manual));
    let teams: Vec<_> = member
        .teams
        .iter()
        .map(|t| (t.id, t.source.as_str()))
        .collect();
    assert_eq!(teams, [(w.eng, "sso"), (w.ops, "invitation")]);
    let mut tx = w.store.read().await.unwrap();
    let inv = invitations::get(&mut tx, inv.id).await.unwrap().unwrap();
    drop(tx);
    assert_eq!(inv.status.as_str(), "accepted");
    assert_eq!(w.count("users").await, 1);

    // She stays a member on later logins; the invitation's team is not the IdP's to remove.
    let out = w
        .login(&w.person("dee", "dee@acme.com", &[]))
        .await
        .unwrap();
    assert_eq!(out.allowed_by, AllowedBy::ExistingMember);
    assert_eq!(
        out.teams_removed.iter().map(|t| t.id).collect::<Vec<_>>(),
        [w.eng]
    );
    assert_eq!(w.member(out.user_id).await.teams.len(), 1);
}

#[tokio::test]
async fn expired_invitations_let_no_one_in() {
    let w = world().await;
    let mut tx = w.store.begin().await.unwrap();
    let new = invitations::NewInvitation {
        email: "eve@acme.com",
        is_admin: false,
        team_ids: &[],
        invited_by: None,
        ttl: Duration::seconds(-1),
        token_hash: "test-token-hash-eve",
    };
    invitations::create(&mut tx, w.org_id, new).await.unwrap();
    tx.commit().await.unwrap();
    let r = refused(w.login(&w.person("eve", "eve@acme.com", &[])).await);
    assert_eq!(r.code, "not_granted");
}

#[tokio::test]
async fn suspended_members_stay_out_and_disabled_connections_let_no_one_in() {
    let w = world().await;
    w.grant(Match::Everyone, &[], false).await;
    let out = w.login(&w.person("s", "sam@acme.com", &[])).await.unwrap();
    let mut tx = w.store.begin().await.unwrap();
    members::set_status(
        &mut tx,
        w.org_id,
        out.user_id,
        members::Status::Suspended,
        members::SuspendedBy::Admin,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let r = refused(w.login(&w.person("s", "sam@acme.com", &[])).await);
    assert_eq!(r.code, "suspended");
    assert_eq!(w.member(out.user_id).await.status.as_str(), "suspended");

    let mut tx = w.store.begin().await.unwrap();
    connections::update(
        &mut tx,
        w.org_id,
        w.connection_id,
        connections::Changes {
            enabled: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let r = refused(w.login(&w.person("t", "tia@acme.com", &[])).await);
    assert_eq!(r.code, "connection_disabled");
}

#[tokio::test]
async fn new_people_need_an_email() {
    let w = world().await;
    w.grant(Match::Everyone, &[], false).await;
    let mut who = w.person("x", "x@acme.com", &[]);
    who.email = None;
    assert_eq!(refused(w.login(&who).await).code, "no_email");
}

#[tokio::test]
async fn decide_reads_only() {
    let w = world().await;
    w.grant(Match::Everyone, &[w.ops], true).await;
    w.map("Engineering", &[w.eng]).await;
    let who = w.person("new", "new@acme.com", &["Engineering"]);
    let mut tx = w.store.begin().await.unwrap();
    let d = decide(&mut tx, &who).await.unwrap();
    tx.commit().await.unwrap();
    assert!(d.refusal.is_none());
    assert_eq!(d.linked_by, Some(LinkedBy::NewUser));
    assert!(d.grant_admin);
    assert_eq!(
        d.idp_teams.iter().map(|t| t.id).collect::<Vec<_>>(),
        [w.eng, w.ops]
    );
    assert_eq!(w.count("users").await, 0);
    assert_eq!(w.count("external_identities").await, 0);
}

#[tokio::test]
async fn domain_grants_require_a_verified_domain() {
    let w = world().await;
    let mut tx = w.store.begin().await.unwrap();
    let m = Match::EmailDomain {
        domain: "acme.com".into(),
    };
    let err = grants::create_grant(&mut tx, w.org_id, w.connection_id, &m, &[], false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a verified domain"), "{err}");
    drop(tx);
    w.verify_domain("acme.com").await;
    w.grant(m, &[], false).await;
    assert!(w.login(&w.person("a", "ann@acme.com", &[])).await.is_ok());
    assert_eq!(
        refused(w.login(&w.person("b", "bob@other.com", &[])).await).code,
        "not_granted"
    );
}

impl World {
    /// A SCIM User pushed by `connection_id`, as the SCIM front door stores one, synced.
    async fn push(
        &self,
        connection_id: i64,
        email: &str,
        created: bool,
        active: bool,
    ) -> (scim::ScimUser, push::PushOutcome) {
        let mut tx = self.store.begin().await.unwrap();
        let user = match users::insert_if_absent(
            &mut tx,
            &users::NewUser {
                email: email.into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        {
            Some(u) => u,
            None => users::by_email(&mut tx, email).await.unwrap().unwrap(),
        };
        let fields = scim::UserFields {
            user_name: email.into(),
            external_id: None,
            display_name: None,
            given_name: None,
            family_name: None,
            active,
            attributes: serde_json::json!({"userName": email}),
        };
        let row = scim::insert_user(
            &mut tx,
            self.org_id,
            connection_id,
            Some(user.id),
            created,
            &fields,
        )
        .await
        .unwrap();
        let outcome = push::sync(
            &mut tx,
            &push::Pushed {
                org_id: self.org_id,
                connection_id,
                user_id: user.id,
                scim_user_id: row.id,
                email: Some(email.into()),
                active: Some(active),
                new: false,
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        (row, outcome)
    }
}

/// What the SCIM front door does when one of the person's groups changed.
async fn group_changed(tx: &mut Tx, w: &World, pushed: &scim::ScimUser) -> push::PushOutcome {
    push::sync(
        tx,
        &push::Pushed {
            org_id: w.org_id,
            connection_id: w.connection_id,
            user_id: pushed.user_id.unwrap(),
            scim_user_id: pushed.id,
            email: None,
            active: None,
            new: false,
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_pushed_account_is_linked_at_first_sign_in_through_the_same_connection_only() {
    let w = world().await;
    // No grant: the IdP's push is the assignment.
    let (pushed, outcome) = w
        .push(w.connection_id, "new.hire@gmail.test", true, true)
        .await;
    assert!(outcome.membership_created);
    assert_eq!(
        w.member(pushed.user_id.unwrap()).await.source.as_str(),
        "scim"
    );

    // Another connection of the org claiming the same unverified address is refused.
    let mut tx = w.store.begin().await.unwrap();
    let other = connections::create(
        &mut tx,
        w.org_id,
        Kind::Oidc,
        "Other IdP",
        true,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut stranger = w.person("someone", "new.hire@gmail.test", &[]);
    stranger.connection_id = other.id;
    let r = refused(w.login(&stranger).await);
    assert_eq!(r.code, "email_unverified_link");

    // The connection that pushed the account may sign its person in, and then knows them by
    // subject.
    let out = w
        .login(&w.person("okta-00u1", "New.Hire@gmail.test", &[]))
        .await
        .unwrap();
    assert_eq!(out.user_id, pushed.user_id.unwrap());
    assert_eq!(out.linked_by, LinkedBy::ScimUser);
    assert_eq!(out.allowed_by, AllowedBy::ExistingMember);
    let again = w
        .login(&w.person("okta-00u1", "new.hire@gmail.test", &[]))
        .await
        .unwrap();
    assert_eq!(again.linked_by, LinkedBy::Subject);
}

#[tokio::test]
async fn a_push_that_did_not_create_the_account_does_not_open_it_to_email_linking() {
    let w = world().await;
    let (pushed, _) = w
        .push(w.connection_id, "shared@gmail.test", false, true)
        .await;
    let r = refused(
        w.login(&w.person("okta-00u2", "shared@gmail.test", &[]))
            .await,
    );
    assert_eq!(r.code, "email_unverified_link");
    assert_eq!(
        w.member(pushed.user_id.unwrap()).await.status.as_str(),
        "active"
    );
}

#[tokio::test]
async fn pushed_groups_map_to_scim_teams_and_leave_sso_and_manual_teams_alone() {
    let w = world().await;
    w.map("Engineering", &[w.eng]).await;
    w.grant(Match::Everyone, &[], false).await;
    let (pushed, _) = w.push(w.connection_id, "dev@acme.com", true, true).await;
    // An SSO sign-in brings its own team; an admin adds one by hand.
    w.map("Ops", &[w.ops]).await;
    w.login(&w.person("okta-dev", "dev@acme.com", &["Ops"]))
        .await
        .unwrap();
    let mut tx = w.store.begin().await.unwrap();
    teams::add_member(
        &mut tx,
        w.org_id,
        w.manual,
        pushed.user_id.unwrap(),
        teams::TeamSource::Manual,
    )
    .await
    .unwrap();
    let group = scim::insert_group(&mut tx, w.org_id, w.connection_id, "engineering", None)
        .await
        .unwrap();
    scim::add_member(&mut tx, w.org_id, group.id, pushed.id)
        .await
        .unwrap();
    let synced = group_changed(&mut tx, &w, &pushed).await;
    tx.commit().await.unwrap();
    assert_eq!(synced.teams_added.len(), 1);
    let sources = |m: members::Member| -> Vec<(i64, String)> {
        let mut v: Vec<_> = m
            .teams
            .into_iter()
            .map(|t| (t.id, t.source.to_string()))
            .collect();
        v.sort();
        v
    };
    let mut want = vec![
        (w.eng, "scim".to_string()),
        (w.ops, "sso".to_string()),
        (w.manual, "manual".to_string()),
    ];
    want.sort();
    assert_eq!(sources(w.member(pushed.user_id.unwrap()).await), want);

    // Leaving the group takes away only the scim team.
    let mut tx = w.store.begin().await.unwrap();
    scim::remove_member(&mut tx, group.id, pushed.id)
        .await
        .unwrap();
    group_changed(&mut tx, &w, &pushed).await;
    tx.commit().await.unwrap();
    let mut want = vec![(w.ops, "sso".to_string()), (w.manual, "manual".to_string())];
    want.sort();
    assert_eq!(sources(w.member(pushed.user_id.unwrap()).await), want);
}

#[tokio::test]
async fn a_group_change_never_undoes_an_admins_removal() {
    let w = world().await;
    let (pushed, _) = w.push(w.connection_id, "gone@acme.com", true, true).await;
    let mut tx = w.store.begin().await.unwrap();
    members::remove(&mut tx, w.org_id, pushed.user_id.unwrap())
        .await
        .unwrap();
    let outcome = group_changed(&mut tx, &w, &pushed).await;
    assert!(!outcome.changed());
    assert!(members::get(&mut tx, w.org_id, pushed.user_id.unwrap())
        .await
        .unwrap()
        .is_none());
}

/// Re-pushes an already pushed User with `active` as the IdP says it.
async fn repush(w: &World, pushed: &scim::ScimUser, active: bool) -> push::PushOutcome {
    let mut tx = w.store.begin().await.unwrap();
    let outcome = push::sync(
        &mut tx,
        &push::Pushed {
            org_id: w.org_id,
            connection_id: pushed.connection_id,
            user_id: pushed.user_id.unwrap(),
            scim_user_id: pushed.id,
            email: None,
            active: Some(active),
            new: false,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    outcome
}

#[tokio::test]
async fn the_idp_lifts_only_its_own_suspensions() {
    let w = world().await;
    let (pushed, _) = w.push(w.connection_id, "pat@acme.com", true, true).await;
    let user_id = pushed.user_id.unwrap();

    // The IdP deactivates and reactivates: both apply.
    let off = repush(&w, &pushed, false).await;
    assert_eq!(off.status_changed_to, Some(members::Status::Suspended));
    assert_eq!(
        w.member(user_id).await.suspended_by,
        Some(members::SuspendedBy::Scim)
    );
    let on = repush(&w, &pushed, true).await;
    assert_eq!(on.status_changed_to, Some(members::Status::Active));
    assert_eq!(w.member(user_id).await.suspended_by, None);

    // An admin suspends: the IdP's routine active=true leaves them suspended.
    let mut tx = w.store.begin().await.unwrap();
    members::set_status(
        &mut tx,
        w.org_id,
        user_id,
        members::Status::Suspended,
        members::SuspendedBy::Admin,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let kept = repush(&w, &pushed, true).await;
    assert!(kept.suspension_kept);
    assert_eq!(kept.status_changed_to, None);
    let member = w.member(user_id).await;
    assert_eq!(member.status, members::Status::Suspended);
    assert_eq!(member.suspended_by, Some(members::SuspendedBy::Admin));
}

#[tokio::test]
async fn a_suspended_member_cannot_accept_an_invitation() {
    let w = world().await;
    w.grant(Match::Everyone, &[w.eng], false).await;
    let out = w.login(&w.person("s", "sue@acme.com", &[])).await.unwrap();
    let mut tx = w.store.begin().await.unwrap();
    // Invited (e.g. before she first signed in), then suspended.
    let new = invitations::NewInvitation {
        email: "sue@acme.com",
        is_admin: true,
        team_ids: &[w.ops],
        invited_by: None,
        ttl: Duration::days(7),
        token_hash: "test-token-hash-sue",
    };
    let inv = invitations::create(&mut tx, w.org_id, new).await.unwrap();
    members::set_status(
        &mut tx,
        w.org_id,
        out.user_id,
        members::Status::Suspended,
        members::SuspendedBy::Admin,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut tx = w.store.begin().await.unwrap();
    let user = users::get(&mut tx, out.user_id).await.unwrap().unwrap();
    let r = match accept_invitation(&mut tx, &inv, &user).await {
        Err(Error::Refused(r)) => r,
        other => panic!("a suspended member accepted an invitation: {other:?}"),
    };
    assert_eq!(r.code, "suspended");
    drop(tx);
    let member = w.member(out.user_id).await;
    assert!(
        !member.is_admin,
        "the invitation's admin flag was not given"
    );
    assert_eq!(member.status, members::Status::Suspended);
    let mut tx = w.store.read().await.unwrap();
    let inv = invitations::get(&mut tx, inv.id).await.unwrap().unwrap();
    assert_eq!(inv.status, invitations::Status::Pending);
}

/// A renamed (or newly mapped) group re-applies its members' teams with set-based reads and
/// writes: the statements do not grow with the members (issue 14: 50,000 members in a
/// second). It used to cost about eight statements a member.
#[tokio::test]
async fn a_large_groups_teams_are_reapplied_in_a_bounded_number_of_statements() {
    let w = world().await;
    w.map("Engineering", &[w.eng]).await;
    const PEOPLE: usize = 1_200;
    let mut pushed = Vec::with_capacity(PEOPLE);
    for i in 0..PEOPLE {
        pushed.push(
            w.push(w.connection_id, &format!("p{i}@acme.test"), true, true)
                .await
                .0,
        );
    }
    let first = pushed[0].user_id.unwrap();
    let mut tx = w.store.begin().await.unwrap();
    // A team from an admin is left alone, whatever the IdP's groups say.
    teams::add_member(&mut tx, w.org_id, w.eng, first, teams::TeamSource::Manual)
        .await
        .unwrap();
    let group = scim::insert_group(&mut tx, w.org_id, w.connection_id, "Engineering", None)
        .await
        .unwrap();
    for p in &pushed {
        scim::add_member(&mut tx, w.org_id, group.id, p.id)
            .await
            .unwrap();
    }
    let rules = Rules::load(&mut tx, w.org_id, w.connection_id)
        .await
        .unwrap();
    let links: Vec<scim::UserLink> = pushed
        .iter()
        .map(|p| scim::UserLink {
            id: p.id,
            user_id: p.user_id,
        })
        .collect();
    let (changed, statements) = store::counting(push::resync_people(
        &mut tx,
        w.org_id,
        w.connection_id,
        &rules,
        &links,
    ))
    .await;
    let changed = changed.unwrap();
    assert_eq!(
        changed.len(),
        PEOPLE - 1,
        "all but the one already in the team"
    );
    assert!(changed
        .iter()
        .all(|(_, o)| o.teams_added.len() == 1 && o.teams_removed.is_empty()));
    assert!(
        statements < 30,
        "{statements} statements for {PEOPLE} people"
    );

    // Renamed: no mapping names it any more, so the IdP's teams go, the admin's stays.
    scim::update_group(&mut tx, w.org_id, group.id, "Engineering (old)", None)
        .await
        .unwrap();
    let (changed, statements) = store::counting(push::resync_people(
        &mut tx,
        w.org_id,
        w.connection_id,
        &rules,
        &links,
    ))
    .await;
    let changed = changed.unwrap();
    assert_eq!(changed.len(), PEOPLE - 1);
    assert!(changed
        .iter()
        .all(|(_, o)| o.teams_removed.len() == 1 && o.teams_added.is_empty()));
    assert!(
        statements < 30,
        "{statements} statements for {PEOPLE} people"
    );
    tx.commit().await.unwrap();
    assert_eq!(
        w.count("team_memberships").await,
        1,
        "only the admin's is left"
    );
    assert_eq!(
        w.member(first)
            .await
            .teams
            .iter()
            .map(|t| t.source.as_str())
            .collect::<Vec<_>>(),
        ["manual"]
    );
}
