//! Seed 002 done right, through the real binary on the local cloud: inside the
//! emulated Fargate task, `keyway cloud cred-config` writes the Workload
//! Identity Federation configuration (no key), and keyway signs the subject
//! token with the task role's credentials from the ECS container endpoint
//! (nobody fetches them and exports AWS_* by hand), exchanges it at the local
//! STS, impersonates the service account (or uses the federated token
//! directly) and reads the Google secret. The traps of the post (a task whose
//! role the provider's condition does not admit, a task with no task role) and
//! a service account without the workloadIdentityUser binding fail with a hint
//! that names the fix.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::*;

const TASK: &str = "rds-to-bigquery";
const EXEC_ROLE_TASK: &str = "rds-to-bigquery-exec-role";
const NO_ROLE_TASK: &str = "rds-to-bigquery-no-task-role";
const PROVIDER: &str =
    "projects/402718395026/locations/global/workloadIdentityPools/bq-pool/providers/aws-provider";
const SA: &str = "rds-to-bigquery@curucuru-logs.iam.gserviceaccount.com";
const OTHER_SA: &str = "bq-reporting@curucuru-logs.iam.gserviceaccount.com";
const CONFIG_REF: &str = "sm://curucuru-logs/rds-to-bigquery-config";
const CONFIG: &str =
    r#"{"dataset":"curucuru_logs","table":"rds_export","location":"asia-northeast1"}"#;
const DIRECT_REF: &str = "sm://curucuru-logs/bigquery-dataset";
const DIRECT: &str = r#"{"dataset":"curucuru_logs","writer":"federated-task-role"}"#;
const TASK_ROLE_SET: &str = "principalSet://iam.googleapis.com/projects/402718395026/locations/global/workloadIdentityPools/bq-pool/attribute.aws_role/arn:aws:sts::538104962771:assumed-role/rds-to-bigquery-task";

/// `keyway cloud cred-config PROVIDER ARGS --output-file DIR/NAME` run in `env`; the file's path.
fn cred_config(
    cloud: &Cloud,
    env: &BTreeMap<String, String>,
    name: &str,
    args: &[&str],
) -> PathBuf {
    let path = cloud.dir.path().join(name);
    let mut all = vec![
        "cloud",
        "cred-config",
        "--data",
        cloud.data.to_str().unwrap(),
        PROVIDER,
    ];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output-file", path.to_str().unwrap()]);
    let out = keyway(env, &all);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    path
}

/// `keyway exec --env CONFIG=… -- true` in `task`'s environment with a
/// configuration that impersonates [`SA`]: it must fail before the command
/// (125); its error, on one line.
fn refused_in_task(cloud: &Cloud, task: &BTreeMap<String, String>) -> String {
    let file = cred_config(
        cloud,
        task,
        "cred.json",
        &["--aws", "--service-account", SA],
    );
    let config = format!("CONFIG={CONFIG_REF}");
    let out = exec_in(&with_credentials(task, &file), &[&config], &["true"]);
    assert_eq!(out.status.code(), Some(125), "{}", one_line(&out.stderr));
    one_line(&out.stderr)
}

fn with_credentials(env: &BTreeMap<String, String>, file: &Path) -> BTreeMap<String, String> {
    let mut env = env.clone();
    env.insert(
        "GOOGLE_APPLICATION_CREDENTIALS".into(),
        file.display().to_string(),
    );
    env
}

/// Every regular file under `dir` but the store and its master key (sealed bytes).
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            files_under(&p, out);
        } else if !name.starts_with("cloud.db") && name != "master.key" {
            out.push(p);
        }
    }
}

#[test]
fn the_task_reads_its_google_secret_with_no_key_anywhere() {
    let cloud = Cloud::start(&world_path("examples/seed-002.toml"));
    let task = cloud.env(&["--task", TASK]);
    // The container has the ECS endpoint, not AWS keys (the post exported them by hand).
    assert!(
        task.contains_key("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        "{task:?}"
    );
    assert!(
        !task.contains_key("AWS_ACCESS_KEY_ID")
            && !task.contains_key("GOOGLE_APPLICATION_CREDENTIALS"),
        "{task:?}"
    );

    let file = cred_config(
        &cloud,
        &task,
        "clientLibraryConfig-aws-provider.json",
        &["--aws", "--service-account", SA],
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let cfg: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(cfg["type"], "external_account");
    assert_eq!(cfg["audience"], format!("//iam.googleapis.com/{PROVIDER}"));
    assert_eq!(
        cfg["subject_token_type"],
        "urn:ietf:params:aws:token-type:aws4_request"
    );
    assert_eq!(cfg["credential_source"]["environment_id"], "aws1");
    assert_eq!(cfg["token_url"], format!("{}/v1/token", cloud.google()));
    assert_eq!(
        cfg["service_account_impersonation_url"],
        format!(
            "{}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken",
            cloud.google()
        )
    );
    // What `cloud env` exports is what makes keyway accept those URLs.
    assert_eq!(
        task["CLOUDSDK_API_ENDPOINT_OVERRIDES_STS"],
        format!("{}/", cloud.google())
    );

    // No key anywhere: not in the configuration, not in any file of the cloud's data directory.
    let mut files = vec![file.clone()];
    files_under(&cloud.data, &mut files);
    for f in &files {
        let body = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        assert!(
            !body.contains("private_key") && !body.contains("BEGIN PRIVATE KEY"),
            "{} holds a key",
            f.display()
        );
    }

    let env = with_credentials(&task, &file);
    let script = r#"printf '%s\n' "$CONFIG"; env | grep -c '^AWS_ACCESS_KEY_ID=' || true"#;
    let out = exec_in(
        &env,
        &[&format!("CONFIG={CONFIG_REF}")],
        &["sh", "-c", script],
    );
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{CONFIG}\n0\n"));
    // At trace level: neither the payload, the task role's secret key and session token, nor the endpoint's token.
    let (secret_key, session_token) = task_role_credentials(&task);
    for leak in [
        CONFIG,
        "rds_export",
        secret_key.as_str(),
        session_token.as_str(),
        task["AWS_CONTAINER_AUTHORIZATION_TOKEN"].as_str(),
    ] {
        assert!(
            !one_line(&out.stderr).contains(leak),
            "stderr leaked a secret:\n{}",
            one_line(&out.stderr)
        );
    }

    // whoami shows the whole chain.
    let out = keyway(&env, &["whoami"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    let who = text(&out.stdout);
    assert!(
        who.contains(&format!("google identity  serviceAccount:{SA}")),
        "{who}"
    );
    assert!(
        who.contains("external_account credentials from")
            && who.contains("aws1 via ECS container credentials endpoint")
            && who.contains("region ap-northeast-1 (AWS_REGION)")
            && who.contains(&format!("→ STS {}/v1/token", cloud.google()))
            && who.contains(&format!("→ impersonating {SA}")),
        "{who}"
    );
    assert!(who.contains("assumed-role/rds-to-bigquery-task/"), "{who}");

    // The service account has nothing on the secret bound to the principalSet: the hint says who to grant.
    let out = keyway(&env, &["get", DIRECT_REF]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        one_line(&out.stderr).contains(&format!("--member=serviceAccount:{SA}")),
        "{}",
        one_line(&out.stderr)
    );
}

#[test]
fn direct_federated_access_reads_the_secret_bound_to_the_principal_set() {
    let cloud = Cloud::start(&world_path("examples/seed-002.toml"));
    let task = cloud.env(&["--task", TASK]);
    // To stdout, as `gcloud … create-cred-config` without --output-file.
    let out = keyway(
        &task,
        &[
            "cloud",
            "cred-config",
            "--data",
            cloud.data.to_str().unwrap(),
            PROVIDER,
            "--aws",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    let cfg: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        cfg.get("service_account_impersonation_url").is_none(),
        "{cfg}"
    );
    let file = cloud.dir.path().join("direct.json");
    std::fs::write(&file, &out.stdout).unwrap();
    let env = with_credentials(&task, &file);

    let out = exec_in(
        &env,
        &[&format!("DATASET={DIRECT_REF}")],
        &["sh", "-c", r#"printf %s "$DATASET""#],
    );
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    assert_eq!(text(&out.stdout), DIRECT);
    assert!(
        !one_line(&out.stderr).contains("federated-task-role"),
        "{}",
        one_line(&out.stderr)
    );

    let out = keyway(&env, &["whoami"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    assert!(
        text(&out.stdout).contains("→ federated token used directly"),
        "{}",
        text(&out.stdout)
    );
    // The identity line names the workload's principalSet, not an email it does not have.
    assert!(
        text(&out.stdout).contains(&format!("google identity  {TASK_ROLE_SET}")),
        "{}",
        text(&out.stdout)
    );

    // The pool's principalSet has no role on the service account's secret: the
    // hint grants the workload's own member (the one the world binds elsewhere).
    let out = keyway(&env, &["get", CONFIG_REF]);
    assert_eq!(out.status.code(), Some(1));
    let err = one_line(&out.stderr);
    assert!(err.contains("secretmanager.versions.access"), "{err}");
    assert!(
        err.contains(&format!(
            "gcloud secrets add-iam-policy-binding rds-to-bigquery-config --project=curucuru-logs --member={TASK_ROLE_SET} --role=roles/secretmanager.secretAccessor"
        )),
        "{err}"
    );
}

#[test]
fn the_execution_role_as_task_role_is_refused_by_the_attribute_condition() {
    let cloud = Cloud::start(&world_path("examples/seed-002.toml"));
    let task = cloud.env(&["--task", EXEC_ROLE_TASK]);
    let err = refused_in_task(&cloud, &task);
    assert!(
        err.contains("unauthorized_client") && err.contains("attribute condition"),
        "{err}"
    );
    // The hint names the role presented, that it is the task role, what to add to the
    // condition, and how to see it (gcloud takes the provider's full name, never a
    // project number in --project).
    assert!(
        err.contains(
            "attribute.aws_role = arn:aws:sts::538104962771:assumed-role/ecsTaskExecutionRole."
        ),
        "{err}"
    );
    assert!(
        err.contains("task ROLE (here ecsTaskExecutionRole)") && err.contains("set taskRoleArn"),
        "{err}"
    );
    assert!(
        err.contains("gcloud iam workload-identity-pools providers describe projects/402718395026/locations/global/workloadIdentityPools/bq-pool/providers/aws-provider"),
        "{err}"
    );
    let (secret_key, session_token) = task_role_credentials(&task);
    assert!(
        !err.contains(&secret_key) && !err.contains(&session_token),
        "{err}"
    );
}

#[test]
fn a_task_without_a_task_role_has_nothing_to_sign_with() {
    let cloud = Cloud::start(&world_path("examples/seed-002.toml"));
    let task = cloud.env(&["--task", NO_ROLE_TASK]);
    assert!(
        !task.contains_key("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
        "{task:?}"
    );
    let err = refused_in_task(&cloud, &task);
    assert!(err.contains("getting the subject token from aws1"), "{err}");
    assert!(
        err.contains("no task role")
            && err.contains("execution role does not help")
            && err.contains("taskRoleArn"),
        "{err}"
    );
}

#[test]
fn a_service_account_without_the_binding_names_the_one_command_that_fixes_it() {
    let cloud = Cloud::start(&world_path("examples/seed-002.toml"));
    let task = cloud.env(&["--task", TASK]);
    let file = cred_config(
        &cloud,
        &task,
        "cred.json",
        &[
            "--aws",
            "--service-account",
            OTHER_SA,
            "--service-account-token-lifetime-seconds",
            "900",
        ],
    );
    let cfg: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        cfg["service_account_impersonation"]["token_lifetime_seconds"],
        900
    );
    let out = keyway(&with_credentials(&task, &file), &["get", CONFIG_REF]);
    assert_eq!(out.status.code(), Some(1), "{}", one_line(&out.stderr));
    let err = one_line(&out.stderr);
    assert!(
        err.contains("Permission 'iam.serviceAccounts.getAccessToken' denied"),
        "{err}"
    );
    // The member is exactly the one the world binds on rds-to-bigquery, which works.
    assert!(
        err.contains(&format!("gcloud iam service-accounts add-iam-policy-binding {OTHER_SA} --role=roles/iam.workloadIdentityUser --member={TASK_ROLE_SET}")),
        "{err}"
    );
    assert!(
        std::fs::read_to_string(world_path("examples/seed-002.toml"))
            .unwrap()
            .contains(&format!("members = [\"{TASK_ROLE_SET}\"]"))
    );
}

#[test]
fn cred_config_refuses_what_the_cloud_does_not_have() {
    let cloud = Cloud::start(&world_path("examples/seed-002.toml"));
    let env = cloud.env(&["--task", TASK]);
    let data = cloud.data.to_str().unwrap().to_owned();
    let run = |args: &[&str]| {
        let mut all = vec!["cloud", "cred-config", "--data", data.as_str()];
        all.extend_from_slice(args);
        let out = keyway(&env, &all);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{:?}: {}",
            args,
            text(&out.stdout)
        );
        one_line(&out.stderr)
    };
    let other_pool = PROVIDER.replace("bq-pool", "etl-pool");
    assert!(
        run(&[&other_pool, "--aws"])
            .contains("no workload identity pool 'etl-pool' in project 'curucuru-logs'")
    );
    let other_provider = PROVIDER.replace("aws-provider", "oidc");
    assert!(
        run(&[&other_provider, "--aws"])
            .contains("no provider 'oidc' in workload identity pool 'bq-pool'")
    );
    assert!(
        run(&[
            PROVIDER,
            "--aws",
            "--service-account",
            "nobody@curucuru-logs.iam.gserviceaccount.com"
        ])
        .contains("no service account 'nobody@curucuru-logs.iam.gserviceaccount.com'")
    );
    assert!(
        run(&[PROVIDER, "--credential-source-file", "/var/run/token"])
            .contains("is an AWS provider")
    );
    assert!(run(&["bq-pool", "--aws"]).contains("expected projects/PROJECT_NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER"));
    // The project id works in place of its number; an existing, readable file becomes 0600.
    let by_id = PROVIDER.replace("402718395026", "curucuru-logs");
    let path = cloud.dir.path().join("existing.json");
    std::fs::write(&path, "old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = keyway(
        &env,
        &[
            "cloud",
            "cred-config",
            "--data",
            &data,
            &by_id,
            "--aws",
            "--enable-imdsv2",
            "--output-file",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let cfg: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(cfg["audience"], format!("//iam.googleapis.com/{PROVIDER}"));
    assert!(
        cfg["credential_source"]["imdsv2_session_token_url"].is_string(),
        "{cfg}"
    );
    // A cloud that is not running.
    let out = keyway(
        &env,
        &[
            "cloud",
            "cred-config",
            "--data",
            "/nonexistent/keyway-data",
            PROVIDER,
            "--aws",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
}
