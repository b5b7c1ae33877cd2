//! `keyway token`, through the real binary on the local cloud: the access token
//! and ID token it prints are ones the cloud accepts (checked at tokeninfo), the
//! AWS credentials are the task role's in credential_process shape, and a
//! failure prints nothing on stdout.

mod support;

use serde_json::Value;
use support::*;

const VM: &str = "kaggle-gpu-vm";

fn tokeninfo(cloud: &Cloud, field: &str, token: &str) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("{}/tokeninfo", cloud.google()))
            .form(&[(field, token)]);
        let resp = r.send().await.unwrap();
        (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        )
    })
}

#[test]
fn access_and_id_tokens_from_the_vm_are_accepted_by_the_cloud() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let env = cloud.env(&["--instance", VM]);

    let out = keyway(&env, &["token"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    let token = text(&out.stdout).trim_end().to_owned();
    assert_eq!(text(&out.stdout).lines().count(), 1, "one line, the token");
    let (status, info) = tokeninfo(&cloud, "access_token", &token);
    assert_eq!(status, 200, "{info}");
    assert!(
        info["email"]
            .as_str()
            .unwrap()
            .ends_with("-compute@developer.gserviceaccount.com"),
        "{info}"
    );
    // The VM's scopes, not cloud-platform: the metadata server decides (as on GCE).
    assert!(
        !info["scope"].as_str().unwrap().contains("cloud-platform"),
        "{info}"
    );
    // The token is on stdout only; stderr (at trace level) never shows it.
    assert!(
        !one_line(&out.stderr).contains(&token),
        "the token leaked into stderr"
    );

    let out = keyway(&env, &["token", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["source"].as_str().unwrap().contains("metadata"), "{v}");
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'), "{v}");
    assert_eq!(
        tokeninfo(&cloud, "access_token", v["access_token"].as_str().unwrap()).0,
        200
    );

    let out = keyway(&env, &["token", "--audience", "https://example.test/api"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    let id = text(&out.stdout).trim_end().to_owned();
    let (status, claims) = tokeninfo(&cloud, "id_token", &id);
    assert_eq!(status, 200, "{claims}");
    assert_eq!(claims["aud"], "https://example.test/api");
    assert_eq!(claims["iss"], "https://accounts.google.com");
}

/// The six access scopes GCE gives a VM with "Allow default access".
const GCE_DEFAULT_SCOPES: [&str; 6] = [
    "https://www.googleapis.com/auth/devstorage.read_only",
    "https://www.googleapis.com/auth/logging.write",
    "https://www.googleapis.com/auth/monitoring.write",
    "https://www.googleapis.com/auth/service.management.readonly",
    "https://www.googleapis.com/auth/servicecontrol",
    "https://www.googleapis.com/auth/trace.append",
];
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// `keyway ARGS` in exactly `env` at the default verbosity: stderr as a user sees it.
fn keyway_plain(
    env: &std::collections::BTreeMap<String, String>,
    args: &[&str],
) -> std::process::Output {
    std::process::Command::new(KEYWAY)
        .env_clear()
        .envs(env)
        .args(args)
        .output()
        .unwrap()
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

#[test]
fn json_reports_the_scopes_the_token_carries_and_warns_when_it_lacks_some() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let env = cloud.env(&["--instance", VM]);

    // Asked for cloud-platform (the default); the VM's default scopes decide.
    let out = keyway_plain(&env, &["token", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, info) = tokeninfo(&cloud, "access_token", v["access_token"].as_str().unwrap());
    let mut carried: Vec<String> = info["scope"]
        .as_str()
        .unwrap()
        .split(' ')
        .map(str::to_owned)
        .collect();
    carried.sort();
    assert_eq!(carried, GCE_DEFAULT_SCOPES, "{info}");
    assert_eq!(sorted(&v["scopes"]), carried, "what the token carries: {v}");
    assert_eq!(sorted(&v["requested_scopes"]), [CLOUD_PLATFORM], "{v}");
    let err = one_line(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.contains("warning: the token does not carry")
                && l.contains(CLOUD_PLATFORM)
                && l.contains("access scopes")),
        "{err}"
    );
    // The bare token warns the same way (on stderr; stdout is the token only).
    let out = keyway_plain(&env, &["token"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        one_line(&out.stderr).contains("warning: the token does not carry"),
        "{}",
        text(&out.stderr)
    );

    // Once the VM has cloud-platform, that is what is reported, and no warning.
    cloud.set_scopes(
        "kyoto@example.com",
        "kaggle-gpu-lab",
        "asia-northeast1-a",
        VM,
        "482915736104-compute@developer.gserviceaccount.com",
        &[CLOUD_PLATFORM],
    );
    let out = keyway_plain(&env, &["token", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sorted(&v["scopes"]), [CLOUD_PLATFORM], "{v}");
    assert!(
        !one_line(&out.stderr).contains("does not carry"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn aws_credentials_in_credential_process_shape() {
    let cloud = Cloud::start(&world_path("examples/seed-001.toml"));
    let env = cloud.env(&["--task", "wevox-batch"]);
    let out = keyway(&env, &["token", "--aws"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Version"], 1);
    assert!(
        v["AccessKeyId"].as_str().unwrap().starts_with("ASIA"),
        "{v}"
    );
    let secret = v["SecretAccessKey"].as_str().unwrap();
    assert!(secret.len() >= 40);
    assert!(!v["SessionToken"].as_str().unwrap().is_empty());
    let exp: jiff::Timestamp = v["Expiration"].as_str().unwrap().parse().unwrap();
    assert!(exp > jiff::Timestamp::now());
    assert!(
        !one_line(&out.stderr).contains(secret),
        "the secret key leaked into stderr"
    );

    // A task with no task role has no credentials: an error on stderr, nothing on stdout.
    let env = cloud.env(&["--task", "wevox-batch-no-task-role"]);
    let mut env = env;
    env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
    let out = keyway(&env, &["token", "--aws"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        one_line(&out.stderr).contains("AWS credentials"),
        "{}",
        one_line(&out.stderr)
    );
}

#[test]
fn bad_arguments_are_refused_before_any_lookup() {
    let env = std::collections::BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]);
    let out = keyway(&env, &["token", "--scopes", "a/b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        one_line(&out.stderr).contains("'a/b' is not a scope"),
        "{}",
        one_line(&out.stderr)
    );
    let out = keyway(&env, &["token", "--aws", "--audience", "x"]);
    assert_eq!(out.status.code(), Some(2), "clap refuses conflicting flags");
}
