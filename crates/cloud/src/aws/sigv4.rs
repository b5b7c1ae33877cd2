//! AWS Signature Version 4, as a server verifies it: parse the `Authorization`
//! header (or the presigned `X-Amz-*` query parameters), rebuild the canonical
//! request from what was received using the headers the client listed as
//! signed, derive the signing key from the secret access key, and compare the
//! signatures in constant time.
//!
//! The canonicalisation is written here rather than borrowed from a client
//! crate, so the cloud does not share a client's bugs; it is proven against
//! AWS's own signing suite (`tests/aws_sigv4_suite.rs`). Paths are normalised
//! (dot segments removed, repeated slashes merged) and each character outside
//! the unreserved set is percent-encoded, as for every service but S3; query
//! keys and values are decoded and re-encoded strictly, then sorted.
//!
//! Before any signature is computed, [`check`] holds a request to what AWS
//! requires of it: `host` and every `x-amz-*` header sent (`x-amz-date`,
//! `x-amz-security-token`, `x-amz-target`, `x-amz-content-sha256`, …) among
//! the signed headers, and the date header that dates an `Authorization`
//! signature; a presigned URL's `X-Amz-Expires` a number of seconds from 1 to
//! 604800; and the signature's date within 15 minutes of the clock. STS and
//! Secrets Manager give a presigned URL the same 15 minutes as any signature,
//! whatever its `X-Amz-Expires` says (only S3 honours it), which is what lets
//! an EKS token (`X-Amz-Expires=60`) be used for its 15 minutes. The
//! time arithmetic saturates at the ends of `i64`, so no date overflows.

use aws_lc_rs::hmac;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// A signature may be this far from the cloud's clock (AWS: 15 minutes).
pub const MAX_SKEW_SECS: i64 = 15 * 60;

/// The longest `X-Amz-Expires` AWS accepts (a week).
pub const MAX_PRESIGN_EXPIRES_SECS: i64 = 604_800;

/// A request as received.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent on the wire (not decoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Header names and values in the order received (names in any case).
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// `POST /` with no query: how the JSON and query protocols send every request.
    pub fn post(headers: &'a [(String, String)], body: &'a [u8]) -> Self {
        Request {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body,
        }
    }
}

/// What the signature claims.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub access_key: String,
    /// `YYYYMMDD` from the credential scope.
    pub scope_date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// `YYYYMMDDTHHMMSSZ`.
    pub amz_date: String,
    pub security_token: Option<String>,
    /// Presigned URL: its `X-Amz-Expires`.
    pub presigned_expires: Option<i64>,
}

/// Why a request's signature is not even computed. The `Display` text is
/// AWS's message; which error code it travels under is the caller's choice
/// by variant (the wire protocol decides the codes' names).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// No signature at all.
    #[error("Missing Authentication Token")]
    Missing,
    /// A signature that cannot be parsed (AWS: IncompleteSignature).
    #[error("{0}")]
    Incomplete(String),
    /// A presigned URL's `X-Amz-Expires` is not 1 to 604800 seconds (AWS:
    /// AuthorizationQueryParametersError).
    #[error("{0}")]
    ExpiresParameter(ExpiresProblem),
    /// `host` is not among the signed headers.
    #[error("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")]
    HostNotSigned,
    /// Headers AWS requires to be signed were sent unsigned (lowercase, sorted).
    #[error("There were headers present in the request which were not signed: {}", .0.join(", "))]
    NotSigned(Vec<String>),
    /// The signature's date is not an ISO-8601 basic date-time.
    #[error(
        "Date must be in ISO-8601 'basic format'. Got '{0}'. See http://en.wikipedia.org/wiki/ISO_8601"
    )]
    BadDate(String),
    /// Signed more than 15 minutes ago.
    #[error("Signature expired: {amz_date} is now earlier than {} ({} - 15 min.)", format_amz_date(.now.saturating_sub(MAX_SKEW_SECS)), format_amz_date(*.now))]
    Expired { amz_date: String, now: i64 },
    /// Signed more than 15 minutes ahead.
    #[error("Signature not yet current: {amz_date} is still later than {} ({} + 15 min.)", format_amz_date(.now.saturating_add(MAX_SKEW_SECS)), format_amz_date(*.now))]
    NotYetCurrent { amz_date: String, now: i64 },
    /// The credential scope's date is not the signature's.
    #[error("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{scope_date}' != '{}', from '{amz_date}'.", .amz_date.get(..8).unwrap_or(""))]
    ScopeDate {
        scope_date: String,
        amz_date: String,
    },
}

impl SigError {
    /// A signature is refused for what the request is; sending it again gives
    /// the same answer (an expired one only gets older).
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// What is wrong with `X-Amz-Expires`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiresProblem {
    NotANumber,
    Negative,
    Zero,
    OverAWeek,
}

impl std::fmt::Display for ExpiresProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExpiresProblem::NotANumber => "X-Amz-Expires should be a number",
            ExpiresProblem::Negative => "X-Amz-Expires must be non-negative",
            ExpiresProblem::Zero => "X-Amz-Expires must be at least 1 second",
            ExpiresProblem::OverAWeek => {
                "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds"
            }
        })
    }
}

/// `X-Amz-Expires`: decimal digits, 1 to [`MAX_PRESIGN_EXPIRES_SECS`]. A
/// number of any length is judged without overflow.
fn presign_expires(v: &str) -> Result<i64, ExpiresProblem> {
    let (negative, digits) = match v.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, v),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ExpiresProblem::NotANumber);
    }
    let zero = digits.bytes().all(|b| b == b'0');
    if negative && !zero {
        return Err(ExpiresProblem::Negative);
    }
    if zero {
        return Err(ExpiresProblem::Zero);
    }
    match digits.parse::<i64>() {
        Ok(n) if n <= MAX_PRESIGN_EXPIRES_SECS => Ok(n),
        _ => Err(ExpiresProblem::OverAWeek),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (pct_decode(k), pct_decode(v))
        })
        .collect()
}

fn pct_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses the claimed signature from the headers or the query.
pub fn parse(req: &Request<'_>) -> Result<Claimed, SigError> {
    let token = header(req.headers, "x-amz-security-token").map(str::to_owned);
    if let Some(auth) = header(req.headers, "authorization") {
        let rest = auth.trim().strip_prefix(ALGORITHM).ok_or_else(|| {
            SigError::Incomplete(format!("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={}", auth.split_whitespace().next().unwrap_or("")))
        })?;
        let mut cred = None;
        let mut signed = None;
        let mut sig = None;
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                cred = Some(v);
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed = Some(v);
            } else if let Some(v) = part.strip_prefix("Signature=") {
                sig = Some(v);
            }
        }
        let missing: Vec<&str> = [
            ("Credential", cred.is_none()),
            ("Signature", sig.is_none()),
            ("SignedHeaders", signed.is_none()),
        ]
        .iter()
        .filter(|(_, m)| *m)
        .map(|(n, _)| *n)
        .collect();
        if !missing.is_empty() {
            return Err(SigError::Incomplete(format!(
                "Authorization header requires '{}' parameter. Authorization={auth}",
                missing.join("' parameter. Authorization header requires '")
            )));
        }
        let amz_date = header(req.headers, "x-amz-date").or_else(|| header(req.headers, "date")).ok_or_else(|| {
            SigError::Incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into())
        })?;
        return claimed(
            cred.unwrap_or(""),
            signed.unwrap_or(""),
            sig.unwrap_or(""),
            amz_date,
            token,
            None,
        );
    }
    let q = query_pairs(req.query);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("X-Amz-Algorithm").is_none() && get("X-Amz-Signature").is_none() {
        return Err(SigError::Missing);
    }
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(SigError::Incomplete(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"".into(),
        ));
    }
    let need = |k: &str| {
        get(k).ok_or_else(|| {
            SigError::Incomplete(format!("AWS query-string parameters must include '{k}'."))
        })
    };
    let expires = presign_expires(need("X-Amz-Expires")?).map_err(SigError::ExpiresParameter)?;
    // A token sent as a header instead is taken, and must then be signed ([`check`]).
    let token = get("X-Amz-Security-Token").map(str::to_owned).or(token);
    claimed(
        need("X-Amz-Credential")?,
        need("X-Amz-SignedHeaders")?,
        need("X-Amz-Signature")?,
        need("X-Amz-Date")?,
        token,
        Some(expires),
    )
}

fn claimed(
    cred: &str,
    signed: &str,
    sig: &str,
    amz_date: &str,
    token: Option<String>,
    presigned_expires: Option<i64>,
) -> Result<Claimed, SigError> {
    let mut parts = cred.split('/');
    let (Some(key), Some(date), Some(region), Some(service), Some(term), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(SigError::Incomplete(format!(
            "Credential should be scoped to a valid region, not '{cred}'. "
        )));
    };
    if term != "aws4_request" {
        return Err(SigError::Incomplete(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{term}'. "
        )));
    }
    if key.is_empty() || region.is_empty() || service.is_empty() || date.len() != 8 {
        return Err(SigError::Incomplete(format!(
            "Credential should be scoped to a valid region, not '{cred}'. "
        )));
    }
    Ok(Claimed {
        access_key: key.to_owned(),
        scope_date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: signed
            .split(';')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect(),
        signature: sig.trim().to_ascii_lowercase(),
        amz_date: amz_date.trim().to_owned(),
        security_token: token,
        presigned_expires,
    })
}

/// Parses the claimed signature and holds the request to what AWS requires
/// before it computes one (see the module's opening): the signed headers, the
/// presigned parameters and the date, at `now` (seconds since the epoch).
/// What is left is the signature itself ([`verify`]) and who the key is.
pub fn check(req: &Request<'_>, now: i64) -> Result<Claimed, SigError> {
    let c = parse(req)?;
    let at = parse_amz_date(&c.amz_date).ok_or_else(|| SigError::BadDate(c.amz_date.clone()))?;
    if at < now.saturating_sub(MAX_SKEW_SECS) {
        return Err(SigError::Expired {
            amz_date: c.amz_date.clone(),
            now,
        });
    }
    if at > now.saturating_add(MAX_SKEW_SECS) {
        return Err(SigError::NotYetCurrent {
            amz_date: c.amz_date.clone(),
            now,
        });
    }
    if !c.amz_date.starts_with(&c.scope_date) {
        return Err(SigError::ScopeDate {
            scope_date: c.scope_date.clone(),
            amz_date: c.amz_date.clone(),
        });
    }
    if !c
        .signed_headers
        .iter()
        .any(|h| h == "host" || h == ":authority")
    {
        return Err(SigError::HostNotSigned);
    }
    let signed = |name: &str| c.signed_headers.iter().any(|h| h == name);
    let mut unsigned: Vec<String> = req
        .headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .filter(|k| k.starts_with("x-amz-") && !signed(k))
        .collect();
    // An Authorization signature dated by a `Date` header (no `x-amz-date`) must sign it.
    if c.presigned_expires.is_none()
        && header(req.headers, "x-amz-date").is_none()
        && !signed("date")
    {
        unsigned.push("date".into());
    }
    unsigned.sort();
    unsigned.dedup();
    if !unsigned.is_empty() {
        return Err(SigError::NotSigned(unsigned));
    }
    Ok(c)
}

/// Seconds since the epoch of an `X-Amz-Date` (`20150830T123600Z`).
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let t = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", s).ok()?;
    Some(
        t.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_second(),
    )
}

pub fn format_amz_date(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_default()
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// AWS's URI encoding: every byte outside the unreserved set as `%XX`.
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    uri_encode_into(&mut out, s, keep_slash);
    out
}

fn uri_encode_into(out: &mut String, s: &str, keep_slash: bool) {
    const H: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(H[(b >> 4) as usize] as char);
            out.push(H[(b & 15) as usize] as char);
        }
    }
}

/// Removes `.`/`..` segments and merges repeated slashes (RFC 3986 §5.2.4).
fn normalize_path(path: &str) -> String {
    if path == "/" {
        return String::from("/");
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut p = String::from("/");
    p.push_str(&out.join("/"));
    if path.ends_with('/') && !out.is_empty() {
        p.push('/');
    }
    p
}

fn canonical_query(query: &str, presigned: bool) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(String, String)> = query_pairs(query)
        .into_iter()
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Appends a header value trimmed, its inner runs of whitespace as one space.
fn push_canonical_header_value(out: &mut String, v: &str) {
    for (i, w) in v.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(w);
    }
}

pub fn hex(b: &[u8]) -> String {
    crate::crypto::hex(b)
}

fn sha256_hex(b: &[u8]) -> String {
    hex(&crate::crypto::sha256(b))
}

/// The canonical request for `req` as `c` describes its signature.
pub fn canonical_request(req: &Request<'_>, c: &Claimed) -> String {
    // One buffer, sized for a typical request, written in place.
    let mut s = String::with_capacity(
        256 + req
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 2)
            .sum::<usize>(),
    );
    s.push_str(req.method);
    s.push('\n');
    uri_encode_into(&mut s, &normalize_path(req.path), true);
    s.push('\n');
    s.push_str(&canonical_query(req.query, c.presigned_expires.is_some()));
    s.push('\n');
    for name in &c.signed_headers {
        s.push_str(name);
        s.push(':');
        for (i, (_, v)) in req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .enumerate()
        {
            if i > 0 {
                s.push(',');
            }
            push_canonical_header_value(&mut s, v);
        }
        s.push('\n');
    }
    s.push('\n');
    for (i, name) in c.signed_headers.iter().enumerate() {
        if i > 0 {
            s.push(';');
        }
        s.push_str(name);
    }
    s.push('\n');
    s.push_str(&sha256_hex(req.body));
    s
}

pub fn string_to_sign(canonical: &str, c: &Claimed) -> String {
    let mut s = String::with_capacity(
        ALGORITHM.len()
            + c.amz_date.len()
            + c.scope_date.len()
            + c.region.len()
            + c.service.len()
            + 86,
    );
    for part in [
        ALGORITHM,
        "\n",
        &c.amz_date,
        "\n",
        &c.scope_date,
        "/",
        &c.region,
        "/",
        &c.service,
        "/aws4_request\n",
    ] {
        s.push_str(part);
    }
    s.push_str(&sha256_hex(canonical.as_bytes()));
    s
}

fn hmac(key: &[u8], data: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
}

/// The signing key for a credential scope: `secret` through the four HMACs
/// of SigV4's key derivation. It depends only on the secret and the scope
/// (date, region, service), so a server may keep it for the day.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> hmac::Key {
    let mut k0 = zeroize::Zeroizing::new(String::with_capacity(4 + secret.len()));
    k0.push_str("AWS4");
    k0.push_str(secret);
    let k = hmac(k0.as_bytes(), date.as_bytes());
    let k = hmac(k.as_ref(), region.as_bytes());
    let k = hmac(k.as_ref(), service.as_bytes());
    let k = hmac(k.as_ref(), b"aws4_request");
    hmac::Key::new(hmac::HMAC_SHA256, k.as_ref())
}

/// The hex signature of `string_to_sign` with the key derived from `secret`.
pub fn signature(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
    string_to_sign: &str,
) -> String {
    signature_with_key(&signing_key(secret, date, region, service), string_to_sign)
}

/// The hex signature of `string_to_sign` with a [`signing_key`].
pub fn signature_with_key(key: &hmac::Key, string_to_sign: &str) -> String {
    hex(hmac::sign(key, string_to_sign.as_bytes()).as_ref())
}

/// Does the request's signature verify with `secret`? (Constant-time compare.)
pub fn verify(req: &Request<'_>, c: &Claimed, secret: &str) -> bool {
    verify_with_key(
        req,
        c,
        &signing_key(secret, &c.scope_date, &c.region, &c.service),
    )
}

/// Does the request's signature verify with `key`, the [`signing_key`] of the
/// secret and of `c`'s scope? The canonical request is rebuilt and signed
/// every time; only the key derivation is the caller's to reuse.
pub fn verify_with_key(req: &Request<'_>, c: &Claimed, key: &hmac::Key) -> bool {
    let expected = signature_with_key(key, &string_to_sign(&canonical_request(req, c), c));
    aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), c.signature.as_bytes())
        .is_ok()
}

/// Signs a request (for tests and for the cloud's own calls): returns the
/// headers to add (`x-amz-date`, optionally `x-amz-security-token`, `authorization`).
/// Every header in `req.headers` plus those added is signed.
pub fn sign(
    req: &Request<'_>,
    access_key: &str,
    secret: &str,
    token: Option<&str>,
    region: &str,
    service: &str,
    now_secs: i64,
) -> Vec<(String, String)> {
    let amz_date = format_amz_date(now_secs);
    let mut headers: Vec<(String, String)> = req.headers.to_vec();
    headers.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(t) = token {
        headers.push(("x-amz-security-token".into(), t.to_owned()));
    }
    let mut names: Vec<String> = headers
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let c = Claimed {
        access_key: access_key.to_owned(),
        scope_date: amz_date[..8].to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: names,
        signature: String::new(),
        amz_date: amz_date.clone(),
        security_token: None,
        presigned_expires: None,
    };
    let r = Request {
        method: req.method,
        path: req.path,
        query: req.query,
        headers: &headers,
        body: req.body,
    };
    let sts = string_to_sign(&canonical_request(&r, &c), &c);
    let sig = signature(secret, &c.scope_date, region, service, &sts);
    let mut out = vec![("x-amz-date".to_owned(), amz_date)];
    if let Some(t) = token {
        out.push(("x-amz-security-token".into(), t.to_owned()));
    }
    out.push((
        "authorization".into(),
        format!("{ALGORITHM} Credential={access_key}/{}/{region}/{service}/aws4_request, SignedHeaders={}, Signature={sig}", c.scope_date, c.signed_headers.join(";")),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise() {
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("//example//"), "/example/");
        assert_eq!(normalize_path("/example/.."), "/");
        assert_eq!(normalize_path("/./example"), "/example");
        assert_eq!(uri_encode("/example space/", true), "/example%20space/");
    }

    #[test]
    fn presign_expires_is_one_second_to_a_week() {
        use ExpiresProblem::*;
        for (v, want) in [
            ("1", Ok(1)),
            ("604800", Ok(604_800)),
            ("000604800", Ok(604_800)),
            ("604801", Err(OverAWeek)),
            ("9223372036854775807", Err(OverAWeek)),
            ("99999999999999999999999", Err(OverAWeek)),
            ("0", Err(Zero)),
            ("-0", Err(Zero)),
            ("-1", Err(Negative)),
            ("-99999999999999999999999", Err(Negative)),
            ("", Err(NotANumber)),
            ("-", Err(NotANumber)),
            ("+1", Err(NotANumber)),
            (" 1", Err(NotANumber)),
            ("1.0", Err(NotANumber)),
            ("٣", Err(NotANumber)),
        ] {
            assert_eq!(presign_expires(v), want, "{v:?}");
        }
    }

    #[test]
    fn sign_then_verify() {
        let headers = vec![("host".to_owned(), "127.0.0.1:1".to_owned())];
        let r = Request::post(&headers, b"Action=GetCallerIdentity");
        let add = sign(
            &r,
            "AKIDEXAMPLE",
            "secret",
            None,
            "us-east-1",
            "sts",
            1_700_000_000,
        );
        let mut all = headers.clone();
        all.extend(add);
        let r = Request { headers: &all, ..r };
        let c = parse(&r).unwrap();
        assert!(verify(&r, &c, "secret"));
        assert!(!verify(&r, &c, "secreT"));
        assert_eq!(parse_amz_date(&c.amz_date), Some(1_700_000_000));
    }
}
