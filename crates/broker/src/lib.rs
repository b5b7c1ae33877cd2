//! keyway-broker: the loopback endpoints that SDKs in every language already
//! know how to find, backed by the credentials and secrets keyway resolves, so
//! an unmodified application gets keyless, refreshing credentials with no code
//! change and no credential file.
//!
//! * [`gce`]: the GCE metadata API (`GCE_METADATA_HOST`), backed by keyway's
//!   Google credentials (Workload Identity Federation included);
//! * [`ecs`]: the ECS container-credentials API
//!   (`AWS_CONTAINER_CREDENTIALS_FULL_URI`), backed by keyway's AWS chain
//!   (AssumeRoleWithWebIdentity from a Google identity included);
//! * [`agent`]: a secrets cache compatible with the AWS Secrets Manager Agent,
//!   plus one endpoint of the same shape for any keyway reference.
//!
//! All of them are served on one loopback port by [`router`]; [`child`] says
//! which variables a workload gets and loses for each API, and [`refresh`]
//! keeps tokens and credentials fresh in the background. The caches live in
//! keyway-auth (one refresh for any number of callers, the cached value
//! served through an upstream outage until it truly expires).
//!
//! Security: the metadata API requires `Metadata-Flavor: Google`, as GCE does
//! (it is what stops a forged request from a browser or an SSRF); the others
//! require the broker's random [`Token`], compared in constant time. Forwarded
//! requests and methods other than GET are refused everywhere. Connection,
//! header, body and time limits are the serving layer's (keyway-serve).

pub mod agent;
pub mod child;
pub mod ecs;
pub mod gce;
pub mod refresh;
mod reply;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Response, StatusCode};
use keyway_core::Secret;
use std::fmt;
use std::sync::Arc;

/// The secret that callers of the ECS and secrets APIs must present. Random
/// (32 bytes from the OS generator, hex) unless given; never logged or printed
/// by `Debug`.
pub struct Token(Secret<String>);

impl Token {
    /// A fresh random token.
    pub fn random() -> Token {
        let bytes: [u8; 32] = rand::random();
        let mut s = String::with_capacity(64);
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        Token(Secret::new(s))
    }

    /// A token chosen by the operator (e.g. read from a file). Refused if it
    /// is shorter than 16 characters or not a valid header value.
    pub fn new(value: Secret<String>) -> Result<Token, &'static str> {
        let v = value.expose();
        if v.len() < 16 {
            return Err("the token must be at least 16 characters long");
        }
        if !v.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token must be printable ASCII without spaces");
        }
        Ok(Token(value))
    }

    /// Whether `given` is the token, in constant time.
    pub fn matches(&self, given: &[u8]) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.0.expose().as_bytes(), given).is_ok()
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

/// The APIs one broker serves.
#[derive(Default)]
pub struct Broker {
    pub google: Option<Arc<gce::Google>>,
    pub aws: Option<Arc<ecs::Aws>>,
    pub secrets: Option<Arc<agent::Secrets>>,
}

impl Broker {
    /// The APIs served, by name (`gce`, `ecs`, `secrets`).
    pub fn apis(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.google.is_some() {
            v.push("gce");
        }
        if self.aws.is_some() {
            v.push("ecs");
        }
        if self.secrets.is_some() {
            v.push("secrets");
        }
        v
    }
}

/// Every API the broker serves, on one port: `/` and `/computeMetadata/…` for
/// the metadata API, [`ecs::PATH`] for the ECS API, the agent's paths
/// (`/secretsmanager/get`, `/v1/…`, `/ping`) and [`agent::KEYWAY_PATH`] for
/// the secrets API.
pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .fallback(|State(b): State<Arc<Broker>>, req: Request| async move { handle(&b, req).await })
        .with_state(broker)
}

async fn handle(b: &Broker, req: Request) -> Response<Body> {
    let path = req.uri().path();
    if let Some(g) = &b.google
        && (path == "/" || path.starts_with("/computeMetadata"))
    {
        return gce::handle(g, req).await;
    }
    if let Some(a) = &b.aws
        && path == ecs::PATH
    {
        return ecs::handle(a, req).await;
    }
    // Without the metadata API, every other path is the agent's (its 404 comes after its token check).
    if let Some(s) = &b.secrets
        && (agent::serves(path) || b.google.is_none())
    {
        return agent::handle(s, req).await;
    }
    if b.google.is_some() {
        return gce::not_found();
    }
    reply::response(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "Not found\n",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_exactly() {
        let a = Token::random();
        let b = Token::random();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a.expose(), b.expose());
        assert!(a.matches(a.expose().as_bytes()));
        assert!(!a.matches(b.expose().as_bytes()));
        assert!(!a.matches(b""));
        assert!(!a.matches(&a.expose().as_bytes()[..63]));
        assert!(!format!("{a:?}").contains(a.expose()));
        assert!(Token::new(Secret::new("short".into())).is_err());
        assert!(Token::new(Secret::new("with a space in it!!".into())).is_err());
        assert!(Token::new(Secret::new("0123456789abcdef".into())).is_ok());
    }
}
