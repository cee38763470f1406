//! rollcall: SSO (SAML, OIDC) and SCIM identity provisioning for multi-tenant SaaS.
//!
//! Layout: `http` is the admin API front door, `store` owns every SQL statement and the
//! domain rules that must hold inside one transaction, `config` and `telemetry` are
//! process setup. See docs/architecture.md for where the SSO, SCIM and invitation front
//! doors and the provisioning core go.

pub mod accounts;
pub mod config;
pub mod dns;
pub mod http;
pub mod invitations;
pub mod mail;
pub mod oidc;
pub mod operator;
pub mod provisioning;
pub mod saml;
pub mod scim;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod web;

/// Makes ring the process-wide TLS crypto provider (SMTP, PostgreSQL, HTTP clients). rustls
/// refuses to guess when a build links more than one provider; choosing here keeps that a
/// decision rather than an accident of feature unification.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
