//! Updates to a running workload (`run_with_updates`): files replaced
//! atomically at the same path, then a signal; restarts with new values;
//! refused updates that change nothing; the end of the workload ends updates.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keyway_exec::{
    Action, ChildExit, Error, Update, UpdateError, Updater, run_with_updates, updates,
};

use crate::support::{PATIENCE, SECRET, Scratch, alive, captured_logs, secret};

/// Polls (without blocking the runtime) until `check` holds.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            captured_logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn files(var: &str, value: &str) -> Vec<(String, keyway_core::Secret<Vec<u8>>)> {
    vec![(var.to_owned(), secret(value))]
}

fn signal(files: Vec<(String, keyway_core::Secret<Vec<u8>>)>) -> Update {
    Update {
        files,
        vars: Vec::new(),
        action: Action::Signal(libc::SIGHUP),
    }
}

/// The files in the secret directory holding `path`.
fn dir_listing(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// On each SIGHUP the child appends the file's contents (one line) to
/// `$OUT/seen`; after the second it exits 7.
const HUP_CHILD: &str = r#"
n=0
trap 'n=$((n+1)); cat "$F" >> "$OUT/seen"; echo >> "$OUT/seen"; [ $n -ge 2 ] && exit 7' HUP
printf '%s\n' "$F" > "$OUT/path"
while :; do sleep 0.02; done
"#;

#[tokio::test]
async fn a_signal_update_replaces_the_file_at_the_same_path_then_signals() {
    let s = Scratch::new();
    let plan = s.sh(HUP_CHILD).file("F", "token", secret("one"));
    let (updater, updates) = updates(Duration::from_secs(5));
    let run = tokio::spawn(run_with_updates(plan, updates));
    let path_file = s.out("path");
    until("the child to start", || read(&path_file).ends_with('\n')).await;
    let path = PathBuf::from(read(&path_file).trim_end());
    let before = std::fs::metadata(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "one");

    updater.apply(signal(files("F", "two"))).await.unwrap();
    let seen = s.out("seen");
    until("the child to see the new file", || read(&seen) == "two\n").await;
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(after.mode() & 0o7777, 0o400, "same mode");
    assert_eq!(after.uid(), before.uid());
    assert_ne!(
        after.ino(),
        before.ino(),
        "a new file was renamed over the old"
    );
    assert_eq!(dir_listing(&path), ["token"], "no temporary file is left");

    updater.apply(signal(files("F", "three"))).await.unwrap();
    assert_eq!(run.await.unwrap().unwrap(), ChildExit::Exited(7));
    assert_eq!(read(&seen), "two\nthree\n");
    assert!(
        !path.exists(),
        "the directory is removed at the end as always"
    );
    assert!(matches!(
        updater.apply(signal(files("F", "four"))).await,
        Err(UpdateError::Ended)
    ));
    assert!(s.runtime_leftovers().is_empty());
}

#[tokio::test]
async fn a_reader_never_sees_a_partial_file() {
    let s = Scratch::new();
    const SIZE: usize = 1 << 20;
    let value = |c: char| c.to_string().repeat(SIZE);
    let plan = s
        .sh(r#"printf '%s\n' "$F" > "$OUT/path"; while [ ! -e "$OUT/stop" ]; do sleep 0.02; done"#)
        .file("F", "big", secret(&value('a')));
    let (updater, updates) = updates(Duration::from_secs(5));
    let run = tokio::spawn(run_with_updates(plan, updates));
    let path_file = s.out("path");
    until("the child to start", || read(&path_file).ends_with('\n')).await;
    let path = PathBuf::from(read(&path_file).trim_end());

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let b = std::fs::read(&path).unwrap();
                let whole = b.len() == SIZE && b.iter().all(|&x| x == b[0]);
                assert!(
                    whole,
                    "a partial or mixed file was read ({} bytes)",
                    b.len()
                );
                reads += 1;
            }
            reads
        })
    };
    for c in ['b', 'c', 'd', 'e', 'f', 'g'] {
        let update = Update {
            files: vec![("F".into(), secret(&value(c)))],
            vars: Vec::new(),
            action: Action::Signal(libc::SIGWINCH), // ignored by sh
        };
        updater.apply(update).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    assert_eq!(std::fs::read(&path).unwrap(), value('g').as_bytes());
    std::fs::write(s.out("stop"), "").unwrap();
    assert_eq!(run.await.unwrap().unwrap(), ChildExit::Exited(0));
}

/// Each start appends the file, `$V` and its pid to `$OUT/starts` (one write,
/// once its trap is set, so a line is whole once seen); SIGTERM is recorded and ends the
/// process; the file `$OUT/stop` makes it exit 3.
const RESTART_CHILD: &str = r#"
trap 'echo term >> "$OUT/terms"; exit 0' TERM
printf '%s %s %s\n' "$(cat "$F")" "$V" "$$" >> "$OUT/starts"
while [ ! -e "$OUT/stop" ]; do sleep 0.02; done
exit 3
"#;

#[tokio::test]
async fn a_restart_starts_the_program_again_with_the_new_values() {
    let s = Scratch::new();
    let plan = s
        .sh(RESTART_CHILD)
        .var("V", secret("v1"))
        .var("OTHER", secret("same"))
        .file("F", "f", secret("f1"));
    let (updater, updates) = updates(Duration::from_secs(5));
    let run = tokio::spawn(run_with_updates(plan, updates));
    let starts = s.out("starts");
    until("the first start", || read(&starts).lines().count() == 1).await;

    let update = Update {
        files: files("F", "f2"),
        vars: vec![("V".into(), secret("v2")), ("OTHER".into(), secret("same"))],
        action: Action::Restart,
    };
    updater.apply(update).await.unwrap();
    until("the second start", || read(&starts).lines().count() == 2).await;
    let lines: Vec<String> = read(&starts).lines().map(str::to_owned).collect();
    let (first, second) = (&lines[0], &lines[1]);
    assert!(first.starts_with("f1 v1 "), "{first}");
    assert!(second.starts_with("f2 v2 "), "{second}");
    assert_eq!(
        read(&s.out("terms")),
        "term\n",
        "the first process got SIGTERM"
    );
    let old_pid: i32 = first.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(!alive(old_pid));

    std::fs::write(s.out("stop"), "").unwrap();
    assert_eq!(
        run.await.unwrap().unwrap(),
        ChildExit::Exited(3),
        "keyway ends with the last process's status"
    );
}

#[tokio::test]
async fn a_workload_that_ignores_sigterm_is_killed_after_the_stop_timeout() {
    let s = Scratch::new();
    let plan = s
        .sh(r#"trap '' TERM; echo "$V" >> "$OUT/starts"; while [ ! -e "$OUT/stop" ]; do sleep 0.02; done"#)
        .var("V", secret("v1"));
    let (updater, updates) = updates(Duration::from_millis(300));
    let run = tokio::spawn(run_with_updates(plan, updates));
    let starts = s.out("starts");
    until("the first start", || read(&starts) == "v1\n").await;
    let began = Instant::now();
    let update = Update {
        files: Vec::new(),
        vars: vec![("V".into(), secret("v2"))],
        action: Action::Restart,
    };
    updater.apply(update).await.unwrap();
    let took = began.elapsed();
    until("the second start", || read(&starts) == "v1\nv2\n").await;
    assert!(
        took >= Duration::from_millis(300),
        "killed before the timeout: {took:?}"
    );
    assert!(captured_logs().contains("did not exit after SIGTERM"));
    std::fs::write(s.out("stop"), "").unwrap();
    assert_eq!(run.await.unwrap().unwrap(), ChildExit::Exited(0));
}

#[tokio::test]
async fn refused_updates_change_nothing() {
    let s = Scratch::new();
    let plan = s
        .sh(r#"trap 'echo hup >> "$OUT/hups"' HUP; echo "$V" > "$OUT/v"; printf '%s\n' "$F" > "$OUT/path"; while [ ! -e "$OUT/stop" ]; do sleep 0.02; done"#)
        .var("V", secret("v1"))
        .file("F", "f", secret("f1"));
    let (updater, updates) = updates(Duration::from_secs(5));
    let run = tokio::spawn(run_with_updates(plan, updates));
    let path_file = s.out("path");
    until("the child to start", || read(&path_file).ends_with('\n')).await;
    let path = PathBuf::from(read(&path_file).trim_end());
    let inode = std::fs::metadata(&path).unwrap().ino();

    let refused = |update: Update| {
        let updater: &Updater = &updater;
        async move {
            match updater.apply(update).await {
                Err(UpdateError::Refused(e)) => e,
                other => panic!("not refused: {other:?}"),
            }
        }
    };
    // A file the plan does not have; and a known one beside it is not replaced either.
    let mut two = files("F", SECRET);
    two.push(("NOPE".into(), secret(SECRET)));
    let e = refused(signal(two)).await;
    assert!(
        matches!(&e, Error::UpdateUnknown { var, .. } if var == "NOPE"),
        "{e}"
    );
    // A variable without a restart.
    let e = refused(Update {
        files: files("F", SECRET),
        vars: vec![("V".into(), secret(SECRET))],
        action: Action::Signal(libc::SIGHUP),
    })
    .await;
    assert!(
        matches!(&e, Error::UpdateVarWithoutRestart { var } if var == "V"),
        "{e}"
    );
    // A restart that misses a variable, or names an unknown one, or carries a NUL.
    let e = refused(Update {
        files: files("F", SECRET),
        vars: Vec::new(),
        action: Action::Restart,
    })
    .await;
    assert!(
        matches!(&e, Error::UpdateMissingVar { var } if var == "V"),
        "{e}"
    );
    let e = refused(Update {
        files: Vec::new(),
        vars: vec![("V".into(), secret("x")), ("W".into(), secret(SECRET))],
        action: Action::Restart,
    })
    .await;
    assert!(
        matches!(&e, Error::UpdateUnknown { var, .. } if var == "W"),
        "{e}"
    );
    let e = refused(Update {
        files: files("F", SECRET),
        vars: vec![("V".into(), secret(&format!("{SECRET}\0")))],
        action: Action::Restart,
    })
    .await;
    assert!(matches!(&e, Error::NulInValue { var } if var == "V"), "{e}");
    // The same file twice.
    let mut twice = files("F", SECRET);
    twice.push(("F".into(), secret(SECRET)));
    let e = refused(signal(twice)).await;
    assert!(
        matches!(&e, Error::DuplicateVar { var } if var == "F"),
        "{e}"
    );

    // Nothing changed: same file, same contents, no signal, no restart.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "f1");
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
    assert_eq!(dir_listing(&path), ["f"]);
    assert_eq!(read(&s.out("hups")), "");
    assert_eq!(read(&s.out("v")), "v1\n");
    let said = format!("{e}\n{e:?}");
    assert!(!said.contains(SECRET), "{said}");

    // A good update still works afterwards.
    updater.apply(signal(files("F", "f2"))).await.unwrap();
    until("the signal", || read(&s.out("hups")) == "hup\n").await;
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "f2");
    std::fs::write(s.out("stop"), "").unwrap();
    assert_eq!(run.await.unwrap().unwrap(), ChildExit::Exited(0));
    assert!(!captured_logs().contains(SECRET));
}
