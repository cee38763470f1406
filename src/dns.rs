//! DNS: TXT lookups for domain verification, and the addresses the outbound client may
//! connect to.

use std::{net::SocketAddr, time::Duration};

use hickory_resolver::{
    config::{NameServerConfig, Protocol, ResolverConfig, ResolverOpts},
    error::ResolveErrorKind,
    proto::op::ResponseCode,
    TokioAsyncResolver,
};

use crate::config::DnsConfig;

#[derive(Clone)]
pub struct Resolver {
    inner: TokioAsyncResolver,
}

impl Resolver {
    /// The configured nameservers, or the system's (/etc/resolv.conf) when none are set.
    pub fn new(config: &DnsConfig) -> Result<Self, String> {
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(config.timeout_seconds);
        opts.attempts = 2;
        // An admin fixes the record and retries at once: any cached answer, "no record" or
        // the old value, would make them wait out its TTL for nothing.
        opts.negative_max_ttl = Some(Duration::ZERO);
        opts.positive_max_ttl = Some(Duration::ZERO);
        let inner = if config.nameservers.is_empty() {
            let (system, _) = hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?;
            TokioAsyncResolver::tokio(system, opts)
        } else {
            let mut resolver = ResolverConfig::new();
            for server in &config.nameservers {
                let addr: SocketAddr = server.parse().map_err(|_| {
                    format!("dns.nameservers: {server:?} is not an IP:port address")
                })?;
                resolver.add_name_server(NameServerConfig::new(addr, Protocol::Udp));
                resolver.add_name_server(NameServerConfig::new(addr, Protocol::Tcp));
            }
            TokioAsyncResolver::tokio(resolver, opts)
        };
        Ok(Resolver { inner })
    }

    /// The addresses `host` resolves to (A and AAAA), for the outbound client's guard.
    pub async fn ips(&self, host: &str) -> Result<Vec<std::net::IpAddr>, String> {
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        match self.inner.lookup_ip(fqdn).await {
            Ok(lookup) => Ok(lookup.iter().collect()),
            Err(err) => Err(err.to_string()),
        }
    }

    /// The TXT records at `name`, each with its character-strings joined. No records (or no
    /// such name) is an empty list; a failed lookup is an error.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match self.inner.txt_lookup(fqdn).await {
            Ok(lookup) => Ok(lookup
                .iter()
                .map(|txt| {
                    txt.txt_data()
                        .iter()
                        .map(|part| String::from_utf8_lossy(part))
                        .collect::<String>()
                })
                .collect()),
            Err(err) => match err.kind() {
                // hickory reports SERVFAIL and REFUSED as "no records" too; only NXDOMAIN and
                // an empty NOERROR answer really mean there is no record.
                ResolveErrorKind::NoRecordsFound {
                    response_code: ResponseCode::NXDomain | ResponseCode::NoError,
                    ..
                } => Ok(Vec::new()),
                _ => Err(err.to_string()),
            },
        }
    }
}
