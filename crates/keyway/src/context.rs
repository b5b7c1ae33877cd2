//! What every command that talks to a cloud starts from: the one HTTP client
//! and keyway-auth's context, both built from the captured environment (so
//! `google.rs` and `aws.rs` share them without importing each other back).

use keyway_auth::AuthContext;
use keyway_core::{Env, RealFs, SystemClock};
use std::sync::Arc;

/// The one HTTP client of a command (keyway-http's: lazy TLS roots, proxies
/// except for metadata and loopback).
pub fn http_client(env: &Env) -> reqwest::Client {
    keyway_http::client(env)
}

pub fn context(env: &Env, http: &reqwest::Client) -> AuthContext {
    AuthContext::new(
        env.clone(),
        Arc::new(RealFs),
        Arc::new(SystemClock),
        http.clone(),
    )
}
