//! `keyway exec --watch`, through the real binary against the local cloud: a
//! new version put through the cloud's API reaches the running command within
//! the interval (a file replaced atomically at the same path, then a signal; or
//! a restart with the new environment), a failed re-resolve leaves the command
//! running on what it has, and no value ever reaches keyway's output.

mod support;

use base64::Engine;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};
use support::*;

use support::seed000::{OWNER, SECRET as V1};

const SECRET_PATH: &str = "/v1/projects/kaggle-gpu-lab/secrets/wandb-api-key";
const REF: &str = "sm://kaggle-gpu-lab/wandb-api-key";
const V2: &str = "rotated-wandb-key-2-9c1d7e0a4b";
const V3: &str = "rotated-wandb-key-3-5f28a6c03e";
/// The watch interval of these tests, and how late past it a change may arrive
/// on a busy two-core machine.
const INTERVAL: Duration = Duration::from_secs(1);
const MARGIN: Duration = Duration::from_secs(10);
const PATIENCE: Duration = Duration::from_secs(30);

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A running `keyway exec`, its work directory ($OUT) and its stderr.
struct Running {
    keyway: Child,
    out: tempfile::TempDir,
    _runtime: tempfile::TempDir,
}

impl Running {
    fn start(env: &BTreeMap<String, String>, args: &[&str], script: &str) -> Running {
        let out = tempfile::tempdir().unwrap();
        let runtime = tempfile::tempdir_in("/dev/shm").unwrap();
        let stderr = std::fs::File::create(out.path().join("keyway.stderr")).unwrap();
        let keyway = Command::new(KEYWAY)
            .env_clear()
            .envs(env)
            .env("KEYWAY_LOG", "trace")
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("OUT", out.path())
            .arg("exec")
            .args(args)
            .args(["--", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Running {
            keyway,
            out,
            _runtime: runtime,
        }
    }

    fn out(&self, name: &str) -> PathBuf {
        self.out.path().join(name)
    }

    fn stderr(&self) -> String {
        read(&self.out("keyway.stderr"))
    }

    /// Lines of `$OUT/name`, once it has at least `n` complete ones.
    fn lines(&self, name: &str, n: usize, within: Duration) -> (Vec<String>, Duration) {
        let path = self.out(name);
        let took = wait_for(&format!("{n} lines in {name}"), within, || {
            let t = read(&path);
            t.ends_with('\n') && t.lines().count() >= n
        });
        (read(&path).lines().map(str::to_owned).collect(), took)
    }

    /// Ends the command (it exits when `$OUT/stop` exists) and returns keyway's status.
    fn stop(&mut self) -> (i32, String) {
        std::fs::write(self.out("stop"), "").unwrap();
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.keyway.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.keyway.kill();
                panic!("keyway did not exit:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr();
        (status.code().expect("keyway exited"), stderr)
    }
}

fn assert_no_value(stderr: &str, values: &[&str]) {
    for v in values {
        assert!(
            !stderr.contains(v),
            "a secret value reached stderr:\n{stderr}"
        );
    }
}

/// Adds a version to `wandb-api-key` as the owner.
fn add_version(cloud: &Cloud, value: &str) {
    let data = base64::engine::general_purpose::STANDARD.encode(value);
    let (s, b) = cloud.call(
        OWNER,
        "POST",
        &format!("{SECRET_PATH}:addVersion"),
        Some(json!({"payload": {"data": data}})),
    );
    assert_eq!(s, 200, "{b}");
}

fn set_version_state(cloud: &Cloud, version: u32, verb: &str) {
    let (s, b) = cloud.call(
        OWNER,
        "POST",
        &format!("{SECRET_PATH}/versions/{version}:{verb}"),
        Some(json!({})),
    );
    assert_eq!(s, 200, "{b}");
}

/// On each SIGHUP (and once at start) the command appends a line to
/// `$OUT/seen`: why, the file's inode and mode, its path, the names in its
/// directory, and its contents. It exits 4 when `$OUT/stop` appears.
const HUP_REPORTER: &str = r#"
report() {
  printf '%s %s %s %s %s\n' "$1" "$(stat -c '%i %a' "$KEY")" "$KEY" \
    "$(ls -A "$(dirname "$KEY")" | tr '\n' ,)" "$(cat "$KEY")" >> "$OUT/seen"
}
trap 'report hup' HUP
report start
while [ ! -e "$OUT/stop" ]; do sleep 0.05; done
exit 4
"#;

/// One line of [`HUP_REPORTER`].
#[derive(Debug)]
struct Seen {
    why: String,
    inode: String,
    mode: String,
    path: String,
    listing: String,
    contents: String,
}

fn seen(line: &str) -> Seen {
    let f: Vec<&str> = line.splitn(6, ' ').collect();
    assert_eq!(f.len(), 6, "{line}");
    Seen {
        why: f[0].into(),
        inode: f[1].into(),
        mode: f[2].into(),
        path: f[3].into(),
        listing: f[4].into(),
        contents: f[5].into(),
    }
}

#[test]
fn a_new_version_replaces_the_file_atomically_then_the_command_gets_sighup() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let env = cloud.env(&["--user", OWNER]);
    let key = format!("KEY={REF}?filename=wandb.key");
    let mut run = Running::start(&env, &["--watch=1s", "--env", &key], HUP_REPORTER);
    let (lines, _) = run.lines("seen", 1, PATIENCE);
    let first = seen(&lines[0]);
    assert_eq!((first.why.as_str(), first.contents.as_str()), ("start", V1));
    assert_eq!(first.mode, "400");

    add_version(&cloud, V2);
    let (lines, took) = run.lines("seen", 2, INTERVAL + MARGIN);
    let second = seen(&lines[1]);
    assert_eq!((second.why.as_str(), second.contents.as_str()), ("hup", V2));
    assert_eq!(second.path, first.path, "same path");
    assert_eq!(second.mode, "400", "same mode");
    assert_ne!(
        second.inode, first.inode,
        "a new file was renamed over the old one"
    );
    assert_eq!(second.listing, "wandb.key,", "no temporary file beside it");
    eprintln!("the new version reached the command in {took:?}");

    // Nothing changes while the value does not: no further signal.
    std::thread::sleep(INTERVAL * 3);
    assert_eq!(read(&run.out("seen")).lines().count(), 2);

    let dir = Path::new(&first.path).parent().unwrap().to_owned();
    let (code, stderr) = run.stop();
    assert_eq!(code, 4, "keyway exits with the command's status:\n{stderr}");
    assert!(!dir.exists(), "the secret directory is removed at exit");
    let log = one_line(stderr.as_bytes());
    assert!(
        log.contains("secret changed: version 2 (was 1)")
            && log.contains("var=KEY")
            && log.contains("wandb-api-key"),
        "{log}"
    );
    assert!(log.contains("the command got SIGHUP"), "{log}");
    assert_no_value(&stderr, &[V1, V2]);
}

#[test]
fn a_changed_environment_variable_restarts_the_command_with_the_new_value() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let env = cloud.env(&["--user", OWNER]);
    let token = format!("TOKEN={REF}");
    // Each start appends $TOKEN and its pid; SIGTERM ends it quietly.
    let script = r#"trap 'exit 0' TERM; printf '%s %s\n' "$TOKEN" $$ >> "$OUT/starts"
while [ ! -e "$OUT/stop" ]; do sleep 0.05; done; exit 6"#;
    let mut run = Running::start(&env, &["--watch=1", "--env", &token], script);
    let (lines, _) = run.lines("starts", 1, PATIENCE);
    assert!(lines[0].starts_with(&format!("{V1} ")), "{lines:?}");
    let first_pid: i32 = lines[0].rsplit(' ').next().unwrap().parse().unwrap();

    add_version(&cloud, V2);
    let (lines, took) = run.lines("starts", 2, INTERVAL + MARGIN);
    assert!(lines[1].starts_with(&format!("{V2} ")), "{lines:?}");
    let second_pid: i32 = lines[1].rsplit(' ').next().unwrap().parse().unwrap();
    assert_ne!(first_pid, second_pid);
    assert!(
        !Path::new(&format!("/proc/{first_pid}")).exists()
            || read(Path::new(&format!("/proc/{first_pid}/stat"))).contains(") Z"),
        "the first process is gone"
    );
    eprintln!("the restart happened {took:?} after the new version");

    // A value no environment can carry: refused, the command runs on with V2.
    add_version(&cloud, "nul\0inside");
    wait_for("the refusal", INTERVAL + MARGIN, || {
        one_line(run.stderr().as_bytes()).contains("could not deliver the new values")
    });
    std::thread::sleep(INTERVAL * 2);
    let log = one_line(run.stderr().as_bytes());
    assert!(
        log.contains("the value of TOKEN contains a NUL byte"),
        "{log}"
    );
    assert_eq!(
        log.matches("could not deliver").count(),
        1,
        "warned once:\n{log}"
    );
    assert_eq!(read(&run.out("starts")).lines().count(), 2, "no restart");
    // The next good value is delivered.
    add_version(&cloud, V3);
    let (lines, _) = run.lines("starts", 3, INTERVAL + MARGIN);
    assert!(lines[2].starts_with(&format!("{V3} ")), "{lines:?}");

    let (code, stderr) = run.stop();
    assert_eq!(
        code, 6,
        "keyway exits with the last command's status:\n{stderr}"
    );
    let log = one_line(stderr.as_bytes());
    assert!(
        log.contains("var=TOKEN") && log.contains("delivery=\"environment\""),
        "{log}"
    );
    assert!(log.contains("the command was restarted"), "{log}");
    assert_no_value(&stderr, &[V1, V2, V3, "nul"]);
}

#[test]
fn a_failed_re_resolve_keeps_the_command_running_on_what_it_has() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let env = cloud.env(&["--user", OWNER]);
    let key = format!("KEY={REF}?filename=wandb.key");
    let mut run = Running::start(
        &env,
        &["--watch=1s", "--timeout=2", "--env", &key],
        HUP_REPORTER,
    );
    let (lines, _) = run.lines("seen", 1, PATIENCE);
    let path = PathBuf::from(seen(&lines[0]).path);
    add_version(&cloud, V2);
    run.lines("seen", 2, INTERVAL + MARGIN);

    // The latest version disabled: every round fails with FAILED_PRECONDITION.
    set_version_state(&cloud, 2, "disable");
    wait_for("a warning", INTERVAL + MARGIN, || {
        one_line(run.stderr().as_bytes()).contains("could not resolve again")
    });
    std::thread::sleep(INTERVAL * 3);
    let log = one_line(run.stderr().as_bytes());
    let warning = log
        .lines()
        .find(|l| l.contains("could not resolve again"))
        .unwrap()
        .to_owned();
    assert!(
        warning.contains("WARN")
            && warning.contains("var=KEY")
            && warning.contains("wandb-api-key")
            && warning.contains("DISABLED")
            && warning.contains("FAILED_PRECONDITION")
            && warning.contains("transient=false")
            && warning.contains("keeps the values it has"),
        "{warning}"
    );
    assert_eq!(
        log.matches("could not resolve again").count(),
        1,
        "the same failure is warned about once:\n{log}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        V2,
        "the file is untouched"
    );
    assert_eq!(read(&run.out("seen")).lines().count(), 2, "no signal");

    // A new version: the watch recovers and delivers it.
    add_version(&cloud, V3);
    let (lines, _) = run.lines("seen", 3, INTERVAL + MARGIN);
    assert_eq!(seen(&lines[2]).contents, V3);
    assert!(one_line(run.stderr().as_bytes()).contains("resolves again"));

    // The cloud gone: a transient failure, and the command still runs on V3.
    drop(cloud);
    wait_for("a transport warning", PATIENCE, || {
        one_line(run.stderr().as_bytes())
            .lines()
            .any(|l| l.contains("could not resolve again") && l.contains("transient=true"))
    });
    assert_eq!(std::fs::read_to_string(&path).unwrap(), V3);
    assert_eq!(read(&run.out("seen")).lines().count(), 3);
    let (code, stderr) = run.stop();
    assert_eq!(code, 4, "{stderr}");
    assert_no_value(&stderr, &[V1, V2, V3]);
}

/// An AWS-only world: a user who may do anything to Secrets Manager, and one secret.
const AWS_WORLD: &str = include_str!("worlds/rotation_aws.toml");

/// PutSecretValue through the local cloud's Secrets Manager API, signed as the
/// user whose shared credentials file `env` names.
fn put_secret_value(env: &BTreeMap<String, String>, secret_id: &str, value: &str) -> String {
    let file = read(Path::new(&env["AWS_SHARED_CREDENTIALS_FILE"]));
    let field = |name: &str| {
        file.lines()
            .find_map(|l| {
                let (k, v) = l.split_once('=')?;
                (k.trim() == name).then(|| v.trim().to_owned())
            })
            .unwrap()
    };
    let creds = keyway_auth::AwsCredentials {
        access_key_id: field("aws_access_key_id"),
        secret_access_key: keyway_core::Secret::new(field("aws_secret_access_key")),
        session_token: None,
        expires_at: None,
    };
    let endpoint = env
        .get("AWS_ENDPOINT_URL_SECRETSMANAGER")
        .or(env.get("AWS_ENDPOINT_URL"))
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let url = format!("{endpoint}/");
    let host = url
        .split("://")
        .nth(1)
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let body = serde_json::to_vec(&json!({"SecretId": secret_id, "SecretString": value})).unwrap();
    let headers = vec![
        ("host".to_owned(), host),
        (
            "content-type".to_owned(),
            "application/x-amz-json-1.1".to_owned(),
        ),
        (
            "x-amz-target".to_owned(),
            "secretsmanager.PutSecretValue".to_owned(),
        ),
    ];
    let (added, _) = keyway_secrets::aws::signature(
        "POST",
        &url,
        &headers,
        &body,
        &creds,
        &env["AWS_REGION"],
        "secretsmanager",
        SystemTime::now(),
        Default::default(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().post(&url).body(body);
        for (k, v) in headers.iter().skip(1).chain(&added) {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(status, 200, "{v}");
        v["VersionId"].as_str().unwrap().to_owned()
    })
}

#[test]
fn an_aws_secret_put_through_the_api_reaches_the_command_and_signal_usr1_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.toml");
    std::fs::write(&world, AWS_WORLD).unwrap();
    let cloud = Cloud::start(&world);
    let env = cloud.env(&["--aws-user", "dev"]);
    let (one, two) = ("aws-token-value-one", "aws-token-value-two");
    // The file on SIGUSR1; PLAIN in the environment cannot follow under a signal.
    let script = r#"report() { printf '%s %s %s\n' "$1" "$(cat "$KEY")" "$PLAIN" >> "$OUT/seen"; }
trap 'report usr1' USR1; report start
while [ ! -e "$OUT/stop" ]; do sleep 0.05; done"#;
    let mut run = Running::start(
        &env,
        &[
            "--watch=1s",
            "--on-change=signal:USR1",
            "--env",
            "KEY=aws-sm://app/token?filename=token",
            "--env",
            "PLAIN=aws-sm://app/token",
        ],
        script,
    );
    let (lines, _) = run.lines("seen", 1, PATIENCE);
    assert_eq!(lines[0], format!("start {one} {one}"));
    let log = one_line(run.stderr().as_bytes());
    assert!(
        log.contains("--on-change=signal:SIGUSR1 cannot change the environment")
            && log.contains("PLAIN"),
        "warned at start:\n{log}"
    );

    let version = put_secret_value(&env, "app/token", two);
    let (lines, _) = run.lines("seen", 2, INTERVAL + MARGIN);
    assert_eq!(
        lines[1],
        format!("usr1 {two} {one}"),
        "the file follows; the environment cannot"
    );
    let (code, stderr) = run.stop();
    assert_eq!(code, 0, "{stderr}");
    let log = one_line(stderr.as_bytes());
    assert!(
        log.contains(&format!("secret changed: version {version}")) && log.contains("var=KEY"),
        "the version named is Secrets Manager's VersionId:\n{log}"
    );
    assert!(
        log.contains("PLAIN changed, but a signal cannot change"),
        "{log}"
    );
    assert_no_value(&stderr, &[one, two]);
}

#[test]
fn watch_and_on_change_arguments_are_checked() {
    let env: BTreeMap<String, String> = [("PATH".to_owned(), "/usr/bin:/bin".to_owned())].into();
    for (args, says) in [
        (&["exec", "--watch=0s", "--", "true"][..], "too short"),
        (&["exec", "--watch=500ms", "--", "true"][..], "too short"),
        (
            &["exec", "--watch=soon", "--", "true"][..],
            "not a duration",
        ),
        (&["exec", "--watch=-5s", "--", "true"][..], "negative"),
        (&["exec", "--watch=25h", "--", "true"][..], "too long"),
        (&["exec", "--watch=", "--", "true"][..], "empty"),
        (
            &["exec", "--watch", "--on-change=signal:NOPE", "--", "true"][..],
            "unknown signal",
        ),
        (
            &["exec", "--watch", "--on-change=reload", "--", "true"][..],
            "expected auto, restart or signal:SIG",
        ),
        (
            &["exec", "--on-change=restart", "--", "true"][..],
            "--watch",
        ),
        (&["exec", "--stop-timeout=5s", "--", "true"][..], "--watch"),
        (
            &["exec", "--watch", "30s", "--", "true"][..],
            "an interval is given as --watch=30s",
        ),
    ] {
        let out = keyway(&env, args);
        let err = one_line(&out.stderr);
        // A usage error of `keyway exec` is a failure before the command
        // starts: 125, as the README promises.
        assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Accepted forms: the command runs (no references, so nothing to watch).
    for watch in ["--watch", "--watch=30", "--watch=1m30s", "--watch=PT1M"] {
        let out = keyway(&env, &["exec", watch, "--", "true"]);
        assert_eq!(out.status.code(), Some(0), "{watch}: {}", text(&out.stderr));
    }
}

#[test]
fn sigterm_to_keyway_during_a_watch_reaches_the_command_and_ends_the_watch() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let env = cloud.env(&["--user", OWNER]);
    let key = format!("KEY={REF}?filename=wandb.key");
    let script = r#"trap 'echo term >> "$OUT/got"; exit 42' TERM
printf '%s %s\n' "$KEY" "$(cat "$KEY")" >> "$OUT/starts"
while :; do sleep 0.05; done"#;
    let mut run = Running::start(
        &env,
        &["--watch=1s", "--on-change=restart", "--env", &key],
        script,
    );
    let (lines, _) = run.lines("starts", 1, PATIENCE);
    assert!(lines[0].ends_with(V1), "{lines:?}");
    // A restart first: the file is replaced, the command started again.
    add_version(&cloud, V2);
    let (lines, _) = run.lines("starts", 2, INTERVAL + MARGIN);
    assert!(lines[1].ends_with(V2), "{lines:?}");
    assert_eq!(
        lines[0].split(' ').next(),
        lines[1].split(' ').next(),
        "same path after the restart"
    );
    let dir = Path::new(lines[1].split(' ').next().unwrap())
        .parent()
        .unwrap()
        .to_owned();
    // Then keyway is asked to stop: the command gets SIGTERM and keyway ends with it.
    let pid = i32::try_from(run.keyway.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = run.keyway.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "keyway did not end:\n{}",
            run.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(42), "{}", run.stderr());
    assert_eq!(
        read(&run.out("got")),
        "term\nterm\n",
        "one SIGTERM per process"
    );
    assert!(!dir.exists(), "the secret directory is removed");
    assert_no_value(&run.stderr(), &[V1, V2]);
}

#[test]
fn sigterm_to_keyway_during_a_restart_cancels_it() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let env = cloud.env(&["--user", OWNER]);
    let token = format!("TOKEN={REF}");
    // SIGTERM is recorded but does not end the command; `$OUT/stop` does.
    let script = r#"trap 'echo term >> "$OUT/got"' TERM; echo "$TOKEN" >> "$OUT/starts"
while [ ! -e "$OUT/stop" ]; do sleep 0.05; done; exit 5"#;
    let mut run = Running::start(
        &env,
        &[
            "--watch=1s",
            "--on-change=restart",
            "--stop-timeout=60s",
            "--env",
            &token,
        ],
        script,
    );
    run.lines("starts", 1, PATIENCE);
    add_version(&cloud, V2);
    // The restart began: the command got SIGTERM and is taking its time.
    run.lines("got", 1, INTERVAL + MARGIN);
    let pid = i32::try_from(run.keyway.id()).unwrap();
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    run.lines("got", 2, PATIENCE);
    let (code, stderr) = run.stop();
    assert_eq!(code, 5, "keyway ends with the command it had:\n{stderr}");
    assert_eq!(
        read(&run.out("starts")).lines().count(),
        1,
        "not started again"
    );
    assert!(
        one_line(stderr.as_bytes()).contains("the restart is cancelled"),
        "{stderr}"
    );
}
