//! Signals sent to keyway (the harness process) reach the child, keyway waits
//! for the child, removes the secret files, and exits with the child's code.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{Harness, HarnessOpts, PATIENCE, wait_for_file};

/// Records the secret file's path in `path` and checks the file is readable.
const PREAMBLE: &str =
    r#"printf '%s\n' "$SECRET_FILE" > path; cat "$SECRET_FILE" > /dev/null || exit 99; "#;

fn assert_secret_dir_removed(scratch: &crate::support::Scratch) {
    let path = scratch.read("path");
    let dir = Path::new(path.trim_end()).parent().unwrap().to_owned();
    assert!(dir.starts_with(scratch.runtime.path()), "{}", dir.display());
    assert!(!dir.exists(), "secret dir left behind: {}", dir.display());
    assert!(scratch.runtime_leftovers().is_empty());
}

#[test]
fn sigterm_to_keyway_reaches_a_trapping_child_and_its_code_is_returned() {
    let script = format!(
        "{PREAMBLE} trap 'echo TERM > got; exit 42' TERM; echo ready > ready; while :; do sleep 0.02; done"
    );
    let h = Harness::start(&script, HarnessOpts::default());
    wait_for_file(&h.scratch.out("ready"));
    h.signal(libc::SIGTERM);
    let (code, stderr, scratch) = h.wait();
    assert_eq!(code, 42, "{stderr}");
    assert_eq!(scratch.read("got"), "TERM\n");
    assert_secret_dir_removed(&scratch);
}

#[test]
fn a_child_killed_by_a_forwarded_signal_gives_128_plus_n() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let h = Harness::start(
            &format!("{PREAMBLE} echo ready > ready; exec sleep 30"),
            HarnessOpts::default(),
        );
        wait_for_file(&h.scratch.out("ready"));
        h.signal(sig);
        let (code, stderr, scratch) = h.wait();
        assert_eq!(code, 128 + sig, "signal {sig}: {stderr}");
        assert_secret_dir_removed(&scratch);
    }
}

#[test]
fn every_forwarded_signal_reaches_a_child_that_keeps_running() {
    let names = ["USR1", "USR2", "WINCH", "QUIT", "INT", "HUP", "TERM"];
    let numbers = [
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
        libc::SIGQUIT,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGTERM,
    ];
    let traps: String = names
        .iter()
        .map(|n| format!("trap 'echo {n} >> got' {n}; "))
        .collect();
    let script = format!(
        "{PREAMBLE} {traps} echo ready > ready; while [ ! -e stop ]; do sleep 0.02; done; exit 5"
    );
    let h = Harness::start(&script, HarnessOpts::default());
    wait_for_file(&h.scratch.out("ready"));
    for (i, sig) in numbers.iter().enumerate() {
        h.signal(*sig);
        // Wait until the child has recorded this one before sending the next.
        let deadline = Instant::now() + PATIENCE;
        while std::fs::read_to_string(h.scratch.out("got"))
            .unwrap_or_default()
            .lines()
            .count()
            <= i
        {
            assert!(
                Instant::now() < deadline,
                "signal {} never reached the child",
                names[i]
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    std::fs::write(h.scratch.out("stop"), "").unwrap();
    let (code, stderr, scratch) = h.wait();
    assert_eq!(code, 5, "{stderr}");
    assert_eq!(scratch.read("got").lines().collect::<Vec<_>>(), names);
    assert_secret_dir_removed(&scratch);
}

#[test]
fn without_a_tmpfs_keyway_refuses_unless_a_fallback_is_allowed() {
    // /dev/shm is replaced by a disk directory in a private mount namespace
    // (`unshare --mount` and `mount --bind`: needs root, as the PID 1 test does).
    let script = r#"touch ran; printf '%s\n' "$SECRET_FILE" > path; stat -f -c %T "$(dirname "$SECRET_FILE")" > fs"#;
    let h = Harness::start(
        script,
        HarnessOpts {
            no_tmpfs: true,
            ..Default::default()
        },
    );
    let (code, stderr, scratch) = h.wait();
    assert_eq!(code, 125, "{stderr}");
    assert!(
        stderr.contains("refusing to write secrets to disk-backed storage"),
        "{stderr}"
    );
    assert!(!scratch.out("ran").exists());

    let h = Harness::start(
        script,
        HarnessOpts {
            no_tmpfs: true,
            fallback: true,
            ..Default::default()
        },
    );
    let (code, stderr, scratch) = h.wait();
    assert_eq!(code, 0, "{stderr}");
    assert_ne!(scratch.read("fs").trim(), "tmpfs");
    let path = scratch.read("path");
    assert!(
        Path::new(path.trim_end()).starts_with(scratch.out("fallback")),
        "{path}"
    );
    assert_eq!(
        std::fs::read_dir(scratch.out("fallback")).unwrap().count(),
        0,
        "fallback dir not cleaned"
    );
}

#[test]
fn ctrl_c_on_the_terminal_reaches_the_child_once() {
    // keyway and the child share the terminal's foreground process group, so
    // the kernel already delivers Ctrl-C to both: keyway must not add a second.
    let script = format!(
        "{PREAMBLE} trap 'echo INT >> got' INT; echo ready > ready; while [ ! -e stop ]; do sleep 0.02; done"
    );
    let mut h = Harness::start(
        &script,
        HarnessOpts {
            pty: true,
            ..Default::default()
        },
    );
    wait_for_file(&h.scratch.out("ready"));
    h.type_keys(b"\x03");
    assert_eq!(wait_for_file(&h.scratch.out("got")), "INT\n");
    // Give a second, forwarded SIGINT time to arrive if keyway were sending one.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(h.scratch.out("stop"), "").unwrap();
    let (code, stderr, scratch) = h.wait();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        scratch.read("got"),
        "INT\n",
        "the child got Ctrl-C more than once"
    );
    assert_secret_dir_removed(&scratch);
}
