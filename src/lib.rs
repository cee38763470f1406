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
pub mod operator;
pub mod provisioning;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod web;
