//! CSRF protection for forms: a random token in a SameSite=Strict cookie, repeated in a
//! hidden field; a cross-site page can make the browser send the cookie (it cannot: Strict)
//! but can never read it to fill the field. An Origin header, when present, must be ours.

use axum::{
    extract::{FromRequest, Request},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Form,
};
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::{de::DeserializeOwned, Deserialize};

use super::{cookies, message};
use crate::{secrets, state::AppState};

/// A form that carries nothing but its token (and, for sign-out, where to go next).
#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
    pub return_to: Option<String>,
}

/// The answer to a form whose CSRF check failed.
pub fn refused() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "For your security the form could not be used. Go back, reload the page and try again.",
    )
    .into_response()
}

/// A form whose fields include its `csrf` token.
pub trait WithCsrf {
    fn csrf(&self) -> &str;
}

/// A posted form whose CSRF token (and origin) checked out. Anything else is answered
/// before the handler runs: an unreadable form with 400, a failed check with the
/// "form expired" page.
pub struct CheckedForm<T>(pub T);

impl<T> FromRequest<AppState> for CheckedForm<T>
where
    T: DeserializeOwned + WithCsrf + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let Ok(Form(form)) = Form::<T>::from_request(req, state).await else {
            let text = "The form was incomplete. Go back and try again.";
            return Err(
                message(StatusCode::BAD_REQUEST, "The form could not be used", text)
                    .into_response(),
            );
        };
        if !check(state, &headers, form.csrf()) {
            return Err(refused());
        }
        Ok(CheckedForm(form))
    }
}

/// Implements [`WithCsrf`] for forms with a `csrf: String` field.
macro_rules! with_csrf {
    ($($form:ty),* $(,)?) => {
        $(impl $crate::browser::csrf::WithCsrf for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}
pub(crate) use with_csrf;

with_csrf!(CsrfForm);

/// The browser's CSRF token, and the cookie to set when it had none.
pub fn token(state: &AppState, headers: &HeaderMap) -> (String, Option<Cookie<'static>>) {
    if let Some(existing) =
        cookies::read(&state.config, headers, cookies::CSRF).filter(|v| v.len() == 43)
    {
        return (existing, None);
    }
    let fresh = secrets::generate("").plaintext;
    let cookie = cookies::make(
        &state.config,
        cookies::CSRF,
        fresh.clone(),
        None,
        SameSite::Strict,
    );
    (fresh, Some(cookie))
}

/// Whether a form post carries the browser's own token and, if the browser says where it
/// comes from, comes from this server.
pub fn check(state: &AppState, headers: &HeaderMap, submitted: &str) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        if origin != "null" && !same_origin(origin, &state.config.public_base_url) {
            tracing::warn!(%origin, "form post from another origin refused");
            return false;
        }
    }
    // An empty token never matches, not even an empty cookie.
    match cookies::read(&state.config, headers, cookies::CSRF) {
        Some(expected) if !expected.is_empty() && !submitted.is_empty() => {
            crate::secrets::constant_time_eq(expected.as_bytes(), submitted.as_bytes())
        }
        _ => false,
    }
}

fn same_origin(origin: &str, base: &str) -> bool {
    match (url::Url::parse(origin), url::Url::parse(base)) {
        (Ok(origin), Ok(base)) => origin.origin() == base.origin(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert!(same_origin("https://sso.acme.com", "https://sso.acme.com/"));
        assert!(same_origin(
            "https://sso.acme.com",
            "https://sso.acme.com/base/path"
        ));
        assert!(!same_origin("https://evil.com", "https://sso.acme.com"));
        assert!(!same_origin("http://sso.acme.com", "https://sso.acme.com"));
        assert!(!same_origin(
            "https://sso.acme.com:8443",
            "https://sso.acme.com"
        ));
    }
}
