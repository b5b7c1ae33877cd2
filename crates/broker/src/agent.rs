//! A secrets cache compatible with the AWS Secrets Manager Agent, so that a
//! team that runs the agent switches to keyway with no code change, plus one
//! endpoint of the same shape for any keyway reference (Google Secret Manager
//! included).
//!
//! As the agent (2.0.0) answers, checked against a build of it:
//! * `GET /secretsmanager/get?secretId=ID[&versionId=V][&versionStage=S][&refreshNow=true|false|1|0]`
//!   and the path form `GET /v1/ID?…`: the GetSecretValue JSON (`ARN`, `Name`,
//!   `VersionId`, `SecretString` or `SecretBinary`, `VersionStages`,
//!   `CreatedDate` as a string of seconds with milliseconds);
//! * `GET /ping`: `healthy`, without a token;
//! * the token in `X-Aws-Parameters-Secrets-Token` or `X-Vault-Token`, else
//!   403 `Bad Token`; `X-Forwarded-For` 400 `Forwarded`; a method but GET 405
//!   `Not allowed`; another path 404 `Not found`; a missing `secretId` 400
//!   `missing parameter secretId`; an unknown parameter 400 `unknown parameter:
//!   NAME`; a bad `refreshNow` 400 `invalid refreshNow value`;
//! * Secrets Manager's own errors passed on with their status and
//!   `{"__type":CODE, "message":MESSAGE}`; an unreachable endpoint 502
//!   `ConnectionError`; anything else 500 `{"__type":"InternalFailure"}`.
//!
//! The cache honours a TTL as the agent does (default 300 s, 0 = no cache):
//! a value is served from memory until it is older than the TTL, then fetched
//! again on the next request (one fetch however many callers ask at once);
//! `refreshNow=true` fetches at once and, if that fails, answers the error and
//! keeps the cache. Better than the agent: when a refetch fails transiently
//! the stale value is served (and the failure logged) rather than an error;
//! the cache holds at most [`MAX_ENTRIES`] values (the oldest is dropped), and
//! every cached answer sits in a buffer wiped when it is dropped.
//!
//! `GET /keyway/get?secretId=REFERENCE[&refreshNow=…]` takes any keyway
//! reference (`sm://P/S`, `projects/P/secrets/S/versions/V`, an ECS
//! `valueFrom` ARN with its json-key, `aws-sm://…`, `?field=`…) and answers
//! the same shape: `Name` is the reference as given, `ARN` its canonical
//! form, `SecretString` (or `SecretBinary` when the value is not UTF-8);
//! `VersionId` and `CreatedDate` are null.

use crate::Token;
use crate::reply::{forwarded, readable, response};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Response, StatusCode};
use base64::Engine;
use bytes::Bytes;
use keyway_auth::GoogleCredentials;
use keyway_core::{Reference, SecretRef};
use keyway_secrets::{FetchError, Fetcher};
use keyway_wire::aws::secretsmanager::GetSecretValueResponse;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};
use zeroize::Zeroize;

/// The endpoint for any keyway reference.
pub const KEYWAY_PATH: &str = "/keyway/get";
const AGENT_PATH: &str = "/secretsmanager/get";
const PATH_PREFIX: &str = "/v1/";
/// Values kept at once (the agent's largest `cache_size`).
pub const MAX_ENTRIES: usize = 1000;
/// The agent's default TTL.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// Concurrent misses are serialised per stripe (one fetch per key at a time).
const STRIPES: usize = 64;

/// Whether `path` belongs to this API.
pub fn serves(path: &str) -> bool {
    path == AGENT_PATH || path == "/ping" || path == KEYWAY_PATH || path.starts_with(PATH_PREFIX)
}

/// What the secrets API serves.
pub struct Secrets {
    fetcher: Fetcher,
    google: Option<GoogleCredentials>,
    token: Arc<Token>,
    ttl: Duration,
    cache: RwLock<HashMap<Key, Entry>>,
    stripes: Vec<tokio::sync::Mutex<()>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    keyway: bool,
    id: String,
    version_id: Option<String>,
    version_stage: Option<String>,
}

struct Entry {
    body: Bytes,
    fetched: Instant,
}

/// One request, parsed.
struct Query {
    key: Key,
    refresh_now: bool,
}

impl Secrets {
    /// `fetcher` reads AWS secrets (its `aws` provider) and Google ones (with
    /// `google`'s tokens); `ttl` at most one hour, as the agent allows.
    pub fn new(
        fetcher: Fetcher,
        google: Option<GoogleCredentials>,
        token: Arc<Token>,
        ttl: Duration,
    ) -> Secrets {
        Secrets {
            fetcher,
            google,
            token,
            ttl: ttl.min(Duration::from_secs(3600)),
            cache: RwLock::new(HashMap::new()),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    fn cached(&self, key: &Key) -> Option<(Bytes, bool)> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(key)
            .map(|e| (e.body.clone(), e.fetched.elapsed() < self.ttl))
    }

    fn store(&self, key: Key, body: Bytes) {
        if self.ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_ENTRIES && !cache.contains_key(&key) {
            let oldest = cache
                .iter()
                .min_by_key(|(_, e)| e.fetched)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                cache.remove(&k);
            }
        }
        cache.insert(
            key,
            Entry {
                body,
                fetched: Instant::now(),
            },
        );
    }

    fn forget(&self, key: &Key) {
        self.cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// The stripe of `key` (FNV-1a of its id): stable for the process's life.
    fn stripe(&self, key: &Key) -> &tokio::sync::Mutex<()> {
        let h = key.id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        &self.stripes[(h % STRIPES as u64) as usize]
    }

    /// The answer for `q`: from the cache, or fetched once for every caller.
    async fn get(&self, q: Query) -> Result<Bytes, Failure> {
        if !q.refresh_now
            && let Some((body, true)) = self.cached(&q.key)
        {
            return Ok(body);
        }
        let _one = self.stripe(&q.key).lock().await;
        if !q.refresh_now
            && let Some((body, true)) = self.cached(&q.key)
        {
            return Ok(body);
        }
        match self.fetch(&q.key).await {
            Ok(body) => {
                self.store(q.key, body.clone());
                Ok(body)
            }
            Err(e) if q.refresh_now => Err(e),
            Err(e) => match self.cached(&q.key) {
                Some((stale, _)) if e.transient => {
                    tracing::warn!(error = %e.logged, "refetching a cached secret failed; serving the cached value");
                    Ok(stale)
                }
                _ => {
                    self.forget(&q.key);
                    Err(e)
                }
            },
        }
    }

    async fn fetch(&self, key: &Key) -> Result<Bytes, Failure> {
        if key.keyway {
            return self.fetch_reference(&key.id).await;
        }
        let r = Reference::AwsSecretsManager {
            region: None,
            account: None,
            secret_id: key.id.clone(),
            json_key: None,
            version_stage: key.version_stage.clone(),
            version_id: key.version_id.clone(),
        };
        let raw = keyway_secrets::aws::get_secret_value_response(&self.fetcher, &r)
            .await
            .map_err(|e| Failure::of(&e))?;
        agent_json(raw.expose())
            .ok_or_else(|| Failure::internal("the GetSecretValue answer could not be read"))
    }

    async fn fetch_reference(&self, given: &str) -> Result<Bytes, Failure> {
        let r = SecretRef::parse(given).map_err(|e| Failure {
            status: 400,
            code: "InvalidParameterException".into(),
            message: e.to_string(),
            transient: false,
            logged: e.to_string(),
        })?;
        let token = match (&r.source, &self.google) {
            (Reference::GcpSecretManager { .. }, Some(g)) => Some(
                g.access_token()
                    .await
                    .map_err(|e| Failure {
                        status: if e.is_transient() { 503 } else { 500 },
                        code: "InternalFailure".into(),
                        message: String::new(),
                        transient: e.is_transient(),
                        logged: e.to_string(),
                    })?
                    .token,
            ),
            _ => None,
        };
        let value = self
            .fetcher
            .fetch(&r, token.as_ref())
            .await
            .map_err(|e| Failure::of(&e))?;
        let mut out = Vec::with_capacity(value.len() + 256);
        out.extend_from_slice(b"{\"ARN\":");
        json_str(&mut out, &r.source.to_string());
        out.extend_from_slice(b",\"Name\":");
        json_str(&mut out, given);
        out.extend_from_slice(b",\"VersionId\":null,");
        match std::str::from_utf8(value.expose()) {
            Ok(s) => {
                out.extend_from_slice(b"\"SecretString\":");
                json_str(&mut out, s);
            }
            Err(_) => {
                out.extend_from_slice(b"\"SecretBinary\":\"");
                let mut b64 = base64::engine::general_purpose::STANDARD.encode(value.expose());
                out.extend_from_slice(b64.as_bytes());
                b64.zeroize();
                out.push(b'"');
            }
        }
        out.extend_from_slice(b",\"CreatedDate\":null}");
        Ok(wiped(out))
    }
}

fn wiped(buf: Vec<u8>) -> Bytes {
    struct W(Vec<u8>);
    impl AsRef<[u8]> for W {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }
    impl Drop for W {
        fn drop(&mut self) {
            self.0.zeroize();
        }
    }
    Bytes::from_owner(W(buf))
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Serialising a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The agent's rendering of a GetSecretValue answer: the same fields, with
/// `CreatedDate` as a string of seconds (milliseconds when not whole).
fn agent_json(raw: &[u8]) -> Option<Bytes> {
    let mut r: GetSecretValueResponse = serde_json::from_slice(raw).ok()?;
    let mut out = Vec::with_capacity(raw.len() + 64);
    out.extend_from_slice(b"{\"ARN\":");
    json_str(&mut out, &r.arn);
    out.extend_from_slice(b",\"Name\":");
    json_str(&mut out, &r.name);
    out.extend_from_slice(b",\"VersionId\":");
    json_str(&mut out, &r.version_id);
    if let Some(s) = &r.secret_string {
        out.extend_from_slice(b",\"SecretString\":");
        json_str(&mut out, s);
    }
    if let Some(b) = &r.secret_binary {
        out.extend_from_slice(b",\"SecretBinary\":");
        json_str(&mut out, b);
    }
    out.extend_from_slice(b",\"VersionStages\":");
    let _ = serde_json::to_writer(&mut out, &r.version_stages);
    out.extend_from_slice(b",\"CreatedDate\":");
    json_str(&mut out, &seconds(r.created_date));
    out.push(b'}');
    if let Some(s) = r.secret_string.as_mut() {
        s.zeroize();
    }
    if let Some(b) = r.secret_binary.as_mut() {
        b.zeroize();
    }
    Some(wiped(out))
}

/// `1796179219.884`, `1796179219` when whole.
fn seconds(t: f64) -> String {
    let millis = (t * 1000.0).round() as i64;
    let (s, ms) = (millis.div_euclid(1000), millis.rem_euclid(1000));
    if ms == 0 {
        return s.to_string();
    }
    let mut frac = format!("{ms:03}");
    while frac.ends_with('0') {
        frac.pop();
    }
    format!("{s}.{frac}")
}

/// Why a secret could not be served, as the agent answers it.
#[derive(Debug)]
struct Failure {
    status: u16,
    code: String,
    message: String,
    transient: bool,
    /// For the log line (no secret: FetchError never carries a value).
    logged: String,
}

impl Failure {
    fn internal(why: &str) -> Failure {
        Failure {
            status: 500,
            code: "InternalFailure".into(),
            message: String::new(),
            transient: false,
            logged: why.to_owned(),
        }
    }

    /// Secrets Manager's own refusals keep their code (status 400, as AWS
    /// sends them); Google's are given the nearest Secrets Manager code.
    fn of(e: &FetchError) -> Failure {
        let (status, code, message) = match e {
            FetchError::NotFound { message, .. } => {
                (400, "ResourceNotFoundException", message.clone())
            }
            FetchError::AwsAccessDenied { message, .. }
            | FetchError::PermissionDenied { message, .. } => {
                (400, "AccessDeniedException", message.clone())
            }
            FetchError::InsufficientScopes { .. } => (
                400,
                "AccessDeniedException",
                "the access token's scopes do not cover Secret Manager".to_owned(),
            ),
            FetchError::AwsDecryption { message, .. } => {
                (400, "DecryptionFailure", message.clone())
            }
            FetchError::AwsInvalidRequest { message, .. }
            | FetchError::NotEnabled { message, .. } => {
                (400, "InvalidRequestException", message.clone())
            }
            FetchError::Unauthenticated { message, .. } => {
                (400, "UnrecognizedClientException", message.clone())
            }
            FetchError::AwsRefused { rejection, .. } => (
                400,
                "UnrecognizedClientException",
                rejection.message.clone(),
            ),
            // The chain failed transiently at a refresh: the agent's answer
            // when its own upstream cannot be reached.
            FetchError::AwsCredentials { error, .. } if error.is_transient() => {
                (502, "ConnectionError", "Read Error".to_owned())
            }
            FetchError::AwsCredentials { error, .. } => {
                (400, "UnrecognizedClientException", error.to_string())
            }
            FetchError::Field { reason, .. } => {
                (400, "InvalidParameterException", reason.to_string())
            }
            FetchError::Transport {
                error: keyway_http::HttpError::Timeout { .. },
                ..
            } => (504, "TimeoutError", "Timeout".to_owned()),
            FetchError::Transport { .. } => (502, "ConnectionError", "Read Error".to_owned()),
            FetchError::Throttled {
                status,
                code,
                message,
                ..
            } => {
                return Failure {
                    status: *status,
                    code: code.clone(),
                    message: message.clone(),
                    transient: true,
                    logged: e.to_string(),
                };
            }
            _ => (500, "InternalFailure", String::new()),
        };
        Failure {
            status,
            code: code.to_owned(),
            message,
            transient: e.is_transient(),
            logged: e.to_string(),
        }
    }

    fn response(&self) -> Response<Body> {
        // The agent's own rendering (note the space after the comma).
        let body = if self.message.is_empty() || self.code == "InternalFailure" {
            "{\"__type\":\"InternalFailure\"}".to_owned()
        } else {
            let mut m = Vec::new();
            json_str(&mut m, &self.message);
            format!(
                "{{\"__type\":\"{}\", \"message\":{}}}",
                self.code,
                String::from_utf8_lossy(&m)
            )
        };
        response(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "application/json",
            body,
        )
    }
}

fn plain(status: StatusCode, msg: &'static str) -> Response<Body> {
    response(status, "text/plain; charset=utf-8", msg)
}

fn bad_request(msg: String) -> Response<Body> {
    response(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", msg)
}

/// The secrets API alone (the broker's combined router dispatches to [`handle`]).
pub fn router(state: Arc<Secrets>) -> Router {
    Router::new()
        .fallback(
            |State(s): State<Arc<Secrets>>, req: Request| async move { handle(&s, req).await },
        )
        .with_state(state)
}

/// `refreshNow`'s values, as the agent reads them.
fn refresh_value(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Parses the query (and, for the path form, the id in the path).
/// `Err` is the agent's 400 message.
fn parse(path: &str, query: Option<&str>) -> Result<Query, String> {
    let keyway = path == KEYWAY_PATH;
    let mut id = match path.strip_prefix(PATH_PREFIX) {
        Some(rest) => {
            let decoded = percent_decode(rest);
            if decoded.is_empty() {
                return Err("missing secret ID".into());
            }
            Some(decoded)
        }
        None => None,
    };
    let from_path = id.is_some();
    let mut q = Query {
        key: Key {
            keyway,
            id: String::new(),
            version_id: None,
            version_stage: None,
        },
        refresh_now: false,
    };
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "secretId" if !from_path => id = Some(v.into_owned()),
            "versionId" if !keyway => q.key.version_id = Some(v.into_owned()),
            "versionStage" if !keyway => q.key.version_stage = Some(v.into_owned()),
            "refreshNow" => {
                q.refresh_now =
                    refresh_value(&v).ok_or_else(|| "invalid refreshNow value".to_owned())?
            }
            other => return Err(format!("unknown parameter: {other}")),
        }
    }
    q.key.id = id
        .filter(|i| !i.is_empty())
        .ok_or_else(|| "missing parameter secretId".to_owned())?;
    Ok(q)
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Serves one request of the secrets API.
pub async fn handle(s: &Secrets, req: Request) -> Response<Body> {
    let (parts, _body) = req.into_parts();
    let path = parts.uri.path();
    if path != "/ping" {
        if forwarded(&parts.headers) {
            tracing::warn!("refused a forwarded request to the secrets API");
            return plain(StatusCode::BAD_REQUEST, "Forwarded");
        }
        let ok = ["x-aws-parameters-secrets-token", "x-vault-token"]
            .iter()
            .filter_map(|h| parts.headers.get(*h))
            .any(|v| s.token.matches(v.as_bytes()));
        if !ok {
            tracing::warn!("refused a request to the secrets API without the token");
            return plain(StatusCode::FORBIDDEN, "Bad Token");
        }
    }
    if !readable(&parts.method) {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "Not allowed");
    }
    if path == "/ping" {
        return plain(StatusCode::OK, "healthy");
    }
    if !serves(path) {
        return plain(StatusCode::NOT_FOUND, "Not found");
    }
    let q = match parse(path, parts.uri.query()) {
        Ok(q) => q,
        Err(why) => return bad_request(why),
    };
    match s.get(q).await {
        Ok(body) => response(StatusCode::OK, "application/json", Body::from(body)),
        Err(f) => {
            tracing::info!(status = f.status, error = %f.logged, "a secret could not be served");
            f.response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_as_the_agent_prints_them() {
        assert_eq!(seconds(1796179219.884), "1796179219.884");
        assert_eq!(seconds(1796179219.0), "1796179219");
        assert_eq!(seconds(1796179219.5), "1796179219.5");
    }

    #[test]
    fn queries_as_the_agent_reads_them() {
        let q = parse(
            AGENT_PATH,
            Some("secretId=a%2Fb&versionStage=AWSPREVIOUS&refreshNow=1"),
        )
        .ok()
        .unwrap();
        assert_eq!(q.key.id, "a/b");
        assert_eq!(q.key.version_stage.as_deref(), Some("AWSPREVIOUS"));
        assert!(q.refresh_now);
        let q = parse("/v1/wevox/gcp-credentials", Some("versionId=v1"))
            .ok()
            .unwrap();
        assert_eq!(q.key.id, "wevox/gcp-credentials");
        assert_eq!(q.key.version_id.as_deref(), Some("v1"));
        for (path, query) in [
            (AGENT_PATH, None),
            (AGENT_PATH, Some("secretId=x&foo=1")),
            (AGENT_PATH, Some("secretId=x&refreshNow=maybe")),
            ("/v1/", None),
            (KEYWAY_PATH, Some("secretId=sm://p/s&versionId=3")),
        ] {
            assert!(parse(path, query).is_err(), "{path}?{query:?}");
        }
    }
}
