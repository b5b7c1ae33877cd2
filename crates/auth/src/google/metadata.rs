//! The GCE metadata server (also GKE, Cloud Run, Cloud Functions, and keyway's
//! own broker): detect it, then ask it for the default service account's
//! tokens, email and scopes.
//!
//! Detection follows Google's libraries: an explicit GCE_METADATA_HOST (or the
//! legacy GCE_METADATA_ROOT) is trusted but still checked with one quick `GET /`;
//! NO_GCE_CHECK disables detection; otherwise a single short probe goes to
//! GCE_METADATA_IP or 169.254.169.254, so a laptop never blocks for long.
//! Every request sends `Metadata-Flavor: Google` and every answer must carry it
//! back: a captive portal or a stray web server is not a metadata server.

use super::token::{Minted, token_from_reply};
use crate::context::{AuthContext, RetryPolicy};
use crate::error::{Absent, AuthError, GoogleCall};
use crate::http::{self, Call};
use keyway_core::{Secret, vars};
use std::time::Duration;

/// The link-local address of the metadata server on Google Cloud.
const DEFAULT_METADATA_IP: &str = "169.254.169.254";
const SA_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default";

pub(crate) struct Metadata {
    host: String,
}

/// What detection found.
pub(crate) enum Detection {
    Found {
        host: String,
    },
    NotConfigured(Absent),
    /// Configured explicitly but not usable.
    Failed(AuthError),
}

/// `http://h:p` or `h:p/` → `h:p`; anything with a path or query is refused.
fn normalize_host(var: &'static str, raw: &str) -> Result<String, AuthError> {
    let h = raw.trim();
    let h = h.strip_prefix("http://").unwrap_or(h).trim_end_matches('/');
    if h.is_empty() || h.contains(['/', '?', '#', '@', ' ']) {
        return Err(AuthError::InvalidEnv {
            var,
            reason: format!(
                "expected host[:port] of a metadata server, got {:?}",
                http::redact_url(raw)
            ),
        });
    }
    Ok(h.to_owned())
}

/// `GET http://host/` expecting `Metadata-Flavor: Google`, retried per `policy`.
async fn ping(ctx: &AuthContext, host: &str, policy: &RetryPolicy) -> Result<(), AuthError> {
    const DOING: &str = GoogleCall::MetadataPing.doing();
    let url = format!("http://{host}/");
    let url = url.as_str();
    let call = Call {
        doing: DOING,
        url,
        cap: http::METADATA_VALUE,
    };
    keyway_http::with_retries(policy, DOING, url, |_, timeout| {
        let req = ctx.http.get(url).header("Metadata-Flavor", "Google");
        async move {
            let reply = keyway_http::exchange(req, timeout, &call).await?;
            if reply.metadata_flavor() {
                Ok(())
            } else {
                Err(AuthError::InvalidResponse {
                    doing: DOING,
                    url: url.to_owned(),
                    reason: format!("answered {} without the header Metadata-Flavor: Google, so it is not a metadata server", reply.status),
                })
            }
        }
    })
    .await
}

/// Finds the metadata server, or says why there is none. Errors only for an
/// unusable GCE_METADATA_HOST value.
pub(crate) async fn detect(ctx: &AuthContext) -> Result<Detection, AuthError> {
    let explicit = [vars::GCE_METADATA_HOST, vars::GCE_METADATA_ROOT]
        .into_iter()
        .find_map(|var| ctx.env.non_empty(var).map(|v| (var, v)));
    if let Some((var, raw)) = explicit {
        let host = normalize_host(var, raw)?;
        // Trusted, but checked: a few quick tries in case it is starting up.
        let policy = RetryPolicy {
            deadline: ctx.metadata_probe_timeout.saturating_mul(3) + Duration::from_millis(300),
            attempt_timeout: ctx.metadata_probe_timeout,
            max_attempts: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
        };
        return Ok(match ping(ctx, &host, &policy).await {
            Ok(()) => Detection::Found { host },
            Err(e) => Detection::Failed(AuthError::MetadataUnreachable {
                var,
                host,
                cause: Box::new(e),
            }),
        });
    }
    if ctx.env.flag(vars::NO_GCE_CHECK) {
        return Ok(Detection::NotConfigured(Absent::NoGceCheck));
    }
    let (host, var) = match ctx.env.non_empty(vars::GCE_METADATA_IP) {
        Some(raw) => (
            normalize_host(vars::GCE_METADATA_IP, raw)?,
            Some(vars::GCE_METADATA_IP),
        ),
        None => (DEFAULT_METADATA_IP.to_owned(), None),
    };
    // One short probe: off Google Cloud nothing answers and the laptop must not wait.
    let policy = RetryPolicy {
        deadline: ctx.metadata_probe_timeout,
        attempt_timeout: ctx.metadata_probe_timeout,
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    Ok(match ping(ctx, &host, &policy).await {
        Ok(()) => Detection::Found { host },
        Err(e) => {
            tracing::debug!(error = %e, "no metadata server");
            Detection::NotConfigured(Absent::NoMetadataServer {
                host,
                var,
                waited: ctx.metadata_probe_timeout,
            })
        }
    })
}

impl Metadata {
    pub(crate) fn new(host: String) -> Self {
        Metadata { host }
    }

    fn url(&self, leaf: &str, query: &[(&str, &str)]) -> String {
        let base = format!("http://{}{SA_PATH}/{leaf}", self.host);
        if query.is_empty() {
            return base;
        }
        match url::Url::parse(&base) {
            Ok(mut u) => {
                u.query_pairs_mut().extend_pairs(query);
                u.to_string()
            }
            // The host was validated as host[:port]; an unparsable URL would fail on send anyway.
            Err(_) => base,
        }
    }

    async fn get(
        &self,
        ctx: &AuthContext,
        policy: &RetryPolicy,
        call: GoogleCall,
        url: &str,
        cap: http::Cap,
    ) -> Result<http::Reply, AuthError> {
        http::send(policy, call, url, cap, true, || {
            ctx.http.get(url).header("Metadata-Flavor", "Google")
        })
        .await
    }

    async fn get_text(
        &self,
        ctx: &AuthContext,
        policy: &RetryPolicy,
        call: GoogleCall,
        url: &str,
    ) -> Result<Secret<String>, AuthError> {
        let doing = call.doing();
        let reply = self
            .get(ctx, policy, call, url, http::METADATA_VALUE)
            .await?;
        let text = String::from_utf8(reply.body.expose().clone()).map_err(|_| {
            AuthError::InvalidResponse {
                doing,
                url: http::redact_url(url),
                reason: "the body is not UTF-8 text".into(),
            }
        })?;
        Ok(Secret::new(text))
    }

    /// `GET …/default/token[?scopes=a,b]`, as google-auth sends it.
    pub(crate) async fn fetch_token(
        &self,
        ctx: &AuthContext,
        scopes: &[String],
    ) -> Result<Minted, AuthError> {
        const DOING: &str = GoogleCall::MetadataToken.doing();
        let joined = scopes.join(",");
        let query: &[(&str, &str)] = if scopes.is_empty() {
            &[]
        } else {
            &[("scopes", joined.as_str())]
        };
        let url = self.url("token", query);
        let now = ctx.clock.now_secs();
        let reply = self
            .get(
                ctx,
                &ctx.retry,
                GoogleCall::MetadataToken,
                &url,
                http::TOKEN,
            )
            .await?;
        // The response names no scopes; `identity()` asks the server for them.
        token_from_reply(&reply, DOING, &url, now, None)
    }

    /// `GET …/default/email`, retried per `policy`.
    pub(crate) async fn email(
        &self,
        ctx: &AuthContext,
        policy: &RetryPolicy,
    ) -> Result<String, AuthError> {
        const CALL: GoogleCall = GoogleCall::MetadataEmail;
        const DOING: &str = CALL.doing();
        let url = self.url("email", &[]);
        let text = self.get_text(ctx, policy, CALL, &url).await?;
        let email = text.expose().trim();
        if email.is_empty() || email.contains(char::is_whitespace) {
            return Err(AuthError::InvalidResponse {
                doing: DOING,
                url: http::redact_url(&url),
                reason: "expected one email address".into(),
            });
        }
        Ok(email.to_owned())
    }

    /// `GET …/default/scopes`: one scope per line.
    pub(crate) async fn scopes(&self, ctx: &AuthContext) -> Result<Vec<String>, AuthError> {
        const CALL: GoogleCall = GoogleCall::MetadataScopes;
        let url = self.url("scopes", &[]);
        let text = self.get_text(ctx, &ctx.retry, CALL, &url).await?;
        Ok(text
            .expose()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// `GET …/default/identity?audience=AUD&format=full`.
    pub(crate) async fn id_token(
        &self,
        ctx: &AuthContext,
        audience: &str,
    ) -> Result<Secret<String>, AuthError> {
        const CALL: GoogleCall = GoogleCall::MetadataIdToken;
        const DOING: &str = CALL.doing();
        let url = self.url("identity", &[("audience", audience), ("format", "full")]);
        let text = self.get_text(ctx, &ctx.retry, CALL, &url).await?;
        let token = Secret::new(text.expose().trim().to_owned());
        if token.expose().is_empty() || token.expose().split('.').count() != 3 {
            return Err(AuthError::InvalidResponse {
                doing: DOING,
                url: http::redact_url(&url),
                reason: "expected a JWT (three dot-separated parts)".into(),
            });
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalized_or_refused() {
        assert_eq!(normalize_host("V", "127.0.0.1:80").unwrap(), "127.0.0.1:80");
        assert_eq!(
            normalize_host("V", "http://127.0.0.1:80/").unwrap(),
            "127.0.0.1:80"
        );
        assert!(normalize_host("V", "127.0.0.1:80/computeMetadata").is_err());
        assert!(normalize_host("V", "  ").is_err());
    }

    #[test]
    fn token_url_joins_scopes_with_commas() {
        let m = Metadata::new("127.0.0.1:9".into());
        assert_eq!(
            m.url(
                "token",
                &[("scopes", "a,https://www.googleapis.com/auth/cloud-platform")]
            ),
            "http://127.0.0.1:9/computeMetadata/v1/instance/service-accounts/default/token?scopes=a%2Chttps%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform"
        );
        assert_eq!(
            m.url("email", &[]),
            "http://127.0.0.1:9/computeMetadata/v1/instance/service-accounts/default/email"
        );
    }
}
