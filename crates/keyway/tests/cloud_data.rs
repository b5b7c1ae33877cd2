//! The local cloud's data directory through the real binary: one running
//! cloud per directory (a second `cloud up`, with or without --reset, is
//! refused and touches nothing), an instance removes only what it wrote,
//! and everything in the directory is private to its owner.

mod support;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Runs `keyway ARGS` to completion; a run still going after the guard
/// (a second cloud that started serving) is killed and reported.
fn run_to_end(args: &[&str], data: &Path) -> Output {
    let mut child = Command::new(KEYWAY)
        .args(args)
        .arg("--data")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "`keyway {}` kept running (a second cloud on one data directory): {}",
                args.join(" "),
                text(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn world() -> String {
    world_path("examples/seed-000.toml").display().to_string()
}

#[test]
fn a_second_cloud_on_one_data_directory_is_refused_and_touches_nothing() {
    let first = Cloud::start(&world_path("examples/seed-000.toml"));
    let endpoints = std::fs::read(first.data.join("endpoints.json")).unwrap();
    let token = std::fs::read(first.data.join("control.token")).unwrap();
    let pid = first.child.id();
    let world = world();
    for extra in [&[][..], &["--reset"][..]] {
        let mut args = vec!["cloud", "up", "--world", world.as_str()];
        args.extend_from_slice(extra);
        let out = run_to_end(&args, &first.data);
        assert!(!out.status.success(), "the second cloud up succeeded");
        let err = text(&out.stderr);
        assert!(err.contains("already running"), "{err}");
        assert!(err.contains(&format!("pid {pid}")), "{err}");
        assert!(err.contains(&first.google()), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        // The first cloud's files and store are as they were, and it serves.
        assert_eq!(
            std::fs::read(first.data.join("endpoints.json")).unwrap(),
            endpoints
        );
        assert_eq!(
            std::fs::read(first.data.join("control.token")).unwrap(),
            token
        );
        assert!(first.data.join("cloud.db").exists());
        let (status, body) = first.call(
            "kyoto@example.com",
            "GET",
            "/v1/projects/kaggle-gpu-lab/secrets",
            None,
        );
        assert_eq!(status, 200, "{body}");
    }
}

/// `keyway cloud up` on `data` (seeding it from seed 000 if `world`), once
/// its endpoints are written.
// The caller stops and waits for the child.
#[allow(clippy::zombie_processes)]
fn up(data: &Path, world: bool) -> std::process::Child {
    let mut cmd = Command::new(KEYWAY);
    cmd.args(["cloud", "up", "--data"]).arg(data);
    if world {
        cmd.arg("--world").arg(world_path("examples/seed-000.toml"));
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("endpoints.json").exists() {
        if child.try_wait().unwrap().is_some() || Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the local cloud did not start on {}", data.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

fn stop(mut child: std::process::Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_stopped_cloud_removes_its_files_and_frees_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    stop(up(&data, true));
    assert!(!data.join("endpoints.json").exists());
    assert!(!data.join("control.token").exists());
    assert!(data.join("cloud.db").exists());
    // The directory is free again: a new cloud starts on the same store.
    stop(up(&data, false));
}
