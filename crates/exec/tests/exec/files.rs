//! File delivery on tmpfs: modes, owner, contents, and removal however the
//! child ends.

use std::path::{Path, PathBuf};

use keyway_exec::{ChildExit, Error, Plan, TmpfsPolicy, run};

use crate::support::{SECRET, Scratch, secret};

/// Reports, from inside the child, what a user would check about `$SECRET_FILE`.
const INSPECT: &str = r#"
f="$SECRET_FILE"; d=$(dirname "$f")
printf '%s\n' "$f" > "$OUT/path"
stat -c '%a %u %F' "$f" > "$OUT/file"
stat -c '%a %u' "$d" > "$OUT/dir"
stat -f -c '%T' "$d" > "$OUT/fs"
cat "$f" > "$OUT/contents"
"#;

fn delivered_path(s: &Scratch) -> PathBuf {
    PathBuf::from(s.read("path").trim_end())
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

#[tokio::test]
async fn files_are_private_on_tmpfs_and_removed_after_exit() {
    let s = Scratch::new();
    let plan = s.sh(INSPECT).file("SECRET_FILE", "token", secret(SECRET));
    assert_eq!(run(plan).await.unwrap(), ChildExit::Exited(0));

    let path = delivered_path(&s);
    assert_eq!(path.file_name().unwrap(), "token");
    // $XDG_RUNTIME_DIR is on tmpfs here, so it is used.
    assert_eq!(path.parent().unwrap().parent().unwrap(), s.runtime.path());
    assert_eq!(
        s.read("file").trim(),
        format!("400 {} regular file", euid())
    );
    assert_eq!(s.read("dir").trim(), format!("700 {}", euid()));
    assert_eq!(s.read("fs").trim(), "tmpfs");
    assert_eq!(s.read("contents"), SECRET);
    assert!(!path.parent().unwrap().exists(), "secret dir still exists");
    assert!(s.runtime_leftovers().is_empty());
}

#[tokio::test]
async fn several_files_share_one_directory() {
    let s = Scratch::new();
    let plan = s
        .sh(r#"cat "$A" "$B" > "$OUT/both"; dirname "$A" "$B" > "$OUT/dirs"; ls -A "$(dirname "$A")" > "$OUT/ls""#)
        .file("A", "a.json", secret("{\"a\":1}"))
        .file("B", ".b", secret("bee"));
    assert_eq!(run(plan).await.unwrap(), ChildExit::Exited(0));
    assert_eq!(s.read("both"), "{\"a\":1}bee");
    let dirs = s.read("dirs");
    let dirs: Vec<&str> = dirs.lines().collect();
    assert_eq!(dirs.len(), 2);
    assert_eq!(dirs[0], dirs[1]);
    assert_eq!(s.read("ls"), ".b\na.json\n");
    assert!(!Path::new(dirs[0]).exists());
}

#[tokio::test]
async fn a_runtime_dir_not_on_tmpfs_is_skipped_for_dev_shm() {
    let s = Scratch::new();
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut plan = s.sh(INSPECT).file("SECRET_FILE", "token", secret(SECRET));
    plan.base_env = s
        .env()
        .with("XDG_RUNTIME_DIR", disk.path().to_str().unwrap());
    assert_eq!(run(plan).await.unwrap(), ChildExit::Exited(0));
    let path = delivered_path(&s);
    assert!(path.starts_with("/dev/shm/"), "{}", path.display());
    assert_eq!(s.read("fs").trim(), "tmpfs");
    assert!(!path.parent().unwrap().exists());
    assert_eq!(std::fs::read_dir(disk.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn the_directory_is_removed_whatever_way_the_child_ends() {
    let s = Scratch::new();
    for (script, want) in [
        ("exit 3", ChildExit::Exited(3)),
        ("kill -SEGV $$", ChildExit::Signaled(libc::SIGSEGV)),
        ("kill -KILL $$", ChildExit::Signaled(libc::SIGKILL)),
    ] {
        let script = format!(r#"printf '%s\n' "$SECRET_FILE" > "$OUT/path"; {script}"#);
        let plan = s.sh(&script).file("SECRET_FILE", "token", secret(SECRET));
        assert_eq!(run(plan).await.unwrap(), want);
        let path = delivered_path(&s);
        assert!(
            !path.parent().unwrap().exists(),
            "{script}: {}",
            path.display()
        );
        assert!(s.runtime_leftovers().is_empty(), "{script}");
    }
}

#[tokio::test]
async fn the_directory_is_removed_when_the_child_is_killed_from_outside() {
    let s = Scratch::new();
    let script =
        r#"printf '%s\n' "$SECRET_FILE" > "$OUT/path"; echo $$ > "$OUT/pid"; exec sleep 30"#;
    let plan = s.sh(script).file("SECRET_FILE", "token", secret(SECRET));
    let out = s.out.path().to_owned();
    let killer = std::thread::spawn(move || {
        let pid: i32 = crate::support::wait_for_file(&out.join("pid"))
            .trim()
            .parse()
            .unwrap();
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    });
    assert_eq!(run(plan).await.unwrap(), ChildExit::Signaled(libc::SIGKILL));
    killer.join().unwrap();
    assert!(!delivered_path(&s).parent().unwrap().exists());
    assert!(s.runtime_leftovers().is_empty());
}

#[tokio::test]
async fn a_spawn_failure_after_the_files_were_written_removes_them() {
    let s = Scratch::new();
    let plan =
        Plan::new("/nonexistent/keyway-app", s.env()).file("SECRET_FILE", "token", secret(SECRET));
    let err = run(plan).await.unwrap_err();
    assert_eq!(err.exit_code(), 127);
    assert!(s.runtime_leftovers().is_empty());
}

#[tokio::test]
async fn bad_file_names_are_errors_before_anything_is_written() {
    let s = Scratch::new();
    for (name, reason) in [
        ("", "empty"),
        (".", "'.'"),
        ("..", "'..'"),
        ("../escape", "'/'"),
        ("a/b", "'/'"),
        ("a\0b", "NUL"),
    ] {
        let plan = s
            .sh(r#"touch "$OUT/ran""#)
            .file("KEY", name, secret(SECRET));
        let err = run(plan).await.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidFileName { var, .. } if var == "KEY"),
            "{name:?}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("KEY") && msg.contains(reason), "{msg}");
        assert!(!msg.contains(SECRET));
    }
    let plan = s
        .sh("true")
        .file("A", "same", secret("1"))
        .file("B", "same", secret("2"));
    assert!(matches!(
        run(plan).await.unwrap_err(),
        Error::DuplicateFileName { .. }
    ));
    assert!(!s.out("ran").exists());
    assert!(s.runtime_leftovers().is_empty());
}

#[tokio::test]
async fn a_fallback_directory_is_only_used_when_allowed() {
    // /dev/shm exists on every Linux test machine, so the fallback is not
    // taken here; it must not be used when a tmpfs is available.
    let s = Scratch::new();
    let fallback = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut plan = s.sh(INSPECT).file("SECRET_FILE", "token", secret(SECRET));
    plan.tmp = TmpfsPolicy::AllowFallback(fallback.path().to_owned());
    assert_eq!(run(plan).await.unwrap(), ChildExit::Exited(0));
    assert_eq!(s.read("fs").trim(), "tmpfs");
    assert_eq!(std::fs::read_dir(fallback.path()).unwrap().count(), 0);
}
