//! The SCIM 2.0 front door (RFC 7643/7644) for Okta and Entra ID provisioning.
//!
//! So far: the filter language, parsed into a syntax tree (`filter`). The endpoints, the
//! compilation of filters to SQL and the PATCH engine build on it.

pub mod filter;
