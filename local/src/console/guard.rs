//! Who may use the console, and what every answer of it carries.
//!
//! - Bound to a loopback address and no token configured: whoever can reach
//!   127.0.0.1 (the machine's own user) may use it, as with the database file.
//! - A token configured (`WEBHOOKS_CONSOLE_TOKEN`): the login form takes it
//!   and sets a session cookie (a random value of this process, never the
//!   token itself; `HttpOnly`, `SameSite=Strict`); nothing else is served
//!   without that cookie. Any other address without a token: the console
//!   stays off ([`decide`]).
//! - Every POST carries the page's CSRF token; every answer a strict
//!   Content-Security-Policy and no-store caching.

use super::Console;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The session cookie's name.
const COOKIE: &str = "webhooks_console";

/// Only our own script and stylesheet, no inline code, nothing from
/// elsewhere, no framing, forms posting only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Who may use the console.
#[derive(Clone)]
pub enum Access {
    /// Listening on loopback, no token: the machine's own users.
    Loopback,
    /// The login form takes this token; a session cookie proves it after.
    Token { token: String, session: String },
}

impl Access {
    pub fn token(token: String) -> Self {
        Access::Token {
            token,
            session: random_token(),
        }
    }
}

/// Whether the console may run on `addr`, and how: a token when one is
/// given; on a loopback address, none needed; anywhere else without a token
/// it stays off, and the error says why (printed at start-up).
pub fn decide(addr: SocketAddr, token: Option<String>) -> Result<Access, String> {
    match token.filter(|t| !t.trim().is_empty()) {
        Some(t) if t.len() < 16 => Err("WEBHOOKS_CONSOLE_TOKEN is shorter than 16 characters".into()),
        Some(t) => Ok(Access::token(t)),
        None if addr.ip().is_loopback() => Ok(Access::Loopback),
        None => Err(format!(
            "listening on {} (not loopback) without WEBHOOKS_CONSOLE_TOKEN",
            addr.ip()
        )),
    }
}

/// 32 random bytes as hex.
pub fn random_token() -> String {
    rand::random::<[u8; 32]>().iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality of two secrets as text.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether the form's CSRF token is this process's.
pub fn csrf_ok(console: &Console, given: &str) -> bool {
    same(&console.csrf, given)
}

impl Console {
    pub fn csrf(&self) -> &str {
        &self.csrf
    }
}

fn has_session(headers: &HeaderMap, session: &str) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| name == COOKIE && same(value, session))
}

/// The middleware: sends a visitor without a session to the login form,
/// and puts the security headers on every answer.
pub async fn guard(State(console): State<Arc<Console>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let open = path == "/console/login" || path.starts_with("/console/assets/");
    let allowed = match &console.access {
        Access::Loopback => true,
        Access::Token { session, .. } => open || has_session(req.headers(), session),
    };
    let mut response = if allowed {
        next.run(req).await
    } else if req.method() == Method::GET {
        Redirect::to("/console/login").into_response()
    } else {
        (StatusCode::UNAUTHORIZED, "log in to the console first").into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// POST /console/login: the right token gets the session cookie.
pub async fn login(State(console): State<Arc<Console>>, Form(form): Form<LoginForm>) -> Response {
    match &console.access {
        Access::Loopback => Redirect::to("/console").into_response(),
        Access::Token { token, session } if same(token, form.token.trim()) => {
            let cookie = format!("{COOKIE}={session}; Path=/console; HttpOnly; SameSite=Strict");
            let mut response = Redirect::to("/console").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Access::Token { .. } => {
            tracing::warn!("console login refused: wrong token");
            (
                StatusCode::UNAUTHORIZED,
                super::pages::login_page(Some("That token is not the console's.")),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_needs_no_token_and_any_other_address_does() {
        let local: SocketAddr = "127.0.0.1:3000".parse().expect("addr");
        let public: SocketAddr = "0.0.0.0:3000".parse().expect("addr");
        assert!(matches!(decide(local, None), Ok(Access::Loopback)));
        assert!(decide(public, None).is_err_and(|e| e.contains("WEBHOOKS_CONSOLE_TOKEN")));
        assert!(matches!(
            decide(public, Some("a-long-enough-token".into())),
            Ok(Access::Token { .. })
        ));
        assert!(decide(public, Some("short".into())).is_err());
    }

    #[test]
    fn the_session_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; webhooks_console=abc; b=2"),
        );
        assert!(has_session(&headers, "abc"));
        assert!(!has_session(&headers, "abd"));
        assert!(!has_session(&HeaderMap::new(), "abc"));
    }
}
