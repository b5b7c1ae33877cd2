//! Seed 000 from the workload's side, through the real binary on the local cloud:
//! on a VM with default scopes `keyway exec` fails closed and blames the scopes;
//! after the scope fix it blames the missing IAM permission; after the grant the
//! child sees the value. The same secret read with user credentials. No run, at
//! the highest verbosity, lets the value reach stdout or stderr.

mod support;
use keyway_testkit::CLOUD_PLATFORM as CP;
use keyway_testkit::worlds::fill;
use support::seed000::*;
use support::*;

const VM: &str = "kaggle-gpu-vm";
const ZONE: &str = "asia-northeast1-a";
/// The VM's service account (the project's default compute account).
const SA: &str = "482915736104-compute@developer.gserviceaccount.com";

fn exec_hash(env: &std::collections::BTreeMap<String, String>) -> std::process::Output {
    exec_in(
        env,
        &["WANDB_API_KEY=sm://kaggle-gpu-lab/wandb-api-key"],
        &[
            "sh",
            "-c",
            "printf %s \"$WANDB_API_KEY\" | sha256sum | cut -d' ' -f1",
        ],
    )
}

#[test]
fn seed_000_on_the_vm_scopes_then_iam_then_success() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let vm = cloud.env(&["--instance", VM]);

    // 1. Default scopes: fail closed, and say the scopes are the problem.
    let out = exec_hash(&vm);
    assert_no_leak(&out, SECRET);
    assert_eq!(out.status.code(), Some(125), "{}", one_line(&out.stderr));
    assert!(
        out.stdout.is_empty(),
        "the child must not run: {}",
        text(&out.stdout)
    );
    let err = one_line(&out.stderr);
    assert!(
        err.contains("WANDB_API_KEY")
            && err.contains("projects/kaggle-gpu-lab/secrets/wandb-api-key/versions/latest"),
        "{err}"
    );
    assert!(err.contains("ACCESS_TOKEN_SCOPE_INSUFFICIENT"), "{err}");
    assert!(err.contains(&format!("gcloud compute instances set-service-account {VM} --zone={ZONE} --service-account={SA} --scopes=cloud-platform")), "{err}");

    // 2. The owner fixes the scopes; now IAM is the problem.
    cloud.set_scopes(OWNER, PROJECT, ZONE, VM, SA, &[CP]);
    let out = exec_hash(&vm);
    assert_no_leak(&out, SECRET);
    assert_eq!(out.status.code(), Some(125));
    let err = one_line(&out.stderr);
    assert!(
        err.contains("permission 'secretmanager.versions.access' denied"),
        "{err}"
    );
    assert!(!err.contains("ACCESS_TOKEN_SCOPE_INSUFFICIENT"), "{err}");
    assert!(err.contains(&format!("gcloud secrets add-iam-policy-binding wandb-api-key --project={PROJECT} --member=serviceAccount:{SA} --role=roles/secretmanager.secretAccessor")), "{err}");

    // 3. The owner grants the role; the child sees the value.
    cloud.grant_on_secret(
        OWNER,
        PROJECT,
        "wandb-api-key",
        "roles/secretmanager.secretAccessor",
        &format!("serviceAccount:{SA}"),
    );
    let out = exec_hash(&vm);
    assert_no_leak(&out, SECRET);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), sha256_hex(SECRET.as_bytes()));

    // `get` prints the value byte for byte (only here may it appear, on stdout).
    let out = keyway(&vm, &["get", "sm://kaggle-gpu-lab/wandb-api-key"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    assert_eq!(out.stdout, SECRET.as_bytes());
    assert!(!one_line(&out.stderr).contains(SECRET));

    // whoami on the VM: the service account, from the metadata server, with its scopes.
    let out = keyway(&vm, &["whoami", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    let who: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(who["google"]["email"], SA, "{who}");
    assert_eq!(who["google"]["source"]["kind"], "metadata_server", "{who}");
    assert_eq!(who["google"]["scopes"], serde_json::json!([CP]), "{who}");
    let out = keyway(&vm, &["whoami"]);
    let t = text(&out.stdout);
    assert!(t.contains(SA) && t.contains("metadata server"), "{t}");
}

#[test]
fn the_owner_reads_the_secret_with_user_credentials() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let user = cloud.env(&["--user", OWNER]);
    let out = keyway(&user, &["get", "sm://kaggle-gpu-lab/wandb-api-key"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    assert_eq!(out.stdout, SECRET.as_bytes());
    let out = keyway(&user, &["whoami", "--output", "json"]);
    let who: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(who["google"]["email"], OWNER, "{who}");
    assert_eq!(who["google"]["source"]["kind"], "gcloud_file", "{who}");
}

#[test]
fn files_are_private_on_tmpfs_and_gone_after_the_child() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let user = cloud.env(&["--user", OWNER]);
    let script = "d=$(dirname \"$KEYFILE\"); stat -f -c %T \"$d\"; stat -c %a \"$d\"; stat -c %a \"$KEYFILE\"; basename \"$KEYFILE\"; sha256sum < \"$KEYFILE\" | cut -d' ' -f1; echo \"$KEYFILE\"";
    let out = exec_in(
        &user,
        &["KEYFILE=sm://kaggle-gpu-lab/wandb-api-key?filename=wandb.key"],
        &["sh", "-c", script],
    );
    assert_no_leak(&out, SECRET);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(lines[0], "tmpfs");
    assert_eq!(lines[1], "700");
    assert_eq!(lines[2], "400");
    assert_eq!(lines[3], "wandb.key");
    assert_eq!(lines[4], sha256_hex(SECRET.as_bytes()));
    assert!(
        !std::path::Path::new(&lines[5]).exists(),
        "the file outlived the child"
    );
}

#[test]
fn exit_codes_pass_through_and_inherited_references_resolve() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let mut user = cloud.env(&["--user", OWNER]);
    user.insert(
        "WANDB_API_KEY".into(),
        "sm://kaggle-gpu-lab/wandb-api-key".into(),
    );
    let out = exec_in(
        &user,
        &[],
        &[
            "sh",
            "-c",
            "printf %s \"$WANDB_API_KEY\" | sha256sum | cut -d' ' -f1; exit 7",
        ],
    );
    assert_no_leak(&out, SECRET);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(text(&out.stdout).trim(), sha256_hex(SECRET.as_bytes()));
    let out = keyway(&user, &["exec", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(out.status.code(), Some(128 + 15));
    let out = keyway(&user, &["exec", "--", "no-such-program-xyz"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(one_line(&out.stderr).contains("no-such-program-xyz"));
}

#[test]
fn fail_closed_names_every_failed_reference() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let user = cloud.env(&["--user", OWNER]);
    let out = exec_in(
        &user,
        &[
            "GOOD=sm://kaggle-gpu-lab/wandb-api-key",
            "MISSING=sm://kaggle-gpu-lab/no-such-secret",
            "BADVER=sm://kaggle-gpu-lab/wandb-api-key#9",
            "FIELD=sm://kaggle-gpu-lab/wandb-api-key?field=token",
        ],
        &["sh", "-c", "echo RAN"],
    );
    assert_no_leak(&out, SECRET);
    assert_eq!(out.status.code(), Some(125));
    assert!(!text(&out.stdout).contains("RAN"));
    let err = one_line(&out.stderr);
    assert!(err.contains("3 of the secret references"), "{err}");
    assert!(err.contains("MISSING") && err.contains("404"), "{err}");
    assert!(
        err.contains("BADVER") && err.contains("versions/9"),
        "{err}"
    );
    assert!(err.contains("FIELD") && err.contains("not JSON"), "{err}");
    assert!(!err.contains("GOOD ("), "{err}");
    // Malformed references are refused before anything is fetched.
    let out = keyway(&user, &["exec", "--env", "X=sm://Bad/x", "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(one_line(&out.stderr).contains("'sm://Bad/x'"));
}

#[test]
fn binary_payloads_come_out_byte_for_byte_and_json_fields_resolve() {
    use base64::Engine;
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.toml");
    std::fs::write(
        &world,
        fill(
            include_str!("worlds/seed000_bytes.toml"),
            &[(
                "BLOB",
                &base64::engine::general_purpose::STANDARD.encode(&all_bytes),
            )],
        ),
    )
    .unwrap();
    let cloud = Cloud::start(&world);
    let user = cloud.env(&["--user", "dev@example.com"]);
    let out = keyway(&user, &["get", "sm://bytes-proj/blob"]);
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    assert_eq!(out.stdout, all_bytes);
    let out = keyway(
        &user,
        &[
            "get",
            "projects/bytes-proj/secrets/db/versions/1?field=password",
        ],
    );
    assert_eq!(out.stdout, b"pw-Zx81");
    let out = keyway(&user, &["get", "sm://bytes-proj/db?field=port"]);
    assert_eq!(out.stdout, b"5432");
    // A field of a binary payload is refused, and the error shows no payload.
    let out = keyway(&user, &["get", "sm://bytes-proj/blob?field=x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        one_line(&out.stderr).contains("binary"),
        "{}",
        one_line(&out.stderr)
    );
    let out = keyway(&user, &["get", "sm://bytes-proj/db?field=pasword"]);
    let err = one_line(&out.stderr);
    assert!(
        err.contains("no field 'pasword'") && !err.contains("pw-Zx81"),
        "{err}"
    );
    // A binary value with NUL bytes cannot be an environment variable: fail closed, naming it.
    let out = keyway(
        &user,
        &["exec", "--env", "BLOB=sm://bytes-proj/blob", "--", "true"],
    );
    assert_ne!(out.status.code(), Some(0));
    assert!(
        one_line(&out.stderr).contains("BLOB"),
        "{}",
        one_line(&out.stderr)
    );
    // As a file it is delivered intact.
    let out = exec_in(
        &user,
        &["BLOB=sm://bytes-proj/blob?destination=tempfile"],
        &["sh", "-c", "cat \"$BLOB\""],
    );
    assert_eq!(out.status.code(), Some(0), "{}", one_line(&out.stderr));
    assert_eq!(out.stdout, all_bytes);
}
