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

/// `keyway cloud up --data DATA [--world WORLD] [EXTRA]` run in `cwd`, and
/// the JSON line it prints once ready.
// The caller stops and waits for the child.
#[allow(clippy::zombie_processes)]
fn up_in(
    cwd: &Path,
    data: &str,
    world: Option<&str>,
    extra: &[&str],
) -> (std::process::Child, serde_json::Value) {
    use std::io::BufRead;
    let mut cmd = Command::new(KEYWAY);
    cmd.current_dir(cwd).args(["cloud", "up", "--data", data]);
    if let Some(w) = world {
        cmd.arg("--world").arg(world_path(w));
    }
    let mut child = cmd
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Ok(v) = serde_json::from_str(&line) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the local cloud did not start: {line:?}");
    };
    (child, v)
}

/// `keyway cloud env --data DATA ARGS` run in `cwd`.
fn env_in(cwd: &Path, data: &str, args: &[&str]) -> Output {
    Command::new(KEYWAY)
        .current_dir(cwd)
        .args(["cloud", "env", "--data", data])
        .args(args)
        .output()
        .unwrap()
}

fn exports(out: &Output) -> Vec<(String, String)> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.trim_matches('\'').to_owned())
        })
        .collect()
}

#[test]
fn a_different_world_file_is_refused_naming_reset() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    stop(up_in(dir.path(), data_s, Some("examples/seed-000.toml"), &[]).0);
    // Another world on the same store: refused, and nothing is served.
    let out = run_to_end(
        &[
            "cloud",
            "up",
            "--world",
            world_path("examples/seed-001.toml").to_str().unwrap(),
        ],
        &data,
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("different world file"), "{err}");
    assert!(err.contains("--reset"), "{err}");
    assert!(err.contains("seed-001.toml"), "{err}");
    assert!(!data.join("endpoints.json").exists());
    // The world it was seeded from is welcome.
    stop(up_in(dir.path(), data_s, Some("examples/seed-000.toml"), &[]).0);
    // --reset starts over from the new world, whose task is then there.
    let (child, _) = up_in(
        dir.path(),
        data_s,
        Some("examples/seed-001.toml"),
        &["--reset"],
    );
    let env = exports(&env_in(dir.path(), data_s, &["--task", "wevox-batch"]));
    assert!(
        env.iter()
            .any(|(k, _)| k == "AWS_CONTAINER_CREDENTIALS_FULL_URI")
    );
    stop(child);
}

#[test]
fn no_message_shows_an_empty_list() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    for (args, want) in [
        (&["--task", "wevox-batch"][..], "it has no ECS tasks"),
        (&["--aws-user", "ogura"][..], "it has no AWS users"),
        (&["--instance", "nope"][..], "it has: kaggle-gpu-vm"),
    ] {
        let out = env_in(cloud.dir.path(), cloud.data.to_str().unwrap(), args);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(err.contains(want), "{err}");
        assert!(
            !err.contains("(it has: )") && !err.contains("it has: )"),
            "{err}"
        );
    }
}

#[test]
fn every_path_the_cloud_prints_is_absolute_and_everything_it_writes_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // A relative --data, as in the README.
    let (child, printed) = up_in(
        dir.path(),
        ".keyway-cloud",
        Some("examples/seed-001.toml"),
        &[],
    );
    let data = dir.path().join(".keyway-cloud");
    let mut paths: Vec<String> = Vec::new();
    // Files and directories (not URL paths such as `/v2/credentials/…`).
    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match v.as_str() {
                        Some(s) if k.ends_with("_file") || k == "cloudsdk_config" => {
                            out.push(s.to_owned())
                        }
                        _ => collect(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    collect(&printed, &mut paths);
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("endpoints.json")).unwrap()).unwrap();
    collect(&written, &mut paths);
    let before = paths.len();
    for args in [
        &["--user", "ogura@example.com"][..],
        &["--aws-user", "ogura"][..],
        &["--task", "wevox-batch"][..],
    ] {
        for (k, v) in exports(&env_in(dir.path(), ".keyway-cloud", args)) {
            let is_path = (v.contains('/') || k.ends_with("_FILE") || k == "CLOUDSDK_CONFIG")
                && !v.contains("://")
                && !k.starts_with("AWS_CONTAINER_AUTHORIZATION_TOKEN")
                && !k.starts_with("ECS_");
            if is_path {
                paths.push(v);
            }
        }
    }
    assert!(
        paths.len() > before + 3,
        "too few paths were checked: {paths:?}"
    );
    for p in &paths {
        assert!(Path::new(p).is_absolute(), "a relative path: {p}");
        assert!(
            Path::new(p).exists() || p.starts_with("/dev/"),
            "{p} does not exist"
        );
    }
    // Everything in the data directory is its owner's alone.
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        let m = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o700, "{}", d.display());
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ty = e.file_type().unwrap();
            if ty.is_dir() {
                stack.push(e.path());
            } else if ty.is_file() {
                let m = e.metadata().unwrap().permissions().mode() & 0o777;
                assert_eq!(m, 0o600, "{}", e.path().display());
            }
        }
    }
    stop(child);
}

/// `KEYWAY_CLOUD_DATA` names the data directory when `--data` is not given
/// (read from the environment main captured, not by clap), and `--data` wins.
#[test]
fn the_data_directory_comes_from_keyway_cloud_data_unless_data_is_given() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let env_out = |data_var: &Path, flag: Option<&Path>| {
        let mut cmd = Command::new(KEYWAY);
        cmd.args(["cloud", "env", "--instance", "kaggle-gpu-vm"])
            .env("KEYWAY_CLOUD_DATA", data_var);
        if let Some(f) = flag {
            cmd.arg("--data").arg(f);
        }
        cmd.output().unwrap()
    };
    let from_var = env_out(&cloud.data, None);
    assert!(from_var.status.success(), "{}", text(&from_var.stderr));
    assert!(
        text(&from_var.stdout).contains(&cloud.google()),
        "{}",
        text(&from_var.stdout)
    );
    let nowhere = cloud.dir.path().join("not-a-cloud");
    let flag_wins = env_out(&nowhere, Some(&cloud.data));
    assert!(flag_wins.status.success(), "{}", text(&flag_wins.stderr));
    let refused = env_out(&nowhere, None);
    assert!(!refused.status.success());
    let err = text(&refused.stderr);
    assert!(err.contains(&nowhere.display().to_string()), "{err}");
}
