//! When keyway itself dies without cleaning up (SIGKILL): the workload dies
//! with it unless the plan says otherwise, and the secret directory it left is
//! removed by the next `run`. And whatever keyway's own signal state, the
//! workload starts with SIGPIPE at its default action and no blocked signal.

use std::path::{Path, PathBuf};

use keyway_exec::{ChildExit, run};

use crate::support::{Harness, HarnessOpts, Scratch, alive, wait_for_file, wait_gone};

/// Reports the child's pid and its secret file's path, then waits.
const REPORT: &str = r#"printf '%s\n' "$SECRET_FILE" > path; echo $$ > child; "#;

fn secret_dir(scratch: &Scratch) -> PathBuf {
    let path = scratch.read("path");
    Path::new(path.trim_end()).parent().unwrap().to_owned()
}

fn child_pid(scratch: &Scratch) -> i32 {
    scratch.read("child").trim().parse().unwrap()
}

/// `run` of a plan that does nothing, in the same runtime directory: what the
/// next `keyway exec` does first.
fn next_run(scratch: &Scratch) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        rt.block_on(run(scratch.sh("true"))).unwrap(),
        ChildExit::Exited(0)
    );
}

#[test]
fn a_killed_keyway_takes_its_child_along_and_the_next_run_sweeps_its_files() {
    let h = Harness::start(
        &format!("{REPORT} echo ready > ready; exec sleep 300"),
        HarnessOpts::default(),
    );
    wait_for_file(&h.scratch.out("ready"));
    let child = child_pid(&h.scratch);
    let dir = secret_dir(&h.scratch);
    assert!(alive(child));
    let scratch = h.kill9();
    assert!(wait_gone(child), "the workload {child} outlived its keyway");
    // Nothing of keyway ran after SIGKILL: the directory is still there...
    assert!(dir.exists(), "{}", dir.display());
    // ...until the next run sweeps it.
    next_run(&scratch);
    assert!(!dir.exists(), "{} was not swept", dir.display());
    assert!(scratch.runtime_leftovers().is_empty());
}

#[test]
fn asked_to_keep_running_the_orphan_keeps_its_files_until_it_exits() {
    let h = Harness::start(
        &format!(
            r#"{REPORT} echo ready > ready; while [ ! -e go ]; do sleep 0.02; done; cat "$SECRET_FILE" > seen; echo survived > survived; exec sleep 300"#
        ),
        HarnessOpts {
            keep_running: true,
            ..HarnessOpts::default()
        },
    );
    wait_for_file(&h.scratch.out("ready"));
    let child = child_pid(&h.scratch);
    let dir = secret_dir(&h.scratch);
    let scratch = h.kill9();
    // keyway is gone; the workload goes on, and can still read its file.
    std::fs::write(scratch.out("go"), "").unwrap();
    wait_for_file(&scratch.out("survived"));
    assert_eq!(scratch.read("seen"), crate::support::SECRET);
    // The orphan holds the directory's lock: the next run leaves it alone.
    next_run(&scratch);
    assert!(dir.exists(), "a running orphan's files were swept");
    // Once the orphan is gone, the next run sweeps them.
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(child, libc::SIGKILL) }, 0);
    assert!(wait_gone(child));
    next_run(&scratch);
    assert!(!dir.exists(), "{} was not swept", dir.display());
}

#[tokio::test]
async fn the_workload_starts_with_default_sigpipe_and_no_blocked_signal() {
    // This test process (Rust) ignores SIGPIPE, as keyway does.
    let s = Scratch::new();
    let exit = run(s.sh(r#"exec grep -E '^Sig(Ign|Blk):' /proc/self/status > "$OUT/sig""#))
        .await
        .unwrap();
    assert_eq!(exit, ChildExit::Exited(0));
    let report = s.read("sig");
    let mask = |name: &str| {
        let line = report
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {report}"));
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    let sigpipe_bit = 1u64 << (libc::SIGPIPE - 1);
    assert_eq!(
        mask("SigIgn:") & sigpipe_bit,
        0,
        "SIGPIPE is ignored: {report}"
    );
    assert_eq!(mask("SigBlk:"), 0, "signals are blocked: {report}");
}
