//! An endpoint that answers with an endless chunked body, or declares a
//! 4 GiB Content-Length, for each kind of call keyway makes (Secret Manager,
//! Secrets Manager, a token endpoint, the metadata server): keyway fails with
//! the cap and the URL in its message, and its peak memory (the child's
//! `ru_maxrss`, from `wait4`) stays small. Before the one client HTTP path, the
//! Secret Manager and Secrets Manager calls read such bodies whole.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// Three times keyway's footprint in these runs (about 15 MiB, debug build),
/// far below what reading a misbehaving body for a few seconds costs (570 MB
/// for Secret Manager before the caps).
const RSS_LIMIT_KIB: i64 = 48 * 1024;

#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// `Transfer-Encoding: chunked`, 64 KiB chunks until the client leaves.
    Endless,
    /// `Content-Length: 4294967296`, then bytes until the client leaves.
    Declared4GiB,
}

/// Which requests get the misbehaving answer.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// Everything but a metadata ping, the email, and `/token` when it is not the target.
    SecretApi,
    TokenEndpoint,
    MetadataToken,
}

/// A loopback server: OAuth `/token` answers a valid token (unless it is the
/// target), `GET /` and `…/email` answer as a metadata server, anything else
/// (or the target) gets the misbehaving body. Every answer says
/// `Metadata-Flavor: Google`.
fn evil_server(how: Misbehaviour, target: Target) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            std::thread::spawn(move || serve(s, how, target));
        }
    });
    addr
}

fn serve(mut s: TcpStream, how: Misbehaviour, target: Target) {
    loop {
        let Some((method, path)) = read_request(&mut s) else {
            return;
        };
        let small = |s: &mut TcpStream, body: &str| {
            let head = format!(
                "HTTP/1.1 200 OK\r\nmetadata-flavor: Google\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(head.as_bytes()).is_ok()
        };
        let ok = match (target, path.as_str()) {
            (_, "/") if method == "GET" => small(&mut s, ""),
            (_, p) if p.ends_with("/service-accounts/default/email") => {
                small(&mut s, "sa@p.iam.gserviceaccount.com")
            }
            (Target::SecretApi, "/token") => small(
                &mut s,
                r#"{"access_token":"ya29.test","expires_in":3599,"token_type":"Bearer"}"#,
            ),
            _ => {
                misbehave(&mut s, how);
                return;
            }
        };
        if !ok {
            return;
        }
    }
}

/// Reads one request (head and a Content-Length body); its method and its
/// path without the query.
fn read_request(s: &mut TcpStream) -> Option<(String, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    let mut first = head.lines().next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?;
    Some((
        method,
        target.split('?').next().unwrap_or_default().to_owned(),
    ))
}

fn misbehave(s: &mut TcpStream, how: Misbehaviour) {
    let chunk = vec![b'7'; 64 << 10];
    let head = match how {
        Misbehaviour::Endless => {
            "HTTP/1.1 200 OK\r\nmetadata-flavor: Google\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        }
        Misbehaviour::Declared4GiB => {
            "HTTP/1.1 200 OK\r\nmetadata-flavor: Google\r\ncontent-type: application/json\r\ncontent-length: 4294967296\r\n\r\n"
        }
    };
    if s.write_all(head.as_bytes()).is_err() {
        return;
    }
    // At most 4 GiB, at about 128 MB/s: enough to exhaust any reader that does
    // not stop, without flooding the machine when one does not.
    for _ in 0..65_536 {
        let sent = match how {
            Misbehaviour::Endless => s
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|()| s.write_all(&chunk))
                .and_then(|()| s.write_all(b"\r\n")),
            Misbehaviour::Declared4GiB => s.write_all(&chunk),
        };
        if sent.is_err() {
            return;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Runs keyway in `env` and waits for it with `wait4`: (exit code, stderr, peak RSS in KiB).
#[allow(clippy::zombie_processes)] // reaped by wait4, which std's Child cannot do
fn run(env: &BTreeMap<String, String>, args: &[&str]) -> (i32, String, i64) {
    let mut child = Command::new(KEYWAY)
        .env_clear()
        .envs(env)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    assert!(
        libc::WIFEXITED(status),
        "keyway {args:?} died: {status}\n{err}"
    );
    (libc::WEXITSTATUS(status), err, usage.ru_maxrss)
}

fn base_env(dir: &std::path::Path) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
        ("HOME".to_owned(), dir.display().to_string()),
        ("NO_GCE_CHECK".to_owned(), "true".to_owned()),
        ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
    ])
}

fn user_credentials(dir: &std::path::Path, token_uri: &str) -> String {
    let path = dir.join("adc.json");
    std::fs::write(
        &path,
        serde_json::json!({
            "type": "authorized_user",
            "client_id": "id.apps.googleusercontent.com",
            "client_secret": "not-a-real-secret",
            "refresh_token": "1//not-a-real-token",
            "token_uri": token_uri,
        })
        .to_string(),
    )
    .unwrap();
    path.display().to_string()
}

fn check(what: &str, (code, err, rss): (i32, String, i64), cap: &str, url: &str) {
    assert_eq!(code, 1, "{what}: {err}");
    let flat = one_line(err.as_bytes());
    assert!(
        flat.contains(&format!("sent a response larger than {cap}")),
        "{what}: the cap is not named: {err}"
    );
    assert!(flat.contains(url), "{what}: the URL is not named: {err}");
    assert!(
        !flat.contains("secret-query"),
        "{what}: the query leaked: {err}"
    );
    assert!(
        rss < RSS_LIMIT_KIB,
        "{what}: keyway's peak RSS was {rss} KiB (limit {RSS_LIMIT_KIB} KiB)\n{err}"
    );
}

#[test]
fn secret_manager_answers_are_capped() {
    for how in [Misbehaviour::Endless, Misbehaviour::Declared4GiB] {
        let dir = tempfile::tempdir().unwrap();
        let addr = evil_server(how, Target::SecretApi);
        let mut env = base_env(dir.path());
        env.insert(
            "GOOGLE_APPLICATION_CREDENTIALS".into(),
            user_credentials(dir.path(), &format!("http://{addr}/token")),
        );
        env.insert(
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER".into(),
            format!("http://{addr}/"),
        );
        let out = run(&env, &["get", "--timeout", "5", "sm://p/s"]);
        check(
            &format!("Secret Manager, {how:?}"),
            out,
            "192 KiB",
            &format!("http://{addr}/v1/projects/p/secrets/s/versions/latest:access"),
        );
    }
}

#[test]
fn secrets_manager_answers_are_capped() {
    for how in [Misbehaviour::Endless, Misbehaviour::Declared4GiB] {
        let dir = tempfile::tempdir().unwrap();
        let addr = evil_server(how, Target::SecretApi);
        let mut env = base_env(dir.path());
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            (
                "AWS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            ),
            ("AWS_REGION", "us-east-1"),
        ] {
            env.insert(k.into(), v.into());
        }
        env.insert(
            "AWS_ENDPOINT_URL_SECRETSMANAGER".into(),
            format!("http://{addr}"),
        );
        let out = run(&env, &["get", "--timeout", "5", "aws-sm://app/config"]);
        check(
            &format!("Secrets Manager, {how:?}"),
            out,
            "400 KiB",
            &format!("http://{addr}/"),
        );
    }
}

#[test]
fn token_endpoint_answers_are_capped() {
    for how in [Misbehaviour::Endless, Misbehaviour::Declared4GiB] {
        let dir = tempfile::tempdir().unwrap();
        let addr = evil_server(how, Target::TokenEndpoint);
        let mut env = base_env(dir.path());
        env.insert(
            "GOOGLE_APPLICATION_CREDENTIALS".into(),
            user_credentials(dir.path(), &format!("http://{addr}/token?secret-query=1")),
        );
        let out = run(&env, &["token"]);
        check(
            &format!("token endpoint, {how:?}"),
            out,
            "1 MiB",
            &format!("http://{addr}/token"),
        );
    }
}

#[test]
fn metadata_server_answers_are_capped() {
    for how in [Misbehaviour::Endless, Misbehaviour::Declared4GiB] {
        let dir = tempfile::tempdir().unwrap();
        let addr = evil_server(how, Target::MetadataToken);
        let mut env = base_env(dir.path());
        env.remove("NO_GCE_CHECK");
        env.insert("GCE_METADATA_HOST".into(), addr.clone());
        let out = run(&env, &["token"]);
        check(
            &format!("metadata server, {how:?}"),
            out,
            "1 MiB",
            &format!("http://{addr}/computeMetadata/v1/instance/service-accounts/default/token"),
        );
    }
}
