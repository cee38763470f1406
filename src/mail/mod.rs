//! Outbound mail: templates, the two transports, and the worker that drains the outbox.

use std::{path::PathBuf, time::Duration};

use askama::Template;
use chrono::Utc;
use lettre::{
    message::{header::ContentType, Mailbox, MultiPart, SinglePart},
    AsyncSmtpTransport, AsyncTransport, Tokio1Executor,
};
use tokio::sync::watch;

use crate::{
    config::{InvitationConfig, MailConfig, MailTransport},
    store::{self, invitations, outbox, Store},
};

/// The invitation email, rendered from templates/mail/invitation.{txt,html}.
pub struct Invitation<'a> {
    pub org_name: &'a str,
    pub inviter: &'a str,
    pub teams: Vec<String>,
    pub is_admin: bool,
    pub link: &'a str,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "mail/invitation.txt")]
struct InvitationText<'a> {
    org_name: &'a str,
    inviter: &'a str,
    teams: &'a [String],
    is_admin: bool,
    link: &'a str,
    expires: &'a str,
}

#[derive(Template)]
#[template(path = "mail/invitation.html")]
struct InvitationHtml<'a> {
    org_name: &'a str,
    inviter: &'a str,
    teams: &'a [String],
    is_admin: bool,
    link: &'a str,
    expires: &'a str,
}

#[derive(Template)]
#[template(path = "mail/password_reset.txt")]
struct ResetText<'a> {
    email: &'a str,
    link: &'a str,
}

#[derive(Template)]
#[template(path = "mail/password_reset.html")]
struct ResetHtml<'a> {
    email: &'a str,
    link: &'a str,
}

/// The password reset email.
pub fn password_reset(email: &str, link: &str) -> Result<Rendered, askama::Error> {
    Ok(Rendered {
        subject: "Reset your rollcall password".into(),
        text: ResetText { email, link }.render()?,
        html: ResetHtml { email, link }.render()?,
    })
}

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Invitation<'_> {
    pub fn render(&self) -> Result<Rendered, askama::Error> {
        let text = InvitationText {
            org_name: self.org_name,
            inviter: self.inviter,
            teams: &self.teams,
            is_admin: self.is_admin,
            link: self.link,
            expires: &self.expires,
        }
        .render()?;
        let html = InvitationHtml {
            org_name: self.org_name,
            inviter: self.inviter,
            teams: &self.teams,
            is_admin: self.is_admin,
            link: self.link,
            expires: &self.expires,
        }
        .render()?;
        Ok(Rendered {
            subject: format!("{} invited you to {}", self.inviter, self.org_name),
            text,
            html,
        })
    }
}

#[derive(Clone)]
pub enum Mailer {
    File(PathBuf),
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

#[derive(Clone)]
pub struct Sender {
    mailer: Mailer,
    from: Mailbox,
}

impl Sender {
    pub fn new(config: &MailConfig) -> Result<Self, String> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| format!("mail.from {:?} is not a mailbox: {e}", config.from))?;
        let mailer = match config.transport {
            MailTransport::File => Mailer::File(PathBuf::from(&config.file_dir)),
            MailTransport::Smtp => Mailer::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
                    .map_err(|e| format!("mail.smtp_url is not usable: {e}"))?
                    .timeout(Some(Duration::from_secs(30)))
                    .build(),
            ),
        };
        Ok(Sender { mailer, from })
    }

    /// Sends one message. The error text is what an admin sees as the delivery's last error.
    pub async fn send(&self, message: &outbox::Message) -> Result<(), String> {
        let to: Mailbox = message
            .to_address
            .parse()
            .map_err(|e| format!("recipient {:?} is not an address: {e}", message.to_address))?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&message.subject)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(message.text_body.clone()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(message.html_body.clone()),
                    ),
            )
            .map_err(|e| format!("cannot build the message: {e}"))?;
        match &self.mailer {
            Mailer::Smtp(transport) => transport
                .send(email)
                .await
                .map(drop)
                .map_err(|e| format!("SMTP: {e}")),
            Mailer::File(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let path = dir.join(format!(
                    "{}-{}.eml",
                    Utc::now().format("%Y%m%dT%H%M%S"),
                    message.id
                ));
                tokio::fs::write(&path, email.formatted())
                    .await
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                // The file transport is for trying rollcall without a mail server, so the
                // link is logged too; never configure it where logs are shared.
                let link = message
                    .text_body
                    .split_whitespace()
                    .find(|w| w.starts_with("http"));
                tracing::info!(to = %message.to_address, path = %path.display(), link, "mail written to file");
                Ok(())
            }
        }
    }
}

/// The delay before retry number `attempt` (1-based): base, 2×base, 4×base, … up to an hour.
pub fn backoff(base_seconds: i64, attempt: i64) -> chrono::Duration {
    let factor = 1i64 << attempt.saturating_sub(1).clamp(0, 20);
    chrono::Duration::seconds(base_seconds.saturating_mul(factor).min(3600))
}

/// One pass: claims due messages, sends them, records each result. Returns how many it
/// tried. Messages are sent outside any transaction, so a crash between sending and
/// recording resends the message once its lock runs out: at least once, never lost.
pub async fn deliver_due(
    store: &Store,
    sender: &Sender,
    config: &MailConfig,
) -> store::Result<usize> {
    let mut tx = store.begin().await?;
    let batch =
        outbox::claim_due(&mut tx, 20, chrono::Duration::seconds(config.lock_seconds)).await?;
    tx.commit().await?;
    for message in &batch {
        let result = sender.send(message).await;
        let mut tx = store.begin().await?;
        match result {
            Ok(()) => {
                outbox::mark_sent(&mut tx, message.id).await?;
                crate::meter::delivery("sent");
            }
            Err(error) => {
                let retry_at = (message.attempts < config.max_attempts)
                    .then(|| store::now() + backoff(config.retry_base_seconds, message.attempts));
                tracing::warn!(message_id = message.id, attempts = message.attempts, %error, retry = retry_at.is_some(), "mail delivery failed");
                outbox::mark_failed(&mut tx, message.id, &error, retry_at).await?;
                crate::meter::delivery(if retry_at.is_some() {
                    "retry"
                } else {
                    "failed"
                });
            }
        }
        tx.commit().await?;
    }
    Ok(batch.len())
}

/// Hourly clean-up: long-expired invitations, finished rate-limit windows, expired
/// sign-in challenges. Returns how many invitations went.
async fn housekeeping(store: &Store, purge_invitations_after_days: i64) -> store::Result<u64> {
    let now = store::now();
    let mut tx = store.begin().await?;
    let n = invitations::purge_expired_before(
        &mut tx,
        now - chrono::Duration::days(purge_invitations_after_days),
    )
    .await?;
    store::limits::prune(&mut tx, now - chrono::Duration::days(1)).await?;
    store::mfa::prune_challenges(&mut tx, now).await?;
    store::saml::prune(&mut tx, now).await?;
    store::oidc_logins::prune(&mut tx, now).await?;
    tx.commit().await?;
    Ok(n)
}

/// Delivers the outbox, and once an hour does the housekeeping, until `stop` says so.
pub async fn run_worker(
    store: Store,
    sender: Sender,
    mail: MailConfig,
    invitation_config: InvitationConfig,
    mut stop: watch::Receiver<bool>,
) {
    let interval = Duration::from_millis(mail.poll_interval_ms.max(10));
    let mut last_purge = std::time::Instant::now() - Duration::from_secs(3600);
    loop {
        match deliver_due(&store, &sender, &mail).await {
            // A full batch: there may be more, go again at once.
            Ok(20) => continue,
            Ok(_) => {}
            Err(err) => tracing::error!(%err, "mail worker pass failed"),
        }
        if last_purge.elapsed() >= Duration::from_secs(3600) {
            last_purge = std::time::Instant::now();
            match housekeeping(&store, invitation_config.purge_after_days).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "deleted long-expired invitations"),
                Err(err) => tracing::error!(%err, "housekeeping failed"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn housekeeping_removes_only_what_is_stale() {
        use crate::store::{
            connections, limits, mfa, oidc_logins, orgs, saml, testing::memory_store, users,
        };
        let store = memory_store().await;
        let mut tx = store.begin().await.unwrap();
        let org = orgs::create(&mut tx, "acme", "Acme").await.unwrap();
        let user = users::create(
            &mut tx,
            users::NewUser {
                email: "a@acme.com".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        for (email, ttl_days) in [("old@x.com", -40), ("recent@x.com", -1), ("open@x.com", 7)] {
            let new = invitations::NewInvitation {
                email,
                is_admin: false,
                team_ids: &[],
                invited_by: None,
                ttl: chrono::Duration::days(ttl_days),
                token_hash: email,
            };
            invitations::create(&mut tx, org.id, new).await.unwrap();
        }
        limits::hit(&mut tx, "k", 5, 15).await.unwrap().unwrap();
        mfa::create_challenge(&mut tx, user.id, "verify", "/")
            .await
            .unwrap();
        // Sign-ins anyone can start: an OIDC state and a SAML request, one live, one stale.
        let connection = connections::create(
            &mut tx,
            org.id,
            connections::Kind::Oidc,
            "Entra",
            true,
            serde_json::json!({}),
        )
        .await
        .unwrap();
        for (state, minutes) in [("live", 10), ("stale", -10)] {
            let pending = oidc_logins::PendingLogin {
                connection_id: connection.id,
                nonce: "n".into(),
                pkce_verifier: "v".into(),
                return_to: "/".into(),
            };
            oidc_logins::create(&mut tx, state, &pending, chrono::Duration::minutes(minutes))
                .await
                .unwrap();
            let request = saml::PendingRequest {
                org_id: org.id,
                connection_id: connection.id,
                request_id: format!("id-{state}"),
                return_to: "/".into(),
                expires_at: store::now() + chrono::Duration::minutes(minutes),
                consumed_at: None,
                replaces_session_id: None,
                binding_hash: None,
            };
            saml::create_request(&mut tx, &request, state)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();

        // Nothing is stale yet but the invitation that expired 40 days ago, and the sign-ins
        // whose time ran out.
        assert_eq!(housekeeping(&store, 30).await.unwrap(), 1);
        let mut tx = store.read().await.unwrap();
        let left = invitations::list(&mut tx, org.id, None, None, 10)
            .await
            .unwrap();
        assert_eq!(left.len(), 2);
        drop(tx);
        let Store::Sqlite(pool) = &store else {
            unreachable!()
        };
        let count = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(pool)
                .await
                .unwrap()
        };
        assert_eq!(count("SELECT COUNT(*) FROM rate_limits").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM login_challenges").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM oidc_logins").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM saml_requests").await, 1);
        sqlx::query("UPDATE rate_limits SET window_start = '2000-01-01T00:00:00+00:00'")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("UPDATE login_challenges SET expires_at = '2000-01-01T00:00:00+00:00'")
            .execute(pool)
            .await
            .unwrap();
        housekeeping(&store, 30).await.unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM rate_limits").await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM login_challenges").await, 0);
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(30, 1).num_seconds(), 30);
        assert_eq!(backoff(30, 2).num_seconds(), 60);
        assert_eq!(backoff(30, 5).num_seconds(), 480);
        assert_eq!(backoff(30, 50).num_seconds(), 3600);
    }

    #[test]
    fn invitations_render_both_parts_with_escaping() {
        let rendered = Invitation {
            org_name: "Acme <Labs>",
            inviter: "ann@acme.com",
            teams: vec!["ML".into(), "Data".into()],
            is_admin: true,
            link: "https://sso.acme.com/invite/rc_inv_x",
            expires: "2026-12-03 10:00 UTC".into(),
        }
        .render()
        .unwrap();
        assert_eq!(rendered.subject, "ann@acme.com invited you to Acme <Labs>");
        assert!(rendered
            .text
            .contains("https://sso.acme.com/invite/rc_inv_x"));
        assert!(rendered.text.contains("ML, Data"));
        assert!(rendered.text.contains("administrator"));
        assert!(
            rendered.html.contains("Acme &lt;Labs&gt;"),
            "{}",
            rendered.html
        );
        assert!(rendered
            .html
            .contains("href=\"https://sso.acme.com/invite/rc_inv_x\""));
    }
}
