//! Shared by the binary's integration tests: start `keyway cloud up` on a world,
//! build the environment `keyway cloud env` prints, run `keyway` in it, and act
//! as the project owner over the Google APIs. The starting and stopping is
//! keyway-testkit's (`process`), shared with every test that runs a cloud.
#![allow(dead_code)]

use keyway_testkit::process;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const KEYWAY: &str = env!("CARGO_BIN_EXE_keyway");

/// What `examples/seed-000.toml` declares that more than one test names.
pub mod seed000 {
    pub const OWNER: &str = "kyoto@example.com";
    pub const PROJECT: &str = "kaggle-gpu-lab";
    /// Version 1 of `wandb-api-key`.
    pub const SECRET: &str = "local-wandb-key-0f3a9c2e71b84d55a6e0c9d13b7f2e48";
}

pub struct Cloud {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub child: Child,
    pub endpoints: Value,
}

impl Drop for Cloud {
    fn drop(&mut self) {
        process::stop(&mut self.child);
    }
}

impl Cloud {
    pub fn start(world: &Path) -> Cloud {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (child, endpoints) =
            process::start_cloud(Path::new(KEYWAY), world, &data, Stdio::inherit());
        Cloud {
            dir,
            data,
            child,
            endpoints,
        }
    }

    pub fn google(&self) -> String {
        self.endpoints["google"].as_str().unwrap().to_owned()
    }

    /// The variables `keyway cloud env ARGS` exports, plus a PATH, and nothing else.
    pub fn env(&self, args: &[&str]) -> BTreeMap<String, String> {
        let mut env = process::cloud_env(Path::new(KEYWAY), &self.data, args);
        env.insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
        env.insert(
            "HOME".into(),
            self.dir.path().join("home").display().to_string(),
        );
        env
    }

    /// The project owner's access token (from the user's ADC file).
    pub fn user_token(&self, email: &str) -> String {
        process::user_token(&self.data, email)
    }

    /// An authenticated Google API call as `email`.
    pub fn call(&self, email: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        process::call(&self.google(), &self.user_token(email), method, path, body)
    }

    /// Stops a VM, sets its scopes, starts it (what the owner does in seed 000).
    pub fn set_scopes(
        &self,
        owner: &str,
        project: &str,
        zone: &str,
        vm: &str,
        email: &str,
        scopes: &[&str],
    ) {
        let inst = format!("/compute/v1/projects/{project}/zones/{zone}/instances/{vm}");
        assert_eq!(
            self.call(owner, "POST", &format!("{inst}/stop"), None).0,
            200
        );
        let (s, b) = self.call(
            owner,
            "POST",
            &format!("{inst}/setServiceAccount"),
            Some(json!({"email": email, "scopes": scopes})),
        );
        assert_eq!(s, 200, "{b}");
        assert_eq!(
            self.call(owner, "POST", &format!("{inst}/start"), None).0,
            200
        );
    }

    /// Adds a binding to a secret's IAM policy, as the owner.
    pub fn grant_on_secret(
        &self,
        owner: &str,
        project: &str,
        secret: &str,
        role: &str,
        member: &str,
    ) {
        let res = format!("/v1/projects/{project}/secrets/{secret}");
        let (s, mut p) = self.call(owner, "GET", &format!("{res}:getIamPolicy"), None);
        assert_eq!(s, 200);
        let b = p
            .as_object_mut()
            .unwrap()
            .entry("bindings")
            .or_insert(json!([]));
        b.as_array_mut()
            .unwrap()
            .push(json!({"role": role, "members": [member]}));
        let (s, b) = self.call(
            owner,
            "POST",
            &format!("{res}:setIamPolicy"),
            Some(json!({"policy": p})),
        );
        assert_eq!(s, 200, "{b}");
    }
}

/// Runs `keyway ARGS` with exactly `env`, at the highest verbosity.
pub fn keyway(env: &BTreeMap<String, String>, args: &[&str]) -> Output {
    Command::new(KEYWAY)
        .env_clear()
        .envs(env)
        .env("KEYWAY_LOG", "trace")
        .args(args)
        .output()
        .unwrap()
}

/// `keyway exec` in `env` (as [`keyway`]): each of `vars` (`NAME=REFERENCE`)
/// given with `--env`, then `command`.
pub fn exec_in(env: &BTreeMap<String, String>, vars: &[&str], command: &[&str]) -> Output {
    let mut args = vec!["exec"];
    for var in vars {
        args.extend(["--env", var]);
    }
    args.push("--");
    args.extend_from_slice(command);
    keyway(env, &args)
}

/// What an ECS task's credentials endpoint serves it (the task's
/// environment names the endpoint and its token): the task role's secret key
/// and session token.
pub fn task_role_credentials(env: &BTreeMap<String, String>) -> (String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let doc: Value = rt.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = &env["AWS_CONTAINER_CREDENTIALS_FULL_URI"];
        let token = &env["AWS_CONTAINER_AUTHORIZATION_TOKEN"];
        let r = client.get(url).header("Authorization", token).send();
        r.await.unwrap().json().await.unwrap()
    });
    let field = |k: &str| doc[k].as_str().unwrap().to_owned();
    (field("SecretAccessKey"), field("Token"))
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts that no output of a run contains `secret`.
pub fn assert_no_leak(out: &Output, secret: &str) {
    for (what, bytes) in [("stderr", &out.stderr), ("stdout", &out.stdout)] {
        assert!(
            !text(bytes).contains(secret),
            "the secret value leaked into {what}:\n{}",
            text(bytes)
        );
    }
}

pub fn sha256_hex(b: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
    d.as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

pub fn world_path(name: &str) -> PathBuf {
    keyway_testkit::paths::in_repo(name)
}

/// keyway's stderr with its wrapping undone: a message or hint that keyway
/// broke over several lines (at spaces; commands with ` \` continuations)
/// reads as one line, so a test can look for a phrase in it. A line indented
/// by four or more spaces continues the one before it.
pub fn one_line(b: &[u8]) -> String {
    let mut out = String::new();
    for line in text(b).lines() {
        if line.starts_with("    ") && !out.is_empty() {
            if out.ends_with('\n') {
                out.pop();
            }
            if let Some(kept) = out.strip_suffix(" \\") {
                out.truncate(kept.len());
            }
            out.push(' ');
            out.push_str(line.trim_start());
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}
