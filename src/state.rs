//! What every request handler is given: the store, the configuration and the per-process
//! helpers built from it. Front doors and the admin API all take this one type; it imports
//! none of them.

use std::sync::Arc;

use openidconnect::core::CoreJsonWebKeySet;

use crate::{config::Config, dns, outbound, secrets, store::Store};

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub dns: dns::Resolver,
    /// Encrypts stored client secrets, SP keys and TOTP seeds.
    pub sealer: secrets::Sealer,
    /// The outgoing HTTP clients, with the SSRF guard in their resolver.
    pub outbound: outbound::Outbound,
    /// Providers' signing keys, per JWKS URL: each instance keeps its own copy.
    pub jwks: outbound::Cache<CoreJsonWebKeySet>,
    /// When each key set was last fetched because a token named an unknown key.
    pub jwks_forced: outbound::Cache<()>,
    /// Providers' discovery documents, per URL.
    pub discovery: outbound::Cache<serde_json::Value>,
}

impl AppState {
    pub fn new(store: Store, config: Config) -> Result<Self, String> {
        let dns = dns::Resolver::new(&config.dns)?;
        crate::meter::check_config(&config.metrics)?;
        crate::meter::install();
        Ok(AppState {
            outbound: outbound::Outbound::new(&dns),
            dns,
            sealer: secrets::Sealer::from_config(&config.secrets)?,
            jwks: outbound::Cache::default(),
            jwks_forced: outbound::Cache::default(),
            discovery: outbound::Cache::default(),
            store,
            config: Arc::new(config),
        })
    }
}
