//! What the operator does from the command line, outside the API: bootstrap an org, vouch
//! for a domain without DNS, and set a person's password.

use crate::store::{self, audit, credentials, domains, members, orgs, passwords, users, Store};

fn operator(what: &str) -> audit::Actor {
    audit::Actor {
        user_id: None,
        label: format!("operator (rollcall {what})"),
        request_id: None,
    }
}

pub struct Bootstrapped {
    pub org: orgs::Org,
    pub admin: users::User,
    /// Shown once to the operator; only its hash is stored.
    pub token: String,
}

/// Creates the org and makes `admin_email` its admin (creating the user if new), all in one
/// transaction. Fails if the org slug is taken, so it cannot hand out a second admin token
/// for an existing org.
pub async fn bootstrap(
    store: &Store,
    slug: &str,
    name: &str,
    admin_email: &str,
    admin_name: Option<&str>,
) -> store::Result<Bootstrapped> {
    let mut tx = store.begin().await?;
    let org = orgs::create(&mut tx, slug, name).await?;
    let admin = match users::by_email(&mut tx, admin_email).await? {
        Some(user) => user,
        None => {
            users::create(
                &mut tx,
                users::NewUser {
                    email: admin_email.to_string(),
                    display_name: admin_name.map(str::to_string),
                    ..Default::default()
                },
            )
            .await?
        }
    };
    members::add(&mut tx, org.id, admin.id, true, members::Source::Bootstrap).await?;
    let (_, token) = credentials::create_token(
        &mut tx,
        admin.id,
        "bootstrap",
        None,
        credentials::Method::Operator,
    )
    .await?;
    audit::record(
        &mut tx,
        &operator("bootstrap"),
        audit::Event {
            org_id: Some(org.id),
            action: "org.bootstrapped",
            target_type: "organization",
            target_id: Some(org.slug.clone()),
            before: None,
            after: serde_json::json!({"org": &org, "admin": &admin.email}).into(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Bootstrapped { org, admin, token })
}

/// Marks `domain` verified for the org (claiming it first if needed), for operators who have
/// checked ownership some other way. Still refused if another org has verified it.
pub async fn verify_domain(
    store: &Store,
    slug: &str,
    domain: &str,
) -> store::Result<domains::Domain> {
    let mut tx = store.begin().await?;
    let org = orgs::by_slug(&mut tx, slug)
        .await?
        .ok_or(store::Error::NotFound("organization"))?;
    let claimed = match domains::by_name(&mut tx, org.id, domain).await? {
        Some(d) => d,
        None => domains::claim(&mut tx, org.id, domain).await?,
    };
    let verified = domains::mark_verified(&mut tx, org.id, claimed.id, "operator").await?;
    audit::record(
        &mut tx,
        &operator("domain verify"),
        audit::Event {
            org_id: Some(org.id),
            action: "domain.verified",
            target_type: "domain",
            target_id: Some(verified.domain.clone()),
            before: None,
            after: audit::snapshot(&verified),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(verified)
}

/// Gives a person a password (or a new one), e.g. a bootstrap admin who has only an API
/// token. The same policy as the sign-up and reset pages applies, and every session is ended,
/// as after a reset. Each org the person belongs to records it in its audit trail.
pub async fn set_password(
    store: &Store,
    email: &str,
    password: &str,
) -> store::Result<users::User> {
    let mut tx = store.read().await?;
    let user = users::by_email(&mut tx, email)
        .await?
        .ok_or(store::Error::NotFound("user"))?;
    drop(tx);
    crate::accounts::check_policy(password, &user.email, user.display_name.as_deref())
        .map_err(store::Error::Invalid)?;
    let password_hash = crate::accounts::hash(password).await;
    let mut tx = store.begin().await?;
    passwords::set(&mut tx, user.id, &password_hash).await?;
    credentials::revoke_sessions(&mut tx, user.id).await?;
    for access in members::of_user(&mut tx, user.id).await? {
        audit::record(
            &mut tx,
            &operator("user set-password"),
            audit::Event {
                org_id: Some(access.org_id),
                action: "user.password_set",
                target_type: "user",
                target_id: Some(user.id.to_string()),
                before: None,
                after: serde_json::json!({"email": &user.email}).into(),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(user)
}

/// Seals what older versions stored in plaintext (TOTP seeds), with the configured key.
/// `serve` and `migrate` run it after the migrations; it is a no-op once done.
pub async fn seal_stored_secrets(
    store: &Store,
    sealer: &crate::secrets::Sealer,
) -> store::Result<u64> {
    let mut tx = store.begin().await?;
    let sealed = store::mfa::seal_plaintext_seeds(&mut tx, sealer).await?;
    tx.commit().await?;
    if sealed > 0 {
        tracing::info!(sealed, "sealed TOTP seeds stored in plaintext");
    }
    Ok(sealed)
}
