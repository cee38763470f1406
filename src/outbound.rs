//! Outgoing HTTP to what an org admin names: OIDC discovery, key sets, token endpoints,
//! Microsoft Graph, SAML metadata. One client per policy, built once and shared.
//!
//! The SSRF guard sits where the connection is made, not beside it: for a host name, the
//! client's own resolver drops every address that is not globally routable, so the address
//! checked is the address connected to (no DNS-rebinding window between a check and a
//! second lookup). IP literals never reach a resolver and are judged in [`Outbound::check`].
//! Redirects are never followed: a redirect could lead anywhere.
//!
//! This module knows nothing of requests, pages or the database.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::dns;

/// Why an outgoing request was not made or did not succeed. The text is for logs and the
/// audit trail, never for the person signing in.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The URL is not one rollcall may call: not https, not a URL, or a non-public address.
    #[error("{0}")]
    Forbidden(String),
    /// The other side did not answer usefully: no route, a timeout, a bad status, bad JSON.
    #[error("{0}")]
    Unreachable(String),
}

/// The shared outgoing clients: `guarded` refuses non-public destinations, `open` is for an
/// operator who allowed private addresses (an IdP on their own network, or tests).
#[derive(Clone)]
pub struct Outbound {
    guarded: reqwest::Client,
    open: reqwest::Client,
}

const TIMEOUT: Duration = Duration::from_secs(10);

fn build(resolver: Option<Arc<GuardedResolver>>) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT);
    let builder = match resolver {
        Some(resolver) => builder.dns_resolver(resolver),
        None => builder,
    };
    builder
        .build()
        .expect("a reqwest client with rustls builds")
}

impl Outbound {
    pub fn new(resolver: &dns::Resolver) -> Outbound {
        Outbound {
            guarded: build(Some(Arc::new(GuardedResolver(resolver.clone())))),
            open: build(None),
        }
    }

    /// Parses `url` and says whether it may be called: https, and no IP literal outside the
    /// public address space, unless `allow_private`. Host names are judged by the guarded
    /// client's resolver when the connection is made.
    pub fn check(url: &str, allow_private: bool) -> Result<reqwest::Url, Error> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|_| Error::Forbidden(format!("{url:?} is not a URL")))?;
        if allow_private {
            return Ok(parsed);
        }
        if parsed.scheme() != "https" {
            return Err(Error::Forbidden(format!("{url} is not https")));
        }
        match parsed.host() {
            Some(url::Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => Err(Error::Forbidden(
                format!("{url} names a private, loopback or reserved address"),
            )),
            Some(url::Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => Err(Error::Forbidden(
                format!("{url} names a private, loopback or reserved address"),
            )),
            Some(_) => Ok(parsed),
            None => Err(Error::Forbidden(format!("{url} has no host"))),
        }
    }

    /// The client for a checked URL under this policy.
    pub fn client(&self, allow_private: bool) -> &reqwest::Client {
        if allow_private {
            &self.open
        } else {
            &self.guarded
        }
    }

    /// GETs a JSON document after [`Outbound::check`].
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        allow_private: bool,
    ) -> Result<T, Error> {
        let target = Self::check(url, allow_private)?;
        let response = self
            .client(allow_private)
            .get(target)
            .send()
            .await
            .map_err(|e| explain(url, &e))?;
        if !response.status().is_success() {
            return Err(Error::Unreachable(format!(
                "GET {url}: status {}",
                response.status()
            )));
        }
        response
            .json()
            .await
            .map_err(|e| Error::Unreachable(format!("GET {url}: {e}")))
    }
}

/// A send error in words; a destination the resolver refused is a [`Error::Forbidden`].
pub fn explain(url: &str, err: &reqwest::Error) -> Error {
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return Error::Forbidden(format!("GET {url}: {refused}"));
        }
        source = cause.source();
    }
    let cause = std::error::Error::source(err)
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    Error::Unreachable(format!("{url}: {err}{cause}"))
}

/// The resolver's refusal, found again in the error chain by [`explain`].
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Resolves with rollcall's resolver and refuses a name with any non-public address: a name
/// that mixes public and private answers is a rebinding attempt, not a choice to make.
struct GuardedResolver(dns::Resolver);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let ips = resolver.ips(&host).await.map_err(|e| {
                Box::new(Refused(format!("resolving {host}: {e}")))
                    as Box<dyn std::error::Error + Send + Sync>
            })?;
            if ips.is_empty() || ips.iter().any(|ip| !is_public(*ip)) {
                return Err(Box::new(Refused(format!(
                    "{host} resolves to a private, loopback or reserved address ({})",
                    ips.iter()
                        .map(IpAddr::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: Addrs = Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Whether an address is in the public, globally routable space. IPv4-mapped and
/// IPv4-embedding IPv6 forms are judged by the IPv4 address they carry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(v6) {
                return public_v4(v4);
            }
            let s = v6.segments();
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                // The rest of ::/96 (IPv4-compatible, deprecated) and ::ffff:0:0/96 forms.
                || s[..6] == [0; 6]
                // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10.
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                // Discard-only 100::/64, documentation 2001:db8::/32, benchmarking 2001:2::/48,
                // ORCHIDv2 2001:20::/28, Teredo 2001::/32 (it tunnels to any IPv4 address).
                || (s[0] == 0x100 && s[1..4] == [0, 0, 0])
                || (s[0] == 0x2001 && s[1] == 0xdb8)
                || (s[0] == 0x2001 && s[1] == 0x2 && s[2] == 0)
                || (s[0] == 0x2001 && (s[1] & 0xfff0) == 0x20)
                || (s[0] == 0x2001 && s[1] == 0))
        }
    }
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (::ffff:a.b.c.d), NAT64
/// (64:ff9b::a.b.c.d) and 6to4 (2002:ab:cd::).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        Some(v4)
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        Some(low)
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ))
    } else {
        None
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || a == 0 // "this network" 0/8
        || ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || (a == 100 && (b & 0xc0) == 64) // carrier-grade NAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0/24
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18/15
        || a >= 240) // reserved 240/4
}

/// Documents fetched from providers (discovery documents, key sets), by URL, with when they
/// were fetched. Each instance keeps its own copy; nothing here is shared state.
pub struct Cache<T>(Arc<tokio::sync::Mutex<HashMap<String, (Instant, T)>>>);

impl<T> Clone for Cache<T> {
    fn clone(&self) -> Self {
        Cache(self.0.clone())
    }
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Cache(Arc::default())
    }
}

impl<T: Clone> Cache<T> {
    /// The copy of `url` if it is younger than `max_age`.
    pub async fn get(&self, url: &str, max_age: Duration) -> Option<T> {
        self.0
            .lock()
            .await
            .get(url)
            .filter(|(fetched, _)| fetched.elapsed() < max_age)
            .map(|(_, value)| value.clone())
    }

    pub async fn put(&self, url: &str, value: T) {
        self.0
            .lock()
            .await
            .insert(url.to_string(), (Instant::now(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_refused_in_every_spelling() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.10",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.1.2.3",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
            "2001:db8::1",
            "2001::1",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert!(!is_public(parsed), "{ip} must not count as public");
        }
        for ip in [
            "20.190.128.1",
            "8.8.8.8",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert!(is_public(parsed), "{ip} is public");
        }
    }

    #[test]
    fn literal_urls_are_judged_canonically() {
        for url in [
            "https://[::ffff:127.0.0.1]/keys",
            "https://[::ffff:a9fe:a9fe]/latest/meta-data/",
            "https://[::ffff:169.254.169.254]/latest/meta-data/",
            "https://100.64.1.1/token",
            "https://0.0.0.0/token",
            "https://2130706433/keys",
            "https://0x7f.1/keys",
            "http://login.microsoftonline.com/x",
            "not a url",
        ] {
            assert!(
                matches!(Outbound::check(url, false), Err(Error::Forbidden(_))),
                "{url} should be refused"
            );
        }
        assert!(Outbound::check("https://login.microsoftonline.com/x", false).is_ok());
        assert!(Outbound::check("http://127.0.0.1:8080/keys", true).is_ok());
    }
}
