//! The local cloud in this process: opened on a world, on a clock the test
//! holds, in a temporary data directory. Its Google and AWS APIs are called
//! through their axum routers in process ([`Api`], tower's `oneshot`): the
//! same handlers a socket reaches, without one. [`Local::start`] also binds
//! every listener to a loopback port, for the tests that are about sockets,
//! metadata servers, IMDS, ECS endpoints or real clients.

use axum::body::Body;
use keyway_cloud::aws::{Aws, sigv4};
use keyway_cloud::cloud::Cloud;
use keyway_cloud::server::{self, Endpoints};
use keyway_core::clock::ManualClock;
use keyway_core::{Clock, LoopbackAddr};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;

/// The clock of a [`Local`] at start (2026-11-18T23:33:20Z).
pub const NOW: i64 = 1_795_000_000;

/// The `Host` the in-process APIs are called with when nothing is bound
/// (port 0: no socket); with listeners, their real `host:port`.
const UNBOUND_GOOGLE: &str = "127.0.0.1:0";
const UNBOUND_AWS: &str = "127.0.0.1:0";

/// What a router answered.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, or as a JSON string when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| Value::String(self.text()))
    }
}

/// One API port's router, called in process.
#[derive(Clone)]
pub struct Api {
    router: axum::Router,
    host: String,
}

impl Api {
    pub fn new(router: axum::Router, host: impl Into<String>) -> Api {
        Api {
            router,
            host: host.into(),
        }
    }

    /// The `Host` requests carry (`host:port`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sends `req` (a `Host` header is added if it has none).
    pub async fn send(&self, mut req: http::Request<Vec<u8>>) -> Reply {
        if !req.headers().contains_key(http::header::HOST) {
            let host = http::HeaderValue::from_str(&self.host).expect("a host:port");
            req.headers_mut().insert(http::header::HOST, host);
        }
        let resp = self
            .router
            .clone()
            .oneshot(req.map(Body::from))
            .await
            .unwrap_or_else(|e| match e {});
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("the router's body")
            .to_vec();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        }
    }

    /// `method path` with an optional bearer token and JSON body; the answer
    /// as JSON (a string when it is not JSON).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut b = http::Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&v).unwrap()),
            None => b.body(Vec::new()),
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let r = self.send(req).await;
        (r.status, r.json())
    }

    /// A form POST (`application/x-www-form-urlencoded`).
    pub async fn form(&self, path: &str, token: Option<&str>, form: &[(&str, &str)]) -> Reply {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (k, v) in form {
            body.append_pair(k, v);
        }
        let mut b = http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        self.send(b.body(body.finish().into_bytes()).unwrap()).await
    }

    /// A GET with these headers.
    pub async fn get(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Reply {
        let mut b = http::Request::builder().method("GET").uri(path_and_query);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(Vec::new()).unwrap()).await
    }
}

/// AWS credentials a test signs with.
#[derive(Clone, Debug)]
pub struct Creds {
    pub akid: String,
    pub secret: String,
    pub token: Option<String>,
}

/// A local cloud in this process.
pub struct Local {
    pub cloud: Arc<Cloud>,
    pub aws: Arc<Aws>,
    pub clock: ManualClock,
    /// The data directory.
    pub path: PathBuf,
    /// A client for the tests that use sockets (no proxy).
    pub http: reqwest::Client,
    /// The Google API router.
    pub google: Api,
    /// The AWS API router (STS, Secrets Manager, IAM, ECS).
    pub aws_api: Api,
    /// Whether this open seeded the store from the world (false on a reopen).
    pub seeded: bool,
    running: Option<server::Running>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.abort();
        }
    }
}

impl Local {
    /// Opens a cloud on `world` in a new temporary directory, at [`NOW`],
    /// with nothing bound.
    pub fn open(world: &str) -> Local {
        Local::open_on(world, ManualClock::at_secs(NOW))
    }

    /// [`Local::open`] on a clock of the caller's.
    pub fn open_on(world: &str, clock: ManualClock) -> Local {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut l = Local::open_at_on(dir.path(), world, clock);
        l._dir = Some(dir);
        l
    }

    /// Opens (or reopens) the cloud whose data is in `dir` (which outlives
    /// the returned cloud), seeding it from `world` the first time, at [`NOW`].
    pub fn open_at(dir: &Path, world: &str) -> Local {
        Local::open_at_on(dir, world, ManualClock::at_secs(NOW))
    }

    fn open_at_on(dir: &Path, world: &str, clock: ManualClock) -> Local {
        let world = keyway_cloud::world::parse("test.toml", world)
            .unwrap_or_else(|e| panic!("the test's world: {e}"));
        let (cloud, seeded) = Cloud::open(
            dir,
            &dir.join("master.key"),
            Some(&world),
            Arc::new(clock.clone()),
        )
        .unwrap_or_else(|e| panic!("opening the cloud in {}: {e}", dir.display()));
        // As `keyway cloud up` does at every start; the token endpoint is
        // named again by `serve`, once it has a port.
        cloud
            .write_credential_files(&format!("http://{UNBOUND_GOOGLE}/token"))
            .expect("writing the credential files");
        let cloud = Arc::new(cloud);
        let aws = Aws::new(cloud.clone()).expect("the AWS half");
        Local {
            google: Api::new(keyway_cloud::google::router(cloud.clone()), UNBOUND_GOOGLE),
            aws_api: Api::new(keyway_cloud::aws::router(aws.clone()), UNBOUND_AWS),
            cloud,
            aws,
            clock,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("a client"),
            path: dir.to_path_buf(),
            seeded,
            running: None,
            _dir: None,
        }
    }

    /// Opens a cloud on `world` and binds its listeners to loopback ports.
    pub async fn start(world: &str) -> Local {
        Local::open(world).serve().await
    }

    /// Opens a cloud on `world` at `dir` and binds its listeners.
    pub async fn start_at(dir: &Path, world: &str) -> Local {
        Local::open_at(dir, world).serve().await
    }

    /// Binds every listener (Google, AWS, a metadata server per VM, an IMDS
    /// per EC2 instance, an agent per ECS task) to a loopback port, and writes
    /// the credential files that name the Google token endpoint.
    pub async fn serve(mut self) -> Local {
        let running = server::start(self.cloud.clone(), LoopbackAddr::ephemeral())
            .await
            .expect("binding the cloud's listeners");
        let ep = &running.endpoints;
        self.cloud
            .write_credential_files(&format!("{}/token", ep.google))
            .expect("writing the credential files");
        self.google.host = ep.google.trim_start_matches("http://").to_owned();
        self.aws_api.host = ep.aws.trim_start_matches("http://").to_owned();
        self.running = Some(running);
        self
    }

    /// Where the listeners are (after [`Local::start`] or [`Local::serve`]).
    pub fn ep(&self) -> &Endpoints {
        match &self.running {
            Some(r) => &r.endpoints,
            None => panic!("this test's cloud has no sockets: start it with Local::start"),
        }
    }

    pub fn clock_now(&self) -> i64 {
        self.clock.now_secs()
    }

    /// A Google access token for `member` (`user:…`, `serviceAccount:…`).
    pub fn token(&self, member: &str, scopes: &[&str]) -> String {
        let s: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        self.cloud.mint_access_token(member, &s, "test").0
    }

    /// The first access key of IAM user `name` in `account`.
    pub fn user(&self, account: &str, name: &str) -> Creds {
        let arn = format!("arn:aws:iam::{account}:user/{name}");
        let akid = self
            .cloud
            .store
            .read()
            .aws
            .keys
            .values()
            .find(|k| k.user_arn == arn)
            .map(|k| k.id.clone())
            .unwrap_or_else(|| panic!("{arn} has no access key"));
        let secret = self.aws.user_key_secret(&akid).unwrap().to_string();
        Creds {
            akid,
            secret,
            token: None,
        }
    }

    /// The `Host` AWS requests are signed for.
    pub fn host(&self) -> String {
        self.aws_api.host.clone()
    }

    /// Sends a signed POST to the AWS API; `skew` shifts the signature's time
    /// from the cloud's clock.
    pub async fn send(
        &self,
        c: &Creds,
        region: &str,
        service: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        skew: i64,
    ) -> (u16, String) {
        let mut hs = vec![("host".to_owned(), self.host())];
        hs.extend(headers);
        let r = sigv4::Request::post(&hs, &body);
        let add = sigv4::sign(
            &r,
            &c.akid,
            &c.secret,
            c.token.as_deref(),
            region,
            service,
            self.clock_now() + skew,
        );
        let mut req = http::Request::builder().method("POST").uri("/");
        for (k, v) in hs.iter().chain(add.iter()) {
            req = req.header(k, v);
        }
        let reply = self.aws_api.send(req.body(body).unwrap()).await;
        (reply.status, reply.text())
    }

    /// A Secrets Manager call.
    pub async fn sm(&self, c: &Creds, region: &str, op: &str, body: Value) -> (u16, Value) {
        let (s, t) = self.sm_raw(c, region, op, body, 0).await;
        (s, serde_json::from_str(&t).unwrap_or(Value::String(t)))
    }

    pub async fn sm_raw(
        &self,
        c: &Creds,
        region: &str,
        op: &str,
        body: Value,
        skew: i64,
    ) -> (u16, String) {
        let headers = vec![
            (
                "content-type".to_owned(),
                "application/x-amz-json-1.1".to_owned(),
            ),
            ("x-amz-target".to_owned(), format!("secretsmanager.{op}")),
        ];
        self.send(
            c,
            region,
            "secretsmanager",
            headers,
            serde_json::to_vec(&body).unwrap(),
            skew,
        )
        .await
    }

    /// An STS call (query protocol, form body).
    pub async fn sts(&self, c: &Creds, params: &[(&str, &str)]) -> (u16, String) {
        self.sts_skew(c, params, 0).await
    }

    pub async fn sts_skew(&self, c: &Creds, params: &[(&str, &str)], skew: i64) -> (u16, String) {
        let mut body = form_urlencoded::Serializer::new(String::new());
        body.append_pair("Version", "2011-06-15");
        for (k, v) in params {
            body.append_pair(k, v);
        }
        let headers = vec![(
            "content-type".to_owned(),
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        )];
        self.send(
            c,
            "us-east-1",
            "sts",
            headers,
            body.finish().into_bytes(),
            skew,
        )
        .await
    }

    /// AssumeRole as `c`: the session's credentials.
    pub async fn assume(&self, c: &Creds, role_arn: &str) -> Creds {
        let (s, x) = self
            .sts(
                c,
                &[
                    ("Action", "AssumeRole"),
                    ("RoleArn", role_arn),
                    ("RoleSessionName", "test"),
                ],
            )
            .await;
        assert_eq!(s, 200, "{x}");
        Creds {
            akid: xml(&x, "AccessKeyId"),
            secret: xml(&x, "SecretAccessKey"),
            token: Some(xml(&x, "SessionToken")),
        }
    }
}

/// The text of the first `<tag>` in `x`, its five predefined entities resolved.
pub fn xml(x: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = x
        .find(&open)
        .map(|i| i + open.len())
        .unwrap_or_else(|| panic!("no <{tag}> in {x}"));
    let end = x[start..]
        .find("</")
        .unwrap_or_else(|| panic!("<{tag}> is not closed in {x}"))
        + start;
    x[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}
