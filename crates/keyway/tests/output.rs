//! What keyway does when its output cannot be written, for every command that
//! prints on stdout: a closed pipe (`keyway whoami | head -c1`) ends it quietly,
//! killed by SIGPIPE as `cat` is (a shell reports 141), with no error; a
//! full disk (`> /dev/full`) is `error: writing to stdout: No space left on
//! device` and exit status 1. Never a panic, never "Broken pipe".

mod support;

use std::collections::BTreeMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output, Stdio};
use support::*;

const OWNER: &str = "kyoto@example.com";
const VM: &str = "kaggle-gpu-vm";
const PROVIDER: &str =
    "projects/402718395026/locations/global/workloadIdentityPools/bq-pool/providers/aws-provider";

/// The printing commands of seed 000, each with the environment it needs.
fn commands(cloud: &Cloud) -> Vec<(BTreeMap<String, String>, Vec<String>)> {
    let vm = cloud.env(&["--instance", VM]);
    let owner = cloud.env(&["--user", OWNER]);
    let data = cloud.data.display().to_string();
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        (vm.clone(), s(&["whoami"])),
        (vm.clone(), s(&["whoami", "--output", "json"])),
        (vm.clone(), s(&["token"])),
        (vm.clone(), s(&["token", "--output", "json"])),
        (
            owner.clone(),
            s(&["get", "sm://kaggle-gpu-lab/wandb-api-key"]),
        ),
        (
            vm.clone(),
            s(&["cloud", "env", "--data", &data, "--instance", VM]),
        ),
        (
            vm.clone(),
            s(&["cloud", "env", "--data", &data, "--user", OWNER]),
        ),
        (vm.clone(), s(&["--help"])),
        (vm, s(&["exec", "--help"])),
    ]
}

/// Runs keyway with stdout a pipe whose reading end was closed before keyway
/// started, so its first write fails.
fn closed_pipe(env: &BTreeMap<String, String>, args: &[String]) -> Output {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array; each is owned once below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Command::new(KEYWAY)
        .env_clear()
        .envs(env)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn to_dev_full(env: &BTreeMap<String, String>, args: &[String]) -> Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    Command::new(KEYWAY)
        .env_clear()
        .envs(env)
        .args(args)
        .stdin(Stdio::null())
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

fn assert_quiet_sigpipe(args: &[String], out: &Output) {
    let err = text(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe") && !err.contains("broken pipe"),
        "keyway {args:?}: {err}"
    );
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "keyway {args:?} should end as cat does, killed by SIGPIPE: {:?}\n{err}",
        out.status
    );
    // Quietly: no error about it (a warning about the token itself may come first).
    assert!(
        !err.lines().any(|l| l.starts_with("error")),
        "keyway {args:?} complained: {err}"
    );
}

fn assert_disk_full(args: &[String], out: &Output) {
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "keyway {args:?}: {err}");
    assert_eq!(out.status.code(), Some(1), "keyway {args:?}: {err}");
    assert!(
        err.lines()
            .any(|l| l == "error: writing to stdout: No space left on device"),
        "keyway {args:?}: {err}"
    );
}

type Run = fn(&BTreeMap<String, String>, &[String]) -> Output;

/// Runs every printing command of [`commands`] so, and checks what it did.
fn every_printing_command(run: Run, check: fn(&[String], &Output)) {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    for (env, args) in commands(&cloud) {
        check(&args, &run(&env, &args));
    }
}

#[test]
fn a_closed_pipe_ends_every_printing_command_quietly() {
    every_printing_command(closed_pipe, assert_quiet_sigpipe);
}

#[test]
fn a_full_disk_is_a_clear_error_for_every_printing_command() {
    every_printing_command(to_dev_full, assert_disk_full);
}

#[test]
fn piped_into_head_as_in_a_shell() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let vm = cloud.env(&["--instance", VM]);
    let data = cloud.data.display().to_string();
    for args in [
        vec!["whoami"],
        vec!["cloud", "env", "--data", &data, "--instance", VM],
    ] {
        let err = cloud.dir.path().join("stderr");
        // `head -c1` takes one byte and leaves; whether keyway's remaining writes
        // hit the closed pipe depends on timing, so either ending is allowed, but
        // never a panic or a message.
        let out = Command::new("bash")
            .env_clear()
            .envs(&vm)
            .arg("-c")
            .arg(r#""$0" "$@" 2>"$ERR" | head -c1 >/dev/null; echo "${PIPESTATUS[0]}""#)
            .arg(KEYWAY)
            .args(&args)
            .env("ERR", &err)
            .output()
            .unwrap();
        let status = text(&out.stdout).trim().to_owned();
        let err = std::fs::read_to_string(&err).unwrap();
        assert!(
            status == "0" || status == "141",
            "keyway {args:?} | head -c1: status {status}\n{err}"
        );
        assert!(err.is_empty(), "keyway {args:?} | head -c1: {err}");
    }
}

#[test]
fn cred_config_and_cloud_up_output_too() {
    let cloud = Cloud::start(&world_path("examples/seed-002.toml"));
    let task = cloud.env(&["--task", "rds-to-bigquery"]);
    let data = cloud.data.display().to_string();
    let args: Vec<String> = ["cloud", "cred-config", "--data", &data, PROVIDER, "--aws"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_quiet_sigpipe(&args, &closed_pipe(&task, &args));
    assert_disk_full(&args, &to_dev_full(&task, &args));

    // `cloud up` prints its endpoints once it serves; a full disk stops it with the error.
    let fresh = cloud.dir.path().join("fresh");
    let world = world_path("examples/seed-000.toml").display().to_string();
    let fresh = fresh.display().to_string();
    let args: Vec<String> = ["cloud", "up", "--world", &world, "--data", &fresh]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_disk_full(&args, &to_dev_full(&task, &args));
}
