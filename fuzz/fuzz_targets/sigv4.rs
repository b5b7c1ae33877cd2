//! SigV4 as the local cloud verifies it (`keyway_cloud::aws::sigv4`): parse the
//! claimed signature, rebuild the canonical request, verify.
//!
//! The input is an HTTP request as text, the form of AWS's SigV4 suite
//! (`METHOD TARGET HTTP/1.1`, `Name:value` lines, indented continuation lines,
//! a blank line, the body). Three checks:
//! 1. The request as received: parse, canonical request, string to sign and
//!    verify never panic.
//! 2. The same method, path, query, headers and body signed in-target by the
//!    cloud's own signer (with and without a session token) verify; and every
//!    tampering refuses: a changed signature, body, method, path, query, header
//!    value, or the wrong secret.
//! 3. Signed by AWS's Rust signer (the `aws-sigv4` crate, through keyway-auth),
//!    wherever it accepts the request, the request verifies.
#![no_main]

use keyway_cloud::aws::sigv4::{self, Request};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, UNIX_EPOCH};

/// The suite's credentials and time (2015-08-30T12:36:00Z).
const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const NOW: i64 = 1_440_938_160;

struct Http {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Reads the suite's request form; `None` when the head is not UTF-8 or has no request line.
fn read_http(data: &[u8]) -> Option<Http> {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (&data[..i], data[i + 2..].to_vec()),
        None => (data, Vec::new()),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split('\n');
    let line = lines.next()?;
    let (method, rest) = line.split_once(' ')?;
    let target = rest.strip_suffix(" HTTP/1.1").unwrap_or(rest);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for l in lines {
        if l.starts_with([' ', '\t']) {
            if let Some((_, v)) = headers.last_mut() {
                v.push('\n');
                v.push_str(l);
            }
        } else if let Some((k, v)) = l.split_once(':') {
            headers.push((k.to_owned(), v.to_owned()));
        }
    }
    Some(Http {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body,
    })
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// What an HTTP server hands over: visible ASCII, spaces and tabs.
fn is_field_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

fn as_request<'a>(h: &'a Http, headers: &'a [(String, String)]) -> Request<'a> {
    Request {
        method: &h.method,
        path: &h.path,
        query: &h.query,
        headers,
        body: &h.body,
    }
}

fn verifies(r: &Request<'_>, secret: &str) -> bool {
    sigv4::parse(r).is_ok_and(|c| sigv4::verify(r, &c, secret))
}

fn signed_by_the_cloud(h: &Http, headers: &[(String, String)], token: Option<&str>) {
    let unsigned = as_request(h, headers);
    let mut all = headers.to_vec();
    all.extend(sigv4::sign(
        &unsigned,
        ACCESS_KEY,
        SECRET,
        token,
        "us-east-1",
        "service",
        NOW,
    ));
    let r = as_request(h, &all);
    let c = sigv4::parse(&r).expect("a request the cloud signed parses");
    assert_eq!(c.access_key, ACCESS_KEY);
    assert_eq!(c.security_token.as_deref(), token);
    assert!(
        sigv4::verify(&r, &c, SECRET),
        "a request the cloud signed does not verify\n{}",
        sigv4::canonical_request(&r, &c)
    );
    assert!(
        !sigv4::verify(&r, &c, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ"),
        "verified with the wrong secret"
    );

    // The Authorization header's last hex digit changed.
    let mut t = all.clone();
    let auth = &mut t.iter_mut().find(|(k, _)| k == "authorization").unwrap().1;
    let last = auth.pop().unwrap();
    auth.push(if last == '0' { '1' } else { '0' });
    assert!(
        !verifies(&as_request(h, &t), SECRET),
        "a tampered signature verified"
    );

    let mut body = h.body.clone();
    body.push(b'x');
    assert!(
        !verifies(&Request { body: &body, ..r }, SECRET),
        "a tampered body verified"
    );
    let method = format!("{}X", h.method);
    assert!(
        !verifies(
            &Request {
                method: &method,
                ..r
            },
            SECRET
        ),
        "a tampered method verified"
    );
    let path = format!("{}x", h.path);
    assert!(
        !verifies(&Request { path: &path, ..r }, SECRET),
        "a tampered path verified"
    );
    let query = if h.query.is_empty() {
        "tamper=1".to_owned()
    } else {
        format!("{}&tamper=1", h.query)
    };
    assert!(
        !verifies(&Request { query: &query, ..r }, SECRET),
        "a tampered query verified"
    );
    if !headers.is_empty() {
        let mut t = all.clone();
        t[0].1.push('x');
        assert!(
            !verifies(&as_request(h, &t), SECRET),
            "a tampered header value verified"
        );
    }
}

fn signed_by_aws_sigv4(h: &Http, headers: &[(String, String)]) {
    // A path ending in a dot segment ("/a/b/..") is where AWS's own SDKs
    // disagree: aws-sigv4 canonicalises it with a trailing slash ("/a/"),
    // botocore (and the cloud) without ("/a"). Not a verifier defect; skipped.
    // Likewise a tab inside a header value: aws-sigv4 keeps it, botocore
    // (and the cloud) fold it into one space with the spaces around it.
    // And a query not already in encoded form (a raw '+', space or non-ASCII
    // byte): aws-sigv4 decodes '+' as a space, botocore signs the query as
    // sent, the cloud decodes '%XX' only. SDKs send queries encoded.
    let encoded = |b: u8| b.is_ascii_alphanumeric() || b"-_.~%=&".contains(&b);
    if h.path.ends_with("/.")
        || h.path.ends_with("/..")
        || headers.iter().any(|(_, v)| v.contains('\t'))
        || !h.query.bytes().all(encoded)
    {
        return;
    }
    let creds = keyway_auth::AwsCredentials {
        access_key_id: ACCESS_KEY.to_owned(),
        secret_access_key: SECRET.to_owned().into(),
        session_token: None,
        expires_at: None,
    };
    let uri = if h.query.is_empty() {
        h.path.clone()
    } else {
        format!("{}?{}", h.path, h.query)
    };
    let Ok((added, _)) = keyway_auth::aws::signature(
        &h.method,
        &uri,
        headers,
        &h.body,
        &creds,
        "us-east-1",
        "service",
        UNIX_EPOCH + Duration::from_secs(NOW as u64),
        Default::default(),
    ) else {
        return;
    };
    let mut all = headers.to_vec();
    all.extend(added);
    let r = as_request(h, &all);
    let c = sigv4::parse(&r).expect("a request aws-sigv4 signed parses");
    assert!(
        sigv4::verify(&r, &c, SECRET),
        "aws-sigv4 signed {} {uri:?} but the cloud does not verify it; the cloud's canonical request:\n{}",
        h.method,
        sigv4::canonical_request(&r, &c)
    );
}

fuzz_target!(|data: &[u8]| {
    let Some(h) = read_http(data) else {
        return;
    };
    // 1. As received.
    let r = as_request(&h, &h.headers);
    if let Ok(c) = sigv4::parse(&r) {
        let canonical = sigv4::canonical_request(&r, &c);
        let _ = sigv4::string_to_sign(&canonical, &c);
        let _ = sigv4::verify(&r, &c, SECRET);
        let _ = sigv4::parse_amz_date(&c.amz_date);
    }
    // 2 and 3: what a client could send, without the signature headers it
    // would add, as a server hands it over (hyper/axum: a valid request
    // target's path and query; no fragment).
    if !is_token(&h.method) {
        return;
    }
    let target = if h.query.is_empty() {
        h.path.clone()
    } else {
        format!("{}?{}", h.path, h.query)
    };
    let Ok(uri) = target.parse::<http::Uri>() else {
        return;
    };
    let h = Http {
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        ..h
    };
    let headers: Vec<(String, String)> = h
        .headers
        .iter()
        .filter(|(k, v)| is_token(k) && is_field_value(v))
        .filter(|(k, _)| {
            ![
                "authorization",
                "x-amz-date",
                "date",
                "x-amz-security-token",
            ]
            .iter()
            .any(|n| k.eq_ignore_ascii_case(n))
        })
        .cloned()
        .collect();
    signed_by_the_cloud(&h, &headers, None);
    signed_by_the_cloud(
        &h,
        &headers,
        Some("AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQW"),
    );
    signed_by_aws_sigv4(&h, &headers);
});
