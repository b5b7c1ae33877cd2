//! Zombie reaping: as a subreaper or as PID 1, keyway collects orphans that
//! the kernel re-parents to it while the workload runs.

use crate::support::{Harness, HarnessOpts};

/// The child double-forks a short-lived `sleep` (so it is orphaned at once),
/// records who its new parent is, and waits for it to disappear from /proc:
/// it stays there as a zombie unless its new parent reaps it.
const ORPHAN: &str = r#"
( sleep 0.3 & echo $! > gc )
gc=$(cat gc)
stat=$(cat /proc/$gc/stat); rest=${stat#*) }; set -- $rest
echo "$2" > gc-ppid
echo "$PPID" > keyway-pid
i=0; while [ -e /proc/$gc ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
if [ -e /proc/$gc ]; then echo zombie > result; else echo reaped > result; fi
exit 7
"#;

/// Runs [`ORPHAN`] under keyway started with the options `set` sets, which
/// must exit as the script does: keyway's pid, and a reader of what the
/// script wrote.
fn run_orphan(set: impl FnOnce(&mut HarnessOpts)) -> (String, impl Fn(&str) -> String) {
    let mut opts = HarnessOpts::default();
    set(&mut opts);
    let h = Harness::start(ORPHAN, opts);
    let keyway = h.pid().to_string();
    let (code, stderr, scratch) = h.wait();
    assert_eq!(code, 7, "{stderr}");
    (keyway, move |name: &str| {
        scratch.read(name).trim().to_owned()
    })
}

#[test]
fn as_a_subreaper_keyway_adopts_and_reaps_orphans() {
    let (keyway, read) = run_orphan(|o| o.subreaper = true);
    assert_eq!(read("keyway-pid"), keyway);
    let why = "the orphan was not re-parented to keyway";
    assert_eq!(read("gc-ppid"), keyway, "{why}");
    assert_eq!(read("result"), "reaped");
    let why = "children left under keyway";
    assert_eq!(read("harness-children"), "[]", "{why}");
}

#[test]
fn without_the_subreaper_flag_orphans_go_elsewhere() {
    // The control for the test above: its re-parenting check can fail.
    let (keyway, read) = run_orphan(|_| {});
    assert_eq!(read("keyway-pid"), keyway);
    assert_ne!(read("gc-ppid"), keyway);
}

#[test]
fn as_pid_1_keyway_reaps_orphans_without_being_asked() {
    // Needs root (or user namespaces) for `unshare --pid --mount-proc`.
    let (_, read) = run_orphan(|o| o.pid1 = true);
    let why = "keyway is not PID 1 in the namespace";
    assert_eq!(read("keyway-pid"), "1", "{why}");
    assert_eq!(read("gc-ppid"), "1");
    assert_eq!(read("result"), "reaped");
    assert_eq!(read("harness-children"), "[]");
}
