//! Small pieces every API of the broker shares: answers whose body holds a
//! credential (kept in a buffer that is wiped when the last copy is dropped),
//! the request checks the real endpoints make (forwarded requests, methods),
//! and the query string as a list of pairs.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use bytes::Bytes;
use zeroize::Zeroize;

/// A body buffer wiped when hyper drops the last reference to it.
struct Wiped(Vec<u8>);

impl AsRef<[u8]> for Wiped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Wiped {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// A body that carries a token, a key or a secret value.
pub(crate) fn secret_body(buf: Vec<u8>) -> Body {
    Body::from(Bytes::from_owner(Wiped(buf)))
}

/// `status`, a static content type and `body`.
pub(crate) fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Body>,
) -> Response<Body> {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// Whether the request says it was forwarded by a proxy (`X-Forwarded-For`,
/// or the standard `Forwarded`). A loopback endpoint is for the processes of
/// this machine: a forwarded request is a server-side request forgery until
/// proven otherwise, and the real metadata servers and the Secrets Manager
/// Agent refuse it.
pub(crate) fn forwarded(h: &HeaderMap) -> bool {
    h.contains_key("x-forwarded-for") || h.contains_key(header::FORWARDED)
}

/// Every API here is read-only and, like the endpoints it stands in for,
/// takes GET only.
pub(crate) fn readable(m: &Method) -> bool {
    m == Method::GET
}

/// The query string's pairs, percent-decoded.
pub(crate) fn query(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The first value of `name` in `q`.
pub(crate) fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}
