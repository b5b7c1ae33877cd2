//! keyway-auth's use of keyway-http, the one client HTTP path: the caps its
//! calls state, and what a credential endpoint's answer means. Retries,
//! timeouts, body caps and transport errors are keyway-http's; here a 2xx
//! reply is checked (a metadata server must say so), an error status becomes
//! [`AuthError::Rejected`] with a short summary of Google's error body, and a
//! JSON answer is parsed without ever quoting it (it may hold a credential).

use crate::context::RetryPolicy;
use crate::error::AuthError;
use keyway_wire::google::GoogleError;
use keyway_wire::google::oauth2::OAuthError;

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
    call: Call<'_>,
    metadata: bool,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Reply, AuthError> {
    let Call { doing, url, .. } = call;
    keyway_http::with_retries(policy, doing, url, |attempt, timeout| {
        let req = build();
        async move {
            tracing::debug!(doing, url = %redact_url(url), attempt, ?timeout, "sending request");
            let reply = keyway_http::exchange(req, timeout, &call).await?;
            tracing::debug!(doing, url = %redact_url(url), status = reply.status, bytes = reply.body.len(), "got response");
            expect_success(reply, doing, url, metadata)
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
    doing: &'static str,
    url: &str,
    metadata: bool,
) -> Result<Reply, AuthError> {
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
    Err(AuthError::Rejected {
        doing,
        url: redact_url(url),
        status: reply.status,
        summary: summarize_error_body(&reply),
    })
}

/// What an error body says, briefly: OAuth's `error: error_description`,
/// `google.rpc.Status`'s `STATUS: message`, or the first line of plain text.
fn summarize_error_body(reply: &Reply) -> Option<String> {
    let body = reply.body.expose();
    if let Ok(e) = serde_json::from_slice::<OAuthError>(body) {
        return Some(match e.error_description {
            Some(d) if !d.is_empty() => format!("{}: {}", e.error, clip(&d)),
            _ => e.error,
        });
    }
    if let Ok(g) = serde_json::from_slice::<GoogleError>(body) {
        let status = if g.error.status.is_empty() {
            g.error.code.to_string()
        } else {
            g.error.status
        };
        return Some(format!("{status}: {}", clip(&g.error.message)));
    }
    let text = String::from_utf8_lossy(body);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(clip(line))
}

/// At most 200 printable characters.
fn clip(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if cleaned.chars().count() > 200 {
        let mut out: String = cleaned.chars().take(200).collect();
        out.push('…');
        out
    } else {
        cleaned
    }
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
            if msg.starts_with("missing field") {
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
    fn error_bodies_are_summarized() {
        let r = reply(
            400,
            r#"{"error":"invalid_grant","error_description":"Bad Request"}"#,
        );
        assert_eq!(
            summarize_error_body(&r).as_deref(),
            Some("invalid_grant: Bad Request")
        );
        let r = reply(
            403,
            r#"{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}"#,
        );
        assert_eq!(
            summarize_error_body(&r).as_deref(),
            Some("PERMISSION_DENIED: denied")
        );
        let r = reply(404, "\n  Not Found\nmore");
        assert_eq!(summarize_error_body(&r).as_deref(), Some("Not Found"));
        assert_eq!(summarize_error_body(&reply(500, "")), None);
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
