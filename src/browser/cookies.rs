//! rollcall's cookies: every one HttpOnly, on `/`, for this host only. Served over https
//! they are Secure and carry the `__Host-` prefix, which browsers accept only from a secure
//! origin, with `Path=/` and without `Domain`: a sibling subdomain cannot plant or shadow
//! them.

use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use crate::config::Config;

/// The session (HttpOnly; Lax so that the IdP's POST back and links from emails carry it).
pub const SESSION: &str = "rollcall_session";
/// The CSRF token, repeated in each form (Strict).
pub const CSRF: &str = "rollcall_csrf";
/// The pending second factor between the password and the code.
pub const TWO_FACTOR: &str = "rollcall_mfa";
/// Binds an SSO sign-in to the browser that started it.
pub const SSO_BINDING: &str = "rollcall_sso";
/// Binds an SP-initiated SAML sign-in to the browser that started it (login CSRF).
pub const SAML_BINDING: &str = "rollcall_saml";

fn secure(config: &Config) -> bool {
    config.public_base_url.starts_with("https://")
}

/// The name a cookie has on this deployment.
pub fn name(config: &Config, base: &str) -> String {
    if secure(config) {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

/// The value of a cookie the browser sent.
pub fn read(config: &Config, headers: &HeaderMap, base: &str) -> Option<String> {
    CookieJar::from_headers(headers)
        .get(&name(config, base))
        .map(|c| c.value().to_string())
}

/// A cookie to set; `max_age_seconds: None` lasts as long as the browser session.
pub fn make(
    config: &Config,
    base: &str,
    value: String,
    max_age_seconds: Option<i64>,
    same_site: SameSite,
) -> Cookie<'static> {
    let mut builder = Cookie::build((name(config, base), value))
        .path("/")
        .http_only(true)
        .secure(secure(config))
        .same_site(same_site);
    if let Some(seconds) = max_age_seconds {
        builder = builder.max_age(cookie::time::Duration::seconds(seconds));
    }
    builder.build()
}

/// The cookie that removes `base`.
pub fn removal(config: &Config, base: &str) -> Cookie<'static> {
    make(config, base, String::new(), Some(0), SameSite::Lax)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_deployments_use_host_prefixed_secure_cookies() {
        let mut config = Config {
            public_base_url: "https://sso.acme.com".into(),
            ..Config::default()
        };
        let cookie = make(&config, SESSION, "v".into(), Some(60), SameSite::Lax).to_string();
        assert!(cookie.starts_with("__Host-rollcall_session=v"), "{cookie}");
        for part in ["Secure", "HttpOnly", "Path=/", "SameSite=Lax", "Max-Age=60"] {
            assert!(cookie.contains(part), "{cookie} lacks {part}");
        }
        assert!(!cookie.contains("Domain"), "{cookie}");
        let mut headers = HeaderMap::new();
        headers.insert(
            "cookie",
            "rollcall_session=planted; __Host-rollcall_session=real"
                .parse()
                .unwrap(),
        );
        assert_eq!(read(&config, &headers, SESSION).as_deref(), Some("real"));

        config.public_base_url = "http://127.0.0.1:8080".into();
        let cookie = make(&config, CSRF, "t".into(), None, SameSite::Strict).to_string();
        assert!(cookie.starts_with("rollcall_csrf=t"), "{cookie}");
        assert!(!cookie.contains("Secure"), "{cookie}");
        assert_eq!(read(&config, &headers, SESSION).as_deref(), Some("planted"));
    }
}
