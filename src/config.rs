//! Configuration: built-in defaults, then a TOML file, then `ROLLCALL_*` environment
//! variables (nested keys with `__`, e.g. `ROLLCALL_HTTP__MAX_BODY_BYTES`).

use std::{net::SocketAddr, path::Path};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds to.
    pub listen: SocketAddr,
    /// The URL browsers and IdPs use to reach rollcall; SAML and OIDC URLs derive from it.
    pub public_base_url: String,
    /// `sqlite://FILE` (embedded default) or `postgres://…`.
    pub database_url: String,
    /// With SQLite, `rollcall serve` keeps its threads on one CPU: each statement is two
    /// hand-offs between threads, and on one CPU they cost a context switch instead of an
    /// interrupt between processors (writes ran 2.1 times as fast on 2 cores). Password
    /// hashing still uses every CPU. Turn it off for a read-heavy SQLite server on many
    /// cores. PostgreSQL servers are never pinned.
    pub sqlite_one_cpu: bool,
    pub log: LogConfig,
    pub http: HttpConfig,
    pub sessions: SessionConfig,
    pub dns: DnsConfig,
    pub mail: MailConfig,
    pub invitations: InvitationConfig,
    pub secrets: SecretsConfig,
    pub oidc: OidcConfig,
    pub scim: ScimConfig,
    pub saml: SamlConfig,
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `rollcall=debug,tower_http=info`; `RUST_LOG` wins.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Requests with a larger body are refused with 413 before they are parsed.
    pub max_body_bytes: usize,
    /// How long graceful shutdown waits for in-flight requests.
    pub shutdown_grace_seconds: u64,
    /// Behind a reverse proxy, the header carrying the client's address (e.g.
    /// `x-forwarded-for`; its first entry is used). Unset: the TCP peer's address. Set it
    /// only behind a proxy that overwrites the header, or clients choose their own address.
    pub client_ip_header: Option<String>,
    /// SSO sign-ins one client address may start per minute (`/saml/{org}/login`,
    /// `/oidc/{org}/login`): each start writes a row and may fetch from the IdP, and anyone
    /// can ask. 0 turns the limit off.
    pub sign_in_starts_per_minute: i64,
    /// Open client connections at most. Beyond it, new connections wait in the kernel's
    /// queue until one closes (and the log says so). Keep it below the process's open-files
    /// limit less the database pool: every connection is a file descriptor.
    pub max_connections: usize,
    /// A client must send a request's headers within this many seconds of connecting or
    /// of its previous response, or the connection is closed: idle and trickling
    /// (slowloris) connections cannot hold the slots.
    pub header_read_timeout_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    pub ttl_hours: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Nameservers (`IP:port`) for domain verification lookups; empty uses the system's.
    pub nameservers: Vec<String>,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// Writes each message as an .eml file into `mail.file_dir` (and logs it): no mail server
    /// needed, for trying rollcall out and for development.
    File,
    /// Delivers through the SMTP server at `mail.smtp_url`.
    Smtp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    pub transport: MailTransport,
    /// The From address, e.g. `Acme Access <access@acme.com>`.
    pub from: String,
    pub file_dir: String,
    /// `smtp://host:587?tls=required` (STARTTLS), `smtps://host:465` (implicit TLS) or
    /// `smtp://host:25` (no TLS: only to a relay on the same host); credentials as
    /// `smtps://user:password@host`.
    pub smtp_url: String,
    /// How often the delivery worker looks for due messages.
    pub poll_interval_ms: u64,
    /// Attempts before a message is marked failed.
    pub max_attempts: i64,
    /// Delay before the first retry; it doubles with each attempt, up to an hour.
    pub retry_base_seconds: i64,
    /// How long a worker may hold a message it is sending before another may take it over.
    pub lock_seconds: i64,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            transport: MailTransport::File,
            from: "rollcall <rollcall@localhost>".into(),
            file_dir: "mail".into(),
            smtp_url: "smtp://localhost:25".into(),
            poll_interval_ms: 1000,
            max_attempts: 8,
            retry_base_seconds: 30,
            lock_seconds: 120,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// The key (base64, 32 bytes) that encrypts stored client secrets and private keys.
    /// Unset: read from `key_file`.
    pub key: Option<String>,
    /// Created with a fresh key (mode 0600) on first start when missing. Back it up with the
    /// database: without it, stored client secrets cannot be read.
    pub key_file: String,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            key: None,
            key_file: "rollcall.key".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// Where Entra ID lives; tests point it at a local stand-in.
    pub entra_authority: String,
    /// Leeway for `exp`, `iat` and `nbf` against clock differences.
    pub clock_skew_seconds: i64,
    /// Let discovery and token requests reach loopback and private addresses. Only for a
    /// provider on your own network (or a test stand-in): it opens the door to SSRF.
    pub allow_private_addresses: bool,
    /// A token signed with a key rollcall has not seen refreshes the provider's keys, at
    /// most this often, so forged `kid`s cannot make rollcall hammer the provider.
    pub jwks_refresh_min_seconds: u64,
    /// Microsoft Graph, asked for a person's groups when a token has too many to carry.
    pub graph_base: String,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            entra_authority: "https://login.microsoftonline.com".into(),
            clock_skew_seconds: 120,
            allow_private_addresses: false,
            jwks_refresh_min_seconds: 60,
            graph_base: "https://graph.microsoft.com".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamlConfig {
    /// How often IdP metadata given by URL is fetched again; a failed fetch keeps the last
    /// good copy. 0 turns refreshing off.
    pub metadata_refresh_minutes: u64,
    /// Let metadata URLs reach loopback and private addresses (and plain http). Only for an
    /// IdP on your own network, or a test: it opens the door to SSRF.
    pub allow_private_addresses: bool,
}

impl Default for SamlConfig {
    fn default() -> Self {
        Self {
            metadata_refresh_minutes: 720,
            allow_private_addresses: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScimConfig {
    /// Requests one SCIM token may make per minute, counted in the database so every
    /// instance agrees; beyond it, 429 with `Retry-After`. 0 turns the limit off. Entra's
    /// gallery asks for at least 25 requests a second per tenant.
    pub requests_per_minute: i64,
}

impl Default for ScimConfig {
    fn default() -> Self {
        Self {
            requests_per_minute: 6000,
        }
    }
}

/// `/metrics` in Prometheus' text format. Not public by default: it answers only on its own
/// listen address, or on the main one to a scraper that sends the token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// A separate address serving only `/metrics` (e.g. `127.0.0.1:9464`), without a token.
    pub listen: Option<SocketAddr>,
    /// A bearer token that opens `/metrics` on the main address
    /// (`Authorization: Bearer <token>`). At least 32 characters.
    pub token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InvitationConfig {
    /// How long an invitation link works.
    pub ttl_days: i64,
    /// Expired invitations are deleted automatically this long after they expired.
    pub purge_after_days: i64,
}

impl Default for InvitationConfig {
    fn default() -> Self {
        Self {
            ttl_days: 7,
            purge_after_days: 30,
        }
    }
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            timeout_seconds: 5,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 8080).into(),
            public_base_url: "http://127.0.0.1:8080".into(),
            database_url: "sqlite://rollcall.db".into(),
            sqlite_one_cpu: true,
            log: LogConfig::default(),
            http: HttpConfig::default(),
            sessions: SessionConfig::default(),
            dns: DnsConfig::default(),
            mail: MailConfig::default(),
            invitations: InvitationConfig::default(),
            secrets: SecretsConfig::default(),
            oidc: OidcConfig::default(),
            scim: ScimConfig::default(),
            saml: SamlConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            level: "info".into(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            shutdown_grace_seconds: 30,
            client_ip_header: None,
            // Generous for an office behind one NAT address at nine in the morning.
            sign_in_starts_per_minute: 120,
            // Below the common 1,024 open-files limit, with room for the pool and logs.
            max_connections: 768,
            header_read_timeout_seconds: 30,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self { ttl_hours: 12 }
    }
}

impl Config {
    /// Loads defaults, then `file` if given (it must exist) or `rollcall.toml` if present,
    /// then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => figment = figment.merge(Toml::file("rollcall.toml")),
        }
        figment
            .merge(
                Env::prefixed("ROLLCALL_")
                    // ROLLCALL_CONFIG names the file; ROLLCALL_TEST_* belong to the test suite.
                    .filter(|key| {
                        key != "config" && !key.as_str().to_ascii_lowercase().starts_with("test_")
                    })
                    .split("__"),
            )
            .extract()
            .map_err(Box::new)
    }
}

#[cfg(test)]
// figment::Jail's closures must return its large figment::Error; that signature is not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_embedded_setup() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://rollcall.db");
        assert_eq!(c.log.format, LogFormat::Human);
    }

    #[test]
    fn file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "custom.toml",
                "public_base_url = \"https://sso.example.com\"\n[http]\nmax_body_bytes = 10\n",
            )?;
            jail.set_env("ROLLCALL_HTTP__MAX_BODY_BYTES", "20");
            jail.set_env("ROLLCALL_TEST_POSTGRES_URL", "postgres://ignored");
            let c = Config::load(Some(Path::new("custom.toml"))).expect("config loads");
            assert_eq!(c.public_base_url, "https://sso.example.com");
            assert_eq!(c.http.max_body_bytes, 20);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "listne = \"127.0.0.1:1\"\n")?;
            let err = Config::load(Some(Path::new("bad.toml"))).unwrap_err();
            assert!(err.to_string().contains("listne"), "{err}");
            Ok(())
        });
    }
}
