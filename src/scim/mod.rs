//! The SCIM 2.0 front door (RFC 7643/7644) for Okta and Entra ID provisioning.
//!
//! So far: token authentication, SCIM error bodies and `/ServiceProviderConfig` (`http`); the
//! filter language parsed into a syntax tree (`filter`); and PATCH requests in every shape Okta
//! and Entra send normalised into typed operations (`patch`). The Users and Groups endpoints,
//! the compilation of filters to SQL and the application of operations build on them.

pub mod filter;
pub mod http;
pub mod patch;

pub use http::router;
