//! An endpoint that answers with an endless chunked body, or declares a
//! 4 GiB Content-Length, for each kind of call keyway makes (Secret Manager,
//! Secrets Manager, a token endpoint, the metadata server): keyway fails with
//! the cap and the URL in its message, and its peak memory (the child's
//! `ru_maxrss`, from `wait4`) stays small. Before the one client HTTP path, the
//! Secret Manager and Secrets Manager calls read such bodies whole.

mod support;

use keyway_testkit::files;
use keyway_testkit::servers::{Head, Misbehaviour, misbehaving};
use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use support::*;

/// Three times keyway's footprint in these runs (about 15 MiB, debug build),
/// far below what reading a misbehaving body for a few seconds costs (570 MB
/// for Secret Manager before the caps).
const RSS_LIMIT_KIB: i64 = 48 * 1024;

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
/// (or the target) gets the misbehaving body.
fn evil_server(how: Misbehaviour, target: Target) -> String {
    misbehaving(how, move |h: &Head| match (target, h.path.as_str()) {
        (_, "/") if h.method == "GET" => Some(String::new()),
        (_, p) if p.ends_with("/service-accounts/default/email") => {
            Some("sa@p.iam.gserviceaccount.com".into())
        }
        (Target::SecretApi, "/token") => {
            Some(r#"{"access_token":"ya29.test","expires_in":3599,"token_type":"Bearer"}"#.into())
        }
        _ => None,
    })
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
    files::authorized_user(dir, token_uri).display().to_string()
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

type Env = BTreeMap<String, String>;

/// For each misbehaviour, a server misbehaving for `target`; `configure`
/// points the environment at it (the server's `host:port` and a directory of
/// the run's own) and says what to run and which URL the error must name.
/// keyway must stop at `cap`, naming it and the URL.
fn assert_capped(
    (what, target, cap): (&str, Target, &str),
    configure: impl Fn(&mut Env, &str, &std::path::Path) -> (&'static [&'static str], String),
) {
    for how in [Misbehaviour::Endless, Misbehaviour::Declared4GiB] {
        let dir = tempfile::tempdir().unwrap();
        let addr = evil_server(how, target);
        let mut env = base_env(dir.path());
        let (args, url) = configure(&mut env, &addr, dir.path());
        check(&format!("{what}, {how:?}"), run(&env, args), cap, &url);
    }
}

fn set(env: &mut Env, vars: &[(&str, &str)]) {
    env.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
}

const ADC: &str = "GOOGLE_APPLICATION_CREDENTIALS";

#[test]
fn secret_manager_answers_are_capped() {
    let case = ("Secret Manager", Target::SecretApi, "192 KiB");
    assert_capped(case, |env, addr, dir| {
        let adc = user_credentials(dir, &format!("http://{addr}/token"));
        let api = format!("http://{addr}/");
        let overrides = "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER";
        set(env, &[(ADC, &adc), (overrides, &api)]);
        let url = format!("{api}v1/projects/p/secrets/s/versions/latest:access");
        (&["get", "--timeout", "5", "sm://p/s"], url)
    });
}

#[test]
fn secrets_manager_answers_are_capped() {
    let case = ("Secrets Manager", Target::SecretApi, "400 KiB");
    assert_capped(case, |env, addr, _| {
        let endpoint = format!("http://{addr}");
        set(
            env,
            &[
                ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
                (
                    "AWS_SECRET_ACCESS_KEY",
                    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                ),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ENDPOINT_URL_SECRETSMANAGER", &endpoint),
            ],
        );
        (
            &["get", "--timeout", "5", "aws-sm://app/config"],
            format!("{endpoint}/"),
        )
    });
}

#[test]
fn token_endpoint_answers_are_capped() {
    let case = ("token endpoint", Target::TokenEndpoint, "1 MiB");
    assert_capped(case, |env, addr, dir| {
        let token_uri = format!("http://{addr}/token?secret-query=1");
        set(env, &[(ADC, &user_credentials(dir, &token_uri))]);
        (&["token"], format!("http://{addr}/token"))
    });
}

#[test]
fn metadata_server_answers_are_capped() {
    let case = ("metadata server", Target::MetadataToken, "1 MiB");
    assert_capped(case, |env, addr, _| {
        env.remove("NO_GCE_CHECK");
        set(env, &[("GCE_METADATA_HOST", addr)]);
        let token = "computeMetadata/v1/instance/service-accounts/default/token";
        (&["token"], format!("http://{addr}/{token}"))
    });
}
