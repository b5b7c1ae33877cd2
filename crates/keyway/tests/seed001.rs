//! Seed 001 done right, through the real binary on the local cloud: inside the
//! emulated Fargate task, `keyway exec` reads the Google service-account key from
//! AWS Secrets Manager with the task role, hands it to the workload as a 0400
//! file on a private tmpfs, the workload reads its Google secret with it, and
//! the file is gone afterwards. The task without a task role fails with an
//! error that explains the task role / execution role trap.

mod support;

use support::*;

const TASK: &str = "wevox-batch";
const NO_ROLE_TASK: &str = "wevox-batch-no-task-role";
const KEY_ARN: &str =
    "arn:aws:secretsmanager:ap-northeast-1:380214597362:secret:wevox/gcp-credentials";
const GOOGLE_SECRET: &str = r#"{"dataset":"wevox_daily","table":"scores"}"#;
const GOOGLE_REF: &str = "sm://wevox-analytics/bigquery-export-config";

/// A line from the middle of the key's PEM: it must never be printed.
fn private_key_line(cloud: &Cloud) -> String {
    let key: serde_json::Value = serde_json::from_slice(
        &std::fs::read(cloud.data.join("keys/wevox-batch-key.json")).unwrap(),
    )
    .unwrap();
    let pem = key["private_key"].as_str().unwrap().to_owned();
    let line = pem.lines().nth(3).unwrap().to_owned();
    assert!(line.len() > 40, "{line}");
    line
}

#[test]
fn the_key_reaches_the_workload_as_a_private_file_and_is_gone_after() {
    let cloud = Cloud::start(&world_path("examples/seed-001.toml"));
    let env = cloud.env(&["--task", TASK]);
    let key_line = private_key_line(&cloud);

    // The workload itself: keyway get of the Google secret, with the key file.
    let reference = format!("GOOGLE_APPLICATION_CREDENTIALS={KEY_ARN}?filename=key.json");
    let out = keyway(
        &env,
        &["exec", "--env", &reference, "--", KEYWAY, "get", GOOGLE_REF],
    );
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    assert_eq!(text(&out.stdout), GOOGLE_SECRET);
    for leak in [key_line.as_str(), GOOGLE_SECRET, "wevox_daily"] {
        assert!(
            !one_line(&out.stderr).contains(leak),
            "stderr leaked a secret:\n{}",
            one_line(&out.stderr)
        );
    }

    // The file: 0400, named key.json, and gone once the workload exits.
    let script =
        r#"stat -c %a "$GOOGLE_APPLICATION_CREDENTIALS"; echo "$GOOGLE_APPLICATION_CREDENTIALS""#;
    let out = keyway(
        &env,
        &["exec", "--env", &reference, "--", "sh", "-c", script],
    );
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("400"), "{stdout}");
    let path = lines.next().unwrap_or_default().to_owned();
    assert!(path.ends_with("/key.json"), "{path}");
    assert!(
        !std::path::Path::new(&path).exists(),
        "the key file outlived the workload: {path}"
    );
    assert_no_leak(&out, &key_line);

    // `keyway get` of the AWS secret's JSON field, in the ARN's json-key form;
    // at trace level, neither the task role's keys nor the endpoint's token show.
    let out = keyway(&env, &["get", &format!("{KEY_ARN}:client_email::")]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    let (secret_key, session_token) = task_role_credentials(&env);
    for leak in [
        secret_key.as_str(),
        session_token.as_str(),
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN"].as_str(),
    ] {
        assert!(
            !one_line(&out.stderr).contains(leak),
            "stderr leaked a credential:\n{}",
            one_line(&out.stderr)
        );
    }
    assert_eq!(
        text(&out.stdout),
        "wevox-batch@wevox-analytics.iam.gserviceaccount.com"
    );

    // A field that is absent: a clear error naming the field, not the payload.
    let out = keyway(&env, &["get", "aws-sm://wevox/gcp-credentials?field=nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        one_line(&out.stderr).contains("no field 'nope'"),
        "{}",
        one_line(&out.stderr)
    );
    assert!(!one_line(&out.stderr).contains(&key_line));

    // A secret the task role may not read (here: one that does not exist; AWS
    // says AccessDenied, not NotFound, to a caller without the permission): the
    // hint names the task role and says the execution role is not involved.
    let out = keyway(&env, &["get", "aws-sm://wevox/nope"]);
    assert_eq!(out.status.code(), Some(1));
    let err = one_line(&out.stderr);
    assert!(
        err.contains("AccessDeniedException")
            && err.contains("task ROLE (wevox-batch-task)")
            && err.contains("EXECUTION role is not involved"),
        "{err}"
    );
}

#[test]
fn whoami_in_the_task_shows_the_task_role() {
    let cloud = Cloud::start(&world_path("examples/seed-001.toml"));
    let env = cloud.env(&["--task", TASK]);
    let out = keyway(&env, &["whoami", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    let who: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(who["aws"]["source"]["kind"], "ecs_container", "{who}");
    assert_eq!(who["aws"]["account"], "380214597362", "{who}");
    assert!(
        who["aws"]["arn"]
            .as_str()
            .unwrap_or_default()
            .contains("assumed-role/wevox-batch-task/"),
        "{who}"
    );
    let out = keyway(&env, &["whoami"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    assert!(
        text(&out.stdout).contains("ECS container credentials endpoint"),
        "{}",
        text(&out.stdout)
    );

    // The engineer on a laptop: AWS keys in a shared credentials file, no Google
    // credentials at all. whoami reports both and succeeds.
    let user = cloud.env(&["--aws-user", "ogura"]);
    let out = keyway(&user, &["whoami", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    let who: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(who["aws"]["source"]["kind"], "profile", "{who}");
    assert_eq!(
        who["aws"]["arn"], "arn:aws:iam::380214597362:user/ogura",
        "{who}"
    );
    assert!(who["google"]["error"].is_string(), "{who}");
    let out = keyway(&user, &["get", "aws-sm://wevox/gcp-credentials?field=type"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    assert_eq!(text(&out.stdout), "service_account");

    // Keys AWS does not know: a credentials error, not a denial, and no key in the output.
    let mut bogus = user.clone();
    bogus.insert("AWS_ACCESS_KEY_ID".into(), "AKIAIOSFODNN7BOGUS00".into());
    bogus.insert(
        "AWS_SECRET_ACCESS_KEY".into(),
        "bogusSecretKeyValue/K7MDENG+bPxRfiCY".into(),
    );
    let out = keyway(&bogus, &["get", "aws-sm://wevox/gcp-credentials"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        one_line(&out.stderr).contains("AWS credentials are not usable"),
        "{}",
        one_line(&out.stderr)
    );
    assert_no_leak(&out, "bogusSecretKeyValue");
}

#[test]
fn a_task_without_a_task_role_gets_a_clear_error() {
    let cloud = Cloud::start(&world_path("examples/seed-001.toml"));
    let env = cloud.env(&["--task", NO_ROLE_TASK]);
    let key_line = private_key_line(&cloud);
    let reference = format!("GOOGLE_APPLICATION_CREDENTIALS={KEY_ARN}?filename=key.json");
    let out = keyway(&env, &["exec", "--env", &reference, "--", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", one_line(&out.stderr));
    let err = one_line(&out.stderr);
    assert!(
        err.contains("no AWS credentials")
            && err.contains("no task role")
            && err.contains("execution role"),
        "{err}"
    );
    // ECS injected KEY with the execution role; keyway never prints it.
    assert!(!err.contains(&key_line), "{err}");
}
