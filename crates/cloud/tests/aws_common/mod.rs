//! Shared by the AWS integration tests: a local cloud on loopback with a hand-set
//! clock, and a client that signs its requests with SigV4.
#![allow(dead_code)]

use keyway_cloud::aws::{Aws, sigv4};
use keyway_cloud::cloud::Cloud;
use keyway_cloud::server::{self, Endpoints};
use keyway_core::LoopbackAddr;
use keyway_core::clock::ManualClock;
use serde_json::Value;
use std::sync::Arc;

pub struct Env {
    pub cloud: Arc<Cloud>,
    pub aws: Arc<Aws>,
    pub ep: Endpoints,
    pub clock: ManualClock,
    pub http: reqwest::Client,
    pub path: std::path::PathBuf,
    _dir: Option<tempfile::TempDir>,
    running: Option<server::Running>,
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.abort();
        }
    }
}

#[derive(Clone, Debug)]
pub struct Creds {
    pub akid: String,
    pub secret: String,
    pub token: Option<String>,
}

pub const NOW: i64 = 1_795_000_000;

pub async fn start(world: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut e = start_at(dir.path(), world).await;
    e._dir = Some(dir);
    e
}

/// Starts (or restarts) a cloud in `dir`, which outlives the returned Env.
pub async fn start_at(dir: &std::path::Path, world: &str) -> Env {
    let world = keyway_cloud::world::parse("test.toml", world).unwrap();
    let clock = ManualClock::at_secs(NOW);
    let (cloud, _) = Cloud::open(
        dir,
        &dir.join("master.key"),
        Some(&world),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let cloud = Arc::new(cloud);
    let running = server::start(cloud.clone(), LoopbackAddr::ephemeral())
        .await
        .unwrap();
    let ep = running.endpoints.clone();
    cloud
        .write_credential_files(&format!("{}/token", ep.google))
        .unwrap();
    let aws = Aws::new(cloud.clone()).unwrap();
    Env {
        cloud,
        aws,
        ep,
        clock,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        path: dir.to_path_buf(),
        _dir: None,
        running: Some(running),
    }
}

impl Env {
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
            .unwrap();
        let secret = self.aws.user_key_secret(&akid).unwrap().to_string();
        Creds {
            akid,
            secret,
            token: None,
        }
    }

    pub fn host(&self) -> String {
        self.ep.aws.trim_start_matches("http://").to_owned()
    }

    /// Sends a signed request; `skew` shifts the signature's time from the cloud's clock.
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
        let r = sigv4::Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &hs,
            body: &body,
        };
        let add = sigv4::sign(
            &r,
            &c.akid,
            &c.secret,
            c.token.as_deref(),
            region,
            service,
            self.clock_now() + skew,
        );
        let mut req = self.http.post(format!("{}/", self.ep.aws)).body(body);
        for (k, v) in hs.iter().skip(1).chain(add.iter()) {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    pub fn clock_now(&self) -> i64 {
        use keyway_core::Clock;
        self.clock.now_secs()
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

/// The text of the first `<tag>` in `x`.
pub fn xml(x: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = x
        .find(&open)
        .map(|i| i + open.len())
        .unwrap_or_else(|| panic!("no <{tag}> in {x}"));
    let end = x[start..].find("</").unwrap() + start;
    x[start..end]
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
}
