//! What a first-time user reads on stderr: plain text unless stderr is a
//! terminal (no ANSI colour and no timestamp in a file, whatever TERM says;
//! NO_COLOR honoured), lines no longer than about 100 columns, and no internal
//! placeholder in an error.

mod support;

use keyway_testkit::files;
use keyway_testkit::servers::closed_port;
use keyway_testkit::worlds::fill;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use support::*;

/// Runs keyway with exactly `env` and stderr redirected to a file; returns
/// the exit code and what the file holds.
fn stderr_to_file(dir: &Path, env: &BTreeMap<String, String>, args: &[&str]) -> (i32, String) {
    let path = dir.join("stderr.txt");
    let file = std::fs::File::create(&path).unwrap();
    let status = Command::new(KEYWAY)
        .env_clear()
        .envs(env)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .status()
        .unwrap();
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(&path).unwrap(),
    )
}

#[test]
fn warnings_before_an_error_are_plain_text_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    // A proxy URL that does not parse (keyway warns and goes on without it), and
    // user credentials whose token endpoint refuses connections (keyway fails).
    let creds = files::authorized_user(
        dir.path(),
        &format!("http://127.0.0.1:{}/token", closed_port()),
    );
    for term in ["xterm-256color", "dumb"] {
        let env = BTreeMap::from([
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
            ("HOME".to_owned(), dir.path().display().to_string()),
            ("TERM".to_owned(), term.to_owned()),
            ("HTTPS_PROXY".to_owned(), "http://[not a url".to_owned()),
            (
                "GOOGLE_APPLICATION_CREDENTIALS".to_owned(),
                creds.display().to_string(),
            ),
        ]);
        let (code, err) = stderr_to_file(dir.path(), &env, &["get", "sm://p/s"]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("warning: "),
            "TERM={term}: expected a warning: {err}"
        );
        assert!(
            !err.contains('\u{1b}'),
            "TERM={term}: ANSI escapes in a file: {err:?}"
        );
        for line in err.lines() {
            assert!(
                !line.starts_with(|c: char| c.is_ascii_digit()),
                "TERM={term}: a timestamp at the default level: {line}"
            );
        }
        assert!(err.contains("error: "), "{err}");
    }
}

/// At most ~100 columns: a line may be longer only if it is one unbreakable
/// word (a URL, an ARN) after its indentation.
fn assert_short_lines(err: &str) {
    for line in err.lines() {
        let words = line.split_whitespace().filter(|w| *w != "\\").count();
        assert!(
            line.chars().count() <= 100 || words <= 1,
            "a {}-column line:\n{line}\n---\n{err}",
            line.chars().count()
        );
    }
}

const PROVIDER: &str =
    "projects/402718395026/locations/global/workloadIdentityPools/bq-pool/providers/aws-provider";
const SA: &str = "rds-to-bigquery@curucuru-logs.iam.gserviceaccount.com";

/// `keyway cloud cred-config PROVIDER --aws --service-account SA` run in `env`; the file's path.
fn cred_config(cloud: &Cloud, env: &BTreeMap<String, String>) -> String {
    let path = cloud.dir.path().join("cred.json").display().to_string();
    let data = cloud.data.display().to_string();
    let out = keyway(
        env,
        &[
            "cloud",
            "cred-config",
            "--data",
            &data,
            PROVIDER,
            "--aws",
            "--service-account",
            SA,
            "--output-file",
            &path,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    path
}

#[test]
fn a_task_without_a_task_role_gets_short_lines_and_no_internal_placeholder() {
    let cloud = Cloud::start(&world_path("examples/seed-002.toml"));
    let mut task = cloud.env(&["--task", "rds-to-bigquery-no-task-role"]);
    let file = cred_config(&cloud, &task);
    task.insert("GOOGLE_APPLICATION_CREDENTIALS".into(), file);
    let out = Command::new(KEYWAY)
        .env_clear()
        .envs(&task)
        .args([
            "exec",
            "--env",
            "CONFIG=sm://curucuru-logs/rds-to-bigquery-config",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(!err.contains("/nonexistent"), "{err}");
    // aws1 consults the environment, the ECS endpoint and IMDS only; the error
    // lists what it tried and nothing else.
    let flat = one_line(&out.stderr);
    assert!(
        flat.contains("AWS_ACCESS_KEY_ID is not set")
            && flat.contains("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI are not set"),
        "{err}"
    );
    assert!(
        !flat.contains("shared config/credentials files")
            && !flat.contains("AWS_WEB_IDENTITY_TOKEN_FILE"),
        "{err}"
    );
    assert!(
        flat.contains("no task role") && flat.contains("taskRoleArn"),
        "{err}"
    );
    assert_short_lines(&err);
}

#[test]
fn google_to_aws_web_identity_works_with_federated_google_credentials() {
    // Seed 002 plus an AWS role that trusts the service account's Google ID
    // tokens, and a secret only that role reads.
    const SA_ID: &str = "110000000000000000777";
    let world = std::fs::read_to_string(world_path("examples/seed-002.toml"))
        .unwrap()
        .replacen(
            "name = \"rds-to-bigquery\"\ndisplay_name",
            &format!("name = \"rds-to-bigquery\"\nunique_id = \"{SA_ID}\"\ndisplay_name"),
            1,
        )
        + &fill(
            include_str!("worlds/messages_google_to_aws.toml"),
            &[("SA_ID", SA_ID)],
        );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.toml");
    std::fs::write(&path, world).unwrap();
    let cloud = Cloud::start(&path);
    let mut task = cloud.env(&["--task", "rds-to-bigquery"]);
    let file = cred_config(&cloud, &task);
    task.insert("GOOGLE_APPLICATION_CREDENTIALS".into(), file);
    task.insert("KEYWAY_AWS_WEB_IDENTITY".into(), "google".into());
    task.insert(
        "AWS_ROLE_ARN".into(),
        "arn:aws:iam::538104962771:role/reader-from-google".into(),
    );
    let out = keyway(
        &task,
        &[
            "get",
            "arn:aws:secretsmanager:ap-northeast-1:538104962771:secret:app/config",
        ],
    );
    let err = one_line(&out.stderr);
    assert!(!err.contains("AWS_ROLE_ARN is not"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(text(&out.stdout), "via-google-web-identity");
}

/// Every failure of `keyway exec` before its command starts exits 125 (as the
/// README and --help promise), usage errors included; the command never runs.
/// Other subcommands keep clap's usage status, 2.
#[test]
fn exec_fails_with_125_before_the_command_starts_usage_errors_included() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let home = dir.path().display().to_string();
    let env: BTreeMap<String, String> = [
        ("PATH", "/usr/bin:/bin"),
        ("HOME", home.as_str()),
        // Long-term keys: the ECS API of the broker refuses to serve them.
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE12"),
        ("AWS_SECRET_ACCESS_KEY", "not-a-real-secret"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    let cases: [&[&str]; 7] = [
        // clap: a bad value, a missing value, no command at all (an unknown
        // option is the command, as for env(1)).
        &["exec", "--timeout", "soon", "--", "sh", "-c", &touch],
        &["exec", "--env"],
        &["exec"],
        // the global options before the subcommand change nothing.
        &["-v", "exec", "--timeout", "soon", "--", "sh", "-c", &touch],
        // keyway's own checks: a reference that does not parse.
        &["exec", "--env", "A=sm://", "--", "sh", "-c", &touch],
        &["exec", "--env", "NOEQUALS", "--", "sh", "-c", &touch],
        // a broker that cannot be served (long-term keys on the ECS API),
        // reported by main as every other error.
        &["exec", "--broker=ecs", "--", "sh", "-c", &touch],
    ];
    for args in cases {
        let (code, err) = stderr_to_file(dir.path(), &env, args);
        assert_eq!(code, 125, "keyway {args:?}: {err}");
        assert_eq!(
            err.matches("error:").count(),
            1,
            "keyway {args:?} says why, once: {err}"
        );
        assert!(!marker.exists(), "keyway {args:?} ran the command");
        assert!(!err.contains("not-a-real-secret"), "{err}");
    }
    // Help is not a failure; other subcommands' usage errors keep clap's 2.
    assert_eq!(stderr_to_file(dir.path(), &env, &["exec", "--help"]).0, 0);
    assert_eq!(
        stderr_to_file(dir.path(), &env, &["get", "--no-such-option"]).0,
        2
    );
    assert_eq!(stderr_to_file(dir.path(), &env, &["--no-such-option"]).0, 2);
}
