//! `kill -9` of `keyway exec` while its workload runs, through the real binary
//! on the local cloud: the workload dies with keyway (unless
//! --keep-running-if-keyway-dies), the secret file's directory is left (nothing
//! of keyway runs after SIGKILL), and the next `keyway exec` removes it.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const OWNER: &str = "kyoto@example.com";
const PATIENCE: Duration = Duration::from_secs(20);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` still runs (a zombie does not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
}

/// `keyway exec` with the owner's credentials and the W&B key as a file, running
/// `script` (which sees the file's path in $KEY and its work directory in $OUT).
fn start(env: &BTreeMap<String, String>, extra: &[&str], script: &str) -> Child {
    Command::new(KEYWAY)
        .env_clear()
        .envs(env)
        .arg("exec")
        .args(extra)
        .args([
            "--env",
            "KEY=sm://kaggle-gpu-lab/wandb-api-key?filename=wandb.key",
            "--",
            "sh",
            "-c",
            script,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn read(path: &Path) -> String {
    let mut s = String::new();
    wait_for(&path.display().to_string(), || {
        s = std::fs::read_to_string(path).unwrap_or_default();
        s.ends_with('\n')
    });
    s.trim_end().to_owned()
}

fn kill9(mut keyway: Child) {
    use std::os::unix::process::ExitStatusExt;
    keyway.kill().unwrap(); // SIGKILL
    assert_eq!(keyway.wait().unwrap().signal(), Some(libc::SIGKILL));
}

/// Runs `keyway exec -- true` in `env`: what any next run does first is the sweep.
fn next_exec(env: &BTreeMap<String, String>) {
    let out = keyway(env, &["exec", "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

struct Machine {
    env: BTreeMap<String, String>,
    out: tempfile::TempDir,
    _runtime: tempfile::TempDir,
}

fn machine(cloud: &Cloud) -> Machine {
    let out = tempfile::tempdir().unwrap();
    let runtime = tempfile::tempdir_in("/dev/shm").unwrap();
    let mut env = cloud.env(&["--user", OWNER]);
    env.insert(
        "XDG_RUNTIME_DIR".into(),
        runtime.path().display().to_string(),
    );
    env.insert("OUT".into(), out.path().display().to_string());
    Machine {
        env,
        out,
        _runtime: runtime,
    }
}

const REPORT: &str = r#"echo "$KEY" > "$OUT/path"; echo $$ > "$OUT/pid"; "#;

#[test]
fn kill_9_of_keyway_takes_the_workload_along_and_the_next_exec_sweeps_the_files() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let m = machine(&cloud);
    let keyway = start(&m.env, &[], &format!("{REPORT} exec sleep 300"));
    let pid: i32 = read(&m.out.path().join("pid")).parse().unwrap();
    let dir: PathBuf = Path::new(&read(&m.out.path().join("path")))
        .parent()
        .unwrap()
        .to_owned();
    assert!(dir.exists() && alive(pid));
    kill9(keyway);
    wait_for("the workload to die with keyway", || !alive(pid));
    assert!(dir.exists(), "nothing of keyway runs after SIGKILL");
    next_exec(&m.env);
    assert!(!dir.exists(), "the next keyway exec left {}", dir.display());
}

#[test]
fn keep_running_if_keyway_dies_leaves_the_workload_and_its_files() {
    let cloud = Cloud::start(&world_path("examples/seed-000.toml"));
    let m = machine(&cloud);
    let out = m.out.path();
    let keyway = start(
        &m.env,
        &["--keep-running-if-keyway-dies"],
        &format!(
            r#"{REPORT} while [ ! -e "$OUT/go" ]; do sleep 0.02; done; cat "$KEY" > "$OUT/seen"; echo > "$OUT/survived"; exec sleep 300"#
        ),
    );
    let pid: i32 = read(&out.join("pid")).parse().unwrap();
    let dir = Path::new(&read(&out.join("path")))
        .parent()
        .unwrap()
        .to_owned();
    kill9(keyway);
    std::fs::write(out.join("go"), "").unwrap();
    read(&out.join("survived"));
    assert_eq!(
        sha256_hex(&std::fs::read(out.join("seen")).unwrap()),
        sha256_hex(b"local-wandb-key-0f3a9c2e71b84d55a6e0c9d13b7f2e48")
    );
    next_exec(&m.env);
    assert!(dir.exists(), "a running workload's files were swept");
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_for("the workload to end", || !alive(pid));
    next_exec(&m.env);
    assert!(!dir.exists(), "{} outlived its workload", dir.display());
}

#[test]
fn the_workload_starts_with_sigpipe_at_its_default_action() {
    // keyway (Rust) ignores SIGPIPE for itself; its workload must not inherit that,
    // or `keyway exec -- sh -c 'yes | head -1'` would loop on EPIPE.
    let env = BTreeMap::from([("PATH".to_owned(), "/usr/bin:/bin".to_owned())]);
    let out = exec_in(
        &env,
        &[],
        &[
            "sh",
            "-c",
            "exec grep -E '^Sig(Ign|Blk):' /proc/self/status",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    let mask = |name: &str| {
        let line = report.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(mask("SigIgn:") & (1 << (libc::SIGPIPE - 1)), 0, "{report}");
    assert_eq!(mask("SigBlk:"), 0, "{report}");
    // And a pipeline in the workload ends as it would in a shell.
    let out = keyway(&env, &["exec", "--", "sh", "-c", "yes | head -1"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "y\n");
}
