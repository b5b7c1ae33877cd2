//! `keyway cloud up` as a child process, for the binary's tests: started on a
//! world file and a data directory, ready once it has written
//! `endpoints.json`; `keyway cloud env` read back as a map of variables; and
//! the users' credentials it wrote.
//!
//! The binary is the caller's (`env!("CARGO_BIN_EXE_keyway")`): cargo tells
//! only the binary's own integration tests where it is.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `keyway cloud up` may take to write `endpoints.json`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts `keyway cloud up --world WORLD --data DATA` and waits until it has
/// written `DATA/endpoints.json` (an `endpoints.json` left by an earlier run
/// is removed first); returns the child and the endpoints. A cloud that does
/// not start in [`START_TIMEOUT`] is killed and the test fails.
pub fn start_cloud(keyway: &Path, world: &Path, data: &Path, stderr: Stdio) -> (Child, Value) {
    let endpoints = data.join("endpoints.json");
    let _ = std::fs::remove_file(&endpoints);
    let mut child = Command::new(keyway)
        .args(["cloud", "up", "--world"])
        .arg(world)
        .arg("--data")
        .arg(data)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", keyway.display()));
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(b) = std::fs::read(&endpoints)
            && let Ok(v) = serde_json::from_slice::<Value>(&b)
        {
            return (child, v);
        }
        if Instant::now() >= deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "the local cloud did not start on {} within {START_TIMEOUT:?} ({status:?})",
                world.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` to the child and reaps it.
pub fn signal_and_wait(child: &mut Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) on the pid of a child this process has not yet reaped.
    unsafe { libc::kill(pid, signal) };
    let _ = child.wait();
}

/// Stops the cloud as a user would (SIGTERM) and reaps it.
pub fn stop(child: &mut Child) {
    signal_and_wait(child, libc::SIGTERM);
}

/// `keyway cloud env --data DATA ARGS`, as a map of the variables it exports.
pub fn cloud_env(keyway: &Path, data: &Path, args: &[&str]) -> BTreeMap<String, String> {
    let out = Command::new(keyway)
        .args(["cloud", "env", "--data"])
        .arg(data)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", keyway.display()));
    assert!(
        out.status.success(),
        "cloud env {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    exports(&String::from_utf8(out.stdout).expect("cloud env prints UTF-8"))
}

/// The variables of `export NAME='VALUE'` lines (shell single quoting undone).
pub fn exports(text: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("export ") {
            let (k, v) = rest
                .split_once('=')
                .unwrap_or_else(|| panic!("an export without '=': {line}"));
            env.insert(k.to_owned(), v.trim_matches('\'').replace(r"'\''", "'"));
        }
    }
    env
}

/// A user's ADC file as the cloud wrote it.
pub fn user_adc(data: &Path, email: &str) -> Value {
    let p = data.join(format!(
        "users/{email}/gcloud/application_default_credentials.json"
    ));
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

/// The access token cached in a user's ADC file.
pub fn user_token(data: &Path, email: &str) -> String {
    user_adc(data, email)["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{email}'s ADC file holds no token"))
        .to_owned()
}

/// A fresh access token for a user: the refresh-token grant of their ADC
/// file, at its `token_uri`.
pub async fn refresh_user_token(http: &reqwest::Client, data: &Path, email: &str) -> String {
    let adc = user_adc(data, email);
    let s = |k: &str| adc[k].as_str().unwrap_or_default().to_owned();
    let form = [
        ("grant_type", "refresh_token".to_owned()),
        ("client_id", s("client_id")),
        ("client_secret", s("client_secret")),
        ("refresh_token", s("refresh_token")),
    ];
    let r = http
        .post(s("token_uri"))
        .form(&form)
        .send()
        .await
        .expect("the token endpoint");
    let status = r.status();
    let t: Value = r.json().await.expect("a JSON token answer");
    assert_eq!(status, 200, "refreshing {email}'s token: {t}");
    t["access_token"].as_str().unwrap().to_owned()
}

/// A Google API call over HTTP from a synchronous test: `method base+path`
/// with a bearer token and an optional JSON body; the answer as JSON (`null`
/// when it is not JSON).
pub fn call(
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let mut r = reqwest::Client::new()
            .request(
                method.parse().unwrap_or_else(|e| panic!("{method}: {e}")),
                format!("{base}{path}"),
            )
            .bearer_auth(token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    })
}
