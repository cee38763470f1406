//! `rollcall bootstrap`: an org, its first admin and a one-time API token, from nothing.

use crate::store::{self, audit, credentials, members, orgs, users, Store};

pub struct Bootstrapped {
    pub org: orgs::Org,
    pub admin: users::User,
    /// Shown once to the operator; only its hash is stored.
    pub token: String,
}

/// Creates the org and makes `admin_email` its admin (creating the user if new), all in one
/// transaction. Fails if the org slug is taken, so it cannot hand out a second admin token
/// for an existing org.
pub async fn run(
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
    let (_, token) = credentials::create_token(&mut tx, admin.id, "bootstrap", None).await?;
    let actor = audit::Actor {
        user_id: None,
        label: "operator (rollcall bootstrap)".into(),
        request_id: None,
    };
    audit::record(
        &mut tx,
        &actor,
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
