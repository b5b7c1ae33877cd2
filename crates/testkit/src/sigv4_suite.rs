//! AWS's own SigV4 test suite (`aws-sigv4-suite/v4` of the shared vectors):
//! one folder a case, each with `context.json` (credentials, region, service,
//! time, settings) and the request at each stage (`request.txt`,
//! `header-canonical-request.txt`, `header-string-to-sign.txt`,
//! `header-signature.txt`, `header-signed-request.txt`, the `query-*` forms).
//! Both directions are proven on it: the client's signer (keyway-secrets,
//! through `aws-sigv4`) and the local cloud's verifier.

use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where the suite is (panics, naming where it looked, when it is missing).
pub fn dir() -> PathBuf {
    crate::paths::vectors("aws-sigv4-suite/v4")
}

/// One case of the suite.
pub struct Case {
    /// The folder's name (`get-vanilla`, …).
    pub name: String,
    pub dir: PathBuf,
    /// `context.json`.
    pub context: Value,
}

impl Case {
    /// A file of the case, if the case has it (not every case has every stage).
    pub fn file(&self, name: &str) -> Option<String> {
        let p = self.dir.join(name);
        match std::fs::read_to_string(&p) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("cannot read {}: {e}", p.display()),
        }
    }

    /// A file the case must have.
    pub fn require(&self, name: &str) -> String {
        self.file(name)
            .unwrap_or_else(|| panic!("{}: no {name}", self.dir.display()))
    }

    /// `context.json`'s `"normalize": false` (S3-style paths, not normalised).
    pub fn s3_style(&self) -> bool {
        self.context["normalize"] == Value::Bool(false)
    }

    /// `context.json`'s `"omit_session_token": true`: the session token is
    /// added after signing, so it is not part of the signature.
    pub fn token_added_after_signing(&self) -> bool {
        self.context["omit_session_token"] == Value::Bool(true)
    }

    /// The case's secret access key.
    pub fn secret(&self) -> &str {
        self.context["credentials"]["secret_access_key"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no credentials.secret_access_key", self.name))
    }
}

/// Every case of the suite, by name. Panics when the suite is missing, a
/// case's `context.json` does not read as JSON, or there are no cases.
pub fn cases() -> Vec<Case> {
    cases_in(&dir())
}

fn cases_in(dir: &Path) -> Vec<Case> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list the SigV4 suite at {}: {e}", dir.display()));
    let mut cases = Vec::new();
    for e in entries {
        let e = e.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        let path = e.path();
        if !path.is_dir() {
            continue;
        }
        let ctx = path.join("context.json");
        let text = std::fs::read_to_string(&ctx)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", ctx.display()));
        let context: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", ctx.display()));
        cases.push(Case {
            name: e.file_name().to_string_lossy().into_owned(),
            dir: path,
            context,
        });
    }
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// A request of the suite as written in its `.txt` files.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRequest {
    pub method: String,
    /// The path of the request-target, as written (not decoded).
    pub path: String,
    /// The query of the request-target, without `?` (empty if none).
    pub query: String,
    /// In order, `host` included, names as written, values as written after
    /// the colon; an obs-folded line is joined to its header with one space.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    /// The request-target: the path, and `?query` if there is one.
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    /// The `host` header's value.
    pub fn host(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a request as the suite writes it: `METHOD TARGET HTTP/1.1`, header
/// lines, and after an empty line the body.
pub fn parse_request(text: &str) -> Result<RawRequest, String> {
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h, b.as_bytes().to_vec()),
        None => (text, Vec::new()),
    };
    let mut lines = head.lines();
    let first = lines.next().ok_or("an empty request")?;
    let first = first
        .strip_suffix(" HTTP/1.1")
        .ok_or_else(|| format!("the request line {first:?} does not end in HTTP/1.1"))?;
    let (method, target) = first
        .split_once(' ')
        .ok_or_else(|| format!("the request line {first:?} has no target"))?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for l in lines {
        if l.starts_with(' ') || l.starts_with('\t') {
            // obs-fold: a recipient replaces it with one space (RFC 9112 section 5.2).
            let last = headers
                .last_mut()
                .ok_or_else(|| format!("a folded line {l:?} before any header"))?;
            last.1.push(' ');
            last.1.push_str(l.trim());
        } else {
            let (k, v) = l
                .split_once(':')
                .ok_or_else(|| format!("the header line {l:?} has no colon"))?;
            headers.push((k.to_owned(), v.to_owned()));
        }
    }
    Ok(RawRequest {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads_folds_and_bodies() {
        let r = parse_request(
            "POST /a/b?x=1&y HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value2\n value3\n\nbody",
        )
        .unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/a/b"));
        assert_eq!(
            (r.query.as_str(), r.target()),
            ("x=1&y", "/a/b?x=1&y".into())
        );
        assert_eq!(r.host(), Some("example.amazonaws.com"));
        assert_eq!(r.headers[1], ("My-Header1".into(), "value2 value3".into()));
        assert_eq!(r.body, b"body");
        assert!(
            parse_request("GET / HTTP/2\n")
                .unwrap_err()
                .contains("HTTP/1.1")
        );
        assert!(parse_request("GET / HTTP/1.1\n folded").is_err());
        assert!(parse_request("GET / HTTP/1.1\nno-colon").is_err());
    }

    #[test]
    fn a_missing_suite_names_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("v4");
        let msg = std::panic::catch_unwind(|| cases_in(&gone))
            .err()
            .and_then(|p| p.downcast::<String>().ok())
            .unwrap();
        assert!(msg.contains(&gone.display().to_string()), "{msg}");
        let empty = std::panic::catch_unwind(|| cases_in(dir.path()))
            .err()
            .and_then(|p| p.downcast::<String>().ok())
            .unwrap();
        assert!(empty.contains("no cases"), "{empty}");
    }

    #[test]
    fn the_suite_is_found_from_the_repository() {
        let cases = cases();
        assert!(cases.len() >= 25, "only {} cases", cases.len());
        assert!(cases.iter().any(|c| c.name == "get-vanilla"));
    }
}
