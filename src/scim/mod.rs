//! The SCIM 2.0 front door (RFC 7643/7644) for Okta and Entra ID provisioning.
//!
//! - `http`: token authentication, error bodies, list requests, ETags, the router;
//! - `users`, `groups`: the resources, checked against their schemas and kept by
//!   `store::scim`; what they mean for memberships and teams is `provisioning::push`;
//! - `bulk`: `/Bulk`, each operation sent through the same router;
//! - `discovery`: `/ResourceTypes` and `/Schemas`; `search`: the root `/.search`;
//! - `filter` parses the filter language, `sql` compiles it through an attribute allow-list
//!   into bound SQL; `patch` normalises every PATCH shape Okta and Entra send, and
//!   `document` applies the operations to a User.

pub mod bulk;
pub mod discovery;
pub mod document;
pub mod filter;
pub mod groups;
pub mod http;
pub mod patch;
pub mod search;
pub mod sql;
pub mod users;

pub use http::router;
