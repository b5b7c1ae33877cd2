//! AWS failures through the real keyway binary against the local cloud:
//! expired temporary credentials and a clock far from AWS's are explained
//! (with the credentials' source) and leak nothing; and the Google → AWS
//! direction: on a GCE VM of the local cloud, KEYWAY_AWS_WEB_IDENTITY=google
//! exchanges the VM's Google ID token for a role session with STS
//! AssumeRoleWithWebIdentity, and a VM whose service account the role's trust
//! policy does not name is refused with AccessDenied, explained.
//!
//! The first two run the cloud in-process with a hand-set clock (the cloud's
//! `Clock` is its time override); the last runs `keyway cloud up`.

mod support;

use keyway_core::clock::ManualClock;
use keyway_testkit::Local;
use keyway_testkit::worlds::fill;
use std::collections::BTreeMap;
use support::{Cloud, assert_no_leak, exec_in, keyway, one_line, text};

const ACCOUNT: &str = "210987654321";
const SA_ID: &str = "110000000000000000042";
const OTHER_SA_ID: &str = "110000000000000000099";
/// The `--env` of every run: the secret only the role reads.
const DB_URL: &str = "DB_URL=aws-sm://reporting/db-url";
const SECRET_VALUE: &str = "pg://reporting:Wq8-not-for-logs@db.internal/app";

fn world() -> String {
    fill(
        include_str!("worlds/aws_errors.toml"),
        &[
            ("SA_ID", SA_ID),
            ("OTHER_SA_ID", OTHER_SA_ID),
            ("ACCOUNT", ACCOUNT),
            ("SECRET_VALUE", SECRET_VALUE),
        ],
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The local cloud in this process, on a clock the test sets, served by a
/// runtime of its own (these tests run keyway synchronously).
struct InProcess {
    local: Local,
    // Serves the cloud for as long as the test holds it; dropped after `local`.
    _rt: tokio::runtime::Runtime,
}

impl std::ops::Deref for InProcess {
    type Target = Local;
    fn deref(&self) -> &Local {
        &self.local
    }
}

impl InProcess {
    fn start() -> InProcess {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let local = rt.block_on(Local::open_on(&world(), ManualClock::at_secs(now())).serve());
        InProcess { local, _rt: rt }
    }

    /// A machine with only these AWS variables, pointed at this cloud.
    fn env(&self, vars: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("AWS_ENDPOINT_URL", self.ep().aws.as_str()),
            ("AWS_REGION", "eu-central-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("NO_GCE_CHECK", "True"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        env.insert("HOME".into(), self.path.join("home").display().to_string());
        for (k, v) in vars {
            env.insert(k.to_string(), v.to_string());
        }
        env
    }
}

#[test]
fn expired_temporary_credentials_are_named_with_their_source() {
    let c = InProcess::start();
    // A role session issued two hours ago for 15 minutes: long expired.
    let real = now();
    c.clock.set_secs(real - 7200);
    let role = format!("arn:aws:iam::{ACCOUNT}:role/gcp-etl");
    let creds = c.aws.issue(&role, "yesterday", 900).unwrap();
    c.clock.set_secs(real);
    let env = c.env(&[
        ("AWS_ACCESS_KEY_ID", &creds.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key),
        ("AWS_SESSION_TOKEN", &creds.session_token),
    ]);
    let out = exec_in(&env, &[DB_URL], &["sh", "-c", "echo started"]);
    assert_eq!(out.status.code(), Some(125), "{}", one_line(&out.stderr));
    let err = one_line(&out.stderr);
    assert!(
        !text(&out.stdout).contains("started"),
        "the workload must not start"
    );
    assert!(
        err.contains("DB_URL") && err.contains("aws-sm://reporting/db-url"),
        "{err}"
    );
    assert!(
        err.contains("ExpiredToken") && err.contains("expired"),
        "{err}"
    );
    assert!(
        err.contains("environment (AWS_ACCESS_KEY_ID)"),
        "the source is named: {err}"
    );
    for leak in [
        creds.secret_access_key.as_str(),
        creds.session_token.as_str(),
        SECRET_VALUE,
    ] {
        assert_no_leak(&out, leak);
    }
    let out = keyway(&env, &["get", "aws-sm://reporting/db-url"]);
    assert_eq!(out.status.code(), Some(1), "{}", one_line(&out.stderr));
    assert!(
        one_line(&out.stderr).contains("ExpiredToken"),
        "{}",
        one_line(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert_no_leak(&out, &creds.session_token);
}

#[test]
fn a_clock_far_from_aws_is_reported_as_skew() {
    let c = InProcess::start();
    let dev = c.user(ACCOUNT, "dev");
    let (key, secret) = (dev.akid, dev.secret);
    let env = c.env(&[
        ("AWS_ACCESS_KEY_ID", &key),
        ("AWS_SECRET_ACCESS_KEY", &secret),
    ]);
    // Sanity: with the clocks together the key works.
    let out = keyway(&env, &["get", "aws-sm://reporting/db-url"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    assert_eq!(text(&out.stdout), SECRET_VALUE);
    // AWS's clock an hour ahead of this machine's: every signature is "expired".
    c.clock.set_secs(now() + 3600);
    let out = exec_in(&env, &[DB_URL], &["true"]);
    assert_eq!(out.status.code(), Some(125), "{}", one_line(&out.stderr));
    let err = one_line(&out.stderr);
    assert!(
        err.contains("Signature expired") && err.contains("15 min"),
        "{err}"
    );
    assert!(err.contains("clock"), "the hint names the clock: {err}");
    assert_no_leak(&out, &secret);
    assert_no_leak(&out, SECRET_VALUE);
    // And an hour behind: "not yet current".
    c.clock.set_secs(now() - 3600);
    let out = keyway(&env, &["get", "aws-sm://reporting/db-url"]);
    assert_eq!(out.status.code(), Some(1), "{}", one_line(&out.stderr));
    let err = one_line(&out.stderr);
    assert!(
        err.contains("Signature not yet current") && err.contains("clock"),
        "{err}"
    );
}

/// `keyway cloud env --instance VM` plus the AWS variables of Google → AWS.
fn vm_env(cloud: &Cloud, vm: &str) -> BTreeMap<String, String> {
    let mut env = cloud.env(&["--instance", vm]);
    let aws = cloud.endpoints["aws"].as_str().unwrap().to_owned();
    for (k, v) in [
        ("AWS_ENDPOINT_URL", aws.as_str()),
        ("AWS_REGION", "eu-central-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("KEYWAY_AWS_WEB_IDENTITY", "google"),
        (
            "AWS_ROLE_ARN",
            &format!("arn:aws:iam::{ACCOUNT}:role/gcp-etl"),
        ),
    ] {
        env.insert(k.into(), v.into());
    }
    env
}

#[test]
fn a_gce_vm_reads_an_aws_secret_through_web_identity_and_a_stranger_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.toml");
    std::fs::write(&path, world()).unwrap();
    let cloud = Cloud::start(&path);

    let env = vm_env(&cloud, "etl-vm");
    let out = keyway(&env, &["get", "aws-sm://reporting/db-url"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    assert_eq!(text(&out.stdout), SECRET_VALUE);
    assert!(
        !one_line(&out.stderr).contains("eyJ"),
        "no JWT in the logs: {}",
        one_line(&out.stderr)
    );
    let mut with_expected = env.clone();
    with_expected.insert("EXPECTED".into(), SECRET_VALUE.into());
    let out = exec_in(
        &with_expected,
        &[DB_URL],
        &["sh", "-c", "test \"$DB_URL\" = \"$EXPECTED\""],
    );
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    let out = keyway(&env, &["whoami", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    let who: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(who["aws"]["source"]["kind"], "web_identity", "{who}");
    assert_eq!(
        who["aws"]["arn"].as_str().unwrap_or("").split('/').nth(1),
        Some("gcp-etl"),
        "{who}"
    );

    // Another VM of the same project: its service account is not the role's condition.
    let env = vm_env(&cloud, "intruder-vm");
    let out = exec_in(&env, &[DB_URL], &["true"]);
    assert_eq!(out.status.code(), Some(125), "{}", one_line(&out.stderr));
    let err = one_line(&out.stderr);
    assert!(
        err.contains("AccessDenied")
            && err.contains("Not authorized to perform sts:AssumeRoleWithWebIdentity"),
        "{err}"
    );
    assert!(
        err.contains(&format!("azp={OTHER_SA_ID}")),
        "the refused identity is named: {err}"
    );
    assert!(
        err.contains("accounts.google.com:aud"),
        "the fix is explained: {err}"
    );
    assert!(!err.contains("eyJ"), "no JWT in the error: {err}");
    assert_no_leak(&out, SECRET_VALUE);
}
