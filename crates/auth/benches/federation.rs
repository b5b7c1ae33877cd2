//! Benchmark: keyless Google token acquisition through Workload Identity
//! Federation on loopback, as an ECS task does it: ECS container credentials →
//! a signed GetCallerIdentity exchanged at STS → IAM Credentials
//! `generateAccessToken` for a service account. Not a timed test: run it with
//! `bash bench/federation.sh` (which also runs the google-auth peer), or alone:
//!
//!   cargo build --release -p keyway
//!   bash scripts/netns.sh cargo bench -p keyway-auth --bench federation -- [OPTIONS]
//!
//! Options:
//!   --keyway PATH    the keyway binary (default: target/release/keyway)
//!   --world PATH     world to start the local cloud with (default: bench/worlds/federation.toml)
//!   --data DIR       a local cloud's data directory; if it already holds endpoints.json the
//!                    running cloud is used, else one is started there (default: a temp dir)
//!   --task NAME      the ECS task (default: bench-task)
//!   --cold N         cold acquisitions per variant (default: 300)
//!   --cached N       cached access_token() calls (default: 100000)
//!
//! Cases (each printed as a `RESULT {json}` line, then a plain summary):
//!   cold_new_conn  fresh credentials each iteration and no idle connections kept, so every
//!                  request opens a TCP connection, as in a new process
//!   cold_pooled    fresh credentials each iteration over one client's kept-alive connections,
//!                  as a long-running process refreshing
//!   cached         access_token() again and again on one credentials object
//!
//! The credential configuration is written to DATA/fedbench/credentials.json, the form
//! `gcloud iam workload-identity-pools create-cred-config --aws` gives, with its endpoints
//! pointed at the local cloud (allowed by CLOUDSDK_API_ENDPOINT_OVERRIDES_STS and
//! _IAMCREDENTIALS). The bench refuses to run if any endpoint is not loopback.

use base64::Engine;
use keyway_auth::{AuthContext, GoogleCredentials, google_default};
use keyway_core::{Env, RealFs, SystemClock};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const PROJECT: &str = "fedbench-proj";
const PROJECT_NUMBER: u64 = 424242424242;
const POOL: &str = "bench-pool";
const PROVIDER: &str = "bench-aws";
const SERVICE_ACCOUNT: &str = "bench-runner@fedbench-proj.iam.gserviceaccount.com";
const SECRET: &str = "bench-secret";
const SECRET_VALUE: &[u8] = b"federated-bench-secret-value";
const WARMUP: usize = 20;

type Res<T> = Result<T, String>;

struct Args {
    keyway: PathBuf,
    world: PathBuf,
    data: Option<PathBuf>,
    task: String,
    cold: usize,
    cached: usize,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn args() -> Res<Args> {
    let mut a = Args {
        keyway: root().join("target/release/keyway"),
        world: root().join("bench/worlds/federation.toml"),
        data: None,
        task: "bench-task".into(),
        cold: 300,
        cached: 100_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        // `cargo bench` passes --bench to every bench target.
        if flag == "--bench" {
            continue;
        }
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--keyway" => a.keyway = value()?.into(),
            "--world" => a.world = value()?.into(),
            "--data" => a.data = Some(value()?.into()),
            "--task" => a.task = value()?,
            "--cold" => {
                a.cold = value()?
                    .parse()
                    .map_err(|_| "--cold takes a count".to_owned())?
            }
            "--cached" => {
                a.cached = value()?
                    .parse()
                    .map_err(|_| "--cached takes a count".to_owned())?
            }
            other => {
                return Err(format!(
                    "unknown option {other} (see the top of crates/auth/benches/federation.rs)"
                ));
            }
        }
    }
    if a.cold == 0 || a.cached == 0 {
        return Err("--cold and --cached must be at least 1".into());
    }
    Ok(a)
}

/// The local cloud this bench started; stopped by its PID on drop.
struct Cloud {
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl Drop for Cloud {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_cloud(a: &Args) -> Res<(Cloud, PathBuf)> {
    let (data, tmp) = match &a.data {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::tempdir().map_err(|e| format!("creating a temp dir: {e}"))?;
            (t.path().join("cloud"), Some(t))
        }
    };
    if data.join("endpoints.json").exists() {
        return Ok((
            Cloud {
                child: None,
                _tmp: tmp,
            },
            data,
        ));
    }
    if !a.keyway.exists() {
        return Err(format!(
            "{} does not exist: run `cargo build --release -p keyway` first",
            a.keyway.display()
        ));
    }
    let child = Command::new(&a.keyway)
        .args(["-q", "cloud", "up", "--world"])
        .arg(&a.world)
        .arg("--data")
        .arg(&data)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", a.keyway.display()))?;
    let cloud = Cloud {
        child: Some(child),
        _tmp: tmp,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("endpoints.json").exists() {
        if Instant::now() > deadline {
            return Err(format!(
                "the local cloud did not write {}/endpoints.json within 30 s",
                data.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The file is written whole, but give the writer a moment if it is still empty.
    std::thread::sleep(Duration::from_millis(50));
    Ok((cloud, data))
}

fn loopback(url: &str) -> Res<()> {
    let u = url::Url::parse(url).map_err(|_| format!("{url:?} is not a URL"))?;
    match u.host_str() {
        Some("127.0.0.1" | "localhost" | "[::1]") => Ok(()),
        _ => Err(format!(
            "refusing: {} is not a loopback endpoint",
            u.origin().ascii_serialization()
        )),
    }
}

/// The environment of a container of `task`, from `keyway cloud env --task`
/// (evaluated by sh with nothing else in its environment; the script goes in
/// on stdin, as it holds the container's authorization token).
fn task_env(a: &Args, data: &Path) -> Res<Env> {
    let out = Command::new(&a.keyway)
        .args(["cloud", "env", "--data"])
        .arg(data)
        .args(["--task", &a.task])
        .output()
        .map_err(|e| format!("running keyway cloud env: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "keyway cloud env --task {} failed: {}",
            a.task,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut sh = Command::new("/bin/sh")
        .args(["-c", "eval \"$(cat)\" && exec env -0"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running sh: {e}"))?;
    sh.stdin
        .take()
        .ok_or("no stdin")?
        .write_all(&out.stdout)
        .map_err(|e| format!("writing to sh: {e}"))?;
    let mut printed = Vec::new();
    sh.stdout
        .take()
        .ok_or("no stdout")?
        .read_to_end(&mut printed)
        .map_err(|e| format!("reading sh: {e}"))?;
    if !sh.wait().map_err(|e| e.to_string())?.success() {
        return Err("evaluating the task environment failed".into());
    }
    let mut env = Env::new();
    for kv in printed.split(|b| *b == 0).filter(|kv| !kv.is_empty()) {
        let kv = String::from_utf8_lossy(kv);
        if let Some((k, v)) = kv.split_once('=')
            && !matches!(k, "PWD" | "SHLVL" | "_" | "PATH")
        {
            env.set(k, v);
        }
    }
    let full = env
        .get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .ok_or("the task has no AWS_CONTAINER_CREDENTIALS_FULL_URI (no task role?)")?;
    loopback(full)?;
    Ok(env)
}

/// The credential configuration `gcloud iam workload-identity-pools create-cred-config
/// --aws` writes, pointed at the local cloud. No region_url or url: the region comes
/// from AWS_REGION and the credentials from the ECS endpoint, so nothing names
/// 169.254.169.254.
fn write_config(data: &Path, google: &str) -> Res<PathBuf> {
    let cfg = serde_json::json!({
        "universe_domain": "googleapis.com",
        "type": "external_account",
        "audience": format!("//iam.googleapis.com/projects/{PROJECT_NUMBER}/locations/global/workloadIdentityPools/{POOL}/providers/{PROVIDER}"),
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "token_url": format!("{google}/v1/token"),
        "service_account_impersonation_url": format!("{google}/v1/projects/-/serviceAccounts/{SERVICE_ACCOUNT}:generateAccessToken"),
        "credential_source": {
            "environment_id": "aws1",
            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        },
    });
    let dir = data.join("fedbench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = dir.join("credentials.json");
    let text = serde_json::to_string_pretty(&cfg).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

fn client(keep_idle: bool) -> Res<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(5));
    if !keep_idle {
        b = b.pool_max_idle_per_host(0);
    }
    b.build()
        .map_err(|e| format!("building the HTTP client: {e}"))
}

fn context(env: &Env, http: &reqwest::Client) -> AuthContext {
    AuthContext::new(
        env.clone(),
        Arc::new(RealFs),
        Arc::new(SystemClock),
        http.clone(),
    )
}

/// Time spent in each part of one cold acquisition.
struct Cold {
    total: Duration,
    /// `google_default`: read and parse the file, run the AWS chain (ECS credentials).
    resolve: Duration,
    /// `access_token`: sign, STS exchange, generateAccessToken.
    token: Duration,
}

async fn cold_once(
    env: &Env,
    http: &reqwest::Client,
    scopes: &[String],
) -> Res<(Cold, GoogleCredentials)> {
    let t0 = Instant::now();
    let creds = google_default(&context(env, http), scopes)
        .await
        .map_err(|e| format!("google_default: {e}"))?;
    let t1 = Instant::now();
    let tok = creds
        .access_token()
        .await
        .map_err(|e| format!("access_token: {e}"))?;
    let t2 = Instant::now();
    if tok.token.expose().is_empty() {
        return Err("an empty access token".into());
    }
    Ok((
        Cold {
            total: t2 - t0,
            resolve: t1 - t0,
            token: t2 - t1,
        },
        creds,
    ))
}

/// The token must read the secret the service account may read: proof the
/// chain ran and the local cloud made real IAM decisions.
async fn check_secret(http: &reqwest::Client, google: &str, creds: &GoogleCredentials) -> Res<()> {
    let tok = creds
        .access_token()
        .await
        .map_err(|e| format!("access_token: {e}"))?;
    let url = format!("{google}/v1/projects/{PROJECT}/secrets/{SECRET}/versions/latest:access");
    let r = http
        .get(&url)
        .bearer_auth(tok.token.expose())
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("reading the secret: {e}"))?;
    let status = r.status();
    let body: serde_json::Value = r
        .json()
        .await
        .map_err(|e| format!("reading the secret's answer: {e}"))?;
    if !status.is_success() {
        return Err(format!(
            "reading the secret with the federated token: HTTP {status}: {}",
            body["error"]["message"]
        ));
    }
    let data = body["payload"]["data"].as_str().unwrap_or_default();
    let got = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| "the payload is not base64".to_owned())?;
    if got != SECRET_VALUE {
        return Err("the secret read with the federated token has the wrong value".into());
    }
    Ok(())
}

/// Median and 99th percentile (nearest rank) in microseconds.
fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let n = v.len();
    let median = if n % 2 == 1 {
        us(v[n / 2])
    } else {
        (us(v[n / 2 - 1]) + us(v[n / 2])) / 2.0
    };
    let p99 = us(v[((n * 99).div_ceil(100)).max(1) - 1]);
    let mean = v.iter().map(|d| us(*d)).sum::<f64>() / n as f64;
    (median, p99, mean)
}

fn report(case: &str, samples: Vec<Duration>) {
    let n = samples.len();
    let (median, p99, mean) = stats(samples);
    println!(
        "RESULT {}",
        serde_json::json!({"impl": "keyway", "case": case, "n": n, "median_us": median, "p99_us": p99, "mean_us": mean})
    );
    println!(
        "  keyway {case:<22} n={n:<7} median {median:>10.2} µs   p99 {p99:>10.2} µs   mean {mean:>10.2} µs"
    );
}

async fn run(a: &Args) -> Res<()> {
    let (_cloud, data) = start_cloud(a)?;
    let endpoints: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.join("endpoints.json"))
            .map_err(|e| format!("reading {}/endpoints.json: {e}", data.display()))?,
    )
    .map_err(|e| format!("endpoints.json: {e}"))?;
    let google = endpoints["google"]
        .as_str()
        .ok_or("endpoints.json has no \"google\" endpoint")?
        .trim_end_matches('/')
        .to_owned();
    loopback(&google)?;
    let mut env = task_env(a, &data)?;
    let config = write_config(&data, &google)?;
    env.set(
        "GOOGLE_APPLICATION_CREDENTIALS",
        &config.display().to_string(),
    );
    env.set("CLOUDSDK_API_ENDPOINT_OVERRIDES_STS", &format!("{google}/"));
    env.set(
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS",
        &format!("{google}/"),
    );
    let scopes = vec![CLOUD_PLATFORM.to_owned()];

    let pooled = client(true)?;
    let fresh = client(false)?;
    let (_, creds) = cold_once(&env, &pooled, &scopes).await?;
    println!("# source: {}", creds.source());
    check_secret(&pooled, &google, &creds).await?;
    println!("# credentials config: {}", config.display());

    for (case, http) in [("cold_new_conn", &fresh), ("cold_pooled", &pooled)] {
        for _ in 0..WARMUP {
            cold_once(&env, http, &scopes).await?;
        }
        let (mut total, mut resolve, mut token) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..a.cold {
            let (c, _) = cold_once(&env, http, &scopes).await?;
            total.push(c.total);
            resolve.push(c.resolve);
            token.push(c.token);
        }
        report(case, total);
        let (r, _, _) = stats(resolve);
        let (t, _, _) = stats(token);
        println!(
            "    of which (medians): google_default (file, ECS credentials) {r:.1} µs, access_token (sign, STS, generateAccessToken) {t:.1} µs"
        );
    }

    let (_, creds) = cold_once(&env, &pooled, &scopes).await?;
    for _ in 0..1000 {
        creds.access_token().await.map_err(|e| e.to_string())?;
    }
    let mut cached = Vec::with_capacity(a.cached);
    for _ in 0..a.cached {
        let t = Instant::now();
        let tok = creds.access_token().await.map_err(|e| e.to_string())?;
        cached.push(t.elapsed());
        std::hint::black_box(tok);
    }
    report("cached", cached);
    Ok(())
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("federation bench: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("federation bench: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("federation bench: {e}");
            ExitCode::FAILURE
        }
    }
}
