//! Upstreams written for these tests (never the local cloud or keyway's own
//! clients): a GCE metadata server and an ECS credentials endpoint that count
//! what they are asked, can be slowed down or taken down, and mint values
//! that expire on a clock the test moves. Everything binds 127.0.0.1:0; the
//! broker's routers are driven in process with `tower::ServiceExt::oneshot`.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyway_auth::{AuthContext, RetryPolicy};
use keyway_core::clock::ManualClock;
use keyway_core::{Clock, Env, MemFs};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

pub const T0: i64 = 1_800_000_000;
pub const SA: &str = "runner@proj-a.iam.gserviceaccount.com";
pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A context on `clock` whose requests give up after a few quick attempts.
pub fn ctx(env: Env, clock: &ManualClock) -> AuthContext {
    let mut c = AuthContext::new(
        env,
        Arc::new(MemFs::new()),
        Arc::new(clock.clone()),
        reqwest::Client::builder().no_proxy().build().unwrap(),
    );
    c.retry = RetryPolicy {
        deadline: Duration::from_secs(2),
        attempt_timeout: Duration::from_secs(1),
        max_attempts: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
    };
    c
}

/// What a fake upstream does now.
pub struct Knobs {
    pub hits: AtomicUsize,
    pub identity_hits: AtomicUsize,
    pub down: AtomicBool,
    pub delay_ms: AtomicI64,
    pub lifetime: AtomicI64,
    pub clock: ManualClock,
    pub last_query: Mutex<Option<String>>,
}

impl Knobs {
    fn new(clock: &ManualClock, lifetime: i64) -> Arc<Knobs> {
        Arc::new(Knobs {
            hits: AtomicUsize::new(0),
            identity_hits: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            delay_ms: AtomicI64::new(0),
            lifetime: AtomicI64::new(lifetime),
            clock: clock.clone(),
            last_query: Mutex::new(None),
        })
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// How long the upstream takes to answer from now on.
    pub fn set_delay_ms(&self, ms: i64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    async fn pause(&self) {
        let ms = self.delay_ms.load(Ordering::SeqCst);
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms as u64)).await;
        }
    }
}

fn flavored(status: StatusCode, ct: &'static str, body: String) -> Response {
    (
        status,
        [("metadata-flavor", "Google"), ("content-type", ct)],
        body,
    )
        .into_response()
}

/// A JWT-shaped token (unsigned) with `exp`.
pub fn fake_jwt(claims: &Value) -> String {
    format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

async fn metadata(State(k): State<Arc<Knobs>>, req: Request) -> Response {
    let path = req.uri().path().to_owned();
    let q = req.uri().query().unwrap_or("").to_owned();
    let base = "/computeMetadata/v1/instance/service-accounts/default/";
    if path == "/" {
        return flavored(
            StatusCode::OK,
            "application/text",
            "computeMetadata/\n".into(),
        );
    }
    match path.strip_prefix(base) {
        Some("email") => flavored(StatusCode::OK, "application/text", SA.into()),
        Some("scopes") => flavored(
            StatusCode::OK,
            "application/text",
            format!("{CLOUD_PLATFORM}\n"),
        ),
        Some("token") => {
            let n = k.hits.fetch_add(1, Ordering::SeqCst) + 1;
            *k.last_query.lock().unwrap() = Some(q);
            k.pause().await;
            if k.down.load(Ordering::SeqCst) {
                return flavored(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "down".into());
            }
            flavored(
                StatusCode::OK,
                "application/json",
                json!({"access_token": format!("ya29.upstream-{n}"), "expires_in": k.lifetime.load(Ordering::SeqCst), "token_type": "Bearer"}).to_string(),
            )
        }
        Some("identity") => {
            k.identity_hits.fetch_add(1, Ordering::SeqCst);
            let aud = form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "audience")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let now = k.clock.now_secs();
            flavored(
                StatusCode::OK,
                "application/text",
                fake_jwt(&json!({"aud": aud, "email": SA, "iat": now, "exp": now + 3600})),
            )
        }
        _ => flavored(StatusCode::NOT_FOUND, "text/html", "nope".into()),
    }
}

/// A metadata server for the Google credentials behind the broker.
pub struct Upstream {
    pub addr: SocketAddr,
    pub knobs: Arc<Knobs>,
}

impl Upstream {
    pub async fn metadata(clock: &ManualClock, lifetime: i64) -> Upstream {
        let knobs = Knobs::new(clock, lifetime);
        let addr = serve(Router::new().fallback(metadata).with_state(knobs.clone())).await;
        Upstream { addr, knobs }
    }

    pub async fn ecs(clock: &ManualClock, lifetime: i64) -> Upstream {
        let knobs = Knobs::new(clock, lifetime);
        let addr = serve(Router::new().fallback(ecs).with_state(knobs.clone())).await;
        Upstream { addr, knobs }
    }

    pub fn env(&self) -> Env {
        Env::new()
            .with("HOME", "/nonexistent")
            .with("GCE_METADATA_HOST", &self.addr.to_string())
    }

    pub fn ecs_env(&self) -> Env {
        Env::new()
            .with("HOME", "/nonexistent")
            .with(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                &format!("http://{}/creds", self.addr),
            )
            .with("AWS_CONTAINER_AUTHORIZATION_TOKEN", "upstream-ecs-token")
            .with("AWS_REGION", "ap-northeast-1")
            .with("AWS_EC2_METADATA_DISABLED", "true")
    }
}

async fn ecs(State(k): State<Arc<Knobs>>, headers: HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("upstream-ecs-token") {
        return (StatusCode::UNAUTHORIZED, "no").into_response();
    }
    let n = k.hits.fetch_add(1, Ordering::SeqCst) + 1;
    k.pause().await;
    if k.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
    }
    let exp = k.clock.now_secs() + k.lifetime.load(Ordering::SeqCst);
    let exp = jiff::Timestamp::from_second(exp)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    axum::Json(json!({
        "AccessKeyId": format!("ASIAUPSTREAM{n:04}"),
        "SecretAccessKey": format!("upstream-secret-{n}"),
        "Token": format!("upstream-session-{n}"),
        "Expiration": exp,
        "RoleArn": "arn:aws:iam::111122223333:role/task",
    }))
    .into_response()
}

/// One request through a router, in process.
pub async fn call(
    router: &Router,
    req: axum::http::Request<Body>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap()
        .to_vec();
    (status, headers, body)
}

pub fn get(path: &str) -> axum::http::request::Builder {
    axum::http::Request::builder().method("GET").uri(path)
}

pub fn md(path: &str) -> axum::http::Request<Body> {
    get(path)
        .header("Metadata-Flavor", "Google")
        .body(Body::empty())
        .unwrap()
}
