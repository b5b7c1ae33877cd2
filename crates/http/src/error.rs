//! How a request failed before a complete answer arrived, as one typed value:
//! the caller decides on [`HttpError::is_transient`], never on the text. The URL
//! is always shown without its query, fragment or userinfo (a query can carry
//! an audience or scopes and, in other protocols, credentials).

use crate::cap::Cap;
use std::fmt;
use std::time::Duration;

/// Why a request got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The connection failed (refused, reset, DNS, TLS) or broke before the
    /// whole answer arrived. Worth retrying.
    #[error("{doing}: could not reach {url}: {reason}")]
    Unreachable {
        doing: &'static str,
        url: String,
        reason: String,
    },
    /// The server accepted the request but did not answer in time. Worth retrying.
    #[error("{doing}: {url} did not answer within {after:?}")]
    Timeout {
        doing: &'static str,
        url: String,
        after: Duration,
    },
    /// The request could not be made (a URL that does not parse, a redirect
    /// loop): no retry fixes it.
    #[error("{doing}: could not send a request to {url}: {reason}")]
    Request {
        doing: &'static str,
        url: String,
        reason: String,
    },
    /// The answer is larger than the call allows; it was not read further.
    #[error(
        "{doing}: {url} sent a response larger than {cap}, the most this call reads ({seen}); refusing it"
    )]
    TooLarge {
        doing: &'static str,
        url: String,
        cap: Cap,
        seen: Seen,
    },
}

/// How a response was found to be too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// It declared this `Content-Length`; nothing of the body was read.
    Declared(u64),
    /// Reading stopped once this many bytes had arrived.
    AtLeast(usize),
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::Declared(n) => write!(f, "Content-Length: {n}"),
            Seen::AtLeast(n) => write!(f, "stopped reading after {n} bytes"),
        }
    }
}

impl HttpError {
    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            HttpError::Unreachable { .. } | HttpError::Timeout { .. }
        )
    }

    /// The URL the request went to (without its query).
    pub fn url(&self) -> &str {
        match self {
            HttpError::Unreachable { url, .. }
            | HttpError::Timeout { url, .. }
            | HttpError::Request { url, .. }
            | HttpError::TooLarge { url, .. } => url,
        }
    }
}

impl crate::Transient for HttpError {
    fn is_transient(&self) -> bool {
        HttpError::is_transient(self)
    }
}

/// The URL as errors and logs may show it: no query, fragment or userinfo.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            // Both fail only for URLs that cannot have credentials; nothing to strip then.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => raw.split(['?', '#']).next().unwrap_or_default().to_owned(),
    }
}

/// What went wrong in a reqwest error, briefly and without the URL (which may
/// carry a query): the deepest cause, as the OS or the TLS library said it,
/// after what keyway was doing (`connection failed`, `the connection broke
/// while reading the response`, `timed out`). Layers that add no information
/// (reqwest's "error sending request", hyper's "client error (Connect)") are
/// left out.
pub fn describe(e: &reqwest::Error) -> String {
    let stage = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the connection broke while reading the response"
    } else if e.is_redirect() {
        "too many redirects"
    } else if e.is_builder() {
        "the request is malformed"
    } else {
        "the request failed"
    };
    // The deepest cause is the most specific ("Connection refused").
    let mut deepest: Option<String> = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !s.is_empty() {
            deepest = Some(s);
        }
        cur = err.source();
    }
    match deepest {
        Some(cause) => {
            let cause = strip_errno(&cause);
            if cause.eq_ignore_ascii_case(stage) {
                cause.to_owned()
            } else {
                format!("{stage}: {cause}")
            }
        }
        None => stage.to_owned(),
    }
}

/// `Connection refused (os error 111)` → `Connection refused`.
fn strip_errno(s: &str) -> &str {
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => &s[..i],
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_query_and_userinfo() {
        assert_eq!(
            redact_url("http://u:p@127.0.0.1:8/computeMetadata/v1/x?audience=a&format=full#f"),
            "http://127.0.0.1:8/computeMetadata/v1/x"
        );
        assert_eq!(redact_url("not a url?x=1"), "not a url");
    }

    #[test]
    fn too_large_names_url_cap_and_what_was_seen() {
        let e = HttpError::TooLarge {
            doing: "accessing a secret version",
            url: "http://127.0.0.1:9/v1/x:access".into(),
            cap: Cap::kib(192),
            seen: Seen::Declared(4 << 30),
        };
        assert_eq!(
            e.to_string(),
            "accessing a secret version: http://127.0.0.1:9/v1/x:access sent a response larger than 192 KiB, the most this call reads (Content-Length: 4294967296); refusing it"
        );
        assert!(!e.is_transient());
    }

    #[test]
    fn a_refused_connection_is_described_by_its_cause() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = rt
            .block_on(
                reqwest::Client::builder()
                    .no_proxy()
                    .build()
                    .unwrap()
                    .get(format!("http://127.0.0.1:{port}/?secret=x"))
                    .send(),
            )
            .unwrap_err();
        let d = describe(&e);
        assert_eq!(d, "connection failed: Connection refused", "{d}");
    }
}
