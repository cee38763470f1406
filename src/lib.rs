//! rollcall: SSO (SAML, OIDC) and SCIM identity provisioning for multi-tenant SaaS.
//!
//! Layers, lowest first (a module imports only from its own folder or from lower layers):
//! - process and storage: `config`, `telemetry`, `secrets`, `dns`, `store`;
//! - what front doors share: `outbound` (HTTP to IdPs), `state` (`AppState`), `request`
//!   (request ID, bearer, client IP), `browser` (pages, cookies, sessions, CSRF, limits,
//!   the sign-in failure page), `connections` (SSO settings and IdP metadata), and the
//!   provisioning core `provisioning` with `accounts`, `mail` and `invitations`;
//! - `admin`: the org administration commands the admin API and the console share;
//! - front doors, which never import each other: `http` (admin API), `console` (the admin
//!   console and profile pages), `web` (sign-in and invitation pages), `saml`, `oidc`,
//!   `scim`;
//! - `server`, the only module that knows every front door, and `operator` for the CLI.
//!
//! docs/architecture.md draws the same picture and the path a request takes.

pub mod accounts;
pub mod admin;
pub mod affinity;
pub mod browser;
pub mod config;
pub mod connections;
pub mod console;
pub mod dns;
pub mod http;
pub mod invitations;
pub mod mail;
pub mod meter;
pub mod oidc;
pub mod operator;
pub mod outbound;
pub mod provisioning;
pub mod request;
pub mod saml;
pub mod scim;
pub mod secrets;
pub mod server;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod web;

/// Makes ring the process-wide TLS crypto provider (SMTP, PostgreSQL, HTTP clients). rustls
/// refuses to guess when a build links more than one provider; choosing here keeps that a
/// decision rather than an accident of feature unification.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
