//! What every page-serving front door shares: pages and their headers, cookies, sessions,
//! CSRF, the per-address limiter, safe return paths, and the one sign-in failure type.
//!
//! Pages answer with readable HTML, never JSON or a stack trace. Every page is `no-store`
//! and `no-referrer` (invitation and reset links carry secrets), and framing is refused.

pub mod cookies;
pub mod csrf;
pub mod limiter;
pub mod session;

pub use csrf::{CheckedForm, CsrfForm};

use askama::Template;
use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::cookie::Cookie;

use crate::{outbound, request::RequestId, store};

/// An HTML response with the headers every page carries, and cookies to set.
pub struct Page {
    status: StatusCode,
    html: String,
    cookies: Vec<Cookie<'static>>,
}

impl Page {
    pub fn new(status: StatusCode, template: impl Template) -> Page {
        let html = template.render().unwrap_or_else(|err| {
            tracing::error!(%err, "page template failed");
            "<!DOCTYPE html><title>Error</title><p>Something went wrong. Please try again.</p>"
                .into()
        });
        Page {
            status,
            html,
            cookies: Vec::new(),
        }
    }

    pub fn cookie(mut self, cookie: Option<Cookie<'static>>) -> Page {
        self.cookies.extend(cookie);
        self
    }
}

fn page_headers(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        // Scripts only from rollcall itself (the console's copy buttons), never inline.
        HeaderValue::from_static("default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    );
}

fn set_cookies(response: &mut Response, cookies: Vec<Cookie<'static>>) {
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::response::Html(self.html)).into_response();
        page_headers(response.headers_mut());
        set_cookies(&mut response, self.cookies);
        response
    }
}

/// A redirect after a form or to an IdP, with cookies to set.
pub fn see_other(to: &str, cookies: Vec<Cookie<'static>>) -> Response {
    let mut response = Redirect::to(to).into_response();
    page_headers(response.headers_mut());
    set_cookies(&mut response, cookies);
    response
}

#[derive(Template)]
#[template(path = "pages/message.html")]
pub struct Message<'a> {
    pub title: &'a str,
    pub message: &'a str,
    pub link: Option<(&'a str, &'a str)>,
}

/// A page that only says something.
pub fn message(status: StatusCode, title: &str, text: &str) -> Page {
    Page::new(
        status,
        Message {
            title,
            message: text,
            link: None,
        },
    )
}

/// A sign-in (or any page) that could not go on: a short message for the person, the
/// precise reason for the log and the audit trail. SAML, OIDC and the password pages share
/// it, so every failure page reads alike and carries the request's reference.
#[derive(Debug)]
pub struct SignInFailure {
    pub status: StatusCode,
    pub message: String,
    pub reason: String,
    /// Why not, in a word, for metrics: `refused`, `misconfigured`, `unreachable`, … (the
    /// precise reason is too detailed to be a label).
    pub kind: &'static str,
}

impl SignInFailure {
    pub fn new(status: StatusCode, message: impl Into<String>, reason: impl Into<String>) -> Self {
        let kind = match status.as_u16() {
            400 => "bad_request",
            403 => "refused",
            409 => "conflict",
            429 => "rate_limited",
            502 => "provider",
            503 => "unavailable",
            _ if status.is_server_error() => "internal",
            _ => "other",
        };
        SignInFailure {
            status,
            message: message.into(),
            reason: reason.into(),
            kind,
        }
    }

    pub fn forbidden(message: impl Into<String>, reason: impl Into<String>) -> Self {
        SignInFailure::new(StatusCode::FORBIDDEN, message, reason)
    }

    /// The connection's settings, or the provider they name, are wrong: only an admin can
    /// fix it.
    pub fn misconfigured(reason: impl Into<String>) -> Self {
        SignInFailure {
            kind: "misconfigured",
            ..SignInFailure::new(
                StatusCode::BAD_GATEWAY,
                "This sign-in method is not set up correctly. Ask your administrator.",
                reason,
            )
        }
    }

    pub fn unreachable(reason: impl Into<String>) -> Self {
        SignInFailure {
            kind: "unreachable",
            ..SignInFailure::new(
                StatusCode::BAD_GATEWAY,
                "The sign-in provider cannot be reached right now. Please try again.",
                reason,
            )
        }
    }

    /// Logs the precise reason with the request's reference, and shows the short message.
    pub fn page(self, what: &str, request: &RequestId) -> Response {
        let reference = request.reference();
        if self.status.is_server_error() && self.status != StatusCode::BAD_GATEWAY {
            tracing::error!(reason = %self.reason, %reference, "{what} failed");
        } else {
            tracing::warn!(reason = %self.reason, %reference, "{what} failed");
        }
        let text = format!(
            "{} If it keeps happening, give your administrator this reference: {reference}.",
            self.message
        );
        let title = if what.contains("sign-in") {
            "Sign-in failed"
        } else {
            "Something went wrong"
        };
        let mut response = message(self.status, title, &text).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(store::RETRY_AFTER_SECONDS),
            );
        }
        if self.status == StatusCode::CONFLICT {
            response.extensions_mut().insert(store::LostRace);
        }
        response
    }
}

impl From<store::Error> for SignInFailure {
    fn from(err: store::Error) -> Self {
        let (status, message) = if err.is_unavailable() {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "rollcall is unavailable for a moment. Please try again in a few seconds.",
            )
        } else if err.is_retryable() {
            (
                StatusCode::CONFLICT,
                "Someone else changed this at the same moment. Please try again.",
            )
        } else {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side. Please try again.",
            )
        };
        SignInFailure::new(status, message, err.to_string())
    }
}

impl From<outbound::Error> for SignInFailure {
    fn from(err: outbound::Error) -> Self {
        match err {
            outbound::Error::Forbidden(reason) => SignInFailure::misconfigured(reason),
            outbound::Error::Unreachable(reason) => SignInFailure::unreachable(reason),
        }
    }
}

/// A store failure behind a page: logged with detail, shown with the reference (503 with
/// `Retry-After` while the database is unreachable).
pub fn internal(err: store::Error, request: &RequestId) -> Response {
    SignInFailure::from(err).page("page", request)
}

/// Where to send the browser after a sign-in or a form: only a path on this server.
///
/// The path is resolved against `public_base_url` with a URL parser, as a browser would,
/// and kept only when it stays on the same origin; control characters (which browsers
/// strip: `/\t/evil.example` becomes `//evil.example`) and backslashes (which browsers read
/// as slashes) are refused anywhere. Anything else is `/`.
pub fn safe_return(base: &str, to: Option<&str>) -> String {
    let Some(to) = to else {
        return "/".into();
    };
    let suspicious = |c: char| c.is_control() || c == '\\';
    if !to.starts_with('/') || to.starts_with("//") || to.chars().any(suspicious) {
        return "/".into();
    }
    let (Ok(base), Ok(resolved)) = (
        url::Url::parse(base),
        url::Url::parse(base).and_then(|b| b.join(to)),
    ) else {
        return "/".into();
    };
    if resolved.origin() != base.origin() {
        return "/".into();
    }
    to.to_string()
}

#[cfg(test)]
mod tests {
    use super::safe_return;

    #[test]
    fn return_paths_stay_on_this_origin() {
        let base = "https://sso.acme.com";
        for ok in [
            "/",
            "/invite/rc_inv_x",
            "/login?return_to=%2F",
            "/a//b",
            "/%2F%2Fx",
        ] {
            assert_eq!(safe_return(base, Some(ok)), ok, "{ok}");
        }
        for bad in [
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r/evil.example",
            "/ /evil.example\u{7f}",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example/",
            "evil.example",
            "",
            "/\u{0}x",
        ] {
            assert_eq!(
                safe_return(base, Some(bad)),
                "/",
                "{bad:?} must not be kept"
            );
        }
        assert_eq!(safe_return(base, None), "/");
    }
}
