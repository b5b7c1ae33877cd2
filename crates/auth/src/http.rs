//! keyway-auth's use of keyway-http, the one client HTTP path: the caps its
//! calls state, and what a credential endpoint's answer means. Retries,
//! timeouts, body caps and transport errors are keyway-http's; here a 2xx
//! reply is checked (a metadata server must say so), an error status becomes
//! [`AuthError::Rejected`] with Google's error body read into its typed codes
//! (keyway-http's one reader) and the server's `Date`, and a JSON answer is
//! parsed without ever quoting it (it may hold a credential).

use crate::context::RetryPolicy;
use crate::error::{AuthError, GoogleCall, Rejection};
use keyway_http::google::GoogleErrorBody;

pub(crate) use keyway_http::{Call, Cap, Reply, redact_url};

/// Token endpoints (OAuth2, STS, IAM Credentials, the metadata server's token),
/// AWS credential documents (ECS, IMDS, STS): their answers are a few KiB; 1 MiB
/// leaves room for any real one.
pub(crate) const TOKEN: Cap = Cap::mib(1);
/// One metadata value (an email, a scope list, an ID token, a role name, a
/// zone), or a subject token from a URL: at most a few KiB in practice.
pub(crate) const METADATA_VALUE: Cap = Cap::kib(64);

/// Sends the request `build` makes (once per attempt) until a 2xx reply, with
/// retries per `policy`. With `metadata`, the reply must come from a metadata server.
pub(crate) async fn send(
    policy: &RetryPolicy,
    google: GoogleCall,
    url: &str,
    cap: Cap,
    metadata: bool,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Reply, AuthError> {
    let doing = google.doing();
    let call = Call { doing, url, cap };
    keyway_http::with_retries(policy, doing, url, |attempt, timeout| {
        let req = build();
        async move {
            tracing::debug!(doing, url = %redact_url(url), attempt, ?timeout, "sending request");
            let reply = keyway_http::exchange(req, timeout, &call).await?;
            tracing::debug!(doing, url = %redact_url(url), status = reply.status, bytes = reply.body.len(), "got response");
            expect_success(reply, google, url, metadata)
        }
    })
    .await
}

/// Classifies a reply for a request that expects 2xx: error statuses become
/// [`AuthError::Rejected`] (transient or not by their status). With
/// `metadata`, a 2xx reply must carry `Metadata-Flavor: Google` (anything else
/// is not a metadata server).
pub(crate) fn expect_success(
    reply: Reply,
    call: GoogleCall,
    url: &str,
    metadata: bool,
) -> Result<Reply, AuthError> {
    let doing = call.doing();
    if (200..300).contains(&reply.status) {
        if metadata && !reply.metadata_flavor() {
            return Err(AuthError::InvalidResponse {
                doing,
                url: redact_url(url),
                reason: "the response lacks the header Metadata-Flavor: Google, so it is not from a metadata server; refusing it".into(),
            });
        }
        return Ok(reply);
    }
    Err(AuthError::Rejected(Box::new(Rejection {
        call,
        url: redact_url(url),
        status: reply.status,
        body: GoogleErrorBody::parse(reply.body.expose()),
        server_time: reply.date(),
    })))
}

/// The body as JSON of type `T`, or an error that says what arrived instead
/// (never the body itself, which may hold a credential).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    reply: &Reply,
    doing: &'static str,
    url: &str,
    expected: &str,
) -> Result<T, AuthError> {
    serde_json::from_slice(reply.body.expose()).map_err(|e| AuthError::InvalidResponse {
        doing,
        url: redact_url(url),
        reason: format!(
            "expected {expected}, got {} bytes{} that do not parse ({})",
            reply.body.len(),
            reply
                .content_type()
                .map(|c| format!(" of {c}"))
                .unwrap_or_default(),
            json_error(&e)
        ),
    })
}

/// serde_json's message for syntax and missing-field errors; a generic one for
/// type errors, whose message can quote a value.
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => {
            let msg = e.to_string();
            // serde_json has no typed "missing field": the text chooses only what is safe to show.
            let missing = msg.starts_with("missing field"); // invariant-exempt: redaction
            if missing {
                msg
            } else {
                format!(
                    "a field has the wrong type at line {} column {}",
                    e.line(),
                    e.column()
                )
            }
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_core::Secret;

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: Default::default(),
            body: Secret::new(body.as_bytes().to_vec()),
        }
    }

    #[test]
    fn error_statuses_are_typed_refusals() {
        let r = reply(
            400,
            r#"{"error":"invalid_grant","error_description":"Bad Request"}"#,
        );
        let e =
            expect_success(r, GoogleCall::RefreshUser, "http://h/token?x=1", false).unwrap_err();
        let AuthError::Rejected(r) = &e else {
            panic!("{e}")
        };
        assert_eq!(
            r.body.oauth_code(),
            Some(&keyway_http::google::OAuthErrorCode::InvalidGrant)
        );
        assert_eq!(r.url, "http://h/token");
        assert!(
            e.to_string()
                .ends_with("answered 400 Bad Request: invalid_grant: Bad Request")
        );
    }

    #[test]
    fn type_errors_do_not_quote_values() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            n: u32,
        }
        let r = reply(200, r#"{"n":"sekrit"}"#);
        let e = parse_json::<T>(&r, "x", "http://h/p", "a T")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("sekrit"), "{e}");
        assert!(e.contains("wrong type"), "{e}");
    }
}
