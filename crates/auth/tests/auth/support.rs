//! Test doubles written for these tests (never the local cloud, so keyway-auth
//! cannot share its bugs): a fake metadata server, a fake OAuth token endpoint
//! that verifies JWT-bearer assertions like Google does, and raw TCP servers that
//! stall or reset. Everything binds 127.0.0.1:0; every context points at them.

use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keyway_auth::{AuthContext, RetryPolicy};
use keyway_core::clock::ManualClock;
use keyway_core::{Env, MemFs, vars};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const T0: i64 = 1_700_000_000;
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const GOOGLE_AUD: &str = "https://oauth2.googleapis.com/token";
pub const HOME: &str = "/home/alice";
pub const GCLOUD_FILE: &str = "/home/alice/.config/gcloud/application_default_credentials.json";

pub fn data(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

pub fn scopes(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

/// An environment with a HOME that has no gcloud file and metadata detection off.
pub fn base_env() -> Env {
    Env::new()
        .with(vars::HOME, HOME)
        .with(vars::NO_GCE_CHECK, "true")
}

pub fn http_client() -> reqwest::Client {
    // No proxy: the tests only ever talk to loopback.
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub fn ctx(env: Env, fs: MemFs, clock: &ManualClock) -> AuthContext {
    AuthContext::new(env, Arc::new(fs), Arc::new(clock.clone()), http_client())
}

/// A context whose requests give up fast (for failure tests).
/// The ADC chain (no scopes asked) in `env`, over the files of `fs`.
pub async fn adc(
    env: Env,
    fs: MemFs,
    clock: &ManualClock,
) -> Result<keyway_auth::GoogleCredentials, keyway_auth::AuthError> {
    keyway_auth::google_default(&ctx(env, fs, clock), &[]).await
}

/// The ADC chain in `env`, over the files of `fs`, asking for the scopes `asked`.
pub async fn adc_for(
    env: Env,
    fs: MemFs,
    clock: &ManualClock,
    asked: &[&str],
) -> Result<keyway_auth::GoogleCredentials, keyway_auth::AuthError> {
    keyway_auth::google_default(&ctx(env, fs, clock), &scopes(asked)).await
}

/// Files holding only a credential configuration, at `/creds/wif.json`.
pub fn wif(file: String) -> MemFs {
    MemFs::new().with("/creds/wif.json", file)
}

pub fn ctx_quick(env: Env, fs: MemFs, clock: &ManualClock, deadline: Duration) -> AuthContext {
    let mut c = ctx(env, fs, clock);
    c.retry = RetryPolicy {
        deadline,
        attempt_timeout: deadline,
        max_attempts: 5,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
    };
    c
}

pub async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// What a fake answers to one request.
#[derive(Clone, Copy, Debug)]
pub enum Reply {
    /// The normal answer.
    Ok,
    /// An error status with a JSON error body.
    Status(u16),
    /// 200 with an HTML page.
    Garbage,
    /// The normal answer without `Metadata-Flavor: Google`.
    NoFlavor,
    /// Never answer.
    Stall,
}

fn pop(script: &Mutex<VecDeque<Reply>>) -> Reply {
    script.lock().unwrap().pop_front().unwrap_or(Reply::Ok)
}

// ---------------------------------------------------------------- metadata

pub struct MetadataState {
    pub pings: AtomicUsize,
    pub token_hits: AtomicUsize,
    pub email_hits: AtomicUsize,
    pub identity_hits: AtomicUsize,
    /// Replies to token requests, in order; `Ok` once empty.
    pub token_script: Mutex<VecDeque<Reply>>,
    pub token_delay: Mutex<Duration>,
    pub ping_flavor: Mutex<bool>,
    pub access_token: Mutex<String>,
    pub expires_in: Mutex<i64>,
    pub email: String,
    pub scopes: Vec<String>,
    pub last_token_query: Mutex<Option<String>>,
    pub last_identity_query: Mutex<Option<String>>,
    pub id_token: String,
    /// Make `…/email` hang.
    pub email_stalls: Mutex<bool>,
}

#[derive(Clone)]
pub struct FakeMetadata {
    pub addr: SocketAddr,
    pub state: Arc<MetadataState>,
}

impl FakeMetadata {
    pub async fn start() -> Self {
        let state = Arc::new(MetadataState {
            pings: AtomicUsize::new(0),
            token_hits: AtomicUsize::new(0),
            email_hits: AtomicUsize::new(0),
            identity_hits: AtomicUsize::new(0),
            token_script: Mutex::new(VecDeque::new()),
            token_delay: Mutex::new(Duration::ZERO),
            ping_flavor: Mutex::new(true),
            access_token: Mutex::new("ya29.metadata-token".into()),
            expires_in: Mutex::new(3599),
            email: "vm-sa@proj.iam.gserviceaccount.com".into(),
            scopes: scopes(&[
                CLOUD_PLATFORM,
                "https://www.googleapis.com/auth/userinfo.email",
            ]),
            last_token_query: Mutex::new(None),
            last_identity_query: Mutex::new(None),
            email_stalls: Mutex::new(false),
            id_token: fake_jwt(
                &json!({"aud": "x", "email": "vm-sa@proj.iam.gserviceaccount.com"}),
                "metadata-sig",
            ),
        });
        let router = Router::new()
            .fallback(metadata_handler)
            .with_state(state.clone());
        FakeMetadata {
            addr: serve(router).await,
            state,
        }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn script(&self, replies: &[Reply]) {
        self.state
            .token_script
            .lock()
            .unwrap()
            .extend(replies.iter().cloned());
    }

    pub fn token_hits(&self) -> usize {
        self.state.token_hits.load(Ordering::SeqCst)
    }
}

fn flavored(status: StatusCode, content_type: &str, body: String, flavor: bool) -> Response {
    let mut r = (status, [("content-type", content_type.to_owned())], body).into_response();
    if flavor {
        r.headers_mut()
            .insert("metadata-flavor", "Google".parse().unwrap());
    }
    r
}

async fn metadata_handler(
    State(s): State<Arc<MetadataState>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if headers.get("metadata-flavor").map(|v| v.as_bytes()) != Some(b"Google") {
        return flavored(
            StatusCode::FORBIDDEN,
            "text/plain",
            "Missing Metadata-Flavor:Google header.\n".into(),
            true,
        );
    }
    const SA: &str = "/computeMetadata/v1/instance/service-accounts/default/";
    let path = uri.path();
    if path == "/" {
        s.pings.fetch_add(1, Ordering::SeqCst);
        let flavor = *s.ping_flavor.lock().unwrap();
        return flavored(
            StatusCode::OK,
            "application/text",
            "computeMetadata/\n".into(),
            flavor,
        );
    }
    let Some(leaf) = path.strip_prefix(SA) else {
        return flavored(StatusCode::NOT_FOUND, "text/html", "Not Found".into(), true);
    };
    match leaf {
        "token" => {
            s.token_hits.fetch_add(1, Ordering::SeqCst);
            *s.last_token_query.lock().unwrap() = uri.query().map(str::to_owned);
            let delay = *s.token_delay.lock().unwrap();
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let body = json!({
                "access_token": *s.access_token.lock().unwrap(),
                "expires_in": *s.expires_in.lock().unwrap(),
                "token_type": "Bearer",
            })
            .to_string();
            match pop(&s.token_script) {
                Reply::Ok => flavored(StatusCode::OK, "application/json", body, true),
                Reply::NoFlavor => flavored(StatusCode::OK, "application/json", body, false),
                Reply::Status(code) => flavored(
                    StatusCode::from_u16(code).unwrap(),
                    "application/json",
                    json!({"error": {"code": code, "message": "fake failure", "status": "UNAVAILABLE"}}).to_string(),
                    true,
                ),
                Reply::Garbage => flavored(StatusCode::OK, "text/html", "<html><body>Welcome to the hotel wifi</body></html>".into(), true),
                Reply::Stall => std::future::pending().await,
            }
        }
        "email" => {
            s.email_hits.fetch_add(1, Ordering::SeqCst);
            if *s.email_stalls.lock().unwrap() {
                std::future::pending::<()>().await;
            }
            flavored(StatusCode::OK, "application/text", s.email.clone(), true)
        }
        "scopes" => flavored(
            StatusCode::OK,
            "application/text",
            s.scopes.join("\n") + "\n",
            true,
        ),
        "identity" => {
            s.identity_hits.fetch_add(1, Ordering::SeqCst);
            *s.last_identity_query.lock().unwrap() = uri.query().map(str::to_owned);
            flavored(StatusCode::OK, "text/html", s.id_token.clone(), true)
        }
        _ => flavored(StatusCode::NOT_FOUND, "text/html", "Not Found".into(), true),
    }
}

/// header.claims.signature with a fake signature (for the client, ID tokens are opaque).
pub fn fake_jwt(claims: &Value, sig: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

// ---------------------------------------------------------------- oauth

pub struct OAuthState {
    pub hits: AtomicUsize,
    pub script: Mutex<VecDeque<Reply>>,
    pub delay: Mutex<Duration>,
    /// client_id, client_secret, refresh_token an authorized_user must present.
    pub user: Mutex<Option<(String, String, String)>>,
    /// Email a service account's assertion must be issued by, and its key id.
    pub sa: Mutex<Option<(String, String)>>,
    /// PKCS#1 DER public key that must verify assertions.
    pub public_key: Vec<u8>,
    pub access_token: Mutex<String>,
    pub expires_in: Mutex<i64>,
    /// `scope` returned with refresh-token grants.
    pub user_scope: Mutex<Option<String>>,
    /// `email` claim of the id_token returned with refresh-token grants.
    pub user_id_token_email: Mutex<Option<String>>,
    /// Verified assertion claims, in order.
    pub assertions: Mutex<Vec<Value>>,
    /// Why a request was refused, in order (a test expecting success asserts this is empty).
    pub refusals: Mutex<Vec<String>>,
    /// Extra JSON returned instead of the token (to test odd bodies).
    pub body_override: Mutex<Option<String>>,
}

#[derive(Clone)]
pub struct FakeOAuth {
    pub addr: SocketAddr,
    pub state: Arc<OAuthState>,
}

impl FakeOAuth {
    pub async fn start() -> Self {
        let pubkey = data("privatekey.pub");
        let body: String = pubkey.lines().filter(|l| !l.starts_with("-----")).collect();
        let state = Arc::new(OAuthState {
            hits: AtomicUsize::new(0),
            script: Mutex::new(VecDeque::new()),
            delay: Mutex::new(Duration::ZERO),
            user: Mutex::new(None),
            sa: Mutex::new(None),
            public_key: STANDARD.decode(body).unwrap(),
            access_token: Mutex::new("ya29.oauth-token".into()),
            expires_in: Mutex::new(3599),
            user_scope: Mutex::new(None),
            user_id_token_email: Mutex::new(None),
            assertions: Mutex::new(Vec::new()),
            refusals: Mutex::new(Vec::new()),
            body_override: Mutex::new(None),
        });
        let router = Router::new()
            .route("/token", axum::routing::post(oauth_handler))
            .with_state(state.clone());
        FakeOAuth {
            addr: serve(router).await,
            state,
        }
    }

    pub fn token_uri(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The base URL, as CLOUDSDK_API_ENDPOINT_OVERRIDES_OAUTH2 takes it.
    pub fn base(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn expect_user(&self, client_id: &str, secret: &str, refresh: &str) {
        *self.state.user.lock().unwrap() = Some((client_id.into(), secret.into(), refresh.into()));
    }

    pub fn expect_sa(&self, email: &str, kid: &str) {
        *self.state.sa.lock().unwrap() = Some((email.into(), kid.into()));
    }

    pub fn script(&self, replies: &[Reply]) {
        self.state
            .script
            .lock()
            .unwrap()
            .extend(replies.iter().cloned());
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn refusals(&self) -> Vec<String> {
        self.state.refusals.lock().unwrap().clone()
    }
}

fn oauth_error(state: &OAuthState, status: StatusCode, error: &str, why: &str) -> Response {
    state.refusals.lock().unwrap().push(why.to_owned());
    (
        status,
        [("content-type", "application/json")],
        json!({"error": error, "error_description": why}).to_string(),
    )
        .into_response()
}

async fn oauth_handler(
    State(s): State<Arc<OAuthState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let delay = *s.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match pop(&s.script) {
        Reply::Ok | Reply::NoFlavor => {}
        Reply::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap();
            return (
                status,
                [("content-type", "application/json")],
                json!({"error": "internal_failure", "error_description": "fake failure"})
                    .to_string(),
            )
                .into_response();
        }
        Reply::Garbage => {
            return (
                StatusCode::OK,
                [("content-type", "text/html")],
                "<html>oops</html>",
            )
                .into_response();
        }
        Reply::Stall => std::future::pending().await,
    }
    if headers.get("content-type").map(|v| v.as_bytes())
        != Some(b"application/x-www-form-urlencoded")
    {
        return oauth_error(
            &s,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "body must be a form",
        );
    }
    let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    if let Some(o) = s.body_override.lock().unwrap().clone() {
        return (StatusCode::OK, [("content-type", "application/json")], o).into_response();
    }
    match get("grant_type").as_str() {
        "refresh_token" => {
            let Some((id, secret, refresh)) = s.user.lock().unwrap().clone() else {
                return oauth_error(
                    &s,
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "no user configured",
                );
            };
            if get("client_id") != id || get("client_secret") != secret {
                return oauth_error(
                    &s,
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "The OAuth client was not found.",
                );
            }
            if get("refresh_token") != refresh {
                return oauth_error(&s, StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request");
            }
            let mut resp = json!({
                "access_token": *s.access_token.lock().unwrap(),
                "expires_in": *s.expires_in.lock().unwrap(),
                "token_type": "Bearer",
            });
            if let Some(scope) = s.user_scope.lock().unwrap().clone() {
                resp["scope"] = scope.into();
            }
            if let Some(email) = s.user_id_token_email.lock().unwrap().clone() {
                resp["id_token"] = fake_jwt(&json!({"email": email, "aud": id}), "user-sig").into();
            }
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                resp.to_string(),
            )
                .into_response()
        }
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => {
            let claims = match verify_assertion(&s, &get("assertion")) {
                Ok(c) => c,
                Err(why) => return oauth_error(&s, StatusCode::BAD_REQUEST, "invalid_grant", &why),
            };
            s.assertions.lock().unwrap().push(claims.clone());
            if let Some(aud) = claims.get("target_audience").and_then(Value::as_str) {
                let id = fake_jwt(
                    &json!({"aud": aud, "email": claims["iss"], "iat": claims["iat"]}),
                    "google-sig",
                );
                return (
                    StatusCode::OK,
                    [("content-type", "application/json")],
                    json!({"id_token": id}).to_string(),
                )
                    .into_response();
            }
            let resp = json!({
                "access_token": *s.access_token.lock().unwrap(),
                "expires_in": *s.expires_in.lock().unwrap(),
                "token_type": "Bearer",
            });
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                resp.to_string(),
            )
                .into_response()
        }
        other => oauth_error(
            &s,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("grant_type {other:?}"),
        ),
    }
}

/// Checks an RS256 assertion the way Google's token endpoint does, returning its claims.
fn verify_assertion(s: &OAuthState, jwt: &str) -> Result<Value, String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err("assertion is not a JWT".into());
    }
    let decode = |p: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|e| format!("bad base64url: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("bad json: {e}"))
    };
    let header = decode(parts[0])?;
    let claims = decode(parts[1])?;
    let sig = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|e| format!("bad signature encoding: {e}"))?;
    let signed = format!("{}.{}", parts[0], parts[1]);
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &s.public_key)
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| "Invalid JWT Signature.".to_owned())?;
    let (email, kid) =
        s.sa.lock()
            .unwrap()
            .clone()
            .ok_or("no service account configured")?;
    if header["alg"] != "RS256" || header["typ"] != "JWT" || header["kid"] != kid.as_str() {
        return Err(format!("bad header {header}"));
    }
    if claims["aud"] != GOOGLE_AUD {
        return Err(format!("bad aud {}", claims["aud"]));
    }
    if claims["iss"] != email.as_str() {
        return Err(format!("bad iss {}", claims["iss"]));
    }
    let (iat, exp) = (
        claims["iat"].as_i64().ok_or("no iat")?,
        claims["exp"].as_i64().ok_or("no exp")?,
    );
    if exp - iat != 3600 {
        return Err(format!("exp - iat is {}", exp - iat));
    }
    let has_scope = claims.get("scope").is_some();
    let has_target = claims.get("target_audience").is_some();
    if has_scope == has_target {
        return Err("exactly one of scope and target_audience is required".into());
    }
    Ok(claims)
}

// ---------------------------------------------------------------- raw servers

/// Accepts connections and never answers (keeps them open).
pub async fn stall_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            held.push(sock);
        }
    });
    (addr, conns)
}

/// Resets the first `resets` connections after reading the request, then
/// answers every later one with `ok_body` (200, JSON, Metadata-Flavor: Google).
pub async fn reset_server(resets: usize, ok_body: &str) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    let ok_body = ok_body.to_owned();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let n = c.fetch_add(1, Ordering::SeqCst);
            let ok_body = ok_body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                if n < resets {
                    // SO_LINGER 0: close sends RST instead of FIN.
                    let _ = sock.set_zero_linger();
                    drop(sock);
                    return;
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nmetadata-flavor: Google\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    ok_body.len(),
                    ok_body
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (addr, conns)
}

/// A loopback port with nothing listening.
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    addr
}

// ---------------------------------------------------------------- files

/// Google's service_account.json fixture pointed at `token_uri`, optionally with another key.
pub fn sa_file(token_uri: &str, private_key: Option<&str>) -> String {
    let mut v: Value = serde_json::from_str(&data("service_account.json")).unwrap();
    v["token_uri"] = token_uri.into();
    if let Some(k) = private_key {
        v["private_key"] = k.into();
    }
    v.to_string()
}

pub const SA_EMAIL: &str = "service-account@example.com";
